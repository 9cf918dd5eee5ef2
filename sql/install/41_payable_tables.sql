-- ---------------------------------------------------------------------------
-- Payables: one per payer_account + billing_period + charge_source, with
-- summarized lines, approval steps and adjustments.  Lifecycle, approval
-- lock and audit are enforced by triggers (43_payable_lifecycle.sql).
-- ---------------------------------------------------------------------------

-- The dedupe key is also the invoice number pg_billops gives the bill in BILL.
CREATE FUNCTION billops.payable_dedupe_key(payer_account_id text, billing_period date, charge_source text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
    SELECT payer_account_id || '|' || extract(year FROM billing_period)::int || '-'
           || lpad(extract(month FROM billing_period)::int::text, 2, '0') || '|' || charge_source
$$;
COMMENT ON FUNCTION billops.payable_dedupe_key(text, date, text) IS
  'The unique key of a payable: ''<payer>|<YYYY-MM>|<charge source>''; BILL invoice numbers are derived from it (billops.bill_invoice_number).';

CREATE TABLE billops.payable_status (
    status      text PRIMARY KEY,
    locked      boolean NOT NULL,
    description text NOT NULL
);
INSERT INTO billops.payable_status VALUES
  ('draft',     false, 'Built from AWS data; not yet routed for approval.'),
  ('exception', false, 'Cannot proceed: see exceptions (unknown vendor, missing coding, rejection...).'),
  ('routed',    false, 'Waiting for approval steps.'),
  ('approved',  true,  'Approved (a usage summary: acknowledged). Amounts, lines, vendor and coding are frozen.'),
  ('scheduled', true,  'Payment scheduled.'),
  ('paid',      true,  'Paid.'),
  ('voided',    true,  'Voided explicitly; terminal.');

-- The legal lifecycle.  Anything not listed is refused by trigger (BO001).
CREATE TABLE billops.payable_transition (
    from_status text NOT NULL REFERENCES billops.payable_status,
    to_status   text NOT NULL REFERENCES billops.payable_status,
    description text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO billops.payable_transition VALUES
  ('draft', 'routed', 'route for approval'),
  ('draft', 'exception', 'a check failed'),
  ('draft', 'voided', 'void'),
  ('exception', 'draft', 'the problem was fixed'),
  ('exception', 'voided', 'void'),
  ('routed', 'approved', 'every approval step approved'),
  ('routed', 'draft', 'the AWS data changed before approval: route again'),
  ('routed', 'exception', 'rejected, or a check failed'),
  ('routed', 'voided', 'void'),
  ('approved', 'scheduled', 'payment scheduled'),
  ('approved', 'voided', 'void (explicit, audited)'),
  ('scheduled', 'approved', 'payment schedule cancelled, or the payment failed'),
  ('scheduled', 'paid', 'paid'),
  ('paid', 'approved', 'the payment failed or was voided in BILL after it was reported paid');

CREATE TABLE billops.payable (
    payable_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payer_account_id  text NOT NULL,
    billing_period    date NOT NULL CHECK (extract(day FROM billing_period) = 1),
    charge_source     text NOT NULL,
    dedupe_key        text GENERATED ALWAYS AS (billops.payable_dedupe_key(payer_account_id, billing_period, charge_source)) STORED,
    category          text NOT NULL REFERENCES billops.charge_category ON UPDATE CASCADE,
    source_entity     text NOT NULL,
    treatment         text NOT NULL CHECK (treatment IN ('invoice_like', 'usage_summary')),
    vendor_id         integer REFERENCES billops.vendor,
    status            text NOT NULL DEFAULT 'draft' REFERENCES billops.payable_status,
    currency          text NOT NULL DEFAULT 'USD',
    amount            numeric(16,2) NOT NULL DEFAULT 0,
    exact_amount      numeric NOT NULL DEFAULT 0,
    line_item_count   bigint NOT NULL DEFAULT 0,
    content_hash      text,
    account_breakdown jsonb NOT NULL DEFAULT '{}',
    invoice_state     text NOT NULL DEFAULT 'preliminary' CHECK (invoice_state IN ('preliminary', 'final', 'partially_invoiced')),
    aws_invoice_ids   text[] NOT NULL DEFAULT '{}',
    delivery_id       bigint REFERENCES billops.cur_delivery,
    assembly_id       text,
    basis_tag_keys    text[] NOT NULL DEFAULT '{}',
    basis_cost_category_keys text[] NOT NULL DEFAULT '{}',
    line_grain        text NOT NULL DEFAULT 'service',
    exceptions        jsonb NOT NULL DEFAULT '[]',
    routing_round     integer NOT NULL DEFAULT 0,
    system_generated  boolean NOT NULL DEFAULT true,
    void_reason       text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    routed_at         timestamptz,
    approved_at       timestamptz,
    voided_at         timestamptz,
    CONSTRAINT payable_dedupe UNIQUE (payer_account_id, billing_period, charge_source),
    CHECK (jsonb_typeof(exceptions) = 'array')
);
CREATE UNIQUE INDEX payable_dedupe_key ON billops.payable (dedupe_key);
CREATE INDEX ON billops.payable (billing_period, status);
COMMENT ON TABLE billops.payable IS
  'One payable per payer_account + billing_period + charge_source (dedupe_key). Lifecycle, approval lock and audit are enforced by triggers.';
COMMENT ON COLUMN billops.payable.exact_amount IS 'Sum of line_item_unblended_cost before rounding to the cent.';
COMMENT ON COLUMN billops.payable.content_hash IS 'Hash of amount, vendor and lines: what the approval lock protects.';
COMMENT ON COLUMN billops.payable.exceptions IS 'Why the payable cannot proceed: [{"code": ..., "message": ...}].';

CREATE TABLE billops.payable_line (
    line_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payable_id       bigint NOT NULL REFERENCES billops.payable,
    line_key         text NOT NULL,
    description      text NOT NULL,
    grain_value      text,
    amount           numeric(16,2) NOT NULL,
    exact_amount     numeric NOT NULL,
    line_item_count  bigint NOT NULL,
    gl_account       text,
    department       text,
    class            text,
    location         text,
    project          text,
    fact_keys        text[] NOT NULL,
    UNIQUE (payable_id, line_key)
);
COMMENT ON TABLE billops.payable_line IS
  'Summarized lines (grain: setting line_grain, plus coding). Their amounts sum to the payable''s to the cent; '
  'billops.payable_line_items(payable_id, line_id) lists the line items behind each.';

CREATE TABLE billops.payable_adjustment (
    adjustment_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payable_id        bigint NOT NULL REFERENCES billops.payable,
    adjustment_no     integer NOT NULL,
    status            text NOT NULL DEFAULT 'draft'
                      CHECK (status IN ('draft', 'exception', 'routed', 'approved', 'voided')),
    reason            text NOT NULL,
    previous_amount   numeric(16,2) NOT NULL,
    new_amount        numeric(16,2) NOT NULL,
    delta             numeric(16,2) GENERATED ALWAYS AS (new_amount - previous_amount) STORED,
    new_state         jsonb NOT NULL,
    content_hash      text NOT NULL,
    exceptions        jsonb NOT NULL DEFAULT '[]',
    invoice_state     text,
    aws_invoice_ids   text[],
    delivery_id       bigint REFERENCES billops.cur_delivery,
    assembly_id       text,
    routing_round     integer NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    approved_at       timestamptz,
    void_reason       text,
    UNIQUE (payable_id, adjustment_no)
);
-- at most one adjustment in flight per payable: later AWS changes update it
CREATE UNIQUE INDEX payable_adjustment_open ON billops.payable_adjustment (payable_id)
    WHERE status IN ('draft', 'exception', 'routed');
COMMENT ON TABLE billops.payable_adjustment IS
  'A change from AWS to an approved payable: routed for its own approval, applied to the payable only when approved.';

CREATE TABLE billops.approval_step (
    step_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payable_id     bigint NOT NULL REFERENCES billops.payable,
    adjustment_id  bigint REFERENCES billops.payable_adjustment,
    routing_round  integer NOT NULL,
    seq            integer NOT NULL,
    step_name      text NOT NULL CHECK (step_name IN ('finance_review', 'owner', 'finops_owner', 'finance_leadership')),
    approver_role  text NOT NULL,
    reason         text NOT NULL,
    status         text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected', 'superseded')),
    decided_by     name,
    decided_at     timestamptz,
    comment        text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON billops.approval_step (payable_id, routing_round);
CREATE INDEX ON billops.approval_step (approver_role) WHERE status = 'pending';
COMMENT ON TABLE billops.approval_step IS
  'Approval steps of a payable (or of its adjustment): all steps of one seq must approve before the next seq is asked.';
COMMENT ON TABLE billops.payable_status IS 'Payable states; locked states freeze amounts, lines, vendor and coding.';
COMMENT ON TABLE billops.payable_transition IS 'The legal lifecycle transitions; any other is refused with SQLSTATE BO001.';

-- Every change of a payable, its lines, adjustments, approval steps and the
-- allowed transitions lands in billops.audit_log.
SELECT billops._audit_tables(
    ARRAY['payable_transition', 'payable', 'payable_line', 'payable_adjustment', 'approval_step'],
    ARRAY['from_status', 'payable_id', 'line_id', 'adjustment_id', 'step_id']);
