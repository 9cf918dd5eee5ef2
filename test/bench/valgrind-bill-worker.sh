#!/usr/bin/env bash
# test/bench/valgrind-bill-worker.sh — the BILL worker and the signed AWS
# request path under valgrind (memcheck).
#
# A throwaway cluster whose postmaster runs under valgrind (the worker and the
# backends it forks stay under it) first syncs the real CUR sample from the S3
# emulator (a GetObject answered 503 once, then retried) and fetches Cost
# Explorer's daily spend (throttled twice, then answered) -- the shared
# aws_request path, S3 and JSON alike --, assumes a role from the STS
# emulator (a role profile whose services section points Cost Explorer at
# the emulator), runs a credential_process helper (and a failing one), and loads a CUR 2.0 file whose map
# columns the loader checks and whose keys it records (then the same month as
# Parquet, and a cut Parquet file refused; a Parquet export from S3 by ranges, one
# cut short; the FOCUS sample as Parquet), reads BILL's users for
# the approver directory, then pushes a few bills to the BILL
# emulator through the paths the exactly-once protocol added: a lost create
# answer (lookup, adopt), a lost PATCH answer (read, then PUT), a lost
# vendor-create answer, a void (archive), and a refused login (the visible
# pause, then a reload).  Prints
# the error reports whose stack runs through pg_billops.so and exits 1 if
# there is any.  PostgreSQL's own known reports (padding bytes written to WAL
# and the relcache init file, the regex cache's overlapping memcpy) are not
# pg_billops' and are only counted.  Takes a few minutes.
set -euo pipefail
source "$(dirname "$0")/../lib.sh"

install_deps >&2
command -v valgrind >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends valgrind >&2
build_extension >&2
start_cluster valgrind >&2
start_bill_emulator >&2          # (with the cluster up: the worker's credentials and BILL's base URL)
mkdir -p "$BILLOPS_RUN/s3" && chmod 755 "$BILLOPS_RUN/s3"
start_s3_emulator "$BILLOPS_RUN/s3" >&2
start_aws_api_emulator >&2
node "$BILLOPS_ROOT/test/generator/stage-csv.mjs" --csv "$SHARED/testdata/cur/legacy-cur-2023-11-sample.csv" \
    --out "$BILLOPS_RUN/s3" --bucket vg-billing --prefix cur --report sample --assembly vg-sample-1 >/dev/null
psql -qX -c "ALTER SYSTEM SET billops.bill_poll_interval = 0" -c "ALTER SYSTEM SET billops.bill_database = 'vg'" >/dev/null
as_pg $PGBIN/pg_ctl -D "$BILLOPS_RUN/pgdata" -w stop >/dev/null
VG="$BILLOPS_RUN/valgrind"
mkdir -p "$VG" && chown "$PG_OS_USER" "$VG"
log "starting the postmaster under valgrind"
# (STS and Cost Explorer are found as the SDKs find them: AWS_ENDPOINT_URL_STS, the config file)
# (and the container and instance metadata endpoints the STS emulator serves, for the role profiles below)
as_pg env AWS_ENDPOINT_URL_STS="$STS_ENDPOINT" AWS_CONTAINER_CREDENTIALS_FULL_URI="$STS_ENDPOINT/v2/credentials/vg-task" \
    AWS_CONTAINER_AUTHORIZATION_TOKEN=vg-container-token AWS_EC2_METADATA_SERVICE_ENDPOINT="$STS_ENDPOINT" \
    valgrind --quiet --trace-children=yes --trace-children-skip='/bin/*,/usr/bin/*' --leak-check=no --log-file="$VG/vg.%p.log" \
    $PGBIN/postgres -D "$BILLOPS_RUN/pgdata" >> "$BILLOPS_RUN/log/postgres.log" 2>&1 &
for _ in $(seq 1 180); do psql -qXAt -c 'SELECT 1' >/dev/null 2>&1 && break; sleep 1; done

