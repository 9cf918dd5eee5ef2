// CUR ingest through the S3 emulator (which verifies every SigV4 signature
// with @smithy/signature-v4): the real sample, re-deliveries, both layouts,
// bad input that must fail clearly and lose nothing, transient faults that
// must be survived, atomicity of the swap, progress, and cancel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { createRequire } from 'node:module';
import {
  connect, closeAll, freshDatabase, expectError, setFaults, clearFaults, emulator, generate, bucketDir, S3, S3_ROOT,
  SHARED, ROOT, decimalSum, decimalToString, normNumeric,
} from './helpers.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const { parse: parseCsv } = require('csv-parse/sync');

const SAMPLE = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const SECRETS = ['billops-test-secret', 'not-the-right-secret', 'billops-session-secret',
  'billops-session-token', 'billops-expired-secret', 'billops-expired-token'];

let db;           // admin connection to the test database
before(async () => {
  db = await freshDatabase('billops_it_s3');
  await clearFaults();
});
after(async () => { await clearFaults().catch(() => {}); await closeAll(); });

async function createSource(name, bucket, report, opts = {}) {
  const { layout = 'legacy_cur', credentials = 'default', virtualHost = false } = opts;
  const endpoint = virtualHost ? S3.replace('127.0.0.1', 's3.localhost') : S3;
  await db.query(`SELECT billops.create_cur_source($1, $2, $3, layout => $4, prefix => 'cur',
                  credentials => $5, endpoint_url => $6, path_style => $7)`,
  [name, bucket, report, layout, credentials, endpoint, !virtualHost]);
}

async function sync(client, name, extraSql = '') {
  client.notices = [];
  if (extraSql) await client.query(extraSql);
  await client.query('CALL billops.sync_cur_source($1)', [name]);
  return client.notices;
}

async function visible(source) {
  const { rows } = await db.query(
    `SELECT cp.delivery_id, count(li.*)::int AS n, coalesce(sum(li.line_item_unblended_cost), 0)::text AS total
       FROM billops.cur_partition cp JOIN billops.cur_source s USING (source_id)
       LEFT JOIN billops.cur_line_item li
              ON li.bill_billing_period_start_date = cp.billing_period
             AND li.bill_payer_account_id = cp.payer_account_id
      WHERE s.name = $1 GROUP BY cp.delivery_id ORDER BY 1`, [source]);
  return rows;
}

async function lastDelivery(source) {
  const { rows } = await db.query(
    `SELECT d.* FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
      WHERE s.name = $1 ORDER BY delivery_id DESC LIMIT 1`, [source]);
  return rows[0];
}

// Publish a CSV as a legacy delivery; returns the report key.  `mutate`
// lets a test damage the gzip bytes or the manifest.
function stageLegacy(bucket, report, assembly, csvBuffer, { gz, manifest, period = '20231101-20231201', keys } = {}) {
  const base = path.join(bucketDir(bucket), 'cur', report, period);
  fs.mkdirSync(path.join(base, assembly), { recursive: true });
  const key = `cur/${report}/${period}/${assembly}/${report}-1.csv.gz`;
  let bytes = zlib.gzipSync(csvBuffer);
  if (gz) bytes = gz(bytes);
  fs.writeFileSync(path.join(S3_ROOT, bucket, key), bytes);
  const m = manifest ?? JSON.stringify({
    assemblyId: assembly, account: '123412340534', columns: [], charset: 'UTF-8', compression: 'GZIP',
    contentType: 'text/csv', reportId: 'x', reportName: report,
    billingPeriod: { start: `${period.slice(0, 8)}T000000.000Z`, end: `${period.slice(9)}T000000.000Z` },
    bucket, reportKeys: keys ?? [key], additionalArtifactKeys: [],
  });
  fs.writeFileSync(path.join(base, assembly, `${report}-Manifest.json`), m);
  fs.writeFileSync(path.join(base, `${report}-Manifest.json`), m);
  return key;
}

