-- ---------------------------------------------------------------------------
-- The context that explains a payable to its approvers: approvers "see totals
-- but not the context that explains why spend changed" (the source
-- document).  For a payable: the amount against last month and the trailing
-- three-month average of the same charge source, the top drivers of the change
-- by service, usage account and usage type, the open spend signals of its
-- accounts, and the AWS invoices it ties to.  As facts (jsonb), as a short
-- text (a bill's description) and as a one-page PDF that pg_billops writes
-- itself (a file type BILL accepts for bill documents).
-- ---------------------------------------------------------------------------

-- The facts, for analysts and the payable's approvers (the drill-down's rule:
-- billops.payable_line_items decides who may see the line items).
CREATE FUNCTION billops.payable_context(target_payable_id bigint) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p        billops.payable;
    prev     billops.payable;
    avg3     numeric;
    months   integer;
    drivers  jsonb;
    signals  jsonb;
    invoices jsonb;
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = target_payable_id;
    IF NOT FOUND OR NOT (billops._context() = 'system' OR pg_has_role(billops.actor(), 'billops_analyst', 'USAGE')
                         OR billops._routed_to_actor(target_payable_id)) THEN
        RAISE EXCEPTION 'payable % does not exist or is not visible to %', target_payable_id, billops.actor()
              USING ERRCODE = 'no_data_found';
    END IF;
    SELECT * INTO prev FROM billops.payable x
     WHERE x.payer_account_id = p.payer_account_id AND x.charge_source = p.charge_source
       AND x.billing_period = (p.billing_period - interval '1 month')::date AND x.status <> 'voided';
    SELECT avg(x.amount), count(*) INTO avg3, months FROM billops.payable x
     WHERE x.payer_account_id = p.payer_account_id AND x.charge_source = p.charge_source AND x.status <> 'voided'
       AND x.billing_period >= (p.billing_period - interval '3 months')::date AND x.billing_period < p.billing_period;

    -- what moved: this month's line items against last month's, per dimension
    -- (with no payable last month there is nothing to compare: no drivers)
    WITH cur AS (SELECT * FROM billops.payable_line_items(p.payable_id)),
         old AS (SELECT * FROM billops.payable_line_items(prev.payable_id) WHERE prev.payable_id IS NOT NULL),
         both_months AS (
             SELECT 'service' AS dimension, billops._service_of(product, line_item_product_code) AS k, line_item_unblended_cost AS now_cost, 0 AS then_cost FROM cur
             UNION ALL SELECT 'service', billops._service_of(product, line_item_product_code), 0, line_item_unblended_cost FROM old
             UNION ALL SELECT 'usage_account', line_item_usage_account_id, line_item_unblended_cost, 0 FROM cur
             UNION ALL SELECT 'usage_account', line_item_usage_account_id, 0, line_item_unblended_cost FROM old
             UNION ALL SELECT 'usage_type', coalesce(nullif(line_item_usage_type, ''), '(none)'), line_item_unblended_cost, 0 FROM cur
             UNION ALL SELECT 'usage_type', coalesce(nullif(line_item_usage_type, ''), '(none)'), 0, line_item_unblended_cost FROM old),
         moved AS (
             SELECT dimension, k, round(sum(now_cost), 2) AS now_amount, round(sum(then_cost), 2) AS then_amount,
                    round(sum(now_cost) - sum(then_cost), 2) AS change,
                    row_number() OVER (PARTITION BY dimension ORDER BY abs(sum(now_cost) - sum(then_cost)) DESC, k) AS r
               FROM both_months GROUP BY dimension, k)
    SELECT coalesce(jsonb_agg(jsonb_build_object('dimension', dimension, 'key', k, 'amount', now_amount,
                                                 'previous_amount', then_amount, 'change', change)
                              ORDER BY dimension, r), '[]')
      INTO drivers FROM moved WHERE r <= 3 AND change <> 0 AND prev.payable_id IS NOT NULL;

    SELECT coalesce(jsonb_agg(jsonb_build_object('source', s.source, 'usage_account_id', s.usage_account_id,
                                                 'service', s.service, 'day', s.day, 'impact', s.impact)
                              ORDER BY abs(s.impact) DESC NULLS LAST, s.signal_id), '[]')
      INTO signals
      FROM billops.spend_signal s
     WHERE s.status = 'open' AND s.billing_period = p.billing_period
       AND (s.usage_account_id IS NULL AND s.payer_account_id = p.payer_account_id
            OR s.usage_account_id IN (SELECT jsonb_object_keys(p.account_breakdown)));

    SELECT coalesce(jsonb_agg(jsonb_build_object('invoice_id', i, 'invoice_type', a.invoice_type,
                                                 'total_amount', a.total_amount, 'currency', a.currency) ORDER BY i), '[]')
      INTO invoices
      FROM unnest(p.aws_invoice_ids) i LEFT JOIN billops.aws_invoice a ON a.invoice_id = i;

    RETURN jsonb_build_object(
        'payable_id', p.payable_id, 'dedupe_key', p.dedupe_key, 'billing_period', to_char(p.billing_period, 'YYYY-MM'),
        'source_entity', p.source_entity, 'currency', p.currency, 'amount', p.amount,
        'previous_period', to_char(p.billing_period - interval '1 month', 'YYYY-MM'),
        'previous_amount', prev.amount,
        'change', CASE WHEN prev.payable_id IS NOT NULL THEN p.amount - prev.amount END,
        'change_pct', CASE WHEN prev.amount <> 0 THEN round(100 * (p.amount - prev.amount) / abs(prev.amount), 1) END,
        'trailing_average', round(avg3, 2), 'trailing_months', months,
        'drivers', drivers, 'open_signals', signals, 'aws_invoices', invoices,
        'invoice_state', p.invoice_state);
