-- Lifecycle and approval lock: every legal and illegal transition, an
-- approved payable resisting every direct change (as the table owner), a new
-- delivery producing an adjustment with its own approval, explicit voiding.
BEGIN;
SELECT plan(96);
\ir _payables_fixture.psql

SELECT pg_temp.load_month(false);
SELECT billops.build_payables('2024-03-01');

-- bring the Datadog payable (a bill of 800.00 owned by Engineering) to a state
CREATE FUNCTION pg_temp.reach(pid bigint, target text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF target = 'draft' THEN RETURN; END IF;
    IF target = 'exception' THEN
        UPDATE billops.payable SET status = 'exception', exceptions = '[{"code": "hold", "message": "on hold"}]'
         WHERE payable_id = pid;
        RETURN;
    END IF;
    PERFORM billops.route_payable(pid);
    IF target = 'routed' THEN RETURN; END IF;
    IF target = 'voided' THEN PERFORM billops.void_payable(pid, 'test'); RETURN; END IF;
    PERFORM pg_temp.as_role('tap_alice', format('SELECT billops.approve(%s)', pid));
    IF target = 'approved' THEN RETURN; END IF;
    UPDATE billops.payable SET status = 'scheduled' WHERE payable_id = pid;
    IF target = 'scheduled' THEN RETURN; END IF;
    UPDATE billops.payable SET status = 'paid' WHERE payable_id = pid;
END $$;

-- try one transition in a subtransaction that is rolled back; 'ok' or the SQLSTATE
CREATE FUNCTION pg_temp.try(from_status text, to_status text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    pid bigint := pg_temp.payable('marketplace:Datadog, Inc.%');
    st  text;
BEGIN
    BEGIN
        PERFORM pg_temp.reach(pid, from_status);
        BEGIN
            IF from_status = 'draft' AND to_status = 'routed' THEN
                PERFORM billops.route_payable(pid);
            ELSIF from_status = 'routed' AND to_status = 'approved' THEN
                PERFORM pg_temp.as_role('tap_alice', format('SELECT billops.approve(%s)', pid));
            ELSE
                UPDATE billops.payable SET status = to_status, void_reason = 'test',
                       exceptions = '[{"code": "hold", "message": "on hold"}]'
                 WHERE payable_id = pid;
            END IF;
            IF (SELECT status FROM billops.payable WHERE payable_id = pid) <> to_status THEN
                st := 'not reached';
            ELSE
                st := 'ok';
            END IF;
        EXCEPTION WHEN OTHERS THEN
            st := SQLSTATE;
        END;
        RAISE EXCEPTION 'rollback:%', st;
    EXCEPTION WHEN raise_exception THEN
        IF SQLERRM LIKE 'rollback:%' THEN
            RETURN substr(SQLERRM, 10);
        END IF;
        RAISE;
    END;
END $$;

SELECT is(pg_temp.try(f, t), CASE WHEN EXISTS (SELECT FROM billops.payable_transition x
                                                WHERE x.from_status = f AND x.to_status = t) THEN 'ok' ELSE 'BO001' END,
          format('%s → %s is %s', f, t, CASE WHEN EXISTS (SELECT FROM billops.payable_transition x
                                                          WHERE x.from_status = f AND x.to_status = t)
                                             THEN 'legal' ELSE 'refused with BO001' END))
  FROM unnest(ARRAY['draft', 'exception', 'routed', 'approved', 'scheduled', 'paid', 'voided']) f,
       unnest(ARRAY['draft', 'exception', 'routed', 'approved', 'scheduled', 'paid', 'voided']) t
 WHERE f <> t
 ORDER BY f, t;
SELECT is((SELECT string_agg(from_status || '>' || to_status, ',' ORDER BY from_status, to_status) FROM billops.payable_transition),
          'approved>scheduled,approved>voided,draft>exception,draft>routed,draft>voided,exception>draft,exception>voided,'
          || 'paid>approved,routed>approved,routed>draft,routed>exception,routed>voided,scheduled>approved,scheduled>paid',
          'fourteen legal transitions (paid → approved: a payment that failed in BILL after it was paid)');

-- preconditions of legal transitions
CREATE TEMP TABLE dd AS SELECT pg_temp.payable('marketplace:Datadog, Inc.%') AS id, pg_temp.payable('tax:%') AS tax;
SELECT throws_ok(format($$ UPDATE billops.payable SET status = 'routed' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO005', NULL, 'routing by UPDATE without approval steps is refused');
SELECT lives_ok(format($$ SELECT billops.route_payable(%s) $$, (SELECT id FROM dd)), 'route');
SELECT throws_ok(format($$ UPDATE billops.payable SET status = 'approved' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO001', NULL, 'approving by UPDATE while steps are open is refused, even for the owner');
SELECT throws_ok($$ UPDATE billops.payable SET status = 'exception' WHERE charge_source LIKE 'marketplace:Datadog, Inc.%' $$,
                 'BO005', NULL, 'the exception queue needs a reason');
SELECT lives_ok(format($$ SELECT billops.route_payable(%s) $$, (SELECT tax FROM dd)), 'route the tax summary');
SELECT lives_ok(format($$ SELECT pg_temp.as_role('tap_alice', 'SELECT billops.approve(%s)') $$, (SELECT tax FROM dd)),
                'acknowledge it');
SELECT throws_like(format($$ UPDATE billops.payable SET status = 'scheduled' WHERE payable_id = %s $$, (SELECT tax FROM dd)),
                   '%for a usage summary', 'a usage summary is acknowledged, never scheduled for payment');

-- approve the Datadog bill, then try every direct change as the table owner
SELECT is(pg_temp.as_role('tap_alice', format('SELECT billops.approve(%s, ''looks right'')', (SELECT id FROM dd))),
          'payable approved', 'approved by its owner');
SELECT is(current_user::text, 'postgres', 'the following run as the table owner (a superuser)');
SELECT throws_ok(format($$ UPDATE billops.payable SET amount = amount + 1 WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: the amount is frozen');
SELECT throws_ok(format($$ UPDATE billops.payable SET vendor_id = NULL WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: the vendor is frozen');
SELECT throws_ok(format($$ UPDATE billops.payable SET treatment = 'usage_summary' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: the treatment is frozen');
SELECT throws_ok(format($$ UPDATE billops.payable SET charge_source = 'x' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'the dedupe key never changes');
SELECT throws_ok(format($$ UPDATE billops.payable_line SET amount = amount + 1 WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: line amounts are frozen');
SELECT throws_ok(format($$ UPDATE billops.payable_line SET gl_account = '9999' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: coding is frozen');
SELECT throws_ok(format($$ INSERT INTO billops.payable_line (payable_id, line_key, description, amount, exact_amount, line_item_count, fact_keys)
                           VALUES (%s, 'extra', 'extra', 1, 1, 1, '{}') $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: no line can be added');
SELECT throws_ok(format($$ DELETE FROM billops.payable_line WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: no line can be removed');
SELECT throws_ok(format($$ DELETE FROM billops.payable WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'approved: the payable cannot be deleted');
SELECT throws_ok($$ TRUNCATE billops.payable_line $$, 'BO006', NULL, 'lines cannot be truncated');
SELECT throws_ok($$ TRUNCATE billops.payable CASCADE $$, 'BO006', NULL, 'payables cannot be truncated');
SELECT throws_ok(format($$ UPDATE billops.payable SET status = 'draft' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO001', NULL, 'approved cannot go back to draft');
SELECT throws_ok($$ SELECT pg_temp.as_role('tap_admin', 'UPDATE billops.payable SET amount = 1 RETURNING 1') $$,
                 '42501', NULL, 'billops_admin has no UPDATE on payables at all');
SELECT throws_ok($$ UPDATE billops.payable SET amount = 1 WHERE charge_source LIKE '%DATADOG INC%' $$,
                 'BO006', NULL, 'an unapproved payable is not edited by hand either: its amount comes from AWS');
SELECT throws_ok($$ UPDATE billops.payable_line SET department = 'X' WHERE payable_id = pg_temp.payable('%DATADOG INC%') $$,
                 'BO006', NULL, 'coding comes from coding rules');
SELECT throws_ok($$ DELETE FROM billops.payable WHERE charge_source LIKE '%DATADOG INC%' $$,
                 'BO006', NULL, 'payables are voided, not deleted');
SELECT throws_ok($$ UPDATE billops.approval_step SET status = 'approved' $$,
                 'BO006', NULL, 'approval steps cannot be approved by UPDATE');

-- a new delivery changes the approved payable: an adjustment, never a silent update
SELECT pg_temp.load_month(false, datadog => '850.00');
CREATE TEMP TABLE run2 AS SELECT * FROM billops.build_payables('2024-03-01');
SELECT is((SELECT action FROM run2 WHERE payable_id = (SELECT id FROM dd)), 'adjustment_created',
          'a new delivery produces an adjustment');
SELECT is((SELECT amount FROM billops.payable WHERE payable_id = (SELECT id FROM dd)), 800.00::numeric,
          'the approved payable keeps its approved amount');
SELECT is((SELECT sum(amount) FROM billops.payable_line WHERE payable_id = (SELECT id FROM dd)), 800.00::numeric,
          'and its approved lines');
SELECT is((SELECT delta FROM billops.payable_adjustment WHERE payable_id = (SELECT id FROM dd)), 50.00::numeric,
          'the adjustment carries the delta');
SELECT is((SELECT status FROM billops.payable_adjustment WHERE payable_id = (SELECT id FROM dd)), 'draft',
          'on preliminary data the adjustment waits as a draft');
SELECT is((SELECT count(*)::int FROM billops.build_payables('2024-03-01') WHERE action LIKE 'adjustment%'), 0,
          're-running creates no second adjustment');
SELECT is((SELECT count(*)::int FROM billops.payable_adjustment), 1, 'one adjustment');
SELECT pg_temp.load_month(true, datadog => '850.00');
SELECT is((SELECT string_agg(action, ',' ORDER BY action) FROM billops.build_payables('2024-03-01') WHERE payable_id = (SELECT id FROM dd)),
          'adjustment_routed,updated_final', 'the same figures, now final: the open adjustment is kept and routed');
SELECT is((SELECT adjustment_no || ' ' || status || ' ' || invoice_state FROM billops.payable_adjustment WHERE payable_id = (SELECT id FROM dd)),
          '1 routed final', 'one adjustment, noted as final');
SELECT pg_temp.load_month(true, datadog => '800.00');
SELECT is((SELECT action FROM billops.build_payables('2024-03-01') WHERE payable_id = (SELECT id FROM dd)),
          'adjustment_voided', 'AWS reverting to the approved figures voids the open adjustment');
SELECT is((SELECT count(*)::int FROM billops.approval_step s JOIN billops.payable_adjustment a USING (adjustment_id)
            WHERE a.payable_id = (SELECT id FROM dd) AND s.status = 'pending'), 0, 'and closes its approval steps');
SELECT pg_temp.load_month(true, datadog => '850.00');
CREATE TEMP TABLE run3 AS SELECT * FROM billops.build_payables('2024-03-01');
SELECT is((SELECT count(*)::int FROM run3 WHERE payable_id = (SELECT id FROM dd) AND action = 'adjustment_routed'), 1,
          'the final delivery routes a new adjustment for its own approval');
SELECT is((SELECT adjustment_no FROM billops.payable_adjustment WHERE payable_id = (SELECT id FROM dd) AND status = 'routed'), 2,
          'numbered after the voided one');
SELECT is((SELECT aws_invoice_ids FROM billops.payable WHERE payable_id = (SELECT id FROM dd)), '{INV-DD-1}',
          'the invoice id is recorded on the approved payable (not a frozen field)');
SELECT is((SELECT subject || ' ' || approver_role FROM billops.approval_queue WHERE payable_id = (SELECT id FROM dd)),
          'adjustment tap_eng_owner', 'the adjustment waits on the owner');
SELECT throws_ok(format($$ SELECT pg_temp.as_role('tap_bob', 'SELECT billops.approve(%s)') $$, (SELECT id FROM dd)),
                 'BO003', NULL, 'someone else cannot approve it');
SELECT is(pg_temp.as_role('tap_alice', format('SELECT billops.approve(%s)', (SELECT id FROM dd))),
          'adjustment approved and applied', 'the owner approves the adjustment');
SELECT is((SELECT amount FROM billops.payable WHERE payable_id = (SELECT id FROM dd)), 850.00::numeric,
          'the adjustment path changes the approved payable');
SELECT is((SELECT sum(amount) FROM billops.payable_line WHERE payable_id = (SELECT id FROM dd)), 850.00::numeric,
          'and its lines');
SELECT is((SELECT status FROM billops.payable WHERE payable_id = (SELECT id FROM dd)), 'approved', 'it stays approved');
SELECT ok((SELECT bool_and(system_generated) FROM billops.audit_log
            WHERE object_type = 'payable' AND payable_id = (SELECT id FROM dd) AND after ? 'amount'
              AND (after->>'amount')::numeric = 850),
          'the applied adjustment is audited as system-generated');
SELECT is((SELECT actor::text FROM billops.audit_log
            WHERE object_type = 'payable_adjustment' AND after->>'status' = 'approved'), 'tap_alice',
          'with the approver as actor');

-- voiding is explicit and audited
SELECT throws_ok(format($$ SELECT billops.void_payable(%s, '') $$, (SELECT id FROM dd)), '22004', NULL,
                 'voiding needs a reason');
SELECT is(billops.void_payable((SELECT id FROM dd), 'duplicate of a manual bill'), 'voided', 'void');
SELECT is((SELECT after->>'void_reason' FROM billops.audit_log
            WHERE object_type = 'payable' AND payable_id = (SELECT id FROM dd) AND after->>'status' = 'voided'),
          'duplicate of a manual bill (by postgres)', 'the void is in the audit log with its reason and actor');
SELECT pg_temp.load_month(true, datadog => '900.00');
SELECT is((SELECT action FROM billops.build_payables('2024-03-01') WHERE payable_id = (SELECT id FROM dd)), 'voided',
          'a voided payable is left alone by later deliveries');
SELECT throws_ok(format($$ UPDATE billops.payable SET void_reason = 'x' WHERE payable_id = %s $$, (SELECT id FROM dd)),
                 'BO002', NULL, 'a voided payable is frozen entirely');

SELECT * FROM finish();
ROLLBACK;
