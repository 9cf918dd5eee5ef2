-- ---------------------------------------------------------------------------
-- FOCUS: the ingest of FOCUS exports (tables, the swap, billops.load_focus_file),
-- then the FOCUS 1.2 views over the CUR (billops._focus_cur) and over both
-- (billops.focus_cost).
--
-- A FOCUS export (AWS Data Exports' FOCUS_1_0_AWS / FOCUS_1_2_AWS table, or any
-- provider's FOCUS file) is a delivery of a billops.cur_source whose layout is
-- 'focus': synced from S3 like a CUR 2.0 export (the Data Exports layout:
-- manifests, BILLING_PERIOD= partitions), or loaded from a local file with
-- billops.load_focus_file.  Either way its files stream through the CUR's C
-- loader (src/cur_load.c: gzip or plain CSV, or Parquet, through COPY's parser)
-- into one staging table per (billing period, billing account), which the swap
-- attaches in place of what was visible for that period and account: atomic,
-- and a file that fails changes nothing.  Columns are matched by their FOCUS
-- names (src/cur_columns.c); any other column (AWS's x_ columns not typed here,
-- a provider's extra "Id") is kept in extras.  What real exports do, and what
-- the loader does about it:
--   * NULL written as the bare word NULL          -> SQL NULL
--   * empty strings ("")                          -> SQL NULL (FOCUS gives an
--     empty string no meaning)
--   * "Usage-based" next to "Usage-Based"         -> the specification's spelling
--   * timestamps without a zone ("2024-09-18 22:00:00") -> UTC, as FOCUS requires
-- ---------------------------------------------------------------------------
CREATE TABLE billops.focus_line_item (
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
    "x_Discounts"               jsonb,
    "x_Operation"               text,
    "x_ServiceCode"             text,
    "x_UsageType"               text,
    extras                      jsonb
) PARTITION BY LIST ("BillingPeriodStart");
COMMENT ON TABLE billops.focus_line_item IS
  'Rows of ingested FOCUS exports under the specification''s column names, one partition per billing period and billing account; columns the file had that FOCUS 1.2 does not name are in extras.';

-- Which delivery each visible (billing period, billing account) of FOCUS data comes from.
CREATE TABLE billops.focus_partition (
    period_start        timestamptz NOT NULL,     -- the rows' BillingPeriodStart
    billing_account_id  text NOT NULL,
    source_id           integer NOT NULL REFERENCES billops.cur_source,
    delivery_id         bigint NOT NULL REFERENCES billops.cur_delivery,
    table_name          text NOT NULL,
    swapped_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (period_start, billing_account_id)
);
COMMENT ON TABLE billops.focus_partition IS
  'The FOCUS export delivery currently visible for each billing period and billing account.';

-- The FOCUS version a dataset's columns tell.  A FOCUS export names its version
-- nowhere in its rows, and AWS's Data Exports manifest reference shows no field
-- for it (the export's table, FOCUS_1_0_AWS or FOCUS_1_2_AWS, is in its
-- definition, not in what it delivers); the columns each version added are in
-- the specification (specification/columns/*.md at tags v1.0, v1.1, v1.2):
-- 1.1 added CapacityReservationId, CapacityReservationStatus,
-- CommitmentDiscountQuantity, CommitmentDiscountUnit, ServiceSubcategory,
-- SkuMeter and SkuPriceDetails; 1.2 added BillingAccountType, InvoiceId,
-- PricingCurrency, PricingCurrencyContractedUnitPrice,
-- PricingCurrencyEffectiveCost, PricingCurrencyListUnitPrice and
-- SubAccountType.  The newest version any column belongs to is the answer; an
-- export of a later version that left out every newer (optional) column reads
-- as the older one.
CREATE FUNCTION billops.focus_version_of(columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN columns && ARRAY['BillingAccountType', 'InvoiceId', 'PricingCurrency', 'PricingCurrencyContractedUnitPrice',
                                      'PricingCurrencyEffectiveCost', 'PricingCurrencyListUnitPrice', 'SubAccountType'] THEN '1.2'
                WHEN columns && ARRAY['CapacityReservationId', 'CapacityReservationStatus', 'CommitmentDiscountQuantity',
                                      'CommitmentDiscountUnit', 'ServiceSubcategory', 'SkuMeter', 'SkuPriceDetails'] THEN '1.1'
                ELSE '1.0' END
$$;
COMMENT ON FUNCTION billops.focus_version_of(text[]) IS
  'The FOCUS version (1.0, 1.1 or 1.2) a set of column names tells: the newest version any of them was introduced in.';

-- Create the staging table for one (period, billing account) of a FOCUS
-- delivery; called by the C loader the first time a row of that period and
-- account appears.  The CHECK constraint matches the partition bounds, so
-- ATTACH skips its scan.
CREATE FUNCTION billops._focus_staging_table(target_delivery_id bigint, target_start timestamptz, target_account text)
RETURNS regclass
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t text := format('focus_line_item_%s_%s_d%s', billops._focus_period_tag(target_start),
                     CASE WHEN target_account ~ '^[0-9A-Za-z]{1,20}$' THEN target_account ELSE left(md5(target_account), 12) END,
                     target_delivery_id);
    existing regclass;
BEGIN
    -- created before a parallel load (billops._prepare_staging): every loader uses it (its name is
    -- its delivery's, period's and account's)
    existing := to_regclass(format('billops.%I', t));
    IF existing IS NOT NULL THEN
        RETURN existing;
    END IF;
    INSERT INTO billops.cur_delivery_partition (delivery_id, billing_period, payer_account_id, staging_table, period_start)
    VALUES (target_delivery_id, (target_start AT TIME ZONE 'UTC')::date, target_account,
            billops._create_staging('billops.focus_line_item', t,
                                    format('"BillingPeriodStart" = %L::timestamptz AND "BillingAccountId" = %L', target_start, target_account)),
            target_start);
    RETURN format('billops.%I', t)::regclass;
END
$$;

-- A billing period's part of a partition name: its UTC date, and its time when not midnight
-- (a provider whose periods start at midnight in its own zone).
CREATE FUNCTION billops._focus_period_tag(period_start timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT pg_catalog.to_char(period_start AT TIME ZONE 'UTC', 'YYYYMMDD')
           || CASE WHEN (period_start AT TIME ZONE 'UTC')::time <> '00:00' THEN pg_catalog.to_char(period_start AT TIME ZONE 'UTC', '"_"HH24MISS') ELSE '' END
$$;

-- Swap a loaded FOCUS delivery in, like billops._swap_delivery for the CUR:
-- at the very end of the load transaction, each (period, account) staging
-- table replaces the partition that held that period and account.  A
-- (period, account) belongs to one source (two exports of one account would
-- count its cost twice), unless the new source replaces the old one.
CREATE FUNCTION billops._swap_focus_delivery(target_delivery_id bigint)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d billops.cur_delivery;
    p record;
    old record;
    period_part text;
    other_source text;
BEGIN
    SELECT * INTO STRICT d FROM billops.cur_delivery WHERE delivery_id = target_delivery_id;
    FOR p IN SELECT * FROM billops.cur_delivery_partition WHERE delivery_id = target_delivery_id LOOP
        SELECT s.name INTO other_source
          FROM billops.focus_partition fp JOIN billops.cur_source s USING (source_id)
         WHERE fp.period_start = p.period_start AND fp.billing_account_id = p.payer_account_id
           AND fp.source_id <> d.source_id
           AND fp.source_id IS DISTINCT FROM (SELECT replaces_source_id FROM billops.cur_source WHERE source_id = d.source_id);
        IF FOUND THEN
            RAISE EXCEPTION 'FOCUS data of billing account % for the billing period starting % is already loaded from source "%"',
                            p.payer_account_id, p.period_start, other_source
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = 'Two sources cannot both own one billing account''s period: its costs would be counted twice.',
                      HINT = format('Load this billing account from one source only, or mark the new source as replacing the old: '
                                    'UPDATE billops.cur_source SET replaces_source_id = (SELECT source_id FROM billops.cur_source WHERE name = %L) '
                                    'WHERE name = %L.', other_source, (SELECT name FROM billops.cur_source WHERE source_id = d.source_id));
        END IF;
    END LOOP;

    PERFORM set_config('lock_timeout', current_setting('billops.swap_lock_timeout'), true);
    FOR p IN SELECT * FROM billops.cur_delivery_partition WHERE delivery_id = target_delivery_id
             ORDER BY period_start, payer_account_id LOOP
        period_part := format('billops.%I', 'focus_line_item_' || billops._focus_period_tag(p.period_start));
        IF to_regclass(period_part) IS NULL THEN
            EXECUTE format('CREATE TABLE %s PARTITION OF billops.focus_line_item FOR VALUES IN (%L) PARTITION BY LIST ("BillingAccountId")',
                           period_part, p.period_start);
        END IF;
        SELECT * INTO old FROM billops.focus_partition
         WHERE period_start = p.period_start AND billing_account_id = p.payer_account_id;
        IF FOUND THEN
            PERFORM billops._retire_leaf(period_part, old.table_name);
        END IF;
        EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%L)', period_part, p.staging_table, p.payer_account_id);
        INSERT INTO billops.focus_partition AS fp (period_start, billing_account_id, source_id, delivery_id, table_name)
        VALUES (p.period_start, p.payer_account_id, d.source_id, target_delivery_id, p.staging_table)
        ON CONFLICT (period_start, billing_account_id) DO UPDATE
           SET source_id = excluded.source_id, delivery_id = excluded.delivery_id,
               table_name = excluded.table_name, swapped_at = clock_timestamp();
    END LOOP;
    UPDATE billops.cur_delivery SET focus_version = billops.focus_version_of(columns) WHERE delivery_id = target_delivery_id;
    -- a delivery none of whose partitions is visible any more is superseded
    UPDATE billops.cur_delivery cd SET status = 'superseded'
     WHERE cd.source_id IN (d.source_id, (SELECT replaces_source_id FROM billops.cur_source WHERE source_id = d.source_id))
       AND cd.status = 'loaded' AND cd.delivery_id <> target_delivery_id
       AND NOT EXISTS (SELECT 1 FROM billops.focus_partition fp WHERE fp.delivery_id = cd.delivery_id);
END
$$;

-- Load one FOCUS export file (CSV, plain or gzip, or Parquet) the server reads.
-- Superusers and members of pg_read_server_files only, as COPY FROM a file.
-- The file's (billing period, billing account) pairs replace what was visible
-- for them, in one transaction; an error changes nothing, and is not recorded.
CREATE FUNCTION billops.load_focus_file(path text, source_name text DEFAULT 'focus-files') RETURNS bigint
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    v_source  integer;
    v_delivery bigint;
    n_rows    bigint;
    s         billops.cur_source;
BEGIN
    IF path IS NULL OR source_name IS NULL THEN
        RAISE EXCEPTION 'argument % of billops.load_focus_file must not be NULL', CASE WHEN path IS NULL THEN 'path' ELSE 'source_name' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO s FROM billops.cur_source c WHERE c.name = source_name;
    IF NOT FOUND THEN
        INSERT INTO billops.cur_source (name, storage, layout) VALUES (source_name, 'file', 'focus')
        RETURNING source_id INTO v_source;
    ELSIF s.storage <> 'file' OR s.layout <> 'focus' THEN
        RAISE EXCEPTION 'source "%" is not a source of local FOCUS files', source_name
            USING ERRCODE = 'wrong_object_type',
                  DETAIL = format('It is %s source of layout %s.', CASE WHEN s.storage = 's3' THEN 'an S3' ELSE 'a local file' END, s.layout),
                  HINT = 'Name another source; S3 sources are read by billops.sync_cur_source().';
    ELSE
        v_source := s.source_id;
    END IF;
    INSERT INTO billops.cur_delivery (source_id, manifest_key, compression, file_count)
    VALUES (v_source, path, 'auto', 1)
    RETURNING delivery_id INTO v_delivery;
    INSERT INTO billops.cur_delivery_file (delivery_id, file_no, object_key) VALUES (v_delivery, 1, path);
    n_rows := billops._load_and_swap(v_delivery);
    RAISE NOTICE 'billops: FOCUS export %: % rows in % billing period(s) of billing accounts, delivery %', path, n_rows,
          (SELECT count(*) FROM billops.cur_delivery_partition WHERE delivery_id = v_delivery), v_delivery;
    RETURN v_delivery;
END $$;
COMMENT ON FUNCTION billops.load_focus_file(text, text) IS
  'Loads a FOCUS export file (CSV, plain or gzip, or Parquet) from the server''s file system into billops.focus_line_item, replacing the billing periods and accounts it holds atomically. Returns the delivery id.';

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

-- The ServiceSubcategory values FOCUS 1.2 allows, each under its one parent
-- ServiceCategory (columns/servicesubcategory.md).
CREATE TABLE billops.focus_service_subcategory (
    service_category    billops.focus_service_category_value NOT NULL,
    service_subcategory text NOT NULL PRIMARY KEY,
    UNIQUE (service_category, service_subcategory)
);
COMMENT ON TABLE billops.focus_service_subcategory IS
  'The ServiceSubcategory values FOCUS 1.2 allows, each with its parent ServiceCategory (read-only reference).';
INSERT INTO billops.focus_service_subcategory (service_category, service_subcategory)
SELECT c, s FROM (VALUES
    ('AI and Machine Learning', ARRAY['AI Platforms', 'Bots', 'Generative AI', 'Machine Learning', 'Natural Language Processing']),
    ('Analytics', ARRAY['Analytics Platforms', 'Business Intelligence', 'Data Processing', 'Search', 'Streaming Analytics']),
    ('Business Applications', ARRAY['Productivity and Collaboration']),
    ('Compute', ARRAY['Containers', 'End User Computing', 'Quantum Compute', 'Serverless Compute', 'Virtual Machines']),
    ('Databases', ARRAY['Caching', 'Data Warehouses', 'Ledger Databases', 'NoSQL Databases', 'Relational Databases', 'Time Series Databases']),
    ('Developer Tools', ARRAY['Developer Platforms', 'Continuous Integration and Deployment', 'Development Environments', 'Source Code Management',
                              'Quality Assurance']),
    ('Identity', ARRAY['Identity and Access Management']),
    ('Integration', ARRAY['API Management', 'Messaging', 'Workflow Orchestration']),
    ('Internet of Things', ARRAY['IoT Analytics', 'IoT Platforms']),
    ('Management and Governance', ARRAY['Architecture', 'Compliance', 'Cost Management', 'Data Governance', 'Disaster Recovery',
                                        'Endpoint Management', 'Observability', 'Support']),
    ('Media', ARRAY['Content Creation', 'Gaming', 'Media Streaming', 'Mixed Reality']),
    ('Migration', ARRAY['Data Migration', 'Resource Migration']),
    ('Mobile', ARRAY[]::text[]),
    ('Multicloud', ARRAY['Multicloud Integration']),
    ('Networking', ARRAY['Application Networking', 'Content Delivery', 'Network Connectivity', 'Network Infrastructure', 'Network Routing',
                         'Network Security']),
    ('Security', ARRAY['Secret Management', 'Security Posture Management', 'Threat Detection and Response']),
    ('Storage', ARRAY['Backup Storage', 'Block Storage', 'File Storage', 'Object Storage', 'Storage Platforms']),
    ('Web', ARRAY['Application Platforms']),
    ('Other', ARRAY[]::text[])) v(c, subs),
    LATERAL unnest(subs || ('Other (' || c || ')')) s;

CREATE TABLE billops.focus_service_category (
    service_name        text NOT NULL,                  -- as focus_cost's "ServiceName" shows it
    product_family      text NOT NULL DEFAULT '',       -- '' for every family of the service
    service_category    billops.focus_service_category_value NOT NULL,
    service_subcategory text,                           -- NULL: "Other (<category>)"
    PRIMARY KEY (service_name, product_family),
    -- a subcategory FOCUS 1.2 allows, under this category
    FOREIGN KEY (service_category, service_subcategory) REFERENCES billops.focus_service_subcategory (service_category, service_subcategory)
);
COMMENT ON TABLE billops.focus_service_category IS
  'Your FOCUS ServiceCategory (and ServiceSubcategory) per service, and optionally per CUR product family; wins over the categories AWS''s FOCUS export uses.';

CREATE TABLE billops._focus_service_category_aws (
    service_name        text NOT NULL,
    product_family      text NOT NULL DEFAULT '',
    service_category    billops.focus_service_category_value NOT NULL,
    service_subcategory text,
    PRIMARY KEY (service_name, product_family),
    FOREIGN KEY (service_category, service_subcategory) REFERENCES billops.focus_service_subcategory (service_category, service_subcategory)
);
COMMENT ON TABLE billops._focus_service_category_aws IS
  'The ServiceCategory AWS''s own FOCUS export gives each service (its rows in the FOCUS sample); read-only seed.';
-- The categories are AWS's (its FOCUS 1.0 export, the sample's AWS rows); the
-- subcategories are ours: FOCUS 1.0 has no ServiceSubcategory, so AWS's own
-- choices were not available to us, and each is the value of FOCUS 1.2's list
-- (columns/servicesubcategory.md) under AWS's category that best fits the
-- service, or that category's "Other".  One category per service, as FOCUS
-- 1.2 requires (columns/servicename.md: one and only one ServiceCategory per
-- ServiceName): the sample's AWS rows put some EC2 rows (EBS volumes,
-- snapshots, IOPS) under Storage, which that rule forbids; here EC2 is
-- Compute.  A user who wants it otherwise sets a product_family row in
-- billops.focus_service_category, and billops.focus_conformance says what it
-- costs.
INSERT INTO billops._focus_service_category_aws (service_name, product_family, service_category, service_subcategory) VALUES
    ('AWS CloudTrail', '', 'Management and Governance', 'Compliance'),
    ('AWS Key Management Service', '', 'Identity', NULL),
    ('AWS Lambda', '', 'Compute', 'Serverless Compute'),
    ('AWS Security Hub', '', 'Security', 'Security Posture Management'),
    ('AWS Step Functions', '', 'Compute', NULL),
    ('AWS Systems Manager', '', 'Management and Governance', 'Endpoint Management'),
    ('AWS WAF', '', 'Security', NULL),
    ('Amazon API Gateway', '', 'Networking', 'Application Networking'),
    ('Amazon CloudFront', '', 'Networking', 'Content Delivery'),
    ('Amazon DynamoDB', '', 'Databases', 'NoSQL Databases'),
    ('Amazon EC2 Container Registry (ECR)', '', 'Other', NULL),
    ('Amazon Elastic Compute Cloud', '', 'Compute', 'Virtual Machines'),
    ('Amazon Elastic Container Service', '', 'Other', NULL),
    ('Amazon Elastic Container Service for Kubernetes', '', 'Other', NULL),
    ('Amazon Elastic File System', '', 'Storage', 'File Storage'),
    ('Amazon Relational Database Service', '', 'Databases', 'Relational Databases'),
    ('Amazon Route 53', '', 'Networking', 'Network Routing'),
    ('Amazon Simple Notification Service', '', 'Integration', 'Messaging'),
    ('Amazon Simple Queue Service', '', 'Integration', 'Messaging'),
    ('Amazon Simple Storage Service', '', 'Storage', 'Object Storage'),
    ('Amazon Virtual Private Cloud', '', 'Networking', 'Network Infrastructure'),
    ('AmazonCloudWatch', '', 'Management and Governance', 'Observability'),
    ('Elastic Load Balancing', '', 'Networking', 'Application Networking'),
    ('Red Hat OpenShift Service on AWS', '', 'Other', NULL);

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
-- CUR's line_item_unblended_cost exactly, and EffectiveCost the amortized cost
-- (billops._amortized_cost), so it adds up to cur_spend_by_account_service's
-- amortized_cost.  One row per line item, and one more for a commitment's fee
-- whose commitment went partly unused: that unused part as a Usage row of
-- status Unused (BilledCost 0), the fee itself a Purchase of EffectiveCost 0;
-- but a Savings Plan's negation line, which only cancels the covered line's
-- on-demand cost, is folded into it (the covered line bills 0).  BilledCost
-- adds up to the CUR's unblended cost as long as each negation cancels a
-- covered line, as AWS bills them.
-- ---------------------------------------------------------------------------
CREATE VIEW billops._focus_cur WITH (security_invoker = true) AS
SELECT li.line_item_availability_zone AS "AvailabilityZone",
       -- the unused part of a commitment is billed by its fee row, not again; usage a Savings Plan
       -- covers is billed by the plan's fees: the CUR writes it at the on-demand cost and cancels it in
       -- a SavingsPlanNegation line, which this view folds away (below), as AWS's own FOCUS export
       -- shows covered usage (its sample: Savings Plan Used rows of BilledCost 0; FOCUS 1.2
       -- attributes/discount_handling.md: a row a commitment covers entirely bills 0)
       CASE WHEN part.unused OR li.line_item_line_item_type = 'SavingsPlanCoveredUsage' THEN 0
            ELSE li.line_item_unblended_cost END AS "BilledCost",
       li.bill_payer_account_id AS "BillingAccountId",
       -- a name the CUR gives (CUR 2.0), else the one billops.aws_account records (legacy CUR has none)
       coalesce(nullif(li.bill_payer_account_name, ''), pa.account_name) AS "BillingAccountName",
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
       CASE WHEN (li.bill_bill_type = 'Refund' OR li.line_item_line_item_type = 'Refund') AND NOT part.unused
                 AND li.line_item_usage_start_date < (li.bill_billing_period_start_date::timestamp AT TIME ZONE 'UTC')
            THEN 'Correction' END AS "ChargeClass",
       li.line_item_line_item_description AS "ChargeDescription",
       CASE WHEN part.unused THEN 'Usage-Based'
            WHEN li.line_item_line_item_type IN ('Fee', 'SavingsPlanUpfrontFee') THEN 'One-Time'
            WHEN li.line_item_line_item_type IN ('RIFee', 'SavingsPlanRecurringFee') THEN 'Recurring'   -- unverified for RIFee
            ELSE 'Usage-Based' END AS "ChargeFrequency",
       li.line_item_usage_start_date AS "ChargePeriodStart",
       li.line_item_usage_end_date AS "ChargePeriodEnd",
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Spend'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Usage' END AS "CommitmentDiscountCategory",
       cm.id AS "CommitmentDiscountId",
       NULL::text AS "CommitmentDiscountName",
       cq.quantity AS "CommitmentDiscountQuantity",
       -- FOCUS 1.2 columns/commitmentdiscountstatus.md: a status on every usage row that names a
       -- commitment; a Savings Plan's negation row offsets covered usage, so it is Used too; the
       -- unused part of a commitment's fee is its own Usage row, Unused (the specification's
       -- appendix commitment_discounts.md: the fee a Purchase with EffectiveCost 0, the unused
       -- commitment a Usage row); a purchase has no status
       CASE WHEN part.unused THEN 'Unused'
            WHEN cm.id IS NOT NULL AND cc.charge_category = 'Usage' THEN 'Used' END AS "CommitmentDiscountStatus",
       CASE WHEN li.savings_plan_savings_plan_a_r_n <> '' THEN 'Savings Plan'
            WHEN li.reservation_reservation_a_r_n <> '' THEN 'Reservation' END AS "CommitmentDiscountType",
       CASE WHEN cq.quantity IS NOT NULL THEN cq.unit END AS "CommitmentDiscountUnit",
       -- FOCUS 1.2 columns/consumedquantity.md, consumedunit.md: a quantity on every Usage row (the
       -- Savings Plan negation rows included) but an unused commitment's and on no other, a unit
       -- exactly where there is a quantity
       CASE WHEN cc.charge_category = 'Usage' AND NOT part.unused THEN li.line_item_usage_amount END AS "ConsumedQuantity",
       CASE WHEN cc.charge_category = 'Usage' AND NOT part.unused AND li.line_item_usage_amount IS NOT NULL
            THEN nullif(li.pricing_unit, '') END AS "ConsumedUnit",
       -- FOCUS 1.2 columns/contractedcost.md: a charge unrelated to other charges (a credit, a discount)
       -- at its BilledCost; otherwise the net unblended cost when the CUR has it (unverified)
       -- (covered usage keeps its on-demand price here: ListCost and ContractedCost are what the usage
       -- costs at the list and the contracted price, as the specification's appendix shows committed usage)
       CASE WHEN part.unused THEN 0
            WHEN cc.charge_category = 'Credit' THEN li.line_item_unblended_cost
            ELSE coalesce(li.line_item_net_unblended_cost, li.line_item_unblended_cost) END AS "ContractedCost",
       pr.contracted_unit_price AS "ContractedUnitPrice",
       ec.effective_cost AS "EffectiveCost",
       nullif(li.bill_invoice_id, '') AS "InvoiceId",
       li.bill_invoicing_entity AS "InvoiceIssuerName",
       -- FOCUS 1.2 columns/listcost.md: never null; a charge unrelated to other charges (a credit) lists
       -- at its BilledCost.  The CUR gives credits, tax and fees no public price: tax lists at what it
       -- costs (the rule that tax's ListCost be computed from the taxed charges' ListCost needs the
       -- tax rate, which the CUR does not give), and a purchase (a fee) at its own price
       CASE WHEN part.unused THEN 0
            WHEN cc.charge_category = 'Credit' THEN li.line_item_unblended_cost
            WHEN cc.charge_category IN ('Tax', 'Purchase') THEN coalesce(li.pricing_public_on_demand_cost, li.line_item_unblended_cost)
            ELSE li.pricing_public_on_demand_cost END AS "ListCost",
       pr.list_unit_price AS "ListUnitPrice",
       -- FOCUS 1.2 columns/pricingcategory.md: none on tax; "Committed" for usage under a commitment
       -- (Savings Plan coverage and its negation, reserved usage), whatever the CUR's pricing term
       -- (OnDemand on Savings Plan coverage), but not for buying the commitment (its fees); every
       -- other Usage or Purchase row has a category: its term's, else "Standard" (fees, and free-tier
       -- usage, which carries no term: their price is the agreed one; unverified against AWS's own
       -- FOCUS export)
       CASE WHEN cc.charge_category = 'Tax' THEN NULL
            WHEN part.unused OR li.line_item_line_item_type IN ('SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'DiscountedUsage') THEN 'Committed'
            WHEN cc.charge_category = 'Purchase' THEN 'Standard'
            WHEN li.pricing_term = 'OnDemand' THEN 'Standard'
            WHEN li.pricing_term = 'Reserved' THEN 'Committed'
            WHEN li.pricing_term = 'Spot' THEN 'Dynamic'
            WHEN cc.charge_category IN ('Usage', 'Purchase') THEN 'Standard'
       END AS "PricingCategory",
       -- FOCUS 1.2 columns/pricingcurrency*.md: never null once present.  Where the CUR prices in the
       -- billing currency (or names no pricing currency, as on tax), the pricing-currency prices are the
       -- billing-currency ones; where it prices in another, the CUR gives no prices in that currency here,
       -- and they stay null (a violation billops.focus_conformance shows)
       coalesce(nullif(li.pricing_currency, ''), li.line_item_currency_code) AS "PricingCurrency",
       CASE WHEN coalesce(nullif(li.pricing_currency, ''), li.line_item_currency_code) = li.line_item_currency_code AND cc.charge_category <> 'Tax'
            THEN pr.contracted_unit_price END AS "PricingCurrencyContractedUnitPrice",
       CASE WHEN coalesce(nullif(li.pricing_currency, ''), li.line_item_currency_code) = li.line_item_currency_code
            THEN ec.effective_cost END AS "PricingCurrencyEffectiveCost",
       CASE WHEN coalesce(nullif(li.pricing_currency, ''), li.line_item_currency_code) = li.line_item_currency_code AND cc.charge_category <> 'Tax'
            THEN pr.list_unit_price END AS "PricingCurrencyListUnitPrice",
       -- FOCUS 1.2 columns/pricingquantity.md and pricingunit.md: no quantity on tax (the CUR writes 1)
       -- or on credits (not priced by a quantity), and a unit exactly where there is a quantity: a
       -- purchase the CUR gives no unit is counted in "Units" (FOCUS's count unit; our choice)
       -- (an unused commitment is priced in the commitment's own unit, at 0)
       CASE WHEN part.unused THEN cq.quantity
            WHEN cc.charge_category NOT IN ('Tax', 'Credit') THEN li.line_item_usage_amount END AS "PricingQuantity",
       CASE WHEN part.unused THEN CASE WHEN cq.quantity IS NOT NULL THEN cq.unit END
            WHEN cc.charge_category NOT IN ('Tax', 'Credit') AND li.line_item_usage_amount IS NOT NULL
            THEN coalesce(nullif(li.pricing_unit, ''), CASE WHEN cc.charge_category = 'Purchase' THEN 'Units' END) END AS "PricingUnit",
       'AWS'::text AS "ProviderName",
       coalesce(li.line_item_legal_entity, li.bill_invoicing_entity) AS "PublisherName",
       -- FOCUS 1.2 columns/regionname.md: a name exactly where there is an id (the CUR writes
       -- locations such as "Any" without a region code; a region code without a location keeps its code)
       nullif(li.product_region_code, '') AS "RegionId",
       CASE WHEN nullif(li.product_region_code, '') IS NOT NULL
            THEN coalesce(nullif(li.product_location, ''), li.product_region_code) END AS "RegionName",
       -- a commitment's purchase and its unused part are the commitment's own rows (appendix
       -- commitment_discounts.md: ResourceId is the commitment's id)
       rt.id AS "ResourceId",
       NULL::text AS "ResourceName",
       -- FOCUS 1.2 columns/resourcetype.md: a type wherever there is a ResourceId.  AWS's own: the
       -- resource-type part of an ARN (arn:partition:service:region:account:resource-type/id or
       -- resource-type:id, the documented ARN format); for the CUR's bare ids, their prefix (EC2's
       -- "i-", "vol-", "snap-", "nat-", "eipalloc-", "vpce-", "vpn-", Direct Connect's "dxcon-",
       -- WorkSpaces' "ws-") mapped to the type their ARNs name, and S3's bucket names (bucket).
       -- Any other id
       -- stays without a type, which billops.focus_conformance reports.
       CASE WHEN rt.id IS NULL THEN NULL
            WHEN rt.arn_resource IS NOT NULL
                 THEN coalesce(substring(rt.arn_resource from '^([^/:]+)[/:]'),
                               -- services whose ARNs name the resource with no type part: S3's buckets,
                               -- SQS's queues, SNS's topics (as their IAM resource types are named)
                               CASE rt.arn_service WHEN 's3' THEN 'bucket' WHEN 'sqs' THEN 'queue' WHEN 'sns' THEN 'topic' END)
            -- a bare id by its prefix, as the resource's ARN names its type
            WHEN rt.id ~ '^i-[0-9a-f]+$' THEN 'instance'
            WHEN rt.id ~ '^vol-[0-9a-f]+$' THEN 'volume'
            WHEN rt.id ~ '^snap-[0-9a-f]+$' THEN 'snapshot'
            WHEN rt.id ~ '^nat-[0-9a-f]+$' THEN 'natgateway'
            WHEN rt.id ~ '^eipalloc-[0-9a-f]+$' THEN 'elastic-ip'
            WHEN rt.id ~ '^vpce-[0-9a-f]+$' THEN 'vpc-endpoint'
            WHEN rt.id ~ '^vpn-[0-9a-f]+$' THEN 'vpn-connection'
            WHEN rt.id ~ '^dxcon-[0-9a-z]+$' THEN 'dxcon'
            WHEN rt.id ~ '^ws-[0-9a-z]+$' THEN 'workspace'
            WHEN li.line_item_product_code = 'AmazonS3' THEN 'bucket'
       END AS "ResourceType",
       coalesce(by_family.service_category, by_service.service_category, 'Other') AS "ServiceCategory",
       cc.service_name AS "ServiceName",
       coalesce(CASE WHEN by_family.service_category IS NOT NULL THEN by_family.service_subcategory ELSE by_service.service_subcategory END,
                'Other (' || coalesce(by_family.service_category, by_service.service_category, 'Other') || ')') AS "ServiceSubcategory",
       li.product_sku AS "SkuId",
       -- AWS's FOCUS 1.2 export replaced its x_UsageType with SkuMeter ("FOCUS 1.2 with AWS columns",
       -- migrating from 1.0); FOCUS 1.2 columns/skumeter.md: null exactly where SkuId is
       CASE WHEN li.product_sku IS NOT NULL THEN nullif(li.line_item_usage_type, '') END AS "SkuMeter",
       NULL::jsonb AS "SkuPriceDetails",
       -- the CUR's rate code is <SkuId>.<offer term>.<rate>, the form of AWS's own FOCUS export (its
       -- SkuPriceId has the SkuId as its first part: the one parent FOCUS 1.2 columns/skupriceid.md
       -- asks for); none on tax
       CASE WHEN cc.charge_category <> 'Tax' THEN nullif(li.pricing_rate_code, '') END AS "SkuPriceId",
       li.line_item_usage_account_id AS "SubAccountId",
       coalesce(nullif(li.line_item_usage_account_name, ''), ua.account_name) AS "SubAccountName",
       'Account'::text AS "SubAccountType",
       li.resource_tags AS "Tags",
       -- AWS's own extensions, as its FOCUS export names them
       li.cost_category AS "x_CostCategories",
       li.discount AS "x_Discounts",          -- AWS's FOCUS 1.2 column: the CUR 2.0 discount map
       li.line_item_operation AS "x_Operation",
       li.line_item_product_code AS "x_ServiceCode",
       li.line_item_usage_type AS "x_UsageType"
  FROM billops.cur_line_item li
       -- the commitment a row names, and its amortized cost (the share of EffectiveCost AWS's formula gives it)
       CROSS JOIN LATERAL (SELECT coalesce(nullif(li.savings_plan_savings_plan_a_r_n, ''), nullif(li.reservation_reservation_a_r_n, '')) AS id,
                                  coalesce(li.savings_plan_savings_plan_a_r_n, '') <> '' AS is_savings_plan,
                                  billops._amortized_cost(li.line_item_line_item_type, li.line_item_unblended_cost,
                                      li.savings_plan_savings_plan_effective_cost, li.savings_plan_total_commitment_to_date,
                                      li.savings_plan_used_commitment, li.reservation_effective_cost,
                                      li.reservation_unused_amortized_upfront_fee_for_billing_period, li.reservation_unused_recurring_fee,
                                      li.reservation_reservation_a_r_n) AS amortized_cost) cm
       -- a commitment's fee whose amortized cost is not 0 (the commitment went partly unused) is two
       -- FOCUS rows: the purchase, and the unused commitment as usage (part.unused)
       CROSS JOIN LATERAL (SELECT false AS unused
                           UNION ALL
                           SELECT true WHERE cm.id IS NOT NULL AND cm.amortized_cost <> 0
                                         AND li.line_item_line_item_type IN ('SavingsPlanRecurringFee', 'RIFee')) part
       -- the charge's FOCUS ChargeCategory, which several columns' rules depend on, its service and product family
       CROSS JOIN LATERAL (SELECT CASE WHEN part.unused THEN 'Usage' ELSE CASE li.line_item_line_item_type
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
                            ELSE 'Usage' END END AS charge_category,
                       billops._service_of(li.product, li.line_item_product_code) AS service_name,
                       coalesce(nullif(li.product_product_family, ''), li.product->>'product_family', '') AS product_family) cc
       -- EffectiveCost, which PricingCurrencyEffectiveCost repeats: the amortized cost, but a
       -- commitment's purchase is 0 (FOCUS 1.2 columns/effectivecost.md: it covers future charges) and
       -- its unused part carries what the fee amortizes, so the total stays the amortized total
       CROSS JOIN LATERAL (SELECT CASE WHEN part.unused THEN cm.amortized_cost
                                       WHEN cm.id IS NOT NULL AND cc.charge_category = 'Purchase' THEN 0
                                       ELSE cm.amortized_cost END AS effective_cost) ec
       -- the commitment quantity (FOCUS 1.2 columns/commitmentdiscountquantity.md) in its unit: a Savings
       -- Plan (spend-based) in the billing currency, as the specification's appendix does; a reservation
       -- (usage-based) in hours of the CUR's usage amount (normalized units, for size-flexible
       -- reservations, are not used: unverified).  Used: covered usage's Savings Plan effective cost or
       -- reserved hours; a negation row consumes nothing beyond its covered row (0); Purchase: the
       -- recurring fee's commitment for its period, the upfront fee's amount, an RI fee's hours;
       -- Unused: the unused commitment (Savings Plan) or unused hours (reservation)
       CROSS JOIN LATERAL (SELECT CASE WHEN cm.id IS NULL OR cc.charge_category NOT IN ('Usage', 'Purchase') THEN NULL
                                       WHEN part.unused THEN CASE WHEN cm.is_savings_plan THEN cm.amortized_cost
                                                                  ELSE li.reservation_unused_quantity END
                                       ELSE CASE li.line_item_line_item_type
                                              WHEN 'SavingsPlanCoveredUsage' THEN li.savings_plan_savings_plan_effective_cost
                                              WHEN 'SavingsPlanNegation' THEN 0
                                              WHEN 'SavingsPlanRecurringFee' THEN li.savings_plan_total_commitment_to_date
                                              WHEN 'SavingsPlanUpfrontFee' THEN li.line_item_unblended_cost
                                              WHEN 'DiscountedUsage' THEN li.line_item_usage_amount
                                              WHEN 'RIFee' THEN li.line_item_usage_amount
                                              WHEN 'Fee' THEN li.line_item_usage_amount
                                            END END AS quantity,
                                  CASE WHEN cm.is_savings_plan THEN li.line_item_currency_code ELSE 'Hours' END AS unit) cq
       -- ListUnitPrice: the public rate; a purchase (a fee) without one at its own rate; an unused
       -- commitment at 0.  ContractedUnitPrice: the net rate when the CUR has it, else the rate.
       CROSS JOIN LATERAL (SELECT CASE WHEN part.unused THEN 0
                                       WHEN cc.charge_category = 'Purchase' THEN coalesce(li.pricing_public_on_demand_rate, li.line_item_unblended_rate)
                                       ELSE li.pricing_public_on_demand_rate END AS list_unit_price,
                                  CASE WHEN part.unused THEN 0
                                       ELSE coalesce(li.line_item_net_unblended_rate, li.line_item_unblended_rate) END AS contracted_unit_price) pr
       -- the ResourceId (a commitment's own rows carry the commitment's id) and its ARN parts
       CROSS JOIN LATERAL (SELECT x.id, substring(x.id from '^arn:[^:]*:([^:]*):') AS arn_service,
                                  substring(x.id from '^arn:[^:]*:[^:]*:[^:]*:[^:]*:(.+)$') AS arn_resource
                             FROM (SELECT CASE WHEN cm.id IS NOT NULL AND (part.unused OR cc.charge_category = 'Purchase') THEN cm.id
                                               ELSE nullif(li.line_item_resource_id, '') END AS id) x) rt
       LEFT JOIN billops.aws_account pa ON pa.account_id = li.bill_payer_account_id
       LEFT JOIN billops.aws_account ua ON ua.account_id = li.line_item_usage_account_id
       LEFT JOIN billops._focus_service_category_map by_family
              ON by_family.service_name = cc.service_name AND by_family.product_family = cc.product_family AND cc.product_family <> ''
       LEFT JOIN billops._focus_service_category_map by_service
              ON by_service.service_name = cc.service_name AND by_service.product_family = ''
 -- folded into their covered rows (BilledCost 0 above): each cancels one, as AWS bills them
 WHERE li.line_item_line_item_type IS DISTINCT FROM 'SavingsPlanNegation';
COMMENT ON VIEW billops._focus_cur IS
  'FOCUS 1.2 columns over the visible CUR deliveries: a row per line item, and one per commitment fee with unused commitment (BilledCost = unblended cost, EffectiveCost = amortized cost; see 63_focus.sql for unverified mappings).';

-- The FOCUS export rows shown next to the CUR: those of billing accounts'
-- periods no CUR delivery holds (where both hold one, the CUR's rows are
-- shown: the same charges would otherwise count twice).  focus_cost and the
-- cost lines statements and reconciliation read (_cost_line) both use it.
CREATE VIEW billops._focus_line_item_shown WITH (security_invoker = true) AS
SELECT f.*
  FROM billops.focus_line_item f
 WHERE NOT EXISTS (SELECT FROM billops.cur_partition p
                    WHERE p.payer_account_id = f."BillingAccountId"
                      AND p.billing_period = (f."BillingPeriodStart" AT TIME ZONE 'UTC')::date);
COMMENT ON VIEW billops._focus_line_item_shown IS
  'FOCUS export rows of billing accounts'' periods no CUR delivery holds: what focus_cost and _cost_line show.';

-- FOCUS 1.2 for FOCUS-speaking tools: the CUR-derived rows and the ingested
-- FOCUS exports under one set of columns.  Where a billing account's period is
-- both in the CUR and in a FOCUS export, the CUR wins (the same charges would
-- otherwise count twice).  Two columns of ours (FOCUS's x_ prefix for columns
-- it does not define): where each row comes from, and the FOCUS version it was
-- delivered in (the CUR's rows are FOCUS 1.2 by this view's mapping; an
-- export's, the version its columns tell: billops.focus_version_of).  A view
-- per FOCUS version pg_billops writes; billops.focus_cost is the newest.
CREATE VIEW billops.focus_cost_1_2 WITH (security_invoker = true) AS
SELECT c.*, 'cur'::text AS "x_BillopsSource", '1.2'::text AS "x_FocusVersion"
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
       f."SubAccountName", f."SubAccountType", f."Tags", f."x_CostCategories", f."x_Discounts", f."x_Operation", f."x_ServiceCode",
       f."x_UsageType", 'focus:' || s.name, d.focus_version
  FROM billops._focus_line_item_shown f
  JOIN billops.focus_partition fp ON fp.period_start = f."BillingPeriodStart" AND fp.billing_account_id = f."BillingAccountId"
  JOIN billops.cur_source s ON s.source_id = fp.source_id
  JOIN billops.cur_delivery d ON d.delivery_id = fp.delivery_id;
COMMENT ON VIEW billops.focus_cost_1_2 IS
  'FOCUS 1.2 columns over the visible CUR deliveries and ingested FOCUS exports (x_BillopsSource says which, x_FocusVersion in which FOCUS version it was delivered); see 63_focus.sql for unverified CUR mappings.';

CREATE VIEW billops.focus_cost WITH (security_invoker = true) AS
SELECT * FROM billops.focus_cost_1_2;
COMMENT ON VIEW billops.focus_cost IS
  'FOCUS in the newest version pg_billops writes (now 1.2: billops.focus_cost_1_2), over the CUR and ingested FOCUS exports; billops.focus_metadata() describes it.';

-- FOCUS metadata (specification/metadata at tag v1.2): the data generator and
-- the schema of a FOCUS view, in the specification's object shape.  The schema
-- id is a GUID derived from the column definitions, so it changes exactly when
-- they do; CreationDate is the date this schema definition was written (a
-- constant of the release, not the time of the call).  Numeric columns are
-- numeric without a declared precision (exact decimals as delivered), so
-- NumericPrecision and NumberScale, which the specification asks for only
-- "SHOULD ... for Numeric Format columns", are left out.  Tags hold the CUR's
-- resource tags as AWS names them: its own tags start "aws:" (legacy CUR) or
-- "aws_" (CUR 2.0, which rewrites ':' to '_').
CREATE FUNCTION billops.focus_metadata(focus_version text DEFAULT '1.2') RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    view_name regclass;
    cols jsonb;
BEGIN
    view_name := to_regclass(format('billops.focus_cost_%s', replace(focus_version, '.', '_')));
    IF view_name IS NULL OR focus_version !~ '^[0-9]+\.[0-9]+$' THEN
        RAISE EXCEPTION 'pg_billops writes no FOCUS % view', focus_version
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'See the views billops.focus_cost_<major>_<minor>; billops.focus_cost is the newest.';
    END IF;
    SELECT jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'ColumnName', a.attname,
               'DataType', CASE a.atttypid WHEN 'numeric'::regtype THEN 'DECIMAL' WHEN 'timestamptz'::regtype THEN 'DATETIME'
                                           WHEN 'jsonb'::regtype THEN 'JSON' ELSE 'STRING' END,
               'StringEncoding', CASE WHEN a.atttypid = 'text'::regtype THEN 'UTF-8' END,
               'ProviderTagPrefixes', CASE WHEN a.attname = 'Tags' THEN '["aws:", "aws_"]'::jsonb END)) ORDER BY a.attnum)
      INTO cols
      FROM pg_attribute a WHERE a.attrelid = view_name AND a.attnum > 0 AND NOT a.attisdropped;
    RETURN jsonb_build_object(
        'DataGenerator', 'pg_billops',
        'Schema', jsonb_build_object(
            'SchemaId', regexp_replace(md5(focus_version || cols::text), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '\1-\2-\3-\4-\5'),
            'FocusVersion', focus_version,
            'CreationDate', '2026-12-07T00:00:00Z',
            'DataGeneratorVersion', (SELECT extversion FROM pg_extension WHERE extname = 'pg_billops'),
            'ColumnDefinition', cols));
END
$$;
COMMENT ON FUNCTION billops.focus_metadata(text) IS
  'FOCUS metadata (DataGenerator, Schema: SchemaId, FocusVersion, CreationDate, DataGeneratorVersion, ColumnDefinition) of billops.focus_cost_<version>.';

-- ---------------------------------------------------------------------------
-- The cost lines statements and reconciliation read: the CUR's line items and
-- the FOCUS exports' rows, in the few columns both need, so a second cloud's
-- FOCUS export (or AWS's own, where no CUR is loaded) is charged back and
-- reconciled like the CUR.  A billing account's period that the CUR holds is
-- read from the CUR only (as in focus_cost: the same charges would otherwise
-- count twice).  FOCUS rows map as AWS's own FOCUS export fills them:
-- InvoiceIssuerName the entity, x_ServiceCode (else ServiceName) the product
-- code, SkuMeter (else x_UsageType) the usage type, ChargeCategory the line
-- type, BilledCost the cost.
-- ---------------------------------------------------------------------------
CREATE VIEW billops._cost_line WITH (security_invoker = true) AS
SELECT 'cur'::text AS source, li.bill_billing_period_start_date AS billing_period, li.bill_payer_account_id AS payer_account_id,
       li.line_item_usage_account_id AS usage_account_id, nullif(li.bill_invoice_id, '') AS invoice_id,
       li.bill_billing_entity AS billing_entity, li.line_item_product_code AS product_code,
       billops._service_of(li.product, li.line_item_product_code) AS service, li.line_item_usage_type AS usage_type,
       li.line_item_operation AS operation, li.line_item_line_item_type AS line_item_type,
       -- named as the CUR's map columns: billops._jsonb_subset_sql finds a key's spellings by that name
       li.resource_tags, li.cost_category, li.line_item_unblended_cost AS cost,
       li.line_item_currency_code AS currency
  FROM billops.cur_line_item li
UNION ALL
SELECT 'focus', (f."BillingPeriodStart" AT TIME ZONE 'UTC')::date, f."BillingAccountId",
       f."SubAccountId", f."InvoiceId",
       f."InvoiceIssuerName", coalesce(f."x_ServiceCode", f."ServiceName"),
       f."ServiceName", coalesce(f."SkuMeter", f."x_UsageType"),
       f."x_Operation", f."ChargeCategory",
       f."Tags", f."x_CostCategories", f."BilledCost",
       f."BillingCurrency"
  FROM billops._focus_line_item_shown f;
COMMENT ON VIEW billops._cost_line IS
  'The cost lines statements and reconciliation read: CUR line items and FOCUS export rows (where no CUR holds the account''s period).';

-- The same cost lines summed per day and the rollup's attributes: the CUR's from its daily rollup
-- (billops.cur_daily, a row per day and key instead of a row per line item), FOCUS export rows one
-- by one.  What reads neither invoice ids nor tags nor cost categories reads this: the same sums,
-- with line_items the lines behind each row.
CREATE VIEW billops._cost_summary WITH (security_invoker = true) AS
SELECT 'cur'::text AS source, d.billing_period, d.payer_account_id, d.usage_account_id, d.billing_entity, d.product_code,
       d.service, d.usage_type, d.operation, d.line_item_type, d.unblended_cost AS cost, d.currency, d.line_items
  FROM billops.cur_daily d
UNION ALL
-- (the FOCUS rows as _cost_line maps them: the planner drops its CUR branch, whose source is 'cur')
SELECT c.source, c.billing_period, c.payer_account_id, c.usage_account_id, c.billing_entity, c.product_code,
       c.service, c.usage_type, c.operation, c.line_item_type, c.cost, c.currency, 1::bigint
  FROM billops._cost_line c
 WHERE c.source = 'focus';
COMMENT ON VIEW billops._cost_summary IS
  'billops._cost_line without invoice ids, tags and cost categories, the CUR''s part from its daily rollup: line_items lines per row.';
