// gen-cur.test.mjs — tests of the synthetic CUR generator: node --test test/generator/
//
// The generator is run as a CLI, and its output is checked with code written independently here:
// an RFC 4180 parser, an exact decimal parser (BigInt, incl. Java-style exponents) and plain fs walks.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GEN = path.join(HERE, 'gen-cur.mjs');
const SHARED = process.env.BILLOPS_SHARED || path.resolve(HERE, '../../../shared');
const SAMPLE = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'gen-cur-test-'));
after(() => fs.rmSync(TMP, { recursive: true, force: true }));

let dirN = 0;
const newDir = () => { const d = path.join(TMP, `r${++dirN}`); fs.mkdirSync(d); return d; };

function gen(args) {
  return execFileSync(process.execPath, [GEN, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
function genArgs(root, extra) {
  return ['--out', root, '--bucket', 'billing-bucket', '--prefix', 'cur/reports', '--report', 'acme', '--quiet', ...extra];
}

// ---- independent helpers ------------------------------------------------------------------
function walk(dir, base = dir, out = new Map()) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) walk(p, base, out);
    else out.set(path.relative(base, p).split(path.sep).join('/'), crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex'));
  }
  return out;
}

// RFC 4180: fields separated by commas, records by LF or CRLF, quoted fields may contain , " CR LF; "" is a quote.
function parseCsv(text) {
  const rows = []; let row = [], field = '', i = 0, quoted = false, wasQuoted = false;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue; }
        quoted = false; i++;
        if (i < n && text[i] !== ',' && text[i] !== '\n' && text[i] !== '\r') throw new Error(`junk after closing quote at ${i}`);
        continue;
      }
      field += c; i++; continue;
    }
    if (c === '"') {
      if (field !== '') throw new Error(`quote inside unquoted field at ${i}`);
      quoted = true; wasQuoted = true; i++; continue;
    }
    if (c === ',') { row.push(field); field = ''; wasQuoted = false; i++; continue; }
    if (c === '\r' || c === '\n') {
      row.push(field); rows.push(row); row = []; field = ''; wasQuoted = false;
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1; continue;
    }
    field += c; i++;
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || row.length || wasQuoted) { row.push(field); rows.push(row); }
  return rows;
}

// Exact decimal -> BigInt scaled by 1e10. Accepts 12, -0.5, 1.6E-5, 9.0E-9. Refuses more than 10 decimals.
const SC = 10;
function dec(s) {
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/.exec(s);
  if (!m) throw new Error(`not a decimal: "${s}"`);
  const digits = m[2] + (m[3] || ''); let scale = (m[3] || '').length - Number(m[4] || 0);
  let v = BigInt(digits);
  if (scale > SC) {
    const drop = 10n ** BigInt(scale - SC);
    if (v % drop !== 0n) throw new Error(`more than ${SC} decimals: ${s}`);
    v /= drop; scale = SC;
  }
  v *= 10n ** BigInt(SC - scale);
  return m[1] ? -v : v;
}
function fmt(b) { const neg = b < 0n; if (neg) b = -b; const s = b.toString().padStart(SC + 1, '0'); return (neg ? '-' : '') + s.slice(0, -SC) + '.' + s.slice(-SC); }

function readTable(root, bucket, keys) {
  let header = null; const rows = [];
  for (const key of keys) {
    const buf = fs.readFileSync(path.join(root, bucket, key));
    const text = key.endsWith('.gz') ? zlib.gunzipSync(buf).toString('utf8') : buf.toString('utf8');
    const t = parseCsv(text);
    if (!header) header = t[0]; else assert.deepEqual(t[0], header, `header of ${key}`);
    for (const r of t.slice(1)) { assert.equal(r.length, header.length, `field count in ${key}`); rows.push(r); }
  }
  return { header, rows };
}

