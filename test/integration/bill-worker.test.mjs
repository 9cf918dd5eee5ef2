// The BILL worker end to end: payables built from a small month go through the
// outbox to the BILL v3 emulator, driven by the background worker itself (no
// SQL protocol calls by hand).  Every expectation comes from the payables in
// the database and from what the emulator holds and logged: one bill per
// routed invoice-like payable (never two), vendors searched before they are
// created, an idle worker asleep, sessions renewed, no row left behind in
// flight, throttling and the hourly limit respected, dead letters retryable,
// the ambiguous create (BILL did it, we never heard) adopted rather than
// repeated, crashes at the worst moments survived, SIGTERM honoured
// mid-request, and DROP DATABASE never blocked by the worker.
//
// Needs the environment of test/run-tests.sh: a cluster with pg_billops
// preloaded, the BILL emulator (BILL_EMULATOR_CONTROL, BILL_ENDPOINT, ...), and
// billops.bill_base_url / billops.bill_credentials_file set by lib.sh's
// start_bill_emulator.  The worker is pointed at this file's database here.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pg, RUN, toScaled, one, waitFor, connectTo, openClients, AWS_INC, writeBillTestMonth } from './helpers.mjs';
import {
  WorkerSession, ORG, RESTART_WAIT_MS, RE_ACTIVITY, inFlight, processAlive, siblingTestFiles,
  control, setFaults, clearFaults, state, stats, requests, isApi, ok2xx, billApi, billLogin,
} from './bill-harness.mjs';

const DB = 'billops_bill';
const CSV = RUN ? path.join(RUN, 'bill-worker-month.csv') : null;

// --- the worker and its database (bill-harness.mjs) ---------------------------------
const clients = openClients;
const S = new WorkerSession(DB);
// These tests count outbox rows and requests per bill: the context PDF each bill carries
// (55_bill_context.sql; its own document_upload row) is left out here. The crash matrix,
// the routes test and the demo keep it.
const NO_CONTEXT_DOCUMENTS = `UPDATE billops.setting SET value = 'false' WHERE name = 'bill_context_document'`;
const workerRow = () => S.workerRow();
const connectedWorker = (timeoutMs) => S.connectedWorker(timeoutMs);
const workerDoing = (method, p, timeoutMs) => S.workerDoing(method, p, timeoutMs);
const workerHeld = (method, p, holdMs) => S.workerHeld(method, p, holdMs);
const waitGone = (pid, timeoutMs) => S.waitGone(pid, timeoutMs);
const terminate = (pid) => S.terminate(pid);
const restartPostmaster = () => S.restartPostmaster();
const holdRecording = (method, p, kill) => S.holdRecording(method, p, kill);
const outbox = () => S.outbox();
const outboxSummary = () => S.outboxSummary();
const drained = (n, timeoutMs) => S.drained(n, timeoutMs);

// --- the month --------------------------------------------------------------------
// Payer 111111111111, March 2024, final (invoice ids filled, so payables route):
// AWS usage (an acknowledgement, never a bill), Datadog under two spellings and
// two invoicing entities (two bills, one vendor), MongoDB with a line that nets
// to zero, Snowflake, an unknown seller (an exception, not routed), and N
// partners that share one vendor through a pattern alias.
function writeMonth(partners) {
  const inc = AWS_INC;
  writeBillTestMonth(CSV, [
    ['INV-AWS-1', inc, 'AWS', '222222222222', 'Usage', 'AmazonEC2', '6000.004', inc, 'Amazon Elastic Compute Cloud'],
    ['INV-AWS-1', inc, 'AWS', '333333333333', 'Usage', 'AmazonS3', '300.335', inc, 'Amazon Simple Storage Service'],
    ['INV-DD-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd1', '800.00', '"Datadog, Inc."', 'Datadog Pro'],
    ['INV-DD-1', inc, 'AWS Marketplace', '333333333333', 'Usage', 'prod-dd1', '25.505', '"Datadog, Inc."', 'Datadog Pro'],
    ['INV-DD-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd2', '41.10', '"Datadog, Inc."', 'Datadog Logs'],
    ['EUINV-1', 'Amazon Web Services EMEA SARL', 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd1', '120.00', 'DATADOG INC', 'Datadog Pro'],
    ['INV-MDB-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-mdb', '300.00', '"MongoDB, Inc."', 'MongoDB Atlas'],
    ['INV-MDB-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-mdb2', '50.00', '"MongoDB, Inc."', 'MongoDB Charts'],
    ['INV-MDB-1', inc, 'AWS Marketplace', '222222222222', 'Credit', 'prod-mdb2', '-50.00', '"MongoDB, Inc."', 'MongoDB Charts'],
    ['INV-SF-1', inc, 'AWS Marketplace', '333333333333', 'Usage', 'prod-sf', '1234.56', 'Snowflake Inc.', 'Snowflake Compute'],
    ['INV-ACME-1', inc, 'AWS Marketplace', '333333333333', 'Usage', 'prod-acme', '99.99', 'ACME Widgets LLC', 'Widgets'],
  ], partners);
}

async function configure() {
  await S.db.query(`INSERT INTO billops.vendor (name, kind) VALUES
                    ('Datadog', 'marketplace_seller'), ('MongoDB', 'marketplace_seller'),
                    ('Snowflake', 'marketplace_seller'), ('Partner Network', 'partner')`);
  await S.db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'exact', a FROM billops.vendor
                    JOIN (VALUES ('Datadog', 'Datadog, Inc.'), ('MongoDB', 'MongoDB, Inc.'), ('Snowflake', 'Snowflake Inc.')) x(v, a)
                      ON name = v`);
  await S.db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'pattern', '^Partner [0-9]+ LLC$' FROM billops.vendor WHERE name = 'Partner Network'`);
  await S.db.query(`INSERT INTO billops.coding_rule (field, value, priority, usage_account_id) VALUES
                    ('gl_account', '6100-cloud', 100, NULL), ('department', 'FINOPS', 200, NULL),
                    ('department', 'DATA', 100, '333333333333')`);
}

