-- Athena's faces over the line items: billops.athena_cur2 (CUR 2.0's table,
-- maps as hstore, billing_period) and billops.athena_cur (the legacy Athena
-- table, a column per key seen, year/month partitions), for a legacy month and
-- a CUR 2.0 month of the same organisation, read the same way.
BEGIN;
SELECT plan(38);

\getenv shared BILLOPS_SHARED
\set dictionary :shared '/docs/cur2-data-dictionary.tsv'
CREATE TEMP TABLE cur2_dictionary (grp text, name text, type text, needs text, description text);
COPY cur2_dictionary FROM :'dictionary' WITH (FORMAT csv, DELIMITER E'\t', HEADER true, QUOTE E'\x01');

SELECT is((SELECT string_agg(d.name, ', ' ORDER BY d.name) FROM cur2_dictionary d
            WHERE NOT EXISTS (SELECT FROM information_schema.columns c
                               WHERE c.table_schema = 'billops' AND c.table_name = 'athena_cur2'
                                 AND c.column_name = left(lower(d.name), 63))),
          NULL, 'every column of AWS''s CUR 2.0 data dictionary is a column of billops.athena_cur2');
SELECT is((SELECT string_agg(DISTINCT c.data_type || ':' || d.type, ', ')
             FROM cur2_dictionary d JOIN information_schema.columns c
               ON c.table_schema = 'billops' AND c.table_name = 'athena_cur2' AND c.column_name = left(lower(d.name), 63)
            WHERE NOT (d.type = 'string' AND c.data_type = 'text'
                    OR d.type = 'double' AND c.data_type = 'numeric'
                    OR d.type = 'timestamp' AND c.data_type = 'timestamp without time zone'
                    OR d.type LIKE 'map<%' AND c.udt_name = 'hstore')),
          NULL, 'athena_cur2''s types are the dictionary''s: string text, double numeric, timestamp (UTC), map hstore');

-- a legacy month (2023-11) and a CUR 2.0 month (2023-12) of payer 111111111111
CREATE FUNCTION pg_temp.write(path text, lines text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('COPY (SELECT unnest(%L::text[])) TO %L', lines, path);
END $$;
SELECT pg_temp.write('/tmp/billops_tap_athena_legacy.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,bill/BillingPeriodEndDate,lineItem/UsageAccountId,lineItem/LineItemType,'
  || 'lineItem/UsageStartDate,lineItem/ProductCode,lineItem/ResourceId,lineItem/UnblendedCost,lineItem/CurrencyCode,'
  || 'product/ProductName,product/region,product/instanceType,resourceTags/user:CostCenter,resourceTags/aws:createdBy,costCategory/Team',
  '111111111111,2023-11-01T00:00:00Z,2023-12-01T00:00:00Z,222222222222,Usage,2023-11-30T23:00:00Z,AmazonEC2,i-0abc,10.5,USD,'
  || 'Amazon Elastic Compute Cloud,us-east-1,m5.large,CC-1,IAMUser:AIDA:alice,platform',
  '111111111111,2023-11-01T00:00:00Z,2023-12-01T00:00:00Z,222222222222,Usage,2023-11-02T00:00:00Z,AmazonS3,,1.25,USD,'
  || 'Amazon Simple Storage Service,us-east-1,,,,platform',
  '111111111111,2023-11-01T00:00:00Z,2023-12-01T00:00:00Z,333333333333,Tax,2023-11-01T00:00:00Z,AmazonS3,,0.10,USD,'
  || 'Amazon Simple Storage Service,,,,,']);
