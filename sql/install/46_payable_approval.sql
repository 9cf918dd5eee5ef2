-- ---------------------------------------------------------------------------
-- Approval routing and decisions.
--   seq 1  finance_review      cost with no known owner: finance looks first
--   seq 2  owner (one per owning role) and/or finops_owner (for unowned cost)
--   seq 3  finance_leadership  |amount| (or |delta|) >= approval_threshold
-- All steps of a seq must approve before the next seq is asked.  Approving
-- is billops.approve(), which checks the caller is the assigned approver.
-- ---------------------------------------------------------------------------

-- The steps a payable (or its adjustment) needs, as [{seq, step_name, approver_role, reason}].
CREATE FUNCTION billops._plan_steps(p billops.payable, breakdown jsonb, amount numeric, vendor integer) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH acct AS (
        SELECT b.key AS acct, abs(b.value::numeric) AS amt,
               billops.owner_role_of(p.payer_account_id, nullif(b.key, ''), p.billing_period, p.category, vendor) AS role
          FROM jsonb_each_text(breakdown) b),
    tot AS (SELECT coalesce(sum(amt), 0) AS total, coalesce(sum(amt) FILTER (WHERE role IS NULL), 0) AS unowned FROM acct),
    owners AS (
        SELECT a.role, sum(a.amt) AS amt, string_agg(a.acct, ', ' ORDER BY a.amt DESC, a.acct) AS accts
          FROM acct a WHERE a.role IS NOT NULL GROUP BY a.role),
    chosen AS (
        SELECT o.* FROM owners o, tot
         WHERE tot.total = 0 OR o.amt / tot.total >= billops.setting_value('owner_min_share')::numeric),
    needs_review AS (
        SELECT NOT EXISTS (SELECT FROM chosen)
               OR (tot.total > 0 AND tot.unowned / tot.total >= billops.setting_value('owner_min_share')::numeric) AS yes,
               tot.* FROM tot),
    steps AS (
        SELECT 1 AS seq, 'finance_review' AS step_name, billops.setting_value('finance_review_role') AS approver_role,
               CASE WHEN n.total = 0 THEN 'no cost to attribute to an owner'
                    ELSE format('%s%% of the cost has no known owner', round(100 * n.unowned / n.total, 1)) END AS reason
          FROM needs_review n WHERE n.yes
        UNION ALL
        SELECT 2, 'finops_owner', billops.setting_value('finops_owner_role'), 'allocation of cost with no known owner'
          FROM needs_review n WHERE n.yes
        UNION ALL
        SELECT 2, 'owner', c.role,
               format('owns %s%% (accounts %s)', CASE WHEN t.total = 0 THEN 100 ELSE round(100 * c.amt / t.total, 1) END, c.accts)
          FROM chosen c, tot t
        UNION ALL
        SELECT 3, 'finance_leadership', billops.setting_value('finance_leadership_role'),
               format('amount %s is at or above the approval threshold %s', amount, billops.setting_value('approval_threshold'))
         WHERE abs(amount) >= billops.setting_value('approval_threshold')::numeric)
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('seq', s.seq, 'step_name', s.step_name,
                                                          'approver_role', s.approver_role, 'reason', s.reason)), '[]')
      FROM steps s
$$;

-- The plan for a payable (adjustment NULL) or its adjustment.
CREATE FUNCTION billops._plan_for(target_payable_id bigint, target_adjustment_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p billops.payable;
    a billops.payable_adjustment;
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = target_payable_id;
    IF target_adjustment_id IS NULL THEN
        RETURN billops._plan_steps(p, p.account_breakdown, p.amount, p.vendor_id);
    END IF;
    SELECT * INTO a FROM billops.payable_adjustment x WHERE x.adjustment_id = target_adjustment_id;
    RETURN billops._plan_steps(p, a.new_state->'account_breakdown', a.delta, (a.new_state->>'vendor_id')::integer);
END $$;

-- What prevents a plan from being routed: an approver role that does not
-- exist or cannot approve.  '[]' when it can be routed.
-- Why a plan cannot be routed: a role that does not exist or cannot approve,
-- and, for a payable that becomes a bill in BILL (treatment invoice_like) when
-- BILL approvers are required (setting bill_approvers_required), a role without a BILL approver who may
-- approve (54_bill_approvers.sql).  All are approver_missing: routing them is
-- retried after each build, and the rest of the rules treat them alike.
CREATE FUNCTION billops._routing_problems(plan jsonb, treatment text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT (SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object('code', 'approver_missing', 'message',
               CASE WHEN r.oid IS NULL THEN format('approver role "%s" (%s step) does not exist', s->>'approver_role', s->>'step_name')
                    ELSE format('role "%s" (%s step) cannot approve: it is not a member of billops_approver',
                                s->>'approver_role', s->>'step_name') END,
               'hint', 'Create the role and GRANT billops_approver TO it, or change billops.routing_rule / billops.setting.')), '[]')
      FROM jsonb_array_elements(plan) s
      LEFT JOIN pg_roles r ON r.rolname = s->>'approver_role'
     WHERE r.oid IS NULL OR NOT billops._is_member(r.rolname, 'billops_approver'))
    || CASE WHEN treatment = 'invoice_like' AND billops._bill_approvers_required()
            THEN billops._bill_approver_problems(plan) ELSE '[]' END