// Load and build (the build's commit wakes the worker); returns the payables as
// the database has them, with what BILL should end up holding for each.
async function buildMonth({ partners = 4 } = {}) {
  writeMonth(partners);
  await configure();
  await S.db.query('SET client_min_messages = warning');
  await S.db.query(`SELECT billops.load_cur_file($1, 'bill-worker', $2)`, [CSV, `bw-${Date.now()}`]);
  await S.db.query('SELECT count(*) FROM billops.build_payables()');
  return payables();
}
async function payables() {
  const { rows } = await S.db.query(
    `SELECT p.payable_id::int AS id, p.dedupe_key, billops.bill_invoice_number(p.dedupe_key) AS invoice_number,
            p.amount::text AS amount, p.treatment, p.status, v.name AS vendor,
            p.treatment = 'invoice_like' AND p.status IN ('routed', 'approved', 'scheduled', 'paid') AS pushable,
            coalesce((SELECT json_agg(json_build_object('amount', l.amount::text, 'description', l.description,
                                                        'gl', l.gl_account, 'department', l.department) ORDER BY l.line_key)
                        FROM billops.payable_line l WHERE l.payable_id = p.payable_id AND l.amount <> 0), '[]') AS lines,
            (SELECT count(*) FROM billops.payable_line l WHERE l.payable_id = p.payable_id)::int AS all_lines
       FROM billops.payable p LEFT JOIN billops.vendor v USING (vendor_id) ORDER BY p.payable_id`);
  return rows;
}
const pushable = (ps) => ps.filter((p) => p.pushable);

// What BILL holds, by invoice number.
function billsByInvoice(st) {
  const m = new Map();
  for (const b of st.bills) {
    const k = b.invoice?.invoiceNumber;
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(b);
  }
  return m;
}
const cents = (v) => toScaled(String(v), 2);

// One bill per pushable payable and nothing else; amounts, lines, coding,
// description and vendor as the payable says; bill_link agrees.
async function assertExactlyOneBillEach(ps, st, label = '') {
  const want = pushable(ps);
  const byInvoice = billsByInvoice(st);
  for (const p of want) {
    const got = byInvoice.get(p.invoice_number) ?? [];
    assert.equal(got.length, 1, `${label}${p.dedupe_key}: exactly one bill with invoice number ${p.invoice_number} (found ${got.length})`);
  }
  const unexpected = [...byInvoice.keys()].filter((k) => !want.some((p) => p.invoice_number === k));
  assert.deepEqual(unexpected, [], `${label}no bill in BILL other than the routed invoice-like payables'`);
  const links = new Map((await S.db.query(
    'SELECT payable_id::int AS id, invoice_number, bill_id, bill_vendor_id FROM billops.bill_link')).rows.map((l) => [l.id, l]));
  for (const p of want) {
    const [b] = byInvoice.get(p.invoice_number);
    assert.equal(links.get(p.id)?.bill_id, b.id, `${label}${p.dedupe_key}: bill_link holds BILL's bill id`);
    assert.equal(links.get(p.id)?.invoice_number, p.invoice_number, `${label}${p.dedupe_key}: bill_link holds our invoice number`);
  }
}

// --- file setup -------------------------------------------------------------------
before(() => S.open());
after(() => S.close());

// Each test: an empty BILL, and the extension dropped and created again under
// the running worker (which must cope with its tables disappearing).
let workerBefore;
beforeEach(async () => {
  await control('POST', 'reset');
  await S.db.query('DROP EXTENSION IF EXISTS pg_billops CASCADE');
  await S.db.query('CREATE EXTENSION pg_billops CASCADE');
  await S.db.query(NO_CONTEXT_DOCUMENTS);
  workerBefore = await connectedWorker();
});

