// Bad input gets a clear error and loses nothing (issue 12): a catalog of what
// a spreadsheet, a hand edit or an AWS format change hands pg_billops.  Each
// case checks the SQLSTATE, the message and the error context (file, row,
// column), and that everything loaded before -- every delivery, every line
// item byte for byte, every payable and audit row -- is exactly as it was.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { freshDatabase, closeAll, one, RUN, ROOT, S3, S3_ROOT, SHARED, bucketDir } from './helpers.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { parse: parseCsv } = require('csv-parse/sync');
const SAMPLE = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const FOCUS = path.join(SHARED, 'testdata/focus/focus-1.0-sample.csv');
const LEGACY = 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost';
const CUR2 = 'bill_payer_account_id,bill_billing_period_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_unblended_cost';
let db;
let fileNo = 0;

// A file the server can read.
function file(lines) {
  const f = path.join(RUN, `bad-input-${process.pid}-${fileNo++}.csv`);
  // (a line may be a Buffer: bytes as they are, e.g. invalid UTF-8)
  fs.writeFileSync(f, Buffer.concat(lines.flatMap((l) => [Buffer.isBuffer(l) ? l : Buffer.from(l), Buffer.from('\n')])), { mode: 0o644 });
  fs.chmodSync(f, 0o644);
  return f;
}
const load = (f, source = 'bad-input') => db.query(`SELECT billops.load_cur_file($1, $2)`, [f, source]);

// Everything a bad load could damage.
async function fingerprint() {
  const q = async (sql) => (await db.query(`SELECT coalesce(json_agg(x)::text, '[]') AS j FROM (${sql}) x`)).rows[0].j;
  return {
    // (a refused delivery is recorded as failed: the history grows, what was loaded does not change)
    deliveries: await q(`SELECT delivery_id, source_id, billing_period, assembly_id, status, rows_loaded FROM billops.cur_delivery
                          WHERE status <> 'failed' ORDER BY 1`),
    partitions: await q(`SELECT source_id, billing_period, payer_account_id, delivery_id FROM billops.cur_partition ORDER BY 1, 2, 3`),
    lines: await q(`SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) AS h, count(*) AS n FROM billops.cur_line_item t`),
    payables: await q(`SELECT md5(string_agg(p::text, '|' ORDER BY p.payable_id)) AS h FROM billops.payable p`),
    audit: await q(`SELECT count(*) AS n, max(audit_id) AS last FROM billops.audit_log`),
    focus: await q(`SELECT md5(string_agg(f::text, '|' ORDER BY f::text)) AS h, count(*) AS n FROM billops.focus_line_item f`),
    focus_partitions: await q(`SELECT period_start, billing_account_id, source_id, delivery_id FROM billops.focus_partition ORDER BY 1, 2`),
  };
}

let baseline;
// What the cases must never touch, however many of them ran: the line items of the payers loaded
// first, the payables built from them, and the FOCUS sample.
const untouched = async () => (await db.query(
  `SELECT (SELECT md5(string_agg(t::text, '|' ORDER BY t::text)) FROM billops.cur_line_item t
            WHERE t.bill_payer_account_id IN (SELECT DISTINCT bill_payer_account_id FROM billops.cur_line_item
                                               WHERE bill_billing_period_start_date IN ('2023-10-01', '2023-11-01')
                                                 AND bill_payer_account_id NOT IN ('444444444444', '555555555555'))) AS lines,
          (SELECT md5(string_agg(p::text, '|' ORDER BY p.payable_id)) FROM billops.payable p) AS payables,
          (SELECT md5(string_agg(f::text, '|' ORDER BY f::text)) FROM billops.focus_line_item f) AS focus`)).rows[0];
