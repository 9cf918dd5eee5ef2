// Crash and lost-answer trials of the BILL protocol, driven through the real
// worker against the BILL emulator.  One trial: a payable of its own (a payer
// account of its own, so trials never share a bill), an operation that makes
// the worker change BILL, and a fault at one point of that operation's request:
//
//   operation  create | update | void | approve | document
//   fault      lost (the answer) | worker (killed) | postmaster (killed, immediate stop)
//   point      before_send   BILL never acts on the request
//              after_commit  BILL acted; the worker has not recorded the answer
//              after_record  BILL acted and the worker recorded it; the fault
//                            hits the worker's next step right after
//
// plus, at random, a restatement (a new CUR delivery changing the payable's
// lines) or a void while the request is held.  Then the faults are cleared,
// the outbox drains, and BILL is checked against the payables.
//
// Every trial is a pure function of its seed (replay: the same seed gives the
// same operation, fault, point, amounts and concurrent changes); timings of
// the real processes are what varies.
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RUN, one, waitFor } from './helpers.mjs';
import { control, setFaults, clearFaults, state, requests, isRequest, billApi, billLogin, loadMarketplaceMonth } from './bill-harness.mjs';

export const OPS = ['create', 'update', 'void', 'approve', 'document'];
export const FAULTS = ['lost', 'worker', 'postmaster'];
export const POINTS = ['before_send', 'after_commit', 'after_record'];

// mulberry32: a small, well-mixed, seedable PRNG
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const pick = (r, xs) => xs[Math.floor(r() * xs.length)];

// What a trial is, from its seed (fields given in `fixed` win).
export function trialSpec(seed, fixed = {}) {
  const r = prng(seed);
  const spec = {
    seed,
    op: pick(r, OPS),
    fault: pick(r, FAULTS),
    point: pick(r, POINTS),
    // a vendor BILL does not know yet: the push starts with a vendor lookup and create
    newVendor: r() < 0.3,
    // amounts in cents of the payable's lines (one or two products)
    lines: r() < 0.5 ? [cents(r)] : [cents(r), cents(r)],
    // while the op's request is held: nothing, a restatement, or a void
    concurrent: pick(r, ['none', 'none', 'restate', 'restate', 'void']),
    restated: r() < 0.5 ? [cents(r)] : [cents(r), cents(r), cents(r)],
    // with a new vendor: its create's answer lost too (BILL accepts duplicate vendors)
    vendorLost: r() < 0.5,
  };
  return { ...spec, ...fixed };
}
function cents(r) {
  return 100 + Math.floor(r() * 500000);   // 1.00 .. 5,000.99
}
const money = (c) => `${Math.floor(c / 100)}.${String(c % 100).padStart(2, '0')}`;

// --- the trials' configuration, once per database ----------------------------------
const REVIEWER = 'billops_crash_reviewer';
const OWNER = 'billops_crash_owner';