// --- 1 ------------------------------------------------------------------------------
test('full push: one bill per routed invoice-like payable, as the payable says, vendors searched before created', async () => {
  // BILL already knows MongoDB (to be found, not created again) and has an archived
  // "Datadog" (not to be used)
  const session = await billLogin();
  const mongo = await billApi('POST', '/v3/vendors', { name: 'MongoDB', accountType: 'BUSINESS' }, session);
  const oldDd = await billApi('POST', '/v3/vendors', { name: 'Datadog', accountType: 'BUSINESS' }, session);
  await billApi('POST', `/v3/vendors/${oldDd.id}/archive`, null, session);
  await billApi('POST', '/v3/logout', null, session).catch(() => {});
  await control('DELETE', 'requests');

  const ps = await buildMonth({ partners: 4 });
  const want = pushable(ps);
  assert.ok(want.length >= 6, `the month has routed bills (${want.length})`);
  assert.ok(ps.some((p) => p.treatment === 'usage_summary' && p.status === 'routed'), 'and a routed acknowledgement');
  assert.ok(ps.some((p) => p.status === 'exception'), 'and an exception');
  assert.ok(want.some((p) => p.lines.length < p.all_lines), 'and a payable with a zero line');

  const rows = await drained(want.length);
  assert.deepEqual(rows.map((o) => o.payable_id).sort(), want.map((p) => p.id).sort(),
    'one outbox row per routed invoice-like payable, none for the acknowledgement or the exception');
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''} ${o.last_error ?? ''})`);

  const st = await state();
  await assertExactlyOneBillEach(ps, st);
  const byInvoice = billsByInvoice(st);
  const vendorsById = new Map(st.vendors.map((v) => [v.id, v]));
  for (const p of want) {
    const [b] = byInvoice.get(p.invoice_number);
    assert.equal(cents(b.amount), cents(p.amount), `${p.dedupe_key}: amount`);
    assert.equal(b.billLineItems.length, p.lines.length, `${p.dedupe_key}: one line per non-zero payable line`);
    const sent = b.billLineItems.map((l) => JSON.stringify([cents(l.amount).toString(), l.description,
      l.classifications?.chartOfAccountId ?? null, l.classifications?.departmentId ?? null])).sort();
    const mine = p.lines.map((l) => JSON.stringify([cents(l.amount).toString(), l.description, l.gl, l.department])).sort();
    assert.deepEqual(sent, mine, `${p.dedupe_key}: line amounts, descriptions and coding (classifications)`);
    assert.ok(b.description.startsWith('[pg_billops, system-generated]'), `${p.dedupe_key}: says it is system-generated`);
    const v = vendorsById.get(b.vendorId);
    assert.equal(v?.name, p.vendor, `${p.dedupe_key}: billed to its vendor`);
    assert.equal(v.archived, false, `${p.dedupe_key}: never to an archived vendor`);
  }
  // vendors: one live vendor per name; MongoDB reused; each other one created once, after a search
  const wantVendors = [...new Set(want.map((p) => p.vendor))].sort();
  for (const name of wantVendors)
    assert.equal(st.vendors.filter((v) => v.name === name && !v.archived).length, 1, `one live vendor "${name}" in BILL`);
  assert.equal(byInvoice.get(want.find((p) => p.vendor === 'MongoDB').invoice_number)[0].vendorId, mongo.id,
    'the vendor BILL already had is used');
  const { rows: local } = await S.db.query('SELECT name, bill_vendor_id FROM billops.vendor WHERE bill_vendor_id IS NOT NULL ORDER BY name');
  assert.deepEqual(local.map((v) => v.name), wantVendors, 'each vendor has its BILL id recorded');
  for (const v of local) assert.equal(vendorsById.get(v.bill_vendor_id)?.name, v.name, `${v.name}: the recorded BILL id is its own`);

  const log = await requests();
  const posts = log.filter((r) => isApi(r, 'POST', '/v3/vendors'));
  assert.equal(posts.length, wantVendors.length - 1, 'a vendor is created for each name BILL did not have (not MongoDB)');
  // the k-th vendor create made the k-th new vendor (the worker is serial)
  const created = st.vendors.filter((v) => v.id !== mongo.id && v.id !== oldDd.id)
    .sort((a, b) => a.createdTime.localeCompare(b.createdTime));
  assert.equal(created.length, posts.length, 'every vendor create made one vendor');
  created.forEach((v, k) => {
    const search = log.find((r) => isApi(r, 'GET', '/v3/vendors') && r.query.filters === `name:eq:${v.name}` && ok2xx(r));
    assert.ok(search && search.seq < posts[k].seq, `"${v.name}" was searched for before it was created`);
  });
  for (const name of wantVendors)
    assert.equal(log.filter((r) => isApi(r, 'GET', '/v3/vendors') && r.query.filters === `name:eq:${name}` && ok2xx(r)).length, 1,
      `"${name}" is searched once: later bills of the vendor use the recorded id`);

  // nothing for the acknowledgement or the exception; concurrency within BILL's limit
  for (const p of ps.filter((x) => !x.pushable))
    assert.ok(!byInvoice.has(p.invoice_number), `${p.dedupe_key} (${p.treatment}, ${p.status}) was not sent`);
  const s = await stats();
  assert.ok(s.maxConcurrentByOrg[ORG] >= 1 && s.maxConcurrentByOrg[ORG] <= 3, `at most 3 requests in flight (${s.maxConcurrentByOrg[ORG]})`);
  assert.equal(s.concurrency[0]?.rejections ?? 0, 0, 'never refused for concurrency');
  assert.equal((await workerRow()).pid, workerBefore.pid, 'the same worker process throughout (the extension was recreated under it)');
});

// With nothing to do (every row done, no poll configured) the worker sleeps until
// woken: it does not keep looking for rows.  pg_stat_activity's query_start moves
// each time it starts looking.
test('idle: with nothing to do the worker sleeps instead of polling the outbox', async (t) => {
  const ps = await buildMonth({ partners: 1 });
  await drained(pushable(ps).length);
  await sleep(200);
  const starts = new Set();
  const t0 = Date.now();
  while (Date.now() - t0 < 1500) {
    starts.add((await workerRow()).query_start?.toISOString());
    await sleep(20);
  }
  const commits = async () => Number((await one(S.admin,
    'SELECT xact_commit FROM pg_stat_database WHERE datname = $1', [DB])).xact_commit);
  t.diagnostic(`${starts.size} distinct query_start values in 1.5 s; xact_commit of ${DB} now ${await commits()}`);
  // one last look after the drain may fall in the window; a polling worker shows dozens
  assert.ok(starts.size <= 3, `the idle worker started ${starts.size - 1} activities in 1.5 s (it polls)`);
});

// --- 2 ------------------------------------------------------------------------------
test('session expiry mid-run: the worker logs in again and everything ends done', async (t) => {
  await setFaults([
    // hold the next three bill creates (one per lane), so the sessions can be expired while rows are pending
    { match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 1200, skip: 1, count: 3 },
    // and later a bill create refused twice in a row
    { match: { method: 'POST', path: '/v3/bills$' }, kind: 'bdc', code: 'BDC_1109', skip: 6, count: 2 },
  ]);
  const ps = await buildMonth({ partners: 6 });
  const want = pushable(ps);
  await waitFor('creates to be held', async () => (await control('GET', 'faults')).faults[0].hits >= 1);
  const pendingThen = (await outbox()).filter((o) => o.state === 'pending').length;
  assert.ok(pendingThen > 0, `rows are still pending when the sessions expire (${pendingThen})`);
  const mark = (await requests()).at(-1)?.seq ?? 0;
  await control('POST', 'sessions/expire');

  const rows = await drained(want.length);
  for (const o of rows) {
    assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''})`);
    assert.equal(o.attempts, 1, `outbox ${o.id}: a re-login is not a failed attempt`);
  }
  await assertExactlyOneBillEach(ps, await state());

  const log = await requests();
  const after = log.filter((r) => r.seq > mark);
  const expired = after.filter((r) => r.code === 'BDC_1109');
  assert.ok(expired.length >= 1, 'requests after the expiry were refused with BDC_1109');
  assert.ok(log.filter((r) => r.code === 'BDC_1109').length >= 3, 'and so were the two faults');
  for (const r of expired) {
    const i = log.indexOf(r);
    const login = log.slice(i + 1).find((x) => isApi(x, 'POST', '/v3/login') && x.status === 200);
    // (up to three requests are in flight: another one's refusal may already have led to the login)
    const relogged = login ?? log.slice(0, i).reverse().find((x) => isApi(x, 'POST', '/v3/login') && x.status === 200 && x.seq > mark);
    assert.ok(relogged, `seq ${r.seq} (BDC_1109): a new session was made`);
    const resent = log.slice(i + 1).find((x) => x.method === r.method && x.path === r.path &&
      JSON.stringify(x.query) === JSON.stringify(r.query) && x.code !== 'BDC_1109');
    assert.ok(resent, `seq ${r.seq}: the refused request is sent again and answered`);
  }
  const logins = after.filter((r) => isApi(r, 'POST', '/v3/login') && r.status === 200).length;
  t.diagnostic(`${expired.length} BDC_1109 answers after the expiry, ${logins} logins`);
  assert.ok(logins >= 1, `BILL saw a new login after the expiry (${logins})`);
  // requests refused together share one new session: never more logins than refusals
  assert.ok(logins <= expired.length, `one login per dead session, not per refused request (${logins} <= ${expired.length})`);
  const s = await stats();
  assert.ok(s.loginSuccesses >= logins + 1, 'and a login before it');
});

