// Pro forma statements tie out to the cent, on generated months.
//
// The requirement: per billing group and period, AWS cost, pro forma cost and
// margin, by service and account, adding back up to the AWS total plus margin
// to the cent.  The months come from test/generator/gen-cur.mjs (both layouts,
// several seeds, two payers, RI / Savings Plans, credits, refunds, EDP and
// bundled discounts, fees and tax), loaded with billops.load_cur_file().
// Chargeback is configured like a real organisation: groups covering some of
// the accounts, allocation rules by tag and by account, shared cost
// (PROPORTIONAL and FIXED), pricing plans with MARKUP, DISCOUNT and TIERING
// rules at every scope, and custom FEE and CREDIT items.
//
// Every expected figure is independent of the statements: the generator's
// exact totals (--expected JSON) and exact SQL sums over billops.cur_line_item,
// compared as exact decimal strings in Node (never floats).
//
// "The AWS total" of a period is the sum of its payers' totals to the cent:
// build_statements rounds AWS cost per payer (57aa7cc), so every payer's lines
// reconcile; with two payers that may differ from the grand total rounded once
// by a cent, which the test allows and reports.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  closeAll, freshDatabase, generate, RUN, SCALE, toScaled, decimalSum, decimalToString, normNumeric,
  roundCents, cents, sumOf, CENT,
} from './helpers.mjs';

after(async () => { await closeAll(); });

// --- exact decimals -------------------------------------------------------------

const minus = (a, b) => decimalToString(toScaled(String(a)) - toScaled(String(b)));
const absScaled = (s) => { const n = toScaled(String(s)); return n < 0n ? -n : n; };
// |a - b| <= bound; bound is a decimal string, or a number of cents (an integer: one per rounded line)
const within = (a, b, bound) =>
  absScaled(minus(a, b)) <= (typeof bound === 'number' ? BigInt(bound) * CENT : toScaled(String(bound)));
const N = normNumeric;

// --- the months ---------------------------------------------------------------------

const DIR = RUN ? path.join(RUN, 'statements-tieout') : null;
// March and April: two layouts, two seeds (test 1).  May and June share a seed,
// so the same accounts exist in both (an account moves between them: test 2).
const MONTHS = {
  mar: { layout: 'legacy', period: '2024-03', seed: 'tieout-a', rows: 9000 }, // enough rows for a SavingsPlanUpfrontFee (3 in 10,000)
  apr: { layout: 'cur2', period: '2024-04', seed: 'tieout-b', rows: 6000 },
  may: { layout: 'legacy', period: '2024-05', seed: 'tieout-c', rows: 4000 },
  jun: { layout: 'cur2', period: '2024-06', seed: 'tieout-c', rows: 4000 },
};
const periodOf = (key) => `${MONTHS[key].period}-01`;

// The line item types the tie-out must cover (each present in a test-1 month).
const LINE_TYPES = ['Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation',
  'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee', 'RIFee', 'Fee', 'Tax', 'Credit', 'Refund',
  'EdpDiscount', 'BundledDiscount'];

// A month of two payers is two reports, as AWS writes them (one payer per
// report): payer 1 ("Acme Corp") with two thirds of the rows, payer 2 the rest.
// Its expected totals are the two reports' together.
function genMonth(key) {
  const m = MONTHS[key];
  const files = [];
  let exp = null;
  for (const payer of [1, 2]) {
    const expected = path.join(DIR, `${key}-${payer}.json`);
    const csv = path.join(DIR, `${key}-${payer}.csv`);
    generate(['--out', path.join(DIR, 'objects'), '--bucket', 'tieout', '--prefix', 'cur', '--report', `tieout-${key}-${payer}`,
      '--layout', m.layout, '--period', m.period, '--rows', String(Math.round(m.rows * (payer === 1 ? 2 : 1) / 3)), '--seed', m.seed,
      '--payer', String(payer), '--accounts', '8', '--final', '--no-gzip', '--quiet',
      '--expected', expected, '--emit-plain', csv]);
    fs.chmodSync(csv, 0o644);   // the server account reads it
    const e = JSON.parse(fs.readFileSync(expected, 'utf8'));
    files.push({ csv, assemblyId: e.last.assemblyId });
    exp = exp ? { ...exp, payers: { ...exp.payers, ...e.payers } } : e;
  }
  return { files, exp };
}

// The payers of a month sorted by name (A: "Acme Corp", B: "Globex Holdings"),
// each with its accounts by role: the account name without the payer's slug
// ("prod", "data-platform", "management", ...).  Roles, not ids: the ids come
// from the seed.
function rolesOf(exp) {
  const payers = Object.entries(exp.payers).sort(([, a], [, b]) => a.name.localeCompare(b.name));
  return payers.map(([id, p]) => {
    const byRole = {};
    for (const [acct, a] of Object.entries(p.byUsageAccount)) byRole[a.name.slice(a.name.indexOf('-') + 1)] = acct;
    return { id, name: p.name, byRole };
  });
}

