// Self-test of the AWS API emulator (Cost Explorer + Invoicing): node --test test/emulators/aws-api/
// Requests are signed by @smithy/signature-v4's sign(), as the AWS SDK does; every successful
// answer is checked member by member against the botocore model (model.mjs checkOutput).
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parse as parseCsv } from 'csv-parse/sync';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { Sha256 } from '@aws-crypto/sha256-js';
import { createAwsApiEmulator, DEFAULT_KEYS, MODELS } from './server.mjs';
import { checkOutput } from './model.mjs';
import { extractAll, DEFAULT_MODELS_DIR } from './models/extract.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SHARED = process.env.BILLOPS_SHARED || path.resolve(HERE, '../../../../shared');
const SAMPLE = process.env.BILLOPS_SAMPLE || path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const KEY = DEFAULT_KEYS[0];
const SESSION = { accessKeyId: 'ASIASESSION', secretAccessKey: 'session-secret', sessionToken: 'tok/en+==' };
const EXPIRED = { accessKeyId: 'ASIAEXPIRED', secretAccessKey: 'expired-secret', sessionToken: 'old', expired: true };
const CE = 'AWSInsightsIndexService';
const INV = 'Invoicing';
const PAYER = '111111111111';
const LINKED = '222222222222';

let tmp;
let emu;
let port;
let finalCsv;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'awsapiemu-'));
  finalCsv = path.join(tmp, 'final-2023-10.csv');
  fs.writeFileSync(finalCsv, finalCurCsv());
  emu = createAwsApiEmulator({ keys: [KEY, SESSION, EXPIRED] });
  port = await emu.listen(0, '127.0.0.1');
});