psql -qX -c "CREATE DATABASE vg" >/dev/null
q() { psql -qXAt -d vg -v ON_ERROR_STOP=1 -c "$1"; }
# the BILL emulator's control API (node's fetch: no curl binary needed)
ctl() {
    node -e 'const [m, u, b] = process.argv.slice(1);
             fetch(u, { method: m, headers: { "content-type": "application/json" }, body: b || undefined })
               .then((r) => { if (!r.ok) process.exit(1); })' "$1" "$BILL_EMULATOR_CONTROL/$2" "${3:-}"
}
q "CREATE EXTENSION pg_billops CASCADE"
log "S3 and Cost Explorer through the shared AWS request path, with a retry each"
control() {   # emulator-control-url method path [json]
    node -e 'const [u, m, p, b] = process.argv.slice(1);
             fetch(u + "/" + p, { method: m, headers: { "content-type": "application/json" }, body: b || undefined })
               .then((r) => { if (!r.ok) process.exit(1); })' "$1" "$2" "$3" "${4:-}"
}
control "$S3_ENDPOINT/_emulator" POST faults '{"faults":[{"op":"GetObject","keyContains":".csv.gz","kind":"status","status":503,"times":1}]}'
q "SELECT billops.create_cur_source('vg-s3', 'vg-billing', 'sample', prefix => 'cur', endpoint_url => '$S3_ENDPOINT', path_style => true)" >/dev/null
# (a CALL that commits cannot share psql's -c transaction with the SET)
psql -qXAt -d vg -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL billops.sync_cur_source('vg-s3')"
[ "$(q "SELECT status FROM billops.cur_delivery ORDER BY delivery_id DESC LIMIT 1")" = loaded ] || { echo "the S3 sync failed" >&2; exit 1; }
# a CUR 2.0 file with map columns: the loader validates each map and records its keys
c2="$BILLOPS_RUN/vg-cur2.csv"
{ echo 'bill_payer_account_id,bill_billing_period_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_unblended_cost,product,resource_tags,discount'
  for i in $(seq 1 50); do
    echo "600000000001,2024-02-01T00:00:00Z,222222222222,Usage,1.$i,\"{\"\"product_name\"\": \"\"Amazon S3\"\", \"\"region\"\": \"\"us-east-1\"\"}\",\"{\"\"user_team_$((i % 7))\"\": \"\"t$i\"\"}\",\"{\"\"edp_discount\"\": -0.0$i}\""
  done; } > "$c2"
chmod 644 "$c2"
q "SET client_min_messages = warning; SELECT billops.load_cur_file('$c2', 'vg-cur2', 'vg-cur2-1')" >/dev/null
[ "$(q "SELECT count(*) FROM billops.cur_delivery_map_key k JOIN billops.cur_source s ON true JOIN billops.cur_delivery d USING (delivery_id) WHERE d.source_id = s.source_id AND s.name = 'vg-cur2'")" = 10 ] \
    || { echo "the CUR 2.0 map keys were not recorded" >&2; exit 1; }
# the same month as Parquet (DuckDB, zstd, format v2: dictionaries, delta and byte-stream-split
# encodings, maps) through the Parquet reader and the same loader, replacing it; a cut file refused
node "$BILLOPS_ROOT/test/generator/gen-parquet.mjs" --csv "$c2" --out "$BILLOPS_RUN/vg-cur2.parquet" \
    --compression zstd --version v2 >/dev/null
chmod 644 "$BILLOPS_RUN/vg-cur2.parquet"
q "SET client_min_messages = warning; SELECT billops.load_cur_file('$BILLOPS_RUN/vg-cur2.parquet', 'vg-cur2')" >/dev/null
[ "$(q "SELECT d.rows_loaded FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'vg-cur2' ORDER BY d.delivery_id DESC LIMIT 1")" = 50 ] \
    || { echo "the Parquet file did not load" >&2; exit 1; }
head -c 2000 "$BILLOPS_RUN/vg-cur2.parquet" > "$BILLOPS_RUN/vg-cut.parquet"; tail -c 8 "$BILLOPS_RUN/vg-cur2.parquet" >> "$BILLOPS_RUN/vg-cut.parquet"
chmod 644 "$BILLOPS_RUN/vg-cut.parquet"
if q "SELECT billops.load_cur_file('$BILLOPS_RUN/vg-cut.parquet', 'vg-cur2')" >/dev/null 2>&1; then
    echo "a cut Parquet file was not refused" >&2; exit 1
fi
# a CUR 2.0 Parquet export synced from S3 by ranged reads (arrow-rs, row groups of 1,000 rows, so
# adjacent chunks share GETs and pages span windows), one range cut short and resumed
node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$BILLOPS_RUN/s3" --bucket vg-parquet --prefix pq --report vgx \
    --layout cur2 --period 2024-03 --rows 3000 --files 1 --seed 9 --quiet
