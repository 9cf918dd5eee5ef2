-- Ownership structure used by coding and routing: billing groups with
-- exclusive, dated membership; business units; rules matching them.
BEGIN;
SELECT plan(12);
\ir _payables_fixture.psql

INSERT INTO billops.billing_group (name, business_unit) VALUES ('platform', 'Engineering'), ('analytics', 'Data');
INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from, effective_to)
SELECT billing_group_id, '444444444444', '2024-01-01', '2024-03-01' FROM billops.billing_group WHERE name = 'platform';
SELECT throws_ok($$ INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from)
                    SELECT billing_group_id, '444444444444', '2024-02-01' FROM billops.billing_group WHERE name = 'analytics' $$,
                 '23P01', NULL, 'an account is in one billing group at a time');
SELECT lives_ok($$ INSERT INTO billops.billing_group_account (billing_group_id, account_id, effective_from)
                   SELECT billing_group_id, '444444444444', '2024-03-01' FROM billops.billing_group WHERE name = 'analytics' $$,
                'it moves to another group from March');
SELECT is((SELECT name FROM billops.billing_group WHERE billing_group_id = billops.billing_group_of('444444444444', '2024-02-01')),
          'platform', 'February stays with the old group (history is not rewritten)');
SELECT is((SELECT name FROM billops.billing_group WHERE billing_group_id = billops.billing_group_of('444444444444', '2024-03-01')),
          'analytics', 'March belongs to the new group');
SELECT is(billops.business_unit_of('444444444444', '2024-03-01'), 'Data', 'an account without its own business unit takes its group''s');
SELECT is(billops.business_unit_of('222222222222', '2024-03-01'), 'Engineering', 'an account''s own business unit wins');
SELECT throws_ok($$ UPDATE billops.billing_group_account SET effective_to = NULL WHERE effective_from = '2024-01-01' $$,
                 '23P01', NULL, 'an update cannot create an overlap either');

-- coding and routing by billing group
INSERT INTO billops.coding_rule (field, value, billing_group_id)
SELECT 'class', 'analytics-class', billing_group_id FROM billops.billing_group WHERE name = 'analytics';
INSERT INTO billops.coding_rule (field, value, usage_account_id) VALUES ('department', 'DATA', '444444444444');
INSERT INTO billops.routing_rule (priority, billing_group_id, approver_role)
SELECT 10, billing_group_id, 'tap_data_owner' FROM billops.billing_group WHERE name = 'analytics';
SELECT pg_temp.load_month(true, extra => ARRAY[
    'INV-AWS-1,"Amazon Web Services, Inc.",AWS,Anniversary,111111111111,2024-03-01T00:00:00Z,444444444444,Usage,AWSLambda,5000.00,USD,"Amazon Web Services, Inc.",AWS Lambda,']);
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT class FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') AND grain_value = 'AWS Lambda'),
          'analytics-class', 'a coding rule by billing group codes the group''s line');
SELECT is((SELECT count(*)::int FROM billops.payable_line WHERE payable_id = pg_temp.payable('aws_usage:%') AND class IS NOT NULL), 1,
          'and only that line');
SELECT bag_eq(format($$ SELECT step_name, approver_role FROM billops.approval_step WHERE payable_id = %s $$, pg_temp.payable('aws_usage:%')),
              $$ VALUES ('owner', 'tap_eng_owner'), ('owner', 'tap_data_owner'), ('finance_leadership', 'billops_finance_leadership') $$,
              'the billing group''s owner approves its share next to Engineering');
SELECT ok((SELECT reason FROM billops.approval_step WHERE payable_id = pg_temp.payable('aws_usage:%') AND approver_role = 'tap_data_owner')
          LIKE 'owns %444444444444%', 'the step names the accounts it owns');
SELECT is((SELECT count(*)::int FROM billops.audit_log WHERE object_type = 'billing_group_account'), 2,
          'membership changes are audited');

SELECT * FROM finish();
ROLLBACK;
