#!/usr/bin/env node
// focus-delivery.mjs — a FOCUS CSV (the real FOCUS sample in ../shared/testdata/focus, or any FOCUS
// export) written into the S3 emulator's tree as AWS Data Exports delivers a FOCUS export, so
// sync_cur_source can be tested on a FOCUS export whose rows are someone else's bytes.
//
//   node test/generator/focus-delivery.mjs --csv FILE --root ROOT --bucket BUCKET --export NAME
//        [--prefix P] [--provider AWS] [--files N] [--format csv.gz|parquet] [--execution-id ID]
//        [--drop-rows K]
//
// Layout ("Understanding export delivery", AWS Data Exports user guide; the same as a CUR 2.0
// export's, which test/generator/gen-cur.mjs writes): for each billing period of the rows,
//   <prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/<export>-00001.csv.gz (… -0000N)
//   <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json
// an overwriting export: each run replaces the period's files and its manifest.
// The manifest has the fields of AWS's "Data Exports manifest file reference" (executionId,
// exportArn, columns, dataFiles, additionalOutputFiles); its column objects carry the header's
// names (the reference's description of a column object was not readable here: see gen-cur.mjs).
// CSV rows are the input's records byte for byte (csv-parse's raw text, header included), gzip'd:
// what the export's writer wrote, NULL as a bare word included. --format parquet writes each file
// through DuckDB instead, typed as FOCUS types its columns (focusParquetSelect below), named
// <export>-0000N.snappy.parquet.
// --provider keeps the rows of one ProviderName (an AWS export holds AWS's rows only); --drop-rows K
// leaves out every K-th row (a later execution that differs from the first); --execution-id names
// the run (default: derived from the rows).
// Prints one JSON line: {"periods":[{"period","manifest","rows","billedCost","files":[{"key","rows"}]}]}
// where billedCost is the exact decimal sum of the BilledCost fields written.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { parseOptions } from './cli-options.mjs';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));

const USAGE = `usage: node focus-delivery.mjs --csv FILE --root ROOT --bucket BUCKET --export NAME
         [--prefix P] [--provider NAME] [--files N] [--format csv.gz|parquet] [--execution-id ID] [--drop-rows K]`;
const OPTS = {
  csv: { t: 'str' }, root: { t: 'str' }, bucket: { t: 'str' }, export: { t: 'str' }, prefix: { t: 'str', d: '' },
  provider: { t: 'str' }, files: { t: 'int', d: 1, min: 1 }, format: { t: 'str', d: 'csv.gz', one: ['csv.gz', 'parquet'] },
  'execution-id': { t: 'str' }, 'drop-rows': { t: 'int', d: 0 }, help: { t: 'bool', d: false },
};

// The SELECT list that gives a FOCUS CSV's columns FOCUS's data types in DuckDB: Decimal for costs,
// prices and quantities, Date/Time for the period bounds, Key-Value (a map) for Tags.
export function focusParquetSelect(names) {
  return names.map((n) => {
    const q = `"${n}"`;
    if (/(Cost|Price|Quantity)$/.test(n)) return `CAST(${q} AS DECIMAL(38,15)) AS ${q}`;
    if (/(Start|End)$/.test(n)) return `CAST(${q} AS TIMESTAMP) AS ${q}`;
    if (n === 'Tags') return `CAST(CAST(${q} AS JSON) AS MAP(VARCHAR, VARCHAR)) AS ${q}`;
    return q;
  }).join(', ');
}

// exact decimal sum of decimal strings (FOCUS costs have up to 15 fraction digits here)
function decimalSum(values) {
  const SCALE = 15;
  let sum = 0n;
  for (const v of values) {
    const m = /^(-?)(\d*)(?:\.(\d*))?$/.exec(v.trim());
    if (!m) throw new Error(`BilledCost "${v}" is not a decimal`);
    const x = BigInt((m[2] || '0') + (m[3] ?? '').padEnd(SCALE, '0').slice(0, SCALE));
    sum += m[1] ? -x : x;
  }
  const neg = sum < 0n;
  const a = (neg ? -sum : sum).toString().padStart(SCALE + 1, '0');
  return `${neg ? '-' : ''}${a.slice(0, -SCALE)}.${a.slice(-SCALE)}`.replace(/\.?0+$/, '') || '0';
}

