-- ---------------------------------------------------------------------------
-- CUR ingest, one domain: its tables (sources, deliveries, the line-item
-- table), its functions (C entry points, manifests, staging, the atomic swap,
-- sync) and its views (for analysts, BI tools and DBAs), in that order.
-- ---------------------------------------------------------------------------

-- ===== tables: sources, deliveries, and the line-item table =================

-- Where a Cost and Usage Report is delivered.  Holds no secret: `credentials`
-- is a reference ('default', 'env', 'profile:<name>') resolved by the server.
CREATE TABLE billops.cur_source (
    source_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'),
    storage       text NOT NULL DEFAULT 's3' CHECK (storage IN ('s3', 'file')),
    -- 'focus': a Data Exports FOCUS export (the CUR 2.0 layout, FOCUS columns),
    -- loaded into billops.focus_line_item; 'focus_files': FOCUS files of any
    -- provider under the prefix, each object a delivery; 'auto': local CUR
    -- files of either layout
    layout        text NOT NULL CHECK (layout IN ('legacy_cur', 'cur2', 'focus', 'focus_files', 'auto')),
    bucket        text,
    prefix        text NOT NULL DEFAULT '',
    report_name   text,
    region        text NOT NULL DEFAULT 'us-east-1' CHECK (region ~ '^[a-z0-9-]+$'),
    endpoint_url  text,
    path_style    boolean NOT NULL DEFAULT false,
    credentials   text NOT NULL DEFAULT 'default',
    -- a role assumed on top of the credentials (STS AssumeRole), or NULL
    role_arn      text,
    role_external_id text,
    role_session_name text,
    min_period    date,
    -- A migration (legacy CUR -> CUR 2.0): this source's deliveries take over
    -- the (period, payer) partitions the replaced source holds, and the
    -- replaced source no longer loads those; other months stay as they are.
    replaces_source_id integer REFERENCES billops.cur_source ON DELETE SET NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_sync_at  timestamptz,
    CONSTRAINT cur_source_credentials_reference CHECK (billops.credentials_reference_valid(credentials)),
    CONSTRAINT cur_source_role CHECK (billops._check_role(role_arn, role_external_id, role_session_name)),
    CHECK (storage = 'file' OR (bucket IS NOT NULL AND report_name IS NOT NULL)),
    CHECK (min_period IS NULL OR extract(day FROM min_period) = 1),
    CHECK (replaces_source_id IS DISTINCT FROM source_id)
);
COMMENT ON TABLE billops.cur_source IS
  'A CUR, Data Exports (CUR 2.0 or FOCUS) or FOCUS files delivery location. credentials is a reference, never a key.';

-- One attempt to load one billing period's delivery (an assembly).
CREATE TABLE billops.cur_delivery (
    delivery_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id       integer NOT NULL REFERENCES billops.cur_source ON DELETE CASCADE,
    billing_period  date,
    assembly_id     text,
    manifest_key    text,
    manifest        jsonb,
    compression     text,
    status          text NOT NULL DEFAULT 'running'
                    CHECK (status IN ('running', 'loaded', 'superseded', 'failed', 'aborted')),
    file_count      integer,
    bytes_read      bigint,
    uncompressed_bytes bigint,
    rows_loaded     bigint,
    columns         text[],         -- the first file's header, as written
    focus_version   text,           -- a FOCUS delivery: the FOCUS version its columns tell (focus_version_of)
    started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at     timestamptz,
    load_ms         double precision,
    swap_ms         double precision,
    error_sqlstate  text,
    error_message   text,
    error_detail    text,
    error_hint      text,
    error_context   text,
    backend_pid     integer DEFAULT pg_backend_pid(),
    started_by      name NOT NULL DEFAULT current_user
);
CREATE INDEX ON billops.cur_delivery (source_id, billing_period, started_at DESC);
COMMENT ON TABLE billops.cur_delivery IS
  'History of every delivery load: assembly, files, bytes, rows, timings, status and error.';

CREATE TABLE billops.cur_delivery_file (
    delivery_id     bigint NOT NULL REFERENCES billops.cur_delivery ON DELETE CASCADE,
    file_no         integer NOT NULL,
    object_key      text NOT NULL,
    expected_bytes  bigint,
    etag            text,
    bytes_read      bigint,
    uncompressed_bytes bigint,
    rows_loaded     bigint,
    load_ms         double precision,
    loader_pid      integer,            -- the backend that loaded it: the session, or a load worker
    PRIMARY KEY (delivery_id, file_no)
);
COMMENT ON TABLE billops.cur_delivery_file IS 'The report files of a delivery and what loading each cost.';

-- The staging tables a delivery filled, one per (period, payer).
CREATE TABLE billops.cur_delivery_partition (
    delivery_id        bigint NOT NULL REFERENCES billops.cur_delivery ON DELETE CASCADE,
    billing_period     date NOT NULL,
    payer_account_id   text NOT NULL,
    staging_table      regclass,
    period_start       timestamptz,     -- FOCUS deliveries: the exact BillingPeriodStart (NULL for the CUR)
    daily_table        regclass,        -- the CUR's: its billops.cur_daily staging table
    daily_rows         bigint,          -- rows the loaders wrote into it (a key may have one per loader)
    daily_ms           double precision, -- time the loaders spent summing and writing them
    rows_loaded        bigint,
    rows_with_invoice_id bigint,
    invoice_ids        text[],
    PRIMARY KEY (delivery_id, billing_period, payer_account_id)
);
COMMENT ON TABLE billops.cur_delivery_partition IS
  'Per delivery, period and payer: rows loaded and the AWS invoice ids seen (preliminary vs final).';

-- The keys each delivery's map columns hold (resource_tags, cost_category,
-- product, discount), written by the loader as it reads them: Athena's legacy
-- table has a column per key (billops.athena_cur), kept current from here.
CREATE TABLE billops.cur_delivery_map_key (
    delivery_id  bigint NOT NULL REFERENCES billops.cur_delivery ON DELETE CASCADE,
    map_column   text NOT NULL,
    key          text NOT NULL,
    PRIMARY KEY (delivery_id, map_column, key)
);
COMMENT ON TABLE billops.cur_delivery_map_key IS
  'The tag, cost category, product and discount keys each delivery holds, as AWS wrote them.';

-- Which delivery each live partition holds.  Exactly one row per (period, payer).
CREATE TABLE billops.cur_partition (
    billing_period    date NOT NULL,
    payer_account_id  text NOT NULL,
    source_id         integer NOT NULL REFERENCES billops.cur_source,
    delivery_id       bigint NOT NULL REFERENCES billops.cur_delivery,
    table_name        text NOT NULL,
    daily_table       text,             -- its billops.cur_daily partition
    swapped_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (billing_period, payer_account_id)
);
COMMENT ON TABLE billops.cur_partition IS
  'The delivery currently visible for each billing period and payer.';

