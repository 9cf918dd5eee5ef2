-- Reconciliation: AWS invoices vs the CUR vs payables vs statements, every
-- variance with its cause, and a period that closes only when it reconciles.
BEGIN;
SELECT plan(22);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
-- chargeback is configured: the statements are reconciled too
INSERT INTO billops.billing_group (name) VALUES ('everyone');
INSERT INTO billops.billing_group_account (billing_group_id, account_id)
SELECT billing_group_id, a FROM billops.billing_group, unnest(ARRAY['222222222222', '333333333333']) a;
SELECT count(*) FROM billops.build_statements('2024-03-01');

-- AWS's invoice list, as ListInvoiceSummaries returns it (amounts are strings)
CREATE FUNCTION pg_temp.summary(id text, total numeric, kind text DEFAULT 'INVOICE') RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object('AccountId', '111111111111', 'InvoiceId', id, 'InvoiceType', kind,
                              'IssuedDate', 1712102400, 'DueDate', 1714694400,
                              'Entity', jsonb_build_object('InvoicingEntity', 'Amazon Web Services, Inc.'),
                              'BillingPeriod', jsonb_build_object('Month', 3, 'Year', 2024),
                              'BaseCurrencyAmount', jsonb_build_object('TotalAmount', total::text, 'CurrencyCode', 'USD',
                                  'TotalAmountBeforeTax', total::text,
                                  'AmountBreakdown', jsonb_build_object('Taxes', jsonb_build_object('TotalAmount', '0'))))
$$;
SELECT billops.record_aws_invoice(pg_temp.summary(i.invoice_id, i.amount))
  FROM (SELECT bill_invoice_id AS invoice_id, round(sum(line_item_unblended_cost), 2) AS amount FROM billops.cur_line_item
         WHERE bill_billing_period_start_date = '2024-03-01' GROUP BY 1) i;
SELECT is((SELECT count(*)::int FROM billops.aws_invoice), 4, 'four invoices recorded');
SELECT is((SELECT issued_date FROM billops.aws_invoice WHERE invoice_id = 'INV-DD-1'), to_timestamp(1712102400),
          'epoch-second timestamps are read as such');
SELECT throws_ok($$ SELECT billops.record_aws_invoice('{"InvoiceId": "x"}') $$, '22023', 'not an AWS invoice summary',
                 'a summary without its required members is refused');
SELECT is((SELECT count(*)::int FROM billops.aws_invoice_payable WHERE invoice_id = 'INV-DD-1'), 1, 'the Datadog invoice is behind one payable');

SELECT is((SELECT count(*)::int FROM billops.reconcile('2024-03-01', '111111111111')), 0,
          'invoices, CUR and payables agree: nothing to explain');

-- plant variances: AWS's Datadog invoice differs by 5 cents, and a credit memo has no CUR lines yet
SELECT billops.record_aws_invoice(pg_temp.summary('INV-DD-1', (SELECT total_amount + 0.05 FROM billops.aws_invoice WHERE invoice_id = 'INV-DD-1')));
SELECT billops.record_aws_invoice(pg_temp.summary('CM-1', -12.00, 'CREDIT_MEMO') || '{"OriginalInvoiceId": "INV-AWS-1"}');
CREATE TEMP TABLE found AS SELECT * FROM billops.reconcile('2024-03-01', '111111111111');
SELECT is((SELECT variance FROM found WHERE subject = 'INV-DD-1'), -0.05::numeric, 'the planted variance is found, to the cent');
SELECT ok((SELECT cause FROM found WHERE subject = 'INV-DD-1') LIKE 'the CUR lines of INV-DD-1 add up to %, the invoice says %', 'with its cause');
SELECT ok((SELECT cause FROM found WHERE subject = 'CM-1') LIKE 'credit memo CM-1 (against INV-AWS-1) has no CUR lines%', 'the credit memo too');

SELECT throws_like($$ SELECT billops.close_period('2024-03-01', '111111111111') $$,
                   '%does not reconcile: 2 unexplained variance(s)%', 'the period cannot close');
SELECT is((SELECT count(*)::int FROM billops.period_close), 0, 'and is not closed');

