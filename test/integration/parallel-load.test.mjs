// Parallel ingest: the files of a delivery loaded by the session and background workers at once
// (billops.max_load_workers), with everything the single stream guarantees: the same rows, one
// atomic swap, nothing visible when any file fails (the error names its file, row and column as
// the single stream's does), nothing left behind, prompt cancel, workers that never outlive their
// session, progress across workers.  Ends with seeded, replayable random fault trials
// (PARALLEL_SEED=<n> replays one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import {
  connect, closeAll, freshDatabase, setFaults, clearFaults, generate, bucketDir, S3, S3_ROOT, normNumeric, waitFor,
} from './helpers.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { parse: parseCsv } = require('csv-parse/sync');

let db;
before(async () => {
  db = await freshDatabase('billops_it_parallel');
  await clearFaults();
});
after(async () => { await clearFaults().catch(() => {}); await closeAll(); });

const PERIOD = '2024-05';
const dataDir = (bucket, report) => path.join(S3_ROOT, bucket, 'cur', report, 'data', `BILLING_PERIOD=${PERIOD}`);

// A CUR 2.0 month of `files` files in `bucket`; returns the generator's expectations.
function month(bucket, report, { rows = 40000, files = 4, delivery = 1, seed = 11 } = {}) {
  bucketDir(bucket);
  const expected = path.join(S3_ROOT, `${bucket}-${delivery}.json`);
  generate(['--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', report, '--layout', 'cur2',
    '--period', PERIOD, '--rows', String(rows), '--files', String(files), '--deliveries', String(Math.max(delivery, 1)),
    '--delivery', String(delivery), '--seed', String(seed), '--columns', 'known', '--expected', expected, '--quiet']);
  return JSON.parse(fs.readFileSync(expected));
}

async function createSource(name, bucket, report) {
  await db.query(`SELECT billops.create_cur_source($1, $2, $3, layout => 'cur2', prefix => 'cur',
                  endpoint_url => $4, path_style => true)`, [name, bucket, report, S3]);
}

// Sync one source with a degree of parallelism; resolves to the error, or null.
async function sync(client, name, workers) {
  client.notices = [];
  await client.query(`SET billops.max_load_workers = ${workers}`);
  return client.query('CALL billops.sync_cur_source($1)', [name]).then(() => null, (e) => e);
}

async function visible(source) {
  const { rows } = await db.query(
    `SELECT cp.delivery_id, count(li.*)::int AS n, coalesce(sum(li.line_item_unblended_cost), 0)::text AS total
       FROM billops.cur_partition cp JOIN billops.cur_source s USING (source_id)
       LEFT JOIN billops.cur_line_item li
              ON li.bill_billing_period_start_date = cp.billing_period AND li.bill_payer_account_id = cp.payer_account_id
      WHERE s.name = $1 GROUP BY cp.delivery_id ORDER BY 1`, [source]);
  return rows;
}

const lastDelivery = async (source) => (await db.query(
  `SELECT d.* FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
    WHERE s.name = $1 ORDER BY delivery_id DESC LIMIT 1`, [source])).rows[0];

