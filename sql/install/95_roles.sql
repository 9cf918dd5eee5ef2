-- ---------------------------------------------------------------------------
-- Roles and row-level security.
--   billops_admin     configures rules, builds, routes, voids (and reads all)
--   billops_analyst   reads everything, changes nothing
--   billops_approver  sees and decides only the payables routed to them
--   billops_webhook   hands BILL webhook notifications over (receive_bill_webhook), nothing else
-- Roles are cluster-wide: created if missing, kept by DROP EXTENSION.
-- The three default approver groups are members of billops_approver; put
-- people in them (GRANT billops_finance_leadership TO carol).
-- ---------------------------------------------------------------------------
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['billops_admin', 'billops_analyst', 'billops_approver', 'billops_finance_review',
                             'billops_finops_owner', 'billops_finance_leadership', 'billops_webhook'] LOOP
        IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
END $$;
GRANT billops_analyst TO billops_admin;
GRANT billops_approver TO billops_finance_review, billops_finops_owner, billops_finance_leadership;

GRANT USAGE ON SCHEMA billops TO billops_admin, billops_analyst, billops_approver, billops_webhook;

-- analysts (and admins) read everything
GRANT SELECT ON ALL TABLES IN SCHEMA billops TO billops_analyst;
GRANT EXECUTE ON FUNCTION billops._bill_worker_state() TO billops_analyst;   -- for billops.bill_outbox_status
GRANT EXECUTE ON FUNCTION billops._athena_map(jsonb, boolean) TO billops_analyst;   -- for billops.athena_cur2
GRANT EXECUTE ON FUNCTION billops._bill_approver_chain(bigint), billops._bill_route_key(text[]), billops._bill_route_name(text[]),
      billops._bill_api_user() TO billops_analyst;   -- for billops.bill_routing

-- admins change configuration; payables only through functions
GRANT INSERT, UPDATE, DELETE ON billops.setting, billops.charge_category, billops.charge_rule,
      billops.treatment_rule, billops.vendor, billops.vendor_alias, billops.aws_account, billops.billing_group,
      billops.billing_group_account, billops.coding_field, billops.coding_rule, billops.routing_rule, billops.bill_approver,
      billops.pricing_plan, billops.pricing_rule, billops.billing_group_pricing_plan, billops.allocation_rule,
      billops.shared_cost_rule, billops.shared_cost_target, billops.custom_line_item, billops.focus_service_category
      TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.statement_html(text, date), billops._html(text), billops._money(numeric),
      billops._service_of(jsonb, text),
      billops._amortized_cost(text, numeric, numeric, numeric, numeric, numeric, numeric, numeric, text) TO billops_analyst;
GRANT INSERT, UPDATE, DELETE ON billops.spend_threshold TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.detect_spend_signals(date), billops.record_ce_anomaly(jsonb, text),
      billops.resolve_signal(bigint, text, text) TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.focus_conformance(regclass, text, text[]) TO billops_analyst;
GRANT EXECUTE ON FUNCTION billops.reconcile(date, text), billops.explain_variance(bigint, text),
      billops.close_period(date, text), billops.record_aws_invoice(jsonb) TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.build_statements(date),
      billops.set_pricing_rule(text, text, date, text, text, numeric, jsonb, text, text, text, text) TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.build_payables(date, text), billops.route_payable(bigint),
      billops.reopen_payable(bigint, text), billops.void_payable(bigint, text),
      billops.bill_outbox_retry(bigint), billops.attach_document(bigint, text, bytea, text) TO billops_admin;
GRANT INSERT, UPDATE, DELETE ON billops.bill_classification TO billops_admin;
GRANT INSERT, UPDATE, DELETE ON billops.aws_api_source TO billops_admin;
GRANT EXECUTE ON FUNCTION billops.fetch_ce_daily_spend(text, date, date), billops.fetch_ce_anomalies(text, date, date),
      billops.fetch_aws_invoices(text, date, boolean) TO billops_admin;

-- whatever relays BILL's webhook POSTs into the database logs in as a member of
-- billops_webhook: it can hand over a signed notification, and nothing else
GRANT EXECUTE ON FUNCTION billops.receive_bill_webhook(text, text) TO billops_webhook;

-- approvers: their payables, the lines and steps behind them, and decisions
GRANT SELECT ON billops.payable, billops.payable_line, billops.payable_adjustment, billops.approval_step,
      billops.vendor, billops.payable_status, billops.payable_overview, billops.approval_queue,
      billops.exception_queue, billops.payable_status_monthly TO billops_approver;
-- (the exception queue shows BILL conflicts of their payables: bill_link, under the same policy)
GRANT SELECT ON billops.bill_link TO billops_approver;
GRANT EXECUTE ON FUNCTION billops.approve(bigint, text), billops.reject(bigint, text)
      TO billops_approver, billops_admin;

-- read-only helpers for everyone with a pg_billops role
GRANT EXECUTE ON FUNCTION billops.payable_line_items(bigint, bigint), billops.actor(),
      billops._routed_to_actor(bigint), billops._is_member(name, text), billops.payable_dedupe_key(text, date, text),
      billops.normalize_vendor_name(text), billops.vendor_match(text), billops.billing_group_of(text, date),
      billops.business_unit_of(text, date), billops.charge_source_of(text, text, text, text, text, text),
      billops.treatment_of(text, text, text), billops.setting_value(text),
      billops.payable_context(bigint), billops.payable_context_text(bigint, integer), billops.payable_context_pdf(bigint),
      billops._payable_context_lines(jsonb), billops._amount_text(numeric), billops._pdf_page(text, text[]), billops._pdf_wrap(text[], integer),
      billops._service_of(jsonb, text)
      TO billops_analyst, billops_approver;

