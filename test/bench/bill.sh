#!/usr/bin/env bash
# test/bench/bill.sh — BILL push figures (part of `make bench`).  A script,
# not a test: it measures and prints name=value lines from this one run.
#
#   bill_commit_to_bill_ms_*   one payable: from the COMMIT that routes it to
#                              the bill existing in BILL (emulator state), median
#                              and max of BILL_LATENCY_TRIALS trials
#   bill_throughput_*          BILL_PAYABLES payables routed in one commit:
#                              seconds until the outbox is drained, bills/s,
#                              requests/s, and the most requests BILL (the
#                              emulator) saw in flight at once (limit: 3)
#   bill_wan<ms>_*             BILL_WAN_PAYABLES payables twice, with every
#                              request delayed BILL_WAN_MS (a stand-in for the
#                              network between us and BILL): one request at a
#                              time, then three; bill_concurrency_speedup_ratio
#                              is the second rate over the first
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

N="${BILL_PAYABLES:-1000}"
TRIALS="${BILL_LATENCY_TRIALS:-9}"
WAN_N="${BILL_WAN_PAYABLES:-150}"
WAN_MS="${BILL_WAN_MS:-50}"
TOTAL=$(( N + TRIALS + 2 * WAN_N ))

install_deps >&2
build_extension >&2
start_cluster bill-bench >&2
start_bill_emulator >&2

q() { psql -qXAt -v ON_ERROR_STOP=1 -d billops_bench "$@"; }
psql -qX -c "CREATE DATABASE billops_bench" >/dev/null
q -c "CREATE EXTENSION pg_billops CASCADE"
psql -qX -c "ALTER SYSTEM SET billops.bill_database = 'billops_bench'" -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 150); do
    [ "$(psql -qXAt -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_billops BILL worker' AND datname = 'billops_bench'")" = 1 ] && break
    sleep 0.1
done

# N partner charges (invoice-like), final, one vendor through a pattern alias
csv="$BILLOPS_RUN/bench-partners.csv"
{
    echo 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName'
    for i in $(seq 1 "$TOTAL"); do
        printf 'INV-%05d,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-04-01T00:00:00Z,222222222222,Usage,PartnerSvc,%d.%02d,USD,Partner %05d LLC,Partner service\n' \
            "$i" $(( 10 + i % 90 )) $(( i % 100 )) "$i"
    done
} > "$csv"
chmod a+r "$csv"
q -c "INSERT INTO billops.vendor (name, kind) VALUES ('Partner Network', 'partner')" \
  -c "INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) SELECT vendor_id, 'pattern', '^Partner [0-9]+ LLC\$' FROM billops.vendor WHERE name = 'Partner Network'" \
  -c "INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'OPS')" \
  -c "UPDATE billops.setting SET value = 'false' WHERE name = 'auto_route'"
q -c "SET client_min_messages = warning" -c "SELECT billops.load_cur_file('$csv', 'bench', 'bench-1')" >/dev/null
q -c "SELECT count(*) FROM billops.build_payables()" >/dev/null

export N TRIALS WAN_N WAN_MS
node "$BILLOPS_ROOT/test/bench/bill-bench.mjs"
