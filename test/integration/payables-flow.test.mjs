// Payables end to end, through the real S3 path (emulator, SigV4, sync):
// the real legacy sample, generated months with AWS Marketplace sellers in
// both layouts, a preliminary month turning final, and the approval lock
// across a re-delivery.  Every expected figure comes from the CSV or from the
// generator's expected JSON, summed exactly in Node (never floats), so the
// extension's arithmetic is checked against an independent computation.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  closeAll, freshDatabase, expectError, generate, bucketDir, S3, S3_ROOT, RUN, SHARED, ROOT,
  SCALE, toScaled, decimalSum, decimalToString, normNumeric,
  roundCents, cents, sumOf,
} from './helpers.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { parse: parseCsv } = require('csv-parse/sync');

const SAMPLE = process.env.BILLOPS_SAMPLE || path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const EXPECTED_DIR = path.join(RUN, 'payables-flow');
const SELLERS = ['Datadog, Inc.', 'Snowflake Inc.', 'MongoDB, Inc.', 'Confluent, Inc.', 'Elasticsearch, Inc.',
  'CrowdStrike, Inc.'];

after(async () => { await closeAll(); });

// --- S3 and the generator -----------------------------------------------------

// Each test starts from an empty bucket: a rerun on the same cluster must not
// pick up an older delivery that a previous run left behind.
function freshBucket(name) {
  fs.rmSync(path.join(S3_ROOT, name), { recursive: true, force: true });
  return bucketDir(name);
}

// A month of several payers is one report per payer, as AWS writes them
// (bill/PayerAccountId is the management account): report `<report>-<k>`
// holds payer k's rows, payer 1 the most.  The expected totals returned are
// the reports' together; `reports` has each report's payer and last delivery.
function genMonth({ bucket, report, layout, period, seed, rows = 30000, payers = 2, deliveries, delivery, final }) {
  fs.mkdirSync(EXPECTED_DIR, { recursive: true });
  const reports = [];
  const exp = { args: { period }, payers: {}, reports };
  for (let k = 1; k <= payers; k++) {
    const name = `${report}-${k}`;
    const file = path.join(EXPECTED_DIR, `${name}-${layout}-${deliveries ?? 1}-${delivery ?? 'all'}.json`);
    generate(['--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', name, '--layout', layout,
      '--period', period, '--rows', String(Math.round(rows * (k === 1 ? 2 : 1) / (payers + 1))), '--payer', String(k),
      '--seed', seed, '--quiet', '--expected', file,
      ...(deliveries ? ['--deliveries', String(deliveries)] : []),
      ...(delivery ? ['--delivery', String(delivery)] : []),
      ...(final ? ['--final'] : [])]);
    const e = JSON.parse(fs.readFileSync(file, 'utf8'));
    Object.assign(exp.payers, e.payers);
    reports.push({ report: name, layout, payer: Object.keys(e.payers)[0], last: e.last });
  }
  exp.final = reports.every((r) => r.last.final);
  exp.assemblyOf = (payer) => reports.find((r) => r.payer === payer).last.assemblyId;
  return exp;
}

async function createSource(db, name, bucket, report, layout) {
  await db.query(`SELECT billops.create_cur_source($1, $2, $3, layout => $4, prefix => 'cur',
                  credentials => 'default', endpoint_url => $5, path_style => true)`,
  [name, bucket, report, layout, S3]);
}

// One source per report of a generated month, named after the report.
async function createSources(db, exp, bucket) {
  for (const r of exp.reports) await createSource(db, r.report, bucket, r.report, r.layout === 'legacy' ? 'legacy_cur' : 'cur2');
}

// Sync every report of a generated month; the assemblies loaded, in report order.
async function syncAll(db, exp) {
  const loaded = [];
  for (const r of exp.reports) loaded.push(await sync(db, r.report));
  return loaded;
}

async function sync(db, name) {
  await db.query('CALL billops.sync_cur_source($1)', [name]);
  const { rows } = await db.query(
    `SELECT d.status, d.assembly_id FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
      WHERE s.name = $1 ORDER BY d.delivery_id DESC LIMIT 1`, [name]);
  assert.equal(rows[0]?.status, 'loaded', `the sync of ${name} loaded its delivery`);
  return rows[0].assembly_id;
}

// --- payables -------------------------------------------------------------------

async function build(db) {
  const { rows } = await db.query('SELECT * FROM billops.build_payables()');
  return rows.map((r) => ({ ...r, payable_id: String(r.payable_id) }));
}

async function payables(db, period) {
  const { rows } = await db.query(
    `SELECT payable_id::text, payer_account_id, billing_period::text, charge_source, dedupe_key, category,
            source_entity, treatment, vendor_id, status, amount::text, exact_amount::text,
            line_item_count::int, content_hash, invoice_state, aws_invoice_ids, assembly_id, exceptions
       FROM billops.payable WHERE billing_period = $1 ORDER BY payable_id`, [period]);
  return rows;
}

