-- Building payables: charge sources, classification, dedupe keys, idempotent
-- re-runs, preliminary → final in place, cent-exact lines with drill-down,
-- vendor normalization, required coding, configurable grain and treatment.
BEGIN;
SELECT plan(47);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(false);
CREATE TEMP TABLE run1 AS SELECT * FROM billops.build_payables('2024-03-01');

SELECT is((SELECT count(*)::int FROM billops.payable), 6, 'six charge sources become six payables');
SELECT bag_eq($$ SELECT charge_source FROM billops.payable $$, $$ VALUES
    ('aws_usage:Amazon Web Services, Inc.'), ('tax:Amazon Web Services, Inc.'), ('credit:Amazon Web Services, Inc.'),
    ('marketplace:Datadog, Inc. via Amazon Web Services, Inc.'),
    ('marketplace:DATADOG INC via Amazon Web Services EMEA SARL'),
    ('marketplace:ACME Widgets LLC via Amazon Web Services, Inc.') $$,
    'usage, tax and credits per invoicing entity; each Marketplace seller per invoicing entity');
SELECT is((SELECT dedupe_key FROM billops.payable WHERE charge_source LIKE 'tax:%'),
          '111111111111|2024-03|tax:Amazon Web Services, Inc.', 'dedupe key = payer | period | charge source');
SELECT is((SELECT sum(amount) FROM billops.payable), 13870.34::numeric, 'payables add up to the month');
SELECT is((SELECT sum(exact_amount) FROM billops.payable),
          (SELECT sum(line_item_unblended_cost) FROM billops.cur_line_item WHERE bill_payer_account_id = '111111111111'),
          'exact amounts equal the line items: nothing dropped');
SELECT bag_eq($$ SELECT category, treatment FROM billops.payable $$, $$ VALUES
    ('aws_usage', 'usage_summary'), ('tax', 'usage_summary'), ('credit', 'usage_summary'),
    ('marketplace', 'invoice_like'), ('marketplace', 'invoice_like'), ('marketplace', 'invoice_like') $$,
    'default classification: Marketplace sellers are bills, usage/tax/credits are acknowledged');

-- summarized lines, to the cent
SELECT is((SELECT amount FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 12500.35::numeric,
          'usage payable rounds the exact total 12500.352');
SELECT is((SELECT count(*)::int FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%')), 4,
          'grain service × coding: EC2 and S3, each split by department');
SELECT is((SELECT count(*)::int FROM billops.payable p
            WHERE p.amount <> (SELECT coalesce(sum(l.amount), 0) FROM billops.payable_line l WHERE l.payable_id = p.payable_id)),
          0, 'every payable''s lines sum to its amount to the cent');
SELECT isnt((SELECT sum(round(exact_amount, 2)) FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%')),
            12500.35::numeric, '(rounding lines one by one would not add up: the case is real)');
SELECT is((SELECT amount FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%')
              AND grain_value = 'Amazon Elastic Compute Cloud' AND department = 'ENG'), 11000.01::numeric,
          'the largest remainder gets the missing cent');

-- drill-down
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.payable_line_items(pg_temp.payable('aws_usage:%'))),
          12500.352::numeric, 'drill-down from a payable returns exactly its line items');
SELECT is((SELECT count(*)::int FROM billops.payable_line_items(pg_temp.payable('aws_usage:%'),
              (SELECT line_id FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%')
                  AND grain_value = 'Amazon Elastic Compute Cloud' AND department = 'ENG'))), 2,
          'drill-down from a line returns the two EC2 line items of that department');

-- vendor normalization and the exception queue
SELECT is((SELECT count(DISTINCT vendor_id)::int FROM billops.payable WHERE charge_source ILIKE 'marketplace:datadog%'), 1,
          '"Datadog, Inc." and "DATADOG INC" are one vendor');
SELECT is((SELECT v.name FROM billops.payable p JOIN billops.vendor v USING (vendor_id)
            WHERE p.charge_source LIKE 'marketplace:DATADOG INC%'), 'Datadog', 'normalized to the canonical vendor');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE '%ACME%'), 'exception',
          'an unknown seller sends its payable to the exception queue');
SELECT is((SELECT reason_code || ': ' || reason FROM billops.exception_queue WHERE source_entity = 'ACME Widgets LLC'),
          'unknown_vendor: no vendor alias matches "ACME Widgets LLC" (marketplace)', 'with the reason');
SELECT is((SELECT count(*)::int FROM billops.vendor), 4, 'no near-duplicate vendor was created');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 'draft',
          'preliminary data makes drafts (route_preliminary is off)');

-- idempotent: run it twice more
CREATE TEMP TABLE audit_before AS SELECT count(*) AS n FROM billops.audit_log;
SELECT bag_eq($$ SELECT payable_id, 'unchanged' FROM billops.build_payables('2024-03-01') $$,
              $$ SELECT payable_id, 'unchanged' FROM run1 $$, 'second run: same payables, nothing changed');