// BILL refusing fresh sessions over and over: the worker must not burn BILL's
// login budget (200/hour) nor leave the row claimed by a live worker.  Each
// attempt allows two re-logins, then the row waits its backoff; after
// bill_max_attempts it is a dead letter, and once BILL recovers a manual retry
// completes it.
test('a session refused over and over: bounded logins, never left in flight, dead letter, then retried', async (t) => {
  await S.db.query(`UPDATE billops.setting SET value = '0.05' WHERE name = 'bill_retry_base_seconds'`);
  await S.db.query(`UPDATE billops.setting SET value = '3' WHERE name = 'bill_max_attempts'`);
  await setFaults([{ match: { method: 'GET', path: '/v3/vendors$' }, kind: 'bdc', code: 'BDC_1109', count: 200 }]);
  const loginsBefore = (await stats()).loginSuccesses;
  const ps = await buildMonth({ partners: 1 });
  const want = pushable(ps);
  const dead = await waitFor('the rows to become dead letters', async () => {
    const rows = await outbox();
    return rows.length >= want.length && rows.every((o) => o.state === 'dead') ? rows : null;
  }, 20000, 50);
  for (const o of dead) assert.equal(o.last_error_code, 'BDC_1109', `outbox ${o.id}: BILL's code is recorded`);
  const logins = (await stats()).loginSuccesses - loginsBefore;
  t.diagnostic(`${logins} logins for ${dead.length} rows x 3 attempts`);
  // per attempt: at most three sends, each with at most one re-login of the client's own
  assert.ok(logins <= dead.length * 3 * 6 + 1, `logins stay bounded (${logins})`);
  await clearFaults();
  for (const o of dead) await S.db.query('SELECT billops.bill_outbox_retry($1)', [o.id]);
  const rows = await drained(want.length, 15000);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done after the retry`);
  await assertExactlyOneBillEach(ps, await state());
});

// --- 3 ------------------------------------------------------------------------------
test('throttling: BDC_1322 on bill creates is waited out briefly and the rows end done', async (t) => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'bdc', code: 'BDC_1322', skip: 1, count: 2 }]);
  const ps = await buildMonth({ partners: 3 });
  const want = pushable(ps);
  const rows = await drained(want.length);
  for (const o of rows) {
    assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''})`);
    assert.equal(o.attempts, 1, `outbox ${o.id}: throttling is not a failed attempt`);
  }
  await assertExactlyOneBillEach(ps, await state());
  const log = await requests();
  const creates = log.filter((r) => isApi(r, 'POST', '/v3/bills'));
  const throttled = creates.filter((r) => r.code === 'BDC_1322');
  assert.equal(throttled.length, 2, 'two creates were refused with BDC_1322');
  assert.equal(creates.filter((r) => r.status === 201).length, want.length, 'one successful create per bill');
  // a throttled create is sent again as it was, not restarted with a lookup (a first create
  // needs none: no create was ever sent for that payable)
  const lookups = log.filter((r) => isApi(r, 'GET', '/v3/bills'));
  assert.equal(lookups.length, 0, 'no bill lookup: no throttled row started over');
  for (const r of throttled) {
    // (bill_lanes.c waits 250..1000 ms; other rows' requests may go in between)
    const next = creates.find((x) => x.seq > r.seq && x.status === 201);
    assert.ok(next, `seq ${r.seq}: a create succeeds after it`);
    const waited = Date.parse(next.startTime) - Date.parse(r.endTime);
    assert.ok(waited < 3000, `seq ${r.seq}: soon (${waited} ms)`);
    t.diagnostic(`BDC_1322 at seq ${r.seq}: the next create after ${waited} ms`);
  }
});

test('concurrency: three requests in flight while there is work, never more; the setting lowers it', async (t) => {
  // every request takes 60 ms, so lanes overlap for sure
  await setFaults([{ match: { path: '/v3/' }, kind: 'slow', ms: 60, count: null }]);
  let ps = await buildMonth({ partners: 12 });
  await drained(pushable(ps).length);
  let s = await stats();
  t.diagnostic(`default: at most ${s.maxConcurrentByOrg[ORG]} in flight`);
  assert.equal(s.maxConcurrentByOrg[ORG], 3, 'three requests in flight at once (BILL allows three)');
  assert.equal(s.concurrency[0]?.rejections ?? 0, 0, 'never a fourth');
  await assertExactlyOneBillEach(ps, await state());

  await S.admin.query('ALTER SYSTEM SET billops.bill_max_concurrent_requests = 1');
  await S.admin.query('SELECT pg_reload_conf()');
  try {
    await control('POST', 'reset');
    await setFaults([{ match: { path: '/v3/' }, kind: 'slow', ms: 60, count: null }]);
    await S.db.query('DROP EXTENSION pg_billops CASCADE');
    await S.db.query('CREATE EXTENSION pg_billops CASCADE');
    await S.db.query(NO_CONTEXT_DOCUMENTS);
    await sleep(200);   // (the reload reached the worker)
    ps = await buildMonth({ partners: 12 });
    await drained(pushable(ps).length);
    s = await stats();
    assert.equal(s.maxConcurrentByOrg[ORG], 1, 'billops.bill_max_concurrent_requests = 1: one at a time');
    await assertExactlyOneBillEach(ps, await state());
  } finally {
    await S.admin.query('ALTER SYSTEM RESET billops.bill_max_concurrent_requests');
    await S.admin.query('SELECT pg_reload_conf()');
  }
});

