// Every recipe of README.md runs here, as written, so the README and the code
// cannot drift apart:
//
//   * every ```sql block of the README must follow a marker
//       <!-- recipe: NAME -->            (run in database "billing")
//       <!-- recipe: NAME in DATABASE -->
//     and every marked block (sql through psql, bash through bash, the ini block
//     appended to postgresql.conf) runs in README order against a cluster of this
//     file's own, started with the README's postgresql.conf lines (pg_billops and
//     pg_cron preloaded, cron.database_name set);
//   * what the environment needs is supplied around the recipes, never inside
//     them: the emulators' URLs replace AWS's and BILL's after the recipe that
//     registers a source, the fixture files the recipes read are written first,
//     and a webhook's body and signature are handed to psql as variables;
//   * the README's signature blocks must match every public routine of schema
//     billops, its settings table every billops.* setting (default, context,
//     defining file) and every rule setting, and its architecture every source file;
//   * the pg_cron recipe is run by real pg_cron (the job is made to fire within a
//     minute, then the README unschedules it), and the backup recipe's dump is
//     restored twice (custom and plain format) and compared table by table.
//
// Needs the environment of test/run-tests.sh (the S3, BILL and AWS API emulators,
// BILLOPS_RUN) and the Debian package postgresql-15-cron.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import zlib from 'node:zlib';
import { setTimeout as sleep } from 'node:timers/promises';
import { pg, ROOT, RUN, S3, SHARED, billControl, awsApiControl, waitFor } from './helpers.mjs';

const PGBIN = '/usr/lib/postgresql/15/bin';
const README = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
const PG_OS_USER = process.getuid?.() === 0 ? 'postgres' : os.userInfo().username;
const WEBHOOK_KEY = 'readme-recipes-webhook-key';
const CATALOG = 'readme_catalog';

// --- the README ------------------------------------------------------------------
// Fenced blocks in order: {lang, code, recipe: {name, db} | null, line}.
function fencedBlocks(text) {
  const lines = text.split('\n');
  const blocks = [];
  let marker = null;
  for (let i = 0; i < lines.length; i++) {
    const m = /^<!-- recipe: ([\w-]+)(?: in (\w+))? -->$/.exec(lines[i]);
    if (m) { marker = { name: m[1], db: m[2] ?? 'billing', line: i + 1 }; continue; }
    const open = /^```(\w*)\s*$/.exec(lines[i]);
    if (open) {
      const start = i;
      const body = [];
      for (i++; i < lines.length && !/^```\s*$/.test(lines[i]); i++) body.push(lines[i]);
      // a marker belongs to the fence right after it
      const recipe = marker && marker.line === start ? marker : null;
      blocks.push({ lang: open[1], code: body.join('\n') + '\n', recipe, line: start + 1 });
      marker = null;
      continue;
    }
    if (lines[i].trim() !== '') marker = null;
  }
  return blocks;
}
const BLOCKS = fencedBlocks(README);
const RECIPES = BLOCKS.filter((b) => b.recipe);

// A routine's signature as the README writes it: \df's arguments without casts.
const normSig = (s) => s.replace(/::[a-z]+(?: [a-z]+)*(?:\[\])?/g, '').replace(/\bIN /g, '');

// --- a cluster of this file's own ------------------------------------------------
const DIR = path.join(RUN ?? os.tmpdir(), 'readme-recipes');
const SOCK = path.join(DIR, 'sock');
const PORT = 41000 + Math.floor(Math.random() * 8000);
const ENV = {
  ...process.env, PGHOST: SOCK, PGPORT: String(PORT), PGUSER: 'postgres',
  PATH: `${PGBIN}:${process.env.PATH}`,
};
delete ENV.PGDATABASE;

