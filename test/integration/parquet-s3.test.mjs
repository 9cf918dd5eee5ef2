// Parquet deliveries synced from S3 (the emulator, which verifies every SigV4 signature): a CUR 2.0
// Data Export and a legacy CUR report with the Athena integration, each written by DuckDB
// (test/generator/parquet-delivery.mjs), read by pg_billops through ranged GETs only — the footer
// first, then each column's pages — and checked against DuckDB's own reading of the same files.
// Faults: bodies cut mid-range and 503s are survived; an object replaced mid-read, a damaged file
// and a mixed delivery are refused naming the object, with the month loaded before intact; cancel
// is prompt.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { connect, closeAll, freshDatabase, expectError, setFaults, clearFaults, emulator, generate, S3, S3_ROOT, ROOT } from './helpers.mjs';

const BUCKET = 'parquet-s3';
let db;

const node = (script, args) => execFileSync('node', [path.join(ROOT, 'test/generator', script), ...args], { encoding: 'utf8', maxBuffer: 1 << 26 });
const toParquet = (manifest, extra = []) => JSON.parse(node('parquet-delivery.mjs', ['--root', S3_ROOT, '--bucket', BUCKET, '--manifest', manifest, ...extra]));

// DuckDB's reading of the files: rows and the exact sum of the unblended cost
function duckTotals(files) {
  let rows = 0;
  let sum = 0n;
  const SCALE = 12;
  for (const f of files) {
    const out = JSON.parse(node('read-parquet.mjs', [path.join(S3_ROOT, BUCKET, f.key), '--sum', 'line_item_unblended_cost']));
    assert.equal(out.rows, f.rows, 'DuckDB reads the rows the writer wrote');
    const m = /^(-?)(\d+)(?:\.(\d+))?$/.exec(out.sum);
    assert.ok(m, `read-parquet --sum printed ${out.sum}`);
    const v = BigInt(m[2] + (m[3] ?? '').padEnd(SCALE, '0').slice(0, SCALE));
    sum += m[1] ? -v : v;
    rows += out.rows;
  }
  const neg = sum < 0n;
  const a = (neg ? -sum : sum).toString().padStart(SCALE + 1, '0');
  const text = `${neg ? '-' : ''}${a.slice(0, -SCALE)}.${a.slice(-SCALE)}`.replace(/\.?0+$/, '');
  return { rows, cost: text };
}

async function createSource(name, report, layout) {
  await db.query(`SELECT billops.create_cur_source($1, $2, $3, layout => $4, prefix => 'pq', credentials => 'default',
                  endpoint_url => $5, path_style => true)`, [name, BUCKET, report, layout, S3]);
}

async function visibleTotals(source) {
  const { rows: [r] } = await db.query(
    `SELECT count(li.*)::int AS rows, coalesce(sum(li.line_item_unblended_cost), 0)::text AS cost
       FROM billops.cur_partition cp JOIN billops.cur_source s USING (source_id)
       JOIN billops.cur_line_item li ON li.bill_billing_period_start_date = cp.billing_period
                                    AND li.bill_payer_account_id = cp.payer_account_id
      WHERE s.name = $1`, [source]);
  return { rows: r.rows, cost: r.cost.replace(/\.?0+$/, '') };
}

const parquetGets = async () => (await emulator('GET', 'requests'))
  .filter((e) => e.op === 'GetObject' && /\.parquet$/.test(e.key ?? ''));

let cur2Files, legacyFiles;

before(async () => {
  db = await freshDatabase('billops_it_parquet_s3');
  await db.query('SET client_min_messages = warning');
  await clearFaults();
  fs.rmSync(path.join(S3_ROOT, BUCKET), { recursive: true, force: true });
  // CUR 2.0: two files of 9,000 rows, row groups of 2,048 (5 per file), every column
  generate(['--out', S3_ROOT, '--bucket', BUCKET, '--prefix', 'pq', '--report', 'export2', '--layout', 'cur2', '--period', '2024-03',
    '--rows', '18000', '--files', '2', '--columns', 'all', '--seed', '71', '--quiet']);
  cur2Files = toParquet('pq/export2/metadata/BILLING_PERIOD=2024-03/export2-Manifest.json', ['--row-group-size', '2048', '--compression', 'zstd']).files;
  // legacy CUR: one file of 7,000 rows in Athena's layout and names
  generate(['--out', S3_ROOT, '--bucket', BUCKET, '--prefix', 'pq', '--report', 'legacy1', '--layout', 'legacy', '--period', '2024-04',
    '--rows', '7000', '--seed', '72', '--quiet']);
  legacyFiles = toParquet('pq/legacy1/20240401-20240501/legacy1-Manifest.json', ['--row-group-size', '4096', '--writer', 'arrow-rs']).files;
  await createSource('pq-cur2', 'export2', 'cur2');
  await createSource('pq-legacy', 'legacy1', 'legacy_cur');
});
after(async () => { await clearFaults().catch(() => {}); await closeAll(); });

