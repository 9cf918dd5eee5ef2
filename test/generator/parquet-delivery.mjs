#!/usr/bin/env node
// parquet-delivery.mjs — turn a CSV delivery that gen-cur.mjs wrote into the S3 emulator's tree into
// the same delivery as AWS writes it in Parquet, each file converted by DuckDB (gen-parquet.mjs), so
// sync_cur_source can be tested on Parquet deliveries whose every value an independent reader checks.
//
//   node test/generator/parquet-delivery.mjs --root ROOT --bucket BUCKET --manifest KEY
//        [--compression snappy|gzip|zstd|lz4_raw|uncompressed] [--row-group-size N] [--version v1|v2]
//        [--writer duckdb|arrow-rs] [--keep-csv]
//
// --writer arrow-rs rewrites each DuckDB file with arrow-rs (npm parquet-wasm) at its default data page
// size limit of 1 MiB: DuckDB writes one page per column chunk (see gen-parquet.mjs), arrow-rs many,
// as Spark- and parquet-mr-style writers do, so memory bounded by pages can be measured on it.
//
// CUR 2.0 (a manifest with "dataFiles"): the files stay in their folder, <export>-00001.csv.gz becoming
//   <export>-00001.snappy.parquet. AWS's manifest reference gives data files as
//   s3://<bucket>/<path>/<export-name>-<part-number>.<extension> without naming the Parquet extension;
//   ".snappy.parquet" is what Athena-integrated AWS reports use, and pg_billops only relies on ".parquet".
// Legacy CUR with the Athena integration (a manifest with "reportKeys"): Parquet files go to
//   <prefix>/<report>/<report>/year=YYYY/month=M/<report>-0000N.snappy.parquet, next to
//   <prefix>/<report>/cost_and_usage_data_status/cost_and_usage_data_status.parquet and
//   crawler-cfn.yml, with the manifest left in its period folder listing the Parquet keys. The
//   folder names are those of the Glue tables in AWS's generated crawler-cfn.yml as users republish
//   it (the status table at <prefix>/<report>/cost_and_usage_data_status/, the data under
//   <prefix>/<report>/<report>/ with partitions year and month); no AWS page was readable here that
//   lists the keys themselves, and the month's zero padding is not confirmed. What such a manifest says in
//   "compression" and "contentType" no AWS page shows: this writes "Parquet" in both (the report
//   definition's Format and Compression values), and pg_billops takes any of the signs.
// The CSV files are removed (kept with --keep-csv, so one month can be timed in both formats by
// swapping manifests); the manifest (and its copy in the assembly folder) is rewritten.
// Prints one JSON line: {"files":[{"key","rows","bytes","writer"}],"manifest":KEY}.

import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { convert } from './gen-parquet.mjs';
import { parseOptions } from './cli-options.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));

// The same rows and schema through arrow-rs: row groups of at most `rows` rows, 1 MiB data pages (its default).
function rewriteWithArrowRs(file, opt) {
  const pw = require('parquet-wasm/node');
  const codec = { uncompressed: 'UNCOMPRESSED', snappy: 'SNAPPY', gzip: 'GZIP', zstd: 'ZSTD', lz4_raw: 'LZ4_RAW' }[opt.compression];
  const props = new pw.WriterPropertiesBuilder()
    .setWriterVersion(opt.version === 'v1' ? pw.WriterVersion.V1 : pw.WriterVersion.V2)
    .setCompression(pw.Compression[codec])
    .setMaxRowGroupSize(opt['row-group-size'])
    .build();
  fs.writeFileSync(file, pw.writeParquet(pw.readParquet(fs.readFileSync(file)), props));
  return fs.statSync(file).size;
}

const USAGE = `usage: node parquet-delivery.mjs --root ROOT --bucket BUCKET --manifest KEY
         [--compression snappy|gzip|zstd|lz4_raw|uncompressed] [--row-group-size N] [--version v1|v2]
         [--writer duckdb|arrow-rs] [--keep-csv]`;
const OPTS = {
  root: { t: 'str' }, bucket: { t: 'str' }, manifest: { t: 'str' },
  compression: { t: 'str', d: 'snappy', one: ['uncompressed', 'snappy', 'gzip', 'zstd', 'lz4_raw'] },
  'row-group-size': { t: 'int', d: 122880, min: 1 }, version: { t: 'str', d: 'v1', one: ['v1', 'v2'] },
  writer: { t: 'str', d: 'duckdb', one: ['duckdb', 'arrow-rs'] }, 'keep-csv': { t: 'bool', d: false },
  help: { t: 'bool', d: false },
};