test('a reload while the queue is long: another database takes effect after the rows in flight, not after the queue; the rest waits', { timeout: 90000 }, async (t) => {
  // one request at a time, 250 ms each: the month's queue takes several seconds to deliver
  await S.admin.query('ALTER SYSTEM SET billops.bill_max_concurrent_requests = 1');
  await S.admin.query('SELECT pg_reload_conf()');
  try {
    await setFaults([{ match: { path: '/v3/' }, kind: 'slow', ms: 250, count: null }]);
    await sleep(200);   // (the reload reached the worker)
    const ps = await buildMonth({ partners: 12 });
    const w = await S.workerDoing('POST', '/v3/bills');   // delivering, with most of the queue ahead
    const left = (await one(S.db, `SELECT count(*) FILTER (WHERE state <> 'done')::int AS n FROM billops.bill_outbox`)).n;
    t.diagnostic(`${left} rows not yet done when the database changed`);
    assert.ok(left >= 8, `most of the queue is ahead (${left} rows)`);

    const t0 = performance.now();
    await S.admin.query(`ALTER SYSTEM SET billops.bill_database = 'postgres'`);
    await S.admin.query('SELECT pg_reload_conf()');
    const moved = await waitFor('the worker to connect to postgres', async () => {
      const r = await S.workerRow();
      return r?.datname === 'postgres' ? r : null;
    }, 20000, 20);
    const ms = performance.now() - t0;
    t.diagnostic(`the worker moved after ${ms.toFixed(0)} ms`);
    assert.notEqual(moved.pid, w.pid, 'a new worker process serves the new database');
    // the row in flight is finished (a few requests), then the restart interval (1 s here)
    assert.ok(ms < 4000, `the worker moved in ${ms.toFixed(0)} ms, not after the queue`);
    const o = (await S.db.query(`SELECT state, count(*)::int AS n FROM billops.bill_outbox GROUP BY state`)).rows;
    const n = (st) => o.find((r) => r.state === st)?.n ?? 0;
    assert.equal(n('in_flight'), 0, 'nothing was left in flight');
    assert.ok(n('pending') > 0, `the rest of the queue waits, pending (${JSON.stringify(o)})`);

    // back to our database: the rest is delivered, exactly once each
    await clearFaults();
    await S.admin.query(`ALTER SYSTEM SET billops.bill_database = '${DB}'`);
    await S.admin.query('SELECT pg_reload_conf()');
    await connectedWorker();
    await drained(pushable(ps).length);
    await assertExactlyOneBillEach(ps, await state());
  } finally {
    await clearFaults();
    await S.admin.query(`ALTER SYSTEM SET billops.bill_database = '${DB}'`);
    await S.admin.query('ALTER SYSTEM RESET billops.bill_max_concurrent_requests');
    await S.admin.query('SELECT pg_reload_conf()');
  }
});

test('hourly limit: BDC_1144 puts the row back until the next hour and pauses the worker', async () => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'bdc', code: 'BDC_1144', skip: 1, count: 1 }]);
  const ps = await buildMonth({ partners: 3 });
  const want = pushable(ps);
  const row = await waitFor('a row to be held back by BDC_1144', async () =>
    (await outbox()).find((o) => o.last_error_code === 'BDC_1144'), 15000, 50, outboxSummary);
  const log = await requests();
  const refused = log.find((r) => r.code === 'BDC_1144');
  assert.ok(refused && isApi(refused, 'POST', '/v3/bills'), 'BILL refused a create with BDC_1144');
  // BILL's rate windows are clock hours: the next one starts at the next hour boundary
  const hour = 3600e3;
  const boundaries = new Set([refused.startTime, refused.endTime].map((t) => (Math.floor(Date.parse(t) / hour) + 1) * hour));
  assert.equal(row.state, 'pending', 'the row goes back to pending');
  assert.ok(boundaries.has(row.next_attempt_at.getTime()),
    `next_attempt_at ${row.next_attempt_at.toISOString()} is the next hour boundary (${[...boundaries].map((b) => new Date(b).toISOString())})`);
  assert.equal(row.attempts, 0, 'the refusal does not count as an attempt');
  assert.equal(row.last_http_status, refused.status, 'the HTTP status is recorded');
  // the limit is per devKey: nothing more is sent this hour, the other rows wait too -- also when
  // a commit wakes the worker meanwhile
  await S.db.query('SELECT billops._bill_wake()');
  await sleep(1000);
  // Up to three requests are in flight: until the worker has read the refusal, each other lane
  // may still send (at most) one; after that, nothing.
  const later = (await requests()).filter((r) => r.seq > refused.seq);
  const show = async () => `${later.map((r) => `${r.startTime} ${r.method} ${r.path} ${r.status}`)} (BDC_1144 at ${refused.endTime}; outbox ${await outboxSummary()})`;
  assert.ok(later.length <= 2, `at most one request per other lane after BDC_1144: ${await show()}`);
  assert.ok(later.every((r) => Date.parse(r.startTime) < Date.parse(refused.endTime) + 100), `none once the worker knew: ${await show()}`);
  const rows = await outbox();
  const bills = (await state()).bills.length;
  assert.ok(bills >= 1 && bills <= 3, `BILL has the bills created before the limit, at most one per lane (${bills})`);
  assert.equal(rows.filter((o) => o.state === 'done').length, bills, 'those rows are done');
  assert.equal(rows.filter((o) => o.state === 'pending').length, want.length - bills, 'the others wait');
  // an operator's reload means "try BILL again now": the pause ends (here the held row is also
  // made due, as if the hour had passed)
  await S.db.query(`UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE state = 'pending'`);
  await S.admin.query('SELECT pg_reload_conf()');
  const finalRows = await drained(want.length, 15000);
  assert.ok(finalRows.every((o) => o.state === 'done'), 'after the reload every row is delivered');
});

// --- 4 ------------------------------------------------------------------------------
test('dead letter: a validation error is recorded with BILL\'s code and message; a manual retry completes it once', async () => {
  const message = 'Invalid field,value: dueDate, 2024-04-30.';
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'status', status: 400, code: 'BDC_1119', message, skip: 1, count: 1 }]);
  const ps = await buildMonth({ partners: 3 });
  const want = pushable(ps);
  const rows = await drained(want.length);
  const dead = rows.filter((o) => o.state === 'dead');
  assert.equal(dead.length, 1, `one row is dead (${await outboxSummary()})`);
  assert.equal(rows.filter((o) => o.state === 'done').length, want.length - 1, 'the others are done');
  const [d] = dead;
  assert.equal(d.last_error_code, 'BDC_1119', 'BILL\'s code is recorded');
  assert.equal(d.last_error, message, 'and its message');
  assert.equal(d.last_http_status, 400, 'and the HTTP status');
  assert.equal(d.attempts, 1, 'given up at once: retrying the same request would not help');
  const p = want.find((x) => x.id === d.payable_id);
  assert.ok(!billsByInvoice(await state()).has(p.invoice_number), 'BILL has no bill for it');

  const done = rows.find((o) => o.state === 'done');
  const err = await S.db.query('SELECT billops.bill_outbox_retry($1)', [done.id]).then(() => null, (e) => e);
  assert.equal(err?.code, 'BO005', 'only a dead row can be retried by hand');

  const mark = (await requests()).at(-1).seq;
  assert.equal((await one(S.db, 'SELECT billops.bill_outbox_retry($1) AS r', [d.id])).r, 'pending');
  const again = await drained(want.length);
  const r = again.find((o) => o.id === d.id);
  assert.equal(r.state, 'done', `the retried row is done (${r.last_error_code ?? ''} ${r.last_error ?? ''})`);
  assert.equal(r.last_error_code, null, 'and its error is cleared');
  await assertExactlyOneBillEach(ps, await state());
  const log = (await requests()).filter((x) => x.seq > mark);
  const lookup = log.findIndex((x) => isApi(x, 'GET', '/v3/bills'));
  const create = log.findIndex((x) => isApi(x, 'POST', '/v3/bills'));
  assert.ok(lookup >= 0 && lookup < create, 'the retry looks the bill up before creating it');
});

