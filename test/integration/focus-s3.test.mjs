// AWS's FOCUS export synced from S3 (the emulator, which verifies every SigV4 signature): the
// real FOCUS sample's AWS rows, byte for byte, in the Data Exports layout
// (test/generator/focus-delivery.mjs), read by the same streaming C loader as the CUR, and
// checked against DuckDB's reading of the same objects. A later execution replaces the month
// atomically; cut bodies are resumed; a damaged file, a row of another month and another source
// of the same account are refused with the month loaded before intact; the Parquet export gives
// exactly the CSV export's rows. Another provider's FOCUS files copied to S3 (layout 'focus_files')
// load object by object, each replacing the billing accounts' periods it holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import { connect, closeAll, freshDatabase, expectError, setFaults, clearFaults, generate, S3, S3_ROOT, ROOT, RUN, SHARED, one } from './helpers.mjs';
import { focusDelivery } from '../generator/focus-delivery.mjs';

const require = createRequire(path.join(ROOT, 'test/emulators/package.json'));
const BUCKET = 'focus-s3';
const SAMPLE = path.join(SHARED, 'testdata/focus/focus-1.0-sample.csv');
const deliver = (extra = {}) => focusDelivery({ csv: SAMPLE, root: S3_ROOT, bucket: BUCKET, export: 'focus12', prefix: 'exports',
  provider: 'AWS', files: 2, format: 'csv.gz', 'drop-rows': 0, ...extra });
let db;
let duck;

// DuckDB's reading of the objects: rows and the exact BilledCost sum
async function duckTotals(files) {
  const list = files.map((f) => `'${path.join(S3_ROOT, BUCKET, f.key)}'`).join(', ');
  const from = /\.parquet$/.test(files[0].key) ? `read_parquet([${list}])`
    : `read_csv([${list}], header = true, all_varchar = true, nullstr = 'NULL')`;
  const [r] = (await (await duck.runAndReadAll(
    `SELECT count(*)::INTEGER AS n, CAST(sum(CAST("BilledCost" AS DECIMAL(38,15))) AS VARCHAR) AS cost FROM ${from}`)).getRowObjectsJS());
  return { rows: r.n, cost: r.cost.replace(/\.?0+$/, '') };
}

async function visible() {
  const r = await one(db, `SELECT count(*)::int AS rows, coalesce(sum("BilledCost"), 0)::text AS cost FROM billops.focus_line_item`);
  return { rows: r.rows, cost: r.cost.replace(/\.?0+$/, '') };
}
const lastDelivery = () => one(db, `SELECT d.* FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                     WHERE s.name = 'aws-focus' ORDER BY delivery_id DESC LIMIT 1`);

let first;
before(async () => {
  db = await freshDatabase('billops_it_focus_s3');
  await db.query('SET client_min_messages = warning');
  await clearFaults();
  const { DuckDBInstance } = require('@duckdb/node-api');
  duck = await (await DuckDBInstance.create(':memory:')).connect();
  fs.rmSync(path.join(S3_ROOT, BUCKET), { recursive: true, force: true });
  first = (await deliver()).periods;
  await db.query(`SELECT billops.create_cur_source('aws-focus', $1, 'focus12', layout => 'focus', prefix => 'exports',
                  endpoint_url => $2, path_style => true)`, [BUCKET, S3]);
});
after(async () => { await clearFaults().catch(() => {}); await closeAll(); });

