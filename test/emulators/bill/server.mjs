#!/usr/bin/env node
// BILL (Bill.com) v3 API emulator for pg_billops tests and the demo: login sessions,
// vendors, bills, approval policies and actions, bill documents, payments and webhook
// subscriptions, with BILL's rate limits (per hour, per login, concurrent) and a control
// API to inject faults and act as a person working in BILL's UI. State is in memory only.
//
//   node test/emulators/bill/server.mjs --port N [--host 127.0.0.1] [--port-file F]
//        [--dev-key K] [--username U] [--password P] [--organization-id O] [--user-id I]
//        [--hourly-limit 20000] [--login-hourly-limit 200] [--login-limit-code BDC_1144]
//        [--concurrency-limit 3] [--hour-ms 3600000] [--session-idle-ms 2100000]
//        [--throttle-status 422] [--document-processing-ms 0]
//        [--webhook-retries 3] [--webhook-retry-ms 200] [--webhook-timeout-ms 5000]
//
// API base URL: http://HOST:PORT/connect (webhook API also at /connect-events).
// See README.md beside this file for what is emulated, what is assumed, and the control API.

import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import {
  BillError, CODES, errorBody, missing, invalid, badParam, notFound,
} from './errors.mjs';
import { listOperation } from './lists.mjs';
import { createDispatcher, sign } from './webhooks.mjs';

export const DEFAULT_CREDENTIALS = Object.freeze({
  devKey: 'billops-emulator-devkey',
  username: 'billops-api@example.com',
  password: 'billops-emulator-password',
  organizationId: '00801BILLOPSTEST0001',
  userId: '00601BILLOPSAPI00001',
});

export const DEFAULT_CONFIG = Object.freeze({
  hourlyLimit: 20000, // requests per devKey per hour
  loginHourlyLimit: 200, // POST /v3/login per devKey per hour
  loginLimitCode: 'BDC_1144', // which code BILL uses for the login limit is unverified
  concurrencyLimit: 3, // requests in flight per devKey per organization
  hourMs: 3600000, // length of the rate window ("until the next hour")
  sessionIdleMs: 35 * 60 * 1000, // sessions expire after 35 minutes of inactivity
  throttleStatus: 422, // HTTP status of BDC_1144 / BDC_1322: undocumented, 422 seen
  maxDocumentBytes: 6 * 1024 * 1024, // "The file size limit is 6 MB"
  documentProcessingMs: 0, // time an upload stays IN_PROGRESS (emulator clock)
  failUploads: 0, // the next N uploads end FAILED instead of UPLOADED (BILL documents no failure status: assumed)
  webhookRetries: 3, // retries after the first attempt
  webhookRetryMs: 200, // first retry delay, doubled each time
  webhookTimeoutMs: 5000,
  // Whether an update of a bill applies the approval policies again (BILL documents policies
  // being applied to new bills; what an edit does is not documented). true: the policies that
  // match the updated bill give its approvers, and an approver kept keeps its decision.
  reapplyPoliciesOnUpdate: true,
});

const CONFIG_TYPES = {
  hourlyLimit: 'int', loginHourlyLimit: 'int', concurrencyLimit: 'int', hourMs: 'int',
  sessionIdleMs: 'int', throttleStatus: 'status', loginLimitCode: 'code', maxDocumentBytes: 'int',
  documentProcessingMs: 'int', failUploads: 'int', webhookRetries: 'int', webhookRetryMs: 'int', webhookTimeoutMs: 'int',
  reapplyPoliciesOnUpdate: 'bool',
};

const API_PREFIX = '/connect';
const EVENTS_PREFIX = '/connect-events'; // BILL's webhookBaseUrl
const CONTROL_PREFIX = '/_emulator/';
const JSON_BODY_LIMIT = 10 * 1024 * 1024;
const HARD_BODY_CAP = 64 * 1024 * 1024; // past this the connection is closed, not drained
const LOG_LIMIT = 10000; // bounded request / delivery / event logs

const VENDOR_ACCOUNT_TYPES = ['BUSINESS', 'PERSON', 'NONE'];
const PAYMENT_STATUSES = ['UNPAID', 'PAID', 'SCHEDULED', 'UNDEFINED'];
const APPROVAL_STATUSES = ['ASSIGNED', 'APPROVED', 'DENIED', 'UNDEFINED'];
const FUNDING_TYPES = ['BANK_ACCOUNT', 'AP_CARD', 'WALLET'];
const LINE_CLASSIFICATION_KEYS = ['chartOfAccountId', 'accountingClassId', 'departmentId', 'locationId',
  'jobId', 'itemId', 'employeeId', 'customerId'];
const BILL_CLASSIFICATION_KEYS = ['chartOfAccountId', 'accountingClassId', 'departmentId', 'locationId', 'itemId'];
const POLICY_RULES = { // rule key -> operators accepted
  BILL_AMOUNT: ['gte', 'gt', 'lte', 'lt', 'eq'],
  VENDOR_ID: ['eq', 'in', 'ne', 'nin'],
  CHART_OF_ACCOUNT_ID: ['eq', 'in', 'ne', 'nin'],
  JOB_ID: ['eq', 'in', 'ne', 'nin'],
  LOCATION_ID: ['eq', 'in', 'ne', 'nin'],
};
export const EVENT_TYPES = ['bill.created', 'bill.updated', 'bill.archived', 'bill.restored',
  'payment.updated', 'payment.failed', 'vendor.created', 'vendor.updated', 'vendor.archived', 'vendor.restored'];
const UUID4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
// BILL ids are 20 characters: a 3-character type prefix (009 vendor, 00n bill, ...),
// "01", then 15 alphanumerics.
export function newId(prefix) {
  let s = `${prefix}01`;
  for (const b of crypto.randomBytes(15)) s += ALNUM[b % 62];
  return s;
}

const round2 = (x) => Math.round((x + Number.EPSILON) * 100) / 100;
const isObj = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pushBounded = (list, item) => { list.push(item); if (list.length > LOG_LIMIT) list.splice(0, list.length - LOG_LIMIT); };
const clone = (v) => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

