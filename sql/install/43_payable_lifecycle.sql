-- ---------------------------------------------------------------------------
-- Lifecycle and approval lock, enforced by triggers for every role, table
-- owners included.  SQLSTATEs (class BO, documented in the README):
--   BO001 illegal lifecycle transition      BO002 approval lock (frozen)
--   BO003 not the assigned approver         BO004 audit log is append-only
--   BO005 payable not ready for this action BO006 derived data: change rules, not rows
-- ---------------------------------------------------------------------------

-- Columns computed from AWS data and rules.  Humans change them only through
-- rules and billops.build_payables(); once approved, only the adjustment path.
CREATE FUNCTION billops._payable_derived(p billops.payable) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object('amount', p.amount, 'exact_amount', p.exact_amount, 'currency', p.currency,
        'vendor_id', p.vendor_id, 'content_hash', p.content_hash, 'line_item_count', p.line_item_count,
        'account_breakdown', p.account_breakdown, 'treatment', p.treatment, 'category', p.category,
        'source_entity', p.source_entity, 'line_grain', p.line_grain, 'basis_tag_keys', p.basis_tag_keys,
        'basis_cost_category_keys', p.basis_cost_category_keys)
$$;
CREATE FUNCTION billops._payable_metadata(p billops.payable) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT jsonb_build_object('invoice_state', p.invoice_state, 'aws_invoice_ids', p.aws_invoice_ids,
        'delivery_id', p.delivery_id, 'assembly_id', p.assembly_id, 'system_generated', p.system_generated,
        'created_at', p.created_at, 'routing_round', p.routing_round)
$$;

CREATE FUNCTION billops._payable_locked(status text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT s.locked FROM billops.payable_status s WHERE s.status = $1), false)
$$;

