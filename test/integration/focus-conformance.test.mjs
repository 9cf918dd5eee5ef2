// FOCUS 1.2, rule by rule: billops.focus_rule (the MUST and SHOULD rules of the specification that
// can be evaluated on data) run by billops.focus_conformance on three data sets:
//   * the real legacy CUR sample through billops.focus_cost,
//   * a generated CUR 2.0 month with every line item type (Savings Plans, reservations, credits,
//     refunds, discounts, tax, fees, Marketplace) through billops.focus_cost,
//   * the real FOCUS 1.0 export sample (AWS, Microsoft and Oracle rows) as loaded, on the columns it
//     delivered: what it violates is the providers' own data, shown as it is, and a few of those
//     counts are read independently by DuckDB from the CSV.
// The violations each data set may have are listed below with the reason; any other violation, or a
// listed one that no longer happens, fails the test. And every kind of rule is shown to fail on data
// broken on purpose.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { closeAll, freshDatabase, generate, RUN, ROOT, SHARED } from './helpers.mjs';

const require = createRequire(path.join(ROOT, 'test/emulators/package.json'));
const LEGACY = path.join(SHARED, 'testdata/cur/legacy-cur-2023-11-sample.csv');
const FOCUS = path.join(SHARED, 'testdata/focus/focus-1.0-sample.csv');
let db;

// rule_id -> violating rows, MUST rules only unless asked
async function violations(dataset, filter, { should = false, delivered = null } = {}) {
  const { rows } = await db.query(`SELECT rule_id, rows_violating::int AS n FROM billops.focus_conformance($1, $2, $3)
                                    WHERE rows_violating > 0 AND ($4 OR keyword = 'MUST') ORDER BY rule_id`,
  [dataset, filter, delivered, should]);
  return Object.fromEntries(rows.map((r) => [r.rule_id, r.n]));
}

before(async () => {
  db = await freshDatabase('billops_it_focus_rules');
  await db.query('SET client_min_messages = warning');
  await db.query(`SELECT billops.load_cur_file($1, 'legacy-sample')`, [LEGACY]);
  await db.query(`SELECT billops.load_focus_file($1, 'focus-sample')`, [FOCUS]);
  // a generated CUR 2.0 month, every line item type, one file
  const out = path.join(RUN, 'focus-rules-gen');
  fs.rmSync(out, { recursive: true, force: true });
  generate(['--out', out, '--bucket', 'focus-rules', '--report', 'gen', '--layout', 'cur2', '--period', '2024-03',
    '--rows', '20000', '--files', '1', '--columns', 'all', '--seed', '5', '--final', '--quiet']);
  const file = fs.readdirSync(path.join(out, 'focus-rules/gen/data/BILLING_PERIOD=2024-03'))[0];
  fs.chmodSync(out, 0o755);
  await db.query(`SELECT billops.load_cur_file($1, 'generated')`, [path.join(out, 'focus-rules/gen/data/BILLING_PERIOD=2024-03', file)]);
});
after(closeAll);

test('the rule set: every MUST and SHOULD evaluable on data, each with its page of the specification', async () => {
  const { rows: [r] } = await db.query(`SELECT count(*)::int AS n, count(*) FILTER (WHERE keyword = 'SHOULD')::int AS should,
      count(DISTINCT focus_column) FILTER (WHERE kind <> 'columns')::int AS columns, array_agg(DISTINCT kind ORDER BY kind) AS kinds,
      count(*) FILTER (WHERE kind = 'columns')::int AS column_handling,
      count(*) FILTER (WHERE spec_file !~ '^(columns/[a-z]+|attributes/[a-z_]+)\\.md$')::int AS bad_ref FROM billops.focus_rule`);
  // 57 FOCUS columns, and three ColumnHandling rules on the dataset's column names
  assert.deepEqual(r, { n: 247, should: 24, columns: 57, kinds: ['columns', 'one_per', 'presence', 'row', 'type'], column_handling: 3, bad_ref: 0 });
  // every rule is evaluated on focus_cost, which has every FOCUS 1.2 column
  const { rows: [e] } = await db.query(`SELECT count(*) FILTER (WHERE rows_applicable IS NULL)::int AS unevaluated FROM billops.focus_conformance()`);
  assert.equal(e.unevaluated, 0);
});

