-- Documents attached to a payable reach its bill in BILL through the outbox:
-- the file is the raw request body, sent once BILL has the bill, and an upload
-- whose answer was lost is looked up by name before it is sent again.
BEGIN;
SELECT plan(38);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(true);
SELECT count(*) FROM billops.build_payables('2024-03-01');
CREATE TEMP TABLE ids AS SELECT pg_temp.payable('marketplace:Datadog, Inc.%') AS dd, pg_temp.payable('%DATADOG INC%') AS dd_eu;
-- the bill pushes themselves are another test's business (07): out of the way
UPDATE billops.bill_outbox SET state = 'done';
-- a file with every byte value in it, NUL included
CREATE TEMP TABLE pdf AS SELECT '%PDF-1.4 '::bytea || (SELECT string_agg(set_byte('\x00'::bytea, 0, b), ''::bytea) FROM generate_series(0, 255) b) AS content;

-- bad input: clear errors, nothing attached
SELECT throws_ok(format($$ SELECT billops.attach_document(%s, 'big.pdf', decode(repeat('00', 6 * 1024 * 1024 + 1), 'hex')) $$, (SELECT dd FROM ids)),
                 '54000', 'document "big.pdf" is too large for BILL', 'a file over 6 MB is refused ...');
SELECT throws_ok(format($$ SELECT billops.attach_document(%s, 'empty.pdf', ''::bytea) $$, (SELECT dd FROM ids)),
                 '22023', 'document "empty.pdf" is empty', 'an empty file is refused');
SELECT throws_ok(format($$ SELECT billops.attach_document(%s, 'a/b.pdf', 'x'::bytea) $$, (SELECT dd FROM ids)),
                 '22023', 'invalid document name "a/b.pdf"', 'a name with a slash is refused');
SELECT throws_ok($$ SELECT billops.attach_document(-1, 'x.pdf', 'x'::bytea) $$, 'P0002', 'payable -1 does not exist', 'an unknown payable is refused');
SELECT is((SELECT count(*)::int FROM billops.payable_document), 0, '... and nothing was attached');

-- a usage summary is not a bill: its document stays with the payable, no upload is queued
CREATE TEMP TABLE usage_doc AS
SELECT billops.attach_document(pg_temp.payable('aws_usage:%'), 'invoice-usage.pdf', (SELECT content FROM pdf)) AS id;
SELECT is((SELECT count(*)::int FROM billops.payable_document WHERE document_id = (SELECT id FROM usage_doc)), 1,
          'a usage summary keeps its document');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE action = 'document_upload'
              AND payable_id = pg_temp.payable('aws_usage:%')), 0,
          '... and no upload waits for a bill BILL never gets');
-- once a rule makes it a bill, attaching the same file again queues its upload (once)
SET billops.internal_context = 'system';   -- as a rebuild under the new rule would
UPDATE billops.payable SET treatment = 'invoice_like' WHERE payable_id = pg_temp.payable('aws_usage:%');
SET billops.internal_context = 'none';
SELECT is(billops.attach_document(pg_temp.payable('aws_usage:%'), 'invoice-usage.pdf', (SELECT content FROM pdf)),
          (SELECT id FROM usage_doc), 'the same file again is the same document');
SELECT billops.attach_document(pg_temp.payable('aws_usage:%'), 'invoice-usage.pdf', (SELECT content FROM pdf));
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE action = 'document_upload'
              AND payable_id = pg_temp.payable('aws_usage:%') AND state = 'pending'), 1,
          '... and its upload is queued once, now that the payable is a bill');
DELETE FROM billops.bill_outbox WHERE action = 'document_upload' AND payable_id = pg_temp.payable('aws_usage:%');
SET billops.internal_context = 'system';
UPDATE billops.payable SET treatment = 'usage_summary' WHERE payable_id = pg_temp.payable('aws_usage:%');
SET billops.internal_context = 'none';
DELETE FROM billops.payable_document WHERE document_id = (SELECT id FROM usage_doc);

-- the DD payable has no bill in BILL yet: its document waits
CREATE TEMP TABLE doc AS SELECT billops.attach_document((SELECT dd FROM ids), 'invoice-INV-DD-1.pdf', (SELECT content FROM pdf)) AS id;
SELECT is(billops.attach_document((SELECT dd FROM ids), 'invoice-INV-DD-1.pdf', (SELECT content FROM pdf)), (SELECT id FROM doc),
          'attaching the same file again changes nothing');
SELECT throws_ok(format($$ SELECT billops.attach_document(%s, 'invoice-INV-DD-1.pdf', 'other'::bytea) $$, (SELECT dd FROM ids)),
                 '23505', NULL, 'another file under the same name is refused');
SELECT is((SELECT count(*)::int FROM billops.bill_outbox WHERE action = 'document_upload' AND state = 'pending'), 1, 'one upload is queued');
SELECT is((SELECT count(*)::int FROM billops._outbox_claim(1)), 0, 'but not claimed while BILL has no bill for the payable');

INSERT INTO billops.bill_link (payable_id, invoice_number, bill_id) SELECT dd, 'n1', '00nDD' FROM ids;
CREATE TEMP TABLE claimed AS SELECT * FROM billops._outbox_claim(1);
SELECT is((SELECT step FROM claimed), 'document_upload', 'once the bill exists it is claimed, straight to the upload');
SELECT ok((SELECT upload_intent_at IS NOT NULL FROM billops.payable_document WHERE document_id = (SELECT id FROM doc)),
          'with the intent recorded first');