// Staging tables no visible partition holds, and load workers still running.
async function leftovers() {
  const { rows: [r] } = await db.query(
    `SELECT (SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'billops'::regnamespace AND c.relkind = 'r'
               AND c.relname ~ '_d[0-9]+$' AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = c.oid))::int AS tables,
            (SELECT count(*) FROM billops.cur_delivery_partition dp JOIN billops.cur_delivery d USING (delivery_id)
              WHERE d.status NOT IN ('loaded', 'superseded'))::int AS partitions`);
  return r;
}
// The visible line items grouped by billops._cur_daily_spec()'s expressions, against the daily rollup
// summed again (a parallel load writes a row per loader and key): rows in one and not the other.
async function rollupDifferences() {
  const { rows: spec } = await db.query('SELECT column_name, role, expression FROM billops._cur_daily_spec()');
  const keys = spec.filter((c) => c.role === 'key');
  const sums = spec.filter((c) => c.role === 'sum');
  const groupBy = Array.from({ length: keys.length + 2 }, (_, i) => i + 1).join(', ');
  const { rows: [r] } = await db.query(`
    WITH li AS (SELECT bill_billing_period_start_date, bill_payer_account_id, ${keys.map((c) => c.expression).join(', ')},
                       count(*), ${sums.map((c) => `sum(${c.expression})`).join(', ')}
                  FROM billops.cur_line_item GROUP BY ${groupBy}),
         d AS (SELECT billing_period, payer_account_id, ${keys.map((c) => c.column_name).join(', ')},
                      sum(line_items), ${sums.map((c) => `sum(${c.column_name})`).join(', ')}
                 FROM billops.cur_daily GROUP BY ${groupBy})
    SELECT (SELECT count(*) FROM (SELECT * FROM li EXCEPT ALL SELECT * FROM d) x)::int
         + (SELECT count(*) FROM (SELECT * FROM d EXCEPT ALL SELECT * FROM li) y)::int AS n`);
  return r.n;
}

const workersRunning = async () => Number((await db.query(
  `SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type = 'pg_billops load worker'`)).rows[0].n);
const noWorkersLeft = () => waitFor('the load workers to exit', async () => (await workersRunning()) === 0, 15000, 50);

// Rewrite file `fileNo` (1-based) of a delivery: `edit` gets and returns its CSV text.
function editFile(bucket, report, fileNo, edit) {
  const f = path.join(dataDir(bucket, report), `${report}-${String(fileNo).padStart(5, '0')}.csv.gz`);
  fs.writeFileSync(f, zlib.gzipSync(edit(zlib.gunzipSync(fs.readFileSync(f)).toString('utf8'))));
}

// The CSV with the unblended cost of data row `row` (1-based) set to `value`.
const csvField = (v) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
function setCost(csv, row, value) {
  const records = parseCsv(csv, { relax_column_count: false });
  records[row][records[0].indexOf('line_item_unblended_cost')] = value;
  return records.map((r) => r.map(csvField).join(',')).join('\n') + '\n';
}

