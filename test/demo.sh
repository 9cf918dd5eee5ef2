#!/usr/bin/env bash
# test/demo.sh — the monthly flow so far, end to end, on one machine:
#   AWS delivers CUR files to S3 (here: the S3 emulator, which checks every
#   SigV4 signature) → pg_billops finds each month's newest delivery through its
#   manifest → streams S3 → gunzip → COPY into fresh partitions → swaps them in
#   → finance looks at spend by account and service → payables are built,
#   routed, approved and locked → the BILL worker pushes the bills through the
#   outbox to BILL (here: the BILL v3 emulator) and BILL's approvals and
#   payments come back → chargeback: pro forma statements per billing group,
#   written as HTML pages → AWS invoices from the Invoicing API (emulated),
#   their PDFs on the payables → January's reconciliation and close.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

install_deps
build_extension
start_cluster demo
S3_DIR="$BILLOPS_RUN/s3"
mkdir -p "$S3_DIR" && chmod 755 "$S3_DIR"
start_s3_emulator "$S3_DIR"
start_bill_emulator

log "AWS delivers: the real November 2023 sample, and generated Dec 2023 - Feb 2024 months"
node "$BILLOPS_ROOT/test/generator/stage-csv.mjs" --csv "$SHARED/testdata/cur/legacy-cur-2023-11-sample.csv" \
    --out "$S3_DIR" --bucket acme-billing --prefix cur --report sample-payer --assembly 7c1e2d3a-sample >/dev/null
# Two organizations, two reports: AWS writes one payer (management account) per report
# (gen_month REPORT PAYER PERIOD ROWS [gen-cur options...])
gen_month() {
    node "$BILLOPS_ROOT/test/generator/gen-cur.mjs" --out "$S3_DIR" --bucket acme-billing --prefix cur \
        --report "$1" --payer "$2" --layout legacy --period "$3" --rows "$4" --accounts 6 --seed 42 "${@:5}" >/dev/null
}
for month in 2023-12:24000:12000 2024-01:26000:13000; do
    IFS=: read -r period acme globex <<< "$month"
    gen_month acme-hourly 1 "$period" "$acme" --deliveries 2 --final
    gen_month globex-hourly 2 "$period" "$globex" --deliveries 2 --final
done
# February is still open: AWS has delivered it three times so far (the newest counts)
gen_month acme-hourly 1 2024-02 28000 --deliveries 4 --delivery 3
gen_month globex-hourly 2 2024-02 14000 --deliveries 4 --delivery 3

# Each organization lets pg_billops read its billing bucket through a least-privilege role
# (STS, emulated: the server finds it at AWS_ENDPOINT_URL_STS, as AWS's SDKs do); the roles
# trust the server's own keys, the acme one only with the external id acme gave pg_billops
sts_role() {
    curl -sf -X POST "$STS_EMULATOR_CONTROL/roles" -H 'content-type: application/json' -d "$1" >/dev/null
}
sts_role '{"arn": "arn:aws:iam::111122223333:role/acme-cur-reader", "trust": ["AKIDBILLOPSTEST"], "externalId": "acme-billing-7f3a"}'
sts_role '{"arn": "arn:aws:iam::444455556666:role/globex-cur-reader", "trust": ["AKIDBILLOPSTEST"]}'

psql -qX -v ON_ERROR_STOP=1 <<SQL
\set QUIET on
CREATE EXTENSION pg_billops CASCADE;
\echo
\echo '--- register where AWS delivers the reports (credentials are a reference, never a key; each organization through its own role)'
SELECT billops.create_cur_source('acme-hourly', 'acme-billing', 'acme-hourly', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true, credentials => 'default',
       role_arn => 'arn:aws:iam::111122223333:role/acme-cur-reader', role_external_id => 'acme-billing-7f3a') AS source_id;
SELECT billops.create_cur_source('globex-hourly', 'acme-billing', 'globex-hourly', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true,
       role_arn => 'arn:aws:iam::444455556666:role/globex-cur-reader') AS source_id;
SELECT billops.create_cur_source('sample-payer', 'acme-billing', 'sample-payer', prefix => 'cur',
       endpoint_url => '$S3_ENDPOINT', path_style => true) AS source_id;
\echo '--- sync: S3 → gunzip → COPY → atomic partition swap'
CALL billops.sync_cur_source('acme-hourly');
CALL billops.sync_cur_source('globex-hourly');
CALL billops.sync_cur_source('sample-payer');
\echo '--- a second sync finds nothing new: the same delivery twice is a no-op'
CALL billops.sync_cur_source('acme-hourly');
SQL

psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\pset footer off
\echo
\echo '=== Payables: finance configures the rules once (all in tables, all audited) ==='
-- people: owners approve their teams' cost, finance reviews what nobody owns
DO $$ DECLARE r text; BEGIN
  FOREACH r IN ARRAY ARRAY['eng_owners', 'data_owners', 'security_owners', 'alice', 'dana', 'sam', 'frank', 'fiona', 'carol'] LOOP
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN EXECUTE format('CREATE ROLE %I', r); END IF;
  END LOOP; END $$;
