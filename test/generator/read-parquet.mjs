#!/usr/bin/env node
// read-parquet.mjs — the reference reading of a Parquet file: DuckDB reads it, and the values are
// printed in one canonical text form, so pg_billops' Parquet reader can be compared with it line by line.
//
//   node test/generator/read-parquet.mjs FILE.parquet            every row, NDJSON
//   node test/generator/read-parquet.mjs FILE.parquet --meta     file, schema, column chunk and page facts
//   node test/generator/read-parquet.mjs FILE.parquet --sum COL  exact decimal sum of a numeric column
//
// Rows (default): one JSON object per row, keys = column names in file order, values:
//   NULL                 null
//   VARCHAR              the string
//   BOOLEAN              true / false
//   integers, DECIMAL    a JSON string with the exact decimal text ("-12", "0.0029729825")
//   FLOAT / DOUBLE       a JSON string with the shortest decimal that round-trips to the same binary
//                        value (DOUBLE: JavaScript's Number#toString digits, the shortest form Ryu also
//                        gives; FLOAT: shortest that round-trips as float32, 1e-7f -> "0.0000001"),
//                        written without an exponent: 1.6e-5 -> "0.000016", 1e21 -> "1000000000000000000000";
//                        "NaN", "Infinity", "-Infinity"; -0 -> "0"
//   TIMESTAMP            "YYYY-MM-DDTHH:MM:SS.fffZ" with as many fraction digits as the unit the FILE
//                        stores (parquet_schema: MILLIS 3, MICROS 6, NANOS 9), always all of them, even
//                        for whole seconds; DuckDB itself widens MILLIS to microseconds, the file's unit
//                        is what a reader of the file sees. UTC wall time: CUR's timestamps are UTC, and
//                        isAdjustedToUTC=true (TIMESTAMPTZ) is printed as its UTC instant the same way
//   DATE                 "YYYY-MM-DD"
//   MAP                  a JSON object, keys in file order, values rendered by these same rules
//   LIST / STRUCT        a JSON array / object, values rendered by these same rules
//   other types          BLOB, UUID, INTERVAL, TIME …: DuckDB's own text of the value, as a JSON string
// Strings are JSON strings, so the text of every value is exact; compare the lines as text.
//
// --meta prints NDJSON records tagged by "kind":
//   "file"    parquet_file_metadata(): created_by, num_rows, num_row_groups, format_version …
//   "schema"  parquet_schema(): one per schema element (name, type, repetition_type, converted_type,
//             logical_type, num_children, precision, scale …)
//   "chunk"   parquet_metadata(): one per column chunk (row_group_id, path_in_schema, type, encodings,
//             compression, dictionary_page_offset, data_page_offset, total sizes, statistics …)
//   "page"    one per page, decoded here from the page headers in the file (DuckDB exposes no page
//             listing): page type (DATA_PAGE, DATA_PAGE_V2, DICTIONARY_PAGE), encoding, level
//             encodings/lengths, num_values/num_nulls/num_rows, sizes, is_compressed.
//   "summary" the distinct (physical type, logical type, page type, encoding, codec) combinations.
//
// --sum COL prints {"column","type","sum","rows","non_null"}: DuckDB's sum, exact. Integer and DECIMAL
// columns are summed as they are; DOUBLE, FLOAT and VARCHAR values are first cast to DECIMAL(38,10)
// (each value to the decimal nearest it at 10 places, CUR's scale; '' is NULL), so "sum" has 10 places
// and compares as text with gen-cur.mjs --expected totals.

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));

const USAGE = 'usage: node read-parquet.mjs FILE.parquet [--meta | --sum COLUMN]';

const sqlString = (s) => `'${String(s).replace(/'/g, "''")}'`;
const sqlIdent = (s) => `"${String(s).replace(/"/g, '""')}"`;

// ---------------------------------------------------------------------------------------------------
// Canonical value text

// A JavaScript number's shortest round-trip digits, written in plain positional notation.
export function doubleText(n) {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return 'Infinity';
  if (n === -Infinity) return '-Infinity';
  if (n === 0) return '0';
  const s = String(n);
  const m = /^(-?)(\d)(?:\.(\d+))?e([+-]\d+)$/.exec(s);
  if (!m) return s; // already positional (JS uses exponents only below 1e-6 and from 1e21)
  const [, sign, d0, rest = '', e] = m;
  const digits = d0 + rest;
  const exp = Number(e); // value = 0.digits * 10^(exp+1)
  const point = exp + 1; // digits before the decimal point
  if (point <= 0) return `${sign}0.${'0'.repeat(-point)}${digits}`;
  if (point >= digits.length) return sign + digits + '0'.repeat(point - digits.length);
  return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
}