SELECT bag_eq($$ SELECT payable_id, action FROM billops.build_payables() $$,
              $$ SELECT payable_id, 'unchanged' FROM run1 $$, 'third run: same payables, nothing changed');
SELECT is((SELECT count(*) FROM billops.audit_log), (SELECT n FROM audit_before), 'unchanged runs write no audit entries');
SET LOCAL billops.internal_context = 'system';
SELECT throws_ok($$ INSERT INTO billops.payable (payer_account_id, billing_period, charge_source, category, source_entity, treatment)
                    VALUES ('111111111111', '2024-03-01', 'tax:Amazon Web Services, Inc.', 'tax', 'x', 'usage_summary') $$,
                 '23505', NULL, 'a second payable for a dedupe key is refused by the unique constraint');
RESET billops.internal_context;

-- preliminary → final updates in place
SELECT pg_temp.load_month(true);
CREATE TEMP TABLE run_final AS SELECT * FROM billops.build_payables('2024-03-01');
SELECT is((SELECT count(*)::int FROM billops.payable), 6, 'the final delivery creates no payable');
SELECT is((SELECT action FROM run_final WHERE payable_id = pg_temp.payable('tax:%') AND action LIKE 'updated%'),
          'updated_final', 'the preliminary draft is updated to final');
SELECT is((SELECT aws_invoice_ids FROM billops.payable WHERE charge_source LIKE 'tax:%'), '{INV-AWS-1}',
          'and records the AWS invoice id');
SELECT is((SELECT invoice_state FROM billops.payable WHERE charge_source LIKE 'marketplace:Datadog, Inc.%'), 'final', 'final');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'tax:%'), 'routed', 'final and ready: routed');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE '%ACME%'), 'exception', 'the unknown seller is still stuck');

-- fixing the vendor is a rule, not a row edit
INSERT INTO billops.vendor (name, kind) VALUES ('ACME Widgets', 'marketplace_seller');
INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
SELECT vendor_id, 'prefix', 'acme widgets' FROM billops.vendor WHERE name = 'ACME Widgets';
SELECT billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE '%ACME%'), 'routed', 'an alias resolves the vendor; the payable leaves the exception queue and is routed');

-- required coding
SELECT pg_temp.load_month(true, extra => ARRAY[
    'INV-AWS-1,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,444444444444,Usage,AWSLambda,10.00,USD,"Amazon Web Services, Inc.",AWS Lambda,']);
SELECT lives_ok($$ SELECT billops.build_payables('2024-03-01') $$, 'rebuild with an account nobody codes');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 'exception',
          'missing coding: the payable goes to the exception queue (and will not be sent to BILL)');
SELECT is((SELECT field || ': ' || reason FROM billops.exception_queue WHERE reason_code = 'missing_coding'),
          'department: Department is missing on 1 of 5 lines (USD 10.00)', 'naming the missing field');
UPDATE billops.coding_field SET required = true WHERE field = 'project';
SELECT billops.build_payables('2024-03-01');
SELECT is((SELECT count(*)::int FROM billops.exception_queue WHERE reason_code = 'missing_coding' AND payable_id = pg_temp.payable('aws_usage:%')),
          2, 'a field made required is checked too');
UPDATE billops.coding_field SET required = false WHERE field = 'project';
INSERT INTO billops.coding_rule (field, value, usage_account_id) VALUES ('department', 'PLATFORM', '444444444444');
SELECT billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 'routed',
          'a coding rule fixes it: draft again, then routed');

-- configurable grain and treatment
UPDATE billops.setting SET value = 'usage_account' WHERE name = 'line_grain';
SELECT billops.build_payables('2024-03-01');
SELECT bag_eq($$ SELECT description FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') $$,
              $$ VALUES ('222222222222 eng-prod'), ('333333333333 data-prod'), ('444444444444') $$,
              'grain usage_account: one line per account, named');
