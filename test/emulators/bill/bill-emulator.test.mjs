// Self-test of the BILL v3 API emulator: node --test test/emulators/bill/
// The emulator runs in-process on port 0; a small webhook receiver runs beside it.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBillEmulator, DEFAULT_CREDENTIALS as C, DEFAULT_CONFIG } from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
let emu;
let port;
let hook; // webhook receiver
let hookPort;
const received = []; // { headers, raw, json }
let hookStatuses = []; // statuses the receiver answers with, in order; then 200

before(async () => {
  emu = createBillEmulator({ webhookRetryMs: 20 });
  port = await emu.listen(0);
  hook = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      received.push({ headers: req.headers, raw, json: JSON.parse(raw.toString('utf8')) });
      res.writeHead(hookStatuses.length ? hookStatuses.shift() : 200).end();
    });
  });
  hookPort = await new Promise((r) => hook.listen(0, '127.0.0.1', () => r(hook.address().port)));
});

after(async () => {
  await emu?.close();
  hook?.closeAllConnections();
  await new Promise((r) => hook.close(r));
});

beforeEach(async () => {
  await control('POST', 'reset');
  await control('POST', 'config', { ...DEFAULT_CONFIG, webhookRetryMs: 20 });
  received.length = 0;
  hookStatuses = [];
});

// --- a tiny HTTP client; resolves { error } when the connection dies ----------------------

function call({ method = 'GET', target, headers = {}, body }) {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', (e) => resolve({ error: e.code || e.message }));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, json, raw: Buffer.concat(chunks) });
      });
    });
    req.on('error', (e) => resolve({ error: e.code || e.message }));
    req.end(body);
  });
}

async function control(method, what, json) {
  const r = await call({
    method, target: `/_emulator/${what}`, headers: { 'Content-Type': 'application/json' },
    body: json === undefined ? undefined : JSON.stringify(json),
  });
  assert.ok(!r.error, `control ${what}: ${r.error}`);
  return r;
}

const qs = (q) => {
  const s = new URLSearchParams(q).toString();
  return s ? `?${s}` : '';
};

async function login(overrides = {}) {
  const r = await call({
    method: 'POST', target: '/connect/v3/login', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username: C.username, password: C.password, organizationId: C.organizationId, devKey: C.devKey, ...overrides }),
  });
  return r;
}

async function session() {
  const r = await login();
  assert.equal(r.status, 200, r.text);
  return r.json.sessionId;
}

// api(sid, 'POST', '/v3/bills', {...}) -> response
function api(sid, method, p, body, { headers = {}, query } = {}) {
  const h = { devKey: C.devKey, sessionId: sid, Accept: 'application/json', ...headers };
  let payload = body;
  if (body !== undefined && !Buffer.isBuffer(body) && typeof body !== 'string') {
    payload = JSON.stringify(body);
    h['Content-Type'] ??= 'application/json';
  }
  return call({ method, target: `/connect${p}${query ? qs(query) : ''}`, headers: h, body: payload });
}

function assertBdcError(r, status, code, message) {
  assert.ok(!r.error, `connection error ${r.error}`);
  assert.equal(r.status, status, r.text);
  assert.ok(Array.isArray(r.json) && r.json.length === 1, r.text);
  const e = r.json[0];
  assert.deepEqual(Object.keys(e).sort(), ['category', 'code', 'message', 'severity', 'timestamp']);
  assert.equal(e.code, code);
  assert.equal(e.severity, 'ERROR');
  assert.match(e.timestamp, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}\+00:00$/);
  assert.ok(['REQUEST', 'APPLICATION', 'SERVER', 'DOWNSTREAM'].includes(e.category), e.category);
  if (message !== undefined) assert.equal(e.message, message);
  return e;
}

async function vendor(sid, name = 'Amazon Web Services, Inc.') {
  const r = await api(sid, 'POST', '/v3/vendors', { name, accountType: 'BUSINESS' });
  assert.equal(r.status, 201, r.text);
  return r.json;
}

const billBody = (vendorId, extra = {}) => ({
  vendorId,
  dueDate: '2030-12-31',
  invoice: { invoiceNumber: 'INV-1', invoiceDate: '2030-12-01' },
  billLineItems: [
    { amount: 149, description: 'EC2', classifications: { chartOfAccountId: '0ca01EC2', departmentId: '0de01ENG' } },
    { amount: 79.99, description: 'S3', classifications: { chartOfAccountId: '0ca01S3' } },
  ],
  ...extra,
});

async function bill(sid, vendorId, extra) {
  const r = await api(sid, 'POST', '/v3/bills', billBody(vendorId, extra));
  assert.equal(r.status, 201, r.text);
  return r.json;
}

async function drainWebhooks() {
  const r = await control('POST', 'webhooks/drain', { timeoutMs: 5000 });
  assert.equal(r.status, 200, r.text);
}

async function subscribe(sid, events = ['bill.created', 'bill.updated', 'bill.archived', 'payment.updated']) {
  const r = await api(sid, 'POST', '/v3/subscriptions', {
    name: 'billops', status: { enabled: true }, events: events.map((type) => ({ type, version: '1' })),
    notificationUrl: `http://127.0.0.1:${hookPort}/bill-events`,
  }, { headers: { 'X-Idempotent-Key': crypto.randomUUID() } });
  assert.equal(r.status, 200, r.text);
  return r.json;
}

const hmac = (key, raw) => crypto.createHmac('sha256', key).update(raw).digest('base64');

// --- auth -------------------------------------------------------------------------------

test('login: success returns the documented fields; bad credentials are BDC_1101, a bad devKey BDC_1102', async () => {
  const ok = await login();
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(Object.keys(ok.json).sort(), ['organizationId', 'sessionId', 'trusted', 'userId']);
  assert.equal(ok.json.organizationId, C.organizationId);
  assert.equal(ok.json.userId, C.userId);
  assert.equal(ok.json.trusted, false);
  assert.ok(ok.json.sessionId.length >= 20);

  assertBdcError(await login({ password: 'wrong' }), 401, 'BDC_1101', 'User name and/or password do not match our records.');
  assertBdcError(await login({ username: 'nobody@example.com' }), 401, 'BDC_1101');
  assertBdcError(await login({ devKey: 'not-a-dev-key' }), 401, 'BDC_1102', 'Developer key is invalid.');
  assertBdcError(await login({ organizationId: '00801SOMEONEELSE0001' }), 401, 'BDC_1123');
  const stats = (await control('GET', 'stats')).json;
  assert.equal(stats.logins, 5);
  assert.equal(stats.loginSuccesses, 1);
});

