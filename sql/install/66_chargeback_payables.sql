-- ---------------------------------------------------------------------------
-- Internal chargeback: statements feed payables.
--
-- Each billing group's statement of a period becomes a payable of the
-- pseudo payer 'chargeback' with charge source 'chargeback:<group>', so it
-- goes through the payable lifecycle like any AWS charge: drafted, routed to
-- the owners of the group's accounts (routing rules), approved and locked;
-- a statement that changes after approval becomes an adjustment.  Its
-- treatment is usage_summary (an internal acknowledgement, never a bill sent
-- to BILL).  It is 'final' - and so routed, unless route_preliminary is on -
-- once the period is closed (billops.close_period) for every payer in the
-- statement: a business unit signs off a month that reconciles.
-- ---------------------------------------------------------------------------
INSERT INTO billops.charge_category (category, label, line_grain, description) VALUES
  ('chargeback', 'Internal chargeback', NULL, 'A billing group''s pro forma statement, charged back to its business unit.');

CREATE FUNCTION billops._compute_chargeback_sources(period date)
RETURNS TABLE (charge_source text, category text, entity text, state jsonb, meta jsonb, exceptions jsonb)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH st AS (
        SELECT s.statement_id, s.group_name, s.currency, s.proforma_cost, s.line_items,
               -- routing: the group's own accounts (its own AWS cost); shared cost, fees and credits
               -- are the group's by the rules that put them there, not a sign of another owner
               (SELECT coalesce(jsonb_object_agg(a.acct, a.amt), '{}') FROM (
                    SELECT coalesce(l.usage_account_id, '') AS acct, sum(l.proforma_cost) AS amt
                      FROM billops.statement_line l
                     WHERE l.statement_id = s.statement_id
                       AND (l.kind = 'aws' OR NOT EXISTS (SELECT FROM billops.statement_line o
                                                           WHERE o.statement_id = s.statement_id AND o.kind = 'aws'))
                     GROUP BY 1) a) AS breakdown,
               (SELECT coalesce(jsonb_agg(jsonb_build_object(
                           'line_key', x.kind || ':' || x.service, 'grain_value', x.service,
                           'description', CASE x.kind WHEN 'aws' THEN 'AWS' ELSE initcap(x.kind) END || ': ' || x.service,
                           'amount', x.amt, 'exact_amount', x.amt, 'line_item_count', x.n, 'fact_keys', '[]'::jsonb)
                       ORDER BY x.kind, x.service), '[]')
                  FROM (SELECT l.kind, coalesce(l.service, '(none)') AS service, sum(l.proforma_cost) AS amt, count(*) AS n
                          FROM billops.statement_line l WHERE l.statement_id = s.statement_id GROUP BY 1, 2) x) AS lines,
               -- final when every payer behind the statement has closed the period
               NOT EXISTS (SELECT FROM billops.statement_line l
                            WHERE l.statement_id = s.statement_id AND l.payer_account_id IS NOT NULL
                              AND NOT EXISTS (SELECT FROM billops.period_close c
                                               WHERE c.billing_period = period AND c.payer_account_id = l.payer_account_id))
               AND EXISTS (SELECT FROM billops.period_close c WHERE c.billing_period = period) AS final
          FROM billops.statement s
         WHERE s.billing_period = period AND s.billing_group_id IS NOT NULL),
    assembled AS (
        SELECT 'chargeback:' || st.group_name AS charge_source, st.group_name AS entity,
               jsonb_build_object('amount', st.proforma_cost, 'exact_amount', st.proforma_cost, 'currency', st.currency,
                   'vendor_id', NULL, 'line_item_count', st.line_items, 'account_breakdown', st.breakdown,
                   'treatment', 'usage_summary', 'line_grain', 'service', 'basis_tag_keys', '[]'::jsonb,
                   'basis_cost_category_keys', '[]'::jsonb, 'lines', st.lines) AS state,
               jsonb_build_object('invoice_state', CASE WHEN st.final THEN 'final' ELSE 'preliminary' END,
                                  'aws_invoice_ids', '[]'::jsonb,
                                  'change_reason', 'the statement changed after the chargeback was approved') AS meta
          FROM st)
    SELECT a.charge_source, 'chargeback', a.entity,
           a.state || jsonb_build_object('content_hash', billops._content_hash(a.state)), a.meta, '[]'::jsonb
      FROM assembled a
$$;

CREATE FUNCTION billops.build_chargeback_payables(period date)
RETURNS TABLE (payable_id bigint, dedupe_key text, action text, status text, amount numeric)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
#variable_conflict use_column
BEGIN
    IF period IS NULL OR NOT billops._is_period(period) THEN
        RAISE EXCEPTION 'a billing period is the first day of a month, not %', coalesce(period::text, 'NULL')
              USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT EXISTS (SELECT FROM billops.statement s WHERE s.billing_period = period AND s.billing_group_id IS NOT NULL)
       AND NOT EXISTS (SELECT FROM billops.payable p WHERE p.payer_account_id = 'chargeback' AND p.billing_period = period) THEN
        RAISE EXCEPTION 'no statements for %', to_char(period, 'YYYY-MM') USING ERRCODE = 'object_not_in_prerequisite_state',
              HINT = format('Build them first: SELECT * FROM billops.build_statements(%L);', period);
    END IF;
    RETURN QUERY SELECT * FROM billops._build_period(period, 'chargeback', NULL, NULL, 'chargeback');
    RETURN QUERY SELECT * FROM billops._auto_route(period, 'chargeback');
END $$;
COMMENT ON FUNCTION billops.build_chargeback_payables(date) IS
  'Each billing group''s statement of the period as a payable (payer ''chargeback'', charge source chargeback:<group>): routed to the group''s owners once the period is closed, locked on approval, adjusted after.';
