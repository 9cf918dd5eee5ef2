-- ---------------------------------------------------------------------------
-- CUR ingest: sources, deliveries, and the line-item table.
-- ---------------------------------------------------------------------------

-- Where a Cost and Usage Report is delivered.  Holds no secret: `credentials`
-- is a reference ('default', 'env', 'profile:<name>') resolved by the server.
CREATE TABLE billops.cur_source (
    source_id     integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'),
    storage       text NOT NULL DEFAULT 's3' CHECK (storage IN ('s3', 'file')),
    layout        text NOT NULL CHECK (layout IN ('legacy_cur', 'cur2', 'auto')),
    bucket        text,
    prefix        text NOT NULL DEFAULT '',
    report_name   text,
    region        text NOT NULL DEFAULT 'us-east-1' CHECK (region ~ '^[a-z0-9-]+$'),
    endpoint_url  text,
    path_style    boolean NOT NULL DEFAULT false,
    credentials   text NOT NULL DEFAULT 'default',
    min_period    date,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_sync_at  timestamptz,
    CHECK (storage = 'file' OR (bucket IS NOT NULL AND report_name IS NOT NULL)),
    CHECK (min_period IS NULL OR extract(day FROM min_period) = 1)
);
COMMENT ON TABLE billops.cur_source IS
  'A CUR / Data Exports delivery location. credentials is a reference, never a key.';

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
    columns         text[],
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
    PRIMARY KEY (delivery_id, file_no)
);
COMMENT ON TABLE billops.cur_delivery_file IS 'The report files of a delivery and what loading each cost.';

-- The staging tables a delivery filled, one per (period, payer).
CREATE TABLE billops.cur_delivery_partition (
    delivery_id        bigint NOT NULL REFERENCES billops.cur_delivery ON DELETE CASCADE,
    billing_period     date NOT NULL,
    payer_account_id   text NOT NULL,
    staging_table      regclass,
    rows_loaded        bigint,
    rows_with_invoice_id bigint,
    invoice_ids        text[],
    PRIMARY KEY (delivery_id, billing_period, payer_account_id)
);
COMMENT ON TABLE billops.cur_delivery_partition IS
  'Per delivery, period and payer: rows loaded and the AWS invoice ids seen (preliminary vs final).';

-- Which delivery each live partition holds.  Exactly one row per (period, payer).
CREATE TABLE billops.cur_partition (
    billing_period    date NOT NULL,
    payer_account_id  text NOT NULL,
    source_id         integer NOT NULL REFERENCES billops.cur_source,
    delivery_id       bigint NOT NULL REFERENCES billops.cur_delivery,
    table_name        text NOT NULL,
    swapped_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (billing_period, payer_account_id)
);
COMMENT ON TABLE billops.cur_partition IS
  'The delivery currently visible for each billing period and payer.';

-- Line items.  Column names are CUR 2.0's snake case, so AWS's CUR query
-- library works with little change; amounts are numeric (never float), times
-- are timestamptz.  Map columns and legacy tag/category columns are jsonb;
-- every other column of the report is kept in extras under its own header.
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
    product_product_name           text,
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
