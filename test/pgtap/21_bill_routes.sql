-- Routes: the worker's conversation that gives a bill its approvers in BILL
-- (a job and a policy on JOB_ID per approver list), driven here by hand the
-- way the worker drives it; lost answers; a policy edited in BILL; BILL's
-- approvers checked against the route; a rule change re-routes open bills;
-- the context a bill carries, made before approval and never after.
BEGIN;
SELECT plan(40);
\ir _payables_fixture.psql

UPDATE billops.setting SET value = 'true' WHERE name = 'bill_context_document';
INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES
  ('tap_eng_owner', '00601ALICE00000000001'), ('tap_data_owner', '00601BOB0000000000002'),
  ('billops_finance_leadership', '00601LEAD000000000003');
UPDATE billops.vendor SET bill_vendor_id = '009DD' WHERE name = 'Datadog';
SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE ids AS SELECT pg_temp.payable('marketplace:Datadog, Inc.%') AS dd, pg_temp.payable('%DATADOG INC%') AS dd_eu;
CREATE TEMP TABLE route AS SELECT billops._bill_route_name(ARRAY['00601ALICE00000000001']) AS name;

-- the context is made as the payable is routed: the description and the PDF
SELECT is((SELECT count(*)::int FROM billops.bill_context c JOIN ids ON c.payable_id IN (ids.dd, ids.dd_eu)), 2,
          'each routed bill has its context');
SELECT ok((SELECT description FROM billops.bill_context WHERE payable_id = (SELECT dd FROM ids))
          ~ '^\[pg_billops, system-generated\] .*; key .*\. .*800\.00', 'its description: who wrote it, the key, then the context');
SELECT is((SELECT d.file_name || ' ' || d.content_type || ' ' || encode(substr(d.content, 1, 5), 'escape')
             FROM billops.bill_context c JOIN billops.payable_document d USING (document_id) WHERE c.payable_id = (SELECT dd FROM ids)),
          format('pg_billops-context-2024-03-%s.pdf application/pdf %%PDF-',
                 left((SELECT content_hash FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)), 8)),
          'and the PDF, attached under a name of its content');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE action = 'document_upload' AND payable_id = (SELECT dd FROM ids)), 1,
          'queued for BILL with the bill');
SELECT ok(length((SELECT description FROM billops.bill_context WHERE payable_id = (SELECT dd FROM ids)))
          <= billops.setting_value('bill_description_max_length')::int, 'within the description limit');
UPDATE billops.setting SET value = '120' WHERE name = 'bill_description_max_length';
SELECT is(length(billops._bill_description((SELECT p FROM billops.payable p WHERE payable_id = (SELECT dd FROM ids)))), 120,
          'cut at the configured limit');
UPDATE billops.setting SET value = '1000' WHERE name = 'bill_description_max_length';

-- the worker takes the first bill: its route is not in BILL yet
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() + interval '1 hour'
 WHERE payable_id <> (SELECT dd FROM ids) OR action <> 'bill_upsert';
