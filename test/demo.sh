#!/usr/bin/env bash
# test/demo.sh — the monthly flow so far, end to end, on one machine:
#   AWS delivers CUR files to S3 (here: the S3 emulator, which checks every
#   SigV4 signature) → pg_billops finds each month's newest delivery through its
#   manifest → streams S3 → gunzip → COPY into fresh partitions → swaps them in
#   → finance looks at spend by account and service.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

install_deps
build_extension
start_cluster demo
S3_DIR="$BILLOPS_RUN/s3"
mkdir -p "$S3_DIR" && chmod 755 "$S3_DIR"
start_s3_emulator "$S3_DIR"

log "AWS delivers: the real November 2023 sample, and generated Dec 2023 - Feb 2024 months"
node "$BILLOPS_ROOT/test/generator/stage-csv.mjs" --csv "$SHARED/testdata/cur/legacy-cur-2023-11-sample.csv" \
    --out "$S3_DIR" --bucket acme-billing --prefix cur --report sample-payer --assembly 7c1e2d3a-sample >/dev/null
for month_rows in 2023-12:36000 2024-01:39000; do
    node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$S3_DIR" --bucket acme-billing --prefix cur \
        --report acme-hourly --layout legacy --period "${month_rows%:*}" --rows "${month_rows#*:}" --payers 2 --accounts 6 \
        --deliveries 2 --final --seed 42 >/dev/null
done
# February is still open: AWS has delivered it three times so far (the newest counts)
node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$S3_DIR" --bucket acme-billing --prefix cur \
    --report acme-hourly --layout legacy --period 2024-02 --rows 42000 --payers 2 --accounts 6 \
    --deliveries 4 --delivery 3 --seed 42 >/dev/null

psql -qX -v ON_ERROR_STOP=1 <<SQL
\set QUIET on
CREATE EXTENSION pg_billops;
\echo
\echo '--- register where AWS delivers the reports (credentials are a reference, never a key)'
SELECT billops.create_cur_source('acme-hourly', 'acme-billing', 'acme-hourly', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true, credentials => 'default') AS source_id;
SELECT billops.create_cur_source('sample-payer', 'acme-billing', 'sample-payer', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true) AS source_id;
\echo '--- sync: S3 → gunzip → COPY → atomic partition swap'
CALL billops.sync_cur_source('acme-hourly');
CALL billops.sync_cur_source('sample-payer');
\echo '--- a second sync finds nothing new: the same delivery twice is a no-op'
CALL billops.sync_cur_source('acme-hourly');
SQL

# AWS delivers February once more (a late credit); the next sync replaces the month atomically
node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$S3_DIR" --bucket acme-billing --prefix cur \
    --report acme-hourly --layout legacy --period 2024-02 --rows 42000 --payers 2 --accounts 6 \
    --deliveries 4 --delivery 4 --seed 42 >/dev/null

psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\echo '--- AWS re-delivered February; sync replaces the month'
CALL billops.sync_cur_source('acme-hourly', only_period => '2024-02-01');
\pset footer off
\echo
\echo '=== Delivery history (billops.cur_delivery) ==='
SELECT d.delivery_id AS id, s.name AS source, to_char(d.billing_period, 'YYYY-MM') AS period,
       left(d.assembly_id, 13) AS assembly, d.status, d.file_count AS files,
       pg_size_pretty(d.bytes_read) AS read, to_char(d.rows_loaded, 'FM999,999,999') AS rows,
       round(d.load_ms)::int AS load_ms, round(d.swap_ms)::int AS swap_ms
  FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) ORDER BY d.delivery_id;
\echo
\echo '=== What is visible, and is it final? (billops.cur_period_status) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, payer_account_id AS payer, source_name AS source,
       to_char(line_items, 'FM999,999') AS line_items, invoice_state,
       coalesce(array_to_string(invoice_ids[1:2], ', '), '') AS invoices
  FROM billops.cur_period_status ORDER BY 1, 2;
\echo
\echo '=== Monthly spend by payer (unblended vs amortized, USD) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, payer_account_id AS payer,
       to_char(sum(unblended_cost), 'FM$999,999,990.00') AS unblended,
       to_char(sum(amortized_cost), 'FM$999,999,990.00') AS amortized,
       to_char(100.0 * (sum(unblended_cost) / nullif(lag(sum(unblended_cost)) OVER (PARTITION BY payer_account_id ORDER BY billing_period), 0) - 1), 'FMS990.0"%"') AS mom
  FROM billops.cur_spend_by_account_service GROUP BY 1, billing_period, 2 ORDER BY 2, 1;
\echo
\echo '=== February 2024: top accounts x services (what finance will be asked about) ==='
WITH s AS (
  SELECT usage_account_id, service, unblended_cost, amortized_cost,
         rank() OVER (ORDER BY unblended_cost DESC) AS r,
         sum(unblended_cost) OVER () AS month_total
    FROM billops.cur_spend_by_account_service WHERE billing_period = '2024-02-01')
SELECT usage_account_id AS account, left(service, 34) AS service,
       to_char(unblended_cost, 'FM$999,999,990.00') AS unblended,
       to_char(amortized_cost, 'FM$999,999,990.00') AS amortized,
       to_char(100 * unblended_cost / month_total, 'FM990.0"%"') AS share,
       repeat('█', greatest(1, (40 * unblended_cost / max(unblended_cost) OVER ())::int)) AS bar
  FROM s WHERE r <= 15 ORDER BY r;
\echo
\echo '=== AWS Marketplace sellers in February 2024 (each one a future payable) ==='
SELECT line_item_legal_entity AS seller, count(*) AS line_items,
       to_char(sum(line_item_unblended_cost), 'FM$999,999,990.00') AS amount
  FROM billops.cur_line_item
 WHERE bill_billing_period_start_date = '2024-02-01' AND bill_billing_entity = 'AWS Marketplace'
 GROUP BY 1 ORDER BY sum(line_item_unblended_cost) DESC;
SQL
log "demo finished; every number above came through S3 (emulated), SigV4, gunzip and COPY"
