-- The BILL protocol where "BILL may have acted" meets a change: a void right
-- after the claim, a newer change queued while a create is in flight (and its
-- answer lost, and the worker crashed), and a retried update that adds a line.
BEGIN;
SELECT plan(47);
\ir _payables_fixture.psql
\ir _bill_protocol_fixture.psql

-- 3. Voided after the claim, before the request is prepared: nothing is sent
SELECT is(pg_temp.claim((SELECT dd FROM ids)), 'bill_upsert/bill_create', 'claimed');
SELECT billops.void_payable((SELECT dd FROM ids), 'bought directly');
SELECT is(pg_temp.req(), 'nothing to send', 'a push for a voided payable sends nothing');
SELECT is(pg_temp.row_of((SELECT dd FROM ids), 'bill_upsert'), 'cancelled/bill_create', 'and is finished as cancelled');
SELECT is(pg_temp.claim((SELECT dd FROM ids)), 'nothing claimed', 'the archive finds no create was sent ...');
SELECT is(pg_temp.row_of((SELECT dd FROM ids), 'bill_archive'), 'done', '... and is done without a request');
-- (the intent was recorded at the claim, so the archive looks: nothing found means nothing to archive)
SELECT ok((SELECT last_error LIKE 'nothing in BILL to archive%' FROM billops.bill_outbox
            WHERE payable_id = (SELECT dd FROM ids) AND action = 'bill_archive'), 'saying so');

-- 4. A newer change queued while a create is in flight; the create's answer is lost.
--    Going back to the queue must not violate "one pending row per payable and action".
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_create', 'the EU bill''s create is claimed');
SELECT is(pg_temp.req(), 'POST /v3/bills', 'and sent');
SELECT pg_temp.load_month(true, '800.00', ARRAY[
    'EUINV-1,Amazon Web Services EMEA SARL,AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,prod-dd1,5.00,USD,"DATADOG INC",Datadog Pro,CC-1']);
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is(pg_temp.row_of((SELECT dd_eu FROM ids), 'bill_upsert'), 'in_flight/bill_create, pending',
          'the restatement queues a newer push while the create is in flight');
SELECT is(pg_temp.lost(), 'retry', 'the create''s answer is lost');
SELECT is(pg_temp.row_of((SELECT dd_eu FROM ids), 'bill_upsert'), 'superseded/bill_lookup, pending',
          'the row going back to the queue is superseded by the newer one (no constraint violated)');
SELECT is((SELECT superseded_by FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM cur)),
          (SELECT max(outbox_id) FROM billops.bill_outbox WHERE payable_id = (SELECT dd_eu FROM ids)), 'and names it');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_lookup',
          'the newer row starts from what the payable records: a create was sent, so look first');
-- the same through crash recovery: a newer push queued while a row is in flight
UPDATE billops.bill_outbox SET claimed_by = 2147483647 WHERE outbox_id = (SELECT outbox_id FROM cur);
SELECT pg_temp.load_month(true, '800.00', ARRAY[
    'EUINV-1,Amazon Web Services EMEA SARL,AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,prod-dd1,6.00,USD,"DATADOG INC",Datadog Pro,CC-1']);
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is(billops._outbox_recover(), 1, 'recovery after a crash succeeds with a newer row queued');
SELECT is(pg_temp.row_of((SELECT dd_eu FROM ids), 'bill_upsert'), 'superseded/bill_lookup, superseded/bill_lookup, pending',
          'the row left in flight is superseded, the newest carries on');

-- 5. A retried update that adds a line: BILL must end as one attempt would leave it
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_lookup', 'the newest push looks the bill up');
SELECT is(pg_temp.resp(200, format('{"results": [%s]}', pg_temp.bill('00nEU', (SELECT dd_eu FROM ids), '[["00lE1", 120.00, "Datadog Pro"]]'))),
          'continue', 'and finds it (with the old single line)');
SELECT is(pg_temp.req(), 'PUT /v3/bills/00nEU', 'a bill found by lookup is set whole (its line ids are not ours yet)');
SELECT is(pg_temp.resp(200, pg_temp.bill('00nEU', (SELECT dd_eu FROM ids), '[["00lE2", 126.00, "Datadog Pro"]]')), 'done', 'done');
SELECT is((SELECT jsonb_path_query_array(line_ids, '$.*') FROM billops.bill_link WHERE payable_id = (SELECT dd_eu FROM ids)),
          '["00lE2"]'::jsonb, 'the line id is learnt from the answer');