test('every kind of rule fails on data broken on purpose, and only the rule broken', async () => {
  await db.query(`CREATE TABLE broken AS SELECT * FROM billops.focus_cost WHERE "x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2023-11-01T00:00:00Z'`);
  const baseline = await violations('broken', null, { should: true });
  // the generated month has commitments and invoices, which the legacy sample has not
  await db.query(`CREATE TABLE broken2 AS SELECT * FROM billops.focus_cost WHERE "x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2024-03-01T00:00:00Z'`);
  const baseline2 = await violations('broken2', null, { should: true });
  const cases = [
    ['UPDATE broken SET "BilledCost" = NULL WHERE ctid = (SELECT min(ctid) FROM broken)', ['BilledCost.3']],
    [`UPDATE broken SET "ChargeCategory" = 'Refund' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ChargeCategory" = 'Tax')`, ['ChargeCategory.4']],
    [`UPDATE broken SET "BillingCurrency" = 'usd' WHERE ctid = (SELECT min(ctid) FROM broken)`, ['BillingCurrency.4']],
    [`UPDATE broken SET "ChargeClass" = 'Refund' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ChargeCategory" = 'Tax')`, ['ChargeClass.3']],
    [`UPDATE broken SET "Tags" = '[1, 2]' WHERE ctid = (SELECT min(ctid) FROM broken)`, ['Tags.1']],
    // a Key-Value column of another type: its type rule fails, the rules that read it are not evaluated, the scan goes on
    ['ALTER TABLE broken ALTER "Tags" TYPE text', ['Tags.2']],
    ['ALTER TABLE broken ALTER "Tags" TYPE json', []],
    // NaN and Infinity are held by numeric, but are no decimal values
    [`UPDATE broken SET "BilledCost" = 'NaN' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ChargeCategory" = 'Usage')`, ['BilledCost.5']],
    [`UPDATE broken SET "ListUnitPrice" = 'Infinity' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ListUnitPrice" IS NOT NULL)`,
      ['ListCost.5', 'ListUnitPrice.4']],
    // placeholders (NullHandling), nullable column or not
    [`UPDATE broken SET "RegionName" = 'N/A' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "RegionId" IS NOT NULL)`, ['RegionName.4']],
    [`UPDATE broken SET "ProviderName" = 'Not Applicable' WHERE ctid = (SELECT min(ctid) FROM broken)`, ['ProviderName.5']],
    // one_per with a key of two columns
    [`UPDATE broken SET "BillingPeriodEnd" = "BillingPeriodEnd" + interval '1 day' WHERE ctid = (SELECT min(ctid) FROM broken)`, ['BillingPeriodEnd.5']],
    // SkuPriceDetails' keys
    [`UPDATE broken SET "SkuPriceDetails" = '{"coreCount": 4}' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "SkuPriceId" IS NOT NULL)`,
      ['SkuPriceDetails.4', 'SkuPriceDetails.5']],
    [`UPDATE broken SET "SkuPriceDetails" = '{"CoreCount": "4", "x_Tier": 1}' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "SkuPriceId" IS NOT NULL)`,
      ['SkuPriceDetails.6']],
    // UnitFormat: a spelled-out, lower-case data size
    [`UPDATE broken SET "PricingUnit" = 'gigabytes' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "PricingUnit" IS NOT NULL)`,
      ['PricingUnit.7', 'PricingUnit.8']],
    // ColumnHandling, on the column names: a custom column without x_, one not in Pascal case, a FOCUS column after the custom ones
    ['ALTER TABLE broken RENAME "x_Operation" TO "Operation"', ['ColumnHandling.1']],
    ['ALTER TABLE broken RENAME "x_Operation" TO "x_operation"', ['ColumnHandling.2']],
    ['ALTER TABLE broken DROP COLUMN "Tags", ADD COLUMN "Tags" jsonb', ['ColumnHandling.3']],
    // a recommended column left out: a SHOULD
    ['ALTER TABLE broken DROP COLUMN "InvoiceId"', ['InvoiceId.3']],
    [`UPDATE broken SET "RegionName" = NULL WHERE ctid = (SELECT min(ctid) FROM broken WHERE "RegionId" IS NOT NULL)`, ['RegionName.3']],
    [`UPDATE broken SET "ServiceCategory" = 'Analytics', "ServiceSubcategory" = 'Search'
       WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ServiceName" = 'Amazon Simple Storage Service')`, ['ServiceName.5', 'ServiceName.6']],
    [`UPDATE broken SET "ServiceSubcategory" = 'Object Storage' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "ServiceCategory" = 'Compute')`,
      ['ServiceName.6', 'ServiceSubcategory.3']],
    [`UPDATE broken SET "PricingUnit" = 'gigabyte per hour' WHERE ctid = (SELECT min(ctid) FROM broken WHERE "PricingUnit" ~ '^[A-Za-z]+$')`,
      ['PricingUnit.5', 'PricingUnit.7', 'PricingUnit.8']],
    ['ALTER TABLE broken ALTER "ChargePeriodStart" TYPE timestamp', ['ChargePeriodStart.2']],
    ['ALTER TABLE broken DROP COLUMN "ServiceName"', ['ServiceName.1']],
    // DiscountHandling, on the generated month's commitments
    [`UPDATE broken2 SET "CommitmentDiscountId" = NULL, "CommitmentDiscountCategory" = NULL, "CommitmentDiscountName" = NULL,
        "CommitmentDiscountQuantity" = NULL, "CommitmentDiscountStatus" = NULL, "CommitmentDiscountType" = NULL, "CommitmentDiscountUnit" = NULL
       WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "PricingCategory" = 'Committed' AND "CommitmentDiscountStatus" = 'Used')`,
      ['CommitmentDiscountId.3'], 'broken2'],
    [`UPDATE broken2 SET "ResourceId" = 'i-0123456789abcdef0' WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "ChargeCategory" = 'Purchase' AND "CommitmentDiscountId" IS NOT NULL)`,
      ['ResourceId.3'], 'broken2'],
    [`UPDATE broken2 SET "ResourceId" = 'i-0123456789abcdef0' WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "CommitmentDiscountStatus" = 'Unused')`,
      ['ResourceId.4'], 'broken2'],
    [`UPDATE broken2 SET "CommitmentDiscountStatus" = 'Unused' WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "ChargeCategory" = 'Purchase' AND "CommitmentDiscountId" IS NOT NULL)`,
      ['CommitmentDiscountStatus.5'], 'broken2'],
    [`UPDATE broken2 SET "PricingCurrencyEffectiveCost" = 1 WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "ChargeCategory" = 'Purchase' AND "CommitmentDiscountId" IS NOT NULL)`,
      ['PricingCurrencyEffectiveCost.4'], 'broken2'],
    [`UPDATE broken2 SET "CommitmentDiscountUnit" = 'Units' WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "CommitmentDiscountUnit" IS NOT NULL AND "CommitmentDiscountUnit" <> 'Units')`,
      ['CommitmentDiscountUnit.6'], 'broken2'],
    [`UPDATE broken2 SET "BillingAccountId" = '999988887777' WHERE ctid = (SELECT min(ctid) FROM broken2 WHERE "InvoiceId" IS NOT NULL)`,
      ['InvoiceId.4'], 'broken2'],
  ];
  for (const [sql, expected, table = 'broken'] of cases) {
    const base = table === 'broken' ? baseline : baseline2;
    await db.query('BEGIN');
    try {
      await db.query(sql);
      const now = await violations(table, null, { should: true });
      const changed = Object.keys(now).filter((k) => now[k] !== base[k]).concat(Object.keys(base).filter((k) => !(k in now))).sort();
      assert.deepEqual([...new Set(changed)], expected, `${sql}: ${JSON.stringify(now)}`);
    } finally {
      await db.query('ROLLBACK');
    }
  }
});