function asPg(file, args, opts = {}) {
  const [f, ...rest] = process.getuid?.() === 0 ? ['runuser', '-u', PG_OS_USER, '--', file, ...args] : [file, ...args];
  return execFileSync(f, rest, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', timeout: 120000, ...opts });
}
const clients = new Set();
async function connect(database = 'billing') {
  const c = new pg.Client({ host: SOCK, port: PORT, user: 'postgres', database });
  c.on('error', () => {});
  await c.connect();
  clients.add(c);
  c.on('end', () => clients.delete(c));
  return c;
}
async function rows(database, sql, params = []) {
  const c = await connect(database);
  try { return (await c.query(sql, params)).rows; } finally { await c.end(); }
}

function psql(database, code, vars = {}) {
  const args = ['-X', '-v', 'ON_ERROR_STOP=1', '-d', database];
  for (const [k, v] of Object.entries(vars)) args.push('-v', `${k}=${v}`);
  const r = spawnSync(`${PGBIN}/psql`, args, { input: code, env: ENV, encoding: 'utf8', timeout: 300000, cwd: WORK });
  if (r.status !== 0) throw new Error(`psql exited ${r.status}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout.slice(-3000)}`);
  return r.stdout;
}
function bash(code) {
  const r = spawnSync('bash', ['-euo', 'pipefail', '-c', code], { env: ENV, encoding: 'utf8', timeout: 300000, cwd: WORK });
  if (r.status !== 0) throw new Error(`bash exited ${r.status}\n--- stderr\n${r.stderr}\n--- stdout\n${r.stdout}`);
  return r.stdout;
}
const WORK = path.join(DIR, 'work');

// --- fixture data ----------------------------------------------------------------
// Payer 111111111111 ("acme"), March 2024, final (invoice ids on every line), delivered to S3:
// EC2 in 222222222222 (a spike on the 20th), S3 in 333333333333, CloudTrail in the management
// account, Datadog through AWS Marketplace in 222222222222, and one tax line.
// Payer 444444444444 ("globex"), March 2024 so far, preliminary, a local file.
const HEAD = ['identity/LineItemId', 'identity/TimeInterval', 'bill/InvoiceId', 'bill/InvoicingEntity', 'bill/BillingEntity',
  'bill/BillType', 'bill/PayerAccountId', 'bill/BillingPeriodStartDate', 'bill/BillingPeriodEndDate',
  'lineItem/UsageAccountId', 'lineItem/LineItemType', 'lineItem/UsageStartDate', 'lineItem/UsageEndDate',
  'lineItem/ProductCode', 'lineItem/UsageType', 'lineItem/Operation', 'lineItem/UsageAmount', 'lineItem/CurrencyCode',
  'lineItem/UnblendedCost', 'lineItem/LineItemDescription', 'lineItem/LegalEntity', 'product/ProductName',
  'resourceTags/user:CostCenter', 'costCategory/Team'];
const AWS_INC = 'Amazon Web Services, Inc.';
const csvField = (v) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
function curCsv(payer, days, lines, { final }) {
  const out = [HEAD.join(',')];
  let n = 0;
  const day = (d) => `2024-03-${String(d).padStart(2, '0')}T00:00:00Z`;
  for (let d = 1; d <= days; d++) {
    for (const l of lines(d)) {
      const start = l.monthly ? day(1) : day(d);
      const end = l.monthly ? '2024-04-01T00:00:00Z' : (d === 31 ? '2024-04-01T00:00:00Z' : day(d + 1));
      const row = {
        'identity/LineItemId': `li-${payer}-${++n}`, 'identity/TimeInterval': `${start}/${end}`,
        'bill/InvoiceId': final ? l.invoice : '', 'bill/InvoicingEntity': AWS_INC, 'bill/BillingEntity': l.billing ?? 'AWS',
        'bill/BillType': 'Anniversary', 'bill/PayerAccountId': payer, 'bill/BillingPeriodStartDate': '2024-03-01T00:00:00Z',
        'bill/BillingPeriodEndDate': '2024-04-01T00:00:00Z', 'lineItem/UsageAccountId': l.account,
        'lineItem/LineItemType': l.type ?? 'Usage', 'lineItem/UsageStartDate': start, 'lineItem/UsageEndDate': end,
        'lineItem/ProductCode': l.product, 'lineItem/UsageType': l.usageType, 'lineItem/Operation': l.operation ?? 'RunInstances',
        'lineItem/UsageAmount': '24', 'lineItem/CurrencyCode': 'USD', 'lineItem/UnblendedCost': l.cost,
        'lineItem/LineItemDescription': l.description, 'lineItem/LegalEntity': l.legal ?? AWS_INC,
        'product/ProductName': l.name, 'resourceTags/user:CostCenter': l.cc, 'costCategory/Team': l.team,
      };
      out.push(HEAD.map((h) => csvField(row[h])).join(','));
    }
  }
  return out.join('\n') + '\n';
}
const ACME_CSV = curCsv('111111111111', 31, (d) => [
  { account: '222222222222', product: 'AmazonEC2', name: 'Amazon Elastic Compute Cloud', usageType: 'BoxUsage:c5.xlarge',
    cost: d === 20 ? '402.50' : (40 + (d % 3) * 0.5).toFixed(2), description: 'c5.xlarge On Demand', invoice: '2024031111',
    cc: 'CC-100', team: 'Engineering' },
  { account: '333333333333', product: 'AmazonS3', name: 'Amazon Simple Storage Service', usageType: 'TimedStorage-ByteHrs',
    operation: 'StandardStorage', cost: '12.34', description: 'S3 Standard storage', invoice: '2024031111', cc: 'CC-200', team: 'Data' },
  { account: '111111111111', product: 'AWSCloudTrail', name: 'AWS CloudTrail', usageType: 'PaidEventsRecorded',
    operation: 'LookupEvents', cost: '3.00', description: 'CloudTrail events', invoice: '2024031111', cc: 'CC-900', team: 'FinOps' },
  { account: '222222222222', product: 'dd-pro', name: 'Datadog Pro', usageType: 'hosts', operation: 'Usage', cost: '25.00',
    description: 'Datadog Pro hosts', invoice: 'INV-DD-2024-03', billing: 'AWS Marketplace', legal: 'Datadog, Inc.',
    cc: 'CC-100', team: 'Engineering' },
  ...(d === 1 ? [{ account: '222222222222', product: 'AmazonEC2', name: 'Amazon Elastic Compute Cloud', usageType: '',
    operation: '', type: 'Tax', monthly: true, cost: '55.00', description: 'Tax for product code AmazonEC2',
    invoice: '2024031111', cc: 'CC-100', team: 'Engineering' }] : []),
], { final: true });
const GLOBEX_CSV = curCsv('444444444444', 10, (d) => [
  { account: '555555555555', product: 'AmazonEC2', name: 'Amazon Elastic Compute Cloud', usageType: 'BoxUsage:m5.large',
    cost: '20.00', description: 'm5.large On Demand', cc: 'CC-300', team: 'Platform' },
  ...(d === 1 ? [{ account: '555555555555', product: 'AmazonEC2', name: 'Amazon Elastic Compute Cloud', usageType: '',
    operation: '', type: 'Tax', monthly: true, cost: '5.00', description: 'Tax for product code AmazonEC2', cc: 'CC-300',
    team: 'Platform' }] : []),
], { final: false });

// the files the README's recipes read, world-readable (the server reads them)
const FILES = {
  '/tmp/globex-2024-03.csv.gz': zlib.gzipSync(GLOBEX_CSV),
  '/tmp/statement-datadog-2024-03.pdf': Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n'),
  '/tmp/focus-2024-03.csv': () => fs.readFileSync(path.join(SHARED, 'testdata/focus/focus-1.0-sample.csv')),
};
const WRITTEN = ['/tmp/engineering-2024-03.html'];

// --- what the recipes need around them ---------------------------------------------
let billing;             // a client of the billing database (assertions)
const outputs = {};      // recipe name -> psql's output

async function toEmulators(table) {
  if (table === 'cur_source') {
    await billing.query(`UPDATE billops.cur_source SET endpoint_url = $1, path_style = true WHERE storage = 's3'`, [S3]);
  } else {
    await billing.query(`UPDATE billops.aws_api_source SET cost_explorer_url = $1, invoicing_url = $1`, [process.env.AWS_API_ENDPOINT]);
  }
}

// JSON of query rows (bigint ids come back as BigInt)
const json = (x) => JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? v.toString() : v));
// Everything queued for BILL is delivered (a usage summary's documents are not queued: README "Limits").
const OPEN_ROWS = `SELECT o.outbox_id, o.dedupe_key, o.action, o.state, o.step, o.last_error_code, o.waiting_for
                     FROM billops.bill_outbox_status o`;
