-- Approval routing and decisions, row-level security for approvers, role
-- privileges, and the append-only audit log.
BEGIN;
SELECT plan(51);
\ir _payables_fixture.psql

-- Engineering has an owner; Data does not (its cost goes to finance review)
DELETE FROM billops.routing_rule WHERE business_unit = 'Data';
SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE ids AS SELECT pg_temp.payable('aws_usage:%') AS usage, pg_temp.payable('tax:%') AS tax,
       pg_temp.payable('credit:%') AS credit, pg_temp.payable('marketplace:Datadog, Inc.%') AS dd;
GRANT SELECT ON ids TO PUBLIC;

-- routing
SELECT bag_eq(format($$ SELECT seq, step_name, approver_role FROM billops.approval_step WHERE payable_id = %s $$, (SELECT usage FROM ids)),
              $$ VALUES (1, 'finance_review', 'billops_finance_review'), (2, 'owner', 'tap_eng_owner'),
                        (2, 'finops_owner', 'billops_finops_owner'), (3, 'finance_leadership', 'billops_finance_leadership') $$,
              'usage of 12,500: Engineering owns 88%, 12% has no owner (finance review, then FinOps), over the threshold (leadership)');
SELECT is((SELECT reason FROM billops.approval_step WHERE payable_id = (SELECT usage FROM ids) AND step_name = 'finance_leadership'),
          'amount 12500.35 is at or above the approval threshold 10000.00', 'the leadership step says why');
SELECT bag_eq(format($$ SELECT seq, step_name, approver_role FROM billops.approval_step WHERE payable_id = %s $$, (SELECT tax FROM ids)),
              $$ VALUES (2, 'owner', 'tap_eng_owner') $$, 'tax of 450 in an Engineering account: the owner alone');
SELECT bag_eq(format($$ SELECT seq, step_name FROM billops.approval_step WHERE payable_id = %s $$, (SELECT credit FROM ids)),
              $$ VALUES (1, 'finance_review'), (2, 'finops_owner') $$,
              'no known owner: finance review first, then the FinOps owner');
SELECT is((SELECT string_agg(approver_role, ',') FROM billops.approval_queue WHERE payable_id = (SELECT usage FROM ids)),
          'billops_finance_review', 'the queue shows only the step that can be decided now');

-- decisions
SELECT throws_like(format($$ SELECT pg_temp.as_role('tap_alice', 'SELECT billops.approve(%s)') $$, (SELECT usage FROM ids)),
                   '%not an assigned approver of the current step%', 'the owner''s step comes after finance review');
SELECT throws_ok(format($$ SELECT billops.approve(%s) $$, (SELECT usage FROM ids)), 'BO003', NULL,
                 'a superuser is not everybody''s approver');
SELECT throws_ok(format($$ SELECT pg_temp.as_role('tap_mallory', 'SELECT billops.approve(%s)') $$, (SELECT usage FROM ids)),
                 'BO003', NULL, 'an approver with no step on it cannot approve');
SELECT is(pg_temp.as_role('tap_dave', format('SELECT billops.approve(%s, ''reviewed'')', (SELECT usage FROM ids))),
          'approved step; 3 step(s) to go', 'finance review approves');
SELECT is(pg_temp.as_role('tap_alice', format('SELECT billops.approve(%s)', (SELECT usage FROM ids))),
          'approved step; 2 step(s) to go', 'the owner approves');
GRANT billops_finance_leadership TO tap_alice;
SELECT is(pg_temp.as_role('tap_erin', format('SELECT billops.approve(%s)', (SELECT usage FROM ids))),
          'approved step; 1 step(s) to go', 'the FinOps owner approves');
SELECT throws_like(format($$ SELECT pg_temp.as_role('tap_alice', 'SELECT billops.approve(%s)') $$, (SELECT usage FROM ids)),
                   '%already approved a step%', 'one person cannot approve two steps of the same payable');
REVOKE billops_finance_leadership FROM tap_alice;
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT usage FROM ids)), 'routed', 'still routed');
SELECT is(pg_temp.as_role('tap_carol', format('SELECT billops.approve(%s, ''ok for March'')', (SELECT usage FROM ids))),
          'payable approved', 'finance leadership approves last');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT usage FROM ids)), 'approved', 'approved');