-- Line items: the canonical model both layouts land on.  The columns are
-- AWS's CUR 2.0 data dictionary (static columns typed, maps as jsonb); legacy
-- CUR columns land on the same columns by AWS's Athena naming rule, legacy
-- product attributes that CUR 2.0 keeps in its product map land in that map,
-- legacy tag and cost category columns in resource_tags / cost_category.
-- Amounts are numeric (never float), times timestamptz; every other column of
-- a report is kept in extras under its own header.  Athena's views over this
-- table are in 28_athena_tables.sql.
-- Partitioned by billing period, then payer: a delivery replaces exactly its
-- (period, payer) leaves, atomically.
CREATE TABLE billops.cur_line_item (
    identity_line_item_id          text,
    identity_time_interval         text,
    bill_invoice_id                text,
    bill_invoicing_entity          text,
    bill_billing_entity            text,
    bill_bill_type                 text,
    bill_payer_account_id          text NOT NULL,
    bill_payer_account_name        text,
    bill_billing_period_start_date date NOT NULL,
    bill_billing_period_end_date   date,
    line_item_usage_account_id     text,
    line_item_usage_account_name   text,
    line_item_line_item_type       text,
    line_item_usage_start_date     timestamptz,
    line_item_usage_end_date       timestamptz,
    line_item_product_code         text,
    line_item_usage_type           text,
    line_item_operation            text,
    line_item_availability_zone    text,
    line_item_resource_id          text,
    line_item_usage_amount         numeric,
    line_item_normalization_factor numeric,
    line_item_normalized_usage_amount numeric,
    line_item_currency_code        text,
    line_item_unblended_rate       numeric,
    line_item_unblended_cost       numeric,
    line_item_blended_rate         numeric,
    line_item_blended_cost         numeric,
    line_item_net_unblended_rate   numeric,
    line_item_net_unblended_cost   numeric,
    line_item_line_item_description text,
    line_item_tax_type             text,
    line_item_legal_entity         text,
    product_servicecode            text,
    product_product_family         text,
    product_region_code            text,
    product_location               text,
    product_sku                    text,
    product_usagetype              text,
    product_operation              text,
    product_instance_type          text,
    pricing_rate_code              text,
    pricing_rate_id                text,
    pricing_currency               text,
    pricing_public_on_demand_cost  numeric,
    pricing_public_on_demand_rate  numeric,
    pricing_term                   text,
    pricing_unit                   text,
    reservation_reservation_a_r_n  text,
    reservation_effective_cost     numeric,
    reservation_amortized_upfront_cost_for_usage numeric,
    reservation_amortized_upfront_fee_for_billing_period numeric,
    reservation_recurring_fee_for_usage numeric,
    reservation_unused_amortized_upfront_fee_for_billing_period numeric,
    reservation_unused_recurring_fee numeric,
    reservation_start_time         timestamptz,
    reservation_end_time           timestamptz,
    savings_plan_savings_plan_a_r_n text,
    savings_plan_savings_plan_rate numeric,
    savings_plan_savings_plan_effective_cost numeric,
    savings_plan_total_commitment_to_date numeric,
    savings_plan_used_commitment   numeric,
    savings_plan_amortized_upfront_commitment_for_billing_period numeric,
    savings_plan_recurring_commitment_for_billing_period numeric,
    -- The rest of AWS's CUR 2.0 data dictionary (../shared/docs/cur2-data-dictionary.tsv,
    -- from AWS's Data Exports user guide), optional groups included (the table
    -- option a column needs is noted).  double is numeric here (exact), string
    -- text; the dictionary's product_instanceSKU is product_instancesku (a CUR
    -- 2.0 header is matched lower-cased).
    -- line_item
    line_item_iam_principal        text,   -- INCLUDE_IAM_PRINCIPAL_DATA
    line_item_user_identifier      text,   -- unclear (see cur2-delivery-layout.md)
    -- pricing
    pricing_lease_contract_length  text,
    pricing_offering_class         text,
    pricing_purchase_option        text,
    -- product
    product_comment                text,
    product_fee_code               text,
    product_fee_description        text,
    product_from_location          text,
    product_from_location_type     text,
    product_from_region_code       text,
    product_instance_family        text,
    product_instancesku            text,
    product_location_type          text,
    product_pricing_unit           text,
    product_to_location            text,
    product_to_location_type       text,
    product_to_region_code         text,
    -- reservation
    reservation_availability_zone  text,
    reservation_modification_status text,
    reservation_net_amortized_upfront_cost_for_usage numeric,
    reservation_net_amortized_upfront_fee_for_billing_period numeric,
    reservation_net_effective_cost numeric,
    reservation_net_recurring_fee_for_usage numeric,
    reservation_net_unused_amortized_upfront_fee_for_billing_period numeric,
    reservation_net_unused_recurring_fee numeric,
    reservation_net_upfront_value  numeric,
    reservation_normalized_units_per_reservation text,
    reservation_number_of_reservations text,
    reservation_subscription_id    text,
    reservation_total_reserved_normalized_units text,
    reservation_total_reserved_units text,
    reservation_units_per_reservation text,
    reservation_unused_normalized_unit_quantity numeric,
    reservation_unused_quantity    numeric,
    reservation_upfront_value      numeric,
    -- savings_plan
    savings_plan_end_time          text,
    savings_plan_instance_type_family text,
    savings_plan_net_amortized_upfront_commitment_for_billing_period numeric,
    savings_plan_net_recurring_commitment_for_billing_period numeric,
    savings_plan_net_savings_plan_effective_cost numeric,
    savings_plan_offering_type     text,
    savings_plan_payment_option    text,
    savings_plan_purchase_term     text,
    savings_plan_region            text,
    savings_plan_start_time        text,
    -- discount
    discount_bundled_discount      numeric,
    discount_total_discount        numeric,   -- INCLUDE_MANUAL_DISCOUNT_COMPATIBILITY=FALSE
    -- tags
    tags                           jsonb,
    -- split_line_item
    split_line_item_actual_usage   numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_net_split_cost numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_net_unused_cost numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_parent_resource_id text,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_public_on_demand_split_cost numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_public_on_demand_unused_cost numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_reserved_usage numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_split_cost     numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_split_usage    numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_split_usage_ratio numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    split_line_item_unused_cost    numeric,   -- INCLUDE_SPLIT_COST_ALLOCATION_DATA
    -- cost_analytics
    cost_analytics_billed_cost     numeric,   -- INCLUDE_STANDARDIZED_COST_AND_RATE (AWS writes: INCLUDE STANDARDIZED COST AND RATE)
    cost_analytics_billed_rate     numeric,   -- INCLUDE_STANDARDIZED_COST_AND_RATE (AWS writes: INCLUDE STANDARDIZED COST AND RATE)
    resource_tags                  jsonb,
    cost_category                  jsonb,
    discount                       jsonb,
    product                        jsonb,
    extras                         jsonb
) PARTITION BY LIST (bill_billing_period_start_date);
COMMENT ON TABLE billops.cur_line_item IS
  'CUR line items (legacy CUR and CUR 2.0), partitioned by billing period and payer. Query this table, not its partitions.';
COMMENT ON COLUMN billops.cur_line_item.resource_tags IS
  'Resource tags; legacy resourceTags/<key> columns keep their key exactly as AWS wrote it (e.g. "user:Owner").';
COMMENT ON COLUMN billops.cur_line_item.extras IS
  'Every report column without a typed column here, under its original header: schema drift never loses data.';

-- ===== functions: C entry points, manifests, staging, the atomic swap, sync ==

CREATE FUNCTION billops._s3_list(source_id integer, prefix text, delimiter text DEFAULT NULL)
    RETURNS TABLE (key text, size bigint, etag text, last_modified timestamptz, is_prefix boolean)
    AS 'MODULE_PATHNAME', 'billops_s3_list'
    LANGUAGE C VOLATILE;

CREATE FUNCTION billops._s3_get_text(source_id integer, key text, max_bytes integer DEFAULT 16777216)
    RETURNS text
    AS 'MODULE_PATHNAME', 'billops_s3_get_text'
    LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION billops._ingest_delivery(delivery_id bigint) RETURNS bigint
    AS 'MODULE_PATHNAME', 'billops_ingest_delivery'
    LANGUAGE C VOLATILE STRICT;

