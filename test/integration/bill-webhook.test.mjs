// BILL webhooks end to end: payables pushed to the BILL v3 emulator by the
// background worker are approved, denied and paid by "someone in BILL" (the
// emulator's control API); BILL POSTs signed notifications to a webhook relay
// played by this test process (a node:http server that passes the raw body and
// the x-bill-sha-signature header to billops.receive_bill_webhook()), and the
// payables follow.  Every expectation comes from the database, from what the
// relay saw and answered, and from the emulator's delivery log: approvals land
// with BILL as the approver and the approval lock applies, a body altered on
// the way or signed with another key is refused (401) and changes nothing, an
// event delivered twice is applied once, and payment moves the payable through
// scheduled to paid.  The BILL poller is off (billops.bill_poll_interval = 0),
// so nothing here can be the poll's doing.
//
// Needs the environment of test/run-tests.sh: a cluster with pg_billops
// preloaded and the BILL emulator started by lib.sh's start_bill_emulator,
// which wrote webhook_security_key (BILL_WEBHOOK_KEY) into the BILL credentials
// file.  BILL always generates a subscription's securityKey, so the emulator is
// told to sign with the key Postgres has (POST /_emulator/subscriptions/{id}/security-key).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pg, RUN, one, waitFor, billControl, connectTo, openClients, expectError, AWS_INC, writeBillTestMonth } from './helpers.mjs';

const DB = 'billops_webhook';
const WORKER = 'pg_billops BILL worker';
const CONTROL = process.env.BILL_EMULATOR_CONTROL;
const BILL = process.env.BILL_ENDPOINT;
const EVENTS = process.env.BILL_EVENTS_ENDPOINT;
const ORG = process.env.BILL_ORGANIZATION_ID;
const KEY = process.env.BILL_WEBHOOK_KEY || 'billops-test-webhook-key';   // lib.sh's default
const CSV = RUN ? path.join(RUN, 'bill-webhook-month.csv') : null;
const SIGNATURE = 'x-bill-sha-signature';
const SETTINGS = ['billops.bill_database', 'billops.bill_poll_interval'];
const RESTART_WAIT_MS = 16000;      // bgw_restart_time is 10 s

// --- connections --------------------------------------------------------------
const clients = openClients;
const open = connectTo;
let admin;   // the postgres database
let db;      // this file's database