export async function focusDelivery(opt) {
  const { parse } = require('csv-parse/sync');
  const records = parse(fs.readFileSync(opt.csv), { raw: true, relax_quotes: false });
  const header = records[0].record;
  const headerRaw = records[0].raw.replace(/\r?\n$/, '');
  const col = (n) => { const i = header.indexOf(n); if (i < 0) throw new Error(`${opt.csv} has no ${n} column`); return i; };
  const [iProvider, iStart, iCost, iAccount] = ['ProviderName', 'BillingPeriodStart', 'BilledCost', 'BillingAccountId'].map(col);
  let rows = records.slice(1).filter((r) => !opt.provider || r.record[iProvider] === opt.provider);
  if (opt['drop-rows'] > 0) rows = rows.filter((_, i) => (i + 1) % opt['drop-rows'] !== 0);
  const byPeriod = new Map();
  for (const r of rows) {
    const period = r.record[iStart].slice(0, 7);
    if (!/^\d{4}-\d{2}$/.test(period)) throw new Error(`BillingPeriodStart "${r.record[iStart]}" is not a date`);
    if (!byPeriod.has(period)) byPeriod.set(period, []);
    byPeriod.get(period).push(r);
  }
  const root = path.resolve(opt.root, opt.bucket);
  const join = (...parts) => parts.filter((s) => s !== '').join('/');
  const out = [];
  let duck;
  for (const [period, prs] of [...byPeriod].sort()) {
    const executionId = opt['execution-id'] ?? crypto.createHash('sha256')
      .update(prs.map((r) => r.raw).join('')).digest('hex').slice(0, 32).replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5');
    const dataDir = join(opt.prefix, opt.export, 'data', `BILLING_PERIOD=${period}`);
    const manifestKey = join(opt.prefix, opt.export, 'metadata', `BILLING_PERIOD=${period}`, `${opt.export}-Manifest.json`);
    fs.rmSync(path.join(root, dataDir), { recursive: true, force: true });
    fs.mkdirSync(path.join(root, dataDir), { recursive: true });
    const per = Math.ceil(prs.length / opt.files);
    const files = [];
    for (let f = 0; f < opt.files; f++) {
      const part = prs.slice(f * per, (f + 1) * per);
      if (part.length === 0) break;
      const name = `${opt.export}-${String(f + 1).padStart(5, '0')}`;
      const text = headerRaw + '\n' + part.map((r) => r.raw.replace(/\r?\n$/, '') + '\n').join('');
      let key = `${dataDir}/${name}.csv.gz`;
      if (opt.format === 'parquet') {
        const { DuckDBInstance } = require('@duckdb/node-api');
        duck ??= await (await DuckDBInstance.create(':memory:')).connect();
        const tmp = path.join(root, dataDir, `${name}.csv`);
        fs.writeFileSync(tmp, text);
        key = `${dataDir}/${name}.snappy.parquet`;
        const read = `read_csv('${tmp}', header = true, all_varchar = true, nullstr = 'NULL')`;
        await duck.run(`COPY (SELECT ${focusParquetSelect(header)} FROM ${read}) TO '${path.join(root, key)}' (FORMAT parquet, COMPRESSION snappy)`);
        fs.rmSync(tmp);
      } else {
        fs.writeFileSync(path.join(root, key), zlib.gzipSync(text));
      }
      files.push({ key, rows: part.length });
    }
    const manifest = {
      executionId,
      exportArn: `arn:aws:bcm-data-exports:us-east-1:${prs[0].record[iAccount]}:export/${opt.export}`,
      columns: header.map((name) => ({ name })),
      dataFiles: files.map((f) => `s3://${opt.bucket}/${f.key}`),
      additionalOutputFiles: [],
    };
    fs.mkdirSync(path.dirname(path.join(root, manifestKey)), { recursive: true });
    fs.writeFileSync(path.join(root, manifestKey), JSON.stringify(manifest, null, 2) + '\n');
    out.push({ period, manifest: manifestKey, executionId, rows: prs.length,
      billedCost: decimalSum(prs.map((r) => r.record[iCost])), files });
  }
  return { periods: out };
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const opt = parseOptions(process.argv.slice(2), OPTS, USAGE);
  if (opt.help) { console.log(USAGE); process.exit(0); }
  for (const k of ['csv', 'root', 'bucket', 'export']) if (!opt[k]) throw new Error(`--${k} is required\n${USAGE}`);
  console.log(JSON.stringify(await focusDelivery(opt)));
}
