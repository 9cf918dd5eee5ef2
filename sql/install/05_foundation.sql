-- ---------------------------------------------------------------------------
-- Foundations every domain uses: the audit log (append-only: who changed
-- what, and from which transaction), typed settings, and the check that a
-- date is a billing period.  Each domain file wires its own tables into the
-- audit log with billops._audit_tables at its end.
-- ---------------------------------------------------------------------------

-- ===== the audit log =========================================================

-- The person acting.  Inside pg_billops' SECURITY DEFINER functions
-- current_user is the extension owner, but the "role" setting still holds the
-- caller's SET ROLE (and can only be set to a role one is a member of), so it
-- names the human even there.
CREATE FUNCTION billops.actor() RETURNS name
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(nullif(current_setting('role'), 'none'), session_user)::name
$$;
COMMENT ON FUNCTION billops.actor() IS 'The role acting (SET ROLE honoured), also inside pg_billops'' own functions.';

-- none | system | approval | adjustment | maintenance; set only by pg_billops' functions.
CREATE FUNCTION billops._context() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(current_setting('billops.internal_context', true), 'none')
$$;

CREATE TABLE billops.audit_log (
    audit_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    logged_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor            name NOT NULL,
    executed_as      name NOT NULL,
    system_generated boolean NOT NULL,
    action           text NOT NULL,
    object_type      text NOT NULL,
    object_id        text,
    payable_id       bigint,
    payer_account_id text,
    billing_period   date,
    assembly_id      text,
    aws_invoice_id   text,
    before           jsonb,
    after            jsonb,
    transaction_id   xid8 NOT NULL DEFAULT pg_current_xact_id(),
    application_name text DEFAULT current_setting('application_name')
);
CREATE INDEX ON billops.audit_log (payable_id, audit_id) WHERE payable_id IS NOT NULL;
CREATE INDEX ON billops.audit_log (logged_at);
COMMENT ON TABLE billops.audit_log IS
  'Append-only: who (actor role), what (action, before/after of changed fields), when, and the AWS artifact '
  '(payer, period, assemblyId, invoice id). system_generated marks changes made by pg_billops itself.';
COMMENT ON COLUMN billops.audit_log.executed_as IS
  'current_user when the row changed: the extension owner for changes made through pg_billops functions.';

CREATE FUNCTION billops._audit_append_only() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF billops._context() = 'maintenance' THEN
        RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
    END IF;
    RAISE EXCEPTION 'billops.audit_log is append-only'
          USING ERRCODE = 'BO004',
                DETAIL = format('%s refused for %s.', TG_OP, billops.actor()),
                HINT = 'Audit entries are never changed or removed; old entries are removed only by billops.audit_log_purge().';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON billops.audit_log
    FOR EACH ROW EXECUTE FUNCTION billops._audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON billops.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION billops._audit_append_only();

-- Row audit for governed tables.  SECURITY DEFINER so that nobody needs (or
-- gets) INSERT on the log: entries can be written only by these triggers.
-- Derived columns (fact_keys, updated_at, last_sync_at) are left out of before/after.
CREATE FUNCTION billops._audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    old_j   jsonb := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) - '{fact_keys,updated_at,last_sync_at}'::text[] END;
    new_j   jsonb := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) - '{fact_keys,updated_at,last_sync_at}'::text[] END;
    row_j   jsonb := coalesce(new_j, old_j);
    before_j jsonb;
    after_j  jsonb;
    act     text := lower(TG_OP);
    pid     bigint := (row_j->>'payable_id')::bigint;
    payer   text;
    period  date;
    asm     text;
    inv     text;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        SELECT jsonb_object_agg(o.key, o.value), jsonb_object_agg(o.key, n.value)
          INTO before_j, after_j
          FROM jsonb_each(old_j) o JOIN jsonb_each(new_j) n USING (key)
         WHERE o.value IS DISTINCT FROM n.value;
        IF before_j IS NULL THEN
            RETURN NULL;            -- nothing but derived columns changed
        END IF;
        IF before_j ? 'status' THEN
            act := 'transition';
        END IF;
    ELSE
        before_j := old_j;
        after_j := new_j;
    END IF;

    -- the AWS artifact behind the change
    IF TG_TABLE_NAME = 'payable' THEN
        payer := row_j->>'payer_account_id';
        period := (row_j->>'billing_period')::date;
    ELSIF pid IS NOT NULL THEN
        SELECT x.payer_account_id, x.billing_period, x.assembly_id, x.aws_invoice_ids[1]
          INTO payer, period, asm, inv
          FROM billops.payable x WHERE x.payable_id = pid;
    END IF;

    INSERT INTO billops.audit_log (actor, executed_as, system_generated, action, object_type, object_id,
                                   payable_id, payer_account_id, billing_period, assembly_id, aws_invoice_id,
                                   before, after)
    VALUES (billops.actor(), current_user, billops._context() IN ('system', 'adjustment', 'maintenance'), act, TG_TABLE_NAME,
            coalesce(row_j->>TG_ARGV[0], row_j->>'name'), pid,
            payer, period, coalesce(row_j->>'assembly_id', asm), coalesce(row_j->'aws_invoice_ids'->>0, inv),
            before_j, after_j);
    RETURN NULL;
END $$;