// --- the BILL emulator ------------------------------------------------------------
const control = billControl;
const webhooks = () => control('GET', 'webhooks');
async function drainWebhooks() {
  const r = await control('POST', 'webhooks/drain', { timeoutMs: 15000 });
  assert.equal(r.idle, true, 'the emulator delivered every queued notification');
}
// BILL's own API, as a person or an integration working in BILL would use it
async function billApi(base, method, p, body, { session, headers = {} } = {}) {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: {
      'content-type': 'application/json', ...headers,
      ...(session ? { devKey: process.env.BILL_DEV_KEY, sessionId: session } : {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) throw new Error(`BILL ${method} ${p}: ${res.status} ${text}`);
  return json;
}
async function billLogin() {
  const r = await billApi(BILL, 'POST', '/v3/login', {
    username: process.env.BILL_USERNAME, password: process.env.BILL_PASSWORD,
    organizationId: ORG, devKey: process.env.BILL_DEV_KEY,
  });
  return r.sessionId;
}
const hmac = (key, raw) => crypto.createHmac('sha256', key).update(raw).digest('base64');

// --- the webhook relay --------------------------------------------------------------
// Production puts a small HTTP service in front of the database; this is it.  It
// reads the raw body bytes and hands them, with the signature header, to
// billops.receive_bill_webhook(): 200 with the outcome, 401 for a signature
// refused, 400 for a malformed notification.  relay.tamper(raw) may return other
// bytes to pass on instead (a body altered on the way).
const relay = { server: null, url: null, db: null, calls: [], tamper: null };
function eventIdOf(raw) {
  try { return JSON.parse(raw.toString('utf8')).metadata?.eventId ?? null; } catch { return null; }
}
function billIdOf(raw) {
  try { return JSON.parse(raw.toString('utf8')).bill?.id ?? null; } catch { return null; }
}
async function startRelay() {
  relay.db = await open(DB);
  relay.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks);
      const call = { raw, signature: req.headers[SIGNATURE] ?? null, eventId: eventIdOf(raw), tampered: false };
      try {
        if (req.method !== 'POST' || req.url !== '/bill/webhook') {
          call.status = 404;
        } else {
          const passed = relay.tamper?.(raw) ?? raw;
          call.tampered = !passed.equals(raw);
          const r = await relay.db.query('SELECT billops.receive_bill_webhook($1, $2) AS outcome',
            [passed.toString('utf8'), call.signature]);
          call.status = 200;
          call.outcome = r.rows[0].outcome;
          // (what the bill links looked like once this delivery was handled)
          call.linksSyncedAfter = (await relay.db.query('SELECT max(synced_at)::text AS t FROM billops.bill_link')).rows[0].t;
        }
      } catch (e) {
        call.error = { code: e.code, message: e.message, hint: e.hint };
        call.status = e.code === '28000' ? 401 : /^22/.test(e.code ?? '') ? 400 : 500;
      }
      relay.calls.push(call);
      res.writeHead(call.status, { 'content-type': 'application/json' })
        .end(JSON.stringify(call.error ? { error: call.error.message } : { outcome: call.outcome ?? null }));
    });
  });
  const port = await new Promise((resolve) => relay.server.listen(0, '127.0.0.1', () => resolve(relay.server.address().port)));
  relay.url = `http://127.0.0.1:${port}/bill/webhook`;
}

// Run action (something done in BILL), wait until BILL has delivered what it
// caused, and return the new events, delivery attempts and relay calls.
async function inBill(action) {
  const wh = await webhooks();
  const marks = { events: wh.events.length, deliveries: wh.deliveries.length, calls: relay.calls.length };
  const result = await action();
  await drainWebhooks();
  const after = await webhooks();
  return {
    result,
    events: after.events.slice(marks.events),
    deliveries: after.deliveries.slice(marks.deliveries),
    calls: relay.calls.slice(marks.calls),
  };
}
const billEvents = (r, billId) => r.events.filter((e) => e.eventType === 'bill.updated' && e.payload.bill?.id === billId);

// --- the month --------------------------------------------------------------------
// Payer 111111111111, March 2024, final: Datadog (two invoicing entities: two bills),
// MongoDB, Snowflake and partners sharing a vendor: more routed invoice-like payables
// than the tests need, each pushed to BILL by the worker.
function writeMonth(partners) {
  const inc = AWS_INC;
  writeBillTestMonth(CSV, [
    ['INV-DD-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd1', '800.00', '"Datadog, Inc."', 'Datadog Pro'],
    ['INV-DD-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd2', '41.10', '"Datadog, Inc."', 'Datadog Logs'],
    ['EUINV-1', 'Amazon Web Services EMEA SARL', 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd1', '120.00', 'DATADOG INC', 'Datadog Pro'],
    ['INV-MDB-1', inc, 'AWS Marketplace', '222222222222', 'Usage', 'prod-mdb', '300.00', '"MongoDB, Inc."', 'MongoDB Atlas'],
    ['INV-SF-1', inc, 'AWS Marketplace', '333333333333', 'Usage', 'prod-sf', '1234.56', 'Snowflake Inc.', 'Snowflake Compute'],
  ], partners);
}
async function buildMonth() {
  writeMonth(3);
  await db.query(`INSERT INTO billops.vendor (name, kind) VALUES
                    ('Datadog', 'marketplace_seller'), ('MongoDB', 'marketplace_seller'),
                    ('Snowflake', 'marketplace_seller'), ('Partner Network', 'partner')`);
  await db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'exact', a FROM billops.vendor
                    JOIN (VALUES ('Datadog', 'Datadog, Inc.'), ('MongoDB', 'MongoDB, Inc.'),
                                 ('Snowflake', 'Snowflake Inc.')) x(v, a)
                      ON name = v`);
  await db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'pattern', '^Partner [0-9]+ LLC$' FROM billops.vendor WHERE name = 'Partner Network'`);
  await db.query(`INSERT INTO billops.coding_rule (field, value, priority, usage_account_id) VALUES
                    ('gl_account', '6100-cloud', 100, NULL), ('department', 'FINOPS', 200, NULL)`);
  await db.query('SET client_min_messages = warning');
  await db.query(`SELECT billops.load_cur_file($1, 'bill-webhook', $2)`, [CSV, `bwh-${Date.now()}`]);
  await db.query('SELECT count(*) FROM billops.build_payables()');
}

