// Routes: every bill reaches the BILL emulator with the approvers pg_billops
// routed it to (a job and an approval policy per approver list, kept by the
// worker), and approvals made in either place show in the other.  The BILL
// state poll runs every second here: decisions made in BILL come back by it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerSession, control, state, billApi, billLogin, loadMarketplaceMonth, requests, isRequest } from './bill-harness.mjs';
import { waitFor } from './helpers.mjs';

const S = new WorkerSession('billops_it_routes');
const API_USER = process.env.BILL_USER_ID;
const U = {
  alice: '00601ALICE00000000001', lead: '00601LEAD000000000002', review: '00601REVIEW0000000003', finops: '00601FINOPS0000000004',
};
const PAYER = { owned: '100000000001', big: '100000000002', unowned: '100000000003' };
let foreignPolicy;

before(async () => {
  await control('POST', 'reset');
  await S.open();
  await S.admin.query(`ALTER SYSTEM SET billops.bill_poll_interval = 1`);
  await S.admin.query('SELECT pg_reload_conf()');
  for (const [k, id] of Object.entries(U)) {
    await control('POST', 'users', { id, firstName: k, lastName: 'Approver', role: k === 'lead' ? 'ADMINISTRATOR' : 'APPROVER' });
  }
  // a policy of the organization's own, which pg_billops must leave alone
  const session = await billLogin();
  foreignPolicy = await billApi('POST', '/v3/bill-approvals/policies', {
    policyName: 'Finance: anything over 1M', rules: [{ key: 'BILL_AMOUNT', op: 'gte', values: ['1000000'] }], approvers: [U.lead],
  }, session);
  await billApi('POST', '/v3/logout', null, session).catch(() => {});
  for (const r of ['rt_eng_owner', 'rt_alice']) {
    await S.admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${r}') THEN CREATE ROLE ${r}; END IF; END $$`);
  }
  await S.admin.query('GRANT rt_eng_owner TO rt_alice');
  await S.db.query('GRANT billops_approver TO rt_eng_owner');
  await S.db.query(`INSERT INTO billops.routing_rule (payer_account_id, usage_account_id, approver_role)
                    VALUES ($1, '222222222222', 'rt_eng_owner'), ($2, '222222222222', 'rt_eng_owner')`, [PAYER.owned, PAYER.big]);
  await S.db.query(`INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES
      ('rt_eng_owner', $1), ('billops_finance_leadership', $2), ('billops_finance_review', $3), ('billops_finops_owner', $4)`,
  [U.alice, U.lead, U.review, U.finops]);
  await S.db.query(`UPDATE billops.setting SET value = 'true' WHERE name = 'bill_push_approvals'`);
  await S.db.query(`INSERT INTO billops.vendor (name, kind) VALUES ('Datadog', 'marketplace_seller')`);
  await S.db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                    SELECT vendor_id, 'exact', 'Datadog, Inc.' FROM billops.vendor WHERE name = 'Datadog'`);
  await S.db.query(`INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'OPS')`);
  await control('DELETE', 'requests');   // (the organization's own policy was made above)
});
after(async () => {
  await S.admin?.query('ALTER SYSTEM RESET billops.bill_poll_interval').catch(() => {});
  await S.close();
  await S.admin?.query('DROP ROLE IF EXISTS rt_alice').catch(() => {});
});

const payableOf = async (payer) => (await S.db.query(
  `SELECT p.payable_id::int AS id, p.status, l.bill_id, l.approval_status, l.approver_problem
     FROM billops.payable p LEFT JOIN billops.bill_link l USING (payable_id)
    WHERE p.payer_account_id = $1 AND p.treatment = 'invoice_like'`, [payer])).rows[0];
const billOf = async (billId) => (await state()).bills.find((b) => b.id === billId);
const approversOf = (b) => b.approvers.filter((a) => a.status !== 'REROUTED')
  .sort((x, y) => x.approverOrder - y.approverOrder).map((a) => `${a.userId}:${a.status}`);

test('each routed bill arrives in BILL with its approvers: owner; owner then leadership above the threshold; review for unowned cost', async () => {
  await loadMarketplaceMonth(S.db, { payer: PAYER.owned, lines: [['prod-dd1', 'Datadog Pro', '800.00']], source: 'routes', delivery: 'owned' });
  await loadMarketplaceMonth(S.db, { payer: PAYER.big, lines: [['prod-dd1', 'Datadog Pro', '25000.00']], source: 'routes', delivery: 'big' });
  await loadMarketplaceMonth(S.db, { payer: PAYER.unowned, lines: [['prod-dd1', 'Datadog Pro', '640.00']], source: 'routes', delivery: 'unowned' });
  await S.drained(3);
  const want = {
    [PAYER.owned]: [U.alice, API_USER],
    [PAYER.big]: [U.alice, U.lead, API_USER],
    [PAYER.unowned]: [U.review, U.finops, API_USER],
  };
  const st = await state();
  for (const [payer, approvers] of Object.entries(want)) {
    const p = await payableOf(payer);
    assert.equal(p.status, 'routed', `${payer}: routed`);
    const b = st.bills.find((x) => x.id === p.bill_id);
    assert.ok(b, `${payer}: its bill is in BILL`);
    assert.deepEqual(approversOf(b), approvers.map((u) => `${u}:WAITING`), `${payer}: BILL asks its approvers, in pg_billops' order`);
    assert.equal(b.approvalStatus, 'ASSIGNED');
    const policy = st.policies.find((x) => x.status === 'ACTIVE' && x.approvers.users.map((u) => u.userId).join() === approvers.join());
    assert.ok(policy?.policyName.startsWith('pg_billops route '), `${payer}: through a policy pg_billops named as its own`);
    const job = policy.rules[0].values[0].value;
    assert.deepEqual(policy.rules.map((r) => `${r.key} ${r.op}`), ['JOB_ID eq']);
    assert.ok(b.billLineItems.every((l) => l.classifications.jobId === job), `${payer}: every line carries the route's job`);
    assert.equal(st.jobs.find((j) => j.id === job)?.name, policy.policyName, 'the job is named like its policy');
    assert.equal(p.approver_problem, null);
    // and its context: in the description, and as the PDF pg_billops wrote, processed by BILL
    const ctx = (await S.db.query(`SELECT description FROM billops.bill_context WHERE payable_id = $1`, [p.id])).rows[0];
    assert.equal(b.description, ctx.description);
    assert.match(b.description, /^\[pg_billops, system-generated\] .*USD/);
    const docs = st.documents.filter((d) => d.billId === b.id);
    assert.equal(docs.length, 1, `${payer}: one document on the bill`);
    assert.match(docs[0].name, /^pg_billops-context-2024-03-[0-9a-f]{8}\.pdf$/);
    assert.equal(docs[0].status, 'UPLOADED');
    const { rows: [d] } = await S.db.query(`SELECT sha256, upload_status, bill_document_id FROM billops.payable_document WHERE payable_id = $1`, [p.id]);
    assert.deepEqual(d, { sha256: docs[0].sha256, upload_status: 'uploaded', bill_document_id: docs[0].documentId });
  }
  // one job and one policy per approver list, the organization's own policy untouched
  assert.equal(st.jobs.length, 3);
  assert.equal(st.policies.filter((x) => x.policyName.startsWith('pg_billops route ')).length, 3);
  const theirs = st.policies.find((x) => x.id === foreignPolicy.id);
  assert.equal(theirs.status, 'ACTIVE');
  assert.equal(theirs.policyName, 'Finance: anything over 1M');
  const reqs = await requests();
  assert.ok(!reqs.some((r) => isRequest(r, 'PUT', `/v3/bill-approvals/policies/${foreignPolicy.id}`)), 'never written to');
  // every job and policy was looked up by name before it was created
  const posts = reqs.filter((r) => isRequest(r, 'POST', '/v3/classifications/jobs') || isRequest(r, 'POST', '/v3/bill-approvals/policies'));
  for (const post of posts) {
    const kind = post.path.includes('jobs') ? '/v3/classifications/jobs' : '/v3/bill-approvals/policies';
    assert.ok(reqs.some((r) => r.seq < post.seq && isRequest(r, 'GET', kind)), `a lookup before ${post.method} ${post.path}`);
  }
  const { rows } = await S.db.query(`SELECT count(*)::int AS n FROM billops.bill_routing WHERE bill_policy_id IS NOT NULL AND approver_problem IS NULL`);
  assert.equal(rows[0].n, 3, 'billops.bill_routing shows each bill with its route');
});

