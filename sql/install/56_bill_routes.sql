-- ---------------------------------------------------------------------------
-- Routes: each bill reaches BILL with the approvers pg_billops routed it to.
--
-- BILL's v3 API assigns approvers through approval policies only: there is no
-- per-bill assignment (that is v2's SetApprovers.json).  A policy's rules
-- match a bill on BILL_AMOUNT, VENDOR_ID, CHART_OF_ACCOUNT_ID, JOB_ID or
-- LOCATION_ID, and its approvers are asked in the order listed (BILL's API
-- reference, "Create a bill approval policy"; BILL Help Center, "Manage
-- custom approval workflow and policies").  Routing rules in pg_billops
-- (owners per account, a threshold, unowned cost) cannot be written as those
-- rules, so pg_billops keys policies on a classification it sets itself:
--
--   route = one ordered list of BILL approvers
--         = a job (a line classification, /v3/classifications/jobs) and a
--           policy "JOB_ID eq <that job>" naming those approvers,
--           both named "pg_billops route <12 hex digits of the list's md5>".
--
-- Every line of a bill carries its route's job.  A route's content never
-- changes (its name is its approver list), so a policy is created once and
-- only restored if someone edits it in BILL; a rule change moves a bill to
-- another route.  pg_billops finds its own jobs and policies by that name and
-- never reads, edits or deletes a policy with any other name.
--
-- The worker builds a route the first time a bill needs it, before the bill
-- is created or updated (steps route_session, route_job_lookup,
-- route_job_create, route_policy_lookup, route_policy_create,
-- route_policy_update), one row at a time per route, and every create is
-- preceded by a lookup by name, so a lost answer or a crash never makes a
-- second job or policy and a bill is never pushed before its route exists.
--
-- Not documented by BILL, so handled defensively:
--   * whether BILL evaluates policies again when a bill is updated (needed to
--     re-route an open bill): the worker compares the approvers in BILL's
--     answer with the route and reports a difference (bill_link.approver_problem,
--     the exception queue) instead of assuming;
--   * how BILL combines several matching policies (a bill of ours may match
--     one of the organization's own policies too): extra approvers in BILL are
--     accepted, a missing or reordered route approver is a problem;
--   * whether the policy list pages: it is read as a page with an optional
--     nextPage, and as a bare array;
--   * whether a policy may name an approval group (agp…): sent like a user id.
-- While bills carry routes, the project coding cannot also be BILL's job: it
-- stays on the payable line and is written into the BILL line's description.
-- ---------------------------------------------------------------------------

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('bill_approval_routes', 'true', 'boolean',
   'Bills reach BILL with their routed approvers: per approver list, a job and an approval policy on JOB_ID that the worker keeps in BILL (billops.bill_route); every line carries its route''s job.'),
  ('bill_route_recheck_minutes', '60', 'numeric',
   'A route used after this many minutes is looked up in BILL again before its next bill (its policy may have been edited or deleted there), and put back if it differs.');

-- The routes pg_billops keeps in BILL, one per distinct approver list.
CREATE TABLE billops.bill_route (
    route_key       text PRIMARY KEY,          -- md5 of the ordered approver list
    approvers       text[] NOT NULL,
    route_name      text NOT NULL UNIQUE,      -- the name of its job and of its policy in BILL
    bill_job_id     text,
    bill_policy_id  text,
    created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    completed_at    timestamptz
);
COMMENT ON TABLE billops.bill_route IS
  'Approval routes in BILL: per ordered list of BILL approvers, a job and a policy on JOB_ID, named "pg_billops route <key>" (pg_billops never touches policies it did not create).';

CREATE FUNCTION billops._bill_route_key(approvers text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(array_to_string(approvers, ','))
$$;

CREATE FUNCTION billops._bill_route_name(approvers text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'pg_billops route ' || left(billops._bill_route_key(approvers), 12)
$$;

-- BILL's id of the user pg_billops logs in as (GET /v3/login/session), once read.
CREATE FUNCTION billops._bill_api_user() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.value FROM billops.bill_sync_state s WHERE s.name = 'api_user_id'
$$;

-- The BILL approvers of a payable's open routing round, in the order BILL
-- asks them: by step seq, then role.  A step approved in SQL is not asked in
-- BILL again (it leaves the list); a step approved in BILL stays.  A BILL
-- approver named twice (two roles mapped to one person) is asked once, at
-- its first place: a policy names an approver once.  When approvals decided
-- in SQL go to BILL (bill_push_approvals), pg_billops' own user is the last
-- approver: BILL's approval then completes only when pg_billops approves,
-- which it does once every step is approved here -- the approval lock lives
-- in pg_billops.  NULL when a step's role has no BILL approver; '{}' when
-- there is nobody to ask.
CREATE FUNCTION billops._bill_approver_chain(target_payable_id bigint) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH steps AS (
        SELECT s.seq, s.approver_role, a.bill_approver_id
          FROM billops.payable p
          JOIN billops.approval_step s ON s.payable_id = p.payable_id AND s.adjustment_id IS NULL
                                      AND s.routing_round = p.routing_round
                                      AND (s.status = 'pending' OR s.status = 'approved' AND s.decided_by = 'BILL')
          LEFT JOIN billops.bill_approver a ON a.approver_role = s.approver_role::name
         WHERE p.payable_id = target_payable_id),
    firsts AS (
        SELECT bill_approver_id, min(lpad(seq::text, 6, '0') || '|' || approver_role) AS at FROM steps GROUP BY bill_approver_id),
    chain AS (
        SELECT coalesce(array_agg(bill_approver_id ORDER BY at), '{}') AS c FROM firsts),
    gate AS (
        SELECT billops._bill_api_user() AS u
         WHERE billops.setting_value('bill_push_approvals') = 'true'
           AND EXISTS (SELECT FROM billops.approval_step s JOIN billops.payable p USING (payable_id)
                        WHERE s.payable_id = target_payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round))
    SELECT CASE WHEN EXISTS (SELECT FROM steps WHERE bill_approver_id IS NULL) THEN NULL
                ELSE (SELECT chain.c || coalesce((SELECT ARRAY[g.u] FROM gate g WHERE g.u IS NOT NULL AND NOT g.u = ANY (chain.c)), '{}')
                        FROM chain) END
$$;

-- The route a payable's bill carries: NULL when routes are off, a role is
-- unmapped, or nobody is to be asked.
CREATE FUNCTION billops._bill_route_of(target_payable_id bigint) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops._bill_route_key(c)
      FROM (SELECT billops._bill_approver_chain(target_payable_id) AS c) x
     WHERE billops.setting_value('bill_approval_routes') = 'true' AND cardinality(c) > 0
$$;

-- BILL's job for a route (billops._bill_route_of), once the route exists in BILL.
CREATE FUNCTION billops._bill_route_job(target_route_key text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT r.bill_job_id FROM billops.bill_route r WHERE r.route_key = target_route_key AND r.bill_job_id IS NOT NULL
$$;

-- What must happen in BILL before a payable's bill can carry its route: the
-- step, and the route it is for.  No row: nothing (routes off, or the route
-- is complete).
CREATE FUNCTION billops._bill_route_step(target_payable_id bigint, OUT step text, OUT route_key text)
RETURNS SETOF record
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r billops.bill_route;
BEGIN
    IF billops.setting_value('bill_approval_routes') <> 'true' THEN
        RETURN;
    END IF;
    -- pg_billops' own user closes every route when SQL approvals go to BILL: learn who it is first
    IF billops.setting_value('bill_push_approvals') = 'true' AND billops._bill_api_user() IS NULL THEN
        step := 'route_session';
        RETURN NEXT;
        RETURN;
    END IF;
    route_key := billops._bill_route_of(target_payable_id);
    IF route_key IS NULL THEN
        RETURN;
    END IF;
    SELECT * INTO r FROM billops.bill_route x WHERE x.route_key = _bill_route_step.route_key;
    -- a route is looked at again in BILL when it is used after bill_route_recheck_minutes:
    -- someone may have edited or deleted its policy there
    step := CASE WHEN r.bill_job_id IS NULL THEN 'route_job_lookup'
                 WHEN r.bill_policy_id IS NULL OR r.completed_at IS NULL
                      OR r.completed_at < clock_timestamp()
                                          - make_interval(mins => billops.setting_value('bill_route_recheck_minutes')::int)
                 THEN 'route_policy_lookup' END;
    IF step IS NOT NULL THEN
        RETURN NEXT;
    END IF;
END $$;

-- Before a bill is created or updated: the step its row goes to instead when
-- its route is not complete in BILL, or NULL when the row was put back in the
-- queue because another row is building the same route right now (one row
-- per route: BILL does not refuse two jobs or policies of one name).
CREATE FUNCTION billops._bill_route_gate(o billops.bill_outbox) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    next record;
    chain text[];
BEGIN
    SELECT * INTO next FROM billops._bill_route_step(o.payable_id);
    IF next.step IS NULL THEN
        RETURN o.step;
    ELSIF next.route_key IS NOT NULL THEN
        -- the lock makes "is anyone on it" and "I am on it" one step across the worker's lanes
        PERFORM pg_advisory_xact_lock(hashtext('pg_billops route ' || next.route_key));
        IF EXISTS (SELECT FROM billops.bill_outbox y
                    WHERE y.route_key = next.route_key AND y.state = 'in_flight' AND y.outbox_id <> o.outbox_id
                      AND y.step LIKE 'route\_%') THEN
            PERFORM billops._outbox_defer(o.outbox_id, 1, false, NULL,
                                          'waits for another bill that is setting up the same approval route in BILL');
            RETURN NULL;
        END IF;
        chain := billops._bill_approver_chain(o.payable_id);
        INSERT INTO billops.bill_route (route_key, approvers, route_name)
        VALUES (next.route_key, chain, billops._bill_route_name(chain))
        ON CONFLICT (route_key) DO NOTHING;
    END IF;
    UPDATE billops.bill_outbox x SET step = next.step, route_key = next.route_key, cursor = NULL
     WHERE x.outbox_id = o.outbox_id;
    RETURN next.step;
END $$;

-- The approver ids a policy in BILL names, in order: a bare list of ids, a
-- list of {userId}, or {users: [{userId}], groups: [{id}]} (BILL's answers
-- show the last form; what it holds for groups is not documented).
CREATE FUNCTION billops._bill_policy_approvers(policy jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(array_agg(id ORDER BY ord), '{}')
      FROM (SELECT coalesce(a->>'userId', a->>'groupId', a->>'id', a #>> '{}') AS id, ord
              FROM jsonb_array_elements(CASE jsonb_typeof(policy->'approvers')
                                          WHEN 'array' THEN policy->'approvers'
                                          WHEN 'object' THEN coalesce(policy->'approvers'->'users', '[]')
                                                             || coalesce(policy->'approvers'->'groups', '[]')
                                          ELSE '[]' END) WITH ORDINALITY x(a, ord)) y
$$;

CREATE FUNCTION billops._bill_policy_body(r billops.bill_route) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object('policyName', r.route_name,
                              'rules', jsonb_build_array(jsonb_build_object('key', 'JOB_ID', 'op', 'eq',
                                                                            'values', jsonb_build_array(r.bill_job_id))),
                              'approvers', to_jsonb(r.approvers))
$$;

-- The request of a route step (_outbox_request hands these over).
CREATE FUNCTION billops._bill_route_request(o billops.bill_outbox, OUT method text, OUT path text, OUT query jsonb,
                                            OUT body jsonb)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r billops.bill_route;
BEGIN
    SELECT * INTO r FROM billops.bill_route x WHERE x.route_key = o.route_key;
    query := '{}';
    CASE o.step
    WHEN 'route_session' THEN
        method := 'GET'; path := '/v3/login/session';
    WHEN 'route_job_lookup' THEN
        method := 'GET'; path := '/v3/classifications/jobs';
        query := billops._bill_list_query('name:eq:' || r.route_name, o.cursor);
    WHEN 'route_job_create' THEN
        method := 'POST'; path := '/v3/classifications/jobs';
        body := jsonb_build_object('name', r.route_name,
                                   'description', 'Approval route kept by pg_billops (approvers '
                                                  || array_to_string(r.approvers, ', ') || '): do not rename, archive or reuse.');
    WHEN 'route_policy_lookup' THEN
        method := 'GET'; path := '/v3/bill-approvals/policies';
        query := jsonb_strip_nulls(jsonb_build_object('page', o.cursor));
    WHEN 'route_policy_create' THEN
        method := 'POST'; path := '/v3/bill-approvals/policies';
        body := billops._bill_policy_body(r);
    WHEN 'route_policy_update' THEN
        method := 'PUT'; path := '/v3/bill-approvals/policies/' || r.bill_policy_id;
        body := billops._bill_policy_body(r);
    END CASE;
END $$;

-- Record the answer to a route step; the row goes on to the next route step
-- or back to its bill (_bill_create_step, which passes the gate again).
CREATE FUNCTION billops._bill_route_response(o billops.bill_outbox, j jsonb) RETURNS billops._outbox_next
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r      billops.bill_route;
    found  text;
    hit    jsonb;
    list   jsonb := CASE jsonb_typeof(j) WHEN 'array' THEN j ELSE coalesce(j->'results', '[]') END;
BEGIN
    SELECT * INTO r FROM billops.bill_route x WHERE x.route_key = o.route_key FOR UPDATE;
    CASE o.step
    WHEN 'route_session' THEN
        IF coalesce(j->>'userId', '') = '' THEN
            RAISE EXCEPTION 'BILL''s answer to GET /v3/login/session has no userId' USING ERRCODE = 'data_exception',
                  DETAIL = left(j::text, 200);
        END IF;
        INSERT INTO billops.bill_sync_state VALUES ('api_user_id', j->>'userId')
        ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;
    WHEN 'route_job_lookup' THEN
        SELECT x->>'id' INTO found FROM jsonb_array_elements(list) x
         WHERE x->>'name' = r.route_name AND NOT coalesce((x->>'archived')::boolean, false)
         ORDER BY x->>'createdTime', x->>'id' LIMIT 1;
        IF found IS NOT NULL THEN
            UPDATE billops.bill_route x SET bill_job_id = found WHERE x.route_key = r.route_key;
        END IF;
        RETURN billops._outbox_lookup_next(o.outbox_id, found IS NOT NULL, j->>'nextPage',
                                           'route_policy_lookup', 'route_job_create');
    WHEN 'route_job_create' THEN
        UPDATE billops.bill_route x SET bill_job_id = j->>'id' WHERE x.route_key = r.route_key;
        UPDATE billops.bill_outbox x SET step = 'route_policy_lookup', cursor = NULL WHERE x.outbox_id = o.outbox_id;
        RETURN 'continue';
    WHEN 'route_policy_lookup' THEN
        SELECT x INTO hit FROM jsonb_array_elements(list) x
         WHERE x->>'policyName' = r.route_name AND coalesce(x->>'status', 'ACTIVE') = 'ACTIVE'
         ORDER BY x->>'id' LIMIT 1;
        IF hit IS NOT NULL THEN
            UPDATE billops.bill_route x SET bill_policy_id = hit->>'id', completed_at = NULL WHERE x.route_key = r.route_key;
            -- ours by its name; edited in BILL since (approvers or its job): put back as it was
            IF billops._bill_policy_approvers(hit) IS DISTINCT FROM r.approvers
               OR NOT EXISTS (SELECT FROM jsonb_array_elements(coalesce(hit->'rules', '[]')) u
                               WHERE u->>'key' = 'JOB_ID'
                                 AND EXISTS (SELECT FROM jsonb_array_elements(coalesce(u->'values', '[]')) v
                                              WHERE coalesce(v->>'value', v #>> '{}') = r.bill_job_id)) THEN
                UPDATE billops.bill_outbox x SET step = 'route_policy_update', cursor = NULL WHERE x.outbox_id = o.outbox_id;
                RETURN 'continue';
            END IF;
            UPDATE billops.bill_route x SET completed_at = clock_timestamp() WHERE x.route_key = r.route_key;
        ELSIF j->>'nextPage' IS NOT NULL THEN
            UPDATE billops.bill_outbox x SET cursor = j->>'nextPage' WHERE x.outbox_id = o.outbox_id;
            RETURN 'continue';
        ELSE
            UPDATE billops.bill_route x SET bill_policy_id = NULL, completed_at = NULL WHERE x.route_key = r.route_key;
            UPDATE billops.bill_outbox x SET step = 'route_policy_create', cursor = NULL WHERE x.outbox_id = o.outbox_id;
            RETURN 'continue';
        END IF;
    WHEN 'route_policy_create', 'route_policy_update' THEN
        UPDATE billops.bill_route x SET bill_policy_id = coalesce(j->>'id', x.bill_policy_id), completed_at = clock_timestamp()
         WHERE x.route_key = r.route_key;
    END CASE;
    -- the route is ready (or the session known): back to the bill
    UPDATE billops.bill_outbox x SET step = billops._bill_create_step(o.payable_id), cursor = NULL
     WHERE x.outbox_id = o.outbox_id;
    RETURN 'continue';
END $$;

-- Does BILL ask the route's approvers, in the route's order?  Extra
-- approvers (the organization's own policies) are accepted.  Recorded on
-- the bill's link, where the exception queue shows it.
CREATE FUNCTION billops._bill_approver_check(target_payable_id bigint) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    link     billops.bill_link;
    expected text[];
    pos      integer[];
BEGIN
    SELECT * INTO link FROM billops.bill_link l WHERE l.payable_id = target_payable_id;
    SELECT r.approvers INTO expected FROM billops.bill_route r WHERE r.route_key = link.route_key;
    IF link.route_key IS NULL OR link.bill_approvers IS NULL OR expected IS NULL THEN
        UPDATE billops.bill_link l SET approver_problem = NULL WHERE l.payable_id = target_payable_id;
        RETURN;
    END IF;
    pos := ARRAY(SELECT array_position(link.bill_approvers, e) FROM unnest(expected) WITH ORDINALITY u(e, n) ORDER BY n);
    UPDATE billops.bill_link l SET approver_problem = CASE
             WHEN array_position(pos, NULL) IS NOT NULL OR pos <> ARRAY(SELECT x FROM unnest(pos) x ORDER BY x)
             THEN format('BILL asks %s; pg_billops routed this bill to %s',
                         coalesce(nullif(array_to_string(link.bill_approvers, ', '), ''), 'nobody'),
                         array_to_string(expected, ', ')) END
     WHERE l.payable_id = target_payable_id;
END $$;

-- Each routed bill-to-be, its approval steps, the BILL approvers they map
-- to, its route, and what BILL says.
CREATE VIEW billops.bill_routing WITH (security_invoker = true) AS
SELECT p.payable_id, p.dedupe_key, p.status,
       (SELECT array_agg(s.approver_role || ':' || coalesce(a.bill_approver_id, '?') || CASE s.status WHEN 'pending' THEN ''
                                                                                      ELSE ' (' || s.status || coalesce(' in ' || nullif(s.decided_by, 'BILL'), ' in BILL') || ')' END
                         ORDER BY s.seq, s.approver_role)
          FROM billops.approval_step s LEFT JOIN billops.bill_approver a ON a.approver_role = s.approver_role::name
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL AND s.routing_round = p.routing_round
           AND s.status <> 'superseded') AS steps,
       c.chain AS bill_approvers,
       CASE WHEN cardinality(c.chain) > 0 THEN billops._bill_route_name(c.chain) END AS route_name,
       r.bill_job_id, r.bill_policy_id,
       l.bill_id, l.approval_status, l.bill_approvers AS approvers_in_bill, l.approver_problem
  FROM billops.payable p
  CROSS JOIN LATERAL (SELECT billops._bill_approver_chain(p.payable_id) AS chain) c
  LEFT JOIN billops.bill_route r ON r.route_key = billops._bill_route_key(c.chain)
  LEFT JOIN billops.bill_link l ON l.payable_id = p.payable_id
 WHERE p.treatment = 'invoice_like' AND p.status IN ('routed', 'approved', 'scheduled', 'paid');
COMMENT ON VIEW billops.bill_routing IS
  'Each bill''s approval steps, the BILL approvers they map to (in BILL''s order; NULL while a role is unmapped), its route in BILL and the approvers BILL shows.';

-- The approvers a bill in BILL asks, in its order (approverOrder); those BILL
-- took off the bill (REROUTED) are not asked.  NULL when the answer has no list.
CREATE FUNCTION billops._bill_approvers_of(bill jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY(SELECT a->>'userId' FROM jsonb_array_elements(bill->'approvers') WITH ORDINALITY x(a, ord)
                  WHERE coalesce(a->>'status', '') <> 'REROUTED'
                  ORDER BY (a->>'approverOrder')::int NULLS LAST, ord)
     WHERE jsonb_typeof(bill->'approvers') = 'array'
$$;

-- A step approved in SQL leaves its BILL approver's route: an open bill is
-- re-routed (and, approved here, goes to pg_billops' own final approval).
-- A change of the directory re-routes open bills too.  Approved bills keep
-- their route: the lock lives here.
CREATE FUNCTION billops._bill_reroute_open(target_payable_ids bigint[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    id bigint;
BEGIN
    FOR id IN SELECT p.payable_id FROM billops.payable p JOIN billops.bill_link l USING (payable_id)
               WHERE p.payable_id = ANY (target_payable_ids) AND p.status = 'routed' AND p.treatment = 'invoice_like'
                 AND l.bill_id IS NOT NULL AND NOT l.archived
                 AND billops._bill_route_of(p.payable_id) IS DISTINCT FROM l.route_key
               ORDER BY p.payable_id
    LOOP
        PERFORM billops._bill_enqueue(id, 'bill_upsert');
    END LOOP;
END $$;

CREATE FUNCTION billops._bill_step_decided() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._bill_reroute_open(ARRAY(SELECT DISTINCT n.payable_id FROM new_steps n
                                              WHERE n.status = 'approved' AND n.decided_by <> 'BILL' AND n.adjustment_id IS NULL));
    RETURN NULL;
END $$;
CREATE TRIGGER bill_step_decided AFTER UPDATE ON billops.approval_step
    REFERENCING NEW TABLE AS new_steps FOR EACH STATEMENT EXECUTE FUNCTION billops._bill_step_decided();

CREATE FUNCTION billops._bill_directory_rerouted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._bill_reroute_open(ARRAY(SELECT p.payable_id FROM billops.payable p
                                              WHERE p.status = 'routed' AND p.treatment = 'invoice_like'));
    RETURN NULL;
END $$;
CREATE TRIGGER bill_directory_rerouted AFTER INSERT OR UPDATE OR DELETE ON billops.bill_approver
    FOR EACH STATEMENT EXECUTE FUNCTION billops._bill_directory_rerouted();