SELECT bag_eq(format($$ SELECT decided_by::text, comment FROM billops.approval_step WHERE payable_id = %s $$, (SELECT usage FROM ids)),
              $$ VALUES ('tap_dave', 'reviewed'), ('tap_alice', NULL), ('tap_erin', NULL), ('tap_carol', 'ok for March') $$,
              'each step records who decided');

SELECT throws_ok(format($$ SELECT pg_temp.as_role('tap_dave', 'SELECT billops.reject(%s, '''')') $$, (SELECT credit FROM ids)),
                 '22004', NULL, 'a rejection needs a reason');
SELECT is(pg_temp.as_role('tap_dave', format('SELECT billops.reject(%s, ''credit belongs to Q1'')', (SELECT credit FROM ids))),
          'rejected', 'finance review rejects the credit');
SELECT is((SELECT reason_code || ': ' || reason FROM billops.exception_queue WHERE payable_id = (SELECT credit FROM ids)),
          'rejected: rejected by tap_dave: credit belongs to Q1', 'a rejected payable is in the exception queue with why');
SELECT is((SELECT count(*)::int FROM billops.approval_step WHERE payable_id = (SELECT credit FROM ids) AND status = 'pending'),
          0, 'its remaining steps are closed');
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT credit FROM ids)), 'exception',
          'a rebuild on the same data does not undo the rejection');
SELECT is(billops.reopen_payable((SELECT credit FROM ids), 'agreed with finance'), 'draft', 'an admin reopens it');
UPDATE billops.setting SET value = '100' WHERE name = 'approval_threshold';
UPDATE billops.setting SET value = 'no_such_role' WHERE name = 'finance_leadership_role';
SELECT throws_like(format($$ SELECT billops.route_payable(%s) $$, (SELECT credit FROM ids)),
                   '%cannot be routed%', 'routing to a role that does not exist is refused');
UPDATE billops.setting SET value = 'billops_finance_leadership' WHERE name = 'finance_leadership_role';
SELECT is(billops.route_payable((SELECT credit FROM ids)), 3, 're-routed: review, FinOps, and (threshold 100) leadership');
SELECT is((SELECT max(routing_round) FROM billops.approval_step WHERE payable_id = (SELECT credit FROM ids)), 2,
          'in a new routing round');

-- a routing problem found by the build: in the exception queue, quietly retried, healed by fixing the setting
UPDATE billops.setting SET value = 'tap_nobody' WHERE name = 'finance_leadership_role';
SELECT pg_temp.load_month(true, extra => ARRAY[
    'INV-AWS-1,"Amazon Web Services, Inc.",AWS,Purchase,111111111111,2024-03-01T00:00:00Z,222222222222,Fee,AmazonEC2,25000.00,USD,"Amazon Web Services, Inc.",Amazon Elastic Compute Cloud,']);
SELECT is((SELECT action FROM billops.build_payables('2024-03-01') WHERE dedupe_key LIKE '%fee:%' AND action LIKE 'rout%'),
          'routing_failed', 'a 25,000 fee cannot be routed to a leadership role that does not exist');
SELECT is((SELECT reason FROM billops.exception_queue WHERE dedupe_key LIKE '%fee:%'),
          'approver role "tap_nobody" (finance_leadership step) does not exist', 'the exception queue says why');
CREATE TEMP TABLE audit_mark AS SELECT max(audit_id) AS id FROM billops.audit_log;
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT count(*)::int FROM billops.audit_log WHERE audit_id > (SELECT id FROM audit_mark)), 0,
          'rebuilding with the same problem changes nothing');
UPDATE billops.setting SET value = 'billops_finance_leadership' WHERE name = 'finance_leadership_role';
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'fee:%'), 'routed', 'fixing the setting routes it on the next build');

-- row-level security
SELECT set_eq($$ SELECT pg_temp.as_role('tap_alice', 'SELECT array_agg(payable_id ORDER BY payable_id)::text FROM billops.payable') $$,
              $$ SELECT array_agg(DISTINCT payable_id ORDER BY payable_id)::text FROM billops.approval_step WHERE approver_role = 'tap_eng_owner' $$,
              'an approver sees exactly the payables routed to them');
SELECT is(pg_temp.as_role('tap_alice', format('SELECT count(*) FROM billops.payable WHERE payable_id = %s', (SELECT credit FROM ids))),
          '0', 'another team''s payable is hidden');
SELECT is(pg_temp.as_role('tap_bob', 'SELECT count(*) FROM billops.payable'), '0', 'an owner with nothing routed sees nothing');
SELECT is(pg_temp.as_role('tap_alice', 'SELECT count(*) FROM billops.payable_overview'),
          pg_temp.as_role('tap_alice', 'SELECT count(*) FROM billops.payable'), 'views apply the same security');
SELECT is(pg_temp.as_role('tap_alice', format('SELECT count(*) FROM billops.payable_line WHERE payable_id = %s', (SELECT credit FROM ids))),
          '0', 'lines of hidden payables are hidden');
SELECT is(pg_temp.as_role('tap_ann', 'SELECT count(*) FROM billops.payable'), (SELECT count(*)::text FROM billops.payable),
          'an analyst sees everything');
SELECT throws_ok(format($$ SELECT pg_temp.as_role('tap_alice', 'SELECT count(*) FROM billops.payable_line_items(%s)') $$, (SELECT credit FROM ids)),
                 'P0002', NULL, 'an approver cannot drill into a payable not routed to them');
SELECT is(pg_temp.as_role('tap_alice', format('SELECT count(*) FROM billops.payable_line_items(%s)', (SELECT tax FROM ids))),
          '1', 'but can into their own');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_alice', 'SELECT count(*) FROM billops.audit_log') $$, '42501', NULL,
                 'approvers do not read the audit log');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_ann', 'UPDATE billops.setting SET value = ''1'' WHERE name = ''approval_threshold'' RETURNING 1') $$,
                 '42501', NULL, 'analysts change nothing');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_ann', 'SELECT count(*) FROM billops.build_payables()') $$, '42501', NULL,
                 'analysts do not build');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_ann', 'SELECT billops.approve(1)') $$, '42501', NULL,
                 'analysts do not approve');
SELECT lives_ok($$ SELECT pg_temp.as_role('tap_admin', 'INSERT INTO billops.coding_rule (field, value, service) VALUES (''project'', ''P-7'', ''AWS Lambda'') RETURNING 1') $$,
                'an admin changes rules');

-- the audit log
SELECT is((SELECT actor::text || '/' || system_generated FROM billops.audit_log WHERE object_type = 'coding_rule' AND after->>'value' = 'P-7'),
          'tap_admin/false', 'a rule change is audited with its actor, not system-generated');
SELECT ok((SELECT bool_and(system_generated AND executed_as = 'postgres' AND assembly_id LIKE 'tap-%' AND payer_account_id = '111111111111')
             FROM billops.audit_log WHERE object_type = 'payable' AND action = 'insert'),
          'payables created by the build are system-generated and name their AWS artifact');
SELECT is((SELECT actor::text || '/' || system_generated || '/' || (after->>'status') FROM billops.audit_log
            WHERE object_type = 'approval_step' AND after->>'comment' = 'reviewed'),
          'tap_dave/false/approved', 'an approval is audited as the approver''s act');
SELECT is((SELECT after->>'aws_invoice_ids' FROM billops.audit_log WHERE object_type = 'payable' AND payable_id = (SELECT tax FROM ids) AND action = 'insert'),
          '["INV-AWS-1"]', 'the AWS invoice id is recorded');
SELECT throws_ok($$ UPDATE billops.audit_log SET actor = 'nobody' $$, 'BO004', NULL, 'the audit log rejects UPDATE, even for its owner');
SELECT throws_ok($$ DELETE FROM billops.audit_log $$, 'BO004', NULL, 'the audit log rejects DELETE');
SELECT throws_ok($$ TRUNCATE billops.audit_log $$, 'BO004', NULL, 'the audit log rejects TRUNCATE');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_admin', 'DELETE FROM billops.audit_log RETURNING 1') $$, '42501', NULL,
                 'admins have no DELETE on it at all');
SELECT throws_ok($$ SELECT billops.audit_log_purge('1 day') $$, '22023', NULL, 'the purge keeps at least a year');

SELECT * FROM finish();
ROLLBACK;
