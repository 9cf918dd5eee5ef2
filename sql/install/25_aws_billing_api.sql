-- ---------------------------------------------------------------------------
-- AWS billing APIs: Cost Explorer (daily spend per linked account, anomalies)
-- and Invoicing (invoice summaries, invoice PDFs), beside the CUR they
-- complement.
--
-- The C side (src/aws_api.c, billops._aws_api_call) signs and sends one call;
-- everything that makes the calls cheap and safe is here:
--   * every call is a row in billops.aws_api_call (the ledger), with what it
--     cost: each Cost Explorer request is billed USD 0.01, page by page;
--   * a daily cap on Cost Explorer calls (setting ce_daily_call_cap), checked
--     before every page, under a lock so concurrent fetches cannot overrun it;
--   * a cache: days Cost Explorer called final are never asked again, days
--     it called estimated only after ce_estimated_refresh_hours;
--   * an AWS failure does not raise: the fetch returns status 'failed' (and a
--     WARNING), so the ledger rows of the calls that were made - and paid for -
--     are committed with it.  Data already fetched stays as it was.
-- ---------------------------------------------------------------------------

INSERT INTO billops.setting (name, value, value_type, description) VALUES
  ('ce_daily_call_cap', '100', 'numeric',
   'Most Cost Explorer requests (pages) pg_billops makes per UTC day, over all payers. Each costs USD 0.01 (ce_request_price_usd). 0 stops all calls.'),
  ('ce_request_price_usd', '0.01', 'numeric',
   'What AWS bills per Cost Explorer API request (each page counts). Whether GetAnomalies is billed is not documented; it is counted at this price too.'),
  ('ce_estimated_refresh_hours', '6', 'numeric',
   'A day Cost Explorer marked Estimated is fetched again only when its cached copy is older than this.'),
  ('aws_api_call_retention_days', '400', 'numeric',
   'How long billops.aws_api_call keeps its ledger of AWS API calls.');

-- Where the billing APIs of a payer (management) account are reached, and with
-- which credentials.  Holds no secret: credentials is a reference.
CREATE TABLE billops.aws_api_source (
    payer_account_id    text PRIMARY KEY CHECK (payer_account_id ~ '^[0-9]{12}$'),
    credentials         text NOT NULL DEFAULT 'default' CHECK (billops.credentials_reference_valid(credentials)),
    -- a role assumed on top of the credentials (STS AssumeRole, in `region`), or NULL
    role_arn            text,
    role_external_id    text,
    role_session_name   text,
    -- NULL: as AWS's SDKs configure it - AWS_ENDPOINT_URL_COST_EXPLORER /
    -- _INVOICING, AWS_ENDPOINT_URL, the config file's services section and
    -- endpoint_url of the credentials' profile - else AWS's
    -- https://ce.us-east-1.amazonaws.com and https://invoicing.us-east-1.api.aws
    -- (see billops.aws_endpoint).  A URL here wins over all of them.
    cost_explorer_url   text,
    invoicing_url       text,
    -- Cost Explorer and Invoicing are global services signed for us-east-1
    region              text NOT NULL DEFAULT 'us-east-1' CHECK (region ~ '^[a-z0-9-]+$'),
    anomaly_monitor_arn text,           -- NULL: anomalies of every monitor
    enabled             boolean NOT NULL DEFAULT true,
    CONSTRAINT aws_api_source_role CHECK (billops._check_role(role_arn, role_external_id, role_session_name))
);
COMMENT ON TABLE billops.aws_api_source IS
  'Per payer account: the credentials reference (never a key) and role pg_billops calls Cost Explorer and Invoicing with, and their endpoints when not the configured ones.';

