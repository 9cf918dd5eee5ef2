-- Spend signals: a spike against the trailing baseline, a crossed threshold,
-- AWS's anomalies; each deduplicated across re-runs and routed to its owner;
-- and the month-end forecast from month-to-date spend.
BEGIN;
SELECT plan(17);

-- March 2024, data through the 25th: EC2 in 222222222222 runs ~100/day and jumps to 900 on the 21st;
-- S3 in 333333333333 runs 60/day (1,500 by the 25th)
CREATE FUNCTION pg_temp.load() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    head text := 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,'
              || 'bill/BillingPeriodStartDate,lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,'
              || 'lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName';
    path text := '/tmp/billops_tap_signals.csv';
BEGIN
    EXECUTE format('COPY (SELECT unnest(%L::text[])) TO %L', ARRAY[head] || ARRAY(
        SELECT format(',"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,%sT00:00:00Z,%s,Usage,%s,%s,USD,"Amazon Web Services, Inc.",%s',
                      to_char(d, 'YYYY-MM-DD'), acct, pc, cost, name)
          FROM generate_series('2024-03-01'::date, '2024-03-25', '1 day') d,
               LATERAL (VALUES ('222222222222', 'AmazonEC2', 'Amazon Elastic Compute Cloud',
                                CASE WHEN d = '2024-03-21' THEN 900.00 ELSE 100 + extract(day FROM d)::int % 3 END),
                               ('333333333333', 'AmazonS3', 'Amazon Simple Storage Service', 60.00)) v(acct, pc, name, cost)), path);
    RETURN billops.load_cur_file(path, 'tap-signals', 'signals-1');
END $$;
SET client_min_messages = warning;
SELECT pg_temp.load();
INSERT INTO billops.routing_rule (usage_account_id, approver_role) VALUES ('222222222222', 'billops_finops_owner');
INSERT INTO billops.spend_threshold (name, usage_account_id, service, monthly_limit) VALUES ('S3 budget', '333333333333', 'AmazonS3', 1000);

CREATE TEMP TABLE run1 AS SELECT * FROM billops.detect_spend_signals('2024-03-01');
SELECT is((SELECT count(*)::int FROM run1 WHERE source = 'cur_baseline'), 1, 'one unusual day ...');
SELECT is((SELECT day || ' ' || usage_account_id || ' ' || service FROM run1 WHERE source = 'cur_baseline'),
          '2024-03-21 222222222222 AmazonEC2', '... the EC2 spike of the 21st');
SELECT ok((SELECT expected BETWEEN 100 AND 102 AND impact BETWEEN 798 AND 800 FROM run1 WHERE source = 'cur_baseline'),
          'expected ~101 (the trailing mean), impact ~799');
SELECT is((SELECT count(*)::int FROM run1 WHERE source = 'cur_threshold'), 1, 'the S3 budget is crossed once, for the month');
SELECT is((SELECT observed FROM run1 WHERE source = 'cur_threshold'), 1500.00::numeric, 'at 1,500 month to date');

-- re-running finds the same signals again: no duplicates
CREATE TEMP TABLE run2 AS SELECT * FROM billops.detect_spend_signals('2024-03-01');
SELECT is((SELECT count(*)::int FROM run2 WHERE is_new), 0, 'a second run finds nothing new');
SELECT is((SELECT count(*)::int FROM billops.spend_signal), 2, 'and adds no row');
SELECT is((SELECT min(times_seen) FROM billops.spend_signal), 2, 'each signal was seen twice');

-- AWS Cost Anomaly Detection, as GetAnomalies returns it
CREATE TEMP TABLE anomaly AS SELECT '{"AnomalyId": "a-1", "AnomalyStartDate": "2024-03-21", "AnomalyEndDate": "2024-03-21",
  "DimensionValue": "Amazon Elastic Compute Cloud - Compute", "MonitorArn": "arn:aws:ce::111111111111:anomalymonitor/m-1",
  "RootCauses": [{"Service": "Amazon Elastic Compute Cloud - Compute", "Region": "us-east-1", "LinkedAccount": "222222222222",
                  "UsageType": "BoxUsage:m5.large"}],
  "AnomalyScore": {"MaxScore": 0.92, "CurrentScore": 0.5},
  "Impact": {"MaxImpact": 799, "TotalImpact": 799.0, "TotalActualSpend": 900.0, "TotalExpectedSpend": 101.0, "TotalImpactPercentage": 791.1}}'::jsonb AS a;