-- a person explains; an explanation survives reconciling again while the variance is the same
SELECT billops.explain_variance((SELECT item_id FROM billops.reconciliation_item WHERE subject = 'CM-1'), 'April credit for a March outage, in April''s CUR');
SELECT is((SELECT count(*)::int FROM billops.reconcile('2024-03-01', '111111111111') WHERE explained), 1, 'the explanation is kept');
SELECT throws_ok($$ SELECT billops.explain_variance(1, '  ') $$, '22023', 'an explanation is required', 'an empty explanation is refused');
SELECT billops.explain_variance((SELECT item_id FROM billops.reconciliation_item WHERE subject = 'INV-DD-1'), 'rounding on AWS''s side, ticket 123');
SELECT is((billops.close_period('2024-03-01', '111111111111')).explained, 2, 'with every variance explained, the period closes');
SELECT throws_ok($$ SELECT billops.close_period('2024-03-01', '111111111111') $$, 'BO007', NULL, 'once');

-- AWS re-delivers the closed month with Datadog at 900 instead of 800: payables and statements
-- were built from the old delivery, and the difference is found and explained by its cause
SELECT pg_temp.load_month(true, '900.00');
CREATE TEMP TABLE after_redelivery AS SELECT * FROM billops.reconcile('2024-03-01', '111111111111');
SELECT is((SELECT variance FROM after_redelivery WHERE check_name = 'cur_vs_payables'), -100.00::numeric,
          'a delivery newer than the payables: 100.00 missing from them');
SELECT ok((SELECT cause FROM after_redelivery WHERE check_name = 'cur_vs_payables') LIKE '%a delivery newer than the last build%', 'with its cause');
SELECT is((SELECT variance FROM after_redelivery WHERE check_name = 'cur_vs_statements'), -100.00::numeric,
          'and from the statements');
SELECT throws_ok($$ SELECT * FROM billops.build_statements('2024-03-01') $$, 'BO007', NULL, 'the statements of a closed period are final');
SELECT is((SELECT count(*)::int FROM billops.reconcile('2024-04-01', '111111111111')), 0, 'a period with nothing in it has nothing to reconcile');
SELECT ok(has_function_privilege('billops_admin', 'billops.close_period(date, text)', 'EXECUTE')
          AND NOT has_function_privilege('billops_analyst', 'billops.close_period(date, text)', 'EXECUTE')
          AND has_table_privilege('billops_analyst', 'billops.reconciliation_item', 'SELECT'),
          'admins close periods; analysts read the variances');

-- two payers whose half cents land in one group: rounding per group would give the group one
-- cent where each payer's own total (what its invoice says) has one each
CREATE FUNCTION pg_temp.load_june() RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    head text := 'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,'
              || 'bill/BillingPeriodStartDate,lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,'
              || 'lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName';
    v record;
BEGIN
    -- one report per payer, as AWS writes them
    FOR v IN SELECT * FROM (VALUES ('444444444444', '222222222222', 10.005), ('555555555555', '333333333333', 20.005)) v(payer, acct, cost) LOOP
        EXECUTE format('COPY (SELECT unnest(%L::text[])) TO %L', ARRAY[head,
            format('INV-%s,"Amazon Web Services, Inc.",AWS,Anniversary,%s,2024-06-01T00:00:00Z,2024-06-03T00:00:00Z,%s,Usage,AmazonEC2,%s,USD,"Amazon Web Services, Inc.",EC2',
                   v.payer, v.payer, v.acct, v.cost)], '/tmp/billops_tap_recon_june_' || v.payer || '.csv');
        PERFORM billops.load_cur_file('/tmp/billops_tap_recon_june_' || v.payer || '.csv', 'tap-recon-june', 'june-' || v.payer);
    END LOOP;
END $$;
SELECT pg_temp.load_june();
SELECT count(*) FROM billops.build_statements('2024-06-01');
SELECT is((SELECT string_agg(l.payer_account_id || ' ' || l.aws_cost, ', ' ORDER BY l.payer_account_id)
             FROM billops.statement_line l JOIN billops.statement st USING (statement_id) WHERE st.billing_period = '2024-06-01'),
          '444444444444 10.01, 555555555555 20.01', 'each payer''s statement lines add up to its own total, to the cent');
SELECT is((SELECT count(*)::int FROM billops.reconcile('2024-06-01', '444444444444') r WHERE r.check_name = 'cur_vs_statements')
          + (SELECT count(*)::int FROM billops.reconcile('2024-06-01', '555555555555') r WHERE r.check_name = 'cur_vs_statements'),
          0, 'so both payers'' statements reconcile');

SELECT * FROM finish();
ROLLBACK;