// Returns the emulator's rate limits as they were (restoreTrials puts them back).
export async function prepareTrials(S) {
  const db = S.db;
  // Trials restart the worker hundreds of times an hour, and each new worker logs in: far
  // beyond BILL's 200 logins an hour (a limit the worker meets by pausing, tested on its own).
  // Here the limits are raised so that a pause never stands in for a protocol failure.
  const { loginHourlyLimit, hourlyLimit } = await control('GET', 'config');
  await control('POST', 'config', { loginHourlyLimit: 1000000, hourlyLimit: 1000000 });
  await db.query(`INSERT INTO billops.vendor (name, kind) VALUES ('Datadog', 'marketplace_seller') ON CONFLICT (name) DO NOTHING`);
  await db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'exact', 'Datadog, Inc.' FROM billops.vendor WHERE name = 'Datadog'
                  ON CONFLICT DO NOTHING`);
  await db.query(`INSERT INTO billops.coding_rule (field, value, priority) VALUES ('gl_account', '6100-cloud', 100), ('department', 'FINOPS', 100)`);
  // fast retries, and enough of them that no transient fault makes a dead letter
  await db.query(`UPDATE billops.setting SET value = v FROM (VALUES ('bill_retry_base_seconds', '0.05'), ('bill_retry_cap_seconds', '1'),
                    ('bill_max_attempts', '40'), ('bill_push_approvals', 'true')) x(n, v) WHERE name = n`);
  // the two people who approve every trial payable (finance review, then the FinOps owner)
  await db.query(`DO $$ BEGIN
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${REVIEWER}') THEN CREATE ROLE ${REVIEWER}; END IF;
                    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${OWNER}') THEN CREATE ROLE ${OWNER}; END IF;
                  END $$`);
  await db.query(`GRANT billops_finance_review TO ${REVIEWER}`);
  await db.query(`GRANT billops_finops_owner TO ${OWNER}`);
  await ensureApprovalPolicy();
  return { loginHourlyLimit, hourlyLimit };
}
const restoreTrials = (limits) => control('POST', 'config', limits);

// A test file's worker session for trials: its database served by the worker, an empty
// BILL, the trials' configuration; closeTrials puts the emulator's limits back.
export async function openTrials(S) {
  await S.open();
  await control('POST', 'reset');
  S.trialLimits = await prepareTrials(S);
}
export async function closeTrials(S) {
  if (S.trialLimits) await restoreTrials(S.trialLimits);
  await S.close();
}

// In BILL, the API user approves every bill (so pg_billops' approvals can be pushed).
// The emulator forgets it on reset: call again after one.
export async function ensureApprovalPolicy() {
  const session = await billLogin();
  const listed = await billApi('GET', '/v3/bill-approvals/policies', null, session);
  // (the emulator answers with a bare array; BILL's list shape for policies is not documented)
  const policies = Array.isArray(listed) ? listed : listed.results ?? [];
  if (!policies.some((p) => p.policyName === 'crash trials: the API user approves every bill')) {
    await billApi('POST', '/v3/bill-approvals/policies', {
      policyName: 'crash trials: the API user approves every bill',
      rules: [{ key: 'BILL_AMOUNT', op: 'gte', values: ['0'] }],
      approvers: [process.env.BILL_USER_ID],
    }, session);
  }
  await billApi('POST', '/v3/logout', null, session).catch(() => {});
}

// --- one trial ---------------------------------------------------------------------
const PRODUCTS = [['prod-a', 'Alpha'], ['prod-b', 'Bravo'], ['prod-c', 'Charlie']];

async function loadAndBuild(S, spec, amounts, n) {
  const payer = String(500000000000 + spec.seed % 100000000000);
  await loadMarketplaceMonth(S.db, {
    payer, invoice: `INV-T-${spec.seed}`, source: 'bill-trials', delivery: `trial-${spec.seed}-${n}`,
    seller: spec.newVendor ? `Trial ${spec.seed} Labs LLC` : '"Datadog, Inc."',
    lines: amounts.map((c, i) => [PRODUCTS[i][0], PRODUCTS[i][1], money(c)]),
  });
  return payer;
}

// The trial's payable, with what BILL should hold for it.
async function trialPayable(S, payer) {
  return one(S.db, `SELECT p.payable_id::int AS id, billops.bill_invoice_number(p.dedupe_key) AS invoice_number,
                           p.amount::text AS amount, p.status, p.treatment,
                           p.treatment = 'invoice_like' AND p.status IN ('routed', 'approved', 'scheduled', 'paid') AS pushable,
                           v.name AS vendor,
                           coalesce((SELECT json_agg(json_build_object('amount', l.amount::text, 'description', l.description)
                                                     ORDER BY l.line_key)
                                       FROM billops.payable_line l WHERE l.payable_id = p.payable_id AND l.amount <> 0), '[]') AS lines,
                           (SELECT l.bill_id FROM billops.bill_link l WHERE l.payable_id = p.payable_id) AS bill_id,
                           (SELECT count(*)::int FROM billops.approval_step s WHERE s.payable_id = p.payable_id
                               AND s.decided_by = 'BILL') AS approved_in_bill
                      FROM billops.payable p LEFT JOIN billops.vendor v USING (vendor_id)
                     WHERE p.payer_account_id = $1`, [payer]);
}

async function approveAll(S, payableId) {
  for (const role of [REVIEWER, OWNER]) {
    await S.db.query(`SET ROLE ${role}`);
    try {
      await S.db.query('SELECT billops.approve($1, $2)', [payableId, 'crash trial']);
    } finally {
      await S.db.query('RESET ROLE');
    }
  }
}

const documentBytes = (seed) => Buffer.from(`%PDF-1.4\ninvoice of crash trial ${seed}\n${'x'.repeat(2000)}`);

// The request an operation makes BILL act on (method, path below /connect).
function opRequest(op, billId) {
  switch (op) {
    case 'create': return { method: 'POST', path: /^\/v3\/bills$/ };
    case 'update': return { method: ['PATCH', 'PUT'], path: new RegExp(`^/v3/bills/${billId}$`) };
    case 'void': return { method: 'POST', path: new RegExp(`^/v3/bills/${billId}/archive$`) };
    case 'approve': return { method: 'POST', path: /^\/v3\/bill-approvals\/actions$/ };
    default: return { method: 'POST', path: new RegExp(`^/v3/documents/bills/${billId}$`) };
  }
}
// an emulator fault on that request (a fault matches one method)
const faultsOn = (req, fault) => [req.method].flat().map((m) => ({ match: { method: m, path: req.path.source.replace(/^\^/, '') }, ...fault }));

// Run one trial; returns { spec, payer, violations: [{kind, message}], notes }.
// serialOk: the postmaster may be killed (no other test file has connections open).
export async function runTrial(S, spec, { serialOk = true } = {}) {
  const notes = [];
  const fault = spec.fault === 'postmaster' && !serialOk ? 'worker' : spec.fault;
  if (fault !== spec.fault) notes.push('postmaster trial run as a worker trial (other test files run alongside)');
  await S.connectedWorker();
  if (spec.newVendor) {
    await S.db.query(`INSERT INTO billops.vendor (name, kind) VALUES ($1, 'marketplace_seller') ON CONFLICT (name) DO NOTHING`,
      [`Trial ${spec.seed} Labs`]);
    await S.db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                      SELECT vendor_id, 'exact', $2 FROM billops.vendor WHERE name = $1 ON CONFLICT DO NOTHING`,
    [`Trial ${spec.seed} Labs`, `Trial ${spec.seed} Labs LLC`]);
  }

  // the scene: for every operation but create, the bill is in BILL already
  const vendorFault = { match: { method: 'POST', path: '/v3/vendors$' }, kind: 'dropAfterCommit', count: 1 };
  const vendorLost = spec.newVendor && spec.vendorLost;
  let payer;
  let deliveries = 0;
  if (spec.op !== 'create') {
    if (vendorLost) await setFaults([vendorFault]);
    payer = await loadAndBuild(S, spec, spec.lines, deliveries++);
    const p0 = await trialPayable(S, payer);
    await S.drained(1, 30000, 'payable_id = $1', [p0.id]);
  }
  const before = payer ? await trialPayable(S, payer) : null;
  const req = opRequest(spec.op, before?.bill_id);

  // the fault, armed before the operation wakes the worker
  const hold = { kind: 'slow', ms: 2500, count: 1 };         // long enough to act while it is held
  const glimpse = { kind: 'slow', ms: 250, count: 1 };       // long enough to be seen in flight
  const held = spec.concurrent !== 'none';
  const faults = [];
  if (vendorLost && spec.op === 'create') faults.push(vendorFault);
  if (fault === 'lost') {
    if (held) faults.push(...faultsOn(req, { kind: 'slow', ms: 600, count: 1 }));
    if (spec.point === 'before_send') faults.push(...faultsOn(req, { kind: 'drop', count: 1 }));
    if (spec.point === 'after_commit') faults.push(...faultsOn(req, { kind: 'dropAfterCommit', count: 1 }));
    if (spec.point === 'after_record' && !held) faults.push(...faultsOn(req, glimpse));
  } else if (spec.point === 'before_send') {
    faults.push(...faultsOn(req, hold));
  } else {
    faults.push(...faultsOn(req, held ? { kind: 'slow', ms: 600, count: 1 } : glimpse));
  }
  await setFaults(faults);

  // the operation
  switch (spec.op) {
    case 'create': payer = await loadAndBuild(S, spec, spec.lines, deliveries++); break;
    case 'update': await loadAndBuild(S, spec, spec.restated, deliveries++); break;
    case 'void': await S.db.query(`SELECT billops.void_payable($1, 'crash trial')`, [before.id]); break;
    case 'approve': await approveAll(S, before.id); break;
    default: await S.db.query('SELECT billops.attach_document($1, $2, $3)', [before.id, `trial-${spec.seed}.pdf`, documentBytes(spec.seed)]);
  }
  const p1 = await trialPayable(S, payer);
  if (!p1.pushable && spec.op !== 'void') notes.push(`payable is ${p1.status} after the operation`);

  // while the request is held (or at once): a change of the same payable
  const concurrently = async () => {
    if (spec.concurrent === 'restate') {
      await loadAndBuild(S, spec, spec.op === 'update' ? spec.lines : spec.restated, deliveries++);
    } else if (spec.concurrent === 'void' && spec.op !== 'void') {
      await S.db.query(`SELECT billops.void_payable($1, 'crash trial, concurrent')`, [p1.id]).catch((e) => notes.push(`void: ${e.message}`));
    }
  };
  const kill = async (pid) => {
    if (fault === 'postmaster') await S.restartPostmaster();
    else await S.terminate(pid);
  };
  const expectsRequest = p1.pushable || spec.op === 'void';

  if (!expectsRequest) {
    await concurrently();
  } else if (fault === 'lost') {
    if (spec.point === 'after_record') {
      // once the answer is recorded, the worker's next request loses its answer
      const g = await S.gateRecording(req.method, req.path).catch((e) => { notes.push(`not gated: ${e.message}`); return null; });
      if (g) {
        await setFaults([{ match: { path: '/v3/' }, kind: 'dropAfterCommit', count: 1 }]);
        await concurrently();
        await g.release();
      } else await concurrently();
    } else {
      await concurrently();
    }
  } else if (spec.point === 'before_send') {
    const w = await S.workerDoing(req.method, req.path).catch((e) => { notes.push(`not seen: ${e.message}`); return null; });
    await concurrently();
    if (w) await kill(w.pid);
  } else if (spec.point === 'after_commit') {
    const g = await S.gateRecording(req.method, req.path).catch((e) => { notes.push(`not gated: ${e.message}`); return null; });
    await concurrently();
    if (g) {
      await kill(g.pid);
      await g.release();
    }
  } else {
    // after_record: let the worker record the answer, and kill it right then
    const g = await S.gateRecording(req.method, req.path).catch((e) => { notes.push(`not gated: ${e.message}`); return null; });
    await concurrently();
    if (g) {
      const at = await one(S.db, 'SELECT state, step FROM billops.bill_outbox WHERE outbox_id = $1', [g.outboxId]);
      await g.release();
      await waitFor('the answer to be recorded', async () => {
        const now = await one(S.db, 'SELECT state, step FROM billops.bill_outbox WHERE outbox_id = $1', [g.outboxId]);
        return now.state !== at.state || now.step !== at.step;
      }, 10000, 2).catch((e) => notes.push(`not seen recorded: ${e.message}`));
      await kill(g.pid);
    }
  }

  await clearFaults();
  await S.connectedWorker();
  const p = await trialPayable(S, payer);
  const violations = [];
  const rows = await S.drained(1, 45000, 'payable_id = $1', [p.id]).catch(async (e) => {
    violations.push({ kind: 'stuck_rows', message: e.message });
    return S.outbox('payable_id = $1', [p.id]);
  });
  for (const o of rows) {
    if (o.state === 'dead') violations.push({ kind: 'stuck_rows', message: `outbox ${o.id} (${o.action}) is dead: ${o.last_error_code} ${o.last_error}` });
  }
  violations.push(...await checkTrial(S, spec, payer));
  return { spec: { ...spec, fault }, payer, violations, notes };
}