test('every call needs devKey and sessionId headers (names are case-insensitive); logout ends the session', async () => {
  const sid = await session();
  assertBdcError(await call({ target: '/connect/v3/vendors', headers: { sessionId: sid } }), 401, 'BDC_1102');
  assertBdcError(await call({ target: '/connect/v3/vendors', headers: { devKey: 'wrong', sessionId: sid } }), 401, 'BDC_1102');
  assertBdcError(await call({ target: '/connect/v3/vendors', headers: { devKey: C.devKey } }), 401, 'BDC_1109', 'Session is invalid.  Please log in.');
  assertBdcError(await call({ target: '/connect/v3/vendors', headers: { devKey: C.devKey, sessionId: '!bogus' } }), 401, 'BDC_1109');
  const odd = await call({ target: '/connect/v3/login/session', headers: { DEVKEY: C.devKey, SESSIONID: sid } });
  assert.equal(odd.status, 200, odd.text);
  assert.equal(odd.json.userId, C.userId);
  const out = await api(sid, 'POST', '/v3/logout');
  assert.equal(out.status, 200);
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109');
});

test('sessions expire after the idle time (BDC_1109); use keeps them alive; a new login works', async () => {
  const sid = await session();
  const idle = DEFAULT_CONFIG.sessionIdleMs;
  assert.equal(idle, 35 * 60 * 1000);
  await control('POST', 'clock', { advanceMs: idle - 1000 });
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200); // refreshes lastUsed
  await control('POST', 'clock', { advanceMs: idle - 1000 });
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200);
  await control('POST', 'clock', { advanceMs: idle + 1 });
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109', 'Session is invalid.  Please log in.');
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109'); // stays invalid
  const sid2 = await session();
  assert.notEqual(sid2, sid);
  assert.equal((await api(sid2, 'GET', '/v3/vendors')).status, 200);

  // the idle time is configurable at run time
  await control('POST', 'config', { sessionIdleMs: 1000 });
  await control('POST', 'clock', { advanceMs: 1001 });
  assertBdcError(await api(sid2, 'GET', '/v3/vendors'), 401, 'BDC_1109');
});

test('unknown endpoints are BDC_1121; error bodies have exactly the documented shape', async () => {
  const sid = await session();
  const e = assertBdcError(await api(sid, 'GET', '/v3/no-such-thing'), 404, 'BDC_1121', 'API not supported.');
  assert.equal(e.category, 'REQUEST');
  assertBdcError(await call({ target: '/elsewhere/v3/bills' }), 404, 'BDC_1121');
  assertBdcError(await api(sid, 'DELETE', '/v3/bills'), 405, 'BDC_1121');
  assertBdcError(await api(sid, 'POST', '/v3/bills', '{not json'), 400, 'BDC_1122');
  assertBdcError(await api(sid, 'GET', '/v3/bills/00n01DOESNOTEXIST00'), 404, 'BDC_1120');
});

// --- vendors ------------------------------------------------------------------------------

test('vendors: create (009 id, validation), duplicates by name allowed, search with filters', async () => {
  const sid = await session();
  const a = await vendor(sid, 'Datadog');
  assert.match(a.id, /^009[0-9A-Za-z]{17}$/);
  assert.equal(a.name, 'Datadog');
  assert.equal(a.accountType, 'BUSINESS');
  assert.equal(a.archived, false);
  const b = await vendor(sid, 'Datadog'); // BILL does not prevent duplicates
  assert.notEqual(a.id, b.id);
  const c = await vendor(sid, 'Amazon Web Services, Inc.');

  assertBdcError(await api(sid, 'POST', '/v3/vendors', { name: 'x'.repeat(101) }), 400, 'BDC_1119');
  assertBdcError(await api(sid, 'POST', '/v3/vendors', { name: 'ok', shortName: 'x'.repeat(41) }), 400, 'BDC_1119');
  assertBdcError(await api(sid, 'POST', '/v3/vendors', { name: 'ok', accountType: 'COMPANY' }), 400, 'BDC_1119');
  assertBdcError(await api(sid, 'POST', '/v3/vendors', { accountType: 'BUSINESS' }), 400, 'BDC_1117');

  const byName = await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: 'name:eq:Datadog' } });
  assert.equal(byName.status, 200, byName.text);
  assert.deepEqual(byName.json.results.map((v) => v.id).sort(), [a.id, b.id].sort());
  assert.equal(byName.json.nextPage, undefined);
  const comma = await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: 'name:eq:"Amazon Web Services, Inc."' } });
  assert.deepEqual(comma.json.results.map((v) => v.id), [c.id]);
  const ins = await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: `id:in:"${a.id},${c.id}"` } });
  assert.deepEqual(ins.json.results.map((v) => v.id).sort(), [a.id, c.id].sort());

  const arch = await api(sid, 'POST', `/v3/vendors/${b.id}/archive`);
  assert.equal(arch.json.archived, true);
  const live = await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: 'name:eq:Datadog,archived:eq:false' } });
  assert.deepEqual(live.json.results.map((v) => v.id), [a.id]);
  assertBdcError(await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: 'color:eq:red' } }), 400, 'BDC_1130');
  assertBdcError(await api(sid, 'GET', '/v3/vendors', undefined, { query: { filters: 'archived:gt:false' } }), 400, 'BDC_1131');

  const patched = await api(sid, 'PATCH', `/v3/vendors/${a.id}`, { email: 'ap@datadog.example' });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.json.email, 'ap@datadog.example');
  assert.equal(patched.json.name, 'Datadog');
  assert.equal((await api(sid, 'GET', `/v3/vendors/${a.id}`)).json.email, 'ap@datadog.example');
});

// --- bills --------------------------------------------------------------------------------

test('bills: create -> 201 with 00n id, amount summed, line ids, statuses; duplicate invoice numbers allowed', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b = await bill(sid, v.id, { description: 'AWS 2030-11', purchaseOrderNumber: 'PO-7' });
  assert.match(b.id, /^00n[0-9A-Za-z]{17}$/);
  assert.equal(b.amount, 228.99);
  assert.equal(b.dueAmount, 228.99);
  assert.equal(b.paidAmount, 0);
  assert.equal(b.scheduledAmount, 0);
  assert.equal(b.paymentStatus, 'UNPAID');
  assert.equal(b.approvalStatus, 'UNDEFINED');
  assert.deepEqual(b.approvers, []);
  assert.equal(b.archived, false);
  assert.equal(b.vendorName, 'Amazon Web Services, Inc.');
  assert.equal(b.billLineItems.length, 2);
  for (const l of b.billLineItems) assert.ok(typeof l.id === 'string' && l.id.length === 20);
  assert.deepEqual(b.billLineItems[0].classifications, { chartOfAccountId: '0ca01EC2', departmentId: '0de01ENG' });
  assert.deepEqual(b.invoice, { invoiceNumber: 'INV-1', invoiceDate: '2030-12-01' });
  assert.ok(!Number.isNaN(Date.parse(b.createdTime)) && b.createdTime === b.updatedTime);

  const dup = await bill(sid, v.id); // same invoice number: BILL has no idempotency for bills
  assert.notEqual(dup.id, b.id);
  const byVendor = await api(sid, 'GET', '/v3/bills', undefined, { query: { filters: `vendorId:eq:${v.id}` } });
  assert.equal(byVendor.json.results.filter((x) => x.invoice.invoiceNumber === 'INV-1').length, 2);
  assert.deepEqual((await api(sid, 'GET', `/v3/bills/${b.id}`)).json, b);

  assertBdcError(await api(sid, 'POST', '/v3/bills', billBody('00901NOSUCHVENDOR00')), 400, 'BDC_1119');
  assertBdcError(await api(sid, 'POST', '/v3/bills', { ...billBody(v.id), billLineItems: [] }), 400, 'BDC_1117');
  assertBdcError(await api(sid, 'POST', '/v3/bills', { ...billBody(v.id), dueDate: '2030-02-30' }), 400, 'BDC_1119');
  assertBdcError(await api(sid, 'POST', '/v3/bills', { ...billBody(v.id), invoice: { invoiceDate: '2030-01-01' } }), 400, 'BDC_1117');
});

