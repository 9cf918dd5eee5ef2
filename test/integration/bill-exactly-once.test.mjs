// BILL holds exactly what the payables say: the reproductions of issue 11,
// each without any crash, through the real worker and the BILL emulator.
//   1. a voided payable keeps a live bill (the create's answer was lost; the
//      create was in flight when the payable was voided)
//   2. a retried PATCH adds a new line twice
//   3. the whole outbox stops when a row goes back to the queue while a newer
//      change of the same payable is queued
// and two things the crash matrix found alongside: a deadlock between the
// worker's claim and a transaction that holds the payable, and a refused login
// pausing the worker without anyone being able to see why.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { one, waitFor, connectTo } from './helpers.mjs';
import { WorkerSession, control, setFaults, clearFaults, state, requests, isRequest, loadMarketplaceMonth } from './bill-harness.mjs';
import { openTrials, closeTrials, logProblems, logSize } from './bill-trials.mjs';

const S = new WorkerSession('billops_exactly_once');
let payerSeq = 0;
let logFrom;

before(() => openTrials(S));
after(() => closeTrials(S));
beforeEach(async () => {
  await clearFaults();
  await S.db.query(`UPDATE billops.setting SET value = '0.05' WHERE name = 'bill_retry_base_seconds'`);
  // these tests count each payable's outbox rows and requests: the context PDF each bill
  // carries (its own document_upload row) is left out here; the crash matrix keeps it
  await S.db.query(`UPDATE billops.setting SET value = 'false' WHERE name = 'bill_context_document'`);
  logFrom = logSize();
});

// A final March 2024 month of Datadog (a vendor BILL knows after the first push)
// for a payer of the test's own; lines are [product, name, amount].
async function month(payer, lines, delivery) {
  await loadMarketplaceMonth(S.db, { payer, lines, invoice: 'INV-EO-1', source: 'bill-exactly-once', delivery: `eo-${payer}-${delivery}` });
  return one(S.db, `SELECT p.payable_id::int AS id, p.amount::text AS amount, p.status,
                           billops.bill_invoice_number(p.dedupe_key) AS invoice_number
                      FROM billops.payable p WHERE p.payer_account_id = $1`, [payer]);
}
const newPayer = () => String(600000000000 + (process.pid % 100000) * 1000 + payerSeq++);
const billsOf = async (p) => (await state()).bills.filter((b) => b.invoice.invoiceNumber === p.invoice_number);
const rowsOf = (p) => S.outbox('payable_id = $1', [p.id]);
const drainedOf = (p, n = 1, ms = 30000) => S.drained(n, ms, 'payable_id = $1', [p.id]);
const noLogProblems = () => assert.deepEqual(logProblems(logFrom), [], 'no deadlock, no failed recording, no constraint violation in the server log');

// a bill pushed cleanly first (the vendor is known to BILL from then on)
async function pushed(lines) {
  const payer = newPayer();
  const p = await month(payer, lines, 0);
  assert.equal(p.status, 'routed', 'the payable is routed');
  await drainedOf(p);
  const [bill] = await billsOf(p);
  assert.ok(bill, 'BILL has the bill');
  return { payer, p, bill };
}

test('1a. voided after BILL created the bill but the answer was lost: the bill is found and archived', async () => {
  await pushed([['prod-dd1', 'Datadog Pro', '10.00']]);            // Datadog known to BILL
  await S.db.query(`UPDATE billops.setting SET value = '2' WHERE name = 'bill_retry_base_seconds'`);
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'dropAfterCommit', count: 1 }]);
  const p = await month(newPayer(), [['prod-dd1', 'Datadog Pro', '1848.30']], 0);   // build routes and wakes the worker
  await waitFor('the create to be carried out and its answer lost', async () =>
    (await requests()).some((r) => isRequest(r, 'POST', '/v3/bills') && r.outcome === 'droppedAfterCommit'), 10000, 10);
  const [row] = await waitFor('the row to wait for its retry', async () => {
    const rows = await rowsOf(p);
    return rows[0]?.state === 'pending' && rows[0].attempts === 1 ? rows : null;
  }, 5000, 5);
  assert.equal(row.step, 'bill_lookup', 'the retry would look the bill up');
  assert.ok((await billsOf(p)).length === 1, 'BILL created the bill');
  await S.db.query(`SELECT billops.void_payable($1, 'bought directly')`, [p.id]);   // before the retry
  const rows = await drainedOf(p, 2);
  const bills = await billsOf(p);
  assert.equal(bills.length, 1, 'one bill, never a second');
  assert.equal(bills[0].archived, true, 'the bill of the voided payable is archived in BILL');
  assert.deepEqual(rows.map((o) => `${o.action}:${o.state}`), ['bill_upsert:cancelled', 'bill_archive:done']);
  const link = await one(S.db, 'SELECT bill_id, archived FROM billops.bill_link WHERE payable_id = $1', [p.id]);
  assert.deepEqual(link, { bill_id: bills[0].id, archived: true }, 'bill_link knows the bill and that it is archived');
  noLogProblems();
});