after(async () => {
  await emu?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// reset keeps the configuration (as in the BILL emulator), so each test also restores it
const DEFAULTS = { cePageSize: 100, anomalyPageSize: 20, invoicePageSize: 100, pdfUrlTtlSeconds: 3600, authErrorStatus: 400,
  ceRequestPricesUsd: { GetCostAndUsage: '0.01', GetAnomalies: '0' } };
beforeEach(async () => {
  await control('POST', 'reset');
  await control('POST', 'config', DEFAULTS);
});

// --- a tiny AWS JSON client on top of smithy's signer -----------------------------------

function rawSend({ method = 'POST', target = '/', headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      const chunks = [];
      let aborted = false;
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => { aborted = true; });
      res.on('error', () => { aborted = true; });
      res.on('close', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), aborted: aborted || !res.complete,
        text() { return this.body.toString('utf8'); },
        json() { return JSON.parse(this.text()); },
      }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// op: "GetCostAndUsage" etc.; the prefix, content type and signing name follow the service.
async function api(op, input, {
  creds = KEY, service, region = 'us-east-1', date = new Date(), contentType, target, mutate, bodyOverride, rawBody, headers = {},
} = {}) {
  const isCe = ['GetCostAndUsage', 'GetAnomalies', 'GetDimensionValues'].includes(op);
  const body = rawBody ?? JSON.stringify(input); // rawBody is signed; bodyOverride is sent instead of what was signed
  const host = `127.0.0.1:${port}`;
  const signer = new SignatureV4({ credentials: creds, region, service: service ?? (isCe ? 'ce' : 'invoicing'), sha256: Sha256 });
  const req = new HttpRequest({
    method: 'POST', hostname: host, path: '/', body,
    headers: {
      host,
      'content-type': contentType ?? (isCe ? 'application/x-amz-json-1.1' : 'application/x-amz-json-1.0'),
      'x-amz-target': target ?? `${isCe ? CE : INV}.${op}`,
      ...headers,
    },
  });
  const signed = await signer.sign(req, { signingDate: date });
  mutate?.(signed.headers);
  return rawSend({ headers: signed.headers, body: bodyOverride ?? body });
}

async function ok(op, input, opts) {
  const r = await api(op, input, opts);
  assert.equal(r.status, 200, r.text());
  const isCe = ['GetCostAndUsage', 'GetAnomalies'].includes(op);
  assert.equal(r.headers['content-type'], isCe ? 'application/x-amz-json-1.1' : 'application/x-amz-json-1.0');
  assert.match(r.headers['x-amzn-requestid'], /^[0-9a-f-]{36}$/);
  const json = r.json();
  const model = isCe ? MODELS.ce : MODELS.invoicing;
  assert.deepEqual(checkOutput(model, model.operations[op].output.shape, json), [], 'response conforms to the model');
  return json;
}

// status, __type, and the message member the model names ("Message" for CE shapes, else "message")
function assertError(r, status, type, messageRe) {
  assert.equal(r.status, status, r.text());
  const j = r.json();
  assert.equal(j.__type, type, r.text());
  assert.ok(r.headers['x-amzn-errortype'].startsWith(type), r.headers['x-amzn-errortype']);
  assert.match(r.headers['x-amzn-requestid'], /^[0-9a-f-]{36}$/);
  const msg = j.Message ?? j.message;
  assert.equal(typeof msg, 'string');
  if (messageRe) assert.match(msg, messageRe);
  return j;
}

async function control(method, what, json) {
  const r = await rawSend({ method, target: `/_emulator/${what}`, headers: { 'content-type': 'application/json' }, body: json === undefined ? undefined : JSON.stringify(json) });
  return { status: r.status, json: r.text() ? JSON.parse(r.text()) : null };
}

async function ctl(method, what, json) {
  const r = await control(method, what, json);
  assert.equal(r.status, 200, JSON.stringify(r.json));
  return r.json;
}

const setNow = (iso) => ctl('POST', 'clock', { now: iso });

// --- exact decimals, independent of the emulator's decimal.mjs ---------------------------
const SCALE = 20;
function dec(s) {
  const m = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(s.trim());
  assert.ok(m, `not a number: ${s}`);
  const frac = m[3] ?? '';
  const e = Number(m[4] ?? 0) - frac.length + SCALE;
  let n = BigInt((m[2] || '0') + frac);
  n = e >= 0 ? n * 10n ** BigInt(e) : n / 10n ** BigInt(-e);
  return m[1] ? -n : n;
}
const cents = (n) => { // round half away from zero to 2 places -> "12.34"
  const unit = 10n ** BigInt(SCALE - 2);
  const neg = n < 0n;
  let q = (neg ? -n : n) / unit;
  if (((neg ? -n : n) % unit) * 2n >= unit) q += 1n;
  const s = q.toString().padStart(3, '0');
  return `${neg && q !== 0n ? '-' : ''}${s.slice(0, -2)}.${s.slice(-2)}`;
};

// --- a small final CUR (invoice ids filled) for 2023-10 -----------------------------------
function finalCurCsv() {
  const cols = ['identity/LineItemId', 'bill/InvoiceId', 'bill/InvoicingEntity', 'bill/BillingEntity', 'bill/BillType',
    'bill/PayerAccountId', 'bill/BillingPeriodStartDate', 'lineItem/UsageAccountId', 'lineItem/LineItemType',
    'lineItem/UsageStartDate', 'lineItem/ProductCode', 'lineItem/UsageType', 'lineItem/Operation', 'lineItem/UsageAmount',
    'lineItem/CurrencyCode', 'lineItem/UnblendedCost', 'lineItem/BlendedCost', 'lineItem/TaxType', 'lineItem/LegalEntity',
    'product/ProductName', 'product/regionCode', 'reservation/EffectiveCost', 'savingsPlan/TotalCommitmentToDate',
    'savingsPlan/UsedCommitment', 'savingsPlan/SavingsPlanEffectiveCost', 'resourceTags/user:Team'];
  const aws = 'Amazon Web Services, Inc.';
  const lines = [
    // invoice, billingEntity, account, type, day, code, usageType, amount, unblended, blended, taxType, product, region, riEff, spTotal, spUsed, spEff, team
    ['INV-1001', 'AWS', PAYER, 'Usage', '01', 'AmazonEC2', 'BoxUsage:m5.large', '24', '10.1234567891', '10.5', '', 'Amazon Elastic Compute Cloud', 'us-east-1', '', '', '', '', 'alpha'],
    ['INV-1001', 'AWS', LINKED, 'Usage', '01', 'AmazonS3', 'TimedStorage-ByteHrs', '0.01', '3.5E-7', '3.5E-7', '', 'Amazon Simple Storage Service', 'us-west-2', '', '', '', '', 'beta'],
    ['INV-1001', 'AWS', LINKED, 'SavingsPlanCoveredUsage', '02', 'AmazonEC2', 'BoxUsage:c5.xlarge', '24', '5.00', '5.00', '', 'Amazon Elastic Compute Cloud', 'us-east-1', '', '', '', '3.20', ''],
    ['INV-1001', 'AWS', LINKED, 'SavingsPlanNegation', '02', 'AmazonEC2', 'BoxUsage:c5.xlarge', '24', '-5.00', '-5.00', '', 'Amazon Elastic Compute Cloud', 'us-east-1', '', '', '', '', ''],
    ['INV-1001', 'AWS', PAYER, 'SavingsPlanRecurringFee', '01', 'ComputeSavingsPlans', 'ComputeSP:1yrNoUpfront', '720', '7.30', '7.30', '', 'Savings Plans for AWS Compute usage', '', '', '7.30', '3.20', '', ''],
    ['INV-1001', 'AWS', PAYER, 'DiscountedUsage', '03', 'AmazonRDS', 'InstanceUsage:db.t3.micro', '24', '0', '0', '', 'Amazon Relational Database Service', 'eu-west-1', '1.25', '', '', '', ''],
    ['INV-1001', 'AWS', PAYER, 'Tax', '01', 'AmazonEC2', '', '1', '1.23', '1.23', 'VAT', 'Amazon Elastic Compute Cloud', '', '', '', '', '', ''],
    ['INV-1001', 'AWS', LINKED, 'Tax', '01', 'AmazonS3', '', '1', '0.0000004', '0.0000004', 'VAT', 'Amazon Simple Storage Service', '', '', '', '', '', ''],
    ['INV-MP-7', 'AWS Marketplace', PAYER, 'Usage', '05', 'prodabc123', 'Widget-Units', '3', '99.99', '99.99', '', 'Acme Widget', '', '', '', '', '', ''],
    ['INV-1001', 'AWS', LINKED, 'Credit', '31', 'AmazonEC2', '', '1', '-2.00', '-2.00', '', 'Amazon Elastic Compute Cloud', '', '', '', '', '', ''],
    ['INV-1001', 'AWS', LINKED, 'EdpDiscount', '15', 'AmazonEC2', '', '1', '-0.5', '-0.5', '', 'Amazon Elastic Compute Cloud', 'us-east-1', '', '', '', '', ''],
  ];
  const q = (v) => (/[",\n]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  const out = [cols.join(',')];
  lines.forEach((l, i) => {
    const [inv, be, acct, type, day, code, ut, amount, unbl, blend, taxType, product, region, riEff, spTotal, spUsed, spEff, team] = l;
    out.push([`id${i}`, inv, aws, be, 'Anniversary', PAYER, '2023-10-01T00:00:00Z', acct, type, `2023-10-${day}T00:00:00Z`,
      code, ut, 'RunInstances', amount, 'USD', unbl, blend, taxType, aws, product, region, riEff, spTotal, spUsed, spEff, team].map(q).join(','));
  });
  return `${out.join('\n')}\n`;
}

// --- helpers for Cost Explorer paging ----------------------------------------------------
async function allCostPages(input) {
  const pages = [];
  let token;
  do {
    const page = await ok('GetCostAndUsage', { ...input, ...(token && { NextPageToken: token }) });
    pages.push(page);
    token = page.NextPageToken;
  } while (token);
  return pages;
}

// =========================================================================================
test('model subsets equal a fresh extraction from the botocore models', (t) => {
  if (!fs.existsSync(DEFAULT_MODELS_DIR)) { t.skip(`no models at ${DEFAULT_MODELS_DIR}`); return; }
  const fresh = extractAll();
  assert.deepEqual(MODELS.ce, fresh.ce);
  assert.deepEqual(MODELS.invoicing, fresh.invoicing);
  assert.equal(MODELS.ce.metadata.targetPrefix, CE);
  assert.equal(MODELS.invoicing.metadata.targetPrefix, INV);
});

test('GetCostAndUsage: daily totals of the real (preliminary) CUR sample, Estimated, model shape', async (t) => {
  if (!fs.existsSync(SAMPLE)) { t.skip(`no sample at ${SAMPLE}`); return; }
  await setNow('2023-12-15T12:00:00Z');
  const load = await ctl('POST', 'load-cur', { path: SAMPLE });
  assert.equal(load.lines, 1281);
  assert.deepEqual(load.invoices, []); // preliminary: bill/InvoiceId is empty
  assert.equal(load.estimatedRows, load.rows);
  const r = await ok('GetCostAndUsage', {
    TimePeriod: { Start: '2023-11-01', End: '2023-12-01' }, Granularity: 'DAILY',
    Metrics: ['UnblendedCost', 'BlendedCost', 'AmortizedCost', 'NetUnblendedCost', 'UsageQuantity'],
  });
  assert.equal(r.ResultsByTime.length, 30);
  assert.equal(r.NextPageToken, undefined);
  assert.deepEqual(r.DimensionValueAttributes, []);
  assert.equal(r.GroupDefinitions, undefined);
  const rows = parseCsv(fs.readFileSync(SAMPLE), { columns: true, bom: true });
  for (const p of r.ResultsByTime) {
    assert.equal(p.Estimated, true, 'preliminary data is estimated');
    assert.deepEqual(p.Groups, []);
    const day = rows.filter((x) => x['lineItem/UsageStartDate'].startsWith(p.TimePeriod.Start));
    const want = day.reduce((a, x) => a + dec(x['lineItem/UnblendedCost']), 0n);
    assert.equal(dec(p.Total.UnblendedCost.Amount), want, p.TimePeriod.Start);
    assert.equal(p.Total.UnblendedCost.Unit, 'USD');
    assert.equal(p.Total.UsageQuantity.Unit, 'N/A');
    assert.equal(typeof p.Total.UnblendedCost.Amount, 'string');
    assert.doesNotMatch(p.Total.UnblendedCost.Amount, /e/i, 'no exponent notation');
    // NetUnblendedCost falls back to unblended; the sample has no SP/RI lines, so amortized = unblended
    assert.equal(p.Total.NetUnblendedCost.Amount, p.Total.UnblendedCost.Amount);
    assert.equal(p.Total.AmortizedCost.Amount, p.Total.UnblendedCost.Amount);
  }
  assert.equal(r.ResultsByTime[20].Total.UnblendedCost.Amount, '0'); // 2023-11-21: no data
  assert.equal(r.ResultsByTime[0].TimePeriod.Start, '2023-11-01');
  assert.equal(r.ResultsByTime[29].TimePeriod.End, '2023-12-01');
});

test('GetCostAndUsage: paging a grouped query reassembles the CUR sample totals by account, to the cent', async (t) => {
  if (!fs.existsSync(SAMPLE)) { t.skip(`no sample at ${SAMPLE}`); return; }
  await setNow('2023-12-15T12:00:00Z');
  await ctl('POST', 'load-cur', { path: SAMPLE });
  await ctl('POST', 'load-cur', { path: finalCsv }); // a second payer and period, outside the range below
  await ctl('POST', 'config', { cePageSize: 7 });
  await ctl('DELETE', 'stats');
  const input = {
    TimePeriod: { Start: '2023-11-01', End: '2023-12-01' }, Granularity: 'DAILY', Metrics: ['UnblendedCost', 'AmortizedCost'],
    GroupBy: [{ Type: 'DIMENSION', Key: 'LINKED_ACCOUNT' }, { Type: 'DIMENSION', Key: 'SERVICE' }],
  };
  const pages = await allCostPages(input);
  assert.ok(pages.length > 10, `${pages.length} pages`);
  const byAccount = new Map();
  const seen = new Set();
  let splitPeriods = 0;
  for (const [i, page] of pages.entries()) {
    assert.deepEqual(page.GroupDefinitions, input.GroupBy);
    const groups = page.ResultsByTime.reduce((n, p) => n + Math.max(1, p.Groups.length), 0);
    assert.ok(groups <= 7, `page ${i}: ${groups} units`);
    if (i > 0 && page.ResultsByTime[0].TimePeriod.Start === pages[i - 1].ResultsByTime.at(-1).TimePeriod.Start) splitPeriods++;
    for (const p of page.ResultsByTime) {
      assert.deepEqual(p.Total, {}, 'grouped results have an empty Total');
      for (const g of p.Groups) {
        const k = `${p.TimePeriod.Start}|${g.Keys.join('|')}`;
        assert.ok(!seen.has(k), `group ${k} appears twice`);
        seen.add(k);
        byAccount.set(g.Keys[0], (byAccount.get(g.Keys[0]) ?? 0n) + dec(g.Metrics.UnblendedCost.Amount));
      }
    }
    for (const a of page.DimensionValueAttributes) assert.ok(page.ResultsByTime.some((p) => p.Groups.some((g) => g.Keys[0] === a.Value)));
  }
  assert.ok(splitPeriods > 0, 'some day continued on the next page under the same TimePeriod');
  const rows = parseCsv(fs.readFileSync(SAMPLE), { columns: true, bom: true });
  const want = new Map();
  for (const x of rows) want.set(x['lineItem/UsageAccountId'], (want.get(x['lineItem/UsageAccountId']) ?? 0n) + dec(x['lineItem/UnblendedCost']));
  assert.deepEqual([...byAccount.keys()].sort(), [...want.keys()].sort());
  for (const [acct, total] of want) {
    assert.equal(cents(byAccount.get(acct)), cents(total), acct);
    assert.equal(byAccount.get(acct), total, `${acct}: exact`);
  }
  // each page is one billed request
  const stats = await ctl('GET', 'stats');
  assert.equal(stats.byOperation.GetCostAndUsage.calls, pages.length);
  assert.equal(stats.ce.billableRequests.GetCostAndUsage, pages.length);
  assert.equal(dec(stats.ce.costUsd), BigInt(pages.length) * 10n ** BigInt(SCALE - 2), stats.ce.costUsd);
  // the monthly, ungrouped total agrees
  const monthly = await ok('GetCostAndUsage', { ...input, Granularity: 'MONTHLY', GroupBy: undefined });
  assert.equal(dec(monthly.ResultsByTime[0].Total.UnblendedCost.Amount), [...want.values()].reduce((a, b) => a + b, 0n));
});

test('GetCostAndUsage: page tokens: tampered -> InvalidNextTokenException, changed request -> RequestChangedException', async () => {
  await setNow('2023-11-20T00:00:00Z');
  await ctl('POST', 'load-cur', { path: finalCsv });
  await ctl('POST', 'config', { cePageSize: 2 });
  const input = { TimePeriod: { Start: '2023-10-01', End: '2023-11-01' }, Granularity: 'MONTHLY', Metrics: ['UnblendedCost'], GroupBy: [{ Type: 'DIMENSION', Key: 'SERVICE' }] };
  const first = await ok('GetCostAndUsage', input);
  assert.ok(first.NextPageToken);
  const tok = first.NextPageToken;
  const flipped = tok.slice(0, 5) + (tok[5] === 'A' ? 'B' : 'A') + tok.slice(6);
  const e1 = assertError(await api('GetCostAndUsage', { ...input, NextPageToken: flipped }), 400, 'InvalidNextTokenException');
  assert.equal(typeof e1.Message, 'string', 'CE error shapes carry "Message"');
  assertError(await api('GetCostAndUsage', { ...input, NextPageToken: 'garbage' }), 400, 'InvalidNextTokenException');
  assertError(await api('GetCostAndUsage', { ...input, Metrics: ['BlendedCost'], NextPageToken: tok }), 400, 'RequestChangedException');
  // a token from before a reset is invalid
  const again = await ok('GetCostAndUsage', { ...input, NextPageToken: tok });
  assert.equal(again.ResultsByTime[0].Groups.length, 2);
  await ctl('POST', 'reset');
  await setNow('2023-11-20T00:00:00Z');
  assertError(await api('GetCostAndUsage', { ...input, NextPageToken: tok }), 400, 'InvalidNextTokenException');
});

test('GetCostAndUsage: validation errors (GroupBy > 2, dates, metrics, granularity, types)', async () => {
  await setNow('2023-11-20T00:00:00Z');
  const base = { TimePeriod: { Start: '2023-10-01', End: '2023-11-01' }, Granularity: 'DAILY', Metrics: ['UnblendedCost'] };
  const dims = ['LINKED_ACCOUNT', 'SERVICE', 'REGION'].map((Key) => ({ Type: 'DIMENSION', Key }));
  assertError(await api('GetCostAndUsage', { ...base, GroupBy: dims }), 400, 'ValidationException', /up to 2/);
  assertError(await api('GetCostAndUsage', { ...base, GroupBy: [{ Type: 'DIMENSION', Key: 'NOPE' }] }), 400, 'ValidationException');
  assertError(await api('GetCostAndUsage', { ...base, GroupBy: [{ Type: 'COLOR', Key: 'x' }] }), 400, 'ValidationException', /enum value set/);
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: '2023-02-30', End: '2023-03-02' } }), 400, 'ValidationException');
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: '2023-10-05', End: '2023-10-05' } }), 400, 'ValidationException',
    /^Start date \(and hour\) should be before end date \(and hour\)$/);
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: '2023-10-01', End: '2024-01-01' } }), 400, 'ValidationException',
    /end date past the beginning of next month/);
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: '2022-01-15', End: '2022-02-01' } }), 400, 'ValidationException', /first day of the month/);
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: '2023-10-01T00:00:00Z', End: '2023-10-02T00:00:00Z' } }), 400, 'ValidationException');
  assertError(await api('GetCostAndUsage', { ...base, TimePeriod: { Start: 'yesterday', End: '2023-10-02' } }), 400, 'ValidationException', /regular expression pattern/);
  assertError(await api('GetCostAndUsage', { ...base, Granularity: 'HOURLY' }), 400, 'ValidationException');
  assertError(await api('GetCostAndUsage', { ...base, Metrics: ['UnblendedCosts'] }), 400, 'ValidationException', /UnblendedCosts/);
  assertError(await api('GetCostAndUsage', { ...base, Metrics: [] }), 400, 'ValidationException');
  const two = assertError(await api('GetCostAndUsage', { TimePeriod: { Start: '2023-10-01' }, Granularity: 'WEEKLY', Metrics: ['UnblendedCost'] }), 400, 'ValidationException');
  assert.equal(two.message, "2 validation errors detected: Value null at 'timePeriod.end' failed to satisfy constraint: Member must not be null; " +
    "Value 'WEEKLY' at 'granularity' failed to satisfy constraint: Member must satisfy enum value set: [DAILY, MONTHLY, HOURLY]");
  assertError(await api('GetCostAndUsage', { ...base, Metrics: 'UnblendedCost' }), 400, 'SerializationException');
  assertError(await api('GetCostAndUsage', base, { rawBody: '{"TimePeriod":' }), 400, 'SerializationException');
  assertError(await api('GetCostAndUsage', base, { rawBody: '[1,2]' }), 400, 'SerializationException');
  assertError(await api('GetCostAndUsage', { ...base, Filter: { Dimensions: { Key: 'SERVICE', Values: ['x'] }, Not: { Dimensions: { Key: 'SERVICE', Values: ['y'] } } } }),
    400, 'ValidationException', /exactly one/);
  assertError(await api('GetCostAndUsage', { ...base, BillingViewArn: 'arn:aws:billing::123456789012:billingview/custom-1' }), 400, 'ResourceNotFoundException');
  await ok('GetCostAndUsage', { ...base, BillingViewArn: 'arn:aws:billing::123456789012:billingview/primary' });
  // nothing failed validation was billed
  const stats = await ctl('GET', 'stats');
  assert.equal(stats.ce.billableRequests.GetCostAndUsage, 1);
  assert.equal(stats.ce.costUsd, '0.01');
  assert.equal(stats.byOperation.GetCostAndUsage.errors, stats.byOperation.GetCostAndUsage.calls - 1);
});