test('bills: list by vendorId with max/page/nextPage across more than 100 bills; max>100 is rejected', async () => {
  const sid = await session();
  const v = await vendor(sid, 'Many');
  const other = await vendor(sid, 'Other');
  await bill(sid, other.id);
  const mk = (i) => billBody(v.id, { invoice: { invoiceNumber: `N-${i}`, invoiceDate: '2030-12-01' } });
  const bulk = await api(sid, 'POST', '/v3/bills/bulk', Array.from({ length: 100 }, (_, i) => mk(i)));
  assert.equal(bulk.status, 201, bulk.text);
  assert.equal(bulk.json.length, 100);
  for (let i = 100; i < 130; i++) assert.equal((await api(sid, 'POST', '/v3/bills', mk(i))).status, 201);

  const seen = [];
  let page;
  let pages = 0;
  do {
    const r = await api(sid, 'GET', '/v3/bills', undefined, {
      query: { filters: `vendorId:eq:${v.id}`, max: '50', ...(page ? { page } : {}) },
    });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.results.length <= 50);
    if (pages === 0) assert.equal(r.json.prevPage, undefined);
    else assert.equal(typeof r.json.prevPage, 'string');
    seen.push(...r.json.results.map((b) => b.id));
    page = r.json.nextPage;
    pages++;
  } while (page);
  assert.equal(pages, 3);
  assert.equal(seen.length, 130);
  assert.equal(new Set(seen).size, 130);

  // a last page that is exactly full has no nextPage either
  const exact = await api(sid, 'GET', '/v3/bills', undefined, { query: { filters: `vendorId:eq:${other.id}`, max: '1' } });
  assert.equal(exact.json.results.length, 1);
  assert.equal('nextPage' in exact.json, false);
  const whole = await api(sid, 'GET', '/v3/bills', undefined, { query: { filters: `vendorId:eq:${v.id}`, max: '65' } });
  const second = await api(sid, 'GET', '/v3/bills', undefined, { query: { filters: `vendorId:eq:${v.id}`, max: '65', page: whole.json.nextPage } });
  assert.equal(second.json.results.length, 65);
  assert.equal('nextPage' in second.json, false);

  const dflt = await api(sid, 'GET', '/v3/bills');
  assert.equal(dflt.json.results.length, 20);
  assert.equal(typeof dflt.json.nextPage, 'string');
  assert.equal((await api(sid, 'GET', '/v3/bills', undefined, { query: { max: '100' } })).json.results.length, 100);
  assertBdcError(await api(sid, 'GET', '/v3/bills', undefined, { query: { max: '101' } }), 400, 'BDC_1129');
  assertBdcError(await api(sid, 'GET', '/v3/bills', undefined, { query: { page: 'garbage' } }), 400, 'BDC_1129');
  // a token only pages the query it came from
  assertBdcError(await api(sid, 'GET', '/v3/bills', undefined, { query: { page: dflt.json.nextPage, filters: `vendorId:eq:${v.id}` } }), 400, 'BDC_1129');
});

test('bills/bulk is all-or-nothing and takes at most 100', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const r = await api(sid, 'POST', '/v3/bills/bulk', [billBody(v.id), billBody('00901NOSUCHVENDOR00')]);
  assertBdcError(r, 400, 'BDC_1119');
  assert.equal((await control('GET', 'state')).json.bills.length, 0);
  assertBdcError(await api(sid, 'POST', '/v3/bills/bulk', Array.from({ length: 101 }, () => billBody(v.id))), 400, 'BDC_1129');
});

test('bills: list filters and sort (archived, updatedTime, paymentStatus, dueDate)', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b1 = await bill(sid, v.id, { dueDate: '2030-01-15' });
  const b2 = await bill(sid, v.id, { dueDate: '2030-02-15' });
  const b3 = await bill(sid, v.id, { dueDate: '2030-03-15' });
  await api(sid, 'POST', `/v3/bills/${b1.id}/archive`);
  const list = async (query) => (await api(sid, 'GET', '/v3/bills', undefined, { query })).json.results.map((b) => b.id);
  assert.deepEqual(await list({ filters: 'archived:eq:false' }), [b2.id, b3.id]);
  assert.deepEqual(await list({ filters: `updatedTime:gt:"${b3.updatedTime}"` }), [b1.id]);
  assert.deepEqual(await list({ sort: 'updatedTime:desc' }), [b1.id, b3.id, b2.id]);
  assert.deepEqual(await list({ filters: 'dueDate:gte:2030-02-01,dueDate:lt:2030-03-01' }), [b2.id]);
  assert.deepEqual(await list({ filters: `id:ne:${b2.id}` }), [b1.id, b3.id]);
  assert.deepEqual(await list({ filters: 'paymentStatus:eq:PAID' }), []);
  assert.equal((await list({ filters: 'paymentStatus:eq:UNPAID' })).length, 3);
});

test('PATCH keeps line ids; a line patched without classifications loses its coding, the others keep theirs', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  const [l1, l2] = b.billLineItems;
  const r = await api(sid, 'PATCH', `/v3/bills/${b.id}`, { billLineItems: [{ id: l1.id, amount: 179, description: 'EC2 (corrected)' }] });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.billLineItems.map((l) => l.id), [l1.id, l2.id]);
  assert.equal(r.json.billLineItems[0].amount, 179);
  assert.deepEqual(r.json.billLineItems[0].classifications, {}); // coding cleared
  assert.deepEqual(r.json.billLineItems[1].classifications, { chartOfAccountId: '0ca01S3' }); // untouched
  assert.equal(r.json.amount, 258.99);
  assert.ok(r.json.updatedTime > b.updatedTime);

  const r2 = await api(sid, 'PATCH', `/v3/bills/${b.id}`, {
    billLineItems: [{ id: l1.id, amount: 179, classifications: { chartOfAccountId: '0ca01EC2' } }],
    invoice: { invoiceNumber: 'INV-1b' },
  });
  assert.deepEqual(r2.json.billLineItems[0].classifications, { chartOfAccountId: '0ca01EC2' });
  assert.deepEqual(r2.json.invoice, { invoiceNumber: 'INV-1b', invoiceDate: '2030-12-01' });
  assertBdcError(await api(sid, 'PATCH', `/v3/bills/${b.id}`, { billLineItems: [{ id: 'bli01NOTONTHISBILL0', amount: 1 }] }), 400, 'BDC_1119');
});