GRANT billops_approver TO eng_owners, data_owners, security_owners;
GRANT eng_owners TO alice; GRANT data_owners TO dana; GRANT security_owners TO sam;
GRANT billops_finance_review TO frank; GRANT billops_finops_owner TO fiona; GRANT billops_finance_leadership TO carol;
-- canonical vendors for four Marketplace sellers (exact, prefix and pattern aliases); two stay unknown
INSERT INTO billops.vendor (name, kind) VALUES ('Datadog', 'marketplace_seller'), ('Snowflake', 'marketplace_seller'),
       ('MongoDB', 'marketplace_seller'), ('Confluent', 'marketplace_seller');
INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
SELECT vendor_id, a.kind, a.pattern FROM billops.vendor JOIN (VALUES ('Datadog', 'exact', 'Datadog, Inc.'),
       ('Snowflake', 'prefix', 'snowflake'), ('MongoDB', 'pattern', '^mongo ?db\M'), ('Confluent', 'exact', 'CONFLUENT INC')) a(name, kind, pattern) USING (name);
-- business units from the accounts' Team cost category
INSERT INTO billops.aws_account (account_id, business_unit)
SELECT DISTINCT ON (line_item_usage_account_id) line_item_usage_account_id,
       CASE cost_category->>'Team' WHEN 'platform' THEN 'Engineering' WHEN 'engineering' THEN 'Engineering'
            WHEN 'data' THEN 'Data' WHEN 'security' THEN 'Security' ELSE 'Finance' END
  FROM billops.cur_line_item WHERE cost_category ? 'Team' ORDER BY line_item_usage_account_id, bill_billing_period_start_date DESC;
INSERT INTO billops.routing_rule (business_unit, approver_role) VALUES
  ('Engineering', 'eng_owners'), ('Data', 'data_owners'), ('Security', 'security_owners');
-- coding: GL account by kind of charge, department and project from cost categories
INSERT INTO billops.coding_rule (field, value, charge_category) VALUES
  ('gl_account', '6100 Cloud hosting', 'aws_usage'), ('gl_account', '6150 SaaS subscriptions', 'marketplace'),
  ('gl_account', '6100 Cloud hosting', 'fee'), ('gl_account', '2310 Sales tax', 'tax'), ('gl_account', '6190 Cloud credits', 'credit');
INSERT INTO billops.coding_rule (field, value, cost_category_key) VALUES
  ('department', '$cost_category', 'Team'), ('project', '$cost_category', 'Project');
SELECT name, value FROM billops.setting WHERE name IN ('approval_threshold', 'line_grain', 'route_preliminary') ORDER BY 1;

\echo '--- build payables: one per payer + period + charge source; final months are routed, open months stay drafts'
SELECT split_part(b.dedupe_key, '|', 2) AS period, b.action, b.status, count(*) AS payables,
       to_char(sum(b.amount), 'FM$999,999,990.00') AS amount
  FROM billops.build_payables() b
 GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;
\echo '--- building again changes nothing (same payables, no duplicates)'
SELECT action, count(*) FROM billops.build_payables() GROUP BY 1;

\echo
\echo '=== January 2024 payables (billops.payable_overview) ==='
SELECT payable_id AS id, payer_account_id AS payer, left(charge_source, 52) AS charge_source, coalesce(vendor, '?') AS vendor,
       kind, status, to_char(amount, 'FM$999,999,990.00') AS amount, lines, coalesce(waiting_on, '') AS waiting_on
  FROM billops.payable_overview WHERE billing_period = '2024-01-01' ORDER BY payer, category, amount DESC;

