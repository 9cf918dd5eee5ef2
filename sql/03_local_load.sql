-- Loading CUR files from the server's file system: the real sample, idempotence,
-- atomic replacement, and bad input that must fail clearly and lose nothing.
\getenv sample BILLOPS_SAMPLE
SET client_min_messages = warning;   -- NOTICEs name the checkout's path
SELECT billops.load_cur_file(:'sample', assembly_id => 'sample-v1') AS delivery_id;
RESET client_min_messages;

SELECT billing_period, payer_account_id, source_name, assembly_id, line_items,
       invoiced_line_items, invoice_state, latest_attempt_status
  FROM billops.cur_period_status;
SELECT line_item_line_item_type, count(*), sum(line_item_unblended_cost)
  FROM billops.cur_line_item GROUP BY 1 ORDER BY 1;
-- legacy product/* attributes without a CUR 2.0 static column land in the product map; a
-- legacy column CUR 2.0 has as a static column lands on it (reservation/SubscriptionId)
SELECT count(*) FILTER (WHERE product ? 'servicename') AS with_product_servicename,
       count(*) FILTER (WHERE reservation_subscription_id IS NOT NULL) AS with_subscription_id,
       count(*) FILTER (WHERE line_item_usage_start_date = '2023-11-01T00:00:00Z') AS month_long_items
  FROM billops.cur_line_item;
SELECT service, line_items, unblended_cost
  FROM billops.cur_spend_by_account_service ORDER BY unblended_cost DESC, service LIMIT 4;

-- the same assembly again is a no-op
SET client_min_messages = warning;
SELECT billops.load_cur_file(:'sample', assembly_id => 'sample-v1') AS same_delivery_id;
-- a new assembly replaces the period atomically
SELECT billops.load_cur_file(:'sample', assembly_id => 'sample-v2') AS new_delivery_id;
RESET client_min_messages;
SELECT delivery_id, assembly_id, status, rows_loaded, file_count FROM billops.cur_delivery ORDER BY 1;
SELECT count(*) FROM billops.cur_line_item;
SELECT inhrelid::regclass AS leaf FROM pg_inherits WHERE inhparent = 'billops.cur_line_item_202311'::regclass;

-- Bad input.  Each fails with a SQLSTATE and a message naming the file, and
-- leaves delivery 2 visible and whole.
\set VERBOSITY default
COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType'
      UNION ALL SELECT '123412340534,2023-11-01T00:00:00Z,123412340534,Usage')
  TO '/tmp/billops_regress_missing_column.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_missing_column.csv');
\echo :LAST_ERROR_SQLSTATE

COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost'
      UNION ALL SELECT '123412340534,2023-11-01T00:00:00Z,123412340534,Usage,0.5'
      UNION ALL SELECT '123412340534,2023-11-01T00:00:00Z,123412340534,Usage,12.3abc')
  TO '/tmp/billops_regress_bad_number.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_bad_number.csv');
\echo :LAST_ERROR_SQLSTATE

COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost'
      UNION ALL SELECT '123412340534,2023-11-01T00:00:00Z,123412340534,Usage')
  TO '/tmp/billops_regress_short_row.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_short_row.csv');
\echo :LAST_ERROR_SQLSTATE

COPY (SELECT 'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost'
      UNION ALL SELECT ',2023-11-01T00:00:00Z,123412340534,Usage,1')
  TO '/tmp/billops_regress_no_payer.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_no_payer.csv');
\echo :LAST_ERROR_SQLSTATE

COPY (SELECT '') TO PROGRAM 'cat /dev/null > /tmp/billops_regress_empty.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_empty.csv');
\echo :LAST_ERROR_SQLSTATE

COPY (SELECT '') TO PROGRAM 'printf ''bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/LineItemDescription\n123412340534,2023-11-01T00:00:00Z,123412340534,Usage,1,caf\351\n'' > /tmp/billops_regress_latin1.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_latin1.csv');

\set cmd 'gzip -c < ' :sample ' | head -c 20000 > /tmp/billops_regress_truncated.csv.gz'
COPY (SELECT '') TO PROGRAM :'cmd';
SELECT billops.load_cur_file('/tmp/billops_regress_truncated.csv.gz');
\echo :LAST_ERROR_SQLSTATE

\set cmd 'gzip -c < ' :sample ' > /tmp/billops_regress_corrupt.csv.gz && printf "\\377\\377\\377\\377" | dd of=/tmp/billops_regress_corrupt.csv.gz bs=1 seek=3000 conv=notrunc status=none'
COPY (SELECT '') TO PROGRAM :'cmd';
SELECT billops.load_cur_file('/tmp/billops_regress_corrupt.csv.gz');
\echo :LAST_ERROR_SQLSTATE

SELECT billops.load_cur_file('/tmp/billops_regress_does_not_exist.csv');
\echo :LAST_ERROR_SQLSTATE
\set VERBOSITY terse

-- nothing was lost, nothing was left behind
SELECT delivery_id, count(*) OVER () AS partitions FROM billops.cur_partition;
SELECT count(*), sum(line_item_unblended_cost) FROM billops.cur_line_item;
SELECT count(*) AS stray_staging_tables FROM pg_class
 WHERE relnamespace = 'billops'::regnamespace AND relname ~ '^cur_line_item_.*_d[0-9]+$'
   AND NOT EXISTS (SELECT 1 FROM billops.cur_partition WHERE table_name = 'billops.' || relname);

-- a gzip-compressed file loads the same as the plain one
\set cmd 'gzip -c < ' :sample ' > /tmp/billops_regress_sample.csv.gz'
COPY (SELECT '') TO PROGRAM :'cmd';
SET client_min_messages = warning;
SELECT billops.load_cur_file('/tmp/billops_regress_sample.csv.gz', assembly_id => 'sample-gz');
RESET client_min_messages;
SELECT count(*), sum(line_item_unblended_cost) FROM billops.cur_line_item;

-- one payer and period belongs to one source
SET client_min_messages = warning;
SELECT billops.load_cur_file(:'sample', source_name => 'other-files');
\echo :LAST_ERROR_SQLSTATE

-- DROP EXTENSION takes the partitions created at run time with it, and the
-- extension can be created again
DROP EXTENSION pg_billops;
SELECT count(*) AS billops_relations_left FROM pg_class WHERE relname LIKE 'cur\_%';
SELECT count(*) AS billops_schema_left FROM pg_namespace WHERE nspname = 'billops';
CREATE EXTENSION pg_billops CASCADE;
SELECT count(*) AS line_items_after_recreate FROM billops.cur_line_item;