test('PUT replaces line items: given ids kept, new lines get ids, omitted lines are removed', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  const [l1, l2] = b.billLineItems;
  const r = await api(sid, 'PUT', `/v3/bills/${b.id}`, {
    ...billBody(v.id),
    billLineItems: [{ amount: 29.99, description: 'CloudFront' }, { id: l2.id, amount: 80, description: 'S3' }],
  });
  assert.equal(r.status, 200, r.text);
  const ids = r.json.billLineItems.map((l) => l.id);
  assert.equal(ids.length, 2);
  assert.ok(!ids.includes(l1.id));
  assert.equal(ids[1], l2.id);
  assert.ok(ids[0] && ids[0] !== l2.id);
  assert.deepEqual(r.json.billLineItems[1].classifications, {}); // PUT: what is given is what is kept
  assert.equal(r.json.amount, 109.99);
  assertBdcError(await api(sid, 'PUT', `/v3/bills/${b.id}`, { ...billBody(v.id), billLineItems: [{ id: l1.id, amount: 5 }] }), 400, 'BDC_1119');
});

test('archive is idempotent (one bill.archived event); restore undoes it', async () => {
  const sid = await session();
  await subscribe(sid, ['bill.archived', 'bill.restored']);
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  const a1 = await api(sid, 'POST', `/v3/bills/${b.id}/archive`);
  const a2 = await api(sid, 'POST', `/v3/bills/${b.id}/archive`);
  assert.equal(a1.status, 200);
  assert.equal(a2.status, 200);
  assert.equal(a1.json.archived, true);
  assert.equal(a2.json.archived, true);
  assert.equal(a2.json.updatedTime, a1.json.updatedTime);
  assertBdcError(await api(sid, 'PATCH', `/v3/bills/${b.id}`, { description: 'x' }), 400, 'BDC_1119');
  const rs = await api(sid, 'POST', `/v3/bills/${b.id}/restore`);
  assert.equal(rs.json.archived, false);
  await drainWebhooks();
  assert.deepEqual(received.map((x) => x.json.metadata.eventType), ['bill.archived', 'bill.restored']);
});

// --- documents ----------------------------------------------------------------------------

test('documents: raw binary upload is stored byte for byte; over 6 MB and multipart are rejected', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  const pdf = Buffer.concat([Buffer.from('%PDF-1.7\n'), crypto.randomBytes(200_000)]);
  const up = await api(sid, 'POST', `/v3/documents/bills/${b.id}`, pdf, {
    query: { name: 'invoice.pdf' }, headers: { 'Content-Type': 'application/pdf' },
  });
  assert.equal(up.status, 200, up.text);
  assert.match(up.json.id, /^0du/);
  assert.equal(up.json.name, 'invoice.pdf');
  assert.ok(up.json.createdTime && up.json.downloadLink);
  const st = await api(sid, 'GET', '/v3/documents/upload-status', undefined, { query: { ids: up.json.id } });
  assert.equal(st.status, 200, st.text);
  assert.equal(st.json[0].status, 'UPLOADED');
  assert.match(st.json[0].documentId, /^00h/);
  const doc = await api(sid, 'GET', `/v3/documents/${st.json[0].documentId}`);
  assert.equal(doc.json.name, 'invoice.pdf');
  const state = (await control('GET', 'state')).json;
  assert.equal(state.documents[0].size, pdf.length);
  assert.equal(state.documents[0].sha256, crypto.createHash('sha256').update(pdf).digest('hex'));
  const content = await call({ target: new URL(doc.json.downloadLink).pathname });
  assert.ok(content.raw.equals(pdf));

  const limit = 6 * 1024 * 1024;
  const atLimit = await api(sid, 'POST', `/v3/documents/bills/${b.id}`, Buffer.alloc(limit, 1), { query: { name: 'max.pdf' } });
  assert.equal(atLimit.status, 200, atLimit.text);
  const tooBig = await api(sid, 'POST', `/v3/documents/bills/${b.id}`, Buffer.alloc(limit + 1, 1), { query: { name: 'big.pdf' } });
  assertBdcError(tooBig, 400, 'BDC_1129');
  const multipart = await api(sid, 'POST', `/v3/documents/bills/${b.id}`, '--x\r\n\r\nhello\r\n--x--\r\n', {
    query: { name: 'm.pdf' }, headers: { 'Content-Type': 'multipart/form-data; boundary=x' },
  });
  assertBdcError(multipart, 400, 'BDC_1129');
  assertBdcError(await api(sid, 'POST', `/v3/documents/bills/${b.id}`, pdf), 400, 'BDC_1108');
  assert.equal((await control('GET', 'state')).json.documents.length, 2);
});

test('documents: an upload stays IN_PROGRESS for --document-processing-ms of emulator time', async () => {
  const sid = await session();
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  await control('POST', 'config', { documentProcessingMs: 60000 });
  const up = await api(sid, 'POST', `/v3/documents/bills/${b.id}`, Buffer.from('x'), { query: { name: 'a.pdf' } });
  assert.equal(up.json.downloadLink, undefined);
  const st = async () => (await api(sid, 'GET', '/v3/documents/upload-status', undefined, { query: { ids: up.json.id } })).json[0];
  assert.deepEqual(await st(), { uploadId: up.json.id, status: 'IN_PROGRESS' });
  await control('POST', 'clock', { advanceMs: 60000 });
  assert.equal((await st()).status, 'UPLOADED');
});

// --- limits -------------------------------------------------------------------------------

test('concurrency: 4 parallel slow requests -> exactly one BDC_1322 (throttle status 422); stats show max 3', async () => {
  const sid = await session();
  await control('POST', 'faults', { faults: [{ match: { method: 'GET', path: '/v3/vendors$' }, kind: 'slow', ms: 300, count: 4 }] });
  const rs = await Promise.all([0, 1, 2, 3].map(() => api(sid, 'GET', '/v3/vendors')));
  const rejected = rs.filter((r) => r.status !== 200);
  assert.equal(rejected.length, 1, rs.map((r) => r.status).join(','));
  assertBdcError(rejected[0], 422, 'BDC_1322', 'Max number of concurrent requests per organization reached.');
  const stats = (await control('GET', 'stats')).json;
  assert.equal(stats.maxConcurrentByOrg[C.organizationId], 3);
  assert.equal(stats.concurrency[0].maxAttemptedInFlight, 4);
  assert.equal(stats.concurrency[0].rejections, 1);
  assert.equal(stats.concurrency[0].inFlight, 0);
  // slots are free again
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200);
});