// What the lock and idempotency protect, comparable with deepEqual.
async function snapshot(db) {
  const { rows } = await db.query(
    `SELECT payable_id::text, amount::text, content_hash, status FROM billops.payable ORDER BY payable_id`);
  return rows;
}

async function count(db, sql, params = []) {
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM (${sql}) x`, params);
  return rows[0].n;
}

// Every payable: amount is its exact amount rounded to the cent, and its
// lines add up to it to the cent (and exactly, before rounding).
async function assertAmountsAndLines(db, period) {
  for (const p of await payables(db, period))
    assert.equal(normNumeric(p.amount), cents(p.exact_amount), `${p.dedupe_key}: amount = round(exact_amount, 2)`);
  const { rows } = await db.query(
    `SELECT p.dedupe_key, p.amount::text, p.exact_amount::text, p.line_item_count::int AS n,
            count(l.line_id)::int AS lines, array_agg(l.amount::text) AS amounts,
            array_agg(l.exact_amount::text) AS exacts, coalesce(sum(l.line_item_count), 0)::int AS line_n
       FROM billops.payable p LEFT JOIN billops.payable_line l USING (payable_id)
      WHERE p.billing_period = $1 GROUP BY p.payable_id ORDER BY p.payable_id`, [period]);
  for (const r of rows) {
    assert.ok(r.lines > 0, `${r.dedupe_key} has lines`);
    assert.equal(sumOf(r.amounts), normNumeric(r.amount), `${r.dedupe_key}: lines add up to the amount to the cent`);
    assert.equal(sumOf(r.exacts), normNumeric(r.exact_amount), `${r.dedupe_key}: lines add up to the exact amount`);
    assert.equal(r.line_n, r.n, `${r.dedupe_key}: lines cover every line item`);
  }
}

// The drill-down lists exactly the line items behind a payable and each line.
async function assertDrillDown(db, payableId) {
  const { rows: [p] } = await db.query(
    'SELECT dedupe_key, exact_amount::text, line_item_count::int AS n FROM billops.payable WHERE payable_id = $1', [payableId]);
  const { rows: [all] } = await db.query(
    `SELECT count(*)::int AS n, coalesce(sum(line_item_unblended_cost), 0)::text AS total
       FROM billops.payable_line_items($1)`, [payableId]);
  assert.equal(all.n, p.n, `${p.dedupe_key}: drill-down rows`);
  assert.equal(normNumeric(all.total), normNumeric(p.exact_amount), `${p.dedupe_key}: drill-down total = exact_amount`);
  const { rows: lines } = await db.query(
    `SELECT l.line_key, l.exact_amount::text, l.line_item_count::int AS n, d.n AS got_n, d.total AS got
       FROM billops.payable_line l
       CROSS JOIN LATERAL (SELECT count(*)::int AS n, coalesce(sum(li.line_item_unblended_cost), 0)::text AS total
                             FROM billops.payable_line_items(l.payable_id, l.line_id) li) d
      WHERE l.payable_id = $1`, [payableId]);
  for (const l of lines) {
    assert.equal(l.got_n, l.n, `${p.dedupe_key} line ${l.line_key}: drill-down rows`);
    assert.equal(normNumeric(l.got), normNumeric(l.exact_amount), `${p.dedupe_key} line ${l.line_key}: drill-down total`);
  }
}

// The payables of a period against the generator's invoices: one Marketplace
// payable per seller invoice, and per AWS invoice a group of payables (usage,
// tax, credit, fee of that invoicing entity) that together make up the invoice.
// Nothing else may exist, and each payer's payables add up to its bill.
function assertMatchesInvoices(rows, exp, label) {
  const payers = Object.keys(exp.payers);
  for (const r of rows) assert.ok(payers.includes(r.payer_account_id), `${label}: ${r.dedupe_key} is of a generated payer`);
  for (const [payer, p] of Object.entries(exp.payers)) {
    const mine = rows.filter((r) => r.payer_account_id === payer);
    const covered = new Set();
    for (const inv of p.invoices) {
      const what = `${label}: payer ${payer}, ${inv.legalEntity ?? 'AWS'} invoice of ${inv.invoicingEntity}`;
      const group = inv.legalEntity
        ? mine.filter((r) => r.charge_source === `marketplace:${inv.legalEntity} via ${inv.invoicingEntity}`)
        : mine.filter((r) => r.category !== 'marketplace' && r.source_entity === inv.invoicingEntity);
      assert.ok(group.length > 0, `${what}: has a payable`);
      if (inv.legalEntity) {
        assert.equal(group.length, 1, `${what}: one payable per Marketplace invoice`);
        assert.equal(group[0].category, 'marketplace');
        assert.equal(group[0].source_entity, inv.legalEntity);
        assert.equal(group[0].treatment, 'invoice_like', `${what}: a Marketplace seller's invoice is a bill`);
        assert.equal(normNumeric(group[0].amount), cents(inv.unblendedCost), `${what}: amount`);
      } else {
        for (const r of group) {
          assert.ok(['aws_usage', 'tax', 'credit', 'fee'].includes(r.category), `${what}: ${r.charge_source} category`);
          assert.equal(r.charge_source, `${r.category}:${inv.invoicingEntity}`, `${what}: charge source`);
        }
      }
      assert.equal(sumOf(group.map((r) => r.exact_amount)), normNumeric(inv.unblendedCost), `${what}: exact amount`);
      assert.equal(group.reduce((a, r) => a + r.line_item_count, 0), inv.rows, `${what}: line items`);
      for (const r of group) {
        assert.deepEqual(r.aws_invoice_ids, inv.invoiceId ? [inv.invoiceId] : [], `${what}: ${r.charge_source} invoice ids`);
        assert.equal(r.invoice_state, inv.invoiceId ? 'final' : 'preliminary', `${what}: ${r.charge_source} invoice state`);
        assert.equal(r.dedupe_key, `${payer}|${exp.args.period}|${r.charge_source}`, `${what}: dedupe key`);
        covered.add(r.payable_id);
      }
    }
    assert.equal(covered.size, mine.length, `${label}: payer ${payer} has no payable outside its invoices`);
    assert.equal(sumOf(mine.map((r) => r.exact_amount)), normNumeric(p.unblendedCost), `${label}: payer ${payer} total`);
  }
}