test('an AWS FOCUS export syncs from S3 with the rows and BilledCost DuckDB reads in its objects', async () => {
  assert.equal(first.length, 1, 'the sample\'s AWS rows are one billing period');
  assert.equal(first[0].rows, 942);
  const duckSide = await duckTotals(first[0].files);
  assert.deepEqual(duckSide, { rows: 942, cost: first[0].billedCost }, 'DuckDB reads what the generator wrote');
  await db.query(`CALL billops.sync_cur_source('aws-focus')`);
  assert.deepEqual(await visible(), duckSide);
  const d = await lastDelivery();
  assert.equal(d.status, 'loaded');
  assert.equal(d.assembly_id, first[0].executionId, 'the manifest\'s executionId names the delivery');
  assert.equal(d.billing_period.toISOString().slice(0, 10), '2024-09-01');
  assert.equal(Number(d.file_count), 2);
  const sizes = first[0].files.reduce((a, f) => a + fs.statSync(path.join(S3_ROOT, BUCKET, f.key)).size, 0);
  assert.equal(Number(d.bytes_read), sizes, 'every byte of both objects read once');
  const p = await one(db, `SELECT billing_account_id, period_start = '2024-09-01T00:00:00Z' AS utc_start, delivery_id::int
                             FROM billops.focus_partition`);
  assert.deepEqual(p, { billing_account_id: '1234567890123', utc_start: true, delivery_id: Number(d.delivery_id) });
  const src = await one(db, `SELECT string_agg(DISTINCT "x_BillopsSource", ',') AS s, count(*)::int AS n FROM billops.focus_cost`);
  assert.deepEqual(src, { s: 'focus:aws-focus', n: 942 }, 'focus_cost shows the export, naming its source');
  // the same execution again is a no-op
  await db.query(`CALL billops.sync_cur_source('aws-focus')`);
  assert.equal((await lastDelivery()).delivery_id, d.delivery_id, 'an execution already loaded is not loaded twice');
});

test('a later execution replaces the month atomically, and the one before is superseded', async () => {
  const before = await lastDelivery();
  const next = (await deliver({ 'drop-rows': 10 })).periods[0];
  assert.notEqual(next.executionId, first[0].executionId);
  await db.query(`CALL billops.sync_cur_source('aws-focus')`);
  assert.deepEqual(await visible(), await duckTotals(next.files));
  assert.equal((await visible()).rows, 942 - Math.floor(942 / 10));
  const old = await one(db, 'SELECT status FROM billops.cur_delivery WHERE delivery_id = $1', [before.delivery_id]);
  assert.equal(old.status, 'superseded');
  const leaves = await one(db, `SELECT count(*)::int AS n FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                 WHERE c.relname LIKE 'focus_line_item_20240901_%_d%'`);
  assert.equal(leaves.n, 1, 'one leaf for the account\'s month: the replaced one is dropped');
  first = [next];
});

test('cut bodies are resumed; a damaged object, a row of another month and a second source are refused; the month stays', async () => {
  const good = await visible();
  // three cut bodies and a 503 in the first object: the same rows.  (The first GET of the first
  // object passes: before a parallel load, the sync reads the export's first row from it.)
  await setFaults([
    { op: 'GetObject', keyContains: 'focus12-00001', kind: 'truncate', afterBytes: 2000, times: 3, skip: 1 },
    { op: 'GetObject', keyContains: 'focus12-00002', kind: 'status', status: 503, times: 1 },
  ]);
  const c = await connect();
  await c.query('SET client_min_messages = notice');
  await c.query(`CALL billops.sync_cur_source('aws-focus', force => true)`);
  await clearFaults();
  assert.ok(c.notices.filter((n) => /^resuming s3:\/\/focus-s3\/exports\/focus12\/.*focus12-00001\.csv\.gz at byte \d+/.test(n)).length >= 3,
    `cut bodies resumed: ${c.notices.join(' | ')}`);
  assert.deepEqual(await visible(), good);

  const file = path.join(S3_ROOT, BUCKET, first[0].files[1].key);
  const saved = fs.readFileSync(file);
  try {
    // gzip damaged in the middle of the second object
    const bad = Buffer.from(saved); bad.fill(0x55, Math.floor(bad.length / 2), Math.floor(bad.length / 2) + 64);
    fs.writeFileSync(file, bad);
    let e = await expectError(db, `CALL billops.sync_cur_source('aws-focus', force => true)`);
    assert.match(e.code, /^(22|58)/, `${e.code} ${e.message}`);
    let d = await lastDelivery();
    assert.equal(d.status, 'failed');
    assert.match(`${d.error_message} ${d.error_context}`, /s3:\/\/focus-s3\/exports\/focus12\/data\/BILLING_PERIOD=2024-09\/focus12-00002\.csv\.gz/,
      'the error names the object');
    assert.deepEqual(await visible(), good, 'the month loaded before is intact');

    // a row of August in September's export
    const lines = zlib.gunzipSync(saved).toString().split('\n');
    lines[2] = lines[2].replace(/"2024-09-01 00:00:00"/, '"2024-08-01 00:00:00"');
    fs.writeFileSync(file, zlib.gzipSync(lines.join('\n')));
    e = await expectError(db, `CALL billops.sync_cur_source('aws-focus', force => true)`);
    assert.equal(e.code, '22000', e.message);
    assert.match(e.message, /row of billing period 2024-08-01 in a delivery of billing period 2024-09-01/);
    d = await lastDelivery();
    assert.match(d.error_context, /FOCUS file "s3:\/\/focus-s3\/.*focus12-00002\.csv\.gz", data row 2, column "BillingPeriodStart"/);
    assert.deepEqual(await visible(), good, 'the month loaded before is intact');
  } finally {
    fs.writeFileSync(file, saved);
  }

  // a second source of the same account's month (its costs would count twice)
  await db.query(`SELECT billops.create_cur_source('aws-focus-copy', $1, 'focus12', layout => 'focus', prefix => 'exports',
                  endpoint_url => $2, path_style => true)`, [BUCKET, S3]);
  const e = await expectError(db, `CALL billops.sync_cur_source('aws-focus-copy')`);
  assert.equal(e.code, '55000', e.message);
  assert.match(e.message, /already loaded from source "aws-focus"/);
  await db.query(`DELETE FROM billops.cur_source WHERE name = 'aws-focus-copy'`);
  assert.deepEqual(await visible(), good);
});

