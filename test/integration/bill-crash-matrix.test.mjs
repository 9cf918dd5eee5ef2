// The BILL protocol under faults, through the real worker: every cell of
// operation × fault × point once, then randomized trials (bill-trials.mjs).
// Every trial checks BILL against the payables: one bill per payable, its
// amount and lines to the cent, archived when voided, documents once,
// approvals pushed, no stuck or dead rows; and the server log shows no
// deadlock and no row the worker failed to record.
//
// Seeded and replayable: the run prints its seed base; BILLOPS_CRASH_SEED=<n>
// repeats it, BILLOPS_CRASH_TRIALS=<n> sets the number of random trials, and
// BILLOPS_CRASH_REPLAY=<seed>:<op>:<fault>:<point> runs that one trial alone.
// test/bench/bill-crash-matrix.sh runs 1,000 trials and prints the counts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WorkerSession, siblingTestFiles } from './bill-harness.mjs';
import { OPS, FAULTS, POINTS, trialSpec, openTrials, closeTrials, runTrial, summarize, summaryLine, logProblems, logSize } from './bill-trials.mjs';

const S = new WorkerSession('billops_crash');
const BASE = Number(process.env.BILLOPS_CRASH_SEED ?? (Date.now() % 1000000000));
const RANDOM_TRIALS = Number(process.env.BILLOPS_CRASH_TRIALS ?? 15);
const REPLAY = process.env.BILLOPS_CRASH_REPLAY;

before(() => openTrials(S));
after(() => closeTrials(S));

async function runAll(t, specs) {
  const from = logSize();
  const serialOk = siblingTestFiles() === 0;
  const results = [];
  for (const spec of specs) {
    const r = await runTrial(S, spec, { serialOk });
    results.push(r);
    const tag = `${spec.seed}:${r.spec.op}:${r.spec.fault}:${r.spec.point} (${spec.concurrent})`;
    if (r.violations.length) t.diagnostic(`FAILED ${tag}: ${r.violations.map((v) => v.message).join('; ')}`);
    else if (r.notes.length) t.diagnostic(`${tag}: ${r.notes.join('; ')}`);
  }
  const summary = summarize(results);
  t.diagnostic(summaryLine(summary));
  for (const r of results) {
    assert.deepEqual(r.violations, [],
      `trial ${r.spec.seed}:${r.spec.op}:${r.spec.fault}:${r.spec.point} (replay with BILLOPS_CRASH_REPLAY=${r.spec.seed}:${r.spec.op}:${r.spec.fault}:${r.spec.point})`);
  }
  assert.deepEqual(logProblems(from), [], 'no deadlock, no unrecorded answer, no constraint violation in the server log');
  return results;
}

test('every operation × fault × point: BILL ends as the payables say', { timeout: 900000 }, async (t) => {
  if (REPLAY) {
    const [seed, op, fault, point] = REPLAY.split(':');
    t.diagnostic(`replaying ${REPLAY}`);
    await runAll(t, [trialSpec(Number(seed), { ...(op && { op }), ...(fault && { fault }), ...(point && { point }) })]);
    return;
  }
  t.diagnostic(`seed base ${BASE} (BILLOPS_CRASH_SEED=${BASE} repeats this run)`);
  const specs = [];
  let i = 0;
  for (const op of OPS) for (const fault of FAULTS) for (const point of POINTS) specs.push(trialSpec(BASE + i++, { op, fault, point }));
  const results = await runAll(t, specs);
  assert.equal(results.length, OPS.length * FAULTS.length * POINTS.length, 'every cell ran');
});

test('randomized trials (operation, fault, point, amounts, concurrent restatements and voids from the seed)', { timeout: 900000 }, async (t) => {
  if (REPLAY) return;
  const specs = Array.from({ length: RANDOM_TRIALS }, (_, k) => trialSpec(BASE + 1000 + k));
  await runAll(t, specs);
});
