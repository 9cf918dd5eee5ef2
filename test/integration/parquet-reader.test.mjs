// The Parquet reader's core (src/parquet_thrift.c), built outside the server with ASan and
// UBSan (test/fuzz/parquet_check), against an independent writer and reader: DuckDB writes
// files with every codec, both format versions and several row groups, and what our reader
// finds in each footer and page header must be what DuckDB's parquet_metadata says. Hostile
// files (cut short, bad magic, lying lengths) must give an error, never a crash.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { ROOT, RUN } from './helpers.mjs';

const require = createRequire(path.join(ROOT, 'test/emulators/package.json'));
const { DuckDBInstance } = require('@duckdb/node-api');
const CHECK = path.join(ROOT, 'test/fuzz/parquet_check');
const DIR = path.join(RUN ?? '/tmp', 'parquet-reader');
const CODECS = ['uncompressed', 'snappy', 'gzip', 'zstd', 'lz4_raw'];

let duck;
const files = [];

// Our reader's view of a file: JSON lines, or {error} (exit 1); anything else (a sanitizer report) fails the test.
function dump(file) {
  const r = spawnSync(CHECK, ['--dump', file], { encoding: 'utf8' });
  assert.ok(r.status === 0 || r.status === 1, `parquet_check crashed on ${path.basename(file)}: ${r.stderr.slice(0, 2000)}`);
  assert.equal(r.stderr, '', `no sanitizer report for ${path.basename(file)}`);
  return r.stdout.trim().split('\n').map((l) => JSON.parse(l));
}
const rowsOf = async (sql) => (await duck.runAndReadAll(sql)).getRowObjectsJson();

before(async () => {
  execFileSync('make', ['-C', path.join(ROOT, 'test/fuzz'), '-s', 'parquet_check'], { stdio: 'inherit' });
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true });
  duck = await (await DuckDBInstance.create(':memory:')).connect();
  // a CUR-like table: strings (dictionary-friendly and not), doubles, decimals, timestamps,
  // booleans, NULLs and empty strings, a MAP<string,string> and a LIST
  await duck.run(`CREATE TABLE t AS SELECT i AS line, 'acct-' || (i % 7) AS account, CASE WHEN i % 11 = 0 THEN '' ELSE 'r' || i END AS resource,
      (i * 0.0001234)::DOUBLE AS cost, (i / 7.0)::DECIMAL(20, 9) AS amount, TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS usage_start,
      (i % 3 = 0) AS flag, CASE WHEN i % 5 = 0 THEN NULL ELSE i END AS maybe,
      MAP {'user_team': 't' || (i % 4), 'user_env': CASE WHEN i % 2 = 0 THEN 'prod' ELSE 'dev' END} AS resource_tags,
      [i, i + 1, i + 2] AS list FROM range(10000) r(i)`);
  for (const codec of CODECS) {
    for (const version of ['V1', 'V2']) {
      const f = path.join(DIR, `t-${codec}-${version}.parquet`);
      await duck.run(`COPY t TO '${f}' (FORMAT parquet, COMPRESSION ${codec}, PARQUET_VERSION ${version}, ROW_GROUP_SIZE 2048)`);
      files.push(f);
    }
  }
});

