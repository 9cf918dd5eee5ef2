// The BILL worker under test: its database, the emulator's control API, and
// the ways a test watches, holds, kills and restarts it.  Shared by the BILL
// worker tests (bill-worker, bill-exactly-once, bill-crash-matrix) and the
// 1,000-trial crash matrix (test/bench/bill-crash-matrix.mjs).
//
// Needs the environment of test/run-tests.sh: a cluster with pg_billops
// preloaded, the BILL emulator (BILL_EMULATOR_CONTROL, BILL_ENDPOINT, ...), and
// billops.bill_base_url / billops.bill_credentials_file set by lib.sh's
// start_bill_emulator.  A session points the worker at its own database.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { RUN, one, waitFor, billControl, connectTo, openClients, writeBillTestMonth, AWS_INC } from './helpers.mjs';

export const WORKER = 'pg_billops BILL worker';
export const BILL = process.env.BILL_ENDPOINT;
export const ORG = process.env.BILL_ORGANIZATION_ID;
export const PGBIN = '/usr/lib/postgresql/15/bin';
// the worker restarts after billops.bill_worker_restart_interval (lib.sh: 1 s; 10 s by default)
export const RESTART_WAIT_MS = 16000;

// --- the BILL emulator ------------------------------------------------------------
export const control = billControl;
export const setFaults = (faults) => control('POST', 'faults', { faults });
export const clearFaults = () => control('DELETE', 'faults');
export const state = () => control('GET', 'state');
export const stats = () => control('GET', 'stats');
// the API requests (the control API is not logged there), oldest first
export const requests = () => control('GET', 'requests');
export const isApi = (r, method, p) => r.method === method && r.path === `/connect${p}`;
// A request by method (one, or a list) and path (exact, or a RegExp tested against the path below /connect).
const methodIs = (m, method) => (Array.isArray(method) ? method.includes(m) : m === method);
const pathIs = (x, p) => (p instanceof RegExp ? p.test(x) : x === p);
export const isRequest = (r, method, p) => methodIs(r.method, method) && r.path.startsWith('/connect') &&
  pathIs(r.path.slice('/connect'.length), p);
export const ok2xx = (r) => r.status >= 200 && r.status < 300;

