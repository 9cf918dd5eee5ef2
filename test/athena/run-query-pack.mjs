#!/usr/bin/env node
// run-query-pack.mjs — AWS's own CUR queries, run as written against pg_billops.
//
// The queries are AWS's (the CUR Query Library of awslabs/aws-well-architected-labs, legacy CUR;
// the CUR 2.0 views of aws-samples/aws-cudos-framework-deployment). Their text is not in this
// repository: our rule is to keep third-party code and text out of it. query-pack.json names each
// query (repository, path, commit, sha256 of the text), says how its placeholders are filled, and
// holds our own PostgreSQL translation of what it asks. This script reads the texts from a
// directory laid out like the repositories (--library DIR, e.g. a checkout or the files fetched
// into /tmp/curlib/queries), checks each text against its sha256, fills only the placeholders,
// runs it with SET search_path = billops_athena, pg_catalog, billops, public and compares its answer with the
// translation's, on the real CUR sample and generated months of both layouts.
//
// usage: node test/athena/run-query-pack.mjs --library DIR (holding <owner>/<repo>/<path> of each query)
//        [--database NAME] [--keep (reuse the database if it exists)] [--only SUBSTR] [--translations FILE]
// Needs a running cluster with pg_billops installed (PG* environment, as test/lib.sh sets).
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '../..');
const SHARED = process.env.BILLOPS_SHARED || path.resolve(ROOT, '../shared');
const require = createRequire(path.join(ROOT, 'test/emulators/package.json'));
const pg = require('pg');

const args = Object.fromEntries(process.argv.slice(2).reduce((a, x, i, all) => {
  if (x.startsWith('--')) a.push([x.slice(2), all[i + 1] && !all[i + 1].startsWith('--') ? all[i + 1] : true]);
  return a;
}, []));
if (!args.library) { console.error('usage: run-query-pack.mjs --library DIR [--database NAME] [--keep] [--only SUBSTR]'); process.exit(2); }
const PACK = JSON.parse(fs.readFileSync(path.join(HERE, 'query-pack.json'), 'utf8'));
// --translations FILE: {"<path>": "<sql>"} replacing the pack's translations (while writing them)
if (args.translations) {
  const extra = JSON.parse(fs.readFileSync(args.translations, 'utf8'));
  for (const q of PACK.queries) if (extra[q.path]) q.translation = extra[q.path];
}
const DB = args.database || 'billops_query_pack';

// ---- data: generated months of both layouts, and the real sample -------------------------------
function generateMonths(dir) {
  const files = [];
  const gen = (layout, period, payer, rows) => {
    const out = path.join(dir, `${layout}-${period}-${payer}`);
    execFileSync('node', [path.join(ROOT, 'test/generator/gen-cur.mjs'), '--out', out, '--bucket', 'pack-bucket', '--report', 'pack',
      '--layout', layout, '--period', period, '--rows', String(rows), '--payer', String(payer), '--seed', 'query-pack',
      '--final', '--columns', 'all', '--quiet']);
    for (const f of execFileSync('find', [out, '-name', '*.csv.gz'], { encoding: 'utf8' }).split('\n').filter(Boolean)) files.push(f);
  };
  for (const p of PACK.data.legacy_months) gen('legacy', p, 1, PACK.data.rows);
  // 'current' and 'previous': the months AWS's dashboard views select relative to now
  const now = new Date(), ym = (d) => d.toISOString().slice(0, 7);
  const rel = { current: ym(now), previous: ym(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - 1, 1))) };
  for (const p of PACK.data.cur2_months) gen('cur2', rel[p] ?? p, 2, PACK.data.rows);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  return files;
}

function fill(text, q) {
  let s = text;
  for (const [from, to] of Object.entries({ ...PACK.placeholders[q.layout], ...(q.placeholders || {}) })) s = s.split(from).join(to);
  return s;
}

// result rows (arrays: columns by position, whatever their names) as sorted canonical strings:
// numbers compared to 6 decimals (Athena computes in double)
function canon(rows) {
  return rows.map((r) => r.map((v) => {
    if (v === null || v === undefined) return '∅';
    if (v instanceof Date) return v.toISOString();
    const s = String(v);
    if (/^-?\d+(\.\d+)?(e[-+]?\d+)?$/i.test(s)) return Number(s).toFixed(6).replace(/^-(0\.0+)$/, '$1');
    return s;
  }).join('|')).sort();
}

const GRAMMAR = new Set(['42601']); // syntax_error: what PostgreSQL's grammar does not accept