\echo
\echo '=== Approvals: each assigned person approves their step (billops.approve checks who is calling) ==='
-- (the demo's people, and a helper that has each assigned person approve their step in turn)
CREATE TABLE public.demo_person (approver_role text PRIMARY KEY, person text);
INSERT INTO public.demo_person VALUES ('eng_owners', 'alice'), ('data_owners', 'dana'), ('security_owners', 'sam'),
  ('billops_finance_review', 'frank'), ('billops_finops_owner', 'fiona'), ('billops_finance_leadership', 'carol');
GRANT SELECT ON public.demo_person TO PUBLIC;
CREATE FUNCTION public.demo_approve_as_assigned(pid bigint, note text DEFAULT 'reviewed in the monthly close')
RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE s record; done text;
BEGIN
  LOOP
    SELECT q.approver_role, q.step_name, p.person INTO s FROM billops.approval_queue q JOIN public.demo_person p USING (approver_role)
     WHERE q.payable_id = pid ORDER BY q.approver_role LIMIT 1;
    EXIT WHEN NOT FOUND;
    EXECUTE format('SET LOCAL ROLE %I', s.person);
    done := billops.approve(pid, note);
    RESET ROLE;
    RETURN NEXT format('%-6s (%s): %s', s.person, s.step_name, done);
  END LOOP;
END $$;
SELECT payable_id AS biggest_january_bill, dedupe_key FROM billops.payable_overview
 WHERE billing_period = '2024-01-01' AND kind = 'bill' AND status = 'routed' ORDER BY amount DESC LIMIT 1 \gset
\echo 'who must approve payable' :biggest_january_bill ':'
SELECT step_name, approver_role, reason FROM billops.approval_step WHERE payable_id = :biggest_january_bill ORDER BY seq, approver_role;
\echo '--- dana (Data owner) is not on it: row-level security shows her only what is routed to her, and approve() refuses'
SELECT count(*) AS payables_in_total FROM billops.payable;
SELECT set_config('demo.payable', :'biggest_january_bill', false) IS NOT NULL AS noted \gset
SET ROLE dana;
SELECT count(*) AS payables_dana_sees, count(*) FILTER (WHERE payable_id = :biggest_january_bill) AS including_this_one
  FROM billops.payable;
DO $$
BEGIN
  PERFORM billops.approve(current_setting('demo.payable')::bigint);
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'billops.approve as dana refused: SQLSTATE % — %', SQLSTATE, SQLERRM;
END $$;
RESET ROLE;
SELECT public.demo_approve_as_assigned(:biggest_january_bill) AS approvals;
\echo '--- February is still open; finance routes its credits early and the owners acknowledge them'
SELECT payable_id, left(charge_source, 40) AS charge_source, amount, billops.route_payable(payable_id) AS steps,
       (SELECT string_agg(a, '; ') FROM public.demo_approve_as_assigned(payable_id) a) AS approvals
  FROM billops.payable WHERE billing_period = '2024-02-01' AND category = 'credit' AND status = 'draft' ORDER BY payable_id;

\echo
\echo '=== The approval lock: even the table owner cannot change an approved payable ==='
DO $$
DECLARE pid bigint := (SELECT payable_id FROM billops.payable WHERE status = 'approved' AND treatment = 'invoice_like' ORDER BY amount DESC LIMIT 1);
BEGIN
  UPDATE billops.payable SET amount = amount - 100 WHERE payable_id = pid;
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'UPDATE payable % refused: SQLSTATE % — %', pid, SQLSTATE, SQLERRM;
END $$;
DO $$
BEGIN
  UPDATE billops.payable_line SET gl_account = '9999 Misc'
   WHERE payable_id = (SELECT payable_id FROM billops.payable WHERE status = 'approved' AND treatment = 'invoice_like' ORDER BY amount DESC LIMIT 1);
EXCEPTION WHEN OTHERS THEN
  RAISE NOTICE 'UPDATE of its coding refused: SQLSTATE % — %', SQLSTATE, SQLERRM;
END $$;
SQL

# AWS delivers February once more (a late credit); the next sync replaces the month atomically
gen_month acme-hourly 1 2024-02 28000 --deliveries 4 --delivery 4
gen_month globex-hourly 2 2024-02 14000 --deliveries 4 --delivery 4

psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\echo '--- AWS re-delivered February; sync replaces the month'
CALL billops.sync_cur_source('acme-hourly', only_period => '2024-02-01');
CALL billops.sync_cur_source('globex-hourly', only_period => '2024-02-01');
\echo '--- and the payables follow: drafts update in place; an acknowledged credit that AWS changed gets an adjustment, never a silent change'
SELECT b.action, count(*) AS payables, to_char(sum(b.amount), 'FM$999,999,990.00') AS amount
  FROM billops.build_payables('2024-02-01') b GROUP BY 1 ORDER BY 1;
\echo '--- each adjustment is routed for its own approval'
SELECT DISTINCT payable_id, billops.route_payable(payable_id) AS steps FROM billops.payable_adjustment WHERE status = 'draft' ORDER BY 1;
SELECT a.payable_id, left(p.charge_source, 50) AS charge_source, a.status, a.previous_amount, a.new_amount, a.delta,
       (SELECT string_agg(approver_role, ', ') FROM billops.approval_queue q WHERE q.adjustment_id = a.adjustment_id) AS waiting_on
  FROM billops.payable_adjustment a JOIN billops.payable p USING (payable_id);
\pset footer off
\echo
\echo '=== Delivery history (billops.cur_delivery) ==='
SELECT d.delivery_id AS id, s.name AS source, to_char(d.billing_period, 'YYYY-MM') AS period,
       left(d.assembly_id, 13) AS assembly, d.status, d.file_count AS files,
       pg_size_pretty(d.bytes_read) AS read, to_char(d.rows_loaded, 'FM999,999,999') AS rows,
       round(d.load_ms)::int AS load_ms, round(d.swap_ms)::int AS swap_ms
  FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id) ORDER BY d.delivery_id;
\echo
\echo '=== What is visible, and is it final? (billops.cur_period_status) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, payer_account_id AS payer, source_name AS source,
       to_char(line_items, 'FM999,999') AS line_items, invoice_state,
       coalesce(array_to_string(invoice_ids[1:2], ', '), '') AS invoices
  FROM billops.cur_period_status ORDER BY 1, 2;