test('four files in parallel: the same rows, figures and history as one stream, and one swap', { timeout: 300000 }, async () => {
  // the same month (one seed: the same payer and rows) in two buckets
  const exp = month('par-a', 'par');
  month('par-b', 'par');
  await createSource('one-stream', 'par-a', 'par');
  await createSource('parallel', 'par-b', 'par');
  const { rows: [{ pid: session }] } = await db.query('SELECT pg_backend_pid() AS pid');
  assert.equal(await sync(db, 'one-stream', 0), null);
  // a second account's copy of the month: the parallel source gets its own payer's rows
  await db.query(`UPDATE billops.cur_source SET replaces_source_id = (SELECT source_id FROM billops.cur_source WHERE name = 'one-stream')
                   WHERE name = 'parallel'`);
  const keep = await db.query(`CREATE TABLE one_stream AS SELECT * FROM billops.cur_line_item`);
  assert.ok(keep);
  assert.equal(await sync(db, 'parallel', 3), null);
  await noWorkersLeft();
  // what workers say reaches the session's client, as the single stream's notices do
  const fileNotices = db.notices.filter((n) => /^billops: file \d\/4 /.test(n)).map((n) => n.slice(0, 17)).sort();
  assert.deepEqual(fileNotices, ['billops: file 1/4', 'billops: file 2/4', 'billops: file 3/4', 'billops: file 4/4'],
    db.notices.join(' | '));

  const [v] = await visible('parallel');
  assert.equal(v.n, exp.last.rows);
  assert.equal(normNumeric(v.total), normNumeric(exp.last.unblendedCost));
  const { rows: [diff] } = await db.query(
    `SELECT (SELECT count(*) FROM (SELECT * FROM one_stream EXCEPT ALL SELECT * FROM billops.cur_line_item) x)::int AS missing,
            (SELECT count(*) FROM (SELECT * FROM billops.cur_line_item EXCEPT ALL SELECT * FROM one_stream) x)::int AS extra`);
  assert.deepEqual(diff, { missing: 0, extra: 0 }, 'every row as the single stream loaded it');

  const d = await lastDelivery('parallel');
  assert.equal(d.status, 'loaded');
  assert.equal(Number(d.rows_loaded), exp.last.rows);
  const { rows: files } = await db.query(
    `SELECT file_no, rows_loaded, bytes_read, uncompressed_bytes, loader_pid FROM billops.cur_delivery_file
      WHERE delivery_id = $1 ORDER BY file_no`, [d.delivery_id]);
  assert.equal(files.length, 4);
  assert.equal(files.reduce((s, f) => s + Number(f.rows_loaded), 0), exp.last.rows, 'each file\'s rows are recorded');
  for (const f of files) assert.ok(f.bytes_read > 0 && f.uncompressed_bytes > 0, `file ${f.file_no} has its figures`);
  const pids = new Set(files.map((f) => f.loader_pid));
  assert.ok(pids.size >= 2, `files were loaded by several backends (${[...pids]})`);
  assert.ok(pids.has(session), 'the session loads files too');

  // the staging table's figures, invoice ids and map keys add up across loaders
  const same = async (sql) => {
    const a = (await db.query(sql, [(await lastDelivery('one-stream')).delivery_id])).rows;
    const b = (await db.query(sql, [d.delivery_id])).rows;
    assert.deepEqual(b, a, sql);
  };
  await same(`SELECT rows_loaded, rows_with_invoice_id, ARRAY(SELECT unnest(invoice_ids) ORDER BY 1) AS ids
                FROM billops.cur_delivery_partition WHERE delivery_id = $1`);
  await same('SELECT map_column, key FROM billops.cur_delivery_map_key WHERE delivery_id = $1 ORDER BY 1, 2');
  await same('SELECT columns FROM billops.cur_delivery WHERE delivery_id = $1');
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
  // the daily rollup: each loader wrote its own sums, and together they are the line items'
  assert.equal(await rollupDifferences(), 0, 'the rollup adds up to the line items, key by key');
  const { rows: [dr] } = await db.query(`SELECT daily_rows, (SELECT count(*) FROM (SELECT DISTINCT billing_period, payer_account_id,
      usage_date, usage_account_id, billing_entity, invoicing_entity, legal_entity, bill_type, line_item_type, product_code, service,
      region, usage_type, operation, pricing_term, currency FROM billops.cur_daily) k) AS keys
      FROM billops.cur_delivery_partition WHERE delivery_id = $1`, [d.delivery_id]);
  assert.ok(dr.daily_rows > dr.keys, `loaders wrote partial sums (${dr.daily_rows} rows for ${dr.keys} keys)`);
});

test('a bad value in one file fails the delivery as the single stream does; nothing of it shows or stays', { timeout: 300000 }, async () => {
  const before = await visible('parallel');
  month('par-b', 'par', { delivery: 2 });
  editFile('par-b', 'par', 3, (csv) => setCost(csv, 777, '12.5x'));
  const errParallel = await sync(db, 'parallel', 3);
  await noWorkersLeft();
  assert.ok(errParallel, 'the delivery fails');
  assert.deepEqual(await visible('parallel'), before, 'the month loaded before stays, whole');
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 }, 'the staging table is gone, with what workers had committed');
  const dp = await lastDelivery('parallel');
  assert.equal(dp.status, 'failed');

  // the single stream, on the same files: the same error, field for field
  const errSingle = await sync(db, 'parallel', 0);
  const ds = await lastDelivery('parallel');
  for (const k of ['code', 'message', 'detail', 'hint']) assert.equal(errParallel[k], errSingle[k], k);
  assert.equal(errParallel.code, '22P02');
  assert.equal(dp.error_context, ds.error_context, 'the history locates it the same way');
  assert.match(dp.error_context, /par-00003\.csv\.gz", data row 777, column "line_item_unblended_cost"/);
  assert.deepEqual(await visible('parallel'), before);
});