let untouchedAtStart;
before(async () => {
  db = await freshDatabase('billops_bad_input');
  await db.query('SET client_min_messages = warning');
  // good data first: October of payer 111111111111 (3 rows, 60.00), the real November sample, payables
  await load(file([LEGACY, ...['10.00', '20.00', '30.00'].map((c) => `111111111111,2023-10-01T00:00:00Z,222222222222,Usage,${c}`)]));
  await load(SAMPLE, 'sample');
  await db.query(`SELECT billops.load_focus_file($1)`, [FOCUS]);
  await db.query('SELECT count(*) FROM billops.build_payables()');
  baseline = await fingerprint();
  untouchedAtStart = await untouched();
  assert.match(baseline.lines, /"n":1284/, 'the baseline holds October (3 rows) and the sample (1,281 rows)');
});
after(() => closeAll());

// One case: the load fails with this SQLSTATE and message, its context locates
// the value, and nothing loaded before changed.
async function refused(t, what, sql, params, { code, message, context }) {
  const before = await fingerprint();
  let err;
  try {
    await db.query(sql, params);
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: refused`);
  assert.equal(err.code, code, `${what}: SQLSTATE ${code} (got ${err.code}: ${err.message})`);
  assert.match(err.message, message, `${what}: the message says what is wrong`);
  if (context) assert.match(err.where ?? '', context, `${what}: the context locates it (${err.where})`);
  assertNoInternals(err.where, what);
  assert.deepEqual(await fingerprint(), before, `${what}: everything loaded before is as it was`);
  t.diagnostic(`${what}: ${err.code} ${err.message.slice(0, 200)}`);
}
// A context shows where the input is wrong, never our internals: no statement
// we run and no private routine's frame (the public function called may show).
function assertNoInternals(context, what) {
  assert.doesNotMatch(context ?? '', /SQL statement "|SQL function "|PL\/pgSQL function billops\._/,
    `${what}: no internal statement or routine in the context (${context})`);
}
// The real sample's data rows, as CSV lines, with another payer.
function sampleRowsOf(payer) {
  const payerAt = fs.readFileSync(SAMPLE, 'utf8').split('\n')[0].split(',').indexOf('bill/PayerAccountId');
  const quote = (v) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return parseCsv(fs.readFileSync(SAMPLE), { from_line: 2 })
    .map((r) => r.map((v, i) => (i === payerAt ? payer : quote(v))).join(','));
}
const row = (payer, period, cost, extra = '') => `${payer},${period},222222222222,Usage,${cost}${extra}`;
const P = '111111111111';

const CASES = [
  ['NaN cost', [LEGACY, row(P, '2023-12-01T00:00:00Z', '1.00'), row(P, '2023-12-01T00:00:00Z', 'NaN')],
    { code: '22P02', message: /"NaN" is not a finite number/, context: /data row 2, column "lineItem\/UnblendedCost"/ }],
  ['Infinity cost', [LEGACY, row(P, '2023-12-01T00:00:00Z', 'Infinity')],
    { code: '22P02', message: /"Infinity" is not a finite number/, context: /data row 1, column "lineItem\/UnblendedCost"/ }],
  ['-inf cost', [LEGACY, row(P, '2023-12-01T00:00:00Z', '-inf')],
    { code: '22P02', message: /"-inf" is not a finite number/, context: /column "lineItem\/UnblendedCost"/ }],
  ['a cost with a decimal comma', [LEGACY, row(P, '2023-12-01T00:00:00Z', '"12,50"')],
    { code: '22P02', message: /./, context: /data row 1/ }],
  ['period not on the 1st', [LEGACY, row(P, '2022-05-15T00:00:00Z', '1.00')],
    { code: '22023', message: /billing period "2022-05-15T00:00:00Z" does not start on the first of a month/, context: /column "bill\/BillingPeriodStartDate"/ }],
  ['period not at midnight', [LEGACY, row(P, '2023-12-01T05:00:00Z', '1.00')],
    { code: '22023', message: /does not start on the first of a month/ }],
  ['period at midnight of another time zone', [LEGACY, row(P, '2023-12-01T00:00:00+05:00', '1.00')],
    { code: '22023', message: /does not start on the first of a month/ }],
  ['ambiguous period 01/11/2023', [LEGACY, row(P, '01/11/2023', '1.00')],
    { code: '22007', message: /"01\/11\/2023" is not a date or time in AWS's format/, context: /column "bill\/BillingPeriodStartDate"/ }],
  ['period 2023-11-01 written by a spreadsheet (11/1/2023 0:00)', [LEGACY, row(P, '11/1/2023 0:00', '1.00')],
    { code: '22007', message: /not a date or time in AWS's format/ }],
  ['usage start in a DateStyle-dependent form', [`${LEGACY},lineItem/UsageStartDate`, row(P, '2023-12-01T00:00:00Z', '1.00', ',12/01/2023 00:00')],
    { code: '22007', message: /"12\/01\/2023 00:00" is not a date or time in AWS's format/, context: /column "lineItem\/UsageStartDate"/ }],
  ['Excel-mangled payer 1.23457E+11', [LEGACY, row('1.23457E+11', '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P02', message: /"1.23457E\+11" is not an AWS account id/, context: /column "bill\/PayerAccountId"/ }],
  ['payer without its leading zero', [LEGACY, row('12345678901', '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P02', message: /"12345678901" is not an AWS account id/ }],
  ['payer with spaces', [LEGACY, row(' 111111111111', '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P02', message: /is not an AWS account id/ }],
  ['a 3 MB payer id', [LEGACY, row('1'.repeat(3 * 1024 * 1024), '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P02', message: /^"1{40}…" is not an AWS account id$/ }],
  ['duplicate tag header', [`${LEGACY},resourceTags/user:Owner,resourceTags/user:Owner`, row(P, '2023-12-01T00:00:00Z', '1.00', ',alice,bob')],
    { code: '22P04', message: /two columns for the key "user:Owner"/ }],
  ['duplicate unknown column', [`${LEGACY},custom/Thing,custom/Thing`, row(P, '2023-12-01T00:00:00Z', '1.00', ',a,b')],
    { code: '22P04', message: /two columns for the column "custom\/Thing"/ }],
  ['CUR 2.0 tags that are an array', [`${CUR2},resource_tags`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,"[1,2,3]"`],
    { code: '22P02', message: /a map column must hold a JSON object/, context: /column "resource_tags"/ }],
  ['CUR 2.0 tags with a number', [`${CUR2},resource_tags`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,"{""user_owner"": 1}"`],
    { code: '22P02', message: /a map column must hold a JSON object of strings/ }],
  ['CUR 2.0 tags nested', [`${CUR2},resource_tags`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,"{""a"": {""b"": ""c""}}"`],
    { code: '22P02', message: /a map column must hold a JSON object of strings/ }],
  ['CUR 2.0 product that is a string', [`${CUR2},product`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,"""AmazonEC2"""`],
    { code: '22P02', message: /a map column must hold a JSON object/ }],
  // what a spreadsheet or a hand edit does to amounts and dates
  ['a cost with a thousands separator', [LEGACY, row(P, '2023-12-01T00:00:00Z', '"1,234.50"')],
    { code: '22P02', message: /invalid input syntax for type numeric: "1,234.50"/, context: /column "lineItem\/UnblendedCost"/ }],
  ['a cost with a currency sign', [LEGACY, row(P, '2023-12-01T00:00:00Z', '$12.00')],
    { code: '22P02', message: /invalid input syntax for type numeric/, context: /data row 1, column "lineItem\/UnblendedCost"/ }],
  ['a cost with two decimal points', [LEGACY, row(P, '2023-12-01T00:00:00Z', '1.2.3')],
    { code: '22P02', message: /invalid input syntax for type numeric/ }],
  ['a month 13', [LEGACY, row(P, '2023-13-01T00:00:00Z', '1.00')],
    { code: '22008', message: /out of range/, context: /column "bill\/BillingPeriodStartDate"/ }],
  ['an hour 25', [`${LEGACY},lineItem/UsageStartDate`, row(P, '2023-12-01T00:00:00Z', '1.00', ',2023-12-01T25:00:00Z')],
    { code: '22008', message: /out of range/, context: /column "lineItem\/UsageStartDate"/ }],
  // what is not a CUR file at all, or not whole
  ['an empty file', [''], { code: '22P04', message: /./ }],
  ['a header without the cost column', ['bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId', `${P},2023-12-01T00:00:00Z,222222222222`],
    { code: '22P04', message: /lacks the required column/ }],
  ['a row with a field too many', [LEGACY, `${row(P, '2023-12-01T00:00:00Z', '1.00')},extra`],
    { code: '22P04', message: /./, context: /data row 1/ }],
  ['a row without its payer', [LEGACY, row('', '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P04', message: /row has no payer account id/ }],
  ['a row without its period', [LEGACY, row(P, '', '1.00')],
    { code: '22P04', message: /row has no billing period start date/ }],
  ['invalid UTF-8', [`${LEGACY},lineItem/LineItemDescription`,
    Buffer.concat([Buffer.from(row(P, '2023-12-01T00:00:00Z', '1.00', ',caf')), Buffer.from([0xe9])])],
    { code: '22021', message: /./ }],
  // CUR 2.0 map columns that are not JSON objects
  ['CUR 2.0 tags that are not JSON', [`${CUR2},resource_tags`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,{a:1}`],
    { code: '22P02', message: /invalid input syntax for type json/, context: /column "resource_tags"/ }],
  ['CUR 2.0 tags that are JSON null', [`${CUR2},resource_tags`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,null`],
    { code: '22P02', message: /a map column must hold a JSON object/ }],
  ['a period written as a month name', [LEGACY, row(P, '"Nov 1, 2023"', '1.00')],
    { code: '22007', message: /"Nov 1, 2023" is not a date or time in AWS's format/ }],
  ['a period of only a year and month', [LEGACY, row(P, '2023-11', '1.00')],
    { code: '22007', message: /"2023-11" is not a date or time in AWS's format/ }],
  ['a payer of letters', [LEGACY, row('abcdefghijkl', '2023-12-01T00:00:00Z', '1.00')],
    { code: '22P02', message: /"abcdefghijkl" is not an AWS account id/ }],
  ['a cost too large for any number', [LEGACY, row(P, '2023-12-01T00:00:00Z', '1e400000')],
    { code: '22003', message: /./, context: /column "lineItem\/UnblendedCost"/ }],
  ['NaN usage amount', [`${LEGACY},lineItem/UsageAmount`, row(P, '2023-12-01T00:00:00Z', '1.00', ',NaN')],
    { code: '22P02', message: /"NaN" is not a finite number/, context: /column "lineItem\/UsageAmount"/ }],
  ['a usage start on a day that does not exist', [`${LEGACY},lineItem/UsageStartDate`, row(P, '2023-12-01T00:00:00Z', '1.00', ',2023-02-30T00:00:00Z')],
    { code: '22008', message: /out of range/, context: /column "lineItem\/UsageStartDate"/ }],
  ['a usage start with an offset out of range', [`${LEGACY},lineItem/UsageStartDate`, row(P, '2023-12-01T00:00:00Z', '1.00', ',2023-12-01T00:00:00+99:00')],
    { code: '22009', message: /./, context: /column "lineItem\/UsageStartDate"/ }],
  // AWS writes one payer's month per report: a row of another payer or month would replace its data
  ['a file of two payers', [LEGACY, row('333333333333', '2023-12-01T00:00:00Z', '1.00'), row(P, '2023-12-01T00:00:00Z', '0.01')],
    { code: '22000', message: /row of payer 111111111111 in a delivery of payer 333333333333/, context: /data row 2, column "bill\/PayerAccountId"/ }],
  ['a local file of two months', [LEGACY, row(P, '2023-12-01T00:00:00Z', '1.00'), row(P, '2023-10-01T00:00:00Z', '0.01')],
    { code: '22000', message: /row of billing period 2023-10-01 in a delivery of billing period 2023-12-01/, context: /data row 2, column "bill\/BillingPeriodStartDate"/ }],
  ['CUR 2.0 cost category that is a number', [`${CUR2},cost_category`, `${P},2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,42`],
    { code: '22P02', message: /a map column must hold a JSON object/ }],
];

for (const [what, lines, expect] of CASES) {
  test(`refused, nothing changed: ${what}`, async (t) => {
    await refused(t, what, `SELECT billops.load_cur_file($1, 'bad-input')`, [file(lines)], expect);
  });
}

test('a CUR 2.0 discount map of numbers loads (map<string,double> in AWS\'s data dictionary)', async () => {
  await load(file([`${CUR2},discount`, `333333333333,2023-12-01T00:00:00.000Z,222222222222,Usage,1.00,"{""bundled_discount"": -0.25}"`]), 'discount');
  const r = await one(db, `SELECT discount FROM billops.cur_line_item WHERE bill_payer_account_id = '333333333333'`);
  assert.deepEqual(r.discount, { bundled_discount: -0.25 });
});

// (these loads are of payers of their own: the payers loaded first must stay untouched)
test('after a refused mid-month period, the month is not blocked: a correct May file from another source loads', async () => {
  const P = '888888888888';
  await assert.rejects(load(file([LEGACY, row(P, '2022-05-15T00:00:00Z', '1.00')]), 'may-a'), { code: '22023' });
  await load(file([LEGACY, row(P, '2022-05-01T00:00:00Z', '2.00')]), 'may-b');
  const r = await one(db, `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS s FROM billops.cur_line_item
                           WHERE bill_payer_account_id = $1 AND bill_billing_period_start_date = '2022-05-01'`, [P]);
  assert.deepEqual(r, { n: 1, s: '2.00' });
});

test('the same file loads the same under any DateStyle and TimeZone (AWS\'s ISO 8601 only)', async () => {
  const P = '999999999999';
  const lines = [`${LEGACY},lineItem/UsageStartDate`, row(P, '2022-06-01T00:00:00Z', '1.00', ',2022-06-02T03:00:00Z')];
  const seen = [];
  for (const [style, zone, source] of [['SQL, DMY', 'Asia/Kolkata', 'ds-a'], ['ISO, MDY', 'America/New_York', 'ds-a']]) {
    await db.query(`SET DateStyle = '${style}'`);
    await db.query(`SET TimeZone = '${zone}'`);
    await load(file(lines), source);
    await db.query('RESET DateStyle; RESET TimeZone');
    seen.push(await one(db, `SELECT bill_billing_period_start_date::text AS period, extract(epoch FROM line_item_usage_start_date)::text AS start
                              FROM billops.cur_line_item WHERE bill_payer_account_id = $1 AND bill_billing_period_start_date = '2022-06-01'`, [P]));
  }
  assert.deepEqual(seen[0], { period: '2022-06-01', start: String(Date.UTC(2022, 5, 2, 3) / 1000) + '.000000' });
  assert.deepEqual(seen[1], seen[0]);
});

test('two payers\' reports loaded into one source: each replaces its own payer\'s month only', async () => {
  const month = (payer) => one(db, `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS s FROM billops.cur_line_item
                                     WHERE bill_payer_account_id = $1 AND bill_billing_period_start_date = '2024-01-01'`, [payer]);
  await load(file([LEGACY, row('666666666666', '2024-01-01T00:00:00Z', '5.00'), row('666666666666', '2024-01-01T00:00:00Z', '6.00')]), 'two-payers');
  await load(file([LEGACY, row('777777777777', '2024-01-01T00:00:00Z', '7.00')]), 'two-payers');
  assert.deepEqual(await month('666666666666'), { n: 2, s: '11.00' }, 'the second payer\'s report left the first payer alone');
  // a restatement of the first payer replaces its month; the second payer's stays
  await load(file([LEGACY, row('666666666666', '2024-01-01T00:00:00Z', '4.00')]), 'two-payers');
  assert.deepEqual(await month('666666666666'), { n: 1, s: '4.00' });
  assert.deepEqual(await month('777777777777'), { n: 1, s: '7.00' });
});

test('an S3 delivery with a row of another month is refused; that month keeps its own delivery', async (t) => {
  // October's own delivery through S3 (3 rows), then November's: the real sample plus one October row
  const bucket = `bad-input-${process.pid}`;
  bucketDir(bucket);
  const stage = (csv, assembly) => execFileSync('node', [path.join(ROOT, 'test/generator/stage-csv.mjs'), '--csv', csv,
    '--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', 'hourly', '--assembly', assembly]);
  const header = fs.readFileSync(SAMPLE, 'utf8').split('\n')[0];
  const cols = header.split(',');
  const sampleRow = (payer, start, end, cost) => cols.map((c) => ({
    'bill/PayerAccountId': payer, 'bill/BillingPeriodStartDate': start, 'bill/BillingPeriodEndDate': end,
    'lineItem/UsageAccountId': payer, 'lineItem/LineItemType': 'Usage', 'lineItem/UnblendedCost': cost,
  })[c] ?? '').join(',');
  const octoberRow = (cost) => sampleRow('444444444444', '2023-10-01T00:00:00Z', '2023-11-01T00:00:00Z', cost);
  const october = file([header, octoberRow('10.00'), octoberRow('20.00'), octoberRow('30.00')]);
  stage(october, 'oct-1');
  await db.query(`SELECT billops.create_cur_source('bad-s3', $1, 'hourly', prefix => 'cur', credentials => 'default',
                  endpoint_url => $2, path_style => true)`, [bucket, S3]);
  await db.query(`CALL billops.sync_cur_source('bad-s3')`);
  const before = await fingerprint();
  // November of the same payer, with one October row at the end
  const sample = sampleRowsOf('444444444444');
  const november = file([header, ...sample, octoberRow('0.01')]);
  stage(november, 'nov-1');
  const err = await db.query(`CALL billops.sync_cur_source('bad-s3')`).then(() => null, (e) => e);
  const failed = await one(db, `SELECT d.status, d.error_sqlstate, d.error_message, d.error_context FROM billops.cur_delivery d
                                 JOIN billops.cur_source s USING (source_id) WHERE s.name = 'bad-s3' ORDER BY delivery_id DESC LIMIT 1`);
  t.diagnostic(`sync: ${err ? `${err.code} ${err.message}` : 'no error raised'}; delivery: ${JSON.stringify(failed)}`);
  assert.equal(failed.status, 'failed', 'November\'s delivery failed');
  assert.equal(failed.error_sqlstate, '22000');
  assert.match(failed.error_message, /row of billing period 2023-10-01 in a delivery of billing period 2023-11-01/);
  assert.match(failed.error_context, /data row 1282/, 'the context names the row');
  assertNoInternals(failed.error_context, 'the delivery\'s recorded error');
  const after = await fingerprint();
  assert.equal(after.lines, before.lines, 'every line item is as before: October still holds its own 3 rows');
  assert.equal(after.partitions, before.partitions);
  assert.equal((await one(db, `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS s FROM billops.cur_line_item
                                WHERE bill_payer_account_id = '444444444444' AND bill_billing_period_start_date = '2023-10-01'`)).s, '60.00');

  // November again, with a last row of payer 111111111111 (whose October the catalog's baseline holds)
  const otherPayer = sampleRow('111111111111', '2023-11-01T00:00:00Z', '2023-12-01T00:00:00Z', '0.01');
  stage(file([header, ...sample, otherPayer]), 'nov-2');
  await db.query(`CALL billops.sync_cur_source('bad-s3')`).catch(() => {});
  const refusedPayer = await one(db, `SELECT d.status, d.error_sqlstate, d.error_message, d.error_context FROM billops.cur_delivery d
                                       JOIN billops.cur_source s USING (source_id) WHERE s.name = 'bad-s3' ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(refusedPayer.status, 'failed', 'a delivery with a row of another payer failed');
  assert.equal(refusedPayer.error_sqlstate, '22000');
  assert.match(refusedPayer.error_message, /row of payer 111111111111 in a delivery of payer 444444444444/);
  assert.match(refusedPayer.error_context, /data row 1282, column "bill\/PayerAccountId"/);
  assertNoInternals(refusedPayer.error_context, 'the delivery\'s recorded error');
  assert.deepEqual(await fingerprint(), after, 'nothing changed: not payer 444444444444, not payer 111111111111');
});