\echo
\echo '=== Monthly spend by payer (unblended vs amortized, USD) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, payer_account_id AS payer,
       to_char(sum(unblended_cost), 'FM$999,999,990.00') AS unblended,
       to_char(sum(amortized_cost), 'FM$999,999,990.00') AS amortized,
       to_char(100.0 * (sum(unblended_cost) / nullif(lag(sum(unblended_cost)) OVER (PARTITION BY payer_account_id ORDER BY billing_period), 0) - 1), 'FMS990.0"%"') AS mom
  FROM billops.cur_spend_by_account_service GROUP BY 1, billing_period, 2 ORDER BY 2, 1;
\echo
\echo '=== February 2024: top accounts x services (what finance will be asked about) ==='
WITH s AS (
  SELECT usage_account_id, service, unblended_cost, amortized_cost,
         rank() OVER (ORDER BY unblended_cost DESC) AS r,
         sum(unblended_cost) OVER () AS month_total
    FROM billops.cur_spend_by_account_service WHERE billing_period = '2024-02-01')
SELECT usage_account_id AS account, left(service, 34) AS service,
       to_char(unblended_cost, 'FM$999,999,990.00') AS unblended,
       to_char(amortized_cost, 'FM$999,999,990.00') AS amortized,
       to_char(100 * unblended_cost / month_total, 'FM990.0"%"') AS share,
       repeat('█', greatest(1, (40 * unblended_cost / max(unblended_cost) OVER ())::int)) AS bar
  FROM s WHERE r <= 15 ORDER BY r;
\echo
\echo '=== The same month as an Athena user asks it: AWS-style SQL on billops.athena_cur2 (maps are text, tags normalized) ==='
SET search_path = billops_athena, pg_catalog, billops, public;
SELECT billing_period, product['product_name'] AS service,
       coalesce(nullif(resource_tags['user_cost_center'], ''), '(untagged)') AS cost_center,
       to_char(round(sum(line_item_unblended_cost), 2), 'FM$999,999,990.00') AS unblended,
       approx_distinct(line_item_resource_id) AS resources,
       max_by(line_item_usage_account_id, line_item_unblended_cost) AS top_account
  FROM athena_cur2
 WHERE billing_period = '2024-02' AND line_item_line_item_type = 'Usage'
 GROUP BY 1, 2, 3 ORDER BY sum(line_item_unblended_cost) DESC LIMIT 8;
RESET search_path;
\echo
\echo '=== The same month in FOCUS 1.2, as FinOps tools read it (billops.focus_cost), by ServiceCategory ==='
SELECT "ServiceCategory" AS category, "ServiceSubcategory" AS subcategory,
       to_char(sum("BilledCost"), 'FM$999,999,990.00') AS billed, to_char(sum("EffectiveCost"), 'FM$999,999,990.00') AS effective,
       to_char(sum("ListCost"), 'FM$999,999,990.00') AS list
  FROM billops.focus_cost WHERE "BillingPeriodStart" = '2024-02-01T00:00:00Z'
 GROUP BY 1, 2 ORDER BY sum("EffectiveCost") DESC LIMIT 8;
\echo
\echo '=== FOCUS 1.2 conformance of that month: the MUST rules its rows break, and why (billops.focus_conformance) ==='
SELECT rule_id, rows_violating AS rows, left(requirement, 96) AS requirement
  FROM billops.focus_conformance('billops.focus_cost', $$"BillingPeriodStart" = '2024-02-01T00:00:00Z'$$)
 WHERE keyword = 'MUST' AND rows_violating > 0 ORDER BY rows_violating DESC;
\echo
\echo '=== Exception queue: what is stuck and why (billops.exception_queue) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, left(source_entity, 24) AS seller_or_entity, reason_code,
       left(reason, 64) AS reason, to_char(amount, 'FM$999,990.00') AS amount
  FROM billops.exception_queue ORDER BY billing_period, reason_code, source_entity LIMIT 16;
\echo
\echo '=== Waiting on whom (billops.approval_queue) ==='
SELECT approver_role, count(*) AS steps, to_char(sum(amount), 'FM$999,999,990.00') AS amount,
       min(waiting_since)::timestamp(0) AS oldest
  FROM billops.approval_queue GROUP BY 1 ORDER BY 1;
\echo
\echo '=== The month-end board: payables per period and state (billops.payable_status_monthly) ==='
SELECT to_char(billing_period, 'YYYY-MM') AS period, kind, status, payables,
       to_char(amount, 'FM$999,999,990.00') AS amount, final, with_open_adjustment AS open_adjustments
  FROM billops.payable_status_monthly ORDER BY 1, 2, 3;
\echo
\echo '=== Audit trail of the biggest January bill (billops.audit_log) ==='
SELECT a.logged_at::time(0) AS at, a.actor, CASE WHEN a.system_generated THEN 'system' ELSE 'person' END AS by,
       a.object_type, a.action,
       left(concat_ws(' ', a.after->>'status', 'amount ' || (a.after->>'amount'), 'approver ' || (a.after->>'approver_role'),
                      '"' || (a.after->>'comment') || '"'), 48) AS what
  FROM billops.audit_log a
 WHERE a.payable_id = (SELECT payable_id FROM billops.payable WHERE billing_period = '2024-01-01' AND status = 'approved'
                        ORDER BY amount DESC LIMIT 1)
   AND a.object_type IN ('payable', 'approval_step')
 ORDER BY a.audit_id;