async function vendorIds(db) {
  const { rows } = await db.query('SELECT name, vendor_id FROM billops.vendor');
  return Object.fromEntries(rows.map((r) => [r.name, r.vendor_id]));
}

// One vendor per Marketplace seller, under its own name.
async function addSellerVendors(db, sellers) {
  for (const s of sellers) {
    const { rows: [{ vendor_id: id }] } = await db.query(
      `INSERT INTO billops.vendor (name, kind) VALUES ($1, 'marketplace_seller') RETURNING vendor_id`, [s]);
    await db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) VALUES ($1, 'exact', $2)`, [id, s]);
  }
}

async function codeEverything(db) {
  await db.query(`INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100-cloud'), ('department', 'FINOPS')`);
}

// People for the default approver groups.  Roles are cluster-wide, so they
// are created only when missing (the file may run again on the same cluster).
const APPROVER = {
  billops_finance_review: 'it_pf_reviewer',
  billops_finops_owner: 'it_pf_finops',
  billops_finance_leadership: 'it_pf_leader',
};
async function createApprovers(db) {
  for (const [group, person] of Object.entries(APPROVER)) {
    await db.query(`DO $$ BEGIN
                      IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${person}') THEN CREATE ROLE ${person} NOLOGIN; END IF;
                    END $$`);
    await db.query(`GRANT ${group} TO ${person}`);
  }
}

// Approve a routed payable step by step, each step by a member of the role
// it is assigned to (one person per step: segregation of duties).
async function approveFully(db, payableId) {
  for (let round = 0; round < 4; round++) {
    const { rows: [p] } = await db.query('SELECT status, dedupe_key FROM billops.payable WHERE payable_id = $1', [payableId]);
    if (p.status === 'approved') return;
    assert.equal(p.status, 'routed', `${p.dedupe_key} waits for approval`);
    const { rows: steps } = await db.query(
      `SELECT approver_role FROM billops.approval_queue WHERE payable_id = $1 AND subject = 'payable'`, [payableId]);
    assert.ok(steps.length > 0, `${p.dedupe_key}: the approval queue shows its current step`);
    for (const s of steps) {
      const person = APPROVER[s.approver_role];
      assert.ok(person, `${p.dedupe_key}: a step for ${s.approver_role}, which has an approver here`);
      await db.query(`SET ROLE ${person}`);
      try {
        await db.query('SELECT billops.approve($1, $2)', [payableId, 'checked against the AWS invoice']);
      } finally {
        await db.query('RESET ROLE');
      }
    }
  }
  assert.fail(`payable ${payableId} is still not approved after every step`);
}

// ---------------------------------------------------------------------------

