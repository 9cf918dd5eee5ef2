#!/usr/bin/env node
// stage-csv.mjs — publish an existing CUR CSV (e.g. the real sample) as a
// legacy CUR delivery in the S3 layout the emulator serves:
//   ROOT/BUCKET/PREFIX/REPORT/yyyymmdd-yyyymmdd/ASSEMBLY/REPORT-1.csv.gz
//   ROOT/BUCKET/PREFIX/REPORT/yyyymmdd-yyyymmdd/ASSEMBLY/REPORT-Manifest.json
//   ROOT/BUCKET/PREFIX/REPORT/yyyymmdd-yyyymmdd/REPORT-Manifest.json  (newest)
// The billing period and payer come from the first data row; the manifest's
// columns from the header.
//
// node stage-csv.mjs --csv FILE --out ROOT --bucket B --prefix P --report R --assembly ID
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) =>
  (v.startsWith('--') ? [...a, [v.slice(2), all[i + 1]]] : a), []));
for (const k of ['csv', 'out', 'bucket', 'report', 'assembly'])
  if (!args[k]) { console.error(`missing --${k}`); process.exit(2); }

const csv = fs.readFileSync(args.csv);
const text = csv.toString('utf8');
const nl = text.indexOf('\n');
const header = text.slice(0, nl).replace(/\r$/, '').split(',');
// first data row: enough of an RFC 4180 split to reach the two key fields
function splitRow(line) {
  const out = []; let cur = ''; let q = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (q) { if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') q = false; else cur += c; }
    else if (c === '"') q = true; else if (c === ',') { out.push(cur); cur = ''; } else cur += c;
  }
  out.push(cur);
  return out;
}
const row = splitRow(text.slice(nl + 1, text.indexOf('\n', nl + 1)));
const start = row[header.indexOf('bill/BillingPeriodStartDate')];
const payer = row[header.indexOf('bill/PayerAccountId')];
const s = new Date(start);
const e = new Date(Date.UTC(s.getUTCFullYear(), s.getUTCMonth() + 1, 1));
const ymd = (d) => d.toISOString().slice(0, 10).replace(/-/g, '');
const range = `${ymd(s)}-${ymd(e)}`;
const base = [args.prefix, args.report].filter(Boolean).join('/');
const dir = path.join(args.out, args.bucket, base, range);
fs.mkdirSync(path.join(dir, args.assembly), { recursive: true });

const dataKey = `${base}/${range}/${args.assembly}/${args.report}-1.csv.gz`;
fs.writeFileSync(path.join(args.out, args.bucket, dataKey), zlib.gzipSync(csv, { level: 6 }));
const manifest = {
  assemblyId: args.assembly,
  account: payer,
  columns: header.map((h) => ({ category: h.split('/')[0], name: h.split('/').slice(1).join('/') })),
  charset: 'UTF-8',
  compression: 'GZIP',
  contentType: 'text/csv',
  reportId: 'staged',
  reportName: args.report,
  billingPeriod: { start: `${ymd(s)}T000000.000Z`, end: `${ymd(e)}T000000.000Z` },
  bucket: args.bucket,
  reportKeys: [dataKey],
  additionalArtifactKeys: [],
};
const json = JSON.stringify(manifest, null, 2);
fs.writeFileSync(path.join(dir, args.assembly, `${args.report}-Manifest.json`), json);
fs.writeFileSync(path.join(dir, `${args.report}-Manifest.json`), json);
console.log(dataKey);