test('a CUR 2.0 Parquet export syncs from S3 with the rows and total DuckDB reads in its files, through ranged GETs only', async () => {
  await emulator('DELETE', 'requests');
  await db.query('CALL billops.sync_cur_source($1)', ['pq-cur2']);
  const { rows: [d] } = await db.query(`SELECT status, compression, rows_loaded::int, bytes_read::bigint FROM billops.cur_delivery
                                          WHERE source_id = (SELECT source_id FROM billops.cur_source WHERE name = 'pq-cur2')`);
  assert.equal(d.status, 'loaded');
  assert.equal(d.compression, 'PARQUET');
  const duck = duckTotals(cur2Files);
  assert.equal(duck.rows, 18000);
  assert.deepEqual(await visibleTotals('pq-cur2'), duck, 'rows and unblended cost as DuckDB reads them');
  const gets = await parquetGets();
  assert.ok(gets.length > 2 * cur2Files.length, `several ranged reads per file (${gets.length})`);
  assert.ok(gets.every((g) => /^bytes=\d+-\d+$/.test(g.range ?? '') && g.status === 206), 'every GET is a bounded range (206)');
  const size = cur2Files.reduce((a, f) => a + f.bytes, 0);
  const sent = gets.reduce((a, g) => a + g.bytesSent, 0);
  assert.ok(sent <= size * 1.05 + 200000, `bytes fetched (${sent}) about the files' size (${size}), nothing read twice at scale`);
});

test("a legacy CUR report in Parquet (Athena's layout and names, written by arrow-rs, status table and crawler template beside it) syncs with DuckDB's totals", async () => {
  await db.query('CALL billops.sync_cur_source($1)', ['pq-legacy']);
  const duck = duckTotals(legacyFiles);
  assert.equal(duck.rows, 7000);
  assert.deepEqual(await visibleTotals('pq-legacy'), duck);
  const { rows: [p] } = await db.query(`SELECT count(*) FILTER (WHERE product <> '{}')::int AS with_product,
                                               count(*) FILTER (WHERE resource_tags <> '{}')::int AS with_tags
                                          FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-04-01'`);
  assert.ok(p.with_product > 0 && p.with_tags > 0, "Athena's product_* and resource_tags_* columns reach the maps");
});