CREATE TEMP TABLE claimed AS SELECT * FROM billops._outbox_claim(1);
CREATE FUNCTION pg_temp.req(id bigint DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT r.method || ' ' || r.path || coalesce(' ' || nullif(r.query, '{}')::text, '')
      FROM billops._outbox_request(coalesce(id, (SELECT outbox_id FROM claimed))) r
$$;
CREATE FUNCTION pg_temp.body(id bigint DEFAULT NULL) RETURNS jsonb LANGUAGE sql AS $$
    SELECT r.body FROM billops._outbox_request(coalesce(id, (SELECT outbox_id FROM claimed))) r
$$;
CREATE FUNCTION pg_temp.resp(status int, body text, id bigint DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT billops._outbox_response(coalesce(id, (SELECT outbox_id FROM claimed)), status, body)
$$;
SELECT is((SELECT step FROM claimed), 'bill_create', 'the bill would be created ...');
SELECT is(pg_temp.req(), format('GET /v3/classifications/jobs {"max": "100", "filters": "name:eq:%s"}', (SELECT name FROM route)),
          '... but first its route''s job is looked up by name');
SELECT is((SELECT approvers FROM billops.bill_route), ARRAY['00601ALICE00000000001'], 'the route: the owner''s BILL approver');
SELECT is(pg_temp.resp(200, '{"results": [{"id": "jobOTHER", "name": "pg_billops route 000000000000"}]}'), 'continue', 'not there');
SELECT is(pg_temp.req(), 'POST /v3/classifications/jobs', 'so it is created');
SELECT is(pg_temp.body()->>'name', (SELECT name FROM route), 'named as pg_billops'' own');
SELECT is(pg_temp.resp(201, '{"id": "jobR1", "name": "x"}'), 'continue', 'created');
SELECT is(pg_temp.req(), 'GET /v3/bill-approvals/policies', 'then the policy is looked up');
SELECT is(pg_temp.resp(200, '[{"id": "0apTHEIRS", "policyName": "Finance over 50k", "rules": [], "approvers": {"users": [{"userId": "00601LEAD000000000003"}]}}]'),
          'continue', 'the organization''s own policy is not ours');
SELECT is(pg_temp.req(), 'POST /v3/bill-approvals/policies', 'so ours is created');
SELECT is(pg_temp.body(), jsonb_build_object('policyName', (SELECT name FROM route),
                                             'rules', '[{"key": "JOB_ID", "op": "eq", "values": ["jobR1"]}]'::jsonb,
                                             'approvers', '["00601ALICE00000000001"]'::jsonb),
          'on JOB_ID of the route''s job, naming its approvers in order');
-- the answer is lost: BILL may have made it
SELECT is(pg_temp.resp(NULL, NULL), 'retry', 'no answer');
SELECT is((SELECT step FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)), 'route_policy_lookup',
          'a create in doubt restarts at the lookup');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
SELECT is((SELECT count(*)::int FROM billops._outbox_claim(1)), 1, 'claimed again');
SELECT is(pg_temp.resp(200, format('{"results": [{"id": "0apR1", "policyName": "%s", "status": "ACTIVE", "rules": [{"key": "JOB_ID", "op": "eq", "values": [{"value": "jobR1"}]}], "approvers": {"users": [{"userId": "00601ALICE00000000001"}]}}]}',
                                   (SELECT name FROM route))), 'continue', 'the lost create is found, as made');
SELECT is((SELECT bill_job_id || ' ' || bill_policy_id FROM billops.bill_route), 'jobR1 0apR1', 'the route is complete');
SELECT is(pg_temp.req(), 'POST /v3/bills', 'and the bill is created ...');
SELECT is((SELECT array_agg(DISTINCT l->'classifications'->>'jobId') FROM jsonb_array_elements(pg_temp.body()->'billLineItems') l),
          ARRAY['jobR1'], '... every line carrying the route''s job');
SELECT is(pg_temp.body()->>'description', (SELECT description FROM billops.bill_context WHERE payable_id = (SELECT dd FROM ids)),
          'and the context as its description');
SELECT is(pg_temp.resp(201, format('{"id": "00nDD", "vendorId": "009DD", "approvalStatus": "ASSIGNED", "billLineItems": [{"id": "00lA", "amount": %s}],
                                     "approvers": [{"userId": "00601LEAD000000000003", "status": "WAITING", "approverOrder": 1},
                                                   {"userId": "00601ALICE00000000001", "status": "WAITING", "approverOrder": 2}]}',
                                   (SELECT amount FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)))), 'done', 'created');
SELECT is((SELECT bill_approvers FROM billops.bill_link WHERE payable_id = (SELECT dd FROM ids)),
          ARRAY['00601LEAD000000000003', '00601ALICE00000000001'], 'BILL''s approvers are recorded, in its order');
SELECT is((SELECT approver_problem FROM billops.bill_link WHERE payable_id = (SELECT dd FROM ids)), NULL,
          'an extra approver from the organization''s own policy is accepted');

-- a second bill on the same route goes straight to its create
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE payable_id = (SELECT dd_eu FROM ids) AND action = 'bill_upsert';
DELETE FROM claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(pg_temp.req(), 'POST /v3/bills', 'a bill whose route exists is created at once');

