-- State coming back from BILL: approval in BILL locks the payable, payment
-- moves it on, a change in BILL to a locked payable is flagged, never taken.
BEGIN;
SELECT plan(39);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE ids AS SELECT pg_temp.payable('marketplace:Datadog, Inc.%') AS dd, pg_temp.payable('%DATADOG INC%') AS dd_eu;
INSERT INTO billops.bill_link (payable_id, invoice_number, bill_id)
SELECT dd, 'n1', '00nDD' FROM ids UNION ALL SELECT dd_eu, 'n2', '00nEU' FROM ids;

SELECT is(billops._bill_apply_remote('{"id": "00nNOPE", "approvalStatus": "APPROVED"}', 'test'), 'not ours',
          'a bill pg_billops did not create is left alone');
SELECT is(billops._bill_apply_remote('{"id": "00nDD", "amount": 800, "approvalStatus": "APPROVED", "paymentStatus": "UNPAID", "updatedTime": "2024-04-02T10:00:00.000+0000"}', 'test'),
          'approved in BILL', 'an approval in BILL ...');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)), 'approved', '... approves the payable here');
SELECT is((SELECT string_agg(DISTINCT decided_by::text || ':' || status, ',') FROM billops.approval_step WHERE payable_id = (SELECT dd FROM ids)),
          'BILL:approved', 'its open steps are closed as decided in BILL');
SELECT throws_ok(format($$ UPDATE billops.payable SET amount = 1 WHERE payable_id = %s $$, (SELECT dd FROM ids)), 'BO002', NULL,
                 'and the approval lock applies');
SELECT ok((SELECT bool_and(system_generated) FROM billops.audit_log
            WHERE payable_id = (SELECT dd FROM ids) AND object_type = 'payable' AND action = 'transition' AND after->>'status' = 'approved'),
          'the audit log marks it system-generated');
SELECT is((SELECT approval_status || '/' || payment_status FROM billops.bill_link WHERE bill_id = '00nDD'), 'APPROVED/UNPAID',
          'BILL''s state is mirrored');

SELECT is(billops._bill_apply_remote('{"id": "00nDD", "amount": 800, "approvalStatus": "APPROVED", "paymentStatus": "SCHEDULED", "scheduledAmount": 800}', 'test'),
          'scheduled', 'a scheduled payment schedules the payable');
SELECT is(billops._bill_apply_remote('{"id": "00nDD", "amount": 800, "approvalStatus": "APPROVED", "paymentStatus": "PAID", "paidAmount": 800}', 'test'),
          'paid', 'and a payment pays it');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)), 'paid', 'paid');

SELECT ok(billops._bill_apply_remote('{"id": "00nDD", "amount": 950, "approvalStatus": "APPROVED", "paymentStatus": "PAID"}', 'test')
          LIKE 'conflict: BILL shows 950 but the approved payable is 800.00%', 'an amount changed in BILL after approval is a conflict');
SELECT is((SELECT amount FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)), 800.00::numeric, 'not accepted');
SELECT is((SELECT reason_code FROM billops.exception_queue WHERE payable_id = (SELECT dd FROM ids)), 'bill_conflict',
          'and shown in the exception queue');

INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('tap_eng_owner', '00601BOB0000000000002');
INSERT INTO billops.bill_user (bill_user_id, full_name, role_type, archived, read_at) VALUES ('00601BOB0000000000002', 'Bob Li', 'APPROVER', false, now());
SELECT is(billops._bill_apply_remote('{"id": "00nEU", "amount": 120, "approvalStatus": "DENIED",
                                       "approvers": [{"userId": "00601BOB0000000000002", "status": "DENIED", "approverOrder": 1,
                                                      "statusChangedTime": "2024-04-02T11:00:00.000+0000", "comment": "not our contract"}]}', 'test'),
          'denied in BILL', 'a denial in BILL ...');
SELECT is((SELECT reason_code || ': ' || reason FROM billops.exception_queue WHERE payable_id = (SELECT dd_eu FROM ids)),
          'rejected: denied in BILL by Bob Li (00601BOB0000000000002), approver for tap_eng_owner: not our contract',
          '... sends the payable to the exception queue, saying who denied it and why');
SELECT is((SELECT string_agg(DISTINCT comment, ',') FROM billops.approval_step WHERE payable_id = (SELECT dd_eu FROM ids) AND status = 'rejected'),
          'denied in BILL by Bob Li (00601BOB0000000000002), approver for tap_eng_owner: not our contract (test)',
          'and the step records it');

-- the poller
SELECT is((billops._bill_poll_request()).query->>'filters', 'updatedTime:gt:1970-01-01T00:00:00.000+0000', 'the first poll reads everything');
SELECT is(billops._bill_poll_response('{"nextPage": "p2", "results": [{"id": "00nX", "updatedTime": "2024-04-01T00:00:00.000+0000"}]}'), 1,
          'a page is applied');
SELECT is((billops._bill_poll_request()).query->>'page', 'p2', 'and the next page is asked for');
SELECT billops._bill_poll_response('{"results": [{"id": "00nY", "updatedTime": "2024-04-03T00:00:00.000+0000"}]}');
SELECT is((billops._bill_poll_request()).query, '{"max": "100", "sort": "updatedTime:asc", "filters": "updatedTime:gt:2024-04-03T00:00:00.000+0000"}'::jsonb,
          'after the last page the watermark moves to the newest change');

-- BILL does not deliver in order: older news is not applied over newer
SELECT is(billops._bill_apply_remote('{"id": "00nDD", "amount": 800, "approvalStatus": "APPROVED", "paymentStatus": "UNPAID", "updatedTime": "2024-04-01T00:00:00.000+0000"}', 'test'),
          'stale', 'an event older than what we have is stale ...');
