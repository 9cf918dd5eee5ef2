-- ---------------------------------------------------------------------------
-- Athena's dialect, for AWS's own CUR queries: schema billops_athena holds the
-- Trino/Presto functions and type names those queries use and PostgreSQL lacks,
-- so that after
--     SET search_path = billops_athena, billops, public;
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
  'Trino/Athena functions and type names for AWS''s CUR queries: SET search_path = billops_athena, billops, public.';
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

-- Trino's convenience extraction functions (UTC for a timestamptz)
CREATE FUNCTION billops_athena.year(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(year FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.month(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(month FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.day(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(day FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.hour(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(hour FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.day_of_week(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(isodow FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.day_of_year(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(doy FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.week(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(week FROM ts AT TIME ZONE 'UTC')::bigint $$;
CREATE FUNCTION billops_athena.quarter(ts timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT extract(quarter FROM ts AT TIME ZONE 'UTC')::bigint $$;
COMMENT ON FUNCTION billops_athena.year(timestamptz) IS 'Trino''s year(x), in UTC.';
COMMENT ON FUNCTION billops_athena.month(timestamptz) IS 'Trino''s month(x), in UTC.';
COMMENT ON FUNCTION billops_athena.day(timestamptz) IS 'Trino''s day(x), in UTC.';
COMMENT ON FUNCTION billops_athena.hour(timestamptz) IS 'Trino''s hour(x), in UTC.';
COMMENT ON FUNCTION billops_athena.day_of_week(timestamptz) IS 'Trino''s day_of_week(x): ISO, 1 (Monday) to 7 (Sunday), in UTC.';
COMMENT ON FUNCTION billops_athena.day_of_year(timestamptz) IS 'Trino''s day_of_year(x), in UTC.';
COMMENT ON FUNCTION billops_athena.week(timestamptz) IS 'Trino''s week(x): the ISO week, in UTC.';
COMMENT ON FUNCTION billops_athena.quarter(timestamptz) IS 'Trino''s quarter(x), in UTC.';

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

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA billops_athena FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA billops_athena TO PUBLIC;
