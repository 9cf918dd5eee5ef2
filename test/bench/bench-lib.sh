#!/usr/bin/env bash
# test/bench/bench-lib.sh — what the benchmark scripts share: a throwaway cluster with the S3
# emulator, the CUR generator, a timed sync with the loading backend's peak memory sampled.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

bench_start() {  # bench_start NAME: deps, build, cluster, S3 emulator; sets S3_DIR
    install_deps >&2
    build_extension >&2
    start_cluster "$1" >&2
    S3_DIR="$BILLOPS_RUN/s3"
    mkdir -p "$S3_DIR" && chmod 755 "$S3_DIR"
    start_s3_emulator "$S3_DIR" >&2
}

gen() {  # gen PERIOD ROWS DELIVERY [extra args]
    local period="$1" rows="$2" k="$3"; shift 3
    node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$S3_DIR" --bucket bench-billing --prefix cur \
        --report bench --layout cur2 --columns known --period "$period" --rows "$rows" \
        --deliveries 4 --delivery "$k" --seed 2024 --quiet "$@"
}
q() { psql -qXAt -v ON_ERROR_STOP=1 "$@"; }

now() { date +%s.%N; }

# Sample the loading backend's private memory (RssAnon excludes shared buffers).
sample_memory() {  # sample_memory APPNAME OUTFILE
    local app="$1" out="$2" pid="" max=0
    for _ in $(seq 1 200); do
        pid=$(q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' LIMIT 1")
        [ -n "$pid" ] && break; sleep 0.05
    done
    while [ -n "$pid" ] && [ -r "/proc/$pid/status" ] && [ ! -e "$out.stop" ]; do
        v=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        [ "${v:-0}" -gt "$max" ] && max=$v
        sleep 0.02
    done
    echo "$max" > "$out"
}

# Before a timed step: the previous step's dirty pages written (a CHECKPOINT, then the kernel's
# writeback), so that no step pays for another's writes.
quiesce() { q -c "CHECKPOINT"; sync; }

sync_timed() {  # sync_timed PERIOD APPNAME [force] -> seconds; memory peak in $BILLOPS_RUN/mem.APPNAME
    # (the source synced: $BENCH_SOURCE, default bench; BENCH_SETTINGS: a SET statement run first).  BENCH_SAMPLE_MEMORY=0 leaves the memory
    # sampler out: it starts a process 50 times a second, CPU a 2-core machine's load then lacks,
    # so a timing compared with a baseline is taken without it.
    local period="$1" app="$2" force="${3:-false}" t0 t1 sampler=""
    rm -f "$BILLOPS_RUN/mem.$app" "$BILLOPS_RUN/mem.$app.stop"
    if [ "${BENCH_SAMPLE_MEMORY:-1}" != 0 ]; then
        sample_memory "$app" "$BILLOPS_RUN/mem.$app" &
        sampler=$!
    fi
    t0=$(now)
    # (the server's messages at BENCH_MESSAGES, default warning, go to $BILLOPS_RUN/msg.APPNAME)
    PGAPPNAME="$app" psql -qXAt -v ON_ERROR_STOP=1 -c "SET client_min_messages = ${BENCH_MESSAGES:-warning}" \
        -c "SET billops.analyze_after_load = off" -c "${BENCH_SETTINGS:-SELECT}" \
        -c "CALL billops.sync_cur_source('${BENCH_SOURCE:-bench}', only_period => '$period', force => $force)" \
        2> "$BILLOPS_RUN/msg.$app" || { cat "$BILLOPS_RUN/msg.$app" >&2; return 1; }
    t1=$(now)
    touch "$BILLOPS_RUN/mem.$app.stop"; [ -z "$sampler" ] || wait "$sampler" || true
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

sql_timed() {  # sql_timed SQL -> seconds
    local t0 t1
    t0=$(now)
    q -c "SET client_min_messages = warning" -c "$1" >/dev/null
    t1=$(now)
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}'
}

copy_timed() {  # copy_timed TABLE COLUMNS CSVFILE -> seconds of plain COPY FROM into the emptied table
    q -c "TRUNCATE $1"
    quiesce
    sql_timed "COPY $1 ($2) FROM '$3' WITH (FORMAT csv, HEADER true)"
}

min() { echo "$1 $2" | awk '{print ($1 < $2) ? $1 : $2}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