node "$BILLOPS_ROOT/test/generator/parquet-delivery.mjs" --root "$BILLOPS_RUN/s3" --bucket vg-parquet \
    --manifest pq/vgx/metadata/BILLING_PERIOD=2024-03/vgx-Manifest.json --writer arrow-rs --row-group-size 1000 >/dev/null
control "$S3_ENDPOINT/_emulator" POST faults '{"faults":[{"op":"GetObject","keyContains":".parquet","kind":"truncate","afterBytes":5000,"times":1}]}'
q "SELECT billops.create_cur_source('vg-pq', 'vg-parquet', 'vgx', layout => 'cur2', prefix => 'pq', endpoint_url => '$S3_ENDPOINT', path_style => true)" >/dev/null
psql -qXAt -d vg -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "CALL billops.sync_cur_source('vg-pq')"
[ "$(q "SELECT d.rows_loaded FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'vg-pq' ORDER BY d.delivery_id DESC LIMIT 1")" = 3000 ] \
    || { echo "the S3 Parquet export did not load" >&2; exit 1; }
# a CUR 2.0 delivery of three gzip CSV files loaded in parallel (the session and two load workers,
# each summing its daily rollup), then checked against its line items
node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$BILLOPS_RUN/s3" --bucket vg-parallel --prefix par --report vgp \
    --layout cur2 --period 2024-04 --rows 3000 --files 3 --seed 11 --quiet
q "SELECT billops.create_cur_source('vg-par', 'vg-parallel', 'vgp', layout => 'cur2', prefix => 'par', endpoint_url => '$S3_ENDPOINT', path_style => true)" >/dev/null
psql -qXAt -d vg -v ON_ERROR_STOP=1 -c "SET client_min_messages = warning" -c "SET billops.max_load_workers = 2" -c "CALL billops.sync_cur_source('vg-par')"
# (how many loaders took a file depends on how fast workers start under valgrind: said, not checked)
[ "$(q "SELECT d.rows_loaded || ' ' || (SELECT sum(line_items) FROM billops.cur_daily WHERE billing_period = '2024-04-01')
        FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
       WHERE s.name = 'vg-par' ORDER BY d.delivery_id DESC LIMIT 1")" = "3000 3000" ] \
    || { echo "the parallel delivery did not load, or its rollup differs" >&2; exit 1; }
log "the parallel delivery: $(q "SELECT count(DISTINCT loader_pid) FROM billops.cur_delivery_file f JOIN billops.cur_delivery d USING (delivery_id) JOIN billops.cur_source s USING (source_id) WHERE s.name = 'vg-par'") loaders took its files"
# the FOCUS sample as Parquet through load_focus_file (the C loader, as a FOCUS source)
(cd "$BILLOPS_ROOT/test/emulators" && node --input-type=module -e '
import { createRequire } from "node:module";
const require = createRequire(process.cwd() + "/package.json");
const { DuckDBInstance } = require("@duckdb/node-api");
const [csv, out] = process.argv.slice(1);
const con = await (await DuckDBInstance.create(":memory:")).connect();
await con.run(`COPY (SELECT * FROM read_csv(${JSON.stringify(csv).replace(/"/g, "\x27")}, all_varchar = true, nullstr = \x27NULL\x27))
               TO ${JSON.stringify(out).replace(/"/g, "\x27")} (FORMAT parquet, COMPRESSION zstd)`);
' "$SHARED/testdata/focus/focus-1.0-sample.csv" "$BILLOPS_RUN/vg-focus.parquet")
chmod 644 "$BILLOPS_RUN/vg-focus.parquet"
q "SET client_min_messages = warning; SELECT billops.load_focus_file('$BILLOPS_RUN/vg-focus.parquet', 'vg-focus')" >/dev/null
[ "$(q "SELECT d.rows_loaded FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) WHERE s.name = 'vg-focus' ORDER BY d.delivery_id DESC LIMIT 1")" = 1000 ] \
    || { echo "the FOCUS Parquet file did not load" >&2; exit 1; }
