#!/usr/bin/env node
// AWS API emulator for pg_billops tests: Cost Explorer (GetCostAndUsage, GetAnomalies; JSON 1.1,
// X-Amz-Target AWSInsightsIndexService.*) and Invoicing (ListInvoiceSummaries, GetInvoicePDF;
// JSON 1.0, X-Amz-Target Invoicing.*) on one port. Every request must be SigV4-signed for the
// right service ("ce" or "invoicing") and us-east-1; signatures are checked with AWS's own
// signer (@smithy/signature-v4, through the S3 emulator's computeSignature). Requests and
// responses follow the botocore models (models/*.subset.json). Data is seeded through a control
// API (a legacy CUR CSV, or rows, anomalies and invoices directly), which also injects faults.
//
//   node test/emulators/aws-api/server.mjs --port N [--host 127.0.0.1] [--port-file F]
//        [--credentials FILE] [--ce-page-size N] [--anomaly-page-size N] [--invoice-page-size N]
//        [--pdf-url-ttl SECONDS] [--auth-error-status 400|403] [--load-cur FILE] [--now ISO]
//        [--parent-pid PID]
//
// See README.md beside this file for the endpoints, the control API and what is unverified.

import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { ALGORITHM_IDENTIFIER } from '@smithy/signature-v4';
import { computeSignature, collectHeaders, parseQuery, loadCredentials, findKey, keyExpired, DEFAULT_KEYS } from '../s3/server.mjs';
import { loadModels, validateInput, validationMessage, SerializationError, checkOutput, modeledErrors } from './model.mjs';
import { ApiError, COMMON_ERRORS, errorResponse } from './errors.mjs';
import { getCostAndUsage, getAnomalies } from './ce.mjs';
import { listInvoiceSummaries, getInvoicePDF, serveDocument, invoiceFromCur, invoiceFromApi, DOCUMENT_PREFIX } from './invoicing.mjs';
import { readCur, CE_METRICS, COST_METRICS } from './cur.mjs';
import { parseDecimal, format, add, ZERO } from './decimal.mjs';
import { parseYmd } from './util.mjs';

export { DEFAULT_KEYS, loadCredentials };
export const REGION = 'us-east-1';
const MAX_API_BODY = 1024 * 1024;
const MAX_CONTROL_BODY = 64 * 1024 * 1024; // invoices may carry base64 PDFs
const REQUEST_LOG_LIMIT = 10000;
const LOGGED_PARAMS_LIMIT = 16 * 1024;
const CONTROL_PREFIX = '/_emulator/';

export const DEFAULT_CONFIG = {
  region: REGION,
  cePageSize: 100, // groups per GetCostAndUsage page (AWS's real page size is undocumented)
  anomalyPageSize: 20, // GetAnomalies page size without MaxResults (undocumented)
  invoicePageSize: 100, // ListInvoiceSummaries page size without MaxResults (undocumented)
  pdfUrlTtlSeconds: 3600, // lifetime of GetInvoicePDF URLs (undocumented)
  authErrorStatus: 400, // HTTP status of signature/credential errors (see README)
  maxSkewMs: 15 * 60 * 1000,
  // USD per request answered successfully; AWS bills "each paginated API request" of the Cost
  // Explorer API at USD 0.01 (whether GetAnomalies is billed is unverified: 0 here).
  ceRequestPricesUsd: { GetCostAndUsage: '0.01', GetAnomalies: '0' },
};
const CONFIG_KEYS = ['cePageSize', 'anomalyPageSize', 'invoicePageSize', 'pdfUrlTtlSeconds', 'authErrorStatus', 'maxSkewMs', 'ceRequestPricesUsd'];

function checkConfig(c) {
  for (const k of ['cePageSize', 'anomalyPageSize', 'invoicePageSize', 'pdfUrlTtlSeconds']) {
    if (!(Number.isInteger(c[k]) && c[k] > 0)) throw new Error(`${k} must be a positive integer`);
  }
  if (!(Number.isInteger(c.authErrorStatus) && c.authErrorStatus >= 400 && c.authErrorStatus <= 499)) throw new Error('authErrorStatus must be 400..499');
  if (!(Number.isInteger(c.maxSkewMs) && c.maxSkewMs > 0)) throw new Error('maxSkewMs must be a positive integer');
  for (const [op, p] of Object.entries(c.ceRequestPricesUsd)) {
    if (!['GetCostAndUsage', 'GetAnomalies'].includes(op) || !parseDecimal(String(p))) throw new Error('ceRequestPricesUsd: {GetCostAndUsage|GetAnomalies: "decimal"}');
  }
}

// ---------------------------------------------------------------------------
// Services and operations
// ---------------------------------------------------------------------------
const MODELS = loadModels();
export const SERVICES = {
  AWSInsightsIndexService: {
    name: 'ce', signingName: 'ce', contentType: 'application/x-amz-json-1.1', model: MODELS.ce,
    ops: { GetCostAndUsage: getCostAndUsage, GetAnomalies: getAnomalies },
  },
  Invoicing: {
    name: 'invoicing', signingName: 'invoicing', contentType: 'application/x-amz-json-1.0', model: MODELS.invoicing,
    ops: { ListInvoiceSummaries: listInvoiceSummaries, GetInvoicePDF: getInvoicePDF },
  },
};
export const OPERATIONS = Object.fromEntries(Object.values(SERVICES).flatMap((s) => Object.keys(s.ops).map((op) => [op, s])));
export { MODELS };