// BILL against the payable: one bill, its amount and lines, archived when voided,
// the document once, the approval when pushed; one vendor per name.
export async function checkTrial(S, spec, payer) {
  const v = [];
  const p = await trialPayable(S, payer);
  const st = await state();
  const bills = st.bills.filter((b) => b.invoice?.invoiceNumber === p.invoice_number);
  const label = `seed ${spec.seed} (${spec.op}/${spec.fault}/${spec.point}/${spec.concurrent}), payable ${p.id} ${p.status}`;
  if (bills.length > 1) v.push({ kind: 'duplicate_bills', message: `${label}: ${bills.length} bills with invoice number ${p.invoice_number}` });
  const c = (x) => Math.round(Number(x) * 100);
  if (p.pushable) {
    const live = bills.filter((b) => !b.archived);
    if (live.length !== 1) {
      v.push({ kind: 'wrong_amounts', message: `${label}: ${live.length} live bills for a payable BILL must hold` });
    } else {
      const b = live[0];
      const want = p.lines.map((l) => `${c(l.amount)}|${l.description}`).sort();
      const got = b.billLineItems.map((l) => `${c(l.amount)}|${l.description}`).sort();
      const amount = b.billLineItems.reduce((s, l) => s + c(l.amount), 0);
      if (amount !== c(p.amount) || JSON.stringify(want) !== JSON.stringify(got)) {
        v.push({ kind: 'wrong_amounts', message: `${label}: BILL holds ${amount / 100} [${got}] for a payable of ${p.amount} [${want}]` });
      }
      if (p.bill_id !== b.id) v.push({ kind: 'wrong_link', message: `${label}: bill_link holds ${p.bill_id}, BILL's bill is ${b.id}` });
      const docs = await S.db.query('SELECT file_name FROM billops.payable_document WHERE payable_id = $1', [p.id]);
      for (const d of docs.rows) {
        const n = st.documents.filter((x) => x.billId === b.id && x.name === d.file_name).length;
        if (n !== 1) v.push({ kind: 'documents_wrong', message: `${label}: document ${d.file_name} is on the bill ${n} times` });
      }
      if (['approved', 'scheduled', 'paid'].includes(p.status) && !p.approved_in_bill && b.approvalStatus !== 'APPROVED') {
        v.push({ kind: 'approvals_wrong', message: `${label}: approved here, ${b.approvalStatus} in BILL` });
      }
    }
  } else if (p.status === 'voided') {
    const live = bills.filter((b) => !b.archived);
    if (live.length) v.push({ kind: 'not_archived', message: `${label}: voided, but BILL has live bill ${live.map((b) => b.id)}` });
  }
  if (p.vendor) {
    const same = st.vendors.filter((x) => x.name === p.vendor && !x.archived).length;
    if (same > 1) v.push({ kind: 'duplicate_vendors', message: `${label}: ${same} vendors named ${p.vendor} in BILL` });
  }
  return v;
}