// --- database -------------------------------------------------------------------

let db;
const data = {};          // key -> { exp, payers: [A, B] }

async function q(sql, params = []) { return (await db.query(sql, params)).rows; }
async function groupId(name) {
  return (await q('SELECT billing_group_id FROM billops.billing_group WHERE name = $1', [name]))[0].billing_group_id;
}

// What a statement and its lines say, comparable with deepEqual across rebuilds.
async function snapshot(period) {
  const statements = await q(
    `SELECT group_name, billing_group_id, currency, aws_cost::text, proforma_cost::text, margin::text, line_items::text
       FROM billops.statement WHERE billing_period = $1 ORDER BY group_name`, [period]);
  const lines = await q(
    `SELECT s.group_name, l.line_no, l.kind, l.payer_account_id, l.usage_account_id, l.service, l.description,
            l.aws_cost::text, l.proforma_cost::text, l.margin::text, l.pricing_rule_id, l.shared_cost_rule_id,
            l.custom_line_item_id
       FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
      WHERE s.billing_period = $1 ORDER BY s.group_name, l.line_no`, [period]);
  return { statements, lines };
}

async function build(key) {
  return q('SELECT * FROM billops.build_statements($1)', [periodOf(key)]);
}

async function curVsStatements(period, payer) {
  return q(`SELECT check_name, subject, expected::text, actual::text, cause FROM billops.reconcile($1, $2)
             WHERE check_name = 'cur_vs_statements'`, [period, payer]);
}

