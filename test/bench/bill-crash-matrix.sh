#!/usr/bin/env bash
# test/bench/bill-crash-matrix.sh [--trials N] [--seed S] [--replay seed:op:fault:point]
#
# The BILL protocol's crash matrix at scale: 1,000 seeded trials (worker and
# postmaster killed, answers lost, requests held while the payable is restated
# or voided) through the real worker against the BILL emulator, on a cluster of
# its own.  Prints "trials=…, duplicate_bills=…, wrong_amounts=…,
# not_archived=…, stuck_rows=…, …"; exits 1 if any trial failed.  The test
# suite runs a CI-sized sample of the same trials (bill-crash-matrix.test.mjs).
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

install_deps >&2
build_extension >&2
start_cluster bill-crash >&2
start_bill_emulator >&2
export BILLOPS_RUN BILLOPS_SHARED="$SHARED"
node "$BILLOPS_ROOT/test/bench/bill-crash-matrix.mjs" "$@"