// Totals computed from the parsed CSV, in the shape of the generator's --expected file.
function totals(header, rows, names) {
  const ix = Object.fromEntries(header.map((h, i) => [h, i]));
  const col = (r, n) => r[ix[names[n]]] ?? '';
  const num = (r, n) => (col(r, n) === '' ? 0n : dec(col(r, n)));
  const out = {};
  for (const r of rows) {
    const payer = col(r, 'payer'), type = col(r, 'type'), acct = col(r, 'account'), c = dec(col(r, 'cost'));
    const p = out[payer] ??= { rows: 0, cost: 0n, amort: 0n, type: {}, acct: {} };
    p.rows++; p.cost += c;
    (p.type[type] ??= { rows: 0, cost: 0n }).rows++; p.type[type].cost += c;
    (p.acct[acct] ??= { rows: 0, cost: 0n }).rows++; p.acct[acct].cost += c;
    // amortized cost as AWS's CUR query library computes it (docs/aws-billing.md gives its first cases;
    // the library also amortizes an RI fee to its unused parts and an RI's upfront fee to 0)
    p.amort += type === 'SavingsPlanCoveredUsage' ? num(r, 'spEff')
      : type === 'SavingsPlanRecurringFee' ? num(r, 'spTotal') - num(r, 'spUsed')
        : type === 'SavingsPlanNegation' || type === 'SavingsPlanUpfrontFee' ? 0n
          : type === 'DiscountedUsage' ? num(r, 'riEff')
            : type === 'RIFee' ? num(r, 'riUnusedUpfront') + num(r, 'riUnusedRecurring')
              : type === 'Fee' && col(r, 'riArn') !== '' ? 0n : c;
  }
  return out;
}
const LEGACY_NAMES = { payer: 'bill/PayerAccountId', type: 'lineItem/LineItemType', account: 'lineItem/UsageAccountId',
  cost: 'lineItem/UnblendedCost', spEff: 'savingsPlan/SavingsPlanEffectiveCost', spTotal: 'savingsPlan/TotalCommitmentToDate',
  spUsed: 'savingsPlan/UsedCommitment', riEff: 'reservation/EffectiveCost',
  riUnusedUpfront: 'reservation/UnusedAmortizedUpfrontFeeForBillingPeriod', riUnusedRecurring: 'reservation/UnusedRecurringFee',
  riArn: 'reservation/ReservationARN' };
const CUR2_NAMES = { payer: 'bill_payer_account_id', type: 'line_item_line_item_type', account: 'line_item_usage_account_id',
  cost: 'line_item_unblended_cost', spEff: 'savings_plan_savings_plan_effective_cost', spTotal: 'savings_plan_total_commitment_to_date',
  spUsed: 'savings_plan_used_commitment', riEff: 'reservation_effective_cost',
  riUnusedUpfront: 'reservation_unused_amortized_upfront_fee_for_billing_period', riUnusedRecurring: 'reservation_unused_recurring_fee',
  riArn: 'reservation_reservation_a_r_n' };

function checkExpected(exp, header, rows, names) {
  const got = totals(header, rows, names);
  assert.equal(exp.last.rows, rows.length);
  assert.equal(exp.last.unblendedCost, fmt(Object.values(got).reduce((a, p) => a + p.cost, 0n)));
  assert.deepEqual(Object.keys(exp.payers).sort(), Object.keys(got).sort());
  assert.equal(Object.keys(got).length, 1, 'a report holds one payer\'s rows (bill/PayerAccountId is the management account)');
  for (const [payer, e] of Object.entries(exp.payers)) {
    const g = got[payer];
    assert.equal(e.rows, g.rows, `rows of payer ${payer}`);
    assert.equal(e.unblendedCost, fmt(g.cost), `unblended cost of payer ${payer}`);
    assert.equal(e.amortizedCost, fmt(g.amort), `amortized cost of payer ${payer}`);
    assert.deepEqual(Object.fromEntries(Object.entries(e.byLineItemType).map(([k, v]) => [k, [v.rows, v.unblendedCost]])),
      Object.fromEntries(Object.entries(g.type).map(([k, v]) => [k, [v.rows, fmt(v.cost)]])), `by type, payer ${payer}`);
    assert.deepEqual(Object.fromEntries(Object.entries(e.byUsageAccount).map(([k, v]) => [k, [v.rows, v.unblendedCost]])),
      Object.fromEntries(Object.entries(g.acct).map(([k, v]) => [k, [v.rows, fmt(v.cost)]])), `by account, payer ${payer}`);
    const invSum = e.invoices.reduce((a, x) => a + dec(x.unblendedCost), 0n);
    assert.equal(fmt(invSum), e.unblendedCost, 'invoice groups add up to the payer total');
  }
}

