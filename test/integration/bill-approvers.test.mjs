// The approver directory against the BILL emulator: the worker reads BILL's
// roles and users (GET /v3/roles, GET /v3/users page by page) when the
// directory changes, and billops.bill_approver_status says whether each
// role's BILL approver may approve.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkerSession, control, requests, isRequest } from './bill-harness.mjs';
import { waitFor } from './helpers.mjs';

const S = new WorkerSession('billops_it_approvers');
before(async () => { await control('POST', 'reset'); await S.open(); });
after(() => S.close());

const statuses = async () => Object.fromEntries((await S.db.query(
  `SELECT approver_role, status FROM billops.bill_approver_status WHERE bill_approver_id IS NOT NULL`)).rows
  .map((r) => [r.approver_role, r.status]));
const directoryRequests = async () => (await requests()).filter((r) => isRequest(r, 'GET', /^\/v3\/(users|roles)/));

test('the worker reads BILL\'s users when the directory changes, and each mapping gets its status', async () => {
  // BILL's organization: many approvers (more than a page), a clerk, someone who left
  for (let i = 0; i < 130; i++) await control('POST', 'users', { id: `00601APPROVER${String(i).padStart(8, '0')}`, role: 'APPROVER' });
  await control('POST', 'users', { id: '00601ALICE00000000001', firstName: 'Alice', lastName: 'Ng', role: 'APPROVER' });
  await control('POST', 'users', { id: '00601CLERK00000000002', firstName: 'Carl', lastName: 'Lerk', role: 'CLERK' });
  await control('POST', 'users', { id: '00601GONE000000000003', firstName: 'Gone', lastName: 'User', role: 'ACCOUNTANT', archived: true });
  await control('DELETE', 'requests');

  await S.db.query(`INSERT INTO billops.bill_approver (approver_role, bill_approver_id) VALUES
      ('eng_owners', '00601ALICE00000000001'), ('data_owners', '00601CLERK00000000002'),
      ('billops_finance_leadership', '00601GONE000000000003'), ('billops_finance_review', '00601NOBODY0000000004'),
      ('billops_finops_owner', 'agp01FINOPSGROUP00001')`);
  const want = {
    eng_owners: 'ok', data_owners: 'cannot_approve', billops_finance_leadership: 'archived',
    billops_finance_review: 'unknown_user', billops_finops_owner: 'group_unverified',
  };
  await waitFor('the worker to read BILL\'s users', async () => {
    const s = await statuses();
    return Object.keys(want).every((k) => s[k] === want[k]) ? s : null;
  }, 30000, 100, async () => JSON.stringify(await statuses()));
  const reqs = await directoryRequests();
  assert.equal(reqs[0].path, '/connect/v3/roles', 'roles first');
  const userPages = reqs.filter((r) => r.path === '/connect/v3/users');
  assert.equal(userPages.length, 2, '134 users: two pages of 100');
  assert.ok(userPages.every((r) => r.status === 200));
  assert.equal(userPages[1].query.page !== undefined, true, 'the second page by its token');
  const { rows: [u] } = await S.db.query(`SELECT full_name, role_type FROM billops.bill_user WHERE bill_user_id = '00601ALICE00000000001'`);
  assert.deepEqual(u, { full_name: 'Alice Ng', role_type: 'APPROVER' });

  // read: nothing more is asked while nothing changes
  await S.db.query(`SELECT billops._bill_wake()`);   // a wake that brings nothing to do
  await sleep(1500);
  assert.equal((await directoryRequests()).length, reqs.length, 'no new reads without a change');

  // someone is made an approver in BILL and the mapping is touched: read again
  await control('POST', 'users', { id: '00601CLERK00000000002', firstName: 'Carl', lastName: 'Lerk', role: 'APPROVER' });
  await S.db.query(`UPDATE billops.bill_approver SET note = 'promoted' WHERE approver_role = 'data_owners'`);
  await waitFor('the next read', async () => ((await statuses()).data_owners === 'ok' ? true : null), 30000, 100,
    async () => JSON.stringify(await statuses()));
  assert.ok((await directoryRequests()).length > reqs.length);
});
