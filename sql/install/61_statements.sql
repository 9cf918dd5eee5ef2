-- ---------------------------------------------------------------------------
-- Pro forma statements: per billing group and period, AWS cost, the internal
-- (pro forma) cost after the group's pricing plan and custom line items, and
-- the margin, by kind, payer, account and service.  Built from the visible
-- CUR deliveries by billops.build_statements(period); rebuilding replaces the
-- period's statements.
--
-- Ties out to the cent: every amount is computed exactly, then rounded once
-- -- the period's AWS total and margin to the cent, shared among groups by
-- largest remainder, then each group's among its lines -- so the groups (with
-- "unallocated") add up to the AWS total, and pro forma = AWS + margin on
-- every line and every statement.
-- ---------------------------------------------------------------------------

CREATE TABLE billops.statement (
    statement_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    billing_period    date NOT NULL,
    billing_group_id  integer REFERENCES billops.billing_group ON DELETE CASCADE,  -- NULL: unallocated
    group_name        text NOT NULL,
    currency          text NOT NULL DEFAULT 'USD',
    aws_cost          numeric(16, 2) NOT NULL,
    proforma_cost     numeric(16, 2) NOT NULL,
    margin            numeric(16, 2) GENERATED ALWAYS AS (proforma_cost - aws_cost) STORED,
    margin_percentage numeric(9, 2) GENERATED ALWAYS AS
                      (CASE WHEN aws_cost <> 0 THEN round((proforma_cost - aws_cost) / abs(aws_cost) * 100, 2) END) STORED,
    line_items        bigint NOT NULL,       -- CUR line items behind it
    built_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE NULLS NOT DISTINCT (billing_period, billing_group_id)
);
COMMENT ON TABLE billops.statement IS
  'Pro forma statement of a billing group (NULL: unallocated cost) for a period: AWS cost, pro forma cost, margin.';

CREATE TABLE billops.statement_line (
    statement_id        bigint NOT NULL REFERENCES billops.statement ON DELETE CASCADE,
    line_no             integer NOT NULL,
    kind                text NOT NULL CHECK (kind IN ('aws', 'shared', 'fee', 'credit')),
    payer_account_id    text,
    usage_account_id    text,
    service             text,
    description         text NOT NULL,
    aws_cost            numeric(16, 2) NOT NULL,
    proforma_cost       numeric(16, 2) NOT NULL,
    margin              numeric(16, 2) GENERATED ALWAYS AS (proforma_cost - aws_cost) STORED,
    pricing_rule_id     integer,
    shared_cost_rule_id integer,
    custom_line_item_id integer,
    PRIMARY KEY (statement_id, line_no)
);
COMMENT ON TABLE billops.statement_line IS
  'A statement by kind (aws: own cost; shared: a share of a central service; fee/credit: custom line items), payer, account and service.';

-- Graduated tiers: each tier's percentage applies to the part of the total inside it.
CREATE FUNCTION billops._tier_adjustment(total numeric, tiers jsonb) RETURNS numeric
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT coalesce(sum(greatest(0, least(greatest(total, 0), coalesce(t.upper, greatest(total, 0))) - t.lower)
                        * t.pct / 100), 0)
      FROM (SELECT coalesce(lag((v->>'up_to')::numeric) OVER (ORDER BY i), 0) AS lower,
                   (v->>'up_to')::numeric AS upper, (v->>'percentage')::numeric AS pct
              FROM jsonb_array_elements(tiers) WITH ORDINALITY x(v, i)) t
$$;

