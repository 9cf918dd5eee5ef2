#!/usr/bin/env bash
# test/bench/run.sh — `make bench`.  A script, not a test: it measures and
# prints one name=value line per figure, all from this one run.
#
#   ingest_*            CALL billops.sync_cur_source() of a one-file delivery of ~1M generated
#                       CUR 2.0 rows through the S3 emulator (SigV4, gunzip, COPY's parser), in the
#                       session alone (billops.max_load_workers = 0)
#   copy_*              plain COPY FROM of the same, already decompressed CSV into a table of the
#                       same definition
#   ingest_vs_copy_ratio  COPY's seconds ÷ the sync's (issue 19's target: ≥ 0.9)
#   parallel_ingest_*   the same for a four-file delivery of ~1M rows, loaded in parallel (the
#                       session and billops.max_load_workers workers, the setting's default unless
#                       BENCH_LOAD_WORKERS says)
#   duckdb_*            DuckDB (npm @duckdb/node-api, one thread per core) loading the same four
#                       gzip CSV files into a table: the peer
#   parallel_ingest_vs_duckdb_ratio  DuckDB's seconds ÷ the parallel sync's (target ≥ 1.0)
#   parallel_ingest_vs_copy_ratio    one-stream COPY of the same rows ÷ the parallel sync (target ≥ 1.5)
#   peak_backend_anon_kb_*  peak private (anonymous) memory of the loading backend for a small and
#                       a large one-stream delivery (sampled in runs of their own, not timed)
#   redelivery_*        three re-deliveries of the large month: time and size
#   build_*             billops.build_payables() on the large month (from scratch each time) with
#                       tag and cost-category coding rules
#   groupby_seconds     a plain GROUP BY of the same month by the same attributes: the least work
#                       any build must do
#   build_vs_groupby_ratio  groupby_seconds ÷ build_seconds (target ≥ 0.8)
#
# Each timed step runs three times (BENCH_RUNS), alternating with its baselines, each after a
# CHECKPOINT and the kernel's writeback of the previous step; the median counts, and every run's
# seconds are printed too.  Autovacuum is off in the benchmark's cluster: its ANALYZE of a table
# just loaded would run on the same two cores during the next timing.  The month a build reads is
# analyzed first, as billops.analyze_after_load does after every sync by default.
# test/bench/parquet.sh and focus.sh measure Parquet and FOCUS; all use test/bench/bench-lib.sh.
# BENCH_ROWS (default 1000000) and BENCH_SMALL_ROWS (default 100000) scale it.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

ROWS="${BENCH_ROWS:-1000000}"
SMALL="${BENCH_SMALL_ROWS:-100000}"
RUNS="${BENCH_RUNS:-3}"
bench_start bench
q -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null