CREATE FUNCTION billops._payable_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ctx     text := billops._context();
    locked  boolean;
    legal   text;
    pending integer;
    approved_steps integer;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF ctx = 'maintenance' THEN
            RETURN OLD;
        ELSIF billops._payable_locked(OLD.status) THEN
            RAISE EXCEPTION 'payable % is %: it cannot be deleted', OLD.payable_id, OLD.status
                  USING ERRCODE = 'BO002', DETAIL = format('Payable %s (%s).', OLD.payable_id, OLD.dedupe_key),
                        HINT = 'Approved payables are frozen; void it with billops.void_payable(payable_id, reason).';
        END IF;
        RAISE EXCEPTION 'payables are voided, not deleted' USING ERRCODE = 'BO006',
              DETAIL = format('Payable %s (%s) is %s.', OLD.payable_id, OLD.dedupe_key, OLD.status),
              HINT = 'Use billops.void_payable(payable_id, reason): the payable stays on record, marked voided.';
    END IF;

    IF TG_OP = 'INSERT' THEN
        IF ctx NOT IN ('system', 'maintenance') THEN
            RAISE EXCEPTION 'payables are created by billops.build_payables(), not inserted' USING ERRCODE = 'BO006',
                  HINT = 'Load the CUR delivery and run billops.build_payables(); configure rules to change what it builds.';
        END IF;
        IF NEW.status NOT IN ('draft', 'exception') THEN
            RAISE EXCEPTION 'a new payable starts as draft, not %', NEW.status USING ERRCODE = 'BO001';
        END IF;
        RETURN NEW;
    END IF;

    -- UPDATE
    IF (NEW.payer_account_id, NEW.billing_period, NEW.charge_source) IS DISTINCT FROM
       (OLD.payer_account_id, OLD.billing_period, OLD.charge_source) THEN
        RAISE EXCEPTION 'the dedupe key of payable % never changes', OLD.payable_id USING ERRCODE = 'BO002',
              DETAIL = format('Key %s.', OLD.dedupe_key);
    END IF;

    IF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NOT EXISTS (SELECT FROM billops.payable_transition t
                        WHERE t.from_status = OLD.status AND t.to_status = NEW.status) THEN
            SELECT string_agg(t.to_status, ', ' ORDER BY t.to_status) INTO legal
              FROM billops.payable_transition t WHERE t.from_status = OLD.status;
            RAISE EXCEPTION 'illegal payable transition % → %', OLD.status, NEW.status USING ERRCODE = 'BO001',
                  DETAIL = format('Payable %s (%s) is %s; from %s it may go to: %s.', OLD.payable_id, OLD.dedupe_key,
                                  OLD.status, OLD.status, coalesce(legal, 'nothing (terminal)')),
                  HINT = 'See billops.payable_transition for the lifecycle.';
        END IF;
        IF NEW.status IN ('scheduled', 'paid') AND NEW.treatment = 'usage_summary' THEN
            RAISE EXCEPTION 'illegal payable transition % → % for a usage summary', OLD.status, NEW.status
                  USING ERRCODE = 'BO001',
                        DETAIL = format('Payable %s (%s) is acknowledged, not paid.', OLD.payable_id, OLD.dedupe_key),
                        HINT = 'Make the charge source invoice_like with a billops.treatment_rule if it must be paid.';
        END IF;
        IF NEW.status = 'routed' THEN
            SELECT count(*) INTO pending FROM billops.approval_step s
             WHERE s.payable_id = NEW.payable_id AND s.adjustment_id IS NULL
               AND s.routing_round = NEW.routing_round AND s.status = 'pending';
            IF pending = 0 THEN
                RAISE EXCEPTION 'payable % has no approval steps to route to', NEW.payable_id USING ERRCODE = 'BO005',
                      HINT = 'Route with billops.route_payable(payable_id).';
            END IF;
            NEW.routed_at := now();
        ELSIF NEW.status = 'approved' AND OLD.status = 'routed' THEN
            SELECT count(*) FILTER (WHERE s.status <> 'approved'), count(*) FILTER (WHERE s.status = 'approved')
              INTO pending, approved_steps
              FROM billops.approval_step s
             WHERE s.payable_id = NEW.payable_id AND s.adjustment_id IS NULL AND s.routing_round = NEW.routing_round;
            IF pending > 0 OR approved_steps = 0 THEN
                RAISE EXCEPTION 'payable % is not approved by every step', NEW.payable_id USING ERRCODE = 'BO001',
                      DETAIL = format('%s of %s approval steps are still open.', pending, pending + approved_steps),
                      HINT = 'Each assigned approver approves with billops.approve(payable_id).';
            END IF;
            NEW.approved_at := now();
        ELSIF NEW.status = 'exception' AND jsonb_array_length(NEW.exceptions) = 0 THEN
            RAISE EXCEPTION 'a payable in the exception queue needs a reason' USING ERRCODE = 'BO005',
                  HINT = 'Set exceptions to [{"code": ..., "message": ...}].';
        ELSIF NEW.status = 'voided' THEN
            IF coalesce(btrim(NEW.void_reason), '') = '' THEN
                RAISE EXCEPTION 'voiding payable % needs a reason', NEW.payable_id USING ERRCODE = 'null_value_not_allowed',
                      HINT = 'Use billops.void_payable(payable_id, reason).';
            END IF;
            NEW.voided_at := now();
        END IF;
    END IF;
    locked := billops._payable_locked(OLD.status);
    IF OLD.status = 'voided' THEN  -- terminal: nothing changes any more
        RAISE EXCEPTION 'payable % is voided: it can no longer change', OLD.payable_id USING ERRCODE = 'BO002',
              DETAIL = format('Payable %s (%s) was voided: %s', OLD.payable_id, OLD.dedupe_key, OLD.void_reason);
    END IF;
    IF billops._payable_derived(NEW) IS DISTINCT FROM billops._payable_derived(OLD) THEN
        IF locked AND ctx <> 'adjustment' THEN
            RAISE EXCEPTION 'payable % is % and frozen: amount, lines, vendor and coding cannot change', OLD.payable_id, OLD.status
                  USING ERRCODE = 'BO002',
                        DETAIL = format('Payable %s (%s) is %s.', OLD.payable_id, OLD.dedupe_key, OLD.status),
                        HINT = 'A change from AWS becomes an adjustment (billops.payable_adjustment) routed for its own approval.';
        ELSIF NOT locked AND ctx NOT IN ('system', 'maintenance') THEN
            RAISE EXCEPTION 'payable % is computed from AWS data and rules', OLD.payable_id USING ERRCODE = 'BO006',
                  HINT = 'Change vendor aliases, coding or charge rules, then run billops.build_payables().';
        END IF;
    END IF;
    IF billops._payable_metadata(NEW) IS DISTINCT FROM billops._payable_metadata(OLD)
       AND ctx NOT IN ('system', 'approval', 'adjustment', 'maintenance') THEN
        RAISE EXCEPTION 'AWS references of payable % are recorded by pg_billops', OLD.payable_id USING ERRCODE = 'BO006';
    END IF;

    NEW.updated_at := now();
    RETURN NEW;
END $$;
CREATE TRIGGER payable_guard BEFORE INSERT OR UPDATE OR DELETE ON billops.payable
    FOR EACH ROW EXECUTE FUNCTION billops._payable_guard();

-- Leaving "routed" (re-route, rejection, void) closes the open steps of that round.
CREATE FUNCTION billops._payable_after_transition() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
BEGIN
    UPDATE billops.approval_step s SET status = 'superseded'
     WHERE s.payable_id = NEW.payable_id AND s.adjustment_id IS NULL AND s.status = 'pending';
    IF NEW.status = 'voided' THEN
        UPDATE billops.payable_adjustment a SET status = 'voided', void_reason = 'payable voided: ' || NEW.void_reason
         WHERE a.payable_id = NEW.payable_id AND a.status IN ('draft', 'exception', 'routed');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER payable_after_transition AFTER UPDATE OF status ON billops.payable
    FOR EACH ROW WHEN (OLD.status = 'routed' AND NEW.status <> 'approved' OR NEW.status = 'voided')
    EXECUTE FUNCTION billops._payable_after_transition();

