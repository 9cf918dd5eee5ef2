#!/usr/bin/env node
// gen-parquet.mjs — convert a CUR CSV (legacy or CUR 2.0, plain or .csv.gz) into a Parquet file written
// by DuckDB, an independent writer, so pg_billops' own Parquet reader can be tested against files it
// did not produce. read-parquet.mjs next to this file reads them back with DuckDB as the reference.
//
//   node test/generator/gen-parquet.mjs --csv FILE --out FILE.parquet
//        [--layout cur2|legacy-athena] [--compression uncompressed|snappy|gzip|zstd|lz4_raw]
//        [--row-group-size N] [--version v1|v2] [--dictionary on|off] [--timestamp-unit ms|us|ns]
//
// --layout defaults to the CSV's own (legacy-athena for a category/Name header, cur2 for snake_case);
// --row-group-size defaults to DuckDB's 122880; --version v1; --dictionary on; --timestamp-unit us.
// A one-line JSON summary goes to stdout: {"out","rows","row_groups","columns","leaf_columns","bytes",...}.
// DuckDB comes from test/emulators/node_modules (`npm ci` there, as test/lib.sh does).
//
// ---------------------------------------------------------------------------------------------------
// What DuckDB 1.5.6 (@duckdb/node-api 1.5.6-r.1) writes, measured with `read-parquet.mjs --meta` (footer
// from parquet_metadata/parquet_schema, every page header decoded from the file) on a CUR 2.0 month from
// gen-cur.mjs (5000 rows, 130 columns, row groups of 2048) and on the real legacy sample
// (shared/testdata/cur/legacy-cur-2023-11-sample.csv, 1281 rows, 94 columns), with every --compression,
// --version v1/v2, --dictionary on/off and --timestamp-unit. Re-check after a DuckDB upgrade.
//
// Types (identical under v1 and v2; every top-level column OPTIONAL, schema root "duckdb_schema"):
//   VARCHAR        BYTE_ARRAY, converted_type UTF8 only: no LogicalType STRING is written (arrow-rs does
//                  write StringType), so a reader must accept the converted type alone
//   DOUBLE         DOUBLE, no logical/converted type
//   TIMESTAMP      INT64, LogicalType TIMESTAMP(isAdjustedToUTC=false, MICROS) + converted TIMESTAMP_MICROS
//     _MS / _NS    INT64, TIMESTAMP(false, MILLIS) (+ TIMESTAMP_MILLIS) / TIMESTAMP(false, NANOS)
//   MAP(VARCHAR,X) OPTIONAL group <name> (converted MAP) { REPEATED group key_value { REQUIRED BYTE_ARRAY
//                  key (UTF8); OPTIONAL X value } }: leaves "<name>, key_value, key|value", max_rep 1,
//                  max_def 2 (key) / 3 (value). A NULL map is def 0, an empty map def 1.
//   FileMetaData.version is 1 for v1 and 2 for v2; created_by "DuckDB version v1.5.6 (build 069cc9f9b5)".
//
// Pages: ALWAYS DATA_PAGE (the V1 page header), under --version v2 too: PARQUET_VERSION only changes the
// encodings, DuckDB's writer never emits DATA_PAGE_V2 (its PrimitiveColumnWriter hard-codes
// PageType::DATA_PAGE). One DICTIONARY_PAGE (encoding PLAIN, is_sorted unset) before the data when the
// chunk is dictionary-encoded. Exactly one data page per column chunk: DuckDB starts a new page only past
// 100 MB uncompressed (MAX_UNCOMPRESSED_PAGE_SIZE, not configurable), so multi-page chunks never occur at
// test sizes. Definition/repetition level encoding in every data page header: RLE (the hybrid, with
// the 4-byte length prefix of V1 pages). No page CRC, no page statistics, no INDEX_PAGE. Chunk
// statistics (min/max, null_count) are written, and Bloom filters for dictionary-encoded chunks (after
// the row groups). ColumnChunk.file_offset reads 0: use the ColumnMetaData page offsets. The chunk's
// encodings list (as parquet_metadata shows it) names the data page encoding only.
//
// Encodings per column kind (dictionary: DuckDB uses one unless the chunk's distinct values exceed
// DICTIONARY_SIZE_LIMIT, by default a fraction of the row group size, or the chunk has no non-NULL value):
//                      v1 dictionary      v1 no dictionary   v2 dictionary    v2 no dictionary
//   BYTE_ARRAY         PLAIN_DICTIONARY   PLAIN              RLE_DICTIONARY   DELTA_LENGTH_BYTE_ARRAY
//   DOUBLE             PLAIN_DICTIONARY   PLAIN              RLE_DICTIONARY   BYTE_STREAM_SPLIT
//   INT64 (timestamp)  PLAIN_DICTIONARY   PLAIN              RLE_DICTIONARY   DELTA_BINARY_PACKED
//   (v1 data pages say PLAIN_DICTIONARY, v2 say RLE_DICTIONARY; the bytes are the same RLE/bit-packed
//   indices with a leading bit-width byte.) Seen in CUR data: identity_line_item_id, line_item_resource_id,
//   usage start/end dates and most amounts go non-dictionary at 2048-row groups; all-NULL columns
//   (cost_analytics_*, reservation_net_*, the key/value leaves of the never-filled tags map) are
//   non-dictionary too, their data page holding definition levels only. --dictionary off: every chunk non-dictionary.
//   DuckDB never writes DELTA_BYTE_ARRAY, RLE-encoded booleans (CUR has no BOOLEAN) or DATA_PAGE_V2;
//   for those, and for multi-page chunks, another writer is needed (arrow-rs via the npm package
//   parquet-wasm can: per-column encodings, WriterVersion V2 -> DATA_PAGE_V2, small data pages).
//
// Codecs: one per file, as given: UNCOMPRESSED, SNAPPY, GZIP, ZSTD, LZ4_RAW (DuckDB's lz4 is LZ4_RAW,
// never the deprecated Hadoop-framed LZ4). Dictionary pages are compressed with the same codec.
//
// Row groups: DuckDB rounds ROW_GROUP_SIZE up to whole 2048-row vectors (its minimum is 2048), so with
// --row-group-size N every row group but the last holds ceil(N/2048)*2048 rows (1000 -> 2048, 3000 ->
// 4096, 5000 rows at N=5000 -> one group). The summary's row_group_rows lists the actual sizes.
// Same input and options => byte-identical file.
// ---------------------------------------------------------------------------------------------------