-- a second Datadog product arrives: the bill gets a new line
SELECT pg_temp.load_month(true, '800.00', ARRAY[
    'EUINV-1,Amazon Web Services EMEA SARL,AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,prod-dd1,6.00,USD,"DATADOG INC",Datadog Pro,CC-1',
    'EUINV-1,Amazon Web Services EMEA SARL,AWS Marketplace,Anniversary,111111111111,2024-03-01T00:00:00Z,222222222222,Usage,prod-dd2,7.00,USD,"DATADOG INC",Datadog Logs,CC-1']);
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_update', 'the change is an update');
SELECT is(pg_temp.req(), 'PATCH /v3/bills/00nEU', 'BILL holds only lines we know: PATCH, adding the new line');
SELECT ok((SELECT update_intent_at IS NOT NULL FROM billops.bill_link WHERE payable_id = (SELECT dd_eu FROM ids)),
          'the update''s intent is recorded with the request (committed before it is sent)');
SELECT is(pg_temp.resp(502, '[{"code": "BDC_1001", "message": "System error occurred."}]'), 'retry', 'BILL fails: it may have added the line');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_read', 'so the retry reads the bill first');
SELECT is(pg_temp.req(), 'GET /v3/bills/00nEU', 'GET');
-- it did add the line (with an id we never heard of)
SELECT is(pg_temp.resp(200, pg_temp.bill('00nEU', (SELECT dd_eu FROM ids),
                                         '[["00lE2", 126.00, "Datadog Pro"], ["00lX", 7.00, "Datadog Logs"]]')), 'continue', 'read');
SELECT is(pg_temp.req(), 'PUT /v3/bills/00nEU', 'BILL holds a line we do not know: PUT the whole state');
SELECT is((SELECT jsonb_agg(l->'id') FROM billops._outbox_request((SELECT outbox_id FROM cur)) r, jsonb_array_elements(r.body->'billLineItems') l),
          '[null, "00lE2"]'::jsonb, 'the known line by id, the new one without (BILL drops its stray copy)');
-- BILL answers with the new line first: ids are matched by amount, not position
SELECT is(pg_temp.resp(200, pg_temp.bill('00nEU', (SELECT dd_eu FROM ids),
                                         '[["00lE3", 7.00, "Datadog Logs"], ["00lE2", 126.00, "Datadog Pro"]]')), 'done', 'done');
SELECT is((SELECT jsonb_object_agg(l.description, b.line_ids->>l.line_key) FROM billops.payable_line l, billops.bill_link b
            WHERE l.payable_id = (SELECT dd_eu FROM ids) AND b.payable_id = l.payable_id),
          '{"Datadog Pro": "00lE2", "Datadog Logs": "00lE3"}'::jsonb, 'each line keeps its own BILL id');
SELECT ok((SELECT update_intent_at IS NULL AND pushed_content_hash = (SELECT content_hash FROM billops.payable WHERE payable_id = (SELECT dd_eu FROM ids))
             FROM billops.bill_link WHERE payable_id = (SELECT dd_eu FROM ids)), 'the intent is cleared, the content pushed');

-- 6. An approval whose answer was lost: approve again only while BILL still waits on us
SELECT billops._bill_enqueue((SELECT dd_eu FROM ids), 'approval_action', '{"comment": "approved in pg_billops"}');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'approval_action/approve', 'an approval is sent as is the first time');
SELECT is(pg_temp.req(), 'POST /v3/bill-approvals/actions', 'POST');
SELECT is(pg_temp.lost(), 'retry', 'its answer is lost');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'approval_action/approve_check',
          'the retry asks BILL first (it refuses an approver who already decided)');
SELECT is(pg_temp.req(), 'GET /v3/bill-approvals/pending-user-approvals', 'which bills still wait on the API user');
SELECT is(pg_temp.resp(200, '{"bills": [{"billId": "00nEU", "amount": 13}]}'), 'continue', 'ours still waits ...');
SELECT is(pg_temp.req(), 'POST /v3/bill-approvals/actions', '... so it is approved again');
SELECT is(pg_temp.lost(), 'retry', 'lost again');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'approval_action/approve_check', 'checked again');
SELECT is(pg_temp.resp(200, '{"bills": [{"billId": "00nOTHER"}]}'), 'done', 'this time BILL took it: done without a second approval');
-- a newer approval queued while one is in flight whose answer is lost: the newer one asks first too
SELECT billops._bill_enqueue((SELECT dd_eu FROM ids), 'approval_action', '{"comment": "approved again"}');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'approval_action/approve', 'a new approval');
SELECT is(pg_temp.req(), 'POST /v3/bill-approvals/actions', 'sent');
SELECT billops._bill_enqueue((SELECT dd_eu FROM ids), 'approval_action', '{"comment": "and again"}');
SELECT is(pg_temp.lost(), 'retry', 'its answer is lost while a newer approval is queued');
SELECT is(pg_temp.row_of((SELECT dd_eu FROM ids), 'approval_action'), 'done/approve_check, superseded/approve_check, pending',
          'the one in doubt is superseded by the newer one');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'approval_action/approve_check',
          'which starts by asking BILL whether the bill still waits on us');

SELECT * FROM finish();
ROLLBACK;