SELECT pg_temp.write('/tmp/billops_tap_athena_cur2.csv', ARRAY[
  'bill_payer_account_id,bill_billing_period_start_date,bill_billing_period_end_date,line_item_usage_account_id,line_item_line_item_type,'
  || 'line_item_usage_start_date,line_item_product_code,line_item_resource_id,line_item_unblended_cost,line_item_currency_code,'
  || 'product,product_instance_type,resource_tags,cost_category,tags',
  '111111111111,2023-12-01T00:00:00Z,2024-01-01T00:00:00Z,222222222222,Usage,2023-12-01T00:00:00Z,AmazonEC2,i-0abc,20.5,USD,'
  || '"{""product_name"": ""Amazon Elastic Compute Cloud"", ""region"": ""us-east-1""}",m5.large,'
  || '"{""user_cost_center"": ""CC-2"", ""user_environment"": ""prod""}","{""team"": ""platform""}","{""user:CostCenter"": ""CC-2""}"',
  '111111111111,2023-12-01T00:00:00Z,2024-01-01T00:00:00Z,222222222222,Usage,2023-12-03T00:00:00Z,AmazonS3,,2.25,USD,'
  || '"{""product_name"": ""Amazon Simple Storage Service"", ""region"": ""us-east-1""}",,,,']);
SELECT billops.load_cur_file('/tmp/billops_tap_athena_legacy.csv', 'tap-athena-legacy', 'l-2023-11');
SELECT billops.load_cur_file('/tmp/billops_tap_athena_cur2.csv', 'tap-athena-cur2', 'c-2023-12');

SET LOCAL search_path = billops_athena, pg_catalog, billops, public;
SET LOCAL TimeZone = 'America/New_York';

-- athena_cur2
SELECT is((SELECT string_agg(billing_period || ' ' || product['product_name'] || ' ' || product['region'], ' | '
                             ORDER BY billing_period, line_item_unblended_cost)
             FROM athena_cur2 WHERE line_item_line_item_type = 'Usage'),
          '2023-11 Amazon Simple Storage Service us-east-1 | 2023-11 Amazon Elastic Compute Cloud us-east-1 | '
          || '2023-12 Amazon Simple Storage Service us-east-1 | 2023-12 Amazon Elastic Compute Cloud us-east-1',
          'product[''product_name''] and product[''region''] are text, for a legacy and a CUR 2.0 month alike; billing_period is YYYY-MM');
SELECT is((SELECT sum(line_item_unblended_cost) FROM athena_cur2 WHERE product['product_name'] = 'Amazon Simple Storage Service'),
          3.60, 'a filter on a map key compares text (no jsonb cast error)');
SELECT is((SELECT string_agg(billing_period || '=' || resource_tags['user_cost_center'], ',' ORDER BY billing_period)
             FROM athena_cur2 WHERE resource_tags['user_cost_center'] <> ''),
          '2023-11=CC-1,2023-12=CC-2', 'legacy user:CostCenter and CUR 2.0 user_cost_center are one key, resource_tags[''user_cost_center'']');
SELECT is((SELECT resource_tags['aws_created_by'] FROM athena_cur2 WHERE billing_period = '2023-11' AND line_item_unblended_cost = 10.5),
          'IAMUser:AIDA:alice', 'aws:createdBy reads as aws_created_by');
SELECT is((SELECT string_agg(cost_category['team'], ',' ORDER BY billing_period) FROM athena_cur2 WHERE line_item_unblended_cost IN (10.5, 20.5)),
          'platform,platform', 'cost category names are normalized too (legacy Team, CUR 2.0 team)');
SELECT is((SELECT tags['user:CostCenter'] FROM athena_cur2 WHERE billing_period = '2023-12' AND line_item_unblended_cost = 20.5),
          'CC-2', 'the tags column keeps AWS''s raw keys (AWS: "not normalized")');
SELECT is((SELECT resource_tags['no_such_key'] FROM athena_cur2 WHERE line_item_unblended_cost = 20.5), NULL,
          'a missing map key reads NULL');
SELECT is((SELECT count(*)::int FROM athena_cur2 WHERE line_item_resource_id = ''), 3,
          'an empty string field reads '''' as Athena reads it: col = '''' matches');
SELECT is((SELECT count(*)::int FROM athena_cur2 WHERE line_item_resource_id <> 'i-0abc'), 3,
          'and col <> ''x'' keeps the rows without a value');
SELECT is((SELECT count(*)::int FROM athena_cur2 WHERE resource_tags = ''::hstore), 3,
          'a row without tags has an empty map');