import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { CUR2_DICTIONARY } from './gen-cur.mjs';
import { parseOptions } from './cli-options.mjs';

// Packages live in test/emulators (the one package.json of the test tree), as in test/integration.
const require = createRequire(new URL('../emulators/package.json', import.meta.url));

const USAGE = `usage: node gen-parquet.mjs --csv FILE[.gz] --out FILE.parquet
         [--layout cur2|legacy-athena] [--compression uncompressed|snappy|gzip|zstd|lz4_raw]
         [--row-group-size N] [--version v1|v2] [--dictionary on|off] [--timestamp-unit ms|us|ns]`;

const OPTS = {
  csv: { t: 'str' }, out: { t: 'str' }, layout: { t: 'str', one: ['cur2', 'legacy-athena'] },
  compression: { t: 'str', d: 'snappy', one: ['uncompressed', 'snappy', 'gzip', 'zstd', 'lz4_raw'] },
  'row-group-size': { t: 'int', d: 122880, min: 1 }, // DuckDB's own default
  version: { t: 'str', d: 'v1', one: ['v1', 'v2'] }, dictionary: { t: 'str', d: 'on', one: ['on', 'off'] },
  'timestamp-unit': { t: 'str', d: 'us', one: ['ms', 'us', 'ns'] }, help: { t: 'bool', d: false },
};

export function parseArgs(argv) {
  const o = parseOptions(argv, OPTS, USAGE);
  if (o.help) return o;
  for (const k of ['csv', 'out']) if (o[k] === undefined) throw new Error(`missing required option --${k}\n${USAGE}`);
  return o;
}