const outboxSummary = async () => JSON.stringify((await db.query(
  `SELECT outbox_id, state, step, attempts, last_error_code FROM billops.bill_outbox ORDER BY outbox_id`)).rows);

// One payable as the database has it, with its bill link and approval steps.
async function payable(id) {
  return one(db, `
    SELECT p.payable_id::int AS id, p.status, p.amount::text AS amount, p.approved_at, p.routing_round,
           l.bill_id, l.approval_status, l.payment_status, l.amount::text AS bill_amount,
           l.paid_amount::text AS paid_amount, l.scheduled_amount::text AS scheduled_amount,
           l.due_amount::text AS due_amount, l.synced_at, l.conflict,
           (SELECT json_agg(json_build_object('status', s.status, 'decided_by', s.decided_by, 'comment', s.comment,
                                              'decided_at', s.decided_at) ORDER BY s.seq, s.step_id)
              FROM billops.approval_step s
             WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round) AS steps
      FROM billops.payable p JOIN billops.bill_link l USING (payable_id)
     WHERE p.payable_id = $1`, [id]);
}
const webhookRows = async (where = 'true', params = []) => (await db.query(
  `SELECT event_id, event_type, subscription_id, bill_id, outcome, payload, received_at
     FROM billops.bill_webhook_event WHERE ${where} ORDER BY received_at, event_id`, params)).rows;
const count = async (table) => (await one(db, `SELECT count(*)::int AS n FROM ${table}`)).n;

// Payables pushed to BILL, still routed, for the tests to take one each.
const pool = [];
function take(label) {
  const p = pool.shift();
  assert.ok(p, `a routed payable with a bill in BILL is left for ${label}`);
  return p;
}

// The BILL poller never ran: its watermark is unset and BILL saw no updatedTime poll.
async function assertNoPoll() {
  assert.equal(await count('billops.bill_sync_state'), 0, 'the BILL poller never ran (no watermark)');
  const polls = (await control('GET', 'requests')).filter((r) => r.method === 'GET' && r.path === '/connect/v3/bills' &&
    String(r.query?.filters ?? '').startsWith('updatedTime:'));
  assert.equal(polls.length, 0, 'BILL saw no poll by updatedTime');
}