// The whole tie-out of one period, against the generator and the CUR.  Remarks for the
// TAP output go to notes.
const notes = [];
async function assertTiesOut(key) {
  const period = periodOf(key);
  const { exp } = data[key];
  const label = `${key} (${MONTHS[key].layout} ${period})`;
  const payerIds = Object.keys(exp.payers);

  // the CUR as loaded matches the generator exactly (else everything below is moot)
  const cur = await q(
    `SELECT bill_payer_account_id AS payer, count(*)::int AS n, sum(line_item_unblended_cost)::text AS exact,
            round(sum(line_item_unblended_cost), 2)::text AS rounded
       FROM billops.cur_line_item WHERE bill_billing_period_start_date = $1 GROUP BY 1 ORDER BY 1`, [period]);
  assert.deepEqual(cur.map((r) => r.payer), [...payerIds].sort(), `${label}: the CUR has exactly the generated payers`);
  const curByPayer = Object.fromEntries(cur.map((r) => [r.payer, r]));
  for (const p of payerIds) {
    assert.equal(N(curByPayer[p].exact), N(exp.payers[p].unblendedCost), `${label}: payer ${p}'s CUR total is the generator's`);
    assert.equal(curByPayer[p].n, exp.payers[p].rows, `${label}: payer ${p}'s CUR rows`);
  }
  const [{ total: curTotal, n: curRows }] = await q(
    `SELECT round(sum(line_item_unblended_cost), 2)::text AS total, count(*)::int AS n
       FROM billops.cur_line_item WHERE bill_billing_period_start_date = $1`, [period]);
  const expTotal = cents(sumOf(Object.values(exp.payers).map((p) => p.unblendedCost)));
  assert.equal(N(curTotal), expTotal, `${label}: the CUR total is the generator's, to the cent`);

  // 1. all statements (unallocated included) add up to the AWS total.  With several payers
  //    the AWS total is what AWS bills: each payer's total to the cent, added up.  billops
  //    rounds AWS cost per payer (so that every payer reconciles, step 3), and a sum of
  //    rounded payer totals may differ from the rounded grand total by the payers' half cents.
  const statements = await q(
    `SELECT statement_id::text, billing_group_id, group_name, aws_cost::text, proforma_cost::text, margin::text,
            line_items::int
       FROM billops.statement WHERE billing_period = $1 ORDER BY group_name`, [period]);
  assert.ok(statements.length >= 2, `${label}: statements were built`);
  assert.equal(statements.filter((s) => s.billing_group_id === null).length, 1, `${label}: one unallocated statement`);
  const awsTotal = sumOf(statements.map((s) => s.aws_cost));
  const billed = sumOf(payerIds.map((p) => cents(exp.payers[p].unblendedCost)));
  assert.equal(sumOf(payerIds.map((p) => curByPayer[p].rounded)), billed,
    `${label}: the CUR's payer totals to the cent are the generator's`);
  assert.equal(awsTotal, billed,
    `${label}: sum of the statements' AWS cost = the sum of the payers' totals to the cent (generator and CUR)`);
  assert.ok(within(awsTotal, expTotal, Math.ceil(payerIds.length / 2)),
    `${label}: sum of the statements' AWS cost ${awsTotal} = round(sum(line_item_unblended_cost), 2) ${expTotal} `
    + `up to the payers' half cents`);
  if (awsTotal !== expTotal) {
    notes.push(`${label}: payers' totals to the cent add up to ${awsTotal}, the grand total to the cent is ${expTotal} `
      + `(exact ${sumOf(Object.values(exp.payers).map((p) => p.unblendedCost))}); the statements follow the payers`);
  }
  assert.equal(statements.reduce((n, s) => n + s.line_items, 0), curRows,
    `${label}: the statements account for every CUR line item`);

  // 2. every statement: pro forma = AWS + margin, and its lines add up to it
  const lines = await q(
    `SELECT l.statement_id::text, l.line_no, l.kind, l.payer_account_id, l.usage_account_id, l.service,
            l.aws_cost::text, l.proforma_cost::text, l.margin::text, l.pricing_rule_id, l.shared_cost_rule_id,
            l.custom_line_item_id
       FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
      WHERE s.billing_period = $1`, [period]);
  for (const s of statements) {
    const mine = lines.filter((l) => l.statement_id === s.statement_id);
    const g = `${label} "${s.group_name}"`;
    assert.ok(mine.length > 0, `${g} has lines`);
    assert.equal(N(s.proforma_cost), sumOf([s.aws_cost, s.margin]), `${g}: pro forma = AWS cost + margin`);
    assert.equal(sumOf(mine.map((l) => l.aws_cost)), N(s.aws_cost), `${g}: lines add up to its AWS cost`);
    assert.equal(sumOf(mine.map((l) => l.proforma_cost)), N(s.proforma_cost), `${g}: lines add up to its pro forma cost`);
    assert.equal(sumOf(mine.map((l) => l.margin)), N(s.margin), `${g}: lines add up to its margin`);
    for (const l of mine) {
      assert.equal(N(l.proforma_cost), sumOf([l.aws_cost, l.margin]), `${g} line ${l.line_no}: pro forma = AWS + margin`);
      if (l.kind === 'fee' || l.kind === 'credit') {
        assert.equal(N(l.aws_cost), '0', `${g} line ${l.line_no}: a custom item costs AWS nothing`);
        assert.equal(l.payer_account_id, null, `${g} line ${l.line_no}: a custom item has no payer`);
      } else {
        assert.ok(payerIds.includes(l.payer_account_id), `${g} line ${l.line_no}: carries a generated payer`);
      }
    }
  }
  assert.equal(sumOf(statements.map((s) => s.proforma_cost)),
    sumOf([billed, sumOf(statements.map((s) => s.margin))]),
    `${label}: the period's pro forma = the AWS total + the margin`);

  // 3. per payer: the statement lines carrying the payer add up to its CUR total (what reconcile compares)
  for (const p of payerIds) {
    const mine = lines.filter((l) => l.payer_account_id === p);
    assert.equal(sumOf(mine.map((l) => l.aws_cost)), cents(exp.payers[p].unblendedCost),
      `${label}: payer ${p}'s statement lines add up to the generator's payer total to the cent`);
    assert.equal(sumOf(mine.map((l) => l.aws_cost)), N(curByPayer[p].rounded),
      `${label}: payer ${p}'s statement lines add up to its CUR total to the cent`);
  }

  // 4. by account: each generated account is on the statements under its payer, for its cost
  //    (lines are rounded one by one, so an account is exact to within a cent per line)
  for (const p of payerIds) {
    for (const [acct, a] of Object.entries(exp.payers[p].byUsageAccount)) {
      const mine = lines.filter((l) => l.usage_account_id === acct);
      assert.ok(mine.length > 0, `${label}: account ${acct} (${a.name}) is on the statements`);
      assert.ok(mine.every((l) => l.payer_account_id === p), `${label}: account ${acct}'s lines carry its payer ${p}`);
      const got = sumOf(mine.map((l) => l.aws_cost));
      assert.ok(within(got, a.unblendedCost, mine.length),
        `${label}: account ${acct} (${a.name}): statements ${got}, CUR ${a.unblendedCost} (${mine.length} lines)`);
    }
  }
  //    by service: the services of the statements are the CUR's, and the view adds up per statement
  const curServices = (await q(
    `SELECT DISTINCT coalesce(nullif(product->>'product_name', ''),
                              nullif(line_item_product_code, ''), '(no service)') AS service
       FROM billops.cur_line_item WHERE bill_billing_period_start_date = $1 ORDER BY 1`, [period])).map((r) => r.service);
  const lineServices = [...new Set(lines.filter((l) => l.kind === 'aws' || l.kind === 'shared').map((l) => l.service))].sort();
  assert.deepEqual(lineServices, [...curServices].sort(), `${label}: statements show every service of the CUR, and only those`);
  const view = await q(
    `SELECT group_name, sum(aws_cost)::text AS aws, sum(proforma_cost)::text AS pf, sum(margin)::text AS m
       FROM billops.statement_by_service WHERE billing_period = $1 GROUP BY 1`, [period]);
  for (const v of view) {
    const s = statements.find((x) => x.group_name === v.group_name);
    assert.deepEqual([N(v.aws), N(v.pf), N(v.m)], [N(s.aws_cost), N(s.proforma_cost), N(s.margin)],
      `${label} "${v.group_name}": statement_by_service adds up to the statement`);
  }

  // 5. reconciliation finds no variance between the CUR and the statements
  for (const p of payerIds)
    assert.deepEqual(await curVsStatements(period, p), [], `${label}: reconcile(${period}, ${p}) has no cur_vs_statements variance`);

  return { statements, lines };
}