// --- 5 ------------------------------------------------------------------------------
test('exactly once under ambiguity: creates BILL did but whose answer was lost are found and adopted, not repeated', async () => {
  await setFaults([
    { match: { method: 'POST', path: '/v3/vendors$' }, kind: 'dropAfterCommit', count: 1 },
    { match: { method: 'POST', path: '/v3/bills$' }, kind: 'dropAfterCommit', count: 3 },
  ]);
  const ps = await buildMonth({ partners: 4 });
  const want = pushable(ps);
  const rows = await drained(want.length, 40000);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''} ${o.last_error ?? ''})`);
  const st = await state();
  await assertExactlyOneBillEach(ps, st);
  for (const name of new Set(want.map((p) => p.vendor)))
    assert.equal(st.vendors.filter((v) => v.name === name).length, 1, `one vendor "${name}" despite the lost create answer`);

  const log = await requests();
  const creates = log.filter((r) => isApi(r, 'POST', '/v3/bills'));
  const dropped = creates.filter((r) => r.outcome === 'droppedAfterCommit');
  assert.equal(dropped.length, 3, 'three bill creates were done by BILL and their answers lost');
  assert.equal(creates.length, want.length, 'one create per bill: none was sent twice');
  // BILL handles one create at a time: the k-th create it carried out made the k-th bill
  const made = creates.filter((r) => r.status === 201 || r.outcome === 'droppedAfterCommit');
  const bills = [...st.bills].sort((a, b) => a.createdTime.localeCompare(b.createdTime));
  assert.equal(made.length, bills.length);
  const links = new Map((await S.db.query('SELECT bill_id, payable_id::int AS id FROM billops.bill_link')).rows.map((l) => [l.bill_id, l.id]));
  for (const r of dropped) {
    const bill = bills[made.indexOf(r)];
    const later = log.filter((x) => x.seq > r.seq);
    const lookup = later.find((x) => isApi(x, 'GET', '/v3/bills') && x.query.filters === `vendorId:eq:${bill.vendorId}` && ok2xx(x));
    assert.ok(lookup, `${bill.invoice.invoiceNumber}: looked up after the lost answer`);
    const put = later.find((x) => x.path === `/connect/v3/bills/${bill.id}` && ['PUT', 'PATCH'].includes(x.method) && ok2xx(x));
    assert.ok(put && put.seq > lookup.seq, `${bill.invoice.invoiceNumber}: the bill found is adopted (${put?.method ?? 'no update'})`);
    assert.ok(links.has(bill.id), `${bill.invoice.invoiceNumber}: bill_link holds the adopted bill`);
  }
  const retried = rows.filter((o) => o.attempts >= 2);
  assert.ok(retried.length >= 3, `the rows whose answer was lost were retried (${retried.length})`);
});

test('documents: a file attached to a payable reaches its bill byte for byte, once, even when the upload answer is lost', async () => {
  await setFaults([{ match: { method: 'POST', path: '/v3/documents/bills/' }, kind: 'dropAfterCommit', count: 1 }]);
  const ps = await buildMonth({ partners: 1 });
  const want = pushable(ps);
  const p = want[0];
  // every byte value, and more than one network read
  const pdf = Buffer.concat([Buffer.from('%PDF-1.4\n'), Buffer.from([...Array(256).keys()]), crypto.randomBytes(300000)]);
  const statement = Buffer.from('statement for March');
  // attached in the transaction that built the payable's bill push: the documents wait for the bill
  await one(S.db, 'SELECT billops.attach_document($1, $2, $3) AS id', [p.id, 'invoice-A.pdf', pdf]);
  await one(S.db, `SELECT billops.attach_document($1, $2, $3, 'text/plain') AS id`, [p.id, 'statement.txt', statement]);
  const rows = await drained(want.length + 2);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''} ${o.last_error ?? ''})`);
  const st = await state();
  const bill = st.bills.find((b) => b.invoice.invoiceNumber === p.invoice_number);
  const docs = st.documents.filter((d) => d.billId === bill.id).sort((a, b) => a.name.localeCompare(b.name));
  assert.deepEqual(docs.map((d) => d.name), ['invoice-A.pdf', 'statement.txt'], 'each file once on the bill, despite the lost answer');
  const sha = (b) => crypto.createHash('sha256').update(b).digest('hex');
  assert.equal(docs[0].sha256, sha(pdf), 'the PDF arrived byte for byte');
  assert.equal(docs[0].size, pdf.length);
  assert.equal(docs[0].contentType, 'application/pdf');
  assert.equal(docs[1].sha256, sha(statement));
  assert.equal(docs[1].contentType, 'text/plain');
  const log = await requests();
  const dropped = log.filter((r) => r.method === 'POST' && r.path.startsWith('/connect/v3/documents/bills/') && r.outcome === 'droppedAfterCommit');
  assert.equal(dropped.length, 1, 'one upload was carried out by BILL and its answer lost');
  assert.ok(log.some((r) => r.seq > dropped[0].seq && isApi(r, 'GET', `/v3/documents/bills/${bill.id}`)), 'then the bill\'s documents were listed');
  const { rows: recorded } = await S.db.query('SELECT file_name, bill_document_id, upload_status FROM billops.payable_document ORDER BY file_name');
  assert.deepEqual(recorded.map((r) => [r.file_name, r.bill_document_id, r.upload_status]),
    docs.map((d) => [d.name, d.documentId, 'uploaded']), 'BILL\'s document ids (00h…) are recorded, not the uploads\' temporary ids');
});