// --- file setup -------------------------------------------------------------------
let saved = [];        // ALTER SYSTEM values of SETTINGS before this file
let subscription;
before(async () => {
  assert.ok(CONTROL && BILL && EVENTS && RUN, 'BILL_EMULATOR_CONTROL, BILL_ENDPOINT, BILL_EVENTS_ENDPOINT and BILLOPS_RUN are set (run through test/run-tests.sh)');
  admin = await open('postgres');
  saved = (await admin.query(
    `SELECT DISTINCT ON (name) name, setting FROM pg_file_settings
      WHERE sourcefile LIKE '%postgresql.auto.conf' AND name = ANY($1) ORDER BY name, seqno DESC`, [SETTINGS])).rows;
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  db = await open(DB);
  await db.query('CREATE EXTENSION pg_billops CASCADE');
  // Postgres verifies with the key lib.sh wrote (the key itself never enters SQL)
  assert.equal((await one(db, 'SELECT billops._bill_webhook_verify($1, $2) AS ok', ['probe', hmac(KEY, 'probe')])).ok, true,
    'the credentials file holds BILL_WEBHOOK_KEY as webhook_security_key');
  await control('POST', 'reset');
  await admin.query(`ALTER SYSTEM SET billops.bill_database = '${DB}'`);
  // no poll by updatedTime: whatever BILL changes reaches the payables by webhook only
  await admin.query('ALTER SYSTEM SET billops.bill_poll_interval = 0');
  await admin.query('SELECT pg_reload_conf()');
  await waitFor(`the BILL worker to connect to ${DB}`, async () => (await one(admin,
    'SELECT datname FROM pg_stat_activity WHERE backend_type = $1', [WORKER]))?.datname === DB, RESTART_WAIT_MS + 4000, 50);

  // the relay, subscribed to what BILL says about bills and payments, signing with Postgres' key
  await startRelay();
  const session = await billLogin();
  subscription = await billApi(EVENTS, 'POST', '/v3/subscriptions', {
    name: 'pg_billops relay', status: { enabled: true }, notificationUrl: relay.url,
    events: [{ type: 'bill.updated', version: '1' }, { type: 'payment.updated', version: '1' }],
  }, { session, headers: { 'X-Idempotent-Key': crypto.randomUUID() } });
  assert.ok(subscription.securityKey, 'BILL shows the generated securityKey once');
  assert.notEqual(subscription.securityKey, KEY);
  const set = await control('POST', `subscriptions/${subscription.id}/security-key`, { securityKey: KEY });
  assert.equal(set.subscription.securityKey, KEY);
  await billApi(BILL, 'POST', '/v3/logout', null, { session }).catch(() => {});

  // the worker pushes the month's routed invoice-like payables to BILL
  await buildMonth();
  const want = (await one(db, `SELECT count(*)::int AS n FROM billops.payable
                                WHERE treatment = 'invoice_like' AND status = 'routed'`)).n;
  await waitFor('the worker to push every routed payable', async () => {
    const o = await one(db, `SELECT count(*) FILTER (WHERE state = 'done')::int AS done,
                                    count(*) FILTER (WHERE state IN ('pending', 'in_flight'))::int AS busy FROM billops.bill_outbox`);
    return o.done >= want && o.busy === 0;
  }, 30000, 50, outboxSummary);
  await drainWebhooks();
  const { rows } = await db.query(
    `SELECT p.payable_id::int AS id FROM billops.payable p JOIN billops.bill_link l USING (payable_id)
      WHERE p.status = 'routed' AND l.bill_id IS NOT NULL
        AND EXISTS (SELECT FROM billops.approval_step s WHERE s.payable_id = p.payable_id AND s.status = 'pending')
      ORDER BY p.payable_id`);
  pool.push(...rows.map((r) => r.id));
  assert.ok(pool.length >= 5, `enough routed payables in BILL for the tests (${pool.length} of ${want})`);
});

after(async () => {
  try {
    if (relay.server) {
      relay.server.closeAllConnections();
      await new Promise((r) => relay.server.close(r));
    }
    await control('POST', 'reset').catch(() => {});
    admin ??= await open('postgres');
    for (const name of SETTINGS) {
      const s = saved.find((x) => x.name === name);
      await admin.query(s ? `ALTER SYSTEM SET ${name} = '${s.setting.replace(/'/g, "''")}'` : `ALTER SYSTEM RESET ${name}`);
    }
    await admin.query('SELECT pg_reload_conf()');
    await Promise.all([...clients].filter((c) => c !== admin).map((c) => c.end().catch(() => {})));
    await admin.query(`DROP DATABASE IF EXISTS ${DB} WITH (FORCE)`);
  } finally {
    await Promise.all([...clients].map((c) => c.end().catch(() => {})));
  }
});

