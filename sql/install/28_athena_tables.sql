-- ---------------------------------------------------------------------------
-- Athena's faces over the line items: AWS's CUR queries are written against
-- the tables Athena exposes, so pg_billops exposes the same two, over the same
-- canonical rows, for every loaded month whichever layout delivered it.
--
--   billops.athena_cur2  CUR 2.0's table (AWS Data Exports user guide, "Data
--                        dictionary"): CUR 2.0 names, map columns whose
--                        m['key'] is text (hstore), billing_period 'YYYY-MM'.
--   billops.athena_cur   The legacy CUR table of AWS's Athena integration
--                        (CUR user guide, "Querying Cost and Usage Reports
--                        using Amazon Athena"): Athena's column names, one
--                        product_<attr>, resource_tags_<key> and
--                        cost_category_<key> column per key seen, and the
--                        partitions year and month as text.
--
-- How the values read, and why:
--  * Strings read '' where the report had nothing, as Athena reads CUR: its
--    CSV SerDe returns '' for an empty string field, and AWS's own queries
--    (Cloud Intelligence Dashboards, the CUR Query Library) test
--    col <> '' / col = '' throughout.  Whether AWS's Parquet files hold '' or
--    NULL for an empty string is not documented; AWS's queries also guard
--    against NULL in places (coalesce(line_item_operation, '')), so both
--    faces give '' and a query that guards against both gets the same answer.
--  * Numbers and times stay NULL when empty (Athena's double and timestamp
--    cannot hold '').  Amounts are numeric (exact); CAST(x AS double) works in
--    schema billops_athena.
--  * Times are timestamp without time zone holding UTC, as Athena's CUR
--    timestamps are, so date_trunc, date_format and comparisons with
--    DATE '2023-11-01' answer the same under any TimeZone setting.
--  * Tag and cost-category keys are AWS's normalized spelling
--    (billops.tag_key_canonical: user:CostCenter -> user_cost_center), which
--    CUR 2.0 uses inside resource_tags and Athena uses for legacy columns
--    ("Migrating from CUR to Data Exports CUR 2.0": names are normalized as
--    described under "Column names"); the tags column is not normalized, as
--    AWS says of it.  A legacy and a CUR 2.0 month therefore answer
--    resource_tags['user_cost_center'] alike.
--  * A missing map key reads NULL.  Trino's subscript fails on a missing key
--    while element_at returns NULL; which one Athena's engine does for CUR's
--    sparse maps is unclear (AWS's own queries subscript sparse maps), so the
--    forgiving reading is taken.
-- ---------------------------------------------------------------------------

-- A CUR map as Athena shows it: keys normalized where AWS normalizes them.
CREATE FUNCTION billops._athena_map(m jsonb, normalize_keys boolean) RETURNS hstore
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce((SELECT hstore(array_agg(CASE WHEN NOT normalize_keys OR key ~ '^[a-z0-9_]*$' THEN key
                                                  ELSE billops.tag_key_canonical(key) END ORDER BY key),
                                   array_agg(value ORDER BY key))
                       FROM pg_catalog.jsonb_each_text(m)), ''::hstore)
$$;
COMMENT ON FUNCTION billops._athena_map(jsonb, boolean) IS
  'A CUR map column as an hstore (m[''key''] is text); tag and cost category keys in AWS''s normalized spelling.';

-- The columns of cur_line_item as Athena shows them: face 'cur2' (CUR 2.0's
-- table) or 'legacy' (the legacy CUR table of Athena's integration).
CREATE FUNCTION billops._athena_static_columns(face text)
RETURNS TABLE (column_name name, expression text, is_map boolean)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT a.attname,
           CASE WHEN face = 'legacy' AND a.attname LIKE 'split\_line\_item\_%' AND a.atttypid = 'numeric'::regtype
                     -- AWS's own legacy CUR queries treat the split cost allocation columns as
                     -- strings (they compare them with '' and CAST them to DECIMAL), where the
                     -- CUR 2.0 dictionary types them double; the legacy Athena types are not
                     -- documented, so the legacy face follows AWS's queries.
                     THEN format('coalesce(li.%I::text, '''')', a.attname)
                WHEN a.attname = ANY (strings) AND a.atttypid = 'timestamptz'::regtype
                     THEN format('coalesce(to_char(li.%I AT TIME ZONE ''UTC'', ''YYYY-MM-DD"T"HH24:MI:SS.MS"Z"''), '''')', a.attname)
                WHEN a.attname = ANY (strings)
                     THEN format('coalesce(li.%I::text, '''')', a.attname)
                WHEN a.attname IN ('resource_tags', 'cost_category')
                     THEN format('billops._athena_map(li.%I, true)', a.attname)
                WHEN a.atttypid = 'jsonb'::regtype
                     THEN format('billops._athena_map(li.%I, false)', a.attname)
                WHEN a.atttypid = 'text'::regtype THEN format('coalesce(li.%I, '''')', a.attname)
                WHEN a.atttypid = 'timestamptz'::regtype THEN format('(li.%I AT TIME ZONE ''UTC'')', a.attname)
                WHEN a.atttypid = 'date'::regtype THEN format('li.%I::timestamp', a.attname)
                ELSE format('li.%I', a.attname) END,
           a.atttypid = 'jsonb'::regtype
      FROM pg_attribute a,
           -- string in AWS's dictionary (and in Athena's legacy table), typed in
           -- cur_line_item so that pg_billops can compute with them: shown as
           -- text again.  A rate AWS wrote as 4.4E-7 reads 0.00000044 (the
           -- value, not the spelling); a time reads as ISO 8601 in UTC.
           (SELECT ARRAY['line_item_unblended_rate', 'line_item_blended_rate', 'line_item_net_unblended_rate',
                         'pricing_public_on_demand_rate', 'reservation_start_time', 'reservation_end_time']::name[] AS strings) s
     WHERE a.attrelid = 'billops.cur_line_item'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname <> 'extras'
     ORDER BY a.attnum
$$;

DO $$
BEGIN
    EXECUTE format('CREATE VIEW billops.athena_cur2 WITH (security_invoker = true) AS SELECT %s, to_char(li.bill_billing_period_start_date, ''YYYY-MM'') AS billing_period FROM billops.cur_line_item li',
                   (SELECT string_agg(format('%s AS %I', expression, column_name), ', ') FROM billops._athena_static_columns('cur2')));
END
$$;
COMMENT ON VIEW billops.athena_cur2 IS
  'Every loaded month as Athena''s CUR 2.0 table: CUR 2.0 column names, maps whose m[''key''] is text, billing_period ''YYYY-MM''. Use with SET search_path = billops_athena, pg_catalog, billops, public.';

-- The legacy Athena table: the static columns (maps left out: the legacy table
-- has a column per key instead), then one column per key seen, appended as new
-- keys arrive, as Athena's crawler appends them.  CREATE OR REPLACE VIEW can
-- only add columns at the end, so a column once offered stays, in its place.
CREATE TABLE billops.athena_cur_definition (definition text NOT NULL);
COMMENT ON TABLE billops.athena_cur_definition IS 'The statement that last defined billops.athena_cur.';

CREATE FUNCTION billops._athena_cur_refresh() RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    existing name[];
    cols text[] := '{}';
    names name[] := '{}';
    c record;
    sql text;
BEGIN
    SELECT array_agg(a.attname ORDER BY a.attnum) INTO existing
      FROM pg_attribute a
     WHERE a.attrelid = to_regclass('billops.athena_cur') AND a.attnum > 0 AND NOT a.attisdropped;

    FOR c IN
        WITH static AS (
            SELECT column_name, expression, 0 AS grp, '' AS sort_key
              FROM billops._athena_static_columns('legacy') WHERE NOT is_map
            UNION ALL
            SELECT 'year', 'to_char(li.bill_billing_period_start_date, ''FMYYYY'')', 0, ''
            UNION ALL
            SELECT 'month', 'to_char(li.bill_billing_period_start_date, ''FMMM'')', 0, ''
        ), seen AS (
            -- keys of every delivery that was ever visible
            SELECT DISTINCT k.map_column, k.key
              FROM billops.cur_delivery_map_key k
              JOIN billops.cur_delivery d USING (delivery_id)
             WHERE d.status IN ('loaded', 'superseded')
                OR EXISTS (SELECT FROM billops.cur_partition p WHERE p.delivery_id = d.delivery_id)
        ), keyed AS (
            SELECT map_column, key,
                   left(map_column || '_' || CASE WHEN map_column IN ('resource_tags', 'cost_category')
                                                  THEN billops.tag_key_canonical(key)
                                                  ELSE lower(key) END, 63)::name AS column_name
              FROM seen
        ), dynamic AS (
            -- one column per normalized name, reading every raw spelling of it
            SELECT column_name,
                   format('coalesce(%s, '''')',
                          string_agg(format('li.%I ->> %L', map_column, key), ', ' ORDER BY key)) AS expression,
                   1 AS grp, column_name::text AS sort_key
              FROM keyed
             WHERE column_name NOT IN (SELECT s.column_name FROM static s)
               AND map_column IN ('resource_tags', 'cost_category', 'product', 'discount')
             GROUP BY column_name
        )
        SELECT * FROM static UNION ALL SELECT * FROM dynamic
    LOOP
        names := names || c.column_name;
        cols := cols || format('%s AS %I', c.expression, c.column_name);
    END LOOP;

    -- the view's present columns first, in their order; new ones after them
    IF existing IS NOT NULL THEN
        -- a key no delivery holds any more (its source was deleted) keeps its
        -- column, empty: a swap never fails, and no query written against it breaks
        SELECT names || coalesce(array_agg(e), '{}'), cols || coalesce(array_agg(format('''''::text AS %I', e)), '{}')
          INTO names, cols
          FROM unnest(existing) e WHERE e <> ALL (names);
        SELECT array_agg(cols[i] ORDER BY coalesce(array_position(existing, names[i]), 1000000 + i)),
               array_agg(names[i] ORDER BY coalesce(array_position(existing, names[i]), 1000000 + i))
          INTO cols, names FROM generate_subscripts(names, 1) i;
    END IF;
    -- Replacing a view takes a lock that waits for its readers: only when it changes
    sql := format('CREATE OR REPLACE VIEW billops.athena_cur WITH (security_invoker = true) AS SELECT %s FROM billops.cur_line_item li',
                  array_to_string(cols, ', '));
    -- (after pg_restore the view is the one CREATE EXTENSION made, without the
    -- key columns: a differing column list rewrites it whatever was recorded)
    IF existing IS NOT NULL AND sql = (SELECT definition FROM billops.athena_cur_definition)
       AND existing = names THEN
        RETURN;
    END IF;
    EXECUTE sql;
    DELETE FROM billops.athena_cur_definition;
    INSERT INTO billops.athena_cur_definition VALUES (sql);
END
$$;
COMMENT ON FUNCTION billops._athena_cur_refresh() IS
  'Adds a column to billops.athena_cur for every tag, cost category, product attribute and discount key a loaded delivery holds.';

SELECT billops._athena_cur_refresh();
COMMENT ON VIEW billops.athena_cur IS
  'Every loaded month as Athena''s legacy CUR table: Athena''s column names, a column per tag / cost category / product attribute key seen, year and month partitions as text. Use with SET search_path = billops_athena, pg_catalog, billops, public.';