-- Row-level security.  Not FORCEd: the owner is the superuser that created
-- the extension and bypasses RLS anyway; the triggers, not RLS, protect data.
DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['payable', 'payable_line', 'payable_adjustment', 'approval_step', 'bill_link'] LOOP
        EXECUTE format('ALTER TABLE billops.%I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY staff_read ON billops.%I FOR SELECT TO billops_analyst USING (true)', t);
        EXECUTE format('CREATE POLICY approver_read ON billops.%I FOR SELECT TO billops_approver
                        USING (billops._routed_to_actor(payable_id))', t);
    END LOOP;
END $$;

-- pg_dump keeps what users created.  Seeded rows (rule_id/vendor_id <= 1000,
-- settings, categories, coding fields) are recreated by CREATE EXTENSION;
-- changes made to seeded rows are not dumped (a pg_extension_config_dump limit).
-- (one call per statement: each call updates pg_extension's row)
SELECT pg_catalog.pg_extension_config_dump('billops.charge_rule', 'WHERE rule_id > 1000');
SELECT pg_catalog.pg_extension_config_dump('billops.treatment_rule', 'WHERE rule_id > 1000');
SELECT pg_catalog.pg_extension_config_dump('billops.vendor', 'WHERE vendor_id > 1000');
SELECT pg_catalog.pg_extension_config_dump('billops.vendor_alias', 'WHERE alias_id > 1000');
SELECT pg_catalog.pg_extension_config_dump('billops.aws_account', '');
SELECT pg_catalog.pg_extension_config_dump('billops.billing_group', '');
SELECT pg_catalog.pg_extension_config_dump('billops.billing_group_account', '');
SELECT pg_catalog.pg_extension_config_dump('billops.coding_rule', '');
SELECT pg_catalog.pg_extension_config_dump('billops.routing_rule', '');
SELECT pg_catalog.pg_extension_config_dump('billops.payable', '');
SELECT pg_catalog.pg_extension_config_dump('billops.payable_line', '');
SELECT pg_catalog.pg_extension_config_dump('billops.payable_adjustment', '');
SELECT pg_catalog.pg_extension_config_dump('billops.approval_step', '');
SELECT pg_catalog.pg_extension_config_dump('billops.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_classification', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_link', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_outbox', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_create_intent', '');
SELECT pg_catalog.pg_extension_config_dump('billops.payable_document', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_webhook_event', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_payment', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_sync_state', '');
-- the approver directory, and BILL's users and roles as last read (bill_sync_state says when)
SELECT pg_catalog.pg_extension_config_dump('billops.bill_approver', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_user', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_role', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_route', '');
SELECT pg_catalog.pg_extension_config_dump('billops.bill_context', '');
SELECT pg_catalog.pg_extension_config_dump('billops.job_run', '');
SELECT pg_catalog.pg_extension_config_dump('billops.pricing_plan', '');
SELECT pg_catalog.pg_extension_config_dump('billops.pricing_rule', '');
SELECT pg_catalog.pg_extension_config_dump('billops.billing_group_pricing_plan', '');
SELECT pg_catalog.pg_extension_config_dump('billops.allocation_rule', '');
SELECT pg_catalog.pg_extension_config_dump('billops.shared_cost_rule', '');
SELECT pg_catalog.pg_extension_config_dump('billops.shared_cost_target', '');
SELECT pg_catalog.pg_extension_config_dump('billops.custom_line_item', '');
SELECT pg_catalog.pg_extension_config_dump('billops.statement', '');
SELECT pg_catalog.pg_extension_config_dump('billops.statement_line', '');
SELECT pg_catalog.pg_extension_config_dump('billops.aws_invoice', '');
SELECT pg_catalog.pg_extension_config_dump('billops.reconciliation_item', '');
SELECT pg_catalog.pg_extension_config_dump('billops.period_close', '');
SELECT pg_catalog.pg_extension_config_dump('billops.spend_threshold', '');
SELECT pg_catalog.pg_extension_config_dump('billops.spend_signal', '');
SELECT pg_catalog.pg_extension_config_dump('billops.aws_api_source', '');
SELECT pg_catalog.pg_extension_config_dump('billops.aws_api_call', '');
SELECT pg_catalog.pg_extension_config_dump('billops.ce_fetched_day', '');
SELECT pg_catalog.pg_extension_config_dump('billops.ce_daily_spend', '');
SELECT pg_catalog.pg_extension_config_dump('billops.aws_invoice_document', '');
SELECT pg_catalog.pg_extension_config_dump('billops.focus_partition', '');
-- ...and the identity sequences behind them, or a restored database would
-- hand out ids that already exist.
DO $$
DECLARE
    seq text;
BEGIN
    FOR seq IN SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname)
                 FROM pg_extension e
                 CROSS JOIN LATERAL unnest(e.extconfig) cfg(oid)
                 JOIN pg_class c ON c.oid = cfg.oid JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attidentity <> ''
                WHERE e.extname = 'pg_billops' AND c.relkind = 'r'
    LOOP
        PERFORM pg_catalog.pg_extension_config_dump(seq, '');
    END LOOP;
END $$;
