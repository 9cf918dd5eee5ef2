-- The BILL protocol where "BILL may have acted" meets a void: a create whose
-- answer was lost, a create in flight, a push claimed just before the void.
-- Driven by hand the way the worker drives it (claim, request, answer); the
-- worker-level reproductions are in test/integration/bill-exactly-once.test.mjs.
BEGIN;
SELECT plan(18);
\ir _payables_fixture.psql
\ir _bill_protocol_fixture.psql

-- 1. A void after a create whose answer was lost: the bill BILL made is found and archived
SELECT is(pg_temp.claim((SELECT dd FROM ids)), 'bill_upsert/bill_create', 'first create of a known vendor''s bill');
SELECT is(pg_temp.req(), 'POST /v3/bills', 'sent');
SELECT is(pg_temp.lost(), 'retry', 'the answer is lost');
SELECT is(pg_temp.row_of((SELECT dd FROM ids), 'bill_upsert'), 'pending/bill_lookup', 'the retry will look the bill up first');
SELECT billops.void_payable((SELECT dd FROM ids), 'bought directly');
SELECT is(pg_temp.row_of((SELECT dd FROM ids), 'bill_upsert'), 'cancelled/bill_lookup', 'voiding cancels the push');
SELECT is(pg_temp.row_of((SELECT dd FROM ids), 'bill_archive'), 'pending',
          'and queues an archive although no bill id is known: a create was sent');
SELECT is(pg_temp.claim((SELECT dd FROM ids)), 'bill_archive/bill_lookup', 'the archive starts by finding the bill');
SELECT is(pg_temp.resp(200, format('{"results": [%s]}', pg_temp.bill('00nLOST', (SELECT dd FROM ids), '[["00lL1", 800.00, "Datadog Pro"]]'))),
          'continue', 'found');
SELECT is(pg_temp.req(), 'POST /v3/bills/00nLOST/archive', 'and archived');
SELECT is(pg_temp.resp(200, '{"id": "00nLOST", "archived": true}'), 'done', 'done');
SELECT ok((SELECT archived FROM billops.bill_link WHERE payable_id = (SELECT dd FROM ids)), 'bill_link says archived');

-- 2. A void while the create is in flight: the archive waits for it, then archives what it made
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_upsert/bill_create', 'the other bill''s create is claimed');
SELECT is(pg_temp.req(), 'POST /v3/bills', 'and sent');
SELECT billops.void_payable((SELECT dd_eu FROM ids), 'duplicate');
SELECT is(pg_temp.row_of((SELECT dd_eu FROM ids), 'bill_upsert') || ' + ' || pg_temp.row_of((SELECT dd_eu FROM ids), 'bill_archive'),
          'in_flight/bill_create + pending', 'voided while in flight: an archive is queued behind the create');
CREATE TEMP TABLE create_row AS SELECT outbox_id FROM cur;
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'nothing claimed', 'the archive waits while the create is in flight');
DELETE FROM cur; INSERT INTO cur SELECT outbox_id FROM create_row;
SELECT is(pg_temp.resp(201, pg_temp.bill('00nEU', (SELECT dd_eu FROM ids), '[["00lE1", 120.00, "Datadog Pro"]]')), 'done',
          'the create completes and is recorded');
SELECT is(pg_temp.claim((SELECT dd_eu FROM ids)), 'bill_archive/archive', 'then the archive goes, straight to the known bill');
SELECT is(pg_temp.req(), 'POST /v3/bills/00nEU/archive', 'archiving what the create made');

SELECT * FROM finish();
ROLLBACK;
