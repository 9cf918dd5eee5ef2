-- ---------------------------------------------------------------------------
-- Reconciliation.
--
-- AWS invoices (billops.aws_invoice, 25_aws_billing_api.sql) arrive from the
-- Invoicing API (fetch_aws_invoices hands each summary to
-- billops.record_aws_invoice) or by hand.  Per
-- payer and period, billops.reconcile() compares four views of the same money:
--
--   AWS invoices          (what AWS will charge)
--   CUR                   (the visible delivery: sum of line_item_unblended_cost;
--                          for an account only a FOCUS export holds, its BilledCost:
--                          billops._cost_line)
--   payables + adjustments (what finance pushes to BILL and acknowledges)
--   statements            (pro forma minus margin: what chargeback allocated)
--
-- and lists every variance with its cause.  A period closes only when it
-- reconciles, or every variance has been explained by a person.
-- ---------------------------------------------------------------------------

-- ---------------------------------------------------------------------------
-- Reconciliation
-- ---------------------------------------------------------------------------
CREATE TABLE billops.reconciliation_item (
    item_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    billing_period   date NOT NULL,
    payer_account_id text NOT NULL,
    check_name       text NOT NULL CHECK (check_name IN ('invoice_vs_cur', 'cur_vs_payables', 'cur_vs_statements')),
    subject          text NOT NULL,      -- an invoice id, 'total', ...
    expected         numeric(16, 2),
    actual           numeric(16, 2),
    variance         numeric(16, 2) GENERATED ALWAYS AS (coalesce(actual, 0) - coalesce(expected, 0)) STORED,
    cause            text NOT NULL,
    explained_by     name,
    explained_at     timestamptz,
    explanation      text,
    found_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (billing_period, payer_account_id, check_name, subject)
);
COMMENT ON TABLE billops.reconciliation_item IS
  'A variance found by billops.reconcile(): what was expected, what was found, and why (cause); explained by a person, or not yet.';

CREATE TABLE billops.period_close (
    billing_period   date NOT NULL,
    payer_account_id text NOT NULL,
    closed_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    closed_by        name NOT NULL DEFAULT billops.actor(),
    cur_total        numeric(16, 2) NOT NULL,
    invoice_total    numeric(16, 2),
    explained        integer NOT NULL,
    PRIMARY KEY (billing_period, payer_account_id)
);
COMMENT ON TABLE billops.period_close IS 'Closed periods per payer: they reconciled, or every variance was explained.';