// --- setup: four months and the chargeback configuration ---------------------------

before(async () => {
  assert.ok(RUN, 'BILLOPS_RUN is set (run under test/lib.sh)');
  fs.rmSync(DIR, { recursive: true, force: true });
  fs.mkdirSync(DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(DIR, 0o755);
  db = await freshDatabase('billops_it_tieout');
  for (const key of Object.keys(MONTHS)) {
    const { files, exp } = genMonth(key);
    data[key] = { exp, payers: rolesOf(exp) };
    assert.equal(data[key].payers.length, 2, `${key}: two payers`);
    for (const f of files) await db.query(`SELECT billops.load_cur_file($1, 'tieout-files', $2)`, [f.csv, f.assemblyId]);
  }
  // May and June: same seed, same accounts
  assert.deepEqual(data.may.payers.map((p) => p.byRole), data.jun.payers.map((p) => p.byRole),
    'May and June have the same accounts');

  // groups: some accounts, not all
  await db.query(`INSERT INTO billops.billing_group (name, business_unit) VALUES
                    ('platform', 'Engineering'), ('data', 'Data'), ('apps', 'Product'), ('staging-pool', 'Engineering')`);
  const member = (group, acct) => db.query(
    `INSERT INTO billops.billing_group_account (billing_group_id, account_id)
     SELECT billing_group_id, $2 FROM billops.billing_group WHERE name = $1`, [group, acct]);
  for (const seedKey of ['mar', 'apr', 'may']) {      // one per seed (June's accounts are May's)
    const [A, B] = data[seedKey].payers;
    for (const r of ['prod', 'staging', 'dev']) await member('platform', A.byRole[r]);
    for (const r of ['prod', 'staging', 'dev']) await member('apps', B.byRole[r]);
    await member('data', A.byRole['data-platform']);
    await member('data', B.byRole['data-platform']);
    // payer B's log archive is in no group, but an allocation rule sends it to data
    await db.query(`INSERT INTO billops.allocation_rule (billing_group_id, priority, usage_account_id, note)
                    VALUES ($1, 20, $2, 'log archive is run by data')`, [await groupId('data'), B.byRole['log-archive']]);
    // central services shared out: payer A's shared services in proportion, payer B's security 70/30
    const net = (await q(`INSERT INTO billops.shared_cost_rule (name, method, usage_account_id)
                          VALUES ($1, 'PROPORTIONAL', $2) RETURNING shared_cost_rule_id`,
    [`network ${seedKey}`, A.byRole['shared-services']]))[0].shared_cost_rule_id;
    await db.query(`INSERT INTO billops.shared_cost_target (shared_cost_rule_id, billing_group_id)
                    SELECT $1, billing_group_id FROM billops.billing_group WHERE name IN ('platform', 'data', 'apps')`, [net]);
    const sec = (await q(`INSERT INTO billops.shared_cost_rule (name, method, usage_account_id)
                          VALUES ($1, 'FIXED', $2) RETURNING shared_cost_rule_id`,
    [`security ${seedKey}`, B.byRole['security-audit']]))[0].shared_cost_rule_id;
    await db.query(`INSERT INTO billops.shared_cost_target (shared_cost_rule_id, billing_group_id, percentage)
                    SELECT $1, billing_group_id, CASE name WHEN 'platform' THEN 70 ELSE 30 END
                      FROM billops.billing_group WHERE name IN ('platform', 'apps')`, [sec]);
  }
  // staging resources, wherever they run, belong to the staging pool (tag keys as each layout writes them)
  await db.query(`INSERT INTO billops.allocation_rule (billing_group_id, priority, tag_key, tag_value)
                  SELECT billing_group_id, 10, k, 'staging' FROM billops.billing_group,
                         unnest(ARRAY['user:Environment', 'user_environment']) k WHERE name = 'staging-pool'`);

  // pricing: markup, discount and tiering at GLOBAL, BILLING_ENTITY, SERVICE and SKU scope
  await db.query(`INSERT INTO billops.pricing_plan (name) VALUES ('standard'), ('volume')`);
  await db.query(`SELECT billops.set_pricing_rule('standard', 'overhead', '-infinity', 'MARKUP', 'GLOBAL', 7.5)`);
  await db.query(`SELECT billops.set_pricing_rule('standard', 'marketplace at cost', '-infinity', 'MARKUP', 'BILLING_ENTITY', 0,
                                                  billing_entity => 'AWS Marketplace')`);
  await db.query(`SELECT billops.set_pricing_rule('standard', 'storage', '-infinity', 'DISCOUNT', 'SERVICE', 4,
                                                  service => 'AmazonS3')`);
  await db.query(`SELECT billops.set_pricing_rule('standard', 'm5 premium', '-infinity', 'MARKUP', 'SKU', 15,
                                                  service => 'AmazonEC2', usage_type => 'BoxUsage:m5.large')`);
  await db.query(`SELECT billops.set_pricing_rule('volume', 'volume tiers', '-infinity', 'TIERING', 'GLOBAL', NULL,
                  '[{"up_to": 300, "percentage": 0}, {"up_to": 1000, "percentage": -5}, {"percentage": -12}]')`);
  await db.query(`SELECT billops.set_pricing_rule('volume', 'compute', '-infinity', 'DISCOUNT', 'SERVICE', 3,
                                                  service => 'AmazonEC2')`);
  await db.query(`INSERT INTO billops.billing_group_pricing_plan (billing_group_id, pricing_plan_id)
                  SELECT g.billing_group_id, p.pricing_plan_id FROM billops.billing_group g, billops.pricing_plan p
                   WHERE (g.name IN ('platform', 'apps') AND p.name = 'standard') OR (g.name = 'data' AND p.name = 'volume')`);
  // custom line items: a flat fee, a percentage credit, a percentage fee on usage
  await db.query(`INSERT INTO billops.custom_line_item (billing_group_id, name, item_type, flat_amount, first_period)
                  SELECT billing_group_id, 'platform fee', 'FEE', 125, '2024-01-01' FROM billops.billing_group WHERE name = 'platform'`);
  await db.query(`INSERT INTO billops.custom_line_item (billing_group_id, name, item_type, percentage, services, first_period)
                  SELECT billing_group_id, 'EC2 commitment credit', 'CREDIT', 2.5, '{AmazonEC2}', '2024-01-01'
                    FROM billops.billing_group WHERE name = 'apps'`);
  await db.query(`INSERT INTO billops.custom_line_item (billing_group_id, name, item_type, percentage, line_item_types, first_period)
                  SELECT billing_group_id, 'pool management', 'FEE', 1.5, '{Usage}', '2024-01-01'
                    FROM billops.billing_group WHERE name = 'staging-pool'`);
});

// --- 1. generated months tie out ------------------------------------------------------

test('statements of generated months (legacy and CUR 2.0, RI/SP, credits, refunds, discounts, tax) tie out to the cent', async (t) => {
  for (const key of ['mar', 'apr']) {
    const period = periodOf(key);
    const { exp, payers: [A, B] } = data[key];
    const label = `${key} (${MONTHS[key].layout} ${period})`;

    // the month really has every kind of line item, in the generator's totals and in the CUR
    const types = await q(
      `SELECT line_item_line_item_type AS t, count(*)::int AS n, sum(line_item_unblended_cost)::text AS cost
         FROM billops.cur_line_item WHERE bill_billing_period_start_date = $1 GROUP BY 1`, [period]);
    for (const t of LINE_TYPES) {
      const gen = Object.values(exp.payers).map((p) => p.byLineItemType[t]).filter(Boolean);
      const rows = gen.reduce((n, x) => n + x.rows, 0);
      assert.ok(rows > 0, `${label}: the generated month has ${t} line items`);
      const got = types.find((x) => x.t === t);
      assert.equal(got?.n, rows, `${label}: ${t} rows in the CUR`);
      assert.equal(N(got.cost), N(sumOf(gen.map((x) => x.unblendedCost))), `${label}: ${t} cost in the CUR`);
    }
    assert.ok(types.some((x) => x.t === 'SavingsPlanNegation' && toScaled(x.cost) < 0n), `${label}: SP negation is negative`);
    assert.ok(types.some((x) => (x.t === 'Credit' || x.t === 'Refund') && toScaled(x.cost) < 0n), `${label}: credits reduce the bill`);

    // before any statement, reconcile reports the missing statements (the check can fail)
    for (const p of [A.id, B.id]) {
      const v = await curVsStatements(period, p);
      assert.equal(v.length, 1, `${label}: without statements, reconcile(${p}) has a cur_vs_statements variance`);
      assert.match(v[0].cause, /no statements built/);
    }

    const built = await build(key);
    assert.deepEqual(built.map((r) => r.group_name).sort(),
      ['(unallocated)', 'apps', 'data', 'platform', 'staging-pool'], `${label}: a statement per group and the unallocated one`);
    const { statements, lines } = await assertTiesOut(key);
    const byName = Object.fromEntries(statements.map((s) => [s.group_name, s]));
    const linesOf = (g) => lines.filter((l) => l.statement_id === byName[g].statement_id);

    // the build's own result is the statements
    for (const r of built)
      assert.deepEqual([N(r.aws_cost), N(r.proforma_cost), N(r.margin)],
        [N(byName[r.group_name].aws_cost), N(byName[r.group_name].proforma_cost), N(byName[r.group_name].margin)],
        `${label}: build_statements returns "${r.group_name}"`);

    // allocation: membership, rules and sharing put each account's cost where configured
    const home = new Map();
    for (const r of ['prod', 'staging', 'dev']) { home.set(A.byRole[r], 'platform'); home.set(B.byRole[r], 'apps'); }
    home.set(A.byRole['data-platform'], 'data'); home.set(B.byRole['data-platform'], 'data');
    home.set(B.byRole['log-archive'], 'data');
    const sharedSources = new Set([A.byRole['shared-services'], B.byRole['security-audit']]);
    for (const s of statements) {
      for (const l of linesOf(s.group_name).filter((x) => x.kind === 'aws')) {
        assert.ok(!sharedSources.has(l.usage_account_id), `${label}: shared account ${l.usage_account_id} is all shared out`);
        const expected = home.get(l.usage_account_id) ?? '(unallocated)';
        assert.ok(s.group_name === expected || s.group_name === 'staging-pool',
          `${label}: account ${l.usage_account_id}'s own cost is on "${s.group_name}", expected "${expected}" (or the staging pool by tag)`);
      }
    }
    const shared = lines.filter((l) => l.kind === 'shared');
    assert.deepEqual([...new Set(shared.map((l) => l.usage_account_id))].sort(), [...sharedSources].sort(),
      `${label}: only the shared accounts are shared`);
    const sharedTo = (acct) => [...new Set(shared.filter((l) => l.usage_account_id === acct)
      .map((l) => statements.find((s) => s.statement_id === l.statement_id).group_name))].sort();
    assert.deepEqual(sharedTo(A.byRole['shared-services']), ['apps', 'data', 'platform'], `${label}: network shared among three groups`);
    assert.deepEqual(sharedTo(B.byRole['security-audit']), ['apps', 'platform'], `${label}: security shared between two groups`);
    for (const acct of sharedSources) {
      const total = exp.payers[acct === A.byRole['shared-services'] ? A.id : B.id].byUsageAccount[acct].unblendedCost;
      const mine = shared.filter((l) => l.usage_account_id === acct);
      assert.ok(within(sumOf(mine.map((l) => l.aws_cost)), total, mine.length),
        `${label}: all of shared account ${acct}'s cost (${total}) is shared out`);
    }
    // FIXED 70/30 (up to a cent per line)
    const secP = sumOf(shared.filter((l) => l.usage_account_id === B.byRole['security-audit']
      && l.statement_id === byName.platform.statement_id).map((l) => l.aws_cost));
    const secAll = sumOf(shared.filter((l) => l.usage_account_id === B.byRole['security-audit']).map((l) => l.aws_cost));
    const secLines = shared.filter((l) => l.usage_account_id === B.byRole['security-audit']).length;
    assert.ok(within(decimalToString(toScaled(secP) * 10n), decimalToString(toScaled(secAll) * 7n), secLines * 10 + 10),
      `${label}: platform gets 70 % of security (${secP} of ${secAll})`);
    // the tag rule: the staging pool has the staging-tagged cost (exactly that, to a cent per line)
    const [{ staging }] = await q(
      `SELECT coalesce(sum(line_item_unblended_cost), 0)::text AS staging FROM billops.cur_line_item
        WHERE bill_billing_period_start_date = $1 AND line_item_usage_account_id <> ALL ($2)
          AND 'staging' IN (resource_tags->>'user:Environment', resource_tags->>'user_environment')`,
      [period, [...sharedSources]]);
    assert.ok(toScaled(staging) > 0n, `${label}: there is staging-tagged cost`);
    const pool = linesOf('staging-pool');
    assert.ok(within(byName['staging-pool'].aws_cost, staging, pool.length),
      `${label}: the staging pool's AWS cost ${byName['staging-pool'].aws_cost} is the staging-tagged cost ${staging}`);

    // pricing: markup, discount and tiering all apply, tax passes through, margins are real
    const ruleTypes = await q(
      `SELECT DISTINCT r.rule_type, r.scope FROM billops.statement_line l JOIN billops.statement s USING (statement_id)
         JOIN billops.pricing_rule r USING (pricing_rule_id) WHERE s.billing_period = $1`, [period]);
    for (const [t, sc] of [['MARKUP', 'GLOBAL'], ['MARKUP', 'BILLING_ENTITY'], ['MARKUP', 'SKU'], ['DISCOUNT', 'SERVICE'], ['TIERING', 'GLOBAL']])
      assert.ok(ruleTypes.some((r) => r.rule_type === t && r.scope === sc), `${label}: a ${t} rule at ${sc} scope priced some lines`);
    assert.ok(toScaled(byName.platform.margin) > 0n, `${label}: platform has a margin`);
    assert.ok(toScaled(byName.data.margin) < 0n, `${label}: volume tiers and the compute discount give data a negative margin`);
    assert.equal(N(byName['(unallocated)'].margin), '0', `${label}: unallocated cost is at cost`);
    for (const g of ['platform', 'apps']) {
      const unpriced = linesOf(g).filter((l) => (l.kind === 'aws' || l.kind === 'shared') && l.pricing_rule_id === null);
      assert.ok(unpriced.length > 0, `${label} "${g}": has tax lines, which no rule prices`);
      for (const l of unpriced) assert.equal(N(l.margin), '0', `${label} "${g}" line ${l.line_no}: tax passes through at cost`);
    }
    //    the global markup: 7.5 % of the lines it priced (each line within 2 cents of exact)
    const [overhead] = await q(`SELECT pricing_rule_id FROM billops.pricing_rule WHERE name = 'overhead' AND effective_from = '-infinity'`);
    for (const l of lines.filter((x) => x.pricing_rule_id === overhead.pricing_rule_id))
      assert.ok(within(l.margin, decimalToString(toScaled(l.aws_cost) * 75n / 1000n), '0.02'),
        `${label} line ${l.line_no}: 7.5 % markup on ${l.aws_cost} is ${l.margin}`);

    // custom line items
    const fee = linesOf('platform').filter((l) => l.kind === 'fee');
    assert.equal(fee.length, 1, `${label}: platform has its fee`);
    assert.deepEqual([N(fee[0].aws_cost), N(fee[0].proforma_cost), N(fee[0].margin)], ['0', '125', '125'], `${label}: a flat 125.00 fee`);
    const credit = linesOf('apps').filter((l) => l.kind === 'credit');
    assert.equal(credit.length, 1, `${label}: apps has its credit`);
    const ec2 = linesOf('apps').filter((l) => (l.kind === 'aws' || l.kind === 'shared') && l.service === 'Amazon Elastic Compute Cloud');
    const ec2Pf = sumOf(ec2.map((l) => l.proforma_cost));
    assert.ok(toScaled(credit[0].proforma_cost) < 0n, `${label}: the credit is negative`);
    assert.ok(within(credit[0].proforma_cost, decimalToString(-toScaled(ec2Pf) * 25n / 1000n), ec2.length + 1),
      `${label}: credit ${credit[0].proforma_cost} = -2.5 % of apps' EC2 pro forma ${ec2Pf}`);
    assert.equal(linesOf('staging-pool').filter((l) => l.kind === 'fee').length, 1, `${label}: the staging pool has its percentage fee`);
  }
  for (const n of notes.splice(0)) t.diagnostic(n);
});

// --- 2. an account moves between groups at a period boundary -----------------------------

test('an account moved between groups from June: May keeps the old group, June shows the new one, both tie out', async (t) => {
  const [A] = data.may.payers;
  const dev = A.byRole.dev;
  for (const key of ['may', 'jun']) await build(key);
  const mayBefore = await snapshot(periodOf('may'));
  const junBefore = await snapshot(periodOf('jun'));
  const devLines = (snap, group) => snap.lines.filter((l) => l.group_name === group && l.kind === 'aws' && l.usage_account_id === dev);
  assert.ok(devLines(junBefore, 'platform').length > 0, 'before the move, the dev account is on platform\'s June statement');
  assert.equal(devLines(junBefore, 'data').length, 0, 'and not on data\'s');

  // from June, the dev account belongs to data
  await db.query(`UPDATE billops.billing_group_account SET effective_to = '2024-06-01'
                   WHERE account_id = $1 AND billing_group_id = $2`, [dev, await groupId('platform')]);
  await db.query(`INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from)
                  VALUES ($1, $2, '2024-06-01')`, [await groupId('data'), dev]);
  for (const key of ['may', 'jun']) await build(key);
  const mayAfter = await snapshot(periodOf('may'));
  const junAfter = await snapshot(periodOf('jun'));

  assert.deepEqual(mayAfter, mayBefore, 'May\'s statements and lines are unchanged by a move from June');
  assert.ok(devLines(mayAfter, 'platform').length > 0, 'May still shows the dev account on platform');
  assert.equal(devLines(mayAfter, 'data').length, 0, 'and not on data');
  assert.equal(devLines(junAfter, 'platform').length, 0, 'June no longer shows the dev account on platform');
  assert.ok(devLines(junAfter, 'data').length > 0, 'June shows it on data');

  // the account's own (not staging-tagged) June cost moved whole, to within a cent per line
  const [{ own }] = await q(
    `SELECT coalesce(sum(line_item_unblended_cost), 0)::text AS own FROM billops.cur_line_item
      WHERE bill_billing_period_start_date = '2024-06-01' AND line_item_usage_account_id = $1
        AND 'staging' IS DISTINCT FROM coalesce(resource_tags->>'user_environment', resource_tags->>'user:Environment')`, [dev]);
  for (const [snap, group] of [[junBefore, 'platform'], [junAfter, 'data']]) {
    const ls = devLines(snap, group);
    assert.ok(within(sumOf(ls.map((l) => l.aws_cost)), own, ls.length),
      `June: the dev account's cost on ${group} is its own cost ${own}`);
  }
  const aws = (snap, g) => snap.statements.find((s) => s.group_name === g).aws_cost;
  assert.ok(toScaled(aws(junAfter, 'platform')) < toScaled(aws(junBefore, 'platform')), 'platform\'s June AWS cost went down');
  assert.ok(toScaled(aws(junAfter, 'data')) > toScaled(aws(junBefore, 'data')), 'data\'s June AWS cost went up');
  assert.equal(sumOf(junAfter.statements.map((s) => s.aws_cost)), sumOf(junBefore.statements.map((s) => s.aws_cost)),
    'June\'s AWS total is unchanged by the move');

  await assertTiesOut('may');
  await assertTiesOut('jun');
  for (const n of notes.splice(0)) t.diagnostic(n);
});

// --- 3. a pricing rule changed from a later period ----------------------------------------

test('a pricing rule changed from June changes only June\'s margin; AWS cost is unchanged', async (t) => {
  for (const key of Object.keys(MONTHS)) await build(key);
  const prev = {};
  for (const key of Object.keys(MONTHS)) prev[key] = await snapshot(periodOf(key));
  const [old] = await q(`SELECT pricing_rule_id FROM billops.pricing_rule WHERE name = 'overhead'`);

  await db.query(`SELECT billops.set_pricing_rule('standard', 'overhead', '2024-06-01', 'MARKUP', 'GLOBAL', 12)`);
  const versions = await q(`SELECT pricing_rule_id, effective_from::text, effective_to::text, modifier_percentage::text
                              FROM billops.pricing_rule WHERE name = 'overhead' ORDER BY effective_from`);
  assert.equal(versions.length, 2, 'the rule has two versions');
  assert.equal(versions[0].pricing_rule_id, old.pricing_rule_id, 'the old version is kept ...');
  assert.equal(versions[0].effective_to, '2024-06-01', '... and ends where the new one starts');
  const newId = versions[1].pricing_rule_id;

  const next = {};
  for (const key of Object.keys(MONTHS)) { await build(key); next[key] = await snapshot(periodOf(key)); }
  for (const key of ['mar', 'apr', 'may'])
    assert.deepEqual(next[key], prev[key], `${key}: statements and lines are unchanged by a rule changed from June`);

  const jb = prev.jun, ja = next.jun;
  assert.deepEqual(ja.statements.map((s) => [s.group_name, N(s.aws_cost), s.line_items]),
    jb.statements.map((s) => [s.group_name, N(s.aws_cost), s.line_items]), 'June: every statement keeps its AWS cost');
  const stmt = (snap, g) => snap.statements.find((s) => s.group_name === g);
  for (const g of ['platform', 'apps'])
    assert.ok(toScaled(stmt(ja, g).margin) > toScaled(stmt(jb, g).margin),
      `June "${g}" (standard plan): margin ${stmt(jb, g).margin} -> ${stmt(ja, g).margin} went up with the markup`);
  for (const g of ['data', 'staging-pool', '(unallocated)'])
    assert.deepEqual(stmt(ja, g), stmt(jb, g), `June "${g}" (not on the standard plan) is unchanged`);

  // June's lines priced by the global markup now use the new version, at 12 %
  assert.ok(!ja.lines.some((l) => l.pricing_rule_id === old.pricing_rule_id), 'June no longer uses the old version');
  assert.ok(next.may.lines.some((l) => l.pricing_rule_id === old.pricing_rule_id), 'May still does');
  const repriced = ja.lines.filter((l) => l.pricing_rule_id === newId);
  assert.ok(repriced.length > 0, 'June has lines priced by the new version');
  for (const l of repriced)
    assert.ok(within(l.margin, decimalToString(toScaled(l.aws_cost) * 12n / 100n), '0.02'),
      `June ${l.group_name} line ${l.line_no}: 12 % markup on ${l.aws_cost} is ${l.margin}`);

  for (const key of Object.keys(MONTHS)) await assertTiesOut(key);
  for (const n of notes.splice(0)) t.diagnostic(n);
});