const drained = () => waitFor('the BILL worker to drain the outbox', async () =>
  (await billing.query(OPEN_ROWS)).rows.length === 0, 60000, 250, async () => json((await billing.query(OPEN_ROWS)).rows));

const BEFORE = {
  source: async () => { billing = await connect('billing'); },
  // the dump and the comparison after it must see the same rows: nothing may still be on its way to BILL
  backup: async () => { await drained(); },
  receive_bill_webhook: async () => {
    // the Datadog payable was routed in the quick start: the worker has created its bill by now
    const link = await waitFor('the BILL worker to create the Datadog bill', async () => (await billing.query(
      `SELECT l.bill_id, p.amount::text AS amount FROM billops.bill_link l JOIN billops.payable_overview p USING (payable_id)
        WHERE p.vendor = 'Datadog' AND l.bill_id IS NOT NULL`)).rows[0], 60000, 200,
    async () => json((await billing.query('SELECT * FROM billops.bill_outbox_status')).rows));
    const body = JSON.stringify({
      metadata: { eventId: 'evt-readme-1', eventType: 'bill.updated', subscriptionId: 'sub-readme' },
      bill: { id: link.bill_id, approvalStatus: 'APPROVED', paymentStatus: 'PAID', amount: Number(link.amount),
        updatedTime: new Date(Date.now() + 60000).toISOString() },
    });
    return { body, signature: crypto.createHmac('sha256', WEBHOOK_KEY).update(body).digest('base64') };
  },
};
const AFTER = {
  source: () => toEmulators('cur_source'),
  create_cur_source: () => toEmulators('cur_source'),
  aws_api_source: () => toEmulators('aws_api_source'),
  'quick-start': async () => {
    const p = (await billing.query(`SELECT status, kind FROM billops.payable_overview WHERE vendor = 'Datadog'`)).rows;
    assert.deepEqual(p, [{ status: 'routed', kind: 'bill' }], 'the Datadog bill is routed (and so queued for BILL)');
  },
  'quick-approve': async () => {
    assert.match(outputs['quick-approve'], /payable approved/);
    const p = (await billing.query(`SELECT status FROM billops.payable_overview WHERE vendor = 'Datadog'`)).rows[0];
    assert.equal(p.status, 'approved');
  },
  receive_bill_webhook: async () => {
    assert.match(outputs.receive_bill_webhook, /\bpaid\b/, 'BILL paid the bill: the payable is paid');
  },
  // the examples that act on rows found by a query must have found them
  build_payables: () => assert.match(outputs.build_payables, /444444444444\|2024-03\|aws_usage:.*\| created/),
  route_payable: () => assert.match(outputs.route_payable, /444444444444\|2024-03\|aws_usage:[^\n]*\|\s+2\n/),
  approve: () => assert.match(outputs.approve, /payable approved/),
  reject: () => assert.match(outputs.reject, /\brejected\b/),
  reopen_payable: () => assert.match(outputs.reopen_payable, /\| draft\n/),
  void_payable: () => assert.match(outputs.void_payable, /\| voided\n/),
  payable_line_items: () => assert.match(outputs.payable_line_items, /\(5 rows\)/),
  attach_document: () => assert.match(outputs.attach_document, /\(1 row\)/),
  explain_variance: () => assert.match(outputs.explain_variance, /\(([1-9]\d*) rows?\)/),
  resolve_signal: () => assert.match(outputs.resolve_signal, /\(([1-9]\d*) rows?\)/),
  detect_spend_signals: () => assert.match(outputs.detect_spend_signals, /cur_baseline[^\n]*2024-03-20/),
  fetch_aws_invoices: () => assert.match(outputs.fetch_aws_invoices, /ListInvoiceSummaries \| fetched/),
  fetch_ce_daily_spend: () => assert.match(outputs.fetch_ce_daily_spend, /GetCostAndUsage\s+\| fetched/),
  build_statements: () => assert.match(outputs.build_statements, /Engineering/),
  close_period: async () => {
    const cb = (await billing.query(`SELECT status FROM billops.payable WHERE payer_account_id = 'chargeback'`)).rows;
    assert.ok(cb.length > 0 && cb.every((r) => r.status === 'routed'), `chargeback payables routed after the close: ${JSON.stringify(cb)}`);
  },
  cron: async () => {
    // real pg_cron runs the README's job: let it fire at the next minute instead of at :17
    const cron = await connect('postgres');
    const job = (await cron.query(`SELECT jobid, command, database FROM cron.job WHERE jobname = 'billops-cycle'`)).rows[0];
    assert.deepEqual([job.command, job.database], ['CALL billops.run_monthly_cycle()', 'billing']);
    const runsBefore = Number((await billing.query('SELECT count(*) FROM billops.job_run')).rows[0].count);
    // the cycle's AWS calls (the payer's invoices) go through the payer's role, from pg_cron's session
    const assumed = async () => (await (await fetch(`${process.env.STS_EMULATOR_CONTROL}/requests`)).json())
      .filter((r) => r.action === 'AssumeRole' && r.roleArn === 'arn:aws:iam::111111111111:role/billops-billing-reader').length;
    const assumedBefore = await assumed();
    await cron.query(`SELECT cron.alter_job($1, schedule => '* * * * *')`, [job.jobid]);
    const run = await waitFor('pg_cron to run the monthly cycle', async () => (await cron.query(
      `SELECT status, return_message FROM cron.job_run_details WHERE jobid = $1 AND status IN ('succeeded', 'failed')`,
      [job.jobid])).rows[0], 150000, 1000);
    assert.equal(run.status, 'succeeded', run.return_message);
    const runs = (await billing.query('SELECT status, started_by, errors FROM billops.job_run ORDER BY run_id')).rows;
    assert.equal(runs.length, runsBefore + 1, 'the cron run is a billops.job_run row');
    assert.equal(runs.at(-1).started_by, 'postgres');
    assert.ok(await assumed() > assumedBefore, 'the scheduled cycle assumed the payer\'s role for its AWS calls');
    await cron.end();
  },
  'cron-runs': async () => {
    assert.equal(Number((await rows('postgres', 'SELECT count(*) FROM cron.job')).at(0).count), 0, 'unscheduled');
  },
  backup: async () => {
    for (const db of ['billing_restored', 'billing_restored_plain']) await compareRestored(db);
  },
  'restore-check': async () => {
    const build = `SELECT dedupe_key, action, status, amount::text FROM billops.build_payables() ORDER BY dedupe_key`;
    const restored = await rows('billing_restored', build);
    assert.deepEqual(restored, await rows('billing', build), 'a build after the restore does what it does in the original');
    assert.deepEqual([...new Set(restored.map((r) => r.action))].sort(), ['unchanged', 'voided'],
      'it changes nothing: every payable unchanged, the voided one voided');
    assert.match(outputs['restore-check'], /approval_threshold \| 25000\.00/, 'the audit log names the changed rule setting');
  },
};