// ---------------------------------------------------------------------------
// SigV4 (JSON protocols): header auth only; the payload hash is always the body's SHA-256.
// Messages follow what AWS's JSON services answer (captures cited in README.md).
// ---------------------------------------------------------------------------
const longDateOf = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(d.getTime()) ? null : d;
}

async function authenticate(ctx, service, cfg) {
  const h = ctx.headers;
  const auth = h.authorization;
  if (auth === undefined) throw new ApiError('MissingAuthenticationTokenException');
  if (!auth.startsWith(`${ALGORITHM_IDENTIFIER} `)) {
    throw new ApiError('IncompleteSignatureException', `Unsupported Authorization Type; expecting ${ALGORITHM_IDENTIFIER}`);
  }
  const parts = Object.create(null);
  for (const piece of auth.slice(ALGORITHM_IDENTIFIER.length).split(',')) {
    const p = piece.trim();
    const eq = p.indexOf('=');
    if (eq > 0) parts[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((k) => !parts[k]);
  if (missing.length) {
    throw new ApiError('IncompleteSignatureException',
      `${missing.map((k) => `Authorization header requires '${k}' parameter.`).join(' ')} Authorization=${auth}`);
  }
  const cred = parts.Credential.split('/');
  if (cred.length !== 5) {
    throw new ApiError('IncompleteSignatureException',
      `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${parts.Credential}'`);
  }
  const [accessKeyId, credDate, region, signingService, terminal] = cred;
  const signedHeaders = parts.SignedHeaders.split(';');
  if (!signedHeaders.includes('host')) {
    throw new ApiError('IncompleteSignatureException', "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
  }
  const requestTime = h['x-amz-date'] !== undefined ? parseAmzDate(h['x-amz-date'])
    : (h.date && !Number.isNaN(Date.parse(h.date)) ? new Date(Date.parse(h.date)) : null);
  if (!requestTime) {
    throw new ApiError('IncompleteSignatureException',
      `Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization=${auth}`);
  }
  const longDate = longDateOf(requestTime);
  if (credDate !== longDate.slice(0, 8)) {
    throw new ApiError('InvalidSignatureException',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${credDate}' != '${longDate.slice(0, 8)}', from '${longDate}'.`);
  }
  if (region !== cfg.region) throw new ApiError('InvalidSignatureException', `Credential should be scoped to a valid region, not '${region}'. `);
  if (signingService !== service.signingName) {
    throw new ApiError('InvalidSignatureException', `Credential should be scoped to correct service: '${service.signingName}'. `);
  }
  if (terminal !== 'aws4_request') {
    throw new ApiError('InvalidSignatureException', `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminal}'. `);
  }
  const key = findKey(cfg, accessKeyId);
  if (!key) throw new ApiError('UnrecognizedClientException');
  const wall = Date.now(); // signatures are checked against the real clock, not the emulator's
  if (Math.abs(wall - requestTime.getTime()) > cfg.maxSkewMs) {
    const mins = Math.round(cfg.maxSkewMs / 60000);
    const early = requestTime.getTime() < wall;
    throw new ApiError('InvalidSignatureException', early
      ? `Signature expired: ${longDate} is now earlier than ${longDateOf(new Date(wall - cfg.maxSkewMs))} (${longDateOf(new Date(wall))} - ${mins} min.)`
      : `Signature not yet current: ${longDate} is still later than ${longDateOf(new Date(wall + cfg.maxSkewMs))} (${longDateOf(new Date(wall))} + ${mins} min.)`);
  }
  const token = h['x-amz-security-token'];
  if ((key.sessionToken || token !== undefined) && token !== key.sessionToken) throw new ApiError('UnrecognizedClientException');
  if (keyExpired(key)) throw new ApiError('ExpiredTokenException');

  const { signature, canonicalRequest, stringToSign } = await computeSignature({
    method: ctx.method, canonicalPath: ctx.canonicalPath, query: ctx.query, headers: h, signedHeaders,
    payloadHash: crypto.createHash('sha256').update(ctx.body).digest('hex'), ...key,
    region: cfg.region, service: service.signingName, longDate,
  });
  const ok = parts.Signature.length === signature.length &&
    crypto.timingSafeEqual(Buffer.from(parts.Signature), Buffer.from(signature));
  if (!ok) {
    throw new ApiError('InvalidSignatureException',
      `${COMMON_ERRORS.InvalidSignatureException[1]}\n\nThe Canonical String for this request should have been\n'${canonicalRequest}'\n\n` +
      `The String-to-Sign should have been\n'${stringToSign}'\n`);
  }
  ctx.accessKeyId = accessKeyId;
}

// ---------------------------------------------------------------------------
// Faults (BILL emulator style): {match: {operation?, service?}, kind, count? (default 1,
// null = unlimited), skip? (default 0), ...}. Matched after authentication, in list order.
// ---------------------------------------------------------------------------
const FAULT_OPS = new Set([...Object.keys(OPERATIONS), 'GetDocument', '*']);
const ENDING_KINDS = new Set(['status', 'throttle', 'error', 'drop']);
const FAULT_CHECKS = {
  status: (f) => Number.isInteger(f.status) && f.status >= 400 && f.status <= 599,
  throttle: (f) => f.status === undefined || (Number.isInteger(f.status) && f.status >= 400 && f.status <= 599),
  error: (f) => typeof f.type === 'string' && (f.status === undefined || (Number.isInteger(f.status) && f.status >= 400 && f.status <= 599)),
  slow: (f) => typeof f.ms === 'number' && f.ms >= 0,
  drop: () => true,
  truncate: (f) => Number.isInteger(f.afterBytes) && f.afterBytes >= 0,
};

// Error types a fault may inject for an operation: the model's errors for it, plus the errors
// any AWS JSON service can return (COMMON_ERRORS).
export function errorTypesFor(op) {
  const svc = OPERATIONS[op];
  return new Set([...(svc ? modeledErrors(svc.model, op) : []), ...Object.keys(COMMON_ERRORS)]);
}

export function validateFaults(list) {
  if (!Array.isArray(list)) throw new Error('"faults" must be an array');
  return list.map((f, i) => {
    if (typeof f !== 'object' || f === null) throw new Error(`fault ${i}: not an object`);
    if (!FAULT_CHECKS[f.kind]) throw new Error(`fault ${i}: kind must be one of ${Object.keys(FAULT_CHECKS).join(', ')}`);
    if (!FAULT_CHECKS[f.kind](f)) throw new Error(`fault ${i}: missing or invalid parameter for kind "${f.kind}"`);
    const match = f.match ?? {};
    if (typeof match !== 'object' || match === null) throw new Error(`fault ${i}: match must be an object`);
    const op = match.operation ?? '*';
    if (!FAULT_OPS.has(op)) throw new Error(`fault ${i}: match.operation must be one of ${[...FAULT_OPS].join(', ')}`);
    if (match.service !== undefined && !['ce', 'invoicing'].includes(match.service)) throw new Error(`fault ${i}: match.service must be ce or invoicing`);
    if (f.kind === 'error') {
      const allowed = op === '*' ? new Set(Object.keys(OPERATIONS).flatMap((o) => [...errorTypesFor(o)])) : errorTypesFor(op);
      if (!allowed.has(f.type)) throw new Error(`fault ${i}: error type ${f.type} is not listed for ${op} (allowed: ${[...allowed].join(', ')})`);
    }
    const count = f.count === undefined ? 1 : f.count;
    if (count !== null && !(Number.isInteger(count) && count > 0)) throw new Error(`fault ${i}: count must be a positive integer, or null for unlimited`);
    const skip = f.skip ?? 0;
    if (!(Number.isInteger(skip) && skip >= 0)) throw new Error(`fault ${i}: skip must be a non-negative integer`);
    return { ...f, match: { ...match, operation: op }, count, skip, remaining: count, skipLeft: skip, hits: 0 };
  });
}

function takeFaults(state, op, serviceName) {
  const hits = [];
  for (const f of state.faults) {
    if (f.match.operation !== '*' && f.match.operation !== op) continue;
    if (f.match.service !== undefined && f.match.service !== serviceName) continue;
    if (f.kind === 'error' && !errorTypesFor(op).has(f.type)) continue; // not this operation's error
    if (f.remaining === 0) continue;
    if (f.skipLeft > 0) { f.skipLeft--; continue; }
    if (f.remaining !== null) f.remaining--;
    f.hits++;
    hits.push(f);
    if (ENDING_KINDS.has(f.kind)) break;
  }
  return hits;
}

function faultError(f, service) {
  const status = f.status;
  if (f.kind === 'throttle') {
    const type = service.name === 'ce' ? 'LimitExceededException' : 'ThrottlingException';
    return new ApiError(type, f.message ?? (type === 'LimitExceededException' ? 'You made too many calls in a short period of time. Try again later.' : 'Rate exceeded'), { status });
  }
  if (f.kind === 'error') return new ApiError(f.type, f.message, { status });
  // status
  let type = f.type;
  if (!type) {
    if (status === 503) type = 'ServiceUnavailable';
    else if (status >= 500) type = service.name === 'invoicing' ? 'InternalServerException' : 'InternalFailure';
    else type = service.name === 'ce' ? 'LimitExceededException' : 'ThrottlingException';
  }
  return new ApiError(type, f.message, { status });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------
function freshState() {
  return {
    costs: new Map(), // id -> row (see cur.mjs)
    nextCostId: 1,
    anomalies: new Map(), // AnomalyId -> Anomaly
    invoices: new Map(), // InvoiceId -> record (see invoicing.mjs)
    accountNames: new Map(),
    faults: [],
    requests: [],
    seq: 0,
    clockOffsetMs: 0,
    tokenSecret: crypto.randomBytes(32),
    stats: freshStats(),
  };
}

function freshStats() {
  return {
    apiRequests: 0, controlRequests: 0, byOperation: {}, byErrorType: {}, byStatus: {},
    ce: { billableRequests: {}, costUsd: ZERO }, documents: { downloads: 0, expired: 0 },
    dropped: 0, truncated: 0, clientAborted: 0,
  };
}

// ---------------------------------------------------------------------------
// Control API (unsigned JSON)
// ---------------------------------------------------------------------------
async function readBody(req, limit) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > limit) { const e = new Error(`request body larger than ${limit} bytes`); e.tooLarge = true; throw e; }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

const isObj = (v) => typeof v === 'object' && v !== null && !Array.isArray(v);

function costRowFromApi(r, i) {
  const where = `row ${i}`;
  if (!isObj(r)) throw new Error(`${where}: not an object`);
  if (parseYmd(r.date ?? '') === null) throw new Error(`${where}: date must be YYYY-MM-DD`);
  if (!/^\d{12}$/.test(r.account ?? '')) throw new Error(`${where}: account must be a 12-digit account id`);
  if (typeof r.service !== 'string' || !r.service) throw new Error(`${where}: service is required`);
  const dec = (v, what) => {
    const d = parseDecimal(typeof v === 'number' ? String(v) : v);
    if (!d) throw new Error(`${where}: ${what} is not a decimal number`);
    return d;
  };
  const base = r.amount !== undefined ? dec(r.amount, 'amount') : ZERO;
  const metrics = Object.fromEntries(CE_METRICS.map((m) => [m, COST_METRICS.has(m) ? base : ZERO]));
  if (r.usageQuantity !== undefined) metrics.UsageQuantity = dec(r.usageQuantity, 'usageQuantity');
  for (const [m, v] of Object.entries(r.metrics ?? {})) {
    if (!CE_METRICS.includes(m)) throw new Error(`${where}: unknown metric ${m}`);
    metrics[m] = dec(v, `metrics.${m}`);
  }
  return {
    date: r.date,
    dims: {
      LINKED_ACCOUNT: r.account, PAYER_ACCOUNT: r.payer ?? r.account, SERVICE: r.service,
      SERVICE_CODE: r.serviceCode ?? '', REGION: r.region ?? 'NoRegion', AZ: r.az ?? 'NoAZ',
      RECORD_TYPE: r.recordType ?? 'Usage', USAGE_TYPE: r.usageType ?? '', OPERATION: r.operation ?? '',
      LEGAL_ENTITY_NAME: r.legalEntity ?? 'Amazon Web Services, Inc.',
      INVOICING_ENTITY: r.invoicingEntity ?? 'Amazon Web Services, Inc.', BILLING_ENTITY: r.billingEntity ?? 'AWS',
    },
    tags: isObj(r.tags) ? { ...r.tags } : {},
    costCategories: isObj(r.costCategories) ? { ...r.costCategories } : {},
    metrics, estimated: Boolean(r.estimated), currency: r.currency ?? 'USD', source: 'api',
  };
}

function anomalyFromApi(a, i) {
  if (!isObj(a)) throw new Error(`anomaly ${i}: not an object`);
  const out = structuredClone(a);
  out.AnomalyId ??= crypto.randomUUID();
  out.MonitorArn ??= 'arn:aws:ce::123456789012:anomalymonitor/00000000-0000-4000-8000-000000000001';
  out.AnomalyScore ??= { MaxScore: 0.9, CurrentScore: 0.9 };
  out.Impact ??= {};
  const imp = out.Impact;
  if (imp.TotalImpact === undefined && imp.TotalActualSpend !== undefined && imp.TotalExpectedSpend !== undefined) {
    imp.TotalImpact = Number(format(add(parseDecimal(String(imp.TotalActualSpend)), parseDecimal(String(-imp.TotalExpectedSpend)))));
  }
  if (imp.TotalImpactPercentage === undefined && imp.TotalImpact !== undefined && imp.TotalExpectedSpend > 0) {
    imp.TotalImpactPercentage = Math.round((imp.TotalImpact / imp.TotalExpectedSpend) * 10000) / 100;
  }
  imp.MaxImpact ??= imp.TotalImpact ?? 0;
  for (const k of ['AnomalyStartDate', 'AnomalyEndDate']) {
    if (out[k] !== undefined && !(typeof out[k] === 'string' && /^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$/.test(out[k]) && parseYmd(out[k].slice(0, 10)) !== null)) {
      throw new Error(`anomaly ${i}: ${k} must be YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ`);
    }
  }
  if (out.AnomalyStartDate === undefined) throw new Error(`anomaly ${i}: AnomalyStartDate is required`);
  const problems = checkOutput(MODELS.ce, 'Anomaly', out);
  if (problems.length) throw new Error(`anomaly ${i}: ${problems.join('; ')}`);
  return out;
}

function invoiceView(rec) {
  return {
    ...structuredClone(rec.summary), origin: rec.origin, pdfBytes: rec.pdf ? rec.pdf.length : null,
    supplementalDocuments: rec.supplemental.map((d) => ({ DocumentType: d.DocumentType, DocumentId: d.DocumentId })),
  };
}

function rowView(row) {
  return {
    date: row.date, ...row.dims, tags: row.tags, costCategories: row.costCategories, estimated: row.estimated,
    currency: row.currency, source: row.source,
    metrics: Object.fromEntries(CE_METRICS.map((m) => [m, format(row.metrics[m])])),
  };
}

export async function loadCur(state, file, { estimated } = {}) {
  const cur = await readCur(file, { estimated });
  const sources = new Set([...cur.periods].map((p) => { const [payer, ym] = p.split('|'); return `cur:${payer}:${ym}`; }));
  for (const [id, row] of state.costs) if (sources.has(row.source)) state.costs.delete(id);
  for (const [id, rec] of state.invoices) if (rec.origin === 'cur' && sources.has(rec.source)) state.invoices.delete(id);
  for (const row of cur.rows) state.costs.set(state.nextCostId++, row);
  const invoiceIds = [];
  for (const agg of cur.invoices) {
    const rec = invoiceFromCur(agg);
    state.invoices.set(rec.summary.InvoiceId, rec);
    invoiceIds.push(rec.summary.InvoiceId);
  }
  for (const [id, name] of cur.accountNames) if (!state.accountNames.has(id)) state.accountNames.set(id, name);
  const totals = {};
  for (const row of cur.rows) {
    const a = row.dims.LINKED_ACCOUNT;
    totals[a] ??= Object.fromEntries(CE_METRICS.map((m) => [m, ZERO]));
    for (const m of CE_METRICS) totals[a][m] = add(totals[a][m], row.metrics[m]);
  }
  return {
    lines: cur.lines, rows: cur.rows.length, estimatedRows: cur.rows.filter((r) => r.estimated).length,
    periods: [...sources].sort(), invoices: invoiceIds.sort(),
    totals: Object.fromEntries(Object.entries(totals).map(([a, t]) => [a, Object.fromEntries(CE_METRICS.map((m) => [m, format(t[m])]))])),
  };
}

function statsView(state) {
  const s = state.stats;
  return {
    apiRequests: s.apiRequests, controlRequests: s.controlRequests, byOperation: s.byOperation,
    byErrorType: s.byErrorType, byStatus: s.byStatus,
    ce: { billableRequests: s.ce.billableRequests, costUsd: format(s.ce.costUsd) },
    documents: s.documents, dropped: s.dropped, truncated: s.truncated, clientAborted: s.clientAborted,
  };
}

async function handleControl(req, res, rawPath, emu) {
  const { state, cfg } = emu;
  state.stats.controlRequests++;
  const reply = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  const route = `${req.method} ${rawPath.slice(CONTROL_PREFIX.length).replace(/\/$/, '')}`;
  try {
    const raw = await readBody(req, MAX_CONTROL_BODY);
    let body = {};
    if (raw.length) {
      try { body = JSON.parse(raw.toString('utf8')); } catch { return reply(400, { error: 'body is not JSON' }); }
    }
    const listOf = (name) => {
      const list = Array.isArray(body) ? body : body[name];
      if (!Array.isArray(list)) throw new Error(`"${name}" must be an array`);
      return list;
    };
    switch (route) {
      case 'GET health': return reply(200, { status: 'ok' });
      case 'POST reset': emu.reset(); return reply(200, { ok: true });
      case 'GET state': {
        const rows = [...state.costs.values()];
        return reply(200, {
          now: new Date(emu.now()).toISOString(), clockOffsetMs: state.clockOffsetMs,
          accounts: Object.fromEntries(state.accountNames),
          costRows: rows.length, costs: rows.slice(0, 5000).map(rowView), costsTruncated: rows.length > 5000,
          anomalies: [...state.anomalies.values()], invoices: [...state.invoices.values()].map(invoiceView),
        });
      }
      case 'GET requests': return reply(200, state.requests);
      case 'DELETE requests': state.requests = []; return reply(200, { ok: true });
      case 'GET stats': return reply(200, statsView(state));
      case 'DELETE stats': state.stats = freshStats(); return reply(200, statsView(state));
      case 'GET faults': return reply(200, { faults: state.faults });
      case 'POST faults': state.faults = validateFaults(listOf('faults')); return reply(200, { faults: state.faults });
      case 'DELETE faults': state.faults = []; return reply(200, { faults: [] });
      case 'GET clock': return reply(200, { now: new Date(emu.now()).toISOString(), offsetMs: state.clockOffsetMs });
      case 'POST clock': {
        if (typeof body.now === 'string') {
          const t = Date.parse(body.now);
          if (Number.isNaN(t)) throw new Error('now must be an ISO date-time');
          state.clockOffsetMs = t - Date.now();
        } else if (Number.isInteger(body.offsetMs)) {
          state.clockOffsetMs = body.offsetMs;
        } else if (Number.isInteger(body.advanceMs)) {
          state.clockOffsetMs += body.advanceMs;
        } else {
          throw new Error('give one of now (ISO), offsetMs or advanceMs (integers)');
        }
        return reply(200, { now: new Date(emu.now()).toISOString(), offsetMs: state.clockOffsetMs });
      }
      case 'GET config': return reply(200, Object.fromEntries(CONFIG_KEYS.map((k) => [k, cfg[k]])));
      case 'POST config': {
        const next = { ...cfg };
        for (const [k, v] of Object.entries(body)) {
          if (!CONFIG_KEYS.includes(k)) throw new Error(`unknown config key ${k} (known: ${CONFIG_KEYS.join(', ')})`);
          next[k] = k === 'ceRequestPricesUsd' ? { ...cfg.ceRequestPricesUsd, ...v } : v;
        }
        checkConfig(next);
        Object.assign(cfg, next);
        return reply(200, Object.fromEntries(CONFIG_KEYS.map((k) => [k, cfg[k]])));
      }
      case 'POST load-cur': {
        // "path": one CUR CSV file; "paths": the report files of one delivery, read as one report
        const paths = body.paths ?? [body.path];
        if (!Array.isArray(paths) || paths.length === 0 || paths.some((x) => typeof x !== 'string')) {
          throw new Error('"path" (a CUR CSV file) or "paths" (the files of one delivery) is required');
        }
        if (body.estimated !== undefined && typeof body.estimated !== 'boolean') throw new Error('"estimated" must be a boolean');
        for (const x of paths) if (!fs.existsSync(x)) throw new Error(`no such file: ${x}`);
        return reply(200, await loadCur(state, paths, { estimated: body.estimated }));
      }
      case 'POST costs': {
        const rows = listOf('rows').map(costRowFromApi);
        for (const row of rows) state.costs.set(state.nextCostId++, row);
        return reply(200, { added: rows.length, costRows: state.costs.size });
      }
      case 'DELETE costs': state.costs.clear(); return reply(200, { costRows: 0 });
      case 'POST anomalies': {
        const list = listOf('anomalies').map(anomalyFromApi);
        for (const a of list) state.anomalies.set(a.AnomalyId, a);
        return reply(200, { anomalies: list });
      }
      case 'DELETE anomalies': state.anomalies.clear(); return reply(200, { anomalies: [] });
      case 'POST invoices': {
        const recs = listOf('invoices').map((inv, i) => {
          if (!isObj(inv)) throw new Error(`invoice ${i}: not an object`);
          const rec = invoiceFromApi(inv);
          const problems = checkOutput(MODELS.invoicing, 'InvoiceSummary', rec.summary);
          if (problems.length) throw new Error(`invoice ${i}: ${problems.join('; ')}`);
          return rec;
        });
        for (const rec of recs) state.invoices.set(rec.summary.InvoiceId, rec);
        return reply(200, { invoices: recs.map(invoiceView) });
      }
      case 'DELETE invoices': state.invoices.clear(); return reply(200, { invoices: [] });
      case 'POST accounts': {
        if (!isObj(body.accounts)) throw new Error('"accounts" must be an object {accountId: name}');
        for (const [id, name] of Object.entries(body.accounts)) {
          if (!/^\d{12}$/.test(id) || typeof name !== 'string') throw new Error(`bad account ${id}`);
          state.accountNames.set(id, name);
        }
        return reply(200, { accounts: Object.fromEntries(state.accountNames) });
      }
      default: return reply(404, { error: `no control endpoint ${route}` });
    }
  } catch (e) {
    if (e.tooLarge) return reply(413, { error: e.message });
    if (e instanceof TypeError || e instanceof ReferenceError) { // a bug here, not a bad request
      console.error('aws-api-emulator: control error:', e);
      return reply(500, { error: e.message });
    }
    return reply(400, { error: e.message });
  }
}

// ---------------------------------------------------------------------------
// API requests
// ---------------------------------------------------------------------------
const PAGE_NOT_FOUND = '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n' +
  '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n<head>\n <title>Page Not Found</title>\n</head>\n<body>Page Not Found</body>\n</html>';

class HttpReply extends Error {
  constructor(status, headers, body) { super(`HTTP ${status}`); this.reply = { status, headers, body }; }
}
const pageNotFound = () => new HttpReply(404, { 'Content-Type': 'text/html' }, PAGE_NOT_FOUND);

function bump(obj, key) { obj[key] = (obj[key] ?? 0) + 1; }

async function handleApi(req, res, ctx, emu) {
  const { state, cfg } = emu;
  ctx.body = await readBody(req, MAX_API_BODY).catch((e) => {
    if (e.tooLarge) throw new HttpReply(413, { 'Content-Type': 'text/plain' }, 'Request Entity Too Large');
    throw e;
  });
  if (ctx.method !== 'POST' || ctx.rawPath !== '/') throw pageNotFound();
  const target = ctx.headers['x-amz-target'];
  ctx.target = target ?? null;
  const dot = target ? target.lastIndexOf('.') : -1;
  const service = dot > 0 ? SERVICES[target.slice(0, dot)] : undefined;
  if (!service) {
    throw new ApiError('UnknownOperationException', target ? `Unknown operation ${target}` : 'Missing X-Amz-Target header');
  }
  ctx.service = service;
  // JSON protocols route by Content-Type as well; AWS answered a JSON 1.0 service called with
  // the 1.1 media type by a 404 HTML page (see README), so any other media type gets that here.
  const mediaType = (ctx.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (mediaType !== service.contentType) throw pageNotFound();

  await authenticate(ctx, service, cfg);

  const opName = target.slice(dot + 1);
  const handler = Object.hasOwn(service.ops, opName) ? service.ops[opName] : null;
  if (!handler) {
    throw new ApiError('UnknownOperationException', service.model.operationNames.includes(opName)
      ? `Operation ${opName} is not emulated` : `Unknown operation ${target}`);
  }
  ctx.op = opName;
  const opStats = (state.stats.byOperation[opName] ??= { calls: 0, ok: 0, errors: 0 });
  opStats.calls++;

  const faults = takeFaults(state, opName, service.name);
  ctx.faults = faults.map((f) => f.kind);
  ctx.truncate = faults.find((f) => f.kind === 'truncate') ?? null;
  for (const f of faults) {
    if (f.kind === 'slow') {
      await sleep(f.ms);
      if (ctx.clientGone) return;
    }
  }
  if (faults.some((f) => f.kind === 'drop')) {
    ctx.outcome = 'dropped';
    res.destroy();
    return;
  }
  const errFault = faults.find((f) => ['status', 'throttle', 'error'].includes(f.kind));
  if (errFault) throw faultError(errFault, service);

  let input = {};
  const text = ctx.body.toString('utf8');
  if (text.trim() !== '') {
    try { input = JSON.parse(text); } catch { throw new ApiError('SerializationException', 'Request body is not valid JSON'); }
  }
  ctx.params = text.length <= LOGGED_PARAMS_LIMIT ? input : { truncated: true, bytes: text.length };
  const inputShape = service.model.operations[opName].input.shape;
  let checked;
  try {
    checked = validateInput(service.model, inputShape, input);
  } catch (e) {
    if (e instanceof SerializationError) throw new ApiError('SerializationException', e.message);
    throw e;
  }
  ctx.warnings = checked.unknown.map((p) => `unknown member ${p} ignored`);
  if (checked.violations.length) {
    const msg = validationMessage(checked.violations);
    throw new ApiError('ValidationException', msg, service.name === 'invoicing' ? { fields: { reason: 'fieldValidationFailed' } } : {});
  }
  // JSON null members are absent
  const strip = (v) => (Array.isArray(v) ? v.map(strip) : isObj(v)
    ? Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null).map(([k, x]) => [k, strip(x)])) : v);
  const env = { state, cfg, now: emu.now };
  const baseUrl = `http://${ctx.headers.host ?? `${emu.host}:${emu.port}`}`;
  const out = handler(strip(input), env, baseUrl);
  opStats.ok++;
  if (service.name === 'ce') {
    const price = parseDecimal(String(cfg.ceRequestPricesUsd[opName] ?? '0'));
    bump(state.stats.ce.billableRequests, opName);
    state.stats.ce.costUsd = add(state.stats.ce.costUsd, price);
  }
  sendBody(res, ctx, 200, { 'Content-Type': service.contentType }, JSON.stringify(out));
}

// Writes a response; a truncate fault announces the full length, sends afterBytes, then closes.
function sendBody(res, ctx, status, headers, body) {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  ctx.status = status;
  res.writeHead(status, { ...headers, 'Content-Length': buf.length });
  if (ctx.method === 'HEAD') { res.end(); return; }
  if (ctx.truncate && ctx.truncate.afterBytes < buf.length) {
    ctx.outcome = 'truncated';
    res.write(buf.subarray(0, ctx.truncate.afterBytes), () => res.socket?.end());
    return;
  }
  ctx.bytesSent = buf.length;
  res.end(buf);
}

export function createAwsApiEmulator(options = {}) {
  const cfg = { ...DEFAULT_CONFIG, keys: DEFAULT_KEYS, ...options };
  cfg.ceRequestPricesUsd = { ...DEFAULT_CONFIG.ceRequestPricesUsd, ...(options.ceRequestPricesUsd ?? {}) };
  checkConfig(cfg);
  const emu = {
    cfg, state: freshState(), host: '127.0.0.1', port: null,
    now: () => Date.now() + emu.state.clockOffsetMs,
    reset() { emu.state = freshState(); },
  };

  const server = http.createServer(async (req, res) => {
    const qmark = req.url.indexOf('?');
    const rawPath = qmark < 0 ? req.url : req.url.slice(0, qmark);
    if (rawPath.startsWith(CONTROL_PREFIX)) return handleControl(req, res, rawPath, emu);
    const { state } = emu;
    const ctx = {
      seq: ++state.seq, time: new Date(), method: req.method, rawPath, canonicalPath: rawPath === '/' ? '/' : rawPath,
      query: {}, headers: collectHeaders(req.rawHeaders), requestId: crypto.randomUUID(),
      service: null, op: null, target: null, status: null, errorType: null, message: null, faults: [], warnings: [],
      params: null, outcome: 'responded', truncate: null, clientGone: false, bytesSent: 0,
    };
    res.setHeader('x-amzn-RequestId', ctx.requestId);
    req.on('aborted', () => { ctx.clientGone = true; });
    res.on('close', () => {
      if (!res.writableFinished && ctx.outcome === 'responded') ctx.outcome = ctx.clientGone ? 'clientAborted' : 'dropped';
      if (ctx.outcome === 'dropped') state.stats.dropped++;
      if (ctx.outcome === 'truncated') state.stats.truncated++;
      if (ctx.outcome === 'clientAborted') state.stats.clientAborted++;
      if (!ctx.isDocument) {
        state.stats.apiRequests++;
        if (ctx.status !== null) bump(state.stats.byStatus, String(ctx.status));
        if (ctx.errorType) bump(state.stats.byErrorType, ctx.errorType);
      }
      state.requests.push({
        seq: ctx.seq, time: ctx.time.toISOString(), method: ctx.method, path: rawPath, target: ctx.target,
        service: ctx.service?.name ?? null, operation: ctx.op, status: ctx.status, errorType: ctx.errorType,
        message: ctx.message, outcome: ctx.outcome, faults: ctx.faults, warnings: ctx.warnings,
        accessKeyId: ctx.accessKeyId ?? null, requestId: ctx.requestId, params: ctx.params,
        durationMs: Date.now() - ctx.time.getTime(), emulatorTime: new Date(emu.now()).toISOString(),
      });
      if (state.requests.length > REQUEST_LOG_LIMIT) state.requests.splice(0, state.requests.length - REQUEST_LOG_LIMIT);
    });
    try {
      if ((req.method === 'GET' || req.method === 'HEAD') && rawPath.startsWith(DOCUMENT_PREFIX)) {
        ctx.isDocument = true;
        ctx.op = 'GetDocument';
        req.resume();
        const faults = takeFaults(state, 'GetDocument', 'invoicing');
        ctx.faults = faults.map((f) => f.kind);
        ctx.truncate = faults.find((f) => f.kind === 'truncate') ?? null;
        for (const f of faults) if (f.kind === 'slow') await sleep(f.ms);
        if (faults.some((f) => f.kind === 'drop')) { ctx.outcome = 'dropped'; res.destroy(); return undefined; }
        const errFault = faults.find((f) => ['status', 'throttle', 'error'].includes(f.kind));
        const r = errFault
          ? { status: errFault.status ?? 503, headers: { 'Content-Type': 'application/xml' }, body: `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${errFault.status >= 500 || !errFault.status ? 'ServiceUnavailable' : 'SlowDown'}</Code><Message>${errFault.message ?? 'injected fault'}</Message></Error>` }
          : serveDocument({ state, cfg, now: emu.now }, rawPath, new URLSearchParams(qmark < 0 ? '' : req.url.slice(qmark + 1)));
        return sendBody(res, ctx, r.status, r.headers, r.body);
      }
      try {
        ctx.query = parseQuery(qmark < 0 ? '' : req.url.slice(qmark + 1));
      } catch {
        throw pageNotFound();
      }
      return await handleApi(req, res, ctx, emu);
    } catch (e) {
      if (res.headersSent || res.destroyed) { res.destroy(); return undefined; }
      if (!req.complete) res.setHeader('Connection', 'close');
      if (e instanceof HttpReply) {
        ctx.errorType = `HTTP${e.reply.status}`;
        return sendBody(res, ctx, e.reply.status, e.reply.headers, e.reply.body);
      }
      let err = e;
      if (!(err instanceof ApiError)) {
        console.error('aws-api-emulator: internal error:', err);
        err = new ApiError(ctx.service?.name === 'invoicing' ? 'InternalServerException' : 'InternalFailure', undefined, { status: 500 });
      }
      if (ctx.op && state.stats.byOperation[ctx.op]) state.stats.byOperation[ctx.op].errors++;
      ctx.errorType = err.type;
      ctx.message = err.message.length > 500 ? `${err.message.slice(0, 500)}…` : err.message;
      const r = errorResponse(err, ctx.service, emu.cfg);
      return sendBody(res, ctx, r.status, r.headers, r.body);
    }
  });

  return Object.assign(emu, {
    server,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          emu.host = host;
          emu.port = server.address().port;
          resolve(emu.port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  });
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------
function usage(msg) {
  if (msg) console.error(`aws-api-emulator: ${msg}`);
  console.error('usage: server.mjs --port N [--host 127.0.0.1] [--port-file F] [--credentials FILE]\n' +
    '                  [--ce-page-size N] [--anomaly-page-size N] [--invoice-page-size N] [--pdf-url-ttl SECONDS]\n' +
    '                  [--auth-error-status 400|403] [--load-cur FILE] [--now ISO-DATE-TIME] [--parent-pid PID]');
  process.exit(2);
}

async function main(argv) {
  const opts = { host: '127.0.0.1' };
  const names = {
    '--port': 'port', '--host': 'host', '--port-file': 'portFile', '--credentials': 'credentials',
    '--ce-page-size': 'cePageSize', '--anomaly-page-size': 'anomalyPageSize', '--invoice-page-size': 'invoicePageSize',
    '--pdf-url-ttl': 'pdfUrlTtlSeconds', '--auth-error-status': 'authErrorStatus', '--load-cur': 'loadCur', '--now': 'now',
    '--parent-pid': 'parentPid',
  };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') usage();
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    opts[name] = argv[++i];
  }
  if (opts.port === undefined || !/^\d+$/.test(opts.port)) usage('--port N is required');
  if (opts.parentPid !== undefined && !/^[1-9]\d*$/.test(opts.parentPid)) usage('--parent-pid must be a process id');
  const numeric = {};
  for (const k of ['cePageSize', 'anomalyPageSize', 'invoicePageSize', 'pdfUrlTtlSeconds', 'authErrorStatus']) {
    if (opts[k] !== undefined) {
      if (!/^\d+$/.test(opts[k])) usage(`${k} must be a number`);
      numeric[k] = Number(opts[k]);
    }
  }
  const emu = createAwsApiEmulator({
    keys: opts.credentials ? loadCredentials(opts.credentials) : DEFAULT_KEYS, credentialsFile: opts.credentials, ...numeric,
  });
  if (opts.now) {
    const t = Date.parse(opts.now);
    if (Number.isNaN(t)) usage('--now must be an ISO date-time');
    emu.state.clockOffsetMs = t - Date.now();
  }
  if (opts.loadCur) {
    const r = await loadCur(emu.state, opts.loadCur);
    console.log(`aws-api-emulator: loaded ${opts.loadCur}: ${r.lines} lines, ${r.rows} cost rows, ${r.invoices.length} invoices`);
  }
  const port = await emu.listen(Number(opts.port), opts.host);
  if (opts.portFile) { // write then rename so a watcher never reads a half-written file
    fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
  }
  const shownHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  console.log(`aws-api-emulator listening on http://${shownHost}:${port}`);
  const stop = async () => { await emu.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.parentPid) {
    // exit with the script that started us, even if it never gets to kill us
    setInterval(() => {
      try { process.kill(Number(opts.parentPid), 0); } catch (e) { if (e.code === 'ESRCH') stop(); }
    }, 500).unref();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(`aws-api-emulator: ${e.message}`); process.exit(1); });
}