test('load-cur on a final CUR: metrics (amortized rules, exponents), filters, tags, accounts, Estimated, re-delivery', async () => {
  await setNow('2023-12-15T00:00:00Z');
  const load = await ctl('POST', 'load-cur', { path: finalCsv });
  assert.equal(load.lines, 11);
  assert.equal(load.estimatedRows, 0);
  assert.deepEqual(load.invoices, ['INV-1001', 'INV-MP-7']);
  assert.equal(load.totals[PAYER].UnblendedCost, '118.6434567891');
  assert.equal(load.totals[LINKED].UnblendedCost, '-2.49999925');
  assert.equal(load.totals[PAYER].AmortizedCost, '116.6934567891'); // 7.30 fee -> 7.30-3.20; RI 0 -> 1.25
  assert.equal(load.totals[LINKED].AmortizedCost, '0.70000075'); // SP usage -> 3.20, negation -> 0
  assert.equal(load.totals[PAYER].BlendedCost, '119.02');
  await ctl('POST', 'accounts', { accounts: { [PAYER]: 'Payer Co', [LINKED]: 'Linked Dev' } });

  const month = { TimePeriod: { Start: '2023-10-01', End: '2023-11-01' }, Granularity: 'MONTHLY' };
  const byAcct = await ok('GetCostAndUsage', { ...month, Metrics: ['UnblendedCost', 'AmortizedCost'], GroupBy: [{ Type: 'DIMENSION', Key: 'LINKED_ACCOUNT' }] });
  assert.equal(byAcct.ResultsByTime[0].Estimated, false, 'final data of a closed month');
  assert.deepEqual(byAcct.ResultsByTime[0].Groups.map((g) => [g.Keys[0], g.Metrics.UnblendedCost.Amount, g.Metrics.AmortizedCost.Amount]),
    [[PAYER, '118.6434567891', '116.6934567891'], [LINKED, '-2.49999925', '0.70000075']]);
  assert.deepEqual(byAcct.DimensionValueAttributes, [
    { Value: PAYER, Attributes: { description: 'Payer Co' } }, { Value: LINKED, Attributes: { description: 'Linked Dev' } }]);

  const bySvc = await ok('GetCostAndUsage', { ...month, Metrics: ['UnblendedCost'], GroupBy: [{ Type: 'DIMENSION', Key: 'SERVICE' }, { Type: 'DIMENSION', Key: 'RECORD_TYPE' }] });
  const svc = Object.fromEntries(bySvc.ResultsByTime[0].Groups.map((g) => [g.Keys.join('|'), g.Metrics.UnblendedCost.Amount]));
  assert.equal(svc['Tax|Tax'], '1.2300004', 'taxes are the service "Tax"');
  assert.equal(svc['Acme Widget|Usage'], '99.99');
  assert.equal(svc['Amazon Elastic Compute Cloud|Credit'], '-2');

  const filtered = await ok('GetCostAndUsage', {
    ...month, Metrics: ['UnblendedCost'],
    Filter: { And: [{ Dimensions: { Key: 'LINKED_ACCOUNT', Values: [LINKED] } }, { Not: { Dimensions: { Key: 'RECORD_TYPE', Values: ['Tax', 'Credit'] } } }] },
  });
  assert.equal(filtered.ResultsByTime[0].Total.UnblendedCost.Amount, '-0.49999965');
  const orFilter = await ok('GetCostAndUsage', {
    ...month, Metrics: ['UnblendedCost'],
    Filter: { Or: [{ Dimensions: { Key: 'SERVICE', Values: ['Acme Widget'] } }, { Dimensions: { Key: 'REGION', Values: ['eu-west-1'] } }] },
  });
  assert.equal(orFilter.ResultsByTime[0].Total.UnblendedCost.Amount, '99.99');
  const tags = await ok('GetCostAndUsage', { ...month, Metrics: ['UnblendedCost'], GroupBy: [{ Type: 'TAG', Key: 'Team' }] });
  assert.deepEqual(tags.ResultsByTime[0].Groups.map((g) => g.Keys[0]), ['Team$', 'Team$alpha', 'Team$beta']);
  const tagged = await ok('GetCostAndUsage', { ...month, Metrics: ['UnblendedCost'], Filter: { Tags: { Key: 'Team', Values: ['alpha'] } } });
  assert.equal(tagged.ResultsByTime[0].Total.UnblendedCost.Amount, '10.1234567891');

  // current (open) month: Estimated even for final data
  await setNow('2023-10-20T00:00:00Z');
  const open = await ok('GetCostAndUsage', { TimePeriod: { Start: '2023-10-01', End: '2023-10-03' }, Granularity: 'DAILY', Metrics: ['UnblendedCost'] });
  assert.deepEqual(open.ResultsByTime.map((p) => p.Estimated), [true, true]);

  // re-delivery of the period replaces it (CUR deliveries are cumulative), forced estimated
  await setNow('2023-12-15T00:00:00Z');
  const again = await ctl('POST', 'load-cur', { path: finalCsv, estimated: true });
  assert.equal(again.estimatedRows, again.rows);
  const after2 = await ok('GetCostAndUsage', { ...month, Metrics: ['UnblendedCost'] });
  assert.equal(after2.ResultsByTime[0].Total.UnblendedCost.Amount, '116.1434575391');
  assert.equal(after2.ResultsByTime[0].Estimated, true);
  const state = await ctl('GET', 'state');
  assert.equal(state.invoices.length, 2);
});