// A restored database holds what the original holds: the extension, every table pg_dump
// keeps (row for row), the line items, the sequences; seeded rows changed in the source
// are the documented exception.
async function compareRestored(restored) {
  // what pg_dump keeps of each table: extconfig with its extcondition (seeded rows are recreated
  // by CREATE EXTENSION, with fresh defaults such as created_at)
  const tables = `SELECT c.oid::regclass::text AS t, c.relkind, cfg.w
                    FROM pg_extension e CROSS JOIN LATERAL unnest(e.extconfig, e.extcondition) cfg(oid, w)
                    JOIN pg_class c ON c.oid = cfg.oid
                   WHERE e.extname = 'pg_billops' ORDER BY 1`;
  const src = await connect('billing');
  const dst = await connect(restored);
  try {
    const list = (await src.query(tables)).rows;
    assert.deepEqual((await dst.query(tables)).rows, list, `${restored}: the same dump configuration`);
    for (const { t, relkind, w } of list) {
      const q = relkind === 'S'
        ? `SELECT last_value::text AS v, is_called::text AS n FROM ${t}`
        : `SELECT count(*)::text AS n, md5(coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '')) AS v FROM ${t} x ${w}`;
      assert.deepEqual((await dst.query(q)).rows, (await src.query(q)).rows, `${restored}: ${t} restored as it was`);
    }
    const items = `SELECT count(*)::text AS n, sum(line_item_unblended_cost)::text AS s FROM billops.cur_line_item`;
    assert.deepEqual((await dst.query(items)).rows, (await src.query(items)).rows, `${restored}: every line item`);
    const members = `SELECT count(*)::int AS n FROM pg_depend WHERE refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_billops') AND deptype = 'e'`;
    assert.deepEqual((await dst.query(members)).rows, (await src.query(members)).rows, `${restored}: the extension's objects`);
    const ver = `SELECT extversion FROM pg_extension WHERE extname = 'pg_billops'`;
    assert.deepEqual((await dst.query(ver)).rows, (await src.query(ver)).rows);
    // the documented limit: a changed seeded row (a rule setting) is not dumped
    assert.equal((await src.query(`SELECT billops.setting_value('approval_threshold') AS v`)).rows[0].v, '25000.00');
    assert.equal((await dst.query(`SELECT billops.setting_value('approval_threshold') AS v`)).rows[0].v, '10000.00');
    // the sequences go on where they were: a new row takes a fresh id
    const v = (await dst.query(`INSERT INTO billops.vendor (name) VALUES ('Restored Co') RETURNING vendor_id`)).rows[0];
    assert.ok(v.vendor_id > (await src.query('SELECT max(vendor_id) AS m FROM billops.vendor')).rows[0].m);
    await dst.query(`DELETE FROM billops.vendor WHERE name = 'Restored Co'`);
  } finally {
    await src.end();
    await dst.end();
  }
}

