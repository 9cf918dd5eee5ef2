// Shared helpers for the integration tests: a Postgres client, the S3
// emulator's control API, and the data generator.  The environment comes from
// test/run-tests.sh (PGHOST, PGPORT, S3_ENDPOINT, BILLOPS_RUN, BILLOPS_SHARED).
import { createRequire } from 'node:module';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
export const pg = require('pg');

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const SHARED = process.env.BILLOPS_SHARED || path.resolve(ROOT, '../shared');
export const RUN = process.env.BILLOPS_RUN;
export const S3 = process.env.S3_ENDPOINT;

// numeric comes back as a string: keep it exact.
pg.types.setTypeParser(1700, (v) => v);
pg.types.setTypeParser(20, (v) => BigInt(v));

// Every client is registered, so a failed test cannot leave a socket open
// (which would keep the test process alive forever): closeAll() in after().
const open = new Set();
export async function connect() {
  const c = new pg.Client({ database: process.env.PGDATABASE || 'postgres' });
  await c.connect();
  open.add(c);
  c.on('end', () => open.delete(c));
  c.notices = [];
  c.on('notice', (n) => c.notices.push(n.message));
  return c;
}
// A database of the test file's own, with the extension created; later
// connect() calls in the file use it.
export async function freshDatabase(name) {
  const c = await connect();
  await c.query(`DROP DATABASE IF EXISTS ${name}`);
  await c.query(`CREATE DATABASE ${name}`);
  await c.end();
  process.env.PGDATABASE = name;
  const db = await connect();
  await db.query('CREATE EXTENSION pg_billops CASCADE');
  return db;
}

// A client of a named database, registered like connect()'s.  It has an error
// listener: a killed backend (worker and postmaster kill tests) must not take
// the test process down with an unhandled 'error' event.
export async function connectTo(database) {
  const c = new pg.Client({ database });
  c.on('error', () => {});
  await c.connect();
  open.add(c);
  c.on('end', () => open.delete(c));
  return c;
}
// every client connect() and connectTo() made and that is still open
export const openClients = open;

export async function closeAll() {
  await Promise.all([...open].map((c) => c.end().catch(() => {})));
}

// Run a statement that must fail; returns the error (with .code, .detail, .hint).
export async function expectError(client, sql, params = []) {
  try {
    await client.query(sql, params);
  } catch (e) {
    return e;
  }
  throw new Error(`expected an error from: ${sql}`);
}