// --- 1 ------------------------------------------------------------------------------
test('approved in BILL: the webhook approves the payable, BILL is the approver, and the approval lock holds', async (t) => {
  const id = take('the approval');
  const was = await payable(id);
  assert.equal(was.status, 'routed');
  assert.ok(was.steps.length > 0 && was.steps.every((s) => s.status === 'pending' && s.decided_by === null), 'its steps are pending');
  // not locked yet: the amount is refused as derived data (BO006), not as frozen
  const early = await expectError(db, 'UPDATE billops.payable SET amount = amount + 1 WHERE payable_id = $1', [id]);
  assert.equal(early.code, 'BO006', early.message);
  const outboxBefore = await count('billops.bill_outbox');

  const t0 = performance.now();
  const r = await inBill(() => control('POST', `bills/${was.bill_id}/approve`, { comment: 'ok from BILL' }));
  t.diagnostic(`approved in BILL → payable approved in ${(performance.now() - t0).toFixed(0)} ms`);
  assert.equal(r.result.bill.approvalStatus, 'APPROVED');
  const [ev, ...more] = billEvents(r, was.bill_id);
  assert.ok(ev && more.length === 0, `one bill.updated for the bill (${r.events.length} events)`);
  const tries = r.deliveries.filter((d) => d.eventId === ev.eventId);
  assert.deepEqual(tries.map((d) => [d.status, d.ok, d.url]), [[200, true, relay.url]], 'delivered once, accepted');
  const [call] = r.calls.filter((c) => c.eventId === ev.eventId);
  assert.equal(call.signature, hmac(KEY, call.raw), 'signed with the key Postgres has');
  assert.equal(call.outcome, 'approved in BILL');

  const now = await payable(id);
  assert.equal(now.status, 'approved');
  assert.ok(now.approved_at, 'approved_at is set');
  assert.equal(now.approval_status, 'APPROVED', 'bill_link mirrors BILL');
  assert.equal(now.conflict, null);
  assert.equal(now.steps.length, was.steps.length);
  for (const s of now.steps) {
    assert.equal(s.status, 'approved');
    assert.equal(s.decided_by, 'BILL', 'BILL is the approver');
    assert.equal(s.comment, 'approved in BILL (webhook bill.updated)');
    assert.ok(s.decided_at);
  }
  const [row] = await webhookRows('event_id = $1', [ev.eventId]);
  assert.ok(row, 'the event is recorded');
  assert.deepEqual([row.event_type, row.subscription_id, row.bill_id, row.outcome],
    ['bill.updated', subscription.id, was.bill_id, 'approved in BILL']);
  assert.deepEqual(row.payload, JSON.parse(call.raw.toString('utf8')), 'with the payload as BILL sent it');

  // the approval lock
  const frozen = await expectError(db, 'UPDATE billops.payable SET amount = amount + 1 WHERE payable_id = $1', [id]);
  assert.equal(frozen.code, 'BO002', frozen.message);
  assert.match(frozen.message, /is approved and frozen/);
  const lines = await expectError(db, 'UPDATE billops.payable_line SET amount = amount + 1 WHERE payable_id = $1', [id]);
  assert.equal(lines.code, 'BO002', lines.message);
  assert.equal((await payable(id)).amount, was.amount, 'the amount is unchanged');
  assert.equal(await count('billops.bill_outbox'), outboxBefore, 'nothing is pushed back to BILL');
  await assertNoPoll();
});