const CUR2_KNOWN = ('identity_line_item_id identity_time_interval bill_invoice_id bill_invoicing_entity bill_billing_entity ' +
  'bill_bill_type bill_payer_account_id bill_payer_account_name bill_billing_period_start_date bill_billing_period_end_date ' +
  'line_item_usage_account_id line_item_usage_account_name line_item_line_item_type line_item_usage_start_date ' +
  'line_item_usage_end_date line_item_product_code line_item_usage_type line_item_operation line_item_availability_zone ' +
  'line_item_resource_id line_item_usage_amount line_item_normalization_factor line_item_normalized_usage_amount ' +
  'line_item_currency_code line_item_unblended_rate line_item_unblended_cost line_item_blended_rate line_item_blended_cost ' +
  'line_item_net_unblended_rate line_item_net_unblended_cost line_item_line_item_description line_item_tax_type ' +
  'line_item_legal_entity product_servicecode product_product_family product_region_code ' +
  'product_location product_sku product_usagetype product_operation product_instance_type pricing_rate_code pricing_rate_id ' +
  'pricing_currency pricing_public_on_demand_cost pricing_public_on_demand_rate pricing_term pricing_unit ' +
  'reservation_reservation_a_r_n reservation_effective_cost reservation_amortized_upfront_cost_for_usage ' +
  'reservation_amortized_upfront_fee_for_billing_period reservation_recurring_fee_for_usage ' +
  'reservation_unused_amortized_upfront_fee_for_billing_period reservation_unused_recurring_fee reservation_start_time ' +
  'reservation_end_time savings_plan_savings_plan_a_r_n savings_plan_savings_plan_rate ' +
  'savings_plan_savings_plan_effective_cost savings_plan_total_commitment_to_date savings_plan_used_commitment ' +
  'savings_plan_amortized_upfront_commitment_for_billing_period savings_plan_recurring_commitment_for_billing_period ' +
  'resource_tags cost_category discount product').split(' ');

// ---- shared runs ---------------------------------------------------------------------------
const LEGACY_ARGS = ['--layout', 'legacy', '--period', '2023-11', '--rows', '5000', '--deliveries', '3', '--files', '2',
  '--payer', '2', '--accounts', '6', '--final', '--seed', '42'];
const legacyRoot = newDir();
gen(genArgs(legacyRoot, [...LEGACY_ARGS, '--expected', path.join(legacyRoot, 'expected.json')]));
const legacyExp = JSON.parse(fs.readFileSync(path.join(legacyRoot, 'expected.json'), 'utf8'));

const CUR2_ARGS = ['--layout', 'cur2', '--period', '2024-01', '--rows', '6000', '--deliveries', '2', '--files', '3',
  '--payer', '3', '--final', '--seed', '7'];
const cur2Root = newDir();
gen(genArgs(cur2Root, [...CUR2_ARGS, '--expected', path.join(cur2Root, 'expected.json'), '--emit-plain', path.join(cur2Root, 'plain.csv')]));
const cur2Exp = JSON.parse(fs.readFileSync(path.join(cur2Root, 'expected.json'), 'utf8'));

// ---- tests ---------------------------------------------------------------------------------
test('same arguments give byte-identical output (gzip included)', () => {
  for (const [args, ref] of [[LEGACY_ARGS, legacyRoot], [CUR2_ARGS, cur2Root]]) {
    const again = newDir();
    const extra = ref === cur2Root ? ['--emit-plain', path.join(again, 'plain.csv')] : [];
    gen(genArgs(again, [...args, '--expected', path.join(again, 'expected.json'), ...extra]));
    const a = walk(ref), b = walk(again);
    assert.ok(a.size >= 4);
    assert.deepEqual([...b.entries()].sort(), [...a.entries()].sort());
  }
});