const pad = (v, w) => String(v).padStart(w, '0');

// days since 1970-01-01 -> YYYY-MM-DD (proleptic Gregorian, any year; no Date range limits)
function civilFromDays(z) {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp < 10 ? mp + 3 : mp - 9;
  const y = yoe + era * 400 + (m <= 2 ? 1 : 0);
  return `${y < 0 ? '-' : ''}${pad(Math.abs(y), 4)}-${pad(m, 2)}-${pad(d, 2)}`;
}

// ticks (bigint) at `perSecond` ticks a second since the epoch -> ISO 8601 UTC with `digits` fraction digits
function isoFromTicks(ticks, perSecond, digits) {
  const per = BigInt(perSecond);
  let secs = ticks / per;
  let frac = ticks % per;
  if (frac < 0n) { frac += per; secs -= 1n; }
  const day = secs >= 0n ? secs / 86400n : -((-secs + 86399n) / 86400n);
  const sod = Number(secs - day * 86400n);
  const hms = `${pad(Math.floor(sod / 3600), 2)}:${pad(Math.floor(sod / 60) % 60, 2)}:${pad(sod % 60, 2)}`;
  return `${civilFromDays(Number(day))}T${hms}${digits ? '.' + pad(frac, digits) : ''}Z`;
}

// The shortest decimal that reads back as the same float32 (a FLOAT column's value arrives as the
// double nearest to it, whose own shortest form has up to 17 digits).
function floatText(n) {
  if (!Number.isFinite(n) || n === 0) return doubleText(n);
  for (let p = 1; p < 9; p++) {
    const t = Number(n.toPrecision(p));
    if (Math.fround(t) === n) return doubleText(t);
  }
  return doubleText(Number(n.toPrecision(9)));
}

// A value's canonical JSON text. `type` is DuckDB's type of the value; `tsDigits` overrides the
// fraction digits of timestamps with the unit the file stores (DuckDB reads a MILLIS column as a
// microsecond TIMESTAMP; the file's precision is what the C reader sees).
function makeRenderer(api) {
  const { DuckDBTypeId: T } = api;
  const ts = (ticks, perSecond, digits, tsDigits) => {
    const text = isoFromTicks(ticks, perSecond, digits);
    if (tsDigits === undefined || tsDigits >= digits) return text;
    const cut = text.length - 1 - (digits - tsDigits); // drop digits the file's unit cannot hold
    if (!/^0*$/.test(text.slice(cut, -1))) return text; // not representable in that unit: keep them all
    return text.slice(0, tsDigits ? cut : cut - 1) + 'Z';
  };
  const render = (v, type, tsDigits) => {
    if (v === null || v === undefined) return 'null';
    switch (type.typeId) {
      case T.VARCHAR: case T.BOOLEAN: return JSON.stringify(v);
      case T.FLOAT: return JSON.stringify(floatText(v));
      case T.DOUBLE: return JSON.stringify(doubleText(v));
      case T.TINYINT: case T.SMALLINT: case T.INTEGER: case T.BIGINT: case T.HUGEINT:
      case T.UTINYINT: case T.USMALLINT: case T.UINTEGER: case T.UBIGINT: case T.UHUGEINT:
        return JSON.stringify(String(v));
      case T.DECIMAL: return JSON.stringify(v.toString()); // exact: a scaled bigint
      case T.DATE: return JSON.stringify(civilFromDays(v.days));
      case T.TIMESTAMP: case T.TIMESTAMP_TZ: return JSON.stringify(ts(v.micros, 1000000, 6, tsDigits));
      case T.TIMESTAMP_MS: return JSON.stringify(ts(v.millis, 1000, 3, tsDigits));
      case T.TIMESTAMP_NS: return JSON.stringify(ts(v.nanos, 1000000000, 9, tsDigits));
      case T.TIMESTAMP_S: return JSON.stringify(ts(v.seconds, 1, 0, tsDigits));
      case T.MAP: // built as text: a JS object would reorder integer-like keys ("10" before "2")
        return `{${v.entries.map((e) => {
          const k = render(e.key, type.keyType, tsDigits); // a JSON string for every key type but BOOLEAN
          return `${k.startsWith('"') ? k : JSON.stringify(k)}:${render(e.value, type.valueType, tsDigits)}`;
        }).join(',')}}`;
      case T.LIST: case T.ARRAY: return `[${v.items.map((x) => render(x, type.valueType, tsDigits)).join(',')}]`;
      case T.STRUCT: return `{${type.entryNames.map((n, i) => `${JSON.stringify(n)}:${
        render(v.entries[n], type.entryTypes[i], tsDigits)}`).join(',')}}`;
      default: return JSON.stringify(String(v)); // BLOB, UUID, INTERVAL, TIME …: DuckDB's own text
    }
  };
  return render;
}