test('the real sample through S3: usage and tax payables whose amounts, lines and drill-down match the CSV', async () => {
  freshBucket('pf-sample');
  execFileSync('node', [path.join(ROOT, 'test/generator/stage-csv.mjs'), '--csv', SAMPLE, '--out', S3_ROOT,
    '--bucket', 'pf-sample', '--prefix', 'cur', '--report', 'sample', '--assembly', 'pf-sample-1'], { stdio: 'pipe' });
  const db = await freshDatabase('billops_it_pf_sample');
  await createSource(db, 'sample', 'pf-sample', 'sample', 'legacy_cur');
  await sync(db, 'sample');

  // the charge sources, from the CSV alone: Tax lines vs the rest, per invoicing entity
  const records = parseCsv(fs.readFileSync(SAMPLE), { columns: true });
  const payer = records[0]['bill/PayerAccountId'];
  const period = records[0]['bill/BillingPeriodStartDate'].slice(0, 10);
  const expected = new Map();
  for (const r of records) {
    // the sample is plain AWS usage and tax; anything else would need more than this split
    assert.equal(r['bill/PayerAccountId'], payer, 'one payer');
    assert.equal(r['bill/BillingEntity'], 'AWS', 'billed by AWS');
    assert.ok(['Usage', 'Tax'].includes(r['lineItem/LineItemType']), `usage or tax (${r['lineItem/LineItemType']})`);
    assert.equal(r['lineItem/LegalEntity'], r['bill/InvoicingEntity'], 'sold by the invoicing entity');
    assert.equal(r['bill/InvoiceId'], '', 'preliminary');
    const source = `${r['lineItem/LineItemType'] === 'Tax' ? 'tax' : 'aws_usage'}:${r['bill/InvoicingEntity']}`;
    const e = expected.get(source) ?? { entity: r['bill/InvoicingEntity'], costs: [] };
    e.costs.push(r['lineItem/UnblendedCost']);
    expected.set(source, e);
  }
  assert.deepEqual([...expected.keys()].sort(),
    ['aws_usage:Amazon Web Services Canada, Inc.', 'tax:Amazon Web Services Canada, Inc.'], 'the sample holds these sources');

  const first = await build(db);
  let rows = await payables(db, period);
  assert.deepEqual(rows.map((r) => r.charge_source).sort(), [...expected.keys()].sort(), 'one payable per charge source');
  assert.deepEqual(first.map((a) => `${a.payable_id}:${a.action}`).sort(), rows.map((r) => `${r.payable_id}:created`).sort(),
    'the build reports each payable once, as created (nothing is routed)');
  const vendors = await vendorIds(db);
  for (const r of rows) {
    const e = expected.get(r.charge_source);
    assert.equal(r.dedupe_key, `${payer}|${period.slice(0, 7)}|${r.charge_source}`, 'dedupe key');
    assert.equal(r.category, r.charge_source.split(':')[0]);
    assert.equal(r.treatment, 'usage_summary', `${r.charge_source}: acknowledged, not paid`);
    assert.equal(r.vendor_id, vendors[e.entity], `${r.charge_source}: the seeded AWS vendor`);
    assert.equal(normNumeric(r.exact_amount), decimalToString(decimalSum(e.costs)), `${r.charge_source}: exact amount = CSV sum`);
    assert.equal(normNumeric(r.amount), decimalToString(roundCents(decimalSum(e.costs))), `${r.charge_source}: amount = CSV sum to the cent`);
    assert.equal(r.line_item_count, e.costs.length, `${r.charge_source}: line items`);
    assert.equal(r.invoice_state, 'preliminary');
    assert.deepEqual(r.aws_invoice_ids, []);
    assert.equal(r.assembly_id, 'pf-sample-1');
  }
  await assertAmountsAndLines(db, period);
  for (const r of rows) await assertDrillDown(db, r.payable_id);

  // no coding rules yet: both wait in the exception queue, naming the fields
  const { rows: queue } = await db.query(
    `SELECT payable_id::text, reason_code, field FROM billops.exception_queue ORDER BY 1, 2, 3`);
  for (const r of rows) {
    assert.equal(r.status, 'exception', `${r.charge_source} is an exception without coding`);
    assert.deepEqual(queue.filter((q) => q.payable_id === r.payable_id).map((q) => `${q.reason_code}:${q.field}`),
      ['missing_coding:department', 'missing_coding:gl_account'], `${r.charge_source}: the queue names the missing fields`);
  }
  assert.equal(queue.length, 4, 'nothing else in the exception queue');

  // coding: one GL account, a department per usage account
  const accounts = [...new Set(records.map((r) => r['lineItem/UsageAccountId']))];
  await db.query(`INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100-cloud')`);
  await db.query(`INSERT INTO billops.coding_rule (field, value, usage_account_id)
                  SELECT 'department', 'DEPT-' || a, a FROM unnest($1::text[]) a`, [accounts]);
  const second = await build(db);
  const before = rows;
  rows = await payables(db, period);
  assert.deepEqual(rows.map((r) => r.payable_id), before.map((r) => r.payable_id), 'the same payables, updated in place');
  assert.deepEqual(second.map((a) => a.action), rows.map(() => 'updated'), 'each reported as updated, none routed');
  for (const r of rows) {
    assert.equal(r.status, 'draft', `${r.charge_source}: a draft once coded`);
    assert.equal(r.invoice_state, 'preliminary', `${r.charge_source}: still preliminary`);
    assert.deepEqual(r.exceptions, []);
    assert.equal(r.amount, before.find((b) => b.payable_id === r.payable_id).amount, 'coding does not change the amount');
  }
  assert.equal(await count(db, 'SELECT FROM billops.approval_step'), 0, 'preliminary payables are not routed');
  assert.equal(await count(db, 'SELECT FROM billops.exception_queue'), 0, 'the exception queue is empty');
  const { rows: coded } = await db.query(
    `SELECT l.gl_account, l.department, count(*)::int AS n FROM billops.payable_line l GROUP BY 1, 2`);
  for (const c of coded) {
    assert.equal(c.gl_account, '6100-cloud', 'every line has the GL account');
    assert.ok(accounts.map((a) => `DEPT-${a}`).includes(c.department), `department ${c.department} is an account's`);
  }
  await assertAmountsAndLines(db, period);
  for (const r of rows) await assertDrillDown(db, r.payable_id);

  const snap = await snapshot(db);
  assert.deepEqual((await build(db)).map((a) => a.action), rows.map(() => 'unchanged'), 'a rebuild changes nothing');
  assert.deepEqual(await snapshot(db), snap);
});