test('S3 manifests that are not as AWS writes them are refused; the delivery loaded before stays', async (t) => {
  // a good November delivery of payer 555555555555 (the sample), and another report's files in the same bucket
  const bucket = `bad-manifest-${process.pid}`;
  bucketDir(bucket);
  const header = fs.readFileSync(SAMPLE, 'utf8').split('\n')[0];
  const rows = sampleRowsOf('555555555555');
  const csv = file([header, ...rows]);
  const stage = (report, assembly) => execFileSync('node', [path.join(ROOT, 'test/generator/stage-csv.mjs'), '--csv', csv,
    '--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', report, '--assembly', assembly], { encoding: 'utf8' }).trim();
  const goodKey = stage('hourly', 'good-1');
  const otherKey = stage('other', 'other-1');
  await db.query(`SELECT billops.create_cur_source('bad-manifest', $1, 'hourly', prefix => 'cur', credentials => 'default',
                  endpoint_url => $2, path_style => true)`, [bucket, S3]);
  await db.query(`CALL billops.sync_cur_source('bad-manifest')`);
  const before = await fingerprint();
  const topManifest = path.join(S3_ROOT, bucket, 'cur/hourly/20231101-20231201/hourly-Manifest.json');
  const good = JSON.parse(fs.readFileSync(topManifest, 'utf8'));
  const cases = [
    ['a key of another report', { reportKeys: [otherKey] }, /lists "cur\/other\/.*", which is not under the report's folder/],
    ['a key that climbs out of the folder', { reportKeys: [`cur/hourly/../other/${otherKey.split('/').slice(2).join('/')}`] }, /not under the report's folder/],
    ['a key listed twice', { reportKeys: [goodKey, goodKey] }, /lists a report file twice/],
    ['a numeric key', { reportKeys: [123] }, /: "reportKeys" is not an array of strings/],
    ['an assemblyId that is an object', { assemblyId: { id: 'x' } }, /: "assemblyId" is not a string/],
    ['a billingPeriod that is a string', { billingPeriod: '2023-10' }, /: "billingPeriod" is not an object with a "start" string/],
    ['a billingPeriod of another month', { billingPeriod: { start: '20231001T000000.000Z', end: '20231101T000000.000Z' } },
      /is for billing period 20231001T000000.000Z, but sits in the folder of 2023-11/],
    ['no assemblyId', { assemblyId: undefined }, /has no assemblyId/],
    ['no report files', { reportKeys: [] }, /lists no report files/],
    ['data files in another bucket', { reportKeys: undefined, dataFiles: [`s3://someone-elses-bucket/${goodKey}`] }, /names files in another bucket/],
    ['a ZIP delivery', { compression: 'ZIP' }, /is text\/csv ZIP, which pg_billops cannot load/, '0A000'],
    ['a manifest that says Parquet and lists gzip CSV', { contentType: 'application/x-parquet', compression: 'NONE' },
      /is Parquet but lists files that are not/],
    ['not JSON', '{"assemblyId": "x", "reportKeys": [', /is not valid JSON/, '22032'],
  ];
  for (const [what, change, message, code = '22000'] of cases) {
    fs.writeFileSync(topManifest, typeof change === 'string' ? change : JSON.stringify({ ...good, assemblyId: `bad-${what}`, ...change }));
    await db.query(`CALL billops.sync_cur_source('bad-manifest')`).catch(() => {});
    const d = await one(db, `SELECT d.status, d.error_sqlstate, d.error_message, d.error_context FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                              WHERE s.name = 'bad-manifest' ORDER BY delivery_id DESC LIMIT 1`);
    t.diagnostic(`${what}: ${d.status} ${d.error_sqlstate} ${d.error_message}`);
    assert.equal(d.status, 'failed', `${what}: refused`);
    assert.equal(d.error_sqlstate, code, `${what}: ${code}`);
    assert.match(d.error_message, message, `${what}: the message names the problem`);
    assertNoInternals(d.error_context, what);
    assert.deepEqual(await fingerprint(), before, `${what}: the delivery loaded before is as it was`);
  }
});

// FOCUS exports: the same account and period as the loaded sample (a load would replace them)
test('FOCUS exports with bad values are refused with line and column; the export loaded before stays', async (t) => {
  const k = await one(db, `SELECT "BillingAccountId" AS account, to_char("BillingPeriodStart" AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS period
                             FROM billops.focus_line_item LIMIT 1`);
  const head = 'BilledCost,BillingAccountId,BillingPeriodStart,ChargePeriodStart,Tags';
  const line = (cost, start, tags) => `${cost},${k.account},${k.period},${start},${tags}`;
  const ok = line('1.00', k.period, '"{""team"": ""a""}"');
  const cases = [
    ['Tags that are an array', [head, ok, line('1.00', k.period, '"[""a"",1]"')],
      { code: '22P02', message: /a map column must hold a JSON object/, context: /FOCUS file ".*", data row 2, column "Tags"/ }],
    ['Tags with a nested object', [head, line('1.00', k.period, '"{""a"": {""b"": 1}}"')],
      { code: '22P02', message: /a map column must hold a JSON object of scalar values/, context: /data row 1, column "Tags"/ }],
    ['a day that does not exist', [head, ok, ok, line('1.00', '2024-02-30T00:00:00Z', '')],
      { code: '22008', message: /"2024-02-30T00:00:00Z"/, context: /data row 3, column "ChargePeriodStart"/ }],
    ['an offset out of range', [head, line('1.00', '2024-09-01T00:00:00+99:00', '')],
      { code: '22009', message: /time zone displacement out of range/, context: /data row 1, column "ChargePeriodStart"/ }],
    ['a date a spreadsheet rewrote', [head, ok, line('1.00', '09/18/2024 22:00', '')],
      { code: '22007', message: /"09\/18\/2024 22:00" is not a date or time in ISO 8601 form/, context: /data row 2, column "ChargePeriodStart"/ }],
    ['a cost out of range', [head, ok, line('1e200000', k.period, '')],
      { code: '22003', message: /numeric/, context: /data row 2, column "BilledCost"/ }],
    ['a cost that is not a number', [head, ok, line('NaN', k.period, '')],
      { code: '22P02', message: /"NaN" is not a finite number/, context: /data row 2, column "BilledCost"/ }],
  ];
  for (const [what, lines, expect] of cases) {
    await refused(t, `FOCUS: ${what}`, 'SELECT billops.load_focus_file($1)', [file(lines)], expect);
  }
});

// last: the whole run, every case above in one cluster, left the first data as it was
test('the whole run: the data loaded before the first case is byte for byte as it was', async () => {
  assert.deepEqual(await untouched(), untouchedAtStart);
});