test('costs control endpoint and MONTHLY periods cut at Start/End', async () => {
  await setNow('2023-12-15T00:00:00Z');
  await ctl('POST', 'costs', {
    rows: [
      { date: '2023-09-30', account: '333333333333', service: 'Amazon EC2', amount: '1.10' },
      { date: '2023-10-15', account: '333333333333', service: 'Amazon EC2', amount: '2.20', estimated: true },
      { date: '2023-11-03', account: '333333333333', service: 'Amazon S3', metrics: { UnblendedCost: '0.000000001', UsageQuantity: '5' } },
    ],
  });
  const r = await ok('GetCostAndUsage', { TimePeriod: { Start: '2023-09-15', End: '2023-11-10' }, Granularity: 'MONTHLY', Metrics: ['UnblendedCost', 'UsageQuantity'] });
  assert.deepEqual(r.ResultsByTime.map((p) => [p.TimePeriod.Start, p.TimePeriod.End, p.Total.UnblendedCost.Amount, p.Estimated]), [
    ['2023-09-15', '2023-10-01', '1.1', false], ['2023-10-01', '2023-11-01', '2.2', true], ['2023-11-01', '2023-11-10', '0.000000001', false]]);
  assert.equal(r.ResultsByTime[2].Total.UsageQuantity.Amount, '5');
  const bad = await control('POST', 'costs', { rows: [{ date: '2023-13-01', account: '333333333333', service: 'x' }] });
  assert.equal(bad.status, 400);
});

// --- anomalies ---------------------------------------------------------------------------
function seedAnomalies() {
  const list = [];
  for (let i = 0; i < 30; i++) {
    const end = new Date(Date.UTC(2024, 5, 30) - i * 5 * 86400000); // every 5 days back from 2024-06-30
    const start = new Date(end.getTime() - 2 * 86400000);
    list.push({
      AnomalyId: `anom-${String(i).padStart(2, '0')}`,
      AnomalyStartDate: start.toISOString().slice(0, 10), AnomalyEndDate: end.toISOString().slice(0, 10),
      DimensionValue: i % 2 ? 'Amazon Simple Storage Service' : 'Amazon Elastic Compute Cloud',
      RootCauses: [{ Service: 'Amazon Elastic Compute Cloud', Region: 'us-east-1', LinkedAccount: LINKED, LinkedAccountName: 'Linked Dev', UsageType: 'BoxUsage', Impact: { Contribution: 12.5 } }],
      AnomalyScore: { MaxScore: 0.91, CurrentScore: 0.5 },
      Impact: { MaxImpact: 40 + i, TotalActualSpend: 100 + i, TotalExpectedSpend: 50 },
      MonitorArn: `arn:aws:ce::${PAYER}:anomalymonitor/${i % 3 ? 'mon-a' : 'mon-b'}`,
      ...(i % 4 === 0 && { Feedback: 'YES' }),
    });
  }
  return list;
}

