-- ---------------------------------------------------------------------------
-- Building payables from the visible CUR delivery of a payer and period.
--   line items → groups ("facts") → charge source, vendor, treatment, coding
--   → summarized lines rounded to the cent → one payable per dedupe key.
-- Idempotent: the same data and rules produce no change at all.  A change to
-- an approved payable becomes an adjustment; the payable stays as approved.
-- ---------------------------------------------------------------------------

-- Content of a payable that approval freezes: amount, currency, vendor,
-- treatment (bill or acknowledgement) and each line's key, amount and coding.
CREATE FUNCTION billops._content_hash(state jsonb) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT md5(jsonb_build_array(state->'amount', state->'currency', state->'vendor_id', state->'treatment',
               (SELECT coalesce(jsonb_agg(jsonb_build_array(l->'line_key', l->'amount', l->'gl_account', l->'department',
                                                            l->'class', l->'location', l->'project')
                                          ORDER BY l->>'line_key'), '[]')
                  FROM jsonb_array_elements(state->'lines') l))::text)
$$;

-- Write a state (see _build_period) to a payable and its lines.  The one
-- writer for the build and for applying an approved adjustment; lines keep
-- their line_id when their key survives.
CREATE FUNCTION billops._apply_state(target_payable_id bigint, state jsonb) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE billops.payable p SET
           amount = (state->>'amount')::numeric, exact_amount = (state->>'exact_amount')::numeric,
           currency = state->>'currency', vendor_id = (state->>'vendor_id')::integer,
           line_item_count = (state->>'line_item_count')::bigint, account_breakdown = state->'account_breakdown',
           treatment = state->>'treatment', line_grain = state->>'line_grain',
           basis_tag_keys = ARRAY(SELECT jsonb_array_elements_text(state->'basis_tag_keys')),
           basis_cost_category_keys = ARRAY(SELECT jsonb_array_elements_text(state->'basis_cost_category_keys')),
           content_hash = state->>'content_hash'
     WHERE p.payable_id = target_payable_id;
    DELETE FROM billops.payable_line l
     WHERE l.payable_id = target_payable_id
       AND l.line_key NOT IN (SELECT x->>'line_key' FROM jsonb_array_elements(state->'lines') x);
    INSERT INTO billops.payable_line AS l (payable_id, line_key, description, grain_value, amount, exact_amount,
                                           line_item_count, gl_account, department, class, location, project, fact_keys)
    SELECT target_payable_id, x->>'line_key', x->>'description', x->>'grain_value', (x->>'amount')::numeric,
           (x->>'exact_amount')::numeric, (x->>'line_item_count')::bigint, x->>'gl_account', x->>'department',
           x->>'class', x->>'location', x->>'project', ARRAY(SELECT jsonb_array_elements_text(x->'fact_keys'))
      FROM jsonb_array_elements(state->'lines') x
    ON CONFLICT (payable_id, line_key) DO UPDATE
       SET description = EXCLUDED.description, grain_value = EXCLUDED.grain_value, amount = EXCLUDED.amount,
           exact_amount = EXCLUDED.exact_amount, line_item_count = EXCLUDED.line_item_count,
           gl_account = EXCLUDED.gl_account, department = EXCLUDED.department, class = EXCLUDED.class,
           location = EXCLUDED.location, project = EXCLUDED.project, fact_keys = EXCLUDED.fact_keys
     WHERE (l.description, l.grain_value, l.amount, l.exact_amount, l.line_item_count, l.gl_account, l.department,
            l.class, l.location, l.project, l.fact_keys)
           IS DISTINCT FROM
           (EXCLUDED.description, EXCLUDED.grain_value, EXCLUDED.amount, EXCLUDED.exact_amount, EXCLUDED.line_item_count,
            EXCLUDED.gl_account, EXCLUDED.department, EXCLUDED.class, EXCLUDED.location, EXCLUDED.project,
            EXCLUDED.fact_keys);
END $$;