END $$;
COMMENT ON FUNCTION billops.payable_context(bigint) IS
  'Why a payable is what it is: against last month and the 3-month average, the top drivers by service, account and usage type, open spend signals, AWS invoices.';

-- billops._money, saying n/a for an amount there is none of (a signal without an impact).
CREATE FUNCTION billops._amount_text(v numeric) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT CASE WHEN v IS NULL THEN 'n/a' ELSE billops._money(v) END
$$;

-- The context as lines of text (the PDF's body; the description joins them).
CREATE FUNCTION billops._payable_context_lines(c jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT ARRAY[
        format('%s %s %s: %s %s.', c->>'source_entity', c->>'billing_period', 'payable', c->>'currency',
               billops._amount_text((c->>'amount')::numeric)),
        CASE WHEN c->>'previous_amount' IS NULL THEN format('No payable of this charge source in %s.', c->>'previous_period')
             ELSE format('Against %s: %s %s (%s), was %s.', c->>'previous_period',
                         CASE WHEN (c->>'change')::numeric >= 0 THEN 'up' ELSE 'down' END,
                         billops._amount_text(abs((c->>'change')::numeric)),
                         coalesce(ltrim(to_char((c->>'change_pct')::numeric, 'FMS9999990.0'), '+') || '%', 'n/a'),
                         billops._amount_text((c->>'previous_amount')::numeric)) END,
        CASE WHEN (c->>'trailing_months')::int > 0
             THEN format('Average of the previous %s month(s): %s.', c->>'trailing_months',
                         billops._amount_text((c->>'trailing_average')::numeric)) END]
    || ARRAY(SELECT format('Top change by %s: %s %s (now %s).', replace(d->>'dimension', '_', ' '), d->>'key',
                           CASE WHEN (d->>'change')::numeric >= 0 THEN '+' ELSE '-' END
                           || billops._amount_text(abs((d->>'change')::numeric)),
                           billops._amount_text((d->>'amount')::numeric))
               FROM jsonb_array_elements(c->'drivers') d)
    || CASE WHEN jsonb_array_length(c->'open_signals') > 0
            THEN ARRAY[format('%s open spend signal(s) for its accounts, impact %s.', jsonb_array_length(c->'open_signals'),
                              billops._amount_text((SELECT sum((s->>'impact')::numeric) FROM jsonb_array_elements(c->'open_signals') s)))]
            ELSE ARRAY['No open spend signals for its accounts.'] END
    || CASE WHEN jsonb_array_length(c->'aws_invoices') > 0
            THEN ARRAY(SELECT format('AWS invoice %s%s.', i->>'invoice_id',
                                     CASE WHEN i->>'total_amount' IS NOT NULL
                                          THEN format(' (%s %s)', i->>'currency', billops._amount_text((i->>'total_amount')::numeric)) ELSE '' END)
                         FROM jsonb_array_elements(c->'aws_invoices') i)
            ELSE ARRAY['Not yet invoiced by AWS (preliminary data).'] END
$$;

-- The context as a bill description: the lines joined, cut at max_length
-- characters (BILL does not document the limit of a bill's description, so it
-- is setting bill_description_max_length).
CREATE FUNCTION billops.payable_context_text(target_payable_id bigint, max_length integer DEFAULT NULL) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    WITH t AS (SELECT array_to_string(billops._payable_context_lines(billops.payable_context(target_payable_id)), ' ') AS s),
         m AS (SELECT coalesce(max_length, billops.setting_value('bill_description_max_length')::int) AS n)
    SELECT CASE WHEN length(t.s) <= m.n THEN t.s ELSE left(t.s, greatest(m.n - 1, 0)) || '…' END FROM t, m
$$;
COMMENT ON FUNCTION billops.payable_context_text(bigint, integer) IS
  'The context of a payable as one text, at most max_length characters (default: setting bill_description_max_length).';

-- A one-page PDF of text lines, written here (PDF 1.4: one page, Helvetica,
-- printable ASCII; other characters are shown as ?).  Lines too long for the
-- page are wrapped; lines beyond the page are left out, saying so.
CREATE FUNCTION billops._pdf_wrap(lines text[], width integer) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    out text[] := '{}';
    l   text;
    i   integer;
BEGIN
    -- at a space where there is one within the width
    FOREACH l IN ARRAY lines LOOP
        CONTINUE WHEN l IS NULL;
        WHILE length(l) > width LOOP
            i := width - position(' ' IN reverse(left(l, width)));
            IF i <= 0 OR i >= width THEN i := width; END IF;
            out := out || rtrim(left(l, i));
            l := ltrim(substr(l, i + 1));
        END LOOP;
        out := out || l;
    END LOOP;
    RETURN out;
END $$;

CREATE FUNCTION billops._pdf_page(title text, lines text[]) RETURNS bytea
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    -- an A4 page with 50 pt margins holds about 66 characters of 14 pt Helvetica and
    -- 95 of 10 pt (an independent reader drops text beyond the page: the tests read it back)
    head    text[] := billops._pdf_wrap(ARRAY[title], 66);
    body    text[] := billops._pdf_wrap(lines, 95);
    content text;
    objs    text[];
    -- the header, and a comment of bytes above 127 that marks the file as binary
    pdf     bytea := convert_to(E'%PDF-1.4\n', 'UTF8') || decode('25e2e3cfd30a', 'hex');
    offsets integer[] := '{}';
    xref    integer;
    i       integer;
    esc     text;
BEGIN
    IF cardinality(head) + cardinality(body) > 62 THEN
        body := body[1:(61 - cardinality(head))] || format('(%s more lines not shown)', cardinality(body) - (61 - cardinality(head)));
    END IF;
    content := 'BT 50 790 Td ';
    FOR i IN 1 .. cardinality(head) + cardinality(body) LOOP
        esc := CASE WHEN i <= cardinality(head) THEN head[i] ELSE body[i - cardinality(head)] END;
        -- printable ASCII only; PDF string escapes for \ ( )
        esc := replace(replace(replace(regexp_replace(esc, '[^\x20-\x7e]', '?', 'g'), '\', '\\'), '(', '\('), ')', '\)');
        content := content || CASE WHEN i = 1 THEN '/F1 14 Tf '
                                   WHEN i <= cardinality(head) THEN '0 -17 Td '
                                   WHEN i = cardinality(head) + 1 THEN '/F1 10 Tf 0 -24 Td '
                                   ELSE '0 -12 Td ' END
                   || '(' || esc || ') Tj ';
    END LOOP;
    content := content || 'ET';
    objs := ARRAY[
        '<< /Type /Catalog /Pages 2 0 R >>',
        '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
        '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
        '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>',
        format(E'<< /Length %s >>\nstream\n%s\nendstream', octet_length(content), content)];
    FOR i IN 1 .. cardinality(objs) LOOP
        offsets := offsets || octet_length(pdf);
        pdf := pdf || convert_to(format(E'%s 0 obj\n%s\nendobj\n', i, objs[i]), 'UTF8');
    END LOOP;
    xref := octet_length(pdf);
    pdf := pdf || convert_to(format(E'xref\n0 %s\n0000000000 65535 f \n', cardinality(objs) + 1), 'UTF8');
    FOR i IN 1 .. cardinality(objs) LOOP
        pdf := pdf || convert_to(lpad(offsets[i]::text, 10, '0') || E' 00000 n \n', 'UTF8');
    END LOOP;
    RETURN pdf || convert_to(format(E'trailer\n<< /Size %s /Root 1 0 R >>\nstartxref\n%s\n%%%%EOF\n',
                                    cardinality(objs) + 1, xref), 'UTF8');
END $$;

-- The context as a one-page PDF, to attach to the payable's bill.
CREATE FUNCTION billops.payable_context_pdf(target_payable_id bigint) RETURNS bytea
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT billops._pdf_page(format('Why this bill: %s', c->>'dedupe_key'), billops._payable_context_lines(c))
      FROM billops.payable_context(target_payable_id) c
$$;
COMMENT ON FUNCTION billops.payable_context_pdf(bigint) IS
  'The context of a payable as a one-page PDF (written by pg_billops), to attach to its bill.';

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('bill_description_max_length', '1000', 'numeric',
   'Longest context text pg_billops puts in a bill''s description (BILL does not document the limit).');

-- ===== the context on the bill ==============================================
--
-- Each bill carries its context in its description and as an attached PDF.
-- Both are made when the payable is routed and again whenever its content
-- changes while it waits for approval -- never after: what approvers saw is
-- what stays on the bill (the approval lock).  BILL keeps every file it is
-- sent, so each version of the PDF is its own document, named by the
-- payable's content hash.

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('bill_context_document', 'true', 'boolean',
   'Attach the context PDF (billops.payable_context_pdf) to each bill in BILL, made again when the payable changes before approval.');

CREATE TABLE billops.bill_context (
    payable_id    bigint PRIMARY KEY REFERENCES billops.payable,
    content_hash  text NOT NULL,
    description   text NOT NULL,
    document_id   bigint REFERENCES billops.payable_document,
    made_at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE billops.bill_context IS
  'The context each bill carries in BILL (its description and attached PDF), as made for the payable''s content while it waited for approval.';

-- A bill's description: who wrote it and the payable's key, then its context,
-- within bill_description_max_length characters.
CREATE FUNCTION billops._bill_description(p billops.payable) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    head text := format('[pg_billops, system-generated] %s %s; key %s; ', p.source_entity,
                        to_char(p.billing_period, 'YYYY-MM'), p.dedupe_key);
    max_length integer := billops.setting_value('bill_description_max_length')::int;
BEGIN
    IF length(head) >= max_length THEN
        RETURN left(head, max_length);
    END IF;
    RETURN head || billops.payable_context_text(p.payable_id, max_length - length(head));
END $$;

-- Make the context of a payable waiting for approval, once per content.
CREATE FUNCTION billops._bill_context_refresh(target_payable_id bigint) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp SET billops.internal_context = 'system' AS $$
DECLARE
    p    billops.payable;
    doc  bigint;
    name text;
BEGIN
    SELECT * INTO p FROM billops.payable x WHERE x.payable_id = target_payable_id;
    IF p.status IS DISTINCT FROM 'routed' OR p.treatment <> 'invoice_like'
       OR EXISTS (SELECT FROM billops.bill_context c WHERE c.payable_id = p.payable_id AND c.content_hash = p.content_hash) THEN
        RETURN;
    END IF;
    IF billops.setting_value('bill_context_document') = 'true' THEN
        name := format('pg_billops-context-%s-%s.pdf', to_char(p.billing_period, 'YYYY-MM'), left(p.content_hash, 8));
        SELECT d.document_id INTO doc FROM billops.payable_document d WHERE d.payable_id = p.payable_id AND d.file_name = name;
        IF doc IS NULL THEN
            doc := billops.attach_document(p.payable_id, name, billops.payable_context_pdf(p.payable_id), 'application/pdf');
        END IF;
    END IF;
    INSERT INTO billops.bill_context AS c (payable_id, content_hash, description, document_id)
    VALUES (p.payable_id, p.content_hash, billops._bill_description(p), doc)
    ON CONFLICT (payable_id) DO UPDATE SET content_hash = EXCLUDED.content_hash, description = EXCLUDED.description,
                                           document_id = EXCLUDED.document_id, made_at = clock_timestamp();
END $$;
