-- Payables as an analyst sees them, and every refusal as a user reads it:
-- message, detail, hint and SQLSTATE.
\set SHOW_CONTEXT never
SET client_min_messages = warning;
COPY (SELECT unnest(ARRAY[
  'bill/InvoiceId,bill/InvoicingEntity,bill/BillingEntity,bill/BillType,bill/PayerAccountId,bill/BillingPeriodStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UnblendedCost,lineItem/CurrencyCode,lineItem/LegalEntity,product/ProductName',
  'INV-1,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,AmazonEC2,12000.004,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud',
  'INV-1,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,333333333333,Usage,AmazonS3,300.335,USD,"Amazon Web Services, Inc.",Amazon Simple Storage Service',
  'INV-1,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Tax,AmazonEC2,450.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud',
  'INV-2,"Amazon Web Services, Inc.",AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,prod-dd,800.00,USD,"Datadog, Inc.",Datadog Pro',
  'INV-3,"Amazon Web Services, Inc.",AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,333333333333,Usage,prod-x,99.99,USD,Obscure Tools LLC,Widgets'
])) TO '/tmp/billops_regress_payables.csv';
SELECT billops.load_cur_file('/tmp/billops_regress_payables.csv', 'regress-payables', 'regress-1');
RESET client_min_messages;

CREATE ROLE regress_eng_owners;
CREATE ROLE regress_alice;
CREATE ROLE regress_bob;
GRANT billops_approver TO regress_eng_owners, regress_bob;
GRANT regress_eng_owners TO regress_alice;
GRANT billops_finance_leadership TO regress_bob;
INSERT INTO billops.vendor (name, kind) VALUES ('Datadog', 'marketplace_seller');
INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
SELECT vendor_id, 'prefix', 'datadog' FROM billops.vendor WHERE name = 'Datadog';
INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'ENG');
INSERT INTO billops.routing_rule (approver_role) VALUES ('regress_eng_owners');

SELECT * FROM billops.build_payables() ORDER BY payable_id, action;
SELECT payable_id, charge_source, vendor, kind, status, amount, lines, waiting_on, exception_reasons
  FROM billops.payable_overview ORDER BY payable_id;
SELECT line_id, description, amount, exact_amount, gl_account, department FROM billops.payable_line
 WHERE payable_id = 1 ORDER BY line_key;
SELECT subject, payable_id, reason_code, field, reason, next_step FROM billops.exception_queue;
SELECT approver_role, step_name, reason, payable_id, amount FROM billops.approval_queue ORDER BY payable_id, approver_role;

-- refusals
UPDATE billops.payable SET status = 'paid' WHERE payable_id = 3;
\echo :LAST_ERROR_SQLSTATE
UPDATE billops.payable SET amount = 1 WHERE payable_id = 3;
\echo :LAST_ERROR_SQLSTATE
DELETE FROM billops.payable WHERE payable_id = 3;
\echo :LAST_ERROR_SQLSTATE
SELECT billops.route_payable(4);
\echo :LAST_ERROR_SQLSTATE
SELECT billops.route_payable(3);
\echo :LAST_ERROR_SQLSTATE
SET ROLE regress_bob;
SELECT billops.approve(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_alice;
SELECT billops.approve(1, 'EC2 as planned');
SELECT billops.approve(1);
\echo :LAST_ERROR_SQLSTATE
RESET ROLE;
SET ROLE regress_bob;
SELECT billops.approve(1, 'over threshold, fine');
RESET ROLE;
UPDATE billops.payable_line SET gl_account = '9999' WHERE payable_id = 1;
\echo :LAST_ERROR_SQLSTATE
UPDATE billops.audit_log SET actor = 'nobody' WHERE audit_id = 1;
\echo :LAST_ERROR_SQLSTATE
SELECT actor, system_generated, object_type, action, before->>'status' AS before, after->>'status' AS after, after->>'comment' AS comment
  FROM billops.audit_log WHERE payable_id = 1 AND (object_type = 'approval_step' AND action = 'transition' OR object_type = 'payable' AND action = 'transition')
 ORDER BY audit_id;

DROP ROLE regress_alice, regress_bob, regress_eng_owners;