export async function emulator(method, p, body) {
  const res = await fetch(`${S3}/_emulator/${p}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!res.ok) throw new Error(`emulator ${method} ${p}: ${res.status}`);
  const t = await res.text();
  return t ? JSON.parse(t) : null;
}
export const setFaults = (faults) => emulator('POST', 'faults', { faults });
export const clearFaults = () => emulator('DELETE', 'faults');

// Generate CUR data into the emulator's root (a bucket per directory).
export function generate(args) {
  const out = execFileSync('node', [path.join(ROOT, 'test/generator/gen-cur.mjs'), ...args], {
    encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26,
  });
  return out;
}

export const S3_ROOT = RUN ? path.join(RUN, 's3') : null;

// Create a bucket folder that the emulator serves.
export function bucketDir(name) {
  const d = path.join(S3_ROOT, name);
  fs.mkdirSync(d, { recursive: true });
  return d;
}

// Exact decimal sum of strings (BigInt on scaled integers; never floats).
// Accepts exponent notation ("1.81E-8"), which real CUR files use.
export const SCALE = 24;
export function toScaled(v, scale = SCALE) {
  const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(v.trim());
  if (!m) throw new Error(`not a decimal: ${v}`);
  const [, sign, int = '', frac = '', exp = '0'] = m;
  const digits = BigInt((int + frac) || '0');
  const shift = scale - frac.length + Number(exp);
  if (shift < 0) throw new Error(`more than ${scale} decimals: ${v}`);
  const n = digits * 10n ** BigInt(shift);
  return sign === '-' ? -n : n;
}
export function decimalSum(values, scale = SCALE) {
  let total = 0n;
  for (const v of values) if (v !== '' && v != null) total += toScaled(v, scale);
  return total;
}
export function decimalToString(n, scale = SCALE) {
  const neg = n < 0n;
  const s = (neg ? -n : n).toString().padStart(scale + 1, '0');
  let out = `${s.slice(0, -scale)}.${s.slice(-scale)}`.replace(/0+$/, '').replace(/\.$/, '');
  return (neg && out !== '0' ? '-' : '') + out;
}
// Normalize a Postgres numeric string the same way.
export const normNumeric = (s) => decimalToString(decimalSum([s]));
// round(x, 2) as PostgreSQL rounds numeric: half away from zero (on scaled BigInts).
export const CENT = 10n ** BigInt(SCALE - 2);
export function roundCents(n) {
  const abs = n < 0n ? -n : n;
  const r = ((abs + CENT / 2n) / CENT) * CENT;
  return n < 0n ? -r : r;
}
// a decimal string to the cent, and the exact sum of decimal strings
export const cents = (s) => decimalToString(roundCents(toScaled(String(s))));
export const sumOf = (values) => decimalToString(decimalSum(values.map(String)));

// --- shared by the BILL tests -------------------------------------------------
export const one = async (c, sql, params = []) => (await c.query(sql, params)).rows[0];

// Poll fn until it returns something truthy; describe() adds state to the timeout error.
export async function waitFor(what, fn, timeoutMs = 30000, intervalMs = 25, describe = null) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) {
      const extra = describe ? `; ${await describe()}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${extra}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// The BILL emulator's control API (BILL_EMULATOR_CONTROL, from test/lib.sh).
// A JSON control request to an emulator (its control base URL from the environment).
async function control(base, method, p, body) {
  const res = await fetch(`${base}/${p}`, {
    method, headers: body ? { 'content-type': 'application/json' } : {}, body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`emulator ${method} ${p}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}
export const billControl = (method, p, body) => control(process.env.BILL_EMULATOR_CONTROL, method, p, body);
// the Cost Explorer + Invoicing emulator (test/emulators/aws-api)
export const awsApiControl = (method, p, body) => control(process.env.AWS_API_EMULATOR_CONTROL, method, p, body);
// the STS emulator (test/emulators/sts; also the instance metadata and container endpoints)
export const stsControl = (method, p, body) => control(process.env.STS_EMULATOR_CONTROL, method, p, body);

// A final March 2024 CUR month for payer 111111111111 (the BILL tests' month):
// rows are [invoiceId, invoicingEntity, billingEntity, account, lineItemType,
// productCode, cost, legalEntity, productName], followed by `partners`
// Partner NNN LLC charges that share one vendor.  Written readable by the server.
// Another payer or period: the last argument, {payer, period}.
export const AWS_INC = '"Amazon Web Services, Inc."';
export function writeBillTestMonth(file, rows, partners, { payer = '111111111111', period = '2024-03-01' } = {}) {
  const head = 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,' +
    'bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,' +
    'lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName';
  const row = ([inv, entity, billing, account, type, product, cost, legal, name]) =>
    [inv, entity, billing, 'Anniversary', payer, `${period}T00:00:00Z`, account, type, product, cost, 'USD', legal, name].join(',');
  const lines = [head, ...rows.map(row)];
  for (let i = 1; i <= partners; i++) {
    const n = String(i).padStart(3, '0');
    lines.push(row([`INV-P-${n}`, AWS_INC, 'AWS', i % 2 ? '222222222222' : '333333333333', 'Usage', 'PartnerSvc',
      `${10 + i}.${String((i * 37) % 100).padStart(2, '0')}`, `Partner ${n} LLC`, 'Partner service']));
  }
  fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o644 });
  fs.chmodSync(file, 0o644);   // the server account reads it
}