test('a damaged gzip stream in one file fails the delivery; the next good delivery loads', { timeout: 300000 }, async () => {
  const before = await visible('parallel');
  const exp = month('par-b', 'par', { delivery: 3 });
  await setFaults([{ op: 'GetObject', keyContains: 'par-00002', kind: 'corrupt', atByte: 5000 }]);
  const err = await sync(db, 'parallel', 2);
  await clearFaults();
  await noWorkersLeft();
  assert.ok(err, 'the delivery fails');
  assert.match(err.message + (err.where ?? ''), /par-00002/, 'the error names the file');
  assert.deepEqual(await visible('parallel'), before);
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
  // one stream, and a rollup that must write its partial sums out (its memory at the minimum)
  await db.query(`SET billops.daily_rollup_memory = '1MB'`);
  assert.equal(await sync(db, 'parallel', 0), null, 'the same delivery loads once the stream is whole');
  await db.query('RESET billops.daily_rollup_memory');
  const [v] = await visible('parallel');
  assert.equal(v.n, exp.last.rows);
  assert.equal(normNumeric(v.total), normNumeric(exp.last.unblendedCost));
  const { rows: [dr] } = await db.query(`SELECT daily_rows, (SELECT count(*) FROM (SELECT DISTINCT usage_date, usage_account_id,
      billing_entity, invoicing_entity, legal_entity, bill_type, line_item_type, product_code, service, region, usage_type, operation,
      pricing_term, currency FROM billops.cur_daily) k) AS keys
      FROM billops.cur_delivery_partition WHERE delivery_id = (SELECT max(delivery_id) FROM billops.cur_delivery)`);
  assert.ok(dr.daily_rows > dr.keys, `the bounded rollup wrote partial sums (${dr.daily_rows} rows for ${dr.keys} keys)`);
  assert.equal(await rollupDifferences(), 0, 'which add up to the line items, key by key');
});

// Start a slow parallel sync; resolves once workers are loading.  Returns the session's pid,
// the pending sync, and the client.
async function slowParallelSync(source, workers) {
  await setFaults([{ op: 'GetObject', keyContains: 'par-0000', kind: 'slow', bytesPerSecond: 100000 }]);
  const loader = await connect();
  loader.on('error', () => {});   // the session may be terminated on purpose
  const { rows: [{ pid }] } = await loader.query('SELECT pg_backend_pid() AS pid');
  const running = sync(loader, source, workers);
  await waitFor('load workers to be loading', async () => (await workersRunning()) >= 1
    && Number((await db.query('SELECT count(*) AS n FROM billops.cur_sync_progress')).rows[0].n) >= 2, 30000, 50);
  return { pid, running, loader };
}

test('progress shows every loader with the delivery\'s totals; cancel is prompt and stops every worker', { timeout: 300000 }, async () => {
  const before = await visible('parallel');
  month('par-b', 'par', { delivery: 4 });
  const { pid, running, loader } = await slowParallelSync('parallel', 3);
  let rows = [];
  await waitFor('rows counted across loaders', async () => {
    ({ rows } = await db.query('SELECT * FROM billops.cur_sync_progress ORDER BY pid'));
    return rows.length >= 2 && rows.every((r) => r.delivery_rows > 0n);
  }, 30000, 50);
  assert.equal(new Set(rows.map((r) => String(r.delivery_id))).size, 1, 'one delivery');
  assert.ok(rows.some((r) => r.pid === pid), 'the session is loading');
  assert.ok(new Set(rows.map((r) => String(r.file_no))).size >= 2, 'loaders are on different files');
  const ownRows = rows.reduce((s, r) => s + r.file_rows, 0n);
  assert.ok(rows.every((r) => r.delivery_rows >= r.file_rows), 'each shows the delivery\'s total, not only its own');
  assert.ok(ownRows > 0n);

  const t0 = Date.now();
  await db.query('SELECT pg_cancel_backend($1)', [pid]);
  const err = await running;
  const took = Date.now() - t0;
  await clearFaults();
  await loader.end();
  assert.equal(err?.code, '57014');
  assert.ok(took < 3000, `cancel honoured within 3 s (took ${took} ms)`);
  await noWorkersLeft();
  assert.deepEqual(await visible('parallel'), before);
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
  assert.equal((await lastDelivery('parallel')).error_sqlstate, '57014');
  assert.equal(await rollupDifferences(), 0, 'the rollup is still the visible month\'s');
});

