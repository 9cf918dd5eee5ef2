#!/usr/bin/env bash
# test/run-tests.sh — every test pg_billops has, on a fresh Debian 12 machine.
#
#   1. build with -Wall -Wextra -Werror and install
#   2. pg_regress (sql/NN_*.sql vs expected/): the SQL surface
#   3. pgTAP (test/pgtap/*.sql via pg_prove): invariants
#   4. the Parquet reader's core outside the server (test/fuzz): its seed
#      corpus and regressions under ASan + UBSan, and a 30 s libFuzzer run
#   5. integration tests (node --test test/integration): SigV4 suite, S3
#      emulator ingest, faults, atomic swap, cancel; plus the emulator's and
#      the generator's own tests
#
# Ends with one line "N passed, N failed"; exits non-zero if anything failed.
set -uo pipefail
source "$(dirname "$0")/lib.sh"
set +e

install_deps || exit 1
build_extension || exit 1
start_cluster test || exit 1
mkdir -p "$BILLOPS_RUN/s3" && chmod 755 "$BILLOPS_RUN/s3"
start_s3_emulator "$BILLOPS_RUN/s3" || exit 1
start_bill_emulator || exit 1
start_aws_api_emulator || exit 1
export BILLOPS_RUN BILLOPS_SHARED="$SHARED" BILLOPS_SAMPLE="$SHARED/testdata/cur/legacy-cur-2023-11-sample.csv"

PASSED=0
FAILED=0
count() { PASSED=$((PASSED + $1)); FAILED=$((FAILED + $2)); }

log "pg_regress"
tests=$(ls "$BILLOPS_ROOT"/sql/[0-9][0-9]_*.sql | wc -l)
if make -C "$BILLOPS_ROOT" -s installcheck PG_CONFIG=$PGBIN/pg_config; then
    count "$tests" 0
else
    cat "$BILLOPS_ROOT/regression.diffs" 2>/dev/null
    # (grep -c prints 0 and fails when nothing matches: a run that failed before any test, such as an
    # extension that does not install, counts as one failure, never as none)
    failed_n=$(grep -c '^not ok\|FAILED\|failed (ignored)' "$BILLOPS_ROOT/regression.out" 2>/dev/null || true)
    [ "${failed_n:-0}" -gt 0 ] 2>/dev/null || failed_n=1
    count $((tests - failed_n)) "$failed_n"
fi

log "pgTAP"
psql -qX -c "CREATE DATABASE billops_tap" >/dev/null
psql -qX -d billops_tap -c "CREATE EXTENSION pgtap; CREATE EXTENSION pg_billops CASCADE" >/dev/null
out=$(BILLOPS_SHARED="$SHARED" pg_prove -d billops_tap --ext .sql -r "$BILLOPS_ROOT/test/pgtap" 2>&1)
echo "$out"
tap_total=$(echo "$out" | sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\).*/\1/p')
tap_failed=$(echo "$out" | grep -oE 'Failed [0-9]+/[0-9]+ subtests' | awk '{split($2,a,"/"); s+=a[1]} END {print s+0}')
if echo "$out" | grep -q '^Result: PASS'; then count "${tap_total:-0}" 0
else count $(( ${tap_total:-0} - tap_failed )) $(( tap_failed > 0 ? tap_failed : 1 )); fi

log "Parquet reader outside the server: seed corpus and regressions under ASan + UBSan, then a short libFuzzer run"
# (test/fuzz/README.md: the long runs; a crash here is a bug found by this change)
if make -C "$BILLOPS_ROOT/test/fuzz" -s parquet_check parquet_fuzz >&2; then
    for f in "$BILLOPS_ROOT"/test/fuzz/corpus/* "$BILLOPS_ROOT"/test/fuzz/regressions/*; do
        if "$BILLOPS_ROOT/test/fuzz/parquet_check" "$f"; then count 1 0; else echo "not ok: $f"; count 0 1; fi
    done
    fuzz_dir="$BILLOPS_RUN/fuzz-corpus"
    mkdir -p "$fuzz_dir" && cp "$BILLOPS_ROOT"/test/fuzz/corpus/* "$fuzz_dir"/
    if (cd "$BILLOPS_RUN" && "$BILLOPS_ROOT/test/fuzz/parquet_fuzz" -max_total_time=30 -rss_limit_mb=2048 \
            -print_final_stats=1 "$fuzz_dir" > "$BILLOPS_RUN/fuzz.log" 2>&1); then
        grep -E '^stat::(number_of_executed_units|new_units_added)' "$BILLOPS_RUN/fuzz.log"
        count 1 0
    else
        tail -n 40 "$BILLOPS_RUN/fuzz.log"; echo "not ok: libFuzzer found a crash (the input is in $BILLOPS_RUN)"; count 0 1
    fi
else
    echo "not ok: the Parquet fuzz harness did not build"; count 0 1
fi

log "integration tests (node --test)"
# one test file at a time where node can be told so (older node versions cannot; the files also
# pass when run in parallel)
serial=""
node --test-concurrency=1 -e "" >/dev/null 2>&1 && serial="--test-concurrency=1"
out=$(cd "$BILLOPS_ROOT" && node --test $serial \
        test/integration/*.test.mjs test/emulators/s3/*.test.mjs test/emulators/bill/*.test.mjs \
        test/emulators/aws-api/*.test.mjs test/generator/*.test.mjs 2>&1)
# one line per test; the full report only for failures
echo "$out" | awk '
    /^[[:space:]]*not ok [0-9]+ - / { print; infail = 1; next }
    /^[[:space:]]*ok [0-9]+ - /     { print; infail = 0; next }
    /^# (tests|pass|fail|cancelled|duration)/ { print; next }
    infail && !/^[[:space:]]*(duration_ms|type|location):/ { print }'
node_pass=$(echo "$out" | sed -n 's/^# pass \([0-9]*\)/\1/p' | tail -1)
node_fail=$(echo "$out" | sed -n 's/^# fail \([0-9]*\)/\1/p' | tail -1)
count "${node_pass:-0}" "${node_fail:-1}"

if [ "$FAILED" -gt 0 ]; then
    log "server log (last 60 lines)"
    tail -n 60 "$BILLOPS_RUN/log/postgres.log"
fi
echo
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]
