-- Internal chargeback: each group's statement becomes a payable (payer
-- 'chargeback'), preliminary until the period closes, then routed to the
-- group's owners, approved and locked like any payable; never sent to BILL.
BEGIN;
SELECT plan(12);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
INSERT INTO billops.billing_group (name, business_unit) VALUES ('Engineering', 'Engineering'), ('Data', 'Data');
INSERT INTO billops.billing_group_account (billing_group_id, account_id)
SELECT g.billing_group_id, a.account_id FROM billops.billing_group g JOIN billops.aws_account a USING (business_unit);
INSERT INTO billops.pricing_plan (name) VALUES ('internal');
SELECT billops.set_pricing_rule('internal', 'overhead', '-infinity', 'MARKUP', 'GLOBAL', 10);
INSERT INTO billops.billing_group_pricing_plan (billing_group_id, pricing_plan_id)
SELECT g.billing_group_id, p.pricing_plan_id FROM billops.billing_group g, billops.pricing_plan p;

SELECT throws_ok($$ SELECT * FROM billops.build_chargeback_payables('2024-03-01') $$, '55000', 'no statements for 2024-03',
                 'no statements, no chargeback');
SELECT count(*) FROM billops.build_statements('2024-03-01');

CREATE TEMP TABLE run1 AS SELECT * FROM billops.build_chargeback_payables('2024-03-01');
SELECT is((SELECT string_agg(dedupe_key || ' ' || action || ' ' || status, ', ' ORDER BY dedupe_key) FROM run1),
          (SELECT string_agg(billops.payable_dedupe_key('chargeback', '2024-03-01', 'chargeback:' || group_name)
                             || ' created draft', ', ' ORDER BY billops.payable_dedupe_key('chargeback', '2024-03-01', 'chargeback:' || group_name))
             FROM billops.statement WHERE billing_period = '2024-03-01' AND billing_group_id IS NOT NULL),
          'one payable per group''s statement, a draft while the period is open');
SELECT is((SELECT count(*)::int FROM billops.payable p JOIN billops.statement s ON p.charge_source = 'chargeback:' || s.group_name
            WHERE p.payer_account_id = 'chargeback' AND s.billing_period = '2024-03-01'
              AND p.amount = s.proforma_cost AND p.treatment = 'usage_summary' AND p.category = 'chargeback'), 2,
          'each for its statement''s pro forma cost, as an internal acknowledgement');
SELECT is((SELECT sum(l.amount) FROM billops.payable_line l JOIN billops.payable p USING (payable_id)
            WHERE p.charge_source = 'chargeback:Engineering'),
          (SELECT proforma_cost FROM billops.statement WHERE group_name = 'Engineering' AND billing_period = '2024-03-01'),
          'its lines (by kind and service) add up to it');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox o JOIN billops.payable p USING (payable_id)
            WHERE p.payer_account_id = 'chargeback'), 0, 'nothing of it goes to BILL');
SELECT is((SELECT count(*)::int FROM billops.build_chargeback_payables('2024-03-01') WHERE action <> 'unchanged'), 0,
          'building again changes nothing');

-- the period reconciles (AWS's invoices as the CUR has them) and closes: the chargebacks become final and go to the owners
SELECT billops.record_aws_invoice(jsonb_build_object('AccountId', '111111111111', 'InvoiceId', i.invoice_id, 'InvoiceType', 'INVOICE',
           'BillingPeriod', jsonb_build_object('Month', 3, 'Year', 2024),
           'BaseCurrencyAmount', jsonb_build_object('TotalAmount', i.amount::text, 'CurrencyCode', 'USD')))
  FROM (SELECT bill_invoice_id AS invoice_id, round(sum(line_item_unblended_cost), 2) AS amount FROM billops.cur_line_item
         WHERE bill_billing_period_start_date = '2024-03-01' GROUP BY 1) i;
SELECT billops.explain_variance(item_id, 'tap: accepted') FROM billops.reconcile('2024-03-01', '111111111111') r
  JOIN billops.reconciliation_item i USING (check_name, subject) WHERE i.billing_period = '2024-03-01';
SELECT ok((SELECT billops.close_period('2024-03-01', '111111111111')) IS NOT NULL, 'March closes');
CREATE TEMP TABLE run2 AS SELECT * FROM billops.build_chargeback_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE charge_source = 'chargeback:Engineering'), 'routed',
          'after the close the chargeback is final and routed');
SELECT is((SELECT string_agg(DISTINCT approver_role, ',') FROM billops.approval_step s JOIN billops.payable p USING (payable_id)
            WHERE p.charge_source = 'chargeback:Engineering'), 'billops_finance_leadership,tap_eng_owner',
          'to the owners of the group''s accounts (and, above the approval threshold, finance leadership)');
SELECT is(pg_temp.as_role('tap_alice', $$ SELECT billops.approve(payable_id) FROM billops.payable WHERE charge_source = 'chargeback:Engineering' $$)
          || ' / ' || pg_temp.as_role('tap_carol', $$ SELECT billops.approve(payable_id) FROM billops.payable WHERE charge_source = 'chargeback:Engineering' $$),
          'approved step; 1 step(s) to go / payable approved', 'the business unit''s owner and finance leadership approve it');
SELECT throws_ok($$ UPDATE billops.payable SET amount = 1 WHERE charge_source = 'chargeback:Engineering' $$, NULL, NULL,
                 'and it is locked like any approved payable');
SELECT is((SELECT count(*)::int FROM billops.build_chargeback_payables('2024-03-01') WHERE action <> 'unchanged'), 0,
          'the approved chargeback stays as approved');

SELECT * FROM finish();
ROLLBACK;
