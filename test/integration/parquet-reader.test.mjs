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
      i * 0.0001234 AS cost, (i / 7.0)::DECIMAL(20, 9) AS amount, TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND AS usage_start,
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
