-- ---------------------------------------------------------------------------
-- BILL: the transactional outbox and the protocol state machine.
--
-- Every change BILL must learn about is an outbox row written in the same
-- transaction as the change.  The background worker (C) is a transport: it
-- claims rows (and commits) before any HTTP, asks _outbox_request() what to
-- send, sends it, and hands the answer to _outbox_response(), which records
-- what BILL produced and says what to do next.  The protocol -- search before
-- create, exactly-once effect, retries, dead letters -- lives here, in SQL,
-- where it is testable without a network.  README "The BILL protocol" draws
-- the state machine.
--
-- Exactly-once effect rests on one rule: "BILL may have acted" is recorded
-- (and committed) before a request that changes BILL is sent, on the payable,
-- not on the outbox row, so every later transition sees it -- whichever row,
-- worker or process carries on:
--   * bill_create_intent: a create was sent.  BILL has no idempotency key for
--     bills, so any later create is preceded by a lookup by invoice number,
--     and a void archives whatever that lookup finds.
--   * bill_link.update_intent_at: an update was sent and its answer is not
--     recorded.  The next update first reads the bill (GET) and learns which
--     lines BILL holds, then sends the whole desired state: lines BILL has are
--     named by id, lines it lacks are added, lines it has that we do not know
--     (added by an update whose answer was lost) are removed (PUT).  So a
--     retried update leaves BILL as one attempt would.
--   * payable_document.upload_intent_at: an upload was sent (lookup by name first).
--   * a vendor create or an approval whose answer was lost restarts at a
--     check (the vendor list by name; the bills still waiting on the API user).
-- An outbox row is only the queue position and the step it is at; a newer
-- change supersedes an older row that goes back to the queue (the newer row
-- starts from the payable's state above), so no constraint is ever violated.
-- (Unverified: whether BILL's list is immediately consistent after a create.
-- The lookup pages through every bill of the vendor; if BILL ever lags, the
-- setting bill_lookup_grace delays a retried create.)
-- ---------------------------------------------------------------------------

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('bill_due_days', '30', 'numeric', 'Due date of a bill created in BILL: this many days after the end of its billing period.'),
  ('bill_max_attempts', '8', 'numeric', 'Attempts before an outbox row becomes dead (visible and retryable with billops.bill_outbox_retry).'),
  ('bill_retry_base_seconds', '2', 'numeric', 'Base of the exponential backoff (with jitter) between attempts.'),
  ('bill_retry_cap_seconds', '900', 'numeric', 'Longest wait between two attempts.'),
  ('bill_lookup_grace_seconds', '0', 'numeric', 'After an attempt whose outcome is unknown, wait this long before the lookup that precedes a retried create.'),
  ('bill_push_approvals', 'false', 'boolean',
   'Send approvals decided in SQL to BILL (POST /v3/bill-approvals/actions). Needs the integration user to be a BILL approver.');

-- BILL ids for coding values.  Without a row, the coding value itself is sent
-- (so coding rules may hold BILL ids directly).
CREATE TABLE billops.bill_classification (
    field     text NOT NULL REFERENCES billops.coding_field,
    value     text NOT NULL,
    bill_id   text NOT NULL,
    PRIMARY KEY (field, value)
);
COMMENT ON TABLE billops.bill_classification IS
  'Maps a coding value (e.g. GL account 6100) to the BILL id of that chart of account / department / class / location / job.';

-- What BILL holds for each payable.
CREATE TABLE billops.bill_link (
    payable_id           bigint PRIMARY KEY REFERENCES billops.payable,
    invoice_number       text NOT NULL UNIQUE,
    bill_id              text UNIQUE,
    bill_vendor_id       text,
    line_ids             jsonb NOT NULL DEFAULT '{}',
    -- every line id BILL's bill held when we last saw it (an answer, a lookup, a read); NULL: not known
    bill_line_ids        jsonb,
    -- set (and committed) before an update is sent, cleared when an answer or a read is recorded
    update_intent_at     timestamptz,
    pushed_content_hash  text,
    pushed_at            timestamptz,
    archived             boolean NOT NULL DEFAULT false,
    approval_status      text,
    payment_status       text,
    amount               numeric,
    paid_amount          numeric,
    scheduled_amount     numeric,
    due_amount           numeric,
    bill_updated_time    timestamptz,
    synced_at            timestamptz,
    -- the approval route the bill carries (56_bill_routes.sql), the approvers BILL shows
    -- (in its order) and, when they are not the route's, what differs
    route_key            text,
    bill_approvers       text[],
    approver_problem     text
);
COMMENT ON TABLE billops.bill_link IS
  'The BILL bill of each payable: its id, our invoice number, the line ids (by line_key) and BILL''s approval and payment state.';
COMMENT ON COLUMN billops.bill_link.update_intent_at IS
  'An update of the bill was sent and its answer never recorded: BILL may or may not hold it, so the next update reads the bill first.';

-- Intent, recorded (and committed) before the first create of a payable's bill
-- is sent.  BILL has no idempotency key for bills: a payable listed here may
-- have a bill in BILL that we never heard of (the answer was lost), so every
-- later create is preceded by a lookup.  A payable not listed here cannot have
-- one, and its first create skips the lookup -- which matters, because the
-- lookup lists the vendor's bills page by page.
CREATE TABLE billops.bill_create_intent (
    payable_id     bigint PRIMARY KEY REFERENCES billops.payable,
    first_step_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE billops.bill_create_intent IS
  'Payables whose bill create may have reached BILL: before creating again, the worker looks the bill up.';

CREATE TABLE billops.bill_outbox (
    outbox_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    action           text NOT NULL CHECK (action IN ('bill_upsert', 'bill_archive', 'approval_action', 'document_upload')),
    payable_id       bigint NOT NULL REFERENCES billops.payable,
    payload          jsonb NOT NULL DEFAULT '{}',
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'in_flight', 'done', 'dead', 'cancelled', 'superseded')),
    step             text,
    cursor           text,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    claimed_by       integer,
    claimed_at       timestamptz,
    last_http_status integer,
    last_error_code  text,
    last_error       text,
    bill_id          text,
    bill_vendor_id   text,
    requests         integer NOT NULL DEFAULT 0,
    -- what the bill create or update in flight carries: the content hash and its lines, in order
    sent             jsonb,
    -- a newer row of the same payable and action that carries this row's change on
    superseded_by    bigint,
    -- the approval route this row is setting up in BILL (route_* steps)
    route_key        text,
    finished_at      timestamptz
);
-- one pending push per payable and action: later changes fold into it (each document is its own row)
CREATE UNIQUE INDEX bill_outbox_one_pending ON billops.bill_outbox (payable_id, action)
    WHERE state = 'pending' AND action <> 'document_upload';
-- the claim: due rows in order, and the rows still open before them (each claim
-- looks at these, so a queue of thousands must not mean a scan per candidate)
CREATE INDEX bill_outbox_due ON billops.bill_outbox (next_attempt_at, outbox_id) WHERE state = 'pending';
CREATE INDEX bill_outbox_open ON billops.bill_outbox (payable_id, outbox_id) WHERE state IN ('pending', 'in_flight');
CREATE INDEX bill_outbox_in_flight ON billops.bill_outbox (payable_id) WHERE state = 'in_flight';
COMMENT ON TABLE billops.bill_outbox IS
  'Changes BILL must learn about, written in the same transaction as the change; delivered by the pg_billops worker.';
COMMENT ON COLUMN billops.bill_outbox.step IS
  'Where the protocol is: vendor_lookup, vendor_create, route_session, route_job_lookup, route_job_create, route_policy_lookup, route_policy_create, route_policy_update, bill_lookup, bill_create, bill_read, bill_update, archive, approve_check, approve, document_lookup, document_upload, document_status.';