// --- 2 ------------------------------------------------------------------------------
test('a bad signature is refused (28000, 401) and changes nothing; BILL\'s redelivery is then applied', async () => {
  // a. approved in BILL; the relay alters one byte of the body on its way to Postgres
  const b = take('the altered body');
  const wasB = await payable(b);
  const rowsBefore = await count('billops.bill_webhook_event');
  relay.tamper = (raw) => {
    if (billIdOf(raw) !== wasB.bill_id) return null;
    const out = Buffer.from(raw);
    const i = raw.indexOf('"eventId":"') + '"eventId":"'.length;   // a hex digit of the UUID
    out[i] = out[i] === 0x30 ? 0x31 : 0x30;
    return out;
  };
  let r;
  try {
    r = await inBill(() => control('POST', `bills/${wasB.bill_id}/approve`));
  } finally {
    relay.tamper = null;
  }
  const [evB] = billEvents(r, wasB.bill_id);
  assert.ok(evB, 'BILL sent a bill.updated');
  const calls = r.calls.filter((c) => c.eventId === evB.eventId);
  assert.ok(calls.length >= 2, `BILL retried the refused notification (${calls.length} attempts)`);
  for (const c of calls) {
    assert.equal(c.tampered, true);
    assert.equal(c.signature, hmac(KEY, c.raw), 'BILL signed it correctly');
    assert.equal(c.status, 401);
    assert.equal(c.error.code, '28000', 'invalid_authorization_specification');
    assert.equal(c.error.message, 'BILL webhook signature does not match');
    assert.match(c.error.hint, /x-bill-sha-signature/);
  }
  const tries = r.deliveries.filter((d) => d.eventId === evB.eventId);
  assert.equal(tries.length, calls.length);
  assert.ok(tries.every((d) => d.status === 401 && !d.ok), 'BILL saw 401 each time');
  const nowB = await payable(b);
  assert.deepEqual(nowB, wasB, 'the payable, its steps and its bill link are unchanged');
  assert.equal(await count('billops.bill_webhook_event'), rowsBefore, 'no event recorded');

  // the genuine body with a wrong or missing signature is refused too
  const raw = calls[0].raw.toString('utf8');
  for (const [what, sig] of [['another key', hmac('not-the-webhook-key', raw)], ['no signature', null], ['an empty one', '']]) {
    const e = await expectError(db, 'SELECT billops.receive_bill_webhook($1, $2)', [raw, sig]);
    assert.equal(e.code, '28000', `${what}: ${e.message}`);
    assert.equal(e.message, 'BILL webhook signature does not match');
  }

  // b. denied in BILL, and BILL signs with a wrong key (the emulator's badWebhookSignature)
  const c = take('the wrong key');
  const wasC = await payable(c);
  await control('POST', 'faults', { faults: [{ kind: 'badWebhookSignature', match: { eventType: 'bill.updated' }, count: 1 }] });
  const rc = await inBill(() => control('POST', `bills/${wasC.bill_id}/deny`, { comment: 'no' }));
  await control('DELETE', 'faults');
  const [evC] = billEvents(rc, wasC.bill_id);
  assert.ok(evC?.badSignature, 'BILL signed the denial with a wrong key');
  const callsC = rc.calls.filter((x) => x.eventId === evC.eventId);
  assert.ok(callsC.length >= 1 && callsC.every((x) => !x.tampered && x.status === 401 && x.error.code === '28000'),
    JSON.stringify(callsC.map((x) => [x.status, x.error?.code])));
  const nowC = await payable(c);
  assert.deepEqual(nowC, wasC, 'the denial did not reach the payable');
  assert.equal(nowC.status, 'routed', 'still routed, not in the exception queue');
  assert.equal(await count('billops.bill_webhook_event'), rowsBefore, 'still no event recorded');
  assert.equal((await webhookRows('bill_id = ANY($1)', [[wasB.bill_id, wasC.bill_id]])).length, 0);

  // c. a refusal leaves no trace behind: BILL's resend of the approval, unaltered, is applied
  const session = await billLogin();
  const re = await inBill(() => billApi(EVENTS, 'POST', `/v3/events/subscription/${subscription.id}/event/${evB.eventId}`,
    null, { session }));
  const [ok] = re.calls.filter((x) => x.eventId === evB.eventId);
  assert.equal(ok?.status, 200, JSON.stringify(ok?.error ?? null));
  assert.equal(ok.outcome, 'approved in BILL');
  assert.ok(ok.raw.equals(calls[0].raw), 'the same body as before');
  assert.equal((await payable(b)).status, 'approved');
  assert.equal((await webhookRows('event_id = $1', [evB.eventId])).length, 1);
  await assertNoPoll();
});