test('different seeds give different data', () => {
  const other = newDir();
  gen(genArgs(other, LEGACY_ARGS.map((x) => (x === '42' ? '43' : x))));
  const a = walk(path.join(legacyRoot, 'billing-bucket')), b = walk(path.join(other, 'billing-bucket'));
  const csvA = [...a].filter(([k]) => k.endsWith('.csv.gz')), csvB = [...b].filter(([k]) => k.endsWith('.csv.gz'));
  assert.equal(csvA.length, csvB.length);
  for (let i = 0; i < csvA.length; i++) assert.notEqual(csvA[i][1], csvB[i][1]);
  const t1 = zlib.gunzipSync(fs.readFileSync(path.join(legacyRoot, 'billing-bucket', legacyExp.last.reportKeys[0]))).toString();
  const lastB = JSON.parse(fs.readFileSync(path.join(other, 'billing-bucket', legacyExp.manifestKey), 'utf8'));
  const t2 = zlib.gunzipSync(fs.readFileSync(path.join(other, 'billing-bucket', lastB.reportKeys[0]))).toString();
  assert.notEqual(t1.split('\n')[1], t2.split('\n')[1]);
});

test('legacy: --deliveries 3 gives 3 assembly folders; the top-level manifest names the last one', () => {
  const periodDir = path.join(legacyRoot, 'billing-bucket', 'cur/reports/acme/20231101-20231201');
  const entries = fs.readdirSync(periodDir, { withFileTypes: true });
  const asm = entries.filter((e) => e.isDirectory()).map((e) => e.name).sort();
  assert.equal(asm.length, 3);
  assert.deepEqual(asm, legacyExp.deliveries.map((d) => d.assemblyId).sort());
  assert.deepEqual(entries.filter((e) => e.isFile()).map((e) => e.name), ['acme-Manifest.json']);
  const top = JSON.parse(fs.readFileSync(path.join(periodDir, 'acme-Manifest.json'), 'utf8'));
  const last = legacyExp.deliveries[2];
  assert.equal(top.assemblyId, last.assemblyId);
  assert.deepEqual(top, JSON.parse(fs.readFileSync(path.join(periodDir, last.assemblyId, 'acme-Manifest.json'), 'utf8')));
  for (const k of ['assemblyId', 'account', 'columns', 'charset', 'compression', 'contentType', 'reportId', 'reportName',
    'billingPeriod', 'bucket', 'reportKeys', 'additionalArtifactKeys']) assert.ok(k in top, `manifest field ${k}`);
  assert.deepEqual(top.billingPeriod, { start: '20231101T000000.000Z', end: '20231201T000000.000Z' });
  assert.equal(top.bucket, 'billing-bucket');
  assert.equal(top.compression, 'GZIP');
  assert.equal(top.account, Object.keys(legacyExp.payers)[0]);
  assert.deepEqual(top.columns.find((c) => c.name === 'UnblendedCost'), { category: 'lineItem', name: 'UnblendedCost', type: 'OptionalBigDecimal' });
  // every manifest's reportKeys exist and live in its own assembly folder
  for (const d of legacyExp.deliveries) {
    const m = JSON.parse(fs.readFileSync(path.join(periodDir, d.assemblyId, 'acme-Manifest.json'), 'utf8'));
    assert.equal(m.reportKeys.length, 2);
    m.reportKeys.forEach((k, i) => {
      assert.equal(k, `cur/reports/acme/20231101-20231201/${d.assemblyId}/acme-${i + 1}.csv.gz`);
      assert.ok(fs.statSync(path.join(legacyRoot, 'billing-bucket', k)).size > 0);
    });
    assert.deepEqual(m.columns.map((c) => `${c.category}/${c.name}`), legacyExp.columns);
  }
  // deliveries are distinguishable, cumulative, and only the last one is final (invoice ids filled)
  assert.equal(new Set(legacyExp.deliveries.map((d) => d.unblendedCost)).size, 3);
  assert.ok(legacyExp.deliveries[0].rows < legacyExp.deliveries[1].rows && legacyExp.deliveries[1].rows < legacyExp.deliveries[2].rows);
  assert.equal(legacyExp.deliveries[2].rows, 5000);
  for (const d of legacyExp.deliveries) {
    const m = JSON.parse(fs.readFileSync(path.join(periodDir, d.assemblyId, 'acme-Manifest.json'), 'utf8'));
    const { header, rows } = readTable(legacyRoot, 'billing-bucket', m.reportKeys);
    const inv = header.indexOf('bill/InvoiceId');
    const filled = rows.filter((r) => r[inv] !== '').length;
    assert.equal(filled, d.final ? rows.length : 0, `invoice ids in delivery ${d.index}`);
    assert.equal(rows.length, d.rows);
    const ids = new Set(rows.map((r) => r[0])); assert.equal(ids.size, rows.length, 'line item ids unique');
  }
});