COMMENT ON COLUMN billops.bill_outbox.state IS
  'pending (queued) → in_flight (claimed by the worker) → done | dead (gave up: billops.bill_outbox_retry) | cancelled (no longer needed) | superseded (a newer row of the same payable carries the change).';

-- What _outbox_response tells the worker's lane to do next: the contract
-- between SQL and C (bill_lanes.c maps each value in an exhaustive switch;
-- a value C does not know is an error there, never a silent default).
CREATE TYPE billops._outbox_next AS ENUM (
    'done',         -- the row is finished
    'continue',     -- its next step is ready: send it on the next turn
    'retry',        -- deferred with backoff
    'dead',         -- a dead letter
    'relogin',      -- BILL said the session is invalid (BDC_1109)
    'throttle',     -- BILL's concurrency limit (BDC_1322): this lane waits, fewer lanes for a while
    'hourly'        -- BILL's hourly limit (BDC_1144): the row waits for the next hour, the worker pauses
);

-- The invoice number pg_billops gives a bill in BILL: short and stable (the
-- length BILL accepts is not documented), derived from the dedupe key.
CREATE FUNCTION billops.bill_invoice_number(dedupe_key text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT split_part(dedupe_key, '|', 1) || '-' || replace(split_part(dedupe_key, '|', 2), '-', '')
           || '-' || left(md5(dedupe_key), 10)
$$;
COMMENT ON FUNCTION billops.bill_invoice_number(text) IS
  'The invoice number pg_billops gives a payable''s bill in BILL: payer, YYYYMM and 10 hex digits of the dedupe key''s md5 (short and stable).';

-- Sets the BILL worker's latch when the calling transaction commits.
CREATE FUNCTION billops._bill_wake() RETURNS void
AS 'MODULE_PATHNAME', 'billops_bill_wake' LANGUAGE C VOLATILE;

-- Enqueue in the same transaction as the change; the worker wakes on commit.
CREATE FUNCTION billops._bill_enqueue(target_payable_id bigint, what text, extra jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._bill_wake();
    INSERT INTO billops.bill_outbox (payable_id, action, payload)
    VALUES (target_payable_id, what, extra)
    ON CONFLICT (payable_id, action) WHERE state = 'pending' AND action <> 'document_upload'
    DO UPDATE SET payload = billops.bill_outbox.payload || EXCLUDED.payload;
END $$;

-- Can a payable's bill be in BILL at all: an invoice-like payable, routed or later.
CREATE FUNCTION billops._bill_pushable(p billops.payable) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.treatment = 'invoice_like' AND p.status IN ('routed', 'approved', 'scheduled', 'paid')
$$;

CREATE FUNCTION billops._payable_to_outbox() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link billops.bill_link;
BEGIN
    IF NEW.treatment <> 'invoice_like' THEN
        RETURN NULL;                            -- acknowledgements are not bills
    END IF;
    SELECT * INTO link FROM billops.bill_link l WHERE l.payable_id = NEW.payable_id;
    IF NEW.status = 'voided' THEN
        IF TG_OP = 'UPDATE' AND OLD.status <> 'voided' THEN
            -- nothing more is pushed for it (rows in flight finish; their answers are recorded) ...
            UPDATE billops.bill_outbox o SET state = 'cancelled', finished_at = clock_timestamp(),
                   last_error = 'payable voided'
             WHERE o.payable_id = NEW.payable_id AND o.state = 'pending'
               AND o.action IN ('bill_upsert', 'approval_action', 'document_upload');
            -- ... and whatever BILL may hold is archived: a bill we know, one whose create
            -- answer was lost, one being created right now.  Any push ever queued counts (a
            -- row claimed concurrently may be pending in our snapshot); the archive row, queued
            -- behind them, finds out at its turn whether there is anything to archive.
            IF link.bill_id IS NOT NULL
               OR EXISTS (SELECT FROM billops.bill_create_intent i WHERE i.payable_id = NEW.payable_id)
               OR EXISTS (SELECT FROM billops.bill_outbox o WHERE o.payable_id = NEW.payable_id AND o.action = 'bill_upsert') THEN
                PERFORM billops._bill_enqueue(NEW.payable_id, 'bill_archive');
            END IF;
        END IF;
        RETURN NULL;
    END IF;
    -- routed or later, without exceptions: BILL gets the bill (and every later change) ...
    IF billops._bill_pushable(NEW) AND (NEW.content_hash IS DISTINCT FROM link.pushed_content_hash
       -- ... and a new approval route while the bill is open, or as it is approved here (56_bill_routes.sql)
       OR link.bill_id IS NOT NULL AND (NEW.status = 'routed' OR TG_OP = 'UPDATE' AND OLD.status = 'routed')
          AND billops._bill_route_of(NEW.payable_id) IS DISTINCT FROM link.route_key) THEN
        -- its context, made for this content while it waits for approval (55_bill_context.sql)
        PERFORM billops._bill_context_refresh(NEW.payable_id);
        PERFORM billops._bill_enqueue(NEW.payable_id, 'bill_upsert');
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status = 'routed' AND NEW.status = 'approved'
       AND billops.setting_value('bill_push_approvals') = 'true'
       -- an approval that came from BILL is not sent back to it, unless BILL still waits on
       -- pg_billops' own final approval (a route closed by the API user: 56_bill_routes.sql)
       AND (NOT EXISTS (SELECT FROM billops.approval_step s
                         WHERE s.payable_id = NEW.payable_id AND s.routing_round = NEW.routing_round
                           AND s.decided_by = 'BILL')
            OR link.approval_status IS DISTINCT FROM 'APPROVED'
               AND billops._bill_api_user() = ANY (billops._bill_approver_chain(NEW.payable_id))) THEN
        PERFORM billops._bill_enqueue(NEW.payable_id, 'approval_action',
                                      jsonb_build_object('comment', 'approved in pg_billops'));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER payable_to_outbox AFTER INSERT OR UPDATE ON billops.payable
    FOR EACH ROW EXECUTE FUNCTION billops._payable_to_outbox();

-- Put a row back in the queue (a failed attempt, a recovery, a pause, a
-- manual retry): every way back goes through here.  When a newer row of the
-- same payable and action is queued already, that row carries the change on
-- and this one is superseded -- nothing is lost, because the newer row starts
-- from what the payable records (the intents above) -- so "one pending row per
-- payable and action" always holds.  A newer row queued concurrently and not
-- yet committed is invisible to the check; the unique index then waits for it
-- and fails, and the retry of the check sees it.  Returns the row's state.
CREATE FUNCTION billops._outbox_set_pending(target_outbox_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x     billops.bill_outbox;
    newer bigint;
BEGIN
    SELECT * INTO x FROM billops.bill_outbox o WHERE o.outbox_id = target_outbox_id FOR UPDATE;
    FOR attempt IN 1 .. 3 LOOP
        IF x.action <> 'document_upload' THEN
            SELECT y.outbox_id INTO newer FROM billops.bill_outbox y
             WHERE y.payable_id = x.payable_id AND y.action = x.action AND y.state = 'pending'
               AND y.outbox_id <> x.outbox_id
             FOR UPDATE;
            IF FOUND THEN
                UPDATE billops.bill_outbox y SET payload = x.payload || y.payload WHERE y.outbox_id = newer;
                UPDATE billops.bill_outbox o SET state = 'superseded', superseded_by = newer, claimed_by = NULL,
                       finished_at = clock_timestamp()
                 WHERE o.outbox_id = x.outbox_id;
                RETURN 'superseded';
            END IF;
        END IF;
        BEGIN
            UPDATE billops.bill_outbox o SET state = 'pending', claimed_by = NULL, finished_at = NULL
             WHERE o.outbox_id = x.outbox_id;
            RETURN 'pending';
        EXCEPTION WHEN unique_violation THEN
            NULL;       -- a newer row was being queued and is committed now: fold into it
        END;
    END LOOP;
    RAISE EXCEPTION 'outbox row % cannot go back to the queue', x.outbox_id USING ERRCODE = 'BO005',
          DETAIL = 'Another row of the same payable and action is queued, but this transaction cannot see it.',
          HINT = 'Retry from a READ COMMITTED transaction.';
END $$;

-- ---------------------------------------------------------------------------
-- The worker's side.
-- ---------------------------------------------------------------------------

-- After an attempt whose outcome we do not know, a step that changes BILL
-- restarts at the step that finds out what it did.
CREATE FUNCTION billops._outbox_step_in_doubt(step text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE step WHEN 'vendor_create' THEN 'vendor_lookup' WHEN 'bill_create' THEN 'bill_lookup'
                     WHEN 'bill_update' THEN 'bill_read' WHEN 'approve' THEN 'approve_check'
                     WHEN 'document_upload' THEN 'document_lookup'
                     WHEN 'route_job_create' THEN 'route_job_lookup'
                     WHEN 'route_policy_create' THEN 'route_policy_lookup'
                     WHEN 'route_policy_update' THEN 'route_policy_lookup' ELSE step END
$$;

-- Rows left in_flight by a worker that is gone go back to pending; a create
-- or update whose answer never arrived restarts where it finds out what BILL
-- did.  (A newer row of the same payable supersedes it: _outbox_set_pending.)
CREATE FUNCTION billops._outbox_recover() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n    integer := 0;
    lost bigint;
BEGIN
    FOR lost IN UPDATE billops.bill_outbox o SET
           step = billops._outbox_step_in_doubt(o.step),
           cursor = NULL,
           next_attempt_at = clock_timestamp()
                             + make_interval(secs => billops.setting_value('bill_lookup_grace_seconds')::numeric),
           last_error = coalesce(o.last_error, 'worker stopped during the attempt')
     WHERE o.state = 'in_flight'
       AND NOT EXISTS (SELECT FROM pg_stat_activity a WHERE a.pid = o.claimed_by AND a.pid <> pg_backend_pid())
     RETURNING o.outbox_id
    LOOP
        PERFORM billops._outbox_set_pending(lost);
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

-- The step a claimed row starts at, from what the payable records; NULL when
-- there is nothing to do (an archive for a payable BILL never got a create).
CREATE FUNCTION billops._outbox_first_step(o billops.bill_outbox) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link billops.bill_link;
    bill_vendor text := (SELECT v.bill_vendor_id FROM billops.payable p JOIN billops.vendor v USING (vendor_id)
                          WHERE p.payable_id = o.payable_id);
BEGIN
    SELECT * INTO link FROM billops.bill_link l WHERE l.payable_id = o.payable_id;
    CASE o.action
    WHEN 'bill_upsert' THEN
        IF link.bill_id IS NOT NULL THEN
            RETURN CASE WHEN link.update_intent_at IS NOT NULL THEN 'bill_read' ELSE 'bill_update' END;
        ELSIF bill_vendor IS NOT NULL THEN
            RETURN billops._bill_create_step(o.payable_id);
        END IF;
        RETURN 'vendor_lookup';
    WHEN 'bill_archive' THEN
        IF link.bill_id IS NOT NULL THEN
            RETURN 'archive';
        ELSIF bill_vendor IS NOT NULL
              AND EXISTS (SELECT FROM billops.bill_create_intent i WHERE i.payable_id = o.payable_id) THEN
            RETURN 'bill_lookup';       -- a create was sent and never answered: find what it made
        END IF;
        RETURN NULL;
    WHEN 'document_upload' THEN
        RETURN billops._bill_document_step((o.payload->>'document_id')::bigint);
    ELSE
        -- an approval that supersedes one already sent (its answer unknown) asks BILL first
        RETURN CASE WHEN EXISTS (SELECT FROM billops.bill_outbox y
                                  WHERE y.payable_id = o.payable_id AND y.action = 'approval_action'
                                    AND y.state = 'superseded' AND y.requests > 0)
                    THEN 'approve_check' ELSE 'approve' END;
    END CASE;
END $$;

-- Claim up to n due rows, at most one per payable and in the order they were
-- written (an approval never overtakes the bill it approves, an archive never
-- the create it archives).  The caller commits before sending anything.  A
-- push for a payable that is no longer pushable (rejected back to the
-- exception queue) is cancelled.
--
-- Locks: the claim takes outbox rows with SKIP LOCKED and never waits for a
-- lock held by a transaction that changes payables (void_payable, a build):
-- those lock the payable first and the outbox rows after, and wait for the
-- claim's short transaction, never the other way round.
CREATE FUNCTION billops._outbox_claim(n integer) RETURNS SETOF billops.bill_outbox
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x     billops.bill_outbox;
    p     billops.payable;
    first text;
    taken bigint[] := '{}';
BEGIN
    IF n < 1 THEN
        RETURN;
    END IF;
    -- Due rows in order; each candidate is checked with index lookups of its own
    -- (a set-based anti-join is planned from statistics that a queue grown by a
    -- thousand rows in one commit does not have yet).
    FOR x IN SELECT * FROM billops.bill_outbox c
              WHERE c.state = 'pending' AND c.next_attempt_at <= clock_timestamp()
              ORDER BY c.next_attempt_at, c.outbox_id
              FOR UPDATE SKIP LOCKED
    LOOP
        -- a push for a payable no longer pushable (rejected back to the exception queue)
        IF x.action = 'bill_upsert' THEN
            SELECT * INTO p FROM billops.payable y WHERE y.payable_id = x.payable_id;
            IF NOT billops._bill_pushable(p) THEN
                UPDATE billops.bill_outbox o SET state = 'cancelled', finished_at = clock_timestamp(),
                       last_error = 'payable is ' || p.status || ', not pushed'
                 WHERE o.outbox_id = x.outbox_id;
                CONTINUE;
            END IF;
        END IF;
        -- rows of one payable go in the order they were written (documents aside), one at a time
        CONTINUE WHEN EXISTS (SELECT FROM billops.bill_outbox y
                               WHERE y.payable_id = x.payable_id AND y.outbox_id < x.outbox_id
                                 AND y.state IN ('pending', 'in_flight') AND y.action <> 'document_upload');
        CONTINUE WHEN x.action <> 'document_upload'
                  AND EXISTS (SELECT FROM billops.bill_outbox y
                               WHERE y.payable_id = x.payable_id AND y.state = 'in_flight' AND y.action <> 'document_upload');
        -- a document goes to the payable's bill: it waits until BILL has one
        CONTINUE WHEN x.action = 'document_upload'
                  AND NOT EXISTS (SELECT FROM billops.bill_link l WHERE l.payable_id = x.payable_id AND l.bill_id IS NOT NULL);
        -- BILL does not refuse duplicate vendors: while one row looks a new vendor up
        -- (or creates it), rows of the same vendor wait their turn
        CONTINUE WHEN EXISTS (SELECT FROM billops.payable px JOIN billops.vendor v ON v.vendor_id = px.vendor_id
                               WHERE px.payable_id = x.payable_id AND v.bill_vendor_id IS NULL
                                 AND EXISTS (SELECT FROM billops.bill_outbox y JOIN billops.payable py ON py.payable_id = y.payable_id
                                              WHERE y.state = 'in_flight' AND py.vendor_id = px.vendor_id));
        first := coalesce(x.step, billops._outbox_first_step(x));
        IF first IS NULL THEN
            UPDATE billops.bill_outbox o SET state = 'done', finished_at = clock_timestamp(),
                   last_error = 'nothing in BILL to archive: no bill was ever created for this payable'
             WHERE o.outbox_id = x.outbox_id;
            CONTINUE;
        END IF;
        -- in flight at once, so that the next candidate's checks see it
        UPDATE billops.bill_outbox o SET state = 'in_flight', claimed_by = pg_backend_pid(), claimed_at = clock_timestamp(),
               attempts = o.attempts + 1, step = first
         WHERE o.outbox_id = x.outbox_id;
        taken := taken || x.outbox_id;
        EXIT WHEN cardinality(taken) >= n;
    END LOOP;
    RETURN QUERY SELECT * FROM billops.bill_outbox o WHERE o.outbox_id = ANY (taken) ORDER BY o.outbox_id;
END $$;

-- The lines of a payable's bill as BILL takes them, in line_key order.
-- known: our line key -> the BILL line id to send (lines BILL holds); a line
-- without one is added.  route_job: the job of the bill's approval route
-- (56_bill_routes.sql), which every line carries; the project coding then
-- goes into the line's description instead.
CREATE FUNCTION billops._bill_lines(p billops.payable, known jsonb, route_job text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
               'id', known->>l.line_key,
               'amount', l.amount,
               'description', CASE WHEN route_job IS NOT NULL AND l.project IS NOT NULL
                                   THEN l.description || ' [project ' || l.project || ']' ELSE l.description END,
               'classifications', jsonb_strip_nulls(jsonb_build_object(
                   'chartOfAccountId', coalesce((SELECT c.bill_id FROM billops.bill_classification c
                                                  WHERE c.field = 'gl_account' AND c.value = l.gl_account), l.gl_account),
                   'departmentId', coalesce((SELECT c.bill_id FROM billops.bill_classification c
                                              WHERE c.field = 'department' AND c.value = l.department), l.department),
                   'accountingClassId', coalesce((SELECT c.bill_id FROM billops.bill_classification c
                                                   WHERE c.field = 'class' AND c.value = l.class), l.class),
                   'locationId', coalesce((SELECT c.bill_id FROM billops.bill_classification c
                                            WHERE c.field = 'location' AND c.value = l.location), l.location),
                   'jobId', coalesce(route_job,
                                     (SELECT c.bill_id FROM billops.bill_classification c
                                       WHERE c.field = 'project' AND c.value = l.project), l.project)))))
               ORDER BY l.line_key), '[]')
      FROM billops.payable_line l WHERE l.payable_id = p.payable_id AND l.amount <> 0
$$;

CREATE FUNCTION billops._bill_body(p billops.payable, known jsonb, bill_vendor_id text, route_job text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object(
        'vendorId', bill_vendor_id,
        'dueDate', to_char((p.billing_period + interval '1 month')::date - 1
                           + billops.setting_value('bill_due_days')::int, 'YYYY-MM-DD'),
        'invoice', jsonb_build_object('invoiceNumber', billops.bill_invoice_number(p.dedupe_key),
                                      'invoiceDate', to_char((p.billing_period + interval '1 month')::date - 1, 'YYYY-MM-DD')),
        -- what the bill says about itself and its context, as made while it waited for
        -- approval (55_bill_context.sql): an approved bill's description no longer changes
        'description', coalesce((SELECT c.description FROM billops.bill_context c WHERE c.payable_id = p.payable_id),
                                billops._bill_description(p)),
        'billLineItems', billops._bill_lines(p, coalesce(known, '{}'), route_job))
$$;

-- How to update a payable's bill so that one attempt and any number of
-- retries leave BILL the same.  known: the ids of our lines that BILL holds
-- (as last seen).  PATCH only when BILL holds nothing but those lines: it
-- changes them in place and adds what is new.  Otherwise PUT, the whole
-- desired state: BILL's other lines (ours removed since, or added by an update
-- whose answer was lost) go away.  (BILL documents PUT as "items without id
-- are new, missing ones removed"; that a line id BILL no longer holds is
-- refused rather than ignored is our assumption, hence the read first.)
CREATE FUNCTION billops._bill_update_plan(p billops.payable, link billops.bill_link, OUT method text, OUT known jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH k AS (
        SELECT coalesce(jsonb_object_agg(e.key, e.value), '{}') AS known
          FROM jsonb_each_text(link.line_ids) e
         WHERE link.bill_line_ids IS NOT NULL AND link.bill_line_ids ? e.value
           AND EXISTS (SELECT FROM billops.payable_line l
                        WHERE l.payable_id = p.payable_id AND l.line_key = e.key AND l.amount <> 0))
    SELECT CASE WHEN k.known <> '{}'
                     AND NOT EXISTS (SELECT FROM jsonb_array_elements_text(link.bill_line_ids) b(id)
                                      WHERE NOT EXISTS (SELECT FROM jsonb_each_text(k.known) x WHERE x.value = b.id))
                THEN 'PATCH' ELSE 'PUT' END,
           k.known
      FROM k
$$;

-- What a create or update carries, kept on the row while it is in flight:
-- the content hash and each line (our key, the id sent, amount, description),
-- in the order sent, so that the answer's line ids are matched to our lines
-- even if the payable changed meanwhile.
CREATE FUNCTION billops._bill_sent(p billops.payable, body jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object('hash', p.content_hash, 'lines', coalesce(jsonb_agg(jsonb_build_object(
               'key', k.line_key, 'id', b->>'id', 'amount', b->'amount', 'description', b->>'description') ORDER BY k.ord), '[]'))
      FROM jsonb_array_elements(body->'billLineItems') WITH ORDINALITY AS x(b, ord)
      JOIN (SELECT l.line_key, row_number() OVER (ORDER BY l.line_key) AS ord
              FROM billops.payable_line l WHERE l.payable_id = p.payable_id AND l.amount <> 0) k ON k.ord = x.ord
$$;

-- One page of a BILL list: the largest page BILL serves, continued from a cursor.
CREATE FUNCTION billops._bill_list_query(filters text, cursor text) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('filters', filters, 'max', '100', 'page', cursor))
$$;

-- The next request for a claimed row: method, path (below the base URL),
-- query parameters and JSON body.  No method: nothing is to be sent (the
-- payable stopped being pushable; the row is finished here).  A create or
-- update records what it carries -- and an update its intent -- in this
-- transaction, which the worker commits before sending.
CREATE FUNCTION billops._outbox_request(target_outbox_id bigint,
                                        OUT method text, OUT path text, OUT query jsonb, OUT body jsonb,
                                        OUT raw_body bytea, OUT content_type text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    o    billops.bill_outbox;
    p    billops.payable;
    v    billops.vendor;
    link billops.bill_link;
    plan record;
    route text;         -- the approval route the bill carries (56_bill_routes.sql), computed once
BEGIN
    SELECT * INTO o FROM billops.bill_outbox x WHERE x.outbox_id = target_outbox_id;
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = o.payable_id;
    SELECT * INTO v FROM billops.vendor x WHERE x.vendor_id = p.vendor_id;
    SELECT * INTO link FROM billops.bill_link x WHERE x.payable_id = o.payable_id;
    query := '{}';
    -- a push for a payable voided (or rejected) since it was claimed changes nothing in
    -- BILL any more; a void queued an archive behind it for whatever BILL already holds
    IF o.action = 'bill_upsert' AND o.step IN ('vendor_create', 'bill_create', 'bill_update') AND NOT billops._bill_pushable(p) THEN
        UPDATE billops.bill_outbox x SET state = 'cancelled', finished_at = clock_timestamp(), claimed_by = NULL,
               last_error = 'payable is ' || p.status || ', not pushed'
         WHERE x.outbox_id = o.outbox_id AND x.state = 'in_flight';
        RETURN;
    END IF;
    -- a bill goes to BILL with its approval route: first the route, if BILL lacks it
    IF o.action = 'bill_upsert' AND o.step IN ('bill_create', 'bill_update') THEN
        o.step := billops._bill_route_gate(o);
        IF o.step IS NULL THEN
            RETURN;                     -- back in the queue: another row is setting the route up
        END IF;
        SELECT * INTO o FROM billops.bill_outbox x WHERE x.outbox_id = target_outbox_id;
    END IF;
    IF o.step LIKE 'route\_%' THEN
        SELECT r.method, r.path, r.query, r.body INTO method, path, query, body FROM billops._bill_route_request(o) r;
        RETURN;
    END IF;
    CASE o.step
    WHEN 'vendor_lookup' THEN
        method := 'GET'; path := '/v3/vendors';
        -- (how BILL parses a filter value holding ':' or ',' is not documented)
        query := billops._bill_list_query('name:eq:' || v.name, o.cursor);
    WHEN 'vendor_create' THEN
        method := 'POST'; path := '/v3/vendors';
        body := jsonb_build_object('name', left(v.name, 100), 'shortName', left(v.name, 40), 'accountType', 'BUSINESS');
    WHEN 'bill_lookup' THEN
        method := 'GET'; path := '/v3/bills';
        query := billops._bill_list_query('vendorId:eq:' || v.bill_vendor_id, o.cursor);
    WHEN 'bill_create' THEN
        method := 'POST'; path := '/v3/bills';
        route := billops._bill_route_of(p.payable_id);
        body := billops._bill_body(p, NULL, v.bill_vendor_id, billops._bill_route_job(route));
        UPDATE billops.bill_outbox x SET sent = billops._bill_sent(p, body) || jsonb_build_object('route_key', route)
         WHERE x.outbox_id = o.outbox_id;
        -- from now on BILL may hold this bill: every later create looks first, a void archives it
        INSERT INTO billops.bill_create_intent (payable_id) VALUES (p.payable_id) ON CONFLICT (payable_id) DO NOTHING;
    WHEN 'bill_read' THEN
        method := 'GET'; path := '/v3/bills/' || link.bill_id;
    WHEN 'bill_update' THEN
        SELECT * INTO plan FROM billops._bill_update_plan(p, link);
        method := plan.method;
        path := '/v3/bills/' || link.bill_id;
        route := billops._bill_route_of(p.payable_id);
        body := billops._bill_body(p, plan.known, coalesce(link.bill_vendor_id, v.bill_vendor_id),
                                   billops._bill_route_job(route));
        UPDATE billops.bill_outbox x SET sent = billops._bill_sent(p, body) || jsonb_build_object('route_key', route)
         WHERE x.outbox_id = o.outbox_id;
        UPDATE billops.bill_link l SET update_intent_at = clock_timestamp() WHERE l.payable_id = p.payable_id;
    WHEN 'archive' THEN
        method := 'POST'; path := '/v3/bills/' || link.bill_id || '/archive';
    WHEN 'document_lookup' THEN
        -- (listing a bill's documents is in BILL's API reference, not in its guides)
        method := 'GET'; path := '/v3/documents/bills/' || link.bill_id;
        query := billops._bill_list_query(NULL, o.cursor);
    WHEN 'document_upload' THEN
        -- the file itself is the body (not multipart)
        method := 'POST'; path := '/v3/documents/bills/' || link.bill_id;
        SELECT jsonb_build_object('name', d.file_name), d.content, d.content_type
          INTO query, raw_body, content_type
          FROM billops.payable_document d WHERE d.document_id = (o.payload->>'document_id')::bigint;
    WHEN 'document_status' THEN
        method := 'GET'; path := '/v3/documents/upload-status';
        SELECT jsonb_build_object('ids', d.bill_upload_id) INTO query
          FROM billops.payable_document d WHERE d.document_id = (o.payload->>'document_id')::bigint;
    WHEN 'approve_check' THEN
        -- (whether this list pages is not documented; it is read as one answer)
        method := 'GET'; path := '/v3/bill-approvals/pending-user-approvals';
    WHEN 'approve' THEN
        method := 'POST'; path := '/v3/bill-approvals/actions';
        body := jsonb_build_array(jsonb_build_object('billId', link.bill_id, 'action', 'APPROVE',
                                                     'comment', coalesce(o.payload->>'comment', 'approved in pg_billops')));
    ELSE
        RAISE EXCEPTION 'outbox row % is at unknown step "%"', o.outbox_id, o.step USING ERRCODE = 'BO005';
    END CASE;
END $$;

-- BILL's error body is an array of {code, message}; the first one counts.
CREATE FUNCTION billops._bill_error(body text, OUT code text, OUT message text)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j jsonb;
BEGIN
    BEGIN
        j := body::jsonb;
    EXCEPTION WHEN others THEN
        code := NULL; message := left(body, 200);
        RETURN;
    END;
    IF jsonb_typeof(j) = 'array' THEN
        j := j->0;
    END IF;
    code := j->>'code';
    message := left(j->>'message', 500);
END $$;

-- After one page of a lookup: found -> the next step; more pages -> the next
-- page; the list ended without it -> the create step.
CREATE FUNCTION billops._outbox_lookup_next(target_outbox_id bigint, found boolean, next_page text,
                                            step_if_found text, step_if_missing text) RETURNS billops._outbox_next
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
    UPDATE billops.bill_outbox x
       SET step = CASE WHEN found THEN step_if_found WHEN next_page IS NOT NULL THEN x.step ELSE step_if_missing END,
           cursor = CASE WHEN NOT found THEN next_page END
     WHERE x.outbox_id = target_outbox_id
    RETURNING 'continue'::billops._outbox_next
$$;

-- The step that gets a payable's bill into BILL once its vendor (and its
-- approval route) is known: an update of the bill BILL holds (a read first
-- when an earlier update's answer was lost), else a create straight away the
-- first time, a lookup whenever an earlier create may have reached BILL
-- (_outbox_request records the intent with the create).
CREATE FUNCTION billops._bill_create_step(target_payable_id bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN l.bill_id IS NOT NULL AND l.update_intent_at IS NOT NULL THEN 'bill_read'
                WHEN l.bill_id IS NOT NULL THEN 'bill_update'
                WHEN EXISTS (SELECT FROM billops.bill_create_intent i WHERE i.payable_id = target_payable_id)
                THEN 'bill_lookup' ELSE 'bill_create' END
      FROM (SELECT) dummy LEFT JOIN billops.bill_link l ON l.payable_id = target_payable_id
$$;

-- Record an answer; say what the worker does next:
--   continue  send _outbox_request() for this row again now (next step or page)
--   done      finished
--   retry     back to pending with backoff (attempts counted)
--   relogin   the session is gone: log in again and resend this step (not counted)
--   throttle  too many concurrent requests: resend this step shortly (not counted)
--   hourly    the hourly limit is reached: no request before the next hour
--   dead      gave up; visible in billops.bill_outbox, retry with billops.bill_outbox_retry()
-- A document BILL holds (its final id): recorded, and the row is done.
CREATE FUNCTION billops._document_uploaded(o billops.bill_outbox, bill_document_id text) RETURNS billops._outbox_next
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE billops.payable_document d SET bill_document_id = _document_uploaded.bill_document_id,
           upload_status = 'uploaded', uploaded_at = clock_timestamp()
     WHERE d.document_id = (o.payload->>'document_id')::bigint;
    UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL,
           last_error = NULL, last_error_code = NULL
     WHERE x.outbox_id = o.outbox_id;
    RETURN 'done';
END $$;

CREATE FUNCTION billops._outbox_response(target_outbox_id bigint, http_status integer, response text,
                                         transport_error text DEFAULT NULL) RETURNS billops._outbox_next
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
DECLARE
    o     billops.bill_outbox;
    p     billops.payable;
    j     jsonb;
    err   record;
    found_id text;
    hit   jsonb;
    max_attempts integer := billops.setting_value('bill_max_attempts')::int;
BEGIN
    SELECT * INTO o FROM billops.bill_outbox x WHERE x.outbox_id = target_outbox_id FOR UPDATE;
    IF o.state IS DISTINCT FROM 'in_flight' THEN
        RAISE EXCEPTION 'outbox row % is %, not in flight', target_outbox_id, coalesce(o.state, 'missing')
              USING ERRCODE = 'BO005';
    END IF;
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = o.payable_id;
    UPDATE billops.bill_outbox x SET requests = x.requests + 1, last_http_status = http_status
     WHERE x.outbox_id = o.outbox_id;

    -- failures first
    IF transport_error IS NOT NULL OR http_status IS NULL OR http_status >= 400 THEN
        err := billops._bill_error(response);
        IF err.code = 'BDC_1109' THEN
            RETURN 'relogin';
        ELSIF err.code = 'BDC_1322' THEN
            RETURN 'throttle';
        ELSIF err.code = 'BDC_1144' THEN
            UPDATE billops.bill_outbox x SET attempts = x.attempts - 1,
                   next_attempt_at = date_trunc('hour', clock_timestamp()) + interval '1 hour',
                   last_error_code = err.code, last_error = err.message
             WHERE x.outbox_id = o.outbox_id;
            PERFORM billops._outbox_set_pending(o.outbox_id);
            RETURN 'hourly';
        END IF;
        -- no answer, or BILL failed: it may have acted; the step restarts where it finds out
        IF transport_error IS NOT NULL OR http_status >= 500 OR http_status IS NULL THEN
            PERFORM billops._outbox_defer(o.outbox_id, -1, true,
                                          coalesce(err.code, 'HTTP_' || coalesce(http_status::text, 'none')),
                                          coalesce(transport_error, err.message));
            RETURN (CASE WHEN o.attempts >= max_attempts THEN 'dead' ELSE 'retry' END)::billops._outbox_next;
        END IF;
        -- BILL refused the request itself (validation, not found...): retrying the same request won't help
        UPDATE billops.bill_outbox x SET state = 'dead', finished_at = clock_timestamp(), claimed_by = NULL,
               last_error_code = coalesce(err.code, 'HTTP_' || http_status), last_error = err.message
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'dead';
    END IF;

    BEGIN
        j := CASE WHEN coalesce(btrim(response), '') = '' THEN '{}'::jsonb ELSE response::jsonb END;
    EXCEPTION WHEN invalid_text_representation THEN
        -- a 2xx whose body is not JSON: we cannot know what BILL did
        PERFORM billops._outbox_defer(o.outbox_id, -1, true, 'BAD_ANSWER',
                                      format('HTTP %s with a body that is not JSON: %s', http_status, left(response, 200)));
        RETURN (CASE WHEN o.attempts >= max_attempts THEN 'dead' ELSE 'retry' END)::billops._outbox_next;
    END;
    IF o.step LIKE 'route\_%' THEN
        RETURN billops._bill_route_response(o, j);
    END IF;
    CASE o.step
    WHEN 'vendor_lookup' THEN
        SELECT r->>'id' INTO found_id FROM jsonb_array_elements(j->'results') r
         WHERE r->>'name' = (SELECT v.name FROM billops.vendor v WHERE v.vendor_id = p.vendor_id)
           AND NOT coalesce((r->>'archived')::boolean, false)
         ORDER BY r->>'id' LIMIT 1;
        IF found_id IS NOT NULL THEN
            UPDATE billops.vendor v SET bill_vendor_id = found_id WHERE v.vendor_id = p.vendor_id;
            UPDATE billops.bill_outbox x SET bill_vendor_id = found_id WHERE x.outbox_id = o.outbox_id;
        END IF;
        RETURN billops._outbox_lookup_next(o.outbox_id, found_id IS NOT NULL, j->>'nextPage',
                                           CASE WHEN found_id IS NOT NULL THEN billops._bill_create_step(p.payable_id) END,
                                           'vendor_create');
    WHEN 'vendor_create' THEN
        UPDATE billops.vendor v SET bill_vendor_id = j->>'id' WHERE v.vendor_id = p.vendor_id;
        UPDATE billops.bill_outbox x SET step = billops._bill_create_step(p.payable_id), bill_vendor_id = j->>'id'
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'continue';
    WHEN 'bill_lookup' THEN
        SELECT r INTO hit FROM jsonb_array_elements(j->'results') r
         WHERE r->'invoice'->>'invoiceNumber' = billops.bill_invoice_number(p.dedupe_key)
           AND NOT coalesce((r->>'archived')::boolean, false)
         ORDER BY r->>'createdTime', r->>'id' LIMIT 1;
        IF hit IS NOT NULL THEN
            PERFORM billops._bill_link_record(p, hit, NULL);
            UPDATE billops.bill_outbox x SET bill_id = hit->>'id' WHERE x.outbox_id = o.outbox_id;
        ELSIF o.action = 'bill_archive' AND j->>'nextPage' IS NULL THEN
            -- the create whose answer was lost never made a bill: nothing to archive
            UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL,
                   cursor = NULL, last_error = 'nothing in BILL to archive: the lookup found no bill for this payable'
             WHERE x.outbox_id = o.outbox_id;
            RETURN 'done';
        END IF;
        RETURN billops._outbox_lookup_next(o.outbox_id, hit IS NOT NULL, j->>'nextPage',
                                           CASE o.action WHEN 'bill_archive' THEN 'archive' ELSE 'bill_update' END,
                                           'bill_create');
    WHEN 'bill_read' THEN
        IF j->>'id' IS DISTINCT FROM (SELECT l.bill_id FROM billops.bill_link l WHERE l.payable_id = p.payable_id) THEN
            RAISE EXCEPTION 'BILL answered the read of outbox row % with bill %', o.outbox_id, coalesce(j->>'id', 'none')
                  USING ERRCODE = 'BO005';
        END IF;
        PERFORM billops._bill_link_record(p, j, NULL);
        UPDATE billops.bill_outbox x SET step = 'bill_update' WHERE x.outbox_id = o.outbox_id;
        RETURN 'continue';
    WHEN 'bill_create', 'bill_update' THEN
        PERFORM billops._bill_link_record(p, j, o.sent);
        -- approved here but still waiting on pg_billops' own approval in BILL (approved before
        -- its bill reached BILL, or before approvals were pushed): give it now
        IF billops._payable_locked(p.status) AND p.status <> 'voided'
           AND billops.setting_value('bill_push_approvals') = 'true'
           AND j->>'approvalStatus' IS DISTINCT FROM 'APPROVED'
           AND billops._bill_api_user() = ANY (billops._bill_approvers_of(j)) THEN
            PERFORM billops._bill_enqueue(p.payable_id, 'approval_action', jsonb_build_object('comment', 'approved in pg_billops'));
        END IF;
        UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL,
               bill_id = j->>'id', last_error = NULL, last_error_code = NULL
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'done';
    WHEN 'archive' THEN
        UPDATE billops.bill_link l SET archived = true, synced_at = clock_timestamp() WHERE l.payable_id = p.payable_id;
        UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'done';
    WHEN 'approve_check' THEN
        -- an approval whose answer was lost: BILL refuses a second one from an approver
        -- who already decided, so approve again only while the bill still waits on us
        IF EXISTS (SELECT FROM jsonb_array_elements(CASE WHEN jsonb_typeof(j->'bills') = 'array' THEN j->'bills' ELSE '[]' END) b
                    WHERE b->>'billId' = (SELECT l.bill_id FROM billops.bill_link l WHERE l.payable_id = p.payable_id)) THEN
            UPDATE billops.bill_outbox x SET step = 'approve' WHERE x.outbox_id = o.outbox_id;
            RETURN 'continue';
        END IF;
        UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL,
               last_error = 'the bill no longer waits on the API user''s approval in BILL (approved by the lost attempt)'
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'done';
    WHEN 'approve' THEN
        UPDATE billops.bill_outbox x SET state = 'done', finished_at = clock_timestamp(), claimed_by = NULL
         WHERE x.outbox_id = o.outbox_id;
        RETURN 'done';
    WHEN 'document_lookup' THEN
        -- a listed document is processed: its id is the document's own
        SELECT r->>'id' INTO found_id FROM jsonb_array_elements(j->'results') r
         WHERE r->>'name' = (SELECT d.file_name FROM billops.payable_document d
                              WHERE d.document_id = (o.payload->>'document_id')::bigint)
         ORDER BY r->>'createdTime', r->>'id' LIMIT 1;
        IF found_id IS NULL THEN
            RETURN billops._outbox_lookup_next(o.outbox_id, false, j->>'nextPage', NULL, 'document_upload');
        END IF;
        RETURN billops._document_uploaded(o, found_id);
    WHEN 'document_upload' THEN
        -- BILL's answer carries the temporary upload id (0du…) while it processes the
        -- file, the document id (00h…) once it is done (BILL's API reference, "Upload
        -- bill document"); either way the upload status is asked, which gives the final id
        UPDATE billops.payable_document d SET bill_upload_id = j->>'id', upload_status = 'processing'
         WHERE d.document_id = (o.payload->>'document_id')::bigint;
        UPDATE billops.bill_outbox x SET step = 'document_status' WHERE x.outbox_id = o.outbox_id;
        RETURN 'continue';
    WHEN 'document_status' THEN
        -- [{documentId, uploadId, status}] (BILL's API reference documents IN_PROGRESS and
        -- UPLOADED; its collection's sample also shows IVA_PROCESSING).  A status BILL does
        -- not document is read as a failed upload: it is uploaded again, at most
        -- bill_max_attempts times, then the row is dead with BILL's answer.
        SELECT r INTO hit FROM jsonb_array_elements(CASE jsonb_typeof(j) WHEN 'array' THEN j ELSE j->'results' END) r
         WHERE r->>'uploadId' = (SELECT d.bill_upload_id FROM billops.payable_document d
                                  WHERE d.document_id = (o.payload->>'document_id')::bigint)
            OR r->>'documentId' = (SELECT d.bill_upload_id FROM billops.payable_document d
                                    WHERE d.document_id = (o.payload->>'document_id')::bigint)
         LIMIT 1;
        IF hit->>'status' = 'UPLOADED' AND coalesce(hit->>'documentId', '') <> '' THEN
            RETURN billops._document_uploaded(o, hit->>'documentId');
        ELSIF hit IS NULL OR hit->>'status' IN ('IN_PROGRESS', 'IVA_PROCESSING') THEN
            -- still processing: ask again shortly, without spending an attempt
            PERFORM billops._outbox_defer(o.outbox_id, billops.setting_value('bill_retry_base_seconds')::numeric, false,
                                          NULL, format('BILL is processing the upload (%s)', coalesce(hit->>'status', 'not listed yet')));
            RETURN 'retry';
        END IF;
        UPDATE billops.payable_document d SET upload_status = 'failed', upload_failures = d.upload_failures + 1
         WHERE d.document_id = (o.payload->>'document_id')::bigint;
        -- uploaded again (after a lookup by name, as after any upload in doubt), with backoff
        UPDATE billops.bill_outbox x SET step = 'document_upload' WHERE x.outbox_id = o.outbox_id;
        IF billops._outbox_defer(o.outbox_id, -1, true, 'UPLOAD_' || coalesce(hit->>'status', 'UNKNOWN'),
                                 format('BILL did not keep the upload: %s', left(hit::text, 200))) = 'dead' THEN
            RETURN 'dead';
        END IF;
        RETURN 'retry';
    END CASE;
END $$;

-- Remember what BILL holds for a payable: its bill id, the ids of all its
-- lines, and its state.  sent: what a create or update carried (then this
-- content is now in BILL, and its lines' ids are learnt); NULL for what a
-- lookup or read found (then only ids BILL still holds are kept).
--
-- An answer's new lines are matched to the lines sent without an id by
-- amount and order among equal amounts (and description, when the answer has
-- one), not by position: BILL's
-- placement of added lines (after the kept ones on PATCH) is not documented.
-- A line left unmatched keeps no id, so the next update is a PUT that
-- replaces it (self-healing, never a duplicate).
CREATE FUNCTION billops._bill_link_record(p billops.payable, bill jsonb, sent jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    remote jsonb := CASE WHEN jsonb_typeof(bill->'billLineItems') = 'array'
                         THEN (SELECT coalesce(jsonb_agg(l->>'id' ORDER BY ord), '[]')
                                 FROM jsonb_array_elements(bill->'billLineItems') WITH ORDINALITY y(l, ord)
                                WHERE l->>'id' IS NOT NULL) END;
    learnt jsonb;
BEGIN
    INSERT INTO billops.bill_link AS k (payable_id, invoice_number, bill_id, bill_vendor_id)
    VALUES (p.payable_id, billops.bill_invoice_number(p.dedupe_key), bill->>'id', bill->>'vendorId')
    ON CONFLICT (payable_id) DO UPDATE SET bill_id = EXCLUDED.bill_id,
                                           bill_vendor_id = coalesce(EXCLUDED.bill_vendor_id, k.bill_vendor_id);
    IF sent IS NOT NULL THEN
        WITH s AS (SELECT e->>'key' AS key, e->>'id' AS id, (e->>'amount')::numeric AS amount,
                          e->>'description' AS description, ord
                     FROM jsonb_array_elements(sent->'lines') WITH ORDINALITY x(e, ord)),
             r AS (SELECT l->>'id' AS id, (l->>'amount')::numeric AS amount, l->>'description' AS description, ord
                     FROM jsonb_array_elements(CASE WHEN jsonb_typeof(bill->'billLineItems') = 'array'
                                                    THEN bill->'billLineItems' ELSE '[]' END) WITH ORDINALITY y(l, ord)
                    WHERE l->>'id' IS NOT NULL),
             kept AS (SELECT s.key, s.id FROM s WHERE EXISTS (SELECT FROM r WHERE r.id = s.id)),
             new_s AS (SELECT s.key, s.amount, s.description,
                              row_number() OVER (PARTITION BY s.amount ORDER BY s.ord) AS rn
                         FROM s WHERE s.id IS NULL),
             new_r AS (SELECT r.id, r.amount, r.description,
                              row_number() OVER (PARTITION BY r.amount ORDER BY r.ord) AS rn
                         FROM r WHERE NOT EXISTS (SELECT FROM s WHERE s.id = r.id)),
             added AS (SELECT new_s.key, new_r.id FROM new_s JOIN new_r
                          ON new_r.amount = new_s.amount AND new_r.rn = new_s.rn
                         AND (new_r.description IS NULL OR new_r.description = new_s.description))
        SELECT coalesce(jsonb_object_agg(m.key, m.id), '{}') INTO learnt
          FROM (SELECT * FROM kept UNION ALL SELECT * FROM added) m;
    END IF;
    UPDATE billops.bill_link k SET
           line_ids = CASE WHEN sent IS NOT NULL THEN learnt
                           -- what a read or lookup found: only the ids BILL still holds stay ours
                           ELSE coalesce((SELECT jsonb_object_agg(e.key, e.value) FROM jsonb_each_text(k.line_ids) e
                                           WHERE remote ? e.value), '{}') END,
           bill_line_ids = remote,
           update_intent_at = NULL,
           pushed_content_hash = CASE WHEN sent IS NOT NULL THEN sent->>'hash' ELSE k.pushed_content_hash END,
           pushed_at = CASE WHEN sent IS NOT NULL THEN clock_timestamp() ELSE k.pushed_at END,
           archived = coalesce((bill->>'archived')::boolean, false),
           approval_status = bill->>'approvalStatus', payment_status = bill->>'paymentStatus',
           amount = (bill->>'amount')::numeric, paid_amount = (bill->>'paidAmount')::numeric,
           scheduled_amount = (bill->>'scheduledAmount')::numeric, due_amount = (bill->>'dueAmount')::numeric,
           bill_updated_time = (bill->>'updatedTime')::timestamptz, synced_at = clock_timestamp(),
           route_key = CASE WHEN sent IS NOT NULL THEN sent->>'route_key' ELSE k.route_key END,
           bill_approvers = coalesce(billops._bill_approvers_of(bill), k.bill_approvers)
     WHERE k.payable_id = p.payable_id;
    PERFORM billops._bill_approver_check(p.payable_id);
    -- webhook events about this bill that arrived before we knew it was ours (51_bill_sync.sql)
    UPDATE billops.bill_webhook_event e
       SET outcome = billops._bill_apply_remote(e.payload->'bill', 'webhook ' || coalesce(e.event_type, '?') || ', applied late')
     WHERE e.bill_id = bill->>'id' AND e.outcome = 'not ours';
END $$;

-- Put a claimed row back in the queue without an answer to record: the worker
-- yields a long lookup to other rows (the cursor is kept), BILL refused the
-- login itself (not the row's fault), or an attempt failed without an answer.
-- count_attempt: whether this counts toward bill_max_attempts (then the row
-- can become dead, like any failure, and a step that may have changed BILL
-- restarts where it finds out what it did); a negative delay means the usual
-- backoff.  A newer row of the same payable supersedes it (_outbox_set_pending).
CREATE FUNCTION billops._outbox_defer(target_outbox_id bigint, delay_seconds numeric, count_attempt boolean,
                                      error_code text DEFAULT NULL, error_message text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    give_up boolean;
BEGIN
    UPDATE billops.bill_outbox o SET
           attempts = CASE WHEN count_attempt THEN o.attempts ELSE o.attempts - 1 END,
           step = CASE WHEN count_attempt THEN billops._outbox_step_in_doubt(o.step) ELSE o.step END,
           cursor = CASE WHEN count_attempt THEN NULL ELSE o.cursor END,
           next_attempt_at = clock_timestamp() + make_interval(secs => CASE WHEN delay_seconds >= 0 THEN delay_seconds
               ELSE greatest(least(billops.setting_value('bill_retry_cap_seconds')::numeric,
                                   billops.setting_value('bill_retry_base_seconds')::numeric * 2 ^ greatest(o.attempts - 1, 0))
                             * (0.5 + random() / 2),
                             billops.setting_value('bill_lookup_grace_seconds')::numeric) END),
           last_error_code = coalesce(error_code, o.last_error_code),
           last_error = coalesce(error_message, o.last_error)
     WHERE o.outbox_id = target_outbox_id AND o.state = 'in_flight'
    RETURNING count_attempt AND o.attempts >= billops.setting_value('bill_max_attempts')::int INTO give_up;
    IF NOT FOUND THEN
        RETURN NULL;
    ELSIF give_up THEN
        UPDATE billops.bill_outbox o SET state = 'dead', finished_at = clock_timestamp(), claimed_by = NULL
         WHERE o.outbox_id = target_outbox_id;
        RETURN 'dead';
    END IF;
    RETURN billops._outbox_set_pending(target_outbox_id);
END $$;

CREATE FUNCTION billops.bill_outbox_retry(outbox_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    now_state text;
    newer bigint;
BEGIN
    PERFORM billops._bill_wake();
    UPDATE billops.bill_outbox o SET attempts = 0, next_attempt_at = clock_timestamp(), cursor = NULL,
           step = billops._outbox_step_in_doubt(o.step)
     WHERE o.outbox_id = $1 AND o.state = 'dead';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'outbox row % is not dead', $1 USING ERRCODE = 'BO005',
              HINT = 'Only dead rows are retried by hand; pending rows are retried by the worker.';
    END IF;
    now_state := billops._outbox_set_pending($1);
    -- a newer change of the same payable is queued already: it carries this one on
    SELECT o.superseded_by INTO newer FROM billops.bill_outbox o WHERE o.outbox_id = $1;
    RETURN CASE WHEN now_state = 'superseded' THEN 'superseded by outbox ' || newer ELSE now_state END;
END $$;
COMMENT ON FUNCTION billops.bill_outbox_retry(bigint) IS 'Puts a dead outbox row back in the queue (attempts reset).';

-- The worker as the outbox sees it (shared memory): pid and database (NULL when
-- none runs), and a pause it is sitting out -- BILL refused the login (60 s,
-- doubling to 15 min) or its hourly limit is reached.
CREATE FUNCTION billops._bill_worker_state(OUT pid integer, OUT database text, OUT paused_until timestamptz,
                                           OUT pause_reason text)
AS 'MODULE_PATHNAME', 'billops_bill_worker_state' LANGUAGE C VOLATILE;

-- Every row not yet done, and why it waits: a DBA or analyst sees a pause, a
-- backoff or a queue position, never something that looks like a hang.
CREATE VIEW billops.bill_outbox_status WITH (security_invoker = true) AS
SELECT o.outbox_id, o.payable_id, p.dedupe_key, o.action, o.state, o.step, o.attempts, o.requests,
       o.created_at, o.claimed_at, o.next_attempt_at, o.last_http_status, o.last_error_code, o.last_error,
       CASE
         WHEN o.state = 'dead' THEN 'gave up after ' || o.attempts || ' attempts: retry with billops.bill_outbox_retry('
                                    || o.outbox_id || ') once the cause is fixed'
         WHEN o.state = 'in_flight' THEN 'in flight: the worker is waiting on BILL (step ' || o.step || ')'
         WHEN w.pid IS NULL THEN 'no BILL worker is running (needs shared_preload_libraries and billops.bill_database)'
         WHEN w.database IS DISTINCT FROM current_database() THEN 'the BILL worker serves database ' || w.database
         WHEN w.paused_until IS NOT NULL THEN format('the worker is paused until %s: %s', w.paused_until, w.pause_reason)
         WHEN o.step = 'document_status' AND o.next_attempt_at > clock_timestamp()
              THEN format('BILL is processing the upload; asked again at %s', o.next_attempt_at)
         WHEN o.next_attempt_at > clock_timestamp() THEN format('next attempt at %s', o.next_attempt_at)
         WHEN o.action = 'document_upload'
              AND NOT EXISTS (SELECT FROM billops.bill_link l WHERE l.payable_id = o.payable_id AND l.bill_id IS NOT NULL)
              THEN 'waits for the payable''s bill in BILL (a document goes to its bill)'
         WHEN e.outbox_id IS NOT NULL THEN format('waits for outbox %s of the same payable (%s)', e.outbox_id, e.state)
         ELSE 'due: the worker takes it next'
       END AS waiting_for
  FROM billops.bill_outbox o
  JOIN billops.payable p USING (payable_id)
  CROSS JOIN billops._bill_worker_state() w
  LEFT JOIN LATERAL (SELECT y.outbox_id, y.state FROM billops.bill_outbox y
                      WHERE y.payable_id = o.payable_id AND y.outbox_id < o.outbox_id
                        AND y.state IN ('pending', 'in_flight') AND y.action <> 'document_upload'
                      ORDER BY y.outbox_id LIMIT 1) e ON o.action <> 'document_upload'
 WHERE o.state IN ('pending', 'in_flight', 'dead');
COMMENT ON VIEW billops.bill_outbox_status IS
  'Outbox rows not yet delivered (pending, in flight, dead) and what each waits for: the worker''s pause, a backoff, an earlier row.';