-- Work tables live for one transaction; dropped first when a transaction
-- builds several periods (quietly: DROP IF EXISTS would NOTICE).
CREATE FUNCTION billops._drop_temp(table_name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_temp.' || table_name) IS NOT NULL THEN
        EXECUTE format('DROP TABLE pg_temp.%I', table_name);
    END IF;
END $$;

-- A step of a multi-step build reads the work table an earlier step wrote.
-- Called on its own it says whose step it is, rather than failing on a
-- table that does not exist.
CREATE FUNCTION billops._require_work_table(table_name text, builder text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF to_regclass('pg_temp.' || table_name) IS NULL THEN
        RAISE EXCEPTION 'work table % is not there: this is a step of %', table_name, builder
              USING ERRCODE = 'object_not_in_prerequisite_state',
                    HINT = format('Call %s; its steps run in order, in one transaction.', builder);
    END IF;
END $$;

-- _compute_sources, step 1: the payer's month grouped by everything a rule
-- looks at (billops_fact), with its charge source, group and business unit.
--
-- enable_sort = off: the planner cannot know that a dozen attributes of a line
-- item are correlated, so it estimates the month's groups at a tenth of its rows
-- (494,000 for 4.94 M line items; there were 1,168) and, once that many groups
-- would not fit in work_mem, sorts the whole month on disk instead of hashing
-- (measured: 30.7 s against 9.2 s at 4.94 M rows, EXPLAIN ANALYZE of the build
-- through auto_explain).  A hash aggregate that outgrows its memory spills to
-- disk (PostgreSQL 13+), so hashing is never much worse when groups are many.
CREATE FUNCTION billops._payable_facts(period date, payer text, tag_keys text[], cc_keys text[]) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp SET enable_sort = off AS $$
DECLARE
    -- grouped by the tag and cost category values, the objects built once per group
    tg text[] := billops._jsonb_subset_grouped_sql('li.resource_tags', tag_keys, 'tag');
    cg text[] := billops._jsonb_subset_grouped_sql('li.cost_category', cc_keys, 'cc');
BEGIN
    PERFORM billops._drop_temp('billops_fact');
    EXECUTE format($q$
    CREATE TEMP TABLE billops_fact ON COMMIT DROP AS
    WITH r AS (
        SELECT li.bill_billing_entity AS be, li.bill_invoicing_entity AS ie, li.line_item_legal_entity AS le,
               li.line_item_line_item_type AS lit, li.bill_bill_type AS bt, li.line_item_product_code AS pc,
               billops._service_of(li.product, li.line_item_product_code) AS service,
               li.line_item_usage_account_id AS acct, li.line_item_currency_code AS currency
               %1$s %2$s,
               min(li.line_item_usage_account_name) AS acct_name,
               coalesce(sum(li.line_item_unblended_cost), 0) AS exact,
               count(*) AS n,
               count(*) FILTER (WHERE coalesce(li.bill_invoice_id, '') <> '') AS n_invoiced,
               -- a grouping column, not array_agg(DISTINCT): that would force a sort of
               -- the whole month; a group rarely has more than one invoice id
               nullif(li.bill_invoice_id, '') AS invoice_id
          FROM billops.cur_line_item li
         WHERE li.bill_billing_period_start_date = %7$L AND li.bill_payer_account_id = %8$L
         GROUP BY be, ie, le, lit, bt, pc, service, acct, currency %3$s %4$s, invoice_id),
    g AS (
        SELECT r.be, r.ie, r.le, r.lit, r.bt, r.pc, r.service, r.acct, r.currency, %5$s AS tags, %6$s AS ccs,
               r.acct_name, r.exact, r.n, r.n_invoiced, r.invoice_id
          FROM r),
    -- rules are evaluated once per distinct input, not once per group, and
    -- joined back on plain equality so the join hashes (the charge rules treat
    -- an empty attribute like a missing one, so '' may stand for NULL here)
    charges AS (
        SELECT d.*, c.category, c.entity
          FROM (SELECT DISTINCT coalesce(be, '') AS be, coalesce(ie, '') AS ie, coalesce(le, '') AS le,
                                coalesce(lit, '') AS lit, coalesce(bt, '') AS bt, coalesce(pc, '') AS pc FROM g) d
          CROSS JOIN LATERAL billops.charge_source_of(d.be, d.ie, d.le, d.lit, d.bt, d.pc) c),
    accounts AS (
        SELECT d.acct, billops.billing_group_of(d.acct, %7$L) AS billing_group_id,
               billops.business_unit_of(d.acct, %7$L) AS business_unit
          FROM (SELECT DISTINCT coalesce(acct, '') AS acct FROM g) d)
    SELECT g.*, billops._fact_key(g.be, g.ie, g.le, g.lit, g.bt, g.pc, g.service, g.acct, g.currency, g.tags, g.ccs) AS fact_key,
           c.category, c.entity,
           -- one charge source per AWS invoice: a Marketplace seller billed through two
           -- invoicing entities (AWS Inc. and AWS EMEA SARL) gets two invoices, so two payables
           c.category || ':' || c.entity
             || CASE WHEN coalesce(btrim(g.ie), '') IN ('', c.entity) THEN '' ELSE ' via ' || btrim(g.ie) END AS charge_source,
           a.billing_group_id, a.business_unit
      FROM g
      JOIN charges c ON c.be = coalesce(g.be, '') AND c.ie = coalesce(g.ie, '') AND c.le = coalesce(g.le, '')
                    AND c.lit = coalesce(g.lit, '') AND c.bt = coalesce(g.bt, '') AND c.pc = coalesce(g.pc, '')
      JOIN accounts a ON a.acct = coalesce(g.acct, '')
    $q$, tg[1], cg[1], tg[2], cg[2], tg[3], cg[3], period, payer);
END $$;

-- _compute_sources, step 2: each charge source's treatment, vendor and line
-- grain (billops_source).
CREATE FUNCTION billops._payable_sources(payer text, grain text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_fact', 'billops.build_payables()');
    PERFORM billops._drop_temp('billops_source');
    CREATE TEMP TABLE billops_source ON COMMIT DROP AS
    SELECT s.charge_source, s.category, s.entity, billops.treatment_of(s.category, s.entity, payer) AS treatment,
           v.vendor_id, v.match, v.detail,
           coalesce((SELECT c.line_grain FROM billops.charge_category c WHERE c.category = s.category), grain) AS grain
      FROM (SELECT DISTINCT f.charge_source, f.category, f.entity FROM billops_fact f) s
      CROSS JOIN LATERAL billops.vendor_match(s.entity) v;
END $$;

-- _compute_sources, step 3: the payable lines, coded by the coding rules and
-- rounded to the cent by largest remainder (billops_line).
CREATE FUNCTION billops._payable_lines(payer text, cc_tag text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_source', 'billops.build_payables()');
    PERFORM billops._drop_temp('billops_line');
    CREATE TEMP TABLE billops_line ON COMMIT DROP AS
    -- coding: for each group and field the first matching rule, set-based
    WITH matched AS (
        SELECT DISTINCT ON (f.fact_key, r.field) f.fact_key, r.field,
               CASE r.value WHEN '$tag' THEN f.tags->>billops.tag_key_canonical(r.tag_key)
                            WHEN '$cost_category' THEN f.ccs->>billops.tag_key_canonical(r.cost_category_key)
                            ELSE r.value END AS value
          FROM billops_fact f
          JOIN billops_source s USING (charge_source)
          JOIN billops.coding_rule r ON r.enabled
               AND (r.payer_account_id IS NULL OR r.payer_account_id = payer)
               AND (r.usage_account_id IS NULL OR r.usage_account_id = f.acct)
               AND (r.billing_group_id IS NULL OR r.billing_group_id = f.billing_group_id)
               AND (r.business_unit IS NULL OR r.business_unit = f.business_unit)
               AND (r.tag_key IS NULL OR (coalesce(f.tags->>billops.tag_key_canonical(r.tag_key), '') <> ''
                                          AND (r.tag_value IS NULL OR f.tags->>billops.tag_key_canonical(r.tag_key) = r.tag_value)))
               AND (r.cost_category_key IS NULL OR (coalesce(f.ccs->>billops.tag_key_canonical(r.cost_category_key), '') <> ''
                                                    AND (r.cost_category_value IS NULL
                                                         OR f.ccs->>billops.tag_key_canonical(r.cost_category_key) = r.cost_category_value)))
               AND (r.charge_category IS NULL OR r.charge_category = f.category)
               AND (r.vendor_id IS NULL OR r.vendor_id = s.vendor_id)
               AND (r.service IS NULL OR r.service = f.service)
         ORDER BY f.fact_key, r.field, r.priority, r.rule_id),
    coding AS (
        SELECT m.fact_key,
               max(m.value) FILTER (WHERE m.field = 'gl_account') AS gl_account,
               max(m.value) FILTER (WHERE m.field = 'department') AS department,
               max(m.value) FILTER (WHERE m.field = 'class') AS class,
               max(m.value) FILTER (WHERE m.field = 'location') AS location,
               max(m.value) FILTER (WHERE m.field = 'project') AS project
          FROM matched m GROUP BY m.fact_key),
    coded AS (
        SELECT f.*, s.vendor_id, s.grain, cd.gl_account, cd.department, cd.class, cd.location, cd.project,
               CASE s.grain
                    WHEN 'service' THEN f.service
                    WHEN 'usage_account' THEN coalesce(f.acct, '(no account)')
                    WHEN 'service_and_account' THEN f.service || ' / ' || coalesce(f.acct, '(no account)')
                    WHEN 'cost_center' THEN coalesce(nullif(f.tags->>billops.tag_key_canonical(cc_tag), ''), '(no cost center)')
                    ELSE coalesce(f.lit, '(no type)') END AS grain_value
          FROM billops_fact f JOIN billops_source s USING (charge_source)
          LEFT JOIN coding cd USING (fact_key)),
    lines AS (
        SELECT c.charge_source, c.grain_value,
               c.gl_account, c.department, c.class, c.location, c.project,
               jsonb_build_array(c.grain_value, c.gl_account, c.department, c.class, c.location, c.project)::text AS line_key,
               CASE WHEN min(c.grain) IN ('usage_account')
                    THEN c.grain_value || coalesce(' ' || (SELECT a.account_name FROM billops.aws_account a WHERE a.account_id = c.grain_value),
                                                   ' ' || min(c.acct_name), '')
                    ELSE c.grain_value END AS description,
               sum(c.exact) AS exact, sum(c.n) AS n,
               array_agg(DISTINCT c.fact_key ORDER BY c.fact_key) AS fact_keys
          FROM coded c
         GROUP BY c.charge_source, c.grain_value, c.gl_account, c.department, c.class, c.location, c.project),
    -- round each line down to the cent, then give the cents the payable's
    -- rounded total still needs to the lines with the largest remainders
    floored AS (
        SELECT l.*, floor(l.exact * 100) / 100 AS fl, l.exact * 100 - floor(l.exact * 100) AS rem,
               round(sum(l.exact) OVER (PARTITION BY l.charge_source), 2) AS target
          FROM lines l),
    ranked AS (
        SELECT f.*, round((f.target - sum(f.fl) OVER (PARTITION BY f.charge_source)) * 100)::int AS cents,
               row_number() OVER (PARTITION BY f.charge_source ORDER BY f.rem DESC, f.line_key) AS rn
          FROM floored f)
    SELECT r.charge_source, r.line_key, r.description, r.grain_value, r.exact, r.n, r.fact_keys,
           r.gl_account, r.department, r.class, r.location, r.project,
           (r.fl + CASE WHEN r.rn <= r.cents THEN 0.01 ELSE 0 END)::numeric(16,2) AS amount
      FROM ranked r;
END $$;

-- The new state of every charge source of one payer and period, computed
-- from the visible line items and the current rules.  One row per source:
-- (charge_source, category, entity, state jsonb, meta jsonb, exceptions jsonb).
-- Steps 1-3 build the work tables billops_fact, billops_source and
-- billops_line (ON COMMIT DROP); the last step assembles each source's state.
CREATE FUNCTION billops._compute_sources(period date, payer text)
RETURNS TABLE (charge_source text, category text, entity text, state jsonb, meta jsonb, exceptions jsonb)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    tag_keys text[];
    cc_keys  text[];
    grain    text := billops.setting_value('line_grain');
    cc_tag   text := billops.setting_value('cost_center_tag');
BEGIN
    tag_keys := ARRAY(SELECT DISTINCT k FROM (
                    SELECT r.tag_key AS k FROM billops.coding_rule r WHERE r.enabled AND r.tag_key IS NOT NULL
                    UNION ALL
                    SELECT cc_tag WHERE grain = 'cost_center'
                       OR EXISTS (SELECT FROM billops.charge_category c WHERE c.line_grain = 'cost_center')) t
                  ORDER BY k);
    cc_keys := ARRAY(SELECT DISTINCT r.cost_category_key FROM billops.coding_rule r
                      WHERE r.enabled AND r.cost_category_key IS NOT NULL ORDER BY 1);

    PERFORM billops._payable_facts(period, payer, tag_keys, cc_keys);
    PERFORM billops._payable_sources(payer, grain);
    PERFORM billops._payable_lines(payer, cc_tag);

    -- 4. each source's state: amount, lines, invoice state and exceptions
    RETURN QUERY
    WITH per_source AS (
        SELECT f.charge_source, round(sum(f.exact), 2) AS amount, sum(f.exact) AS exact, sum(f.n) AS n,
               sum(f.n_invoiced) AS n_invoiced, min(f.currency) AS currency,
               count(DISTINCT f.currency) AS currencies,
               (SELECT coalesce(jsonb_agg(DISTINCT f2.invoice_id ORDER BY f2.invoice_id), '[]') FROM billops_fact f2
                 WHERE f2.charge_source = f.charge_source AND f2.invoice_id IS NOT NULL) AS invoice_ids,
               (SELECT jsonb_object_agg(a.acct, a.amt) FROM (
                    SELECT coalesce(f3.acct, '') AS acct, round(sum(f3.exact), 2) AS amt FROM billops_fact f3
                     WHERE f3.charge_source = f.charge_source GROUP BY 1) a) AS breakdown,
               count(*) FILTER (WHERE f.category = 'unclassified') AS unclassified
          FROM billops_fact f GROUP BY f.charge_source),
    per_lines AS (
        SELECT l.charge_source,
               jsonb_agg(jsonb_build_object('line_key', l.line_key, 'description', l.description,
                         'grain_value', l.grain_value, 'amount', l.amount, 'exact_amount', l.exact,
                         'line_item_count', l.n, 'gl_account', l.gl_account, 'department', l.department,
                         'class', l.class, 'location', l.location, 'project', l.project,
                         'fact_keys', to_jsonb(l.fact_keys)) ORDER BY l.line_key) AS lines
          FROM billops_line l GROUP BY l.charge_source),
    missing AS (
        SELECT l.charge_source, cf.field, cf.label, count(*) AS lines, sum(l.amount) AS amount
          FROM billops_line l CROSS JOIN billops.coding_field cf
         WHERE cf.required AND CASE cf.field WHEN 'gl_account' THEN l.gl_account WHEN 'department' THEN l.department
                                             WHEN 'class' THEN l.class WHEN 'location' THEN l.location
                                             ELSE l.project END IS NULL
         GROUP BY l.charge_source, cf.field, cf.label),
    assembled AS (
        SELECT s.charge_source, s.category, s.entity,
               jsonb_build_object('amount', ps.amount, 'exact_amount', ps.exact, 'currency', coalesce(ps.currency, 'USD'),
                   'vendor_id', s.vendor_id, 'line_item_count', ps.n, 'account_breakdown', coalesce(ps.breakdown, '{}'),
                   'treatment', s.treatment, 'line_grain', s.grain, 'basis_tag_keys', to_jsonb(tag_keys),
                   'basis_cost_category_keys', to_jsonb(cc_keys), 'lines', pl.lines) AS state,
               jsonb_build_object('invoice_state', CASE WHEN ps.n_invoiced = 0 THEN 'preliminary'
                                                       WHEN ps.n_invoiced = ps.n THEN 'final' ELSE 'partially_invoiced' END,
                                  'aws_invoice_ids', ps.invoice_ids) AS meta,
               (SELECT coalesce(jsonb_agg(e ORDER BY e->>'code', e->>'field'), '[]') FROM (
                    SELECT jsonb_build_object('code', 'unknown_vendor', 'message',
                           format('no vendor alias matches "%s" (%s)', s.entity, s.category),
                           'hint', 'Add the vendor, or an alias to an existing one, in billops.vendor / billops.vendor_alias.') AS e
                     WHERE s.match = 'unknown'
                    UNION ALL
                    SELECT jsonb_build_object('code', 'ambiguous_vendor', 'message',
                           format('"%s" matches more than one vendor: %s', s.entity, s.detail),
                           'hint', 'Make one alias more specific or give pattern aliases different priorities.')
                     WHERE s.match = 'ambiguous'
                    UNION ALL
                    SELECT jsonb_build_object('code', 'missing_coding', 'field', m.field, 'message',
                           format('%s is missing on %s of %s lines (%s %s)', m.label, m.lines,
                                  jsonb_array_length(pl.lines), ps.currency, m.amount),
                           'hint', 'Add a billops.coding_rule for this field.')
                      FROM missing m WHERE m.charge_source = s.charge_source
                    UNION ALL
                    SELECT jsonb_build_object('code', 'mixed_currency', 'message',
                           format('line items in %s currencies', ps.currencies))
                     WHERE ps.currencies > 1
                    UNION ALL
                    SELECT jsonb_build_object('code', 'unclassified', 'message',
                           'no billops.charge_rule matched these line items', 'hint', 'Add a charge rule.')
                     WHERE ps.unclassified > 0) x) AS exceptions
          FROM billops_source s JOIN per_source ps USING (charge_source) JOIN per_lines pl USING (charge_source))
    SELECT a.charge_source, a.category, a.entity,
           a.state || jsonb_build_object('content_hash', billops._content_hash(a.state)),
           a.meta, a.exceptions
      FROM assembled a;
END $$;

-- Bring one payer and period's payables up to date.
-- sources: 'cur' builds a payer's payables from its visible CUR delivery;
-- 'chargeback' builds the internal chargeback payables from the period's
-- statements (payer 'chargeback', see 61_statements.sql).  Both then go
-- through the same lifecycle: created, updated while not approved, an
-- adjustment once approved.
CREATE FUNCTION billops._build_period(period date, payer text, visible_delivery bigint, visible_assembly text,
                                      sources text DEFAULT 'cur')
RETURNS TABLE (payable_id bigint, dedupe_key text, action text, status text, amount numeric)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
DECLARE
    src     record;
    p       billops.payable;
    adj     billops.payable_adjustment;
    meta    jsonb;
    exc     jsonb;
    act     text;
    inv_ids text[];
    new_status text;
BEGIN
    -- one build per payer and period at a time
    PERFORM pg_advisory_xact_lock(1650812932, hashtext(payer || '|' || period));

    PERFORM billops._drop_temp('billops_new');
    IF sources = 'chargeback' THEN
        CREATE TEMP TABLE billops_new ON COMMIT DROP AS SELECT * FROM billops._compute_chargeback_sources(period);
    ELSE
        CREATE TEMP TABLE billops_new ON COMMIT DROP AS SELECT * FROM billops._compute_sources(period, payer);
    END IF;
    -- sources that vanished from the delivery: their state is "nothing"
    INSERT INTO billops_new
    SELECT x.charge_source, x.category, x.source_entity,
           e.state || jsonb_build_object('content_hash', billops._content_hash(e.state)),
           jsonb_build_object('invoice_state', x.invoice_state, 'aws_invoice_ids', to_jsonb(x.aws_invoice_ids)), '[]'
      FROM billops.payable x
      CROSS JOIN LATERAL (SELECT jsonb_build_object('amount', 0, 'exact_amount', 0, 'currency', x.currency,
                     'vendor_id', x.vendor_id, 'line_item_count', 0, 'account_breakdown', '{}'::jsonb,
                     'treatment', x.treatment, 'line_grain', x.line_grain, 'basis_tag_keys', to_jsonb(x.basis_tag_keys),
                     'basis_cost_category_keys', to_jsonb(x.basis_cost_category_keys), 'lines', '[]'::jsonb) AS state) e
     WHERE x.payer_account_id = payer AND x.billing_period = period
       AND x.charge_source NOT IN (SELECT n.charge_source FROM billops_new n);

    FOR src IN SELECT * FROM billops_new n ORDER BY n.charge_source LOOP
        meta := src.meta || jsonb_build_object('delivery_id', visible_delivery, 'assembly_id', visible_assembly);
        inv_ids := ARRAY(SELECT jsonb_array_elements_text(src.meta->'aws_invoice_ids'));
        SELECT * INTO p FROM billops.payable x
         WHERE x.payer_account_id = payer AND x.billing_period = period AND x.charge_source = src.charge_source
           FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO billops.payable (payer_account_id, billing_period, charge_source, category, source_entity,
                                         treatment, status, exceptions, invoice_state, aws_invoice_ids,
                                         delivery_id, assembly_id)
            VALUES (payer, period, src.charge_source, src.category, src.entity, src.state->>'treatment',
                    CASE WHEN jsonb_array_length(src.exceptions) > 0 THEN 'exception' ELSE 'draft' END,
                    src.exceptions, meta->>'invoice_state',
                    inv_ids, visible_delivery, visible_assembly)
            RETURNING * INTO p;
            PERFORM billops._apply_state(p.payable_id, src.state);
            act := 'created';
        ELSIF p.status = 'voided' THEN
            act := 'voided';
        ELSE
            act := 'unchanged';
            -- AWS references (invoice id on the final delivery) are recorded even when locked
            IF (p.invoice_state, p.aws_invoice_ids, p.delivery_id, p.assembly_id) IS DISTINCT FROM
               (meta->>'invoice_state', inv_ids,
                visible_delivery, visible_assembly) THEN
                UPDATE billops.payable x SET invoice_state = meta->>'invoice_state',
                       aws_invoice_ids = inv_ids,
                       delivery_id = visible_delivery, assembly_id = visible_assembly
                 WHERE x.payable_id = p.payable_id;
                act := CASE WHEN p.invoice_state <> meta->>'invoice_state' THEN 'updated_' || (meta->>'invoice_state')
                            ELSE 'updated' END;
            END IF;

            IF billops._payable_locked(p.status) THEN
                SELECT * INTO adj FROM billops.payable_adjustment a
                 WHERE a.payable_id = p.payable_id AND a.status IN ('draft', 'exception', 'routed') FOR UPDATE;
                IF src.state->>'content_hash' = p.content_hash THEN
                    IF adj.adjustment_id IS NOT NULL THEN
                        UPDATE billops.payable_adjustment a SET status = 'voided',
                               void_reason = 'AWS data matches the approved payable again'
                         WHERE a.adjustment_id = adj.adjustment_id;
                        UPDATE billops.approval_step s SET status = 'superseded'
                         WHERE s.adjustment_id = adj.adjustment_id AND s.status = 'pending';
                        act := 'adjustment_voided';
                    END IF;
                ELSIF adj.adjustment_id IS NULL THEN
                    INSERT INTO billops.payable_adjustment (payable_id, adjustment_no, status, reason, previous_amount,
                                new_amount, new_state, content_hash, exceptions, invoice_state, aws_invoice_ids,
                                delivery_id, assembly_id)
                    VALUES (p.payable_id,
                            (SELECT coalesce(max(a.adjustment_no), 0) + 1 FROM billops.payable_adjustment a
                              WHERE a.payable_id = p.payable_id),
                            CASE WHEN jsonb_array_length(src.exceptions) > 0 THEN 'exception' ELSE 'draft' END,
                            coalesce(src.meta->>'change_reason', format('AWS delivery %s changed the payable after approval', visible_assembly)),
                            p.amount, (src.state->>'amount')::numeric, src.state, src.state->>'content_hash',
                            src.exceptions, meta->>'invoice_state',
                            inv_ids, visible_delivery, visible_assembly);
                    act := 'adjustment_created';
                ELSIF adj.content_hash <> src.state->>'content_hash'
                      OR coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(adj.exceptions) e
                                    WHERE e->>'code' NOT IN ('rejected', 'approver_missing')), '[]') <> src.exceptions THEN
                    -- different new figures: the adjustment is re-decided from scratch
                    UPDATE billops.approval_step s SET status = 'superseded'
                     WHERE s.adjustment_id = adj.adjustment_id AND s.status = 'pending';
                    UPDATE billops.payable_adjustment a SET
                           status = CASE WHEN jsonb_array_length(src.exceptions) > 0 THEN 'exception' ELSE 'draft' END,
                           new_amount = (src.state->>'amount')::numeric, new_state = src.state,
                           content_hash = src.state->>'content_hash', exceptions = src.exceptions,
                           reason = coalesce(src.meta->>'change_reason', format('AWS delivery %s changed the payable after approval', visible_assembly)),
                           invoice_state = meta->>'invoice_state',
                           aws_invoice_ids = inv_ids,
                           delivery_id = visible_delivery, assembly_id = visible_assembly
                     WHERE a.adjustment_id = adj.adjustment_id;
                    act := 'adjustment_updated';
                ELSIF (adj.invoice_state, adj.aws_invoice_ids, adj.delivery_id, adj.assembly_id) IS DISTINCT FROM
                      (meta->>'invoice_state', inv_ids,
                       visible_delivery, visible_assembly) THEN
                    -- same figures from a newer delivery (e.g. now final): keep the decision, note the source
                    UPDATE billops.payable_adjustment a SET invoice_state = meta->>'invoice_state',
                           aws_invoice_ids = inv_ids,
                           delivery_id = visible_delivery, assembly_id = visible_assembly
                     WHERE a.adjustment_id = adj.adjustment_id;
                END IF;
            ELSE
                -- not yet approved: update in place; a routed payable whose content changed is routed again
                exc := src.exceptions;
                IF src.state->>'content_hash' = p.content_hash THEN
                    -- same data: a rejection stands until someone reopens the payable; a
                    -- routing problem is retried by _auto_route, not flipped here
                    exc := exc || coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(p.exceptions) e
                                             WHERE e->>'code' IN ('rejected', 'approver_missing')), '[]');
                ELSE
                    PERFORM billops._apply_state(p.payable_id, src.state);
                    act := CASE WHEN act LIKE 'updated\_%' THEN act ELSE 'updated' END;  -- keep "became final"
                END IF;
                new_status := CASE WHEN jsonb_array_length(exc) > 0 THEN 'exception'
                                   WHEN p.status = 'exception' THEN 'draft'
                                   WHEN p.status = 'routed' AND src.state->>'content_hash' <> p.content_hash THEN 'draft'
                                   ELSE p.status END;
                IF new_status <> p.status OR exc <> p.exceptions THEN
                    UPDATE billops.payable x SET exceptions = exc, status = new_status WHERE x.payable_id = p.payable_id;
                    IF act = 'unchanged' THEN act := 'updated'; END IF;
                END IF;
            END IF;
        END IF;
        SELECT x.payable_id, x.dedupe_key, x.status, x.amount INTO p.payable_id, p.dedupe_key, p.status, p.amount
          FROM billops.payable x WHERE x.payable_id = p.payable_id;
        payable_id := p.payable_id; dedupe_key := p.dedupe_key; action := act; status := p.status; amount := p.amount;
        RETURN NEXT;
    END LOOP;