// Fraction digits of the timestamps each top-level column stores, from the file's own schema:
// MILLIS 3, MICROS 6, NANOS 9 (INT96 is left to DuckDB, which reads it as microseconds).
async function timestampDigits(con, file) {
  const schema = (await con.runAndReadAll(`SELECT name, num_children, converted_type, logical_type
    FROM parquet_schema(${sqlString(file)})`)).getRowObjectsJS();
  const digits = new Map();
  let next = 1; // schema[0] is the root
  const walk = (top) => {
    const s = schema[next++];
    const lt = `${s.logical_type ?? ''} ${s.converted_type ?? ''}`;
    const d = /MILLIS=MilliSeconds|TIMESTAMP_MILLIS/.test(lt) ? 3 : /MICROS=MicroSeconds|TIMESTAMP_MICROS/.test(lt) ? 6
      : /NANOS=NanoSeconds/.test(lt) ? 9 : undefined;
    if (d !== undefined) digits.set(top ?? s.name, d);
    for (let k = 0; k < Number(s.num_children ?? 0); k++) walk(top ?? s.name);
  };
  while (next < schema.length) walk(undefined);
  return digits;
}

// ---------------------------------------------------------------------------------------------------
// Page headers: a minimal Thrift compact-protocol reader, just enough for parquet.thrift's PageHeader.

const PAGE_TYPE = ['DATA_PAGE', 'INDEX_PAGE', 'DICTIONARY_PAGE', 'DATA_PAGE_V2'];
const ENCODING = ['PLAIN', 'GROUP_VAR_INT', 'PLAIN_DICTIONARY', 'RLE', 'BIT_PACKED', 'DELTA_BINARY_PACKED',
  'DELTA_LENGTH_BYTE_ARRAY', 'DELTA_BYTE_ARRAY', 'RLE_DICTIONARY', 'BYTE_STREAM_SPLIT'];

class Compact {
  constructor(buf, pos) { this.b = buf; this.p = pos; }
  byte() { if (this.p >= this.b.length) throw new Error('page header runs past the column chunk'); return this.b[this.p++]; }
  varint() { let r = 0n; let s = 0n; for (;;) { const c = this.byte(); r |= BigInt(c & 0x7f) << s; if (!(c & 0x80)) return r; s += 7n; } }
  zigzag() { const u = this.varint(); return Number((u >> 1n) ^ -(u & 1n)); }
  value(t) {
    switch (t) {
      case 1: return true; case 2: return false; // bool inside a struct: the type nibble is the value
      case 3: return (this.byte() << 24) >> 24;
      case 4: case 5: case 6: return this.zigzag();
      case 7: this.p += 8; return null;
      case 8: { const n = Number(this.varint()); const s = this.b.subarray(this.p, this.p + n); this.p += n; return s; }
      case 9: case 10: {
        const h = this.byte(); let n = h >> 4; const et = h & 15;
        if (n === 15) n = Number(this.varint());
        const out = [];
        for (let i = 0; i < n; i++) out.push(et === 1 || et === 2 ? this.byte() === 1 : this.value(et));
        return out;
      }
      case 11: {
        const n = Number(this.varint()); if (n === 0) return [];
        const kv = this.byte(); const out = [];
        for (let i = 0; i < n; i++) out.push([this.value(kv >> 4), this.value(kv & 15)]);
        return out;
      }
      case 12: return this.struct();
      default: throw new Error(`unknown thrift compact type ${t}`);
    }
  }
  struct() {
    const f = {}; let id = 0;
    for (;;) {
      const h = this.byte();
      if (h === 0) return f;
      const t = h & 15; const d = h >> 4;
      id = d ? id + d : this.zigzag();
      f[id] = this.value(t);
    }
  }
}