-- The ledger: one row per API call (a page is a call), kept
-- aws_api_call_retention_days.  Page tokens are not kept.
CREATE TABLE billops.aws_api_call (
    call_id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payer_account_id text NOT NULL,
    service          text NOT NULL CHECK (service IN ('ce', 'invoicing')),
    operation        text NOT NULL,
    page             integer NOT NULL DEFAULT 1,
    called_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    called_by        name NOT NULL DEFAULT billops.actor(),
    duration_ms      double precision,
    attempts         integer,          -- requests sent, retries of throttling and 5xx included
    outcome          text NOT NULL CHECK (outcome IN ('ok', 'error')),
    billed_usd       numeric(10, 2) NOT NULL DEFAULT 0,
    request_id       text,             -- AWS's x-amzn-RequestId, for support cases
    error_sqlstate   text,
    error_message    text,
    request          jsonb             -- what was asked, without the page token
);
CREATE INDEX ON billops.aws_api_call (called_at);
COMMENT ON TABLE billops.aws_api_call IS
  'Every Cost Explorer and Invoicing call pg_billops made: when, what, how it ended and what it cost (USD 0.01 per Cost Explorer request).';

-- Cost Explorer daily spend per linked account (cached).  A day has a row in
-- ce_fetched_day once fetched, even when no account spent anything that day.
CREATE TABLE billops.ce_fetched_day (
    payer_account_id text NOT NULL,
    day              date NOT NULL,
    estimated        boolean NOT NULL,
    fetched_at       timestamptz NOT NULL,
    call_id          bigint,           -- the first call of the fetch that brought it
    PRIMARY KEY (payer_account_id, day)
);
COMMENT ON TABLE billops.ce_fetched_day IS
  'Days whose Cost Explorer spend is cached, and whether AWS still called them Estimated when fetched.';

CREATE TABLE billops.ce_daily_spend (
    payer_account_id  text NOT NULL,
    day               date NOT NULL,
    linked_account_id text NOT NULL,
    unblended_cost    numeric(20, 10) NOT NULL,
    amortized_cost    numeric(20, 10),
    currency          text,
    PRIMARY KEY (payer_account_id, day, linked_account_id),
    FOREIGN KEY (payer_account_id, day) REFERENCES billops.ce_fetched_day ON DELETE CASCADE
);
COMMENT ON TABLE billops.ce_daily_spend IS
  'Cost Explorer GetCostAndUsage, DAILY, grouped by LINKED_ACCOUNT: unblended and amortized cost per payer, day and account.';

-- AWS invoices (Invoicing API summaries, or entered by hand).
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

