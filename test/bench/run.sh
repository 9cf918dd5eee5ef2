#!/usr/bin/env bash
# test/bench/run.sh — `make bench`.  A script, not a test: it measures and
# prints one name=value line per figure, all from this one run.
#
#   ingest_*            CALL billops.sync_cur_source() on ~1M generated CUR 2.0
#                       rows through the S3 emulator (SigV4, gunzip, COPY parser)
#   copy_*              plain COPY FROM of the same, already decompressed CSV
#                       into a table of the same definition
#   ingest_vs_copy_ratio  ingest rows/s ÷ COPY rows/s (target ≥ 0.8)
#   peak_backend_anon_kb_*  peak private (anonymous) memory of the loading
#                       backend for a small and a large delivery
#   redelivery_*        three re-deliveries of the large month: time and size
#   build_*             billops.build_payables() on the large month (first build,
#                       then an unchanged re-run) with tag and cost-category coding
#   groupby_seconds     a plain GROUP BY of the same month by the same attributes:
#                       the least work any build must do
#   build_vs_groupby_ratio  groupby_seconds ÷ build_seconds
#
# test/bench/parquet.sh measures Parquet; both use test/bench/bench-lib.sh.
# Each timed step runs twice, alternating, and the faster run counts.
# BENCH_ROWS (default 1000000) and BENCH_SMALL_ROWS (default 100000) scale it.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

ROWS="${BENCH_ROWS:-1000000}"
SMALL="${BENCH_SMALL_ROWS:-100000}"
bench_start bench

