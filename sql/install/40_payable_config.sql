-- ---------------------------------------------------------------------------
-- Payables: configuration.  Every business rule is a row in a table, never
-- code: what a charge source is, whether it becomes a bill, which vendor it
-- is, how it is coded and who approves it.  Rules are tried in ascending
-- priority (then rule_id); the first match wins.  Every change here lands in
-- billops.audit_log (see 42_audit.sql).
-- ---------------------------------------------------------------------------

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

CREATE FUNCTION billops.setting_value(setting_name text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT value FROM billops.setting WHERE name = setting_name
$$;
COMMENT ON FUNCTION billops.setting_value(text) IS
  'The value (as text) of a billops.setting row; NULL if there is no setting of that name.';

-- ---------------------------------------------------------------------------
-- Charge sources.  A line item belongs to one charge category and one entity
-- (its invoicing entity, or its seller of record for Marketplace and partner
-- charges); category:entity is the charge source in the payable's key.
-- ---------------------------------------------------------------------------
CREATE TABLE billops.charge_category (
    category    text PRIMARY KEY CHECK (category ~ '^[a-z][a-z0-9_]*$'),
    label       text NOT NULL,
    line_grain  text CHECK (line_grain IN ('service', 'usage_account', 'service_and_account', 'cost_center', 'line_item_type')),
    description text
);
COMMENT ON TABLE billops.charge_category IS
  'Kinds of charge source. line_grain overrides the line_grain setting for this category.';
INSERT INTO billops.charge_category (category, label, line_grain, description) VALUES
  ('aws_usage',   'AWS usage',             NULL, 'Usage, recurring fees and discounts billed by an AWS invoicing entity.'),
  ('marketplace', 'AWS Marketplace seller', NULL, 'Charges whose seller of record is an AWS Marketplace seller, including their tax.'),
  ('partner',     'Partner charges',       NULL, 'Charges whose seller of record is neither AWS nor billed through Marketplace.'),
  ('tax',         'Tax',                   NULL, 'Tax on AWS charges, per invoicing entity.'),
  ('credit',      'Credits and refunds',   'line_item_type', 'Credits and refunds, per invoicing entity.'),
  ('fee',         'Fees and purchases',    NULL, 'One-time purchases and fees (upfront reservations, Savings Plans, domains, support).'),
  ('unclassified','Unclassified',          NULL, 'Line items no charge rule matched: never dropped, always an exception.');

CREATE TABLE billops.charge_rule (
    rule_id          integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    priority         integer NOT NULL,
    billing_entity   text,
    line_item_types  text[],
    bill_types       text[],
    legal_entity_pattern     text CHECK (legal_entity_pattern IS NULL OR ('' ~* legal_entity_pattern) IS NOT NULL),
    legal_entity_not_pattern text CHECK (legal_entity_not_pattern IS NULL OR ('' ~* legal_entity_not_pattern) IS NOT NULL),
    product_code_pattern     text CHECK (product_code_pattern IS NULL OR ('' ~* product_code_pattern) IS NOT NULL),
    category         text NOT NULL REFERENCES billops.charge_category ON UPDATE CASCADE,
    entity_from      text NOT NULL DEFAULT 'invoicing_entity'
                     CHECK (entity_from IN ('invoicing_entity', 'legal_entity', 'billing_entity')),
    enabled          boolean NOT NULL DEFAULT true,
    note             text
);
CREATE INDEX ON billops.charge_rule (priority, rule_id) WHERE enabled;
COMMENT ON TABLE billops.charge_rule IS
  'Maps line items to a charge category and entity. NULL matches anything; patterns are case-insensitive regular expressions.';

-- CUR has no documented "partner charge" marker; a seller of record that is
-- neither Amazon nor billed through Marketplace is the defensive reading.
INSERT INTO billops.charge_rule (priority, billing_entity, line_item_types, bill_types, legal_entity_pattern,
                                 legal_entity_not_pattern, category, entity_from, note) OVERRIDING SYSTEM VALUE VALUES
  (10, 'AWS Marketplace', NULL, NULL, NULL, NULL, 'marketplace', 'legal_entity',
   'Each Marketplace seller of record is its own charge source; its tax stays on its bill.'),
  (15, NULL, NULL, NULL, '.', '^amazon', 'partner', 'legal_entity',
   'Seller of record that is not an Amazon entity.'),
  (20, NULL, '{Tax}', NULL, NULL, NULL, 'tax', 'invoicing_entity', NULL),
  (30, NULL, '{Credit,Refund}', NULL, NULL, NULL, 'credit', 'invoicing_entity', NULL),
  (31, NULL, NULL, '{Refund}', NULL, NULL, 'credit', 'invoicing_entity', NULL),
  (40, NULL, NULL, '{Purchase}', NULL, NULL, 'fee', 'invoicing_entity', 'One-time purchases.'),
  (41, NULL, '{Fee,SavingsPlanUpfrontFee}', NULL, NULL, NULL, 'fee', 'invoicing_entity', NULL),
  (1000, NULL, NULL, NULL, NULL, NULL, 'aws_usage', 'invoicing_entity', 'Everything else is AWS usage.');
SELECT setval(pg_get_serial_sequence('billops.charge_rule', 'rule_id'), 1000);

-- Whether a charge source becomes a bill to pay or a summary to acknowledge.
CREATE TABLE billops.treatment_rule (
    rule_id          integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    priority         integer NOT NULL,
    category         text REFERENCES billops.charge_category ON UPDATE CASCADE,
    entity_pattern   text CHECK (entity_pattern IS NULL OR ('' ~* entity_pattern) IS NOT NULL),
    payer_account_id text,
    treatment        text NOT NULL CHECK (treatment IN ('invoice_like', 'usage_summary')),
    enabled          boolean NOT NULL DEFAULT true,
    note             text
);
COMMENT ON TABLE billops.treatment_rule IS
  'invoice_like: becomes a payable bill. usage_summary: routed for acknowledgement, not payment.';
INSERT INTO billops.treatment_rule (priority, category, treatment, note) OVERRIDING SYSTEM VALUE VALUES
  (10, 'marketplace', 'invoice_like', 'A Marketplace seller invoices like any supplier.'),
  (20, 'partner', 'invoice_like', 'Partner charges are supplier invoices.'),
  (30, 'fee', 'invoice_like', 'One-time purchases are paid like invoices.'),
  (1000, NULL, 'usage_summary', 'Usage, tax and credits are acknowledged against budgets, not paid as bills.');
SELECT setval(pg_get_serial_sequence('billops.treatment_rule', 'rule_id'), 1000);

-- ---------------------------------------------------------------------------
-- Vendors: one canonical vendor per supplier; aliases map AWS descriptors to it.
-- ---------------------------------------------------------------------------
CREATE TABLE billops.vendor (
    vendor_id      integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name           text NOT NULL UNIQUE CHECK (btrim(name) <> ''),
    kind           text NOT NULL DEFAULT 'other' CHECK (kind IN ('aws', 'marketplace_seller', 'partner', 'other')),
    bill_vendor_id text,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);
-- One vendor per BILL id, through a partial index on purpose: a column of a
-- partial unique index is not a key column for row locking, so the BILL
-- worker recording a vendor's id takes FOR NO KEY UPDATE, which does not block
-- (and is not blocked by) the foreign-key checks of payables that a build,
-- running concurrently, makes against the same vendor.  (With a plain UNIQUE
-- the two deadlocked: the crash matrix found it.)
CREATE UNIQUE INDEX vendor_bill_vendor_id ON billops.vendor (bill_vendor_id) WHERE bill_vendor_id IS NOT NULL;
COMMENT ON TABLE billops.vendor IS 'Canonical vendors. bill_vendor_id is BILL''s id once the vendor exists there.';

-- Descriptors are compared normalized: case, punctuation and spacing vary
-- between AWS's invoicing entity, Marketplace's seller name and the AP list.
CREATE FUNCTION billops.normalize_vendor_name(descriptor text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT btrim(regexp_replace(regexp_replace(replace(lower(descriptor), '&', ' and '),
                                               '[^[:alnum:]]+', ' ', 'g'), '\s+', ' ', 'g'))
$$;
COMMENT ON FUNCTION billops.normalize_vendor_name(text) IS
  'Lower case, & as "and", punctuation and repeated spaces removed: "Datadog, Inc." = "DATADOG INC".';

CREATE TABLE billops.vendor_alias (
    alias_id    integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    vendor_id   integer NOT NULL REFERENCES billops.vendor ON DELETE CASCADE,
    match_kind  text NOT NULL CHECK (match_kind IN ('exact', 'prefix', 'pattern')),
    pattern     text NOT NULL CHECK (btrim(pattern) <> ''),
    priority    integer NOT NULL DEFAULT 100,
    note        text,
    CHECK (match_kind <> 'pattern' OR ('' ~* pattern) IS NOT NULL)
);
-- one exact/prefix alias cannot point at two vendors
CREATE UNIQUE INDEX vendor_alias_unique ON billops.vendor_alias
    (match_kind, (CASE WHEN match_kind = 'pattern' THEN pattern ELSE billops.normalize_vendor_name(pattern) END));
COMMENT ON TABLE billops.vendor_alias IS
  'exact and prefix compare normalized names (longest prefix wins); pattern is a case-insensitive regular expression.';

INSERT INTO billops.vendor (name, kind) VALUES
  ('Amazon Web Services, Inc.', 'aws'),
  ('Amazon Web Services EMEA SARL', 'aws'),
  ('Amazon Web Services Canada, Inc.', 'aws');
INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern, note)
SELECT vendor_id, 'exact', name, 'AWS invoicing entity' FROM billops.vendor;
-- ids above 1000 are the user's own (see pg_extension_config_dump in 95_roles.sql)
SELECT setval(pg_get_serial_sequence('billops.vendor', 'vendor_id'), 1000);
SELECT setval(pg_get_serial_sequence('billops.vendor_alias', 'alias_id'), 1000);

-- ---------------------------------------------------------------------------
-- Accounts, business units and billing groups (the ownership structure).
-- ---------------------------------------------------------------------------
CREATE TABLE billops.aws_account (
    account_id    text PRIMARY KEY CHECK (account_id ~ '^[0-9]{12}$'),
    account_name  text,
    business_unit text,
    note          text
);
COMMENT ON TABLE billops.aws_account IS 'Known AWS accounts and the business unit that owns each.';

CREATE TABLE billops.billing_group (
    billing_group_id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    business_unit    text,
    description      text
);
COMMENT ON TABLE billops.billing_group IS 'Named groups of accounts (owners of cost); membership has effective dates.';
CREATE TABLE billops.billing_group_account (
    billing_group_id integer NOT NULL REFERENCES billops.billing_group ON DELETE CASCADE,
    account_id       text NOT NULL CHECK (account_id ~ '^[0-9]{12}$'),
    effective_from   date NOT NULL DEFAULT '-infinity',
    effective_to     date,
    PRIMARY KEY (account_id, effective_from),
    CHECK (effective_to IS NULL OR effective_to > effective_from)
);
COMMENT ON TABLE billops.billing_group_account IS
  'Which billing group an account belongs to, from effective_from up to (not including) effective_to. An account is in at most one group at a time.';

-- Exclusive membership.  The advisory lock serialises writers per account so
-- two concurrent inserts cannot both pass the overlap check.
CREATE FUNCTION billops._billing_group_account_check() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    other record;
BEGIN
    PERFORM pg_advisory_xact_lock(1650812931, hashtext(NEW.account_id));
    SELECT g.name, m.effective_from, m.effective_to INTO other
      FROM billops.billing_group_account m JOIN billops.billing_group g USING (billing_group_id)
     WHERE m.account_id = NEW.account_id
       AND (TG_OP = 'INSERT' OR (m.account_id, m.effective_from) <> (OLD.account_id, OLD.effective_from))
       AND daterange(m.effective_from, m.effective_to) && daterange(NEW.effective_from, NEW.effective_to)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'account % is already in billing group "%" from % to %', NEW.account_id, other.name,
              other.effective_from, coalesce(other.effective_to::text, 'open end')
              USING ERRCODE = 'exclusion_violation',
                    HINT = 'End the current membership (set effective_to) before the new one starts.';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER billing_group_account_exclusive BEFORE INSERT OR UPDATE ON billops.billing_group_account
    FOR EACH ROW EXECUTE FUNCTION billops._billing_group_account_check();

CREATE FUNCTION billops.billing_group_of(account_id text, billing_period date) RETURNS integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT m.billing_group_id FROM billops.billing_group_account m
     WHERE m.account_id = $1 AND $2 >= m.effective_from AND (m.effective_to IS NULL OR $2 < m.effective_to)
$$;
COMMENT ON FUNCTION billops.billing_group_of(text, date) IS
  'The billing_group_id an account belongs to in a billing period (billops.billing_group_account); NULL if it is in no group then.';

CREATE FUNCTION billops.business_unit_of(account_id text, billing_period date) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce((SELECT a.business_unit FROM billops.aws_account a WHERE a.account_id = $1),
                    (SELECT g.business_unit FROM billops.billing_group g
                      WHERE g.billing_group_id = billops.billing_group_of($1, $2)))
$$;
COMMENT ON FUNCTION billops.business_unit_of(text, date) IS
  'Business unit of an account in a billing period: the one set on billops.aws_account, else that of its billing group then; NULL if neither.';

-- ---------------------------------------------------------------------------
-- Required coding.  Fields map to BILL's line classifications.
-- ---------------------------------------------------------------------------
CREATE TABLE billops.coding_field (
    field               text PRIMARY KEY CHECK (field IN ('gl_account', 'department', 'class', 'location', 'project')),
    label               text NOT NULL,
    bill_classification text NOT NULL,
    required            boolean NOT NULL DEFAULT false
);
INSERT INTO billops.coding_field VALUES
  ('gl_account', 'GL account', 'chartOfAccountId', true),
  ('department', 'Department', 'departmentId', true),
  ('class', 'Class', 'accountingClassId', false),
  ('location', 'Location', 'locationId', false),
  ('project', 'Project', 'jobId', false);
COMMENT ON TABLE billops.coding_field IS
  'Coding fields on payable lines; a required field left empty sends the payable to the exception queue.';

CREATE TABLE billops.coding_rule (
    rule_id             integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    field               text NOT NULL REFERENCES billops.coding_field,
    value               text NOT NULL CHECK (btrim(value) <> ''),
    priority            integer NOT NULL DEFAULT 100,
    payer_account_id    text,
    usage_account_id    text,
    billing_group_id    integer REFERENCES billops.billing_group ON DELETE CASCADE,
    business_unit       text,
    tag_key             text,
    tag_value           text,
    cost_category_key   text,
    cost_category_value text,
    charge_category     text REFERENCES billops.charge_category ON UPDATE CASCADE,
    vendor_id           integer REFERENCES billops.vendor ON DELETE CASCADE,
    service             text,
    enabled             boolean NOT NULL DEFAULT true,
    note                text,
    CHECK (tag_value IS NULL OR tag_key IS NOT NULL),
    CHECK (cost_category_value IS NULL OR cost_category_key IS NOT NULL)
);
COMMENT ON TABLE billops.coding_rule IS
  'Fills a coding field. NULL criteria match anything; tag_key without tag_value matches any value of the tag and, '
  'when value is ''$tag'', copies the tag''s value (likewise ''$cost_category'').';

-- ---------------------------------------------------------------------------
-- Approval routing.
-- ---------------------------------------------------------------------------
CREATE TABLE billops.routing_rule (
    rule_id          integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    priority         integer NOT NULL DEFAULT 100,
    payer_account_id text,
    usage_account_id text,
    billing_group_id integer REFERENCES billops.billing_group ON DELETE CASCADE,
    business_unit    text,
    charge_category  text REFERENCES billops.charge_category ON UPDATE CASCADE,
    vendor_id        integer REFERENCES billops.vendor ON DELETE CASCADE,
    approver_role    text NOT NULL CHECK (approver_role ~ '^[A-Za-z_][A-Za-z0-9_$]*$'),
    enabled          boolean NOT NULL DEFAULT true,
    note             text
);
COMMENT ON TABLE billops.routing_rule IS
  'Owner of cost: the first matching rule per usage account names the role that approves that account''s share.';