CREATE TEMP TABLE req AS SELECT * FROM billops._outbox_request((SELECT outbox_id FROM claimed));
SELECT is((SELECT method || ' ' || path FROM req), 'POST /v3/documents/bills/00nDD', 'to the bill''s documents');
SELECT is((SELECT query FROM req), '{"name": "invoice-INV-DD-1.pdf"}'::jsonb, 'named');
SELECT is((SELECT raw_body FROM req), (SELECT content FROM pdf), 'the file itself is the body, byte for byte');
SELECT ok((SELECT body IS NULL AND content_type = 'application/pdf' FROM req), 'not JSON: a PDF');
-- BILL processes an upload asynchronously: its answer has a temporary upload id (0du…)
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200, '{"id": "0du1", "name": "invoice-INV-DD-1.pdf"}'), 'continue',
          'uploaded: next, the upload''s status');
SELECT is((SELECT upload_status || ' ' || bill_upload_id || ' ' || coalesce(bill_document_id, '-') FROM billops.payable_document
            WHERE document_id = (SELECT id FROM doc)), 'processing 0du1 -', 'the temporary upload id is not the document''s id');
SELECT is((SELECT r.method || ' ' || r.path || ' ' || r.query::text FROM billops._outbox_request((SELECT outbox_id FROM claimed)) r),
          'GET /v3/documents/upload-status {"ids": "0du1"}', 'asks BILL how the upload is doing');
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200, '[{"uploadId": "0du1", "status": "IN_PROGRESS"}]'), 'retry',
          'still processing: asked again later');
SELECT is((SELECT state || ' ' || step || ' ' || attempts FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'pending document_status 0', 'without spending an attempt');
SELECT is((SELECT last_error || ' ' || (next_attempt_at > clock_timestamp()) FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'BILL is processing the upload (IN_PROGRESS) true', 'later, saying why (billops.bill_outbox_status shows it)');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200,
          '[{"documentId": "00h9", "uploadId": "0du1", "status": "UPLOADED"}]'), 'done', 'uploaded');
SELECT is((SELECT upload_status || ' ' || bill_document_id FROM billops.payable_document WHERE document_id = (SELECT id FROM doc)),
          'uploaded 00h9', 'BILL''s document id is kept, not the upload''s');

-- an upload BILL does not keep is sent again, at most bill_max_attempts times
SELECT billops.attach_document((SELECT dd FROM ids), 'broken.pdf', 'broken'::bytea);
UPDATE billops.setting SET value = '2' WHERE name = 'bill_max_attempts';
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT billops._outbox_response((SELECT outbox_id FROM claimed), 200, '{"id": "0du2"}');
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200, '[{"uploadId": "0du2", "status": "FAILED"}]'), 'retry',
          'a status BILL does not document as success: the upload failed, try again');
SELECT is((SELECT upload_status || ' ' || upload_failures FROM billops.payable_document WHERE file_name = 'broken.pdf'), 'failed 1',
          'the failure is recorded');
SELECT is((SELECT step || ' ' || last_error_code FROM billops.bill_outbox WHERE outbox_id = (SELECT outbox_id FROM claimed)),
          'document_lookup UPLOAD_FAILED', 'first a lookup by name (the upload may have landed after all), with BILL''s status');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT billops._outbox_response((SELECT outbox_id FROM claimed), 200, '{"results": []}');
SELECT billops._outbox_response((SELECT outbox_id FROM claimed), 200, '{"id": "0du3"}');
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200, '[{"uploadId": "0du3", "status": "FAILED"}]'), 'dead',
          'the second failure with bill_max_attempts 2: a dead letter, reported');
UPDATE billops.setting SET value = '8' WHERE name = 'bill_max_attempts';

-- an upload whose answer was lost: looked up by name, not sent twice
SELECT billops.attach_document((SELECT dd FROM ids), 'statement.pdf', 'statement'::bytea);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), NULL, '', 'Connection reset by peer'), 'retry', 'the connection dropped');
UPDATE billops.bill_outbox SET next_attempt_at = clock_timestamp() WHERE outbox_id = (SELECT outbox_id FROM claimed);
TRUNCATE claimed;
INSERT INTO claimed SELECT * FROM billops._outbox_claim(1);
SELECT is((SELECT r.method || ' ' || r.path FROM billops._outbox_request((SELECT outbox_id FROM claimed)) r),
          'GET /v3/documents/bills/00nDD', 'the retry lists the bill''s documents first');
SELECT is(billops._outbox_response((SELECT outbox_id FROM claimed), 200,
          '{"results": [{"id": "00h1", "name": "invoice-INV-DD-1.pdf"}, {"id": "00h2", "name": "statement.pdf"}]}'), 'done',
          'finds the file it had sent');
SELECT is((SELECT bill_document_id FROM billops.payable_document WHERE file_name = 'statement.pdf'), '00h2', 'and keeps it');

-- documents do not hold up the bill's own rows, and vice versa
SELECT billops.attach_document((SELECT dd_eu FROM ids), 'eu.pdf', 'eu'::bytea);
SELECT is((SELECT action FROM billops._outbox_claim(1)), NULL, 'a document of a payable without a bill waits ...');
SELECT billops._bill_enqueue((SELECT dd_eu FROM ids), 'bill_upsert');
SELECT is((SELECT action FROM billops._outbox_claim(1)), 'bill_upsert', '... without holding up the push that creates that bill');
SELECT ok(has_function_privilege('billops_admin', 'billops.attach_document(bigint, text, bytea, text)', 'EXECUTE')
          AND NOT has_function_privilege('billops_analyst', 'billops.attach_document(bigint, text, bytea, text)', 'EXECUTE'),
          'admins attach documents; analysts cannot');

SELECT * FROM finish();
ROLLBACK;