-- Invoice PDFs fetched with GetInvoicePDF.
CREATE TABLE billops.aws_invoice_document (
    invoice_id     text PRIMARY KEY REFERENCES billops.aws_invoice ON DELETE CASCADE,
    file_name      text NOT NULL,
    content_type   text NOT NULL DEFAULT 'application/pdf',
    content        bytea NOT NULL,
    sha256         text NOT NULL,
    supplemental   jsonb NOT NULL DEFAULT '[]',   -- types and ids of supplemental documents AWS listed
    fetched_at     timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMENT ON TABLE billops.aws_invoice_document IS
  'AWS invoice PDFs (GetInvoicePDF); attached to the payables built from the invoice''s lines.';

-- The outcome of a fetch (one row).
CREATE TYPE billops.aws_fetch_result AS (
    payer_account_id text,
    operation        text,
    status           text,      -- fetched | cached | capped | failed
    calls            integer,
    billed_usd       numeric,
    items            integer,   -- days, anomalies or invoices received
    new_items        integer,   -- of which new to pg_billops
    sqlstate         text,
    message          text
);
COMMENT ON TYPE billops.aws_fetch_result IS
  'Outcome of a billops.fetch_* call: status fetched, cached, capped or failed, API calls made and USD billed, items received and new, and the error if any.';

-- One page's answer (see _aws_api_page).
CREATE TYPE billops._aws_page AS (response jsonb, billed_usd numeric, sqlstate text, message text);

-- ---------------------------------------------------------------------------
-- Calling
-- ---------------------------------------------------------------------------
CREATE FUNCTION billops._aws_api_call(endpoint text, region text, credentials text, service text, operation text,
                                      request jsonb, role_arn text DEFAULT NULL, role_external_id text DEFAULT NULL,
                                      role_session_name text DEFAULT NULL,
                                      OUT response jsonb, OUT request_id text, OUT attempts integer)
AS 'MODULE_PATHNAME', 'billops_aws_api_call' LANGUAGE C VOLATILE;

CREATE FUNCTION billops._aws_document_get(url text, max_bytes integer) RETURNS bytea
AS 'MODULE_PATHNAME', 'billops_aws_document_get' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION billops._aws_api_source(payer text) RETURNS billops.aws_api_source
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src billops.aws_api_source;
BEGIN
    SELECT * INTO src FROM billops.aws_api_source s WHERE s.payer_account_id = payer;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no AWS billing API source for payer account %', coalesce(payer, 'NULL')
              USING ERRCODE = 'undefined_object',
                    HINT = 'INSERT INTO billops.aws_api_source (payer_account_id, credentials) VALUES (''123456789012'', ''default'');';
    END IF;
    IF NOT src.enabled THEN
        RAISE EXCEPTION 'the AWS billing API source of payer account % is disabled', payer
              USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RETURN src;
END $$;

-- One page: call and write the ledger row.  When AWS (or the network) failed
-- after retries, response is NULL and sqlstate/message say why; the
-- subtransaction undoes nothing but the call itself.
CREATE FUNCTION billops._aws_api_page(src billops.aws_api_source, service text, operation text, request jsonb, page integer)
RETURNS billops._aws_page
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
    ans record;
    st text; msg text; det text;
    price numeric := CASE WHEN service = 'ce' THEN billops.setting_value('ce_request_price_usd')::numeric ELSE 0 END;
    shown jsonb := request - 'NextPageToken' - 'NextToken';
BEGIN
    BEGIN
        SELECT * INTO ans FROM billops._aws_api_call(CASE service WHEN 'ce' THEN src.cost_explorer_url ELSE src.invoicing_url END,
                                                     src.region, src.credentials, service, operation, request,
                                                     src.role_arn, src.role_external_id, src.role_session_name);
    EXCEPTION WHEN query_canceled OR admin_shutdown THEN
        RAISE;
    WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
        msg := msg || coalesce(' (' || nullif(det, '') || ')', '');
        INSERT INTO billops.aws_api_call (payer_account_id, service, operation, page, duration_ms, outcome,
                                          error_sqlstate, error_message, request)
        VALUES (src.payer_account_id, service, operation, page,
                extract(epoch FROM clock_timestamp() - t0) * 1000, 'error', st, msg, shown);
        RETURN ROW(NULL, 0, st, msg)::billops._aws_page;
    END;
    INSERT INTO billops.aws_api_call (payer_account_id, service, operation, page, duration_ms, attempts, outcome,
                                      billed_usd, request_id, request)
    VALUES (src.payer_account_id, service, operation, page, extract(epoch FROM clock_timestamp() - t0) * 1000,
            ans.attempts, 'ok', price, ans.request_id, shown);
    RETURN ROW(ans.response, price, NULL, NULL)::billops._aws_page;
END $$;

-- Count a page into a fetch's result.
CREATE FUNCTION billops._aws_fetch_count(res billops.aws_fetch_result, pg billops._aws_page)
RETURNS billops.aws_fetch_result
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    res.calls := res.calls + 1;
    res.billed_usd := res.billed_usd + pg.billed_usd;
    IF pg.response IS NULL THEN
        res.status := 'failed';
        res.sqlstate := pg.sqlstate;
        res.message := pg.message;
    END IF;
    RETURN res;
END $$;

-- Before a Cost Explorer page: is the day's cap reached?  Serialized, so two
-- sessions cannot both take the last call.
CREATE FUNCTION billops._ce_cap_check(res billops.aws_fetch_result) RETURNS billops.aws_fetch_result
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    cap integer := billops.setting_value('ce_daily_call_cap')::numeric;
    used integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('billops.ce_daily_call_cap'));
    SELECT count(*) INTO used FROM billops.aws_api_call c
     WHERE c.service = 'ce' AND c.called_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    IF used >= cap THEN
        res.status := 'capped';
        res.sqlstate := '54000';
        res.message := format('the daily cap of %s Cost Explorer calls is reached (%s made today, UTC)', cap, used);
    END IF;
    RETURN res;