function isDate(s) {
  if (typeof s !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(s)) return false;
  const d = new Date(`${s}T00:00:00Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().startsWith(s);
}

function optString(body, key, max, path = key) {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || (max && v.length > max)) throw invalid(path, v);
  return v;
}

function reqString(body, key, max, path = key) {
  const v = optString(body, key, max, path);
  if (v === undefined || v.trim() === '') throw missing(path);
  return v;
}

function optNumber(body, key, path = key) {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(path, v);
  return v;
}

function parseJsonBody(ctx) {
  const buf = ctx.body?.buf;
  if (!buf || buf.length === 0) throw new BillError('BDC_1122');
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch {
    throw new BillError('BDC_1122');
  }
}

// Unknown fields are ignored (as many JSON APIs do) but noted in the request log, so a
// misspelt field is visible in GET /_emulator/requests.
function noteUnknown(ctx, obj, allowed, path) {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) ctx.warnings.push(`unknown field ignored: ${path ? `${path}.` : ''}${k}`);
  }
}

function queryObject(searchParams) {
  const q = {};
  for (const [k, v] of searchParams) {
    if (k in q) q[k] = [].concat(q[k], v);
    else q[k] = v;
  }
  return q;
}

// Reads the whole body, keeping at most `keep` bytes; `size` is the real size. Beyond
// HARD_BODY_CAP it stops reading (complete=false) and the connection will be closed.
// aborted=true: the client went away mid-body.
async function readBody(req, keep) {
  const chunks = [];
  let kept = 0;
  let size = 0;
  try {
    for await (const c of req) {
      size += c.length;
      if (kept <= keep) { chunks.push(c); kept += c.length; }
      if (size > HARD_BODY_CAP) return { buf: Buffer.concat(chunks), size, complete: false, aborted: false };
    }
  } catch {
    return { buf: Buffer.concat(chunks), size, complete: false, aborted: true };
  }
  return { buf: Buffer.concat(chunks), size, complete: true, aborted: false };
}

// Waits ms, or less if the client goes away: resolves false then.
function waitOrAbort(res, ms) {
  return new Promise((resolve) => {
    if (res.destroyed) { resolve(false); return; }
    const onClose = () => { clearTimeout(t); resolve(false); };
    const t = setTimeout(() => { res.off('close', onClose); resolve(true); }, ms);
    res.once('close', onClose);
  });
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------
const REQUEST_FAULTS = ['status', 'bdc', 'slow', 'drop', 'dropAfterCommit', 'expireSessions'];
const WEBHOOK_FAULTS = ['badWebhookSignature', 'duplicateWebhook'];
const FAULT_CHECKS = {
  status: (f) => Number.isInteger(f.status) && f.status >= 400 && f.status <= 599 &&
    (f.code === undefined || /^BDC_\d+$/.test(f.code)),
  bdc: (f) => typeof f.code === 'string' && /^BDC_\d+$/.test(f.code) &&
    (f.status === undefined || (Number.isInteger(f.status) && f.status >= 400 && f.status <= 599)),
  slow: (f) => typeof f.ms === 'number' && f.ms >= 0,
  drop: () => true,
  dropAfterCommit: () => true,
  expireSessions: () => true,
  badWebhookSignature: () => true,
  duplicateWebhook: () => true,
};

export function validateFaults(list) {
  if (!Array.isArray(list)) throw new Error('"faults" must be an array');
  return list.map((f, i) => {
    if (!isObj(f)) throw new Error(`fault ${i}: not an object`);
    if (!FAULT_CHECKS[f.kind]) throw new Error(`fault ${i}: kind must be one of ${Object.keys(FAULT_CHECKS).join(', ')}`);
    if (!FAULT_CHECKS[f.kind](f)) throw new Error(`fault ${i}: missing or invalid parameter for kind "${f.kind}"`);
    const match = f.match ?? {};
    if (!isObj(match)) throw new Error(`fault ${i}: match must be an object`);
    if (match.method !== undefined && typeof match.method !== 'string') throw new Error(`fault ${i}: match.method must be a string`);
    let pathRe = null;
    if (match.path !== undefined) {
      try { pathRe = new RegExp(match.path); } catch (e) { throw new Error(`fault ${i}: match.path is not a valid regular expression: ${e.message}`); }
    }
    if (match.eventType !== undefined && !EVENT_TYPES.includes(match.eventType)) throw new Error(`fault ${i}: match.eventType is not a known event type`);
    const count = f.count === undefined ? 1 : f.count;
    if (count !== null && !(Number.isInteger(count) && count > 0)) throw new Error(`fault ${i}: count must be a positive integer, or null for unlimited`);
    const skip = f.skip ?? 0;
    if (!(Number.isInteger(skip) && skip >= 0)) throw new Error(`fault ${i}: skip must be a non-negative integer`);
    return { ...f, match, count, skip, remaining: count, hits: 0, pathRe };
  });
}

const faultView = (f) => { const { pathRe, ...rest } = f; return rest; };

// ---------------------------------------------------------------------------
// The emulator
// ---------------------------------------------------------------------------
export function createBillEmulator(options = {}) {
  const cfg = { ...DEFAULT_CONFIG };
  for (const k of Object.keys(CONFIG_TYPES)) if (options[k] !== undefined) cfg[k] = options[k];
  const creds = { ...DEFAULT_CREDENTIALS };
  for (const k of Object.keys(DEFAULT_CREDENTIALS)) if (options[k] !== undefined) creds[k] = options[k];
  // users who can log in; the API user is the default. Approvers named in policies need
  // no account unless they are to act through the API.
  const users = options.users ?? [{ username: creds.username, password: creds.password, userId: creds.userId }];

  const freshState = () => ({
    clockOffsetMs: 0,
    lastStamp: 0,
    vendors: new Map(),
    bills: new Map(),
    documents: new Map(), // uploadId -> document
    payments: new Map(),
    policies: new Map(),
    orgUsers: new Map(), // organization users (GET /v3/users): the API user, approvers added by the control API
    jobs: new Map(), // classification jobs (/v3/classifications/jobs)
    subscriptions: new Map(),
    idempotency: new Map(), // X-Idempotent-Key -> stored answer
    sessions: new Map(),
    rate: { window: null, requests: new Map(), logins: new Map() },
    concurrency: new Map(), // devKey + org -> counters
    faults: [],
    requests: [],
    requestSeq: 0,
    events: [],
    deliveries: [],
    counters: {
      totalRequests: 0, apiRequests: 0, controlRequests: 0, logins: 0, loginSuccesses: 0,
      byCode: {}, byStatus: {}, droppedAfterCommit: 0, dropped: 0, clientAborted: 0,
    },
  });
  let state = freshState();
  const dispatcher = createDispatcher(cfg, (entry) => pushBounded(state.deliveries, entry));

  // The emulator's clock: wall clock plus whatever POST /_emulator/clock added. Session
  // expiry, rate windows, timestamps and payment process dates all read it.
  const now = () => Date.now() + state.clockOffsetMs;
  const today = () => new Date(now()).toISOString().slice(0, 10);
  // createdTime / updatedTime strictly increase, so polling with updatedTime:gt never
  // misses a change made in the same millisecond as the last one seen.
  const stamp = () => {
    const t = Math.max(now(), state.lastStamp + 1);
    state.lastStamp = t;
    return new Date(t).toISOString();
  };

  // ---------------------------------------------------------------- views
  const vendorName = (id) => state.vendors.get(id)?.name ?? null;

  function billTotals(b) {
    const amount = round2(b.billLineItems.reduce((s, l) => s + l.amount, 0));
    const dueAmount = round2(Math.max(0, amount - b.paidAmount));
    let paymentStatus = 'UNPAID';
    if (b.scheduledAmount > 0) paymentStatus = 'SCHEDULED';
    else if (dueAmount === 0 && amount > 0) paymentStatus = 'PAID';
    return { amount, dueAmount, paymentStatus };
  }

  function billView(b) {
    const { amount, dueAmount, paymentStatus } = billTotals(b);
    return {
      id: b.id,
      archived: b.archived,
      vendorId: b.vendorId,
      vendorName: vendorName(b.vendorId),
      amount,
      paidAmount: round2(b.paidAmount),
      dueAmount,
      scheduledAmount: round2(b.scheduledAmount),
      creditAmount: 0,
      description: b.description,
      dueDate: b.dueDate,
      invoice: { ...b.invoice },
      billLineItems: b.billLineItems.map((l) => ({
        id: l.id, amount: l.amount, quantity: l.quantity, price: l.price, description: l.description,
        classifications: { ...l.classifications },
      })),
      payFromChartOfAccountId: b.payFromChartOfAccountId,
      paymentStatus,
      approvalStatus: b.approvalStatus,
      approvers: b.approvers.map((a) => ({ ...a })),
      createdTime: b.createdTime,
      updatedTime: b.updatedTime,
      classifications: { ...b.classifications },
      purchaseOrderNumber: b.purchaseOrderNumber,
    };
  }

  const vendorView = (v) => clone(v);

  function policyView(p) {
    return {
      id: p.id,
      policyName: p.policyName,
      status: p.status,
      rules: p.rules.map((r) => ({ key: r.key, op: r.op, values: r.values.map((v) => ({ value: v, displayName: v })) })),
      approvers: {
        users: p.approvers.map((u) => ({ userId: u, fullName: users.find((x) => x.userId === u)?.fullName ?? `User ${u}` })),
        groups: [],
      },
    };
  }

  const subscriptionView = (s) => {
    const { securityKey, ...rest } = s;
    return clone(rest);
  };

  function documentView(d, host) {
    const ready = now() >= d.readyAt;
    const v = { id: ready ? d.documentId : d.uploadId, name: d.name, createdTime: d.createdTime };
    if (ready) v.downloadLink = `http://${host}${CONTROL_PREFIX}documents/${d.documentId}/content`;
    return v;
  }

  // ---------------------------------------------------------------- webhooks
  function takeWebhookFault(kind, eventType) {
    for (const f of state.faults) {
      if (f.kind !== kind || f.remaining === 0) continue;
      if (f.match.eventType !== undefined && f.match.eventType !== eventType) continue;
      if (f.skip > 0) { f.skip--; continue; }
      if (f.remaining !== null) f.remaining--;
      f.hits++;
      return true;
    }
    return false;
  }

  function deliverEvent(sub, eventType, version, payloadKey, obj, { eventId = crypto.randomUUID(), test = false } = {}) {
    const payload = {
      metadata: { eventId, subscriptionId: sub.id, organizationId: creds.organizationId, eventType, version },
      [payloadKey]: obj,
    };
    const body = Buffer.from(JSON.stringify(payload));
    const badSignature = takeWebhookFault('badWebhookSignature', eventType);
    const duplicate = takeWebhookFault('duplicateWebhook', eventType);
    // a wrong key of the same shape, so only verifying the HMAC tells them apart
    const key = badSignature ? crypto.randomBytes(32).toString('hex') : sub.securityKey;
    const signature = sign(key, body);
    pushBounded(state.events, {
      eventId, eventType, version, subscriptionId: sub.id, createdTime: new Date(now()).toISOString(),
      badSignature, duplicate, test, payload,
    });
    const job = { subscriptionId: sub.id, url: sub.notificationUrl, eventId, eventType, body, signature, badSignature, duplicate: false };
    dispatcher.enqueue(job);
    if (duplicate) dispatcher.enqueue({ ...job, duplicate: true });
    return eventId;
  }

  function emit(eventType, payloadKey, obj) {
    for (const sub of state.subscriptions.values()) {
      if (!sub.status.enabled) continue;
      const ev = sub.events.find((e) => e.type === eventType);
      if (ev) deliverEvent(sub, eventType, ev.version, payloadKey, obj);
    }
  }

  // ---------------------------------------------------------------- rate limits, sessions
  function rollWindow() {
    const w = Math.floor(now() / cfg.hourMs);
    if (w !== state.rate.window) {
      state.rate.window = w;
      state.rate.requests = new Map();
      state.rate.logins = new Map();
    }
  }

  function chargeRequest(devKey) {
    rollWindow();
    const n = state.rate.requests.get(devKey) ?? 0;
    if (n >= cfg.hourlyLimit) throw new BillError('BDC_1144', { params: [cfg.hourlyLimit] });
    state.rate.requests.set(devKey, n + 1);
  }

  function chargeLogin(devKey) {
    rollWindow();
    const n = state.rate.logins.get(devKey) ?? 0;
    if (n >= cfg.loginHourlyLimit) {
      const err = new BillError(cfg.loginLimitCode, cfg.loginLimitCode === 'BDC_1144'
        ? { params: [cfg.loginHourlyLimit] }
        : { category: 'DOWNSTREAM', message: `Max number of allowed logins per hour reached: ${cfg.loginHourlyLimit}.` });
      err.status = null; // a throttle: sent with --throttle-status whatever the code
      throw err;
    }
    state.rate.logins.set(devKey, n + 1);
  }

  function authenticate(ctx) {
    const devKey = ctx.headers.devkey;
    if (!devKey || devKey !== creds.devKey) throw new BillError('BDC_1102');
    ctx.devKey = devKey;
    chargeRequest(devKey);
    const sid = ctx.headers.sessionid;
    const s = sid ? state.sessions.get(sid) : undefined;
    if (s && now() - s.lastUsed > cfg.sessionIdleMs) state.sessions.delete(sid);
    if (!s || !state.sessions.has(sid) || s.devKey !== devKey) throw new BillError('BDC_1109');
    s.lastUsed = now();
    ctx.session = s;
    ctx.organizationId = s.organizationId;
  }

  // Concurrency: requests in flight per devKey per organization. The slot is released
  // just before the response is written (so a client that sends its next request as
  // soon as it reads an answer never races our bookkeeping), or when the connection
  // closes, whichever comes first.
  function admit(ctx, res) {
    const key = `${ctx.devKey}\u0000${ctx.organizationId}`;
    let c = state.concurrency.get(key);
    if (!c) {
      c = { devKey: ctx.devKey, organizationId: ctx.organizationId, inFlight: 0, maxInFlight: 0, maxAttemptedInFlight: 0, rejections: 0 };
      state.concurrency.set(key, c);
    }
    if (c.inFlight >= cfg.concurrencyLimit) {
      c.rejections++;
      c.maxAttemptedInFlight = Math.max(c.maxAttemptedInFlight, c.inFlight + 1);
      throw new BillError('BDC_1322');
    }
    c.inFlight++;
    c.maxInFlight = Math.max(c.maxInFlight, c.inFlight);
    c.maxAttemptedInFlight = Math.max(c.maxAttemptedInFlight, c.inFlight);
    let held = true;
    ctx.release = () => { if (held) { held = false; c.inFlight--; } };
    res.once('close', ctx.release);
  }

  // ---------------------------------------------------------------- lookups
  function getBillOr404(id) {
    const b = state.bills.get(id);
    if (!b) throw notFound();
    return b;
  }

  function getVendorOr404(id) {
    const v = state.vendors.get(id);
    if (!v) throw notFound();
    return v;
  }

  // ---------------------------------------------------------------- auth handlers
  function login(ctx) {
    state.counters.logins++;
    const b = parseJsonBody(ctx);
    if (!isObj(b)) throw new BillError('BDC_1122');
    if (typeof b.devKey !== 'string' || b.devKey !== creds.devKey) throw new BillError('BDC_1102');
    ctx.devKey = b.devKey;
    chargeLogin(b.devKey);
    chargeRequest(b.devKey);
    for (const k of ['username', 'password', 'organizationId']) {
      if (typeof b[k] !== 'string' || b[k] === '') throw new BillError('BDC_1108', { params: [k] });
    }
    const user = users.find((u) => u.username === b.username);
    if (!user || user.password !== b.password) throw new BillError('BDC_1101');
    if (b.organizationId !== creds.organizationId) throw new BillError('BDC_1123');
    const sessionId = `!${crypto.randomBytes(24).toString('base64url')}`;
    // MFA is not emulated: a login that presents rememberMeId and device counts as trusted
    const trusted = typeof b.rememberMeId === 'string' && b.rememberMeId !== '' && typeof b.device === 'string' && b.device !== '';
    state.sessions.set(sessionId, {
      sessionId, devKey: b.devKey, organizationId: creds.organizationId, userId: user.userId,
      createdTime: now(), lastUsed: now(), trusted,
    });
    ctx.organizationId = creds.organizationId;
    state.counters.loginSuccesses++;
    return { status: 200, body: { organizationId: creds.organizationId, sessionId, trusted, userId: user.userId } };
  }

  function logout(ctx) {
    state.sessions.delete(ctx.session.sessionId);
    return { status: 200, body: null };
  }

  const sessionInfo = (ctx) => ({
    status: 200,
    body: { organizationId: ctx.session.organizationId, userId: ctx.session.userId, mfaStatus: ctx.session.trusted ? 'ENABLED' : 'DISABLED', mfaBypass: false },
  });

  // ---------------------------------------------------------------- vendors
  const VENDOR_FIELDS = ['name', 'shortName', 'accountType', 'email', 'phone', 'billCurrency', 'address',
    'additionalInfo', 'paymentInformation', 'accountNumber'];

  function vendorInput(ctx, body, { partial, path = '' }) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, VENDOR_FIELDS, path);
    const p = (k) => (path ? `${path}.${k}` : k);
    const out = {};
    if (!partial || 'name' in body) out.name = reqString(body, 'name', 100, p('name'));
    if ('shortName' in body) out.shortName = optString(body, 'shortName', 40, p('shortName'));
    if ('accountType' in body) {
      const v = body.accountType;
      if (v !== null && !VENDOR_ACCOUNT_TYPES.includes(v)) throw invalid(p('accountType'), v);
      out.accountType = v ?? 'NONE';
    }
    for (const k of ['email', 'phone', 'accountNumber']) if (k in body) out[k] = optString(body, k, 255, p(k));
    if ('billCurrency' in body) {
      const v = body.billCurrency;
      if (v !== null && !(typeof v === 'string' && /^[A-Z]{3}$/.test(v))) throw invalid(p('billCurrency'), v);
      out.billCurrency = v ?? 'USD';
    }
    for (const k of ['address', 'additionalInfo', 'paymentInformation']) {
      if (!(k in body) || body[k] === null) continue;
      if (!isObj(body[k])) throw invalid(p(k), body[k]);
      out[k] = clone(body[k]);
    }
    return out;
  }

  function createVendorRecord(input) {
    const t = stamp();
    const v = {
      id: newId('009'), archived: false, name: input.name, accountType: 'NONE', billCurrency: 'USD', ...input,
      createdTime: t, updatedTime: t,
    };
    for (const k of Object.keys(v)) if (v[k] === undefined) delete v[k];
    state.vendors.set(v.id, v);
    emit('vendor.created', 'vendor', vendorView(v));
    return v;
  }

  const VENDOR_LIST = {
    filters: {
      id: { type: 'string', ops: ['eq', 'ne', 'in', 'nin'], get: (v) => v.id },
      name: { type: 'string', ops: ['eq', 'ne', 'in', 'nin', 'sw'], get: (v) => v.name },
      shortName: { type: 'string', ops: ['eq', 'ne', 'sw'], get: (v) => v.shortName },
      email: { type: 'string', ops: ['eq', 'ne'], get: (v) => v.email },
      accountType: { type: 'string', ops: ['eq', 'ne', 'in', 'nin'], get: (v) => v.accountType, enum: VENDOR_ACCOUNT_TYPES },
      billCurrency: { type: 'string', ops: ['eq', 'ne', 'in', 'nin'], get: (v) => v.billCurrency },
      archived: { type: 'bool', ops: ['eq'], get: (v) => v.archived },
      createdTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (v) => v.createdTime },
      updatedTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (v) => v.updatedTime },
    },
    sortable: { name: (v) => v.name, createdTime: (v) => v.createdTime, updatedTime: (v) => v.updatedTime },
  };

  const listVendors = (ctx) => {
    const page = listOperation([...state.vendors.values()], ctx.query, VENDOR_LIST);
    return { status: 200, body: { ...page, results: page.results.map(vendorView) } };
  };

  function createVendor(ctx) {
    const v = createVendorRecord(vendorInput(ctx, parseJsonBody(ctx), { partial: false }));
    return { status: 201, body: vendorView(v) };
  }

  function bulkVendors(ctx) {
    const body = parseJsonBody(ctx);
    if (!Array.isArray(body) || body.length === 0) throw missing('vendors');
    if (body.length > 20) throw badParam('vendors', `${body.length} vendors (at most 20)`);
    const inputs = body.map((b, i) => vendorInput(ctx, b, { partial: false, path: `[${i}]` }));
    return { status: 201, body: { vendors: inputs.map((i) => vendorView(createVendorRecord(i))) } };
  }

  const getVendor = (ctx) => ({ status: 200, body: vendorView(getVendorOr404(ctx.params.id)) });

  function patchVendor(ctx) {
    const v = getVendorOr404(ctx.params.id);
    const input = vendorInput(ctx, parseJsonBody(ctx), { partial: true });
    for (const [k, val] of Object.entries(input)) {
      if (val === undefined) delete v[k];
      else v[k] = val;
    }
    v.updatedTime = stamp();
    emit('vendor.updated', 'vendor', vendorView(v));
    return { status: 200, body: vendorView(v) };
  }

  function setVendorArchived(ctx, archived) {
    const v = getVendorOr404(ctx.params.id);
    if (v.archived !== archived) {
      v.archived = archived;
      v.updatedTime = stamp();
      emit(archived ? 'vendor.archived' : 'vendor.restored', 'vendor', vendorView(v));
    }
    return { status: 200, body: vendorView(v) };
  }

  // ---------------------------------------------------------------- bills
  const BILL_FIELDS = ['vendorId', 'dueDate', 'invoice', 'billLineItems', 'description', 'purchaseOrderNumber',
    'payFromChartOfAccountId', 'classifications'];
  const LINE_FIELDS = ['id', 'amount', 'quantity', 'price', 'description', 'classifications'];

  function classificationsInput(ctx, v, keys, path) {
    if (v === undefined || v === null) return {};
    if (!isObj(v)) throw invalid(path, v);
    noteUnknown(ctx, v, keys, path);
    const out = {};
    for (const k of keys) {
      if (v[k] === undefined || v[k] === null) continue;
      if (typeof v[k] !== 'string') throw invalid(`${path}.${k}`, v[k]);
      if (v[k] !== '') out[k] = v[k];
    }
    return out;
  }

  // One line item as given: only the keys present (the caller decides what is required).
  function lineInput(ctx, item, path) {
    if (!isObj(item)) throw invalid(path, item);
    noteUnknown(ctx, item, LINE_FIELDS, path);
    const out = {};
    if ('id' in item && item.id !== null) {
      if (typeof item.id !== 'string' || item.id === '') throw invalid(`${path}.id`, item.id);
      out.id = item.id;
    }
    if ('amount' in item) {
      out.amount = optNumber(item, 'amount', `${path}.amount`);
      if (out.amount === undefined) throw missing(`${path}.amount`);
    }
    if ('quantity' in item) out.quantity = optNumber(item, 'quantity', `${path}.quantity`);
    if ('price' in item) out.price = optNumber(item, 'price', `${path}.price`);
    if ('description' in item) out.description = optString(item, 'description', 4000, `${path}.description`);
    if ('classifications' in item) out.classifications = classificationsInput(ctx, item.classifications, LINE_CLASSIFICATION_KEYS, `${path}.classifications`);
    return out;
  }

  function checkVendorForBill(vendorId, path) {
    const v = state.vendors.get(vendorId);
    if (!v || v.archived) throw invalid(path, vendorId);
  }

  // A whole bill (create, PUT). existing: the bill a PUT replaces (line ids must be its own).
  function billInput(ctx, body, { path = '', existing = null } = {}) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    const p = (k) => (path ? `${path}.${k}` : k);
    noteUnknown(ctx, body, BILL_FIELDS, path);
    const vendorId = reqString(body, 'vendorId', 40, p('vendorId'));
    checkVendorForBill(vendorId, p('vendorId'));
    const dueDate = reqString(body, 'dueDate', 10, p('dueDate'));
    if (!isDate(dueDate)) throw invalid(p('dueDate'), dueDate);
    if (!isObj(body.invoice)) throw missing(p('invoice'));
    noteUnknown(ctx, body.invoice, ['invoiceNumber', 'invoiceDate'], p('invoice'));
    const invoiceNumber = reqString(body.invoice, 'invoiceNumber', 255, p('invoice.invoiceNumber'));
    const invoiceDate = reqString(body.invoice, 'invoiceDate', 10, p('invoice.invoiceDate'));
    if (!isDate(invoiceDate)) throw invalid(p('invoice.invoiceDate'), invoiceDate);
    if (!Array.isArray(body.billLineItems) || body.billLineItems.length === 0) throw missing(p('billLineItems'));
    const seen = new Set();
    const lines = body.billLineItems.map((item, i) => {
      const lp = p(`billLineItems[${i}]`);
      const l = lineInput(ctx, item, lp);
      if (l.amount === undefined) throw missing(`${lp}.amount`);
      if (l.id !== undefined) {
        if (!existing || !existing.billLineItems.some((x) => x.id === l.id) || seen.has(l.id)) throw invalid(`${lp}.id`, l.id);
        seen.add(l.id);
      }
      return { ...l, classifications: l.classifications ?? {} };
    });
    const total = round2(lines.reduce((s, l) => s + l.amount, 0));
    if (!(total > 0)) throw invalid(p('amount'), String(total));
    return {
      vendorId, dueDate, invoice: { invoiceNumber, invoiceDate }, billLineItems: lines,
      description: optString(body, 'description', 4000, p('description')),
      purchaseOrderNumber: optString(body, 'purchaseOrderNumber', 255, p('purchaseOrderNumber')),
      payFromChartOfAccountId: optString(body, 'payFromChartOfAccountId', 40, p('payFromChartOfAccountId')),
      classifications: classificationsInput(ctx, body.classifications, BILL_CLASSIFICATION_KEYS, p('classifications')),
    };
  }

  // ---- approval policies applied to a new bill
  function ruleMatches(rule, bill) {
    const amount = billTotals(bill).amount;
    if (rule.key === 'BILL_AMOUNT') {
      const x = Number(rule.values[0]);
      return { gte: amount >= x, gt: amount > x, lte: amount <= x, lt: amount < x, eq: amount === x }[rule.op];
    }
    let have;
    if (rule.key === 'VENDOR_ID') have = [bill.vendorId];
    else {
      const field = { CHART_OF_ACCOUNT_ID: 'chartOfAccountId', JOB_ID: 'jobId', LOCATION_ID: 'locationId' }[rule.key];
      have = [bill.classifications[field], ...bill.billLineItems.map((l) => l.classifications[field])].filter(Boolean);
    }
    const any = have.some((h) => rule.values.includes(h));
    return rule.op === 'eq' || rule.op === 'in' ? any : !any;
  }

  // The approvers of every matching policy, in policy order then listed order, each once
  // (how BILL merges several matching policies is not documented). On an update, an approver
  // who stays keeps the decision already made; one no longer matched is REROUTED.
  function assignApprovers(bill, t) {
    const approvers = [];
    for (const p of state.policies.values()) {
      if (p.status !== 'ACTIVE' || !p.rules.every((r) => ruleMatches(r, bill))) continue;
      for (const u of p.approvers) if (!approvers.includes(u)) approvers.push(u);
    }
    const before = bill.approvers ?? [];
    const same = approvers.length === before.filter((a) => a.status !== 'REROUTED').length
      && before.filter((a) => a.status !== 'REROUTED').every((a, i) => a.userId === approvers[i]);
    if (same && before.length) return;
    const kept = new Map(before.filter((a) => a.status !== 'REROUTED').map((a) => [a.userId, a]));
    bill.approvers = approvers.map((userId, i) => {
      const k = kept.get(userId);
      return k && k.status === 'APPROVED' ? { ...k, approverOrder: i + 1 }
        : { userId, status: 'WAITING', approverOrder: i + 1, statusChangedTime: t };
    });
    for (const a of before) if (!approvers.includes(a.userId) && a.status !== 'REROUTED') {
      bill.approvers.push({ ...a, status: 'REROUTED', approverOrder: null, statusChangedTime: t });
    }
    bill.approvalStatus = approvers.length === 0 ? 'UNDEFINED' : 'ASSIGNED';
    recomputeApproval(bill);
  }

  function recomputeApproval(bill) {
    const active = bill.approvers.filter((a) => a.status !== 'REROUTED');
    if (active.length === 0) return;
    if (active.some((a) => a.status === 'DENIED')) bill.approvalStatus = 'DENIED';
    else if (active.every((a) => a.status === 'APPROVED')) bill.approvalStatus = 'APPROVED';
    else bill.approvalStatus = 'ASSIGNED';
  }

  function createBillRecord(input) {
    const t = stamp();
    const bill = {
      id: newId('00n'), archived: false, vendorId: input.vendorId, dueDate: input.dueDate,
      invoice: input.invoice, description: input.description, purchaseOrderNumber: input.purchaseOrderNumber,
      payFromChartOfAccountId: input.payFromChartOfAccountId, classifications: input.classifications,
      billLineItems: input.billLineItems.map((l) => ({ ...l, id: newId('bli') })),
      paidAmount: 0, scheduledAmount: 0, approvers: [], approvalStatus: 'UNDEFINED',
      createdTime: t, updatedTime: t, approvalHistory: [],
    };
    assignApprovers(bill, t);
    state.bills.set(bill.id, bill);
    emit('bill.created', 'bill', billView(bill));
    return bill;
  }

  // BILL keeps no lock on approved bills; the emulator refuses changes only where a
  // payment or voiding is involved (assumed, see README).
  function assertEditable(bill) {
    if (bill.archived) throw new BillError('BDC_1119', { message: `Bill ${bill.id} is archived; restore it before changing it.` });
    if (bill.paidAmount > 0 || bill.scheduledAmount > 0) {
      throw new BillError('BDC_1119', { message: `Bill ${bill.id} has a scheduled or completed payment and cannot be changed.` });
    }
  }

  function commitBill(bill, next) {
    const total = round2(next.billLineItems.reduce((s, l) => s + l.amount, 0));
    if (!(total > 0)) throw invalid('amount', String(total));
    Object.assign(bill, next);
    bill.updatedTime = stamp();
    if (cfg.reapplyPoliciesOnUpdate && bill.approvalStatus !== 'APPROVED' && bill.approvalStatus !== 'DENIED') {
      assignApprovers(bill, bill.updatedTime);
    }
    emit('bill.updated', 'bill', billView(bill));
  }

  const BILL_LIST = {
    filters: {
      id: { type: 'string', ops: ['eq', 'ne', 'in'], get: (b) => b.id },
      vendorId: { type: 'string', ops: ['eq', 'in'], get: (b) => b.vendorId },
      archived: { type: 'bool', ops: ['eq'], get: (b) => b.archived },
      paymentStatus: { type: 'string', ops: ['eq', 'ne', 'in'], get: (b) => billTotals(b).paymentStatus, enum: PAYMENT_STATUSES },
      dueDate: { type: 'date', ops: ['eq', 'ne', 'gt', 'gte', 'lt', 'lte'], get: (b) => b.dueDate },
      createdTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (b) => b.createdTime },
      updatedTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (b) => b.updatedTime },
    },
    sortable: {
      createdTime: (b) => b.createdTime, updatedTime: (b) => b.updatedTime, dueDate: (b) => b.dueDate,
      amount: (b) => billTotals(b).amount,
    },
  };

  const listBills = (ctx) => {
    const page = listOperation([...state.bills.values()], ctx.query, BILL_LIST);
    return { status: 200, body: { ...page, results: page.results.map(billView) } };
  };

  const createBill = (ctx) => ({ status: 201, body: billView(createBillRecord(billInput(ctx, parseJsonBody(ctx)))) });

  function bulkBills(ctx) {
    const body = parseJsonBody(ctx);
    if (!Array.isArray(body) || body.length === 0) throw missing('bills');
    if (body.length > 100) throw badParam('bills', `${body.length} bills (at most 100)`);
    // all-or-nothing: every bill is validated before any is created
    const inputs = body.map((b, i) => billInput(ctx, b, { path: `[${i}]` }));
    return { status: 201, body: inputs.map((i) => billView(createBillRecord(i))) };
  }

  const getBill = (ctx) => ({ status: 200, body: billView(getBillOr404(ctx.params.id)) });

  function putBill(ctx) {
    const bill = getBillOr404(ctx.params.id);
    const input = billInput(ctx, parseJsonBody(ctx), { existing: bill });
    assertEditable(bill);
    commitBill(bill, {
      ...input,
      // lines with an id keep it; lines without one are new; lines left out are removed
      billLineItems: input.billLineItems.map((l) => ({ ...l, id: l.id ?? newId('bli') })),
    });
    return { status: 200, body: billView(bill) };
  }

  // PATCH: only the fields given change; line items are matched by id and keep it. A line
  // item given without "classifications" loses its coding: integrators report that BILL
  // clears it, so a client must always resend the coding of a line it patches.
  function applyPatch(ctx, bill, body, { keepCoding }) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, BILL_FIELDS);
    const next = clone({
      vendorId: bill.vendorId, dueDate: bill.dueDate, invoice: bill.invoice, billLineItems: bill.billLineItems,
      description: bill.description, purchaseOrderNumber: bill.purchaseOrderNumber,
      payFromChartOfAccountId: bill.payFromChartOfAccountId, classifications: bill.classifications,
    });
    if ('vendorId' in body) {
      next.vendorId = reqString(body, 'vendorId', 40);
      checkVendorForBill(next.vendorId, 'vendorId');
    }
    if ('dueDate' in body) {
      next.dueDate = reqString(body, 'dueDate', 10);
      if (!isDate(next.dueDate)) throw invalid('dueDate', next.dueDate);
    }
    if ('invoice' in body) {
      if (!isObj(body.invoice)) throw invalid('invoice', body.invoice);
      noteUnknown(ctx, body.invoice, ['invoiceNumber', 'invoiceDate'], 'invoice');
      if ('invoiceNumber' in body.invoice) next.invoice.invoiceNumber = reqString(body.invoice, 'invoiceNumber', 255, 'invoice.invoiceNumber');
      if ('invoiceDate' in body.invoice) {
        next.invoice.invoiceDate = reqString(body.invoice, 'invoiceDate', 10, 'invoice.invoiceDate');
        if (!isDate(next.invoice.invoiceDate)) throw invalid('invoice.invoiceDate', next.invoice.invoiceDate);
      }
    }
    for (const [k, max] of [['description', 4000], ['purchaseOrderNumber', 255], ['payFromChartOfAccountId', 40]]) {
      if (k in body) next[k] = optString(body, k, max);
    }
    if ('classifications' in body) next.classifications = classificationsInput(ctx, body.classifications, BILL_CLASSIFICATION_KEYS, 'classifications');
    if ('billLineItems' in body) {
      if (!Array.isArray(body.billLineItems)) throw invalid('billLineItems', body.billLineItems);
      body.billLineItems.forEach((item, i) => {
        const lp = `billLineItems[${i}]`;
        const l = lineInput(ctx, item, lp);
        if (l.id === undefined) {
          if (l.amount === undefined) throw missing(`${lp}.amount`);
          next.billLineItems.push({ ...l, id: newId('bli'), classifications: l.classifications ?? {} });
          return;
        }
        const line = next.billLineItems.find((x) => x.id === l.id);
        if (!line) throw invalid(`${lp}.id`, l.id);
        for (const k of ['amount', 'quantity', 'price', 'description']) {
          if (k in l) { if (l[k] === undefined) delete line[k]; else line[k] = l[k]; }
        }
        if (l.classifications !== undefined) line.classifications = keepCoding ? { ...line.classifications, ...l.classifications } : l.classifications;
        else if (!keepCoding) line.classifications = {};
      });
    }
    // removeLineItemIds: control API only (someone deleting a line in BILL's UI)
    if (keepCoding && Array.isArray(body.removeLineItemIds)) {
      next.billLineItems = next.billLineItems.filter((l) => !body.removeLineItemIds.includes(l.id));
    }
    for (const k of Object.keys(next)) if (next[k] === undefined) delete bill[k];
    commitBill(bill, next);
  }

  function patchBill(ctx) {
    const bill = getBillOr404(ctx.params.id);
    const body = parseJsonBody(ctx);
    assertEditable(bill);
    applyPatch(ctx, bill, body, { keepCoding: false });
    return { status: 200, body: billView(bill) };
  }

  function archiveBill(ctx) {
    const bill = getBillOr404(ctx.params.id);
    if (!bill.archived) { // archiving an archived bill changes nothing (idempotent)
      if (bill.paidAmount > 0 || bill.scheduledAmount > 0) {
        throw new BillError('BDC_1119', { message: `Bill ${bill.id} has a scheduled or completed payment and cannot be archived.` });
      }
      bill.archived = true;
      bill.updatedTime = stamp();
      emit('bill.archived', 'bill', billView(bill));
    }
    return { status: 200, body: billView(bill) };
  }

  function restoreBill(ctx) {
    const bill = getBillOr404(ctx.params.id);
    if (bill.archived) {
      bill.archived = false;
      bill.updatedTime = stamp();
      emit('bill.restored', 'bill', billView(bill));
    }
    return { status: 200, body: billView(bill) };
  }

  // ---------------------------------------------------------------- users and roles
  // GET /v3/users and GET /v3/roles (BILL changelog 2024-04-22 and 2024-05-20: the
  // organization's users; user ids start with 006, role ids with 0po). BILL's default
  // roles are Administrator, Accountant, Approver, Payer, Clerk and Auditor; its Help
  // Center's permissions table lets Administrator, Accountant and Approver approve bills.
  // The list response's fields beyond id, name, role and archived were not readable in
  // BILL's documentation: the shape below is the emulator's assumption (README).
  const ROLES = [['ADMINISTRATOR', 'Administrator'], ['ACCOUNTANT', 'Accountant'], ['APPROVER', 'Approver'],
    ['PAYER', 'Payer'], ['CLERK', 'Clerk'], ['AUDITOR', 'Auditor']]
    .map(([type, name], i) => ({ id: `0po01EMULATORROLE${String(i + 1).padStart(4, '0')}`, type, name }));
  const roleOf = (type) => ROLES.find((r) => r.type === type);
  function seedOrgUsers() {
    const t = new Date(now()).toISOString();
    state.orgUsers.set(creds.userId, { id: creds.userId, firstName: 'API', lastName: 'User', email: creds.username,
      roleId: roleOf('ADMINISTRATOR').id, archived: false, createdTime: t, updatedTime: t });
    for (const u of users) if (!state.orgUsers.has(u.userId)) {
      state.orgUsers.set(u.userId, { id: u.userId, firstName: u.firstName ?? 'User', lastName: u.lastName ?? u.userId,
        email: u.username, roleId: roleOf(u.role ?? 'APPROVER').id, archived: false, createdTime: t, updatedTime: t });
    }
  }
  // the organization's users, seeded on first use after a start or a reset
  const orgUsers = () => { if (state.orgUsers.size === 0) seedOrgUsers(); return state.orgUsers; };
  const userView = (u) => ({ ...u });
  const USER_LIST = {
    filters: {
      id: { type: 'string', ops: ['eq', 'ne', 'in', 'nin'], get: (u) => u.id },
      archived: { type: 'bool', ops: ['eq'], get: (u) => u.archived },
    },
    sortable: {},
  };
  const listUsers = (ctx) => {
    const page = listOperation([...orgUsers().values()], ctx.query, USER_LIST);
    return { status: 200, body: { ...page, results: page.results.map(userView) } };
  };
  function getUser(ctx) {
    const u = orgUsers().get(ctx.params.id);
    if (!u) throw notFound();
    return { status: 200, body: userView(u) };
  }
  const listRoles = () => ({ status: 200, body: ROLES.map((r) => ({ ...r })) });
  // control: add an organization user (an approver someone invited in BILL's UI)
  function controlAddUser(body) {
    if (!isObj(body)) throw new Error('body must be a JSON object');
    const role = roleOf(body.role ?? 'APPROVER');
    if (!role) throw new Error(`role must be one of ${ROLES.map((r) => r.type).join(', ')}`);
    const id = body.id ?? newId('006');
    if (!/^006[0-9A-Za-z]+$/.test(id)) throw new Error('a BILL user id starts with 006');
    const t = new Date(now()).toISOString();
    const u = { id, firstName: String(body.firstName ?? 'User'), lastName: String(body.lastName ?? id), email: body.email ?? `${id}@example.com`,
      roleId: role.id, archived: Boolean(body.archived), createdTime: orgUsers().get(id)?.createdTime ?? t, updatedTime: t };
    orgUsers().set(id, u);
    return userView(u);
  }

  // ---------------------------------------------------------------- classification: jobs
  // /v3/classifications/jobs (BILL's API reference: "Create a job", "Update a job", the
  // collection): name (required), shortName, description, parentId. BILL's reference says a job
  // id "begins with job"; the emulator's ids start with "job" accordingly.
  const JOB_LIST = {
    filters: {
      id: { type: 'string', ops: ['eq', 'ne', 'in', 'nin'], get: (j) => j.id },
      name: { type: 'string', ops: ['eq', 'ne', 'in', 'nin', 'sw'], get: (j) => j.name },
      archived: { type: 'bool', ops: ['eq'], get: (j) => j.archived },
    },
    sortable: {},
  };
  const jobView = (j) => clone(j);
  function jobInput(ctx, body, creating) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, ['name', 'shortName', 'description', 'parentId']);
    const out = {};
    if (creating || 'name' in body) out.name = reqString(body, 'name', 255);
    for (const k of ['shortName', 'description', 'parentId']) if (k in body) out[k] = reqString(body, k, 255);
    if (out.parentId !== undefined && !state.jobs.has(out.parentId)) throw invalid('parentId', out.parentId);
    return out;
  }
  const listJobs = (ctx) => {
    const page = listOperation([...state.jobs.values()], ctx.query, JOB_LIST);
    return { status: 200, body: { ...page, results: page.results.map(jobView) } };
  };
  function createJob(ctx) {
    const t = stamp();
    const j = { id: newId('job'), archived: false, ...jobInput(ctx, parseJsonBody(ctx), true), createdTime: t, updatedTime: t };
    state.jobs.set(j.id, j);
    return { status: 201, body: jobView(j) };
  }
  function getJob(ctx) {
    const j = state.jobs.get(ctx.params.id);
    if (!j) throw notFound();
    return { status: 200, body: jobView(j) };
  }
  function patchJob(ctx) {
    const j = state.jobs.get(ctx.params.id);
    if (!j) throw notFound();
    Object.assign(j, jobInput(ctx, parseJsonBody(ctx), false), { updatedTime: stamp() });
    return { status: 200, body: jobView(j) };
  }

  // ---------------------------------------------------------------- approvals
  function policyInput(ctx, body) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, ['policyName', 'rules', 'approvers']);
    const policyName = reqString(body, 'policyName', 255);
    if (!Array.isArray(body.rules) || body.rules.length === 0) throw missing('rules');
    const rules = body.rules.map((r, i) => {
      const rp = `rules[${i}]`;
      if (!isObj(r)) throw invalid(rp, r);
      if (!POLICY_RULES[r.key]) throw invalid(`${rp}.key`, r.key);
      if (!POLICY_RULES[r.key].includes(r.op)) throw invalid(`${rp}.op`, r.op);
      if (!Array.isArray(r.values) || r.values.length === 0) throw missing(`${rp}.values`);
      const values = r.values.map((v) => String(isObj(v) ? v.value : v));
      if (r.key === 'BILL_AMOUNT' && !Number.isFinite(Number(values[0]))) throw invalid(`${rp}.values`, values[0]);
      return { key: r.key, op: r.op, values };
    });
    if (!Array.isArray(body.approvers) || body.approvers.length === 0) throw missing('approvers');
    const approvers = body.approvers.map((a, i) => {
      const id = isObj(a) ? a.userId : a;
      if (typeof id !== 'string' || id === '') throw invalid(`approvers[${i}]`, a);
      return id;
    });
    return { policyName, rules, approvers };
  }

  const listPolicies = () => ({ status: 200, body: [...state.policies.values()].filter((p) => p.status === 'ACTIVE').map(policyView) });

  function createPolicy(ctx) {
    const p = { id: newId('0ap'), status: 'ACTIVE', ...policyInput(ctx, parseJsonBody(ctx)), createdTime: stamp() };
    state.policies.set(p.id, p);
    return { status: 201, body: policyView(p) };
  }

  function getPolicyOr404(id) {
    const p = state.policies.get(id);
    if (!p || p.status !== 'ACTIVE') throw notFound();
    return p;
  }

  const getPolicy = (ctx) => ({ status: 200, body: policyView(getPolicyOr404(ctx.params.id)) });

  function putPolicy(ctx) {
    const p = getPolicyOr404(ctx.params.id);
    Object.assign(p, policyInput(ctx, parseJsonBody(ctx)));
    return { status: 200, body: policyView(p) };
  }

  function deletePolicy(ctx) {
    getPolicyOr404(ctx.params.id).status = 'DELETED';
    return { status: 200, body: { status: 'SUCCESS' } };
  }

  // Approvers act in approverOrder: a user may act once every approver before them approved.
  function currentEntry(bill, userId) {
    if (bill.approvalStatus !== 'ASSIGNED') return null;
    const e = bill.approvers.find((a) => a.userId === userId && a.status === 'WAITING');
    if (!e) return null;
    const before = bill.approvers.filter((a) => a.status !== 'REROUTED' && a.approverOrder < e.approverOrder);
    return before.every((a) => a.status === 'APPROVED') ? e : null;
  }

  function recordDecision(bill, entry, action, userId, comment, via) {
    const t = stamp();
    if (entry) {
      entry.status = action === 'APPROVE' ? 'APPROVED' : 'DENIED';
      entry.statusChangedTime = t;
      recomputeApproval(bill);
    } else {
      bill.approvalStatus = action === 'APPROVE' ? 'APPROVED' : 'DENIED';
    }
    bill.approvalHistory.push({ userId, action, comment: comment ?? null, time: t, via });
    bill.updatedTime = t;
    emit('bill.updated', 'bill', billView(bill));
  }

  function approvalActions(ctx) {
    const body = parseJsonBody(ctx);
    if (!Array.isArray(body) || body.length === 0) throw missing('actions');
    const userId = ctx.session.userId;
    // all-or-nothing: every action is checked before any is applied
    const plan = body.map((a, i) => {
      const p = `[${i}]`;
      if (!isObj(a)) throw invalid(p, a);
      noteUnknown(ctx, a, ['billId', 'action', 'comment'], p);
      const billId = reqString(a, 'billId', 40, `${p}.billId`);
      const bill = state.bills.get(billId);
      if (!bill || bill.archived) throw invalid(`${p}.billId`, billId);
      if (a.action !== 'APPROVE' && a.action !== 'DENY') throw invalid(`${p}.action`, a.action);
      const entry = currentEntry(bill, userId);
      if (!entry) throw new BillError('BDC_1119', { message: `User ${userId} cannot approve or deny bill ${billId} now: not its current approver.` });
      return { bill, entry, action: a.action, comment: optString(a, 'comment', 4000, `${p}.comment`) };
    });
    for (const s of plan) recordDecision(s.bill, s.entry, s.action, userId, s.comment, 'api');
    return { status: 200, body: { status: 'SUCCESS' } };
  }

  function pendingApprovals(ctx) {
    const bills = [...state.bills.values()]
      .filter((b) => !b.archived && currentEntry(b, ctx.session.userId))
      .map((b) => ({ billId: b.id, vendorId: b.vendorId, amount: billTotals(b).amount, dueDate: b.dueDate }));
    return { status: 200, body: { bills } };
  }

  // ---------------------------------------------------------------- documents
  function uploadDocument(ctx) {
    const bill = getBillOr404(ctx.params.id);
    const name = [].concat(ctx.query.name ?? [])[0];
    if (!name) throw new BillError('BDC_1108', { params: ['name'] });
    const type = String(ctx.headers['content-type'] ?? '').toLowerCase();
    // BILL takes the file itself as the body. A multipart body would be stored as the
    // file, envelope and all; the emulator refuses it so that client bug shows up.
    if (type.startsWith('multipart/')) {
      throw new BillError('BDC_1129', { message: 'The document must be sent as the raw request body, not as multipart/form-data.' });
    }
    const { buf, size } = ctx.body;
    if (size === 0) throw missing('file');
    if (size > cfg.maxDocumentBytes) {
      throw new BillError('BDC_1129', { message: `File size ${size} bytes exceeds the limit of ${cfg.maxDocumentBytes} bytes (6 MB).` });
    }
    const t = stamp();
    const d = {
      uploadId: newId('0du'), documentId: newId('00h'), billId: bill.id, name, size,
      sha256: crypto.createHash('sha256').update(buf).digest('hex'), contentType: type || null,
      createdTime: t, readyAt: now() + cfg.documentProcessingMs, content: buf, failed: cfg.failUploads > 0,
    };
    if (d.failed) cfg.failUploads -= 1;
    state.documents.set(d.uploadId, d);
    // the answer carries the upload id (0du...); the document id (00h...) comes from
    // GET /v3/documents/upload-status once the upload is processed
    const view = { id: d.uploadId, name: d.name, createdTime: d.createdTime };
    if (now() >= d.readyAt) view.downloadLink = documentView(d, ctx.headers.host).downloadLink;
    return { status: 200, body: view };
  }

  function uploadStatus(ctx) {
    const raw = [].concat(ctx.query.ids ?? []).join(',');
    const ids = raw.split(',').map((s) => s.trim()).filter(Boolean);
    if (ids.length === 0) throw new BillError('BDC_1108', { params: ['ids'] });
    const out = [];
    for (const id of ids) {
      const d = [...state.documents.values()].find((x) => x.uploadId === id || x.documentId === id);
      if (!d) continue;
      const ready = now() >= d.readyAt;
      if (!ready) out.push({ uploadId: d.uploadId, status: 'IN_PROGRESS' });
      else if (d.failed) out.push({ uploadId: d.uploadId, status: 'FAILED' });
      else out.push({ documentId: d.documentId, uploadId: d.uploadId, status: 'UPLOADED' });
    }
    return { status: 200, body: out };
  }

  function getDocument(ctx) {
    const d = [...state.documents.values()].find((x) => x.documentId === ctx.params.id && now() >= x.readyAt && !x.failed);
    if (!d) throw notFound();
    return { status: 200, body: documentView(d, ctx.headers.host) };
  }

  function listDocuments(ctx) {
    getBillOr404(ctx.params.id);
    const docs = [...state.documents.values()].filter((d) => d.billId === ctx.params.id && now() >= d.readyAt && !d.failed);
    const page = listOperation(docs, ctx.query, { filters: {}, sortable: {} });
    return { status: 200, body: { ...page, results: page.results.map((d) => documentView(d, ctx.headers.host)) } };
  }

  // ---------------------------------------------------------------- payments
  const paymentView = (p) => clone(p);
  // A payment as BILL's payment webhook reports it ("Payment webhook notification payloads":
  // id, billIds, status among the documented single-status values, times, processDate, vendor).
  // The /v3/payments status maps to those values as assumed here: SCHEDULED stays, PAID is
  // CLEARED (the last of the normal flow); a failure set through the control API is reported as given.
  const PAYMENT_EVENT_STATUS = { SCHEDULED: 'SCHEDULED', PAID: 'CLEARED', CANCELLED: 'CANCELED' };
  const paymentEventView = (p) => ({
    id: p.id, billIds: [p.billId], status: p.singleStatus ?? PAYMENT_EVENT_STATUS[p.status] ?? p.status,
    createdTime: p.createdTime, updatedTime: p.updatedTime, processDate: p.processDate, createdBy: p.createdBy,
    vendor: { id: p.vendorId, name: p.vendorName }, amount: p.amount,
  });

  function settlePayment(p) {
    const bill = state.bills.get(p.billId);
    p.status = 'PAID';
    p.updatedTime = stamp();
    bill.scheduledAmount = round2(Math.max(0, bill.scheduledAmount - p.amount));
    bill.paidAmount = round2(bill.paidAmount + p.amount);
    bill.updatedTime = stamp();
    emit('payment.updated', 'payment', paymentEventView(p));
    emit('bill.updated', 'bill', billView(bill));
  }

  function newPaymentRecord(bill, amount, fields) {
    const t = stamp();
    const p = {
      id: newId('stp'), amount: round2(amount), vendorId: bill.vendorId, vendorName: vendorName(bill.vendorId),
      billId: bill.id, billPayments: [{ id: newId('blp'), billId: bill.id, amount: round2(amount) }],
      description: fields.description, processDate: fields.processDate, fundingAccount: fields.fundingAccount,
      processingOptions: fields.processingOptions, status: 'SCHEDULED', onlinePayment: true,
      createdTime: t, updatedTime: t, createdBy: fields.createdBy,
    };
    for (const k of Object.keys(p)) if (p[k] === undefined) delete p[k];
    state.payments.set(p.id, p);
    bill.scheduledAmount = round2(bill.scheduledAmount + p.amount);
    bill.updatedTime = stamp();
    return p;
  }

  function createPayment(ctx) {
    const body = parseJsonBody(ctx);
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, ['vendorId', 'billId', 'processDate', 'fundingAccount', 'amount', 'processingOptions', 'description']);
    const billId = reqString(body, 'billId', 40);
    const bill = state.bills.get(billId);
    if (!bill) throw invalid('billId', billId);
    if ('vendorId' in body && body.vendorId !== bill.vendorId) throw invalid('vendorId', body.vendorId);
    const processDate = reqString(body, 'processDate', 10);
    if (!isDate(processDate) || processDate < today()) throw invalid('processDate', processDate);
    if (!isObj(body.fundingAccount)) throw missing('fundingAccount');
    if (!FUNDING_TYPES.includes(body.fundingAccount.type)) throw invalid('fundingAccount.type', body.fundingAccount.type);
    const fundingId = reqString(body.fundingAccount, 'id', 40, 'fundingAccount.id');
    const amount = optNumber(body, 'amount');
    if (amount === undefined) throw missing('amount');
    if (!(amount > 0)) throw invalid('amount', String(amount));
    if (bill.archived) throw new BillError('BDC_1119', { message: `Bill ${billId} is archived and cannot be paid.` });
    if (bill.approvalStatus === 'ASSIGNED' || bill.approvalStatus === 'DENIED') {
      throw new BillError('BDC_1119', { message: `Bill ${billId} cannot be paid: approval is not complete (approvalStatus ${bill.approvalStatus}).` });
    }
    const open = round2(billTotals(bill).dueAmount - bill.scheduledAmount);
    if (round2(amount) > open) throw invalid('amount', String(amount));
    if ('processingOptions' in body && body.processingOptions !== null && !isObj(body.processingOptions)) throw invalid('processingOptions', body.processingOptions);
    const p = newPaymentRecord(bill, amount, {
      processDate, fundingAccount: { type: body.fundingAccount.type, id: fundingId },
      processingOptions: clone(body.processingOptions ?? undefined), description: optString(body, 'description', 4000),
      createdBy: ctx.session.userId,
    });
    emit('payment.updated', 'payment', paymentEventView(p));
    emit('bill.updated', 'bill', billView(bill));
    return { status: 201, body: paymentView(p) };
  }

  const PAYMENT_LIST = {
    filters: {
      id: { type: 'string', ops: ['eq', 'ne', 'in'], get: (p) => p.id },
      billId: { type: 'string', ops: ['eq', 'in'], get: (p) => p.billId },
      vendorId: { type: 'string', ops: ['eq', 'in'], get: (p) => p.vendorId },
      status: { type: 'string', ops: ['eq', 'ne', 'in'], get: (p) => p.status },
      createdTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (p) => p.createdTime },
      updatedTime: { type: 'time', ops: ['gt', 'gte', 'lt', 'lte'], get: (p) => p.updatedTime },
    },
    sortable: { createdTime: (p) => p.createdTime, updatedTime: (p) => p.updatedTime },
  };

  const listPayments = (ctx) => {
    const page = listOperation([...state.payments.values()], ctx.query, PAYMENT_LIST);
    return { status: 200, body: { ...page, results: page.results.map(paymentView) } };
  };

  const getPayment = (ctx) => {
    const p = state.payments.get(ctx.params.id);
    if (!p) throw notFound();
    return { status: 200, body: paymentView(p) };
  };

  // Payments stay SCHEDULED until the emulator's date reaches their processDate (see
  // POST /_emulator/clock) or someone pays the bill (POST /_emulator/bills/{id}/pay).
  function settleDuePayments() {
    const d = today();
    for (const p of state.payments.values()) if (p.status === 'SCHEDULED' && p.processDate <= d) settlePayment(p);
  }

  // ---------------------------------------------------------------- subscriptions
  function idempotencyKey(ctx) {
    const key = ctx.headers['x-idempotent-key'];
    if (!key) throw new BillError('BDC_1108', { params: ['X-Idempotent-Key'] });
    if (!UUID4.test(key)) throw badParam('X-Idempotent-Key', key);
    return key;
  }

  function subscriptionInput(ctx, body, { partial }) {
    if (!isObj(body)) throw new BillError('BDC_1122');
    noteUnknown(ctx, body, ['name', 'status', 'events', 'notificationUrl']);
    const out = {};
    if (!partial || 'name' in body) out.name = reqString(body, 'name', 255);
    if ('status' in body) {
      if (!isObj(body.status) || typeof body.status.enabled !== 'boolean') throw invalid('status', body.status);
      out.status = { enabled: body.status.enabled };
    } else if (!partial) out.status = { enabled: true };
    if (!partial || 'events' in body) {
      if (!Array.isArray(body.events) || body.events.length === 0) throw missing('events');
      out.events = body.events.map((e, i) => {
        if (!isObj(e) || !EVENT_TYPES.includes(e.type)) throw invalid(`events[${i}].type`, isObj(e) ? e.type : e);
        const version = e.version === undefined ? '1' : String(e.version);
        if (version !== '1') throw invalid(`events[${i}].version`, version);
        return { type: e.type, version };
      });
    }
    if (!partial || 'notificationUrl' in body) {
      const url = reqString(body, 'notificationUrl', 2000);
      let ok = false;
      try { ok = ['http:', 'https:'].includes(new URL(url).protocol); } catch { /* not a URL */ }
      if (!ok) throw invalid('notificationUrl', url);
      out.notificationUrl = url;
    }
    return out;
  }

  function createSubscription(ctx) {
    const key = idempotencyKey(ctx);
    const known = state.idempotency.get(`subscription:${key}`);
    if (known) return clone(known); // same key -> the same answer, securityKey included
    const t = stamp();
    const s = {
      id: crypto.randomUUID(), organizationId: creds.organizationId, ...subscriptionInput(ctx, parseJsonBody(ctx), { partial: false }),
      createdTime: t, updatedTime: t, securityKey: crypto.randomBytes(32).toString('hex'),
    };
    state.subscriptions.set(s.id, s);
    const answer = { status: 200, body: { ...subscriptionView(s), securityKey: s.securityKey } };
    state.idempotency.set(`subscription:${key}`, clone(answer));
    return answer;
  }

  function getSubscriptionOr404(id) {
    const s = state.subscriptions.get(id);
    if (!s) throw notFound();
    return s;
  }

  const listSubscriptions = (ctx) => {
    const page = listOperation([...state.subscriptions.values()], ctx.query, { filters: {}, sortable: {} });
    delete page.prevPage; // BILL: this list only pages forward
    return { status: 200, body: { ...page, results: page.results.map(subscriptionView) } };
  };

  const getSubscription = (ctx) => ({ status: 200, body: subscriptionView(getSubscriptionOr404(ctx.params.id)) });

  function updateSubscription(ctx, partial) {
    const s = getSubscriptionOr404(ctx.params.id);
    Object.assign(s, subscriptionInput(ctx, parseJsonBody(ctx), { partial }));
    s.updatedTime = stamp();
    return { status: 200, body: subscriptionView(s) };
  }

  function deleteSubscription(ctx) {
    getSubscriptionOr404(ctx.params.id);
    state.subscriptions.delete(ctx.params.id);
    return { status: 200, body: null };
  }

  function rotateSecurityKey(ctx) {
    const s = getSubscriptionOr404(ctx.params.id);
    const key = idempotencyKey(ctx);
    const known = state.idempotency.get(`security_key:${key}`);
    if (known) return clone(known);
    s.securityKey = crypto.randomBytes(32).toString('hex');
    s.updatedTime = stamp();
    const answer = { status: 200, body: { securityKey: s.securityKey } };
    state.idempotency.set(`security_key:${key}`, clone(answer));
    return answer;
  }

  function eventView(e) {
    const last = [...state.deliveries].reverse().find((d) => d.eventId === e.eventId);
    return {
      id: e.eventId, type: e.eventType, version: e.version, subscriptionId: e.subscriptionId,
      payload: JSON.stringify(e.payload), createdTime: e.createdTime, statusCode: last?.status ?? null,
    };
  }

  function testEvent(ctx) {
    const s = getSubscriptionOr404(ctx.params.id);
    const body = ctx.body.size ? parseJsonBody(ctx) : {};
    if (!isObj(body)) throw new BillError('BDC_1122');
    const eventType = body.eventType ?? s.events[0].type;
    if (!EVENT_TYPES.includes(eventType)) throw invalid('eventType', eventType);
    const key = eventType.split('.')[0];
    const obj = body[key] ?? { id: `test-${key}-id` };
    const eventId = deliverEvent(s, eventType, String(body.version ?? '1'), key, obj, { test: true });
    return { status: 200, body: eventView(state.events.find((e) => e.eventId === eventId)) };
  }

  function listEvents(ctx) {
    getSubscriptionOr404(ctx.params.id);
    const entity = [].concat(ctx.query.entityId ?? [])[0];
    const events = state.events.filter((e) => e.subscriptionId === ctx.params.id &&
      (!entity || Object.values(e.payload).some((o) => o?.id === entity)));
    const page = listOperation(events, ctx.query, { filters: {}, sortable: {} });
    delete page.prevPage;
    return { status: 200, body: { ...page, results: page.results.map(eventView) } };
  }

  function resendEvent(ctx) {
    const s = getSubscriptionOr404(ctx.params.id);
    const e = state.events.find((x) => x.eventId === ctx.params.eventId && x.subscriptionId === s.id);
    if (!e) throw notFound();
    const body = Buffer.from(JSON.stringify(e.payload));
    dispatcher.enqueue({
      subscriptionId: s.id, url: s.notificationUrl, eventId: e.eventId, eventType: e.eventType, body,
      signature: sign(s.securityKey, body), badSignature: false, duplicate: true,
    });
    return { status: 200, body: eventView(e) };
  }

  const catalog = () => ({ status: 200, body: EVENT_TYPES.map((type) => ({ type, versions: ['1'] })) });

  // ---------------------------------------------------------------- routes
  // [method, path pattern, handler, options]; auth: 'session' (default), 'login', 'none';
  // events: also served under /connect-events (BILL's webhook base URL).
  const ROUTES = [
    ['GET', '/v3/health', () => ({ status: 200, body: { appId: 'bill-emulator', appEnv: 'emulator', appVersion: '1', bdcRegion: 'local' } }), { auth: 'none' }],
    ['POST', '/v3/login', login, { auth: 'login' }],
    ['POST', '/v3/logout', logout],
    ['GET', '/v3/login/session', sessionInfo],
    ['GET', '/v3/vendors', listVendors],
    ['POST', '/v3/vendors', createVendor],
    ['POST', '/v3/vendors/bulk', bulkVendors],
    ['GET', '/v3/vendors/:id', getVendor],
    ['PATCH', '/v3/vendors/:id', patchVendor],
    ['POST', '/v3/vendors/:id/archive', (ctx) => setVendorArchived(ctx, true)],
    ['POST', '/v3/vendors/:id/restore', (ctx) => setVendorArchived(ctx, false)],
    ['GET', '/v3/bills', listBills],
    ['POST', '/v3/bills', createBill],
    ['POST', '/v3/bills/bulk', bulkBills],
    ['GET', '/v3/bills/:id', getBill],
    ['PUT', '/v3/bills/:id', putBill],
    ['PATCH', '/v3/bills/:id', patchBill],
    ['POST', '/v3/bills/:id/archive', archiveBill],
    ['POST', '/v3/bills/:id/restore', restoreBill],
    ['GET', '/v3/classifications/jobs', listJobs],
    ['POST', '/v3/classifications/jobs', createJob],
    ['GET', '/v3/classifications/jobs/:id', getJob],
    ['PATCH', '/v3/classifications/jobs/:id', patchJob],
    ['GET', '/v3/users', listUsers],
    ['GET', '/v3/users/:id', getUser],
    ['GET', '/v3/roles', listRoles],
    ['GET', '/v3/bill-approvals/policies', listPolicies],
    ['POST', '/v3/bill-approvals/policies', createPolicy],
    ['POST', '/v3/bill-approvals', createPolicy], // the docs show this path too
    ['GET', '/v3/bill-approvals/policies/:id', getPolicy],
    ['PUT', '/v3/bill-approvals/policies/:id', putPolicy],
    ['DELETE', '/v3/bill-approvals/policies/:id', deletePolicy],
    ['POST', '/v3/bill-approvals/actions', approvalActions],
    ['GET', '/v3/bill-approvals/pending-user-approvals', pendingApprovals],
    ['GET', '/v3/documents/upload-status', uploadStatus],
    ['POST', '/v3/documents/bills/:id', uploadDocument, { raw: true }],
    ['GET', '/v3/documents/bills/:id', listDocuments],
    ['GET', '/v3/documents/:id', getDocument],
    ['GET', '/v3/payments', listPayments],
    ['POST', '/v3/payments', createPayment],
    ['GET', '/v3/payments/:id', getPayment],
    ['GET', '/v3/events/catalog', catalog, { events: true }],
    ['GET', '/v3/events/subscription/:id', listEvents, { events: true }],
    ['POST', '/v3/events/subscription/:id/event/:eventId', resendEvent, { events: true }],
    ['GET', '/v3/subscriptions', listSubscriptions, { events: true }],
    ['POST', '/v3/subscriptions', createSubscription, { events: true }],
    ['GET', '/v3/subscriptions/:id', getSubscription, { events: true }],
    ['PUT', '/v3/subscriptions/:id', (ctx) => updateSubscription(ctx, false), { events: true }],
    ['PATCH', '/v3/subscriptions/:id', (ctx) => updateSubscription(ctx, true), { events: true }],
    ['DELETE', '/v3/subscriptions/:id', deleteSubscription, { events: true }],
    ['POST', '/v3/subscriptions/:id/security_key', rotateSecurityKey, { events: true }],
    ['POST', '/v3/subscriptions/:id/test', testEvent, { events: true }],
  ].map(([method, pattern, handler, opts = {}]) => {
    const names = [];
    const re = new RegExp(`^${pattern.replace(/:(\w+)/g, (_, n) => { names.push(n); return '([^/]+)'; })}/?$`);
    return { method, pattern, handler, re, names, auth: opts.auth ?? 'session', raw: Boolean(opts.raw), events: Boolean(opts.events) };
  });

  function matchRoute(method, path) {
    let rest;
    let eventsBase = false;
    if (path === EVENTS_PREFIX || path.startsWith(`${EVENTS_PREFIX}/`)) { rest = path.slice(EVENTS_PREFIX.length); eventsBase = true; }
    else if (path === API_PREFIX || path.startsWith(`${API_PREFIX}/`)) rest = path.slice(API_PREFIX.length);
    else throw new BillError('BDC_1121');
    let pathKnown = false;
    for (const r of ROUTES) {
      if (eventsBase && !r.events) continue;
      const m = r.re.exec(rest);
      if (!m) continue;
      pathKnown = true;
      if (r.method !== method) continue;
      const params = {};
      r.names.forEach((n, i) => {
        try { params[n] = decodeURIComponent(m[i + 1]); } catch { params[n] = m[i + 1]; }
      });
      return { route: r, params };
    }
    throw new BillError('BDC_1121', pathKnown ? { status: 405 } : {});
  }

  function takeRequestFaults(method, path) {
    const hits = [];
    for (const f of state.faults) {
      if (!REQUEST_FAULTS.includes(f.kind) || f.remaining === 0) continue;
      if (f.match.method !== undefined && f.match.method.toUpperCase() !== method) continue;
      if (f.pathRe && !f.pathRe.test(path)) continue;
      if (f.skip > 0) { f.skip--; continue; }
      if (f.remaining !== null) f.remaining--;
      f.hits++;
      hits.push(f);
      // a fault that ends the request leaves the later ones for the next request
      if (['status', 'bdc', 'drop'].includes(f.kind)) break;
    }
    return hits;
  }

  // ---------------------------------------------------------------- HTTP plumbing
  function send(req, res, ctx, status, body, extraHeaders = {}) {
    ctx.release?.();
    const headers = { ...extraHeaders };
    if (!req.complete) headers.Connection = 'close'; // unread body: do not reuse the connection
    if (body === null || body === undefined) {
      headers['Content-Length'] = 0;
      res.writeHead(status, headers);
      res.end();
      return;
    }
    const buf = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    headers['Content-Type'] = 'application/json';
    headers['Content-Length'] = buf.length;
    res.writeHead(status, headers);
    res.end(buf);
  }

  async function sendError(req, res, ctx, err) {
    ctx.code = err.code;
    ctx.message = err.message;
    // Read (and discard) what is left of the body first, so the client is not cut off
    // while still sending and reliably reads the error.
    if (!req.complete && !req.readableEnded) {
      try { await readBody(req, 0); } catch { /* connection gone */ }
    }
    if (res.destroyed) return;
    send(req, res, ctx, err.status ?? cfg.throttleStatus, errorBody(err, now()));
  }

  function logRequest(ctx, res) {
    const c = state.counters;
    c.totalRequests++;
    c.apiRequests++;
    let outcome = ctx.outcome;
    if (!outcome) outcome = res.writableFinished ? 'responded' : 'clientAborted';
    if (outcome === 'clientAborted') c.clientAborted++;
    if (outcome === 'dropped') c.dropped++;
    if (outcome === 'droppedAfterCommit') c.droppedAfterCommit++;
    const status = outcome === 'responded' ? res.statusCode : null;
    if (status !== null) c.byStatus[status] = (c.byStatus[status] ?? 0) + 1;
    if (ctx.code) c.byCode[ctx.code] = (c.byCode[ctx.code] ?? 0) + 1;
    pushBounded(state.requests, {
      seq: ++state.requestSeq, method: ctx.method, path: ctx.path, query: ctx.query, route: ctx.route ?? null,
      status, code: ctx.code ?? null, message: ctx.message ?? null, outcome, committedStatus: ctx.committedStatus ?? null,
      startTime: new Date(ctx.start).toISOString(), endTime: new Date().toISOString(), durationMs: Date.now() - ctx.start,
      emulatorTime: new Date(ctx.emulatorStart).toISOString(),
      devKey: ctx.devKey ?? null, organizationId: ctx.organizationId ?? null, faults: ctx.faults, warnings: ctx.warnings,
    });
  }

  async function handleApi(req, res, url) {
    const ctx = {
      start: Date.now(), emulatorStart: now(), method: req.method, path: url.pathname,
      query: queryObject(url.searchParams), headers: req.headers, warnings: [], faults: [],
    };
    res.once('close', () => logRequest(ctx, res));
    try {
      const { route, params } = matchRoute(ctx.method, ctx.path);
      ctx.route = `${route.method} ${route.pattern}`;
      ctx.params = params;
      const faults = takeRequestFaults(ctx.method, ctx.path);
      ctx.faults = faults.map((f) => f.kind);
      if (faults.some((f) => f.kind === 'expireSessions')) state.sessions.clear();
      if (faults.some((f) => f.kind === 'drop')) {
        ctx.outcome = 'dropped';
        req.socket.destroy();
        return;
      }
      const errFault = faults.find((f) => f.kind === 'status' || f.kind === 'bdc');
      if (errFault) {
        if (errFault.kind === 'status' && errFault.body !== undefined) {
          ctx.code = errFault.code ?? null;
          if (!req.complete) await readBody(req, 0).catch(() => {});
          send(req, res, ctx, errFault.status, errFault.body);
          return;
        }
        const code = errFault.code ?? (errFault.status >= 500 ? 'BDC_1001' : 'BDC_1002');
        throw new BillError(code, { status: errFault.status ?? (CODES[code] ? undefined : 400), message: errFault.message });
      }
      if (route.auth === 'session') {
        authenticate(ctx);
        admit(ctx, res);
      }
      const slow = faults.find((f) => f.kind === 'slow');
      if (slow && !(await waitOrAbort(res, slow.ms))) {
        ctx.outcome = 'clientAborted';
        return; // the client gave up: nothing is processed
      }
      ctx.body = await readBody(req, route.raw ? cfg.maxDocumentBytes : JSON_BODY_LIMIT);
      if (!ctx.body.complete) {
        ctx.outcome = ctx.body.aborted ? 'clientAborted' : 'dropped';
        req.socket.destroy();
        return;
      }
      if (!route.raw && ctx.body.size > JSON_BODY_LIMIT) throw badParam('body', `${ctx.body.size} bytes`);
      if (res.destroyed) { ctx.outcome = 'clientAborted'; return; }
      const result = route.handler(ctx);
      if (faults.some((f) => f.kind === 'dropAfterCommit')) {
        // the work is done (and its webhooks are queued), but the client never hears of it
        ctx.outcome = 'droppedAfterCommit';
        ctx.committedStatus = result.status;
        ctx.release?.();
        req.socket.destroy();
        return;
      }
      send(req, res, ctx, result.status, result.body);
    } catch (e) {
      let err = e;
      if (!(err instanceof BillError)) {
        console.error('bill-emulator: internal error:', err);
        err = new BillError('BDC_1001');
      }
      if (res.headersSent || res.destroyed) { res.destroy(); return; }
      await sendError(req, res, ctx, err);
    }
  }

  // ---------------------------------------------------------------- control API
  function controlConfig(body) {
    if (!isObj(body)) throw new Error('body must be a JSON object');
    for (const [k, v] of Object.entries(body)) {
      const t = CONFIG_TYPES[k];
      if (!t) throw new Error(`unknown setting ${k}; known: ${Object.keys(CONFIG_TYPES).join(', ')}`);
      if (t === 'int' && !(Number.isInteger(v) && v >= 0)) throw new Error(`${k} must be a non-negative integer`);
      if (t === 'status' && !(Number.isInteger(v) && v >= 400 && v <= 599)) throw new Error(`${k} must be an HTTP status 400..599`);
      if (t === 'code' && !(typeof v === 'string' && /^BDC_\d+$/.test(v))) throw new Error(`${k} must be a BDC_ code`);
      if (t === 'bool' && typeof v !== 'boolean') throw new Error(`${k} must be true or false`);
      if ((k === 'hourMs') && v === 0) throw new Error('hourMs must be positive');
    }
    Object.assign(cfg, body);
    return { ...cfg };
  }

  function controlState() {
    return {
      now: new Date(now()).toISOString(),
      clockOffsetMs: state.clockOffsetMs,
      organizationId: creds.organizationId,
      vendors: [...state.vendors.values()].map(vendorView),
      bills: [...state.bills.values()].map((b) => ({ ...billView(b), approvalHistory: clone(b.approvalHistory) })),
      documents: [...state.documents.values()].map((d) => ({
        uploadId: d.uploadId, documentId: d.documentId, billId: d.billId, name: d.name, size: d.size,
        sha256: d.sha256, contentType: d.contentType, createdTime: d.createdTime,
        status: now() < d.readyAt ? 'IN_PROGRESS' : d.failed ? 'FAILED' : 'UPLOADED',
      })),
      payments: [...state.payments.values()].map(paymentView),
      policies: [...state.policies.values()].map((p) => ({ ...policyView(p), status: p.status })),
      users: [...orgUsers().values()].map(userView),
      jobs: [...state.jobs.values()].map(jobView),
      subscriptions: [...state.subscriptions.values()].map((s) => clone(s)), // securityKey included, for tests
      sessions: [...state.sessions.values()].map((s) => ({
        sessionId: s.sessionId, userId: s.userId, lastUsed: new Date(s.lastUsed).toISOString(),
        expiresAt: new Date(s.lastUsed + cfg.sessionIdleMs).toISOString(), trusted: s.trusted,
      })),
      counters: {
        vendors: state.vendors.size, bills: state.bills.size, documents: state.documents.size,
        payments: state.payments.size, policies: state.policies.size, subscriptions: state.subscriptions.size,
        sessions: state.sessions.size, events: state.events.length,
      },
    };
  }

  function controlStats() {
    rollWindow();
    const maxConcurrentByOrg = {};
    const concurrency = [...state.concurrency.values()].map((c) => ({ ...c }));
    for (const c of concurrency) maxConcurrentByOrg[c.organizationId] = Math.max(maxConcurrentByOrg[c.organizationId] ?? 0, c.maxInFlight);
    const windowStart = state.rate.window * cfg.hourMs;
    return {
      ...clone(state.counters),
      maxConcurrentByOrg,
      concurrency,
      hour: {
        windowStart: new Date(windowStart).toISOString(), windowEnd: new Date(windowStart + cfg.hourMs).toISOString(),
        requests: Object.fromEntries(state.rate.requests), logins: Object.fromEntries(state.rate.logins),
        hourlyLimit: cfg.hourlyLimit, loginHourlyLimit: cfg.loginHourlyLimit,
      },
      webhooks: {
        pending: dispatcher.pending,
        attempts: state.deliveries.length,
        delivered: state.deliveries.filter((d) => d.ok).length,
        failedAttempts: state.deliveries.filter((d) => !d.ok).length,
      },
    };
  }

  // Someone working in BILL's UI. Each fires the webhooks the real change would.
  function uiApproveOrDeny(bill, action, body) {
    if (bill.archived) throw new Error(`bill ${bill.id} is archived`);
    const userId = body.userId;
    if (bill.approvers.length === 0) {
      recordDecision(bill, null, action, userId ?? 'ui', body.comment, 'ui');
      return;
    }
    if (userId !== undefined) {
      const e = bill.approvers.find((a) => a.userId === userId && a.status === 'WAITING');
      if (!e) throw new Error(`user ${userId} is not a waiting approver of bill ${bill.id}`);
      recordDecision(bill, e, action, userId, body.comment, 'ui');
      return;
    }
    const waiting = bill.approvers.filter((a) => a.status === 'WAITING').sort((a, b) => a.approverOrder - b.approverOrder);
    if (waiting.length === 0) throw new Error(`bill ${bill.id} has no waiting approver`);
    if (action === 'DENY') { recordDecision(bill, waiting[0], 'DENY', waiting[0].userId, body.comment, 'ui'); return; }
    // approve: every waiting approver approves, in order, as one change (one bill.updated)
    const t = stamp();
    for (const e of waiting) { e.status = 'APPROVED'; e.statusChangedTime = t; bill.approvalHistory.push({ userId: e.userId, action, comment: body.comment ?? null, time: t, via: 'ui' }); }
    recomputeApproval(bill);
    bill.updatedTime = t;
    emit('bill.updated', 'bill', billView(bill));
  }

  function uiPay(bill, body) {
    const scheduled = [...state.payments.values()].filter((p) => p.billId === bill.id && p.status === 'SCHEDULED');
    if (scheduled.length && body.amount === undefined) {
      scheduled.forEach(settlePayment);
      return scheduled.map(paymentView);
    }
    const open = round2(billTotals(bill).dueAmount - bill.scheduledAmount);
    const amount = body.amount ?? open;
    if (typeof amount !== 'number' || !(amount > 0) || round2(amount) > open) throw new Error(`amount must be > 0 and <= ${open}`);
    const p = newPaymentRecord(bill, amount, {
      processDate: today(), fundingAccount: { type: 'BANK_ACCOUNT', id: 'emulator-ui' }, createdBy: body.userId ?? 'ui',
    });
    settlePayment(p);
    return [paymentView(p)];
  }

  async function handleControl(req, res, url) {
    state.counters.totalRequests++;
    state.counters.controlRequests++;
    const reply = (status, obj) => {
      const body = Buffer.from(JSON.stringify(obj));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': body.length });
      res.end(body);
    };
    const what = url.pathname.slice(CONTROL_PREFIX.length).replace(/\/$/, '');
    const route = `${req.method} ${what}`;
    try {
      const raw = await readBody(req, JSON_BODY_LIMIT);
      const text = raw.buf.toString('utf8');
      let body = {};
      if (text.trim() !== '') {
        try { body = JSON.parse(text); } catch { throw new Error('body is not valid JSON'); }
      }
      let m;
      switch (route) {
        case 'GET health': return reply(200, { status: 'ok' });
        case 'POST reset':
          dispatcher.reset();
          state = freshState();
          return reply(200, { ok: true });
        case 'POST users': return reply(201, controlAddUser(body));
        case 'GET state': return reply(200, controlState());
        case 'GET requests': return reply(200, state.requests);
        case 'DELETE requests': state.requests = []; return reply(200, { ok: true });
        case 'GET stats': return reply(200, controlStats());
        case 'GET faults': return reply(200, { faults: state.faults.map(faultView) });
        case 'POST faults':
          state.faults = validateFaults(Array.isArray(body) ? body : body.faults);
          return reply(200, { faults: state.faults.map(faultView) });
        case 'DELETE faults': state.faults = []; return reply(200, { faults: [] });
        case 'GET config': return reply(200, { ...cfg });
        case 'POST config': return reply(200, controlConfig(body));
        case 'GET clock': return reply(200, { now: new Date(now()).toISOString(), offsetMs: state.clockOffsetMs });
        case 'POST clock': {
          if (!(Number.isInteger(body.advanceMs) && body.advanceMs >= 0)) throw new Error('advanceMs must be a non-negative integer');
          state.clockOffsetMs += body.advanceMs;
          settleDuePayments();
          return reply(200, { now: new Date(now()).toISOString(), offsetMs: state.clockOffsetMs });
        }
        case 'POST sessions/expire': {
          const n = state.sessions.size;
          state.sessions.clear();
          return reply(200, { expired: n });
        }
        case 'GET webhooks': return reply(200, { pending: dispatcher.pending, events: state.events, deliveries: state.deliveries });
        case 'DELETE webhooks': state.events = []; state.deliveries = []; return reply(200, { ok: true });
        case 'POST webhooks/drain': {
          const idle = await dispatcher.idle(Number.isInteger(body.timeoutMs) ? body.timeoutMs : 10000);
          return reply(idle ? 200 : 504, { idle, pending: dispatcher.pending });
        }
        default:
          break;
      }
      if (req.method === 'POST' && (m = /^bills\/([^/]+)\/(approve|deny|pay|edit)$/.exec(what))) {
        const bill = state.bills.get(decodeURIComponent(m[1]));
        if (!bill) return reply(404, { error: `no bill ${m[1]}` });
        if (!isObj(body)) throw new Error('body must be a JSON object');
        if (m[2] === 'approve' || m[2] === 'deny') uiApproveOrDeny(bill, m[2] === 'approve' ? 'APPROVE' : 'DENY', body);
        if (m[2] === 'pay') {
          const payments = uiPay(bill, body);
          return reply(200, { bill: billView(bill), payments });
        }
        if (m[2] === 'edit') {
          const ctx = { warnings: [] };
          try {
            applyPatch(ctx, bill, body, { keepCoding: true });
          } catch (e) {
            if (e instanceof BillError) throw new Error(e.message);
            throw e;
          }
          return reply(200, { bill: billView(bill), warnings: ctx.warnings });
        }
        return reply(200, { bill: billView(bill) });
      }
      if (req.method === 'POST' && (m = /^payments\/([^/]+)\/fail$/.exec(what))) {
        // a payment that does not reach the vendor (the bank rejected it, funding failed ...):
        // the money goes back, the bill is due again; payment.updated (and bill.updated) follow
        const p = state.payments.get(decodeURIComponent(m[1]));
        if (!p) return reply(404, { error: `no payment ${m[1]}` });
        const bill = state.bills.get(p.billId);
        const was = p.status;
        p.singleStatus = typeof body.status === 'string' ? body.status : 'DISBURSEMENT_FAILED_VENDOR_BANK_REJECTED';
        p.status = 'CANCELLED';
        p.updatedTime = stamp();
        if (was === 'PAID') bill.paidAmount = round2(bill.paidAmount - p.amount);
        if (was === 'SCHEDULED') bill.scheduledAmount = round2(Math.max(0, bill.scheduledAmount - p.amount));
        bill.updatedTime = stamp();
        emit('payment.updated', 'payment', paymentEventView(p));
        emit('bill.updated', 'bill', billView(bill));
        return reply(200, { payment: paymentView(p), bill: billView(bill) });
      }
      if (req.method === 'POST' && (m = /^subscriptions\/([^/]+)\/security-key$/.exec(what))) {
        // BILL always generates the key; this lets a test sign with a key configured elsewhere
        const s = state.subscriptions.get(decodeURIComponent(m[1]));
        if (!s) return reply(404, { error: `no subscription ${m[1]}` });
        if (!isObj(body) || typeof body.securityKey !== 'string' || body.securityKey === '') {
          throw new Error('securityKey must be a non-empty string');
        }
        s.securityKey = body.securityKey;
        s.updatedTime = stamp();
        return reply(200, { subscription: clone(s) });
      }
      if (req.method === 'GET' && (m = /^documents\/([^/]+)\/content$/.exec(what))) {
        const d = [...state.documents.values()].find((x) => x.documentId === m[1] || x.uploadId === m[1]);
        if (!d) return reply(404, { error: `no document ${m[1]}` });
        res.writeHead(200, {
          'Content-Type': d.contentType || 'application/octet-stream', 'Content-Length': d.content.length,
          'Content-Disposition': `attachment; filename="${d.name.replace(/["\\]/g, '_')}"`,
        });
        res.end(d.content);
        return undefined;
      }
      return reply(404, { error: `no control endpoint ${route}` });
    } catch (e) {
      return reply(400, { error: e.message });
    }
  }

  const server = http.createServer((req, res) => {
    let url;
    try {
      url = new URL(req.url, 'http://emulator');
    } catch {
      res.writeHead(400).end();
      return;
    }
    const p = url.pathname.startsWith(CONTROL_PREFIX) ? handleControl(req, res, url) : handleApi(req, res, url);
    p.catch((e) => {
      console.error('bill-emulator: unexpected error:', e);
      if (!res.headersSent) res.writeHead(500).end(); else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;

  return {
    server,
    config: cfg,
    credentials: creds,
    get state() { return state; },
    now,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => { server.off('error', reject); resolve(server.address().port); });
      });
    },
    close() {
      dispatcher.reset();
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------
const CLI_OPTIONS = {
  '--port': ['port', 'port'], '--host': ['host', 'string'], '--port-file': ['portFile', 'string'],
  '--dev-key': ['devKey', 'string'], '--username': ['username', 'string'], '--password': ['password', 'string'],
  '--organization-id': ['organizationId', 'string'], '--user-id': ['userId', 'string'],
  '--hourly-limit': ['hourlyLimit', 'int'], '--login-hourly-limit': ['loginHourlyLimit', 'int'],
  '--login-limit-code': ['loginLimitCode', 'code'], '--concurrency-limit': ['concurrencyLimit', 'int'],
  '--hour-ms': ['hourMs', 'int'], '--session-idle-ms': ['sessionIdleMs', 'int'],
  '--throttle-status': ['throttleStatus', 'status'], '--document-processing-ms': ['documentProcessingMs', 'int'],
  '--webhook-retries': ['webhookRetries', 'int'], '--webhook-retry-ms': ['webhookRetryMs', 'int'],
  '--webhook-timeout-ms': ['webhookTimeoutMs', 'int'],
};

function usage(msg) {
  if (msg) console.error(`bill-emulator: ${msg}`);
  console.error(`usage: server.mjs --port N [${Object.keys(CLI_OPTIONS).filter((o) => o !== '--port').map((o) => `${o} V`).join('] [')}]`);
  process.exit(2);
}

export function parseArgs(argv) {
  const opts = { host: '127.0.0.1' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') usage();
    const spec = CLI_OPTIONS[argv[i]];
    if (!spec || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    const [name, type] = spec;
    const v = argv[++i];
    if (type === 'string') opts[name] = v;
    else if (type === 'code') {
      if (!/^BDC_\d+$/.test(v)) usage(`${argv[i - 1]} needs a BDC_ code`);
      opts[name] = v;
    } else {
      if (!/^\d+$/.test(v)) usage(`${argv[i - 1]} needs a non-negative integer`);
      opts[name] = Number(v);
      if (type === 'status' && (opts[name] < 400 || opts[name] > 599)) usage(`${argv[i - 1]} must be 400..599`);
    }
  }
  if (opts.port === undefined) usage('--port N is required (0 picks a free port)');
  if (opts.hourMs === 0) usage('--hour-ms must be positive');
  return opts;
}

async function main(argv) {
  const opts = parseArgs(argv);
  const emu = createBillEmulator(opts);
  const port = await emu.listen(opts.port, opts.host);
  if (opts.portFile) { // write then rename so a watcher never reads a half-written file
    fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
  }
  const shownHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  console.log(`bill-emulator listening on http://${shownHost}:${port}${API_PREFIX}`);
  const stop = async () => { await emu.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(`bill-emulator: ${e.message}`); process.exit(1); });
}
