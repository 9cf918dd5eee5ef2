// List operations of the BILL v3 API: filters=, sort=, max= and page=.
//
//   filters={field}:{op}:{value},{field}:{op}:{value}     (clauses are ANDed)
//   filters=createdTime:gte:"2025-09-01T00:00:00.000Z"    (values may be double-quoted)
//   filters=vendorId:in:"00901A,00901B"                    (in/nin: comma-separated list)
//   sort=updatedTime:desc                                  (several keys: comma-separated)
//   max=1..100 (default 20), page=<opaque token from nextPage/prevPage>
//
// Format from developer.bill.com "Search operations with lists". Each list endpoint
// gives a spec of the fields it can filter and the operators each accepts; anything
// else is rejected (BDC_1130 field, BDC_1131 operator), so a client cannot come to rely
// on a filter BILL does not document.

import crypto from 'node:crypto';
import { BillError, badParam } from './errors.mjs';

export const DEFAULT_MAX = 20;
export const MAX_MAX = 100;

const CLAUSE_START = /^\s*([A-Za-z][A-Za-z0-9.]*):([a-z]+):/;

// Split on commas outside double quotes.
function splitTopLevel(s) {
  const parts = [];
  let cur = '';
  let quoted = false;
  for (const ch of s) {
    if (ch === '"') quoted = !quoted;
    if (ch === ',' && !quoted) { parts.push(cur); cur = ''; continue; }
    cur += ch;
  }
  parts.push(cur);
  return parts;
}

const unquote = (v) => {
  const t = v.trim();
  return t.length >= 2 && t.startsWith('"') && t.endsWith('"') ? t.slice(1, -1) : t;
};