END $$;

CREATE FUNCTION billops._aws_fetch_finish(result billops.aws_fetch_result) RETURNS billops.aws_fetch_result
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM billops.aws_api_call c
     WHERE c.called_at < now() - make_interval(days => billops.setting_value('aws_api_call_retention_days')::int);
    IF result.status IN ('failed', 'capped') THEN
        RAISE WARNING 'billops: % for payer % stopped: %', result.operation, result.payer_account_id, result.message
              USING DETAIL = format('%s call(s) made, USD %s; data fetched before is unchanged.', result.calls, result.billed_usd),
                    HINT = CASE result.status WHEN 'capped'
                                THEN 'Wait for tomorrow (UTC), or raise the setting ce_daily_call_cap.'
                                ELSE 'SELECT * FROM billops.aws_api_call ORDER BY call_id DESC LIMIT 5;' END;
    END IF;
    RETURN result;
END $$;

-- ---------------------------------------------------------------------------
-- Cost Explorer: daily spend per linked account
-- ---------------------------------------------------------------------------
CREATE FUNCTION billops.fetch_ce_daily_spend(payer text, first_day date DEFAULT NULL, last_day date DEFAULT NULL)
RETURNS billops.aws_fetch_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src     billops.aws_api_source := billops._aws_api_source(payer);
    today   date := (now() AT TIME ZONE 'UTC')::date;
    d0      date := coalesce(first_day, (date_trunc('month', today) - interval '1 month')::date);
    d1      date := coalesce(last_day, today);
    refresh interval := make_interval(hours => billops.setting_value('ce_estimated_refresh_hours')::int);
    need0   date; need1 date;
    req     jsonb;
    resp    jsonb;
    token   text;
    page    integer := 0;
    first_call bigint;
    pg      billops._aws_page;
    res     billops.aws_fetch_result := ROW(payer, 'GetCostAndUsage', 'fetched', 0, 0, 0, 0, NULL, NULL);
