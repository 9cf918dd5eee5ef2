-- ---------------------------------------------------------------------------
-- CUR ingest: views for analysts, BI tools and DBAs.
-- ---------------------------------------------------------------------------

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

-- Spend per payer, period, usage account and service.  amortized_cost follows
-- AWS's CUR query library (RI and Savings Plan effective cost, fees spread).
CREATE VIEW billops.cur_spend_by_account_service AS
SELECT bill_billing_period_start_date AS billing_period,
       bill_payer_account_id AS payer_account_id,
       line_item_usage_account_id AS usage_account_id,
       coalesce(product_product_name, product->>'product_name', line_item_product_code) AS service,
       count(*) AS line_items,
       sum(line_item_unblended_cost) AS unblended_cost,
       sum(CASE line_item_line_item_type
             WHEN 'SavingsPlanCoveredUsage' THEN savings_plan_savings_plan_effective_cost
             WHEN 'SavingsPlanRecurringFee' THEN savings_plan_total_commitment_to_date - savings_plan_used_commitment
             WHEN 'SavingsPlanNegation' THEN 0
             WHEN 'SavingsPlanUpfrontFee' THEN 0
             WHEN 'DiscountedUsage' THEN reservation_effective_cost
             ELSE line_item_unblended_cost END) AS amortized_cost,
       min(line_item_currency_code) AS currency
  FROM billops.cur_line_item
 GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW billops.cur_spend_by_account_service IS
  'Unblended and amortized cost per billing period, payer, usage account and service.';