test('cut bodies and 503s in the middle of ranged reads are survived: the same rows and total', async () => {
  await setFaults([
    { op: 'GetObject', keyContains: 'export2-00001', kind: 'truncate', afterBytes: 3000, times: 3 },
    { op: 'GetObject', keyContains: 'export2-00002', kind: 'status', status: 503, times: 2 },
  ]);
  const c = await connect();
  c.notices = [];
  await c.query('SET client_min_messages = notice');
  await c.query(`CALL billops.sync_cur_source('pq-cur2', force => true)`);
  await clearFaults();
  assert.ok(c.notices.filter((n) => /^resuming s3:\/\/parquet-s3\/.*export2-00001.* at byte \d+/.test(n)).length >= 3,
    `cut bodies resumed: ${c.notices.join(' | ')}`);
  assert.deepEqual(await visibleTotals('pq-cur2'), duckTotals(cur2Files));
  const { rows } = await db.query(`SELECT status FROM billops.cur_delivery WHERE source_id = (SELECT source_id FROM billops.cur_source WHERE name = 'pq-cur2')
                                    ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(rows[0].status, 'loaded');
});

test('a damaged Parquet object, an object replaced mid-read and a delivery mixing formats are refused naming the object; the month stays', async () => {
  const before = await visibleTotals('pq-cur2');
  const file = path.join(S3_ROOT, BUCKET, cur2Files[1].key);
  const good = fs.readFileSync(file);
  const lastError = async () => (await db.query(`SELECT error_sqlstate, error_message FROM billops.cur_delivery
      WHERE source_id = (SELECT source_id FROM billops.cur_source WHERE name = 'pq-cur2') ORDER BY delivery_id DESC LIMIT 1`)).rows[0];
  try {
    // a page overwritten in the middle of the second file
    const bad = Buffer.from(good); bad.fill(0x55, 20000, 20400);
    fs.writeFileSync(file, bad);
    const e = await expectError(db, `CALL billops.sync_cur_source('pq-cur2', force => true)`);
    assert.equal(e.code, '22P04', e.message);
    assert.match(e.message, /^Parquet file "s3:\/\/parquet-s3\/pq\/export2\/data\/BILLING_PERIOD=2024-03\/export2-00002\.zstd\.parquet": row group \d+, column /);
    assert.deepEqual(await visibleTotals('pq-cur2'), before, 'the month loaded before is intact');

    // replaced while the delivery is read (its first range held back 400 ms, the file rewritten meanwhile):
    // every range carries If-Match with the listing's ETag, so S3 answers 412 and nothing of the new bytes is used
    // (a forced sync while the file is rewritten once `ready` resolves: S3 answers 412, the sync fails with 58030)
    const syncWhileRewritten = async (bytes, ready) => {
      const c = await connect();
      const running = expectError(c, `CALL billops.sync_cur_source('pq-cur2', force => true)`);
      await ready();
      fs.writeFileSync(file, bytes);
      const err = await running;
      await clearFaults();
      assert.equal(err.code, '58030', err.message);
      assert.match(err.message, /export2-00002\.zstd\.parquet changed while it was being read/);
    };
    fs.writeFileSync(file, good);
    await setFaults([{ op: 'GetObject', keyContains: 'export2-00002', kind: 'delay', ms: 400, times: 1 }]);
    await syncWhileRewritten(Buffer.concat([good, Buffer.from('x')]), () => new Promise((r) => setTimeout(r, 200)));
    assert.deepEqual(await visibleTotals('pq-cur2'), before);

    // replaced after its footer and first ranges were read: the third range of the file is held back
    // (skip 2), the file is rewritten meanwhile, and that range's If-Match fails
    fs.writeFileSync(file, good);
    await emulator('DELETE', 'requests');
    await setFaults([{ op: 'GetObject', keyContains: 'export2-00002', kind: 'delay', ms: 1500, skip: 2, times: 1 }]);
    await syncWhileRewritten(Buffer.concat([good, Buffer.from('y')]), async () => {
      for (let i = 0; i < 200 && (await parquetGets()).filter((g) => g.key.includes('export2-00002')).length < 2; i++)
        await new Promise((r) => setTimeout(r, 50));
    });
    const file2 = (await parquetGets()).filter((g) => g.key.includes('export2-00002')).map((g) => g.status);
    assert.deepEqual(file2.slice(0, 3), [206, 206, 412], `the footer and a range read, then the third range refused (${file2})`);
    assert.deepEqual(await visibleTotals('pq-cur2'), before);
  } finally {
    fs.writeFileSync(file, good);
    await clearFaults();
  }
  // a manifest listing Parquet and CSV files together
  const mkey = path.join(S3_ROOT, BUCKET, 'pq/export2/metadata/BILLING_PERIOD=2024-03/export2-Manifest.json');
  const manifest = fs.readFileSync(mkey, 'utf8');
  try {
    const m = JSON.parse(manifest);
    m.executionId = 'mixed-run';
    m.dataFiles.push(`s3://${BUCKET}/pq/export2/data/BILLING_PERIOD=2024-03/extra-00003.csv.gz`);
    fs.writeFileSync(mkey, JSON.stringify(m));
    const e = await expectError(db, `CALL billops.sync_cur_source('pq-cur2')`);
    assert.equal(e.code, '22000', e.message);
    assert.match(e.message, /is Parquet but lists files that are not/);
    assert.match(e.detail, /extra-00003\.csv\.gz/);
    assert.equal((await lastError()).error_sqlstate, '22000');
  } finally {
    fs.writeFileSync(mkey, manifest);
  }
  assert.deepEqual(await visibleTotals('pq-cur2'), before);
});

test('cancel during an S3 Parquet sync is prompt (a slow ranged read) and the month stays', async () => {
  const before = await visibleTotals('pq-cur2');
  await setFaults([{ op: 'GetObject', keyContains: 'export2-00001', kind: 'slow', bytesPerSecond: 2000, times: 50 }]);
  const c = await connect();
  const { rows: [{ pid }] } = await c.query('SELECT pg_backend_pid() AS pid');
  const running = expectError(c, `CALL billops.sync_cur_source('pq-cur2', force => true)`);
  await new Promise((r) => setTimeout(r, 1500));
  const t0 = Date.now();
  await db.query('SELECT pg_cancel_backend($1)', [pid]);
  const e = await running;
  const ms = Date.now() - t0;
  await clearFaults();
  assert.equal(e.code, '57014', e.message);
  assert.ok(ms < 2000, `cancel took ${ms} ms`);
  assert.deepEqual(await visibleTotals('pq-cur2'), before);
});
