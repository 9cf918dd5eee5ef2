-- Invariants of loading: both header styles, schema drift kept, preliminary vs
-- final, routing by payer and period, cumulative replacement, nothing lost.
BEGIN;
SELECT plan(31);

\ir _csv_fixture.psql

-- CUR 2.0 header style with JSON map columns and an unknown column
SELECT lives_ok($$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_cur2.csv', ARRAY[
  'bill_payer_account_id,bill_billing_period_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_unblended_cost,resource_tags,cost_category,split_line_item_split_cost,bill_invoice_id,brand_new_column,savings_plan_net_amortized_upfront_commitment_for_billing_period',
  '111111111111,2024-01-01T00:00:00.000Z,222222222222,Usage,1.25,"{""user_owner"":""alice""}","{""Team"":""core""}",0.5,,y,0.25',
  '111111111111,2024-01-01T00:00:00.000Z,333333333333,Tax,0.10,,,,,,']), 'tap-cur2') $$,
  'a CUR 2.0 (snake-case) file loads');
SELECT is((SELECT resource_tags->>'user_owner' FROM billops.cur_line_item WHERE line_item_usage_account_id = '222222222222'),
          'alice', 'CUR 2.0 resource_tags JSON becomes jsonb');
SELECT is((SELECT cost_category->>'Team' FROM billops.cur_line_item WHERE line_item_usage_account_id = '222222222222'),
          'core', 'CUR 2.0 cost_category JSON becomes jsonb');
SELECT is((SELECT split_line_item_split_cost FROM billops.cur_line_item WHERE line_item_usage_account_id = '222222222222'),
          0.5, 'an optional CUR 2.0 column of AWS''s data dictionary (split cost allocation) is a typed column');
SELECT is((SELECT extras->>'brand_new_column' FROM billops.cur_line_item WHERE line_item_usage_account_id = '222222222222'),
          'y', 'a column the dictionary does not have is kept in extras');
SET client_min_messages = warning;   -- (the NOTICE that PostgreSQL cuts the name)
SELECT is((SELECT savings_plan_net_amortized_upfront_commitment_for_billing_period FROM billops.cur_line_item
            WHERE line_item_usage_account_id = '222222222222'),
          0.25, 'a CUR 2.0 name over 63 bytes lands in its column and reads under AWS''s full name');
RESET client_min_messages;
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_payer_account_id = '111111111111'),
          1.35, 'amounts are exact');
SELECT is((SELECT invoice_state FROM billops.cur_period_status WHERE payer_account_id = '111111111111'),
          'preliminary', 'no invoice id yet: preliminary');