test('every footer and page header as DuckDB reads them: 5 codecs × 2 versions, several row groups, maps and lists', async () => {
  for (const f of files) {
    const lines = dump(f);
    const err = lines.find((l) => l.error);
    assert.equal(err, undefined, `${path.basename(f)}: ${err?.error}`);
    const file = lines.find((l) => l.file).file;
    const meta = await rowsOf(`SELECT * FROM parquet_metadata('${f}') ORDER BY row_group_id, column_id`);
    const [{ num_rows: duckRows }] = await rowsOf(`SELECT count(*)::BIGINT AS num_rows FROM '${f}'`);
    assert.equal(file.num_rows, Number(duckRows));
    assert.equal(file.num_row_groups, new Set(meta.map((m) => m.row_group_id)).size);
    assert.ok(file.num_row_groups > 1, 'several row groups');
    const columns = lines.filter((l) => l.column).map((l) => l.column);
    assert.deepEqual(columns.map((c) => c.path), meta.filter((m) => m.row_group_id === '0').map((m) => m.path_in_schema.split(', ').join('.')));
    const chunks = lines.filter((l) => l.chunk).map((l) => l.chunk);
    assert.equal(chunks.length, meta.length);
    chunks.forEach((c, i) => {
      const m = meta[i];
      assert.deepEqual([c.row_group, c.column, c.codec, c.num_values, c.compressed, c.dictionary],
        [Number(m.row_group_id), Number(m.column_id), m.compression, Number(m.num_values), Number(m.total_compressed_size),
          m.dictionary_page_offset !== null && Number(m.dictionary_page_offset) > 0],
        `${path.basename(f)} row group ${c.row_group} column ${columns[c.column].path}`);
      assert.equal(c.start, Number(m.dictionary_page_offset > 0 ? m.dictionary_page_offset : m.data_page_offset));
    });
    // what the leaves are: the map's key/value and the list's element carry one repetition level
    const byPath = Object.fromEntries(columns.map((c) => [c.path, c]));
    assert.equal(byPath['resource_tags.key_value.key'].max_rep, 1);
    assert.equal(byPath['resource_tags.key_value.value'].max_def, 3);
    assert.equal(byPath['list.list.element'].max_rep, 1);
    // each leaf's physical type, scale and precision as DuckDB's parquet_schema gives them
    const leaves = (await rowsOf(`SELECT type, scale, precision FROM parquet_schema('${f}') WHERE type IS NOT NULL`));
    assert.deepEqual(columns.map((c) => [c.type, c.scale, c.precision]),
      leaves.map((l) => [l.type, Number(l.scale ?? 0), Number(l.precision ?? 0)]));
    assert.equal(byPath.amount.scale, 9);
    assert.equal(byPath.usage_start.unit, 2, 'microseconds');
  }
});

test('a hostile file gives an error saying what is wrong, never a crash: cut short anywhere, bad magic, lying lengths', async () => {
  const good = fs.readFileSync(files[3]);
  const variants = [];
  // cut at 97 points, from the footer back into the data
  for (let i = 1; i < good.length; i += Math.max(1, Math.floor(good.length / 97))) variants.push(['cut', good.subarray(0, good.length - i)]);
  const badMagic = Buffer.from(good); badMagic.write('PAR2', good.length - 4); variants.push(['magic', badMagic]);
  const encrypted = Buffer.from(good); encrypted.write('PARE', good.length - 4); variants.push(['encrypted', encrypted]);
  const longFooter = Buffer.from(good); longFooter.writeUInt32LE(good.length, good.length - 8); variants.push(['footer length', longFooter]);
  // every byte of the metadata flipped in turn (a lying count, offset, type or length somewhere)
  const metaLen = good.readUInt32LE(good.length - 8);
  for (let i = good.length - 8 - metaLen; i < good.length - 8; i += 3) {
    const v = Buffer.from(good); v[i] ^= 0xff; variants.push([`metadata byte ${i}`, v]);
  }
  let errors = 0;
  for (const [name, bytes] of variants) {
    const f = path.join(DIR, 'hostile.parquet');
    fs.writeFileSync(f, bytes);
    const lines = dump(f);
    const err = lines.find((l) => l.error);
    if (err) {
      errors++;
      assert.ok(err.error.length > 10, `${name}: a message (${err.error})`);
    }
  }
  assert.ok(errors >= 97 + 3, `every cut and every bad footer is refused (${errors} refusals of ${variants.length})`);
  const messages = ['cut', 'magic', 'encrypted', 'footer length'].map((kind) => {
    fs.writeFileSync(path.join(DIR, 'hostile.parquet'), variants.find(([n]) => n === kind)[1]);
    return dump(path.join(DIR, 'hostile.parquet')).find((l) => l.error).error;
  });
  assert.match(messages[0], /magic "PAR1" \(truncated, or not Parquet\)/);
  assert.match(messages[1], /magic "PAR1"/);
  assert.match(messages[2], /encrypted Parquet file/);
  assert.match(messages[3], /the footer says the metadata is \d+ bytes, but the file has/);
});