BEGIN
    IF d0 > d1 OR d1 > today THEN
        RAISE EXCEPTION 'invalid day range % to %', d0, d1 USING ERRCODE = 'invalid_parameter_value',
              DETAIL = format('Cost Explorer has days up to today (%s, UTC); the first day must not be after the last.', today);
    END IF;
    -- the days that are not cached, or cached as estimated too long ago
    SELECT min(d)::date, max(d)::date INTO need0, need1
      FROM generate_series(d0, d1, interval '1 day') d
     WHERE NOT EXISTS (SELECT FROM billops.ce_fetched_day c
                        WHERE c.payer_account_id = payer AND c.day = d::date
                          AND (NOT c.estimated OR c.fetched_at > now() - refresh));
    IF need0 IS NULL THEN
        res.status := 'cached';
        RETURN billops._aws_fetch_finish(res);
    END IF;

    PERFORM billops._drop_temp('billops_ce_page');
    CREATE TEMP TABLE billops_ce_page (day date, estimated boolean, account text, unblended numeric, amortized numeric,
                                       currency text) ON COMMIT DROP;
    -- "To retrieve data beyond the past 14 months, your start date needs to be
    -- the first day of the month" (AWS's answer otherwise): ask from the 1st
    IF need0 < (today - interval '14 months')::date + 1 THEN
        need0 := date_trunc('month', need0)::date;
    END IF;
    req := jsonb_build_object('TimePeriod', jsonb_build_object('Start', need0, 'End', need1 + 1),
                              'Granularity', 'DAILY', 'Metrics', jsonb_build_array('UnblendedCost', 'AmortizedCost'),
                              'GroupBy', jsonb_build_array(jsonb_build_object('Type', 'DIMENSION', 'Key', 'LINKED_ACCOUNT')));
    LOOP
        res := billops._ce_cap_check(res);
        EXIT WHEN res.status <> 'fetched';
        page := page + 1;
        pg := billops._aws_api_page(src, 'ce', 'GetCostAndUsage',
                                    req || coalesce(jsonb_build_object('NextPageToken', token), '{}'), page);
        res := billops._aws_fetch_count(res, pg);
        EXIT WHEN res.status <> 'fetched';
        resp := pg.response;
        first_call := coalesce(first_call, (SELECT max(c.call_id) FROM billops.aws_api_call c));
        -- a day's groups may continue on the next page under the same TimePeriod: rows, merged later
        INSERT INTO billops_ce_page
        SELECT (r->'TimePeriod'->>'Start')::date, (r->>'Estimated')::boolean, g->'Keys'->>0,
               (g->'Metrics'->'UnblendedCost'->>'Amount')::numeric, (g->'Metrics'->'AmortizedCost'->>'Amount')::numeric,
               g->'Metrics'->'UnblendedCost'->>'Unit'
          FROM jsonb_array_elements(resp->'ResultsByTime') r
          LEFT JOIN LATERAL jsonb_array_elements(r->'Groups') g ON true;
        token := resp->>'NextPageToken';
        EXIT WHEN token IS NULL OR token = '';
    END LOOP;

    IF res.status = 'fetched' THEN
        -- replace the fetched days whole: an account that no longer shows up has no spend that day
        DELETE FROM billops.ce_fetched_day c
         WHERE c.payer_account_id = payer AND c.day IN (SELECT p.day FROM billops_ce_page p);
        INSERT INTO billops.ce_fetched_day (payer_account_id, day, estimated, fetched_at, call_id)
        SELECT payer, p.day, bool_or(coalesce(p.estimated, true)), now(), first_call
          FROM billops_ce_page p GROUP BY p.day;
        INSERT INTO billops.ce_daily_spend (payer_account_id, day, linked_account_id, unblended_cost, amortized_cost, currency)
        SELECT payer, p.day, p.account, sum(p.unblended), sum(p.amortized), min(p.currency)
          FROM billops_ce_page p WHERE p.account IS NOT NULL GROUP BY p.day, p.account;
        res.items := (SELECT count(DISTINCT p.day) FROM billops_ce_page p);
        res.new_items := res.items;
    END IF;
    RETURN billops._aws_fetch_finish(res);
END $$;
COMMENT ON FUNCTION billops.fetch_ce_daily_spend(text, date, date) IS
  'Cost Explorer daily spend per linked account into billops.ce_daily_spend (default: from the first of last month to today); asks only for days not cached, counts and caps the calls.';

-- ---------------------------------------------------------------------------
-- Cost Explorer: anomalies (Cost Anomaly Detection)
-- ---------------------------------------------------------------------------
CREATE FUNCTION billops.fetch_ce_anomalies(payer text, first_day date DEFAULT NULL, last_day date DEFAULT NULL)
RETURNS billops.aws_fetch_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src     billops.aws_api_source := billops._aws_api_source(payer);
    today   date := (now() AT TIME ZONE 'UTC')::date;
    req     jsonb;
    resp    jsonb;
    token   text;
    page    integer := 0;
    pg      billops._aws_page;
    a       jsonb;
    r       record;
    res     billops.aws_fetch_result := ROW(payer, 'GetAnomalies', 'fetched', 0, 0, 0, 0, NULL, NULL);
BEGIN
    IF first_day > coalesce(last_day, today) THEN
        RAISE EXCEPTION 'invalid day range % to %', first_day, last_day USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- AWS keeps anomalies 90 days
    req := jsonb_build_object('DateInterval', jsonb_strip_nulls(jsonb_build_object(
                                  'StartDate', coalesce(first_day, today - 90), 'EndDate', last_day)));
    IF src.anomaly_monitor_arn IS NOT NULL THEN
        req := req || jsonb_build_object('MonitorArn', src.anomaly_monitor_arn);
    END IF;
    LOOP
        res := billops._ce_cap_check(res);
        EXIT WHEN res.status <> 'fetched';
        page := page + 1;
        pg := billops._aws_api_page(src, 'ce', 'GetAnomalies',
                                    req || coalesce(jsonb_build_object('NextPageToken', token), '{}'), page);
        res := billops._aws_fetch_count(res, pg);
        EXIT WHEN res.status <> 'fetched';
        resp := pg.response;
        FOR a IN SELECT x FROM jsonb_array_elements(coalesce(resp->'Anomalies', '[]')) x LOOP
            SELECT * INTO r FROM billops._record_ce_anomaly(a, payer);
            res.items := res.items + 1;
            res.new_items := res.new_items + r.is_new::int;
        END LOOP;
        token := resp->>'NextPageToken';
        EXIT WHEN token IS NULL OR token = '';
    END LOOP;
    RETURN billops._aws_fetch_finish(res);