// --- 3 ------------------------------------------------------------------------------
test('an event delivered twice is applied once (deduplicated by eventId)', async () => {
  const d = take('the duplicate');
  const was = await payable(d);
  await control('POST', 'faults', { faults: [{ kind: 'duplicateWebhook', match: { eventType: 'bill.updated' }, count: 1 }] });
  const r = await inBill(() => control('POST', `bills/${was.bill_id}/approve`));
  await control('DELETE', 'faults');
  const [ev] = billEvents(r, was.bill_id);
  assert.ok(ev?.duplicate, 'BILL delivered the notification twice');
  const calls = r.calls.filter((c) => c.eventId === ev.eventId);
  assert.equal(calls.length, 2, 'the relay got it twice');
  assert.ok(calls[1].raw.equals(calls[0].raw) && calls[1].signature === calls[0].signature, 'byte for byte the same, same signature');
  assert.deepEqual(calls.map((c) => [c.status, c.outcome]), [[200, 'approved in BILL'], [200, 'duplicate']],
    'the first is applied, the second recognised as a duplicate (and acknowledged, so BILL stops)');

  const rows = await webhookRows('event_id = $1', [ev.eventId]);
  assert.equal(rows.length, 1, 'one row for the event');
  assert.equal(rows[0].outcome, 'approved in BILL');
  const now = await payable(d);
  assert.equal(now.status, 'approved');
  assert.ok(now.steps.every((s) => s.status === 'approved' && s.decided_by === 'BILL'));
  // had the second delivery been applied, it would have touched the bill link again
  assert.equal(calls[1].linksSyncedAfter, calls[0].linksSyncedAfter, 'the bill link was last synced by the first delivery');

  // a replay of the captured request, later, changes nothing either
  const total = await count('billops.bill_webhook_event');
  const again = await one(db, 'SELECT billops.receive_bill_webhook($1, $2) AS outcome', [calls[0].raw.toString('utf8'), calls[0].signature]);
  assert.equal(again.outcome, 'duplicate');
  assert.equal(await count('billops.bill_webhook_event'), total);
  assert.deepEqual(await payable(d), now, 'the payable and its bill link are as they were');
});

