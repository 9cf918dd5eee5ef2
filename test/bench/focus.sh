#!/usr/bin/env bash
# test/bench/focus.sh — `make bench`, FOCUS exports: one name=value line per figure, all from this run.
#
#   focus_ingest_*   CALL billops.sync_cur_source() of a FOCUS Data Export (layout 'focus') of one
#                    month, BENCH_FOCUS_ROWS rows (default 1,000,000) in 4 gzip CSV files, through
#                    the S3 emulator (SigV4, gunzip, COPY's parser, the loader's checks, the swap)
#   focus_copy_*     plain COPY FROM of the same rows, decompressed, into a table of
#                    billops.focus_line_item's definition
#   focus_ingest_vs_copy_ratio   COPY's seconds ÷ the sync's (issue 18's target: ≥ 0.8)
#
# The export's rows are billops.focus_cost over a generated CUR 2.0 month (every FOCUS 1.2 column and
# AWS's x_ columns, one billing account), written as AWS Data Exports delivers a FOCUS export.
# Each timed step runs three times, alternating with its baseline, and the median counts.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

ROWS="${BENCH_FOCUS_ROWS:-1000000}"
bench_start bench-focus
q -c "CREATE EXTENSION pg_billops CASCADE" >/dev/null
q -c "SELECT FROM billops.create_cur_source('bench', 'bench-billing', 'bench', layout => 'cur2', prefix => 'cur',
      endpoint_url => '$S3_ENDPOINT', path_style => true)"

log "FOCUS: a CUR 2.0 month of $ROWS rows, loaded, then written as a FOCUS export"
gen 2024-05 "$ROWS" 1 --columns all >&2
sync_timed 2024-05-01 bench-focus-cur >/dev/null
plain="$BILLOPS_RUN/focus.csv"
cols=$(q -c "SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
             WHERE attrelid = 'billops.focus_line_item'::regclass AND attnum > 0 AND NOT attisdropped AND attname <> 'extras'")
# one billing account (a Data Export is one payer's); FOCUS date/times in UTC, as exports write them
q -c "SET TimeZone = 'UTC'" -c "\\copy (SELECT $(echo "$cols" | sed 's/"BillingAccountId"/'"'"'999988887777'"'"' AS "BillingAccountId"/') FROM billops.focus_cost) TO '$plain' WITH (FORMAT csv, HEADER true)"
chmod a+r "$plain"
data="$S3_DIR/bench-billing/focus/fexport/data/BILLING_PERIOD=2024-05"
meta="$S3_DIR/bench-billing/focus/fexport/metadata/BILLING_PERIOD=2024-05"
mkdir -p "$data" "$meta"
# 4 files of a quarter of the rows each, every one with the header, as the export writes them
header=$(head -1 "$plain")
lines=$(($(wc -l < "$plain") - 1))
tail -n +2 "$plain" | split -l $(((lines + 3) / 4)) -d -a 1 - "$BILLOPS_RUN/focus-part-"
keys=()
for i in 0 1 2 3; do
    key="focus/fexport/data/BILLING_PERIOD=2024-05/fexport-0000$((i + 1)).csv.gz"
    { echo "$header"; cat "$BILLOPS_RUN/focus-part-$i"; } | gzip -6 > "$S3_DIR/bench-billing/$key"
    rm "$BILLOPS_RUN/focus-part-$i"
    keys+=("\"s3://bench-billing/$key\"")
done
printf '{"executionId": "focus-bench-1", "exportArn": "arn:aws:bcm-data-exports:us-east-1:999988887777:export/fexport",\n "columns": [], "dataFiles": [%s], "additionalOutputFiles": []}\n' \
    "$(IFS=,; echo "${keys[*]}")" > "$meta/fexport-Manifest.json"
gz_bytes=$(find "$data" -name '*.csv.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
q -c "SELECT FROM billops.create_cur_source('bench-focus', 'bench-billing', 'fexport', layout => 'focus', prefix => 'focus',
      endpoint_url => '$S3_ENDPOINT', path_style => true)" \
  -c "CREATE TABLE public.bench_focus_copy (LIKE billops.focus_line_item)"

ingest_timed() { quiesce; BENCH_SOURCE=bench-focus BENCH_SAMPLE_MEMORY=0 sync_timed 2024-05-01 "bench-focus-$1" true; }

log "measuring: COPY, sync, three times"
c1=$(copy_timed public.bench_focus_copy "$cols" "$plain"); i1=$(ingest_timed 1)
c2=$(copy_timed public.bench_focus_copy "$cols" "$plain"); i2=$(ingest_timed 2)
c3=$(copy_timed public.bench_focus_copy "$cols" "$plain"); i3=$(ingest_timed 3)
copy_s=$(median "$c1" "$c2" "$c3")
ingest_s=$(median "$i1" "$i2" "$i3")
rows=$(q -c "SELECT count(*) FROM billops.focus_line_item")
copy_rows=$(q -c "SELECT count(*) FROM public.bench_focus_copy")
[ "$rows" = "$copy_rows" ] || { echo "row counts differ: FOCUS sync $rows, COPY $copy_rows" >&2; exit 1; }
same=$(q -c "SELECT (SELECT sum(\"BilledCost\") FROM billops.focus_line_item) = (SELECT sum(\"BilledCost\") FROM public.bench_focus_copy)")
[ "$same" = t ] || { echo "BilledCost differs between the FOCUS sync and COPY" >&2; exit 1; }

awk -v rows="$rows" -v is="$ingest_s" -v cs="$copy_s" -v gz="$gz_bytes" -v csv="$(stat -c %s "$plain")" \
    -v runs="$i1 $i2 $i3 / $c1 $c2 $c3" 'BEGIN {
    printf "focus_rows=%d\n", rows
    printf "focus_gzip_mb=%.1f\nfocus_csv_mb=%.1f\n", gz / 1048576, csv / 1048576
    printf "focus_ingest_seconds=%.2f\nfocus_ingest_rows_per_s=%.0f\n", is, rows / is
    printf "focus_copy_seconds=%.2f\nfocus_copy_rows_per_s=%.0f\n", cs, rows / cs
    printf "focus_ingest_vs_copy_ratio=%.2f\n", cs / is
    printf "focus_runs_seconds=\"%s\"\n", runs
}'