test('GetAnomalies: paging, 90-day window, filters, model shape', async () => {
  await setNow('2024-07-01T10:00:00Z');
  const seeded = await ctl('POST', 'anomalies', { anomalies: seedAnomalies() });
  assert.equal(seeded.anomalies[0].Impact.TotalImpact, 100 - 50);
  assert.equal(seeded.anomalies[0].Impact.TotalImpactPercentage, 100);
  const window = { DateInterval: { StartDate: '2023-01-01', EndDate: '2024-07-01' } };
  const all = [];
  let token;
  let pages = 0;
  do {
    const r = await ok('GetAnomalies', { ...window, MaxResults: 4, ...(token && { NextPageToken: token }) });
    assert.ok(r.Anomalies.length <= 4);
    all.push(...r.Anomalies);
    token = r.NextPageToken;
    pages++;
  } while (token);
  // 90 days before 2024-07-01 is 2024-04-02: end dates 2024-06-30 - 5i >= 2024-04-02 -> i <= 17
  assert.equal(all.length, 18);
  assert.equal(pages, 5);
  assert.deepEqual(new Set(all.map((a) => a.AnomalyId)).size, 18);
  for (const a of all) {
    assert.ok(a.AnomalyEndDate >= '2024-04-02', a.AnomalyEndDate);
    assert.equal(typeof a.Impact.MaxImpact, 'number');
    assert.equal(typeof a.AnomalyScore.MaxScore, 'number');
  }
  const starts = all.map((a) => a.AnomalyStartDate);
  assert.deepEqual(starts, [...starts].sort().reverse(), 'newest first');

  const narrow = await ok('GetAnomalies', { DateInterval: { StartDate: '2024-06-01', EndDate: '2024-06-20' } });
  assert.deepEqual(narrow.Anomalies.map((a) => a.AnomalyEndDate), ['2024-06-20', '2024-06-15', '2024-06-10', '2024-06-05']);
  const noEnd = await ok('GetAnomalies', { DateInterval: { StartDate: '2024-06-26' } });
  assert.deepEqual(noEnd.Anomalies.map((a) => a.AnomalyId), ['anom-00']);
  const fb = await ok('GetAnomalies', { ...window, Feedback: 'YES' });
  assert.deepEqual(fb.Anomalies.map((a) => a.AnomalyId), ['anom-00', 'anom-04', 'anom-08', 'anom-12', 'anom-16']);
  const mon = await ok('GetAnomalies', { ...window, MonitorArn: `arn:aws:ce::${PAYER}:anomalymonitor/mon-b` });
  assert.equal(mon.Anomalies.length, 6);
  const big = await ok('GetAnomalies', { ...window, TotalImpact: { NumericOperator: 'GREATER_THAN', StartValue: 65 } });
  assert.deepEqual(big.Anomalies.map((a) => a.Impact.TotalImpact), [66, 67]);
  const between = await ok('GetAnomalies', { ...window, TotalImpact: { NumericOperator: 'BETWEEN', StartValue: 51, EndValue: 52 } });
  assert.deepEqual(between.Anomalies.map((a) => a.AnomalyId), ['anom-01', 'anom-02']);

  assertError(await api('GetAnomalies', { ...window, TotalImpact: { NumericOperator: 'BETWEEN', StartValue: 1 } }), 400, 'ValidationException');
  assertError(await api('GetAnomalies', { DateInterval: { EndDate: '2024-06-01' } }), 400, 'ValidationException', /startDate/);
  assertError(await api('GetAnomalies', { DateInterval: { StartDate: '2024-06-02', EndDate: '2024-06-01' } }), 400, 'ValidationException');
  const first = await ok('GetAnomalies', { ...window, MaxResults: 4 });
  assertError(await api('GetAnomalies', { ...window, NextPageToken: `${first.NextPageToken}x` }), 400, 'InvalidNextTokenException');
  assertError(await api('GetAnomalies', { ...window, Feedback: 'NO', NextPageToken: first.NextPageToken }), 400, 'InvalidNextTokenException');
  assert.equal((await control('POST', 'anomalies', { anomalies: [{ AnomalyStartDate: 'soon' }] })).status, 400);
  assert.equal((await control('POST', 'anomalies', { anomalies: [{ AnomalyStartDate: '2024-06-01', Impact: { MaxImpact: '5' } }] })).status, 400);
});

// --- invoices ----------------------------------------------------------------------------
function seedInvoices(n) {
  const list = [];
  for (let i = 0; i < n; i++) {
    const month = i % 12;
    list.push({
      AccountId: i < 20 ? PAYER : '444444444444', InvoiceId: `EUINGB23-${String(i).padStart(4, '0')}`,
      IssuedDate: new Date(Date.UTC(2023, month + 1, 2, 8)).toISOString(),
      BillingPeriod: { Month: month + 1, Year: 2023 },
      Entity: { InvoicingEntity: i % 5 === 0 ? 'Amazon Web Services EMEA SARL' : 'Amazon Web Services, Inc.' },
      totalAmount: `${100 + i}.5`, taxAmount: '10', currencyCode: 'USD',
    });
  }
  return list;
}