SELECT billops.record_ce_anomaly(a) FROM anomaly;
SELECT billops.record_ce_anomaly(a) FROM anomaly;
SELECT is((SELECT count(*)::int || ' ' || max(times_seen) FROM billops.spend_signal WHERE source = 'ce_anomaly'), '1 2',
          'an anomaly read twice is one signal, seen twice');
SELECT throws_ok($$ SELECT billops.record_ce_anomaly('{"AnomalyId": "x"}') $$, '22023', NULL, 'a malformed anomaly is refused');

-- the early-review queue routes each to its owner
SELECT is((SELECT review_by FROM billops.early_review_queue WHERE source = 'cur_baseline'), 'billops_finops_owner',
          'the EC2 spike goes to the account''s owner');
SELECT is((SELECT review_by FROM billops.early_review_queue WHERE source = 'cur_threshold'),
          billops.setting_value('finance_review_role'), 'an account nobody owns goes to finance review');
SELECT billops.resolve_signal((SELECT signal_id FROM billops.spend_signal WHERE source = 'ce_anomaly'), 'acknowledged', 'load test');
SELECT is((SELECT count(*)::int FROM billops.early_review_queue), 2, 'an acknowledged signal leaves the queue');

-- forecast: 25 days known, 6 left, the last seven days' run rate
SELECT is((SELECT days_known || '/' || days_left || ' ' || month_to_date || ' ' || forecast FROM billops.month_end_forecast
            WHERE billing_period = '2024-03-01' AND group_name = '(unallocated)'),
          (SELECT '25/6 ' || round(sum(line_item_unblended_cost), 2) || ' '
                  || round(sum(line_item_unblended_cost)
                           + sum(line_item_unblended_cost) FILTER (WHERE line_item_usage_start_date >= '2024-03-19') / 7 * 6, 2)
             FROM billops.cur_line_item),
          'month to date plus six days at the last seven days'' rate');

-- Cost Explorer's newer days: 222222222222 spends ~100/day through the 28th (fetched by
-- billops.fetch_ce_daily_spend; written here as it stores them), with a spike on the 21st - a day
-- the CUR has, already signalled per service - and one on the 27th, past the CUR's last day
INSERT INTO billops.ce_fetched_day (payer_account_id, day, estimated, fetched_at)
SELECT '111111111111', d, true, now() FROM generate_series('2024-03-01'::date, '2024-03-28', '1 day') d;
INSERT INTO billops.ce_daily_spend (payer_account_id, day, linked_account_id, unblended_cost)
SELECT '111111111111', d, '222222222222', CASE WHEN d IN ('2024-03-21', '2024-03-27') THEN 1000 ELSE 100 + extract(day FROM d)::int % 3 END
  FROM generate_series('2024-03-01'::date, '2024-03-28', '1 day') d;
CREATE TEMP TABLE run3 AS SELECT * FROM billops.detect_spend_signals('2024-03-01');
SELECT is((SELECT string_agg(day || ' ' || usage_account_id, ', ') FROM run3 WHERE source = 'ce_baseline'),
          '2024-03-27 222222222222', 'Cost Explorer''s spike past the CUR''s last day is a signal; the one the CUR covers is not');
SELECT is((SELECT count(*)::int FROM run3 WHERE source = 'cur_threshold' AND is_new), 0,
          'thresholds stay on CUR data (Cost Explorer days would count twice)');
SELECT is((SELECT review_by FROM billops.early_review_queue WHERE source = 'ce_baseline'), 'billops_finops_owner',
          'and goes to the account''s owner');

SELECT * FROM finish();
ROLLBACK;
