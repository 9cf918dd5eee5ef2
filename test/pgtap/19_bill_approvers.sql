-- The approver directory: each approver role's BILL user or approval group,
-- checked against BILL's users and roles as the worker reads them, and the
-- routing rule that a bill is not routed to a role BILL cannot ask.
BEGIN;
SELECT plan(32);
\ir _payables_fixture.psql

-- the form of a BILL approver id
SELECT throws_ok($$ INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('tap_eng_owner', 'alice@example.com') $$,
                 '23514', NULL, 'an approver is a BILL user id (006…) or an approval group id (agp…)');

-- nothing mapped: every role a step can be routed to is listed as unmapped, and the worker asks BILL nothing
SELECT is((SELECT string_agg(approver_role || '=' || status, ',' ORDER BY approver_role) FROM billops.bill_approver_status),
          'billops_finance_leadership=unmapped,billops_finance_review=unmapped,billops_finops_owner=unmapped,tap_data_owner=unmapped,tap_eng_owner=unmapped',
          'every routed role (routing rules and the role settings) is listed, unmapped');
SELECT is((SELECT count(*)::int FROM billops._bill_directory_request()), 0, 'with an empty directory the worker asks BILL nothing');

-- bills need BILL approvers: a Datadog bill routed to an unmapped owner role is an exception
UPDATE billops.setting SET value = 'true' WHERE name = 'bill_approvers_required';
SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')), 'exception',
          'a bill whose owner role has no BILL approver is not routed');
SELECT is((SELECT reason_code || '/' || field || ': ' || reason FROM billops.exception_queue
            WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          'approver_missing/bill_approver: approver role "tap_eng_owner" (owner step) has no BILL approver',
          'the exception queue names the role and the step');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox), 0, 'and nothing goes to BILL without its approvers');
SELECT is((SELECT status FROM billops.payable WHERE charge_source LIKE 'aws_usage:%'), 'routed',
          'a payable that is not a bill in BILL (an acknowledgement) is routed as before');

-- mapped: routed at the next build (BILL has not been read yet: the mapping is trusted until it is)
INSERT INTO billops.bill_approver (approver_role, bill_approver_id, note) VALUES ('tap_eng_owner', '00601ALICE00000000001', 'Alice');
SELECT is((SELECT status FROM billops.bill_approver_status WHERE approver_role = 'tap_eng_owner'), 'not_checked',
          'a new mapping is not checked yet');
SELECT is((SELECT actor::text || ':' || (after->>'bill_approver_id') FROM billops.audit_log
            WHERE object_type = 'bill_approver' ORDER BY audit_id DESC LIMIT 1),
          current_user || ':00601ALICE00000000001', 'who changed the directory is audited');
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')), 'routed',
          'once mapped, the next build routes it');

-- the worker reads BILL's roles, then its users page by page
SELECT is((SELECT method || ' ' || path || ' ' || query::text FROM billops._bill_directory_request()), 'GET /v3/roles {}',
          'a changed directory: the roles first');
SELECT is(billops._bill_directory_response('[{"id": "0po01R1", "type": "ADMINISTRATOR"}, {"id": "0po01R3", "type": "APPROVER"},
                                             {"id": "0po01R5", "type": "CLERK"}]'), true, 'then more to ask');
SELECT is((SELECT method || ' ' || path || ' ' || query::text FROM billops._bill_directory_request()), 'GET /v3/users {"max": "100"}',
          'then the users, 100 a page');
SELECT is(billops._bill_directory_response('{"nextPage": "pg2", "results": [
             {"id": "00601ALICE00000000001", "firstName": "Alice", "lastName": "Ng", "email": "alice@example.com", "roleId": "0po01R5", "archived": false},
             {"id": "00601BOB0000000000002", "firstName": "Bob", "lastName": "Li", "roleId": "0po01R3", "archived": false}]}'),
          true, 'a page with a next page: more');
SELECT is((SELECT query->>'page' FROM billops._bill_directory_request()), 'pg2', 'the next page is asked for');
SELECT is(billops._bill_directory_response('{"results": [
             {"id": "00601OLD0000000000003", "firstName": "Old", "lastName": "User", "roleId": "0po01R3", "archived": true}]}'),
          false, 'the last page: done');
SELECT is((SELECT count(*)::int FROM billops._bill_directory_request()), 0, 'read: nothing more to ask for an hour');
SELECT is((SELECT count(*)::int FROM information_schema.columns WHERE table_schema = 'billops' AND table_name = 'bill_user' AND column_name ~ 'mail'),
          0, 'no email is kept');