test('ListInvoiceSummaries: CUR-derived invoices, paging, filters, selectors, errors', async () => {
  await setNow('2024-02-10T00:00:00Z');
  await ctl('POST', 'load-cur', { path: finalCsv });
  await ctl('POST', 'invoices', { invoices: seedInvoices(24) });

  const one = await ok('ListInvoiceSummaries', { Selector: { ResourceType: 'INVOICE_ID', Value: 'INV-1001' } });
  assert.equal(one.InvoiceSummaries.length, 1);
  const s = one.InvoiceSummaries[0];
  assert.equal(s.AccountId, PAYER);
  assert.equal(s.IssuedDate, Date.UTC(2023, 10, 2) / 1000, 'issued on the 2nd of the next month, epoch seconds');
  assert.equal(typeof s.DueDate, 'number');
  assert.deepEqual(s.BillingPeriod, { Month: 10, Year: 2023 });
  assert.deepEqual(s.Entity, { InvoicingEntity: 'Amazon Web Services, Inc.', BillingEntity: 'AWS' });
  assert.equal(s.InvoiceType, 'INVOICE');
  assert.equal(s.BillType, 'ANNIVERSARY');
  const lines = parseCsv(fs.readFileSync(finalCsv), { columns: true }).filter((x) => x['bill/InvoiceId'] === 'INV-1001');
  const total = lines.reduce((a, x) => a + dec(x['lineItem/UnblendedCost']), 0n);
  const tax = lines.filter((x) => x['lineItem/LineItemType'] === 'Tax').reduce((a, x) => a + dec(x['lineItem/UnblendedCost']), 0n);
  assert.equal(s.BaseCurrencyAmount.TotalAmount, cents(total));
  assert.equal(s.BaseCurrencyAmount.TotalAmount, '16.15');
  assert.equal(s.BaseCurrencyAmount.AmountBreakdown.Taxes.TotalAmount, cents(tax));
  assert.deepEqual(s.BaseCurrencyAmount.AmountBreakdown.Taxes.Breakdown, [{ Description: 'VAT', Amount: '1.23' }]);
  assert.equal(s.BaseCurrencyAmount.TotalAmountBeforeTax, '14.92');
  assert.equal(s.BaseCurrencyAmount.AmountBreakdown.SubTotalAmount, '14.92');
  assert.equal(s.BaseCurrencyAmount.AmountBreakdown.Discounts.TotalAmount, '-0.50');
  assert.equal(s.BaseCurrencyAmount.CurrencyCode, 'USD');
  assert.deepEqual(s.PaymentCurrencyAmount, s.BaseCurrencyAmount);
  const mp = await ok('ListInvoiceSummaries', { Selector: { ResourceType: 'INVOICE_ID', Value: 'INV-MP-7' } });
  assert.equal(mp.InvoiceSummaries[0].Entity.BillingEntity, 'AWS_MARKETPLACE');
  assert.equal(mp.InvoiceSummaries[0].BaseCurrencyAmount.TotalAmount, '99.99');

  // paging over the payer's 22 invoices (20 seeded + 2 from the CUR)
  const sel = { Selector: { ResourceType: 'ACCOUNT_ID', Value: PAYER } };
  const seen = [];
  let token;
  let pages = 0;
  do {
    const r = await ok('ListInvoiceSummaries', { ...sel, MaxResults: 10, ...(token && { NextToken: token }) });
    seen.push(...r.InvoiceSummaries);
    token = r.NextToken;
    pages++;
  } while (token);
  assert.equal(pages, 3);
  assert.equal(seen.length, 22);
  assert.equal(new Set(seen.map((x) => x.InvoiceId)).size, 22);
  assert.ok(seen.every((x) => x.AccountId === PAYER));
  const issued = seen.map((x) => x.IssuedDate);
  assert.deepEqual(issued, [...issued].sort((a, b) => b - a), 'newest first');
  const def = await ok('ListInvoiceSummaries', sel);
  assert.equal(def.InvoiceSummaries.length, 22);
  assert.equal(def.NextToken, undefined);

  const oct = await ok('ListInvoiceSummaries', { ...sel, Filter: { BillingPeriod: { Month: 10, Year: 2023 } } });
  assert.deepEqual(oct.InvoiceSummaries.map((x) => x.InvoiceId).sort(), ['EUINGB23-0009', 'INV-1001', 'INV-MP-7']);
  const emea = await ok('ListInvoiceSummaries', { ...sel, Filter: { InvoicingEntity: 'Amazon Web Services EMEA SARL' } });
  assert.deepEqual(emea.InvoiceSummaries.map((x) => x.InvoiceId), ['EUINGB23-0010', 'EUINGB23-0005', 'EUINGB23-0015', 'EUINGB23-0000']);
  const interval = await ok('ListInvoiceSummaries', {
    ...sel, Filter: { TimeInterval: { StartDate: Date.UTC(2023, 10, 1) / 1000, EndDate: Date.UTC(2023, 10, 30) / 1000 } },
  });
  assert.deepEqual(interval.InvoiceSummaries.map((x) => x.InvoiceId), ['EUINGB23-0009', 'INV-1001', 'INV-MP-7']);

  const tooLong = assertError(await api('ListInvoiceSummaries', {
    ...sel, Filter: { TimeInterval: { StartDate: Date.UTC(2023, 0, 1) / 1000, EndDate: Date.UTC(2023, 5, 1) / 1000 } },
  }), 400, 'ValidationException');
  assert.equal(tooLong.reason, 'fieldValidationFailed');
  assert.equal(typeof tooLong.message, 'string', 'Invoicing error shapes carry "message"');
  assertError(await api('ListInvoiceSummaries', { ...sel, Filter: { ReceiverRole: 'BUYER', BillingPeriod: { Month: 1, Year: 2024 } } }), 400, 'ValidationException', /2025-06-01/);
  assertError(await api('ListInvoiceSummaries', { ...sel, Filter: { TimeInterval: { StartDate: '2023-11-01', EndDate: '2023-11-30' } } }), 400, 'SerializationException');
  assertError(await api('ListInvoiceSummaries', { ...sel, MaxResults: 0 }), 400, 'ValidationException', /maxResults/);
  assertError(await api('ListInvoiceSummaries', { ...sel, MaxResults: 101 }), 400, 'ValidationException');
  assertError(await api('ListInvoiceSummaries', { ...sel, Filter: { BillingPeriod: { Month: 13, Year: 2023 } } }), 400, 'ValidationException', /month/);
  assertError(await api('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: 'abc' } }), 400, 'ValidationException');
  assertError(await api('ListInvoiceSummaries', { Selector: { ResourceType: 'ORG', Value: PAYER } }), 400, 'ValidationException', /enum/);
  assertError(await api('ListInvoiceSummaries', {}), 400, 'ValidationException', /selector/);
  const badTok = assertError(await api('ListInvoiceSummaries', { ...sel, NextToken: 'nope' }), 400, 'ValidationException');
  assert.equal(badTok.reason, 'invalidNextToken');
  const p1 = await ok('ListInvoiceSummaries', { ...sel, MaxResults: 5 });
  assertError(await api('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: '444444444444' }, NextToken: p1.NextToken }), 400, 'ValidationException');
  assertError(await api('ListInvoiceSummaries', { Selector: { ResourceType: 'INVOICE_ID', Value: 'NOPE-1' } }), 400, 'ResourceNotFoundException');
  const other = await ok('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: '999999999999' } });
  assert.deepEqual(other.InvoiceSummaries, []);
});

test('GetInvoicePDF: URL serves the PDF, expires on the emulator clock, rejects tampering; supplemental documents', async () => {
  await setNow('2024-02-10T00:00:00Z');
  await ctl('POST', 'config', { pdfUrlTtlSeconds: 600 });
  const pdf = Buffer.from('%PDF-1.4\n% seeded bytes\n%%EOF\n');
  await ctl('POST', 'invoices', {
    invoices: [{
      AccountId: PAYER, InvoiceId: 'INV-PDF-1', IssuedDate: '2024-02-02T00:00:00Z', totalAmount: '12.00',
      pdfBase64: pdf.toString('base64'), supplementalDocuments: [{ DocumentType: 'TAX_E_INVOICE', DocumentId: 'EINV-1' }],
    }],
  });
  await ctl('POST', 'load-cur', { path: finalCsv });
  const r = await ok('GetInvoicePDF', { InvoiceId: 'INV-PDF-1' });
  const doc = r.InvoicePDF;
  assert.equal(doc.InvoiceId, 'INV-PDF-1');
  const expect = Date.parse('2024-02-10T00:00:00Z') / 1000 + 600; // the clock kept running since it was set
  assert.ok(doc.DocumentUrlExpirationDate >= expect && doc.DocumentUrlExpirationDate <= expect + 30, String(doc.DocumentUrlExpirationDate));
  const url = new URL(doc.DocumentUrl);
  assert.equal(url.host, `127.0.0.1:${port}`);
  assert.equal(url.searchParams.get('X-Amz-Expires'), '600');
  const got = await rawSend({ method: 'GET', target: url.pathname + url.search });
  assert.equal(got.status, 200);
  assert.equal(got.headers['content-type'], 'application/pdf');
  assert.ok(got.body.equals(pdf));
  const head = await rawSend({ method: 'HEAD', target: url.pathname + url.search });
  assert.equal(head.status, 200);
  assert.equal(Number(head.headers['content-length']), pdf.length);

  assert.equal(doc.SupplementalDocuments.length, 1);
  const sup = doc.SupplementalDocuments[0];
  assert.equal(sup.DocumentType, 'TAX_E_INVOICE');
  assert.equal(sup.DocumentId, 'EINV-1');
  const supUrl = new URL(sup.DocumentUrl);
  const supGot = await rawSend({ method: 'GET', target: supUrl.pathname + supUrl.search });
  assert.equal(supGot.status, 200);
  assert.match(supGot.text(), /^%PDF-1\.4\n/);

  // a CUR-derived invoice gets a generated, well-formed PDF
  const gen = (await ok('GetInvoicePDF', { InvoiceId: 'INV-1001' })).InvoicePDF;
  const genUrl = new URL(gen.DocumentUrl);
  const genGot = await rawSend({ method: 'GET', target: genUrl.pathname + genUrl.search });
  assert.equal(genGot.status, 200);
  const text = genGot.body.toString('latin1');
  assert.match(text, /^%PDF-1\.4\n[\s\S]*Invoice INV-1001[\s\S]*Total 16\.15 USD[\s\S]*%%EOF\n$/);
  const xrefAt = Number(/startxref\n(\d+)\n/.exec(text)[1]);
  assert.equal(text.slice(xrefAt, xrefAt + 4), 'xref');

  const tampered = url.search.replace(/X-Amz-Signature=([0-9a-f])/, (m, c) => `X-Amz-Signature=${c === 'a' ? 'b' : 'a'}`);
  const bad = await rawSend({ method: 'GET', target: url.pathname + tampered });
  assert.equal(bad.status, 403);
  assert.match(bad.text(), /<Code>SignatureDoesNotMatch<\/Code>/);
  const longer = url.search.replace('X-Amz-Expires=600', 'X-Amz-Expires=6000');
  assert.equal((await rawSend({ method: 'GET', target: url.pathname + longer })).status, 403);

  await ctl('POST', 'clock', { advanceMs: 601 * 1000 });
  const expired = await rawSend({ method: 'GET', target: url.pathname + url.search });
  assert.equal(expired.status, 403);
  assert.match(expired.text(), /<Code>AccessDenied<\/Code><Message>Request has expired<\/Message><X-Amz-Expires>600<\/X-Amz-Expires>/);
  // a new call gives a fresh URL
  const fresh = (await ok('GetInvoicePDF', { InvoiceId: 'INV-PDF-1' })).InvoicePDF;
  const freshUrl = new URL(fresh.DocumentUrl);
  assert.equal((await rawSend({ method: 'GET', target: freshUrl.pathname + freshUrl.search })).status, 200);
  const stats = await ctl('GET', 'stats');
  assert.deepEqual(stats.documents, { downloads: 5, expired: 1 });

  const nf = assertError(await api('GetInvoicePDF', { InvoiceId: 'NOPE-2' }), 400, 'ResourceNotFoundException');
  assert.equal(typeof nf.message, 'string');
  assertError(await api('GetInvoicePDF', {}), 400, 'ValidationException', /invoiceId/);
});

// --- SigV4 and protocol ------------------------------------------------------------------
test('SigV4: bad signature, unknown key, wrong service/region scope, skew, tokens, tampered body', async () => {
  await setNow('2023-11-20T00:00:00Z');
  const input = { TimePeriod: { Start: '2023-11-01', End: '2023-11-02' }, Granularity: 'DAILY', Metrics: ['UnblendedCost'] };
  await ok('GetCostAndUsage', input);
  const badSig = assertError(await api('GetCostAndUsage', input, { creds: { ...KEY, secretAccessKey: 'wrong' } }), 400, 'InvalidSignatureException',
    /^The request signature we calculated does not match the signature you provided/);
  assert.match(badSig.message, /The Canonical String for this request should have been\n'POST\n\/\n\n/);
  assert.match(badSig.message, /x-amz-target:AWSInsightsIndexService.GetCostAndUsage\n/);
  assert.match(badSig.message, /The String-to-Sign should have been\n'AWS4-HMAC-SHA256\n\d{8}T\d{6}Z\n\d{8}\/us-east-1\/ce\/aws4_request\n[0-9a-f]{64}'/);
  assert.equal(badSig.Message, undefined, 'service-level errors use "message"');
  const r = await api('GetCostAndUsage', input, { creds: { ...KEY, secretAccessKey: 'wrong' } });
  assert.equal(r.headers['x-amzn-errortype'], 'InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/');
  assertError(await api('GetCostAndUsage', input, { creds: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' } }), 400, 'UnrecognizedClientException',
    /^The security token included in the request is invalid\.$/);
  assertError(await api('GetCostAndUsage', input, { service: 'invoicing' }), 400, 'InvalidSignatureException',
    /^Credential should be scoped to correct service: 'ce'\. $/);
  assertError(await api('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: PAYER } }, { service: 'ce' }), 400,
    'InvalidSignatureException', /correct service: 'invoicing'/);
  assertError(await api('GetCostAndUsage', input, { region: 'eu-west-1' }), 400, 'InvalidSignatureException', /valid region, not 'eu-west-1'/);
  assertError(await api('GetCostAndUsage', input, { date: new Date(Date.now() - 20 * 60000) }), 400, 'InvalidSignatureException', /^Signature expired: /);
  assertError(await api('GetCostAndUsage', input, { date: new Date(Date.now() + 20 * 60000) }), 400, 'InvalidSignatureException', /^Signature not yet current: /);
  assertError(await api('GetCostAndUsage', input, { mutate: (h) => { delete h.authorization; } }), 400, 'MissingAuthenticationTokenException');
  assertError(await api('GetCostAndUsage', input, { mutate: (h) => { h.authorization = h.authorization.replace(/, Signature=.*/, ''); } }), 400,
    'IncompleteSignatureException', /requires 'Signature' parameter/);
  assertError(await api('GetCostAndUsage', input, { bodyOverride: JSON.stringify({ ...input, Metrics: ['BlendedCost'] }) }), 400, 'InvalidSignatureException');
  assertError(await api('GetCostAndUsage', input, { mutate: (h) => { h['x-amz-target'] = 'AWSInsightsIndexService.GetAnomalies'; } }), 400, 'InvalidSignatureException');
  // session credentials: token required, must match; expired ones refused
  await ok('GetCostAndUsage', input, { creds: SESSION });
  assertError(await api('GetCostAndUsage', input, { creds: { ...SESSION, sessionToken: undefined } }), 400, 'UnrecognizedClientException');
  assertError(await api('GetCostAndUsage', input, { creds: { ...SESSION, sessionToken: 'other' } }), 400, 'UnrecognizedClientException');
  assertError(await api('GetCostAndUsage', input, { creds: EXPIRED }), 400, 'ExpiredTokenException');
  // the status of signature errors is configurable
  await ctl('POST', 'config', { authErrorStatus: 403 });
  assertError(await api('GetCostAndUsage', input, { creds: { ...KEY, secretAccessKey: 'wrong' } }), 403, 'InvalidSignatureException');
  // no auth error was counted as an operation call
  const stats = await ctl('GET', 'stats');
  assert.equal(stats.byOperation.GetCostAndUsage.calls, 2);
  assert.equal(stats.byErrorType.InvalidSignatureException, 10);
  const log = await ctl('GET', 'requests');
  assert.ok(log.every((e) => e.requestId && e.status));
  assert.equal(log.filter((e) => e.accessKeyId === SESSION.accessKeyId).length, 1);
});

test('protocol: unknown target, missing target, not-emulated operation, wrong Content-Type, wrong path', async () => {
  await setNow('2023-11-20T00:00:00Z');
  const j = assertError(await api('GetCostAndUsage', {}, { target: 'AWSInsightsIndexService.DescribeEverything' }), 400, 'UnknownOperationException');
  assert.match(j.message, /DescribeEverything/);
  assertError(await api('GetDimensionValues', {}), 400, 'UnknownOperationException', /not emulated/);
  assertError(await api('GetCostAndUsage', {}, { target: 'AmazonSQS.ListQueues' }), 400, 'UnknownOperationException');
  assertError(await api('GetCostAndUsage', {}, { mutate: (h) => { delete h['x-amz-target']; } }), 400, 'UnknownOperationException');
  for (const ct of ['application/x-amz-json-1.0', 'application/json', undefined]) {
    const r = await api('GetCostAndUsage', {}, { contentType: ct ?? 'text/plain', mutate: (h) => { if (!ct) delete h['content-type']; } });
    assert.equal(r.status, 404, String(ct));
    assert.equal(r.headers['content-type'], 'text/html');
    assert.match(r.text(), /<title>Page Not Found<\/title>/);
  }
  const inv = await api('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: PAYER } }, { contentType: 'application/x-amz-json-1.1' });
  assert.equal(inv.status, 404);
  await ok('ListInvoiceSummaries', { Selector: { ResourceType: 'ACCOUNT_ID', Value: PAYER } }, { contentType: 'application/x-amz-json-1.0; charset=utf-8' });
  assert.equal((await rawSend({ method: 'GET', target: '/' })).status, 404);
  assert.equal((await rawSend({ method: 'POST', target: '/other', headers: { 'content-type': 'application/x-amz-json-1.1' }, body: '{}' })).status, 404);
  // unknown members are ignored (and noted in the request log)
  await ok('GetCostAndUsage', { TimePeriod: { Start: '2023-11-01', End: '2023-11-02' }, Granularity: 'DAILY', Metrics: ['UnblendedCost'], Extra: 1 });
  const log = await ctl('GET', 'requests');
  assert.deepEqual(log.at(-1).warnings, ['unknown member extra ignored']);
  assert.equal(log.at(-1).params.Granularity, 'DAILY');
});

test('faults: throttle, modeled errors, status, skip/count, slow, drop, truncate; stats', async () => {
  await setNow('2023-11-20T00:00:00Z');
  const input = { TimePeriod: { Start: '2023-11-01', End: '2023-11-02' }, Granularity: 'DAILY', Metrics: ['UnblendedCost'] };
  const sel = { Selector: { ResourceType: 'ACCOUNT_ID', Value: PAYER } };
  await ctl('POST', 'faults', {
    faults: [
      { match: { operation: 'GetCostAndUsage' }, kind: 'throttle', count: 2, skip: 1 },
      { match: { operation: 'ListInvoiceSummaries' }, kind: 'throttle' },
      { match: { operation: 'GetAnomalies' }, kind: 'error', type: 'InvalidNextTokenException', message: 'injected' },
      { match: { service: 'invoicing' }, kind: 'status', status: 500, count: 1 },
    ],
  });
  await ok('GetCostAndUsage', input); // skipped
  const t1 = assertError(await api('GetCostAndUsage', input), 400, 'LimitExceededException');
  assert.equal(typeof t1.Message, 'string');
  assertError(await api('GetCostAndUsage', input), 400, 'LimitExceededException');
  await ok('GetCostAndUsage', input); // count used up
  const th = assertError(await api('ListInvoiceSummaries', sel), 400, 'ThrottlingException');
  assert.equal(typeof th.message, 'string');
  assertError(await api('GetAnomalies', { DateInterval: { StartDate: '2023-11-01' } }), 400, 'InvalidNextTokenException', /^injected$/);
  assertError(await api('GetInvoicePDF', { InvoiceId: 'x' }), 500, 'InternalServerException');
  assertError(await api('GetInvoicePDF', { InvoiceId: 'x' }), 400, 'ResourceNotFoundException'); // faults used up
  const f = await ctl('GET', 'faults');
  assert.deepEqual(f.faults.map((x) => x.hits), [2, 1, 1, 1]);

  // error types must be modeled for the operation (or common to all AWS JSON services)
  assert.equal((await control('POST', 'faults', { faults: [{ match: { operation: 'GetInvoicePDF' }, kind: 'error', type: 'InvalidNextTokenException' }] })).status, 400);
  assert.equal((await control('POST', 'faults', { faults: [{ kind: 'nope' }] })).status, 400);
  await ctl('POST', 'faults', {
    faults: [
      { match: { operation: 'GetCostAndUsage' }, kind: 'error', type: 'DataUnavailableException' },
      { match: { operation: 'GetCostAndUsage' }, kind: 'error', type: 'BillExpirationException' },
      { match: { operation: 'GetCostAndUsage' }, kind: 'status', status: 503 },
      { match: { operation: 'GetCostAndUsage' }, kind: 'throttle', status: 429 },
    ],
  });
  assertError(await api('GetCostAndUsage', input), 400, 'DataUnavailableException');
  assertError(await api('GetCostAndUsage', input), 400, 'BillExpirationException');
  assertError(await api('GetCostAndUsage', input), 503, 'ServiceUnavailable');
  assertError(await api('GetCostAndUsage', input), 429, 'LimitExceededException');
  await ok('GetCostAndUsage', input);

  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'slow', ms: 300 }] });
  const t0 = Date.now();
  await ok('GetCostAndUsage', input);
  assert.ok(Date.now() - t0 >= 290, `slow: ${Date.now() - t0} ms`);

  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'drop' }] });
  await assert.rejects(api('GetCostAndUsage', input), /socket hang up|ECONNRESET/);
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'truncate', afterBytes: 20 }] });
  const tr = await api('GetCostAndUsage', input);
  assert.equal(tr.status, 200);
  assert.equal(tr.aborted, true);
  assert.equal(tr.body.length, 20);
  assert.ok(Number(tr.headers['content-length']) > 20);

  // a fault on the document download
  await ctl('POST', 'invoices', { invoices: [{ AccountId: PAYER, InvoiceId: 'INV-F', IssuedDate: '2023-11-02T00:00:00Z', totalAmount: '1' }] });
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetDocument' }, kind: 'status', status: 503 }] });
  const u = new URL((await ok('GetInvoicePDF', { InvoiceId: 'INV-F' })).InvoicePDF.DocumentUrl);
  assert.equal((await rawSend({ method: 'GET', target: u.pathname + u.search })).status, 503);
  assert.equal((await rawSend({ method: 'GET', target: u.pathname + u.search })).status, 200);

  const stats = await ctl('GET', 'stats');
  assert.equal(stats.byOperation.GetCostAndUsage.calls, 12);
  assert.equal(stats.byOperation.GetCostAndUsage.ok, 5); // the truncated one was answered (and billed)
  assert.equal(stats.ce.costUsd, '0.05');
  assert.equal(stats.dropped, 1);
  assert.equal(stats.truncated, 1);
  assert.equal(stats.byErrorType.LimitExceededException, 3);
  const log = await ctl('GET', 'requests');
  assert.ok(log.some((e) => e.outcome === 'dropped' && e.operation === 'GetCostAndUsage'));
  assert.ok(log.some((e) => e.outcome === 'truncated'));
});