SELECT is((SELECT payment_status FROM billops.bill_link WHERE bill_id = '00nDD'), 'PAID', '... and changes nothing');

-- a webhook that overtook the worker recording its own create is applied once the bill is linked;
-- an approval that came from BILL is not pushed back to BILL
UPDATE billops.setting SET value = 'true' WHERE name = 'bill_push_approvals';
CREATE TEMP TABLE late AS
SELECT p AS payable FROM billops.payable p
 WHERE p.status = 'routed' AND NOT EXISTS (SELECT FROM billops.bill_link l WHERE l.payable_id = p.payable_id) LIMIT 1;
INSERT INTO billops.bill_webhook_event (event_id, event_type, bill_id, outcome, payload)
VALUES ('evt-late', 'bill.updated', '00nLATE', 'not ours',
        '{"bill": {"id": "00nLATE", "approvalStatus": "APPROVED", "paymentStatus": "UNPAID", "updatedTime": "2024-04-05T00:00:00.000+0000"}}');
SELECT billops._bill_link_record((SELECT payable FROM late),
       '{"id": "00nLATE", "approvalStatus": "ASSIGNED", "paymentStatus": "UNPAID", "updatedTime": "2024-04-04T00:00:00.000+0000"}',
       jsonb_build_object('hash', (SELECT (payable).content_hash FROM late), 'lines', '[]'::jsonb));
SELECT is((SELECT outcome FROM billops.bill_webhook_event WHERE event_id = 'evt-late'), 'approved in BILL',
          'an event that came before the bill was linked is applied when it is');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT (payable).payable_id FROM late)), 'approved', 'so the payable is approved');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE payable_id = (SELECT (payable).payable_id FROM late) AND action = 'approval_action'), 0,
          'and BILL''s own approval is not sent back to BILL');

-- the relay's role can hand notifications over and do nothing else
SELECT ok(has_function_privilege('billops_webhook', 'billops.receive_bill_webhook(text, text)', 'EXECUTE')
          AND NOT has_function_privilege('billops_analyst', 'billops.receive_bill_webhook(text, text)', 'EXECUTE')
          AND NOT has_table_privilege('billops_webhook', 'billops.payable', 'SELECT'),
          'billops_webhook may call receive_bill_webhook, and read nothing');
-- payments: a failed payment reopens the payment state and shows in the exception queue
SELECT is(billops._bill_apply_payment('{"id": "stp01A", "billIds": ["00nDD"], "status": "DISBURSEMENT_FAILED_VENDOR_BANK_REJECTED",
                                        "amount": 800, "processDate": "2024-04-05", "updatedTime": "2024-04-06T00:00:00.000+0000"}',
                                      'payment.updated'), 'payment failed', 'a payment the vendor''s bank rejected ...');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT dd FROM ids)), 'approved',
          '... puts the paid payable back to approved: approved, not paid');
SELECT is((SELECT reason_code || ': ' || reason FROM billops.exception_queue WHERE payable_id = (SELECT dd FROM ids) AND subject = 'payment'),
          'payment_failed: payment stp01A disbursement_failed_vendor_bank_rejected in BILL', 'and shows in the exception queue');
SELECT is((SELECT status || ' ' || last_event FROM billops.bill_payment WHERE payment_id = 'stp01A'),
          'DISBURSEMENT_FAILED_VENDOR_BANK_REJECTED payment.updated', 'the payment is on record');
SELECT is(billops._bill_apply_payment('{"id": "stp01A", "billIds": ["00nDD"], "status": "SENT", "updatedTime": "2024-04-05T00:00:00.000+0000"}',
                                      'payment.updated'), 'stale', 'an older status of the same payment changes nothing');
SELECT is(billops._bill_apply_payment('{"id": "stp01B", "billIds": ["00nDD"], "status": "SCHEDULED", "updatedTime": "2024-04-07T00:00:00.000+0000"}',
                                      'payment.updated'), 'recorded', 'paid again: a new payment on its way ...');
SELECT is((SELECT status || ' ' || coalesce((SELECT reason_code FROM billops.exception_queue e WHERE e.payable_id = x.payable_id AND e.subject = 'payment'), 'none')
             FROM billops.payable x WHERE payable_id = (SELECT dd FROM ids)), 'approved none',
          '... clears the problem (the bill''s paymentStatus schedules the payable, as before)');
SELECT is(billops._bill_apply_payment('{"id": "stp01C", "billIds": ["00nDD"], "errorMessage": "insufficient funds"}', 'payment.failed'),
          'payment failed', 'payment.failed is a failure whatever its status');
SELECT is((SELECT reason FROM billops.exception_queue WHERE payable_id = (SELECT dd FROM ids) AND subject = 'payment'),
          'payment stp01C failed in BILL: insufficient funds', 'with BILL''s message');
SELECT is(billops._bill_apply_payment('{"id": "stp01D", "billIds": ["00nNOPE"], "status": "VOIDED"}', 'payment.updated'), 'recorded',
          'a payment of a bill that is not ours is recorded and changes nothing');
SELECT is(billops._bill_apply_payment('{"status": "VOIDED"}', 'payment.updated'), 'ignored: no payment id or bill ids',
          'a payload without ids is ignored, saying why');

-- a missing body or signature is refused as a signature problem (the relay answers 401), before anything else
SELECT throws_ok($$ SELECT billops.receive_bill_webhook(NULL, 'c2lnbmF0dXJl') $$, '28000', NULL,
                 'a webhook without a body is refused like a bad signature (28000)');
SELECT throws_ok($$ SELECT billops.receive_bill_webhook('{"metadata": {"eventId": "e1"}}', NULL) $$, '28000', NULL,
                 'a webhook without a signature is refused (28000)');

SELECT * FROM finish();
ROLLBACK;