SELECT is((SELECT status || ' ' || role_type || ' ' || full_name FROM billops.bill_approver_status WHERE approver_role = 'tap_eng_owner'),
          'cannot_approve CLERK Alice Ng', 'a Clerk cannot approve bills in BILL');

-- each status
INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES
  ('tap_data_owner', '00601BOB0000000000002'), ('billops_finance_leadership', '00601OLD0000000000003'),
  ('billops_finance_review', '00601NOBODY0000000004'), ('billops_finops_owner', 'agp01FINOPS00000001');
SELECT is((SELECT status FROM billops.bill_approver_status WHERE approver_role = 'tap_data_owner'), 'not_checked',
          'a mapping changed after the last read is not checked');
-- read again (the change made the directory due)
SELECT is((SELECT path FROM billops._bill_directory_request()), '/v3/roles', 'a change makes the directory due again');
SELECT billops._bill_directory_response('[{"id": "0po01R1", "type": "ADMINISTRATOR"}, {"id": "0po01R3", "type": "APPROVER"}, {"id": "0po01R5", "type": "CLERK"}]');
SELECT billops._bill_directory_response('{"results": [
             {"id": "00601ALICE00000000001", "firstName": "Alice", "lastName": "Ng", "roleId": "0po01R3", "archived": false},
             {"id": "00601BOB0000000000002", "firstName": "Bob", "lastName": "Li", "roleId": "0po01R3", "archived": false},
             {"id": "00601OLD0000000000003", "firstName": "Old", "lastName": "User", "roleId": "0po01R3", "archived": true}]}');
SELECT is((SELECT string_agg(approver_role || '=' || status, ',' ORDER BY approver_role) FROM billops.bill_approver_status),
          'billops_finance_leadership=archived,billops_finance_review=unknown_user,billops_finops_owner=group_unverified,tap_data_owner=ok,tap_eng_owner=ok',
          'ok, archived, unknown user, and a group BILL cannot list (approval groups are made in BILL''s web app)');
SELECT is((SELECT kind FROM billops.bill_approver_status WHERE approver_role = 'billops_finops_owner'), 'group', 'agp… is a group');

-- routing checks the statuses: a step to an archived approver is refused, with its reason
SELECT is(billops._bill_approver_problems('[{"seq": 1, "step_name": "leadership", "approver_role": "billops_finance_leadership"}]')->0->>'message',
          'approver role "billops_finance_leadership" (leadership step): its BILL approver 00601OLD0000000000003 is archived',
          'an archived BILL user cannot be routed to');
SELECT is(jsonb_array_length(billops._bill_approver_problems('[{"seq": 1, "step_name": "owner", "approver_role": "tap_eng_owner"},
                                                              {"seq": 2, "step_name": "review", "approver_role": "billops_finops_owner"}]')),
          0, 'an approver BILL lets approve, and a group, are fine');

-- a user BILL no longer lists is gone at the next full read
DELETE FROM billops.bill_sync_state WHERE name = 'directory_read_at';
SELECT billops._bill_directory_response('[{"id": "0po01R3", "type": "APPROVER"}]');
SELECT billops._bill_directory_response('{"results": [{"id": "00601BOB0000000000002", "firstName": "Bob", "lastName": "Li", "roleId": "0po01R3"}]}');
SELECT is((SELECT string_agg(bill_user_id, ',') FROM billops.bill_user), '00601BOB0000000000002', 'users BILL no longer lists are dropped');
SELECT is((SELECT status FROM billops.bill_approver_status WHERE approver_role = 'tap_eng_owner'), 'unknown_user',
          'and their roles become unknown_user');

-- the route a bill gets in BILL: its steps' BILL approvers, in BILL's order
SELECT is((SELECT bill_approvers FROM billops.bill_routing WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          ARRAY['00601ALICE00000000001'], 'the Datadog bill''s route: its owner''s BILL approver');
SELECT is((SELECT steps FROM billops.bill_routing WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          ARRAY['tap_eng_owner:00601ALICE00000000001'], 'the steps it comes from');
SELECT is((SELECT route_name FROM billops.bill_routing WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          'pg_billops route ' || left(md5('00601ALICE00000000001'), 12), 'named as pg_billops'' own, by the approver list');
DELETE FROM billops.bill_approver WHERE approver_role = 'tap_eng_owner';
SELECT is((SELECT bill_approvers FROM billops.bill_routing WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          NULL, 'no route while a step''s role has no BILL approver');
SELECT is((SELECT steps FROM billops.bill_routing WHERE payable_id = pg_temp.payable('marketplace:Datadog, Inc.%')),
          ARRAY['tap_eng_owner:?'], 'and the view shows which');

SELECT * FROM finish();
ROLLBACK;