test('1b. voided while the create is in flight: the create completes, then its bill is archived', async () => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 1500, count: 1 }]);
  const p = await month(newPayer(), [['prod-dd1', 'Datadog Pro', '420.00']], 0);
  await S.workerHeld('POST', '/v3/bills');
  await S.db.query(`SELECT billops.void_payable($1, 'duplicate')`, [p.id]);
  const rows = await drainedOf(p, 2);
  const bills = await billsOf(p);
  assert.equal(bills.length, 1, 'BILL made the bill once');
  assert.equal(bills[0].archived, true, 'and it is archived');
  assert.deepEqual(rows.map((o) => `${o.action}:${o.state}`), ['bill_upsert:done', 'bill_archive:done'],
    'the create finished and was recorded, the archive ran after it');
  noLogProblems();
});

test('2. a retried update that adds a line: BILL ends as one attempt would leave it (107.00, not 114.00)', async () => {
  const { payer, p } = await pushed([['prod-dd1', 'Datadog Pro', '100.00']]);
  const mark = (await requests()).at(-1)?.seq ?? 0;
  await setFaults([
    { match: { method: 'PATCH', path: '/v3/bills/' }, kind: 'dropAfterCommit', count: 1 },
    { match: { method: 'PUT', path: '/v3/bills/' }, kind: 'dropAfterCommit', count: 1 },
  ]);
  const p2 = await month(payer, [['prod-dd1', 'Datadog Pro', '100.00'], ['prod-dd2', 'Datadog Logs', '7.00']], 1);
  assert.equal(p2.amount, '107.00');
  await drainedOf(p, 2);
  const log = (await requests()).filter((r) => r.seq > mark && r.path.startsWith('/connect/v3/bills/'));
  const lost = log.find((r) => r.outcome === 'droppedAfterCommit');
  assert.ok(lost, 'BILL carried out an update whose answer was lost');
  assert.equal(lost.method, 'PATCH', 'the first update was a PATCH that adds the line');
  assert.ok(log.some((r) => r.seq > lost.seq && r.method === 'GET' && r.status === 200), 'the retry read the bill first');
  const [bill] = await billsOf(p);
  assert.equal(bill.amount, 107, `BILL holds ${bill.amount}, the payable 107.00`);
  assert.deepEqual(bill.billLineItems.map((l) => `${l.description} ${l.amount}`).sort(), ['Datadog Logs 7', 'Datadog Pro 100'],
    'each line once');
  const ids = (await one(S.db, 'SELECT line_ids FROM billops.bill_link WHERE payable_id = $1', [p.id])).line_ids;
  assert.deepEqual(Object.values(ids).sort(), bill.billLineItems.map((l) => l.id).sort(), 'and we know the id of each');
  noLogProblems();
});

test('3. a newer change queued while a create is held and its answer lost: the outbox goes on, BILL gets the newer amount', async () => {
  await setFaults([
    { match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 1500, count: 1 },
    { match: { method: 'POST', path: '/v3/bills$' }, kind: 'dropAfterCommit', count: 1 },
  ]);
  const payer = newPayer();
  const p = await month(payer, [['prod-dd1', 'Datadog Pro', '250.00']], 0);
  await S.workerHeld('POST', '/v3/bills');
  const p2 = await month(payer, [['prod-dd1', 'Datadog Pro', '275.25']], 1);       // during the hold
  assert.deepEqual((await rowsOf(p)).map((o) => o.state), ['in_flight', 'pending'], 'a newer push queued behind the one in flight');
  const rows = await drainedOf(p, 2);
  assert.deepEqual(rows.map((o) => o.state), ['superseded', 'done'], 'the one whose answer was lost is superseded by the newer one');
  assert.equal(rows[0].superseded_by, rows[1].id);
  const bills = await billsOf(p);
  assert.equal(bills.length, 1, 'one bill (the one made by the lost create, adopted)');
  assert.equal(bills[0].amount, Number(p2.amount), 'with the newer amount');
  // and the queue did not stop: a later payable is pushed
  const later = await month(newPayer(), [['prod-dd1', 'Datadog Pro', '12.34']], 0);
  await drainedOf(later);
  assert.equal((await billsOf(later)).length, 1, 'a later payable reaches BILL');
  noLogProblems();
});