// --- setup and teardown ------------------------------------------------------------
before(async () => {
  assert.ok(RUN && S3 && process.env.BILL_ENDPOINT && process.env.AWS_API_ENDPOINT,
    'BILLOPS_RUN, S3_ENDPOINT, BILL_ENDPOINT and AWS_API_ENDPOINT are set (run through test/run-tests.sh)');
  assert.ok(fs.existsSync('/usr/share/postgresql/15/extension/pg_cron.control'), 'postgresql-15-cron is installed');
  const conf = RECIPES.find((r) => r.recipe.name === 'conf');
  assert.ok(conf && conf.lang === 'ini', 'the README gives the postgresql.conf lines as recipe "conf"');

  fs.rmSync(DIR, { recursive: true, force: true });
  for (const d of [DIR, SOCK, WORK]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  fs.chmodSync(DIR, 0o755);
  if (process.getuid?.() === 0) execFileSync('chown', [PG_OS_USER, DIR, SOCK]);
  asPg(`${PGBIN}/initdb`, ['-D', path.join(DIR, 'pgdata'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  // the emulators' keys, under the profile names the README uses
  const key = 'aws_access_key_id = AKIDBILLOPSTEST\naws_secret_access_key = billops-test-secret-key-0000000000000000\n';
  fs.writeFileSync(path.join(DIR, 'aws-credentials'), `[default]\n${key}\n[billing-reader]\n${key}`, { mode: 0o600 });
  fs.writeFileSync(path.join(DIR, 'bill-credentials'), `[default]\ndev_key = ${process.env.BILL_DEV_KEY}\n` +
    `username = ${process.env.BILL_USERNAME}\npassword = ${process.env.BILL_PASSWORD}\n` +
    `organization_id = ${process.env.BILL_ORGANIZATION_ID}\nwebhook_security_key = ${WEBHOOK_KEY}\n`, { mode: 0o600 });
  if (process.getuid?.() === 0) execFileSync('chown', [PG_OS_USER, path.join(DIR, 'aws-credentials'), path.join(DIR, 'bill-credentials')]);
  fs.appendFileSync(path.join(DIR, 'pgdata', 'postgresql.conf'), [
    `listen_addresses = ''`, `unix_socket_directories = '${SOCK}'`, `port = ${PORT}`,
    'fsync = off', 'synchronous_commit = off', 'full_page_writes = off', 'log_min_messages = warning',
    '# --- the README\'s lines, as written', conf.code.trimEnd(),
    '# --- the test environment: the emulators stand in for AWS and BILL',
    `billops.aws_shared_credentials_file = '${path.join(DIR, 'aws-credentials')}'`,
    `billops.bill_credentials_file = '${path.join(DIR, 'bill-credentials')}'`,
    `billops.bill_base_url = '${process.env.BILL_ENDPOINT}'`,
    'billops.bill_worker_restart_interval = 1',
    '# (no state poll: the backup recipe compares the database with its copy, row for row)',
    'billops.bill_poll_interval = 0',
    `cron.host = '${SOCK}'`, ''].join('\n'));
  // STS, where AWS's SDKs would look for it (the server's AWS_ENDPOINT_URL_STS), and the role
  // the README's billing-API recipe assumes
  assert.ok(process.env.STS_ENDPOINT, 'the STS emulator runs (test/run-tests.sh)');
  const sts = await fetch(`${process.env.STS_EMULATOR_CONTROL}/roles`, { method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ arn: 'arn:aws:iam::111111111111:role/billops-billing-reader', trust: ['AKIDBILLOPSTEST'], externalId: 'acme-billing-7f3a' }) });
  assert.equal(sts.status, 201);
  asPg('/usr/bin/env', [`AWS_ENDPOINT_URL_STS=${process.env.STS_ENDPOINT}`, `${PGBIN}/pg_ctl`, '-D', path.join(DIR, 'pgdata'),
    '-l', path.join(DIR, 'postgres.log'), '-w', 'start']);
  // a database of its own for the checks against the catalog (the recipes change "billing")
  const admin = await connect('postgres');
  await admin.query('CREATE DATABASE readme_catalog');
  await admin.end();
  const cat = await connect(CATALOG);
  await cat.query('CREATE EXTENSION pg_billops CASCADE');
  await cat.end();

  // S3: the acme report's March delivery; the AWS API emulator: the same month
  const s3root = path.join(RUN, 's3');
  fs.rmSync(path.join(s3root, 'acme-billing'), { recursive: true, force: true });
  const acme = path.join(DIR, 'acme-2024-03.csv');
  fs.writeFileSync(acme, ACME_CSV);
  execFileSync('node', [path.join(ROOT, 'test/generator/stage-csv.mjs'), '--csv', acme, '--out', s3root,
    '--bucket', 'acme-billing', '--prefix', 'cur', '--report', 'hourly', '--assembly', 'acme-2024-03-a1'], { stdio: 'ignore' });
  await billControl('POST', 'reset');
  await awsApiControl('POST', 'reset');
  await awsApiControl('POST', 'load-cur', { path: acme });
  for (const [f, content] of Object.entries(FILES)) {
    fs.writeFileSync(f, typeof content === 'function' ? content() : content);
    fs.chmodSync(f, 0o644);
  }
});

after(async () => {
  await Promise.all([...clients].map((c) => c.end().catch(() => {})));
  try { asPg(`${PGBIN}/pg_ctl`, ['-D', path.join(DIR, 'pgdata'), '-m', 'fast', 'stop']); } catch { /* not started */ }
  await billControl('POST', 'reset').catch(() => {});
  await awsApiControl('POST', 'reset').catch(() => {});
  for (const f of [...Object.keys(FILES), ...WRITTEN]) fs.rmSync(f, { force: true });
  if (!process.env.BILLOPS_KEEP) fs.rmSync(DIR, { recursive: true, force: true });
});

// --- the README against the code -----------------------------------------------------
test('every SQL block of the README is a recipe, and every recipe name is used once', () => {
  const unmarked = BLOCKS.filter((b) => b.lang === 'sql' && !b.recipe).map((b) => `README.md:${b.line}`);
  assert.deepEqual(unmarked, [], 'SQL a user is told to run is a recipe (<!-- recipe: NAME --> before its fence)');
  const names = RECIPES.map((r) => r.recipe.name);
  assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], 'recipe names are unique');
  assert.deepEqual(RECIPES.filter((r) => !['sql', 'bash', 'ini'].includes(r.lang)).map((r) => r.recipe.name), []);
  for (const n of [...Object.keys(BEFORE), ...Object.keys(AFTER)]) assert.ok(names.includes(n), `the README has recipe "${n}"`);
});