test('a slow request whose client disconnects is not processed and frees its slot', async () => {
  const sid = await session();
  const v = await vendor(sid);
  await control('POST', 'faults', { faults: [{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'slow', ms: 400 }] });
  const r = await new Promise((resolve) => {
    const body = JSON.stringify(billBody(v.id));
    const req = http.request({
      host: '127.0.0.1', port, method: 'POST', path: '/connect/v3/bills', agent: false,
      headers: { devKey: C.devKey, sessionId: sid, 'Content-Type': 'application/json' },
    }, () => resolve('answered'));
    req.on('error', () => resolve('aborted'));
    req.end(body);
    setTimeout(() => req.destroy(), 100);
  });
  assert.equal(r, 'aborted');
  await new Promise((res) => setTimeout(res, 500));
  const state = (await control('GET', 'state')).json;
  assert.equal(state.bills.length, 0);
  const stats = (await control('GET', 'stats')).json;
  assert.equal(stats.concurrency[0].inFlight, 0);
  const log = (await control('GET', 'requests')).json;
  assert.equal(log.at(-1).outcome, 'clientAborted');
});

test('hourly limit: BDC_1144 until the window passes (clock advance), login limit too', async () => {
  await control('POST', 'config', { hourlyLimit: 5, hourMs: 3600000 });
  // start at the beginning of a window so the test cannot straddle two
  const clock = (await control('GET', 'clock')).json;
  const t = Date.parse(clock.now);
  await control('POST', 'clock', { advanceMs: 3600000 - (t % 3600000) + 1000 });
  const sid = await session(); // 1
  for (let i = 0; i < 4; i++) assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200); // 2..5
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 422, 'BDC_1144', 'Max number of allowed requests per hour reached: 5.');
  await control('POST', 'clock', { advanceMs: 30 * 60 * 1000 });
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 422, 'BDC_1144'); // same hour: still failing
  assertBdcError(await login(), 422, 'BDC_1144');
  assert.equal((await control('GET', 'stats')).json.hour.requests[C.devKey], 5);
  await control('POST', 'clock', { advanceMs: 30 * 60 * 1000 });
  // next hour; the session idled for 60 minutes (throttled calls do not keep it alive)
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109');
  assert.equal((await api(await session(), 'GET', '/v3/vendors')).status, 200);

  // login: 200/hour by default; its code and the throttle status are configurable
  await control('POST', 'config', { hourlyLimit: 20000, loginHourlyLimit: 2, loginLimitCode: 'BDC_1322', throttleStatus: 429 });
  await control('POST', 'clock', { advanceMs: 3600000 }); // a fresh window: no logins yet
  assert.equal((await login()).status, 200);
  assert.equal((await login()).status, 200);
  assertBdcError(await login(), 429, 'BDC_1322');
});

test('hour windows follow --hour-ms', async () => {
  await control('POST', 'config', { hourlyLimit: 2, hourMs: 60000 });
  const t = Date.parse((await control('GET', 'clock')).json.now);
  await control('POST', 'clock', { advanceMs: 60000 - (t % 60000) + 10 });
  const sid = await session();
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200);
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 422, 'BDC_1144');
  await control('POST', 'clock', { advanceMs: 60000 });
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200);
});

// --- approvals and payments ---------------------------------------------------------------

test('users and roles: the organization\'s users with their role, paged and filtered; the control API adds approvers', async () => {
  const sid = await session();
  const roles = await api(sid, 'GET', '/v3/roles');
  assert.equal(roles.status, 200, roles.text);
  assert.deepEqual(roles.json.map((r) => r.type), ['ADMINISTRATOR', 'ACCOUNTANT', 'APPROVER', 'PAYER', 'CLERK', 'AUDITOR']);
  assert.ok(roles.json.every((r) => /^0po/.test(r.id)));
  const roleId = Object.fromEntries(roles.json.map((r) => [r.type, r.id]));
  const added = [];
  for (let i = 0; i < 24; i++) {
    const r = await control('POST', 'users', { firstName: `A${i}`, role: i % 3 === 0 ? 'CLERK' : 'APPROVER', archived: i === 5 });
    assert.equal(r.status, 201, r.text);
    added.push(r.json);
  }
  assert.ok(added.every((u) => /^006/.test(u.id)));
  assert.equal((await control('POST', 'users', { id: 'not-a-user-id' })).status, 400);
  // every user, page by page (max 10): the API user first, then the added ones
  const seen = [];
  let page;
  do {
    const r = await api(sid, 'GET', '/v3/users', undefined, { query: { max: '10', ...(page ? { page } : {}) } });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json.results.length <= 10);
    seen.push(...r.json.results);
    page = r.json.nextPage;
  } while (page);
  assert.equal(seen.length, 25);
  assert.deepEqual(seen[0], { ...seen[0], id: C.userId, roleId: roleId.ADMINISTRATOR, archived: false });
  assert.equal(seen.find((u) => u.id === added[3].id).roleId, roleId.CLERK);
  const active = await api(sid, 'GET', '/v3/users', undefined, { query: { max: '100', filters: 'archived:eq:false' } });
  assert.equal(active.json.results.length, 24);
  const one = await api(sid, 'GET', `/v3/users/${added[1].id}`);
  assert.equal(one.json.roleId, roleId.APPROVER);
  assertBdcError(await api(sid, 'GET', '/v3/users/00601NOSUCHUSER000000'), 404, 'BDC_1120');
});