$$;

-- Route a payable (adjustment NULL) or its adjustment.  Returns the problems
-- that prevent routing ('[]' when routed).
CREATE FUNCTION billops._route(target_payable_id bigint, target_adjustment_id bigint) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    plan     jsonb;
    problems jsonb;
    rnd      integer;
BEGIN
    PERFORM FROM billops.payable x WHERE x.payable_id = target_payable_id FOR UPDATE;
    plan := billops._plan_for(target_payable_id, target_adjustment_id);
    problems := billops._routing_problems(plan, (SELECT x.treatment FROM billops.payable x WHERE x.payable_id = target_payable_id));
    IF jsonb_array_length(problems) > 0 THEN
        RETURN problems;
    END IF;
    IF target_adjustment_id IS NULL THEN
        SELECT x.routing_round + 1 INTO rnd FROM billops.payable x WHERE x.payable_id = target_payable_id;
    ELSE
        SELECT x.routing_round + 1 INTO rnd FROM billops.payable_adjustment x WHERE x.adjustment_id = target_adjustment_id;
    END IF;

    INSERT INTO billops.approval_step (payable_id, adjustment_id, routing_round, seq, step_name, approver_role, reason)
    SELECT target_payable_id, target_adjustment_id, rnd, (s->>'seq')::int, s->>'step_name', s->>'approver_role', s->>'reason'
      FROM jsonb_array_elements(plan) s ORDER BY (s->>'seq')::int, s->>'approver_role';
    IF target_adjustment_id IS NULL THEN
        UPDATE billops.payable x SET routing_round = rnd, status = 'routed' WHERE x.payable_id = target_payable_id;
    ELSE
        UPDATE billops.payable_adjustment x SET routing_round = rnd, status = 'routed'
         WHERE x.adjustment_id = target_adjustment_id;
    END IF;
    RETURN '[]';
END $$;

-- After a build: route what is ready (final data, or preliminary if
-- configured), and retry what only failed to route because of an approver
-- role -- quietly: the same problem again changes nothing.
CREATE FUNCTION billops._auto_route(period date, payer text)
RETURNS TABLE (payable_id bigint, dedupe_key text, action text, status text, amount numeric)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    c        record;
    problems jsonb;
