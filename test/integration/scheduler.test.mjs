// The monthly cycle (CALL billops.run_monthly_cycle()): every enabled S3
// source is synced on its own, payables are built and routed, and each run is
// a row in billops.job_run with its duration, per-source results and errors --
// a failing source is recorded and does not stop the others.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { closeAll, freshDatabase, generate, bucketDir, S3, S3_ROOT, RUN } from './helpers.mjs';

let db;
const BUCKET = 'sched-billing';

before(async () => {
  db = await freshDatabase('billops_it_sched');
  fs.rmSync(path.join(S3_ROOT, BUCKET), { recursive: true, force: true });
  bucketDir(BUCKET);
  fs.mkdirSync(path.join(RUN, 'scheduler'), { recursive: true });
  generate(['--out', S3_ROOT, '--bucket', BUCKET, '--prefix', 'cur', '--report', 'monthly', '--layout', 'legacy',
    '--period', '2024-03', '--rows', '4000', '--payer', '1', '--accounts', '3', '--final', '--seed', '11', '--quiet',
    '--expected', path.join(RUN, 'scheduler', 'expected.json')]);
  for (const [name, creds] of [['good', 'default'], ['bad', 'profile:wrong-secret']]) {
    await db.query(`SELECT billops.create_cur_source($1, $2, 'monthly', prefix => 'cur', credentials => $3,
                    endpoint_url => $4, path_style => true)`, [name, BUCKET, creds, S3]);
  }
  await db.query(`INSERT INTO billops.coding_rule (field, value) VALUES ('gl_account', '6100'), ('department', 'OPS')`);
});
after(async () => { await closeAll(); });

const runs = async () => (await db.query('SELECT * FROM billops.job_run ORDER BY run_id')).rows;

test('a run syncs every source on its own, builds payables, and records what happened', async () => {
  const expected = JSON.parse(fs.readFileSync(path.join(RUN, 'scheduler', 'expected.json'), 'utf8'));
  await db.query('SET client_min_messages = error');
  await db.query('CALL billops.run_monthly_cycle()');
  const [run] = await runs();
  assert.equal(run.status, 'failed', 'one source failed, so the run is marked failed');
  assert.ok(run.finished_at && run.duration_ms > 0, 'finished, with a duration');
  const bySource = Object.fromEntries(run.detail.sources.map((s) => [s.source, s]));
  assert.deepEqual(bySource.good, { source: 'good', loaded: 1, current: 0, failed: 0 }, 'the good source loaded its month');
  assert.equal(bySource.bad.failed, 1, 'the bad source failed ...');
  assert.equal(run.errors.length, 1, 'one error recorded');
  assert.equal(run.errors[0].source, 'bad');
  assert.equal(run.errors[0].sqlstate, '28000', '... with its SQLSTATE');
  assert.match(run.errors[0].message, /SignatureDoesNotMatch/);
  assert.doesNotMatch(JSON.stringify(run.errors), /not-the-right-secret/, 'no secret in the recorded error');
  const payables = (await db.query('SELECT count(*)::int AS n, sum(exact_amount)::text AS total FROM billops.payable')).rows[0];
  assert.equal(run.detail.payables.created, payables.n, 'the build is part of the run');
  const total = Object.values(expected.payers).reduce((a, p) => a + Number(p.unblendedCost), 0);
  assert.ok(Math.abs(Number(payables.total) - total) < 1e-6, 'payables cover the month that was loaded');
  assert.ok(run.detail.payables.routed > 0, 'final data: ready payables were routed');
});

test('the next run finds nothing new; a run limited to one source succeeds', async () => {
  await db.query('CALL billops.run_monthly_cycle($1)', ['good']);
  const last = (await runs()).at(-1);
  assert.equal(last.status, 'succeeded');
  assert.deepEqual(last.detail.sources, [{ source: 'good', loaded: 0, current: 1, failed: 0 }]);
  assert.deepEqual(Object.keys(last.detail.payables), ['unchanged'], 'no payable changed');
});

test('runs of dead sessions are closed; old runs are removed', async () => {
  await db.query(`INSERT INTO billops.job_run (job, started_at, backend_pid) VALUES ('monthly_cycle', now() - interval '1 hour', 2147483647)`);
  await db.query(`INSERT INTO billops.job_run (job, status, started_at, finished_at)
                  VALUES ('monthly_cycle', 'succeeded', now() - interval '200 days', now() - interval '200 days')`);
  await db.query('CALL billops.run_monthly_cycle($1)', ['good']);
  const all = await runs();
  assert.equal(all.filter((r) => r.started_at < new Date(Date.now() - 100 * 86400e3)).length, 0,
    'runs older than job_run_retention_days are gone');
  const dead = all.find((r) => r.backend_pid === 2147483647);
  assert.equal(dead.status, 'failed', 'a run whose session died is marked failed');
  assert.match(dead.errors[0].message, /session ended/);
});