test('jobs: create (name required, parent must exist), search by name, read, update; a policy keyed on JOB_ID assigns its approvers', async () => {
  const sid = await session();
  assertBdcError(await api(sid, 'POST', '/v3/classifications/jobs', { shortName: 'x' }), 400, 'BDC_1117');
  const a = await api(sid, 'POST', '/v3/classifications/jobs', { name: 'pg_billops route 1', description: 'owners' });
  assert.equal(a.status, 201, a.text);
  assert.match(a.json.id, /^job/);
  assertBdcError(await api(sid, 'POST', '/v3/classifications/jobs', { name: 'child', parentId: 'job01NOPE' }), 400, 'BDC_1119');
  await api(sid, 'POST', '/v3/classifications/jobs', { name: 'pg_billops route 2' });
  const found = await api(sid, 'GET', '/v3/classifications/jobs', undefined, { query: { filters: 'name:eq:"pg_billops route 1"' } });
  assert.deepEqual(found.json.results.map((j) => j.id), [a.json.id]);
  const upd = await api(sid, 'PATCH', `/v3/classifications/jobs/${a.json.id}`, { description: 'owners, then leadership' });
  assert.equal(upd.json.description, 'owners, then leadership');
  assert.equal((await api(sid, 'GET', `/v3/classifications/jobs/${a.json.id}`)).json.name, 'pg_billops route 1');
  // the route: a policy on JOB_ID; a bill classified with the job gets its approvers, in order
  const pol = await api(sid, 'POST', '/v3/bill-approvals/policies', {
    policyName: 'pg_billops route 1', rules: [{ key: 'JOB_ID', op: 'eq', values: [a.json.id] }], approvers: ['00601OWNER000000001', C.userId],
  });
  assert.equal(pol.status, 201, pol.text);
  const v = await vendor(sid);
  // (a job is a line classification: BILL's bill-level classifications have no jobId)
  const routed = await bill(sid, v.id, { billLineItems: [{ amount: 10, description: 'EC2', classifications: { jobId: a.json.id } }] });
  assert.deepEqual(routed.approvers.map((x) => [x.userId, x.approverOrder, x.status]),
    [['00601OWNER000000001', 1, 'WAITING'], [C.userId, 2, 'WAITING']]);
  assert.equal((await bill(sid, v.id)).approvalStatus, 'UNDEFINED', 'a bill without the job matches no policy');
});

test('approvals: a matching policy assigns approvers; APPROVE through the API; payment only once approved', async () => {
  let sid = await session();
  const pol = await api(sid, 'POST', '/v3/bill-approvals/policies', {
    policyName: 'Approval policy for bills >= $1000',
    rules: [{ key: 'BILL_AMOUNT', op: 'gte', values: ['1000'] }],
    approvers: [C.userId],
  });
  assert.equal(pol.status, 201, pol.text);
  assert.deepEqual(pol.json.rules, [{ key: 'BILL_AMOUNT', op: 'gte', values: [{ value: '1000', displayName: '1000' }] }]);
  assert.equal(pol.json.approvers.users[0].userId, C.userId);
  assert.equal((await api(sid, 'GET', '/v3/bill-approvals/policies')).json.length, 1);

  const v = await vendor(sid);
  const small = await bill(sid, v.id);
  assert.equal(small.approvalStatus, 'UNDEFINED');
  const big = await bill(sid, v.id, { billLineItems: [{ amount: 1500, description: 'Savings Plan' }] });
  assert.equal(big.approvalStatus, 'ASSIGNED');
  assert.equal(big.approvers.length, 1);
  assert.deepEqual({ ...big.approvers[0], statusChangedTime: undefined }, { userId: C.userId, status: 'WAITING', approverOrder: 1, statusChangedTime: undefined });

  const pending = await api(sid, 'GET', '/v3/bill-approvals/pending-user-approvals');
  assert.deepEqual(pending.json, { bills: [{ billId: big.id, vendorId: v.id, amount: 1500, dueDate: '2030-12-31' }] });

  const pay = (billId, amount) => api(sid, 'POST', '/v3/payments', {
    billId, processDate: '2031-01-05', fundingAccount: { type: 'BANK_ACCOUNT', id: 'bac01TEST' }, amount,
  });
  assertBdcError(await pay(big.id, 1500), 400, 'BDC_1119'); // not approved yet

  const act = await api(sid, 'POST', '/v3/bill-approvals/actions', [{ billId: big.id, action: 'APPROVE', comment: 'ok' }]);
  assert.equal(act.status, 200, act.text);
  assert.deepEqual(act.json, { status: 'SUCCESS' });
  const after = (await api(sid, 'GET', `/v3/bills/${big.id}`)).json;
  assert.equal(after.approvalStatus, 'APPROVED');
  assert.equal(after.approvers[0].status, 'APPROVED');
  assert.deepEqual((await api(sid, 'GET', '/v3/bill-approvals/pending-user-approvals')).json, { bills: [] });
  assertBdcError(await api(sid, 'POST', '/v3/bill-approvals/actions', [{ billId: big.id, action: 'APPROVE' }]), 400, 'BDC_1119');

  const p = await pay(big.id, 1500);
  assert.equal(p.status, 201, p.text);
  assert.equal(p.json.status, 'SCHEDULED');
  assert.match(p.json.id, /^stp/);
  let b = (await api(sid, 'GET', `/v3/bills/${big.id}`)).json;
  assert.equal(b.paymentStatus, 'SCHEDULED');
  assert.equal(b.scheduledAmount, 1500);
  assertBdcError(await pay(big.id, 1), 400, 'BDC_1119'); // nothing left to schedule
  // the payment settles when the emulator's date reaches its processDate
  await control('POST', 'clock', { advanceMs: Date.parse('2031-01-06T00:00:00Z') - Date.parse((await control('GET', 'clock')).json.now) });
  sid = await session(); // years later: the old session has expired
  b = (await api(sid, 'GET', `/v3/bills/${big.id}`)).json;
  assert.equal(b.paymentStatus, 'PAID');
  assert.equal(b.paidAmount, 1500);
  assert.equal(b.dueAmount, 0);
  assert.equal((await api(sid, 'GET', `/v3/payments/${p.json.id}`)).json.status, 'PAID');
});

test('control API: approve/deny/pay/edit act like a person in BILL and fire bill.updated', async () => {
  const sid = await session();
  await api(sid, 'POST', '/v3/bill-approvals/policies', {
    policyName: 'two approvers', rules: [{ key: 'BILL_AMOUNT', op: 'gt', values: ['0'] }], approvers: ['00601APPROVERA00001', '00601APPROVERB00001'],
  });
  await subscribe(sid);
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  assert.deepEqual(b.approvers.map((a) => [a.userId, a.approverOrder]), [['00601APPROVERA00001', 1], ['00601APPROVERB00001', 2]]);
  // the API user is not an approver of this bill
  assertBdcError(await api(sid, 'POST', '/v3/bill-approvals/actions', [{ billId: b.id, action: 'APPROVE' }]), 400, 'BDC_1119');

  const ap = await control('POST', `bills/${b.id}/approve`, { userId: '00601APPROVERA00001' });
  assert.equal(ap.status, 200, ap.text);
  assert.equal(ap.json.bill.approvalStatus, 'ASSIGNED');
  const ap2 = await control('POST', `bills/${b.id}/approve`, {});
  assert.equal(ap2.json.bill.approvalStatus, 'APPROVED');

  const ed = await control('POST', `bills/${b.id}/edit`, { dueDate: '2031-01-31', billLineItems: [{ id: b.billLineItems[0].id, amount: 150 }] });
  assert.equal(ed.status, 200, ed.text);
  assert.equal(ed.json.bill.dueDate, '2031-01-31');
  assert.equal(ed.json.bill.amount, 229.99);
  // an edit in the UI keeps the coding it does not touch
  assert.deepEqual(ed.json.bill.billLineItems[0].classifications, { chartOfAccountId: '0ca01EC2', departmentId: '0de01ENG' });

  const paid = await control('POST', `bills/${b.id}/pay`, {});
  assert.equal(paid.status, 200, paid.text);
  assert.equal(paid.json.bill.paymentStatus, 'PAID');
  assert.equal(paid.json.bill.paidAmount, 229.99);
  assert.equal(paid.json.payments[0].status, 'PAID');

  const b2 = await bill(sid, v.id);
  const dn = await control('POST', `bills/${b2.id}/deny`, {});
  assert.equal(dn.json.bill.approvalStatus, 'DENIED');
  assert.equal(dn.json.bill.approvers[0].status, 'DENIED');

  await drainWebhooks();
  const types = received.map((x) => `${x.json.metadata.eventType}:${(x.json.bill ?? x.json.payment).id}`);
  assert.deepEqual(types, [
    `bill.created:${b.id}`, `bill.updated:${b.id}`, `bill.updated:${b.id}`, `bill.updated:${b.id}`,
    `payment.updated:${paid.json.payments[0].id}`, `bill.updated:${b.id}`, `bill.created:${b2.id}`, `bill.updated:${b2.id}`,
  ]);
  assert.equal((await control('POST', `bills/${b.id}/approve`, {})).status, 400); // nobody left waiting
});