-- legacy header style: tags keep their AWS key, product/* go to the product map
SELECT lives_ok($$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_legacy.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,resourceTags/user:Owner,costCategory/Team,product/instanceFamily,discount/TotalDiscount,bill/InvoiceId,brandNew/Column',
  '444444444444,2024-01-01T00:00:00Z,555555555555,Usage,2.00,bob,data,m5,-0.1,INV-1,x',
  '444444444444,2024-01-01T00:00:00Z,555555555555,Usage,3.00,,,,,INV-1,']), 'tap-legacy') $$,
  'a legacy (category/Name) file loads');
SELECT is((SELECT resource_tags->>'user:Owner' FROM billops.cur_line_item WHERE line_item_unblended_cost = 2.00),
          'bob', 'legacy resourceTags/user:Owner keeps its key');
SELECT is((SELECT product_instance_family FROM billops.cur_line_item WHERE line_item_unblended_cost = 2.00),
          'm5', 'legacy product/instanceFamily lands on CUR 2.0''s static column product_instance_family');
SELECT is((SELECT discount_total_discount FROM billops.cur_line_item WHERE line_item_unblended_cost = 2.00),
          -0.1, 'legacy discount/TotalDiscount lands on CUR 2.0''s static column discount_total_discount');
SELECT is((SELECT extras->>'brandNew/Column' FROM billops.cur_line_item WHERE line_item_unblended_cost = 2.00),
          'x', 'a column AWS adds tomorrow is kept under its header');
SELECT is((SELECT resource_tags FROM billops.cur_line_item WHERE line_item_unblended_cost = 3.00),
          NULL, 'empty tag values are not stored as keys');
SELECT is((SELECT invoice_state || ' ' || array_to_string(invoice_ids, ',') FROM billops.cur_period_status WHERE payer_account_id = '444444444444'),
          'final INV-1', 'every line invoiced: final, with the invoice id');

-- one file, two payers or two periods: AWS never writes one, and loading it would replace
-- the other payer's (month's) data; refused, nothing visible
SELECT throws_ok($$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_multi.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost',
  '600000000001,2024-02-01T00:00:00Z,1,Usage,1',
  '600000000002,2024-02-01T00:00:00Z,1,Usage,2']), 'tap-multi', 'm0') $$,
  '22000', 'row of payer 600000000002 in a delivery of payer 600000000001', 'a file of two payers is refused');
SELECT throws_ok($$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_multi.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost',
  '600000000001,2024-02-01T00:00:00Z,1,Usage,1',
  '600000000001,2024-03-01T00:00:00Z,1,Usage,4']), 'tap-multi', 'm0') $$,
  '22000', 'row of billing period 2024-03-01 in a delivery of billing period 2024-02-01', 'a file of two months is refused');
SELECT is((SELECT count(*)::int FROM billops.cur_partition cp JOIN billops.cur_source s USING (source_id) WHERE s.name = 'tap-multi'),
          0, 'nothing of them is visible');

-- two payers, two months: four deliveries into one source, each its own partition
CREATE FUNCTION pg_temp.load_one(payer text, period text, cost text, invoice text, assembly text) RETURNS bigint LANGUAGE sql AS $$
  SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_' || assembly || '.csv', ARRAY[
    'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,bill/InvoiceId',
    payer || ',' || period || 'T00:00:00Z,1,Usage,' || cost || ',' || invoice]), 'tap-multi', assembly)
$$;
SELECT lives_ok($$ SELECT pg_temp.load_one('600000000001', '2024-02-01', '1', 'INV-A', 'm1a');
                   SELECT pg_temp.load_one('600000000002', '2024-02-01', '2', '', 'm1b');
                   SELECT pg_temp.load_one('600000000001', '2024-03-01', '4', '', 'm1c');
                   SELECT pg_temp.load_one('600000000002', '2024-03-01', '8', '', 'm1d') $$,
                'one payer''s month per file: four files load');
SELECT results_eq($$ SELECT to_char(billing_period, 'YYYY-MM') || '/' || payer_account_id || '/' || invoice_state
                       FROM billops.cur_period_status WHERE source_name = 'tap-multi' ORDER BY 1 $$,
                  ARRAY['2024-02/600000000001/final', '2024-02/600000000002/preliminary',
                        '2024-03/600000000001/preliminary', '2024-03/600000000002/preliminary'],
                  'each (period, payer) is its own partition with its own invoice state');

-- payer ...001 re-delivers March: its March is replaced, payer ...002's March and every February stay
SELECT lives_ok($$ SELECT pg_temp.load_one('600000000001', '2024-03-01', '16', '', 'm2') $$, 'a re-delivery loads');
SELECT results_eq($$ SELECT bill_payer_account_id || '=' || sum(line_item_unblended_cost)
                       FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-03-01'
                      GROUP BY bill_payer_account_id ORDER BY 1 $$,
                  ARRAY['600000000001=16', '600000000002=8'], 'a delivery replaces its own payer''s month only');
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-02-01'),
          3::numeric, 'other months of the source are untouched');

-- bad input in the middle of a file: nothing of it becomes visible
SELECT throws_ok($$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_bad.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost',
  '600000000001,2024-03-01T00:00:00Z,1,Usage,100',
  '600000000001,2024-03-01T00:00:00Z,1,Usage,not-a-number']), 'tap-multi', 'm3') $$,
  '22P02', NULL, 'a bad number fails the load with 22P02');
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_payer_account_id = '600000000001'),
          17::numeric, 'and the previous deliveries stay whole');
SELECT is((SELECT count(*)::int FROM pg_class WHERE relnamespace = 'billops'::regnamespace
            AND relname ~ '_d[0-9]+$' AND relkind = 'r'
            AND NOT EXISTS (SELECT 1 FROM billops.cur_partition WHERE 'billops.' || relname IN (table_name, daily_table))),
          0, 'no staging table is left behind');
SELECT is((SELECT count(*)::int FROM billops.cur_delivery WHERE status = 'running'), 0,
          'no delivery is left running');

-- one spelling for a tag key (AWS's Athena column-name rule, with the guide's own example)
SELECT is(billops.tag_key_canonical('ExampleColumnName : Example Column Name Continued'),
          'example_column_name_example_column_name_continued', 'AWS''s example of its column-name rule');
SELECT is(billops.tag_key_canonical('user:CostCenter'), 'user_cost_center', 'legacy user:CostCenter');
SELECT is(billops.tag_key_canonical('user_cost_center'), 'user_cost_center', 'CUR 2.0 user_cost_center is already canonical');
SELECT is(billops.tag_key_canonical('aws:createdBy'), 'aws_created_by', 'AWS-generated tags too');

SELECT * FROM finish();
ROLLBACK;