SQL

log "BILL: each approver role gets its person in BILL (the approver directory); the worker checks them against BILL's users"
i=0
for role in $(psql -qXAt -c "SELECT approver_role FROM billops.bill_approver_status ORDER BY 1"); do
    i=$((i + 1))
    id=$(printf '00601DEMOAPPROVER%04d' "$i")
    curl -s -X POST "$BILL_EMULATOR_CONTROL/users" -H 'content-type: application/json' \
         -d "{\"id\": \"$id\", \"firstName\": \"Approver\", \"lastName\": \"$role\", \"role\": \"APPROVER\"}" >/dev/null
    psql -qX -c "INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('$role', '$id')" >/dev/null
done
# approvals decided in SQL go to BILL: pg_billops' own BILL user closes every route
psql -qX -c "UPDATE billops.setting SET value = 'true' WHERE name = 'bill_push_approvals'" >/dev/null

log "BILL: the worker delivers the outbox (woken by each commit) to the BILL emulator"
psql -qX -c "ALTER SYSTEM SET billops.bill_database = 'postgres'" -c "ALTER SYSTEM SET billops.bill_poll_interval = '2s'" \
     -c "SELECT pg_reload_conf()" >/dev/null
for _ in $(seq 1 300); do
    left=$(psql -qXAt -c "SELECT count(*) FROM billops.bill_outbox WHERE state IN ('pending', 'in_flight')")
    [ "$left" = 0 ] && break
    sleep 0.2
done
bills_json() { curl -s "$BILL_EMULATOR_CONTROL/state"; }
psql -qX -v ON_ERROR_STOP=1 -v bills="$(bills_json)" <<'SQL'
\set QUIET on
\pset footer off
\echo
\echo '=== The outbox (billops.bill_outbox): every push, its requests, its outcome ==='
SELECT action, state, count(*) AS rows, sum(requests) AS requests, sum(attempts) AS attempts
  FROM billops.bill_outbox GROUP BY 1, 2 ORDER BY 1, 2;
\echo
\echo '=== The approver directory (billops.bill_approver_status): who approves in BILL for each role, as BILL says ==='
SELECT approver_role, bill_approver_id, kind, full_name AS "name in BILL", role_type AS "BILL role", status
  FROM billops.bill_approver_status ORDER BY 1;
\echo
\echo '=== The routes pg_billops keeps in BILL (billops.bill_route): a job and an approval policy per approver list ==='
SELECT route_name, array_to_string(approvers, ' -> ') AS "BILL approvers, in order", bill_job_id AS job, bill_policy_id AS policy,
       (SELECT count(*) FROM billops.bill_link l WHERE l.route_key = r.route_key) AS bills
  FROM billops.bill_route r ORDER BY bills DESC, route_name;
\echo
\echo '=== Each bill''s route (billops.bill_routing): its steps, and the approvers BILL shows on the bill ==='
SELECT right(dedupe_key, 58) AS dedupe_key, status, array_to_string(steps, ' -> ') AS steps,
       array_to_string(approvers_in_bill, ' -> ') AS "approvers in BILL", approval_status AS "BILL approval",
       coalesce(approver_problem, 'ok') AS "as routed?"
  FROM billops.bill_routing ORDER BY status DESC, payable_id LIMIT 10;
\echo
\echo '=== Bills as BILL sees them, next to the payables in Postgres ==='
WITH bill AS (SELECT b FROM jsonb_array_elements((:'bills')::jsonb->'bills') b)
SELECT to_char(p.billing_period, 'YYYY-MM') AS period, left(b->>'vendorName', 22) AS "BILL vendor",
       b->'invoice'->>'invoiceNumber' AS "BILL invoice #", to_char((b->>'amount')::numeric, 'FM999,990.00') AS "BILL amount",
       jsonb_array_length(b->'billLineItems') AS "BILL lines", b->>'approvalStatus' AS "BILL approval",
       to_char(p.amount, 'FM999,990.00') AS "payable amount", p.status AS "payable status", p.dedupe_key
  FROM bill JOIN billops.bill_link l ON l.bill_id = b->>'id' JOIN billops.payable p USING (payable_id)
 ORDER BY p.billing_period, p.amount DESC
 LIMIT 14;
SQL

log "BILL: every bill carries why it is what it is: its description, and a one-page PDF pg_billops writes and uploads"
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\pset footer off
\echo
\echo '=== The largest routed bill''s description in BILL (billops.bill_context): the context approvers ask for ==='
SELECT c.description AS "why this bill"
  FROM billops.bill_context c JOIN billops.payable p USING (payable_id)
 WHERE p.status = 'routed' ORDER BY p.amount DESC LIMIT 1;
SQL
for _ in $(seq 1 100); do
    [ "$(psql -qXAt -c "SELECT count(*) FROM billops.payable_document WHERE bill_document_id IS NULL")" = 0 ] && break
    sleep 0.1
