-- The daily rollup (billops.cur_daily): summed by the loader while it inserts, swapped in with the
-- line items, and always equal to the visible line items grouped by the same expressions.
BEGIN;
SELECT plan(17);

\getenv shared BILLOPS_SHARED
\set sample :shared '/testdata/cur/legacy-cur-2023-11-sample.csv'

\ir _csv_fixture.psql

-- the visible line items grouped by billops._cur_daily_spec()'s expressions, against the rollup
-- summed again (a key may have a row per loader): rows in one and not the other
CREATE FUNCTION pg_temp.rollup_differences() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    keys text;
    sums text;
    keycols text;
    sumcols text;
    grp text;
    n bigint;
BEGIN
    SELECT string_agg(expression, ', ' ORDER BY ord) FILTER (WHERE role = 'key'),
           string_agg(format('sum(%s)', expression), ', ' ORDER BY ord) FILTER (WHERE role = 'sum'),
           string_agg(quote_ident(column_name), ', ' ORDER BY ord) FILTER (WHERE role = 'key'),
           string_agg(format('sum(%I)', column_name), ', ' ORDER BY ord) FILTER (WHERE role = 'sum')
      INTO keys, sums, keycols, sumcols
      FROM billops._cur_daily_spec() WITH ORDINALITY AS s(column_name, role, expression, ord);
    SELECT string_agg(g::text, ', ') INTO grp
      FROM generate_series(1, 2 + (SELECT count(*) FROM billops._cur_daily_spec() WHERE role = 'key')::int) g;
    EXECUTE format($q$
        WITH li AS (SELECT bill_billing_period_start_date, bill_payer_account_id, %1$s, count(*), %2$s
                      FROM billops.cur_line_item GROUP BY %5$s),
             d AS (SELECT billing_period, payer_account_id, %3$s, sum(line_items), %4$s
                     FROM billops.cur_daily GROUP BY %5$s)
        SELECT (SELECT count(*) FROM (SELECT * FROM li EXCEPT ALL SELECT * FROM d) x)
             + (SELECT count(*) FROM (SELECT * FROM d EXCEPT ALL SELECT * FROM li) y)$q$,
        keys, sums, keycols, sumcols, grp)
    INTO n;
    RETURN n;
END $$;

-- the monthly spend view against the visible line items grouped the same way: rows in one and not the other
CREATE FUNCTION pg_temp.monthly_differences() RETURNS bigint LANGUAGE sql AS $$
    WITH li AS (SELECT bill_billing_period_start_date, bill_payer_account_id, line_item_usage_account_id,
                       billops._service_of(product, line_item_product_code), count(*), sum(line_item_unblended_cost),
                       sum(billops._amortized_cost(line_item_line_item_type, line_item_unblended_cost,
                           savings_plan_savings_plan_effective_cost, savings_plan_total_commitment_to_date,
                           savings_plan_used_commitment, reservation_effective_cost,
                           reservation_unused_amortized_upfront_fee_for_billing_period, reservation_unused_recurring_fee,
                           reservation_reservation_a_r_n))
                  FROM billops.cur_line_item GROUP BY 1, 2, 3, 4),
         m AS (SELECT billing_period, payer_account_id, usage_account_id, service, line_items, unblended_cost, amortized_cost
                 FROM billops.cur_spend_by_account_service)
    SELECT (SELECT count(*) FROM (SELECT * FROM li EXCEPT ALL SELECT * FROM m) x)
         + (SELECT count(*) FROM (SELECT * FROM m EXCEPT ALL SELECT * FROM li) y)
$$;

SELECT has_table('billops', 'cur_daily', 'the daily rollup table');
SELECT lives_ok(format('SELECT billops.load_cur_file(%L, %L)', :'sample', 'tap-daily'), 'the real sample loads');
SELECT cmp_ok((SELECT count(*) FROM billops.cur_daily), '>', 0::bigint, 'the load wrote its rollup');
SELECT is((SELECT sum(line_items)::bigint FROM billops.cur_daily), (SELECT count(*) FROM billops.cur_line_item),
          'every line item is counted once');
SELECT is((SELECT sum(unblended_cost) FROM billops.cur_daily), (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item),
          'unblended cost to the last digit');
