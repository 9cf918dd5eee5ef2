-- ---------------------------------------------------------------------------
-- FOCUS: the ingest of FOCUS exports (tables, billops.load_focus_file), then
-- the FOCUS 1.2 views over the CUR (billops._focus_cur) and over both
-- (billops.focus_cost).
--
-- Ingest of FOCUS exports (AWS Data Exports' FOCUS_1_0_AWS / FOCUS_1_2_AWS, or
-- any provider's FOCUS CSV).  billops.load_focus_file() reads a CSV with a
-- header row; columns are matched by their FOCUS names, any other column
-- (AWS's x_ columns not typed here, a provider's extra "Id") is kept in
-- extras.  What real exports do, and what is done about it:
--   * NULL written as the bare word NULL          -> SQL NULL
--   * empty strings ("")                          -> SQL NULL (FOCUS gives an
--     empty string no meaning; every column but the three keys is nullable)
--   * "Usage-based" next to "Usage-Based"         -> the specification's spelling
--   * timestamps without a zone ("2024-09-18 22:00:00") -> UTC, as FOCUS requires
-- An export for a billing account's period replaces the rows the same source
-- loaded for it before (exports are cumulative, like CUR deliveries), in one
-- transaction: a file that fails changes nothing.
-- Plain CSV, or Parquet (recognised by its magic; its rows come through the
-- same COPY as CSV text, maps such as Tags as JSON objects); gzip'd CSV is not
-- read yet (decompress first).
-- ---------------------------------------------------------------------------
CREATE TABLE billops.focus_export (
    export_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_name      text NOT NULL,
    file_path        text NOT NULL,
    columns          text[] NOT NULL,
    extra_columns    text[] NOT NULL,
    rows_loaded      bigint NOT NULL,
    rows_replaced    bigint NOT NULL,
    billed_cost      numeric NOT NULL,
    loaded_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    loaded_by        name NOT NULL DEFAULT billops.actor()
);
COMMENT ON TABLE billops.focus_export IS 'Every FOCUS export file loaded: its columns, rows and BilledCost total.';

CREATE TABLE billops.focus_line_item (
    export_id                   bigint NOT NULL REFERENCES billops.focus_export,
    source_name                 text NOT NULL,
    line_no                     bigint NOT NULL,      -- the CSV record it came from (the header is 1)
    "AvailabilityZone"          text,
    "BilledCost"                numeric NOT NULL,
    "BillingAccountId"          text NOT NULL,
    "BillingAccountName"        text,
    "BillingAccountType"        text,
    "BillingCurrency"           text,
    "BillingPeriodEnd"          timestamptz,
    "BillingPeriodStart"        timestamptz NOT NULL,
    "CapacityReservationId"     text,
    "CapacityReservationStatus" text,
    "ChargeCategory"            text,
    "ChargeClass"               text,
    "ChargeDescription"         text,
    "ChargeFrequency"           text,
    "ChargePeriodEnd"           timestamptz,
    "ChargePeriodStart"         timestamptz,
    "CommitmentDiscountCategory" text,
    "CommitmentDiscountId"      text,
    "CommitmentDiscountName"    text,
    "CommitmentDiscountQuantity" numeric,
    "CommitmentDiscountStatus"  text,
    "CommitmentDiscountType"    text,
    "CommitmentDiscountUnit"    text,
    "ConsumedQuantity"          numeric,
    "ConsumedUnit"              text,
    "ContractedCost"            numeric,
    "ContractedUnitPrice"       numeric,
    "EffectiveCost"             numeric,
    "InvoiceId"                 text,
    "InvoiceIssuerName"         text,
    "ListCost"                  numeric,
    "ListUnitPrice"             numeric,
    "PricingCategory"           text,
    "PricingCurrency"           text,
    "PricingCurrencyContractedUnitPrice" numeric,
    "PricingCurrencyEffectiveCost" numeric,
    "PricingCurrencyListUnitPrice" numeric,
    "PricingQuantity"           numeric,
    "PricingUnit"               text,
    "ProviderName"              text,
    "PublisherName"             text,
    "RegionId"                  text,
    "RegionName"                text,
    "ResourceId"                text,
    "ResourceName"              text,
    "ResourceType"              text,
    "ServiceCategory"           text,
    "ServiceName"               text,
    "ServiceSubcategory"        text,
    "SkuId"                     text,
    "SkuMeter"                  text,
    "SkuPriceDetails"           jsonb,
    "SkuPriceId"                text,
    "SubAccountId"              text,
    "SubAccountName"            text,
    "SubAccountType"            text,
    "Tags"                      jsonb,
    "x_CostCategories"          jsonb,
    "x_Operation"               text,
    "x_ServiceCode"             text,
    "x_UsageType"               text,
    extras                      jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX ON billops.focus_line_item (source_name, "BillingAccountId", "BillingPeriodStart");
COMMENT ON TABLE billops.focus_line_item IS
  'Rows of ingested FOCUS exports under the specification''s column names; columns the file had that FOCUS 1.2 does not name are in extras.';

-- Whether a text is in FOCUS's Key-Value Format (Tags, SkuPriceDetails, and
-- AWS's x_CostCategories): a serialized JSON object whose values are numbers,
-- strings, true, false or null, never an object or an array (FOCUS
-- specification, attribute KeyValueFormat).  PostgreSQL 15 has no
-- non-raising JSON check, hence the exception block.
CREATE FUNCTION billops._is_key_value(v text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
BEGIN
    j := v::jsonb;
    RETURN jsonb_typeof(j) = 'object'
           AND NOT EXISTS (SELECT FROM jsonb_each(j) e WHERE jsonb_typeof(e.value) IN ('object', 'array'));
EXCEPTION WHEN invalid_text_representation THEN
    RETURN false;
END $$;

-- Whether a value converts to a type (used only to locate a value that failed).
CREATE FUNCTION billops._converts(v text, type_name text) RETURNS boolean
LANGUAGE plpgsql STABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format('SELECT %L::%s', v, type_name);
    RETURN true;
EXCEPTION WHEN data_exception THEN
    RETURN false;
END $$;

-- Load one FOCUS CSV file (read by the server; superuser only, like load_cur_file).
-- A local Parquet file's top-level field names, and its rows COPY'd into a
-- table's columns in file order (src/parquet_copy.c).  Superusers and
-- members of pg_read_server_files only, as COPY FROM a file.
CREATE FUNCTION billops._parquet_fields(path text) RETURNS text[]
    AS 'MODULE_PATHNAME', 'billops_parquet_fields'
    LANGUAGE C VOLATILE STRICT;
CREATE FUNCTION billops._copy_parquet_file(path text, target regclass, target_columns text[]) RETURNS bigint
    AS 'MODULE_PATHNAME', 'billops_copy_parquet_file'
    LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION billops.load_focus_file(path text, source_name text DEFAULT 'focus-files') RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head      text;
    cols      text[];
    typed     jsonb;          -- column name -> SQL type, read from the table itself
    extra     text[];
    missing   text[];
    c         text;
    ty        text;
    bad       record;
    targets   text := '';
    exprs     text := '';
    extras_sql text;
    export    bigint;
    n_rows    bigint;
    n_old     bigint;
    total     numeric;
    e_state   text;
    e_msg     text;
    is_parquet boolean;
BEGIN
    is_parquet := pg_read_binary_file(path, 0, 4) = '\x50415231'::bytea;   -- "PAR1"
    IF is_parquet THEN
        cols := billops._parquet_fields(path);
    ELSE
        -- the header row (FOCUS column names hold no commas, quotes or newlines)
        head := rtrim(split_part(pg_read_file(path, 0, 65536), E'\n', 1), E'\r');
        head := regexp_replace(head, '^' || chr(65279), '');     -- a byte order mark
        SELECT array_agg(btrim(btrim(f), '"') ORDER BY o) INTO cols
          FROM unnest(string_to_array(head, ',')) WITH ORDINALITY u(f, o);
    END IF;
    IF cols IS NULL OR cardinality(cols) < 2 THEN
        RAISE EXCEPTION '% is not a FOCUS CSV file: no header row', path USING ERRCODE = 'bad_copy_file_format';
    END IF;
    SELECT array_agg(x) INTO missing FROM unnest(ARRAY['BilledCost', 'BillingAccountId', 'BillingPeriodStart']) x
     WHERE x <> ALL (cols);
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION '% is not a FOCUS export: column(s) % missing', path, array_to_string(missing, ', ')
              USING ERRCODE = 'bad_copy_file_format',
                    DETAIL = format('The header has: %s.', array_to_string(cols, ', ')),
                    HINT = 'FOCUS names its columns in PascalCase (BilledCost, BillingAccountId, ...).';
    END IF;
    IF cardinality(cols) <> (SELECT count(DISTINCT x) FROM unnest(cols) x) THEN
        RAISE EXCEPTION '% has a column twice', path USING ERRCODE = 'bad_copy_file_format',
              DETAIL = format('The header has: %s.', array_to_string(cols, ', '));
    END IF;
    SELECT jsonb_object_agg(a.attname, format_type(a.atttypid, a.atttypmod)) INTO typed
      FROM pg_attribute a
     WHERE a.attrelid = 'billops.focus_line_item'::regclass AND a.attnum > 0 AND NOT a.attisdropped
       AND a.attname NOT IN ('export_id', 'source_name', 'line_no', 'extras');

    -- every field as text first, so a bad value is reported with its line and column
    PERFORM billops._drop_temp('billops_focus_raw');
    EXECUTE format('CREATE TEMP TABLE billops_focus_raw (line_no bigint GENERATED ALWAYS AS IDENTITY (START WITH 2), %s) ON COMMIT DROP',
                   (SELECT string_agg(format('c%s text', o), ', ' ORDER BY o) FROM generate_series(1, cardinality(cols)) o));
    IF is_parquet THEN
        PERFORM billops._copy_parquet_file(path, 'pg_temp.billops_focus_raw'::regclass,
                                           (SELECT array_agg(format('c%s', o) ORDER BY o) FROM generate_series(1, cardinality(cols)) o));
    ELSE
        EXECUTE format('COPY billops_focus_raw (%s) FROM %L WITH (FORMAT csv, HEADER true, NULL %L)',
                       (SELECT string_agg(format('c%s', o), ', ' ORDER BY o) FROM generate_series(1, cardinality(cols)) o),
                       path, 'NULL');
    END IF;

    FOR i IN 1 .. cardinality(cols) LOOP
        c := cols[i];
        ty := typed->>c;
        IF ty IS NULL THEN
            extra := extra || c;
            CONTINUE;
        END IF;
        -- check the values of typed columns before casting them
        IF ty IN ('numeric', 'timestamp with time zone', 'jsonb') THEN
            EXECUTE format('SELECT line_no, c%1$s AS v FROM billops_focus_raw WHERE nullif(c%1$s, %2$L) IS NOT NULL AND NOT %3$s ORDER BY line_no LIMIT 1',
                           i, '',
                           CASE ty WHEN 'numeric' THEN format('c%s ~ %L', i, '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*$')
                                   WHEN 'jsonb' THEN format('billops._is_key_value(c%s)', i)
                                   ELSE format('c%s ~ %L', i, '^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?$') END)
               INTO bad;
            IF bad.line_no IS NOT NULL THEN
                RAISE EXCEPTION 'FOCUS export %, line %, column %: "%" is not a valid %', path, bad.line_no, c, left(bad.v, 100),
                      CASE ty WHEN 'numeric' THEN 'number' WHEN 'jsonb' THEN 'JSON object of key-value pairs' ELSE 'date and time' END
                      USING ERRCODE = 'invalid_text_representation',
                            HINT = 'Nothing was loaded; the data loaded before is unchanged.';
            END IF;
        END IF;
        targets := targets || format(', %I', c);
        exprs := exprs || ', ' || CASE ty
            WHEN 'numeric' THEN format('nullif(btrim(c%s), %L)::numeric', i, '')
            WHEN 'jsonb' THEN format('nullif(c%s, %L)::jsonb', i, '')
            -- FOCUS date/times are UTC; a value with no zone is read as UTC
            WHEN 'timestamp with time zone' THEN format('CASE WHEN c%1$s ~ %2$L THEN nullif(c%1$s, %3$L)::timestamptz
                                                              ELSE nullif(c%1$s, %3$L)::timestamp AT TIME ZONE %4$L END',
                                                        i, '(Z|[+-]\d{2}(:?\d{2})?)$', '', 'UTC')
            ELSE CASE c WHEN 'ChargeFrequency'
                        THEN format('CASE lower(c%1$s) WHEN %2$L THEN %3$L WHEN %4$L THEN %5$L WHEN %6$L THEN %7$L ELSE nullif(c%1$s, %8$L) END',
                                    i, 'usage-based', 'Usage-Based', 'one-time', 'One-Time', 'recurring', 'Recurring', '')
                        ELSE format('nullif(c%s, %L)', i, '') END END;
    END LOOP;
    extras_sql := coalesce((SELECT 'jsonb_strip_nulls(jsonb_build_object('
                                   || string_agg(format('%L, nullif(c%s, %L)', x, array_position(cols, x), ''), ', ') || '))'
                              FROM unnest(extra) x), '''{}''::jsonb');

    -- the three key columns must have a value on every line
    EXECUTE format('SELECT line_no FROM billops_focus_raw WHERE nullif(c%s, %L) IS NULL OR nullif(c%s, %L) IS NULL OR nullif(c%s, %L) IS NULL
                     ORDER BY line_no LIMIT 1',
                   array_position(cols, 'BilledCost'), '', array_position(cols, 'BillingAccountId'), '',
                   array_position(cols, 'BillingPeriodStart'), '')
       INTO n_rows;
    IF n_rows IS NOT NULL THEN
        RAISE EXCEPTION 'FOCUS export %, line %: BilledCost, BillingAccountId and BillingPeriodStart must have values', path, n_rows
              USING ERRCODE = 'not_null_violation', HINT = 'Nothing was loaded; the data loaded before is unchanged.';
    END IF;

    INSERT INTO billops.focus_export (source_name, file_path, columns, extra_columns, rows_loaded, rows_replaced, billed_cost)
    VALUES (source_name, path, cols, coalesce(extra, '{}'), 0, 0, 0) RETURNING export_id INTO export;
    BEGIN
        EXECUTE format('INSERT INTO billops.focus_line_item (export_id, source_name, line_no%s, extras)
                        SELECT %s, %L, line_no%s, %s FROM billops_focus_raw ORDER BY line_no',
                       targets, export, source_name, exprs, extras_sql);
        GET DIAGNOSTICS n_rows = ROW_COUNT;
    EXCEPTION WHEN data_exception THEN
        -- a value of the right shape that still does not convert (2024-02-30, an offset of
        -- +99:00, 1e200000): find its line and column (only now, so a good file pays nothing)
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT;
        FOR i IN 1 .. cardinality(cols) LOOP
            ty := typed->>cols[i];
            CONTINUE WHEN ty IS NULL OR ty NOT IN ('numeric', 'timestamp with time zone', 'jsonb');
            EXECUTE format('SELECT line_no, c%1$s AS v FROM billops_focus_raw
                             WHERE nullif(btrim(c%1$s), %2$L) IS NOT NULL AND NOT billops._converts(btrim(c%1$s), %3$L)
                             ORDER BY line_no LIMIT 1', i, '', ty)
               INTO bad;
            IF bad.line_no IS NOT NULL THEN
                RAISE EXCEPTION 'FOCUS export %, line %, column %: "%" is not a valid %', path, bad.line_no, cols[i], left(bad.v, 100),
                      CASE ty WHEN 'numeric' THEN 'number' WHEN 'jsonb' THEN 'JSON object of key-value pairs' ELSE 'date and time' END
                      USING ERRCODE = e_state, DETAIL = e_msg, HINT = 'Nothing was loaded; the data loaded before is unchanged.';
            END IF;
        END LOOP;
        RAISE EXCEPTION 'FOCUS export %: %', path, e_msg USING ERRCODE = e_state,
              HINT = 'Nothing was loaded; the data loaded before is unchanged.';
    END;
    -- the billing accounts' periods this export covers replace what this source loaded for them
    DELETE FROM billops.focus_line_item f
     WHERE f.source_name = load_focus_file.source_name AND f.export_id <> export
       AND (f."BillingAccountId", f."BillingPeriodStart") IN
           (SELECT DISTINCT n."BillingAccountId", n."BillingPeriodStart" FROM billops.focus_line_item n WHERE n.export_id = export);
    GET DIAGNOSTICS n_old = ROW_COUNT;
    SELECT coalesce(sum(f."BilledCost"), 0) INTO total FROM billops.focus_line_item f WHERE f.export_id = export;
    UPDATE billops.focus_export e SET rows_loaded = n_rows, rows_replaced = n_old, billed_cost = total WHERE e.export_id = export;
    RAISE NOTICE 'billops: FOCUS export %: % rows (% replaced), BilledCost %, other columns kept in extras: %', path, n_rows, n_old,
          total, coalesce(array_to_string(extra, ', '), 'none');
    RETURN export;
END $$;
COMMENT ON FUNCTION billops.load_focus_file(text, text) IS
  'Loads a FOCUS export CSV into billops.focus_line_item, replacing what the same source loaded for the same billing accounts and periods.';

-- ---------------------------------------------------------------------------
-- ServiceCategory and ServiceSubcategory of AWS's services.  The CUR has no
-- such columns; FOCUS 1.2 makes ServiceCategory mandatory and never null, one
-- of its allowed values (columns/servicecategory.md), and ServiceSubcategory
-- one of its allowed values under that category (columns/servicesubcategory.md).
-- AWS's categories are those its own FOCUS export gives (the FOCUS sample in
-- shared/testdata/focus, CC BY 4.0: its AWS rows), keyed by the service name
-- pg_billops derives and, where one service spans categories (EC2: instances
-- and data transfer are Compute, its EBS volumes, snapshots and IOPS Storage),
-- by the CUR's product family.  A service neither lists is "Other"; a missing
-- subcategory is the category's "Other (<category>)".  Users override or add
-- rows in billops.focus_service_category, which wins over AWS's.
-- ---------------------------------------------------------------------------
CREATE DOMAIN billops.focus_service_category_value AS text
    CHECK (VALUE IN ('AI and Machine Learning', 'Analytics', 'Business Applications', 'Compute', 'Databases',
                     'Developer Tools', 'Multicloud', 'Identity', 'Integration', 'Internet of Things',
                     'Management and Governance', 'Media', 'Migration', 'Mobile', 'Networking', 'Security',
                     'Storage', 'Web', 'Other'));
COMMENT ON DOMAIN billops.focus_service_category_value IS 'A ServiceCategory FOCUS 1.2 allows (columns/servicecategory.md).';

CREATE TABLE billops.focus_service_category (
    service_name        text NOT NULL,                  -- as focus_cost's "ServiceName" shows it
    product_family      text NOT NULL DEFAULT '',       -- '' for every family of the service
    service_category    billops.focus_service_category_value NOT NULL,
    service_subcategory text,                           -- NULL: "Other (<category>)"
    PRIMARY KEY (service_name, product_family)
);
COMMENT ON TABLE billops.focus_service_category IS
  'Your FOCUS ServiceCategory (and ServiceSubcategory) per service, and optionally per CUR product family; wins over the categories AWS''s FOCUS export uses.';

CREATE TABLE billops._focus_service_category_aws (
    service_name        text NOT NULL,
    product_family      text NOT NULL DEFAULT '',
    service_category    billops.focus_service_category_value NOT NULL,
    service_subcategory text,
    PRIMARY KEY (service_name, product_family)
);
COMMENT ON TABLE billops._focus_service_category_aws IS
  'The ServiceCategory AWS''s own FOCUS export gives each service (its rows in the FOCUS sample); read-only seed.';
INSERT INTO billops._focus_service_category_aws (service_name, product_family, service_category) VALUES
    ('AWS CloudTrail', '', 'Management and Governance'),
    ('AWS Key Management Service', '', 'Identity'),
    ('AWS Lambda', '', 'Compute'),
    ('AWS Security Hub', '', 'Security'),
    ('AWS Step Functions', '', 'Compute'),
    ('AWS Systems Manager', '', 'Management and Governance'),
    ('AWS WAF', '', 'Security'),
    ('Amazon API Gateway', '', 'Networking'),
    ('Amazon CloudFront', '', 'Networking'),
    ('Amazon DynamoDB', '', 'Databases'),
    ('Amazon EC2 Container Registry (ECR)', '', 'Other'),
    ('Amazon Elastic Compute Cloud', '', 'Compute'),
    -- the export's EC2 Storage rows are EBS volumes, snapshots and provisioned IOPS: the CUR's
    -- families for them (inferred from the rows' descriptions and units, not stated by AWS)
    ('Amazon Elastic Compute Cloud', 'Storage', 'Storage'),
    ('Amazon Elastic Compute Cloud', 'Storage Snapshot', 'Storage'),
    ('Amazon Elastic Compute Cloud', 'System Operation', 'Storage'),
    ('Amazon Elastic Container Service', '', 'Other'),
    ('Amazon Elastic Container Service for Kubernetes', '', 'Other'),
    ('Amazon Elastic File System', '', 'Storage'),
    ('Amazon Relational Database Service', '', 'Databases'),
    ('Amazon Route 53', '', 'Networking'),
    ('Amazon Simple Notification Service', '', 'Integration'),
    ('Amazon Simple Queue Service', '', 'Integration'),
    ('Amazon Simple Storage Service', '', 'Storage'),
    ('Amazon Virtual Private Cloud', '', 'Networking'),
    ('AmazonCloudWatch', '', 'Management and Governance'),
    ('Elastic Load Balancing', '', 'Networking'),
    ('Red Hat OpenShift Service on AWS', '', 'Other');

-- the user's rows over AWS's
CREATE VIEW billops._focus_service_category_map WITH (security_invoker = true) AS
SELECT DISTINCT ON (service_name, product_family) service_name, product_family, service_category::text, service_subcategory
  FROM (SELECT service_name, product_family, service_category, service_subcategory, 0 AS rank FROM billops.focus_service_category
        UNION ALL
        SELECT service_name, product_family, service_category, service_subcategory, 1 FROM billops._focus_service_category_aws) m
 ORDER BY service_name, product_family, rank;
COMMENT ON VIEW billops._focus_service_category_map IS 'ServiceCategory per service and product family: billops.focus_service_category over AWS''s.';
SELECT billops._audit_tables(ARRAY['focus_service_category'], ARRAY['service_name']);

-- ---------------------------------------------------------------------------
-- FOCUS (FinOps Open Cost and Usage Specification) 1.2 over ingested CUR
-- data, so FOCUS-speaking tools can read pg_billops.  Column names are the
-- specification's, quoted ("BilledCost").
--
-- The CUR -> FOCUS mapping follows the meaning of the columns (aws-billing.md
-- and the FOCUS specification).  Where no primary source settles a mapping
-- the comment says so; those columns are the ones to check against AWS's
-- own FOCUS export before relying on them:
--   * ChargeCategory for discounts and Savings Plan negation (here: Credit / Usage)
--   * ChargeFrequency for RI fees (here: Recurring)
--   * ContractedCost (here: net unblended cost when present, else unblended)
--   * ServiceCategory: from billops._focus_service_category_map (above)
-- BilledCost is the unblended cost, so the view's BilledCost adds up to the
-- CUR's line_item_unblended_cost exactly (tested on the real sample).
-- ---------------------------------------------------------------------------
CREATE VIEW billops._focus_cur WITH (security_invoker = true) AS
SELECT li.line_item_availability_zone AS "AvailabilityZone",
       li.line_item_unblended_cost AS "BilledCost",
       li.bill_payer_account_id AS "BillingAccountId",
       li.bill_payer_account_name AS "BillingAccountName",
       'Organization'::text AS "BillingAccountType",          -- 1.2: an AWS payer is an organization's management account
       li.line_item_currency_code AS "BillingCurrency",
       -- FOCUS's Date/Time Format: an instant in UTC.  As timestamptz (like ChargePeriod*), so a
       -- period filter or join means the same whatever the client's TimeZone.
       (li.bill_billing_period_start_date::timestamp AT TIME ZONE 'UTC') AS "BillingPeriodStart",
       (coalesce(li.bill_billing_period_end_date, (li.bill_billing_period_start_date + interval '1 month')::date)::timestamp
        AT TIME ZONE 'UTC') AS "BillingPeriodEnd",
       NULL::text AS "CapacityReservationId",
       NULL::text AS "CapacityReservationStatus",
       cc.charge_category AS "ChargeCategory",
       -- FOCUS 1.2 columns/chargeclass.md: "Correction" only for a correction of a previous billing
       -- period (a refund whose usage started before this period); a same-month refund has none
       CASE WHEN (li.bill_bill_type = 'Refund' OR li.line_item_line_item_type = 'Refund')
                 AND li.line_item_usage_start_date < (li.bill_billing_period_start_date::timestamp AT TIME ZONE 'UTC')
            THEN 'Correction' END AS "ChargeClass",
       li.line_item_line_item_description AS "ChargeDescription",
       CASE WHEN li.line_item_line_item_type IN ('Fee', 'SavingsPlanUpfrontFee') THEN 'One-Time'
            WHEN li.line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee') THEN 'Recurring'   -- unverified for RIFee
            ELSE 'Usage-Based' END AS "ChargeFrequency",
       li.line_item_usage_start_date AS "ChargePeriodStart",
       li.line_item_usage_end_date AS "ChargePeriodEnd",
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Spend'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Usage' END AS "CommitmentDiscountCategory",
       coalesce(nullif(li.savings_plan_savings_plan_a_r_n, ''), nullif(li.reservation_reservation_a_r_n, '')) AS "CommitmentDiscountId",
       NULL::text AS "CommitmentDiscountName",
       NULL::numeric AS "CommitmentDiscountQuantity",
       -- FOCUS 1.2 columns/commitmentdiscountstatus.md: a status on every usage row that names a
       -- commitment; a Savings Plan's negation row offsets covered usage, so it is Used too
       CASE WHEN li.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'DiscountedUsage', 'SavingsPlanNegation') THEN 'Used'
            WHEN li.line_item_line_item_type IN ('SavingsPlanRecurringFee', 'RIFee')
                 AND coalesce(nullif(li.savings_plan_savings_plan_a_r_n, ''), nullif(li.reservation_reservation_a_r_n, '')) IS NOT NULL
                 THEN 'Unused' END AS "CommitmentDiscountStatus",     -- unverified for fees
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Savings Plan'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Reservation' END AS "CommitmentDiscountType",
       NULL::text AS "CommitmentDiscountUnit",
       -- FOCUS 1.2 columns/consumedquantity.md, consumedunit.md: a quantity on every Usage row (the
       -- Savings Plan negation rows included) and on no other, a unit exactly where there is a quantity
       CASE WHEN cc.charge_category = 'Usage' THEN li.line_item_usage_amount END AS "ConsumedQuantity",
       CASE WHEN cc.charge_category = 'Usage' AND li.line_item_usage_amount IS NOT NULL
            THEN nullif(li.pricing_unit, '') END AS "ConsumedUnit",
       coalesce(li.line_item_net_unblended_cost, li.line_item_unblended_cost) AS "ContractedCost",   -- unverified
       coalesce(li.line_item_net_unblended_rate, li.line_item_unblended_rate) AS "ContractedUnitPrice",
       CASE li.line_item_line_item_type
            WHEN 'SavingsPlanCoveredUsage' THEN li.savings_plan_savings_plan_effective_cost
            WHEN 'SavingsPlanRecurringFee' THEN li.savings_plan_total_commitment_to_date - li.savings_plan_used_commitment
            WHEN 'SavingsPlanNegation' THEN 0
            WHEN 'SavingsPlanUpfrontFee' THEN 0
            WHEN 'DiscountedUsage' THEN li.reservation_effective_cost
            ELSE li.line_item_unblended_cost END AS "EffectiveCost",
       nullif(li.bill_invoice_id, '') AS "InvoiceId",
       li.bill_invoicing_entity AS "InvoiceIssuerName",
       -- FOCUS 1.2 columns/listcost.md: a charge unrelated to other charges (a credit) lists at its
       -- BilledCost; the CUR gives credits no public price
       CASE WHEN cc.charge_category = 'Credit' THEN li.line_item_unblended_cost
            ELSE li.pricing_public_on_demand_cost END AS "ListCost",
       li.pricing_public_on_demand_rate AS "ListUnitPrice",
       -- FOCUS 1.2 columns/pricingcategory.md: none on tax; "Committed" for usage under a commitment
       -- (Savings Plan coverage and its negation, reserved usage), whatever the CUR's pricing term
       -- (OnDemand on Savings Plan coverage), but not for buying the commitment (its fees); every
       -- other Usage or Purchase row has a category: its term's, else "Standard" (fees, and free-tier
       -- usage, which carries no term: their price is the agreed one; unverified against AWS's own
       -- FOCUS export)
       CASE WHEN cc.charge_category = 'Tax' THEN NULL
            WHEN li.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN 'Committed'
            WHEN cc.charge_category = 'Purchase' THEN 'Standard'
            WHEN li.pricing_term = 'OnDemand' THEN 'Standard'
            WHEN li.pricing_term = 'Reserved' THEN 'Committed'
            WHEN li.pricing_term = 'Spot' THEN 'Dynamic'
            WHEN cc.charge_category IN ('Usage', 'Purchase') THEN 'Standard'
       END AS "PricingCategory",
       li.pricing_currency AS "PricingCurrency",
       NULL::numeric AS "PricingCurrencyContractedUnitPrice",
       NULL::numeric AS "PricingCurrencyEffectiveCost",
       NULL::numeric AS "PricingCurrencyListUnitPrice",
       -- FOCUS 1.2 columns/pricingquantity.md and pricingunit.md: no quantity on tax (the CUR writes 1),
       -- and a unit exactly where there is a quantity
       CASE WHEN cc.charge_category <> 'Tax' THEN li.line_item_usage_amount END AS "PricingQuantity",
       CASE WHEN cc.charge_category <> 'Tax' AND li.line_item_usage_amount IS NOT NULL
            THEN nullif(li.pricing_unit, '') END AS "PricingUnit",
       'AWS'::text AS "ProviderName",
       coalesce(li.line_item_legal_entity, li.bill_invoicing_entity) AS "PublisherName",
       -- FOCUS 1.2 columns/regionname.md: a name exactly where there is an id (the CUR writes
       -- locations such as "Any" without a region code; a region code without a location keeps its code)
       nullif(li.product_region_code, '') AS "RegionId",
       CASE WHEN nullif(li.product_region_code, '') IS NOT NULL
            THEN coalesce(nullif(li.product_location, ''), li.product_region_code) END AS "RegionName",
       nullif(li.line_item_resource_id, '') AS "ResourceId",
       NULL::text AS "ResourceName",
       NULL::text AS "ResourceType",
       coalesce(by_family.service_category, by_service.service_category, 'Other') AS "ServiceCategory",
       cc.service_name AS "ServiceName",
       coalesce(CASE WHEN by_family.service_category IS NOT NULL THEN by_family.service_subcategory ELSE by_service.service_subcategory END,
                'Other (' || coalesce(by_family.service_category, by_service.service_category, 'Other') || ')') AS "ServiceSubcategory",
       li.product_sku AS "SkuId",
       NULL::text AS "SkuMeter",
       NULL::jsonb AS "SkuPriceDetails",
       -- the CUR's rate code is <SkuId>.<offer term>.<rate>, the form of AWS's own FOCUS export (its
       -- SkuPriceId has the SkuId as its first part: the one parent FOCUS 1.2 columns/skupriceid.md
       -- asks for); none on tax
       CASE WHEN cc.charge_category <> 'Tax' THEN nullif(li.pricing_rate_code, '') END AS "SkuPriceId",
       li.line_item_usage_account_id AS "SubAccountId",
       li.line_item_usage_account_name AS "SubAccountName",
       'Account'::text AS "SubAccountType",
       li.resource_tags AS "Tags",
       -- AWS's own extensions, as its FOCUS export names them
       li.cost_category AS "x_CostCategories",
       li.line_item_operation AS "x_Operation",
       li.line_item_product_code AS "x_ServiceCode",
       li.line_item_usage_type AS "x_UsageType"
  FROM billops.cur_line_item li
       -- the charge's FOCUS ChargeCategory, which several columns' rules depend on, its service and product family
       CROSS JOIN LATERAL (SELECT CASE li.line_item_line_item_type
                            WHEN 'Tax' THEN 'Tax'
                            WHEN 'Credit' THEN 'Credit'
                            WHEN 'Refund' THEN 'Credit'
                            WHEN 'EdpDiscount' THEN 'Credit'          -- unverified
                            WHEN 'BundledDiscount' THEN 'Credit'      -- unverified
                            WHEN 'PrivateRateDiscount' THEN 'Credit'  -- unverified
                            WHEN 'Discount' THEN 'Credit'             -- unverified
                            WHEN 'Fee' THEN 'Purchase'
                            WHEN 'RIFee' THEN 'Purchase'
                            WHEN 'SavingsPlanUpfrontFee' THEN 'Purchase'
                            WHEN 'SavingsPlanRecurringFee' THEN 'Purchase'
                            -- Usage, DiscountedUsage, SavingsPlanCoveredUsage, SavingsPlanNegation (unverified)
                            ELSE 'Usage' END AS charge_category,
                       billops._service_of(li.product, li.line_item_product_code) AS service_name,
                       coalesce(nullif(li.product_product_family, ''), li.product->>'product_family', '') AS product_family) cc
       LEFT JOIN billops._focus_service_category_map by_family
              ON by_family.service_name = cc.service_name AND by_family.product_family = cc.product_family AND cc.product_family <> ''
       LEFT JOIN billops._focus_service_category_map by_service
              ON by_service.service_name = cc.service_name AND by_service.product_family = '';
COMMENT ON VIEW billops._focus_cur IS
  'FOCUS 1.2 columns over the visible CUR deliveries (BilledCost = unblended cost; see 63_focus.sql for unverified mappings).';

-- FOCUS for FOCUS-speaking tools: the CUR-derived rows and the ingested FOCUS
-- exports under one set of columns.  Where a billing account's period is both
-- in the CUR and in a FOCUS export, the CUR wins (the same charges would
-- otherwise count twice).
CREATE VIEW billops.focus_cost WITH (security_invoker = true) AS
SELECT c.*, 'cur'::text AS "x_BillopsSource"
  FROM billops._focus_cur c
UNION ALL
SELECT f."AvailabilityZone", f."BilledCost", f."BillingAccountId", f."BillingAccountName", f."BillingAccountType",
       f."BillingCurrency", f."BillingPeriodStart", f."BillingPeriodEnd",
       f."CapacityReservationId", f."CapacityReservationStatus", f."ChargeCategory", f."ChargeClass", f."ChargeDescription",
       f."ChargeFrequency", f."ChargePeriodStart", f."ChargePeriodEnd", f."CommitmentDiscountCategory", f."CommitmentDiscountId",
       f."CommitmentDiscountName", f."CommitmentDiscountQuantity", f."CommitmentDiscountStatus", f."CommitmentDiscountType",
       f."CommitmentDiscountUnit", f."ConsumedQuantity", f."ConsumedUnit", f."ContractedCost", f."ContractedUnitPrice",
       f."EffectiveCost", f."InvoiceId", f."InvoiceIssuerName", f."ListCost", f."ListUnitPrice", f."PricingCategory",
       f."PricingCurrency", f."PricingCurrencyContractedUnitPrice", f."PricingCurrencyEffectiveCost",
       f."PricingCurrencyListUnitPrice", f."PricingQuantity", f."PricingUnit", f."ProviderName", f."PublisherName",
       f."RegionId", f."RegionName", f."ResourceId", f."ResourceName", f."ResourceType", f."ServiceCategory", f."ServiceName",
       f."ServiceSubcategory", f."SkuId", f."SkuMeter", f."SkuPriceDetails", f."SkuPriceId", f."SubAccountId",
       f."SubAccountName", f."SubAccountType", f."Tags", f."x_CostCategories", f."x_Operation", f."x_ServiceCode",
       f."x_UsageType", 'focus:' || f.source_name
  FROM billops.focus_line_item f
 WHERE NOT EXISTS (SELECT FROM billops.cur_partition p
                    WHERE p.payer_account_id = f."BillingAccountId"
                      AND p.billing_period = (f."BillingPeriodStart" AT TIME ZONE 'UTC')::date);
COMMENT ON VIEW billops.focus_cost IS
  'FOCUS 1.2 columns over the visible CUR deliveries and ingested FOCUS exports (x_BillopsSource says which); see 63_focus.sql for unverified CUR mappings.';
