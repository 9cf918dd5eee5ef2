-- ---------------------------------------------------------------------------
-- BILL → pg_billops: approval and payment state coming back, by webhook and
-- by polling bills on updatedTime (BILL says webhooks must not be the only
-- source of truth).  Both paths end in _bill_apply_remote().
-- ---------------------------------------------------------------------------

ALTER TABLE billops.bill_link ADD COLUMN conflict text;
COMMENT ON COLUMN billops.bill_link.conflict IS
  'A change made in BILL that pg_billops did not accept (e.g. a locked payable edited in BILL); shown in the exception queue.';

ALTER TABLE billops.bill_link ADD COLUMN payment_problem text;
COMMENT ON COLUMN billops.bill_link.payment_problem IS
  'A payment of the bill that failed, was voided or is held in BILL; shown in the exception queue until a later payment goes through.';

-- BILL's payments of our bills, as payment.updated / payment.failed events report them.
CREATE TABLE billops.bill_payment (
    payment_id    text PRIMARY KEY,
    bill_ids      text[] NOT NULL,
    status        text,
    amount        numeric,
    process_date  date,
    updated_time  timestamptz,
    last_event    text,
    recorded_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE billops.bill_payment IS 'Payments of our bills in BILL, as its payment events last reported them.';

-- The payment statuses after which the money did not (or will not) reach the
-- vendor: BILL's "single status" values for payments (CANCELED, VOIDED,
-- FUNDING_FAILED_*, DISBURSEMENT_FAILED_*, FUNDS_ESCHEATED) and the
-- CANCELLED of its /v3/payments answers.  On hold is not a failure, but is shown.
CREATE FUNCTION billops._bill_payment_failed(status text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT upper(status) IN ('CANCELED', 'CANCELLED', 'VOIDED', 'FUNDS_ESCHEATED', 'FAILED')
        OR upper(status) LIKE 'FUNDING\_FAILED%' OR upper(status) LIKE 'DISBURSEMENT\_FAILED%'
$$;

CREATE TABLE billops.bill_webhook_event (
    event_id        text PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    event_type      text,
    subscription_id text,
    bill_id         text,
    outcome         text NOT NULL,
    payload         jsonb NOT NULL
);
CREATE INDEX ON billops.bill_webhook_event (received_at);
COMMENT ON TABLE billops.bill_webhook_event IS 'BILL webhook notifications accepted (deduplicated by eventId) and what they did.';

CREATE TABLE billops.bill_sync_state (
    name  text PRIMARY KEY,
    value text NOT NULL
);
COMMENT ON TABLE billops.bill_sync_state IS 'Watermarks of the BILL poller (updatedTime of the newest bill seen).';

CREATE FUNCTION billops._bill_webhook_verify(body text, signature text) RETURNS boolean
AS 'MODULE_PATHNAME', 'billops_bill_webhook_verify' LANGUAGE C STRICT VOLATILE;

-- Apply what BILL says about one bill.  Returns what happened.
CREATE FUNCTION billops._bill_apply_remote(bill jsonb, via text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
DECLARE
    link    billops.bill_link;
    p       billops.payable;
    outcome text := 'recorded';
    remote_amount numeric := (bill->>'amount')::numeric;
    denial  text;
BEGIN
    SELECT * INTO link FROM billops.bill_link l WHERE l.bill_id = bill->>'id' FOR UPDATE;
    IF NOT FOUND THEN
        -- (or not ours yet: a webhook can overtake the worker recording the create;
        -- _bill_link_record applies such events once the bill is linked)
        RETURN 'not ours';
    END IF;
    -- BILL does not promise to deliver in order, and redelivers: older news never overwrites newer
    IF (bill->>'updatedTime')::timestamptz < link.bill_updated_time THEN
        RETURN 'stale';
    END IF;
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = link.payable_id FOR UPDATE;
    UPDATE billops.bill_link l SET
           archived = coalesce((bill->>'archived')::boolean, l.archived),
           approval_status = coalesce(bill->>'approvalStatus', l.approval_status),
           payment_status = coalesce(bill->>'paymentStatus', l.payment_status),
           amount = coalesce(remote_amount, l.amount),
           paid_amount = coalesce((bill->>'paidAmount')::numeric, l.paid_amount),
           scheduled_amount = coalesce((bill->>'scheduledAmount')::numeric, l.scheduled_amount),
           due_amount = coalesce((bill->>'dueAmount')::numeric, l.due_amount),
           bill_updated_time = coalesce((bill->>'updatedTime')::timestamptz, l.bill_updated_time),
           bill_approvers = coalesce(billops._bill_approvers_of(bill), l.bill_approvers),
           synced_at = clock_timestamp()
     WHERE l.payable_id = link.payable_id;
    PERFORM billops._bill_approver_check(link.payable_id);

    -- each approver's decision in BILL (56_bill_routes.sql): the steps of the roles mapped to
    -- an approver BILL lists as APPROVED are approved here, as BILL's; with the last one the
    -- payable is approved (and, with bill_push_approvals, pg_billops gives BILL the final approval)
    IF p.status = 'routed' AND jsonb_typeof(bill->'approvers') = 'array' THEN
        UPDATE billops.approval_step s SET status = 'approved', decided_by = 'BILL', decided_at = clock_timestamp(),
               comment = format('approved in BILL by %s (%s)', coalesce(a.full_name || ' (' || a.user_id || ')', a.user_id), via)
          FROM (SELECT x->>'userId' AS user_id, d.approver_role, u.full_name
                  FROM jsonb_array_elements(bill->'approvers') x
                  JOIN billops.bill_approver d ON d.bill_approver_id = x->>'userId'
                  LEFT JOIN billops.bill_user u ON u.bill_user_id = x->>'userId'
                 WHERE x->>'status' = 'APPROVED') a
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round
           AND s.status = 'pending' AND s.approver_role::name = a.approver_role;
        IF FOUND AND NOT EXISTS (SELECT FROM billops.approval_step s
                                  WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL
                                    AND s.routing_round = p.routing_round AND s.status = 'pending') THEN
            UPDATE billops.payable x SET status = 'approved' WHERE x.payable_id = p.payable_id;
            p.status := 'approved';
            outcome := 'approved in BILL';
        END IF;
    END IF;

    -- approval decided in BILL
    IF bill->>'approvalStatus' = 'APPROVED' AND p.status = 'routed' THEN
        UPDATE billops.approval_step s SET status = 'approved', decided_by = 'BILL', decided_at = clock_timestamp(),
               comment = 'approved in BILL (' || via || ')'
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round
           AND s.status = 'pending';
        UPDATE billops.payable x SET status = 'approved' WHERE x.payable_id = p.payable_id;
        p.status := 'approved';
        outcome := 'approved in BILL';
    ELSIF bill->>'approvalStatus' = 'DENIED' AND p.status = 'routed' THEN
        -- who denied: the approver BILL lists as DENIED, named from BILL's users and the
        -- approver directory; with the comment when the answer carries one (BILL's bill
        -- answer documents approvers[{userId, status, approverOrder, statusChangedTime}] only)
        SELECT 'denied in BILL by ' || coalesce(u.full_name || ' (' || (a->>'userId') || ')', a->>'userId')
               || coalesce(', approver for ' || (SELECT string_agg(d.approver_role, ', ' ORDER BY d.approver_role)
                                                   FROM billops.bill_approver d WHERE d.bill_approver_id = a->>'userId'), '')
               || coalesce(': ' || nullif(coalesce(a->>'comment', bill->>'approvalComment'), ''), '')
          INTO denial
          FROM jsonb_array_elements(CASE jsonb_typeof(bill->'approvers') WHEN 'array' THEN bill->'approvers' ELSE '[]' END) a
          LEFT JOIN billops.bill_user u ON u.bill_user_id = a->>'userId'
         WHERE a->>'status' = 'DENIED'
         ORDER BY a->>'statusChangedTime' DESC NULLS LAST LIMIT 1;
        denial := coalesce(denial, 'denied in BILL');
        UPDATE billops.approval_step s SET status = 'rejected', decided_by = 'BILL', decided_at = clock_timestamp(),
               comment = denial || ' (' || via || ')'
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round
           AND s.status = 'pending';
        UPDATE billops.payable x SET status = 'exception',
               exceptions = x.exceptions || jsonb_build_array(jsonb_build_object('code', 'rejected',
                   'message', denial, 'hint', 'Fix the cause, then billops.reopen_payable(payable_id, note).'))
         WHERE x.payable_id = p.payable_id;
        RETURN 'denied in BILL';
    END IF;

    -- payment, once approved here
    IF bill->>'paymentStatus' IN ('SCHEDULED', 'PAID') AND p.status = 'approved' THEN
        UPDATE billops.payable x SET status = 'scheduled' WHERE x.payable_id = p.payable_id;
        p.status := 'scheduled';
        outcome := 'scheduled';
    END IF;
    IF bill->>'paymentStatus' = 'PAID' AND p.status = 'scheduled' THEN
        UPDATE billops.payable x SET status = 'paid' WHERE x.payable_id = p.payable_id;
        outcome := 'paid';
    END IF;

    -- what BILL may not do to a payable we locked: flagged, never accepted
    UPDATE billops.bill_link l SET conflict = CASE
             WHEN billops._payable_locked(p.status) AND remote_amount IS NOT NULL AND remote_amount <> p.amount
                  AND p.status <> 'voided'
               THEN format('BILL shows %s but the approved payable is %s: changed in BILL after approval', remote_amount, p.amount)
             WHEN bill->>'paymentStatus' IN ('SCHEDULED', 'PAID') AND NOT billops._payable_locked(p.status)
               THEN format('payment %s in BILL while the payable is %s here', lower(bill->>'paymentStatus'), p.status)
             WHEN coalesce((bill->>'archived')::boolean, false) AND p.status <> 'voided'
               THEN 'archived in BILL but not voided here'
             ELSE NULL END
     WHERE l.payable_id = p.payable_id
     RETURNING l.conflict INTO link.conflict;
    IF link.conflict IS NOT NULL THEN
        outcome := 'conflict: ' || link.conflict;
    END IF;
    RETURN outcome;
END $$;

-- Apply what BILL says about one payment (payment.updated, payment.failed).
-- A failed, voided or cancelled payment reopens the payable's payment state
-- (scheduled or paid -> approved: the approval stands, the money did not move)
-- and shows in the exception queue; a later payment on its way clears it.
-- Scheduling and paying are left to the bill's paymentStatus, as before.
-- The payload of payment.failed is not documented beyond "identifying
-- information and error messages": it is read like payment.updated, and the
-- event itself means failure.
CREATE FUNCTION billops._bill_apply_payment(payment jsonb, event_type text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
DECLARE
    pay_id   text := payment->>'id';
    status   text := upper(coalesce(payment->>'status', payment->>'singleStatus'));
    bills    text[];
    failed   boolean;
    link     billops.bill_link;
    p        billops.payable;
    outcome  text := 'recorded';
    problem  text;
BEGIN
    bills := ARRAY(SELECT jsonb_array_elements_text(CASE jsonb_typeof(payment->'billIds') WHEN 'array' THEN payment->'billIds'
                                                         ELSE '[]' END)
                   UNION SELECT payment->>'billId' WHERE payment->>'billId' IS NOT NULL);
    IF pay_id IS NULL OR cardinality(bills) = 0 THEN
        RETURN 'ignored: no payment id or bill ids';
    END IF;
    IF EXISTS (SELECT FROM billops.bill_payment x WHERE x.payment_id = pay_id
                AND x.updated_time > (payment->>'updatedTime')::timestamptz) THEN
        RETURN 'stale';
    END IF;
    INSERT INTO billops.bill_payment AS x (payment_id, bill_ids, status, amount, process_date, updated_time, last_event)
    VALUES (pay_id, bills, status, (payment->>'amount')::numeric, (payment->>'processDate')::date,
            (payment->>'updatedTime')::timestamptz, event_type)
    ON CONFLICT (payment_id) DO UPDATE SET bill_ids = EXCLUDED.bill_ids, status = coalesce(EXCLUDED.status, x.status),
           amount = coalesce(EXCLUDED.amount, x.amount), process_date = coalesce(EXCLUDED.process_date, x.process_date),
           updated_time = coalesce(EXCLUDED.updated_time, x.updated_time), last_event = EXCLUDED.last_event,
           recorded_at = clock_timestamp();
    failed := event_type = 'payment.failed' OR billops._bill_payment_failed(status);
    FOR link IN SELECT * FROM billops.bill_link l WHERE l.bill_id = ANY (bills) ORDER BY l.payable_id FOR UPDATE LOOP
        SELECT * INTO p FROM billops.payable x WHERE x.payable_id = link.payable_id FOR UPDATE;
        IF failed THEN
            problem := format('payment %s %s in BILL%s', pay_id, lower(coalesce(status, 'failed')),
                              CASE WHEN payment ? 'errorMessage' OR payment ? 'message'
                                   THEN ': ' || left(coalesce(payment->>'errorMessage', payment->>'message'), 200) ELSE '' END);
            IF p.status IN ('scheduled', 'paid') THEN
                UPDATE billops.payable x SET status = 'approved' WHERE x.payable_id = p.payable_id;
            END IF;
            outcome := 'payment failed';
        ELSIF status = 'DISBURSEMENT_ON_HOLD' THEN
            problem := format('payment %s on hold in BILL', pay_id);
            outcome := 'payment on hold';
        ELSE
            -- a payment on its way: the bill's own paymentStatus (bill.updated, the poll)
            -- moves the payable to scheduled and paid; here only a problem is cleared
            problem := NULL;
        END IF;
        UPDATE billops.bill_link l SET payment_problem = problem, synced_at = clock_timestamp()
         WHERE l.payable_id = link.payable_id;
    END LOOP;
    RETURN outcome;
END $$;

-- The webhook endpoint, for whatever relays BILL's POST into the database
-- (it must pass the body byte for byte, and the x-bill-sha-signature header).
CREATE FUNCTION billops.receive_bill_webhook(body text, signature text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j       jsonb;
    applied text;
BEGIN
    -- (a missing body or signature is a signature that does not match: the relay answers 401)
    IF signature IS NULL OR body IS NULL OR NOT billops._bill_webhook_verify(body, signature) THEN
        RAISE EXCEPTION 'BILL webhook signature does not match' USING ERRCODE = 'invalid_authorization_specification',
              HINT = 'The body must be passed unchanged with its x-bill-sha-signature header; check webhook_security_key.';
    END IF;
    j := body::jsonb;
    IF j->'metadata'->>'eventId' IS NULL THEN
        RAISE EXCEPTION 'BILL webhook without metadata.eventId' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- claim the eventId first: a second delivery of the same event, even a concurrent one,
    -- waits for this transaction and then finds it taken
    INSERT INTO billops.bill_webhook_event (event_id, event_type, subscription_id, bill_id, outcome, payload)
    VALUES (j->'metadata'->>'eventId', j->'metadata'->>'eventType', j->'metadata'->>'subscriptionId',
            coalesce(j->'bill'->>'id', j->'payment'->'billIds'->>0), 'received', j)
    ON CONFLICT (event_id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;
    applied := CASE WHEN j ? 'bill' THEN billops._bill_apply_remote(j->'bill', 'webhook ' || (j->'metadata'->>'eventType'))
                    WHEN j ? 'payment' THEN billops._bill_apply_payment(j->'payment', j->'metadata'->>'eventType')
                    ELSE 'ignored' END;
    UPDATE billops.bill_webhook_event e SET outcome = applied
     WHERE e.event_id = j->'metadata'->>'eventId';
    RETURN applied;
END $$;
COMMENT ON FUNCTION billops.receive_bill_webhook(text, text) IS
  'Accepts a BILL webhook: verifies x-bill-sha-signature, deduplicates by eventId, applies approval/payment state.';

-- The poller: the next page of bills changed since the watermark, and what
-- to do with the answer.
CREATE FUNCTION billops._bill_poll_request(OUT method text, OUT path text, OUT query jsonb)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'GET', '/v3/bills',
           jsonb_build_object('max', '100', 'sort', 'updatedTime:asc',
                              'filters', 'updatedTime:gt:' || coalesce((SELECT s.value FROM billops.bill_sync_state s
                                                                        WHERE s.name = 'poll_updated_time'),
                                                                       '1970-01-01T00:00:00.000+0000'))
           || coalesce((SELECT jsonb_build_object('page', s.value) FROM billops.bill_sync_state s
                         WHERE s.name = 'poll_page'), '{}')
$$;

CREATE FUNCTION billops._bill_poll_response(response text) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j    jsonb := response::jsonb;
    b    jsonb;
    n    integer := 0;
BEGIN
    FOR b IN SELECT r FROM jsonb_array_elements(j->'results') r LOOP
        PERFORM billops._bill_apply_remote(b, 'poll');
        n := n + 1;
    END LOOP;
    IF j->>'nextPage' IS NOT NULL THEN
        INSERT INTO billops.bill_sync_state VALUES ('poll_page', j->>'nextPage')
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;
    ELSE
        DELETE FROM billops.bill_sync_state WHERE name = 'poll_page';
        -- the watermark moves only when the whole list was read
        INSERT INTO billops.bill_sync_state
        SELECT 'poll_updated_time', max(r->>'updatedTime') FROM jsonb_array_elements(j->'results') r
        HAVING max(r->>'updatedTime') IS NOT NULL
        ON CONFLICT (name) DO UPDATE SET value = greatest(billops.bill_sync_state.value, EXCLUDED.value);
    END IF;
    RETURN n;
END $$;

-- For the worker's exchange driver: apply an answer; true while pages remain.
CREATE FUNCTION billops._bill_poll_more(response text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._bill_poll_response(response);
    RETURN EXISTS (SELECT FROM billops.bill_sync_state s WHERE s.name = 'poll_page');
END $$;

-- What is stuck and why: payables and adjustments in the exception queue, one row per reason.
CREATE VIEW billops.exception_queue WITH (security_invoker = true) AS
SELECT 'payable' AS subject, p.payable_id, NULL::bigint AS adjustment_id, p.dedupe_key, p.billing_period,
       p.source_entity, v.name AS vendor, p.amount, p.currency,
       e->>'code' AS reason_code, e->>'field' AS field, e->>'message' AS reason, e->>'hint' AS next_step,
       p.updated_at AS since
  FROM billops.payable p
  LEFT JOIN billops.vendor v USING (vendor_id)
  CROSS JOIN LATERAL jsonb_array_elements(p.exceptions) e
 WHERE p.status = 'exception'
UNION ALL
SELECT 'adjustment', a.payable_id, a.adjustment_id, p.dedupe_key, p.billing_period, p.source_entity, v.name,
       a.delta, p.currency, e->>'code', e->>'field', e->>'message', e->>'hint', a.updated_at
  FROM billops.payable_adjustment a
  JOIN billops.payable p USING (payable_id)
  LEFT JOIN billops.vendor v ON v.vendor_id = p.vendor_id
  CROSS JOIN LATERAL jsonb_array_elements(a.exceptions) e
 WHERE a.status = 'exception'
UNION ALL
SELECT 'bill', l.payable_id, NULL, p.dedupe_key, p.billing_period, p.source_entity, v.name, p.amount, p.currency,
       'bill_conflict', NULL, l.conflict, 'Undo the change in BILL, or void the payable and let AWS data create it again.',
       l.synced_at
  FROM billops.bill_link l
  JOIN billops.payable p USING (payable_id)
  LEFT JOIN billops.vendor v ON v.vendor_id = p.vendor_id
 WHERE l.conflict IS NOT NULL
UNION ALL
SELECT 'bill', l.payable_id, NULL, p.dedupe_key, p.billing_period, p.source_entity, v.name, p.amount, p.currency,
       'bill_approvers', 'bill_approver', l.approver_problem,
       'Check the bill''s approvers in BILL and the organization''s own approval policies; see billops.bill_routing.',
       l.synced_at
  FROM billops.bill_link l
  JOIN billops.payable p USING (payable_id)
  LEFT JOIN billops.vendor v ON v.vendor_id = p.vendor_id
 WHERE l.approver_problem IS NOT NULL AND p.status IN ('routed', 'approved')
UNION ALL
SELECT 'payment', l.payable_id, NULL, p.dedupe_key, p.billing_period, p.source_entity, v.name, p.amount, p.currency,
       'payment_failed', NULL, l.payment_problem,
       'Fix the cause in BILL (funding, the vendor''s bank details) and pay the bill again; the payable is approved, not paid, meanwhile.',
       l.synced_at
  FROM billops.bill_link l
  JOIN billops.payable p USING (payable_id)
  LEFT JOIN billops.vendor v ON v.vendor_id = p.vendor_id
 WHERE l.payment_problem IS NOT NULL;
COMMENT ON VIEW billops.exception_queue IS
  'Payables and adjustments that cannot proceed, and BILL changes not accepted, one row per reason, with the next step.';

