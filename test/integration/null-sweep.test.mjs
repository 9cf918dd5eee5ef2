// Every view as each role that may read it, and every routine pg_billops
// installs, called with every argument NULL, as the
// superuser and as each pg_billops role and a role with no grants: it answers
// (a result, or an error with a SQLSTATE that is not an internal one), and no
// backend dies.  A C function that is not STRICT and reads a NULL argument as a
// value crashes the server and every session with it (issue 12: sigv4_sign did).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectTo, closeAll, one } from './helpers.mjs';

const DB = 'billops_null_sweep';
const NOBODY = 'billops_null_sweep_nobody';
const ROLES = [null, 'billops_admin', 'billops_analyst', 'billops_approver', 'billops_finance_review',
  'billops_webhook', NOBODY];
let admin;
let db;

before(async () => {
  admin = await connectTo('postgres');
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`);
  await admin.query(`CREATE DATABASE ${DB}`);
  await admin.query(`DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${NOBODY}') THEN CREATE ROLE ${NOBODY}; END IF; END $$`);
  db = await connectTo(DB);
  await db.query('CREATE EXTENSION pg_billops CASCADE');
});
after(async () => {
  await db?.end().catch(() => {});
  await admin.query(`DROP DATABASE IF EXISTS ${DB}`).catch(() => {});
  await closeAll();
});

test('every routine with NULL arguments, as every role: an answer or a clear error, never a crash', { timeout: 300000 }, async (t) => {
  const started = (await one(admin, 'SELECT pg_postmaster_start_time() AS t')).t.getTime();
  const { rows: routines } = await db.query(
    `SELECT p.proname AS name, p.prokind AS kind,
            coalesce((SELECT string_agg(format('NULL::%s', format_type(a.t, NULL)), ', ' ORDER BY a.i)
                        FROM unnest(p.proargtypes) WITH ORDINALITY a(t, i)), '') AS args,
            p.prorettype = 'trigger'::regtype AS is_trigger
       FROM pg_proc p WHERE p.pronamespace = 'billops'::regnamespace ORDER BY p.proname, p.oid`);
  assert.ok(routines.length > 100, `the extension's routines are found (${routines.length})`);
  const outcomes = new Map();   // sqlstate -> count
  const internal = [];
  const publicConstraint = [];
  let calls = 0;
  for (const role of ROLES) {
    for (const r of routines) {
      const call = r.kind === 'p' ? `CALL billops.${r.name}(${r.args})` : `SELECT billops.${r.name}(${r.args})`;
      // each call alone in a transaction that is rolled back: nothing it does stays
      await db.query('BEGIN');
      await db.query(`SET LOCAL statement_timeout = '10s'`);
      if (role) await db.query(`SET LOCAL ROLE ${role}`);
      let code = 'ok';
      try {
        await db.query(call);
      } catch (e) {
        code = e.code ?? 'none';
        // internal errors, a terminated backend, and dynamic SQL that a NULL broke (a syntax
        // error, an unknown relation or function) are all bugs, never an answer to a NULL
        if (!e.code || e.code.startsWith('XX') || ['57P01', '42601', '42P01', '42883'].includes(e.code)) internal.push(`${role ?? 'superuser'}: ${call}: ${e.code} ${e.message}`);
        if (e.code === '23502' && !r.name.startsWith('_')) publicConstraint.push(`${role ?? 'superuser'}: ${call}: ${e.message}`);
      }
      await db.query('ROLLBACK').catch(() => {});
      outcomes.set(code, (outcomes.get(code) ?? 0) + 1);
      calls++;
      // a crash would have cut this connection and restarted the server
      assert.equal((await one(db, 'SELECT 1 AS alive')).alive, 1, `the session survives ${call} as ${role ?? 'superuser'}`);
    }
  }
  t.diagnostic(`${calls} calls: ${[...outcomes].map(([k, v]) => `${k}=${v}`).join(', ')}`);
  assert.deepEqual(internal, [], 'no internal error (XX...), no terminated backend, no dynamic SQL broken by a NULL');
  // a public routine names the argument it needs, rather than failing inside on a constraint
  assert.deepEqual(publicConstraint, [], 'no public routine fails on a NOT NULL constraint of its own tables');
  assert.equal((await one(admin, 'SELECT pg_postmaster_start_time() AS t')).t.getTime(), started, 'the server never restarted');
  // the sweep could fail: permissions and NULL checks are exercised
  assert.ok(outcomes.get('42501') > 0, 'roles without the grant are refused (42501)');
  assert.ok(outcomes.get('22004') > 0, 'required arguments given as NULL are refused (22004)');
});

test('every view works for every role it is granted to', async (t) => {
  const { rows: views } = await db.query(
    `SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = 'billops'::regnamespace AND c.relkind IN ('v', 'm') ORDER BY 1`);
  assert.ok(views.length >= 10, `the extension's views are found (${views.length})`);
  const failures = [];
  let checked = 0;
  for (const role of ROLES.filter(Boolean)) {
    for (const v of views) {
      if (!(await one(db, `SELECT has_table_privilege($1, $2, 'SELECT') AS ok`, [role, `billops.${v.name}`])).ok) continue;
      await db.query('BEGIN');
      await db.query(`SET LOCAL ROLE ${role}`);
      try {
        await db.query(`SELECT * FROM billops.${v.name} LIMIT 1`);
      } catch (e) {
        failures.push(`${role}: billops.${v.name}: ${e.code} ${e.message}`);
      }
      await db.query('ROLLBACK');
      checked++;
    }
  }
  t.diagnostic(`${checked} (role, view) pairs`);
  assert.deepEqual(failures, [], 'a view granted to a role can be read by it');
  assert.ok((await one(db, `SELECT has_table_privilege('billops_approver', 'billops.exception_queue', 'SELECT') AS ok`)).ok,
    'approvers have the exception queue (issue 12: it failed with 42501 on bill_link)');
});