// --- webhooks -----------------------------------------------------------------------------

test('webhooks: X-Idempotent-Key (UUID4) makes subscription creation idempotent; securityKey shown once', async () => {
  const sid = await session();
  const key = crypto.randomUUID();
  const body = { name: 'n', status: { enabled: true }, events: [{ type: 'bill.updated', version: '1' }], notificationUrl: `http://127.0.0.1:${hookPort}/x` };
  const s1 = await api(sid, 'POST', '/v3/subscriptions', body, { headers: { 'X-Idempotent-Key': key } });
  const s2 = await api(sid, 'POST', '/v3/subscriptions', body, { headers: { 'x-idempotent-key': key } });
  assert.equal(s1.status, 200, s1.text);
  assert.deepEqual(s2.json, s1.json);
  assert.ok(s1.json.securityKey);
  assert.equal((await control('GET', 'state')).json.subscriptions.length, 1);
  const got = await api(sid, 'GET', `/v3/subscriptions/${s1.json.id}`);
  assert.equal(got.json.securityKey, undefined);
  assert.deepEqual(got.json.events, [{ type: 'bill.updated', version: '1' }]);
  assertBdcError(await api(sid, 'POST', '/v3/subscriptions', body), 400, 'BDC_1108');
  assertBdcError(await api(sid, 'POST', '/v3/subscriptions', body, { headers: { 'X-Idempotent-Key': 'not-a-uuid' } }), 400, 'BDC_1129');
  // the webhook base URL of BILL is /connect-events
  const ev = await call({ target: '/connect-events/v3/subscriptions', headers: { devKey: C.devKey, sessionId: sid } });
  assert.equal(ev.status, 200, ev.text);
  assert.equal(ev.json.results.length, 1);
  assert.equal((await api(sid, 'DELETE', `/v3/subscriptions/${s1.json.id}`)).status, 200);
  assertBdcError(await api(sid, 'GET', `/v3/subscriptions/${s1.json.id}`), 404, 'BDC_1120');
});

test('webhooks: signed deliveries (HMAC-SHA256 of the raw body, base64), metadata, retries on non-2xx', async () => {
  const sid = await session();
  const sub = await subscribe(sid);
  hookStatuses = [500]; // the first attempt fails
  const v = await vendor(sid);
  const b = await bill(sid, v.id);
  await drainWebhooks();
  assert.equal(received.length, 2); // the failed attempt and its retry
  for (const r of received) {
    assert.equal(r.headers['x-bill-sha-signature'], hmac(sub.securityKey, r.raw));
    assert.equal(r.headers['content-type'], 'application/json');
  }
  const { metadata, bill: payload } = received[1].json;
  assert.equal(metadata.eventType, 'bill.created');
  assert.equal(metadata.subscriptionId, sub.id);
  assert.equal(metadata.organizationId, C.organizationId);
  assert.equal(metadata.version, '1');
  assert.equal(metadata.eventId, received[0].json.metadata.eventId);
  assert.deepEqual(payload, b);
  const log = (await control('GET', 'webhooks')).json.deliveries;
  assert.deepEqual(log.map((d) => [d.attempt, d.status, d.ok]), [[1, 500, false], [2, 200, true]]);

  // a receiver that keeps failing gets 1 + webhookRetries attempts
  hookStatuses = [503, 503, 503, 503, 503];
  await api(sid, 'PATCH', `/v3/bills/${b.id}`, { description: 'changed' });
  await drainWebhooks();
  const tries = (await control('GET', 'webhooks')).json.deliveries.filter((d) => d.eventType === 'bill.updated');
  assert.equal(tries.length, 1 + DEFAULT_CONFIG.webhookRetries);
  assert.ok(tries.every((d) => !d.ok));
});

test('webhooks: duplicateWebhook delivers an event twice with one eventId; badWebhookSignature signs with a wrong key', async () => {
  const sid = await session();
  const sub = await subscribe(sid);
  const v = await vendor(sid);
  await control('POST', 'faults', { faults: [{ kind: 'duplicateWebhook' }] });
  const b = await bill(sid, v.id);
  await drainWebhooks();
  assert.equal(received.length, 2);
  assert.equal(received[0].json.metadata.eventId, received[1].json.metadata.eventId);
  assert.ok(received[0].raw.equals(received[1].raw));
  assert.equal(received[1].headers['x-bill-sha-signature'], hmac(sub.securityKey, received[1].raw));

  received.length = 0;
  await control('POST', 'faults', { faults: [{ kind: 'badWebhookSignature', match: { eventType: 'bill.updated' } }] });
  await api(sid, 'PATCH', `/v3/bills/${b.id}`, { description: 'one' });
  await api(sid, 'PATCH', `/v3/bills/${b.id}`, { description: 'two' });
  await drainWebhooks();
  assert.equal(received.length, 2);
  assert.notEqual(received[0].headers['x-bill-sha-signature'], hmac(sub.securityKey, received[0].raw));
  assert.match(received[0].headers['x-bill-sha-signature'], /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(received[1].headers['x-bill-sha-signature'], hmac(sub.securityKey, received[1].raw)); // count 1: only the first
});

test('control: a subscription\'s security key can be set; deliveries are signed with it', async () => {
  const sid = await session();
  const sub = await subscribe(sid);
  const key = 'a-key-configured-elsewhere';
  const r = await control('POST', `subscriptions/${sub.id}/security-key`, { securityKey: key });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.subscription.securityKey, key);
  assert.equal((await control('GET', 'state')).json.subscriptions[0].securityKey, key);
  await bill(sid, (await vendor(sid)).id);
  await drainWebhooks();
  assert.equal(received.length, 1); // bill.created (vendor events are not subscribed to)
  assert.equal(received[0].headers['x-bill-sha-signature'], hmac(key, received[0].raw));
  assert.notEqual(received[0].headers['x-bill-sha-signature'], hmac(sub.securityKey, received[0].raw));
  assert.equal((await control('POST', `subscriptions/${sub.id}/security-key`, { securityKey: '' })).status, 400);
  assert.equal((await control('POST', `subscriptions/${sub.id}/security-key`, {})).status, 400);
  assert.equal((await control('POST', `subscriptions/${crypto.randomUUID()}/security-key`, { securityKey: key })).status, 404);
});