-- Compare; keep explanations of variances that are still there; return the variances.
CREATE FUNCTION billops.reconcile(period date, payer text)
RETURNS TABLE (check_name text, subject text, expected numeric, actual numeric, variance numeric, cause text, explained boolean)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
    IF period IS NULL OR NOT billops._is_period(period) OR payer IS NULL THEN
        RAISE EXCEPTION 'reconcile a payer''s billing period (the first of a month)' USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('Got %s and %s.', coalesce(period::text, 'NULL'), coalesce(payer, 'NULL'));
    END IF;
    PERFORM billops._drop_temp('billops_recon');
    CREATE TEMP TABLE billops_recon (check_name text, subject text, expected numeric, actual numeric, cause text) ON COMMIT DROP;

    -- 1. each AWS invoice against the CUR lines that carry its id
    INSERT INTO billops_recon
    WITH cur AS (
        SELECT li.invoice_id, round(sum(li.cost), 2) AS amount, count(*) AS n
          FROM billops._cost_line li          -- the CUR, or a FOCUS export (InvoiceId)
         WHERE li.billing_period = period AND li.payer_account_id = payer
           AND li.invoice_id IS NOT NULL
         GROUP BY 1),
    inv AS (
        SELECT i.invoice_id, i.total_amount, i.invoice_type, i.original_invoice_id FROM billops.aws_invoice i
         WHERE i.billing_period = period AND i.account_id = payer AND i.invoice_type <> 'PAYMENT_RECEIPT')
    SELECT 'invoice_vs_cur', coalesce(inv.invoice_id, cur.invoice_id), inv.total_amount, cur.amount,
           CASE WHEN inv.invoice_id IS NULL THEN 'the CUR names invoice ' || cur.invoice_id || ' but AWS''s invoice list does not have it (import invoices, or the invoice is not issued yet)'
                WHEN cur.invoice_id IS NULL AND inv.invoice_type = 'CREDIT_MEMO' THEN 'credit memo ' || inv.invoice_id
                     || coalesce(' (against ' || inv.original_invoice_id || ')', '') || ' has no CUR lines: a refund or credit after the period, not yet in a delivery'
                WHEN cur.invoice_id IS NULL THEN 'AWS invoiced ' || inv.invoice_id || ' but no CUR line carries it (a preliminary delivery, or a charge outside the CUR)'
                ELSE format('the CUR lines of %s add up to %s, the invoice says %s', inv.invoice_id, cur.amount, inv.total_amount) END
      FROM inv FULL JOIN cur ON cur.invoice_id = inv.invoice_id
     WHERE inv.total_amount IS DISTINCT FROM cur.amount;

    -- 2. the month's CUR total against its payables (voided ones excluded) and their open adjustments
    INSERT INTO billops_recon
    SELECT 'cur_vs_payables', 'total', c.total, coalesce(p.total, 0) + coalesce(a.total, 0),
           CASE WHEN p.n IS NULL OR p.n = 0 THEN 'no payables built for this period (run billops.build_payables)'
                WHEN c.total IS NULL THEN 'payables exist but no CUR delivery is visible for the period'
                ELSE format('payables add up to %s%s; the CUR to %s: a delivery newer than the last build, or a charge left out',
                            p.total, CASE WHEN a.total IS NOT NULL THEN format(' plus %s in open adjustments', a.total) ELSE '' END,
                            c.total) END
      FROM (SELECT round(sum(li.cost), 2) AS total FROM billops._cost_summary li
             WHERE li.billing_period = period AND li.payer_account_id = payer) c,
           (SELECT sum(x.amount) AS total, count(*) AS n FROM billops.payable x
             WHERE x.billing_period = period AND x.payer_account_id = payer AND x.status <> 'voided') p,
           (SELECT sum(j.delta) AS total FROM billops.payable_adjustment j JOIN billops.payable x USING (payable_id)
             WHERE x.billing_period = period AND x.payer_account_id = payer AND j.status NOT IN ('approved', 'voided')) a
     WHERE c.total IS DISTINCT FROM coalesce(p.total, 0) + coalesce(a.total, 0) AND (c.total IS NOT NULL OR p.n > 0);

    -- 3. the month's CUR total against what the statements allocated (pro forma minus margin)
    INSERT INTO billops_recon
    SELECT 'cur_vs_statements', 'total', c.total, s.total,
           CASE WHEN s.n = 0 THEN 'no statements built for this period (run billops.build_statements)'
                ELSE format('statements allocate %s of this payer''s cost, the CUR has %s: statements older than the delivery', s.total, c.total) END
      FROM (SELECT round(sum(li.cost), 2) AS total FROM billops._cost_summary li
             WHERE li.billing_period = period AND li.payer_account_id = payer) c,
           (SELECT sum(l.proforma_cost - l.margin) AS total, count(*) AS n
              FROM billops.statement_line l JOIN billops.statement st USING (statement_id)
             WHERE st.billing_period = period AND l.payer_account_id = payer) s
     WHERE c.total IS NOT NULL AND c.total IS DISTINCT FROM s.total
       -- statements are optional: no chargeback configured, nothing to compare
       AND EXISTS (SELECT FROM billops.billing_group);

    -- keep what people explained, as long as the variance is the same; forget variances that are gone
    DELETE FROM billops.reconciliation_item r
     WHERE r.billing_period = period AND r.payer_account_id = payer
       AND NOT EXISTS (SELECT FROM billops_recon x WHERE x.check_name = r.check_name AND x.subject = r.subject
                          AND x.expected IS NOT DISTINCT FROM r.expected AND x.actual IS NOT DISTINCT FROM r.actual);
    INSERT INTO billops.reconciliation_item (billing_period, payer_account_id, check_name, subject, expected, actual, cause)
    SELECT period, payer, x.check_name, x.subject, x.expected, x.actual, x.cause FROM billops_recon x
    ON CONFLICT (billing_period, payer_account_id, check_name, subject) DO UPDATE SET cause = EXCLUDED.cause;

    RETURN QUERY
    SELECT r.check_name, r.subject, r.expected, r.actual, r.variance, r.cause, r.explanation IS NOT NULL
      FROM billops.reconciliation_item r
     WHERE r.billing_period = period AND r.payer_account_id = payer
     ORDER BY r.check_name, r.subject;
END $$;
COMMENT ON FUNCTION billops.reconcile(date, text) IS
  'Compares AWS invoices, the CUR, payables (+ open adjustments) and statements for a payer''s period; lists every variance with its cause.';

