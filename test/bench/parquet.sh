#!/usr/bin/env bash
# test/bench/parquet.sh — `make bench`, Parquet: one name=value line per figure, all from this run.
#
#   parquet_ingest_*     CALL billops.sync_cur_source() of one CUR 2.0 month (BENCH_PARQUET_ROWS,
#                        default 1,250,000 rows: one row group past 128 MB uncompressed) in one
#                        Parquet file written by arrow-rs (1 MiB pages), read from the S3
#                        emulator by ranges
#   csv_gz_ingest_*      the same rows as one gzip CSV file, synced alternately with it
#   duckdb_parquet_load_*  DuckDB (npm, all cores) loading the same Parquet file into a table
#   parquet_*_memory_*   the reader's own peak (its memory contexts) and the loading backend's
#                        peak private memory, for the file and for one of half its rows: both one
#                        row group, so the row group's size changes and the pages do not
#
# Each timed step runs twice, alternating, and the faster run counts.
set -euo pipefail
source "$(dirname "$0")/bench-lib.sh"

PQ_ROWS="${BENCH_PARQUET_ROWS:-1250000}"
HALF=$((PQ_ROWS / 2))
bench_start bench-parquet
q -c "CREATE EXTENSION pg_billops CASCADE" >/dev/null
q -c "SELECT FROM billops.create_cur_source('bench', 'bench-billing', 'bench', layout => 'cur2', prefix => 'cur',
      endpoint_url => '$S3_ENDPOINT', path_style => true)"

log "Parquet: one month as gzip CSV and as Parquet; DuckDB on the same file; memory for two sizes"
gen 2024-06 "$PQ_ROWS" 1 --files 1 >&2
gen 2024-07 "$HALF" 1 --files 1 >&2
bucket_dir="$S3_DIR/bench-billing"
pq_convert() {  # pq_convert PERIOD [--keep-csv]: the month's file as Parquet, one row group
    node "$BILLOPS_ROOT/test/generator/parquet-delivery.mjs" --root "$S3_DIR" --bucket bench-billing \
        --manifest "cur/bench/metadata/BILLING_PERIOD=$1/bench-Manifest.json" --writer arrow-rs \
        --row-group-size 100000000 "${@:2}" | node -e 'const r = JSON.parse(require("fs").readFileSync(0)); console.log(r.files[0].key)'
}
man6="$bucket_dir/cur/bench/metadata/BILLING_PERIOD=2024-06/bench-Manifest.json"
cp "$man6" "$BILLOPS_RUN/manifest-06-csv.json"
pq_large="$bucket_dir/$(pq_convert 2024-06 --keep-csv)"
cp "$man6" "$BILLOPS_RUN/manifest-06-parquet.json"
pq_small="$bucket_dir/$(pq_convert 2024-07)"
pq_gz_bytes=$(find "$bucket_dir/cur/bench/data/BILLING_PERIOD=2024-06" -name '*.csv.gz' -printf '%s\n' | awk '{s+=$1} END {print s}')
as_format() { cp "$BILLOPS_RUN/manifest-06-$1.json" "$man6"; }
as_format csv;     pc1=$(sync_timed 2024-06-01 bench-pq-csv-1 true)
as_format parquet; curl -fsS -X DELETE "$S3_ENDPOINT/_emulator/requests" >/dev/null
                   pp1=$(sync_timed 2024-06-01 bench-pq-parquet-1 true)
pq_gets=$(curl -fsS "$S3_ENDPOINT/_emulator/requests" | node -e 'console.log(JSON.parse(require("fs").readFileSync(0)).filter((e) => e.op === "GetObject").length)')
as_format csv;     pc2=$(sync_timed 2024-06-01 bench-pq-csv-2 true)
as_format parquet; pp2=$(BENCH_MESSAGES=debug1 sync_timed 2024-06-01 bench-pq-parquet-2 true)
pq_csv_s=$(min "$pc1" "$pc2")
pq_s=$(min "$pp1" "$pp2")
pq_mem_large=$(cat "$BILLOPS_RUN/mem.bench-pq-parquet-2")
pq_rows=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-06-01'")
BENCH_MESSAGES=debug1 sync_timed 2024-07-01 bench-pq-small >/dev/null
reader_peak() { sed -n 's/.*Parquet file ".*reader memory peak \([0-9]*\) kB.*/\1/p' "$BILLOPS_RUN/msg.$1" | tail -1; }
pq_reader_large=$(reader_peak bench-pq-parquet-2)
pq_reader_small=$(reader_peak bench-pq-small)
pq_mem_small=$(cat "$BILLOPS_RUN/mem.bench-pq-small")
pq_small_rows=$(q -c "SELECT count(*) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-07-01'")
# DuckDB loading the same Parquet file into a table, and the row groups' uncompressed sizes
duck_out=$(node "$BILLOPS_ROOT/test/bench/duckdb-load.mjs" "$pq_large" "$pq_small")
read -r duck_s duck_rows rg_large rg_small <<<"$duck_out"
[ "$duck_rows" = "$pq_rows" ] || { echo "row counts differ: DuckDB $duck_rows, pg_billops $pq_rows" >&2; exit 1; }

awk -v rows="$pq_rows" -v srows="$pq_small_rows" -v ps="$pq_s" -v cs="$pq_csv_s" -v ds="$duck_s" -v gets="$pq_gets" \
    -v pqb="$(stat -c %s "$pq_large")" -v gzb="$pq_gz_bytes" -v ml="$pq_mem_large" -v ms="$pq_mem_small" \
    -v rgl="$rg_large" -v rgs="$rg_small" -v rl="$pq_reader_large" -v rs="$pq_reader_small" 'BEGIN {
    printf "parquet_rows=%d\n", rows
    printf "parquet_file_mb=%.1f\nparquet_same_rows_gzip_csv_mb=%.1f\n", pqb / 1048576, gzb / 1048576
    printf "parquet_ingest_seconds=%.2f\nparquet_ingest_rows_per_s=%.0f\n", ps, rows / ps
    printf "parquet_s3_get_requests=%d\n", gets
    printf "csv_gz_ingest_seconds=%.2f\ncsv_gz_ingest_rows_per_s=%.0f\n", cs, rows / cs
    printf "parquet_vs_csv_gz_ratio=%.2f\n", cs / ps
    printf "duckdb_parquet_load_seconds=%.2f\nduckdb_parquet_load_rows_per_s=%.0f\n", ds, rows / ds
    printf "parquet_vs_duckdb_ratio=%.2f\n", ds / ps
    printf "parquet_row_group_uncompressed_mb_%d_rows=%.1f\nparquet_row_group_uncompressed_mb_%d_rows=%.1f\n", srows, rgs / 1048576, rows, rgl / 1048576
    printf "parquet_peak_backend_anon_kb_%d_rows=%d\nparquet_peak_backend_anon_kb_%d_rows=%d\n", srows, ms, rows, ml
    printf "parquet_memory_large_vs_small_ratio=%.2f\n", (ms > 0) ? ml / ms : 0
    printf "parquet_reader_peak_kb_%d_rows=%d\nparquet_reader_peak_kb_%d_rows=%d\n", srows, rs, rows, rl
    printf "parquet_reader_memory_large_vs_small_ratio=%.2f\n", (rs > 0) ? rl / rs : 0
}'