test('control API: reset, state, config, clock, errors', async () => {
  assert.deepEqual(await ctl('GET', 'health'), { status: 'ok' });
  assert.equal((await control('GET', 'nope')).status, 404);
  assert.equal((await control('POST', 'load-cur', { path: path.join(tmp, 'missing.csv') })).status, 400);
  const notCur = path.join(tmp, 'not-a-cur.csv');
  fs.writeFileSync(notCur, 'a,b\n1,2\n');
  const e = await control('POST', 'load-cur', { path: notCur });
  assert.equal(e.status, 400);
  assert.match(e.json.error, /missing column/);
  const badNum = path.join(tmp, 'bad-number.csv');
  fs.writeFileSync(badNum, finalCurCsv().replace('10.1234567891', '10;12'));
  assert.match((await control('POST', 'load-cur', { path: badNum })).json.error, /not a number/);
  assert.equal((await control('POST', 'config', { cePageSize: 0 })).status, 400);
  assert.equal((await control('POST', 'config', { bogus: 1 })).status, 400);
  const cfg = await ctl('POST', 'config', { cePageSize: 5, ceRequestPricesUsd: { GetAnomalies: '0.01' } });
  assert.equal(cfg.cePageSize, 5);
  assert.deepEqual(cfg.ceRequestPricesUsd, { GetCostAndUsage: '0.01', GetAnomalies: '0.01' });
  const c = await ctl('POST', 'clock', { now: '2030-01-02T03:04:05Z' });
  assert.equal(c.now.slice(0, 16), '2030-01-02T03:04');
  const c2 = await ctl('POST', 'clock', { advanceMs: 86400000 });
  assert.equal(c2.now.slice(0, 10), '2030-01-03');
  await ctl('POST', 'load-cur', { path: finalCsv });
  let st = await ctl('GET', 'state');
  assert.equal(st.costRows, 11);
  assert.equal(st.invoices.length, 2);
  assert.equal(st.costs[0].metrics.UnblendedCost, '10.1234567891');
  await ctl('POST', 'reset');
  st = await ctl('GET', 'state');
  assert.equal(st.costRows, 0);
  assert.equal(st.invoices.length, 0);
  assert.equal(st.clockOffsetMs, 0);
  assert.equal((await ctl('GET', 'config')).cePageSize, 5, 'reset keeps the config');
});