function decodePageHeader(buf, pos) {
  const c = new Compact(buf, pos);
  const h = c.struct();
  const page = {
    type: PAGE_TYPE[h[1]] ?? h[1], uncompressed_page_size: h[2], compressed_page_size: h[3],
    crc: h[4] ?? null, header_bytes: c.p - pos,
  };
  if (h[5]) { // DataPageHeader
    const d = h[5];
    Object.assign(page, { num_values: d[1], encoding: ENCODING[d[2]] ?? d[2], definition_level_encoding: ENCODING[d[3]] ?? d[3],
      repetition_level_encoding: ENCODING[d[4]] ?? d[4], has_statistics: d[5] !== undefined });
  }
  if (h[7]) { // DictionaryPageHeader
    const d = h[7];
    Object.assign(page, { num_values: d[1], encoding: ENCODING[d[2]] ?? d[2], is_sorted: d[3] ?? null });
  }
  if (h[8]) { // DataPageHeaderV2
    const d = h[8];
    Object.assign(page, { num_values: d[1], num_nulls: d[2], num_rows: d[3], encoding: ENCODING[d[4]] ?? d[4],
      definition_levels_byte_length: d[5], repetition_levels_byte_length: d[6],
      is_compressed: d[7] ?? true, has_statistics: d[8] !== undefined });
  }
  return page;
}

// Walk the pages of one column chunk: from its first page (the dictionary page when there is one)
// through total_compressed_size bytes, which parquet.thrift defines as including the page headers.
function chunkPages(fd, chunk) {
  const dict = chunk.dictionary_page_offset;
  const first = dict === null || dict === undefined ? Number(chunk.data_page_offset)
    : Math.min(Number(dict), Number(chunk.data_page_offset));
  const len = Number(chunk.total_compressed_size);
  const buf = Buffer.alloc(len);
  fs.readSync(fd, buf, 0, len, first);
  const pages = [];
  for (let pos = 0; pos < len;) {
    const p = decodePageHeader(buf, pos);
    pages.push({ offset: first + pos, ...p });
    pos += p.header_bytes + p.compressed_page_size;
  }
  return pages;
}

// ---------------------------------------------------------------------------------------------------

const plain = (v) => (typeof v === 'bigint' ? (Number.isSafeInteger(Number(v)) ? Number(v) : v.toString()) : v);
const plainRow = (r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Array.isArray(v) ? v.map(plain) : plain(v)]));
const emit = (o) => process.stdout.write(JSON.stringify(o) + '\n');

async function meta(con, file) {
  const q = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJS();
  const f = sqlString(file);
  for (const r of await q(`SELECT * EXCLUDE (file_name) FROM parquet_file_metadata(${f})`)) {
    // column_orders has one entry per leaf column, all alike in practice: print each distinct one once
    if (Array.isArray(r.column_orders)) r.column_orders = [...new Set(r.column_orders)];
    emit({ kind: 'file', ...plainRow(r) });
  }
  const schema = await q(`SELECT * EXCLUDE (file_name) FROM parquet_schema(${f})`);
  // parquet_schema() lists the schema tree depth-first with num_children; rebuild each leaf's path
  // ("product, key_value, key", as parquet_metadata() spells path_in_schema) to find its types.
  const logical = new Map();
  let next = 0;
  const walk = (prefix, root) => { // prefix: the names of the enclosing groups below the root
    const s = schema[next++];
    const here = root ? [] : [...prefix, s.name];
    const p = here.join(', ');
    emit({ kind: 'schema', path: p, ...plainRow(s) });
    const kids = Number(s.num_children ?? 0);
    if (!kids) logical.set(p, s.logical_type ?? s.converted_type ?? null);
    for (let k = 0; k < kids; k++) walk(here, false);
  };
  walk([], true);
  const chunks = await q(`SELECT * EXCLUDE (file_name) FROM parquet_metadata(${f}) ORDER BY row_group_id, column_id`);
  const combos = new Map();
  const fd = fs.openSync(file, 'r');
  try {
    for (const c of chunks) {
      emit({ kind: 'chunk', ...plainRow(c) });
      for (const p of chunkPages(fd, c)) {
        emit({ kind: 'page', row_group_id: plain(c.row_group_id), column_id: plain(c.column_id), path_in_schema: c.path_in_schema, ...p });
        const lt = logical.get(c.path_in_schema) ?? null;
        const key = [c.type, lt, p.type, p.encoding, c.compression].join('|');
        const e = combos.get(key) ?? { physical_type: c.type, logical_type: lt, page_type: p.type,
          encoding: p.encoding, compression: c.compression, pages: 0, columns: new Set() };
        e.pages++; e.columns.add(c.path_in_schema);
        combos.set(key, e);
      }
    }
  } finally { fs.closeSync(fd); }
  for (const e of combos.values()) emit({ kind: 'summary', ...e, columns: e.columns.size });
}