test('documents: BILL processes an upload asynchronously; a failed upload is sent again', async () => {
  // each upload stays IN_PROGRESS for a while; the first one then fails
  await control('POST', 'config', { documentProcessingMs: 1500, failUploads: 1 });
  try {
    await S.db.query(`UPDATE billops.setting SET value = '0.2' WHERE name = 'bill_retry_base_seconds'`);
    const ps = await buildMonth({ partners: 1 });
    const p = pushable(ps)[0];
    await one(S.db, 'SELECT billops.attach_document($1, $2, $3) AS id', [p.id, 'usage-summary.pdf', Buffer.from('%PDF-1.4 summary')]);
    await waitFor('the document to be uploaded', async () => (await one(S.db,
      `SELECT upload_status FROM billops.payable_document WHERE file_name = 'usage-summary.pdf'`)).upload_status === 'uploaded',
    30000, 100);
    const doc = await one(S.db, `SELECT bill_document_id, upload_failures, bill_upload_id FROM billops.payable_document WHERE file_name = 'usage-summary.pdf'`);
    const st = await state();
    const held = st.documents.filter((d) => d.name === 'usage-summary.pdf');
    assert.deepEqual(held.map((d) => d.status).sort(), ['FAILED', 'UPLOADED'], 'BILL saw a failed upload, then a good one');
    assert.equal(doc.bill_document_id, held.find((d) => d.status === 'UPLOADED').documentId, 'the good upload\'s document id is kept');
    assert.equal(doc.upload_failures, 1, 'the failure is counted');
    const statusCalls = (await requests()).filter((r) => isApi(r, 'GET', '/v3/documents/upload-status'));
    assert.ok(statusCalls.length >= 3, `the worker asked for the status while BILL processed (${statusCalls.length} times)`);
    const row = await one(S.db, `SELECT state, attempts FROM billops.bill_outbox WHERE action = 'document_upload' ORDER BY outbox_id DESC LIMIT 1`);
    assert.equal(row.state, 'done');
    assert.equal(row.attempts, 2, 'waiting for BILL spends no attempt; the failed upload spent one');
  } finally {
    await control('POST', 'config', { documentProcessingMs: 0, failUploads: 0 });
    await S.db.query(`UPDATE billops.setting SET value = '2' WHERE name = 'bill_retry_base_seconds'`);
  }
});

// --- 6 ------------------------------------------------------------------------------
// Kill the worker at the worst moments: while BILL holds a create, and after BILL
// created a vendor or a bill but before the worker recorded it (a row lock held
// here blocks the recording).  pg_terminate_backend costs the 10 s restart
// interval, so those trials are few; the postmaster is also killed (immediate
// stop; the worker starts with it at once) at several moments, when no other
// test file runs alongside (a crash would cut their connections too).
// the payable behind an outbox row: its vendor and the invoice number its bill carries
const outboxPayable = (outboxId) => one(S.db, `SELECT v.name AS vendor, billops.bill_invoice_number(p.dedupe_key) AS invoice_number
                                                FROM billops.bill_outbox o JOIN billops.payable p USING (payable_id)
                                                JOIN billops.vendor v USING (vendor_id) WHERE o.outbox_id = $1`, [outboxId]);
test('crash injection: killed at many moments, BILL still ends with exactly one bill per payable', { timeout: 150000 }, async (t) => {
  // every request takes a little while, so that three lanes do not push the whole month while
  // one request is held, and the kills land mid-push
  const pace = { match: { path: '/v3/' }, kind: 'slow', ms: 25, count: null };
  const hold = (p, ms, count) => ({ match: { method: 'POST', path: `${p}$` }, kind: 'slow', ms, count });
  await setFaults([hold('/v3/vendors', 600, 1), pace]);
  const ps = await buildMonth({ partners: 300 });
  const want = pushable(ps);
  const trials = [];

  // a. BILL created a vendor; the worker is killed before recording it
  const a = await outboxPayable((await holdRecording('POST', '/v3/vendors', terminate)).outboxId);
  const vendorMade = (await state()).vendors.find((v) => v.name === a.vendor);
  assert.ok(vendorMade, `BILL created vendor ${a.vendor} before the kill`);
  trials.push('terminated after BILL created a vendor, before it was recorded');

  // b. BILL created a bill; the worker is killed before recording it
  await setFaults([hold('/v3/bills', 600, 1), pace]);
  await connectedWorker();
  const b = await outboxPayable((await holdRecording('POST', '/v3/bills', terminate)).outboxId);
  const billMade = (await state()).bills.find((x) => x.invoice.invoiceNumber === b.invoice_number);
  trials.push('terminated after BILL created a bill, before it was recorded');
  assert.ok(billMade, 'BILL created the bill before the kill');

  // c. the worker is killed while BILL holds its creates (BILL never carries them out)
  await setFaults([hold('/v3/bills', 4000, 3), pace]);
  await connectedWorker();
  const held = await workerDoing('POST', '/v3/bills');
  await terminate(held.pid);
  trials.push('terminated while BILL held bill creates');

  const serial = siblingTestFiles() === 0;
  if (!serial) {
    t.diagnostic('other test files run alongside: the postmaster is not killed');
  } else {
    // d. postmaster killed while BILL holds creates
    await setFaults([hold('/v3/bills', 4000, 3), pace]);
    await connectedWorker();
    await workerDoing('POST', '/v3/bills');
    await restartPostmaster();
    trials.push('postmaster killed while BILL held bill creates');
    // e. postmaster killed after BILL created a bill, before the worker recorded it
    await setFaults([hold('/v3/bills', 600, 1), pace]);
    await connectedWorker();
    await holdRecording('POST', '/v3/bills', async () => { await setFaults([pace]); await restartPostmaster(); });
    trials.push('postmaster killed after BILL created a bill, before it was recorded');
    // f. postmaster killed at spread-out moments
    for (const ms of [15, 60, 110, 170, 240, 320, 410]) {
      if (!(await outbox()).some((o) => o.state !== 'done')) break;
      const w = await connectedWorker();
      await waitFor('the worker to be busy', async () => RE_ACTIVITY.test((await workerRow())?.query ?? ''), 10000, 5);
      await sleep(ms);
      const doing = (await workerRow())?.query;
      await restartPostmaster();
      trials.push(`postmaster killed ${ms} ms into a push (${doing})`);
      assert.notEqual((await connectedWorker()).pid, w.pid, 'a new worker');
    }
  }
  // g. without the postmaster trials: terminated at spread-out moments (each costs a restart interval)
  for (const ms of serial ? [] : [30, 140]) {
    if (!(await outbox()).some((o) => o.state !== 'done')) break;
    await setFaults([{ match: { path: '/v3/' }, kind: 'slow', ms: 20, count: null }]);
    await connectedWorker();
    await waitFor('the worker to be busy', async () => RE_ACTIVITY.test((await workerRow())?.query ?? ''), 10000, 5);
    await sleep(ms);
    const w = await workerRow();
    await terminate(w.pid);
    trials.push(`terminated ${ms} ms into a push (${w.query})`);
  }
  t.diagnostic(`${trials.length} trials: ${trials.join('; ')}`);

  await control('DELETE', 'faults');
  await connectedWorker();
  const rows = await drained(want.length, 40000);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done (${o.last_error_code ?? ''} ${o.last_error ?? ''})`);
  const st = await state();
  await assertExactlyOneBillEach(ps, st);
  for (const name of new Set(want.map((p) => p.vendor)))
    assert.equal(st.vendors.filter((v) => v.name === name).length, 1, `one vendor "${name}" in BILL`);
  assert.equal((await one(S.db, 'SELECT bill_vendor_id FROM billops.vendor WHERE name = $1', [a.vendor])).bill_vendor_id,
    vendorMade.id, 'the vendor created before the kill is the one recorded');
  const linked = await one(S.db, 'SELECT bill_id FROM billops.bill_link WHERE invoice_number = $1', [billMade.invoice.invoiceNumber]);
  assert.equal(linked?.bill_id, billMade.id, 'the bill created before the kill is the one adopted');
  const log = await requests();
  assert.equal(log.filter((r) => isApi(r, 'POST', '/v3/bills') && (r.status === 201 || r.outcome === 'droppedAfterCommit')).length,
    want.length, 'BILL carried out exactly one create per bill');
  assert.ok(trials.length >= (serial ? 10 : 5), `enough trials ran (${trials.length})`);
});

// --- 7 ------------------------------------------------------------------------------
test('SIGTERM while waiting on BILL: the worker is gone within a second', { timeout: 60000 }, async (t) => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 8000, count: 1 }]);
  const ps = await buildMonth({ partners: 2 });
  const want = pushable(ps);
  const w = await workerHeld('POST', '/v3/bills');
  const activity = (await workerRow()).query;
  assert.match(activity, new RegExp(`^pg_billops: waiting on BILL: (.*; )?outbox ${w.outboxId}: POST /v3/bills(;|$)`), 'pg_stat_activity says what it waits for');
  const t0 = performance.now();
  await S.admin.query('SELECT pg_terminate_backend($1)', [w.pid]);
  await waitGone(w.pid, 5000);
  const ms = performance.now() - t0;
  t.diagnostic(`the worker was gone ${ms.toFixed(0)} ms after pg_terminate_backend`);
  assert.ok(ms < 1000, `gone in ${ms.toFixed(0)} ms`);
  const aborted = await waitFor('BILL to see the request abandoned', async () =>
    (await requests()).find((r) => isApi(r, 'POST', '/v3/bills') && r.outcome === 'clientAborted'), 5000, 20);
  assert.ok(aborted.durationMs < 8000, 'the held create was abandoned, not completed');
  const heldBill = await outboxPayable(w.outboxId);
  assert.ok(!(await state()).bills.some((b) => b.invoice.invoiceNumber === heldBill.invoice_number),
    'so BILL did not create that bill');
  // the postmaster starts a new worker, which finishes the job
  await connectedWorker();
  const rows = await drained(want.length);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done`);
  await assertExactlyOneBillEach(ps, await state());
});