END $$;
COMMENT ON FUNCTION billops.fetch_ce_anomalies(text, date, date) IS
  'AWS Cost Anomaly Detection anomalies (GetAnomalies, default: the last 90 days) into billops.spend_signal, deduplicated by anomaly id.';

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
-- Invoicing: invoice summaries and PDFs
-- ---------------------------------------------------------------------------
CREATE FUNCTION billops.fetch_aws_invoices(payer text, period date DEFAULT NULL, documents boolean DEFAULT true)
RETURNS billops.aws_fetch_result
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    src     billops.aws_api_source := billops._aws_api_source(payer);
    p       date := coalesce(period, (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '1 month')::date);
    req     jsonb;
    resp    jsonb;
    token   text;
    page    integer := 0;
    pg      billops._aws_page;
    s       jsonb;
    inv     record;
    pdf     jsonb;
    bytes   bytea;
    res     billops.aws_fetch_result := ROW(payer, 'ListInvoiceSummaries', 'fetched', 0, 0, 0, 0, NULL, NULL);
BEGIN
    IF NOT billops._is_period(p) THEN
        RAISE EXCEPTION 'a billing period is the first day of a month, not %', p USING ERRCODE = 'invalid_parameter_value';
    END IF;
    req := jsonb_build_object('Selector', jsonb_build_object('ResourceType', 'ACCOUNT_ID', 'Value', payer),
                              'Filter', jsonb_build_object('BillingPeriod', jsonb_build_object(
                                  'Month', extract(month FROM p)::int, 'Year', extract(year FROM p)::int)),
                              'MaxResults', 100);
    LOOP
        page := page + 1;
        pg := billops._aws_api_page(src, 'invoicing', 'ListInvoiceSummaries',
                                    req || coalesce(jsonb_build_object('NextToken', token), '{}'), page);
        res := billops._aws_fetch_count(res, pg);
        EXIT WHEN res.status <> 'fetched';
        resp := pg.response;
        FOR s IN SELECT x FROM jsonb_array_elements(coalesce(resp->'InvoiceSummaries', '[]')) x LOOP
            res.new_items := res.new_items + (NOT EXISTS (SELECT FROM billops.aws_invoice i
                                                           WHERE i.invoice_id = s->>'InvoiceId'))::int;
            PERFORM billops.record_aws_invoice(s);
            res.items := res.items + 1;
        END LOOP;
        token := resp->>'NextToken';
        EXIT WHEN token IS NULL OR token = '';
    END LOOP;

    -- the PDFs not fetched yet (a link that expired before the download is asked for again, once)
    IF documents AND res.status = 'fetched' THEN
        FOR inv IN SELECT i.invoice_id FROM billops.aws_invoice i
                    WHERE i.account_id = payer AND i.billing_period = p AND i.source = 'invoicing_api'
                      AND NOT EXISTS (SELECT FROM billops.aws_invoice_document d WHERE d.invoice_id = i.invoice_id)
                    ORDER BY i.invoice_id LOOP
            bytes := NULL;
            FOR attempt IN 1..2 LOOP
                pg := billops._aws_api_page(src, 'invoicing', 'GetInvoicePDF', jsonb_build_object('InvoiceId', inv.invoice_id), 1);
                res := billops._aws_fetch_count(res, pg);
                EXIT WHEN res.status <> 'fetched';
                pdf := pg.response->'InvoicePDF';
                EXIT WHEN pdf->>'DocumentUrl' IS NULL;     -- AWS has no document for it (yet)
                BEGIN
                    bytes := billops._aws_document_get(pdf->>'DocumentUrl', 6 * 1024 * 1024);
                    EXIT;
                EXCEPTION WHEN invalid_authorization_specification THEN
                    -- expired between the two requests: ask for a fresh link
                    IF attempt = 2 THEN
                        res.status := 'failed'; res.sqlstate := SQLSTATE; res.message := SQLERRM;
                    END IF;
                WHEN query_canceled OR admin_shutdown THEN
                    RAISE;
                WHEN OTHERS THEN
                    res.status := 'failed'; res.sqlstate := SQLSTATE; res.message := SQLERRM;
                    EXIT;
                END;
            END LOOP;
            EXIT WHEN res.status <> 'fetched';
            IF bytes IS NOT NULL THEN
                INSERT INTO billops.aws_invoice_document (invoice_id, file_name, content, sha256, supplemental)
                VALUES (inv.invoice_id, 'aws-invoice-' || regexp_replace(inv.invoice_id, '[^A-Za-z0-9._-]', '_', 'g') || '.pdf',
                        bytes, encode(sha256(bytes), 'hex'),
                        coalesce((SELECT jsonb_agg(jsonb_build_object('DocumentType', x->>'DocumentType', 'DocumentId', x->>'DocumentId'))
                                    FROM jsonb_array_elements(pdf->'SupplementalDocuments') x), '[]'));
            END IF;
        END LOOP;
        PERFORM billops._attach_invoice_documents(p, payer);
    END IF;
    RETURN billops._aws_fetch_finish(res);