BEGIN
    IF billops.setting_value('auto_route') <> 'true' THEN
        RETURN;
    END IF;
    FOR c IN SELECT x.payable_id, a.adjustment_id, coalesce(a.status, x.status) AS subject_status,
                    coalesce(a.exceptions, x.exceptions) AS exceptions
               FROM billops.payable x
               LEFT JOIN billops.payable_adjustment a ON a.payable_id = x.payable_id AND a.status IN ('draft', 'exception')
              WHERE x.payer_account_id = payer AND x.billing_period = period
                AND (x.status IN ('draft', 'exception') OR a.adjustment_id IS NOT NULL)
                AND (coalesce(a.invoice_state, x.invoice_state) = 'final' OR billops.setting_value('route_preliminary') = 'true')
              ORDER BY x.payable_id
    LOOP
        IF c.subject_status = 'exception' THEN
            -- only routing problems are retried here; data problems wait for a rebuild
            CONTINUE WHEN EXISTS (SELECT FROM jsonb_array_elements(c.exceptions) e WHERE e->>'code' <> 'approver_missing');
            problems := billops._routing_problems(billops._plan_for(c.payable_id, c.adjustment_id),
                                                  (SELECT x.treatment FROM billops.payable x WHERE x.payable_id = c.payable_id));
            CONTINUE WHEN problems = c.exceptions;
            IF jsonb_array_length(problems) = 0 THEN
                IF c.adjustment_id IS NULL THEN
                    UPDATE billops.payable x SET status = 'draft', exceptions = '[]' WHERE x.payable_id = c.payable_id;
                ELSE
                    UPDATE billops.payable_adjustment x SET status = 'draft', exceptions = '[]' WHERE x.adjustment_id = c.adjustment_id;
                END IF;
            END IF;
        ELSIF jsonb_array_length(c.exceptions) > 0 THEN
            CONTINUE;
        END IF;
        problems := billops._route(c.payable_id, c.adjustment_id);
        IF jsonb_array_length(problems) > 0 THEN
            IF c.adjustment_id IS NULL THEN
                UPDATE billops.payable x SET status = 'exception',
                       exceptions = (SELECT coalesce(jsonb_agg(e), '[]') FROM jsonb_array_elements(x.exceptions) e
                                      WHERE e->>'code' <> 'approver_missing') || problems
                 WHERE x.payable_id = c.payable_id;
            ELSE
                UPDATE billops.payable_adjustment x SET status = 'exception',
                       exceptions = (SELECT coalesce(jsonb_agg(e), '[]') FROM jsonb_array_elements(x.exceptions) e
                                      WHERE e->>'code' <> 'approver_missing') || problems
                 WHERE x.adjustment_id = c.adjustment_id;
            END IF;
        END IF;
        RETURN QUERY SELECT x.payable_id, x.dedupe_key,
                            CASE WHEN jsonb_array_length(problems) > 0 THEN 'routing_failed'
                                 WHEN c.adjustment_id IS NOT NULL THEN 'adjustment_routed' ELSE 'routed' END,
                            x.status, x.amount
                       FROM billops.payable x WHERE x.payable_id = c.payable_id;
    END LOOP;
END $$;

CREATE FUNCTION billops.route_payable(payable_id bigint) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
DECLARE
    p        billops.payable;
    adj_id   bigint;
    problems jsonb;
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = $1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payable % does not exist', $1 USING ERRCODE = 'no_data_found';
    END IF;
    SELECT a.adjustment_id INTO adj_id FROM billops.payable_adjustment a WHERE a.payable_id = $1 AND a.status = 'draft';
    IF p.status <> 'draft' AND adj_id IS NULL THEN
        RAISE EXCEPTION 'payable % is %, not ready to route', $1, p.status USING ERRCODE = 'BO005',
              DETAIL = CASE WHEN p.status = 'exception'
                            THEN (SELECT string_agg(e->>'message', '; ') FROM jsonb_array_elements(p.exceptions) e)
                            ELSE format('Payable %s (%s) is %s.', $1, p.dedupe_key, p.status) END,
              HINT = CASE WHEN p.status = 'exception' THEN 'Fix the exceptions (rules), run billops.build_payables(), then route.'
                          ELSE 'Only drafts (or a draft adjustment of an approved payable) are routed.' END;
    END IF;
    problems := billops._route($1, CASE WHEN p.status = 'draft' THEN NULL ELSE adj_id END);
    IF jsonb_array_length(problems) > 0 THEN
        RAISE EXCEPTION 'payable % cannot be routed', $1 USING ERRCODE = 'BO005',
              DETAIL = (SELECT string_agg(e->>'message', '; ') FROM jsonb_array_elements(problems) e),
              HINT = problems->0->>'hint';
    END IF;
    RETURN (SELECT count(*) FROM billops.approval_step s
             WHERE s.payable_id = $1 AND s.status = 'pending');
END $$;
COMMENT ON FUNCTION billops.route_payable(bigint) IS
  'Routes a draft payable (e.g. on preliminary data) or the draft adjustment of an approved one; returns the steps created.';

-- The steps the actor may decide now: pending, of the lowest open seq, and
-- assigned to a role the actor belongs to.
CREATE FUNCTION billops._open_subject(p billops.payable, OUT adjustment_id bigint, OUT routing_round integer)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p.status = 'routed' THEN
        adjustment_id := NULL;
        routing_round := p.routing_round;
        RETURN;
    END IF;
    SELECT a.adjustment_id, a.routing_round INTO adjustment_id, routing_round
      FROM billops.payable_adjustment a WHERE a.payable_id = p.payable_id AND a.status = 'routed';
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payable % is not waiting for approval', p.payable_id USING ERRCODE = 'BO005',
              DETAIL = format('Payable %s (%s) is %s and has no routed adjustment.', p.payable_id, p.dedupe_key, p.status);
    END IF;