SELECT is((SELECT amount FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 12510.35::numeric,
          'same amount at another grain');
UPDATE billops.setting SET value = 'cost_center' WHERE name = 'line_grain';
INSERT INTO billops.coding_rule (field, value, tag_key) VALUES ('project', '$tag', 'user:CostCenter');
SELECT billops.build_payables('2024-03-01');
SELECT bag_eq($$ SELECT grain_value, project, amount FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') $$,
              $$ VALUES ('CC-1', 'CC-1', 11000.01), ('CC-2', 'CC-2', 1500.34), ('(no cost center)', NULL, 10.00) $$,
              'grain cost_center from the tag, and a project copied from the same tag');
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.payable_line_items(pg_temp.payable('aws_usage:%'),
              (SELECT line_id FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') AND grain_value = 'CC-2'))),
          1500.340::numeric, 'drill-down of a tag-keyed line finds exactly its line items');
SELECT throws_ok($$ UPDATE billops.setting SET value = 'per-resource' WHERE name = 'line_grain' $$, '22023', NULL,
                 'an unknown grain is refused');
SELECT throws_ok($$ UPDATE billops.setting SET value = 'lots' WHERE name = 'approval_threshold' $$, '22023', NULL,
                 'a threshold must be a number');
INSERT INTO billops.treatment_rule (priority, category, payer_account_id, treatment)
VALUES (5, 'aws_usage', '111111111111', 'invoice_like');
SELECT billops.build_payables('2024-03-01');
SELECT is((SELECT kind FROM billops.payable_overview WHERE charge_source LIKE 'aws_usage:%'), 'bill',
          'a treatment rule makes AWS usage an invoice-like bill for this payer');
SELECT is((billops.charge_source_of('AWS', 'Amazon Web Services, Inc.', 'Some Reseller Ltd', 'Usage', 'Anniversary', 'AmazonEC2')).category,
          'partner', 'a seller of record that is not Amazon and not Marketplace is a partner charge');
UPDATE billops.charge_rule SET enabled = false;
SELECT is((billops.charge_source_of('AWS', 'Amazon Web Services, Inc.', 'Amazon Web Services, Inc.', 'Usage', 'Anniversary', 'AmazonEC2')).category,
          'unclassified', 'with no matching charge rule a line item is unclassified, never dropped');

-- tag keys both ways: CUR 2.0 writes the key normalized (user_cost_center) where legacy CUR keeps
-- user:CostCenter; the rule on user:CostCenter reads a CUR 2.0 month the same way
UPDATE billops.charge_rule SET enabled = true;
UPDATE billops.setting SET value = 'cost_center' WHERE name = 'line_grain';
SELECT billops.load_cur_file(pg_temp.csv('/tmp/billops_tap_payables_cur2.csv', ARRAY[
    'bill_invoice_id,bill_invoicing_entity,bill_billing_entity,bill_bill_type,bill_payer_account_id,bill_billing_period_start_date,'
    || 'line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_unblended_cost,line_item_currency_code,'
    || 'line_item_legal_entity,product,resource_tags',
    ',"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-04-01T00:00:00Z,222222222222,Usage,AmazonEC2,70.01,USD,'
    || '"Amazon Web Services, Inc.","{""product_name"": ""Amazon Elastic Compute Cloud""}","{""user_cost_center"": ""CC-1""}"',
    ',"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-04-01T00:00:00Z,333333333333,Usage,AmazonS3,30.02,USD,'
    || '"Amazon Web Services, Inc.","{""product_name"": ""Amazon Simple Storage Service""}","{""user_cost_center"": ""CC-2""}"']),
    'tap-payables-cur2', 'cur2-2024-04');
SELECT billops.build_payables('2024-04-01');
SELECT bag_eq($$ SELECT p.billing_period::text, l.grain_value, l.project, l.amount FROM billops.payable_line l JOIN billops.payable p USING (payable_id)
                  WHERE p.charge_source LIKE 'aws_usage:%' AND p.billing_period = '2024-04-01' $$,
              $$ VALUES ('2024-04-01', 'CC-1', 'CC-1', 70.01), ('2024-04-01', 'CC-2', 'CC-2', 30.02) $$,
              'a CUR 2.0 month: the cost_center_tag user:CostCenter and the rule on user:CostCenter read resource_tags user_cost_center');
SELECT is((SELECT sum(line_item_unblended_cost) FROM billops.payable_line_items(
              (SELECT payable_id FROM billops.payable WHERE charge_source LIKE 'aws_usage:%' AND billing_period = '2024-04-01'),
              (SELECT line_id FROM billops.payable_line l JOIN billops.payable p USING (payable_id)
                WHERE p.charge_source LIKE 'aws_usage:%' AND p.billing_period = '2024-04-01' AND l.grain_value = 'CC-1'))),
          70.01::numeric, 'and its drill-down finds the CUR 2.0 line items');
UPDATE billops.coding_rule SET tag_key = 'user_cost_center' WHERE tag_key = 'user:CostCenter';
SELECT billops.build_payables('2024-03-01');
SELECT bag_eq($$ SELECT grain_value, project, amount FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') $$,
              $$ VALUES ('CC-1', 'CC-1', 11000.01), ('CC-2', 'CC-2', 1500.34), ('(no cost center)', NULL, 10.00) $$,
              'a rule written user_cost_center reads the legacy month''s user:CostCenter');
UPDATE billops.coding_rule SET tag_key = 'user:CostCenter' WHERE tag_key = 'user_cost_center';

SELECT * FROM finish();
ROLLBACK;