test('the real legacy CUR sample: every MUST holds once its accounts have names', async () => {
  const filter = `"x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2023-11-01T00:00:00Z'`;
  // legacy CUR names no account (CUR 2.0 does): SubAccountName is the one gap, closed by billops.aws_account
  assert.deepEqual(await violations('billops.focus_cost', filter), { 'SubAccountName.3': 1281 });
  await db.query(`INSERT INTO billops.aws_account (account_id, account_name)
                  SELECT DISTINCT line_item_usage_account_id, 'account ' || line_item_usage_account_id FROM billops.cur_line_item
                  ON CONFLICT DO NOTHING`);
  assert.deepEqual(await violations('billops.focus_cost', filter), {});
  // SHOULD: AWS's units ("Hrs", "GB-Mo" ...) are not in UnitFormat's forms; they are kept as AWS writes them
  const should = await violations('billops.focus_cost', filter, { should: true });
  assert.deepEqual(Object.keys(should), ['ConsumedUnit.4', 'PricingUnit.5']);
});

test('a generated CUR 2.0 month with every line item type: the MUST rules that still fail are the listed ones', async () => {
  const filter = `"x_BillopsSource" = 'cur' AND "BillingPeriodStart" = '2024-03-01T00:00:00Z'`;
  const got = await violations('billops.focus_cost', filter);
  // what our CUR mapping does not do yet (issue 18's open points), and what the generated CUR lacks
  const known = {
    'SkuId.3': 'fees without a product SKU in the generated CUR (AWS lists SkuId among its own FOCUS export\'s conformance gaps)',
    'SkuPriceId.3': 'fees, unused commitment and some usage without a rate code (AWS lists SkuPriceId among its own gaps too)',
  };
  assert.deepEqual(Object.keys(got).sort(), Object.keys(known).sort(), JSON.stringify(got));
  const types = (await db.query(`SELECT array_agg(DISTINCT line_item_line_item_type ORDER BY line_item_line_item_type) AS t
                                   FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-03-01'`)).rows[0].t;
  assert.deepEqual(types, ['BundledDiscount', 'Credit', 'DiscountedUsage', 'EdpDiscount', 'Fee', 'RIFee', 'Refund', 'SavingsPlanCoveredUsage',
    'SavingsPlanNegation', 'SavingsPlanRecurringFee', 'SavingsPlanUpfrontFee', 'Tax', 'Usage'], 'every line item type is in the month');
  const mp = (await db.query(`SELECT count(*)::int AS n FROM billops.focus_cost WHERE ${filter} AND "PublisherName" <> "InvoiceIssuerName"`)).rows[0].n;
  assert.ok(mp > 0, 'Marketplace rows (published by a seller, invoiced by AWS) are in the month');
  // the money is the CUR's: BilledCost its unblended total, EffectiveCost its amortized total (AWS's formula),
  // with each commitment fee's unused part a Usage row of its own
  const { rows: [m] } = await db.query(`SELECT
      (SELECT sum("BilledCost") FROM billops.focus_cost WHERE ${filter}) = (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item
                                                                             WHERE bill_billing_period_start_date = '2024-03-01') AS billed,
      (SELECT sum("EffectiveCost") FROM billops.focus_cost WHERE ${filter}) = (SELECT sum(amortized_cost) FROM billops.cur_spend_by_account_service
                                                                                WHERE billing_period = '2024-03-01') AS effective,
      (SELECT count(*) FROM billops.focus_cost WHERE ${filter} AND "CommitmentDiscountStatus" = 'Unused' AND "ChargeCategory" = 'Usage' AND "BilledCost" = 0
                                                 AND "EffectiveCost" <> 0 AND "ConsumedQuantity" IS NULL)::int AS unused,
      (SELECT count(*) FROM billops.focus_cost WHERE ${filter} AND "ChargeCategory" = 'Purchase' AND "CommitmentDiscountId" IS NOT NULL
                                                 AND "EffectiveCost" <> 0)::int AS purchases_with_cost`);
  assert.equal(m.billed, true, 'BilledCost adds up to the unblended cost');
  assert.equal(m.effective, true, 'EffectiveCost adds up to the amortized cost');
  assert.ok(m.unused > 0, 'unused commitment as Usage rows');
  assert.equal(m.purchases_with_cost, 0, 'a commitment\'s purchase has EffectiveCost 0');
});