log "generating $ROWS rows (and $SMALL for the memory comparison)"
gen 2024-05 "$ROWS" 1 --emit-plain "$BILLOPS_RUN/plain.csv" >&2
gen 2024-04 "$SMALL" 1 >&2
chmod a+r "$BILLOPS_RUN/plain.csv"
gz_bytes=$(find "$S3_DIR/bench-billing/cur/bench/data/BILLING_PERIOD=2024-05" -name '*.csv.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
csv_bytes=$(stat -c %s "$BILLOPS_RUN/plain.csv")

q <<SQL
CREATE EXTENSION pg_billops CASCADE;
SELECT FROM billops.create_cur_source('bench', 'bench-billing', 'bench', layout => 'cur2', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true);
CREATE TABLE public.bench_copy (LIKE billops.cur_line_item);
SQL
columns=$(head -1 "$BILLOPS_RUN/plain.csv")


log "measuring: COPY, ingest, COPY, ingest"
q -c "CHECKPOINT"
c1=$(copy_timed public.bench_copy "$columns" "$BILLOPS_RUN/plain.csv")
q -c "CHECKPOINT"
i1=$(sync_timed 2024-05-01 bench-ingest-1)
c2=$(copy_timed public.bench_copy "$columns" "$BILLOPS_RUN/plain.csv")
q -c "CHECKPOINT"
i2=$(sync_timed 2024-05-01 bench-ingest-2 true)
copy_s=$(min "$c1" "$c2")
ingest_s=$(min "$i1" "$i2")
mem_large=$(cat "$BILLOPS_RUN/mem.bench-ingest-2")
rows_loaded=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-05-01'")
copy_rows=$(q -c "SELECT count(*) FROM public.bench_copy")
[ "$rows_loaded" = "$copy_rows" ] || { echo "row counts differ: ingest $rows_loaded, COPY $copy_rows" >&2; exit 1; }

log "memory: small delivery"
sync_timed 2024-04-01 bench-small >/dev/null
mem_small=$(cat "$BILLOPS_RUN/mem.bench-small")

log "re-deliveries"
size_of_month() {
    q -c "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
           WHERE inhparent = 'billops.cur_line_item_202405'::regclass"
}
size_first=$(size_of_month)
redeliveries=()
for k in 2 3 4; do
    gen 2024-05 "$ROWS" "$k" >&2
    redeliveries+=("$(sync_timed 2024-05-01 "bench-redeliver-$k")")
done
size_after=$(size_of_month)
leftovers=$(q -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'billops'::regnamespace AND relname ~ '_d[0-9]+\$'
                   AND NOT EXISTS (SELECT 1 FROM billops.cur_partition WHERE table_name = 'billops.' || relname)")

log "payables: build the large month"
q -c "INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100')" \
  -c "INSERT INTO billops.coding_rule (field, value, cost_category_key) VALUES ('department', '\$cost_category', 'Team')" \
  -c "INSERT INTO billops.coding_rule (field, value, tag_key) VALUES ('project', '\$tag', 'user_cost_center')"
build_first=$(sql_timed "SELECT count(*) FROM billops.build_payables('2024-05-01')")
build_again=$(sql_timed "SELECT count(*) FROM billops.build_payables('2024-05-01')")
groupby_s=$(sql_timed "SELECT sum(length(s)) FROM (SELECT bill_payer_account_id, bill_billing_entity, bill_invoicing_entity,
    line_item_legal_entity, line_item_line_item_type, bill_bill_type, line_item_product_code,
    billops._service_of(product, line_item_product_code) AS s, line_item_usage_account_id,
    line_item_currency_code, resource_tags->'user_cost_center', cost_category->'Team', sum(line_item_unblended_cost), count(*)
    FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-05-01' GROUP BY 1,2,3,4,5,6,7,8,9,10,11,12) x")
payables=$(q -c "SELECT count(*) FROM billops.payable WHERE billing_period = '2024-05-01'")

awk -v rows="$rows_loaded" -v is="$ingest_s" -v cs="$copy_s" -v gz="$gz_bytes" -v csv="$csv_bytes" \
    -v ms="$mem_small" -v ml="$mem_large" -v small="$SMALL" -v s1="$size_first" -v s2="$size_after" \
    -v r1="${redeliveries[0]}" -v r2="${redeliveries[1]}" -v r3="${redeliveries[2]}" -v left="$leftovers" \
    -v b1="$build_first" -v b2="$build_again" -v gb="$groupby_s" -v np="$payables" 'BEGIN {
    printf "rows=%d\n", rows
    printf "csv_mb=%.1f\n", csv / 1048576
    printf "gzip_mb=%.1f\n", gz / 1048576
    printf "ingest_seconds=%.2f\n", is
    printf "ingest_rows_per_s=%.0f\n", rows / is
    printf "ingest_mb_per_s_uncompressed=%.1f\n", csv / 1048576 / is
    printf "ingest_mb_per_s_compressed=%.1f\n", gz / 1048576 / is
    printf "copy_seconds=%.2f\n", cs
    printf "copy_rows_per_s=%.0f\n", rows / cs
    printf "ingest_vs_copy_ratio=%.2f\n", cs / is
    printf "peak_backend_anon_kb_%d_rows=%d\n", small, ms
    printf "peak_backend_anon_kb_%d_rows=%d\n", rows, ml
    printf "memory_large_vs_small_ratio=%.2f\n", (ms > 0) ? ml / ms : 0
    printf "first_delivery_table_mb=%.1f\n", s1 / 1048576
    printf "redelivery_1_seconds=%.2f\nredelivery_2_seconds=%.2f\nredelivery_3_seconds=%.2f\n", r1, r2, r3
    printf "redelivery_vs_first_time_ratio=%.2f\n", (r1 + r2 + r3) / 3 / is
    printf "table_mb_after_3_redeliveries=%.1f\n", s2 / 1048576
    printf "table_size_after_vs_first_ratio=%.2f\n", (s1 > 0) ? s2 / s1 : 0
    printf "leftover_staging_tables=%d\n", left
    printf "payables_built=%d\n", np
    printf "build_seconds=%.2f\nbuild_rows_per_s=%.0f\n", b1, rows / b1
    printf "build_unchanged_rerun_seconds=%.2f\n", b2
    printf "groupby_seconds=%.2f\n", gb
    printf "build_vs_groupby_ratio=%.2f\n", gb / b1
}'