function assertNoSecrets(text, what) {
  for (const s of SECRETS) assert.ok(!String(text).includes(s), `${what} must not contain a secret (${s})`);
}

// ---------------------------------------------------------------------------

test('the real sample through S3: totals per account and line item type match the CSV', async () => {
  const csv = fs.readFileSync(SAMPLE);
  stageLegacy('sample-bucket', 'sample', 'assembly-sample-1', csv);
  await createSource('sample', 'sample-bucket', 'sample');
  const notices = await sync(db, 'sample');
  assert.ok(notices.some((n) => /loading assembly assembly-sample-1/.test(n)), 'a NOTICE reports the load');

  // independent computation: parse the CSV in Node and sum exactly
  const records = parseCsv(csv, { columns: true });
  const expect = new Map();
  for (const r of records) {
    const k = `${r['lineItem/UsageAccountId']}|${r['lineItem/LineItemType']}`;
    expect.set(k, [...(expect.get(k) ?? []), r['lineItem/UnblendedCost']]);
  }
  const { rows } = await db.query(
    `SELECT line_item_usage_account_id || '|' || line_item_line_item_type AS k,
            count(*)::int AS n, sum(line_item_unblended_cost)::text AS total
       FROM billops.cur_line_item GROUP BY 1`);
  assert.equal(rows.length, expect.size, 'same groups');
  for (const r of rows) {
    const vals = expect.get(r.k);
    assert.ok(vals, `group ${r.k} exists in the CSV`);
    assert.equal(r.n, vals.length, `rows of ${r.k}`);
    assert.equal(normNumeric(r.total), decimalToString(decimalSum(vals)), `total of ${r.k}`);
  }
  const d = await lastDelivery('sample');
  assert.equal(d.status, 'loaded');
  assert.equal(d.rows_loaded, BigInt(records.length));
  assert.equal(d.bytes_read, BigInt(fs.statSync(path.join(S3_ROOT, 'sample-bucket',
    'cur/sample/20231101-20231201/assembly-sample-1/sample-1.csv.gz')).size), 'bytes read = object size');
});

test('three deliveries of one month: rows are the last one\'s, history shows all three', async () => {
  bucketDir('gen-bucket');
  let exp;
  for (const k of [1, 2, 3]) {
    generate(['--out', S3_ROOT, '--bucket', 'gen-bucket', '--prefix', 'cur', '--report', 'monthly',
      '--layout', 'legacy', '--period', '2024-01', '--rows', '12000', '--payer', '2',
      '--deliveries', String(k), '--seed', '7', '--expected', path.join(S3_ROOT, `exp-${k}.json`)]);
    exp = JSON.parse(fs.readFileSync(path.join(S3_ROOT, `exp-${k}.json`)));
    if (k === 1) await createSource('monthly', 'gen-bucket', 'monthly');
    await sync(db, 'monthly');
  }
  const { rows: hist } = await db.query(
    `SELECT assembly_id, status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
      WHERE s.name = 'monthly' ORDER BY delivery_id`);
  assert.deepEqual(hist.map((h) => h.status), ['superseded', 'superseded', 'loaded']);
  assert.equal(hist[2].assembly_id, exp.last.assemblyId, 'the visible delivery is the newest assembly');
  assert.equal(new Set(hist.map((h) => h.assembly_id)).size, 3, 'three distinct assemblies');

  for (const [payer, p] of Object.entries(exp.payers)) {
    const { rows } = await db.query(
      `SELECT line_item_line_item_type AS t, count(*)::int AS n, sum(line_item_unblended_cost)::text AS total
         FROM billops.cur_line_item WHERE bill_payer_account_id = $1 AND bill_billing_period_start_date = '2024-01-01'
        GROUP BY 1`, [payer]);
    const got = Object.fromEntries(rows.map((r) => [r.t, r]));
    for (const [type, e] of Object.entries(p.byLineItemType)) {
      assert.equal(got[type]?.n, e.rows, `${payer} ${type} rows`);
      assert.equal(normNumeric(got[type].total), normNumeric(e.unblendedCost), `${payer} ${type} total`);
    }
  }
  // no table left behind by the two superseded deliveries
  const { rows: leaves } = await db.query(
    `SELECT count(*)::int AS n FROM pg_inherits WHERE inhparent = 'billops.cur_line_item_202401'::regclass`);
  assert.equal(leaves[0].n, Object.keys(exp.payers).length, 'one leaf per payer');
});