async function sum(con, file, column) {
  const q = async (sql) => (await con.runAndReadAll(sql)).getRowObjectsJS();
  const f = sqlString(file);
  const [d] = await q(`SELECT column_type FROM (DESCRIBE SELECT * FROM read_parquet(${f})) WHERE column_name = ${sqlString(column)}`);
  if (!d) throw new Error(`no column "${column}" in ${file}`);
  // DOUBLE/FLOAT/VARCHAR are cast to DECIMAL(38,10) first: each value becomes the decimal nearest to it at
  // 10 places (the scale of CUR's amounts) and the sum is then exact; a float sum would depend on order.
  const col = sqlIdent(column);
  const exact = /^(DECIMAL|HUGEINT|BIGINT|INTEGER|SMALLINT|TINYINT|UBIGINT|UINTEGER|USMALLINT|UTINYINT)/.test(d.column_type);
  const expr = exact ? col : `CAST(${d.column_type === 'VARCHAR' ? `NULLIF(${col}, '')` : col} AS DECIMAL(38,10))`;
  const [r] = await q(`SELECT CAST(sum(${expr}) AS VARCHAR) AS s, count(*) AS n, count(${col}) AS nn FROM read_parquet(${f})`);
  emit({ column, type: d.column_type, sum: r.s, rows: plain(r.n), non_null: plain(r.nn) });
}

async function rows(con, api, file) {
  const render = makeRenderer(api);
  const digits = await timestampDigits(con, file);
  const result = await con.stream(`SELECT * FROM read_parquet(${sqlString(file)})`);
  const names = result.columnNames();
  const types = result.columnTypes();
  const keys = names.map((n) => JSON.stringify(n));
  let pending = '';
  for await (const chunk of result) {
    for (const row of chunk.getRows()) {
      pending += `{${row.map((v, i) => `${keys[i]}:${render(v, types[i], digits.get(names[i]))}`).join(',')}}\n`;
    }
    if (pending.length > 1 << 20) {
      if (!process.stdout.write(pending)) await new Promise((r) => process.stdout.once('drain', r));
      pending = '';
    }
  }
  process.stdout.write(pending);
}

async function main() {
  // `read-parquet.mjs f | head` closes the pipe early: that is not an error of the reading
  process.stdout.on('error', (e) => { if (e.code === 'EPIPE') process.exit(0); else throw e; });
  const argv = process.argv.slice(2);
  let file; let mode = 'rows'; let column;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--meta') mode = 'meta';
    else if (a === '--sum') { mode = 'sum'; column = argv[++i]; if (column === undefined) throw new Error('--sum needs a column name'); }
    else if (a === '--help') { process.stdout.write(USAGE + '\n'); return; }
    else if (a.startsWith('--')) throw new Error(`unknown option ${a}\n${USAGE}`);
    else if (file === undefined) file = a;
    else throw new Error(`unexpected argument "${a}"\n${USAGE}`);
  }
  if (file === undefined) throw new Error(USAGE);
  file = path.resolve(file);
  const api = require('@duckdb/node-api');
  const instance = await api.DuckDBInstance.create(':memory:', { threads: '1' });
  const con = await instance.connect();
  // TIMESTAMPTZ values are printed from their UTC instant anyway; the zone only matters to casts, and
  // it cannot be given at creation (ICU, which provides it, is loaded after the instance starts).
  await con.run(`SET TimeZone = 'UTC'`);
  try {
    if (mode === 'meta') await meta(con, file);
    else if (mode === 'sum') await sum(con, file, column);
    else await rows(con, api, file);
  } finally { con.closeSync(); instance.closeSync(); }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => { process.stderr.write(`read-parquet: ${e.message || e}\n`); process.exit(1); });
}