test('legacy: expected totals match a re-parse of the gz files', () => {
  const { header, rows } = readTable(legacyRoot, 'billing-bucket', legacyExp.last.reportKeys);
  assert.deepEqual(header, legacyExp.columns);
  checkExpected(legacyExp, header, rows, LEGACY_NAMES);
  const ix = (n) => header.indexOf(n);
  // realistic content: category/Name headers, schema drift column, Java-style numbers, ISO dates with Z
  for (const h of ['identity/LineItemId', 'bill/InvoiceId', 'lineItem/UnblendedCost', 'resourceTags/user:Owner',
    'resourceTags/aws:createdBy', 'costCategory/Team', 'product/someNewAttribute', 'splitLineItem/SplitCost']) assert.ok(header.includes(h), h);
  assert.ok(rows.some((r) => /E-\d+$/.test(r[ix('lineItem/UnblendedCost')])), 'some amounts in E notation like real CUR');
  assert.ok(rows.every((r) => /^\d{4}-\d\d-\d\dT00:00:00Z\/\d{4}-\d\d-\d\dT00:00:00Z$/.test(r[ix('identity/TimeInterval')])));
  assert.ok(rows.every((r) => r[ix('bill/BillingPeriodStartDate')] === '2023-11-01T00:00:00.000Z'));
  const types = new Set(rows.map((r) => r[ix('lineItem/LineItemType')]));
  for (const t of ['Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'SavingsPlanRecurringFee',
    'RIFee', 'Fee', 'Tax', 'Credit', 'Refund', 'EdpDiscount']) assert.ok(types.has(t), `line item type ${t}`);
  assert.ok(rows.filter((r) => r[ix('lineItem/LineItemType')] === 'Refund').every((r) => r[ix('bill/BillType')] === 'Refund'));
  const mp = rows.filter((r) => r[ix('bill/BillingEntity')] === 'AWS Marketplace');
  assert.ok(mp.length > 0 && mp.every((r) => !r[ix('lineItem/LegalEntity')].startsWith('Amazon Web Services')));
  assert.ok(rows.some((r) => r[ix('lineItem/LegalEntity')] === 'Amazon Web Services EMEA SARL'));
  assert.ok(rows.some((r) => r[ix('resourceTags/user:Owner')] === 'chen, wei'), 'a tag value with a comma');
});

test('legacy --columns known is exactly the real sample header', (t) => {
  const root = newDir();
  gen(genArgs(root, ['--layout', 'legacy', '--period', '2023-11', '--rows', '300', '--columns', 'known', '--expected', path.join(root, 'e.json')]));
  const e = JSON.parse(fs.readFileSync(path.join(root, 'e.json'), 'utf8'));
  const { header, rows } = readTable(root, 'billing-bucket', e.last.reportKeys);
  assert.equal(header.length, 94);
  assert.equal(rows.length, 300);
  assert.ok(fs.existsSync(SAMPLE), `the real sample ${SAMPLE} is missing (../shared beside the repository)`);
  const sampleHeader = parseCsv(fs.readFileSync(SAMPLE, 'utf8').split('\n', 1)[0])[0];
  assert.deepEqual(header, sampleHeader);
});