-- Before a parallel load: the delivery's staging table, from its first row
-- (the caller commits it, so that the load's background workers can insert).
CREATE FUNCTION billops._prepare_staging(delivery_id bigint) RETURNS boolean
    AS 'MODULE_PATHNAME', 'billops_prepare_staging'
    LANGUAGE C VOLATILE STRICT;

-- Register an S3 location that receives a CUR (legacy) or a CUR 2.0 Data Export.
CREATE FUNCTION billops.create_cur_source(
    name text,
    bucket text,
    report_name text,
    layout text DEFAULT 'legacy_cur',
    prefix text DEFAULT '',
    region text DEFAULT 'us-east-1',
    credentials text DEFAULT 'default',
    endpoint_url text DEFAULT NULL,
    path_style boolean DEFAULT false,
    min_period date DEFAULT NULL,
    replaces text DEFAULT NULL,
    role_arn text DEFAULT NULL,
    role_external_id text DEFAULT NULL,
    role_session_name text DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id integer;
    v_replaces integer;
BEGIN
    IF replaces IS NOT NULL THEN
        SELECT s.source_id INTO v_replaces FROM billops.cur_source s WHERE s.name = replaces;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'CUR source "%" to be replaced does not exist', replaces
                USING ERRCODE = 'undefined_object', HINT = 'See SELECT name FROM billops.cur_source.';
        END IF;
    END IF;
    IF layout NOT IN ('legacy_cur', 'cur2', 'focus', 'focus_files') THEN
        RAISE EXCEPTION 'unknown CUR layout "%"', layout
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''legacy_cur'' for Cost and Usage Reports, ''cur2'' for CUR 2.0 Data Exports, ''focus'' for FOCUS Data Exports or ''focus_files'' for FOCUS files of any provider.';
    END IF;
    IF name IS NULL OR name !~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$' THEN
        RAISE EXCEPTION 'invalid CUR source name "%"', name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use letters, digits, "_", ".", ":" and "-", starting with a letter or digit.';
    END IF;
    IF EXISTS (SELECT 1 FROM billops.cur_source s WHERE s.name = create_cur_source.name) THEN
        RAISE EXCEPTION 'CUR source "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Pick another name, or update billops.cur_source.';
    END IF;
    IF bucket IS NULL OR bucket !~ '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$' THEN
        RAISE EXCEPTION 'invalid S3 bucket name "%"', bucket
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'S3 bucket names are 3-63 characters of lower-case letters, digits, "." and "-".';
    END IF;
    IF report_name IS NULL OR report_name = '' OR report_name ~ '/' THEN
        RAISE EXCEPTION 'invalid report or export name "%"', report_name
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The name of the CUR report or Data Export, without slashes.';
    END IF;
    IF NOT billops.credentials_reference_valid(credentials) THEN
        RAISE EXCEPTION 'invalid AWS credentials reference "%"', credentials
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use ''default'', ''env'' or ''profile:<name>''; keys themselves are never stored in tables.';
    END IF;
    IF endpoint_url IS NOT NULL THEN
        PERFORM billops._check_url(endpoint_url, 'S3 endpoint');
    END IF;
    PERFORM billops._check_role(role_arn, role_external_id, role_session_name);
    INSERT INTO billops.cur_source (name, storage, layout, bucket, prefix, report_name, region,
                                    credentials, endpoint_url, path_style, min_period, replaces_source_id,
                                    role_arn, role_external_id, role_session_name)
    VALUES (name, 's3', layout, bucket, trim(BOTH '/' FROM coalesce(prefix, '')), report_name, region,
            credentials, rtrim(endpoint_url, '/'), path_style, min_period, v_replaces,
            role_arn, role_external_id, role_session_name)
    RETURNING source_id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION billops.create_cur_source(text, text, text, text, text, text, text, text, boolean, date, text, text, text, text) IS
  'Registers a CUR delivery location; returns its source_id. credentials is a reference (''default'', ''env'', ''profile:<name>''); role_arn (with role_external_id, role_session_name) a role assumed on top of it; replaces names the source it takes months over from (a migration to CUR 2.0).';

-- Billing periods present in a source, with the manifest that names their newest delivery.
CREATE FUNCTION billops._discover_periods(target_source_id integer)
RETURNS TABLE (billing_period date, manifest_key text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s billops.cur_source;
    base text;
    o record;
BEGIN
    SELECT * INTO STRICT s FROM billops.cur_source WHERE source_id = target_source_id;
    base := concat_ws('/', nullif(s.prefix, ''), s.report_name) || '/';
    IF s.layout = 'focus_files' THEN
        -- FOCUS files of any provider (another cloud's export copied to S3): every CSV, gzip CSV or
        -- Parquet object under the folder is a delivery of its own; its period is in its rows
        FOR o IN SELECT * FROM billops._s3_list(target_source_id, base) l
                 WHERE NOT l.is_prefix AND l.key ~* '\.(csv|csv\.gz|parquet)$' ORDER BY l.key
        LOOP
            billing_period := NULL;
            manifest_key := o.key;
            RETURN NEXT;
        END LOOP;
    ELSIF s.layout = 'legacy_cur' THEN
        -- <prefix>/<report>/<yyyymmdd-yyyymmdd>/<report>-Manifest.json always names the newest assembly
        FOR o IN SELECT * FROM billops._s3_list(target_source_id, base, '/') l
                 WHERE l.is_prefix AND substr(l.key, length(base) + 1) ~ '^[0-9]{8}-[0-9]{8}/$'
        LOOP
            billing_period := to_date(substr(o.key, length(base) + 1, 8), 'YYYYMMDD');
            manifest_key := o.key || s.report_name || '-Manifest.json';
            RETURN NEXT;
        END LOOP;
    ELSE
        -- Data Exports: <prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/…Manifest.json.  The
        -- manifest's file name is not documented verbatim, so take the newest *Manifest.json there.
        FOR o IN SELECT * FROM billops._s3_list(target_source_id, base || 'metadata/', '/') l
                 WHERE l.is_prefix AND substr(l.key, length(base) + 10) ~ '^BILLING_PERIOD=[0-9]{4}-[0-9]{2}/$'
        LOOP
            billing_period := to_date(substr(o.key, length(base) + 25, 7), 'YYYY-MM');
            SELECT l.key INTO manifest_key FROM billops._s3_list(target_source_id, o.key) l
             WHERE NOT l.is_prefix AND l.key LIKE '%Manifest.json'
             ORDER BY l.last_modified DESC, l.key DESC LIMIT 1;
            IF manifest_key IS NOT NULL THEN
                RETURN NEXT;
            END IF;
        END LOOP;
    END IF;
END
$$;

-- Fetch and validate a manifest.  Field names follow the legacy CUR manifest
-- (assemblyId, reportKeys); CUR 2.0 manifests are read defensively
-- (executionId / dataFiles as s3:// URIs), since AWS does not publish them verbatim.
CREATE FUNCTION billops._read_manifest(target_source_id integer, target_period date, target_manifest_key text,
                                       OUT assembly_id text, OUT report_keys text[],
                                       OUT compression text, OUT manifest jsonb)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s billops.cur_source;
    raw text;
    where_ text;
    k text;
    start_txt text;
    base text;
BEGIN
    SELECT * INTO STRICT s FROM billops.cur_source WHERE source_id = target_source_id;
    base := concat_ws('/', nullif(s.prefix, ''), s.report_name) || '/';
    where_ := format('s3://%s/%s', s.bucket, target_manifest_key);
    raw := billops._s3_get_text(target_source_id, target_manifest_key, 16 * 1024 * 1024);
    BEGIN
        manifest := raw::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'CUR manifest % is not valid JSON', where_
            USING ERRCODE = 'invalid_json_text', DETAIL = SQLERRM,
                  HINT = 'The manifest is damaged or is not a CUR manifest; the previous delivery stays in place.';
    END;
    IF jsonb_typeof(manifest) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'CUR manifest % is not a JSON object', where_ USING ERRCODE = 'data_exception';
    END IF;
    -- every field used has the type AWS writes (a wrong type is refused, never read as text)
    IF jsonb_typeof(manifest->'assemblyId') NOT IN ('string') OR jsonb_typeof(manifest->'executionId') NOT IN ('string') THEN
        RAISE EXCEPTION 'CUR manifest %: "%" is not a string', where_,
                        CASE WHEN jsonb_typeof(manifest->'assemblyId') <> 'string' THEN 'assemblyId' ELSE 'executionId' END
            USING ERRCODE = 'data_exception',
                  DETAIL = format('It is a JSON %s.', coalesce(nullif(jsonb_typeof(manifest->'assemblyId'), 'string'),
                                                               jsonb_typeof(manifest->'executionId'))),
                  HINT = 'The manifest is not as AWS writes it; the previous delivery stays in place.';
    END IF;
    IF manifest ? 'billingPeriod' AND (jsonb_typeof(manifest->'billingPeriod') <> 'object'
                                        OR jsonb_typeof(manifest->'billingPeriod'->'start') IS DISTINCT FROM 'string') THEN
        RAISE EXCEPTION 'CUR manifest %: "billingPeriod" is not an object with a "start" string', where_
            USING ERRCODE = 'data_exception', DETAIL = format('It is %s.', left(manifest->>'billingPeriod', 100)),
                  HINT = 'AWS writes {"start": "20231101T000000.000Z", "end": ...}; the previous delivery stays in place.';
    END IF;
    FOR k IN SELECT f FROM unnest(ARRAY['reportKeys', 'dataFiles']) f
              WHERE manifest ? f AND (jsonb_typeof(manifest->f) <> 'array'
                                      OR EXISTS (SELECT FROM jsonb_array_elements(manifest->f) e WHERE jsonb_typeof(e) <> 'string')) LOOP
        RAISE EXCEPTION 'CUR manifest %: "%" is not an array of strings', where_, k
            USING ERRCODE = 'data_exception', HINT = 'The manifest is not as AWS writes it; the previous delivery stays in place.';
    END LOOP;
    assembly_id := coalesce(manifest->>'assemblyId', manifest->>'executionId');
    IF assembly_id IS NULL OR assembly_id = '' THEN
        RAISE EXCEPTION 'CUR manifest % has no assemblyId', where_
            USING ERRCODE = 'data_exception',
                  DETAIL = format('Top-level keys: %s.', (SELECT string_agg(x, ', ') FROM jsonb_object_keys(manifest) x)),
                  HINT = 'A legacy CUR manifest names its delivery in "assemblyId"; a Data Export in "executionId".';
    END IF;

    IF jsonb_typeof(manifest->'reportKeys') = 'array' AND jsonb_array_length(manifest->'reportKeys') > 0 THEN
        SELECT array_agg(v ORDER BY n) INTO report_keys
          FROM jsonb_array_elements_text(manifest->'reportKeys') WITH ORDINALITY AS t(v, n);
    ELSIF jsonb_typeof(manifest->'dataFiles') = 'array' AND jsonb_array_length(manifest->'dataFiles') > 0 THEN
        SELECT array_agg(CASE WHEN v LIKE 's3://%' THEN regexp_replace(v, '^s3://[^/]+/', '') ELSE v END ORDER BY n)
          INTO report_keys
          FROM jsonb_array_elements_text(manifest->'dataFiles') WITH ORDINALITY AS t(v, n);
        IF EXISTS (SELECT 1 FROM jsonb_array_elements_text(manifest->'dataFiles') v
                    WHERE v LIKE 's3://%' AND v NOT LIKE format('s3://%s/%%', s.bucket)) THEN
            RAISE EXCEPTION 'CUR manifest % names files in another bucket', where_
                USING ERRCODE = 'data_exception', HINT = 'pg_billops reads a delivery from the source''s own bucket only.';
        END IF;
    ELSE
        RAISE EXCEPTION 'CUR manifest % lists no report files', where_
            USING ERRCODE = 'data_exception',
                  DETAIL = 'Expected a non-empty "reportKeys" (or "dataFiles") array of strings.';
    END IF;
    FOREACH k IN ARRAY report_keys LOOP
        IF k IS NULL OR k = '' OR k LIKE '/%' THEN
            RAISE EXCEPTION 'CUR manifest % lists an invalid report key "%"', where_, k USING ERRCODE = 'data_exception';
        END IF;
        -- a delivery is read from its own report's folder: another report's files would become this month's data
        IF left(k, length(base)) <> base OR k ~ '(^|/)\.\.?(/|$)' THEN
            RAISE EXCEPTION 'CUR manifest % lists "%", which is not under the report''s folder', where_, left(k, 200)
                USING ERRCODE = 'data_exception', DETAIL = format('Report files of source "%s" are under s3://%s/%s.', s.name, s.bucket, base),
                      HINT = 'The manifest names another report''s files; the previous delivery stays in place.';
        END IF;
    END LOOP;
    IF cardinality(report_keys) <> (SELECT count(DISTINCT x) FROM unnest(report_keys) x) THEN
        RAISE EXCEPTION 'CUR manifest % lists a report file twice', where_
            USING ERRCODE = 'data_exception',
                  DETAIL = format('Listed more than once: %s.', (SELECT string_agg(DISTINCT x, ', ') FROM unnest(report_keys) x
                                                                   WHERE (SELECT count(*) FROM unnest(report_keys) y WHERE y = x) > 1)),
                  HINT = 'Loading it twice would double its cost; the previous delivery stays in place.';
    END IF;

    -- A legacy manifest names its compression and content type.  AWS's Data Exports
    -- manifest reference lists neither (only executionId, exportArn, columns,
    -- dataFiles, additionalOutputFiles), so there the gzip magic decides ('AUTO')
    -- and a Parquet export is recognised by its files' extension (Data Exports
    -- names them <export>-00001.snappy.parquet).  A legacy report with the Athena
    -- integration is Parquet too ("Format":"Parquet","Compression":"Parquet" in its
    -- report definition); what its manifest then says in "compression" and
    -- "contentType" no AWS page shows, so any of the three signs is taken.
    compression := upper(coalesce(manifest->>'compression', 'AUTO'));
    IF compression = 'PARQUET' OR manifest->>'contentType' ILIKE '%parquet%'
       OR EXISTS (SELECT FROM unnest(report_keys) rk WHERE rk ~* '\.parquet$') THEN
        IF EXISTS (SELECT FROM unnest(report_keys) rk WHERE rk !~* '\.parquet$') THEN
            RAISE EXCEPTION 'CUR delivery % is Parquet but lists files that are not', where_
                USING ERRCODE = 'data_exception',
                      DETAIL = format('Without the .parquet extension: %s.', (SELECT string_agg(rk, ', ') FROM unnest(report_keys) rk WHERE rk !~* '\.parquet$')),
                      HINT = 'A delivery is one format, and its manifest names it; the previous delivery stays in place.';
        END IF;
        compression := 'PARQUET';
    ELSIF compression NOT IN ('GZIP', 'NONE', 'TEXT_OR_CSV', 'AUTO') OR coalesce(manifest->>'contentType', 'text/csv') NOT LIKE '%csv%' THEN
        RAISE EXCEPTION 'CUR delivery % is %, which pg_billops cannot load', where_,
                        coalesce(manifest->>'contentType', '') || ' ' || compression
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Configure the report or export as gzip-compressed CSV or as Parquet.';
    END IF;

    start_txt := manifest->'billingPeriod'->>'start';
    IF start_txt IS NOT NULL AND target_period IS NOT NULL
       AND left(regexp_replace(start_txt, '[^0-9]', '', 'g'), 8) <> to_char(target_period, 'YYYYMMDD') THEN
        RAISE EXCEPTION 'CUR manifest % is for billing period %, but sits in the folder of %',
                        where_, start_txt, to_char(target_period, 'YYYY-MM')
            USING ERRCODE = 'data_exception';
    END IF;
END
$$;

-- A staging table: like the partitioned table it will join, with the CHECK
-- constraint of the partition bound it will be attached under, so ATTACH
-- skips its scan.  (The CUR's and its rollup's, and FOCUS's.)
CREATE FUNCTION billops._create_staging(parent text, table_name text, bound text) RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('CREATE TABLE billops.%I (LIKE %s INCLUDING DEFAULTS INCLUDING STORAGE INCLUDING COMPRESSION)', table_name, parent);
    EXECUTE format('ALTER TABLE billops.%I ADD CONSTRAINT %I CHECK (%s)', table_name, left(table_name, 55) || '_bound', bound);
    RETURN format('billops.%I', table_name)::regclass;
END
$$;

-- The staging table for one (period, payer) of a delivery.  Called by the C
-- loader the first time a row of that period and payer appears: it creates
-- the table, or returns the one billops._prepare_staging created before a
-- parallel load.  The CHECK constraint matches the partition bound, so
-- ATTACH skips its scan.
CREATE FUNCTION billops._staging_table(target_delivery_id bigint, target_period date, target_payer text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text := format('cur_line_item_%s_%s_d%s', to_char(target_period, 'YYYYMM'),
                     CASE WHEN target_payer ~ '^[0-9A-Za-z]{1,20}$' THEN target_payer ELSE left(md5(target_payer), 12) END,
                     target_delivery_id);
    existing regclass;
BEGIN
    -- its name is its delivery's, period's and payer's: one that exists was made for this route
    existing := to_regclass(format('billops.%I', t));
    IF existing IS NOT NULL THEN
        RETURN existing;
    END IF;
    INSERT INTO billops.cur_delivery_partition (delivery_id, billing_period, payer_account_id, staging_table, daily_table)
    VALUES (target_delivery_id, target_period, target_payer,
            billops._create_staging('billops.cur_line_item', t,
                                    format('bill_billing_period_start_date = %L::date AND bill_payer_account_id = %L', target_period, target_payer)),
            -- its rows' daily rollup, filled by the same loader
            billops._create_staging('billops.cur_daily', replace(t, 'cur_line_item_', 'cur_daily_'),
                                    format('billing_period = %L::date AND payer_account_id = %L', target_period, target_payer)));
    RETURN format('billops.%I', t)::regclass;
END
$$;

-- The line-item partition holding one billing period (the parent of its payer leaves).
CREATE FUNCTION billops._period_partition(target_period date) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT pg_catalog.format('billops.%I', 'cur_line_item_' || pg_catalog.to_char(target_period, 'YYYYMM')) $$;

-- Detach and drop a leaf that no longer holds the visible delivery (CUR's and FOCUS's).
CREATE FUNCTION billops._retire_leaf(parent_table text, target_table text) RETURNS void
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent_table, target_table);
    EXECUTE format('DROP TABLE %s', target_table);
END
$$;

-- Swap a loaded delivery in.  Runs at the very end of the load transaction:
-- the locks it takes (ACCESS EXCLUSIVE on the period's partition only) are
-- held for milliseconds, and readers see the old rows or the new, never both.
CREATE FUNCTION billops._swap_delivery(target_delivery_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d billops.cur_delivery;
    p record;
    old record;
    period_part text;
    daily_part text;
    other_source text;
BEGIN
    SELECT * INTO STRICT d FROM billops.cur_delivery WHERE delivery_id = target_delivery_id;

    -- refuse before touching anything: a (period, payer) belongs to one source,
    -- so a month delivered both as legacy CUR and as CUR 2.0 is never summed
    -- twice.  The one exception is a migration: a source that replaces
    -- another (cur_source.replaces_source_id) takes the month over.
    FOR p IN SELECT * FROM billops.cur_delivery_partition WHERE delivery_id = target_delivery_id LOOP
        SELECT s.name INTO other_source
          FROM billops.cur_partition cp JOIN billops.cur_source s USING (source_id)
         WHERE cp.billing_period = p.billing_period AND cp.payer_account_id = p.payer_account_id
           AND cp.source_id <> d.source_id
           AND cp.source_id IS DISTINCT FROM (SELECT replaces_source_id FROM billops.cur_source WHERE source_id = d.source_id);
        IF FOUND THEN
            RAISE EXCEPTION 'billing period % of payer % is already loaded from source "%"',
                            to_char(p.billing_period, 'YYYY-MM'), p.payer_account_id, other_source
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Two sources cannot both own the line items of one payer and period: their costs would be counted twice.',
                      HINT = CASE WHEN EXISTS (SELECT FROM billops.cur_source WHERE name = other_source AND replaces_source_id = d.source_id)
                                  THEN format('Source "%s" replaces this one (a migration); this month is read from it.', other_source)
                                  ELSE format('Load this payer from one source only. When migrating to CUR 2.0, mark the new source: '
                                              'UPDATE billops.cur_source SET replaces_source_id = (SELECT source_id FROM billops.cur_source WHERE name = %L) '
                                              'WHERE name = %L.', other_source,
                                              (SELECT name FROM billops.cur_source WHERE source_id = d.source_id)) END;
        END IF;
    END LOOP;

    PERFORM set_config('lock_timeout', current_setting('billops.swap_lock_timeout'), true);

    FOR p IN SELECT * FROM billops.cur_delivery_partition WHERE delivery_id = target_delivery_id
             ORDER BY billing_period, payer_account_id LOOP
        period_part := billops._period_partition(p.billing_period);
        daily_part := format('billops.%I', 'cur_daily_' || to_char(p.billing_period, 'YYYYMM'));
        IF to_regclass(period_part) IS NULL THEN
            EXECUTE format('CREATE TABLE %s PARTITION OF billops.cur_line_item FOR VALUES IN (%L) PARTITION BY LIST (bill_payer_account_id)',
                           period_part, p.billing_period);
        END IF;
        IF to_regclass(daily_part) IS NULL THEN
            EXECUTE format('CREATE TABLE %s PARTITION OF billops.cur_daily FOR VALUES IN (%L) PARTITION BY LIST (payer_account_id)',
                           daily_part, p.billing_period);
        END IF;
        SELECT * INTO old FROM billops.cur_partition
         WHERE billing_period = p.billing_period AND payer_account_id = p.payer_account_id;
        IF FOUND THEN
            PERFORM billops._retire_leaf(period_part, old.table_name);
            PERFORM billops._retire_leaf(daily_part, old.daily_table);
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%L)',
                       period_part, p.staging_table, p.payer_account_id);
        -- the month's rollup, from the same delivery, in the same transaction
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%L)',
                       daily_part, p.daily_table, p.payer_account_id);
        PERFORM billops._refresh_monthly(p.billing_period, p.payer_account_id, p.daily_table, target_delivery_id);
        INSERT INTO billops.cur_partition AS cp (billing_period, payer_account_id, source_id, delivery_id, table_name, daily_table)
        VALUES (p.billing_period, p.payer_account_id, d.source_id, target_delivery_id, p.staging_table, p.daily_table)
        ON CONFLICT (billing_period, payer_account_id) DO UPDATE
           SET source_id = excluded.source_id, delivery_id = excluded.delivery_id,
               table_name = excluded.table_name, daily_table = excluded.daily_table, swapped_at = clock_timestamp();
    END LOOP;

    -- A delivery is one payer's month (the loader refuses rows of another
    -- payer or month), so the leaf it replaced above is all it replaces: the
    -- source's other payers and months stay as they are.
    UPDATE billops.cur_delivery cd SET status = 'superseded'
     WHERE cd.source_id IN (d.source_id, (SELECT replaces_source_id FROM billops.cur_source WHERE source_id = d.source_id))
       AND cd.status = 'loaded' AND cd.delivery_id <> target_delivery_id
       AND NOT EXISTS (SELECT 1 FROM billops.cur_partition cp WHERE cp.delivery_id = cd.delivery_id);
    -- Athena's legacy table gets a column for each new tag / category / attribute key
    PERFORM billops._athena_cur_refresh();
END
$$;

-- Drop the staging tables of a delivery that was not swapped in: a parallel
-- load's (created and committed before the load, with whatever its workers
-- committed into them).  Never a table that is attached.
CREATE FUNCTION billops._drop_staging(target_delivery_id bigint) RETURNS void
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p record;
BEGIN
    FOR p IN DELETE FROM billops.cur_delivery_partition dp
              WHERE dp.delivery_id = target_delivery_id
                AND NOT EXISTS (SELECT FROM pg_inherits i WHERE i.inhrelid = dp.staging_table)
             RETURNING staging_table, daily_table LOOP
        EXECUTE format('DROP TABLE IF EXISTS %s', p.staging_table);
        IF p.daily_table IS NOT NULL THEN
            EXECUTE format('DROP TABLE IF EXISTS %s', p.daily_table);
        END IF;
    END LOOP;
    DELETE FROM billops.cur_delivery_map_key WHERE delivery_id = target_delivery_id;
END
$$;

-- What of an error's context locates the input (file, row, column; a JSON
-- fragment), without the PL/pgSQL frames and statements that are our own
-- internals: that is what a delivery's history shows an analyst.
CREATE FUNCTION billops._input_location(error_context_text text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT nullif(string_agg(l, E'\n' ORDER BY n), '')
      FROM regexp_split_to_table(error_context_text, E'\n') WITH ORDINALITY AS t(l, n)
     WHERE l !~ '^(PL/pgSQL function |SQL statement |SQL function )'
$$;

-- Load a registered delivery (files already listed) and swap it in; one transaction.
CREATE FUNCTION billops._load_and_swap(target_delivery_id bigint)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    t1 timestamptz;
    n bigint;
    dl billops.cur_delivery;
    dup bigint;
    stg text;
BEGIN
    -- one load per source at a time (a pg_cron run and a manual CALL may overlap);
    -- whoever waited re-checks, so the same assembly is never loaded twice
    SELECT * INTO STRICT dl FROM billops.cur_delivery WHERE delivery_id = target_delivery_id;
    PERFORM pg_advisory_xact_lock(1650812930, dl.source_id);
    SELECT delivery_id INTO dup FROM billops.cur_delivery x
     WHERE x.source_id = dl.source_id AND x.billing_period IS NOT DISTINCT FROM dl.billing_period
       AND x.manifest_key IS NOT DISTINCT FROM dl.manifest_key
       AND x.assembly_id = dl.assembly_id AND x.status = 'loaded' AND x.delivery_id <> target_delivery_id
       AND x.finished_at > dl.started_at;
    IF dup IS NOT NULL THEN
        UPDATE billops.cur_delivery SET status = 'aborted', finished_at = clock_timestamp(),
               error_message = format('assembly already loaded by a concurrent sync (delivery %s)', dup)
         WHERE delivery_id = target_delivery_id;
        PERFORM billops._drop_staging(target_delivery_id);
        RETURN 0;
    END IF;
    n := billops._ingest_delivery(target_delivery_id);
    -- statistics before the swap, so BI queries plan well at once; this is
    -- load time, not swap time (no lock on a live partition is held yet)
    IF current_setting('billops.analyze_after_load')::boolean THEN
        FOR stg IN SELECT staging_table FROM billops.cur_delivery_partition WHERE delivery_id = target_delivery_id LOOP
            EXECUTE format('ANALYZE %s', stg);
        END LOOP;
    END IF;
    t1 := clock_timestamp();
    IF (SELECT layout FROM billops.cur_source WHERE source_id = dl.source_id) IN ('focus', 'focus_files') THEN
        PERFORM billops._swap_focus_delivery(target_delivery_id);
    ELSE
        PERFORM billops._swap_delivery(target_delivery_id);
    END IF;
    UPDATE billops.cur_delivery d
       SET status = 'loaded',
           finished_at = clock_timestamp(),
           load_ms = extract(epoch FROM t1 - t0) * 1000,
           swap_ms = extract(epoch FROM clock_timestamp() - t1) * 1000,
           rows_loaded = n,
           file_count = f.files,
           bytes_read = f.bytes_read,
           uncompressed_bytes = f.uncompressed,
           billing_period = coalesce(d.billing_period,
                                     (SELECT min(billing_period) FROM billops.cur_delivery_partition
                                       WHERE delivery_id = target_delivery_id))
      FROM (SELECT count(*) AS files, sum(bytes_read) AS bytes_read, sum(uncompressed_bytes) AS uncompressed
              FROM billops.cur_delivery_file WHERE delivery_id = target_delivery_id) f
     WHERE d.delivery_id = target_delivery_id;
    RETURN n;
END
$$;

-- Register the files of a delivery with the sizes and ETags S3 lists for them.
-- A manifest that names a missing file fails here, before anything streams.
CREATE FUNCTION billops._register_files(target_delivery_id bigint, target_source_id integer, keys_to_register text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    missing text;
    listed jsonb;
    s billops.cur_source;
BEGIN
    SELECT * INTO STRICT s FROM billops.cur_source WHERE source_id = target_source_id;
    SELECT coalesce(jsonb_object_agg(l.key, jsonb_build_array(l.size, l.etag)), '{}')
      INTO listed
      FROM (SELECT DISTINCT regexp_replace(k, '[^/]*$', '') AS dir FROM unnest(keys_to_register) k) dirs,
           LATERAL billops._s3_list(target_source_id, dirs.dir) l
     WHERE NOT l.is_prefix;
    SELECT k INTO missing FROM unnest(keys_to_register) k WHERE NOT listed ? k LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'CUR manifest names a report file that is not in the bucket: s3://%/%', s.bucket, missing
            USING ERRCODE = 'undefined_file',
                  HINT = 'The delivery is incomplete or the manifest is wrong; the previous delivery stays in place.';
    END IF;
    INSERT INTO billops.cur_delivery_file (delivery_id, file_no, object_key, expected_bytes, etag)
    SELECT target_delivery_id, n, k, (listed->k->>0)::bigint, listed->k->>1
      FROM unnest(keys_to_register) WITH ORDINALITY AS t(k, n);
END
$$;

-- Sync a source: for every billing period, find the newest delivery through its
-- manifest and, if its assembly is new, load and swap it in.  A procedure, so
-- that each delivery commits on its own and failures are recorded in the
-- history.  Counts and the first error come back in the INOUT parameters
-- (sync_cur_source raises it; the scheduler records it and goes on).
CREATE PROCEDURE billops._sync_source(source_name text, only_period date, force boolean,
                                      INOUT n_loaded integer DEFAULT 0, INOUT n_failed integer DEFAULT 0,
                                      INOUT n_current integer DEFAULT 0, INOUT first_error jsonb DEFAULT NULL)
LANGUAGE plpgsql
AS $$
DECLARE
    s billops.cur_source;
    period_dates date[];
    period_keys text[];
    i integer;
    per record;
    man record;
    v_delivery bigint;
    v_assembly text;
    e_state text; e_msg text; e_detail text; e_hint text; e_ctx text;
    first_state text; first_msg text; first_detail text; first_hint text;
BEGIN
    n_loaded := 0; n_failed := 0; n_current := 0; first_error := NULL;
    SELECT * INTO s FROM billops.cur_source WHERE name = source_name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'CUR source "%" does not exist', source_name
            USING ERRCODE = 'undefined_object', HINT = 'See SELECT name FROM billops.cur_source.';
    END IF;
    IF s.storage <> 's3' THEN
        RAISE EXCEPTION 'CUR source "%" is not an S3 source', source_name
            USING ERRCODE = 'wrong_object_type', HINT = 'Load local files with billops.load_cur_file().';
    END IF;
    IF NOT s.enabled THEN
        RAISE NOTICE 'billops: source "%" is disabled; nothing to do', source_name;
        RETURN;
    END IF;

    -- deliveries left "running" by sessions that died are not running any more
    UPDATE billops.cur_delivery d SET status = 'aborted', finished_at = clock_timestamp(),
           error_message = 'the loading session ended before the delivery finished'
     WHERE d.source_id = s.source_id AND d.status = 'running'
       AND (d.backend_pid = pg_catalog.pg_backend_pid()
            OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a
                            WHERE a.pid = d.backend_pid AND a.backend_start <= d.started_at));
    -- and the staging tables a parallel load of theirs had committed
    PERFORM billops._drop_staging(d.delivery_id)
       FROM billops.cur_delivery d
      WHERE d.source_id = s.source_id AND d.status IN ('aborted', 'failed')
        AND EXISTS (SELECT FROM billops.cur_delivery_partition p WHERE p.delivery_id = d.delivery_id);
    COMMIT;

    -- listing S3 can fail as a whole (credentials, network): that is the source's error
    BEGIN
        SELECT coalesce(array_agg(d.billing_period ORDER BY d.billing_period), '{}'),
               coalesce(array_agg(d.manifest_key ORDER BY d.billing_period), '{}')
          INTO period_dates, period_keys
          FROM billops._discover_periods(s.source_id) d;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                                e_hint = PG_EXCEPTION_HINT;
        n_failed := 1;
        first_error := jsonb_build_object('sqlstate', e_state, 'message', e_msg,
                                          'detail', nullif(e_detail, ''), 'hint', nullif(e_hint, ''));
        RETURN;
    END;

    FOR i IN 1 .. cardinality(period_dates) LOOP
        SELECT period_dates[i] AS billing_period, period_keys[i] AS manifest_key INTO per;
        CONTINUE WHEN only_period IS NOT NULL AND per.billing_period <> date_trunc('month', only_period)::date;
        CONTINUE WHEN s.min_period IS NOT NULL AND per.billing_period < s.min_period;
        -- a month the replacing source (a migration) holds is read from it, not downloaded again here
        IF EXISTS (SELECT FROM billops.cur_partition cp JOIN billops.cur_source r ON r.source_id = cp.source_id
                    WHERE r.replaces_source_id = s.source_id AND cp.billing_period = per.billing_period) THEN
            RAISE NOTICE 'billops: % %: loaded from source "%", which replaces this one', source_name,
                         to_char(per.billing_period, 'YYYY-MM'),
                         (SELECT string_agg(DISTINCT r.name, ', ') FROM billops.cur_partition cp JOIN billops.cur_source r ON r.source_id = cp.source_id
                           WHERE r.replaces_source_id = s.source_id AND cp.billing_period = per.billing_period);
            n_current := n_current + 1;
            CONTINUE;
        END IF;
        v_delivery := NULL;
        v_assembly := NULL;
        e_state := NULL;

        -- 1. read the manifest and register the delivery (commits, so it shows as running)
        BEGIN
            IF s.layout = 'focus_files' THEN
                -- an object is its own manifest: its ETag names the version, a rewrite is a new one
                SELECT l.etag AS assembly_id, ARRAY[l.key] AS report_keys,
                       CASE WHEN l.key ~* '\.parquet$' THEN 'PARQUET' ELSE 'AUTO' END AS compression,
                       jsonb_build_object('key', l.key, 'etag', l.etag, 'size', l.size) AS manifest
                  INTO man FROM billops._s3_list(s.source_id, per.manifest_key) l WHERE l.key = per.manifest_key;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'FOCUS file s3://%/% is no longer in the bucket', s.bucket, per.manifest_key
                        USING ERRCODE = 'undefined_file', HINT = 'It was removed after the listing; the next sync will not see it.';
                END IF;
            ELSE
                SELECT * INTO man FROM billops._read_manifest(s.source_id, per.billing_period, per.manifest_key);
            END IF;
            v_assembly := man.assembly_id;
            IF NOT force AND EXISTS (SELECT 1 FROM billops.cur_delivery d
                                      WHERE d.source_id = s.source_id AND d.assembly_id = man.assembly_id
                                        AND CASE WHEN s.layout = 'focus_files'
                                                 -- an object's version is read once, even after later
                                                 -- objects replaced the periods it held
                                                 THEN d.manifest_key = per.manifest_key AND d.status IN ('loaded', 'superseded')
                                                 ELSE d.billing_period = per.billing_period AND d.status = 'loaded' END) THEN
                RAISE NOTICE 'billops: % %: assembly % is already loaded', source_name,
                             coalesce(to_char(per.billing_period, 'YYYY-MM'), per.manifest_key), man.assembly_id;
                n_current := n_current + 1;
                CONTINUE;
            END IF;
            INSERT INTO billops.cur_delivery (source_id, billing_period, assembly_id, manifest_key, manifest, compression)
            VALUES (s.source_id, per.billing_period, man.assembly_id, per.manifest_key, man.manifest, man.compression)
            RETURNING delivery_id INTO v_delivery;
            PERFORM billops._register_files(v_delivery, s.source_id, man.report_keys);
            UPDATE billops.cur_delivery SET file_count = cardinality(man.report_keys) WHERE delivery_id = v_delivery;
            -- files loaded in parallel go into a staging table committed here, before the load:
            -- the background workers that load them see only what is committed.  (Not for Parquet:
            -- its first row is a read of a whole row group, which the load would read again.)
            IF cardinality(man.report_keys) > 1 AND s.layout <> 'focus_files' AND man.compression IS DISTINCT FROM 'PARQUET'
               AND current_setting('billops.max_load_workers')::integer <> 0 THEN
                PERFORM billops._prepare_staging(v_delivery);
            END IF;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                    e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT,
                                    e_ctx = PG_EXCEPTION_CONTEXT;
            e_ctx := billops._input_location(e_ctx);
            v_delivery := NULL;
        END;
        IF e_state IS NOT NULL THEN
            INSERT INTO billops.cur_delivery (source_id, billing_period, assembly_id, manifest_key, status,
                                              finished_at, error_sqlstate, error_message, error_detail, error_hint, error_context)
            VALUES (s.source_id, per.billing_period, v_assembly, per.manifest_key, 'failed',
                    clock_timestamp(), e_state, e_msg, nullif(e_detail, ''), nullif(e_hint, ''), e_ctx);
        END IF;
        COMMIT;

        -- 2. stream, load and swap, in one transaction of its own
        IF v_delivery IS NOT NULL THEN
            RAISE NOTICE 'billops: % %: loading assembly % (delivery %)', source_name,
                         coalesce(to_char(per.billing_period, 'YYYY-MM'), per.manifest_key), v_assembly, v_delivery;
            BEGIN
                PERFORM billops._load_and_swap(v_delivery);
                n_loaded := n_loaded + 1;
            -- a cancel is recorded too (then re-raised below): the history never lies "running"
            EXCEPTION WHEN OTHERS OR query_canceled THEN
                GET STACKED DIAGNOSTICS e_state = RETURNED_SQLSTATE, e_msg = MESSAGE_TEXT,
                                        e_detail = PG_EXCEPTION_DETAIL, e_hint = PG_EXCEPTION_HINT,
                                        e_ctx = PG_EXCEPTION_CONTEXT;
                e_ctx := billops._input_location(e_ctx);
                UPDATE billops.cur_delivery
                   SET status = 'failed', finished_at = clock_timestamp(), error_sqlstate = e_state,
                       error_message = e_msg, error_detail = nullif(e_detail, ''),
                       error_hint = nullif(e_hint, ''), error_context = e_ctx
                 WHERE delivery_id = v_delivery;
                -- a parallel load's staging table was committed before it: it goes, with what it holds
                PERFORM billops._drop_staging(v_delivery);
            END;
            COMMIT;
            IF e_state = '57014' THEN
                RAISE EXCEPTION USING ERRCODE = e_state, MESSAGE = e_msg,
                    DETAIL = 'The load was cancelled; the previous delivery stays in place.';
            END IF;
        END IF;

        IF e_state IS NOT NULL THEN
            n_failed := n_failed + 1;
            RAISE WARNING 'billops: % %: delivery failed: %', source_name,
                          coalesce(to_char(per.billing_period, 'YYYY-MM'), per.manifest_key), e_msg;
            IF first_state IS NULL THEN
                first_state := e_state; first_msg := e_msg; first_detail := e_detail; first_hint := e_hint;
            END IF;
        END IF;
    END LOOP;

    UPDATE billops.cur_source SET last_sync_at = clock_timestamp() WHERE source_id = s.source_id;
    COMMIT;
    RAISE NOTICE 'billops: % synced: % loaded, % already current, % failed', source_name, n_loaded, n_current, n_failed;

    IF first_state IS NOT NULL THEN
        first_error := jsonb_build_object('sqlstate', first_state, 'message', first_msg,
            'detail', concat_ws(' ', nullif(first_detail, ''),
                                format('%s of the source''s deliveries failed; data already loaded is unchanged (see billops.cur_delivery).', n_failed)),
            'hint', coalesce(nullif(first_hint, ''), 'See billops.cur_delivery for each failure.'));
    END IF;
END
$$;

CREATE PROCEDURE billops.sync_cur_source(source_name text, only_period date DEFAULT NULL, force boolean DEFAULT false)
LANGUAGE plpgsql
AS $$
DECLARE
    loaded integer; failed integer; current integer; err jsonb;
BEGIN
    CALL billops._sync_source(source_name, only_period, force, loaded, failed, current, err);
    IF err IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = err->>'sqlstate', MESSAGE = err->>'message',
              DETAIL = coalesce(err->>'detail', ''), HINT = coalesce(err->>'hint', '');
    END IF;
END
$$;
COMMENT ON PROCEDURE billops.sync_cur_source(text, date, boolean) IS
  'Loads every new CUR delivery of a source (one transaction per billing period; same assembly twice is a no-op). force reloads current assemblies.';

-- Load a CUR file (CSV, plain or gzip, or Parquet) from the database server's file system.
-- Admins only (superuser or pg_read_server_files).  Atomic: on any error
-- nothing changes, and nothing is recorded.
CREATE FUNCTION billops.load_cur_file(path text, source_name text DEFAULT 'local-files',
                                      assembly_id text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_source integer;
    v_delivery bigint;
BEGIN
    IF path IS NULL OR source_name IS NULL THEN
        RAISE EXCEPTION 'argument % of billops.load_cur_file must not be NULL', CASE WHEN path IS NULL THEN 'path' ELSE 'source_name' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT source_id INTO v_source FROM billops.cur_source WHERE name = source_name;
    IF NOT FOUND THEN
        INSERT INTO billops.cur_source (name, storage, layout) VALUES (source_name, 'file', 'auto')
        RETURNING source_id INTO v_source;
    ELSIF (SELECT storage FROM billops.cur_source WHERE source_id = v_source) <> 'file' THEN
        RAISE EXCEPTION 'CUR source "%" is an S3 source', source_name
            USING ERRCODE = 'wrong_object_type', HINT = 'Use billops.sync_cur_source() for S3 sources.';
    END IF;
    IF assembly_id IS NOT NULL THEN
        SELECT d.delivery_id INTO v_delivery FROM billops.cur_delivery d
         WHERE d.source_id = v_source AND d.assembly_id = load_cur_file.assembly_id AND d.status = 'loaded';
        IF FOUND THEN
            RAISE NOTICE 'billops: assembly % is already loaded (delivery %)', assembly_id, v_delivery;
            RETURN v_delivery;
        END IF;
    END IF;
    INSERT INTO billops.cur_delivery (source_id, assembly_id, manifest_key, compression, file_count)
    VALUES (v_source, assembly_id, path, 'auto', 1)
    RETURNING delivery_id INTO v_delivery;
    INSERT INTO billops.cur_delivery_file (delivery_id, file_no, object_key) VALUES (v_delivery, 1, path);
    PERFORM billops._load_and_swap(v_delivery);
    RETURN v_delivery;
END
$$;
COMMENT ON FUNCTION billops.load_cur_file(text, text, text) IS
  'Loads a CUR file (CSV, plain or gzip, or Parquet) of one payer''s month from the server''s file system, replacing that month atomically. Returns the delivery id.';

-- One spelling for a tag key, whichever layout delivered it: AWS's own rule for
-- the column names of a CUR in Athena (AWS CUR user guide, "Running Amazon
-- Athena queries", Column names): an underscore before each upper-case
-- letter, lower case, every other non-alphanumeric character an underscore,
-- runs of underscores collapsed, none at either end.  So legacy CUR's
-- "user:CostCenter" and CUR 2.0's "user_cost_center" are the same key.  (The
-- guide's last rule, shortening names over Athena's length limit, is for
-- column names and not applied.)  Like Athena, it can merge keys that differ
-- only in case or punctuation.  The loader spells CUR 2.0 column names from
-- legacy headers by the same rule (cur_columns.c).
CREATE FUNCTION billops.tag_key_canonical(key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT trim(BOTH '_' FROM
                regexp_replace(regexp_replace(lower(regexp_replace(key, '([A-Z])', '_\1', 'g')),
                                              '[^a-z0-9]', '_', 'g'),
                               '_+', '_', 'g'))
$$;
COMMENT ON FUNCTION billops.tag_key_canonical(text) IS
  'A tag key as Athena spells CUR column names (user:CostCenter -> user_cost_center): one spelling for legacy CUR and CUR 2.0 keys.';

-- ===== views: for analysts, BI tools and DBAs ================================

-- Per payer and period: which delivery is visible, and whether AWS has
-- invoiced it yet (bill_invoice_id stays empty until the invoice is issued).
CREATE VIEW billops.cur_period_status AS
SELECT cp.billing_period,
       cp.payer_account_id,
       s.name AS source_name,
       cp.delivery_id,
       d.assembly_id,
       cp.swapped_at AS loaded_at,
       dp.rows_loaded AS line_items,
       dp.rows_with_invoice_id AS invoiced_line_items,
       dp.invoice_ids,
       CASE WHEN coalesce(dp.rows_with_invoice_id, 0) = 0 THEN 'preliminary'
            WHEN dp.rows_with_invoice_id = dp.rows_loaded THEN 'final'
            ELSE 'partially_invoiced' END AS invoice_state,
       latest.status AS latest_attempt_status,
       latest.error_message AS latest_attempt_error
  FROM billops.cur_partition cp
  JOIN billops.cur_source s USING (source_id)
  JOIN billops.cur_delivery d USING (delivery_id)
  LEFT JOIN billops.cur_delivery_partition dp
         ON dp.delivery_id = cp.delivery_id AND dp.billing_period = cp.billing_period
        AND dp.payer_account_id = cp.payer_account_id
  LEFT JOIN LATERAL (SELECT x.status, x.error_message FROM billops.cur_delivery x
                      WHERE x.source_id = cp.source_id AND x.billing_period = cp.billing_period
                      ORDER BY x.started_at DESC LIMIT 1) latest ON true;
COMMENT ON VIEW billops.cur_period_status IS
  'Visible delivery per billing period and payer, preliminary vs final (from bill_invoice_id), and the latest attempt.';

-- What a running sync is doing right now.  Built on COPY's progress report,
-- to which the loader adds the delivery, the file number and compressed bytes.
CREATE VIEW billops.cur_sync_progress AS
SELECT p.pid,
       d.delivery_id,
       s.name AS source_name,
       d.billing_period,
       d.assembly_id,
       p.param8 AS file_no,
       p.param9 AS file_count,
       f.object_key AS current_file,
       p.param14 AS file_bytes_read,
       p.param15 AS file_bytes_total,
       p.param1 AS file_uncompressed_bytes,
       p.param3 AS file_rows,
       p.param18 AS delivery_rows,
       p.param19 AS delivery_bytes_read,
       clock_timestamp() - d.started_at AS elapsed
  FROM pg_catalog.pg_stat_get_progress_info('COPY') p
  JOIN billops.cur_delivery d ON d.delivery_id = p.param7
  JOIN billops.cur_source s USING (source_id)
  LEFT JOIN billops.cur_delivery_file f ON f.delivery_id = d.delivery_id AND f.file_no = p.param8
 WHERE p.datid = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database());
COMMENT ON VIEW billops.cur_sync_progress IS
  'Deliveries being loaded now: file n of m, bytes and rows so far (one row per loading backend).';

-- The service's name is product['product_name'] in both layouts: CUR 2.0
-- delivers it in the product map, and a legacy product/ProductName column
-- lands under the same key (cur_columns.c).
CREATE FUNCTION billops._service_of(product jsonb, product_code text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(product->>'product_name', ''), nullif(product_code, ''), '(no service)')
$$;

-- Spend per payer, period, usage account and service.  amortized_cost follows
-- AWS's CUR query library (RI and Savings Plan effective cost, fees spread).
-- A line item's amortized cost, by AWS's formula in its CUR query library (the
-- queries test/athena/query-pack.json translates): commitments' purchases are
-- spread over the usage they cover, and what stays unused is the fee rows'.
-- Savings Plans: covered usage at its Savings Plan effective cost, the
-- recurring fee's unused commitment (total commitment to date less used), the
-- negation and the upfront fee 0.  Reservations: reserved usage at its
-- effective cost (amortized upfront plus recurring fee for the usage), the RI
-- fee's unused parts (unused amortized upfront fee plus unused recurring fee),
-- an RI's upfront fee (a Fee naming a reservation) 0.  Anything else: its
-- unblended cost.  One SQL expression, so the planner inlines it.
CREATE FUNCTION billops._amortized_cost(line_item_type text, unblended_cost numeric, sp_effective_cost numeric,
                                        sp_total_commitment_to_date numeric, sp_used_commitment numeric,
                                        ri_effective_cost numeric, ri_unused_amortized_upfront_fee numeric,
                                        ri_unused_recurring_fee numeric, reservation_arn text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE line_item_type
             WHEN 'SavingsPlanCoveredUsage' THEN sp_effective_cost
             WHEN 'SavingsPlanRecurringFee' THEN sp_total_commitment_to_date - sp_used_commitment
             WHEN 'SavingsPlanNegation' THEN 0
             WHEN 'SavingsPlanUpfrontFee' THEN 0
             WHEN 'DiscountedUsage' THEN ri_effective_cost
             WHEN 'RIFee' THEN coalesce(ri_unused_amortized_upfront_fee, 0) + coalesce(ri_unused_recurring_fee, 0)
             WHEN 'Fee' THEN CASE WHEN coalesce(reservation_arn, '') <> '' THEN 0 ELSE unblended_cost END
             ELSE unblended_cost END
$$;


-- who pointed pg_billops at which bucket with which credentials reference
SELECT billops._audit_tables(ARRAY['cur_source'], ARRAY['source_id']);