control "$AWS_API_EMULATOR_CONTROL" POST faults '{"faults":[{"match":{"operation":"GetCostAndUsage"},"kind":"throttle","count":2}]}'
q "INSERT INTO billops.aws_api_source (payer_account_id, cost_explorer_url, invoicing_url) VALUES ('999900001111', '$AWS_API_ENDPOINT', '$AWS_API_ENDPOINT')"
q "SET client_min_messages = warning; SELECT status FROM billops.fetch_ce_daily_spend('999900001111', current_date - 5, current_date - 1)" >&2
log "AWS access: a role from the emulated STS, credential_process, endpoints from the config file"
control "$STS_EMULATOR_CONTROL" POST roles '{"arn":"arn:aws:iam::111122223333:role/vg-reader","trust":["AKIDBILLOPSTEST"],"externalId":"vg-ext"}'
control "$STS_EMULATOR_CONTROL" POST metadata '{"instanceRole":"arn:aws:iam::111122223333:role/vg-instance","container":{"path":"/v2/credentials/vg-task","token":"vg-container-token","role":"arn:aws:iam::111122223333:role/vg-task"}}'
control "$STS_EMULATOR_CONTROL" POST roles '{"arn":"arn:aws:iam::111122223333:role/vg-meta","trust":["arn:aws:iam::111122223333:role/vg-task","arn:aws:iam::111122223333:role/vg-instance"]}'
control "$STS_EMULATOR_CONTROL" POST roles '{"arn":"arn:aws:iam::111122223333:role/vg-pod","trust":[],"webIdentityTokens":[{"token":"vg-web-identity-token","sub":"system:serviceaccount:finance:pg-billops"}]}'
echo vg-web-identity-token > "$BILLOPS_RUN/vg-web-token" && chmod 644 "$BILLOPS_RUN/vg-web-token"
printf '#!/bin/sh\necho "{\\"Version\\": 1, \\"AccessKeyId\\": \\"AKIDBILLOPSTEST\\", \\"SecretAccessKey\\": \\"billops-test-secret-key-0000000000000000\\", \\"Expiration\\": \\"2099-01-01T00:00:00Z\\"}"\n' > "$BILLOPS_RUN/vg-helper.sh"
printf '#!/bin/sh\necho "not json"\necho "helper failed" >&2\nexit 2\n' > "$BILLOPS_RUN/vg-bad.sh"
chmod 755 "$BILLOPS_RUN/vg-helper.sh" "$BILLOPS_RUN/vg-bad.sh"
cat > "$BILLOPS_RUN/vg-aws-config" <<CFG
[profile vg-role]
role_arn = arn:aws:iam::111122223333:role/vg-reader
source_profile = default
external_id = vg-ext
services = vg-endpoints

[services vg-endpoints]
cost_explorer =
  endpoint_url = $AWS_API_ENDPOINT
  other_setting = ignored

[profile vg-process]
credential_process = "$BILLOPS_RUN/vg-helper.sh" --quoted 'a b' "c \\"d\\"" e\\ f

[profile vg-bad-process]
credential_process = "$BILLOPS_RUN/vg-bad.sh"

[profile vg-task]
role_arn = arn:aws:iam::111122223333:role/vg-meta
credential_source = EcsContainer

[profile vg-instance]
role_arn = arn:aws:iam::111122223333:role/vg-meta
credential_source = Ec2InstanceMetadata

[profile vg-pod]
role_arn = arn:aws:iam::111122223333:role/vg-pod
web_identity_token_file = $BILLOPS_RUN/vg-web-token
CFG
chmod 644 "$BILLOPS_RUN/vg-aws-config"
psql -qX -c "ALTER SYSTEM SET billops.aws_config_file = '$BILLOPS_RUN/vg-aws-config'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q "SELECT caller_arn FROM billops.credentials_check('profile:vg-role', 'us-east-1', true)" >&2
q "SELECT origin FROM billops.credentials_check('profile:vg-process', 'us-east-1')" >&2
for p in vg-task vg-instance vg-pod; do q "SELECT caller_arn FROM billops.credentials_check('profile:$p', 'us-east-1', true)" >&2; done
if q "SELECT origin FROM billops.credentials_check('profile:vg-bad-process')" >/dev/null 2>&1; then
    echo "a failing credential_process was not refused" >&2; exit 1
fi
q "SELECT endpoint_url || ' (' || configured_by || ')' FROM billops.aws_endpoint('ce', 'profile:vg-role')" >&2
q "INSERT INTO billops.aws_api_source (payer_account_id, credentials) VALUES ('999900002222', 'profile:vg-role')"
q "SET client_min_messages = warning; SELECT status FROM billops.fetch_ce_anomalies('999900002222', current_date - 30, current_date - 1)" >&2
# the approver directory: the worker reads BILL's roles and users (the exchange driver the poll shares)
q "INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('vg_owners', '$BILL_USER_ID')"
for _ in $(seq 1 60); do
    [ "$(q "SELECT status FROM billops.bill_approver_status WHERE approver_role = 'vg_owners'")" = ok ] && break
    sleep 1