export async function toParquet(opt) {
  const root = path.resolve(opt.root, opt.bucket);
  const manifestPath = path.join(root, opt.manifest);
  const manifest = JSON.parse(fs.readFileSync(manifestPath, 'utf8'));
  const legacy = Array.isArray(manifest.reportKeys);
  const keys = legacy ? manifest.reportKeys : manifest.dataFiles.map((u) => u.replace(/^s3:\/\/[^/]+\//, ''));
  const ext = opt.compression === 'snappy' ? '.snappy.parquet' : opt.compression === 'uncompressed' ? '.parquet' : `.${opt.compression}.parquet`;
  let target;
  if (legacy) {
    // <prefix>/<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json
    const m = /^(.*?)([^/]+)\/(\d{4})(\d{2})\d{2}-\d{8}\/[^/]+-Manifest\.json$/.exec(opt.manifest);
    if (!m) throw new Error(`--manifest ${opt.manifest} is not a legacy CUR period manifest`);
    const [, pre, report, year, month] = m;
    const dir = `${pre}${report}/${report}/year=${year}/month=${Number(month)}`;
    target = (k, i) => `${dir}/${report}-${String(i + 1).padStart(5, '0')}${ext}`;
  } else {
    target = (k) => k.replace(/(\.csv)?(\.gz)?$/, ext);
  }
  const files = [];
  for (const [i, key] of keys.entries()) {
    const out = target(key, i);
    const r = await convert({ csv: path.join(root, key), out: path.join(root, out), layout: legacy ? 'legacy-athena' : 'cur2',
      compression: opt.compression, 'row-group-size': opt['row-group-size'], version: opt.version, dictionary: 'on', 'timestamp-unit': 'us' });
    if (opt.writer === 'arrow-rs') r.bytes = rewriteWithArrowRs(path.join(root, out), opt);
    files.push({ key: out, rows: r.rows, bytes: r.bytes, writer: opt.writer });
  }
  if (!opt['keep-csv']) for (const key of keys) if (!files.some((f) => f.key === key)) fs.rmSync(path.join(root, key), { force: true });
  if (legacy) {
    const m = /^(.*?)([^/]+)\/\d{8}-\d{8}\//.exec(opt.manifest);
    const base = `${m[1]}${m[2]}`;
    // the Athena integration's other artifacts: pg_billops must pass them by
    fs.mkdirSync(path.join(root, base, 'cost_and_usage_data_status'), { recursive: true });
    fs.writeFileSync(path.join(root, base, 'cost_and_usage_data_status', 'cost_and_usage_data_status.parquet'), 'PAR1 (status table placeholder)');
    fs.writeFileSync(path.join(root, base, 'crawler-cfn.yml'), '# AWS Glue crawler template (placeholder)\n');
    manifest.reportKeys = files.map((f) => f.key);
    manifest.compression = 'Parquet';
    manifest.contentType = 'Parquet';
    manifest.additionalArtifactKeys = [
      { artifactType: 'CustomerCloudFormationTemplate', name: `${base}/crawler-cfn.yml` },
    ];
  } else {
    manifest.dataFiles = files.map((f) => `s3://${opt.bucket}/${f.key}`);
  }
  const text = JSON.stringify(manifest, null, 2) + '\n';
  const stat = fs.statSync(manifestPath);
  fs.writeFileSync(manifestPath, text);
  fs.utimesSync(manifestPath, stat.atime, stat.mtime); // keep the delivery's order among manifests
  if (legacy && manifest.assemblyId) {
    const copy = path.join(path.dirname(manifestPath), manifest.assemblyId, path.basename(manifestPath));
    if (fs.existsSync(copy)) fs.writeFileSync(copy, text);
  }
  return { manifest: opt.manifest, files };
}

async function main() {
  let opt;
  try {
    opt = parseOptions(process.argv.slice(2), OPTS, USAGE);
    if (!opt.help) for (const k of ['root', 'bucket', 'manifest']) if (opt[k] === undefined) throw new Error(`missing required option --${k}\n${USAGE}`);
  } catch (e) { process.stderr.write(`parquet-delivery: ${e.message}\n`); process.exit(2); }
  if (opt.help) { process.stdout.write(USAGE + '\n'); return; }
  process.stdout.write(JSON.stringify(await toParquet(opt)) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => { process.stderr.write(`parquet-delivery: ${e.message || e}\n`); process.exit(1); });
}