test('3b. a newer change still being committed while a row goes back to the queue: the row waits, then is superseded', async () => {
  // by hand, in a database the worker does not serve: one session claims and records an
  // answer the way the worker does, another queues a newer change of the same payable
  const HAND = 'billops_exactly_once_hand';
  await S.admin.query(`DROP DATABASE IF EXISTS ${HAND}`);
  await S.admin.query(`CREATE DATABASE ${HAND}`);
  const worker = await connectTo(HAND);
  const other = await connectTo(HAND);
  try {
    await worker.query('CREATE EXTENSION pg_billops CASCADE');
    await worker.query(`UPDATE billops.setting SET value = 'false' WHERE name = 'bill_context_document'`);
    await worker.query(`INSERT INTO billops.vendor (name, kind, bill_vendor_id) VALUES ('Datadog', 'marketplace_seller', '009DD')`);
    await worker.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) SELECT vendor_id, 'exact', 'Datadog, Inc.' FROM billops.vendor WHERE name = 'Datadog'`);
    await worker.query(`INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'OPS')`);
    await loadMarketplaceMonth(worker, { payer: '111111111111', lines: [['prod-dd1', 'Datadog Pro', '31.00']], invoice: 'INV-H-1',
      source: 'hand', delivery: 'hand-1' });
    const { outbox_id: row, payable_id: pid } = await one(worker, 'SELECT outbox_id::int, payable_id::int FROM billops._outbox_claim(1)');
    assert.ok(row, 'claimed');
    await one(worker, 'SELECT method FROM billops._outbox_request($1)', [row]);
    // a newer change of the payable, queued in a transaction not yet committed
    await other.query('BEGIN');
    await other.query(`SELECT billops._bill_enqueue($1, 'bill_upsert')`, [pid]);
    // the answer is lost: the row goes back to the queue and must wait for that transaction
    const answer = one(worker, `SELECT billops._outbox_response($1, NULL, '', 'connection reset') AS next`, [row]);
    await waitFor('the row to wait for the newer change', async () =>
      (await one(S.admin, `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'`, [HAND])).n === 1,
    5000, 10);
    await other.query('COMMIT');
    assert.equal((await answer).next, 'retry', 'recorded as a failed attempt, no unique violation');
    const rows = (await other.query('SELECT outbox_id::int AS id, state, superseded_by::int AS by FROM billops.bill_outbox ORDER BY outbox_id')).rows;
    assert.deepEqual(rows.map((r) => r.state), ['superseded', 'pending'], 'superseded by the newer row, which waits in the queue');
    assert.equal(rows[0].by, rows[1].id);
  } finally {
    await worker.end().catch(() => {});
    await other.end().catch(() => {});
    await S.admin.query(`DROP DATABASE IF EXISTS ${HAND}`);
  }
});

test('lock order: a transaction holding the payable (as a build or an approval does) never deadlocks with the worker', async () => {
  await pushed([['prod-dd1', 'Datadog Pro', '10.00']]);            // Datadog known to BILL: the push starts at its create
  // a payable whose push is due in a moment (built and delayed in one transaction: no claim before)
  await S.db.query('BEGIN');
  const p = await month(newPayer(), [['prod-dd1', 'Datadog Pro', '77.70']], 0);
  await S.db.query(`UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() + interval '1 second'
                     WHERE payable_id = $1 AND state = 'pending'`, [p.id]);
  await S.db.query('COMMIT');
  // meanwhile a session holds the payable, as build_payables, route and approve do (FOR UPDATE) ...
  const holder = await connectTo(S.dbName);
  await holder.query(`SET deadlock_timeout = '100ms'`);
  await holder.query('BEGIN');
  await holder.query('SELECT 1 FROM billops.payable WHERE payable_id = $1 FOR UPDATE', [p.id]);
  // ... until the worker, taking the row, has to wait for it (recording the create's intent refers to the payable)
  await waitFor('the worker to wait for our lock', async () => (await S.workerRow())?.wait_event_type === 'Lock', 5000, 10);
  // ... and then changes the payable: voiding cancels its queued rows
  await holder.query(`SELECT billops.void_payable($1, 'lock order')`, [p.id]);
  await holder.query('COMMIT');
  await holder.end();
  const rows = await drainedOf(p, 2);
  assert.deepEqual(rows.map((o) => `${o.action}:${o.state}`), ['bill_upsert:done', 'bill_archive:done'],
    'the claimed push finished, then the archive');
  const bills = await billsOf(p);
  assert.equal(bills.length, 1);
  assert.equal(bills[0].archived, true, 'the voided payable\'s bill is archived');
  noLogProblems();
});