log "generating $ROWS rows in one file, $ROWS in four (another month), $SMALL for the memory comparison"
gen 2024-05 "$ROWS" 1 --files 1 --emit-plain "$BILLOPS_RUN/plain-1.csv" >&2
gen 2024-06 "$ROWS" 1 --files 4 --emit-plain "$BILLOPS_RUN/plain-4.csv" >&2
gen 2024-04 "$SMALL" 1 --files 1 >&2
chmod a+r "$BILLOPS_RUN/plain-1.csv" "$BILLOPS_RUN/plain-4.csv"
data() { echo "$S3_DIR/bench-billing/cur/bench/data/BILLING_PERIOD=$1"; }
gz_bytes=$(find "$(data 2024-05)" -name '*.csv.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
csv_bytes=$(stat -c %s "$BILLOPS_RUN/plain-1.csv")

q <<SQL
CREATE EXTENSION pg_billops CASCADE;
SELECT FROM billops.create_cur_source('bench', 'bench-billing', 'bench', layout => 'cur2', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true);
CREATE TABLE public.bench_copy (LIKE billops.cur_line_item);
SQL
columns=$(head -1 "$BILLOPS_RUN/plain-1.csv")
workers="${BENCH_LOAD_WORKERS:-$(q -c "SHOW billops.max_load_workers")}"
# (-1, the default: one fewer than the cores, as the loader reads it)
[ "$workers" != -1 ] || workers=$(( $(nproc) - 1 ))
cores=$(nproc)

ingest() {  # ingest PERIOD APPNAME WORKERS -> seconds of a forced sync, after a checkpoint
    quiesce
    BENCH_SAMPLE_MEMORY=0 BENCH_SETTINGS="SET billops.max_load_workers = $3" sync_timed "$1" "$2" true
}
duckdb() {  # duckdb PERIOD -> seconds DuckDB takes to load the period's gzip CSV files into a table
    quiesce
    local out
    out=$(node "$BILLOPS_ROOT/test/bench/duckdb-csv-load.mjs" "$cores" "$(data "$1")"/*.csv.gz)
    [ "${out#* }" = "$ROWS_4" ] || { echo "DuckDB loaded ${out#* } rows, the sync $ROWS_4" >&2; exit 1; }
    echo "${out% *}"
}

log "one file, one stream: COPY and sync, $RUNS times each, alternating"
copy_runs=(); ingest_runs=()
for i in $(seq "$RUNS"); do
    copy_runs+=("$(copy_timed public.bench_copy "$columns" "$BILLOPS_RUN/plain-1.csv")")
    ingest_runs+=("$(ingest 2024-05-01 "bench-ingest-$i" 0)")
done
rows_loaded=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-05-01'")
# what the daily rollup cost those loads: the loader's time summing and writing it, of its load time
rollup=$(q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.daily_ms)::numeric, 0) || ' ' ||
                      round(percentile_cont(0.5) WITHIN GROUP (ORDER BY p.daily_ms / d.load_ms)::numeric, 3)
                 FROM billops.cur_delivery d JOIN billops.cur_delivery_partition p USING (delivery_id)
                WHERE d.billing_period = '2024-05-01' AND d.status IN ('loaded', 'superseded')")
copy_rows=$(q -c "SELECT count(*) FROM public.bench_copy")
[ "$rows_loaded" = "$copy_rows" ] || { echo "row counts differ: ingest $rows_loaded, COPY $copy_rows" >&2; exit 1; }

log "four files in parallel ($workers workers): DuckDB, sync and COPY, $RUNS times each, alternating"
ingest 2024-06-01 bench-parallel-0 "$workers" >/dev/null   # the month exists before DuckDB's row check
ROWS_4=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-06-01'")
duck_runs=(); par_runs=(); copy4_runs=()
for i in $(seq "$RUNS"); do
    duck_runs+=("$(duckdb 2024-06)")
    par_runs+=("$(ingest 2024-06-01 "bench-parallel-$i" "$workers")")
    copy4_runs+=("$(copy_timed public.bench_copy "$columns" "$BILLOPS_RUN/plain-4.csv")")
done
[ "$(q -c "SELECT count(*) FROM public.bench_copy")" = "$ROWS_4" ] || { echo "row counts differ: parallel sync $ROWS_4, COPY" >&2; exit 1; }
files_by=$(q -c "SELECT count(DISTINCT loader_pid) FROM billops.cur_delivery_file f
                 WHERE f.delivery_id = (SELECT max(delivery_id) FROM billops.cur_delivery WHERE billing_period = '2024-06-01')")

log "memory: a small and a large delivery, one stream each (sampled, not timed)"
BENCH_SETTINGS="SET billops.max_load_workers = 0" sync_timed 2024-04-01 bench-small >/dev/null
mem_small=$(cat "$BILLOPS_RUN/mem.bench-small")
BENCH_SETTINGS="SET billops.max_load_workers = 0" sync_timed 2024-05-01 bench-large true >/dev/null
mem_large=$(cat "$BILLOPS_RUN/mem.bench-large")

log "re-deliveries"
size_of_month() {
    q -c "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
           WHERE inhparent = 'billops.cur_line_item_202405'::regclass"
}
size_first=$(size_of_month)
redeliveries=()
for k in 2 3 4; do
    gen 2024-05 "$ROWS" "$k" --files 1 >&2
    redeliveries+=("$(sync_timed 2024-05-01 "bench-redeliver-$k")")
done
size_after=$(size_of_month)
leftovers=$(q -c "SELECT count(*) FROM pg_class WHERE relnamespace = 'billops'::regnamespace AND relname ~ '_d[0-9]+\$'
                   AND NOT EXISTS (SELECT 1 FROM billops.cur_partition WHERE 'billops.' || relname IN (table_name, daily_table))")

log "payables: build the large month from scratch and GROUP BY it, $RUNS times each, alternating"
q -c "INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100')" \
  -c "INSERT INTO billops.coding_rule (field, value, cost_category_key) VALUES ('department', '\$cost_category', 'Team')" \
  -c "INSERT INTO billops.coding_rule (field, value, tag_key) VALUES ('project', '\$tag', 'user_cost_center')" \
  -c "ANALYZE billops.cur_line_item_202405"
# the payables the build wrote, gone (the benchmark's own database: past the lifecycle triggers)
from_scratch() { q -c "SET session_replication_role = replica" -c "TRUNCATE billops.payable CASCADE"; quiesce; }
groupby_sql="SELECT sum(length(s)) FROM (SELECT bill_payer_account_id, bill_billing_entity, bill_invoicing_entity,
    line_item_legal_entity, line_item_line_item_type, bill_bill_type, line_item_product_code,
    billops._service_of(product, line_item_product_code) AS s, line_item_usage_account_id,
    line_item_currency_code, resource_tags->'user_cost_center', cost_category->'Team', sum(line_item_unblended_cost), count(*)
    FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-05-01' GROUP BY 1,2,3,4,5,6,7,8,9,10,11,12) x"
build_runs=(); groupby_runs=()
for i in $(seq "$RUNS"); do
    quiesce
    groupby_runs+=("$(sql_timed "$groupby_sql")")
    from_scratch
    build_runs+=("$(sql_timed "SELECT count(*) FROM billops.build_payables('2024-05-01')")")
done
build_again=$(sql_timed "SELECT count(*) FROM billops.build_payables('2024-05-01')")

log "month over month by account and service: from the daily rollup and from the line items"
mom_sql() {  # the question a BI tool asks, over billops.cur_spend_by_account_service or the line items
    echo "SELECT count(*) FROM (SELECT usage_account_id, service, billing_period, amortized_cost,
             amortized_cost - lag(amortized_cost) OVER (PARTITION BY usage_account_id, service ORDER BY billing_period) AS change
        FROM $1) x"
}
from_lines="(SELECT bill_billing_period_start_date AS billing_period, line_item_usage_account_id AS usage_account_id,
    billops._service_of(product, line_item_product_code) AS service,
    sum(billops._amortized_cost(line_item_line_item_type, line_item_unblended_cost, savings_plan_savings_plan_effective_cost,
        savings_plan_total_commitment_to_date, savings_plan_used_commitment, reservation_effective_cost,
        reservation_unused_amortized_upfront_fee_for_billing_period, reservation_unused_recurring_fee,
        reservation_reservation_a_r_n)) AS amortized_cost
    FROM billops.cur_line_item GROUP BY 1, 2, 3) s"
q -c "ANALYZE billops.cur_daily"
mom_runs=(); mom_lines_runs=()
for i in $(seq "$RUNS"); do
    mom_runs+=("$(sql_timed "$(mom_sql billops.cur_spend_by_account_service)")")
    mom_lines_runs+=("$(sql_timed "$(mom_sql "$from_lines")")")
done
months=$(q -c "SELECT count(DISTINCT billing_period) FROM billops.cur_daily")
daily_rows=$(q -c "SELECT count(*) FROM billops.cur_daily")
line_rows=$(q -c "SELECT count(*) FROM billops.cur_line_item")
payables=$(q -c "SELECT count(*) FROM billops.payable WHERE billing_period = '2024-05-01'")

copy_s=$(median "${copy_runs[@]}"); ingest_s=$(median "${ingest_runs[@]}")
duck_s=$(median "${duck_runs[@]}"); par_s=$(median "${par_runs[@]}"); copy4_s=$(median "${copy4_runs[@]}")
build_s=$(median "${build_runs[@]}"); groupby_s=$(median "${groupby_runs[@]}")
mom_s=$(median "${mom_runs[@]}"); mom_lines_s=$(median "${mom_lines_runs[@]}")
awk -v rows="$rows_loaded" -v rows4="$ROWS_4" -v is="$ingest_s" -v cs="$copy_s" -v gz="$gz_bytes" -v csv="$csv_bytes" \
    -v ds="$duck_s" -v ps="$par_s" -v c4="$copy4_s" -v w="$workers" -v by="$files_by" -v cores="$cores" \
    -v ms="$mem_small" -v ml="$mem_large" -v small="$SMALL" -v s1="$size_first" -v s2="$size_after" \
    -v r1="${redeliveries[0]}" -v r2="${redeliveries[1]}" -v r3="${redeliveries[2]}" -v left="$leftovers" \
    -v b1="$build_s" -v b2="$build_again" -v gb="$groupby_s" -v np="$payables" \
    -v ingest_runs="${ingest_runs[*]} / ${copy_runs[*]}" -v par_runs="${par_runs[*]} / ${duck_runs[*]} / ${copy4_runs[*]}" \
    -v build_runs="${build_runs[*]} / ${groupby_runs[*]}" -v rollup="$rollup" -v mom="$mom_s" -v moml="$mom_lines_s" \
    -v months="$months" -v drows="$daily_rows" -v lrows="$line_rows" 'BEGIN {
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
    printf "ingest_runs_seconds=\"%s\"\n", ingest_runs
    printf "parallel_rows=%d\nparallel_files=4\nparallel_load_workers=%d\nparallel_loaders_seen=%d\ncores=%d\n", rows4, w, by, cores
    printf "parallel_ingest_seconds=%.2f\nparallel_ingest_rows_per_s=%.0f\n", ps, rows4 / ps
    printf "duckdb_seconds=%.2f\nduckdb_rows_per_s=%.0f\n", ds, rows4 / ds
    printf "parallel_copy_seconds=%.2f\nparallel_copy_rows_per_s=%.0f\n", c4, rows4 / c4
    printf "parallel_ingest_vs_duckdb_ratio=%.2f\n", ds / ps
    printf "parallel_ingest_vs_copy_ratio=%.2f\n", c4 / ps
    printf "parallel_runs_seconds=\"%s\"\n", par_runs
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
    printf "build_runs_seconds=\"%s\"\n", build_runs
    split(rollup, r, " ")
    printf "rollup_ms_per_delivery=%d\nrollup_share_of_load=%.3f\n", r[1], r[2]
    printf "rollup_months=%d\nrollup_rows=%d\nline_item_rows=%d\n", months, drows, lrows
    printf "month_over_month_from_rollup_seconds=%.3f\nmonth_over_month_from_line_items_seconds=%.2f\n", mom, moml
}'