SELECT is((SELECT line_item_usage_start_date FROM athena_cur2 WHERE line_item_unblended_cost = 10.5),
          '2023-11-30 23:00:00'::timestamp, 'times are UTC wall clock whatever the TimeZone (here America/New_York)');
SELECT is((SELECT bill_billing_period_start_date FROM athena_cur2 WHERE line_item_unblended_cost = 10.5),
          '2023-11-01 00:00:00'::timestamp, 'the billing period start is a timestamp');
SELECT is((SELECT date_format(line_item_usage_start_date, '%Y-%m-%d %H') FROM athena_cur2 WHERE line_item_unblended_cost = 10.5),
          '2023-11-30 23', 'date_format on Athena''s timestamp');
SELECT is((SELECT string_agg(DISTINCT month(line_item_usage_start_date)::text || '/' || day_of_week(line_item_usage_start_date)::text, ',')
             FROM athena_cur2 WHERE line_item_unblended_cost = 10.5),
          '11/4', 'month() and day_of_week() on Athena''s timestamp (2023-11-30 was a Thursday)');
SELECT is((SELECT date_trunc('month', line_item_usage_start_date) FROM athena_cur2 WHERE line_item_unblended_cost = 10.5),
          '2023-11-01'::timestamp, 'date_trunc keeps the UTC month (no time zone shift)');
SELECT is((SELECT element_at(product, 'product_name') || '/' || cardinality(product) || '/' || array_to_string(ARRAY(SELECT unnest(map_keys(product)) ORDER BY 1), ',')
             FROM athena_cur2 WHERE line_item_unblended_cost = 20.5),
          'Amazon Elastic Compute Cloud/2/product_name,region', 'element_at, cardinality and map_keys on a map');
SELECT is((SELECT element_at(product, 'nope') FROM athena_cur2 WHERE line_item_unblended_cost = 20.5), NULL,
          'element_at of a missing key is NULL');

-- Trino's aggregates
SELECT is((SELECT max_by(line_item_resource_id, line_item_unblended_cost) || '/' || min_by(line_item_product_code, line_item_unblended_cost)
             FROM athena_cur2),
          'i-0abc/AmazonS3', 'max_by / min_by by an amount');
SELECT is((SELECT max_by(line_item_unblended_cost, line_item_usage_start_date) FROM athena_cur2), 2.25::numeric,
          'max_by by a time returns the value in its own type');
SELECT is((SELECT min_by(billing_period, line_item_usage_start_date) FROM athena_cur2), '2023-11',
          'min_by by a time');
SELECT is((SELECT approx_distinct(line_item_usage_account_id) FROM athena_cur2), 2::bigint, 'approx_distinct (exact)');
SELECT is((SELECT approx_distinct(line_item_resource_id) FROM athena_cur2 WHERE line_item_resource_id = 'none'), 0::bigint,
          'approx_distinct of nothing is 0');
SELECT is((SELECT approx_percentile(CAST(line_item_unblended_cost AS double), 0.5) FROM athena_cur2), 2.25::double precision,
          'approx_percentile at 0.5 is a value of the data (the median rank)');
SELECT throws_ok($$SELECT approx_percentile(CAST(line_item_unblended_cost AS double), 1.5) FROM athena_cur2$$, '22023', NULL,
                 'a percentile outside 0..1 is refused');

-- athena_cur: the legacy Athena table
SELECT is((SELECT string_agg(column_name, ',' ORDER BY column_name) FROM information_schema.columns
            WHERE table_schema = 'billops' AND table_name = 'athena_cur'
              AND column_name IN ('product_product_name', 'product_region', 'resource_tags_user_cost_center',
                                  'resource_tags_aws_created_by', 'resource_tags_user_environment', 'cost_category_team',
                                  'year', 'month', 'product', 'resource_tags', 'tags_user_cost_center')),
          'cost_category_team,month,product_product_name,product_region,resource_tags_aws_created_by,resource_tags_user_cost_center,resource_tags_user_environment,year',
          'athena_cur has Athena''s legacy column names: a column per product attribute, tag and cost category key seen (no maps)');