// The counts a run of trials reports (every kind of violation, and trials with any).
export const KINDS = ['duplicate_bills', 'wrong_amounts', 'not_archived', 'stuck_rows', 'wrong_link', 'duplicate_vendors',
  'documents_wrong', 'approvals_wrong', 'trial_errors'];
export function summarize(results) {
  const out = { trials: results.length };
  for (const k of KINDS) out[k] = results.reduce((n, r) => n + r.violations.filter((x) => x.kind === k).length, 0);
  out.failed_trials = results.filter((r) => r.violations.length).length;
  // trials whose fault could not be placed (the request was never seen in flight): they still
  // check BILL against the payables, but tested less than their cell says
  out.faults_not_placed = results.filter((r) => r.notes.some((n) => /^not (seen|gated)/.test(n))).length;
  return out;
}
export const summaryLine = (s) => Object.entries(s).map(([k, v]) => `${k}=${v}`).join(', ');

// Server log lines since `from` (bytes) that show a protocol problem the trials
// must not cause: a deadlock, a row the worker could not record, an error in the loop.
export function logProblems(from) {
  const log = fs.readFileSync(path.join(RUN, 'log', 'postgres.log'), 'utf8').slice(from);
  return log.split('\n').filter((l) => /deadlock detected|failed while|bill_outbox_one_pending|duplicate key value/.test(l));
}
export const logSize = () => fs.statSync(path.join(RUN, 'log', 'postgres.log')).size;

export { requests, isRequest, sleep };
