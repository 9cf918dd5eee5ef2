-- The loader reads AWS's ISO 8601 timestamps itself (cur_load.c, iso_timestamptz) and leaves every
-- other form to timestamptz_in: either way a value is what PostgreSQL makes of it with no zone
-- meaning UTC, whatever the session's TimeZone, and an impossible date is refused as PostgreSQL
-- refuses it.
BEGIN;
SELECT plan(4);

\ir _csv_fixture.psql

SET TimeZone = 'America/New_York';
CREATE TEMP TABLE forms (n int, form text);
INSERT INTO forms VALUES
  (1, '2023-11-05T07:08:09Z'), (2, '2023-11-05T07:08:09.123Z'), (3, '2023-11-05T07:08:09.123456Z'),
  (4, '2023-11-05T07:08:09.1234567Z'), (5, '2023-11-05 07:08:09.000'), (6, '2023-11-05'),
  (7, '2023-11-05T07:08Z'), (8, '2023-11-05T07:08:09+05:30'), (9, '2023-11-05T07:08:09-0330'),
  (10, '2023-11-05T07:08:09+01'), (11, '2024-02-29T23:59:59.999999Z'), (12, '2023-11-05T24:00:00Z'),
  (13, '2023-11-05T23:59:60Z'), (14, '2023-11-30T12:00:00-15:00'), (15, '2023-11-01T00:00:00.5'),
  (16, '2023-12-31T23:59:59.9999995Z'), (17, '2023-11-05T01:30:00'), (18, '2023-11-05T00:00:00.000000Z');

-- each form in a row of its own, told apart by its usage amount
SELECT lives_ok(format($f$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_datetimes.csv',
  ARRAY['bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageAmount,lineItem/UsageStartDate']
  || %L::text[]), 'tap-datetimes') $f$,
  (SELECT array_agg(format('111111111111,2023-11-01T00:00:00Z,123456789012,Usage,1,%s,%s', n, form) ORDER BY n) FROM forms)),
  'every form loads');
SELECT is((SELECT array_agg(f.n ORDER BY f.n)
             FROM forms f JOIN billops.cur_line_item li ON li.line_item_usage_amount = f.n
            WHERE li.line_item_usage_start_date IS DISTINCT FROM
                  (CASE WHEN f.form ~ '(Z|[T ][0-9:.]+[+-][0-9:]+)$' THEN f.form ELSE f.form || '+00' END)::timestamptz),
          NULL, 'each value is PostgreSQL''s reading of it, no zone meaning UTC');
SELECT is((SELECT count(*) FROM billops.cur_line_item), (SELECT count(*) FROM forms), 'one row per form');
SELECT throws_ok($f$ SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_datetimes2.csv', ARRAY[
  'bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/UnblendedCost,lineItem/UsageStartDate',
  '111111111111,2023-11-01T00:00:00Z,123456789012,Usage,1,2023-02-29T00:00:00Z']), 'tap-datetimes') $f$,
  '22008', NULL, 'a day the month does not have is refused as PostgreSQL refuses it');

SELECT * FROM finish();
ROLLBACK;