test('a worker that is terminated fails the delivery; the next sync loads it', { timeout: 300000 }, async () => {
  const before = await visible('parallel');
  const exp = month('par-b', 'par', { delivery: 5 });
  const { pid, running, loader } = await slowParallelSync('parallel', 3);
  // a worker that is loading a file (one still starting up has taken none, and its end would be harmless)
  let w;
  await waitFor('a worker loading a file', async () => {
    ({ rows: [w] } = await db.query('SELECT pid FROM billops.cur_sync_progress WHERE pid <> $1 LIMIT 1', [pid]));
    return w !== undefined;
  }, 30000, 50);
  await db.query('SELECT pg_terminate_backend($1)', [w.pid]);
  const err = await running;
  await clearFaults();
  await loader.end();
  await noWorkersLeft();
  assert.equal(err?.code, '57000', err?.message);
  assert.match(err.message, /ended before it finished its files/);
  assert.deepEqual(await visible('parallel'), before);
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
  assert.equal(await sync(db, 'parallel', 3), null);
  assert.equal((await visible('parallel'))[0].n, exp.last.rows);
});

test('workers never outlive their session; the next sync clears what it left', { timeout: 300000 }, async () => {
  const before = await visible('parallel');
  const exp = month('par-b', 'par', { delivery: 6 });
  const { pid, running, loader } = await slowParallelSync('parallel', 3);
  await db.query('SELECT pg_terminate_backend($1)', [pid]);
  await running;
  await loader.end().catch(() => {});
  await clearFaults();
  await noWorkersLeft();
  assert.deepEqual(await visible('parallel'), before);
  // the dead session's staging table (and its rollup's) stays until a sync of the source clears it
  assert.equal((await leftovers()).tables, 2);
  assert.equal(await sync(db, 'parallel', 3), null);
  const { rows } = await db.query(
    `SELECT status, error_message FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
      WHERE s.name = 'parallel' ORDER BY delivery_id DESC LIMIT 2`);
  assert.equal(rows[0].status, 'loaded');
  assert.equal(rows[1].status, 'aborted');
  assert.equal((await visible('parallel'))[0].n, exp.last.rows);
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
});

test('with no free worker slot the session loads the files itself', { timeout: 300000 }, async () => {
  const { rows: [{ setting }] } = await db.query(`SELECT setting FROM pg_settings WHERE name = 'max_worker_processes'`);
  const files = Number(setting) + 4;   // more workers wanted than the server has slots
  const exp = month('par-c', 'parc', { rows: 20000, files, seed: 12 });   // another payer
  await createSource('many-files', 'par-c', 'parc');
  assert.equal(await sync(db, 'many-files', 64), null);
  assert.ok(db.notices.some((n) => /load workers started/.test(n)), `a notice says fewer workers started (${db.notices})`);
  await noWorkersLeft();
  const [v] = await visible('many-files');
  assert.equal(v.n, exp.last.rows);
  assert.equal(normNumeric(v.total), normNumeric(exp.last.unblendedCost));
  assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 });
});