test('the same delivery twice is a no-op', async () => {
  const before = await lastDelivery('monthly');
  await emulator('DELETE', 'requests');
  const notices = await sync(db, 'monthly');
  assert.ok(notices.some((n) => /already loaded/.test(n)), 'reports the assembly as already loaded');
  const afterD = await lastDelivery('monthly');
  assert.equal(afterD.delivery_id, before.delivery_id, 'no new history row');
  const log = await emulator('GET', 'requests');
  assert.ok(!log.some((r) => r.op === 'GetObject' && /\.csv\.gz/.test(r.path)), 'no report file is downloaded again');
});

test('a CUR 2.0 Data Export over virtual-hosted addressing, final invoice', async () => {
  bucketDir('exports-bucket');
  const expFile = path.join(S3_ROOT, 'exp-cur2.json');
  generate(['--out', S3_ROOT, '--bucket', 'exports-bucket', '--prefix', 'cur', '--report', 'daily-export',
    '--layout', 'cur2', '--period', '2024-02', '--rows', '8000', '--payer', '1', '--deliveries', '2',
    '--final', '--seed', '11', '--expected', expFile]);
  const exp = JSON.parse(fs.readFileSync(expFile));
  await createSource('exports', 'exports-bucket', 'daily-export', { layout: 'cur2', virtualHost: true, credentials: 'profile:session' });
  await sync(db, 'exports');
  const [payer, p] = Object.entries(exp.payers)[0];
  const { rows } = await db.query(
    `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS total,
            count(*) FILTER (WHERE resource_tags IS NOT NULL)::int AS tagged
       FROM billops.cur_line_item WHERE bill_payer_account_id = $1 AND bill_billing_period_start_date = '2024-02-01'`, [payer]);
  assert.equal(rows[0].n, p.rows);
  assert.equal(normNumeric(rows[0].total), normNumeric(p.unblendedCost));
  assert.ok(rows[0].tagged > 0, 'resource_tags arrive as jsonb');
  const { rows: st } = await db.query(
    `SELECT invoice_state FROM billops.cur_period_status WHERE source_name = 'exports'`);
  assert.deepEqual(st.map((r) => r.invoice_state), ['final']);
});

// --- bad input: every case keeps the previous delivery whole and visible ------

async function badDelivery(name, stage, { sqlstate, message, source = 'sample', pre = '' }) {
  const beforeV = await visible(source);
  if (stage) stage();
  const c = await connect();
  try {
    if (pre) await c.query(pre);
    const err = await expectError(c, 'CALL billops.sync_cur_source($1)', [source]);
    assert.equal(err.code, sqlstate, `${name}: SQLSTATE (got ${err.code}: ${err.message})`);
    if (message) assert.match(err.message, message, `${name}: message`);
    assertNoSecrets(`${err.message} ${err.detail} ${err.hint}`, `${name}: the error`);
  } finally {
    await c.end();
  }
  assert.deepEqual(await visible(source), beforeV, `${name}: the previous delivery stays visible and whole`);
  const d = await lastDelivery(source);
  assert.equal(d.status, 'failed', `${name}: the attempt is recorded as failed`);
  assert.equal(d.error_sqlstate, sqlstate, `${name}: history keeps the SQLSTATE`);
  assertNoSecrets(JSON.stringify(d, (k, v) => (typeof v === 'bigint' ? String(v) : v)), `${name}: the history row`);
  const { rows } = await db.query(`SELECT count(*)::int AS n FROM pg_class WHERE relnamespace = 'billops'::regnamespace
      AND relname ~ '_d[0-9]+$' AND NOT EXISTS (SELECT 1 FROM billops.cur_partition WHERE 'billops.' || relname IN (table_name, daily_table))`);
  assert.equal(rows[0].n, 0, `${name}: no staging table left behind`);
}