test('the same export as Parquet gives exactly the rows its gzip CSV gives', async () => {
  await db.query('CREATE TABLE focus_from_csv AS SELECT * FROM billops.focus_line_item');
  const pq = (await deliver({ 'drop-rows': 10, format: 'parquet', 'execution-id': 'parquet-run' })).periods[0];
  assert.match(pq.files[0].key, /focus12-00001\.snappy\.parquet$/);
  await db.query(`CALL billops.sync_cur_source('aws-focus')`);
  const d = await lastDelivery();
  assert.deepEqual([d.status, d.assembly_id, d.compression], ['loaded', 'parquet-run', 'PARQUET']);
  const r = await one(db, `SELECT (SELECT count(*) FROM (SELECT * FROM focus_from_csv EXCEPT ALL SELECT * FROM billops.focus_line_item) a)::int
                                 + (SELECT count(*) FROM (SELECT * FROM billops.focus_line_item EXCEPT ALL SELECT * FROM focus_from_csv) b)::int AS differing,
                                  (SELECT count(*) FROM billops.focus_line_item)::int AS n`);
  assert.deepEqual(r, { differing: 0, n: 942 - Math.floor(942 / 10) });
  assert.deepEqual(await visible(), await duckTotals(pq.files));
});

test('other providers\' FOCUS files in S3 (layout focus_files): each object a delivery, its accounts\' periods replaced', async () => {
  // the sample's Microsoft and Oracle rows, byte for byte, as one gzip CSV object
  const { parse } = require('csv-parse/sync');
  const records = parse(fs.readFileSync(SAMPLE), { raw: true });
  const header = records[0].record;
  const provider = header.indexOf('ProviderName');
  const rows = records.slice(1).filter((r) => r.record[provider] !== 'AWS');
  const text = (rs) => records[0].raw.replace(/\r?\n$/, '') + '\n' + rs.map((r) => r.raw.replace(/\r?\n$/, '') + '\n').join('');
  const dir = path.join(S3_ROOT, BUCKET, 'other-clouds', 'azure-oci');
  fs.mkdirSync(dir, { recursive: true });
  const key = 'other-clouds/azure-oci/focus-2024.csv.gz';
  fs.writeFileSync(path.join(S3_ROOT, BUCKET, key), zlib.gzipSync(text(rows)));
  await db.query(`SELECT billops.create_cur_source('multi-cloud', $1, 'azure-oci', layout => 'focus_files', prefix => 'other-clouds',
                  endpoint_url => $2, path_style => true)`, [BUCKET, S3]);
  await db.query(`CALL billops.sync_cur_source('multi-cloud')`);
  const seen = async () => one(db, `SELECT count(*)::int AS n, sum("BilledCost")::text AS cost,
      (SELECT string_agg(billing_account_id || '@' || to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM'), ' ' ORDER BY billing_account_id, period_start)
         FROM billops.focus_partition fp JOIN billops.cur_source s USING (source_id) WHERE s.name = 'multi-cloud') AS parts
      FROM billops.focus_cost WHERE "x_BillopsSource" = 'focus:multi-cloud'`);
  const first = await seen();
  const duckSide = await duckTotals([{ key }]);
  assert.equal(first.n, rows.length);
  assert.equal(first.n, duckSide.rows, 'DuckDB reads as many rows in the object');
  assert.equal(first.cost.replace(/\.?0+$/, ''), duckSide.cost, 'and the same BilledCost');
  assert.equal(first.parts, '/providers/Microsoft.Billing/billingAccounts/8611537@2024-09 20209880@2024-09 20209880@2024-10');
  const d1 = await one(db, `SELECT count(*)::int AS n FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'multi-cloud'`);
  await db.query(`CALL billops.sync_cur_source('multi-cloud')`);
  assert.equal((await one(db, `SELECT count(*)::int AS n FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'multi-cloud'`)).n,
    d1.n, 'an object already loaded (same ETag) is not loaded again');
  // the object rewritten without one Microsoft row: a new ETag, a new delivery; Microsoft's month is replaced,
  // Oracle's months are replaced by the same rows
  const ms = rows.findIndex((r) => r.record[provider] === 'Microsoft');
  fs.writeFileSync(path.join(S3_ROOT, BUCKET, key), zlib.gzipSync(text(rows.filter((_, i) => i !== ms))));
  await db.query(`CALL billops.sync_cur_source('multi-cloud')`);
  const second = await seen();
  assert.equal(second.n, rows.length - 1);
  assert.equal(second.parts, first.parts);
  const hist = await one(db, `SELECT string_agg(status, ' ' ORDER BY delivery_id) AS s FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                               WHERE s.name = 'multi-cloud'`);
  assert.equal(hist.s, 'superseded loaded');
});