// "2025-01-02", "2025-01-02T03:04", "...:05", "...:05.678", each optionally with Z or
// an offset; without a zone the value is read as UTC.
function parseTime(v) {
  const m = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2})(?::(\d{2})(?:\.(\d{1,3}))?)?)?(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
  if (!m) return null;
  let zone = m[5] || 'Z';
  if (/^[+-]\d{4}$/.test(zone)) zone = `${zone.slice(0, 3)}:${zone.slice(3)}`;
  const iso = `${m[1]}T${m[2] || '00:00'}:${m[3] || '00'}.${(m[4] || '0').padEnd(3, '0')}${zone}`;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

function coerce(spec, field, raw) {
  switch (spec.type) {
    case 'bool':
      if (raw !== 'true' && raw !== 'false') throw badParam('filters', `${field}:${raw}`);
      return raw === 'true';
    case 'time': {
      const t = parseTime(raw);
      if (t === null) throw badParam('filters', `${field}:${raw}`);
      return t;
    }
    case 'date':
      if (!/^\d{4}-\d{2}-\d{2}$/.test(raw)) throw badParam('filters', `${field}:${raw}`);
      return raw;
    case 'number': {
      const n = Number(raw);
      if (raw === '' || !Number.isFinite(n)) throw badParam('filters', `${field}:${raw}`);
      return n;
    }
    default:
      return raw;
  }
}

// raw: the filters query value (or values, if the parameter was repeated).
export function parseFilters(raw, specs) {
  if (raw === undefined || raw === null) return [];
  const text = [].concat(raw).filter((s) => s !== '').join(',');
  if (text.trim() === '') return [];
  // A piece that does not start with "field:op:" continues the previous clause: that is
  // an unquoted list (id:in:a,b) or an unquoted value with a comma in it.
  const clauses = [];
  for (const piece of splitTopLevel(text)) {
    if (CLAUSE_START.test(piece) || clauses.length === 0) clauses.push(piece);
    else clauses[clauses.length - 1] += `,${piece}`;
  }
  return clauses.map((clause) => {
    const m = CLAUSE_START.exec(clause);
    if (!m) throw badParam('filters', clause);
    const [, field, op] = m;
    const spec = specs[field];
    if (!spec) throw new BillError('BDC_1130', { params: [field] });
    if (!spec.ops.includes(op)) throw new BillError('BDC_1131', { params: [op] });
    const rawValue = clause.slice(m[0].length);
    if (op === 'in' || op === 'nin') {
      const values = splitTopLevel(unquote(rawValue)).map(unquote).filter((v) => v !== '');
      if (values.length === 0) throw badParam('filters', clause);
      return { field, op, values: values.map((v) => coerce(spec, field, v)) };
    }
    const value = unquote(rawValue);
    if (spec.enum && !spec.enum.includes(value)) throw badParam('filters', clause);
    return { field, op, value: coerce(spec, field, value) };
  });
}

function compare(a, b) {
  if (a === b) return 0;
  if (a === undefined || a === null) return -1;
  if (b === undefined || b === null) return 1;
  return a < b ? -1 : 1;
}

function matches(item, f, specs) {
  const spec = specs[f.field];
  let v = spec.get(item);
  if (spec.type === 'time') v = Date.parse(v);
  switch (f.op) {
    case 'eq': return v === f.value;
    case 'ne': return v !== f.value;
    case 'gt': return v !== undefined && v !== null && compare(v, f.value) > 0;
    case 'gte': return v !== undefined && v !== null && compare(v, f.value) >= 0;
    case 'lt': return v !== undefined && v !== null && compare(v, f.value) < 0;
    case 'lte': return v !== undefined && v !== null && compare(v, f.value) <= 0;
    case 'in': return f.values.includes(v);
    case 'nin': return !f.values.includes(v);
    case 'sw': return typeof v === 'string' && v.startsWith(f.value);
    default: return false;
  }
}

export const applyFilters = (items, filters, specs) => items.filter((it) => filters.every((f) => matches(it, f, specs)));

// sort=field:asc|desc[,field:asc|desc]; the spec's sortable fields only.
export function parseSort(raw, sortable) {
  if (raw === undefined || raw === null || [].concat(raw).join('') === '') return [];
  return [].concat(raw).join(',').split(',').map((part) => {
    const [field, dir = 'asc', extra] = part.trim().split(':');
    if (extra !== undefined || !sortable[field] || (dir !== 'asc' && dir !== 'desc')) throw badParam('sort', part);
    return { field, desc: dir === 'desc', get: sortable[field] };
  });
}

// Stable: ties (and no sort at all) keep the natural order the caller passes in
// (creation order for every collection here).
export function applySort(items, sort) {
  if (sort.length === 0) return items;
  return items
    .map((it, i) => [it, i])
    .sort(([a, ia], [b, ib]) => {
      for (const s of sort) {
        const c = compare(s.get(a), s.get(b));
        if (c !== 0) return s.desc ? -c : c;
      }
      return ia - ib;
    })
    .map(([it]) => it);
}

export function parseMax(raw) {
  if (raw === undefined || raw === null || raw === '') return DEFAULT_MAX;
  const v = [].concat(raw)[0];
  if (!/^\d+$/.test(v)) throw badParam('max', v);
  const n = Number(v);
  if (n < 1 || n > MAX_MAX) throw badParam('max', v);
  return n;
}

// Page tokens are opaque to clients. Inside: the offset and a fingerprint of the query
// (filters and sort), so a token replayed against another query is refused instead of
// silently paging through something else.
export const fingerprint = (...parts) => crypto.createHash('sha256').update(JSON.stringify(parts)).digest('base64url').slice(0, 12);

const encodePage = (offset, fp) => Buffer.from(JSON.stringify({ o: offset, f: fp })).toString('base64url');

function decodePage(token, fp) {
  try {
    const d = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (Number.isInteger(d.o) && d.o >= 0 && d.f === fp) return d.o;
  } catch { /* fall through */ }
  throw badParam('page', token);
}

// -> { nextPage?, prevPage?, results }. The last page has no nextPage and the first
// no prevPage (the keys are absent, not null).
export function paginate(items, query, fp) {
  const max = parseMax(query.max);
  const token = query.page === undefined ? '' : [].concat(query.page)[0];
  const offset = token === '' ? 0 : decodePage(token, fp);
  const out = {};
  if (offset + max < items.length) out.nextPage = encodePage(offset + max, fp);
  if (offset > 0) out.prevPage = encodePage(Math.max(0, offset - max), fp);
  out.results = items.slice(offset, offset + max);
  return out;
}

// The whole list operation: filter, sort, page.
export function listOperation(items, query, { filters: filterSpecs, sortable }) {
  const filters = parseFilters(query.filters, filterSpecs);
  const sort = parseSort(query.sort, sortable);
  const rows = applySort(applyFilters(items, filters, filterSpecs), sort);
  return paginate(rows, query, fingerprint([].concat(query.filters ?? []), [].concat(query.sort ?? [])));
}