done
psql -qX -v ON_ERROR_STOP=1 -v bills="$(bills_json)" <<'SQL'
\set QUIET on
\pset footer off
\echo '=== The context PDFs, as BILL holds them (its final document ids, after asynchronous processing) ==='
WITH doc AS (SELECT x FROM jsonb_array_elements((:'bills')::jsonb->'documents') x)
SELECT d.file_name, length(d.content) AS bytes, l.bill_id AS "BILL bill", d.upload_status, d.bill_document_id AS "BILL document",
       (x->>'size')::int AS "BILL bytes", x->>'sha256' = d.sha256 AS "same bytes"
  FROM billops.payable_document d JOIN billops.bill_link l USING (payable_id)
  LEFT JOIN doc ON x->>'billId' = l.bill_id AND x->>'name' = d.file_name
 ORDER BY d.document_id LIMIT 6;
SQL

log "BILL: the approvers of the largest routed bill approve it in BILL, one by one; an approval in SQL reaches BILL; an approved bill is paid"
bill_in_bill=$(psql -qXAt -c "SELECT l.bill_id FROM billops.bill_link l JOIN billops.payable p USING (payable_id) WHERE p.status = 'routed' ORDER BY p.amount DESC LIMIT 1")
for approver in $(psql -qXAt -c "SELECT unnest(approvers_in_bill) FROM billops.bill_routing WHERE bill_id = '$bill_in_bill'" | grep -v "$BILL_USER_ID"); do
    curl -s -X POST "$BILL_EMULATOR_CONTROL/bills/$bill_in_bill/approve" -H 'content-type: application/json' \
         -d "{\"userId\": \"$approver\", \"comment\": \"approved in BILL\"}" >/dev/null
    echo "  $approver approved bill $bill_in_bill in BILL"
    sleep 3
done
# the next largest routed bill: its approvers approve in SQL, and BILL follows
psql -qX -v ON_ERROR_STOP=1 -v skip="$bill_in_bill" <<'SQL'
\set QUIET on
\pset footer off
\echo
\echo '=== Approved in SQL: each step leaves the bill''s route in BILL; with the last one pg_billops approves it there ==='
SELECT p.payable_id, l.bill_id AS "BILL bill", (SELECT string_agg(a, '; ') FROM public.demo_approve_as_assigned(p.payable_id, 'approved in SQL') a) AS "approved in SQL"
  FROM billops.payable p JOIN billops.bill_link l USING (payable_id)
 WHERE p.status = 'routed' AND l.bill_id <> :'skip'
 ORDER BY p.amount DESC LIMIT 1;
SQL
paid=$(psql -qXAt -c "SELECT l.bill_id FROM billops.bill_link l JOIN billops.payable p USING (payable_id) WHERE p.status = 'approved' AND l.approval_status = 'APPROVED' ORDER BY p.amount DESC LIMIT 1")
[ -n "$paid" ] && curl -s -X POST "$BILL_EMULATOR_CONTROL/bills/$paid/pay" -H 'content-type: application/json' -d '{}' >/dev/null
sleep 5
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\pset footer off
\echo
\echo '=== Approvals in either place, the same in both: BILL''s approvers and status next to the payable''s steps ==='
SELECT p.payable_id, left(p.charge_source, 40) AS charge_source, array_to_string(l.bill_approvers, ' -> ') AS "approvers in BILL",
       l.approval_status AS "BILL approval", l.payment_status AS "BILL payment", p.status AS "payable status now",
       (SELECT string_agg(DISTINCT s.decided_by::text, ', ') FROM billops.approval_step s WHERE s.payable_id = p.payable_id
           AND s.status = 'approved') AS approved_by
  FROM billops.bill_link l JOIN billops.payable p USING (payable_id)
 WHERE l.approval_status = 'APPROVED' OR l.payment_status IN ('SCHEDULED', 'PAID')
 ORDER BY 1;
SQL
log "Chargeback: billing groups by business unit, an internal pricing plan, fees and credits → pro forma statements"
# (outside the throwaway cluster directory, so the pages outlive the demo)
STATEMENTS="${BILLOPS_DEMO_OUT:-/tmp/pg_billops-demo}/statements"
mkdir -p "$STATEMENTS"
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
\set QUIET on
\pset footer off
INSERT INTO billops.billing_group (name, business_unit)
SELECT DISTINCT business_unit, business_unit FROM billops.aws_account WHERE business_unit <> 'Finance';
INSERT INTO billops.billing_group_account (billing_group_id, account_id)
SELECT g.billing_group_id, a.account_id FROM billops.aws_account a JOIN billops.billing_group g ON g.name = a.business_unit;
-- the Finance accounts run the shared platform: shared out in proportion to each group's own cost
INSERT INTO billops.shared_cost_rule (name, method, usage_account_id)
SELECT 'platform ' || account_id, 'PROPORTIONAL', account_id FROM billops.aws_account WHERE business_unit = 'Finance';
INSERT INTO billops.shared_cost_target (shared_cost_rule_id, billing_group_id)
SELECT r.shared_cost_rule_id, g.billing_group_id FROM billops.shared_cost_rule r CROSS JOIN billops.billing_group g;
INSERT INTO billops.pricing_plan (name, description) VALUES ('internal', 'overhead recovery; Marketplace at cost');
SELECT count(*) AS rules FROM (
  SELECT billops.set_pricing_rule('internal', 'overhead 3%', '-infinity', 'MARKUP', 'GLOBAL', 3)
  UNION ALL SELECT billops.set_pricing_rule('internal', 'Marketplace at cost', '-infinity', 'MARKUP', 'BILLING_ENTITY', 0, billing_entity => 'AWS Marketplace')
  UNION ALL SELECT billops.set_pricing_rule('internal', 'storage commitment -4%', '-infinity', 'DISCOUNT', 'SERVICE', 4, service => 'AmazonS3')) r \gset
