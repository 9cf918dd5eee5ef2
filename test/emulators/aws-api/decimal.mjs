// Exact decimal arithmetic for money: a value is { n: BigInt, s: scale } meaning n / 10^s.
// CUR amounts arrive as "0.07", "-1.5" or "1.81E-8"; summing them as floats drifts, so
// everything here is BigInt. Formatting never uses exponents ("0.0000000181").

const DEC_RE = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

export const ZERO = Object.freeze({ n: 0n, s: 0 });

// String (or number, converted through its shortest round-trip string) -> decimal, or null.
export function parseDecimal(v) {
  if (typeof v === 'bigint') return { n: v, s: 0 };
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) return null;
    v = String(v);
  }
  if (typeof v !== 'string') return null;
  const m = DEC_RE.exec(v.trim());
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return null;
  const frac = m[3] ?? '';
  let n = BigInt((m[2] || '0') + frac);
  let s = frac.length - (m[4] ? Number(m[4]) : 0);
  if (Math.abs(s) > 1000) return null; // nobody bills in googols
  if (s < 0) { n *= 10n ** BigInt(-s); s = 0; }
  if (m[1] === '-') n = -n;
  return normalize({ n, s });
}

// Drop trailing zeros of the fraction (keeps values canonical, so equal values compare equal).
export function normalize(d) {
  let { n, s } = d;
  while (s > 0 && n % 10n === 0n) { n /= 10n; s--; }
  return { n, s };
}

const rescale = (d, s) => (d.s === s ? d.n : d.n * 10n ** BigInt(s - d.s));

export function add(a, b) {
  const s = Math.max(a.s, b.s);
  return normalize({ n: rescale(a, s) + rescale(b, s), s });
}

export const neg = (a) => ({ n: -a.n, s: a.s });
export const sub = (a, b) => add(a, neg(b));
export const isZero = (a) => a.n === 0n;
export function cmp(a, b) {
  const s = Math.max(a.s, b.s);
  const x = rescale(a, s);
  const y = rescale(b, s);
  return x < y ? -1 : x > y ? 1 : 0;
}

export function sum(list) {
  let acc = ZERO;
  for (const d of list) acc = add(acc, d);
  return acc;
}

// Round to `places` decimals, half away from zero (how invoices round cents; unverified).
export function round(d, places) {
  if (d.s <= places) return d;
  const div = 10n ** BigInt(d.s - places);
  const neg_ = d.n < 0n;
  const abs = neg_ ? -d.n : d.n;
  let q = abs / div;
  if ((abs % div) * 2n >= div) q += 1n;
  return normalize({ n: neg_ ? -q : q, s: places });
}

// Plain decimal string, shortest form: "0", "12.5", "-0.0000000181".
export function format(d) {
  const neg_ = d.n < 0n;
  let digits = (neg_ ? -d.n : d.n).toString();
  if (d.s > 0) {
    digits = digits.padStart(d.s + 1, '0');
    digits = `${digits.slice(0, -d.s)}.${digits.slice(-d.s)}`;
  }
  return (neg_ && d.n !== 0n ? '-' : '') + digits;
}

// Fixed number of decimals: formatFixed(1.5, 2) = "1.50" (invoice amounts).
export function formatFixed(d, places) {
  const r = round(d, places);
  const n = rescale(r, places);
  const neg_ = n < 0n;
  const digits = (neg_ ? -n : n).toString().padStart(places + 1, '0');
  const body = places > 0 ? `${digits.slice(0, -places)}.${digits.slice(-places)}` : digits;
  return (neg_ ? '-' : '') + body;
}

export const toNumber = (d) => Number(format(d));