async function main() {
  const admin = new pg.Client({ database: 'postgres' });
  await admin.connect();
  const fresh = !args.keep || !(await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB])).rowCount;
  if (fresh) {
    await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
    await admin.query(`CREATE DATABASE ${DB}`);
  }
  await admin.end();
  const db = new pg.Client({ database: DB });
  await db.connect();
  db.on('notice', () => {});
  if (fresh) {
    await db.query('CREATE EXTENSION pg_billops CASCADE');
    const dir = fs.mkdtempSync('/tmp/billops-query-pack-');
    fs.chmodSync(dir, 0o755);
    for (const f of generateMonths(dir)) {
      const [layout, , , payer] = path.relative(dir, f).split('/')[0].split('-');
      await db.query('SELECT billops.load_cur_file($1, $2)', [f, `pack-${layout}-${payer}`]);
    }
    const sample = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
    await db.query('SELECT billops.load_cur_file($1, $2)', [sample, 'pack-sample']);
  }
  await db.query(`SET search_path = billops_athena, pg_catalog, billops, public`);
  await db.query(`SET TimeZone = 'UTC'`);

  const results = [];
  for (const q of PACK.queries) {
    if (args.only && !q.path.includes(args.only)) continue;
    const file = path.join(args.library, q.repo, q.path);
    const r = { path: q.path, layout: q.layout };
    results.push(r);
    if (!fs.existsSync(file)) { r.status = 'missing'; continue; }
    const text = fs.readFileSync(file, 'utf8');
    const sha = crypto.createHash('sha256').update(text).digest('hex');
    if (sha !== q.sha256) { r.status = 'changed'; r.error = `sha256 ${sha} is not the pack's ${q.sha256}`; continue; }
    const sql = fill(text, q);
    await db.query('BEGIN');
    try {
      let got;
      // views a dashboard view is built on (CID's account_map), created first from the same library
      for (const dep of q.requires || []) {
        const d = PACK.queries.find((x) => x.path === dep || x.path.endsWith(dep));
        await db.query(fill(fs.readFileSync(path.join(args.library, d.repo, d.path), 'utf8'), d));
      }
      if (q.view) { // a CREATE VIEW statement: create it, then read it
        await db.query(sql);
        got = (await db.query({ text: `SELECT * FROM ${q.view}`, rowMode: 'array' })).rows;
      } else got = (await db.query({ text: sql, rowMode: 'array' })).rows;
      r.rows = got.length;
      r.status = 'ran';
      if (q.translation) {
        await db.query('SAVEPOINT t');
        const want = (await db.query({ text: q.translation, rowMode: 'array' })).rows;
        const a = canon(got), b = canon(want);
        r.status = a.length === b.length && a.every((x, i) => x === b[i]) ? 'same' : 'different';
        if (r.status === 'different') r.error = `query ${a.length} rows, translation ${b.length}; first difference: ${a.find((x, i) => x !== b[i]) ?? '(none)'} vs ${b.find((x, i) => x !== a[i]) ?? '(none)'}`;
      }
    } catch (e) {
      r.status = GRAMMAR.has(e.code) ? 'grammar' : 'error';
      r.error = `${e.code}: ${e.message}`;
    }
    await db.query('ROLLBACK');
  }
  await db.end();

  const by = (s) => results.filter((r) => r.status === s).length;
  const meta = Object.fromEntries(PACK.queries.map((q) => [q.path, q]));
  for (const r of results) {
    const m = meta[r.path];
    console.log(`${r.status.padEnd(9)} ${r.layout.padEnd(6)} ${r.path}${r.rows !== undefined ? ` (${r.rows} rows)` : ''}` +
      `${r.error ? `\n          ${r.error.split('\n')[0]}` : ''}` +
      `${m.library_defect ? `\n          library defect: ${m.library_defect}` : ''}` +
      `${m.change && !['ran', 'same', 'different'].includes(r.status) ? `\n          change: ${m.change}` : ''}`);
  }
  // Shares: a query AWS's own engine cannot run as written either (library_defect) is left out.
  const ran = (r) => ['ran', 'same', 'different'].includes(r.status);
  const considered = results.filter((r) => !meta[r.path].library_defect && !['missing', 'changed'].includes(r.status));
  const grammarOk = considered.filter((r) => r.status !== 'grammar');
  const runs = grammarOk.filter(ran);
  const translated = results.filter((r) => r.status === 'same' || r.status === 'different');
  const defects = results.filter((r) => meta[r.path].library_defect).length;
  console.log(`\nqueries=${results.length} library_defects=${defects} considered=${considered.length}` +
    ` grammar_compatible=${grammarOk.length} run_as_written=${runs.length}` +
    ` run_share_of_grammar_compatible=${(runs.length / Math.max(1, grammarOk.length)).toFixed(3)}` +
    ` run_share_of_considered=${(runs.length / Math.max(1, considered.length)).toFixed(3)}` +
    ` translated=${translated.length} same_as_translation=${by('same')} different=${by('different')}` +
    ` errors=${by('error')} grammar=${by('grammar')}`);
  if (by('different') || by('changed') || by('missing')) process.exitCode = 1;
}
main().catch((e) => { console.error(e); process.exit(1); });
