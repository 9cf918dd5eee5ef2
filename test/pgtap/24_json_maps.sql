-- CUR 2.0's map columns (product, resource_tags, cost_category) are read by the loader itself
-- when they are flat objects of plain strings (json_map.c) and by jsonb_in otherwise; either way
-- each is exactly the jsonb jsonb_in makes of the text. Seeded random objects: keys repeated (the
-- last value wins), of all lengths (jsonb sorts shorter keys first), multibyte characters,
-- whitespace, and some escapes (which go to jsonb_in).
BEGIN;
SELECT plan(6);

SELECT setseed(0.24);
-- pieces of keys and values; the last four are escapes
CREATE TEMP TABLE pieces AS
  SELECT ARRAY['a', 'b', 'ab', 'ba', 'aws:', 'user:Owner', 'é', '日本', '', ' ', 'Amazon Elastic Compute Cloud', 'x_y',
               '\"', '\\', '\u00e9', '\n'] AS p;
CREATE FUNCTION pg_temp.piece(escapes boolean) RETURNS text LANGUAGE sql AS $$
  SELECT p[1 + floor(random() * (CASE WHEN escapes THEN 16 ELSE 12 END))::int] FROM pieces $$;
CREATE FUNCTION pg_temp.ws() RETURNS text LANGUAGE sql AS $$
  SELECT (ARRAY['', '', '', ' ', E'\t', E'\n ', E'\r\n'])[1 + floor(random() * 7)::int] $$;
-- object n has (7n mod 13) pairs; one in ten objects may hold escapes
CREATE TEMP TABLE pairs AS
  SELECT n, g, format('"%s%s"%s:%s"%s"%s', pg_temp.piece(n % 10 = 0), pg_temp.piece(n % 10 = 0), pg_temp.ws(), pg_temp.ws(),
                      repeat(pg_temp.piece(n % 10 = 0), floor(random() * 3)::int), pg_temp.ws()) AS pair
    FROM generate_series(1, 400) n, generate_series(1, 12) g
   WHERE g <= (7 * n) % 13;
CREATE TEMP TABLE objs AS
  SELECT n, pg_temp.ws() || '{' || pg_temp.ws() || coalesce((SELECT string_agg(pair, ',' ORDER BY g) FROM pairs p WHERE p.n = s.n), '')
            || '}' || pg_temp.ws() AS obj
    FROM generate_series(1, 400) s(n);
SELECT ok((SELECT count(*) FILTER (WHERE (SELECT count(*) FROM json_object_keys(obj::json)) > (SELECT count(*) FROM jsonb_object_keys(obj::jsonb)))
           BETWEEN 50 AND 350 FROM objs), 'many objects repeat a key');
SELECT ok((SELECT count(*) FILTER (WHERE strpos(obj, '\') > 0) BETWEEN 5 AND 200 FROM objs), 'some objects hold escapes, most do not');

CREATE TEMP TABLE cur (bill_payer_account_id text, bill_billing_period_start_date text, line_item_usage_account_id text,
                       line_item_line_item_type text, line_item_unblended_cost text, line_item_usage_amount text,
                       product text, resource_tags text);
INSERT INTO cur SELECT '111111111111', '2023-11-01T00:00:00Z', '123456789012', 'Usage', '1', n, obj,
                       (SELECT obj FROM objs o2 WHERE o2.n = 401 - o.n)
                  FROM objs o;
COPY cur TO '/tmp/billops_tap_json_maps.csv' WITH (FORMAT csv, HEADER true);
SELECT lives_ok($$ SELECT billops.load_cur_file('/tmp/billops_tap_json_maps.csv', 'tap-json-maps') $$, 'the objects load');
SELECT is((SELECT count(*) FROM billops.cur_line_item), 400::bigint, 'one line item per object');
SELECT is((SELECT array_agg(o.n ORDER BY o.n)
             FROM objs o JOIN billops.cur_line_item li ON li.line_item_usage_amount = o.n
            WHERE li.product IS DISTINCT FROM o.obj::jsonb OR li.product::text <> o.obj::jsonb::text),
          NULL, 'product is jsonb_in''s reading of each object');
SELECT is((SELECT array_agg(o.n ORDER BY o.n)
             FROM objs o JOIN billops.cur_line_item li ON li.line_item_usage_amount = 401 - o.n
            WHERE li.resource_tags IS DISTINCT FROM o.obj::jsonb OR li.resource_tags::text <> o.obj::jsonb::text),
          NULL, 'and so is resource_tags');

SELECT * FROM finish();
ROLLBACK;
