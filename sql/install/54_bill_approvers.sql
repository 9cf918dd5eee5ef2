-- ---------------------------------------------------------------------------
-- The approver directory: who approves in BILL for each PostgreSQL role
-- pg_billops routes approval steps to, and what BILL says about them.
--
-- A routed step is approved in SQL by any member of its role.  In BILL an
-- approver is a user (id 006…) or an approval group (agp…), whose approval by
-- any one member counts for the group (BILL Help Center, "Approval groups";
-- groups are made in BILL's web app only, the v3 API cannot create or list
-- them).  So each role maps to exactly one BILL approver: a person, or the
-- group of the role's people.
--
-- The BILL worker reads BILL's users and roles (GET /v3/roles, GET /v3/users)
-- when the directory changes and hourly, into billops.bill_user, so that
-- billops.bill_approver_status says whether each mapping can approve: BILL's
-- permissions table lets Administrators, Accountants and Approvers approve
-- bills, not Payers, Clerks or Auditors.
-- ---------------------------------------------------------------------------

CREATE TABLE billops.bill_approver (
    approver_role     name PRIMARY KEY,
    bill_approver_id  text NOT NULL
                      CONSTRAINT bill_approver_id_form CHECK (bill_approver_id ~ '^(006|agp)[0-9A-Za-z]{1,60}$'),
    note              text,
    updated_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_by        name NOT NULL DEFAULT billops.actor()
);
COMMENT ON TABLE billops.bill_approver IS
  'Approver directory: the BILL user (006…) or approval group (agp…) who approves in BILL for each approver role.';

-- BILL's users as the worker last read them.  Names and roles only: no email,
-- nothing an analyst should not read.
CREATE TABLE billops.bill_user (
    bill_user_id  text PRIMARY KEY,
    full_name     text,
    role_type     text,
    archived      boolean NOT NULL,
    read_at       timestamptz NOT NULL
);
COMMENT ON TABLE billops.bill_user IS
  'BILL''s organization users (GET /v3/users) with their role type, as the BILL worker last read them.';

CREATE TABLE billops.bill_role (
    bill_role_id  text PRIMARY KEY,
    role_type     text NOT NULL,
    read_at       timestamptz NOT NULL
);
COMMENT ON TABLE billops.bill_role IS 'BILL''s roles (GET /v3/roles), as the BILL worker last read them.';

-- A change to the directory makes the worker read BILL's users again soon.
CREATE FUNCTION billops._bill_approver_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP <> 'DELETE' THEN
        NEW.updated_at := clock_timestamp();
        NEW.updated_by := billops.actor();
    END IF;
    DELETE FROM billops.bill_sync_state WHERE name = 'directory_read_at';
    PERFORM billops._bill_wake();
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
CREATE TRIGGER bill_approver_changed BEFORE INSERT OR UPDATE OR DELETE ON billops.bill_approver
    FOR EACH ROW EXECUTE FUNCTION billops._bill_approver_changed();

-- The worker's conversation with BILL about the directory, one request at a
-- time (the same driver as the poll): nothing when it was read in the last
-- hour and the directory has not changed since; else the roles, then the
-- users page by page.
CREATE FUNCTION billops._bill_directory_request(OUT method text, OUT path text, OUT query jsonb)
RETURNS SETOF record
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT 'GET'::text,
           CASE WHEN EXISTS (SELECT FROM billops.bill_sync_state s WHERE s.name = 'directory_users_page')
                THEN '/v3/users' ELSE '/v3/roles' END,
           CASE WHEN EXISTS (SELECT FROM billops.bill_sync_state s WHERE s.name = 'directory_users_page')
                THEN jsonb_build_object('max', '100')
                     || coalesce((SELECT jsonb_build_object('page', s.value) FROM billops.bill_sync_state s
                                   WHERE s.name = 'directory_users_page' AND s.value <> ''), '{}')
                ELSE '{}'::jsonb END
     WHERE EXISTS (SELECT FROM billops.bill_approver)
       AND (EXISTS (SELECT FROM billops.bill_sync_state s WHERE s.name = 'directory_users_page')
            OR NOT EXISTS (SELECT FROM billops.bill_sync_state s
                            WHERE s.name = 'directory_read_at' AND s.value::timestamptz > clock_timestamp() - interval '1 hour'))
