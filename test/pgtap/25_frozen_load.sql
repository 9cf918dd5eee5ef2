-- A delivery loaded in one stream is written frozen, as COPY FREEZE writes a table created in its
-- transaction (cur_load.c, billops_frozen_insert_option): the month's first reader then finds
-- every page all-visible and all-frozen instead of setting hint bits on each and writing it
-- again.  Frozen rows are visible at once, so what makes it safe is tested too: the rows go
-- with the (sub)transaction that created their table.
BEGIN;
SELECT plan(7);

\getenv shared BILLOPS_SHARED
\set sample :shared '/testdata/cur/legacy-cur-2023-11-sample.csv'

\ir _csv_fixture.psql

CREATE EXTENSION IF NOT EXISTS pg_visibility;
SET client_min_messages = warning;

SELECT lives_ok(format('SELECT billops.load_cur_file(%L, %L)', :'sample', 'tap-frozen'), 'the sample loads');

-- the leaf partitions of the line items and of the daily rollup, with their pages
CREATE TEMP TABLE leaves AS
SELECT t.parent, p.relid, pg_relation_size(p.relid) / current_setting('block_size')::int AS pages, v.all_visible, v.all_frozen
  FROM (VALUES ('billops.cur_line_item'::regclass), ('billops.cur_daily'::regclass)) t(parent)
  CROSS JOIN LATERAL pg_partition_tree(t.parent) p
  CROSS JOIN LATERAL pg_visibility_map_summary(p.relid) v
 WHERE p.isleaf;

SELECT ok((SELECT sum(pages) > 0 AND sum(all_visible) = sum(pages) AND sum(all_frozen) = sum(pages)
             FROM leaves WHERE parent = 'billops.cur_line_item'::regclass),
          'every page of the loaded line items is all-visible and all-frozen');
SELECT ok((SELECT sum(pages) > 0 AND sum(all_frozen) = sum(pages) FROM leaves WHERE parent = 'billops.cur_daily'::regclass),
          'and so is every page of its daily rollup');
-- (pg_check_frozen: the tuples on pages marked all-frozen that are not frozen; the map does not lie)
SELECT is((SELECT count(*) FROM leaves l CROSS JOIN LATERAL pg_check_frozen(l.relid) x), 0::bigint,
          'every tuple on those pages is frozen');
SELECT is((SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2023-11-01'),
          (SELECT sum(d.rows_loaded) FROM billops.cur_delivery d
            WHERE d.status = 'loaded' AND d.billing_period = '2023-11-01')::bigint,
          'and every row loaded reads back');

-- a load in a subtransaction that is rolled back: its rows, frozen or not, go with the staging
-- table that subtransaction created
SAVEPOINT before_december;
SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_frozen.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageStartDate',
  '111111111111,2023-12-01T00:00:00Z,123456789012,Usage,1.25,2023-12-02T00:00:00Z',
  '111111111111,2023-12-01T00:00:00Z,123456789012,Usage,2.50,2023-12-03T00:00:00Z']), 'tap-frozen-dec');
SELECT is((SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2023-12-01'), 2::bigint,
          'December loads in its subtransaction');
ROLLBACK TO SAVEPOINT before_december;
SELECT is((SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2023-12-01')
          + (SELECT count(*) FROM billops.cur_daily WHERE billing_period = '2023-12-01'), 0::bigint,
          'rolled back, none of December''s rows or rollup rows is left visible');

SELECT * FROM finish();
ROLLBACK;
