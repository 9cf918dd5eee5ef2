-- ---------------------------------------------------------------------------
-- Documents attached to a payable's bill in BILL (an AWS invoice PDF, a
-- partner's statement).  Attaching writes an outbox row in the same
-- transaction; the worker uploads the file as the raw body of
-- POST /v3/documents/bills/{billId}?name=... once BILL has the bill.
-- ---------------------------------------------------------------------------

CREATE TABLE billops.payable_document (
    document_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payable_id        bigint NOT NULL REFERENCES billops.payable,
    file_name         text NOT NULL,
    content_type      text NOT NULL,
    content           bytea NOT NULL,
    sha256            text NOT NULL,
    added_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    added_by          name NOT NULL DEFAULT billops.actor(),
    -- set (and committed) before the first upload is sent: from then on an upload
    -- is preceded by a lookup of the bill's documents by name (BILL has no idempotency key)
    upload_intent_at  timestamptz,
    -- BILL processes an upload asynchronously: its answer carries a temporary
    -- upload id (0du…); GET /v3/documents/upload-status?ids= says when it is
    -- UPLOADED and gives the document's id (00h…), which is what is kept.
    bill_upload_id    text,
    upload_status     text NOT NULL DEFAULT 'queued'
                      CHECK (upload_status IN ('queued', 'processing', 'uploaded', 'failed')),
    upload_failures   integer NOT NULL DEFAULT 0,
    bill_document_id  text,
    uploaded_at       timestamptz,
    UNIQUE (payable_id, file_name)
);
COMMENT ON TABLE billops.payable_document IS
  'Files attached to a payable, uploaded to its bill in BILL by the worker: queued, processing (BILL''s temporary upload id), uploaded (BILL''s document id) or failed.';

-- The step for a document row: upload straight away the first time (recording
-- the intent), look it up by name whenever an earlier upload may have landed.
CREATE FUNCTION billops._bill_document_step(target_document_id bigint) RETURNS text
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    WITH intent AS (
        UPDATE billops.payable_document d SET upload_intent_at = clock_timestamp()
         WHERE d.document_id = target_document_id AND d.upload_intent_at IS NULL
        RETURNING 'document_upload'::text AS step)
    SELECT coalesce((SELECT step FROM intent), 'document_lookup')
$$;

CREATE FUNCTION billops.attach_document(target_payable_id bigint, file_name text, content bytea,
                                        content_type text DEFAULT 'application/pdf') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- BILL's documented limit for one file
    max_bytes constant integer := 6 * 1024 * 1024;
    digest text := encode(sha256(content), 'hex');
    existing billops.payable_document;
    id bigint;
BEGIN
    IF NOT EXISTS (SELECT FROM billops.payable p WHERE p.payable_id = target_payable_id) THEN
        RAISE EXCEPTION 'payable % does not exist', target_payable_id USING ERRCODE = 'no_data_found';
    END IF;
    IF file_name IS NULL OR file_name !~ '^[^/\\[:cntrl:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid document name "%"', file_name USING ERRCODE = 'invalid_parameter_value',
              DETAIL = 'A name is 1 to 200 characters, without slashes or control characters.',
              HINT = 'BILL shows it as the file''s name, e.g. invoice-EUINV-1.pdf.';
    END IF;
    IF content IS NULL OR length(content) = 0 THEN
        RAISE EXCEPTION 'document "%" is empty', file_name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF length(content) > max_bytes THEN
        RAISE EXCEPTION 'document "%" is too large for BILL', file_name USING ERRCODE = 'program_limit_exceeded',
              DETAIL = format('It has %s bytes; BILL takes at most %s bytes (6 MB) per file.', length(content), max_bytes),
              HINT = 'Attach a smaller file (a PDF of the invoice rather than its data).';
    END IF;
    SELECT * INTO existing FROM billops.payable_document d
     WHERE d.payable_id = target_payable_id AND d.file_name = attach_document.file_name;
    IF FOUND THEN
        IF existing.sha256 <> digest THEN
            RAISE EXCEPTION 'payable % already has a different document named "%"', target_payable_id, file_name
                  USING ERRCODE = 'unique_violation', DETAIL = format('Attached by %s at %s.', existing.added_by, existing.added_at),
                        HINT = 'Give the new file another name: BILL keeps every file it was sent.';
        END IF;
        id := existing.document_id;         -- the same file again changes nothing ...
    ELSE
        INSERT INTO billops.payable_document (payable_id, file_name, content_type, content, sha256)
        VALUES (target_payable_id, file_name, coalesce(content_type, 'application/octet-stream'), content, digest)
        RETURNING document_id INTO id;
    END IF;
    -- ... but its upload is queued when the payable is a bill (treatment invoice_like;
    -- a usage summary's document stays with the payable, and no upload waits for a
    -- bill that never comes) and the file is neither in BILL nor on its way there
    IF (SELECT p.treatment FROM billops.payable p WHERE p.payable_id = target_payable_id) = 'invoice_like'
       AND (SELECT d.bill_document_id FROM billops.payable_document d WHERE d.document_id = id) IS NULL
       AND NOT EXISTS (SELECT FROM billops.bill_outbox o
                        WHERE o.payable_id = target_payable_id AND o.action = 'document_upload'
                          AND o.state IN ('pending', 'in_flight')
                          AND (o.payload->>'document_id')::bigint = id) THEN
        PERFORM billops._bill_wake();
        INSERT INTO billops.bill_outbox (payable_id, action, payload)
        VALUES (target_payable_id, 'document_upload', jsonb_build_object('document_id', id));
    END IF;
    RETURN id;
END $$;
COMMENT ON FUNCTION billops.attach_document(bigint, text, bytea, text) IS
  'Attach a file (at most 6 MB) to a payable; for a bill (treatment invoice_like) the worker uploads it to the payable''s bill in BILL, once BILL has it.';