test('DROP EXTENSION while the worker waits on BILL is not blocked, and the worker serves the extension created again', { timeout: 60000 }, async (t) => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 3000, count: 1 }]);
  await buildMonth({ partners: 1 });
  const w = await workerHeld('POST', '/v3/bills');
  await S.db.query(`SET statement_timeout = '5s'`);
  const t0 = performance.now();
  await S.db.query('DROP EXTENSION pg_billops CASCADE');
  const ms = performance.now() - t0;
  await S.db.query('RESET statement_timeout');
  t.diagnostic(`DROP EXTENSION took ${ms.toFixed(0)} ms while the worker waited on BILL`);
  assert.ok(ms < 1000, `not blocked (${ms.toFixed(0)} ms): the worker holds no transaction across HTTP`);
  // the held answer arrives for an outbox that is gone: the worker reports it and carries on
  await sleep(3500);
  assert.ok(processAlive(w.pid), 'the same worker process is still there');
  await control('POST', 'reset');
  await S.db.query('CREATE EXTENSION pg_billops CASCADE');
  await S.db.query(NO_CONTEXT_DOCUMENTS);
  const ps = await buildMonth({ partners: 1 });
  const want = pushable(ps);
  const rows = await drained(want.length);
  for (const o of rows) assert.equal(o.state, 'done', `outbox ${o.id} is done`);
  await assertExactlyOneBillEach(ps, await state());
  assert.equal((await workerRow()).pid, w.pid, 'served by the same worker');
});

// --- 8 ------------------------------------------------------------------------------
test('DROP DATABASE of the worker\'s database is not blocked, and the worker comes back', { timeout: 60000 }, async (t) => {
  await setFaults([{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 20000, count: 1 }]);
  await buildMonth({ partners: 1 });
  const w = await workerHeld('POST', '/v3/bills');   // connected, and in the middle of a request
  const started = (await one(S.admin, 'SELECT pg_postmaster_start_time() AS t')).t.getTime();
  const logFile = path.join(RUN, 'log', 'postgres.log');
  const logFrom = fs.statSync(logFile).size;
  await Promise.all([...clients].filter((c) => c !== S.admin).map((c) => c.end().catch(() => {})));

  const t0 = performance.now();
  await S.admin.query(`DROP DATABASE ${DB}`);
  const ms = performance.now() - t0;
  t.diagnostic(`DROP DATABASE took ${ms.toFixed(0)} ms`);
  assert.ok(ms < 2500, `DROP DATABASE took ${ms.toFixed(0)} ms (not blocked by the worker)`);
  await waitFor('the worker process to be gone', async () => !processAlive(w.pid), 1000, 5);
  // (the other lanes' creates were answered at once; the held one was cut off)
  const aborted = (await requests()).filter((r) => isApi(r, 'POST', '/v3/bills') && r.outcome === 'clientAborted');
  assert.equal(aborted.length, 1, 'it left in the middle of its request to BILL');
  assert.equal((await one(S.admin, `SELECT count(*)::int AS n FROM pg_database WHERE datname = $1`, [DB])).n, 0, 'the database is gone');

  // it comes back (after the restart interval) and connects to the database once it exists again
  await S.admin.query(`CREATE DATABASE ${DB}`);
  const again = await connectedWorker(RESTART_WAIT_MS + 5000);
  assert.notEqual(again.pid, w.pid, 'a new worker process');
  assert.equal((await one(S.admin, 'SELECT pg_postmaster_start_time() AS t')).t.getTime(), started, 'the server did not restart');
  const log = fs.readFileSync(logFile, 'utf8').slice(logFrom);
  assert.doesNotMatch(log, /terminated by signal|terminating any other active server processes|server process .* exited with exit code [^01]/,
    'no crash in the server log');
  S.db = await connectTo(DB);
});