// --- faults -------------------------------------------------------------------------------

test('dropAfterCommit: the bill is created while the client sees a dropped connection', async () => {
  const sid = await session();
  const v = await vendor(sid);
  await control('POST', 'faults', { faults: [{ match: { method: 'POST', path: '/v3/bills$' }, kind: 'dropAfterCommit' }] });
  const r = await api(sid, 'POST', '/v3/bills', billBody(v.id, { invoice: { invoiceNumber: 'CRASH-1', invoiceDate: '2030-12-01' } }));
  assert.ok(r.error, `expected a dropped connection, got ${r.status}`);
  const state = (await control('GET', 'state')).json;
  assert.equal(state.bills.length, 1);
  assert.equal(state.bills[0].invoice.invoiceNumber, 'CRASH-1');
  const log = (await control('GET', 'requests')).json.at(-1);
  assert.equal(log.outcome, 'droppedAfterCommit');
  assert.equal(log.committedStatus, 201);
  assert.equal(log.status, null);
  // the client's recovery: list by vendor and find its invoice number
  const found = await api(sid, 'GET', '/v3/bills', undefined, { query: { filters: `vendorId:eq:${v.id}` } });
  assert.deepEqual(found.json.results.map((b) => b.invoice.invoiceNumber), ['CRASH-1']);
  // count 1: the next request is answered normally
  assert.equal((await api(sid, 'POST', '/v3/bills', billBody(v.id))).status, 201);
});

test('drop destroys the connection before anything happens; status and bdc faults answer with errors', async () => {
  const sid = await session();
  const v = await vendor(sid);
  await control('POST', 'faults', {
    faults: [
      { match: { method: 'POST', path: '/v3/bills$' }, kind: 'drop' },
      { match: { path: '/v3/bills$' }, kind: 'status', status: 503, count: 2, skip: 0 },
      { match: { path: '/v3/vendors' }, kind: 'bdc', code: 'BDC_1322' },
      { match: { path: '/v3/vendors' }, kind: 'bdc', code: 'BDC_1109' },
    ],
  });
  assert.ok((await api(sid, 'POST', '/v3/bills', billBody(v.id))).error);
  assert.equal((await control('GET', 'state')).json.bills.length, 0);
  assertBdcError(await api(sid, 'POST', '/v3/bills', billBody(v.id)), 503, 'BDC_1001');
  assertBdcError(await api(sid, 'GET', '/v3/bills'), 503, 'BDC_1001');
  assert.equal((await api(sid, 'GET', '/v3/bills')).status, 200); // count used up
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 422, 'BDC_1322');
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109');
  assert.equal((await api(sid, 'GET', '/v3/vendors')).status, 200); // an injected 1109 leaves the session valid
  const faults = (await control('GET', 'faults')).json.faults;
  assert.deepEqual(faults.map((f) => f.remaining), [0, 0, 0, 0]);
  const log = (await control('GET', 'requests')).json;
  assert.ok(log.some((e) => e.outcome === 'dropped' && e.faults.includes('drop')));
  assert.equal((await control('POST', 'faults', { faults: [{ kind: 'nonsense' }] })).status, 400);
});

test('expireSessions invalidates every session when a matching request arrives', async () => {
  const s1 = await session();
  const s2 = await session();
  await control('POST', 'faults', { faults: [{ match: { path: '/v3/bills$' }, kind: 'expireSessions' }] });
  assertBdcError(await api(s1, 'GET', '/v3/bills'), 401, 'BDC_1109');
  assertBdcError(await api(s2, 'GET', '/v3/vendors'), 401, 'BDC_1109');
  const s3 = await session();
  assert.equal((await api(s3, 'GET', '/v3/bills')).status, 200);
  assert.equal((await control('POST', 'sessions/expire')).json.expired, 1);
  assertBdcError(await api(s3, 'GET', '/v3/bills'), 401, 'BDC_1109');
});

test('control: reset wipes the state but keeps the config; the request log records codes and times', async () => {
  await control('POST', 'config', { concurrencyLimit: 5 });
  const sid = await session();
  await vendor(sid);
  await api(sid, 'GET', '/v3/nowhere');
  const log = (await control('GET', 'requests')).json;
  const last = log.at(-1);
  assert.equal(last.method, 'GET');
  assert.equal(last.path, '/connect/v3/nowhere');
  assert.equal(last.status, 404);
  assert.equal(last.code, 'BDC_1121');
  assert.ok(Date.parse(last.startTime) <= Date.parse(last.endTime));
  assert.equal((await control('DELETE', 'requests')).status, 200);
  assert.equal((await control('GET', 'requests')).json.length, 0);
  await control('POST', 'reset');
  const state = (await control('GET', 'state')).json;
  assert.equal(state.vendors.length, 0);
  assert.equal(state.sessions.length, 0);
  assert.equal((await control('GET', 'config')).json.concurrencyLimit, 5);
  assertBdcError(await api(sid, 'GET', '/v3/vendors'), 401, 'BDC_1109');
});

test('CLI: starts on port 0, writes the port file, honours the limit flags, exits on SIGTERM', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'billemu-'));
  const portFile = path.join(dir, 'port');
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0', '--port-file', portFile,
    '--concurrency-limit', '1', '--throttle-status', '429', '--session-idle-ms', '1234', '--dev-key', 'k2'], { stdio: 'pipe' });
  try {
    for (let i = 0; i < 100 && !fs.existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
    const p = Number(fs.readFileSync(portFile, 'utf8'));
    assert.ok(p > 0);
    const cfg = await new Promise((resolve, reject) => {
      http.get({ host: '127.0.0.1', port: p, path: '/_emulator/config' }, (res) => {
        let t = '';
        res.on('data', (c) => { t += c; });
        res.on('end', () => resolve(JSON.parse(t)));
      }).on('error', reject);
    });
    assert.equal(cfg.concurrencyLimit, 1);
    assert.equal(cfg.throttleStatus, 429);
    assert.equal(cfg.sessionIdleMs, 1234);
    const exited = new Promise((r) => child.on('exit', (code) => r(code)));
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