for (const layout of ['legacy', 'cur2']) {
  test(`Marketplace sellers, ${layout === 'legacy' ? 'legacy CUR' : 'CUR 2.0'}, final: one payable per AWS invoice, vendors by alias, idempotent`, async () => {
    const bucket = `pf-mp-${layout}`;
    freshBucket(bucket);
    const exp = genMonth({ bucket, report: 'mp', layout, period: '2024-04', seed: 'pf-mp', final: true });
    const period = '2024-04-01';
    const db = await freshDatabase(`billops_it_pf_mp_${layout}`);
    await createSources(db, exp, bucket);
    await syncAll(db, exp);

    // three sellers by each kind of alias; a decoy prefix that must not catch
    // CrowdStrike (a prefix matches whole words only); the rest unknown
    const vendor = {};
    for (const [name, seller, kind, pattern] of [
      ['Datadog', 'Datadog, Inc.', 'exact', 'DATADOG INC'],
      ['Snowflake Computing', 'Snowflake Inc.', 'prefix', 'snowflake'],
      ['MongoDB', 'MongoDB, Inc.', 'pattern', '^mongo ?db\\M'],
      ['Crowd Solutions', null, 'prefix', 'Crowd'],
    ]) {
      const { rows: [{ vendor_id: id }] } = await db.query(
        `INSERT INTO billops.vendor (name, kind) VALUES ($1, 'marketplace_seller') RETURNING vendor_id`, [name]);
      await db.query('INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) VALUES ($1, $2, $3)', [id, kind, pattern]);
      if (seller) vendor[seller] = id;
    }
    await codeEverything(db);
    const vendorsBefore = (await db.query('SELECT vendor_id, name FROM billops.vendor ORDER BY 1')).rows;
    const aws = await vendorIds(db);

    const first = await build(db);
    const rows = await payables(db, period);
    assert.deepEqual(first.filter((a) => a.action === 'created').map((a) => a.payable_id).sort(),
      rows.map((r) => r.payable_id).sort(), 'every payable reported as created');
    assertMatchesInvoices(rows, exp, layout);
    for (const p of Object.values(exp.payers))
      assert.deepEqual(new Set(p.invoices.map((i) => i.legalEntity).filter(Boolean)), new Set(SELLERS),
        'every seller has an invoice (else the vendor checks below prove less)');

    const { rows: queue } = await db.query(`SELECT payable_id::text, reason_code FROM billops.exception_queue`);
    for (const r of rows) {
      const inQueue = queue.filter((q) => q.payable_id === r.payable_id).map((q) => q.reason_code);
      if (r.category !== 'marketplace') {
        assert.equal(r.vendor_id, aws[r.source_entity], `${r.dedupe_key}: the AWS entity's seeded vendor`);
      } else if (vendor[r.source_entity]) {
        assert.equal(r.vendor_id, vendor[r.source_entity], `${r.dedupe_key}: vendor by alias`);
      } else {
        assert.equal(r.vendor_id, null, `${r.dedupe_key}: no vendor`);
        assert.equal(r.status, 'exception', `${r.dedupe_key}: an unknown seller is an exception`);
        assert.deepEqual(inQueue, ['unknown_vendor'], `${r.dedupe_key}: queued as unknown_vendor`);
        continue;
      }
      // known vendor, coded, final: ready, so routed
      assert.equal(r.status, 'routed', `${r.dedupe_key}: routed`);
      assert.deepEqual(inQueue, [], `${r.dedupe_key}: not in the exception queue`);
    }
    assert.deepEqual((await db.query('SELECT vendor_id, name FROM billops.vendor ORDER BY 1')).rows, vendorsBefore,
      'the build created no vendor');
    await assertAmountsAndLines(db, period);
    // the drill-down scans the payer's month per call: one Marketplace payable and one usage payable
    const biggest = (cat) => rows.filter((r) => r.category === cat).sort((a, b) => b.line_item_count - a.line_item_count)[0];
    await assertDrillDown(db, biggest('marketplace').payable_id);
    await assertDrillDown(db, biggest('aws_usage').payable_id);

    // idempotent: the same data and rules change nothing, not even the audit log
    const snap = await snapshot(db);
    const audit = await count(db, 'SELECT FROM billops.audit_log');
    const steps = await count(db, 'SELECT FROM billops.approval_step');
    for (const run of ['second', 'third']) {
      const again = await build(db);
      assert.deepEqual(again.map((a) => a.action), rows.map(() => 'unchanged'), `${run} build: only "unchanged"`);
      assert.deepEqual(await snapshot(db), snap, `${run} build: identical payables`);
      assert.equal(await count(db, 'SELECT FROM billops.audit_log'), audit, `${run} build: no audit entry`);
      assert.equal(await count(db, 'SELECT FROM billops.approval_step'), steps, `${run} build: no new approval step`);
    }
  });
}

