-- ---------------------------------------------------------------------------
-- Athena's dialect, for AWS's own CUR queries: schema billops_athena holds the
-- Trino/Presto functions and type names those queries use and PostgreSQL lacks,
-- so that after
--     SET search_path = billops_athena, pg_catalog, billops, public;
-- a query from AWS's CUR Query Library runs as written.  The reference is
-- Trino's documentation (Athena engine 3 is Trino: "Date and time functions
-- and operators", MySQL date functions).  Semantics follow it where they can;
-- where PostgreSQL cannot (Trino's own "not supported" specifiers included),
-- the function says so with an error rather than answering differently.
--
-- CUR times are UTC: a timestamptz is formatted and truncated in UTC, as
-- Athena shows CUR's timestamp columns, whatever the session's TimeZone.
-- ---------------------------------------------------------------------------

CREATE SCHEMA billops_athena;
COMMENT ON SCHEMA billops_athena IS
  'Trino/Athena functions and type names for AWS''s CUR queries: SET search_path = billops_athena, pg_catalog, billops, public.';
GRANT USAGE ON SCHEMA billops_athena TO PUBLIC;

-- CAST(x AS double): Trino's name for double precision
CREATE DOMAIN billops_athena."double" AS double precision;
COMMENT ON DOMAIN billops_athena."double" IS 'Trino''s double: PostgreSQL''s double precision.';

-- A MySQL-style format (Trino's date_format / date_parse) as a to_char pattern.
-- Literal text is quoted; %D %U %u %V %w %X are refused, as Trino refuses them.
CREATE FUNCTION billops_athena._pg_format(mysql_format text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    out text := '';
    lit text := '';
    i integer := 1;
    n integer := length(mysql_format);
    c text;
    pat text;
BEGIN
    WHILE i <= n LOOP
        c := substr(mysql_format, i, 1);
        IF c = '%' AND i < n THEN
            i := i + 1;
            c := substr(mysql_format, i, 1);
            pat := CASE c
                WHEN 'a' THEN 'Dy' WHEN 'b' THEN 'Mon' WHEN 'c' THEN 'FMMM' WHEN 'd' THEN 'DD'
                WHEN 'e' THEN 'FMDD' WHEN 'f' THEN 'MS"000"' WHEN 'H' THEN 'HH24' WHEN 'h' THEN 'HH12'
                WHEN 'I' THEN 'HH12' WHEN 'i' THEN 'MI' WHEN 'j' THEN 'DDD' WHEN 'k' THEN 'FMHH24'
                WHEN 'l' THEN 'FMHH12' WHEN 'M' THEN 'FMMonth' WHEN 'm' THEN 'MM' WHEN 'p' THEN 'AM'
                WHEN 'r' THEN 'HH12:MI:SS AM' WHEN 'S' THEN 'SS' WHEN 's' THEN 'SS' WHEN 'T' THEN 'HH24:MI:SS'
                WHEN 'v' THEN 'IW' WHEN 'W' THEN 'FMDay' WHEN 'x' THEN 'IYYY' WHEN 'Y' THEN 'YYYY'
                WHEN 'y' THEN 'YY' END;
            IF c IN ('D', 'U', 'u', 'V', 'w', 'X') THEN
                RAISE EXCEPTION 'the date format specifier %%% is not supported', c
                      USING ERRCODE = 'feature_not_supported',
                            HINT = 'Trino does not support %D %U %u %V %w %X either.';
            END IF;
            IF pat IS NULL THEN
                lit := lit || c;            -- %% and %x for any other x: the character itself
            ELSE
                IF lit <> '' THEN
                    out := out || '"' || replace(replace(lit, '\', '\\'), '"', '\"') || '"';
                    lit := '';
                END IF;
                out := out || pat;
            END IF;
        ELSE
            lit := lit || c;
        END IF;
        i := i + 1;
    END LOOP;
    IF lit <> '' THEN
        out := out || '"' || replace(replace(lit, '\', '\\'), '"', '\"') || '"';
    END IF;
    RETURN out;
END $$;

CREATE FUNCTION billops_athena.date_format(ts timestamptz, format text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_char(ts AT TIME ZONE 'UTC', billops_athena._pg_format(format))
$$;
CREATE FUNCTION billops_athena.date_format(ts timestamp, format text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_char(ts, billops_athena._pg_format(format))
$$;
CREATE FUNCTION billops_athena.date_format(d date, format text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT to_char(d::timestamp, billops_athena._pg_format(format))
$$;
COMMENT ON FUNCTION billops_athena.date_format(timestamptz, text) IS
  'Trino''s date_format(timestamp, format) with MySQL specifiers (%Y-%m-%d …), in UTC.';

-- (to_timestamp reads the fields in the session's TimeZone: UTC here, so no
-- daylight-saving gap moves a parsed time)
CREATE FUNCTION billops_athena.date_parse(string text, format text) RETURNS timestamp
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' AS $$
    SELECT to_timestamp(string, billops_athena._pg_format(format)) AT TIME ZONE 'UTC'
$$;
COMMENT ON FUNCTION billops_athena.date_parse(text, text) IS
  'Trino''s date_parse(string, format): MySQL specifiers, a timestamp (UTC).';

CREATE FUNCTION billops_athena.from_iso8601_timestamp(string text) RETURNS timestamptz
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string::timestamptz
$$;
COMMENT ON FUNCTION billops_athena.from_iso8601_timestamp(text) IS
  'Trino''s from_iso8601_timestamp: an ISO 8601 time; one without an offset is read in the session''s time zone, as Trino reads it (CUR''s times carry Z).';

CREATE FUNCTION billops_athena.from_iso8601_date(string text) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT make_date(split_part(string, '-', 1)::int, split_part(string, '-', 2)::int, split_part(string, '-', 3)::int)
$$;
COMMENT ON FUNCTION billops_athena.from_iso8601_date(text) IS 'Trino''s from_iso8601_date(''YYYY-MM-DD'').';

CREATE FUNCTION billops_athena.split(string text, delimiter text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string_to_array(string, delimiter)
$$;
COMMENT ON FUNCTION billops_athena.split(text, text) IS
  'Trino''s split(string, delimiter): an array (1-based, as in Trino). split(...)[n] is not PostgreSQL syntax: write (split(...))[n].';

CREATE FUNCTION billops_athena.regexp_like(string text, pattern text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT string ~ pattern
$$;
COMMENT ON FUNCTION billops_athena.regexp_like(text, text) IS
  'Trino''s regexp_like: does the pattern match anywhere in the string (POSIX regular expressions here, Java''s in Trino).';

-- round(x, d) on a double: PostgreSQL has it for numeric only, and AWS's queries
-- round sums of CAST(... AS DOUBLE).  Half away from zero, as Trino rounds.
CREATE FUNCTION billops_athena.round(x double precision, d integer) RETURNS double precision
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT round(x::numeric, d)::double precision
$$;
COMMENT ON FUNCTION billops_athena.round(double precision, integer) IS
  'Trino''s round(x, d) for a double (PostgreSQL has it for numeric only).';

-- Trino's convenience extraction functions, for a timestamptz (in UTC, whatever
-- the session's TimeZone) and for Athena's own timestamp type, which
-- billops.athena_cur and athena_cur2 show (timestamp without time zone holding
-- UTC: no time zone is involved at all).
DO $do$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT * FROM (VALUES ('year', 'year', 'year(x)'), ('month', 'month', 'month(x)'), ('day', 'day', 'day(x)'),
                                   ('hour', 'hour', 'hour(x)'),
                                   ('day_of_week', 'isodow', 'day_of_week(x): ISO, 1 (Monday) to 7 (Sunday)'),
                                   ('day_of_year', 'doy', 'day_of_year(x)'), ('week', 'week', 'week(x): the ISO week'),
                                   ('quarter', 'quarter', 'quarter(x)')) AS t(name, field, doc) LOOP
        EXECUTE format('CREATE FUNCTION billops_athena.%I(ts timestamptz) RETURNS bigint
                        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
                        SELECT extract(%s FROM ts AT TIME ZONE ''UTC'')::bigint $$', f.name, f.field);
        EXECUTE format('COMMENT ON FUNCTION billops_athena.%I(timestamptz) IS %L', f.name, 'Trino''s ' || f.doc || ', in UTC.');
        EXECUTE format('CREATE FUNCTION billops_athena.%I(ts timestamp) RETURNS bigint
                        LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT extract(%s FROM ts)::bigint $$', f.name, f.field);
        EXECUTE format('COMMENT ON FUNCTION billops_athena.%I(timestamp) IS %L', f.name, 'Trino''s ' || f.doc || '.');
    END LOOP;
END
$do$;

-- date_add / date_diff with Trino's unit names (millisecond .. year)
CREATE FUNCTION billops_athena.date_add(unit text, value bigint, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ((ts AT TIME ZONE 'UTC') + value * ('1 ' || CASE lower(unit) WHEN 'quarter' THEN 'mon' ELSE lower(unit) END)::interval
            * CASE lower(unit) WHEN 'quarter' THEN 3 ELSE 1 END) AT TIME ZONE 'UTC'
$$;
CREATE FUNCTION billops_athena.date_add(unit text, value bigint, d date) RETURNS date
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (d + value * ('1 ' || CASE lower(unit) WHEN 'quarter' THEN 'mon' ELSE lower(unit) END)::interval
            * CASE lower(unit) WHEN 'quarter' THEN 3 ELSE 1 END)::date
$$;
COMMENT ON FUNCTION billops_athena.date_add(text, bigint, timestamptz) IS
  'Trino''s date_add(unit, value, timestamp): unit is second, minute, hour, day, week, month, quarter or year (UTC calendar).';
COMMENT ON FUNCTION billops_athena.date_add(text, bigint, date) IS 'Trino''s date_add(unit, value, date).';

CREATE FUNCTION billops_athena.date_diff(unit text, ts1 timestamptz, ts2 timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE lower(unit)
             WHEN 'year' THEN (extract(year FROM age(ts2 AT TIME ZONE 'UTC', ts1 AT TIME ZONE 'UTC')))::bigint
             WHEN 'quarter' THEN (extract(year FROM age(ts2 AT TIME ZONE 'UTC', ts1 AT TIME ZONE 'UTC')) * 4
                                  + trunc(extract(month FROM age(ts2 AT TIME ZONE 'UTC', ts1 AT TIME ZONE 'UTC')) / 3))::bigint
             WHEN 'month' THEN (extract(year FROM age(ts2 AT TIME ZONE 'UTC', ts1 AT TIME ZONE 'UTC')) * 12
                                + extract(month FROM age(ts2 AT TIME ZONE 'UTC', ts1 AT TIME ZONE 'UTC')))::bigint
             WHEN 'week' THEN trunc(extract(epoch FROM ts2 - ts1) / 604800)::bigint
             WHEN 'day' THEN trunc(extract(epoch FROM ts2 - ts1) / 86400)::bigint
             WHEN 'hour' THEN trunc(extract(epoch FROM ts2 - ts1) / 3600)::bigint
             WHEN 'minute' THEN trunc(extract(epoch FROM ts2 - ts1) / 60)::bigint
             WHEN 'second' THEN trunc(extract(epoch FROM ts2 - ts1))::bigint
             WHEN 'millisecond' THEN trunc(extract(epoch FROM ts2 - ts1) * 1000)::bigint
           END
$$;
CREATE FUNCTION billops_athena.date_diff(unit text, d1 date, d2 date) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops_athena.date_diff(unit, d1::timestamp AT TIME ZONE 'UTC', d2::timestamp AT TIME ZONE 'UTC')
$$;
COMMENT ON FUNCTION billops_athena.date_diff(text, timestamptz, timestamptz) IS
  'Trino''s date_diff(unit, x, y): whole units from x to y (UTC calendar for month, quarter, year).';
COMMENT ON FUNCTION billops_athena.date_diff(text, date, date) IS 'Trino''s date_diff(unit, x, y) on dates.';

-- date_add / date_diff on Athena's timestamp: the timestamptz ones, read in UTC
CREATE FUNCTION billops_athena.date_add(unit text, value bigint, ts timestamp) RETURNS timestamp
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops_athena.date_add(unit, value, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' $$;
CREATE FUNCTION billops_athena.date_diff(unit text, ts1 timestamp, ts2 timestamp) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops_athena.date_diff(unit, ts1 AT TIME ZONE 'UTC', ts2 AT TIME ZONE 'UTC') $$;
COMMENT ON FUNCTION billops_athena.date_add(text, bigint, timestamp) IS 'Trino''s date_add(unit, value, timestamp).';
COMMENT ON FUNCTION billops_athena.date_diff(text, timestamp, timestamp) IS 'Trino''s date_diff(unit, x, y) on timestamps.';

-- Trino's if(condition, true_value[, false_value]) and two-argument
-- replace(string, search), which removes every occurrence.  (Trino evaluates
-- only the branch it takes; these evaluate both, so an error in the other
-- branch, a division by zero, surfaces here.)
CREATE FUNCTION billops_athena."if"(condition boolean, true_value anycompatible, false_value anycompatible)
RETURNS anycompatible LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN condition THEN true_value ELSE false_value END $$;
CREATE FUNCTION billops_athena."if"(condition boolean, true_value anycompatible)
RETURNS anycompatible LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN condition THEN true_value END $$;
CREATE FUNCTION billops_athena.replace(string text, search text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT pg_catalog.replace(string, search, '') $$;
COMMENT ON FUNCTION billops_athena."if"(boolean, anycompatible, anycompatible) IS 'Trino''s if(condition, true_value, false_value).';
COMMENT ON FUNCTION billops_athena."if"(boolean, anycompatible) IS 'Trino''s if(condition, true_value): NULL when the condition is not true.';
COMMENT ON FUNCTION billops_athena.replace(text, text) IS 'Trino''s replace(string, search): every occurrence of search removed.';

-- Where Trino's function of the same name answers differently from
-- PostgreSQL's: split_part is NULL past the last field (Trino: "If the index
-- is larger than the number of fields, then null is returned"; PostgreSQL
-- returns ''), concat is NULL when an argument is NULL (PostgreSQL skips NULL
-- arguments).  These win over pg_catalog's only when the search path names
-- pg_catalog after billops_athena, as the README's recipe does.
CREATE FUNCTION billops_athena.split_part(string text, delimiter text, index integer) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT CASE WHEN index >= 1 AND index <= pg_catalog.cardinality(pg_catalog.string_to_array(string, delimiter))
                THEN pg_catalog.split_part(string, delimiter, index) END $$;
CREATE FUNCTION billops_athena.concat(VARIADIC strings text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pg_catalog.array_position(strings, NULL) IS NULL THEN pg_catalog.array_to_string(strings, '') END $$;
COMMENT ON FUNCTION billops_athena.split_part(text, text, integer) IS
  'Trino''s split_part(string, delimiter, index): NULL when the index is past the last field.';
COMMENT ON FUNCTION billops_athena.concat(text[]) IS 'Trino''s concat(string, ...): NULL when any argument is NULL.';

-- Trino's map functions, on the maps of billops.athena_cur2 (hstore)
CREATE FUNCTION billops_athena.element_at(m hstore, key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT m -> key $$;
CREATE FUNCTION billops_athena.cardinality(m hstore) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT pg_catalog.cardinality(akeys(m))::bigint $$;
CREATE FUNCTION billops_athena.map_keys(m hstore) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT akeys(m) $$;
COMMENT ON FUNCTION billops_athena.element_at(hstore, text) IS 'Trino''s element_at(map, key): the value, NULL when the key is missing.';
COMMENT ON FUNCTION billops_athena.cardinality(hstore) IS 'Trino''s cardinality(map): the number of keys.';
COMMENT ON FUNCTION billops_athena.map_keys(hstore) IS 'Trino''s map_keys(map).';

-- Trino's approximate aggregates, answered exactly (an exact answer is within
-- any error bound Trino documents: 2.3 % standard error for approx_distinct).
CREATE FUNCTION billops_athena._distinct_count(state anyarray) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT count(DISTINCT x) FROM unnest(state) x $$;
CREATE FUNCTION billops_athena._distinct_add(state anyarray, x anyelement) RETURNS anyarray
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN x IS NULL THEN state ELSE state || x END $$;
CREATE AGGREGATE billops_athena.approx_distinct(anyelement) (
    SFUNC = billops_athena._distinct_add, STYPE = anyarray, FINALFUNC = billops_athena._distinct_count, INITCOND = '{}');
COMMENT ON AGGREGATE billops_athena.approx_distinct(anyelement) IS
  'Trino''s approx_distinct(x), answered exactly: the number of distinct non-NULL values.';

-- approx_percentile(x, p): Trino returns a value of the data at rank p; this
-- returns the exact one (percentile_disc), which Trino's estimate approximates.
CREATE FUNCTION billops_athena._percentile_add(state double precision[], x double precision, p double precision)
RETURNS double precision[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF p IS NULL OR p < 0 OR p > 1 THEN
        RAISE EXCEPTION 'approx_percentile: the percentile must be between 0 and 1, not %', p
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF state IS NULL THEN
        state := ARRAY[p];
    END IF;
    IF x IS NULL THEN
        RETURN state;
    END IF;
    RETURN state || x;
END
$$;
CREATE FUNCTION billops_athena._percentile_final(state double precision[]) RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT percentile_disc(state[1]) WITHIN GROUP (ORDER BY x)
      FROM unnest(state[2:]) x
$$;
CREATE AGGREGATE billops_athena.approx_percentile(double precision, double precision) (
    SFUNC = billops_athena._percentile_add, STYPE = double precision[], FINALFUNC = billops_athena._percentile_final);
COMMENT ON AGGREGATE billops_athena.approx_percentile(double precision, double precision) IS
  'Trino''s approx_percentile(x, p), answered exactly: the value at percentile p (0..1) of the non-NULL x.';

CREATE FUNCTION billops_athena._by_final(state text[], x anyelement, y anycompatible) RETURNS anyelement
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    result x%TYPE;
BEGIN
    IF state IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT %L::%s', state[2], pg_typeof(x)) INTO result;
    RETURN result;
END
$$;

-- max_by(x, y) / min_by(x, y): the x of the row with the largest / smallest y.
-- PostgreSQL has no polymorphic pair state, so the state keeps y and x as
-- text and compares y in its own type; one pair of aggregates per y type
-- (amounts, times, text), x anything (returned as the type of x).
DO $do$
DECLARE
    y text;
BEGIN
    FOREACH y IN ARRAY ARRAY['numeric', 'double precision', 'bigint', 'integer', 'timestamp', 'timestamptz', 'date', 'text'] LOOP
        EXECUTE format($f$
            CREATE FUNCTION billops_athena._by_step(state text[], x anyelement, y %1$s, want_max boolean)
            RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
                SELECT CASE WHEN y IS NULL THEN state
                            WHEN state IS NULL OR (want_max AND y > state[1]::%1$s) OR (NOT want_max AND y < state[1]::%1$s)
                            THEN ARRAY[y::text, x::text]
                            ELSE state END $$;
            CREATE FUNCTION billops_athena._max_by_step(state text[], x anyelement, y %1$s) RETURNS text[]
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT billops_athena._by_step(state, x, y, true) $$;
            CREATE FUNCTION billops_athena._min_by_step(state text[], x anyelement, y %1$s) RETURNS text[]
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT billops_athena._by_step(state, x, y, false) $$;
            CREATE AGGREGATE billops_athena.max_by(anyelement, %1$s) (
                SFUNC = billops_athena._max_by_step, STYPE = text[], FINALFUNC = billops_athena._by_final, FINALFUNC_EXTRA);
            CREATE AGGREGATE billops_athena.min_by(anyelement, %1$s) (
                SFUNC = billops_athena._min_by_step, STYPE = text[], FINALFUNC = billops_athena._by_final, FINALFUNC_EXTRA);
            COMMENT ON AGGREGATE billops_athena.max_by(anyelement, %1$s) IS 'Trino''s max_by(x, y): x of the row with the largest y.';
            COMMENT ON AGGREGATE billops_athena.min_by(anyelement, %1$s) IS 'Trino''s min_by(x, y): x of the row with the smallest y.';
        $f$, y);
    END LOOP;
END
$do$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA billops_athena FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA billops_athena TO PUBLIC;