SELECT is((SELECT sum(amortized_cost) FROM billops.cur_spend_by_account_service),
          (SELECT sum(billops._amortized_cost(line_item_line_item_type, line_item_unblended_cost, savings_plan_savings_plan_effective_cost,
                      savings_plan_total_commitment_to_date, savings_plan_used_commitment, reservation_effective_cost,
                      reservation_unused_amortized_upfront_fee_for_billing_period, reservation_unused_recurring_fee,
                      reservation_reservation_a_r_n)) FROM billops.cur_line_item),
          'the spend view''s amortized cost is the formula''s, per line item, summed');
SELECT is(pg_temp.rollup_differences(), 0::bigint, 'the rollup is the line items grouped by the same expressions, key by key');
SELECT is(pg_temp.monthly_differences(), 0::bigint, 'the monthly spend is the line items grouped by month, account and service');
SELECT is((SELECT daily_table FROM billops.cur_partition), (SELECT 'billops.' || c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                                            JOIN pg_inherits p ON p.inhrelid = i.inhparent
                                                           WHERE p.inhparent = 'billops.cur_daily'::regclass),
          'the visible delivery''s rollup is the one attached');

-- a new delivery of the month replaces the rollup with the line items; a refused one changes neither
SELECT bill_payer_account_id AS payer FROM billops.cur_line_item LIMIT 1 \gset
SELECT lives_ok(format($f$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_daily2.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageStartDate,lineItem/ProductCode',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,2.50,2023-11-03T05:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,0.25,2023-11-03T23:00:00Z,AmazonEC2']), 'tap-daily') $f$, :'payer'),
  'a re-delivery of the month loads');
SELECT is((SELECT array_agg(ARRAY[usage_date::text, line_items::text, unblended_cost::text]) FROM billops.cur_daily),
          ARRAY[ARRAY['2023-11-03', '2', '2.75']], 'the rollup is the new delivery''s alone: one day, two lines');
SELECT throws_ok(format($f$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_daily3.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,1.00',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,abc']), 'tap-daily') $f$, :'payer'),
  '22P02', NULL, 'a delivery with a bad value is refused');
SELECT is(pg_temp.rollup_differences(), 0::bigint, 'and the rollup still matches the visible line items');
SELECT is(pg_temp.monthly_differences(), 0::bigint, 'and so does the monthly spend, replaced with the delivery, not added to');

-- sums are exact and keep SUM's display scale, whether they fit the loader's fixed point (at most 20
-- decimals, below 10^16, no overflow) or leave it: more decimals, a larger value, a sum past 1.7e18
SELECT lives_ok(format($f$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_daily4.csv',
  ARRAY['bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageAmount,lineItem/UsageStartDate,lineItem/ProductCode']
  || ARRAY[
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,0.1,,2023-11-01T00:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,0.00000000000000000001,,2023-11-01T01:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,-0.30,,2023-11-01T02:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,1.5,1,2023-11-02T00:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,0.0000000000000000000001,2,2023-11-02T01:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,-2,0.5,2023-11-02T02:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,1,,2023-11-03T00:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,-12345678901234567.25,,2023-11-03T01:00:00Z,AmazonEC2',
  '%1$s,2023-11-01T00:00:00Z,123456789012,Usage,0,,2023-11-05T00:00:00Z,AmazonEC2']
  || array_fill('%1$s,2023-11-01T00:00:00Z,123456789012,Usage,9999999999999999.99,,2023-11-04T00:00:00Z,AmazonEC2'::text, ARRAY[200])),
  'tap-daily') $f$, :'payer'),
  'a delivery of amounts at and past the fixed point''s limits loads');
SELECT is((SELECT array_agg(ARRAY[usage_date::text, unblended_cost::text, coalesce(usage_amount::text, 'null')] ORDER BY usage_date) FROM billops.cur_daily),
          (SELECT array_agg(ARRAY[d::text, u::text, coalesce(a::text, 'null')] ORDER BY d)
             FROM (SELECT line_item_usage_start_date::date AS d, sum(line_item_unblended_cost) AS u, sum(line_item_usage_amount) AS a
                     FROM billops.cur_line_item GROUP BY 1) x),
          'each day''s sums are SUM''s, digit for digit and scale for scale');
SELECT is(pg_temp.monthly_differences(), 0::bigint, 'the monthly spend adds up the same amounts');

SELECT * FROM finish();
ROLLBACK;