END $$;

-- work_mem: the month's groups hash in memory (see _payable_facts).
-- jit = off: compiling the build's statements took longer than it saved
-- (the grouping of 4.94 M line items: 3.9 s with JIT, 3.4 s without), and
-- under _payable_facts' enable_sort = off a small statement that has to sort
-- is costed past jit_above_cost and was compiled for 250-340 ms each.
CREATE FUNCTION billops.build_payables(billing_period date DEFAULT NULL, payer_account_id text DEFAULT NULL)
RETURNS TABLE (payable_id bigint, dedupe_key text, action text, status text, amount numeric)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' SET work_mem = '64MB' SET jit = off AS $$
#variable_conflict use_column
DECLARE
    part  record;
    built integer := 0;
BEGIN
    IF $1 IS NOT NULL AND extract(day FROM $1) <> 1 THEN
        RAISE EXCEPTION 'billing_period must be the first day of a month, not %', $1
              USING ERRCODE = 'invalid_parameter_value', HINT = 'For example date ''2024-02-01''.';
    END IF;
    FOR part IN SELECT cp.billing_period, cp.payer_account_id, cp.delivery_id, d.assembly_id
                  FROM billops.cur_partition cp JOIN billops.cur_delivery d USING (delivery_id)
                 WHERE ($1 IS NULL OR cp.billing_period = $1) AND ($2 IS NULL OR cp.payer_account_id = $2)
                 ORDER BY cp.billing_period, cp.payer_account_id
    LOOP
        RETURN QUERY SELECT * FROM billops._build_period(part.billing_period, part.payer_account_id,
                                                         part.delivery_id, part.assembly_id);
        RETURN QUERY SELECT * FROM billops._auto_route(part.billing_period, part.payer_account_id);
        built := built + 1;
    END LOOP;
    IF built = 0 THEN
        RAISE NOTICE 'no CUR data is loaded for %', concat_ws(' ', 'payer ' || $2, 'period ' || $1)
              USING HINT = 'Load a delivery with CALL billops.sync_cur_source() first.';
    END IF;
END $$;
COMMENT ON FUNCTION billops.build_payables(date, text) IS
  'Builds or updates the payables of every loaded payer and period (or one of each) from the visible CUR delivery; '
  'routes those ready for approval. Idempotent. Returns one row per payable touched, with what happened.';