// --- 4 ------------------------------------------------------------------------------
test('paid in BILL: the payable goes approved → scheduled → paid, by webhook', async () => {
  const e = take('the payment');
  const was = await payable(e);
  const approve = await inBill(() => control('POST', `bills/${was.bill_id}/approve`));
  assert.equal((await payable(e)).status, 'approved');

  // someone in BILL schedules the payment (BILL API), for today on BILL's clock
  const session = await billLogin();
  const today = (await control('GET', 'clock')).now.slice(0, 10);
  const sched = await inBill(() => billApi(BILL, 'POST', '/v3/payments', {
    billId: was.bill_id, processDate: today, fundingAccount: { type: 'BANK_ACCOUNT', id: '0ba01WEBHOOKTEST0001' },
    amount: Number(was.amount),
  }, { session }));
  assert.equal(sched.result.status, 'SCHEDULED');
  const [evS] = billEvents(sched, was.bill_id);
  assert.equal(evS?.payload.bill.paymentStatus, 'SCHEDULED');
  assert.deepEqual(sched.calls.map((c) => c.status), sched.calls.map(() => 200), 'every notification accepted');
  const scheduled = await payable(e);
  assert.equal(scheduled.status, 'scheduled');
  assert.equal(scheduled.payment_status, 'SCHEDULED');
  assert.equal(Number(scheduled.scheduled_amount), Number(was.bill_amount));

  // the payment settles in BILL
  const paid = await inBill(() => control('POST', `bills/${was.bill_id}/pay`));
  assert.equal(paid.result.bill.paymentStatus, 'PAID');
  const [evP] = billEvents(paid, was.bill_id);
  assert.ok(evP, 'BILL sent a bill.updated for the settlement');
  assert.equal(paid.calls.find((c) => c.eventId === evP.eventId)?.outcome, 'paid');
  const now = await payable(e);
  assert.equal(now.status, 'paid');
  assert.equal(now.payment_status, 'PAID');
  assert.equal(Number(now.paid_amount), Number(was.amount), 'BILL paid the payable\'s amount');
  assert.equal(Number(now.due_amount), 0);
  assert.equal(Number(now.scheduled_amount), 0);
  assert.equal(now.conflict, null);

  // what the webhooks did for this bill, in order; payment notifications are recorded (the bill's
  // paymentStatus moves the payable; a payment only reports problems)
  const ours = [approve, sched, paid].flatMap((x) => billEvents(x, was.bill_id)).map((x) => x.eventId);
  const rows = await webhookRows('event_id = ANY($1)', [ours]);
  assert.deepEqual(rows.map((x) => x.outcome), ['approved in BILL', 'scheduled', 'paid']);
  const payments = await webhookRows(`event_type = 'payment.updated' AND payload->'payment'->'billIds' ? $1`, [was.bill_id]);
  assert.equal(payments.length, 2, 'payment.updated for the scheduling and the settlement');
  assert.ok(payments.every((x) => x.outcome === 'recorded' && x.bill_id === was.bill_id), JSON.stringify(payments));
  const { rows: [pay] } = await db.query(`SELECT status, last_event FROM billops.bill_payment WHERE $1 = ANY (bill_ids)`, [was.bill_id]);
  assert.deepEqual(pay, { status: 'CLEARED', last_event: 'payment.updated' });
  const frozen = await expectError(db, 'UPDATE billops.payable SET amount = amount - 1 WHERE payable_id = $1', [e]);
  assert.equal(frozen.code, 'BO002', frozen.message);
  await assertNoPoll();
});

test('a payment that fails in BILL reopens the payable\'s payment state and shows in the exception queue', async () => {
  const e = take('the failed payment');
  const was = await payable(e);
  await inBill(() => control('POST', `bills/${was.bill_id}/approve`));
  const paid = await inBill(() => control('POST', `bills/${was.bill_id}/pay`));
  assert.equal((await payable(e)).status, 'paid');
  // the vendor's bank sends the money back
  const failed = await inBill(() => control('POST', `payments/${paid.result.payments[0].id}/fail`,
    { status: 'DISBURSEMENT_FAILED_VENDOR_BANK_REJECTED' }));
  const outcomes = failed.calls.map((c) => c.outcome);
  assert.ok(outcomes.includes('payment failed'), JSON.stringify(outcomes));
  const now = await payable(e);
  assert.equal(now.status, 'approved', 'approved, not paid: the approval stands, the money did not move');
  const { rows: q } = await db.query(`SELECT reason_code, reason, next_step FROM billops.exception_queue WHERE payable_id = $1`, [e]);
  assert.deepEqual(q.map((r) => r.reason_code), ['payment_failed']);
  assert.match(q[0].reason, /^payment stp\S+ disbursement_failed_vendor_bank_rejected in BILL$/);
  assert.match(q[0].next_step, /pay the bill again/);
  // paid again: the problem is gone, the payable is paid
  await inBill(() => control('POST', `bills/${was.bill_id}/pay`));
  const again = await payable(e);
  assert.equal(again.status, 'paid');
  assert.equal((await db.query(`SELECT count(*)::int AS n FROM billops.exception_queue WHERE payable_id = $1`, [e])).rows[0].n, 0);
  await assertNoPoll();
});