// ---------------------------------------------------------------------------------------------------
// Column names.
//
// legacy-athena: the names AWS's Athena integration gives a legacy CUR ("lineItem/UnblendedCost" ->
// "line_item_unblended_cost", "reservation/ReservationARN" -> "reservation_reservation_a_r_n",
// "resourceTags/user:CostCenter" -> "resource_tags_user_cost_center"): an underscore before every
// upper-case letter, lower case, every other non-alphanumeric character to one underscore, category
// and attribute joined by "_", no trailing underscore. Sources: AWS CUR user guide, "Migrating from CUR
// to Data Exports CUR 2.0" (https://docs.aws.amazon.com/cur/latest/userguide/dataexports-migrate.html:
// legacy CUR splits the maps into columns such as resource_tags_user_creator; its "Column names" section
// describes the normalization), Athena's naming rules (lower case, no special characters but "_":
// https://docs.aws.amazon.com/athena/latest/ug/tables-databases-columns-names.html), and AWS's own CUR
// Query Library for Athena (awslabs/aws-well-architected-labs), which queries reservation_reservation_a_r_n,
// savings_plan_savings_plan_a_r_n, line_item_unblended_cost. No AWS page states the rule as an
// algorithm; this is the same rule as pg_billops' cur_snake_name (src/cur_columns.c) and
// billops.tag_key_canonical, so both sides agree on what "Athena's name" means.
function snakePart(s) {
  let out = '';
  for (const ch of s) {
    if (ch >= 'A' && ch <= 'Z') out += (out && !out.endsWith('_') ? '_' : '') + ch.toLowerCase();
    else if ((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')) out += ch;
    else if (out && !out.endsWith('_')) out += '_';
  }
  return out;
}
export function athenaName(header) {
  const slash = header.indexOf('/');
  if (slash < 0) return header.toLowerCase();
  return `${snakePart(header.slice(0, slash))}_${snakePart(header.slice(slash + 1))}`.replace(/_+$/, '');
}

// ---------------------------------------------------------------------------------------------------
// Column types: AWS's CUR 2.0 data dictionary (shared/docs/cur2-data-dictionary.tsv, read by gen-cur.mjs
// from the Data Exports user guide's table-dictionary-cur2-* pages) gives string | double | timestamp |
// map<string,string> | map<string,double> (the discount map). Amounts are DOUBLE because AWS types them
// double; rates, counts and RI/SP times are string in the dictionary and stay VARCHAR. The same table
// types a legacy CUR renamed to Athena's names: its static columns have the same snake names as in
// CUR 2.0, and where AWS's CUR 2.0 pages gave no type the dictionary took legacy CUR's Athena type
// (shared/docs/cur2-delivery-layout.md). Every other column (legacy product_*, resource_tags_*,
// cost_category_* columns, unknown attributes) is VARCHAR. The brief's MAP(VARCHAR, VARCHAR) holds for
// product, resource_tags, cost_category and tags; discount is MAP(VARCHAR, DOUBLE) as AWS types it.
const DICT_TYPE = new Map(CUR2_DICTIONARY.map((c) => [c.name, c.type]));
const TS_TYPE = { ms: 'TIMESTAMP_MS', us: 'TIMESTAMP', ns: 'TIMESTAMP_NS' };

export function duckType(name, opt) {
  switch (DICT_TYPE.get(name)) {
    case 'double': return 'DOUBLE';
    case 'timestamp': return TS_TYPE[opt['timestamp-unit']];
    case 'map<string,string>': return 'MAP(VARCHAR, VARCHAR)';
    case 'map<string,double>': return 'MAP(VARCHAR, DOUBLE)';
    default: return 'VARCHAR';
  }
}

const sqlString = (s) => `'${String(s).replace(/'/g, "''")}'`;
const sqlIdent = (s) => `"${String(s).replace(/"/g, '""')}"`;

// Empty CSV fields: VARCHAR columns keep '' (the CSV cannot tell "absent" from "empty string", and
// Athena's CSV reader returns '' too), typed columns get NULL (a DOUBLE, TIMESTAMP or MAP cannot hold
// ''; an empty map field becomes a NULL map, not an empty one). DuckDB's read_csv would turn every
// empty field into NULL (its nullstr defaults to ''), so nullstr is set to a string CUR never contains
// and typed columns are NULLIF(x, '')'d explicitly.
const NEVER_IN_CUR = '\u0001\u0002pg_billops-no-null\u0002\u0001';

function selectExpr(src, dst, type) {
  const col = sqlIdent(src);
  const as = ` AS ${sqlIdent(dst)}`;
  if (type === 'VARCHAR') return col + as;
  // Maps arrive as JSON object text ({"user_team":"platform"}); DuckDB keeps the JSON key order.
  if (type.startsWith('MAP')) return `CAST(CAST(NULLIF(${col}, '') AS JSON) AS ${type})${as}`;
  // Plain CAST, not TRY_CAST: a value that does not parse must fail the conversion, not become NULL.
  return `CAST(NULLIF(${col}, '') AS ${type})${as}`;
}

export async function convert(opt) {
  const { DuckDBInstance } = require('@duckdb/node-api');
  const instance = await DuckDBInstance.create(':memory:', {
    // One thread: rows keep the CSV's order and the same input gives the same bytes on every run.
    threads: '1',
    preserve_insertion_order: 'true',
  });
  const con = await instance.connect();
  try {
    const csv = path.resolve(opt.csv);
    const out = path.resolve(opt.out);
    // Header, delimiter and quoting are CUR's (RFC 4180, "" inside quotes); only the column count and
    // names are taken from the file. .gz is recognised by extension. hive_partitioning off: CUR 2.0's
    // key .../data/BILLING_PERIOD=2024-01/... would otherwise add a BILLING_PERIOD column.
    const readCsv = `read_csv(${sqlString(csv)}, header = true, all_varchar = true, delim = ',', quote = '"',
      escape = '"', nullstr = ${sqlString(NEVER_IN_CUR)}, normalize_names = false, hive_partitioning = false)`;
    const names = (await (await con.runAndReadAll(`DESCRIBE SELECT * FROM ${readCsv}`)).getRowObjectsJS())
      .map((r) => r.column_name);
    const legacy = names.some((n) => n.includes('/'));
    const layout = opt.layout ?? (legacy ? 'legacy-athena' : 'cur2');
    if (layout === 'cur2' && legacy) throw new Error('--layout cur2 needs a CUR 2.0 CSV (snake_case header); this one is legacy (category/Name)');
    if (layout === 'legacy-athena' && !legacy) throw new Error('--layout legacy-athena needs a legacy CUR CSV (category/Name header); this one is CUR 2.0');

    const cols = names.map((src) => {
      const dst = layout === 'legacy-athena' ? athenaName(src) : src;
      return { src, dst, type: duckType(dst, opt) };
    });
    const seen = new Map();
    for (const c of cols) {
      // Athena folds names that differ only in case or punctuation; a Parquet file cannot hold two
      // columns of one name, so say which headers collided rather than invent a suffix.
      if (seen.has(c.dst)) throw new Error(`headers "${seen.get(c.dst)}" and "${c.src}" both become column "${c.dst}"`);
      seen.set(c.dst, c.src);
    }

    // DuckDB has no on/off switch for dictionary encoding (its COPY options are DICTIONARY_SIZE_LIMIT, the
    // most distinct values a chunk's dictionary may hold, and STRING_DICTIONARY_PAGE_SIZE_LIMIT, its bytes,
    // which must be >= 1). A chunk whose dictionary is "full" is written without one, so
    // DICTIONARY_SIZE_LIMIT 0 turns dictionaries off for every chunk. (1 is not enough: a chunk with a
    // single distinct value still gets a one-entry dictionary.)
    const dictOff = opt.dictionary === 'off' ? ', DICTIONARY_SIZE_LIMIT 0' : '';
    // The rows go through a table first: DuckDB closes a row group at the first input chunk boundary at
    // or past ROW_GROUP_SIZE, and the CSV reader's chunks vary in size, while a table scan yields whole
    // 2048-row vectors. So every row group but the last holds exactly --row-group-size rounded up to a
    // multiple of 2048 rows, whatever the CSV. (The table lives in memory; DuckDB spills to its temp
    // directory past its memory limit, and test CSVs are far smaller.)
    await con.run(`CREATE TEMP TABLE cur AS SELECT ${cols.map((c) => selectExpr(c.src, c.dst, c.type)).join(',\n  ')}
      FROM ${readCsv}`);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    await con.run(`COPY (SELECT * FROM cur) TO ${sqlString(out)} (FORMAT parquet, COMPRESSION ${opt.compression},
      ROW_GROUP_SIZE ${opt['row-group-size']}, PARQUET_VERSION ${opt.version.toUpperCase()}${dictOff})`);

    const [meta] = await (await con.runAndReadAll(
      `SELECT num_rows, num_row_groups FROM parquet_file_metadata(${sqlString(out)})`)).getRowObjectsJS();
    const groups = (await (await con.runAndReadAll(`SELECT DISTINCT row_group_id, row_group_num_rows
      FROM parquet_metadata(${sqlString(out)}) ORDER BY row_group_id`)).getRowObjectsJS()).map((r) => Number(r.row_group_num_rows));
    const [leaves] = await (await con.runAndReadAll(
      `SELECT count(*) AS n FROM parquet_schema(${sqlString(out)}) WHERE num_children IS NULL OR num_children = 0`)).getRowObjectsJS();
    return {
      out, layout, rows: Number(meta.num_rows), row_groups: Number(meta.num_row_groups), columns: cols.length,
      row_group_rows: groups, leaf_columns: Number(leaves.n), bytes: fs.statSync(out).size, compression: opt.compression,
      version: opt.version, dictionary: opt.dictionary, row_group_size: opt['row-group-size'],
      timestamp_unit: opt['timestamp-unit'],
    };
  } finally {
    con.closeSync();
    instance.closeSync();
  }
}

async function main() {
  let opt;
  try { opt = parseArgs(process.argv.slice(2)); } catch (e) { process.stderr.write(`gen-parquet: ${e.message}\n`); process.exit(2); }
  if (opt.help) { process.stdout.write(USAGE + '\n'); return; }
  process.stdout.write(JSON.stringify(await convert(opt)) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => { process.stderr.write(`gen-parquet: ${e.message || e}\n`); process.exit(1); });
}