test('preliminary, then final: payables are updated in place, get their invoice ids, and the ready ones are routed', async () => {
  const bucket = 'pf-final';
  freshBucket(bucket);
  const month = { bucket, report: 'monthly', layout: 'legacy', period: '2024-05', seed: 'pf-final', deliveries: 2 };
  const period = '2024-05-01';
  const e1 = genMonth({ ...month, delivery: 1 });
  assert.equal(e1.final, false, 'delivery 1 of 2 is preliminary');
  const db = await freshDatabase('billops_it_pf_final');
  await createSources(db, e1, bucket);
  await syncAll(db, e1);
  // every seller known but CrowdStrike: it must stay out of routing
  await addSellerVendors(db, SELLERS.filter((s) => s !== 'CrowdStrike, Inc.'));
  await codeEverything(db);

  await build(db);
  const prelim = await payables(db, period);
  assertMatchesInvoices(prelim, e1, 'preliminary');
  for (const r of prelim)
    assert.equal(r.status, r.source_entity === 'CrowdStrike, Inc.' ? 'exception' : 'draft', `${r.dedupe_key}: status`);
  assert.equal(await count(db, 'SELECT FROM billops.approval_step'), 0, 'nothing is routed on preliminary data');

  const e2 = genMonth({ ...month, delivery: 2, final: true });
  assert.equal(e2.final, true, 'delivery 2 of 2 is final');
  e2.reports.forEach((r, i) => assert.notEqual(r.last.assemblyId, e1.reports[i].last.assemblyId, `${r.report}: a new assembly`));
  await syncAll(db, e2);
  const { rows: st } = await db.query(
    `SELECT payer_account_id, invoice_state FROM billops.cur_period_status WHERE billing_period = $1`, [period]);
  assert.deepEqual(st.map((s) => s.invoice_state), st.map(() => 'final'), 'the loaded month is final');

  const actions = await build(db);
  const final = await payables(db, period);
  assertMatchesInvoices(final, e2, 'final');
  const bySource = new Map(prelim.map((r) => [r.dedupe_key, r]));
  let kept = 0;
  for (const r of final) {
    const old = bySource.get(r.dedupe_key);
    const did = actions.filter((a) => a.payable_id === r.payable_id).map((a) => a.action);
    if (old) {
      kept++;
      assert.equal(r.payable_id, old.payable_id, `${r.dedupe_key}: the same payable, updated in place`);
      assert.ok(did.includes('updated_final') || did.includes('updated'), `${r.dedupe_key}: reported as updated (${did})`);
    } else {
      assert.ok(did.includes('created'), `${r.dedupe_key}: new in the final delivery, so created`);
    }
    assert.equal(r.assembly_id, e2.assemblyOf(r.payer_account_id), `${r.dedupe_key}: built from the final delivery`);
    const { rows: [{ n: stepCount }] } = await db.query(
      'SELECT count(*)::int AS n FROM billops.approval_step WHERE payable_id = $1', [r.payable_id]);
    if (r.source_entity === 'CrowdStrike, Inc.') {
      assert.equal(r.status, 'exception', `${r.dedupe_key}: an unknown seller is not routed`);
      assert.equal(stepCount, 0, `${r.dedupe_key}: no approval steps`);
    } else {
      assert.equal(r.status, 'routed', `${r.dedupe_key}: final and ready, so routed`);
      assert.ok(did.includes('routed'), `${r.dedupe_key}: reported as routed`);
      assert.ok(stepCount > 0, `${r.dedupe_key}: has approval steps`);
    }
  }
  assert.equal(kept, prelim.length, 'every preliminary payable carried over to the final month');
  await assertAmountsAndLines(db, period);

  const routed = await count(db, `SELECT DISTINCT payable_id FROM billops.approval_queue`);
  assert.equal(routed, final.filter((r) => r.status === 'routed').length, 'each routed payable waits in the approval queue');
  const snap = await snapshot(db);
  const again = await build(db);
  assert.deepEqual(again.map((a) => a.action), final.map(() => 'unchanged'), 'a rebuild of the final month changes nothing');
  assert.deepEqual(await snapshot(db), snap);
});