const csvSample = () => fs.readFileSync(SAMPLE);

test('bad input: truncated gzip', async () => {
  await badDelivery('truncated gzip', () => stageLegacy('sample-bucket', 'sample', 'assembly-truncated', csvSample(),
    { gz: (b) => b.subarray(0, Math.floor(b.length / 2)) }), { sqlstate: '22P04', message: /truncated gzip stream/ });
});

test('bad input: malformed manifest', async () => {
  await badDelivery('malformed manifest', () => stageLegacy('sample-bucket', 'sample', 'assembly-badjson', csvSample(),
    { manifest: '{"assemblyId": "x", "reportKeys": [' }), { sqlstate: '22032', message: /not valid JSON/ });
});

test('bad input: manifest naming a missing file', async () => {
  await badDelivery('missing file', () => stageLegacy('sample-bucket', 'sample', 'assembly-missing', csvSample(),
    { keys: ['cur/sample/20231101-20231201/assembly-missing/sample-9.csv.gz'] }),
  { sqlstate: '58P01', message: /not in the bucket/ });
});

test('bad input: missing key column', async () => {
  const text = csvSample().toString('utf8').replace('lineItem/UnblendedCost', 'lineItem/SomethingElse');
  await badDelivery('missing column', () => stageLegacy('sample-bucket', 'sample', 'assembly-nocol', Buffer.from(text)),
    { sqlstate: '22P04', message: /lacks the required column line_item_unblended_cost/ });
});