CREATE FUNCTION billops.explain_variance(item bigint, explanation text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF coalesce(btrim(explanation), '') = '' THEN
        RAISE EXCEPTION 'an explanation is required' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE billops.reconciliation_item r SET explanation = explain_variance.explanation, explained_by = billops.actor(),
           explained_at = clock_timestamp()
     WHERE r.item_id = item;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no reconciliation item %', item USING ERRCODE = 'no_data_found';
    END IF;
END $$;
COMMENT ON FUNCTION billops.explain_variance(bigint, text) IS
  'Records a person''s explanation (required, not blank) of a reconciliation_item, with who and when. reconcile() keeps it while the variance stays the same; close_period() needs every variance explained. For billops_admin.';

-- Close a payer's period: reconcile once more; refuse while a variance is unexplained.
CREATE FUNCTION billops.close_period(period date, payer text) RETURNS billops.period_close
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    open_items text;
    n_open integer;
    closed billops.period_close;
BEGIN
    IF EXISTS (SELECT FROM billops.period_close c WHERE c.billing_period = period AND c.payer_account_id = payer) THEN
        RAISE EXCEPTION 'period % of payer % is already closed', to_char(period, 'YYYY-MM'), payer USING ERRCODE = 'BO007';
    END IF;
    PERFORM billops.reconcile(period, payer);
    SELECT count(*), string_agg(format('#%s %s %s: %s', r.item_id, r.check_name, r.subject, r.cause), E'\n' ORDER BY r.item_id)
      INTO n_open, open_items
      FROM billops.reconciliation_item r
     WHERE r.billing_period = period AND r.payer_account_id = payer AND r.explanation IS NULL;
    IF n_open > 0 THEN
        RAISE EXCEPTION 'period % of payer % does not reconcile: % unexplained variance(s)', to_char(period, 'YYYY-MM'), payer, n_open
              USING ERRCODE = 'BO007', DETAIL = open_items,
                    HINT = 'Fix the cause and reconcile again, or record why with billops.explain_variance(item_id, explanation).';
    END IF;
    INSERT INTO billops.period_close (billing_period, payer_account_id, cur_total, invoice_total, explained)
    VALUES (period, payer,
            coalesce((SELECT round(sum(li.cost), 2) FROM billops._cost_summary li
                       WHERE li.billing_period = period AND li.payer_account_id = payer), 0),
            (SELECT sum(i.total_amount) FROM billops.aws_invoice i
              WHERE i.billing_period = period AND i.account_id = payer AND i.invoice_type <> 'PAYMENT_RECEIPT'),
            (SELECT count(*) FROM billops.reconciliation_item r WHERE r.billing_period = period AND r.payer_account_id = payer))
    RETURNING * INTO closed;
    RETURN closed;
END $$;
COMMENT ON FUNCTION billops.close_period(date, text) IS
  'Closes a payer''s period once it reconciles (or every variance is explained); SQLSTATE BO007 otherwise.';

-- Statements of a closed period are final.
CREATE FUNCTION billops._statement_closed_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT FROM billops.period_close c WHERE c.billing_period = OLD.billing_period) THEN
        RAISE EXCEPTION 'the statements of % are final: the period is closed', to_char(OLD.billing_period, 'YYYY-MM')
              USING ERRCODE = 'BO007';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER statement_closed_guard BEFORE DELETE OR UPDATE ON billops.statement
    FOR EACH ROW EXECUTE FUNCTION billops._statement_closed_guard();

-- Which payables an invoice is behind (payables record the invoice ids of their lines).
CREATE VIEW billops.aws_invoice_payable WITH (security_invoker = true) AS
SELECT i.invoice_id, i.account_id, i.billing_period, p.payable_id, p.dedupe_key, p.status, p.amount
  FROM billops.aws_invoice i
  JOIN billops.payable p ON p.payer_account_id = i.account_id AND p.billing_period = i.billing_period
                        AND i.invoice_id = ANY (p.aws_invoice_ids);
COMMENT ON VIEW billops.aws_invoice_payable IS 'AWS invoices and the payables built from their lines.';

-- Invoices with the deliveries and payables they are behind.
CREATE VIEW billops.aws_invoice_overview WITH (security_invoker = true) AS
SELECT i.invoice_id, i.account_id AS payer_account_id, i.billing_period, i.invoice_type, i.invoicing_entity,
       i.issued_date, i.due_date, i.currency, i.total_amount, i.tax_amount,
       (SELECT min(dp.delivery_id) FROM billops.cur_delivery_partition dp
         WHERE dp.billing_period = i.billing_period AND dp.payer_account_id = i.account_id
           AND dp.period_start IS NULL          -- the CUR's deliveries (a FOCUS export's have a period_start)
           AND i.invoice_id = ANY (dp.invoice_ids)) AS first_delivery_id,
       (SELECT cp.delivery_id FROM billops.cur_partition cp
          JOIN billops.cur_delivery_partition dp USING (delivery_id, billing_period, payer_account_id)
         WHERE cp.billing_period = i.billing_period AND cp.payer_account_id = i.account_id
           AND i.invoice_id = ANY (dp.invoice_ids)) AS visible_delivery_id,
       (SELECT array_agg(ip.payable_id ORDER BY ip.payable_id) FROM billops.aws_invoice_payable ip
         WHERE ip.invoice_id = i.invoice_id) AS payable_ids,
       d.file_name AS document, length(d.content) AS document_bytes
  FROM billops.aws_invoice i
  LEFT JOIN billops.aws_invoice_document d USING (invoice_id);
COMMENT ON VIEW billops.aws_invoice_overview IS
  'Each AWS invoice: amounts, the CUR deliveries that carry its id (first and visible), the payables built from it, and its PDF.';