INSERT INTO billops.billing_group_pricing_plan (billing_group_id, pricing_plan_id)
SELECT g.billing_group_id, p.pricing_plan_id FROM billops.billing_group g, billops.pricing_plan p;
INSERT INTO billops.custom_line_item (billing_group_id, name, description, item_type, flat_amount, first_period)
SELECT billing_group_id, 'platform fee', 'CI/CD and observability platform', 'FEE', 250, '2024-01-01' FROM billops.billing_group WHERE name = 'Engineering';
INSERT INTO billops.custom_line_item (billing_group_id, name, description, item_type, percentage, services, first_period, last_period)
SELECT billing_group_id, 'EC2 migration credit', 'one-off: 1 % of EC2 while moving to Graviton', 'CREDIT', 1, '{AmazonEC2}', '2024-02-01', '2024-02-01'
  FROM billops.billing_group WHERE name = 'Data';
SELECT count(*) FROM billops.build_statements('2024-01-01') \gset
\echo
\echo '=== Pro forma statements, February 2024 (billops.statement): they add up to the AWS total to the cent ==='
SELECT group_name AS "billing group", to_char(aws_cost, 'FM$999,999,990.00') AS "AWS cost",
       to_char(proforma_cost, 'FM$999,999,990.00') AS "pro forma", to_char(margin, 'FM$999,990.00') AS margin, lines
  FROM billops.build_statements('2024-02-01');
SELECT to_char(sum(aws_cost), 'FM$999,999,990.00') AS "all statements, AWS cost",
       (SELECT to_char(sum(t), 'FM$999,999,990.00')
          FROM (SELECT round(sum(line_item_unblended_cost), 2) AS t FROM billops.cur_line_item
                 WHERE bill_billing_period_start_date = '2024-02-01' GROUP BY bill_payer_account_id) p) AS "CUR total, February (per payer, to the cent)"
  FROM billops.statement WHERE billing_period = '2024-02-01';
SQL
for g in $(psql -qXAt -c "SELECT group_name FROM billops.statement WHERE billing_period = '2024-02-01' AND billing_group_id IS NOT NULL ORDER BY 1"); do
    psql -qXAt -c "SELECT billops.statement_html('$g', '2024-02-01')" > "$STATEMENTS/$g-2024-02.html"
    echo "  open the statement for $g: $STATEMENTS/$g-2024-02.html"
done