test('bad input: non-numeric cost', async () => {
  // edit one parsed record and write the CSV back properly quoted (the sample
  // has quoted fields with commas, so editing raw lines is not safe)
  const records = parseCsv(csvSample(), { relax_column_count: false });
  const col = records[0].indexOf('lineItem/UnblendedCost');
  records[450][col] = 'twelve';
  const quote = (f) => (/[",\n\r]/.test(f) ? `"${f.replace(/"/g, '""')}"` : f);
  const text = records.map((r) => r.map(quote).join(',')).join('\n') + '\n';
  await badDelivery('non-numeric cost', () => stageLegacy('sample-bucket', 'sample', 'assembly-nan', Buffer.from(text)),
    { sqlstate: '22P02', message: /invalid input syntax for type numeric: "twelve"/ });
  const d = await lastDelivery('sample');
  assert.match(d.error_context, /data row 450, column "lineItem\/UnblendedCost"/, 'the history names the row and column');
});

test('bad input: bad credentials and bad signatures (403)', async () => {
  stageLegacy('sample-bucket', 'sample', 'assembly-authcheck', csvSample());
  for (const [profile, code] of [['wrong-secret', /SignatureDoesNotMatch/], ['unknown-key', /InvalidAccessKeyId/],
    ['expired', /ExpiredToken/], ['does-not-exist', /no AWS credentials found/]]) {
    await db.query(`UPDATE billops.cur_source SET credentials = $1 WHERE name = 'sample'`, [`profile:${profile}`]);
    try {
      const beforeV = await visible('sample');
      const err = await expectError(db, `CALL billops.sync_cur_source('sample')`);
      assert.equal(err.code, '28000', `${profile}: SQLSTATE`);
      assert.match(err.message, code, `${profile}: names the S3 error`);
      assertNoSecrets(`${err.message} ${err.detail} ${err.hint}`, `${profile}: the error`);
      assert.deepEqual(await visible('sample'), beforeV, `${profile}: nothing changed`);
    } finally {
      await db.query(`UPDATE billops.cur_source SET credentials = 'default' WHERE name = 'sample'`);
    }
  }
});

test('bad input: S3 500s beyond retries', async () => {
  await setFaults([{ op: 'GetObject', keyContains: 'assembly-authcheck', kind: 'status', status: 500 }]);
  try {
    await badDelivery('500s', null, {
      sqlstate: '58030', message: /failed after 3 attempts/,
      pre: 'SET billops.s3_max_retries = 2; SET billops.s3_retry_base = 5',
    });
  } finally { await clearFaults(); }
  const log = await emulator('GET', 'requests');
  assert.ok(log.filter((r) => r.op === 'GetObject' && r.status === 500).length >= 3, 'retried before giving up');
});

// --- transient faults are survived ------------------------------------------

test('transient faults: SlowDown, a cut-off body and a short body are retried or resumed', async () => {
  stageLegacy('sample-bucket', 'sample', 'assembly-faults', csvSample());
  const size = fs.statSync(path.join(S3_ROOT, 'sample-bucket', 'cur/sample/20231101-20231201/assembly-faults/sample-1.csv.gz')).size;
  await emulator('DELETE', 'requests');
  await setFaults([
    { op: 'GetObject', keyContains: 'assembly-faults/sample-1', kind: 'status', status: 503, times: 1 },
    { op: 'GetObject', keyContains: 'assembly-faults/sample-1', kind: 'truncate', afterBytes: Math.floor(size / 3), times: 1 },
    { op: 'GetObject', keyContains: 'assembly-faults/sample-1', kind: 'wrongLength', delta: -100, times: 1 },
  ]);
  const c = await connect();
  try {
    const notices = await sync(c, 'sample', 'SET billops.s3_retry_base = 5');
    assert.ok(notices.some((n) => /resuming .* at byte/.test(n)), `a resume is reported (${notices.join(' / ')})`);
  } finally { await c.end(); await clearFaults(); }
  const d = await lastDelivery('sample');
  assert.equal(d.status, 'loaded');
  assert.equal(d.assembly_id, 'assembly-faults');
  assert.equal(d.bytes_read, BigInt(size), 'every byte read exactly once');
  const [v] = await visible('sample');
  const records = parseCsv(csvSample(), { columns: true });
  assert.equal(v.n, records.length);
  assert.equal(normNumeric(v.total), decimalToString(decimalSum(records.map((r) => r['lineItem/UnblendedCost']))));
  const log = await emulator('GET', 'requests');
  assert.ok(log.some((r) => r.op === 'GetObject' && r.range), 'the body was resumed with a Range request');
});

// --- atomicity, progress, cancel ---------------------------------------------

test('a reader during the swap never sees a mix of deliveries', { timeout: 180000 }, async () => {
  bucketDir('swap-bucket');
  const gen = (k) => generate(['--out', S3_ROOT, '--bucket', 'swap-bucket', '--prefix', 'cur', '--report', 'swap',
    '--layout', 'legacy', '--period', '2024-03', '--rows', '30000', '--payer', '1', '--deliveries', String(k), '--seed', '5',
    '--expected', path.join(S3_ROOT, `swap-${k}.json`)]);
  gen(1);
  await createSource('swap', 'swap-bucket', 'swap');
  await sync(db, 'swap');
  const old = (await visible('swap'))[0];
  gen(2);
  const e2 = JSON.parse(fs.readFileSync(path.join(S3_ROOT, 'swap-2.json')));
  assert.notEqual(normNumeric(e2.last.unblendedCost), normNumeric(old.total), 'the deliveries differ');

  const reader = await connect();
  const seen = [];
  let stop = false;
  const loop = (async () => {
    while (!stop) {
      const { rows } = await reader.query(
        `SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS total
           FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-03-01'`);
      seen.push(`${rows[0].n}/${normNumeric(rows[0].total)}`);
    }
  })();
  await sync(db, 'swap');
  stop = true;
  await loop;
  await reader.end();
  const fresh = (await visible('swap'))[0];
  const allowed = new Set([`${old.n}/${normNumeric(old.total)}`, `${fresh.n}/${normNumeric(fresh.total)}`]);
  assert.equal(normNumeric(fresh.total), normNumeric(e2.last.unblendedCost), 'the new delivery is complete');
  assert.ok(seen.length > 5, `the reader ran during the load (${seen.length} reads)`);
  for (const s of seen) assert.ok(allowed.has(s), `a reader saw ${s}, which is neither delivery`);
});

test('two syncs racing on one new delivery load it once', { timeout: 120000 }, async () => {
  stageLegacy('sample-bucket', 'sample', 'assembly-race', csvSample());
  await setFaults([{ op: 'GetObject', keyContains: 'assembly-race/', kind: 'slow', bytesPerSecond: 25000 }]);
  const a = await connect();
  const b = await connect();
  try {
    const first = a.query(`CALL billops.sync_cur_source('sample')`);
    await new Promise((r) => setTimeout(r, 400));   // b starts while a is still loading
    const second = b.query(`CALL billops.sync_cur_source('sample')`);
    await Promise.all([first, second]);
  } finally {
    await clearFaults();
    await a.end();
    await b.end();
  }
  const { rows } = await db.query(
    `SELECT status, error_message FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
      WHERE s.name = 'sample' AND assembly_id = 'assembly-race' ORDER BY delivery_id`);
  assert.deepEqual(rows.map((r) => r.status).sort(), ['aborted', 'loaded'], 'one load, one stand-down');
  assert.match(rows.find((r) => r.status === 'aborted').error_message, /already loaded by a concurrent sync/);
  const [v] = await visible('sample');
  const records = parseCsv(csvSample(), { columns: true });
  assert.equal(v.n, records.length, 'the month holds one copy of the delivery');
});

test('progress is visible while a slow delivery loads, and cancel is prompt', { timeout: 120000 }, async () => {
  stageLegacy('sample-bucket', 'sample', 'assembly-slow', csvSample());
  await setFaults([{ op: 'GetObject', keyContains: 'assembly-slow/', kind: 'slow', bytesPerSecond: 4000 }]);
  const beforeV = await visible('sample');
  const loader = await connect();
  const { rows: [{ pid }] } = await loader.query('SELECT pg_backend_pid() AS pid');
  const running = loader.query(`CALL billops.sync_cur_source('sample')`).then(() => null, (e) => e);
  let progress = null;
  let seen = [];
  for (let i = 0; i < 100 && !progress; i++) {
    await new Promise((r) => setTimeout(r, 100));
    const { rows } = await db.query('SELECT * FROM billops.cur_sync_progress WHERE pid = $1', [pid]);
    if (rows.length && rows[0].file_bytes_read > 0n) progress = rows[0];
    else {
      const raw = await db.query(`SELECT a.state, a.wait_event_type, a.wait_event, p.param11, p.param14
                                    FROM pg_stat_activity a LEFT JOIN pg_stat_get_progress_info('COPY') p USING (pid)
                                   WHERE a.pid = $1`, [pid]);
      seen.push(JSON.stringify(raw.rows[0], (k, v) => (typeof v === 'bigint' ? String(v) : v)));
    }
  }
  assert.ok(progress, `billops.cur_sync_progress shows the running load (saw: ${seen.slice(-5).join(' ')})`);
  assert.equal(progress.source_name, 'sample');
  assert.equal(progress.file_no, 1n);
  assert.equal(progress.file_count, 1n);
  assert.match(progress.current_file, /assembly-slow\/sample-1\.csv\.gz$/);
  const { rows: act } = await db.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid]);
  assert.ok(['Extension', null].includes(act[0].wait_event_type), 'waits are reported as Extension');

  const t0 = Date.now();
  await db.query('SELECT pg_cancel_backend($1)', [pid]);
  const err = await running;
  const took = Date.now() - t0;
  await clearFaults();
  await loader.end();
  assert.ok(err, 'the sync was cancelled');
  assert.equal(err.code, '57014');
  assert.ok(took < 3000, `cancel honoured in the middle of a slow body (took ${took} ms)`);
  assert.deepEqual(await visible('sample'), beforeV, 'the previous delivery stays after a cancel');
  const d = await lastDelivery('sample');
  assert.equal(d.status, 'failed');
  assert.equal(d.error_sqlstate, '57014', 'the history records the cancel');
});