-- Audit every change of these tables; id_columns name each row in the log.
CREATE FUNCTION billops._audit_tables(tables text[], id_columns text[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    FOR i IN 1 .. cardinality(tables) LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OR DELETE ON billops.%I
                        FOR EACH ROW EXECUTE FUNCTION billops._audit_row(%L)', 'audit_' || tables[i], tables[i], id_columns[i]);
    END LOOP;
END $$;

-- The one way entries leave the log: a superuser's explicit purge of entries
-- older than a retention period, itself recorded.
CREATE FUNCTION billops.audit_log_purge(older_than interval) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'maintenance' AS $$
DECLARE
    n bigint;
BEGIN
    IF older_than < interval '1 year' THEN
        RAISE EXCEPTION 'audit entries younger than one year are kept' USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Pass an interval of at least ''1 year''.';
    END IF;
    DELETE FROM billops.audit_log WHERE logged_at < now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO billops.audit_log (actor, executed_as, system_generated, action, object_type, after)
    VALUES (billops.actor(), current_user, true, 'purge', 'audit_log',
            jsonb_build_object('older_than', older_than::text, 'entries_removed', n));
    RETURN n;
END $$;
COMMENT ON FUNCTION billops.audit_log_purge(interval) IS
  'Deletes audit_log entries older than older_than (at least 1 year, else refused) and records the purge itself in the log; returns how many were removed. Superuser only.';

-- ===== billing periods =======================================================

-- A period is the first day of a month.
CREATE FUNCTION billops._is_period(d date) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT d IS NULL OR d = '-infinity' OR d = 'infinity' OR d = date_trunc('month', d)::date
$$;

-- ===== settings ==============================================================

-- Settings with a type and a check, so a typo cannot silently disable a rule.
CREATE TABLE billops.setting (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    value_type  text NOT NULL CHECK (value_type IN ('numeric', 'boolean', 'text', 'role', 'grain')),
    description text NOT NULL
);
COMMENT ON TABLE billops.setting IS
  'Payable settings (approval threshold, approver roles, line grain, routing of preliminary data). Change with UPDATE; audited.';

CREATE FUNCTION billops._setting_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.value_type = 'numeric' AND NEW.value !~ '^-?[0-9]+(\.[0-9]+)?$' THEN
        RAISE EXCEPTION 'setting "%" must be a number, not "%"', NEW.name, NEW.value
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF NEW.value_type = 'boolean' AND NEW.value NOT IN ('true', 'false') THEN
        RAISE EXCEPTION 'setting "%" must be true or false, not "%"', NEW.name, NEW.value
              USING ERRCODE = 'invalid_parameter_value';
    ELSIF NEW.value_type = 'grain' AND NEW.value NOT IN ('service', 'usage_account', 'service_and_account', 'cost_center', 'line_item_type') THEN
        RAISE EXCEPTION 'setting "%" must be a line grain, not "%"', NEW.name, NEW.value
              USING ERRCODE = 'invalid_parameter_value',
                    HINT = 'One of: service, usage_account, service_and_account, cost_center, line_item_type.';
    ELSIF NEW.value_type = 'role' AND NEW.value !~ '^[A-Za-z_][A-Za-z0-9_$]*$' THEN
        RAISE EXCEPTION 'setting "%" must name a role, not "%"', NEW.name, NEW.value
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.value_type <> OLD.value_type THEN
        RAISE EXCEPTION 'the type of setting "%" is fixed', NEW.name USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER setting_check BEFORE INSERT OR UPDATE ON billops.setting
    FOR EACH ROW EXECUTE FUNCTION billops._setting_check();

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('approval_threshold', '10000.00', 'numeric',
   'A payable (or adjustment) whose absolute amount is at or above this adds a finance leadership approval step.'),
  ('finance_leadership_role', 'billops_finance_leadership', 'role',
   'Role whose members give the finance leadership approval.'),
  ('finance_review_role', 'billops_finance_review', 'role',
   'Role that reviews payables whose cost has no known owner (first step).'),
  ('finops_owner_role', 'billops_finops_owner', 'role',
   'Role that decides allocation of cost with no known owner (after finance review).'),
  ('owner_min_share', '0.10', 'numeric',
   'An owner approves a payable when the accounts they own carry at least this share of it (0..1).'),
  ('line_grain', 'service', 'grain',
   'Grain of summarized payable lines: service, usage_account, service_and_account, cost_center or line_item_type.'),
  ('cost_center_tag', 'user:CostCenter', 'text',
   'Resource tag holding the cost center (legacy CUR keeps keys as written, e.g. user:CostCenter; CUR 2.0 writes user_cost_center).'),
  ('auto_route', 'true', 'boolean',
   'build_payables routes payables that are ready (no exceptions) for approval.'),
  ('route_preliminary', 'false', 'boolean',
   'Route payables built from preliminary data (no AWS invoice id yet). Off: they stay drafts until the final delivery.');

-- Money as people read it: 1,234.56 and -29.25, no currency symbol (the
-- currency is said once); used by statements and by a bill's context.
CREATE FUNCTION billops._money(n numeric) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN n < 0 THEN '-' ELSE '' END || to_char(abs(coalesce(n, 0)), 'FM999,999,999,990.00')
$$;

CREATE FUNCTION billops.setting_value(setting_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT value FROM billops.setting WHERE name = setting_name
$$;
COMMENT ON FUNCTION billops.setting_value(text) IS
  'The value (as text) of a billops.setting row; NULL if there is no setting of that name.';

SELECT billops._audit_tables(ARRAY['setting'], ARRAY['name']);