test('approved in BILL: the owner approves there, the step is approved here, and pg_billops gives BILL the final approval', async () => {
  const p = await payableOf(PAYER.owned);
  await control('POST', `bills/${p.bill_id}/approve`, { userId: U.alice, comment: 'looks right' });
  const done = await waitFor('BILL to show the bill approved', async () => {
    const b = await billOf(p.bill_id);
    return b.approvalStatus === 'APPROVED' ? b : null;
  }, 30000, 100, async () => JSON.stringify({ p: await payableOf(PAYER.owned), outbox: await S.outboxSummary() }));
  assert.deepEqual(approversOf(done), [`${U.alice}:APPROVED`, `${API_USER}:APPROVED`]);
  const { rows: steps } = await S.db.query(
    `SELECT status, decided_by, comment FROM billops.approval_step WHERE payable_id = $1 AND status <> 'superseded'`, [p.id]);
  assert.equal(steps.length, 1);
  assert.equal(steps[0].decided_by, 'BILL');
  assert.match(steps[0].comment, /approved in BILL by alice Approver \(00601ALICE00000000001\)/);
  assert.equal((await payableOf(PAYER.owned)).status, 'approved');
  const { rows: audit } = await S.db.query(
    `SELECT count(*)::int AS n FROM billops.audit_log a JOIN billops.approval_step s ON a.object_id = s.step_id::text
      WHERE a.object_type = 'approval_step' AND s.payable_id = $1 AND a.after->>'status' = 'approved'`, [p.id]);
  assert.equal(audit[0].n, 1, 'the decision is audited once');
});