test('the real FOCUS 1.0 export sample: the providers\' own violations, as they are; some counted again by DuckDB', async () => {
  const { rows: [d] } = await db.query(`SELECT d.delivery_id, d.columns FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                         WHERE s.name = 'focus-sample' AND d.status = 'loaded'`);
  const got = await violations('billops.focus_line_item', null, { delivered: d.columns });
  // ColumnHandling.1: the file's "Id" column, which FOCUS does not define, has no x_ prefix (read from the header,
  // delivered_columns; the column is kept in extras)
  assert.deepEqual(got, {
    'ColumnHandling.1': 1, 'ConsumedQuantity.2': 2, 'ContractedCost.3': 7, 'ContractedCost.5': 18, 'ContractedUnitPrice.3': 5,
    'ContractedUnitPrice.4': 1, 'EffectiveCost.5': 1, 'ListCost.5': 26, 'PricingCategory.3': 5, 'RegionName.2': 7, 'RegionName.3': 2,
    'ResourceType.2': 36, 'ResourceType.3': 752, 'ServiceName.5': 1, 'SkuPriceId.3': 5,
  });
  // the rules for columns FOCUS 1.0 did not have are not evaluated on it
  const { rows: [u] } = await db.query(`SELECT array_agg(DISTINCT focus_column ORDER BY focus_column) AS c FROM billops.focus_conformance('billops.focus_line_item', NULL, $1)
                                          WHERE rows_applicable IS NULL`, [d.columns]);
  assert.ok(u.c.includes('BillingAccountType') && u.c.includes('ServiceSubcategory') && !u.c.includes('BilledCost'), u.c.join(' '));
  // DuckDB reads the same file and counts three of them itself
  const { DuckDBInstance } = require('@duckdb/node-api');
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  const src = `read_csv('${FOCUS}', header = true, all_varchar = true, nullstr = 'NULL')`;
  const [c] = (await (await duck.runAndReadAll(`SELECT
      count(*) FILTER (WHERE "ResourceId" IS NOT NULL AND "ResourceType" IS NULL)::INTEGER AS rt,
      count(*) FILTER (WHERE "ContractedCost" IS NULL)::INTEGER AS cc,
      count(*) FILTER (WHERE "RegionId" IS NULL AND "RegionName" IS NOT NULL)::INTEGER AS rn
    FROM ${src}`)).getRowObjectsJS());
  assert.deepEqual([c.rt, c.cc, c.rn], [got['ResourceType.3'], got['ContractedCost.3'], got['RegionName.2']]);
});
