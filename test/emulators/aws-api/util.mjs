// Small helpers shared by the operation handlers: UTC calendar days and opaque page tokens.
import crypto from 'node:crypto';

const DAY_MS = 86400000;
export { DAY_MS };

// "YYYY-MM-DD" -> epoch ms at 00:00 UTC, or null (also for impossible dates like 2023-02-30).
export function parseYmd(s) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  if (!m) return null;
  const t = Date.UTC(+m[1], +m[2] - 1, +m[3]);
  return new Date(t).toISOString().slice(0, 10) === s ? t : null;
}

export const ymd = (ms) => new Date(ms).toISOString().slice(0, 10);
export const firstOfMonth = (ms) => { const d = new Date(ms); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1); };
export const addMonths = (ms, n) => { const d = new Date(ms); return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + n, d.getUTCDate()); };
export const startOfDay = (ms) => Math.floor(ms / DAY_MS) * DAY_MS;

// JSON with sorted keys: two requests that differ only in key order hash the same.
export function stableStringify(v) {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

export const requestHash = (input, tokenMember) => {
  const { [tokenMember]: _drop, ...rest } = input;
  return crypto.createHash('sha256').update(stableStringify(rest)).digest('base64url').slice(0, 22);
};

// Page tokens: base64url(JSON) + "." + HMAC, keyed by a secret that changes on reset, so a
// tampered, foreign or pre-reset token is recognised as invalid.
export function encodeToken(secret, obj) {
  const payload = Buffer.from(JSON.stringify(obj)).toString('base64url');
  const mac = crypto.createHmac('sha256', secret).update(payload).digest('base64url').slice(0, 32);
  return `${payload}.${mac}`;
}

export function decodeToken(secret, tok) {
  if (typeof tok !== 'string') return null;
  const dot = tok.indexOf('.');
  if (dot <= 0) return null;
  const payload = tok.slice(0, dot);
  const mac = crypto.createHmac('sha256', secret).update(payload).digest('base64url').slice(0, 32);
  const given = tok.slice(dot + 1);
  if (given.length !== mac.length || !crypto.timingSafeEqual(Buffer.from(given), Buffer.from(mac))) return null;
  try {
    return JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
}
