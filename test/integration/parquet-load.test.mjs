// Parquet through the loader's one path (src/parquet_source.c → COPY → typed table → swap):
// a CUR 2.0 month written as Parquet by an independent writer (DuckDB, test/generator/
// gen-parquet.mjs, with AWS's column types: amounts DOUBLE, dates TIMESTAMP, maps
// MAP<string,string>) loads into exactly the line items its CSV loads into, whatever the
// codec, format version or row group size; a damaged Parquet file is refused and the
// month loaded before stays.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, RUN, SHARED, closeAll, freshDatabase, expectError } from './helpers.mjs';
import { focusParquetSelect } from '../generator/focus-delivery.mjs';

const DIR = path.join(RUN ?? '/tmp', 'parquet-load');
const CSV = path.join(DIR, 'cur2-2024-02.csv');
let db;

// a DuckDB connection (npm @duckdb/node-api from test/emulators), the independent writer of test files
async function duckdb() {
  const { createRequire } = await import('node:module');
  const { DuckDBInstance } = createRequire(path.join(ROOT, 'test/emulators/package.json'))('@duckdb/node-api');
  return (await DuckDBInstance.create(':memory:')).connect();
}

const gen = (args) => execFileSync('node', [path.join(ROOT, 'test/generator/gen-parquet.mjs'), ...args], { encoding: 'utf8' });
const sameRows = `SELECT (SELECT count(*) FROM (SELECT * FROM snap EXCEPT ALL SELECT * FROM billops.cur_line_item) a)
                       + (SELECT count(*) FROM (SELECT * FROM billops.cur_line_item EXCEPT ALL SELECT * FROM snap) b) AS differing,
                         (SELECT count(*) FROM billops.cur_line_item) AS n`;

before(async () => {
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(DIR, 0o755);
  execFileSync('node', [path.join(ROOT, 'test/generator/gen-cur.mjs'), '--out', path.join(DIR, 's3'), '--bucket', 'parquet-load', '--prefix', 'p',
    '--report', 'r', '--layout', 'cur2', '--period', '2024-02', '--rows', '6000', '--columns', 'all', '--seed', '47',
    '--emit-plain', CSV, '--quiet']);
  fs.chmodSync(CSV, 0o644);
  db = await freshDatabase('billops_it_parquet_load');
  await db.query('SET client_min_messages = warning');
  await db.query(`SELECT billops.load_cur_file($1, 'month')`, [CSV]);
  await db.query('CREATE TABLE snap AS SELECT * FROM billops.cur_line_item');
});
after(closeAll);

test('a CUR 2.0 month as Parquet loads into exactly the line items its CSV loads into: 4 codecs, both versions, several row groups', async () => {
  for (const [codec, version, rowGroup] of [['zstd', 'v1', 2048], ['snappy', 'v2', 4096], ['gzip', 'v1', 100000], ['lz4_raw', 'v2', 2048]]) {
    const f = path.join(DIR, `cur2-${codec}-${version}.parquet`);
    const summary = JSON.parse(gen(['--csv', CSV, '--out', f, '--compression', codec, '--version', version, '--row-group-size', String(rowGroup)]));
    fs.chmodSync(f, 0o644);
    const { rows: [{ load_cur_file: delivery }] } = await db.query(`SELECT billops.load_cur_file($1, 'month')`, [f]);
    const { rows: [d] } = await db.query('SELECT status, rows_loaded FROM billops.cur_delivery WHERE delivery_id = $1', [delivery]);
    assert.deepEqual([d.status, Number(d.rows_loaded)], ['loaded', 6000], `${codec} ${version}`);
    const { rows: [cmp] } = await db.query(sameRows);
    assert.deepEqual([Number(cmp.differing), Number(cmp.n)], [0, 6000],
      `${codec} ${version}, ${summary.row_groups} row groups: every line item as the CSV's (typed columns, maps, extras)`);
  }
});