test('an approved Marketplace payable stays frozen across a changed re-delivery; the change becomes an adjustment', async () => {
  const bucket = 'pf-lock';
  freshBucket(bucket);
  const month = { bucket, report: 'lock', layout: 'cur2', period: '2024-06', seed: 'pf-lock', final: true };
  const period = '2024-06-01';
  const e1 = genMonth({ ...month, deliveries: 1 });
  const db = await freshDatabase('billops_it_pf_lock');
  await createSources(db, e1, bucket);
  await syncAll(db, e1);
  await addSellerVendors(db, SELLERS);
  await codeEverything(db);
  await createApprovers(db);
  await build(db);
  const built = await payables(db, period);
  assertMatchesInvoices(built, e1, 'first delivery');

  // approve every Marketplace payable of the first payer; the second payer's stay routed
  const [payerA, payerB] = Object.keys(e1.payers);
  const mine = built.filter((r) => r.payer_account_id === payerA && r.category === 'marketplace');
  assert.ok(mine.every((r) => r.status === 'routed'), 'the Marketplace payables are routed');
  const su = await expectError(db, 'SELECT billops.approve($1)', [mine[0].payable_id]);
  assert.equal(su.code, 'BO003', 'a superuser is not an approver');
  for (const r of mine) await approveFully(db, r.payable_id);
  const approved = new Map((await payables(db, period)).filter((r) => r.status === 'approved').map((r) => [r.payable_id, r]));
  assert.deepEqual([...approved.keys()].sort(), mine.map((r) => r.payable_id).sort(), 'exactly those are approved');
  const { rows: linesBefore } = await db.query(
    `SELECT payable_id::text, line_id::text, amount::text, gl_account, department FROM billops.payable_line
      WHERE payable_id = ANY ($1::bigint[]) ORDER BY line_id`, [[...approved.keys()]]);
  const err = await expectError(db, 'UPDATE billops.payable SET amount = amount + 1 WHERE payable_id = $1', [mine[0].payable_id]);
  assert.equal(err.code, 'BO002', 'an approved payable refuses a direct change');

  // AWS re-delivers the month: another run (two deliveries), its last one final, with late credits
  const e2 = genMonth({ ...month, deliveries: 2, delivery: 2 });
  assert.deepEqual(await syncAll(db, e2), e2.reports.map((r) => r.last.assemblyId), 'the re-delivery is loaded');
  const invoiceOf = (exp, payer, source) => exp.payers[payer].invoices.find(
    (i) => i.legalEntity && source === `marketplace:${i.legalEntity} via ${i.invoicingEntity}`);

  const actions = await build(db);
  const rebuilt = await payables(db, period);
  const { rows: adjustments } = await db.query(
    `SELECT payable_id::text, status, previous_amount::text, new_amount::text, delta::text,
            new_state->>'exact_amount' AS new_exact, aws_invoice_ids
       FROM billops.payable_adjustment ORDER BY adjustment_id`);
  let changed = 0;
  for (const [id, was] of approved) {
    const now = rebuilt.find((r) => r.payable_id === id);
    const inv = invoiceOf(e2, payerA, was.charge_source);
    assert.ok(inv, `${was.dedupe_key}: still invoiced in the re-delivery`);
    assert.equal(now.status, 'approved', `${was.dedupe_key}: stays approved`);
    assert.equal(now.amount, was.amount, `${was.dedupe_key}: the approved amount is frozen`);
    assert.equal(now.exact_amount, was.exact_amount, `${was.dedupe_key}: the exact amount is frozen`);
    assert.equal(now.content_hash, was.content_hash, `${was.dedupe_key}: the content is frozen`);
    assert.deepEqual(now.aws_invoice_ids, [inv.invoiceId], `${was.dedupe_key}: the invoice id is still recorded`);
    const adj = adjustments.filter((a) => a.payable_id === id);
    const newAmount = cents(inv.unblendedCost);
    if (newAmount !== normNumeric(was.amount)) {
      changed++;
      assert.equal(adj.length, 1, `${was.dedupe_key}: one adjustment for the changed amount`);
      const a = adj[0];
      assert.ok(['draft', 'routed'].includes(a.status), `${was.dedupe_key}: the adjustment is open (${a.status})`);
      assert.equal(normNumeric(a.previous_amount), normNumeric(was.amount), `${was.dedupe_key}: previous amount = approved`);
      assert.equal(normNumeric(a.new_amount), newAmount, `${was.dedupe_key}: new amount = new exact total to the cent`);
      assert.equal(normNumeric(a.delta), decimalToString(toScaled(newAmount) - toScaled(was.amount)),
        `${was.dedupe_key}: delta = new amount - approved amount`);
      assert.equal(normNumeric(a.new_exact), normNumeric(inv.unblendedCost), `${was.dedupe_key}: the adjustment carries the new exact total`);
      assert.deepEqual(a.aws_invoice_ids, [inv.invoiceId], `${was.dedupe_key}: and the invoice it comes from`);
      assert.ok(actions.some((x) => x.payable_id === id && x.action === 'adjustment_created'),
        `${was.dedupe_key}: reported as adjustment_created`);
    } else {
      assert.equal(adj.length, 0, `${was.dedupe_key}: the same amount needs no adjustment`);
    }
  }
  assert.ok(changed > 0, 'the re-delivery changed at least one approved Marketplace payable (else choose another seed)');
  assert.equal(new Set(adjustments.map((a) => a.payable_id)).size, adjustments.length, 'at most one adjustment per payable');
  assert.ok(adjustments.every((a) => approved.has(a.payable_id)), 'adjustments only for approved payables');
  const { rows: linesAfter } = await db.query(
    `SELECT payable_id::text, line_id::text, amount::text, gl_account, department FROM billops.payable_line
      WHERE payable_id = ANY ($1::bigint[]) ORDER BY line_id`, [[...approved.keys()]]);
  assert.deepEqual(linesAfter, linesBefore, 'the approved payables\' lines are untouched');

  // a payable nobody approved yet simply follows AWS, in place; a change
  // withdraws the pending steps (nobody approves figures they did not see)
  // and routes it again
  let followed = 0;
  for (const r of rebuilt.filter((x) => x.payer_account_id === payerB && x.category === 'marketplace')) {
    const was = built.find((b) => b.payable_id === r.payable_id);
    const inv = invoiceOf(e2, payerB, r.charge_source);
    assert.ok(was, `${r.dedupe_key}: the same payable as before`);
    assert.equal(normNumeric(r.exact_amount), normNumeric(inv.unblendedCost), `${r.dedupe_key}: follows the re-delivery`);
    assert.equal(r.status, 'routed', `${r.dedupe_key}: routed`);
    if (r.content_hash === was.content_hash) continue;
    followed++;
    const { rows: steps } = await db.query(
      `SELECT routing_round, status FROM billops.approval_step WHERE payable_id = $1 AND adjustment_id IS NULL`, [r.payable_id]);
    const first = Math.min(...steps.map((s) => s.routing_round));
    assert.ok(steps.filter((s) => s.routing_round === first).every((s) => s.status === 'superseded'),
      `${r.dedupe_key}: the steps of the old figures are superseded`);
    assert.ok(steps.some((s) => s.routing_round > first && s.status === 'pending'), `${r.dedupe_key}: routed again`);
  }
  assert.ok(followed > 0, 'the re-delivery changed an unapproved Marketplace payable too (else choose another seed)');

  const snap = await snapshot(db);
  const again = await build(db);
  assert.ok(again.every((a) => a.action === 'unchanged'), `a rebuild changes nothing (${[...new Set(again.map((a) => a.action))]})`);
  assert.deepEqual(await snapshot(db), snap);
  assert.equal(await count(db, 'SELECT FROM billops.payable_adjustment'), adjustments.length, 'no second adjustment');
});