test('approved in SQL: the step leaves the bill\'s route in BILL, and the rest is asked there', async () => {
  const p = await payableOf(PAYER.big);
  await S.db.query('SET ROLE rt_alice');
  try {
    await S.db.query('SELECT billops.approve($1, $2)', [p.id, 'owner agrees']);
  } finally {
    await S.db.query('RESET ROLE');
  }
  const moved = await waitFor('the bill to be re-routed in BILL', async () => {
    const b = await billOf(p.bill_id);
    return approversOf(b).join() === [`${U.lead}:WAITING`, `${API_USER}:WAITING`].join() ? b : null;
  }, 30000, 100, async () => JSON.stringify({ bill: approversOf(await billOf(p.bill_id)), outbox: await S.outboxSummary() }));
  assert.ok(moved.approvers.some((a) => a.userId === U.alice && a.status === 'REROUTED'), 'Alice is not asked again in BILL');
  assert.equal((await payableOf(PAYER.big)).approver_problem, null);
  // leadership approves in BILL; pg_billops closes it
  await control('POST', `bills/${p.bill_id}/approve`, { userId: U.lead });
  await waitFor('BILL to show the bill approved', async () => ((await billOf(p.bill_id)).approvalStatus === 'APPROVED' ? true : null),
    30000, 100, async () => JSON.stringify({ p: await payableOf(PAYER.big), outbox: await S.outboxSummary() }));
  const { rows } = await S.db.query(`SELECT decided_by FROM billops.approval_step WHERE payable_id = $1 AND status = 'approved' ORDER BY seq`, [p.id]);
  assert.deepEqual(rows.map((r) => r.decided_by), ['rt_alice', 'BILL']);
  assert.equal((await payableOf(PAYER.big)).status, 'approved');
});

test('denied in BILL: the payable goes to the exception queue with the approver and the comment', async () => {
  const p = await payableOf(PAYER.unowned);
  await control('POST', `bills/${p.bill_id}/deny`, { userId: U.review, comment: 'not ours, ask FinOps' });
  const e = await waitFor('the exception', async () => (await S.db.query(
    `SELECT reason_code, reason FROM billops.exception_queue WHERE payable_id = $1`, [p.id])).rows[0], 30000, 100);
  assert.equal(e.reason_code, 'rejected');
  assert.match(e.reason, /denied in BILL by review Approver \(00601REVIEW0000000003\), approver for billops_finance_review/);
});

