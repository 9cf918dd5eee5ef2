-- ---------------------------------------------------------------------------
-- The daily rollup of the CUR: a year of line items is ~100 M rows, and BI
-- tools ask month-over-month questions across it.  billops.cur_daily holds
-- the line items summed per day and per everything a spend question groups
-- by (account, service, region, usage type, line item type, the attributes
-- a charge source is decided from ...): tens of thousands of rows a month.
--
-- It is written while a delivery loads (src/cur_daily.c: each loader sums
-- the rows it inserts, with the expressions below, and writes its sums into
-- the delivery's rollup staging table), and swapped in with the line items,
-- in the same transaction: a month's rollup is always the visible delivery's.
-- A parallel load's loaders each write their own sums, so a key may have a
-- row per loader: read it with sum() and GROUP BY, as every view here does.
-- ---------------------------------------------------------------------------

CREATE TABLE billops.cur_daily (
    billing_period     date NOT NULL,
    payer_account_id   text NOT NULL,
    usage_date         date,            -- the UTC day the usage started (NULL: a line without a usage start)
    usage_account_id   text,
    billing_entity     text,
    invoicing_entity   text,
    legal_entity       text,
    bill_type          text,
    line_item_type     text,
    product_code       text,
    service            text,            -- billops._service_of, as every spend view names services
    region             text,
    usage_type         text,
    operation          text,
    pricing_term       text,
    currency           text,
    line_items         bigint NOT NULL,
    unblended_cost     numeric,
    amortized_cost     numeric,         -- billops._amortized_cost per line item, summed
    usage_amount       numeric,
    public_on_demand_cost numeric,
    delivery_id        bigint NOT NULL
) PARTITION BY LIST (billing_period);
COMMENT ON TABLE billops.cur_daily IS
  'The visible CUR line items summed per UTC day, payer, account, service, region, usage type, line item type and the attributes charge sources are decided from; a key may have one row per loader: always sum().';

-- What each column of billops.cur_daily is, over a line item of
-- billops.cur_line_item: the C side evaluates these very expressions (parsed
-- against the staging table) on every row it loads.  'key' columns group,
-- 'sum' columns add up; billing_period, payer_account_id, line_items and
-- delivery_id are the loader's own.
CREATE FUNCTION billops._cur_daily_spec()
RETURNS TABLE (column_name text, role text, expression text)
LANGUAGE sql IMMUTABLE
AS $$
    VALUES ('usage_date', 'key', $e$(line_item_usage_start_date AT TIME ZONE 'UTC')::date$e$),
           ('usage_account_id', 'key', 'line_item_usage_account_id'),
           ('billing_entity', 'key', 'bill_billing_entity'),
           ('invoicing_entity', 'key', 'bill_invoicing_entity'),
           ('legal_entity', 'key', 'line_item_legal_entity'),
           ('bill_type', 'key', 'bill_bill_type'),
           ('line_item_type', 'key', 'line_item_line_item_type'),
           ('product_code', 'key', 'line_item_product_code'),
           ('service', 'key', 'billops._service_of(product, line_item_product_code)'),
           ('region', 'key', 'product_region_code'),
           ('usage_type', 'key', 'line_item_usage_type'),
           ('operation', 'key', 'line_item_operation'),
           ('pricing_term', 'key', 'pricing_term'),
           ('currency', 'key', 'line_item_currency_code'),
           ('unblended_cost', 'sum', 'line_item_unblended_cost'),
           ('amortized_cost', 'sum', 'billops._amortized_cost(line_item_line_item_type, line_item_unblended_cost, '
                                     'savings_plan_savings_plan_effective_cost, savings_plan_total_commitment_to_date, '
                                     'savings_plan_used_commitment, reservation_effective_cost, '
                                     'reservation_unused_amortized_upfront_fee_for_billing_period, reservation_unused_recurring_fee, '
                                     'reservation_reservation_a_r_n)'),
           ('usage_amount', 'sum', 'line_item_usage_amount'),
           ('public_on_demand_cost', 'sum', 'pricing_public_on_demand_cost')
$$;

-- The rollup once more, per month: spend per period, payer, account and service.  Written by the
-- swap (billops._swap_delivery) from the delivery's daily rollup, in the same transaction, so it is
-- always the visible deliveries'.  A year of month-over-month questions reads a few thousand rows.
CREATE TABLE billops.cur_monthly (
    billing_period   date NOT NULL,
    payer_account_id text NOT NULL,
    usage_account_id text,
    service          text,
    line_items       bigint NOT NULL,
    unblended_cost   numeric,
    amortized_cost   numeric,
    currency         text,
    delivery_id      bigint NOT NULL
);
CREATE INDEX ON billops.cur_monthly (billing_period, payer_account_id);
COMMENT ON TABLE billops.cur_monthly IS
  'The visible CUR per billing period, payer, usage account and service (the daily rollup summed by month); written by the swap.';

-- Replace a (period, payer)'s monthly rows with those of the daily rollup table just attached.
CREATE FUNCTION billops._refresh_monthly(target_period date, target_payer text, daily_table regclass, target_delivery_id bigint)
RETURNS void
LANGUAGE plpgsql STRICT
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM billops.cur_monthly WHERE billing_period = target_period AND payer_account_id = target_payer;
    EXECUTE format($q$
        INSERT INTO billops.cur_monthly (billing_period, payer_account_id, usage_account_id, service, line_items,
                                         unblended_cost, amortized_cost, currency, delivery_id)
        SELECT billing_period, payer_account_id, usage_account_id, service, sum(line_items), sum(unblended_cost),
               sum(amortized_cost), min(currency), $1
          FROM %s GROUP BY 1, 2, 3, 4$q$, daily_table) USING target_delivery_id;
END
$$;

-- Spend per month, payer, account and service: the monthly rollup, which sums the same
-- expressions per line item (billops._cur_daily_spec): a year of months answers from thousands of
-- rows, not millions.
CREATE VIEW billops.cur_spend_by_account_service AS
SELECT billing_period, payer_account_id, usage_account_id, service, line_items, unblended_cost, amortized_cost, currency
  FROM billops.cur_monthly;
COMMENT ON VIEW billops.cur_spend_by_account_service IS
  'Unblended and amortized cost per billing period, payer, usage account and service.';
