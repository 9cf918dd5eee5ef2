-- ---------------------------------------------------------------------------
-- Views for analysts, approvers and BI tools.  security_invoker: row-level
-- security applies to whoever reads them, so an approver sees only the
-- payables routed to them here too.
-- ---------------------------------------------------------------------------

CREATE VIEW billops.payable_overview WITH (security_invoker = true) AS
SELECT p.payable_id, p.dedupe_key, p.billing_period, p.payer_account_id, p.charge_source, p.category,
       p.source_entity, v.name AS vendor,
       CASE p.treatment WHEN 'invoice_like' THEN 'bill' ELSE 'acknowledgement' END AS kind,
       p.status, p.currency, p.amount, p.line_item_count,
       (SELECT count(*) FROM billops.payable_line l WHERE l.payable_id = p.payable_id) AS lines,
       p.invoice_state, array_to_string(p.aws_invoice_ids, ', ') AS aws_invoice_ids, p.assembly_id,
       (SELECT string_agg(format('%s (%s)', s.approver_role, s.step_name), ', ' ORDER BY s.seq, s.approver_role)
          FROM billops.approval_step s
         WHERE s.payable_id = p.payable_id AND s.status = 'pending'
           AND s.seq = (SELECT min(s2.seq) FROM billops.approval_step s2
                         WHERE s2.payable_id = s.payable_id AND s2.adjustment_id IS NOT DISTINCT FROM s.adjustment_id
                           AND s2.status = 'pending')) AS waiting_on,
       (SELECT string_agg(e->>'message', '; ') FROM jsonb_array_elements(p.exceptions) e) AS exception_reasons,
       (SELECT a.delta FROM billops.payable_adjustment a
         WHERE a.payable_id = p.payable_id AND a.status IN ('draft', 'exception', 'routed')) AS open_adjustment_delta,
       p.created_at, p.updated_at, p.approved_at
  FROM billops.payable p LEFT JOIN billops.vendor v USING (vendor_id);
COMMENT ON VIEW billops.payable_overview IS
  'Every payable with vendor, kind (bill or acknowledgement), status, who it waits on, exceptions and open adjustment.';

-- What is waiting on whom: the steps that can be decided now.
CREATE VIEW billops.approval_queue WITH (security_invoker = true) AS
SELECT s.approver_role, s.step_name, s.reason, s.payable_id, s.adjustment_id, p.dedupe_key, v.name AS vendor,
       p.billing_period,
       CASE WHEN s.adjustment_id IS NULL THEN p.amount ELSE a.delta END AS amount,
       p.currency,
       CASE WHEN s.adjustment_id IS NULL THEN 'payable' ELSE 'adjustment' END AS subject,
       s.created_at AS waiting_since, date_trunc('second', now() - s.created_at) AS waiting_for
  FROM billops.approval_step s
  JOIN billops.payable p USING (payable_id)
  LEFT JOIN billops.vendor v ON v.vendor_id = p.vendor_id
  LEFT JOIN billops.payable_adjustment a ON a.adjustment_id = s.adjustment_id
 WHERE s.status = 'pending'
   AND s.seq = (SELECT min(s2.seq) FROM billops.approval_step s2
                 WHERE s2.payable_id = s.payable_id AND s2.adjustment_id IS NOT DISTINCT FROM s.adjustment_id
                   AND s2.routing_round = s.routing_round AND s2.status = 'pending');
COMMENT ON VIEW billops.approval_queue IS 'Approval steps that can be decided now, with who must decide and since when.';

-- Totals per month and state.
CREATE VIEW billops.payable_status_monthly WITH (security_invoker = true) AS
SELECT p.billing_period, p.status,
       CASE p.treatment WHEN 'invoice_like' THEN 'bill' ELSE 'acknowledgement' END AS kind,
       p.currency, count(*) AS payables, sum(p.amount) AS amount,
       count(*) FILTER (WHERE p.invoice_state = 'final') AS final,
       count(*) FILTER (WHERE EXISTS (SELECT FROM billops.payable_adjustment a
                                       WHERE a.payable_id = p.payable_id AND a.status IN ('draft', 'exception', 'routed')))
           AS with_open_adjustment,
       max(now() - p.updated_at) AS oldest_unchanged_for
  FROM billops.payable p
 GROUP BY 1, 2, 3, 4;
COMMENT ON VIEW billops.payable_status_monthly IS 'Per billing period, state and kind: how many payables and how much.';
