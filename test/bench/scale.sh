#!/usr/bin/env bash
# test/bench/scale.sh — `make bench-scale`: how the costs grow with the size of a month, and a year
# of months for the month-over-month question.  A script, not a test: it measures and prints one
# name=value line per figure, all from this one run.
#
# Months of generated CUR 2.0 data (through the S3 emulator, as `make bench`) of SCALE_SIZES rows
# (default 1, 5 and 20 million; AWS splits a large month into files, so one file per million rows),
# then as many months of SCALE_FILL_ROWS (default 500,000) as make a year of 12.  Per sized month:
#   scale_<n>_ingest_seconds      CALL billops.sync_cur_source() of the month (default workers)
#   scale_<n>_build_seconds       billops.build_payables() of it, from scratch
#   scale_<n>_statements_seconds  billops.build_statements() of it (every account in a billing group)
#   scale_<n>_month_by_account_service_rollup_seconds  a month's spend by account × service from
#                                 billops.cur_spend_by_account_service
#   scale_<n>_month_by_account_service_lines_seconds   the same GROUP BY over the line items
#   scale_<n>_daily_rows, scale_<n>_table_bytes        the month's rollup rows and line-item bytes
# and each time also per million rows (_per_million).  Then, over the year:
#   year_month_over_month_seconds        month-over-month change by account × service, 12 months,
#                                        from the monthly rollup (target < 1 s)
#   year_month_over_month_daily_seconds  the same from the daily rollup (billops.cur_daily)
# and a 100 M-row year extrapolated from the largest month's per-million figures (labelled so).
# Each timing is the median of SCALE_RUNS (default 3); the sizes are large, so loads run once.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

read -r -a SIZES <<< "${SCALE_SIZES:-1000000 5000000 20000000}"
FILL="${SCALE_FILL_ROWS:-500000}"
RUNS="${SCALE_RUNS:-3}"
bench_start scale
q -c "ALTER SYSTEM SET autovacuum = off" -c "SELECT pg_reload_conf()" >/dev/null
q <<SQL
CREATE EXTENSION pg_billops CASCADE;
SELECT FROM billops.create_cur_source('bench', 'bench-billing', 'bench', layout => 'cur2', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true);
INSERT INTO billops.billing_group (name) VALUES ('platform'), ('data'), ('web');
SQL

month_of() { printf '2023-%02d' "$1"; }
timed3() {  # timed3 SQL -> the median seconds of RUNS runs
    local runs=()
    for _ in $(seq "$RUNS"); do quiesce; runs+=("$(sql_timed "$1")"); done
    median "${runs[@]}"
}
by_account_service_lines() {  # the month's spend by account and service, from the line items
    echo "SELECT count(*) FROM (SELECT line_item_usage_account_id, billops._service_of(product, line_item_product_code),
            sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '$1-01' GROUP BY 1, 2) x"
}

results=()
m=0
for n in "${SIZES[@]}"; do
    m=$((m + 1)); month=$(month_of "$m"); files=$(( (n + 999999) / 1000000 ))
    log "$month: $n rows in $files files: generate, sync, build, statements, queries"
    gen "$month" "$n" 1 --files "$files" >&2
    quiesce
    ingest=$(BENCH_SAMPLE_MEMORY=0 sync_timed "$month-01" "scale-$m")
    rm -rf "$S3_DIR/bench-billing/cur/bench/data/BILLING_PERIOD=$month"   # loaded: its disk back
    q -c "ANALYZE billops.cur_line_item_${month/-/}"
    # every account in a billing group, round robin: statements allocate the whole month
    q -c "INSERT INTO billops.billing_group_account (billing_group_id, account_id)
          SELECT (SELECT array_agg(billing_group_id ORDER BY billing_group_id) FROM billops.billing_group)[1 + (row_number() OVER (ORDER BY a)) % 3], a
            FROM (SELECT DISTINCT usage_account_id AS a FROM billops.cur_monthly WHERE usage_account_id ~ '^[0-9]{12}\$') x
           WHERE NOT EXISTS (SELECT FROM billops.billing_group_account b WHERE b.account_id = x.a)" >/dev/null
    build=$(sql_timed "SELECT count(*) FROM billops.build_payables('$month-01')")
    statements=$(sql_timed "SELECT count(*) FROM billops.build_statements('$month-01')")
    rollup_q=$(timed3 "SELECT count(*) FROM billops.cur_spend_by_account_service WHERE billing_period = '$month-01'")
    lines_q=$(timed3 "$(by_account_service_lines "$month")")
    daily_rows=$(q -c "SELECT count(*) FROM billops.cur_daily WHERE billing_period = '$month-01'")
    loaded=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '$month-01'")
    bytes=$(q -c "SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits WHERE inhparent = 'billops.cur_line_item_${month/-/}'::regclass")
    [ "$loaded" -gt 0 ] || { echo "$month loaded no rows" >&2; exit 1; }
    results+=("$n $loaded $ingest $build $statements $rollup_q $lines_q $daily_rows $bytes")