-- Round exact amounts to cents so that, within each partition, they add up to
-- the partition's target (itself a rounded amount): floor every amount to the
-- cent, then give the missing cents to the largest remainders.  Works on a
-- temp table in place: exact_col -> out_col, with target_col per row.
CREATE FUNCTION billops._round_to_target(tbl text, part_col text, key_col text, exact_col text,
                                         target_col text, out_col text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    EXECUTE format($q$
        UPDATE %1$I t SET %6$I = r.fl + CASE WHEN r.rn <= r.cents THEN 0.01 ELSE 0 END
          FROM (SELECT f.%3$I AS k, f.fl,
                       round((f.%5$I - sum(f.fl) OVER (PARTITION BY f.%2$I)) * 100)::bigint AS cents,
                       row_number() OVER (PARTITION BY f.%2$I ORDER BY f.rem DESC, f.%3$I) AS rn
                  FROM (SELECT x.%2$I, x.%3$I, x.%5$I, floor(x.%4$I * 100) / 100 AS fl,
                               x.%4$I * 100 - floor(x.%4$I * 100) AS rem
                          FROM %1$I x) f) r
         WHERE t.%3$I = r.k$q$, tbl, part_col, key_col, exact_col, target_col, out_col);
END $$;

-- build_statements, step 1: the month, grouped by everything a rule can look at
CREATE FUNCTION billops._statements_facts(period date) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    tag_keys text[];
    cc_keys  text[];
BEGIN
    tag_keys := ARRAY(SELECT DISTINCT k FROM (
                    SELECT r.tag_key AS k FROM billops.allocation_rule r WHERE r.tag_key IS NOT NULL
                    UNION ALL SELECT s.tag_key FROM billops.shared_cost_rule s WHERE s.tag_key IS NOT NULL) t ORDER BY 1);
    cc_keys := ARRAY(SELECT DISTINCT r.cost_category_key FROM billops.allocation_rule r
                      WHERE r.cost_category_key IS NOT NULL ORDER BY 1);

    PERFORM billops._drop_temp('billops_cb_fact');
    -- the CUR, and FOCUS exports of accounts it does not hold: summed per day already (the daily rollup)
    -- unless a rule reads tags or cost categories, which only the line items have
    EXECUTE format($q$
    CREATE TEMP TABLE billops_cb_fact ON COMMIT DROP AS
    SELECT row_number() OVER () AS fid, g.*
      FROM (SELECT li.payer_account_id AS payer, coalesce(li.usage_account_id, '') AS acct,
                   coalesce(li.billing_entity, '') AS entity, coalesce(li.product_code, '') AS pc,
                   li.service,
                   coalesce(li.usage_type, '') AS usage_type, coalesce(li.operation, '') AS operation,
                   coalesce(li.line_item_type, '') AS lit, %1$s AS tags, %2$s AS ccs,
                   coalesce(sum(li.cost), 0) AS exact, %4$s AS n,
                   min(li.currency) AS currency
              FROM %5$s li
             WHERE li.billing_period = %3$L
             GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) g
    $q$, billops._jsonb_subset_sql('li.resource_tags', tag_keys), billops._jsonb_subset_sql('li.cost_category', cc_keys), period,
         CASE WHEN tag_keys = '{}' AND cc_keys = '{}' THEN 'sum(li.line_items)' ELSE 'count(*)' END,
         CASE WHEN tag_keys = '{}' AND cc_keys = '{}' THEN 'billops._cost_summary' ELSE 'billops._cost_line' END);
END $$;

-- build_statements, step 2: whose: a shared-cost rule, else an allocation rule, else the account's group, else nobody
CREATE FUNCTION billops._statements_owners(period date) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_fact', 'billops.build_statements()');
    PERFORM billops._drop_temp('billops_cb_owned');
    CREATE TEMP TABLE billops_cb_owned ON COMMIT DROP AS
    SELECT f.*,
           (SELECT s.shared_cost_rule_id FROM billops.shared_cost_rule s
             WHERE period >= s.effective_from AND (s.effective_to IS NULL OR period < s.effective_to)
               AND (s.usage_account_id IS NULL OR s.usage_account_id = f.acct)
               AND (s.service IS NULL OR s.service = f.pc)
               AND (s.tag_key IS NULL OR (coalesce(f.tags->>billops.tag_key_canonical(s.tag_key), '') <> ''
                                          AND (s.tag_value IS NULL OR f.tags->>billops.tag_key_canonical(s.tag_key) = s.tag_value)))
             ORDER BY s.priority, s.shared_cost_rule_id LIMIT 1) AS shared_rule_id,
           coalesce((SELECT r.billing_group_id FROM billops.allocation_rule r
                      WHERE period >= r.effective_from AND (r.effective_to IS NULL OR period < r.effective_to)
                        AND (r.usage_account_id IS NULL OR r.usage_account_id = f.acct)
                        AND (r.service IS NULL OR r.service = f.pc)
                        AND (r.tag_key IS NULL OR (coalesce(f.tags->>billops.tag_key_canonical(r.tag_key), '') <> ''
                                                   AND (r.tag_value IS NULL OR f.tags->>billops.tag_key_canonical(r.tag_key) = r.tag_value)))
                        AND (r.cost_category_key IS NULL OR (coalesce(f.ccs->>billops.tag_key_canonical(r.cost_category_key), '') <> ''
                                                   AND (r.cost_category_value IS NULL OR f.ccs->>billops.tag_key_canonical(r.cost_category_key) = r.cost_category_value)))
                      ORDER BY r.priority, r.allocation_rule_id LIMIT 1),
                    billops.billing_group_of(nullif(f.acct, ''), period)) AS group_id
      FROM billops_cb_fact f;
END $$;

-- build_statements, step 3: shared cost to its targets; the last target takes what the others leave, so nothing is lost
CREATE FUNCTION billops._statements_allocate() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_owned', 'billops.build_statements()');
    PERFORM billops._drop_temp('billops_cb_alloc');
    CREATE TEMP TABLE billops_cb_alloc ON COMMIT DROP AS
    WITH direct AS (
        SELECT o.group_id, sum(o.exact) AS cost FROM billops_cb_owned o
         WHERE o.shared_rule_id IS NULL AND o.group_id IS NOT NULL GROUP BY 1),
    weights AS (
        SELECT t.shared_cost_rule_id, t.billing_group_id,
               CASE s.method WHEN 'FIXED' THEN t.percentage
                             WHEN 'EVEN' THEN 1
                             -- proportional to the targets' own cost; when none has any, evenly
                             ELSE CASE WHEN sum(greatest(coalesce(d.cost, 0), 0)) OVER (PARTITION BY t.shared_cost_rule_id) > 0
                                       THEN greatest(coalesce(d.cost, 0), 0) ELSE 1 END END AS w
          FROM billops.shared_cost_target t JOIN billops.shared_cost_rule s USING (shared_cost_rule_id)
          LEFT JOIN direct d ON d.group_id = t.billing_group_id),
    normalized AS (
        SELECT w.*, w.w / sum(w.w) OVER (PARTITION BY w.shared_cost_rule_id) AS share,
               row_number() OVER (PARTITION BY w.shared_cost_rule_id ORDER BY w.billing_group_id) AS k,
               count(*) OVER (PARTITION BY w.shared_cost_rule_id) AS targets
          FROM weights w),
    split AS (
        SELECT o.fid, n.billing_group_id, n.k, n.targets, round(o.exact * n.share, 10) AS part, o.exact
          FROM billops_cb_owned o JOIN normalized n ON n.shared_cost_rule_id = o.shared_rule_id)
    SELECT o.fid, 'aws'::text AS kind, o.group_id, NULL::integer AS shared_rule_id, o.exact, o.n,
           o.payer, o.acct, o.entity, o.pc, o.service, o.usage_type, o.operation, o.lit, o.currency
      FROM billops_cb_owned o
     WHERE o.shared_rule_id IS NULL
        -- a shared rule without targets shares nothing: the cost stays visible, unallocated
        OR NOT EXISTS (SELECT FROM billops.shared_cost_target t WHERE t.shared_cost_rule_id = o.shared_rule_id)
    UNION ALL
    SELECT o.fid, 'shared', s.billing_group_id, o.shared_rule_id,
           CASE WHEN s.k < s.targets THEN s.part
                ELSE s.exact - coalesce((SELECT sum(s2.part) FROM split s2 WHERE s2.fid = s.fid AND s2.k < s.targets), 0) END,
           CASE WHEN s.k = 1 THEN o.n ELSE 0 END,
           o.payer, o.acct, o.entity, o.pc, o.service, o.usage_type, o.operation, o.lit, o.currency
      FROM split s JOIN billops_cb_owned o USING (fid);
END $$;

-- build_statements, step 4: pricing: the most specific rule of the group's plan (tax is passed through as is)
CREATE FUNCTION billops._statements_price(period date) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_alloc', 'billops.build_statements()');
    PERFORM billops._drop_temp('billops_cb_priced');
    CREATE TEMP TABLE billops_cb_priced ON COMMIT DROP AS
    SELECT a.*, r.pricing_rule_id, r.rule_type, r.modifier_percentage, r.tiers,
           CASE r.rule_type WHEN 'MARKUP' THEN a.exact * (1 + r.modifier_percentage / 100)
                            WHEN 'DISCOUNT' THEN a.exact * (1 - r.modifier_percentage / 100)
                            ELSE a.exact END AS proforma
      FROM billops_cb_alloc a
      LEFT JOIN LATERAL (
          SELECT pr.* FROM billops.billing_group_pricing_plan gp JOIN billops.pricing_rule pr USING (pricing_plan_id)
           WHERE gp.billing_group_id = a.group_id AND a.lit <> 'Tax'
             AND period >= gp.effective_from AND (gp.effective_to IS NULL OR period < gp.effective_to)
             AND period >= pr.effective_from AND (pr.effective_to IS NULL OR period < pr.effective_to)
             AND CASE pr.scope WHEN 'GLOBAL' THEN true
                               WHEN 'BILLING_ENTITY' THEN pr.billing_entity = a.entity
                               WHEN 'SERVICE' THEN pr.service = a.pc
                               ELSE pr.service = a.pc AND pr.usage_type = a.usage_type
                                    AND (pr.operation IS NULL OR pr.operation = a.operation) END
           ORDER BY CASE pr.scope WHEN 'SKU' THEN CASE WHEN pr.operation IS NULL THEN 4 ELSE 5 END
                                  WHEN 'SERVICE' THEN 3 WHEN 'BILLING_ENTITY' THEN 2 ELSE 1 END DESC
           LIMIT 1) r ON a.group_id IS NOT NULL;
    -- tiering: graduated on the group's in-scope total, spread over its lines by cost
    WITH t AS (
        SELECT p.group_id, p.pricing_rule_id, sum(p.exact) AS total,
               billops._tier_adjustment(sum(p.exact), min(p.tiers::text)::jsonb) AS adj
          FROM billops_cb_priced p WHERE p.rule_type = 'TIERING' GROUP BY 1, 2),
    spread AS (
        SELECT p.fid, p.kind, p.group_id, p.pricing_rule_id, t.adj, t.total, p.exact,
               row_number() OVER (PARTITION BY p.group_id, p.pricing_rule_id ORDER BY p.fid, p.kind) AS k,
               count(*) OVER (PARTITION BY p.group_id, p.pricing_rule_id) AS m
          FROM billops_cb_priced p JOIN t USING (group_id, pricing_rule_id)),
    parts AS (
        SELECT s.*, CASE WHEN s.total = 0 THEN 0 ELSE round(s.adj * s.exact / s.total, 10) END AS part FROM spread s)
    UPDATE billops_cb_priced p
       SET proforma = p.exact + CASE WHEN x.k < x.m THEN x.part
                                     ELSE x.adj - coalesce((SELECT sum(y.part) FROM parts y
                                                             WHERE y.group_id = x.group_id AND y.pricing_rule_id = x.pricing_rule_id
                                                               AND y.k < x.m), 0) END
      FROM parts x
     WHERE x.fid = p.fid AND x.kind = p.kind AND x.group_id = p.group_id;
END $$;

-- build_statements, step 5: statement lines, exact: own cost and shares by payer, account and service; custom items
CREATE FUNCTION billops._statements_lines(period date) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_priced', 'billops.build_statements()');
    PERFORM billops._drop_temp('billops_cb_line');
    CREATE TEMP TABLE billops_cb_line ON COMMIT DROP AS
    WITH own AS (
        SELECT p.group_id, p.kind, p.payer, nullif(p.acct, '') AS acct, p.service, p.pricing_rule_id,
               p.shared_rule_id, NULL::integer AS custom_id, sum(p.exact) AS aws_exact, sum(p.proforma) AS pf_exact,
               sum(p.n) AS n, min(p.currency) AS currency
          FROM billops_cb_priced p GROUP BY 1, 2, 3, 4, 5, 6, 7),
    custom AS (
        SELECT c.billing_group_id AS group_id, lower(c.item_type) AS kind, NULL::text AS payer, NULL::text AS acct,
               c.name AS service, NULL::integer AS pricing_rule_id, NULL::integer AS shared_rule_id,
               c.custom_line_item_id AS custom_id, 0::numeric AS aws_exact,
               CASE c.item_type WHEN 'CREDIT' THEN -1 ELSE 1 END
               * coalesce(c.flat_amount,
                          c.percentage / 100 * (SELECT coalesce(sum(p.proforma), 0) FROM billops_cb_priced p
                                                 WHERE p.group_id = c.billing_group_id
                                                   AND (c.services IS NULL OR p.pc = ANY (c.services))
                                                   AND (c.line_item_types IS NULL OR p.lit = ANY (c.line_item_types)))) AS pf_exact,
               0::bigint AS n, 'USD'::text AS currency
          FROM billops.custom_line_item c
         WHERE period >= c.first_period AND (c.last_period IS NULL OR period <= c.last_period))
    SELECT row_number() OVER (ORDER BY coalesce(x.group_id, -1), x.kind, x.payer, x.acct, x.service,
                                       x.pricing_rule_id, x.shared_rule_id, x.custom_id) AS lid,
           coalesce(x.group_id, -1) AS gkey, coalesce(x.payer, '') AS pkey, x.*, x.pf_exact - x.aws_exact AS m_exact,
           NULL::numeric AS aws_target, NULL::numeric AS m_target, NULL::numeric AS aws_cost, NULL::numeric AS margin_cost
      FROM (SELECT * FROM own UNION ALL SELECT * FROM custom) x;
END $$;

-- build_statements, step 6: round once.  AWS cost and margin are rounded (pro forma = AWS + margin), so a line
-- priced at cost never shows a stray cent of margin.
--  * AWS cost: per payer, to that payer's total to the cent - what its invoices say and what
--    reconcile() compares - by largest remainder among the payer's lines; a group's AWS
--    cost is the sum of its lines.  (Rounding per group first could not also keep every
--    payer's total: two payers' half cents may sit in one group.)
--  * margin: the period's total among groups, then each group's among its lines.
CREATE FUNCTION billops._statements_round() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_line', 'billops.build_statements()');
    UPDATE billops_cb_line l SET aws_target = t.total
      FROM (SELECT x.pkey, round(sum(x.aws_exact), 2) AS total FROM billops_cb_line x GROUP BY 1) t
     WHERE t.pkey = l.pkey;
    PERFORM billops._round_to_target('billops_cb_line', 'pkey', 'lid', 'aws_exact', 'aws_target', 'aws_cost');
    PERFORM billops._drop_temp('billops_cb_group');
    CREATE TEMP TABLE billops_cb_group ON COMMIT DROP AS
    SELECT l.gkey, 1 AS part, sum(l.aws_cost) AS aws_cost, sum(l.m_exact) AS m_exact,
           round(sum(sum(l.m_exact)) OVER (), 2) AS m_total, NULL::numeric AS margin_cost
      FROM billops_cb_line l GROUP BY l.gkey;
    PERFORM billops._round_to_target('billops_cb_group', 'part', 'gkey', 'm_exact', 'm_total', 'margin_cost');
    UPDATE billops_cb_line l SET m_target = g.margin_cost FROM billops_cb_group g WHERE g.gkey = l.gkey;
    PERFORM billops._round_to_target('billops_cb_line', 'gkey', 'lid', 'm_exact', 'm_target', 'margin_cost');
END $$;

-- build_statements, step 7: replace the period's statements
CREATE FUNCTION billops._statements_replace(period date) RETURNS void
LANGUAGE plpgsql STRICT SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM billops._require_work_table('billops_cb_group', 'billops.build_statements()');
    DELETE FROM billops.statement s WHERE s.billing_period = period;
    INSERT INTO billops.statement (billing_period, billing_group_id, group_name, currency, aws_cost, proforma_cost, line_items)
    SELECT period, nullif(g.gkey, -1), coalesce((SELECT bg.name FROM billops.billing_group bg WHERE bg.billing_group_id = g.gkey),
                                               '(unallocated)'),
           coalesce((SELECT min(l.currency) FROM billops_cb_line l WHERE l.gkey = g.gkey AND l.kind IN ('aws', 'shared')), 'USD'),
           g.aws_cost, g.aws_cost + g.margin_cost, (SELECT coalesce(sum(l.n), 0) FROM billops_cb_line l WHERE l.gkey = g.gkey)
      FROM billops_cb_group g;
    INSERT INTO billops.statement_line (statement_id, line_no, kind, payer_account_id, usage_account_id, service, description,
                                        aws_cost, proforma_cost, pricing_rule_id, shared_cost_rule_id, custom_line_item_id)
    SELECT s.statement_id, row_number() OVER (PARTITION BY s.statement_id ORDER BY l.lid), l.kind, l.payer, l.acct, l.service,
           CASE l.kind WHEN 'aws' THEN l.service
                       WHEN 'shared' THEN l.service || ' (shared: ' || (SELECT r.name FROM billops.shared_cost_rule r
                                                                      WHERE r.shared_cost_rule_id = l.shared_rule_id) || ')'
                       ELSE coalesce((SELECT coalesce(c.description, c.name) FROM billops.custom_line_item c
                                       WHERE c.custom_line_item_id = l.custom_id), l.service) END,
           l.aws_cost, l.aws_cost + l.margin_cost, l.pricing_rule_id, l.shared_rule_id, l.custom_id
      FROM billops_cb_line l
      JOIN billops.statement s ON s.billing_period = period AND s.billing_group_id IS NOT DISTINCT FROM nullif(l.gkey, -1)
     WHERE l.aws_cost <> 0 OR l.margin_cost <> 0 OR l.n > 0;
END $$;

-- Each step reads the temp tables the previous one wrote (ON COMMIT DROP):
-- facts -> owners -> alloc -> priced -> line (exact) -> rounded -> statements.
CREATE FUNCTION billops.build_statements(period date)
RETURNS TABLE (group_name text, aws_cost numeric, proforma_cost numeric, margin numeric, lines integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF period IS NULL OR period <> date_trunc('month', period)::date THEN
        RAISE EXCEPTION 'a billing period is the first day of a month, not %', period USING ERRCODE = 'invalid_parameter_value',
              HINT = 'For example billops.build_statements(''2024-03-01'').';
    END IF;
    PERFORM billops._statements_facts(period);      -- 1. the month, grouped by what rules look at
    PERFORM billops._statements_owners(period);     -- 2. whose each fact is
    PERFORM billops._statements_allocate();         -- 3. shared cost to its targets
    PERFORM billops._statements_price(period);      -- 4. the group's pricing plan
    PERFORM billops._statements_lines(period);      -- 5. statement lines, exact
    PERFORM billops._statements_round();            -- 6. round once
    PERFORM billops._statements_replace(period);    -- 7. replace the period's statements

    RETURN QUERY
    SELECT s.group_name, s.aws_cost, s.proforma_cost, s.margin,
           (SELECT count(*)::int FROM billops.statement_line sl WHERE sl.statement_id = s.statement_id)
      FROM billops.statement s WHERE s.billing_period = period
     ORDER BY s.billing_group_id IS NULL, s.group_name;
END $$;
COMMENT ON FUNCTION billops.build_statements(date) IS
  'Builds (or rebuilds) the pro forma statements of a billing period from the visible CUR deliveries.';

-- For BI tools: one row per statement and service.
CREATE VIEW billops.statement_by_service WITH (security_invoker = true) AS
SELECT s.billing_period, s.group_name, s.billing_group_id, l.kind, l.service,
       sum(l.aws_cost) AS aws_cost, sum(l.proforma_cost) AS proforma_cost, sum(l.margin) AS margin
  FROM billops.statement s JOIN billops.statement_line l USING (statement_id)
 GROUP BY 1, 2, 3, 4, 5;
COMMENT ON VIEW billops.statement_by_service IS 'Pro forma statements by group, kind and service (for BI tools).';