test('the README documents every public routine of schema billops with its signature', async () => {
  const documented = new Set(BLOCKS.filter((b) => b.lang === '' && !b.recipe)
    .flatMap((b) => b.code.split('\n')).filter((l) => /^(CALL )?billops\.\w+\(/.test(l)).map(normSig));
  const actual = (await rows(CATALOG, `
    SELECT CASE p.prokind WHEN 'p' THEN 'CALL ' ELSE '' END || 'billops.' || p.proname || '(' ||
           pg_get_function_arguments(p.oid) || ')' || coalesce(' → ' || pg_get_function_result(p.oid), '') AS sig
      FROM pg_proc p WHERE p.pronamespace = 'billops'::regnamespace AND p.proname !~ '^_' ORDER BY p.proname`))
    .map((r) => normSig(r.sig));
  assert.ok(actual.length > 40);
  assert.deepEqual(actual.filter((s) => !documented.has(s)), [], 'routines without their signature in the README');
  assert.deepEqual([...documented].filter((s) => !actual.includes(s)), [], 'README signatures of no routine');
  // and each has an example: a recipe that calls it
  const calls = RECIPES.map((r) => r.code).join('\n');
  const missing = actual.map((s) => /billops\.(\w+)\(/.exec(s)[1]).filter((n) => !calls.includes(`billops.${n}(`));
  assert.deepEqual(missing, [], 'routines without an example');
});

test('each routine says who may call it, as its grants say', async () => {
  const sections = README.split('\n#### billops.').slice(1).map((x) => {
    const name = /^(\w+)/.exec(x)[1];
    const end = x.search(/\n#{1,4} /);
    const body = end < 0 ? x : x.slice(0, end);
    const who = /\bWho:\s+([^]*?)\.(?:\s|$)/.exec(body.replace(/\([^)]*\)/g, ''));
    return { name, who: who?.[1].replace(/\s+/g, ' ') };
  });
  const roles = ['billops_admin', 'billops_analyst', 'billops_approver', 'billops_webhook'];
  const grants = await rows(CATALOG, `
    SELECT p.proname AS name, has_function_privilege('public', p.oid, 'EXECUTE') AS everyone,
           array_remove(ARRAY[${roles.map((r) => `CASE WHEN has_function_privilege('${r}', p.oid, 'EXECUTE') THEN '${r}' END`).join(', ')}], NULL) AS roles
      FROM pg_proc p WHERE p.pronamespace = 'billops'::regnamespace AND p.proname !~ '^_'`);
  const memberOf = Object.fromEntries(await Promise.all(roles.map(async (r) => [r,
    (await rows(CATALOG, `SELECT array_agg(rolname) AS m FROM pg_roles WHERE pg_has_role($1, oid, 'MEMBER')`, [r]))[0].m])));
  for (const g of grants) {
    const sec = sections.find((x) => x.name === g.name);
    assert.ok(sec?.who, `${g.name}: a "Who:" sentence`);
    const said = [...sec.who.matchAll(/`(billops_\w+)`/g)].map((m) => m[1]);
    for (const r of said) assert.ok(g.roles.includes(r), `${g.name}: README says ${r} may call it, but it has no EXECUTE`);
    for (const r of g.everyone ? [] : g.roles) {
      assert.ok(said.some((x) => memberOf[r].includes(x)), `${g.name}: ${r} may call it; the README does not say so`);
    }
    if (g.everyone) assert.match(sec.who, /everyone/, `${g.name}: PUBLIC may call it`);
    else if (g.roles.length === 0) assert.match(sec.who, /^superusers/, `${g.name}: only superusers (and grantees)`);
  }
});

test('the settings table lists every billops.* setting and every rule setting, as the code defines them', async () => {
  const section = README.slice(README.indexOf('\n## Settings'), README.indexOf('\n## Monitoring'));
  const table = section.split('\n').filter((l) => /^\| `[a-z0-9_.]+` \| /.test(l))
    .map((l) => l.split(' | ').map((c) => c.replace(/^\| /, '').trim()))
    .map(([name, def, context, where]) => ({ name: name.replace(/`/g, ''), def: def.replace(/`/g, ''), context, where: where.replace(/`/g, '') }));
  const inReadme = Object.fromEntries(table.map((r) => [r.name, r]));
  // server settings: every DefineCustom*Variable("billops.…") of src/*.c, in the file the table names
  const defined = {};
  for (const f of fs.readdirSync(path.join(ROOT, 'src')).filter((x) => x.endsWith('.c'))) {
    const src = fs.readFileSync(path.join(ROOT, 'src', f), 'utf8');
    for (const m of src.matchAll(/DefineCustom\w+Variable\(\s*"(billops\.\w+)"/g)) defined[m[1]] = `src/${f}`;
  }
  assert.ok(Object.keys(defined).length >= 20, 'found the settings in src/*.c');
  const gucs = table.filter((r) => r.name.startsWith('billops.')).map((r) => r.name).sort();
  assert.deepEqual(gucs, Object.keys(defined).sort(), 'the table lists exactly the settings src/*.c defines');
  for (const [name, file] of Object.entries(defined)) assert.equal(inReadme[name].where, file, `${name} is defined in ${file}`);
  // defaults and contexts of the running server
  const kb = (v) => {
    const m = /^(\d+)(kB|MB|GB)$/.exec(v);
    return m ? Number(m[1]) * { kB: 1, MB: 1024, GB: 1024 * 1024 }[m[2]] : v;
  };
  const ms = (v, unit) => {
    const m = /^(-?\d+)(ms|s|min)?$/.exec(v);
    return m ? Number(m[1]) * ({ ms: 1, s: 1000, min: 60000 }[m[2] ?? unit] ?? 1) : v;
  };
  for (const s of await rows(CATALOG, `SELECT name, boot_val, unit, context FROM pg_settings WHERE name LIKE 'billops.%'`)) {
    const r = inReadme[s.name];
    const readmeDefault = r.def === "''" ? '' : r.def;
    if (s.unit === 'ms' || s.unit === 's') assert.equal(ms(readmeDefault, s.unit), ms(s.boot_val, s.unit), `${s.name} default`);
    else if (s.unit === 'kB') assert.equal(kb(readmeDefault), Number(s.boot_val), `${s.name} default`);
    else assert.equal(readmeDefault, s.boot_val, `${s.name} default`);
    assert.equal(r.context.split(' ')[0], s.context, `${s.name} context`);
  }
  // rule settings: every row of billops.setting, with its seeded value
  const seeded = await rows(CATALOG, `SELECT name, value FROM billops.setting ORDER BY name`);
  const ruleRows = table.filter((r) => !r.name.startsWith('billops.'));
  assert.deepEqual(ruleRows.map((r) => r.name).sort(), seeded.map((s) => s.name).sort(), 'every rule setting is in the table');
  for (const s of seeded) {
    assert.equal(inReadme[s.name].def, s.value, `${s.name} default`);
    assert.equal(inReadme[s.name].context, 'table');
    assert.match(fs.readFileSync(path.join(ROOT, inReadme[s.name].where), 'utf8'), new RegExp(`'${s.name}'`),
      `${s.name} is seeded in ${inReadme[s.name].where}`);
  }
});

test('the architecture names every source file', () => {
  const files = [
    ...fs.readdirSync(path.join(ROOT, 'src')).filter((f) => f.endsWith('.c')).map((f) => `src/${f}`),
    ...fs.readdirSync(path.join(ROOT, 'sql/install')).filter((f) => f.endsWith('.sql')).map((f) => `sql/install/${f}`),
  ];
  const arch = README.slice(README.indexOf('## Architecture'), README.indexOf('## Setup'));
  assert.deepEqual(files.filter((f) => !arch.includes(`\`${f}\``)), [], 'files the architecture does not name');
  // each public routine is listed with the file that creates it
  for (const f of files.filter((x) => x.endsWith('.sql'))) {
    const row = arch.split('\n').find((l) => l.startsWith(`| \`${f}\` |`));
    const sql = fs.readFileSync(path.join(ROOT, f), 'utf8');
    for (const m of sql.matchAll(/CREATE (?:FUNCTION|PROCEDURE) billops\.([a-z]\w*)\(/g)) {
      assert.match(row, new RegExp(`\`${m[1]}\``), `the architecture lists ${m[1]} with ${f}`);
    }
  }
  const named = [...arch.matchAll(/`((?:src|sql\/install)\/[\w.]+\.(?:c|sql))`/g)].map((m) => m[1]);
  assert.deepEqual(named.filter((f) => !fs.existsSync(path.join(ROOT, f))), [], 'files the architecture names that do not exist');
});

// --- the recipes, in README order ----------------------------------------------------
test('every recipe of the README runs as written', async (t) => {
  for (const r of RECIPES) {
    const { name, db } = r.recipe;
    if (r.lang === 'ini') continue;     // the postgresql.conf lines: the cluster started with them
    await t.test(`recipe ${name} (README.md:${r.line})`, async () => {
      const vars = BEFORE[name] ? (await BEFORE[name]()) ?? {} : {};
      outputs[name] = r.lang === 'bash' ? bash(r.code) : psql(db, r.code, vars);
      if (AFTER[name]) await AFTER[name]();
    });
  }
  // the worker delivered everything the recipes queued: no dead letters, nothing stuck
  await drained();
  const log = fs.readFileSync(path.join(DIR, 'postgres.log'), 'utf8');
  assert.doesNotMatch(log, /PANIC|server process .* was terminated/, 'the server log shows no crash');
});