test('lock order: recording a vendor\'s BILL id does not wait for the foreign-key checks of a build in progress', async () => {
  // a vendor BILL does not know yet
  const name = `EO Vendor ${process.pid}`;
  await S.db.query(`INSERT INTO billops.vendor (name, kind) VALUES ($1, 'marketplace_seller')`, [name]);
  await S.db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) SELECT vendor_id, 'exact', $2 FROM billops.vendor WHERE name = $1`,
    [name, `${name} LLC`]);
  const payer = newPayer();
  await loadMarketplaceMonth(S.db, { payer, lines: [['prod-v', 'V', '64.00']], seller: `${name} LLC`, invoice: 'INV-EO-V',
    source: 'bill-exactly-once', delivery: `eo-${payer}`, build: false });
  // a build in progress elsewhere has checked a payable's reference to that vendor (FOR KEY SHARE) ...
  const build = await connectTo(S.dbName);
  await build.query('BEGIN');
  await build.query('SELECT 1 FROM billops.vendor WHERE name = $1 FOR KEY SHARE', [name]);
  try {
    await S.db.query('SELECT count(*) FROM billops.build_payables(NULL, $1)', [payer]);
    const p = await one(S.db, `SELECT payable_id::int AS id, billops.bill_invoice_number(dedupe_key) AS invoice_number
                                 FROM billops.payable WHERE payer_account_id = $1`, [payer]);
    // ... while the worker creates the vendor in BILL, records its id, and creates the bill
    await drainedOf(p, 1, 15000);
    assert.equal((await billsOf(p)).length, 1, 'the bill is in BILL while that build is still open');
    assert.ok((await one(S.db, 'SELECT bill_vendor_id FROM billops.vendor WHERE name = $1', [name])).bill_vendor_id, 'the vendor\'s id is recorded');
  } finally {
    await build.query('ROLLBACK').catch(() => {});
    await build.end().catch(() => {});
  }
  noLogProblems();
});

test('a refused login pauses the worker visibly (pg_stat_activity, bill_outbox_status), and a reload resumes it', async () => {
  await setFaults([{ match: { method: 'POST', path: '/v3/login$' }, kind: 'status', status: 401, code: 'BDC_1101', count: null }]);
  await control('POST', 'sessions/expire');
  const p = await month(newPayer(), [['prod-dd1', 'Datadog Pro', '55.00']], 0);
  const w = await waitFor('the worker to show its pause', async () => {
    const row = await S.workerRow();
    return /^pg_billops: paused until .*: BILL refused the login \(HTTP 401\)/.test(row?.query ?? '') ? row : null;
  }, 10000, 20);
  assert.equal(w.state, 'idle', 'idle while paused, not busy');
  const status = await one(S.db, 'SELECT state, waiting_for, last_error_code FROM billops.bill_outbox_status WHERE payable_id = $1', [p.id]);
  assert.equal(status.state, 'pending');
  assert.match(status.waiting_for, /^the worker is paused until .*: BILL refused the login \(HTTP 401\)/, 'the outbox view says why it waits');
  assert.equal(status.last_error_code, 'LOGIN');
  const ws = await one(S.db, 'SELECT pid, database, paused_until > now() AS paused FROM billops._bill_worker_state()');
  assert.deepEqual(ws, { pid: w.pid, database: S.dbName, paused: true });
  // an operator fixes the credentials and reloads: the worker tries again at once
  await clearFaults();
  await S.admin.query('SELECT pg_reload_conf()');
  await drainedOf(p);
  assert.equal((await billsOf(p)).length, 1, 'pushed after the reload');
  assert.equal((await one(S.db, 'SELECT paused_until FROM billops._bill_worker_state()')).paused_until, null, 'no pause any more');
});