test('cur2: layout, manifest, overwrite of the previous delivery, expected totals', () => {
  const bucket = path.join(cur2Root, 'billing-bucket');
  const dataDir = path.join(bucket, 'cur/reports/acme/data/BILLING_PERIOD=2024-01');
  assert.deepEqual(fs.readdirSync(dataDir).sort(), ['acme-00001.csv.gz', 'acme-00002.csv.gz', 'acme-00003.csv.gz']);
  const mKey = 'cur/reports/acme/metadata/BILLING_PERIOD=2024-01/acme-Manifest.json';
  assert.equal(cur2Exp.manifestKey, mKey);
  const m = JSON.parse(fs.readFileSync(path.join(bucket, mKey), 'utf8'));
  assert.equal(m.executionId, cur2Exp.deliveries[1].assemblyId);
  assert.notEqual(cur2Exp.deliveries[0].assemblyId, cur2Exp.deliveries[1].assemblyId);
  assert.notEqual(cur2Exp.deliveries[0].unblendedCost, cur2Exp.deliveries[1].unblendedCost);
  // the fields of AWS's Data Exports manifest reference, and no invented ones
  assert.deepEqual(Object.keys(m).sort(), ['additionalOutputFiles', 'columns', 'dataFiles', 'executionId', 'exportArn']);
  assert.match(m.exportArn, /^arn:aws:bcm-data-exports:us-east-1:\d{12}:export\/acme-/);
  const reportKeys = m.dataFiles.map((u) => u.replace('s3://billing-bucket/', ''));
  assert.ok(m.dataFiles.every((u) => /^s3:\/\/billing-bucket\/cur\/reports\/acme\/data\/BILLING_PERIOD=2024-01\/acme-\d{5}\.csv\.gz$/.test(u)), 'dataFiles: <export-name>-<part-number>.<extension>');
  for (const k of reportKeys) assert.ok(fs.existsSync(path.join(bucket, k)), k);
  const { header, rows } = readTable(cur2Root, 'billing-bucket', reportKeys);
  assert.deepEqual(m.columns.map((c) => c.name), header);
  assert.deepEqual(header, [...header].sort(), '--columns all: sorted like a default export');
  // every column of AWS's data dictionary, with its type, and nothing else
  const dict = fs.readFileSync(path.join(SHARED, 'docs', 'cur2-data-dictionary.tsv'), 'utf8').split('\n').slice(1).filter(Boolean)
    .map((l) => l.split('\t')).map(([, name, type]) => ({ name: name.toLowerCase(), type }));
  assert.deepEqual(m.columns, [...dict].sort((a, b) => (a.name < b.name ? -1 : 1)));
  for (const k of CUR2_KNOWN) assert.ok(header.includes(k), k);
  assert.ok(!header.includes('product_product_name') && !header.includes('product_region'), 'CUR 2.0 names the product in its map');
  const pix = header.indexOf('product');
  assert.ok(rows.every((r) => r[pix] !== '' && JSON.parse(r[pix]).product_name), 'every row names its product in product[\'product_name\']');
  assert.ok(rows.some((r) => /^[a-z]{2}-[a-z]+-\d$/.test(JSON.parse(r[pix]).region ?? '')), 'product[\'region\'] holds the region code');
  checkExpected(cur2Exp, header, rows, CUR2_NAMES);
  const ix = (n) => header.indexOf(n);
  assert.ok(rows.every((r) => !/[eE]/.test(r[ix('line_item_unblended_cost')])), 'CUR 2.0 amounts are plain decimals');
  assert.ok(rows.every((r) => r[ix('bill_invoice_id')] !== ''), 'final delivery');
  assert.ok(rows.every((r) => r[ix('line_item_usage_start_date')].endsWith(':00Z')));
  const tags = rows.map((r) => r[ix('resource_tags')]).filter(Boolean);
  assert.ok(tags.length > 0 && tags.every((j) => typeof JSON.parse(j) === 'object'));
  assert.ok(tags.some((j) => JSON.parse(j).user_owner === 'chen, wei'));
  assert.ok(rows.filter((r) => r[ix('product')]).every((r) => typeof JSON.parse(r[ix('product')]) === 'object'));
  assert.ok(rows.some((r) => r[ix('discount')] && 'edp_discount' in JSON.parse(r[ix('discount')])));
  // --emit-plain: the same rows, one header, no gzip
  const plain = parseCsv(fs.readFileSync(path.join(cur2Root, 'plain.csv'), 'utf8'));
  assert.deepEqual(plain[0], header);
  assert.deepEqual(plain.slice(1), rows);
});