$$;

-- Record an answer; true when there is more to ask.
CREATE FUNCTION billops._bill_directory_response(response text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    j     jsonb;
    users boolean := EXISTS (SELECT FROM billops.bill_sync_state s WHERE s.name = 'directory_users_page');
BEGIN
    BEGIN
        j := response::jsonb;
    EXCEPTION WHEN invalid_text_representation THEN
        RAISE EXCEPTION 'BILL''s answer to % is not JSON', CASE WHEN users THEN 'GET /v3/users' ELSE 'GET /v3/roles' END
            USING ERRCODE = 'invalid_json_text', DETAIL = left(response, 200);
    END;
    IF NOT users THEN
        -- GET /v3/roles: a list of roles (a bare array, or {"results": [...]}: the answer's
        -- envelope is not documented, so both are read)
        IF jsonb_typeof(j) = 'object' THEN
            j := j->'results';
        END IF;
        IF jsonb_typeof(j) IS DISTINCT FROM 'array' THEN
            RAISE EXCEPTION 'BILL''s answer to GET /v3/roles is not a list of roles' USING ERRCODE = 'data_exception',
                  DETAIL = left(response, 200);
        END IF;
        DELETE FROM billops.bill_role;
        INSERT INTO billops.bill_role (bill_role_id, role_type, read_at)
        SELECT r->>'id', upper(coalesce(r->>'type', r->>'name')), clock_timestamp()
          FROM jsonb_array_elements(j) r WHERE r->>'id' IS NOT NULL
        ON CONFLICT DO NOTHING;
        INSERT INTO billops.bill_sync_state VALUES ('directory_users_page', '')
        ON CONFLICT (name) DO UPDATE SET value = '';
        -- users read from now on replace the ones read before
        UPDATE billops.bill_user SET read_at = '-infinity';
        RETURN true;
    END IF;
    IF jsonb_typeof(j->'results') IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION 'BILL''s answer to GET /v3/users is not a page of users' USING ERRCODE = 'data_exception',
              DETAIL = left(response, 200);
    END IF;
    INSERT INTO billops.bill_user AS u (bill_user_id, full_name, role_type, archived, read_at)
    SELECT x->>'id', nullif(trim(concat_ws(' ', x->>'firstName', x->>'lastName')), ''),
           coalesce((SELECT r.role_type FROM billops.bill_role r WHERE r.bill_role_id = x->>'roleId'),
                    upper(x->'role'->>'type')),
           coalesce((x->>'archived')::boolean, false), clock_timestamp()
      FROM jsonb_array_elements(j->'results') x WHERE x->>'id' IS NOT NULL
    ON CONFLICT (bill_user_id) DO UPDATE SET full_name = EXCLUDED.full_name, role_type = EXCLUDED.role_type,
                                             archived = EXCLUDED.archived, read_at = EXCLUDED.read_at;
    IF j->>'nextPage' IS NOT NULL THEN
        UPDATE billops.bill_sync_state SET value = j->>'nextPage' WHERE name = 'directory_users_page';
        RETURN true;
    END IF;
    -- the whole list is read: users BILL no longer lists are gone
    DELETE FROM billops.bill_user WHERE read_at = '-infinity';
    DELETE FROM billops.bill_sync_state WHERE name = 'directory_users_page';
    INSERT INTO billops.bill_sync_state VALUES ('directory_read_at', clock_timestamp()::text)
    ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value;
    RETURN false;
END $$;

-- Each approver role and whether its BILL approver can approve.
CREATE VIEW billops.bill_approver_status WITH (security_invoker = true) AS
WITH routed AS (
    -- every role a step can be routed to: routing rules and the roles the settings name
    SELECT r.approver_role::name AS approver_role FROM billops.routing_rule r
    UNION
    SELECT s.value::name FROM billops.setting s WHERE s.value_type = 'role'
), read AS (
    SELECT s.value::timestamptz AS at FROM billops.bill_sync_state s WHERE s.name = 'directory_read_at'
)
SELECT coalesce(a.approver_role, r.approver_role) AS approver_role,
       a.bill_approver_id,
       CASE WHEN a.bill_approver_id LIKE 'agp%' THEN 'group' WHEN a.bill_approver_id IS NOT NULL THEN 'user' END AS kind,
       u.full_name,
       u.role_type,
       CASE WHEN a.approver_role IS NULL THEN 'unmapped'
            WHEN a.bill_approver_id LIKE 'agp%' THEN 'group_unverified'
            WHEN (SELECT at FROM read) IS NULL OR (SELECT at FROM read) < a.updated_at THEN 'not_checked'
            WHEN u.bill_user_id IS NULL THEN 'unknown_user'
            WHEN u.archived THEN 'archived'
            WHEN u.role_type IS NULL OR u.role_type NOT IN ('ADMINISTRATOR', 'ACCOUNTANT', 'APPROVER') THEN 'cannot_approve'
            ELSE 'ok' END AS status,
       r.approver_role IS NOT NULL AS routed_to,
       (SELECT at FROM read) AS checked_at
  FROM billops.bill_approver a
  FULL JOIN routed r ON r.approver_role = a.approver_role
  LEFT JOIN billops.bill_user u ON u.bill_user_id = a.bill_approver_id;
COMMENT ON VIEW billops.bill_approver_status IS
  'Each approver role: its BILL approver and whether BILL lets it approve (ok, unmapped, not_checked, unknown_user, archived, cannot_approve, group_unverified).';

-- Why a plan's steps cannot reach BILL: a role with no BILL approver, or one
-- BILL would not let approve.  Checked when billops.setting
-- bill_approvers_required is true, for payables that become bills in BILL.
CREATE FUNCTION billops._bill_approver_problems(plan jsonb) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(jsonb_agg(DISTINCT jsonb_build_object(
               'code', 'approver_missing', 'field', 'bill_approver',
               'message', CASE WHEN st.status IS NULL OR st.status = 'unmapped'
                               THEN format('approver role "%s" (%s step) has no BILL approver', s->>'approver_role', s->>'step_name')
                               ELSE format('approver role "%s" (%s step): its BILL approver %s is %s',
                                           s->>'approver_role', s->>'step_name', st.bill_approver_id,
                                           replace(st.status, '_', ' ')) END,
               'hint', 'Map the role to a BILL user or approval group who may approve bills: '
                       'INSERT INTO billops.bill_approver (approver_role, bill_approver_id) ...; see billops.bill_approver_status.')), '[]')
      FROM jsonb_array_elements(plan) s
      LEFT JOIN billops.bill_approver_status st ON st.approver_role = (s->>'approver_role')::name
     WHERE st.status IS NULL OR st.status IN ('unmapped', 'unknown_user', 'archived', 'cannot_approve')
$$;

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('bill_approvers_required', 'auto', 'text',
   'true: a payable that becomes a bill in BILL is routed only when every step''s role has a BILL approver who may approve (billops.bill_approver), otherwise it is an approver_missing exception (field bill_approver); false: never checked; auto: checked once the directory has any mapping.');

-- Whether the approver check applies: always, never, or (auto) once anyone
-- uses the directory -- an organization that maps its approvers to BILL never
-- gets a bill without them, one that does not is not stopped by it.
CREATE FUNCTION billops._bill_approvers_required() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE billops.setting_value('bill_approvers_required')
             WHEN 'true' THEN true WHEN 'false' THEN false
             ELSE EXISTS (SELECT FROM billops.bill_approver) END
$$;

SELECT billops._audit_tables(ARRAY['bill_approver'], ARRAY['approver_role']);