test('a route edited in BILL is put back; an approver BILL does not ask is reported, not ignored', async () => {
  // someone edits one of pg_billops' policies in BILL: the next bill on that route restores it
  const st = await state();
  const route = st.policies.find((x) => x.policyName.startsWith('pg_billops route ')
    && x.approvers.users.map((u) => u.userId).join() === [U.alice, API_USER].join());
  const session = await billLogin();
  await billApi('PUT', `/v3/bill-approvals/policies/${route.id}`, {
    policyName: route.policyName, rules: [{ key: 'JOB_ID', op: 'eq', values: [route.rules[0].values[0].value] }], approvers: [U.finops],
  }, session);
  await billApi('POST', '/v3/logout', null, session).catch(() => {});
  // (an hour later: a route is checked in BILL again when it is next used after bill_route_recheck_minutes)
  await S.db.query(`UPDATE billops.bill_route SET completed_at = completed_at - interval '61 minutes' WHERE route_name = $1`, [route.policyName]);
  // a new bill on that route: a fresh payer owned by the same role
  await S.db.query(`INSERT INTO billops.routing_rule (payer_account_id, usage_account_id, approver_role) VALUES ('100000000004', '222222222222', 'rt_eng_owner')`);
  await loadMarketplaceMonth(S.db, { payer: '100000000004', lines: [['prod-dd1', 'Datadog Pro', '70.00']], source: 'routes', delivery: 'p4' });
  await S.drained(1, 30000, 'payable_id = (SELECT payable_id FROM billops.payable WHERE payer_account_id = $1 AND treatment = \'invoice_like\')', ['100000000004']);
  const restored = (await state()).policies.find((x) => x.id === route.id);
  assert.deepEqual(restored.approvers.users.map((u) => u.userId), [U.alice, API_USER], 'the policy is ours again');
  const p4 = await payableOf('100000000004');
  assert.deepEqual(approversOf(await billOf(p4.bill_id)), [`${U.alice}:WAITING`, `${API_USER}:WAITING`]);
  assert.equal(p4.approver_problem, null);

  // BILL does not apply policies to an edited bill (its behaviour on edits is not documented):
  // a directory change then cannot re-route the open bill, and pg_billops says so
  await control('POST', 'config', { reapplyPoliciesOnUpdate: false });
  try {
    await control('POST', 'users', { id: '00601ALICE2000000005', firstName: 'Alice2', lastName: 'Approver', role: 'APPROVER' });
    await S.db.query(`UPDATE billops.bill_approver SET bill_approver_id = '00601ALICE2000000005' WHERE approver_role = 'rt_eng_owner'`);
    const e = await waitFor('the approver problem in the exception queue', async () => (await S.db.query(
      `SELECT reason_code, field, reason FROM billops.exception_queue WHERE payable_id = $1 AND reason_code = 'bill_approvers'`, [p4.id])).rows[0],
    30000, 100, async () => JSON.stringify({ p: await payableOf('100000000004'), outbox: await S.outboxSummary() }));
    assert.match(e.reason, new RegExp(`BILL asks ${U.alice}, ${API_USER}; pg_billops routed this bill to 00601ALICE2000000005, ${API_USER}`));
  } finally {
    await control('POST', 'config', { reapplyPoliciesOnUpdate: true });
  }
});

test('a rule change re-routes the open bill in BILL, never an approved one', async () => {
  for (const r of ['rt_data_owner']) {
    await S.admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${r}') THEN CREATE ROLE ${r}; END IF; END $$`);
  }
  await S.db.query('GRANT billops_approver TO rt_data_owner');
  await S.db.query(`INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('rt_data_owner', $1)`, [U.finops]);
  const open = await payableOf('100000000004');
  const approved = await payableOf(PAYER.owned);
  const approvedBill = await billOf(approved.bill_id);
  const { rows: [before] } = await S.db.query(`SELECT routing_round FROM billops.payable WHERE payable_id = $1`, [approved.id]);
  await S.db.query(`UPDATE billops.routing_rule SET approver_role = 'rt_data_owner' WHERE payer_account_id IN ($1, '100000000004')`, [PAYER.owned]);
  await waitFor('the open bill to ask its new owner in BILL', async () => {
    const b = await billOf(open.bill_id);
    return approversOf(b).join() === [`${U.finops}:WAITING`, `${API_USER}:WAITING`].join() ? b : null;
  }, 30000, 100, async () => JSON.stringify({ bill: approversOf(await billOf(open.bill_id)), outbox: await S.outboxSummary() }));
  const { rows: steps } = await S.db.query(`SELECT approver_role FROM billops.approval_step s JOIN billops.payable p USING (payable_id)
                                             WHERE s.payable_id = $1 AND s.routing_round = p.routing_round`, [open.id]);
  assert.deepEqual(steps.map((s) => s.approver_role), ['rt_data_owner'], 'routed again by the new rule');
  assert.equal((await payableOf('100000000004')).approver_problem, null, 'BILL asks the route\'s approvers again');
  // the approved payable keeps its approval and its bill
  const { rows: [after] } = await S.db.query(`SELECT status, routing_round FROM billops.payable WHERE payable_id = $1`, [approved.id]);
  assert.deepEqual(after, { status: 'approved', routing_round: before.routing_round });
  const b = await billOf(approved.bill_id);
  assert.equal(b.approvalStatus, 'APPROVED');
  assert.equal(b.updatedTime, approvedBill.updatedTime, 'its bill in BILL was not touched');
});