-- BILL's approvers checked against the route
SELECT is(billops._bill_approvers_of('{"approvers": [{"userId": "u2", "status": "WAITING", "approverOrder": 2},
                                                     {"userId": "u0", "status": "REROUTED", "approverOrder": null},
                                                     {"userId": "u1", "status": "APPROVED", "approverOrder": 1}]}'),
          ARRAY['u1', 'u2'], 'approvers in BILL''s order; those it rerouted are not asked');
UPDATE billops.bill_link SET bill_approvers = ARRAY['00601LEAD000000000003'] WHERE payable_id = (SELECT dd FROM ids);
SELECT billops._bill_approver_check((SELECT dd FROM ids));
SELECT is((SELECT reason_code || ': ' || reason FROM billops.exception_queue WHERE payable_id = (SELECT dd FROM ids)),
          'bill_approvers: BILL asks 00601LEAD000000000003; pg_billops routed this bill to 00601ALICE00000000001',
          'a route approver BILL does not ask is in the exception queue');

-- a route used an hour after it was last checked is looked up again; a policy of ours edited in BILL is put back
UPDATE billops.bill_route SET completed_at = clock_timestamp() - interval '61 minutes';
UPDATE billops.bill_outbox SET state = 'done' WHERE outbox_id = (SELECT outbox_id FROM claimed);
UPDATE billops.bill_outbox SET step = 'bill_create', state = 'in_flight', claimed_by = pg_backend_pid() WHERE outbox_id = (SELECT outbox_id FROM claimed);
SELECT is(pg_temp.req(), 'GET /v3/bill-approvals/policies', 'a route not checked for an hour is looked up again');
SELECT is(pg_temp.resp(200, format('[{"id": "0apR1", "policyName": "%s", "rules": [{"key": "JOB_ID", "op": "eq", "values": ["jobR1"]}], "approvers": ["00601BOB0000000000002"]}]',
                                   (SELECT name FROM route))), 'continue', 'found, with someone else''s approvers');
SELECT is(pg_temp.req(), 'PUT /v3/bill-approvals/policies/0apR1', 'so it is put back');
SELECT is(pg_temp.body()->'approvers', '["00601ALICE00000000001"]'::jsonb, 'with the route''s approvers');

-- one row per route at a time: another bill of the same route waits
UPDATE billops.bill_outbox SET step = 'route_policy_update' WHERE outbox_id = (SELECT outbox_id FROM claimed);
UPDATE billops.bill_outbox SET route_key = (SELECT route_key FROM billops.bill_route) WHERE outbox_id = (SELECT outbox_id FROM claimed);
INSERT INTO billops.bill_outbox (payable_id, action, state, step, claimed_by)
VALUES ((SELECT dd FROM ids), 'bill_upsert', 'in_flight', 'bill_update', pg_backend_pid());
SELECT is(pg_temp.req((SELECT max(outbox_id) FROM billops.bill_outbox)), NULL, 'nothing is sent for it ...');
SELECT is((SELECT state || ': ' || last_error FROM billops.bill_outbox WHERE outbox_id = (SELECT max(outbox_id) FROM billops.bill_outbox)),
          'pending: waits for another bill that is setting up the same approval route in BILL', '... it waits its turn');

-- a rule change re-routes the payables still waiting; the approved ones keep theirs
UPDATE billops.routing_rule SET approver_role = 'tap_data_owner' WHERE business_unit = 'Engineering';
SELECT is((SELECT string_agg(s.approver_role || '/' || s.status, ',') FROM billops.approval_step s JOIN billops.payable p USING (payable_id)
            WHERE p.payable_id = (SELECT dd FROM ids) AND s.routing_round = p.routing_round),
          'tap_data_owner/pending', 'the open payable is routed again by the new rule');
SELECT is(billops._bill_route_of((SELECT dd FROM ids)), billops._bill_route_key(ARRAY['00601BOB0000000000002']),
          'and its bill gets the new route');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE payable_id = (SELECT dd FROM ids) AND action = 'bill_upsert' AND state = 'pending'), 1,
          'its bill in BILL is re-routed');

SELECT * FROM finish();
ROLLBACK;
