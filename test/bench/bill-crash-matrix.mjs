// 1,000 (or --trials N) seeded crash and lost-answer trials of the BILL
// protocol through the real worker (test/integration/bill-trials.mjs): every
// operation × fault × point in turn, amounts, vendors and concurrent
// restatements and voids from each trial's seed.  Prints progress to stderr
// and, at the end, one line:
//   trials=…, duplicate_bills=…, wrong_amounts=…, not_archived=…, stuck_rows=…, …
// then the server log's deadlocks and failed recordings, and the seed of every
// failed trial (replay one: --replay seed:op:fault:point).  Exits 1 if any
// trial failed.  Run through test/bench/bill-crash-matrix.sh (cluster, emulator).
import { parseArgs } from 'node:util';
import { WorkerSession } from '../integration/bill-harness.mjs';
import { OPS, FAULTS, POINTS, trialSpec, openTrials, closeTrials, runTrial, summarize, summaryLine, logProblems, logSize } from '../integration/bill-trials.mjs';
import { closeAll } from '../integration/helpers.mjs';

const { values: args } = parseArgs({
  options: { trials: { type: 'string', default: '1000' }, seed: { type: 'string' }, replay: { type: 'string' } },
});
const base = Number(args.seed ?? (Date.now() % 1000000000));
const n = Number(args.trials);
const cells = [];
for (const op of OPS) for (const fault of FAULTS) for (const point of POINTS) cells.push({ op, fault, point });

const S = new WorkerSession('billops_crash_bench');
await openTrials(S);
const from = logSize();
const specs = args.replay
  ? [(([seed, op, fault, point]) => trialSpec(Number(seed), { ...(op && { op }), ...(fault && { fault }), ...(point && { point }) }))(args.replay.split(':'))]
  // the cells in turn (each one about n / 45 times), everything else from the seed
  : Array.from({ length: n }, (_, i) => trialSpec(base + i, cells[i % cells.length]));
console.error(`seed base ${base}: ${specs.length} trials`);
const results = [];
const t0 = Date.now();
for (const spec of specs) {
  const tag = `${spec.seed}:${spec.op}:${spec.fault}:${spec.point} (${spec.concurrent})`;
  if (process.env.BILLOPS_CRASH_VERBOSE) console.error(`trial ${tag}`);
  // an error in the trial's own steps (a statement of the scene refused) is a failed trial too
  const r = await runTrial(S, spec).catch(async (e) => {
    await S.reconnect().catch(() => {});
    return { spec, violations: [{ kind: 'trial_errors', message: `${tag}: ${e.message}` }], notes: [] };
  });
  results.push(r);
  if (process.env.BILLOPS_CRASH_VERBOSE && r.notes.length) console.error(`  notes: ${r.notes.join('; ')}`);
  if (r.violations.length) console.error(`FAILED ${spec.seed}:${spec.op}:${spec.fault}:${spec.point} (${spec.concurrent}): ${r.violations.map((v) => v.message).join('; ')}`);
  if (results.length % 50 === 0) console.error(`${results.length} trials, ${((Date.now() - t0) / 1000).toFixed(0)} s: ${summaryLine(summarize(results))}`);
}
const problems = logProblems(from);
const summary = { ...summarize(results), log_deadlocks: problems.filter((l) => /deadlock detected/.test(l)).length,
  log_failed_recordings: problems.filter((l) => !/deadlock detected/.test(l)).length,
  seconds: Math.round((Date.now() - t0) / 1000), seed: base };
console.log(summaryLine(summary));
for (const l of problems) console.log(`server log: ${l}`);
for (const r of results.filter((x) => x.violations.length)) console.log(`failed: ${r.spec.seed}:${r.spec.op}:${r.spec.fault}:${r.spec.point}`);
await closeTrials(S);
await closeAll();
process.exit(summary.failed_trials || problems.length ? 1 : 0);