test('CLI: --port 0, --port-file, --credentials, --load-cur, --now; exits on SIGTERM', async () => {
  const creds = path.join(tmp, 'creds.json');
  fs.writeFileSync(creds, JSON.stringify({ keys: [{ accessKeyId: 'AKIDCLI', secretAccessKey: 'cli-secret' }] }));
  const portFile = path.join(tmp, 'port');
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0', '--port-file', portFile,
    '--credentials', creds, '--load-cur', finalCsv, '--now', '2023-12-01T00:00:00Z', '--ce-page-size', '1'],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const out = await new Promise((resolve, reject) => {
    let buf = '';
    child.stdout.on('data', (d) => { buf += d; if (/listening on .*\n/.test(buf)) resolve(buf); });
    child.on('exit', () => reject(new Error(`exited early: ${buf}`)));
  });
  const cliPort = Number(fs.readFileSync(portFile, 'utf8'));
  assert.match(out, /loaded .*final-2023-10\.csv: 11 lines, 11 cost rows, 2 invoices\n/);
  assert.match(out, new RegExp(`aws-api-emulator listening on http://127\\.0\\.0\\.1:${cliPort}\\n`));
  const saved = port;
  port = cliPort;
  try {
    const input = { TimePeriod: { Start: '2023-10-01', End: '2023-11-01' }, Granularity: 'MONTHLY', Metrics: ['UnblendedCost'], GroupBy: [{ Type: 'DIMENSION', Key: 'LINKED_ACCOUNT' }] };
    const r = await ok('GetCostAndUsage', input, { creds: { accessKeyId: 'AKIDCLI', secretAccessKey: 'cli-secret' } });
    assert.equal(r.ResultsByTime[0].Groups.length, 1);
    assert.ok(r.NextPageToken, '--ce-page-size 1');
    assertError(await api('GetCostAndUsage', input), 400, 'UnrecognizedClientException'); // default key not loaded
  } finally {
    port = saved;
  }
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
});

test('CLI: --parent-pid: exits when that process is gone', async () => {
  const parent = spawn('sleep', ['30'], { stdio: 'ignore' });
  const parentGone = new Promise((r) => parent.on('exit', r));
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--port', '0', '--parent-pid', String(parent.pid)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  await new Promise((resolve) => child.stdout.on('data', (d) => { if (/listening on/.test(d)) resolve(); }));
  parent.kill('SIGKILL');
  await parentGone;
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  assert.deepEqual(await exited, { code: 0, signal: null });
  clearTimeout(timer);
});