test('a database\'s search_path does not change what the workers\' rollup means', { timeout: 300000 }, async () => {
  // load workers connect with the database's settings: one that puts a "date" of its own first
  await db.query('CREATE SCHEMA IF NOT EXISTS shadow');
  await db.query('CREATE DOMAIN shadow.date AS text');
  await db.query('ALTER DATABASE billops_it_parallel SET search_path = shadow, pg_catalog, public');
  try {
    const exp = month('par-b', 'par', { delivery: 7 });
    assert.equal(await sync(db, 'parallel', 3), null);
    assert.equal((await visible('parallel'))[0].n, exp.last.rows);
    assert.equal(await rollupDifferences(), 0);
  } finally {
    await db.query('ALTER DATABASE billops_it_parallel RESET search_path');
    await db.query('DROP SCHEMA shadow CASCADE');
  }
});

// Seeded trials: a random degree of parallelism and, most times, one fault in one random file.
// Whatever happens, a delivery is either loaded whole or not visible at all, and nothing stays.
function rng(seed) {   // mulberry32: small seeds give unrelated sequences
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}
test('seeded random faults: loaded whole or not at all, never a leftover', { timeout: 600000 }, async (t) => {
  const seeds = process.env.PARALLEL_SEED ? [Number(process.env.PARALLEL_SEED)] : [1, 2, 3, 4, 5, 6, 7, 8];
  await createSource('trials', 'par-t', 'part');
  for (const seed of seeds) {
    const r = rng(seed);
    const files = 2 + Math.floor(r() * 4);
    const workers = Math.floor(r() * 4);
    // one payer for every trial (the generator's seed names it); the row count makes each a new assembly
    const exp = month('par-t', 'part', { rows: 6000 * files + seed, files, delivery: 1, seed: 31 });
    const target = 1 + Math.floor(r() * files);
    const key = `part-${String(target).padStart(5, '0')}`;
    const kinds = ['none', 'value', 'truncate', 'corrupt', 'status'];
    const kind = kinds[Math.floor(r() * kinds.length)];
    const label = `seed ${seed}: ${files} files, ${workers} workers, ${kind} in file ${target}`;
    if (kind === 'value') editFile('par-t', 'part', target, (csv) => setCost(csv, 1 + Math.floor(r() * 5000), 'NaN'));
    else if (kind === 'truncate') await setFaults([{ op: 'GetObject', keyContains: key, kind: 'truncate', afterBytes: 3000, times: 20 }]);
    else if (kind === 'corrupt') await setFaults([{ op: 'GetObject', keyContains: key, kind: 'corrupt', atByte: 2000 + Math.floor(r() * 20000) }]);
    else if (kind === 'status') await setFaults([{ op: 'GetObject', keyContains: key, kind: 'status', status: 500, times: 50 }]);
    const before = await visible('trials');
    const err = await sync(db, 'trials', workers);
    await clearFaults();
    await noWorkersLeft();
    t.diagnostic(`${label}: ${err ? `failed (${err.code})` : 'loaded'}`);
    assert.deepEqual(await leftovers(), { tables: 0, partitions: 0 }, label);
    // a bad value or a damaged stream always fails; cut bodies and 500s may be retried through
    if (kind === 'none') assert.equal(err, null, `${label}: ${err?.message}`);
    if (kind === 'value' || kind === 'corrupt') assert.ok(err, `${label}: the delivery fails`);
    if (err === null) {
      const [v] = await visible('trials');
      assert.equal(v.n, exp.last.rows, label);
      assert.equal(normNumeric(v.total), normNumeric(exp.last.unblendedCost), label);
    } else {
      assert.deepEqual(await visible('trials'), before, `${label}: what was loaded before stays`);
      assert.equal((await lastDelivery('trials')).status, 'failed', label);
    }
    assert.equal(await rollupDifferences(), 0, `${label}: the rollup is the visible line items'`);
  }
});