END $$;

CREATE FUNCTION billops._decide(target_payable_id bigint, decision text, note text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    who      name := billops.actor();
    p        billops.payable;
    subj     record;
    active   integer;
    mine     bigint[];
    waiting  text;
    remaining integer;
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = target_payable_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payable % does not exist', target_payable_id USING ERRCODE = 'no_data_found';
    END IF;
    -- someone with no step on the payable learns nothing about it
    IF NOT billops._routed_to_actor(p.payable_id) THEN
        RAISE EXCEPTION 'role % has no approval step on payable %', who, p.payable_id USING ERRCODE = 'BO003',
              HINT = 'billops.approval_queue lists the steps waiting on you.';
    END IF;
    subj := billops._open_subject(p);
    SELECT min(s.seq) INTO active FROM billops.approval_step s
     WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
       AND s.routing_round = subj.routing_round AND s.status = 'pending';
    SELECT array_agg(s.step_id) INTO mine FROM billops.approval_step s
     WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
       AND s.routing_round = subj.routing_round AND s.status = 'pending' AND s.seq = active
       AND billops._is_member(who, s.approver_role);
    IF mine IS NULL THEN
        SELECT string_agg(format('%s (%s)', s.approver_role, s.step_name), ', ' ORDER BY s.step_id) INTO waiting
          FROM billops.approval_step s
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
           AND s.routing_round = subj.routing_round AND s.status = 'pending' AND s.seq = active;
        RAISE EXCEPTION 'role % is not an assigned approver of the current step of payable %', who, p.payable_id
              USING ERRCODE = 'BO003', DETAIL = format('Waiting on: %s.', waiting),
                    HINT = 'Only a member of the assigned role can decide; later steps are asked once this one is approved.';
    END IF;
    -- segregation of duties: one person decides one step of a routing round
    IF decision = 'approved' AND EXISTS (
            SELECT FROM billops.approval_step s
             WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
               AND s.routing_round = subj.routing_round AND s.status = 'approved' AND s.decided_by = who) THEN
        RAISE EXCEPTION 'role % already approved a step of payable %', who, p.payable_id USING ERRCODE = 'BO003',
              HINT = 'Each step needs a different approver.';
    END IF;

    UPDATE billops.approval_step s SET status = decision, decided_by = who, decided_at = now(), comment = note
     WHERE s.step_id = ANY (mine);

    IF decision = 'rejected' THEN
        UPDATE billops.approval_step s SET status = 'superseded'
         WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
           AND s.routing_round = subj.routing_round AND s.status = 'pending';
        IF subj.adjustment_id IS NULL THEN
            UPDATE billops.payable x SET status = 'exception',
                   exceptions = x.exceptions || jsonb_build_array(jsonb_build_object('code', 'rejected',
                       'message', format('rejected by %s: %s', who, note),
                       'hint', 'Fix the cause, then billops.reopen_payable(payable_id, note).'))
             WHERE x.payable_id = p.payable_id;
        ELSE
            UPDATE billops.payable_adjustment x SET status = 'exception',
                   exceptions = x.exceptions || jsonb_build_array(jsonb_build_object('code', 'rejected',
                       'message', format('rejected by %s: %s', who, note)))
             WHERE x.adjustment_id = subj.adjustment_id;
        END IF;
        RETURN 'rejected';
    END IF;

    SELECT count(*) INTO remaining FROM billops.approval_step s
     WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NOT DISTINCT FROM subj.adjustment_id
       AND s.routing_round = subj.routing_round AND s.status = 'pending';
    IF remaining > 0 THEN
        RETURN format('approved step; %s step(s) to go', remaining);
    ELSIF subj.adjustment_id IS NULL THEN
        UPDATE billops.payable x SET status = 'approved' WHERE x.payable_id = p.payable_id;
        RETURN 'payable approved';
    ELSE
        UPDATE billops.payable_adjustment x SET status = 'approved' WHERE x.adjustment_id = subj.adjustment_id;
        PERFORM billops._apply_adjustment(subj.adjustment_id);
        RETURN 'adjustment approved and applied';
    END IF;
END $$;

-- The adjustment path: the only way an approved payable's amount, lines,
-- vendor and coding change.
CREATE FUNCTION billops._apply_adjustment(target_adjustment_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'adjustment' AS $$
DECLARE
    a billops.payable_adjustment;
BEGIN
    SELECT * INTO a FROM billops.payable_adjustment x WHERE x.adjustment_id = target_adjustment_id;
    IF a.status <> 'approved' THEN
        RAISE EXCEPTION 'adjustment % is %, not approved', a.adjustment_id, a.status USING ERRCODE = 'BO005';
    END IF;
    PERFORM billops._apply_state(a.payable_id, a.new_state);
    UPDATE billops.payable x SET invoice_state = coalesce(a.invoice_state, x.invoice_state),
           aws_invoice_ids = coalesce(a.aws_invoice_ids, x.aws_invoice_ids),
           delivery_id = coalesce(a.delivery_id, x.delivery_id), assembly_id = coalesce(a.assembly_id, x.assembly_id)
     WHERE x.payable_id = a.payable_id;
END $$;

CREATE FUNCTION billops.approve(payable_id bigint, comment text DEFAULT NULL) RETURNS text
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
    SELECT billops._decide($1, 'approved', $2)
$$;
COMMENT ON FUNCTION billops.approve(bigint, text) IS
  'Approves the caller''s current step of a routed payable (or of its routed adjustment). The caller must be a member of the assigned role.';

CREATE FUNCTION billops.reject(payable_id bigint, reason text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
BEGIN
    IF coalesce(btrim(reason), '') = '' THEN
        RAISE EXCEPTION 'a rejection needs a reason' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN billops._decide($1, 'rejected', reason);
END $$;
COMMENT ON FUNCTION billops.reject(bigint, text) IS
  'Rejects the caller''s current step: the payable (or adjustment) goes to the exception queue with the reason.';

CREATE FUNCTION billops.reopen_payable(payable_id bigint, note text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
DECLARE
    p billops.payable;
    rest jsonb;
BEGIN
    IF coalesce(btrim(note), '') = '' THEN
        RAISE EXCEPTION 'reopening needs a note' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = $1 FOR UPDATE;
    IF p.status = 'exception' THEN
        rest := coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(p.exceptions) e
                           WHERE e->>'code' NOT IN ('rejected', 'approver_missing')), '[]');
        UPDATE billops.payable x SET exceptions = rest,
               status = CASE WHEN jsonb_array_length(rest) = 0 THEN 'draft' ELSE 'exception' END
         WHERE x.payable_id = $1;
        RETURN CASE WHEN jsonb_array_length(rest) = 0 THEN 'draft' ELSE 'exception' END;
    END IF;
    UPDATE billops.payable_adjustment a SET status = 'draft', exceptions = '[]'
     WHERE a.payable_id = $1 AND a.status = 'exception'
       AND NOT EXISTS (SELECT FROM jsonb_array_elements(a.exceptions) e WHERE e->>'code' NOT IN ('rejected', 'approver_missing'));
    IF FOUND THEN
        RETURN 'adjustment draft';
    END IF;
    RAISE EXCEPTION 'payable % has nothing to reopen', $1 USING ERRCODE = 'BO005',
          DETAIL = format('Status %s.', p.status);
END $$;
COMMENT ON FUNCTION billops.reopen_payable(bigint, text) IS
  'Clears a rejection (or a routing problem) so the payable (or its adjustment) can be routed again.';

CREATE FUNCTION billops.void_payable(payable_id bigint, reason text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
BEGIN
    IF coalesce(btrim(reason), '') = '' THEN
        RAISE EXCEPTION 'voiding needs a reason' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    UPDATE billops.payable x SET status = 'voided', void_reason = format('%s (by %s)', reason, billops.actor())
     WHERE x.payable_id = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'payable % does not exist', $1 USING ERRCODE = 'no_data_found';
    END IF;
    RETURN 'voided';
END $$;
COMMENT ON FUNCTION billops.void_payable(bigint, text) IS 'Voids a payable explicitly; recorded in the audit log with the reason.';

-- What an approver may read: payables with a step assigned to one of their roles.
CREATE FUNCTION billops._routed_to_actor(target_payable_id bigint) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT EXISTS (SELECT FROM billops.approval_step s
                    WHERE s.payable_id = target_payable_id AND billops._is_member(billops.actor(), s.approver_role))
$$;

-- Drill-down: the line items behind a payable, or behind one of its lines.
CREATE FUNCTION billops.payable_line_items(payable_id bigint, line_id bigint DEFAULT NULL)
RETURNS SETOF billops.cur_line_item
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p billops.payable;
    keys text[];
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = $1;
    IF NOT FOUND OR NOT (pg_has_role(billops.actor(), 'billops_analyst', 'USAGE') OR billops._routed_to_actor($1)) THEN
        RAISE EXCEPTION 'payable % does not exist or is not visible to %', $1, billops.actor()
              USING ERRCODE = 'no_data_found';
    END IF;
    SELECT array_agg(k) INTO keys FROM billops.payable_line l, unnest(l.fact_keys) k
     WHERE l.payable_id = $1 AND ($2 IS NULL OR l.line_id = $2);
    IF p.delivery_id IS DISTINCT FROM (SELECT cp.delivery_id FROM billops.cur_partition cp
                                        WHERE cp.billing_period = p.billing_period AND cp.payer_account_id = p.payer_account_id) THEN
        RAISE NOTICE 'payable % was built from assembly %; the line items shown are from the delivery visible now',
              $1, p.assembly_id USING HINT = 'Run billops.build_payables() to bring the payable up to date.';
    END IF;
    RETURN QUERY EXECUTE format($q$
    SELECT li.* FROM billops.cur_line_item li
     WHERE li.bill_billing_period_start_date = $1 AND li.bill_payer_account_id = $2
       AND billops._fact_key(li.bill_billing_entity, li.bill_invoicing_entity, li.line_item_legal_entity,
                             li.line_item_line_item_type, li.bill_bill_type, li.line_item_product_code,
                             billops._service_of(li.product, li.line_item_product_code),
                             li.line_item_usage_account_id, li.line_item_currency_code, %s, %s) = ANY ($3)
    $q$, billops._jsonb_subset_sql('li.resource_tags', p.basis_tag_keys),
         billops._jsonb_subset_sql('li.cost_category', p.basis_cost_category_keys))
    USING p.billing_period, p.payer_account_id, keys;
END $$;
COMMENT ON FUNCTION billops.payable_line_items(bigint, bigint) IS
  'The CUR line items behind a payable or one of its lines (line_id). Approvers see only payables routed to them.';

-- A change of the routing rules, or of a setting the plan reads, re-routes the
-- payables still waiting for approval whose steps it changes: back to draft
-- (their open steps are closed) and routed again by the new rules, so their
-- approvals start over; a payable the new rules cannot route goes to the
-- exception queue.  Approved payables keep the approvals they had (the lock).
-- With BILL, an open bill follows (its approval route changes: 56_bill_routes.sql).
CREATE FUNCTION billops._reroute_open_payables() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'approval' AS $$
DECLARE
    p        record;
    problems jsonb;
    n        integer := 0;
BEGIN
    FOR p IN SELECT x.payable_id, x.routing_round FROM billops.payable x WHERE x.status = 'routed'
              ORDER BY x.payable_id FOR UPDATE
    LOOP
        CONTINUE WHEN (SELECT coalesce(array_agg(format('%s|%s|%s', e->>'seq', e->>'step_name', e->>'approver_role')
                                                 ORDER BY (e->>'seq')::int, e->>'step_name', e->>'approver_role'), '{}')
                         FROM jsonb_array_elements(billops._plan_for(p.payable_id, NULL)) e)
                    = (SELECT coalesce(array_agg(format('%s|%s|%s', s.seq, s.step_name, s.approver_role)
                                                 ORDER BY s.seq, s.step_name, s.approver_role), '{}')
                         FROM billops.approval_step s
                        WHERE s.payable_id = p.payable_id AND s.adjustment_id IS NULL
                          AND s.routing_round = p.routing_round AND s.status <> 'superseded');
        UPDATE billops.payable x SET status = 'draft' WHERE x.payable_id = p.payable_id;
        problems := billops._route(p.payable_id, NULL);
        IF jsonb_array_length(problems) > 0 THEN
            UPDATE billops.payable x SET status = 'exception', exceptions = problems WHERE x.payable_id = p.payable_id;
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

CREATE FUNCTION billops._routing_rules_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._reroute_open_payables();
    RETURN NULL;
END $$;
CREATE TRIGGER routing_rule_changed AFTER INSERT OR UPDATE OR DELETE ON billops.routing_rule
    FOR EACH STATEMENT EXECUTE FUNCTION billops._routing_rules_changed();

CREATE FUNCTION billops._routing_settings_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM changed c WHERE c.name IN ('approval_threshold', 'owner_min_share') OR c.value_type = 'role') THEN
        PERFORM billops._reroute_open_payables();
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER setting_changed_reroute AFTER UPDATE ON billops.setting
    REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION billops._routing_settings_changed();