SELECT is((SELECT string_agg(year || '-' || month || ' ' || product_product_name || ' ' || resource_tags_user_cost_center, ' | '
                             ORDER BY year, month, line_item_unblended_cost DESC)
             FROM athena_cur WHERE line_item_unblended_cost IN (10.5, 20.5)),
          '2023-11 Amazon Elastic Compute Cloud CC-1 | 2023-12 Amazon Elastic Compute Cloud CC-2',
          'both layouts read through the legacy names; month is ''11'' / ''12''');
SELECT is((SELECT count(*)::int FROM athena_cur WHERE year = '2023' AND month = '11'), 3,
          'the year/month partitions filter as text');
SELECT is((SELECT count(*)::int FROM athena_cur WHERE resource_tags_user_cost_center = ''), 3,
          'a tag a row does not have reads ''''');
SELECT is((SELECT string_agg(product_region, ',' ORDER BY line_item_unblended_cost) FROM athena_cur WHERE year = '2023' AND month = '11'),
          ',us-east-1,us-east-1', 'product_region of a row without one reads ''''');

-- a new key arrives: a column is added at the end, existing columns keep their places
CREATE TEMP TABLE before_cols AS
SELECT column_name::text, ordinal_position FROM information_schema.columns WHERE table_schema = 'billops' AND table_name = 'athena_cur';
SELECT pg_temp.write('/tmp/billops_tap_athena_cur2b.csv', ARRAY[
  'bill_payer_account_id,bill_billing_period_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_unblended_cost,resource_tags',
  '111111111111,2024-01-01T00:00:00Z,222222222222,Usage,1.00,"{""user_project"": ""atlas""}"']);
SELECT billops.load_cur_file('/tmp/billops_tap_athena_cur2b.csv', 'tap-athena-cur2', 'c-2024-01');
SELECT is((SELECT count(*)::int FROM before_cols b JOIN information_schema.columns c
             ON c.table_schema = 'billops' AND c.table_name = 'athena_cur' AND c.column_name = b.column_name
            WHERE c.ordinal_position = b.ordinal_position),
          (SELECT count(*)::int FROM before_cols), 'every column keeps its place');
SELECT is((SELECT ordinal_position::int FROM information_schema.columns
            WHERE table_schema = 'billops' AND table_name = 'athena_cur' AND column_name = 'resource_tags_user_project'),
          (SELECT max(ordinal_position)::int + 1 FROM before_cols), 'the new tag key is a new last column');
SELECT is((SELECT resource_tags_user_project FROM athena_cur WHERE year = '2024' AND month = '1'), 'atlas',
          'and reads its value (month ''1'', as Athena''s partition is written)');
-- a swap that brings no new key does not replace the view (no lock that would wait for its readers)
CREATE TEMP TABLE rule_before AS
SELECT ctid::text AS row_ctid FROM pg_rewrite WHERE ev_class = 'billops.athena_cur'::regclass;
SELECT lives_ok($$SELECT billops._athena_cur_refresh()$$, 'a refresh without new keys runs');
SELECT is((SELECT ctid::text FROM pg_rewrite WHERE ev_class = 'billops.athena_cur'::regclass),
          (SELECT row_ctid FROM rule_before), 'and leaves the view''s definition untouched (the same catalog row)');
DELETE FROM billops.athena_cur_definition;
SELECT billops._athena_cur_refresh();
SELECT isnt((SELECT ctid::text FROM pg_rewrite WHERE ev_class = 'billops.athena_cur'::regclass),
            (SELECT row_ctid FROM rule_before), 'while a changed definition is written (the check above can fail)');

-- athena_cur2 and cur_line_item agree on the month's total
SELECT is((SELECT sum(line_item_unblended_cost) FROM athena_cur2 WHERE billing_period = '2023-11'),
          (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2023-11-01'),
          'athena_cur2 adds up to the line items');

SELECT * FROM finish();
ROLLBACK;