test('cur2: a new delivery deletes the previous data files of the period', () => {
  const root = newDir();
  const base = ['--layout', 'cur2', '--period', '2024-02', '--rows', '800', '--deliveries', '2', '--seed', '5'];
  gen(genArgs(root, [...base, '--delivery', '1', '--files', '4']));
  const dataDir = path.join(root, 'billing-bucket', 'cur/reports/acme/data/BILLING_PERIOD=2024-02');
  assert.equal(fs.readdirSync(dataDir).length, 4);
  gen(genArgs(root, [...base, '--delivery', '2', '--files', '2', '--expected', path.join(root, 'e.json')]));
  assert.deepEqual(fs.readdirSync(dataDir).sort(), ['acme-00001.csv.gz', 'acme-00002.csv.gz']);
  const e = JSON.parse(fs.readFileSync(path.join(root, 'e.json'), 'utf8'));
  assert.equal(e.last.rows, 800);
  const m = JSON.parse(fs.readFileSync(path.join(root, 'billing-bucket', e.manifestKey), 'utf8'));
  assert.equal(m.executionId, e.last.assemblyId);
  // delivery 2 written alone is the same as delivery 2 of a full run
  const full = newDir();
  gen(genArgs(full, [...base, '--files', '2', '--expected', path.join(full, 'e.json')]));
  assert.deepEqual(walk(path.join(full, 'billing-bucket')), walk(path.join(root, 'billing-bucket')));
});

test('cur2 CREATE_NEW_REPORT: every run kept under its executionId, the newest manifest is the newest object', () => {
  const root = newDir();
  const e = path.join(root, 'e.json');
  gen(genArgs(root, ['--layout', 'cur2', '--period', '2024-02', '--rows', '900', '--deliveries', '2', '--seed', '5',
    '--overwrite', 'CREATE_NEW_REPORT', '--expected', e]));
  const x = JSON.parse(fs.readFileSync(e, 'utf8'));
  const bucket = path.join(root, 'billing-bucket');
  const runs = x.deliveries.map((d) => d.assemblyId);
  assert.deepEqual(fs.readdirSync(path.join(bucket, 'cur/reports/acme/data/BILLING_PERIOD=2024-02')).sort(), [...runs].sort());
  const mans = runs.map((id) => path.join(bucket, 'cur/reports/acme/metadata/BILLING_PERIOD=2024-02', id, 'acme-Manifest.json'));
  const ms = mans.map((f) => JSON.parse(fs.readFileSync(f, 'utf8')));
  ms.forEach((m, i) => {
    assert.equal(m.executionId, runs[i]);
    assert.ok(m.dataFiles.every((u) => u.includes(`/BILLING_PERIOD=2024-02/${runs[i]}/acme-`)), 'the executionId is in the delivery path');
  });
  assert.ok(Math.floor(fs.statSync(mans[1]).mtimeMs / 1000) > Math.floor(fs.statSync(mans[0]).mtimeMs / 1000),
    'the second run\'s manifest is newer to the second');
  assert.throws(() => gen(genArgs(root, ['--layout', 'cur2', '--period', '2024-02', '--rows', '9', '--overwrite', 'YES'])), /OVERWRITE_REPORT/);
});