done

log "filling the year: $((12 - m)) more months of $FILL rows"
for k in $(seq $((m + 1)) 12); do
    month=$(month_of "$k")
    gen "$month" "$FILL" 1 --files 1 >&2
    BENCH_SAMPLE_MEMORY=0 sync_timed "$month-01" "scale-$k" >/dev/null
    rm -rf "$S3_DIR/bench-billing/cur/bench/data/BILLING_PERIOD=$month"
done
q -c "ANALYZE billops.cur_monthly" -c "ANALYZE billops.cur_daily"

log "month over month by account and service across the year"
mom_sql() {
    echo "SELECT count(*) FROM (SELECT usage_account_id, service, billing_period, amortized_cost,
             amortized_cost - lag(amortized_cost) OVER (PARTITION BY usage_account_id, service ORDER BY billing_period) AS change
        FROM $1) x"
}
from_daily="(SELECT billing_period, usage_account_id, service, sum(amortized_cost) AS amortized_cost
              FROM billops.cur_daily GROUP BY 1, 2, 3) d"
year_mom=$(timed3 "$(mom_sql billops.cur_spend_by_account_service)")
year_mom_daily=$(timed3 "$(mom_sql "$from_daily")")
year_months=$(q -c "SELECT count(DISTINCT billing_period) FROM billops.cur_monthly")
year_lines=$(q -c "SELECT count(*) FROM billops.cur_line_item")
year_daily=$(q -c "SELECT count(*) FROM billops.cur_daily")
year_monthly=$(q -c "SELECT count(*) FROM billops.cur_monthly")
year_bytes=$(q -c "SELECT pg_database_size(current_database())")

for r in "${results[@]}"; do
    read -r n loaded ingest build statements rollup_q lines_q daily_rows bytes <<< "$r"
    awk -v n="$n" -v l="$loaded" -v i="$ingest" -v b="$build" -v s="$statements" -v rq="$rollup_q" -v lq="$lines_q" \
        -v dr="$daily_rows" -v by="$bytes" 'BEGIN {
        p = "scale_" n "_"; mil = l / 1e6
        printf "%srows=%d\n%sdaily_rows=%d\n%stable_bytes=%.0f\n", p, l, p, dr, p, by
        printf "%singest_seconds=%.2f\n%singest_seconds_per_million=%.2f\n", p, i, p, i / mil
        printf "%sbuild_seconds=%.2f\n%sbuild_seconds_per_million=%.2f\n", p, b, p, b / mil
        printf "%sstatements_seconds=%.2f\n%sstatements_seconds_per_million=%.2f\n", p, s, p, s / mil
        printf "%smonth_by_account_service_rollup_seconds=%.3f\n", p, rq
        printf "%smonth_by_account_service_lines_seconds=%.2f\n%smonth_by_account_service_lines_seconds_per_million=%.2f\n", p, lq, p, lq / mil
        printf "%stable_bytes_per_row=%.0f\n", p, by / l
    }'
done
read -r n loaded ingest build statements rollup_q lines_q daily_rows bytes <<< "${results[-1]}"
awk -v yl="$year_lines" -v ym="$year_months" -v yd="$year_daily" -v yms="$year_monthly" -v yb="$year_bytes" \
    -v mom="$year_mom" -v momd="$year_mom_daily" -v l="$loaded" -v i="$ingest" -v b="$build" -v s="$statements" \
    -v lq="$lines_q" -v by="$bytes" 'BEGIN {
    printf "year_months=%d\nyear_line_items=%d\nyear_daily_rows=%d\nyear_monthly_rows=%d\nyear_database_bytes=%.0f\n", ym, yl, yd, yms, yb
    printf "year_month_over_month_seconds=%.3f\nyear_month_over_month_daily_seconds=%.3f\n", mom, momd
    # a 100 M-row year: 12 months of 8.33 M rows, each costing what the largest month cost per million (extrapolated)
    mil = l / 1e6; month = 100 / 12
    printf "extrapolated_100m_year_table_bytes=%.0f\n", by / l * 1e8
    printf "extrapolated_100m_year_month_ingest_seconds=%.0f\n", i / mil * month
    printf "extrapolated_100m_year_month_build_seconds=%.0f\n", b / mil * month
    printf "extrapolated_100m_year_month_statements_seconds=%.0f\n", s / mil * month
    printf "extrapolated_100m_year_month_by_account_service_lines_seconds=%.1f\n", lq / mil * month
}'
