// pg_billops without shared_preload_libraries: everything but the BILL worker
// works, and what needs the worker says so.
//
// The test clusters preload pg_billops, so this file starts one of its own
// (initdb in BILLOPS_RUN, no preload), as the same OS account as the main
// cluster (PostgreSQL refuses root).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { pg, RUN, connect } from './helpers.mjs';

const PGBIN = '/usr/lib/postgresql/15/bin';
const asRoot = process.getuid() === 0;
// run a PostgreSQL program as the server account (postgres when we are root)
const asPg = (prog, args) => execFileSync(asRoot ? 'runuser' : prog, asRoot ? ['-u', 'postgres', '--', prog, ...args] : args,
  { stdio: ['ignore', 'pipe', 'pipe'] });

let dir, port, client;
const notices = [];

before(async () => {
  assert.ok(RUN, 'BILLOPS_RUN is set (run under test/lib.sh)');
  dir = fs.mkdtempSync(path.join(RUN, 'not-preloaded-'));
  fs.chmodSync(dir, 0o755);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    fs.chownSync(dir, uid, gid);
  }
  asPg(`${PGBIN}/initdb`, ['-D', path.join(dir, 'data'), '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  port = 40000 + (process.pid % 20000);
  fs.appendFileSync(path.join(dir, 'data', 'postgresql.conf'),
    `listen_addresses = ''\nunix_socket_directories = '${dir}'\nport = ${port}\nfsync = off\n`);
  asPg(`${PGBIN}/pg_ctl`, ['-D', path.join(dir, 'data'), '-l', path.join(dir, 'postgres.log'), '-w', 'start']);
  client = new pg.Client({ host: dir, port, user: 'postgres', database: 'postgres' });
  client.on('notice', (n) => notices.push(n));
  await client.connect();
});

after(async () => {
  if (client) await client.end().catch(() => {});
  if (dir) {
    try { asPg(`${PGBIN}/pg_ctl`, ['-D', path.join(dir, 'data'), '-m', 'immediate', 'stop']); } catch { /* already down */ }
    if (!process.env.BILLOPS_KEEP) fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loading the library without preload warns, with the fix as hint', async () => {
  await client.query('CREATE EXTENSION pg_billops CASCADE');
  const w = notices.find((n) => /not in shared_preload_libraries/.test(n.message));
  assert.ok(w, `a warning says the library is not preloaded (got: ${notices.map((n) => n.message).join(' | ')})`);
  assert.equal(w.severity, 'WARNING');
  assert.equal(w.code, '55000');
  assert.match(w.hint, /Add pg_billops to shared_preload_libraries/);
});

test('everything but the worker works: settings are defined, CUR and payable functions answer', async () => {
  // each module defined its settings although the worker was not registered
  const { rows } = await client.query(`SELECT name FROM pg_settings WHERE name LIKE 'billops.%' ORDER BY 1`);
  const names = rows.map((r) => r.name);
  for (const s of ['billops.bill_database', 'billops.bill_poll_interval', 'billops.s3_max_retries',
    'billops.http_connect_timeout', 'billops.load_batch_rows', 'billops.aws_api_max_retries'])
    assert.ok(names.includes(s), `${s} is defined`);
  const r = await client.query(`SELECT billops.bill_invoice_number('111111111111|2024-03|aws_usage:AWS') AS n`);
  assert.match(r.rows[0].n, /^111111111111-202403-[0-9a-f]{10}$/);
  const st = await client.query('SELECT pid FROM billops._bill_worker_state()');
  assert.equal(st.rows[0].pid, null, 'no worker runs');
});

test('queuing for BILL says, once per transaction, that no worker will deliver it (55000), and queues all the same', async () => {
  notices.length = 0;
  await client.query('BEGIN');
  await client.query('SELECT billops._bill_wake()');
  await client.query('SELECT billops._bill_wake()');
  await client.query('COMMIT');
  await client.query('SELECT billops._bill_wake()');
  const warned = notices.filter((n) => /queued for BILL, but no BILL worker can deliver it/.test(n.message));
  assert.equal(warned.length, 2, 'one warning per transaction (two transactions)');
  for (const w of warned) {
    assert.equal(w.severity, 'WARNING');
    assert.equal(w.code, '55000');
    assert.match(w.hint, /Add pg_billops to shared_preload_libraries/);
  }
});

// The other side of the same ordering: with preload, the worker's postmaster
// setting is defined before the billops prefix is reserved, so its value in
// postgresql.conf (test/lib.sh sets 1 s) is kept, not dropped as a placeholder.
test('preloaded: billops.bill_worker_restart_interval keeps its value from postgresql.conf', async () => {
  const db = await connect();
  try {
    assert.equal((await db.query("SELECT current_setting('billops.bill_worker_restart_interval') AS v")).rows[0].v, '1s');
  } finally {
    await db.end();
  }
});