END $$;
COMMENT ON FUNCTION billops.fetch_aws_invoices(text, date, boolean) IS
  'AWS invoice summaries of a payer''s period (ListInvoiceSummaries, paged) into billops.aws_invoice; with documents, their PDFs too, attached to the payables built from them.';

-- Attach each fetched invoice PDF to the payables built from the invoice's
-- lines (once; attach_document ignores the same file twice).
CREATE FUNCTION billops._attach_invoice_documents(period date, payer text) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    x record;
    n integer := 0;
BEGIN
    FOR x IN SELECT ip.payable_id, d.file_name, d.content, d.sha256
               FROM billops.aws_invoice_payable ip
               JOIN billops.aws_invoice_document d USING (invoice_id)
              WHERE ip.billing_period = period AND ip.account_id = payer AND ip.status <> 'voided'
                AND NOT EXISTS (SELECT FROM billops.payable_document pd
                                 WHERE pd.payable_id = ip.payable_id AND pd.sha256 = d.sha256)
              ORDER BY ip.payable_id, d.file_name LOOP
        -- a corrected PDF under a name already used goes under a name of its own
        PERFORM billops.attach_document(x.payable_id,
                    CASE WHEN EXISTS (SELECT FROM billops.payable_document pd
                                       WHERE pd.payable_id = x.payable_id AND pd.file_name = x.file_name)
                         THEN regexp_replace(x.file_name, '\.pdf$', '') || '-' || left(x.sha256, 8) || '.pdf'
                         ELSE x.file_name END,
                    x.content, 'application/pdf');
        n := n + 1;
    END LOOP;
    RETURN n;
END $$;

CREATE VIEW billops.aws_api_spend WITH (security_invoker = true) AS
SELECT (c.called_at AT TIME ZONE 'UTC')::date AS day_utc, c.service, c.operation,
       count(*) AS calls, count(*) FILTER (WHERE c.outcome = 'error') AS failed_calls,
       sum(c.billed_usd) AS billed_usd
  FROM billops.aws_api_call c
 GROUP BY 1, 2, 3;
COMMENT ON VIEW billops.aws_api_spend IS 'AWS API calls and their cost per UTC day, service and operation.';

-- who pointed pg_billops at which endpoint with which credentials reference
SELECT billops._audit_tables(ARRAY['aws_api_source'], ARRAY['payer_account_id']);