// The columns of AWS's "FOCUS 1.2 with AWS columns" table (AWS Data Exports user guide, table
// dictionary): FOCUS 1.2's 57 and AWS's three, x_Discounts, x_Operation and x_ServiceCode.
const AWS_FOCUS_12 = ['AvailabilityZone', 'BilledCost', 'BillingAccountId', 'BillingAccountName', 'BillingAccountType', 'BillingCurrency',
  'BillingPeriodEnd', 'BillingPeriodStart', 'CapacityReservationId', 'CapacityReservationStatus', 'ChargeCategory', 'ChargeClass',
  'ChargeDescription', 'ChargeFrequency', 'ChargePeriodEnd', 'ChargePeriodStart', 'CommitmentDiscountCategory', 'CommitmentDiscountId',
  'CommitmentDiscountName', 'CommitmentDiscountQuantity', 'CommitmentDiscountStatus', 'CommitmentDiscountType', 'CommitmentDiscountUnit',
  'ConsumedQuantity', 'ConsumedUnit', 'ContractedCost', 'ContractedUnitPrice', 'EffectiveCost', 'InvoiceId', 'InvoiceIssuerName', 'ListCost',
  'ListUnitPrice', 'PricingCategory', 'PricingCurrency', 'PricingCurrencyContractedUnitPrice', 'PricingCurrencyEffectiveCost',
  'PricingCurrencyListUnitPrice', 'PricingQuantity', 'PricingUnit', 'ProviderName', 'PublisherName', 'RegionId', 'RegionName', 'ResourceId',
  'ResourceName', 'ResourceType', 'ServiceCategory', 'ServiceName', 'ServiceSubcategory', 'SkuId', 'SkuMeter', 'SkuPriceDetails', 'SkuPriceId',
  'SubAccountId', 'SubAccountName', 'SubAccountType', 'Tags', 'x_Discounts', 'x_Operation', 'x_ServiceCode'];