// Our reader's values of a file: per column, every level entry in file order ({v, def, rep} arrays).
function valuesOf(file) {
  const r = spawnSync(CHECK, ['--values', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.stderr, '', `no sanitizer report for ${path.basename(file)}`);
  const cols = {};
  for (const line of r.stdout.trim().split('\n').map((l) => JSON.parse(l))) {
    assert.equal(line.error, undefined, `${path.basename(file)}: ${line.error}`);
    const c = (cols[line.values.column] ??= { v: [], def: [], rep: [] });
    c.v.push(...line.values.v); c.def.push(...line.values.def); c.rep.push(...line.values.rep);
  }
  return cols;
}
// rows of a repeated leaf: rep 0 starts a row; def says how far the path is defined
function assemble({ v, def, rep }, { nullDef, emptyDef }) {
  const rows = [];
  for (let i = 0; i < v.length; i++) {
    if (rep[i] === 0) rows.push(def[i] === nullDef ? null : []);
    if (def[i] > emptyDef) rows.at(-1).push(v[i]);
  }
  return rows;
}
// a DECIMAL stored as big-endian two's complement bytes (hex), as exact decimal text
function decimalText(hex, scale) {
  let n = BigInt(`0x${hex}`);
  if (parseInt(hex[0], 16) >= 8) n -= 1n << BigInt(hex.length * 4);
  const neg = n < 0n; const s = (neg ? -n : n).toString().padStart(scale + 1, '0');
  return `${neg ? '-' : ''}${s.slice(0, -scale)}.${s.slice(-scale)}`;
}

test('every value as DuckDB reads it: flat columns of each type, NULLs and empty strings, a map and a list, every codec and version', async () => {
  for (const f of files) {
    const cols = valuesOf(f);
    const rows = await rowsOf(`SELECT line::VARCHAR AS line, account, resource, cost, amount::VARCHAR AS amount,
        epoch_us(usage_start)::VARCHAR AS usage_us, flag, maybe::VARCHAR AS maybe,
        to_json(map_keys(resource_tags))::VARCHAR AS tag_keys, to_json(map_values(resource_tags))::VARCHAR AS tag_values,
        to_json(list)::VARCHAR AS list
      FROM read_parquet('${f}', file_row_number = true) ORDER BY file_row_number`);
    const name = path.basename(f);
    assert.deepEqual(cols[0].v, rows.map((r) => r.line), `${name}: line (INT64)`);
    assert.deepEqual(cols[1].v, rows.map((r) => r.account), `${name}: account (dictionary strings)`);
    assert.deepEqual(cols[2].v, rows.map((r) => r.resource), `${name}: resource (empty strings stay empty)`);
    assert.deepEqual(cols[3].v.map(Number), rows.map((r) => r.cost), `${name}: cost (DOUBLE, exactly)`);
    assert.deepEqual(cols[4].v.map((h) => decimalText(h, 9)), rows.map((r) => r.amount), `${name}: amount (DECIMAL(20,9))`);
    assert.deepEqual(cols[5].v, rows.map((r) => r.usage_us), `${name}: usage_start (microseconds)`);
    assert.deepEqual(cols[6].v, rows.map((r) => r.flag), `${name}: flag (BOOLEAN)`);
    assert.deepEqual(cols[7].v, rows.map((r) => r.maybe), `${name}: maybe (NULLs)`);
    // the map's keys and values (max def 2 and 3: 0 NULL map, 1 empty), the list's elements (max def 3)
    assert.deepEqual(assemble(cols[8], { nullDef: 0, emptyDef: 1 }).map((k) => JSON.stringify(k)), rows.map((r) => r.tag_keys), `${name}: map keys`);
    assert.deepEqual(assemble(cols[9], { nullDef: 0, emptyDef: 1 }).map((k) => JSON.stringify(k)), rows.map((r) => r.tag_values), `${name}: map values`);
    assert.deepEqual(assemble(cols[10], { nullDef: 0, emptyDef: 1 }).map((k) => JSON.stringify(k?.map(Number))), rows.map((r) => r.list), `${name}: list`);
  }
});

// arrow-rs's writer (npm parquet-wasm): what DuckDB never writes — DATA_PAGE_V2, several pages per
// chunk, DELTA_BYTE_ARRAY, RLE booleans, INT32 and FLOAT columns, millisecond timestamps
function writeArrowRs(file, { version, codec }) {
  const arrow = require('apache-arrow');
  const pw = require('parquet-wasm/node');
  const n = 30000;
  const pick = (i, f) => (i % 7 === 3 ? null : f(i));
  const col = (f, type) => arrow.vectorFromArray(Array.from({ length: n }, (_, i) => pick(i, f)), type);
  const table = arrow.tableFromArrays({
    s_dba: col((k) => `arn:aws:ec2:us-east-1:123456789012:instance/i-${String(k).padStart(8, '0')}`, new arrow.Utf8()),
    s_dlba: col((k) => `desc ${k} ✓`, new arrow.Utf8()),
    s_plain: col((k) => (k % 13 === 0 ? '' : `v${k % 13}`), new arrow.Utf8()),
    s_dict: col((k) => `u${k % 13}`, new arrow.Utf8()),
    d_bss: col((k) => k * 0.0029729825 - 7, new arrow.Float64()),
    f_bss: col((k) => Math.fround(k / 3), new arrow.Float32()),
    i64_dbp: col((k) => BigInt(k) * 1000003n - 5n, new arrow.Int64()),
    i32_dbp: col((k) => ((k * 7919) % 100000) - 50000, new arrow.Int32()),
    ts_dbp: col((k) => 1704067200000 + k * 1000, new arrow.TimestampMillisecond()),
    b_rle: col((k) => k % 3 === 0, new arrow.Bool()),
  });
  const props = new pw.WriterPropertiesBuilder()
    .setWriterVersion(version === 'v1' ? pw.WriterVersion.V1 : pw.WriterVersion.V2)
    .setCompression(pw.Compression[codec])
    .setDictionaryEnabled(false)
    .setDataPageSizeLimit(8 * 1024)
    .setMaxRowGroupSize(12000)
    .setColumnEncoding('s_dba', pw.Encoding.DELTA_BYTE_ARRAY)
    .setColumnEncoding('s_dlba', pw.Encoding.DELTA_LENGTH_BYTE_ARRAY)
    .setColumnEncoding('s_plain', pw.Encoding.PLAIN)
    .setColumnDictionaryEnabled('s_dict', true)
    .setColumnEncoding('d_bss', pw.Encoding.BYTE_STREAM_SPLIT)
    .setColumnEncoding('f_bss', pw.Encoding.BYTE_STREAM_SPLIT)
    .setColumnEncoding('i64_dbp', pw.Encoding.DELTA_BINARY_PACKED)
    .setColumnEncoding('i32_dbp', pw.Encoding.DELTA_BINARY_PACKED)
    .setColumnEncoding('ts_dbp', pw.Encoding.DELTA_BINARY_PACKED)
    .setColumnEncoding('b_rle', pw.Encoding.RLE)
    .build();
  fs.writeFileSync(file, pw.writeParquet(pw.Table.fromIPCStream(arrow.tableToIPC(table, 'stream')), props));
}

test("arrow-rs's files: DATA_PAGE_V2, many pages, DELTA_BYTE_ARRAY, RLE booleans, INT32, FLOAT, milliseconds — every value as DuckDB reads it", async () => {
  for (const version of ['v1', 'v2']) {
    for (const codec of ['UNCOMPRESSED', 'SNAPPY', 'GZIP', 'ZSTD', 'LZ4_RAW']) {
      const f = path.join(DIR, `arrow-rs-${version}-${codec}.parquet`);
      writeArrowRs(f, { version, codec });
      const pages = dump(f).filter((l) => l.page).map((l) => l.page);
      assert.ok(pages.every((p) => p.type === (version === 'v2' ? 3 : 0) || p.type === 2), `${version}: ${version === 'v2' ? 'DATA_PAGE_V2' : 'DATA_PAGE'} pages`);
      assert.ok(pages.filter((p) => p.column === 0).length > 3, 'several pages per chunk');
      assert.deepEqual([...new Set(pages.filter((p) => p.type !== 2).map((p) => p.encoding))].sort(),
        ['BYTE_STREAM_SPLIT', 'DELTA_BINARY_PACKED', 'DELTA_BYTE_ARRAY', 'DELTA_LENGTH_BYTE_ARRAY', 'PLAIN', 'RLE', 'RLE_DICTIONARY']);
      const cols = valuesOf(f);
      const rows = await rowsOf(`SELECT s_dba, s_dlba, s_plain, s_dict, d_bss, f_bss, i64_dbp::VARCHAR AS i64, i32_dbp::VARCHAR AS i32,
          epoch_ms(ts_dbp)::VARCHAR AS ts_ms, b_rle FROM read_parquet('${f}', file_row_number = true) ORDER BY file_row_number`);
      const name = path.basename(f);
      assert.equal(cols[0].v.length, 30000);
      for (const [i, key] of ['s_dba', 's_dlba', 's_plain', 's_dict'].entries()) assert.deepEqual(cols[i].v, rows.map((r) => r[key]), `${name}: ${key}`);
      assert.deepEqual(cols[4].v.map((x) => (x === null ? null : Number(x))), rows.map((r) => r.d_bss), `${name}: d_bss`);
      assert.deepEqual(cols[5].v.map((x) => (x === null ? null : Math.fround(Number(x)))), rows.map((r) => r.f_bss), `${name}: f_bss`);
      assert.deepEqual(cols[6].v, rows.map((r) => r.i64), `${name}: i64_dbp`);
      assert.deepEqual(cols[7].v, rows.map((r) => r.i32), `${name}: i32_dbp`);
      assert.deepEqual(cols[8].v, rows.map((r) => r.ts_ms), `${name}: ts_dbp`);
      assert.deepEqual(cols[9].v, rows.map((r) => r.b_rle), `${name}: b_rle`);
    }
  }
});

// Our reader's rows as the server will load them: CSV, parsed back.
function csvOf(file) {
  const r = spawnSync(CHECK, ['--csv', file], { encoding: 'utf8', maxBuffer: 1 << 28 });
  assert.equal(r.stderr, '', `no sanitizer report for ${path.basename(file)}`);
  assert.equal(r.status, 0, `${path.basename(file)}: ${r.stdout.split('\n').find((l) => l.startsWith('ERROR'))}`);
  const { parse } = require('csv-parse/sync');
  return parse(r.stdout, { columns: true, relax_column_count: false });
}

test('rows as CSV, the way loads will take them: every field of every row as DuckDB reads it, maps and lists as JSON', async () => {
  for (const f of files) {
    const ours = csvOf(f);
    const rows = await rowsOf(`SELECT line::VARCHAR AS line, account, resource, cost, amount::VARCHAR AS amount,
        strftime(usage_start, '%Y-%m-%dT%H:%M:%S.%fZ') AS usage_start, flag::VARCHAR AS flag, coalesce(maybe::VARCHAR, '') AS maybe,
        to_json(resource_tags)::VARCHAR AS resource_tags, to_json(list)::VARCHAR AS list
      FROM read_parquet('${f}', file_row_number = true) ORDER BY file_row_number`);
    const name = path.basename(f);
    assert.deepEqual(Object.keys(ours[0]), ['line', 'account', 'resource', 'cost', 'amount', 'usage_start', 'flag', 'maybe', 'resource_tags', 'list']);
    assert.equal(ours.length, rows.length);
    const pick = (k, fn = (x) => x) => [ours.map((r) => fn(r[k])), rows.map((r) => r[k])];
    for (const k of ['line', 'account', 'resource', 'amount', 'usage_start', 'flag', 'maybe']) assert.deepEqual(...pick(k), `${name}: ${k}`);
    assert.deepEqual(...pick('cost', Number), `${name}: cost, the shortest text that reads back to the same double`);
    assert.deepEqual(ours.map((r) => JSON.parse(r.resource_tags)), rows.map((r) => JSON.parse(r.resource_tags)), `${name}: the map as JSON`);
    assert.deepEqual(ours.map((r) => JSON.parse(r.list)), rows.map((r) => JSON.parse(r.list)), `${name}: the list as JSON`);
    // doubles are written in the fewest digits: 0.0001234 * 3 is "0.0003702", not "0.00037020000000000002"
    assert.ok(ours.every((r) => r.cost.replace(/^-?0\./, '').replace(/e.*/, '').length <= 17));
  }
  // arrow-rs's files: millisecond timestamps, FLOAT, INT32, RLE booleans, DELTA_BYTE_ARRAY
  const f = path.join(DIR, 'arrow-rs-rows.parquet');
  writeArrowRs(f, { version: 'v2', codec: 'ZSTD' });
  const ours = csvOf(f);
  const rows = await rowsOf(`SELECT coalesce(s_dba, '') AS s_dba, coalesce(strftime(ts_dbp, '%Y-%m-%dT%H:%M:%S.%gZ'), '') AS ts,
      coalesce(b_rle::VARCHAR, '') AS b, coalesce(i32_dbp::VARCHAR, '') AS i32, f_bss FROM read_parquet('${f}', file_row_number = true) ORDER BY file_row_number`);
  assert.deepEqual(ours.map((r) => r.s_dba), rows.map((r) => r.s_dba));
  assert.deepEqual(ours.map((r) => r.ts_dbp), rows.map((r) => r.ts));
  assert.deepEqual(ours.map((r) => r.b_rle), rows.map((r) => r.b));
  assert.deepEqual(ours.map((r) => r.i32_dbp), rows.map((r) => r.i32));
  assert.deepEqual(ours.map((r) => (r.f_bss === '' ? null : Math.fround(Number(r.f_bss)))), rows.map((r) => r.f_bss));
});
