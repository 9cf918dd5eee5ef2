-- ---------------------------------------------------------------------------
-- Rendering (after 61_statements.sql, which builds what is rendered here).
-- The statement a business-unit owner opens: one self-contained HTML page
-- (no scripts, no external files) with the month's totals, a month-over-month
-- chart of the last twelve statements, and the cost by service and account.
-- ---------------------------------------------------------------------------
CREATE FUNCTION billops._html(t text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
    SELECT replace(replace(replace(replace(replace(coalesce(t, ''), '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), '''', '&#39;')
$$;

CREATE FUNCTION billops.statement_html(billing_group text, period date) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    s      billops.statement;
    prev   billops.statement;
    chart  text;
    by_svc text;
    by_acct text;
    extras text;
    maxv   numeric;
    n      integer;
BEGIN
    SELECT * INTO s FROM billops.statement x WHERE x.group_name = billing_group AND x.billing_period = period;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no statement for billing group "%" in %', billing_group, to_char(period, 'YYYY-MM')
              USING ERRCODE = 'no_data_found', HINT = 'Build it first: SELECT * FROM billops.build_statements(period).';
    END IF;
    SELECT * INTO prev FROM billops.statement x
     WHERE x.billing_group_id IS NOT DISTINCT FROM s.billing_group_id AND x.billing_period = (period - interval '1 month')::date;

    -- the chart: pro forma bars, AWS cost as a tick on each bar, last twelve months
    WITH m AS (
        SELECT x.billing_period, x.aws_cost, x.proforma_cost,
               row_number() OVER (ORDER BY x.billing_period) AS i
          FROM (SELECT * FROM billops.statement x
                 WHERE x.billing_group_id IS NOT DISTINCT FROM s.billing_group_id AND x.billing_period <= period
                 ORDER BY x.billing_period DESC LIMIT 12) x)
    SELECT greatest(max(greatest(m.aws_cost, m.proforma_cost, 0)), 1), count(*) INTO maxv, n FROM m;
    WITH m AS (
        SELECT x.billing_period, x.aws_cost, x.proforma_cost, row_number() OVER (ORDER BY x.billing_period) AS i
          FROM (SELECT * FROM billops.statement x
                 WHERE x.billing_group_id IS NOT DISTINCT FROM s.billing_group_id AND x.billing_period <= period
                 ORDER BY x.billing_period DESC LIMIT 12) x)
    -- (a fixed height: a page of few months must not turn into a poster)
    SELECT format('<svg viewBox="0 0 %1$s 230" width="%1$s" height="230" style="max-width:100%%;height:auto" role="img" '
                  'aria-label="pro forma cost by month">', greatest(60 * n + 20, 740))
           || string_agg(format(
                '<g><title>%1$s: pro forma %2$s, AWS %3$s</title>'
                || '<rect x="%4$s" y="%5$s" width="36" height="%6$s" rx="3" fill="%7$s"/>'
                || '<line x1="%8$s" x2="%9$s" y1="%10$s" y2="%10$s" stroke="#1f2937" stroke-width="2"/>'
                || '<text x="%11$s" y="222" font-size="11" text-anchor="middle" fill="#4b5563">%12$s</text></g>',
                to_char(m.billing_period, 'YYYY-MM'), billops._money(m.proforma_cost), billops._money(m.aws_cost),
                20 + 60 * (m.i - 1), 200 - round(180 * greatest(m.proforma_cost, 0) / maxv),
                round(180 * greatest(m.proforma_cost, 0) / maxv),
                CASE WHEN m.billing_period = period THEN '#2563eb' ELSE '#93c5fd' END,
                16 + 60 * (m.i - 1), 60 + 60 * (m.i - 1), 200 - round(180 * greatest(m.aws_cost, 0) / maxv),
                38 + 60 * (m.i - 1), to_char(m.billing_period, 'Mon YY')), '' ORDER BY m.i)
           || '<line x1="10" x2="' || (60 * n + 10) || '" y1="200" y2="200" stroke="#9ca3af"/></svg>'
      INTO chart FROM m;

    SELECT string_agg(format('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
                             billops._html(x.service), billops._money(x.aws), billops._money(x.pf), billops._money(x.pf - x.aws)),
                      '' ORDER BY x.pf DESC, x.service)
      INTO by_svc
      FROM (SELECT l.service, sum(l.aws_cost) AS aws, sum(l.proforma_cost) AS pf FROM billops.statement_line l
             WHERE l.statement_id = s.statement_id AND l.kind IN ('aws', 'shared') GROUP BY 1) x;
    SELECT string_agg(format('<tr><td>%s</td><td class="n">%s</td><td class="n">%s</td></tr>',
                             billops._html(coalesce(x.acct || coalesce(' ' || a.account_name, ''), '(no account)')),
                             billops._money(x.aws), billops._money(x.pf)), '' ORDER BY x.pf DESC, x.acct)
      INTO by_acct
      FROM (SELECT l.usage_account_id AS acct, sum(l.aws_cost) AS aws, sum(l.proforma_cost) AS pf FROM billops.statement_line l
             WHERE l.statement_id = s.statement_id AND l.kind IN ('aws', 'shared') GROUP BY 1) x
      LEFT JOIN billops.aws_account a ON a.account_id = x.acct;
    SELECT string_agg(format('<tr><td>%s</td><td>%s</td><td class="n">%s</td></tr>', l.kind, billops._html(l.description),
                             billops._money(l.proforma_cost)), '' ORDER BY l.line_no)
      INTO extras FROM billops.statement_line l WHERE l.statement_id = s.statement_id AND l.kind IN ('fee', 'credit');

    RETURN format($h$<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>%1$s · %2$s · pro forma statement</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111827;margin:2rem auto;max-width:60rem;padding:0 1rem}
h1{font-size:1.5rem;margin:0}.sub{color:#6b7280;margin:.2rem 0 1.5rem}
.tiles{display:grid;grid-template-columns:repeat(4,1fr);gap:.75rem;margin-bottom:1.5rem}
.tile{border:1px solid #e5e7eb;border-radius:.5rem;padding:.75rem}.tile b{display:block;font-size:1.35rem}
.tile span{color:#6b7280;font-size:.8rem}table{border-collapse:collapse;width:100%%;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #e5e7eb;padding:.35rem .5rem;text-align:left}th{color:#6b7280;font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}h2{font-size:1.05rem;margin:1.2rem 0 .3rem}
footer{color:#6b7280;font-size:.8rem;margin-top:2rem}
</style></head><body>
<h1>%1$s</h1><p class="sub">Pro forma statement for %2$s · %3$s</p>
<div class="tiles">
<div class="tile"><span>Pro forma cost</span><b>%4$s</b><span>%8$s</span></div>
<div class="tile"><span>AWS cost</span><b>%5$s</b></div>
<div class="tile"><span>Margin</span><b>%6$s</b><span>%7$s</span></div>
<div class="tile"><span>CUR line items</span><b>%9$s</b></div>
</div>
<h2>Month over month</h2>%10$s
<h2>By service</h2><table><tr><th>Service</th><th class="n">AWS cost</th><th class="n">Pro forma</th><th class="n">Margin</th></tr>%11$s</table>
<h2>By account</h2><table><tr><th>Account</th><th class="n">AWS cost</th><th class="n">Pro forma</th></tr>%12$s</table>
%13$s
<footer>Built %14$s by pg_billops from the AWS Cost and Usage Report. Every amount is rounded once, so the lines add up to
the statement and the statements of the month add up to the AWS total to the cent.</footer>
</body></html>
$h$,
        billops._html(s.group_name), to_char(period, 'FMMonth YYYY'), s.currency,
        billops._money(s.proforma_cost), billops._money(s.aws_cost), billops._money(s.margin),
        coalesce(s.margin_percentage::text || ' %', ''),
        CASE WHEN prev.statement_id IS NULL THEN 'first month'
             ELSE format('%s%s vs %s', CASE WHEN s.proforma_cost >= prev.proforma_cost THEN '+' ELSE '' END,
                         billops._money(s.proforma_cost - prev.proforma_cost), to_char(prev.billing_period, 'Mon YYYY')) END,
        to_char(s.line_items, 'FM999,999,999,990'), coalesce(chart, ''), coalesce(by_svc, ''), coalesce(by_acct, ''),
        CASE WHEN extras IS NULL THEN ''
             ELSE '<h2>Fees and credits</h2><table><tr><th>Kind</th><th>Item</th><th class="n">Amount</th></tr>' || extras || '</table>' END,
        to_char(s.built_at, 'YYYY-MM-DD HH24:MI TZ'));
END $$;
COMMENT ON FUNCTION billops.statement_html(text, date) IS
  'A billing group''s pro forma statement for a period as one self-contained HTML page (with a month-over-month chart).';