test('crash after BILL made a route\'s policy, before it was recorded: on restart the policy is found, not made again, and no bill goes without approvers', { timeout: 90000 }, async () => {
  const crash = '00601CRASH0000000006';
  await control('POST', 'users', { id: crash, firstName: 'Crash', lastName: 'Owner', role: 'APPROVER' });
  await S.admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rt_crash_owner') THEN CREATE ROLE rt_crash_owner; END IF; END $$`);
  await S.db.query('GRANT billops_approver TO rt_crash_owner');
  await S.db.query(`INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES ('rt_crash_owner', $1)`, [crash]);
  await S.db.query(`INSERT INTO billops.routing_rule (payer_account_id, usage_account_id, approver_role) VALUES ('100000000005', '222222222222', 'rt_crash_owner')`);
  // BILL answers the policy create slowly, so that the worker is caught waiting on it
  await control('POST', 'faults', { faults: [{ match: { method: 'POST', path: '/v3/bill-approvals/policies$' }, kind: 'slow', ms: 600, count: 1 }] });
  const held = S.holdRecording('POST', '/v3/bill-approvals/policies', (pid) => S.terminate(pid));
  await loadMarketplaceMonth(S.db, { payer: '100000000005', lines: [['prod-dd1', 'Datadog Pro', '55.00']], source: 'routes', delivery: 'p5' });
  const g = await held;
  assert.equal(g.answered.status, 201, 'BILL made the policy');
  const bills = async () => (await state()).bills.filter((b) => b.invoice.invoiceNumber.startsWith('100000000005-'));
  assert.equal((await bills()).length, 0, 'no bill was pushed before its route was recorded');
  await S.connectedWorker();
  const p = await waitFor('the bill, after the restart', async () => {
    const x = await payableOf('100000000005');
    return x.bill_id ? x : null;
  }, 30000, 100, () => S.outboxSummary());
  const st = await state();
  const name = (await S.db.query(`SELECT route_name FROM billops.bill_route WHERE approvers = $1`, [[crash, API_USER]])).rows[0].route_name;
  assert.equal(st.policies.filter((x) => x.policyName === name && x.status === 'ACTIVE').length, 1, 'one policy of that name');
  assert.equal(st.jobs.filter((x) => x.name === name).length, 1, 'one job');
  assert.deepEqual(approversOf(await billOf(p.bill_id)), [`${crash}:WAITING`, `${API_USER}:WAITING`]);
  assert.equal((await bills()).length, 1);
});

test('approved here before its bill reached BILL: the bill arrives with pg_billops as its approver, who approves it', async () => {
  await S.db.query(`INSERT INTO billops.routing_rule (payer_account_id, usage_account_id, approver_role) VALUES ('100000000006', '222222222222', 'rt_eng_owner')`);
  await loadMarketplaceMonth(S.db, { payer: '100000000006', lines: [['prod-dd1', 'Datadog Pro', '42.00']], source: 'routes', delivery: 'p6', build: false });
  // built, routed and approved in one transaction, while approvals were not yet pushed to BILL
  await S.db.query('BEGIN');
  try {
    await S.db.query(`UPDATE billops.setting SET value = 'false' WHERE name = 'bill_push_approvals'`);
    await S.db.query(`SELECT count(*) FROM billops.build_payables(NULL, '100000000006')`);
    const { id } = await payableOf('100000000006');
    await S.db.query('SET LOCAL ROLE rt_alice');
    await S.db.query('SELECT billops.approve($1)', [id]);
    await S.db.query('RESET ROLE');
    await S.db.query(`UPDATE billops.setting SET value = 'true' WHERE name = 'bill_push_approvals'`);
    await S.db.query('COMMIT');
  } catch (e) {
    await S.db.query('ROLLBACK');
    throw e;
  }
  const p = await payableOf('100000000006');
  assert.equal(p.status, 'approved');
  const b = await waitFor('BILL to show the bill approved', async () => {
    const x = (await payableOf('100000000006')).bill_id && await billOf((await payableOf('100000000006')).bill_id);
    return x?.approvalStatus === 'APPROVED' ? x : null;
  }, 30000, 100, () => S.outboxSummary());
  assert.deepEqual(approversOf(b), [`${API_USER}:APPROVED`], 'nobody is asked again in BILL; pg_billops approves');
});
