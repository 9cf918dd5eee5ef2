-- Athena's dialect for AWS's CUR queries (schema billops_athena): the answers
-- Trino's documentation gives for its own examples, the way AWS's CUR Query
-- Library uses the functions, and the same answer under any TimeZone.
BEGIN;
SELECT plan(34);
SET search_path = billops_athena, pg_catalog, billops, public;

-- Trino's documented examples
SELECT is(date_format(TIMESTAMP '2022-10-20 05:10:00', '%m-%d-%Y %H'), '10-20-2022 05', 'date_format: Trino''s example');
SELECT is(date_parse('2022/10/20/05', '%Y/%m/%d/%H'), TIMESTAMP '2022-10-20 05:00:00', 'date_parse: Trino''s example');
-- as AWS's CUR Query Library writes them (month and day of a usage start)
SELECT is(date_format(timestamptz '2023-11-05 23:30:00+00', '%Y-%m'), '2023-11', 'month_line_item_usage_start_date');
SELECT is(date_format(timestamptz '2023-11-05 23:30:00+00', '%Y-%m-%d'), '2023-11-05', 'day_line_item_usage_start_date');
-- every supported specifier
SELECT is(date_format(TIMESTAMP '2024-03-04 15:06:07.123456', '%a %b %c %d %e %f %H %h %I %i %j %k %l %M %m %p %r %S %s %T %v %W %x %Y %y'),
          'Mon Mar 3 04 4 123000 15 03 03 06 064 15 3 March 03 PM 03:06:07 PM 07 07 15:06:07 10 Monday 2024 2024 24',
          'every specifier Trino supports');
SELECT is(date_format(DATE '2024-01-01', 'week %v of %x, 100%% "quoted" \ text'), 'week 01 of 2024, 100% "quoted" \ text',
          'literal text (quotes and backslashes too) is copied');
SELECT is(date_format(TIMESTAMP '2024-01-01 00:00:00', '%q'), 'q', '%x for any other x is x');
SELECT throws_ok($$ SELECT billops_athena.date_format(TIMESTAMP '2024-01-01', '%D') $$, '0A000', NULL,
                 'a specifier Trino does not support is refused, not answered differently');
-- CUR times are UTC, whatever the session's zone
SET TimeZone = 'America/New_York';
SELECT is(date_format(timestamptz '2023-11-01 02:00:00+00', '%Y-%m-%d %H'), '2023-11-01 02', 'formatted in UTC under another TimeZone');
SELECT is(day(timestamptz '2023-11-01 02:00:00+00'), 1::bigint, 'day() in UTC');
SELECT is(date_parse('2024-03-10 02:30', '%Y-%m-%d %H:%i'), TIMESTAMP '2024-03-10 02:30:00',
          'date_parse keeps a time that New York''s daylight saving skips');
RESET TimeZone;
-- extraction and arithmetic
SELECT is(year(timestamptz '2024-12-31 23:00:00+00'), 2024::bigint, 'year');
SELECT is(month(timestamptz '2024-12-31 23:00:00+00'), 12::bigint, 'month');
SELECT is(hour(timestamptz '2024-12-31 23:00:00+00'), 23::bigint, 'hour');
SELECT is(day_of_week(timestamptz '2024-12-29 00:00:00+00'), 7::bigint, 'day_of_week: Sunday is 7 (ISO)');
SELECT is(quarter(timestamptz '2024-08-01 00:00:00+00'), 3::bigint, 'quarter');
SELECT is(date_add('day', -7, DATE '2024-03-05'), DATE '2024-02-27', 'date_add of days to a date');
SELECT is(date_add('month', 1, timestamptz '2024-01-31 00:00:00+00'), timestamptz '2024-02-29 00:00:00+00',
          'date_add of a month ends on the last day (Trino: 2024-02-29)');
SELECT is(date_diff('day', DATE '2024-02-01', DATE '2024-03-01'), 29::bigint, 'date_diff in days');
SELECT is(date_diff('month', timestamptz '2024-01-31 00:00:00+00', timestamptz '2024-03-01 00:00:00+00'), 1::bigint,
          'date_diff in whole months');
-- strings and types
SELECT is((split('AWS-Outbound:USE1-EUW2', ':'))[2], 'USE1-EUW2', 'split returns a 1-based array');
SELECT ok(regexp_like('USE1-DataTransfer-Out-Bytes', 'DataTransfer'), 'regexp_like matches anywhere');
SELECT is(CAST('1.5' AS double) * 2, 3::double precision, 'CAST(... AS double), as Athena writes it');
SELECT is(round(CAST('2.345' AS DOUBLE) * 1, 2), 2.35::double precision, 'round(double, 2), as AWS''s queries round a CAST(... AS DOUBLE)');
SELECT is(round(CAST(-2.5 AS double), 0), -3::double precision, 'half away from zero, as Trino rounds');
SELECT is(from_iso8601_timestamp('2023-11-01T00:00:00Z'), timestamptz '2023-11-01 00:00:00+00', 'from_iso8601_timestamp');

-- Trino's answers where PostgreSQL's same-named function differs (pg_catalog after billops_athena)
SELECT is(split_part('a:b:c', ':', 2), 'b', 'split_part inside the fields');
SELECT is(split_part('a:b:c', ':', 4), NULL, 'split_part past the last field is NULL, as Trino documents (PostgreSQL: '''')');
SELECT is(split_part('', '/', 2), NULL, 'split_part of an empty string past its one field is NULL');
SELECT is(pg_catalog.split_part('a:b:c', ':', 4), '', 'while PostgreSQL''s own answers '''' (the test above can fail)');
SELECT is(concat('a', NULL, 'b'), NULL, 'concat with a NULL argument is NULL, as in Trino');
SELECT is(concat('a', 'b', 'c'), 'abc', 'concat of strings');
SELECT is("if"(1 > 0, 'yes', 'no') || "if"(1 < 0, 'yes', 'no') || coalesce("if"(1 < 0, 'x'), '-'), 'yesno-',
          'if(condition, a, b) and if(condition, a)');
SELECT is(replace('a-b-c', '-'), 'abc', 'two-argument replace removes the search string');
SELECT * FROM finish();
ROLLBACK;