done
[ "$(q "SELECT status FROM billops.bill_approver_status WHERE approver_role = 'vg_owners'")" = ok ] \
    || { echo "the worker did not read BILL's users" >&2; exit 1; }
q "INSERT INTO billops.vendor (name, kind) VALUES ('Datadog', 'marketplace_seller')"
q "INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern) SELECT vendor_id, 'exact', 'Datadog, Inc.' FROM billops.vendor WHERE name = 'Datadog'"
q "INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'OPS')"
q "UPDATE billops.setting SET value = '0.05' WHERE name = 'bill_retry_base_seconds'"
ctl POST reset
ctl POST faults '{"faults":[{"match":{"method":"POST","path":"/v3/bills$"},"kind":"dropAfterCommit","count":1},
                            {"match":{"method":"PATCH","path":"/v3/bills/"},"kind":"dropAfterCommit","count":1},
                            {"match":{"method":"POST","path":"/v3/vendors$"},"kind":"dropAfterCommit","count":1}]}'
month() {   # payer delivery amount...
    local f="$BILLOPS_RUN/vg-$1-$2.csv" i=0
    echo 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName' > "$f"
    for a in "${@:3}"; do
        i=$((i + 1))
        echo "INV-1,\"Amazon Web Services, Inc.\",AWS Marketplace,Anniversary,$1,2024-03-01T00:00:00Z,222222222222,Usage,prod-$i,$a,USD,\"Datadog, Inc.\",Product $i" >> "$f"
    done
    chmod 644 "$f"
    q "SET client_min_messages = warning; SELECT billops.load_cur_file('$f', 'vg', 'vg-$1-$2')" >/dev/null
    q "SELECT count(*) FROM billops.build_payables(NULL, '$1')" >/dev/null
}
drain() {
    for _ in $(seq 1 300); do
        [ "$(q "SELECT count(*) FROM billops.bill_outbox WHERE state IN ('pending', 'in_flight')")" = 0 ] && return 0
        sleep 1
    done
    echo "the outbox did not drain:" >&2; q "SELECT outbox_id, action, state, step, last_error FROM billops.bill_outbox" >&2; return 1
}
log "pushing through lost answers, a restatement, a void and a refused login"
month 700000000001 0 100.00; month 700000000002 0 40.00; drain
month 700000000001 1 100.00 7.00; drain                     # a line added; its PATCH answer is lost
q "SELECT billops.void_payable(payable_id, 'valgrind') FROM billops.payable WHERE payer_account_id = '700000000002'" >/dev/null; drain
ctl POST faults '{"faults":[{"match":{"method":"POST","path":"/v3/login$"},"kind":"status","status":401,"code":"BDC_1101","count":null}]}'
ctl POST sessions/expire
month 700000000003 0 9.99; sleep 8
q "SELECT waiting_for FROM billops.bill_outbox_status" >&2
ctl DELETE faults; psql -qX -c "SELECT pg_reload_conf()" >/dev/null; drain
q "SELECT action || ' ' || state || ': ' || count(*) FROM billops.bill_outbox GROUP BY action, state ORDER BY 1" >&2
as_pg $PGBIN/pg_ctl -D "$BILLOPS_RUN/pgdata" -m fast -w stop >/dev/null || true
sleep 2

# a report is the lines from "==PID== <message>" to the next blank "==PID== " line
ours=$(awk '/^==[0-9]+== [A-Z]/ {r = $0 "\n"; inrep = 1; next}
            inrep && /^==[0-9]+== *$/ {if (r ~ /pg_billops\.so/) printf "%s\n", r; inrep = 0; next}
            inrep {r = r $0 "\n"}' "$VG"/vg.*.log)
total=$(cat "$VG"/vg.*.log | grep -c '^==[0-9]*== [A-Z]' || true)
if [ -n "$ours" ]; then
    echo "$ours"
    echo "valgrind_reports_in_pg_billops=$(echo "$ours" | grep -c '^==[0-9]*== [A-Z]'), valgrind_reports_total=$total"
    exit 1
fi
echo "valgrind_reports_in_pg_billops=0, valgrind_reports_total=$total (PostgreSQL's own)"