test('a damaged Parquet file is refused with 22P04 naming the file and what is wrong; the month loaded before stays', async () => {
  const good = fs.readFileSync(path.join(DIR, 'cur2-zstd-v1.parquet'));
  const before = (await db.query('SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS cost FROM billops.cur_line_item')).rows[0];
  const cases = [
    ['cut', good.subarray(0, good.length - 1000), /Parquet file ".*cut\.parquet": the file does not end with the Parquet magic "PAR1"/],
    ['page', (() => { const b = Buffer.from(good); b.fill(0x55, 5000, 5400); return b; })(), /Parquet file ".*page\.parquet": row group 0, column /],
  ];
  for (const [name, bytes, message] of cases) {
    const f = path.join(DIR, `${name}.parquet`);
    fs.writeFileSync(f, bytes, { mode: 0o644 });
    const e = await expectError(db, `SELECT billops.load_cur_file($1, 'month')`, [f]);
    assert.equal(e.code, '22P04', `${name}: ${e.message}`);
    assert.match(e.message, message);
    const after = (await db.query('SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS cost FROM billops.cur_line_item')).rows[0];
    assert.deepEqual(after, before, `${name}: the month loaded before is intact`);
  }
  // a feature the reader leaves out: 0A000
  const enc = Buffer.from(good); enc.write('PARE', good.length - 4);
  fs.writeFileSync(path.join(DIR, 'encrypted.parquet'), enc, { mode: 0o644 });
  const e = await expectError(db, `SELECT billops.load_cur_file($1, 'month')`, [path.join(DIR, 'encrypted.parquet')]);
  assert.equal(e.code, '0A000');
  assert.match(e.message, /encrypted Parquet file/);
  // an encoding the reader leaves out: the first data page header's PLAIN_DICTIONARY (2, zigzag 4, then
  // RLE levels: 15 04 15 06 15 06 in the compact protocol) made ALP (10, parquet.thrift's newest)
  const alp = Buffer.from(good);
  const at = alp.indexOf(Buffer.from([0x15, 0x04, 0x15, 0x06, 0x15, 0x06]));
  assert.ok(at > 0, 'a v1 data page header with dictionary indices');
  alp[at + 1] = 0x14;
  fs.writeFileSync(path.join(DIR, 'alp.parquet'), alp, { mode: 0o644 });
  const a = await expectError(db, `SELECT billops.load_cur_file($1, 'month')`, [path.join(DIR, 'alp.parquet')]);
  assert.equal(a.code, '0A000', a.message);
  assert.match(a.message, /row group 0, column \w+: a page is encoded ALP, which is not supported/);
});

test("the real legacy sample as Parquet with Athena's column names (product_product_name, ...) loads into exactly what its CSV loads into", async () => {
  const sample = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
  const csv = path.join(DIR, 'legacy-sample.csv');
  fs.copyFileSync(sample, csv);
  fs.chmodSync(csv, 0o644);
  const f = path.join(DIR, 'legacy-sample.parquet');
  gen(['--csv', sample, '--out', f, '--layout', 'legacy-athena', '--compression', 'snappy']);
  fs.chmodSync(f, 0o644);
  const month = `FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2023-11-01'`;
  await db.query(`SELECT billops.load_cur_file($1, 'legacy')`, [csv]);
  await db.query(`CREATE TABLE snap_legacy AS SELECT * ${month}`);
  const totals = `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS cost, sum(line_item_usage_amount)::text AS usage,
                         count(*) FILTER (WHERE product <> '{}')::int AS with_product `;
  const csvTotals = (await db.query(totals + month)).rows[0];
  await db.query(`SELECT billops.load_cur_file($1, 'legacy')`, [f]);
  const pqTotals = (await db.query(totals + month)).rows[0];
  assert.equal(pqTotals.n, csvTotals.n);
  assert.equal(Number(pqTotals.cost), Number(csvTotals.cost), 'the same total cost');
  assert.ok(csvTotals.with_product > 0 && pqTotals.with_product === csvTotals.with_product, 'product attributes reach the product map');
  const { rows: [cmp] } = await db.query(`SELECT (SELECT count(*) FROM (SELECT * FROM snap_legacy EXCEPT ALL SELECT * ${month}) a)
                                               + (SELECT count(*) FROM (SELECT * ${month} EXCEPT ALL SELECT * FROM snap_legacy) b) AS differing`);
  assert.equal(Number(cmp.differing), 0, 'every line item as the CSV loads it');
});

test('memory: a file whose pages need more than billops.parquet_max_memory is refused (54000); under the default it loads', async () => {
  const duck = await duckdb();
  const f = path.join(DIR, 'fat-page.parquet');
  // one row group, one data page per column (DuckDB's pages are whole chunks): 300,000 values a page
  await duck.run(`COPY (SELECT '111111111111' AS bill_payer_account_id, TIMESTAMP '2024-05-01' AS bill_billing_period_start_date,
      '222222222222' AS line_item_usage_account_id, 'Usage' AS line_item_line_item_type, 0.01::DOUBLE AS line_item_unblended_cost,
      repeat('x', 120) || i AS line_item_line_item_description FROM range(300000) r(i))
    TO '${f}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 1000000)`);
  fs.chmodSync(f, 0o644);
  await db.query(`SET billops.parquet_max_memory = '16MB'`);
  const e = await expectError(db, `SELECT billops.load_cur_file($1, 'fat')`, [f]);
  assert.equal(e.code, '54000', e.message);
  assert.match(e.message, /needs more memory than billops\.parquet_max_memory \(16384 kB\) allows/);
  assert.match(e.detail, /^row group 0, column \w+: /, 'where in the file');
  await db.query('RESET billops.parquet_max_memory');
  await db.query(`SELECT billops.load_cur_file($1, 'fat')`, [f]);
  const { rows: [n] } = await db.query(`SELECT count(*)::int AS n FROM billops.cur_line_item WHERE bill_payer_account_id = '111111111111'`);
  assert.equal(n.n, 300000);
});