test('an AWS FOCUS 1.2 export (AWS\'s 60 columns, every line item type) syncs from S3 as FOCUS 1.2, its money intact', async () => {
  // a generated CUR 2.0 month, written as AWS's FOCUS 1.2 table by pg_billops' own FOCUS view
  const out = path.join(RUN, 'focus12-gen');
  fs.rmSync(out, { recursive: true, force: true });
  generate(['--out', out, '--bucket', 'focus12-gen', '--report', 'gen', '--layout', 'cur2', '--period', '2024-06',
    '--rows', '4000', '--files', '1', '--columns', 'all', '--seed', '12', '--final', '--quiet']);
  fs.chmodSync(out, 0o755);
  const cur = path.join(out, 'focus12-gen/gen/data/BILLING_PERIOD=2024-06', fs.readdirSync(path.join(out, 'focus12-gen/gen/data/BILLING_PERIOD=2024-06'))[0]);
  await db.query(`SELECT billops.load_cur_file($1, 'gen-cur')`, [cur]);
  const csv = `/tmp/billops-focus12-export-${process.pid}.csv`;   // written by the server
  fs.rmSync(csv, { force: true });
  await db.query(`SET TimeZone = 'UTC'`);
  await db.query(`COPY (SELECT ${AWS_FOCUS_12.map((c) => `"${c}"`).join(', ')} FROM billops.focus_cost
                         WHERE "x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2024-06-01T00:00:00Z')
                  TO '${csv}' WITH (FORMAT csv, HEADER true)`);
  await db.query('RESET TimeZone');
  const key = 'exports12/focus12aws/data/BILLING_PERIOD=2024-06/focus12aws-00001.csv.gz';
  fs.mkdirSync(path.dirname(path.join(S3_ROOT, BUCKET, key)), { recursive: true });
  fs.writeFileSync(path.join(S3_ROOT, BUCKET, key), zlib.gzipSync(fs.readFileSync(csv)));
  fs.rmSync(csv, { force: true });
  const manifestKey = 'exports12/focus12aws/metadata/BILLING_PERIOD=2024-06/focus12aws-Manifest.json';
  fs.mkdirSync(path.dirname(path.join(S3_ROOT, BUCKET, manifestKey)), { recursive: true });
  fs.writeFileSync(path.join(S3_ROOT, BUCKET, manifestKey), JSON.stringify({ executionId: 'focus12-run-1', exportArn: 'arn:aws:bcm-data-exports:us-east-1:000000000000:export/focus12aws',
    columns: AWS_FOCUS_12.map((name) => ({ name })), dataFiles: [`s3://${BUCKET}/${key}`], additionalOutputFiles: [] }));
  await db.query(`SELECT billops.create_cur_source('aws-focus12', $1, 'focus12aws', layout => 'focus', prefix => 'exports12',
                  endpoint_url => $2, path_style => true)`, [BUCKET, S3]);
  await db.query(`CALL billops.sync_cur_source('aws-focus12')`);
  const d = await one(db, `SELECT d.status, d.focus_version, cardinality(d.columns) AS ncols, d.rows_loaded::int AS rows
                             FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'aws-focus12'`);
  assert.deepEqual(d, { status: 'loaded', focus_version: '1.2', ncols: 60, rows: d.rows });
  // the export's rows, as loaded, against the view they were written from: every row and column
  const cols = AWS_FOCUS_12.map((c) => `"${c}"`).join(', ');
  const cmp = await one(db, `WITH exp AS (SELECT ${cols} FROM billops.focus_line_item f
                                           JOIN billops.focus_partition fp ON fp.period_start = f."BillingPeriodStart" AND fp.billing_account_id = f."BillingAccountId"
                                           JOIN billops.cur_source s ON s.source_id = fp.source_id WHERE s.name = 'aws-focus12'),
                                  src AS (SELECT ${cols} FROM billops.focus_cost WHERE "x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2024-06-01T00:00:00Z')
                             SELECT (SELECT count(*) FROM exp)::int AS n, (SELECT count(*) FROM src)::int AS m,
                                    (SELECT count(*) FROM (SELECT * FROM exp EXCEPT ALL SELECT * FROM src) a)::int
                                  + (SELECT count(*) FROM (SELECT * FROM src EXCEPT ALL SELECT * FROM exp) b)::int AS differing`);
  assert.equal(cmp.n, cmp.m);
  assert.equal(cmp.n, d.rows);
  assert.equal(cmp.differing, 0, 'every row and column of the export as the view wrote it');
  // as a FOCUS 1.2 export, with the CUR holding the same month, focus_cost shows the CUR's rows once
  const shown = await one(db, `SELECT count(*) FILTER (WHERE "x_BillopsSource" = 'focus:aws-focus12')::int AS export_rows
                                 FROM billops.focus_cost WHERE "BillingPeriodStart" = '2024-06-01T00:00:00Z'`);
  assert.equal(shown.export_rows, 0, 'a month both the CUR and the export hold is shown from the CUR, not twice');
});