log "AWS invoices for January (Invoicing API, emulated: ListInvoiceSummaries, GetInvoicePDF), then the month's reconciliation"
start_aws_api_emulator
# The emulator knows what AWS knows: January's final CUR (so its invoices and Cost Explorer data)...
jan_files=$(psql -qXAt -c "SELECT json_agg('$S3_DIR/acme-billing/' || f.object_key ORDER BY f.file_no)
                             FROM billops.cur_delivery_file f
                            WHERE f.delivery_id = (SELECT max(delivery_id) FROM billops.cur_partition WHERE billing_period = '2024-01-01')")
curl -sf -X POST "$AWS_API_EMULATOR_CONTROL/load-cur" -H 'content-type: application/json' -d "{\"paths\": $jan_files}" >/dev/null
# ...plus a credit memo AWS issued on February 20th for a January invoice: no CUR line carries it yet
first_invoice=$(psql -qXAt -c "SELECT min(bill_invoice_id) FROM billops.cur_line_item WHERE bill_billing_period_start_date = '2024-01-01' AND bill_invoice_id <> ''")
first_payer=$(psql -qXAt -c "SELECT bill_payer_account_id FROM billops.cur_line_item WHERE bill_invoice_id = '$first_invoice' LIMIT 1")
curl -sf -X POST "$AWS_API_EMULATOR_CONTROL/invoices" -H 'content-type: application/json' -d "{\"invoices\": [{
    \"AccountId\": \"$first_payer\", \"InvoiceId\": \"CM-2024-01-0042\", \"InvoiceType\": \"CREDIT_MEMO\",
    \"OriginalInvoiceId\": \"$first_invoice\", \"IssuedDate\": \"2024-02-20T00:00:00Z\",
    \"BillingPeriod\": {\"Month\": 1, \"Year\": 2024}, \"totalAmount\": \"-120.00\", \"currencyCode\": \"USD\",
    \"Entity\": {\"InvoicingEntity\": \"Amazon Web Services, Inc.\"}}]}" >/dev/null
# each payer account's billing APIs through a role of that account (STS, emulated)
for payer in $(psql -qXAt -c "SELECT DISTINCT payer_account_id FROM billops.cur_partition WHERE billing_period = '2024-01-01'"); do
    sts_role "{\"arn\": \"arn:aws:iam::$payer:role/billops-billing-reader\", \"trust\": [\"AKIDBILLOPSTEST\"]}"
done
psql -qX -v ON_ERROR_STOP=1 -v endpoint="$AWS_API_ENDPOINT" <<'SQL'
\set QUIET on
\pset footer off
-- where each payer's billing APIs are, and the role they are read through (credentials: a reference, never a key)
INSERT INTO billops.aws_api_source (payer_account_id, cost_explorer_url, invoicing_url, role_arn)
SELECT DISTINCT payer_account_id, :'endpoint', :'endpoint', 'arn:aws:iam::' || payer_account_id || ':role/billops-billing-reader'
  FROM billops.cur_partition WHERE billing_period = '2024-01-01';
\echo
\echo '=== Who pg_billops is at AWS for each payer: a session of that account''s role (credentials_check, keys masked; AWS STS GetCallerIdentity) ==='
SELECT s.payer_account_id AS payer, c.role_arn, c.access_key_id, c.expires_at::timestamp(0) AS "session expires (UTC)",
       c.caller_arn AS "AWS says we are"
  FROM billops.aws_api_source s
  CROSS JOIN LATERAL billops.credentials_check(s.credentials, s.region, true, s.role_arn, s.role_external_id, s.role_session_name) c
 ORDER BY 1;
\echo
\echo '=== AWS invoices, January 2024: summaries (paged), PDFs attached to the payables built from their lines ==='
SELECT r.payer_account_id AS payer, r.status, r.calls AS "API calls", r.items AS invoices
  FROM billops.aws_api_source s CROSS JOIN LATERAL billops.fetch_aws_invoices(s.payer_account_id, '2024-01-01') r;
SELECT invoice_id, payer_account_id AS payer, invoice_type, to_char(total_amount, 'FM$999,999,990.00') AS total,
       visible_delivery_id AS "CUR delivery", payable_ids AS payables, document
  FROM billops.aws_invoice_overview WHERE billing_period = '2024-01-01' ORDER BY payer_account_id, invoice_type DESC, invoice_id;
\echo
\echo '=== Reconciliation, January 2024: AWS invoices vs CUR vs payables (+ adjustments) vs statements ==='
SELECT s.payer_account_id AS payer, r.check_name, r.subject, r.expected, r.actual, r.variance, r.cause
  FROM billops.aws_api_source s CROSS JOIN LATERAL billops.reconcile('2024-01-01', s.payer_account_id) r
 ORDER BY 1, 2, 3;
\echo '--- closing January is refused while a variance is unexplained (SQLSTATE BO007):'
DO $$
DECLARE msg text; det text;
BEGIN
    PERFORM billops.close_period('2024-01-01', p) FROM billops.aws_api_source s(p);
EXCEPTION WHEN SQLSTATE 'BO007' THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE NOTICE E'%\n%', msg, det;
END $$;
\echo '--- the controller explains the credit memo; January closes for both payers'
SELECT billops.explain_variance(item_id, 'Credit memo for a service credit (case 8841); it appears in February''s CUR.')
  FROM billops.reconciliation_item WHERE billing_period = '2024-01-01' AND explanation IS NULL;
SELECT c.payer_account_id AS payer, to_char(c.cur_total, 'FM$999,999,990.00') AS "CUR total",
       to_char(c.invoice_total, 'FM$999,999,990.00') AS "invoice total", c.explained AS "explained variances", c.closed_by
  FROM billops.aws_api_source s CROSS JOIN LATERAL billops.close_period('2024-01-01', s.payer_account_id) c;
\echo
\echo '=== January is closed: each group''s statement becomes an internal chargeback, routed to the business unit ==='
SELECT count(*) AS chargebacks FROM billops.build_chargeback_payables('2024-01-01') \gset
SELECT p.source_entity AS "billing group", to_char(p.amount, 'FM$999,999,990.00') AS chargeback, p.status,
       (SELECT string_agg(DISTINCT s.approver_role, ', ') FROM billops.approval_step s
         WHERE s.payable_id = p.payable_id AND s.status = 'pending') AS "waiting for"
  FROM billops.payable p WHERE p.payer_account_id = 'chargeback' AND p.billing_period = '2024-01-01'
 ORDER BY p.amount DESC;
\echo
\echo '=== What the AWS API calls cost (billops.aws_api_call: Cost Explorer is USD 0.01 a page) ==='
SELECT * FROM billops.aws_api_spend ORDER BY 1, 2, 3;
SQL

log "demo finished; every number above came through S3 (emulated), SigV4 with keys of roles assumed through STS (emulated), gunzip and COPY, then the payable rules, then BILL and the AWS billing APIs (emulated)"