test('cur2 --columns known: exactly the benchmark columns; --no-gzip writes the same CSV', () => {
  const gz = newDir(), plainRoot = newDir();
  const args = ['--layout', 'cur2', '--period', '2024-03', '--rows', '1500', '--columns', 'known', '--seed', '9', '--payer', '2'];
  gen(genArgs(gz, [...args, '--expected', path.join(gz, 'e.json'), '--emit-plain', path.join(gz, 'plain.csv')]));
  gen(genArgs(plainRoot, [...args, '--no-gzip', '--expected', path.join(plainRoot, 'e.json')]));
  const e = JSON.parse(fs.readFileSync(path.join(gz, 'e.json'), 'utf8'));
  const { header, rows } = readTable(gz, 'billing-bucket', e.last.reportKeys);
  assert.deepEqual(header, CUR2_KNOWN);
  checkExpected(e, header, rows, CUR2_NAMES);
  const ep = JSON.parse(fs.readFileSync(path.join(plainRoot, 'e.json'), 'utf8'));
  assert.ok(ep.last.reportKeys.every((k) => k.endsWith('.csv') && !k.endsWith('.gz')));
  assert.equal(ep.last.unblendedCost, e.last.unblendedCost);
  const rawPlain = fs.readFileSync(path.join(gz, 'plain.csv'), 'utf8');
  assert.equal(fs.readFileSync(path.join(plainRoot, 'billing-bucket', ep.last.reportKeys[0]), 'utf8'), rawPlain);
  assert.ok(!rawPlain.includes(',"",') && !rawPlain.includes('""\n'), 'empty fields are written empty, not as ""');
  assert.ok(/"[^"\n]*,[^"\n]*"/.test(rawPlain) && rawPlain.includes('""'), 'quoting is exercised');
});

test('bad arguments are refused with a message', () => {
  assert.throws(() => gen(['--out', TMP, '--bucket', 'b-ok', '--report', 'r', '--layout', 'foo', '--period', '2024-01', '--rows', '1']),
    (err) => err.status === 2 && /--layout must be legacy or cur2/.test(err.stderr));
  assert.throws(() => gen(['--out', TMP, '--bucket', 'b-ok', '--report', 'r', '--layout', 'cur2', '--period', '2024-13', '--rows', '1']),
    (err) => /--period must be YYYY-MM/.test(err.stderr));
  assert.throws(() => gen(['--out', TMP, '--bucket', 'b-ok', '--report', 'r', '--layout', 'cur2', '--period', '2024-01', '--rows', '3', '--deliveries', '3']),
    (err) => /too small/.test(err.stderr));
  assert.throws(() => gen(['--out', TMP, '--bucket', 'b-ok', '--report', 'r', '--layout', 'cur2', '--period', '2024-01', '--rows', '3', '--payer', '51']),
    (err) => /--payer must be 1..50/.test(err.stderr));
});

test('--payer k is the same organization whatever report it is written into', () => {
  // payer 2 of seed 42 in two reports of different layouts and months: the same ids and names
  const a = newDir(), b = newDir();
  gen(genArgs(a, ['--layout', 'legacy', '--period', '2024-01', '--rows', '300', '--payer', '2', '--seed', '42', '--expected', path.join(a, 'e.json')]));
  gen(genArgs(b, ['--layout', 'cur2', '--period', '2024-02', '--rows', '300', '--payer', '2', '--seed', '42', '--expected', path.join(b, 'e.json')]));
  const ea = JSON.parse(fs.readFileSync(path.join(a, 'e.json'), 'utf8')), eb = JSON.parse(fs.readFileSync(path.join(b, 'e.json'), 'utf8'));
  assert.deepEqual(Object.keys(ea.payers), Object.keys(eb.payers));
  assert.equal(Object.values(ea.payers)[0].name, Object.values(eb.payers)[0].name);
  const c = newDir();
  gen(genArgs(c, ['--layout', 'legacy', '--period', '2024-01', '--rows', '300', '--payer', '1', '--seed', '42', '--expected', path.join(c, 'e.json')]));
  const ec = JSON.parse(fs.readFileSync(path.join(c, 'e.json'), 'utf8'));
  assert.notEqual(Object.keys(ec.payers)[0], Object.keys(ea.payers)[0], 'payer 1 is another organization');
});
