-- ---------------------------------------------------------------------------
-- AWS invoices and reconciliation.
--
-- AWS invoices arrive from the Invoicing API (ListInvoiceSummaries; the C
-- client hands each summary to billops.record_aws_invoice) or by hand.  Per
-- payer and period, billops.reconcile() compares four views of the same money:
--
--   AWS invoices          (what AWS will charge)
--   CUR                   (the visible delivery: sum of line_item_unblended_cost)
--   payables + adjustments (what finance pushes to BILL and acknowledges)
--   statements            (pro forma minus margin: what chargeback allocated)
--
-- and lists every variance with its cause.  A period closes only when it
-- reconciles, or every variance has been explained by a person.
-- ---------------------------------------------------------------------------

CREATE TABLE billops.aws_invoice (
    invoice_id            text PRIMARY KEY,
    account_id            text NOT NULL,      -- the account the invoice is for (the payer)
    billing_period        date NOT NULL CHECK (billops._is_period(billing_period)),
    invoice_type          text NOT NULL CHECK (invoice_type IN ('INVOICE', 'CREDIT_MEMO', 'PAYMENT_RECEIPT')),
    invoicing_entity      text,
    billing_entity        text,
    original_invoice_id   text,
    purchase_order_number text,
    issued_date           timestamptz,
    due_date              timestamptz,
    currency              text,
    total_amount          numeric(16, 2) NOT NULL,
    total_before_tax      numeric(16, 2),
    tax_amount            numeric(16, 2),
    discount_amount       numeric(16, 2),
    fee_amount            numeric(16, 2),
    source                text NOT NULL DEFAULT 'invoicing_api' CHECK (source IN ('invoicing_api', 'manual')),
    summary               jsonb,              -- the InvoiceSummary as AWS sent it
    recorded_at           timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ON billops.aws_invoice (account_id, billing_period);
COMMENT ON TABLE billops.aws_invoice IS
  'AWS invoices (and credit memos) per payer and period, from the Invoicing API''s ListInvoiceSummaries.';

-- One InvoiceSummary (the Invoicing API's JSON) to a row; a summary seen
-- again updates it.  Amounts are strings in the API: read as numeric, never float.
CREATE FUNCTION billops.record_aws_invoice(summary jsonb) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    amt   jsonb := summary->'BaseCurrencyAmount';
    bd    jsonb := summary->'BaseCurrencyAmount'->'AmountBreakdown';
    period date;
BEGIN
    IF summary->>'InvoiceId' IS NULL OR summary->>'AccountId' IS NULL OR amt->>'TotalAmount' IS NULL
       OR summary->'BillingPeriod'->>'Month' IS NULL OR summary->'BillingPeriod'->>'Year' IS NULL THEN
        RAISE EXCEPTION 'not an AWS invoice summary' USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('InvoiceId, AccountId, BillingPeriod {Month, Year} and BaseCurrencyAmount.TotalAmount are required; got keys %s.',
                              (SELECT string_agg(k, ', ') FROM jsonb_object_keys(summary) k)),
              HINT = 'Pass one element of ListInvoiceSummaries'' InvoiceSummaries.';
    END IF;
    period := make_date((summary->'BillingPeriod'->>'Year')::int, (summary->'BillingPeriod'->>'Month')::int, 1);
    INSERT INTO billops.aws_invoice AS i (invoice_id, account_id, billing_period, invoice_type, invoicing_entity, billing_entity,
                                          original_invoice_id, purchase_order_number, issued_date, due_date, currency,
                                          total_amount, total_before_tax, tax_amount, discount_amount, fee_amount, summary)
    VALUES (summary->>'InvoiceId', summary->>'AccountId', period, coalesce(summary->>'InvoiceType', 'INVOICE'),
            summary->'Entity'->>'InvoicingEntity', summary->'Entity'->>'BillingEntity',
            summary->>'OriginalInvoiceId', summary->>'PurchaseOrderNumber',
            -- JSON 1.0 timestamps are epoch seconds
            CASE jsonb_typeof(summary->'IssuedDate') WHEN 'number' THEN to_timestamp((summary->>'IssuedDate')::numeric)
                 WHEN 'string' THEN (summary->>'IssuedDate')::timestamptz END,
            CASE jsonb_typeof(summary->'DueDate') WHEN 'number' THEN to_timestamp((summary->>'DueDate')::numeric)
                 WHEN 'string' THEN (summary->>'DueDate')::timestamptz END,
            amt->>'CurrencyCode', (amt->>'TotalAmount')::numeric, (amt->>'TotalAmountBeforeTax')::numeric,
            (bd->'Taxes'->>'TotalAmount')::numeric, (bd->'Discounts'->>'TotalAmount')::numeric,
            (bd->'Fees'->>'TotalAmount')::numeric, summary)
    ON CONFLICT (invoice_id) DO UPDATE SET
           account_id = EXCLUDED.account_id, billing_period = EXCLUDED.billing_period, invoice_type = EXCLUDED.invoice_type,
           invoicing_entity = EXCLUDED.invoicing_entity, billing_entity = EXCLUDED.billing_entity,
           original_invoice_id = EXCLUDED.original_invoice_id, purchase_order_number = EXCLUDED.purchase_order_number,
           issued_date = EXCLUDED.issued_date, due_date = EXCLUDED.due_date, currency = EXCLUDED.currency,
           total_amount = EXCLUDED.total_amount, total_before_tax = EXCLUDED.total_before_tax,
           tax_amount = EXCLUDED.tax_amount, discount_amount = EXCLUDED.discount_amount, fee_amount = EXCLUDED.fee_amount,
           summary = EXCLUDED.summary, recorded_at = clock_timestamp()
     WHERE i.source = 'invoicing_api';
    RETURN summary->>'InvoiceId';
END $$;
COMMENT ON FUNCTION billops.record_aws_invoice(jsonb) IS
  'Records one Invoicing API InvoiceSummary in billops.aws_invoice (a summary seen again updates its row, never a manually entered one); returns the invoice id. Used by fetch_aws_invoices; for billops_admin.';

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
        SELECT li.bill_invoice_id AS invoice_id, round(sum(li.line_item_unblended_cost), 2) AS amount, count(*) AS n
          FROM billops.cur_line_item li
         WHERE li.bill_billing_period_start_date = period AND li.bill_payer_account_id = payer
           AND coalesce(li.bill_invoice_id, '') <> ''
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
      FROM (SELECT round(sum(li.line_item_unblended_cost), 2) AS total FROM billops.cur_line_item li
             WHERE li.bill_billing_period_start_date = period AND li.bill_payer_account_id = payer) c,
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
      FROM (SELECT round(sum(li.line_item_unblended_cost), 2) AS total FROM billops.cur_line_item li
             WHERE li.bill_billing_period_start_date = period AND li.bill_payer_account_id = payer) c,
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
            coalesce((SELECT round(sum(li.line_item_unblended_cost), 2) FROM billops.cur_line_item li
                       WHERE li.bill_billing_period_start_date = period AND li.bill_payer_account_id = payer), 0),
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