test('cancel during a Parquet load is prompt and leaves nothing behind', async () => {
  const duck = await duckdb();
  const f = path.join(DIR, 'long.parquet');
  await duck.run(`COPY (SELECT '333333333333' AS bill_payer_account_id, TIMESTAMP '2024-06-01' AS bill_billing_period_start_date,
      '444444444444' AS line_item_usage_account_id, 'Usage' AS line_item_line_item_type, (i % 1000) * 0.001 AS line_item_unblended_cost,
      'resource-' || i AS line_item_resource_id, 'usage type ' || (i % 97) AS line_item_usage_type FROM range(2000000) r(i))
    TO '${f}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)`);
  fs.chmodSync(f, 0o644);
  const { connect } = await import('./helpers.mjs');
  const c = await connect();
  const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
  const deliveries = async () => Number((await db.query('SELECT count(*) FROM billops.cur_delivery')).rows[0].count);
  const before = await deliveries();
  const running = expectError(c, `SELECT billops.load_cur_file($1, 'long')`, [f]);
  // wait until the load is reading rows (COPY's progress shows it), then cancel
  for (let i = 0; i < 200; i++) {
    const { rows } = await db.query('SELECT bytes_processed FROM pg_stat_progress_copy WHERE pid = $1', [pid]);
    if (rows[0] && Number(rows[0].bytes_processed) > 0) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const t0 = Date.now();
  await db.query('SELECT pg_cancel_backend($1)', [pid]);
  const e = await running;
  assert.equal(e.code, '57014', e.message);
  assert.ok(Date.now() - t0 < 2000, `cancelled within 2 s (${Date.now() - t0} ms)`);
  assert.equal(await deliveries(), before, 'no delivery recorded');
  const { rows: [n] } = await db.query(`SELECT count(*)::int AS n FROM billops.cur_line_item WHERE bill_payer_account_id = '333333333333'`);
  assert.equal(n.n, 0);
  await c.end();
});

test('a FOCUS export as Parquet (the real sample: decimals, timestamps, Tags as a map) loads into exactly the rows its CSV loads into', async () => {
  const sample = path.join(SHARED, 'testdata/focus/focus-1.0-sample.csv');
  const csv = path.join(DIR, 'focus.csv');
  fs.copyFileSync(sample, csv);
  fs.chmodSync(csv, 0o644);
  const f = path.join(DIR, 'focus.parquet');
  const duck = await duckdb();
  const read = `read_csv('${sample}', header = true, all_varchar = true, nullstr = 'NULL')`;
  const names = (await (await duck.runAndReadAll(`DESCRIBE SELECT * FROM ${read}`)).getRowObjectsJS()).map((r) => r.column_name);
  await duck.run(`COPY (SELECT ${focusParquetSelect(names)} FROM ${read}) TO '${f}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)`);
  fs.chmodSync(f, 0o644);
  // the CSV's rows kept aside, then the Parquet file loaded in their place (the same accounts' periods)
  await db.query(`SELECT billops.load_focus_file($1, 'focus-sample')`, [csv]);
  await db.query('CREATE TABLE focus_from_csv AS SELECT * FROM billops.focus_line_item');
  await db.query(`SELECT billops.load_focus_file($1, 'focus-sample')`, [f]);
  const side = (t) => `SELECT * FROM ${t}`;
  const { rows: [cmp] } = await db.query(`SELECT (SELECT count(*) FROM (${side('focus_from_csv')} EXCEPT ALL ${side('billops.focus_line_item')}) a)
      + (SELECT count(*) FROM (${side('billops.focus_line_item')} EXCEPT ALL ${side('focus_from_csv')}) b) AS differing,
      (SELECT count(*) FROM focus_from_csv) AS n_csv,
      (SELECT count(*) FROM billops.focus_line_item) AS n,
      (SELECT count(*) FROM billops.focus_line_item WHERE "Tags" IS NOT NULL) AS tagged,
      (SELECT string_agg(DISTINCT d.object_key, ', ') FROM billops.focus_partition p JOIN billops.cur_delivery_file d USING (delivery_id)) AS visible`);
  assert.equal(cmp.visible, f, 'the Parquet file is what is visible now');
  assert.equal(Number(cmp.n), 1000, 'the sample has 1,000 rows');
  assert.equal(Number(cmp.n_csv), 1000);
  assert.ok(Number(cmp.tagged) > 0, `rows with tags: ${cmp.tagged}`);
  assert.equal(Number(cmp.differing), 0, 'every row, column and extra as the CSV loads it');
});