// BILL's own API, as a person working in BILL would use it (to set the scene)
export async function billApi(method, p, body, session) {
  const res = await fetch(`${BILL}${p}`, {
    method,
    headers: { 'content-type': 'application/json', ...(session ? { devKey: process.env.BILL_DEV_KEY, sessionId: session } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`BILL ${method} ${p}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}
export async function billLogin() {
  const r = await billApi('POST', '/v3/login', {
    username: process.env.BILL_USERNAME, password: process.env.BILL_PASSWORD,
    organizationId: ORG, devKey: process.env.BILL_DEV_KEY,
  });
  return r.sessionId;
}

// --- a month to push -----------------------------------------------------------------
// Load a final March 2024 month of AWS Marketplace charges of one seller for one payer
// (lines: [productCode, productName, cost]) through `client`, and build its payables
// (unless build is false).  The seller is the CSV's legal entity, quoted as CSV needs.
export async function loadMarketplaceMonth(client, { payer, lines, seller = '"Datadog, Inc."', invoice = 'INV-M-1',
  source, delivery, build = true }) {
  const file = path.join(RUN, `marketplace-${payer}-${delivery}.csv`);
  writeBillTestMonth(file, lines.map(([product, name, cost]) =>
    [invoice, AWS_INC, 'AWS Marketplace', '222222222222', 'Usage', product, cost, seller, name]), 0, { payer });
  await client.query('SET client_min_messages = warning');
  await client.query(`SELECT billops.load_cur_file($1, $2, $3)`, [file, source, delivery]);
  fs.rmSync(file, { force: true });
  if (build) await client.query('SELECT count(*) FROM billops.build_payables(NULL, $1)', [payer]);
}

// --- processes ----------------------------------------------------------------------
// the worker's pg_stat_activity text (bill_lanes.c) lists the requests in flight:
// "pg_billops: waiting on BILL: outbox 12: POST /v3/bills; outbox 13: ..."
export const RE_ACTIVITY = /^pg_billops: waiting on BILL: outbox \d+: /;
export const inFlight = (query) => [...(query ?? '').matchAll(/outbox (\d+): (GET|POST|PUT|PATCH) ([^\s;]+)/g)]
  .map((m) => ({ outboxId: Number(m[1]), method: m[2], path: m[3] }));
export function processAlive(pid) {
  try { process.kill(pid, 0); return true; } catch (e) { return e.code === 'EPERM'; }
}
// How many other test files node runs alongside this one (a postmaster crash would cut their connections).
export function siblingTestFiles() {
  let n = 0;
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      const ppid = Number(fs.readFileSync(`/proc/${d}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ')[1]);
      if (ppid !== process.ppid) continue;
      if (/\.test\.mjs/.test(fs.readFileSync(`/proc/${d}/cmdline`, 'utf8'))) n++;
    } catch { /* gone */ }
  }
  return n;
}
const PG_OS_USER = process.getuid?.() === 0 ? 'postgres' : os.userInfo().username;
// pg_ctl on the test cluster; a server it starts finds STS where lib.sh said (the server's
// AWS_ENDPOINT_URL_STS), plus `env` (other AWS_* variables a test gives the server).
export function pgCtlEnv(env, ...args) {
  const vars = Object.entries({ ...(process.env.STS_ENDPOINT && { AWS_ENDPOINT_URL_STS: process.env.STS_ENDPOINT }), ...env })
    .map(([k, v]) => `${k}=${v}`);
  const cmd = ['/usr/bin/env', ...vars, `${PGBIN}/pg_ctl`, '-D', path.join(RUN, 'pgdata'), ...args];
  const [file, ...rest] = process.getuid?.() === 0 ? ['runuser', '-u', PG_OS_USER, '--', ...cmd] : cmd;
  execFileSync(file, rest, { stdio: 'ignore', timeout: 60000 });
}
export function pgCtl(...args) {
  return pgCtlEnv({}, ...args);
}

// --- a database the worker serves -----------------------------------------------
export class WorkerSession {
  constructor(dbName) {
    this.dbName = dbName;
    this.admin = null;   // the postgres database
    this.db = null;      // the session's database
  }

  // Create the database with the extension and point the worker at it (no BILL state poll:
  // the request log then holds the outbox's requests only).
  async open() {
    assert.ok(process.env.BILL_EMULATOR_CONTROL && BILL && RUN,
      'BILL_EMULATOR_CONTROL, BILL_ENDPOINT and BILLOPS_RUN are set (run through test/run-tests.sh)');
    this.admin = await connectTo('postgres');
    await this.admin.query(`DROP DATABASE IF EXISTS ${this.dbName}`);
    await this.admin.query(`CREATE DATABASE ${this.dbName}`);
    this.db = await connectTo(this.dbName);
    await this.db.query('CREATE EXTENSION pg_billops CASCADE');
    const cfg = await one(this.admin,
      `SELECT current_setting('billops.bill_base_url') AS url, current_setting('billops.bill_credentials_file') AS creds`);
    assert.equal(cfg.url, BILL, 'lib.sh pointed billops.bill_base_url at the emulator');
    assert.ok(cfg.creds, 'lib.sh set billops.bill_credentials_file');
    await this.admin.query(`ALTER SYSTEM SET billops.bill_database = '${this.dbName}'`);
    await this.admin.query('ALTER SYSTEM SET billops.bill_poll_interval = 0');
    await this.admin.query('SELECT pg_reload_conf()');
    return this.connectedWorker();
  }

  async close() {
    try {
      await control('POST', 'reset').catch(() => {});
      this.admin ??= await connectTo('postgres');
      await this.admin.query('ALTER SYSTEM RESET billops.bill_database');
      await this.admin.query('ALTER SYSTEM RESET billops.bill_poll_interval');
      await this.admin.query('SELECT pg_reload_conf()');
      await Promise.all([...openClients].filter((c) => c !== this.admin).map((c) => c.end().catch(() => {})));
      await this.admin.query(`DROP DATABASE IF EXISTS ${this.dbName}`);
    } finally {
      await Promise.all([...openClients].map((c) => c.end().catch(() => {})));
    }
  }

  async reconnect() {
    await Promise.all([...openClients].map((c) => c.end().catch(() => {})));
    this.admin = await waitFor('the server to accept connections', () => connectTo('postgres').catch(() => null), 20000, 100);
    this.db = await connectTo(this.dbName);
  }

  async workerRow() {
    const { rows } = await this.admin.query(
      `SELECT pid, datname, state, query, query_start, wait_event_type, wait_event FROM pg_stat_activity WHERE backend_type = $1`,
      [WORKER]);
    return rows[0] ?? null;
  }

  // the worker, connected to our database
  connectedWorker(timeoutMs = RESTART_WAIT_MS) {
    return waitFor(`the BILL worker to connect to ${this.dbName}`, async () => {
      const w = await this.workerRow();
      return w && w.datname === this.dbName ? w : null;
    }, timeoutMs, 50);
  }

  // the worker, while it waits on BILL for this request
  workerDoing(method, p, timeoutMs = 15000) {
    return waitFor(`the worker to send ${method} ${p}`, async () => {
      const w = await this.workerRow();
      const r = w && inFlight(w.query).find((x) => methodIs(x.method, method) && pathIs(x.path, p));
      return r ? { pid: w.pid, outboxId: r.outboxId, method: r.method, path: r.path } : null;
    }, timeoutMs, 10, async () => `worker: ${(await this.workerRow())?.query}; ${await this.outboxSummary()}`);
  }

  // the request BILL is holding (a slow fault), not one of the other lanes' quick ones
  async workerHeld(method, p, holdMs = 300) {
    for (;;) {
      const w = await this.workerDoing(method, p);
      await sleep(holdMs);
      const again = await this.workerRow();
      if (again?.pid === w.pid && inFlight(again.query).some((x) => x.outboxId === w.outboxId && x.method === w.method && x.path === w.path)) return w;
    }
  }

  async waitGone(pid, timeoutMs = 5000) {
    await waitFor(`process ${pid} to exit`, async () => {
      const { rows } = await this.admin.query('SELECT 1 FROM pg_stat_activity WHERE pid = $1', [pid]);
      return rows.length === 0 && !processAlive(pid);
    }, timeoutMs, 5);
  }

  async terminate(pid) {
    await this.admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await this.waitGone(pid);
  }

  // An immediate stop (a crash: nothing is shut down cleanly) and a start.
  async restartPostmaster() {
    pgCtl('-m', 'immediate', 'stop');     // first: a lock held here must not be released before the crash
    await Promise.all([...openClients].map((c) => c.end().catch(() => {})));
    pgCtl('-l', path.join(RUN, 'log', 'postgres.log'), '-w', 'start');
    await this.reconnect();
  }

  // While the worker waits on BILL for request `method p` of an outbox row, lock
  // that row: once BILL has answered, the worker blocks on our lock before it can
  // record the answer -- BILL has the change, we do not.  Returns the request in
  // flight and BILL's logged answer, with the lock held (release() lets go).
  async gateRecording(method, p) {
    const locker = await connectTo(this.dbName);
    let w;
    for (;;) {
      w = await this.workerDoing(method, p);
      await locker.query('BEGIN');
      const { rows } = await locker.query('SELECT state FROM billops.bill_outbox WHERE outbox_id = $1 FOR UPDATE', [w.outboxId]);
      if (rows[0]?.state === 'in_flight') break;
      await locker.query('ROLLBACK');     // (it was recorded before we got the lock: catch the next one)
    }
    // (a request is logged once it is answered: the held one is the next of its kind)
    const mark = (await requests()).at(-1)?.seq ?? 0;
    const answered = await waitFor(`BILL to answer ${w.method} ${w.path}`, async () =>
      (await requests()).find((r) => r.seq > mark && isRequest(r, w.method, w.path)), 10000, 20);
    await waitFor('the worker to wait for our lock to record the answer', async () =>
      (await this.workerRow())?.wait_event_type === 'Lock', 5000, 10);
    const release = async () => {
      await locker.query('ROLLBACK').catch(() => {});
      await locker.end().catch(() => {});
    };
    return { ...w, answered, release };
  }

  // After BILL has answered request `method p` of an outbox row, the worker blocks on
  // our lock before recording it: BILL has the change, we do not.  Then kill(pid).
  async holdRecording(method, p, kill) {
    const g = await this.gateRecording(method, p);
    assert.ok(ok2xx(g.answered), `BILL carried out the held ${g.method} ${g.path} (${g.answered.status})`);
    await kill(g.pid);
    await g.release();
    return g;
  }

  async outbox(where = 'true', params = []) {
    return (await this.db.query(
      `SELECT outbox_id::int AS id, payable_id::int AS payable_id, action, state, step, attempts, requests,
              last_http_status, last_error_code, last_error, bill_id, next_attempt_at, superseded_by::int AS superseded_by
         FROM billops.bill_outbox WHERE ${where} ORDER BY outbox_id`, params)).rows;
  }

  async outboxSummary(where = 'true', params = []) {
    return JSON.stringify((await this.outbox(where, params)).map((o) =>
      `${o.id}:${o.action}/${o.state}/${o.step}/a${o.attempts}${o.last_error_code ? `/${o.last_error_code}` : ''}`));
  }

  // Every row finished (not pending, not in flight), and at least n rows.
  drained(n, timeoutMs = 30000, where = 'true', params = []) {
    return waitFor('the outbox to drain', async () => {
      const rows = await this.outbox(where, params);
      return rows.length >= n && rows.every((o) => !['pending', 'in_flight'].includes(o.state)) ? rows : null;
    }, timeoutMs, 50, () => this.outboxSummary(where, params));
  }
}