// The planner cannot see that a line item's dozen grouping attributes are correlated: it
// estimates a month's groups at a tenth of its rows.  Once that estimate outgrows the build's
// memory it would sort the whole month on disk (at 4.94 M line items: 31 s instead of 9 s).
// Here the build's work_mem is scaled down with the month (45,000 line items, 64 kB) so the
// estimate does not fit (without the build's enable_sort = off the plan is then a sort of the
// month on disk, 8 MB); the build's own plans, through auto_explain, show how it grouped, and
// the payables match the invoices all the same.
test('a month whose groups the planner overestimates is grouped by hashing, not sorted on disk', async () => {
  const bucket = 'pf-plan';
  freshBucket(bucket);
  const e = genMonth({ bucket, report: 'plan', layout: 'cur2', period: '2024-07', seed: 'pf-plan', rows: 45000, payers: 1, final: true });
  const db = await freshDatabase('billops_it_pf_plan');
  await createSources(db, e, bucket);
  await syncAll(db, e);
  await db.query('ANALYZE billops.cur_line_item');
  await addSellerVendors(db, SELLERS);
  await codeEverything(db);
  await db.query(`ALTER FUNCTION billops.build_payables(date, text) SET work_mem = '64kB'`);
  const notices = [];
  db.on('notice', (n) => notices.push(n.message));
  await db.query(`LOAD 'auto_explain'`);
  for (const s of ['auto_explain.log_min_duration = 0', 'auto_explain.log_nested_statements = on',
    'auto_explain.log_analyze = on', 'auto_explain.log_level = notice', 'client_min_messages = notice'])
    await db.query(`SET ${s}`);
  await build(db);
  await db.query('SET auto_explain.log_min_duration = -1');
  const facts = notices.find((m) => m.includes('CREATE TEMP TABLE billops_fact'));
  assert.ok(facts, 'auto_explain showed the plan of the build\'s grouping of the line items');
  const plan = facts.slice(facts.indexOf('\n', facts.lastIndexOf('JOIN accounts a')));
  // the node that groups the line items: the aggregate right above their scan
  const m = plan.match(/->\s+(\w+)\s+\(cost=[\d.]+\.\.[\d.]+ rows=(\d+) [^)]*\) \(actual time=[\d.]+\.\.[\d.]+ rows=(\d+)[^\n]*\n(?:[^\n]*\n)*?\s+->\s+(?:Sort\s|Seq Scan on cur_line_item|Append)/);
  assert.ok(m, `the aggregate over the line items is in the plan:\n${plan}`);
  const [, node, estimated, actual] = m;
  assert.ok(Number(estimated) >= 5 * Number(actual),
    `the premise: the planner overestimates the groups (estimated ${estimated}, actual ${actual})`);
  assert.equal(node, 'HashAggregate', `the month is grouped by hashing:\n${plan}`);
  assert.doesNotMatch(plan, /Sort Method: external/, 'nothing of the month is sorted on disk');
  assertMatchesInvoices(await payables(db, '2024-07-01'), e, 'plan');
  await db.query('ALTER FUNCTION billops.build_payables(date, text) RESET work_mem');
});
