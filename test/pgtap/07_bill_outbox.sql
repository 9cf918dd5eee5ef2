-- The BILL outbox and its protocol, driven here by hand the way the worker
-- drives it: claim, ask what to send, hand back BILL's answer.  Includes the
-- crash between "BILL created the bill" and "we recorded it".
BEGIN;
SELECT plan(39);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE ids AS SELECT pg_temp.payable('marketplace:Datadog, Inc.%') AS dd, pg_temp.payable('%DATADOG INC%') AS dd_eu;

SELECT bag_eq($$ SELECT payable_id, action, state FROM billops.bill_outbox $$,
              $$ SELECT dd AS p, 'bill_upsert' AS a, 'pending' AS s FROM ids UNION ALL SELECT dd_eu, 'bill_upsert', 'pending' FROM ids $$,
              'routed bills are in the outbox; acknowledgements and the exception are not');
SELECT count(*) FROM billops.build_payables('2024-03-01');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox), 2, 'an unchanged rebuild adds nothing');

-- the worker claims (and would commit) before sending anything
CREATE TEMP TABLE claimed AS SELECT * FROM billops._outbox_claim(1);
SELECT is((SELECT payable_id FROM claimed), (SELECT min(payable_id) FROM billops.bill_outbox), 'claims the oldest due row');
CREATE TEMP TABLE first_pid AS SELECT payable_id AS p FROM claimed;
SELECT is((SELECT state || '/' || step || '/' || attempts FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'in_flight/vendor_lookup/1', 'in flight, starting with a vendor lookup (the vendor has no BILL id yet)');
SELECT is((SELECT count(*)::int FROM billops._outbox_claim(1)), 0,
          'the other Datadog bill waits while its vendor is looked up (BILL would accept a duplicate vendor)');
CREATE FUNCTION pg_temp.req() RETURNS text LANGUAGE sql AS $$
    SELECT r.method || ' ' || r.path || coalesce(' ' || nullif(r.query, '{}')::text, '')
      FROM billops._outbox_request((SELECT outbox_id FROM claimed)) r
$$;
CREATE FUNCTION pg_temp.resp(status int, body text) RETURNS text LANGUAGE sql AS $$
    SELECT billops._outbox_response((SELECT outbox_id FROM claimed), status, body)
$$;
SELECT is(pg_temp.req(), 'GET /v3/vendors {"max": "100", "filters": "name:eq:Datadog"}', 'search the vendor by name first');
SELECT is(pg_temp.resp(200, '{"results": [{"id": "009OTHER", "name": "Datadog Labs", "archived": false}]}'), 'continue',
          'no exact match');
SELECT is(pg_temp.req(), 'POST /v3/vendors', 'then create it');
SELECT is((SELECT body->>'name' FROM billops._outbox_request((SELECT outbox_id FROM claimed))), 'Datadog', 'with the canonical name');
SELECT is(pg_temp.resp(201, '{"id": "009DD", "name": "Datadog"}'), 'continue', 'created');
SELECT is((SELECT bill_vendor_id FROM billops.vendor WHERE name = 'Datadog'), '009DD', 'the vendor''s BILL id is recorded');
SELECT is(pg_temp.req(), 'POST /v3/bills', 'no create was ever sent for it, so no lookup: create the bill');
SELECT ok(EXISTS (SELECT FROM billops.bill_create_intent WHERE payable_id = (SELECT p FROM first_pid)),
          'the intent to create its bill is recorded with the request (committed before the create is sent)');
CREATE TEMP TABLE sent AS SELECT body FROM billops._outbox_request((SELECT outbox_id FROM claimed));
SELECT is((SELECT body->'invoice'->>'invoiceNumber' FROM sent),
          billops.bill_invoice_number((SELECT dedupe_key FROM billops.payable WHERE payable_id = (SELECT p FROM first_pid))),
          'our invoice number, derived from the dedupe key');
SELECT is((SELECT body->>'vendorId' FROM sent), '009DD', 'for the vendor');
SELECT is((SELECT body->'billLineItems'->0->'classifications' FROM sent), '{"departmentId": "ENG", "chartOfAccountId": "6100-cloud"}'::jsonb,
          'lines carry their coding as BILL classifications');
SELECT is((SELECT (body->'billLineItems'->0->>'amount')::numeric FROM sent),
          (SELECT amount FROM billops.payable WHERE payable_id = (SELECT p FROM first_pid)), 'and their amounts');
SELECT ok((SELECT body->>'description' FROM sent) LIKE '[pg_billops, system-generated]%', 'the bill says it was system-generated');

-- the crash: BILL created the bill, the worker died before recording it
UPDATE billops.bill_outbox SET claimed_by = 2147483647 WHERE outbox_id = (SELECT outbox_id FROM claimed);
SELECT is(billops._outbox_recover(), 1, 'on restart, the row left in flight by a dead worker is recovered');
SELECT is((SELECT state || '/' || step FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'pending/bill_lookup', 'an unanswered create restarts at its lookup, never at the create');
-- (keep the other payable's row out of the way for now)
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() + interval '1 hour' WHERE payable_id <> (SELECT p FROM first_pid);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(pg_temp.req(), 'GET /v3/bills {"max": "100", "filters": "vendorId:eq:009DD"}', 'the retry looks first');
SELECT is(pg_temp.resp(200, format('{"nextPage": "p2", "results": [{"id": "00nOLD", "archived": false, "invoice": {"invoiceNumber": "someone-else"}}]}')),
          'continue', 'page 1 has other bills');
SELECT is(pg_temp.req(), 'GET /v3/bills {"max": "100", "page": "p2", "filters": "vendorId:eq:009DD"}', 'so it reads page 2');
SELECT is(pg_temp.resp(200, format('{"results": [{"id": "00nDD1", "vendorId": "009DD", "archived": false, "amount": 800, "approvalStatus": "UNDEFINED", "paymentStatus": "UNPAID", "invoice": {"invoiceNumber": "%s"}}]}',
                                   billops.bill_invoice_number((SELECT dedupe_key FROM billops.payable WHERE payable_id = (SELECT p FROM first_pid))))),
          'continue', 'and finds the bill created before the crash');
SELECT is((SELECT bill_id FROM billops.bill_link WHERE payable_id = (SELECT p FROM first_pid)), '00nDD1', 'it is adopted, not created again');
SELECT is(pg_temp.req(), 'PUT /v3/bills/00nDD1', 'its lines are set with PUT (their ids are unknown)');
SELECT is(pg_temp.resp(200, format('{"id": "00nDD1", "vendorId": "009DD", "amount": %1$s, "billLineItems": [{"id": "00lA", "amount": %1$s}]}',
                                   (SELECT amount FROM billops.payable WHERE payable_id = (SELECT p FROM first_pid)))), 'done', 'done');
SELECT is((SELECT line_ids FROM billops.bill_link WHERE payable_id = (SELECT p FROM first_pid)),
          jsonb_build_object((SELECT line_key FROM billops.payable_line WHERE payable_id = (SELECT p FROM first_pid)), '00lA'),
          'BILL''s line ids are kept by our line key');
SELECT is((SELECT pushed_content_hash FROM billops.bill_link WHERE payable_id = (SELECT p FROM first_pid)),
          (SELECT content_hash FROM billops.payable WHERE payable_id = (SELECT p FROM first_pid)), 'and what was pushed');

-- failures, as BILL reports them
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE state = 'pending';
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is((SELECT step FROM claimed), 'bill_create', 'the second Datadog bill skips the vendor (it has a BILL id now) and the lookup (no create was sent yet)');
SELECT is(pg_temp.resp(401, '[{"timestamp": "x", "code": "BDC_1109", "severity": "ERROR", "category": "DOWNSTREAM", "message": "Session is invalid.  Please log in."}]'),
          'relogin', 'BDC_1109: log in again and resend');
SELECT is(pg_temp.resp(429, '[{"code": "BDC_1322", "message": "Too many concurrent requests"}]'), 'throttle', 'BDC_1322: resend shortly');
SELECT is(pg_temp.resp(500, '[{"code": "BDC_1001", "message": "System error"}]'), 'retry', 'a 5xx is retried with backoff');
SELECT ok((SELECT state = 'pending' AND next_attempt_at > clock_timestamp() AND last_error_code = 'BDC_1001' AND step = 'bill_lookup'
             FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'later, with the BDC code recorded, and starting with a lookup (the create may have happened)');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(pg_temp.resp(422, '[{"code": "BDC_1144", "message": "Max requests per hour reached"}]'), 'hourly', 'BDC_1144: wait for the next hour');
SELECT is((SELECT next_attempt_at FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          date_trunc('hour', clock_timestamp()) + interval '1 hour', 'not before the next hour');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(pg_temp.resp(400, '[{"code": "BDC_1000", "message": "Invalid vendorId"}]'), 'dead', 'a refused request is a dead letter at once');
SELECT is(billops.bill_outbox_retry((SELECT outbox_id FROM claimed)), 'pending', 'and can be retried by hand');

-- voiding archives the bill in BILL and cancels what was still to push
SELECT billops.void_payable((SELECT p FROM first_pid), 'bought directly');
SELECT is((SELECT state FROM billops.bill_outbox WHERE payable_id = (SELECT p FROM first_pid) AND action = 'bill_archive'), 'pending',
          'a voided payable with a bill in BILL is archived there');

SELECT * FROM finish();
ROLLBACK;