-- Lines are derived and, once the payable is approved, frozen.
CREATE FUNCTION billops._payable_line_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ctx text := billops._context();
    p   record;
BEGIN
    SELECT payable_id, status, dedupe_key INTO p FROM billops.payable
     WHERE payable_id = CASE TG_OP WHEN 'DELETE' THEN OLD.payable_id ELSE NEW.payable_id END;
    IF billops._payable_locked(p.status) AND ctx NOT IN ('adjustment', 'maintenance') THEN
        RAISE EXCEPTION 'payable % is % and frozen: its lines cannot change', p.payable_id, p.status
              USING ERRCODE = 'BO002', DETAIL = format('Payable %s (%s) is %s.', p.payable_id, p.dedupe_key, p.status),
                    HINT = 'A change from AWS becomes an adjustment (billops.payable_adjustment) routed for its own approval.';
    ELSIF ctx NOT IN ('system', 'adjustment', 'maintenance') THEN
        RAISE EXCEPTION 'payable lines are computed from AWS data and rules' USING ERRCODE = 'BO006',
              DETAIL = format('Payable %s (%s) is %s.', p.payable_id, p.dedupe_key, p.status),
              HINT = 'Change billops.coding_rule (or the line_grain setting), then run billops.build_payables().';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER payable_line_guard BEFORE INSERT OR UPDATE OR DELETE ON billops.payable_line
    FOR EACH ROW EXECUTE FUNCTION billops._payable_line_guard();
-- TRUNCATE fires no row triggers: refuse it outright on governed tables.
CREATE FUNCTION billops._refuse_truncate() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF billops._context() = 'maintenance' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'billops.% cannot be truncated', TG_TABLE_NAME USING ERRCODE = 'BO006',
          HINT = 'Payables are voided, not removed; DROP EXTENSION removes everything.';
END $$;
DO $$
DECLARE t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['payable', 'payable_line', 'payable_adjustment', 'approval_step'] LOOP
        EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON billops.%I FOR EACH STATEMENT
                        EXECUTE FUNCTION billops._refuse_truncate()', t || '_no_truncate', t);
    END LOOP;
END $$;

-- Approval steps change only through routing and approval functions.
CREATE FUNCTION billops._approval_step_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF billops._context() NOT IN ('system', 'approval', 'maintenance') THEN
        RAISE EXCEPTION 'approval steps change only through billops.route_payable(), approve() and reject()'
              USING ERRCODE = 'BO006', DETAIL = format('%s refused for %s.', TG_OP, billops.actor());
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status <> 'pending' AND billops._context() <> 'maintenance' THEN
        RAISE EXCEPTION 'approval step % is already %', OLD.step_id, OLD.status USING ERRCODE = 'BO001';
    END IF;
    RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER approval_step_guard BEFORE INSERT OR UPDATE OR DELETE ON billops.approval_step
    FOR EACH ROW EXECUTE FUNCTION billops._approval_step_guard();

-- Adjustments: their own small lifecycle; changed only by pg_billops.
CREATE FUNCTION billops._adjustment_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF billops._context() NOT IN ('system', 'approval', 'adjustment', 'maintenance') THEN
        RAISE EXCEPTION 'adjustments are created from AWS data and decided through approvals' USING ERRCODE = 'BO006',
              DETAIL = format('%s refused for %s.', TG_OP, billops.actor()),
              HINT = 'Approve or reject with billops.approve()/reject(); void with billops.void_payable().';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.status IS DISTINCT FROM OLD.status
       AND NOT (OLD.status, NEW.status) IN (('draft', 'routed'), ('draft', 'exception'), ('draft', 'voided'),
                ('exception', 'draft'), ('exception', 'voided'), ('routed', 'approved'), ('routed', 'draft'),
                ('routed', 'exception'), ('routed', 'voided')) THEN
        RAISE EXCEPTION 'illegal adjustment transition % → %', OLD.status, NEW.status USING ERRCODE = 'BO001',
              DETAIL = format('Adjustment %s of payable %s.', OLD.adjustment_id, OLD.payable_id);
    END IF;
    IF TG_OP = 'UPDATE' AND OLD.status IN ('approved', 'voided') THEN
        RAISE EXCEPTION 'adjustment % is % and frozen', OLD.adjustment_id, OLD.status USING ERRCODE = 'BO002';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'adjustments are voided, not deleted' USING ERRCODE = 'BO006';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        IF NEW.status = 'approved' THEN NEW.approved_at := now(); END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER adjustment_guard BEFORE INSERT OR UPDATE OR DELETE ON billops.payable_adjustment
    FOR EACH ROW EXECUTE FUNCTION billops._adjustment_guard();
