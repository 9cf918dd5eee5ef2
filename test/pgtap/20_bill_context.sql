-- The context that explains a payable: against last month and the trailing
-- average, the drivers of the change, open signals, AWS invoices; as facts,
-- as a description within a limit, and as a one-page PDF.
BEGIN;
SELECT plan(17);
\ir _payables_fixture.psql

-- February: Datadog 600.00 in account 222222222222 (March, from the fixture: 800.00)
SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_context_feb.csv', ARRAY[
    'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,'
    || 'bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,'
    || 'lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName,resourceTags/user:CostCenter',
    'INV-DD-0,"Amazon Web Services, Inc.",AWS Marketplace,Anniversary,111111111111,2024-02-01T00:00:00Z,222222222222,Usage,prod-dd1,450.00,USD,"Datadog, Inc.",Datadog Pro,CC-1',
    'INV-DD-0,"Amazon Web Services, Inc.",AWS Marketplace,Anniversary,111111111111,2024-02-01T00:00:00Z,222222222222,Usage,prod-dd1,150.00,USD,"Datadog, Inc.",Datadog Logs,CC-1']),
    'tap-payables', 'tap-feb');
SELECT count(*) FROM billops.build_payables('2024-02-01');
SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE dd AS SELECT payable_id AS id FROM billops.payable
 WHERE billing_period = '2024-03-01' AND charge_source LIKE 'marketplace:Datadog, Inc.%';
CREATE TEMP TABLE c AS SELECT billops.payable_context((SELECT id FROM dd)) AS j;

SELECT is((SELECT j->>'amount' || ' ' || (j->>'previous_amount') || ' ' || (j->>'change') || ' ' || (j->>'change_pct') FROM c),
          '800.00 600.00 200.00 33.3', 'against last month: 800.00 after 600.00, +200.00 (+33.3 %)');
SELECT is((SELECT (j->>'trailing_average') || ' over ' || (j->>'trailing_months') FROM c), '600.00 over 1',
          'the trailing average of the months there are');
SELECT is((SELECT string_agg((d->>'dimension') || ':' || (d->>'key') || ':' || (d->>'change'), ', ' ORDER BY d->>'dimension', d->>'key')
             FROM c, jsonb_array_elements(j->'drivers') d),
          'service:Datadog Logs:-150.00, service:Datadog Pro:350.00, usage_account:222222222222:200.00, usage_type:(none):200.00',
          'the drivers of the change, by service, account and usage type');
SELECT is((SELECT jsonb_array_length(j->'open_signals') FROM c), 0, 'no open signals yet');

-- an open spend signal for its account, and the AWS invoice it ties to
INSERT INTO billops.spend_signal (dedupe_key, source, billing_period, payer_account_id, usage_account_id, service, impact)
VALUES ('tap-sig-1', 'cur_baseline', '2024-03-01', '111111111111', '222222222222', 'Datadog Pro', 150.00),
       ('tap-sig-2', 'cur_baseline', '2024-03-01', '111111111111', '999999999999', 'Other', 5.00);
INSERT INTO billops.aws_invoice (invoice_id, account_id, billing_period, invoice_type, currency, total_amount)
VALUES ('INV-DD-1', '111111111111', '2024-03-01', 'INVOICE', 'USD', 800.00);
SELECT is(billops.payable_context_text((SELECT id FROM dd)),
          'Datadog, Inc. 2024-03 payable: USD 800.00. Against 2024-02: up 200.00 (33.3%), was 600.00. '
          || 'Average of the previous 1 month(s): 600.00. Top change by service: Datadog Pro +350.00 (now 800.00). '
          || 'Top change by service: Datadog Logs -150.00 (now 0.00). Top change by usage account: 222222222222 +200.00 (now 800.00). '
          || 'Top change by usage type: (none) +200.00 (now 800.00). 1 open spend signal(s) for its accounts, impact 150.00. '
          || 'AWS invoice INV-DD-1 (USD 800.00).',
          'the description says it all, with the signal of its own account only and the invoice''s total');
SELECT is(length(billops.payable_context_text((SELECT id FROM dd), 60)), 60, 'cut at the length asked for ...');
SELECT ok(billops.payable_context_text((SELECT id FROM dd), 60) LIKE '%…', '... saying it was cut');
UPDATE billops.setting SET value = '80' WHERE name = 'bill_description_max_length';
SELECT is(length(billops.payable_context_text((SELECT id FROM dd))), 80, 'by default at setting bill_description_max_length');
SELECT is((SELECT j->>'previous_amount' FROM (SELECT billops.payable_context(payable_id) AS j FROM billops.payable
            WHERE billing_period = '2024-02-01' AND charge_source LIKE 'marketplace:Datadog, Inc.%') x), NULL,
          'the first month has nothing to compare with');

-- who may read it: analysts, and approvers of the payable
SELECT throws_ok(format($$ SELECT pg_temp.as_role('tap_mallory', 'SELECT billops.payable_context(%s)::text') $$, (SELECT id FROM dd)),
                 'P0002', NULL, 'an approver the payable is not routed to cannot read its context');
SELECT lives_ok(format($$ SELECT pg_temp.as_role('tap_ann', 'SELECT billops.payable_context_text(%s)') $$, (SELECT id FROM dd)),
                'an analyst can');

-- the PDF: one page, its cross-reference table pointing at each object
CREATE TEMP TABLE pdf AS SELECT billops.payable_context_pdf((SELECT id FROM dd)) AS b;
CREATE TEMP TABLE pdft AS SELECT convert_from(b, 'LATIN1') AS t FROM pdf;
SELECT is((SELECT substr(b, 1, 8) FROM pdf), convert_to('%PDF-1.4', 'UTF8'), 'a PDF 1.4 file');
SELECT ok((SELECT t ~ '%%EOF\n$' FROM pdft), 'ending with %%EOF');
SELECT is((SELECT count(*)::int FROM pdft, regexp_matches(t, '/Type /Page ', 'g')), 1, 'one page');
SELECT is((SELECT string_agg(CASE WHEN substr(t, e.off::int + 1, length(e.n || ' 0 obj')) = e.n || ' 0 obj' THEN 'ok' ELSE 'bad ' || e.n END,
                             ',' ORDER BY e.n)
             FROM pdft, LATERAL (SELECT r.m[1] AS off, r.n::text AS n
                                   FROM regexp_matches(substr(t, position(E'\nxref\n' IN t)), '([0-9]{10}) 00000 n', 'g')
                                        WITH ORDINALITY AS r(m, n)) e),
          'ok,ok,ok,ok,ok', 'each object is where the cross-reference table says');
SELECT ok((SELECT position('/F1 14 Tf (Why this bill: 111111111111|2024-03|marketplace:Datadog, Inc. via) Tj 0 -17 Td (Amazon Web Services, Inc.) Tj' IN t) > 0
             FROM pdft), 'titled with the payable''s key, wrapped to the page');
SELECT ok((SELECT position('(Against 2024-02: up 200.00 \(33.3%\), was 600.00.) Tj' IN t) > 0 FROM pdft), 'its lines, with PDF''s escapes');

SELECT * FROM finish();
ROLLBACK;
