-- FOCUS 1.2 over ingested CUR data: on the real sample, the FOCUS view's
-- totals are the CUR's totals, and its enumerations are the specification's.
BEGIN;
SELECT plan(7);
\getenv shared BILLOPS_SHARED
\set sample :shared '/testdata/cur/legacy-cur-2023-11-sample.csv'
SET client_min_messages = warning;
SELECT billops.load_cur_file(:'sample', 'tap-focus', 'focus-1') IS NOT NULL AS loaded;

SELECT is((SELECT count(*) FROM billops.focus_cost), (SELECT count(*) FROM billops.cur_line_item), 'one FOCUS row per CUR line item');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost), (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item),
          'BilledCost adds up to the CUR''s unblended cost, exactly');
SELECT is((SELECT sum("EffectiveCost") FROM billops.focus_cost), (SELECT sum(amortized_cost) FROM billops.cur_spend_by_account_service),
          'EffectiveCost adds up to the amortized cost');
SELECT is((SELECT sum("BilledCost") FROM billops.focus_cost WHERE "ChargeCategory" = 'Tax'),
          (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE line_item_line_item_type = 'Tax'), 'tax is Tax');
SELECT is((SELECT count(*)::int FROM billops.focus_cost
            WHERE "ChargeCategory" NOT IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')
               OR "ChargeFrequency" NOT IN ('One-Time', 'Recurring', 'Usage-Based')
               OR coalesce("ChargeClass", 'Correction') <> 'Correction'
               OR coalesce("PricingCategory", 'Standard') NOT IN ('Standard', 'Dynamic', 'Committed', 'Other')), 0,
          'every enumeration holds a value FOCUS allows');
SELECT is((SELECT count(*)::int FROM billops.focus_cost WHERE "BillingPeriodStart" >= "BillingPeriodEnd" OR "ProviderName" <> 'AWS'), 0,
          'billing periods are well formed; the provider is AWS');
SET ROLE billops_analyst;
SELECT lives_ok($$ SELECT "ServiceName", sum("EffectiveCost") FROM billops.focus_cost GROUP BY 1 $$, 'analysts (and BI tools) read it');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
