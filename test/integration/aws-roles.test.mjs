// AWS access through roles: the STS emulator (test/emulators/sts) issues
// temporary keys into the emulators' shared key store; the S3 emulator
// accepts them, and refuses them once expired.  pg_billops finds STS the
// way AWS's SDKs do (AWS_ENDPOINT_URL_STS in the server's environment) and
// role profiles in the shared config file (billops.aws_config_file).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, closeAll, freshDatabase, expectError, generate, bucketDir, S3, S3_ROOT, RUN, stsControl } from './helpers.mjs';

const STS = process.env.STS_EMULATOR_CONTROL;
const ACCOUNT = '111122223333';
const READER = `arn:aws:iam::${ACCOUNT}:role/billops-cur-reader`;
const AUDITOR = `arn:aws:iam::${ACCOUNT}:role/billops-auditor`;
const POD = `arn:aws:iam::${ACCOUNT}:role/billops-pod`;
const CONFIG = path.join(RUN ?? '/tmp', 'aws-config-roles');
const TOKEN_FILE = path.join(RUN ?? '/tmp', 'web-identity-token');
const SECRETS = ['billops-test-secret', 'web-identity-token-value'];

const sts = stsControl;
const stsRequests = async (action) => (await sts('GET', 'requests')).filter((r) => !action || r.action === action);

let db;
before(async () => {
  assert.ok(STS, 'STS_EMULATOR_CONTROL is set (run through test/run-tests.sh)');
  await sts('POST', 'reset');
  // the roles: a CUR reader trusting the test key with an external id; an auditor only the
  // reader's sessions may assume (a chain); a pod role for web identity
  await sts('POST', 'roles', { arn: READER, trust: ['AKIDBILLOPSTEST'], externalId: 'acme-billing-7f3a', maxSessionDuration: 7200 });
  await sts('POST', 'roles', { arn: AUDITOR, trust: [READER], maxSessionDuration: 43200 });
  await sts('POST', 'roles', { arn: POD, trust: [], webIdentityTokens: [{ token: 'web-identity-token-value', sub: 'system:serviceaccount:finance:pg-billops' }] });
  fs.writeFileSync(TOKEN_FILE, 'web-identity-token-value\n', { mode: 0o644 });
  fs.writeFileSync(CONFIG, `[profile reader]
role_arn = ${READER}
source_profile = default
external_id = acme-billing-7f3a
role_session_name = pg-billops-test
duration_seconds = 3600

[profile wrong-external-id]
role_arn = ${READER}
source_profile = default
external_id = someone-elses-id

[profile auditor]
role_arn = ${AUDITOR}
source_profile = reader
duration_seconds = 7200

[profile pod]
role_arn = ${POD}
web_identity_token_file = ${TOKEN_FILE}

[profile loop-a]
role_arn = ${READER}
source_profile = loop-b

[profile loop-b]
role_arn = ${READER}
source_profile = loop-a
`, { mode: 0o644 });
  db = await freshDatabase('billops_it_roles');
  await db.query(`ALTER SYSTEM SET billops.aws_config_file = '${CONFIG}'`);
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
});
after(async () => {
  await db?.query('ALTER SYSTEM RESET billops.aws_config_file').catch(() => {});
  await db?.query('ALTER SYSTEM RESET billops.aws_credentials_refresh_margin').catch(() => {});
  await db?.query('SELECT pg_reload_conf()').catch(() => {});
  await sts('POST', 'config', { issuedLifetimeSeconds: null }).catch(() => {});
  await closeAll();
});

test('a role profile: AssumeRole with the source profile\'s keys and the external id; credentials_check shows the role, never a key', async () => {
  const c = await connect();
  const { rows: [r] } = await c.query(`SELECT * FROM billops.credentials_check('profile:reader', 'us-east-1', true)`);
  assert.equal(r.role_arn, READER);
  assert.match(r.origin, new RegExp(`role ${READER} assumed with profile "default"`));
  assert.match(r.access_key_id, /^\*\*\*\*[A-Z0-9]{4}$/);
  assert.equal(r.session_token, true);
  assert.ok(r.expires_at > new Date(Date.now() + 50 * 60 * 1000), 'an hour-long session (duration_seconds 3600)');
  assert.equal(r.caller_arn, `arn:aws:sts::${ACCOUNT}:assumed-role/billops-cur-reader/pg-billops-test`, 'GetCallerIdentity agrees');
  // the same backend asks STS once while the keys are valid
  await c.query(`SELECT * FROM billops.credentials_check('profile:reader', 'us-east-1')`);
  assert.equal((await stsRequests('AssumeRole')).length, 1, 'cached in the backend');
  const text = JSON.stringify(r);
  for (const s of SECRETS) assert.ok(!text.includes(s));
  await c.end();
});

test('a CUR source read through the role: S3 accepts the keys STS issued', async () => {
  bucketDir('role-bucket');
  generate(['--out', S3_ROOT, '--bucket', 'role-bucket', '--prefix', 'cur', '--report', 'roles',
    '--layout', 'legacy', '--period', '2024-01', '--rows', '3000', '--payer', '5', '--seed', '11']);
  await db.query(`SELECT billops.create_cur_source('roles', 'role-bucket', 'roles', prefix => 'cur',
                  credentials => 'profile:reader', endpoint_url => $1, path_style => true)`, [S3]);
  await db.query(`CALL billops.sync_cur_source('roles')`);
  const { rows: [d] } = await db.query(`SELECT status, rows_loaded FROM billops.cur_delivery ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(d.status, 'loaded');
  assert.ok(d.rows_loaded > 0);
});

test('an external id the role does not expect: 28000 naming the role, with no secret', async () => {
  const e = await expectError(db, `SELECT * FROM billops.credentials_check('profile:wrong-external-id')`);
  assert.equal(e.code, '28000');
  assert.match(e.message, new RegExp(`AWS STS AssumeRole of ${READER} refused: AccessDenied`));
  const text = JSON.stringify(e);
  for (const s of SECRETS) assert.ok(!text.includes(s), `no ${s} in the error`);
});

test('a chained role: the auditor assumed with the reader\'s session, for at most an hour (AWS\'s limit on chains)', async () => {
  const { rows: [r] } = await db.query(`SELECT * FROM billops.credentials_check('profile:auditor')`);
  assert.equal(r.role_arn, AUDITOR);
  assert.match(r.origin, new RegExp(`role ${AUDITOR} assumed with role ${READER}`));
  assert.ok(r.expires_at <= new Date(Date.now() + 61 * 60 * 1000), 'duration_seconds 7200 asked as 3600: a chain lasts an hour at most');
});

test('web identity: AssumeRoleWithWebIdentity with the token file, unsigned', async () => {
  const before = (await stsRequests('AssumeRoleWithWebIdentity')).length;
  const { rows: [r] } = await db.query(`SELECT * FROM billops.credentials_check('profile:pod')`);
  assert.equal(r.role_arn, POD);
  assert.match(r.origin, /web identity token in/);
  const reqs = await stsRequests('AssumeRoleWithWebIdentity');
  assert.equal(reqs.length, before + 1);
  assert.equal(reqs.at(-1).signed, false, 'no signature: the token is the proof');
  // a token STS refuses
  fs.writeFileSync(TOKEN_FILE, 'not-a-token-sts-knows\n');
  const c = await connect();
  const e = await expectError(c, `SELECT * FROM billops.credentials_check('profile:pod')`);
  assert.equal(e.code, '28000');
  assert.match(e.message, /InvalidIdentityToken/);
  assert.ok(!JSON.stringify(e).includes('not-a-token-sts-knows'), 'the token is not in the error');
  fs.writeFileSync(TOKEN_FILE, 'web-identity-token-value\n');
  await c.end();
});

test('a source_profile cycle is refused', async () => {
  const e = await expectError(db, `SELECT * FROM billops.credentials_check('profile:loop-a')`);
  assert.equal(e.code, '22023');
  assert.match(e.message, /source_profile cycle/);
});

test('expiry during a long sync: keys about to expire are made again before use, and the sync does not fail', async () => {
  await sts('POST', 'config', { issuedLifetimeSeconds: 4 });
  await db.query(`ALTER SYSTEM SET billops.aws_credentials_refresh_margin = 2`);
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
  const c = await connect();
  const n0 = (await stsRequests('AssumeRole')).length;
  await c.query(`SELECT * FROM billops.credentials_check('profile:reader')`);
  await sleep(2500);   // within the margin of their 4-second life
  generate(['--out', S3_ROOT, '--bucket', 'role-bucket', '--prefix', 'cur', '--report', 'roles',
    '--layout', 'legacy', '--period', '2024-02', '--rows', '3000', '--payer', '5', '--seed', '12']);
  await c.query(`CALL billops.sync_cur_source('roles')`);
  assert.ok((await stsRequests('AssumeRole')).length >= n0 + 2, 'a new session before the old one ran out');
  const { rows } = await c.query(`SELECT status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                   WHERE s.name = 'roles' ORDER BY delivery_id`);
  assert.ok(rows.every((r) => r.status === 'loaded'), JSON.stringify(rows));
  // keys past their expiry are refused by S3 (the emulator honours the expiry STS gave)
  await c.end();
});

test('a role per source: two payers\' buckets read in one session, each through its own role; the AWS API source too', async () => {
  const ALPHA = `arn:aws:iam::${ACCOUNT}:role/alpha-cur-reader`;
  const BETA = `arn:aws:iam::${ACCOUNT}:role/beta-cur-reader`;
  await sts('POST', 'roles', { arn: ALPHA, trust: ['AKIDBILLOPSTEST'], externalId: 'alpha-ext-01' });
  await sts('POST', 'roles', { arn: BETA, trust: ['AKIDBILLOPSTEST'] });
  for (const [bucket, payer, seed] of [['alpha-bucket', '6', '21'], ['beta-bucket', '7', '22']]) {
    bucketDir(bucket);
    generate(['--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', bucket,
      '--layout', 'legacy', '--period', '2024-01', '--rows', '2000', '--payer', payer, '--seed', seed]);
  }
  // a role's form is checked when the source is registered
  const bad = await expectError(db, `SELECT billops.create_cur_source('bad-role', 'alpha-bucket', 'alpha-bucket',
                                      role_arn => 'arn:aws:iam::12:role/x')`);
  assert.equal(bad.code, '22023');
  await db.query(`SELECT billops.create_cur_source('alpha', 'alpha-bucket', 'alpha-bucket', prefix => 'cur', endpoint_url => $1,
                  path_style => true, role_arn => $2, role_external_id => 'alpha-ext-01', role_session_name => 'alpha-sync')`, [S3, ALPHA]);
  await db.query(`SELECT billops.create_cur_source('beta', 'beta-bucket', 'beta-bucket', prefix => 'cur', endpoint_url => $1,
                  path_style => true, role_arn => $2)`, [S3, BETA]);
  const c = await connect();
  const n0 = await stsRequests('AssumeRole');
  await c.query(`CALL billops.sync_cur_source('alpha')`);
  await c.query(`CALL billops.sync_cur_source('beta')`);
  const assumed = (await stsRequests('AssumeRole')).slice(n0.length).filter((r) => r.status === 200).map((r) => r.roleArn);
  assert.deepEqual([...new Set(assumed)].sort(), [ALPHA, BETA].sort(), 'each source through its own role');
  const { rows } = await c.query(`SELECT s.name, d.status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                   WHERE s.name IN ('alpha', 'beta') ORDER BY 1`);
  assert.deepEqual(rows, [{ name: 'alpha', status: 'loaded' }, { name: 'beta', status: 'loaded' }]);
  // a wrong external id on a source: 28000 from STS, the previous delivery intact
  await c.query(`UPDATE billops.cur_source SET role_external_id = 'wrong-ext-99' WHERE name = 'alpha'`);
  await c.end();
  const c2 = await connect();   // (a new backend: nothing cached)
  const e = await expectError(c2, `CALL billops.sync_cur_source('alpha')`);
  assert.equal(e.code, '28000');
  assert.match(e.message, new RegExp(`AssumeRole of ${ALPHA} refused: AccessDenied`));
  const { rows: still } = await c2.query(`SELECT d.status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                           WHERE s.name = 'alpha' ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(still[0].status, 'loaded', 'the loaded month stays');
  // the AWS API source: a Cost Explorer call signed with the role's keys (the AWS API emulator
  // accepts keys STS issued), its bad form refused by the table's check
  assert.ok(process.env.AWS_API_ENDPOINT, 'the AWS API emulator runs (test/run-tests.sh)');
  {
    await c2.query(`INSERT INTO billops.aws_api_source (payer_account_id, cost_explorer_url, invoicing_url, role_arn)
                    VALUES ('777700001111', $1, $1, $2)`, [process.env.AWS_API_ENDPOINT, BETA]);
    const n1 = (await stsRequests('AssumeRole')).length;
    const { rows: [r] } = await c2.query(`SELECT (billops._aws_api_call(cost_explorer_url, region, credentials, 'ce', 'GetAnomalies',
                                            '{"DateInterval": {"StartDate": "2024-01-01", "EndDate": "2024-01-31"}}', role_arn,
                                            role_external_id, role_session_name)).response FROM billops.aws_api_source
                                           WHERE payer_account_id = '777700001111'`);
    assert.ok(r.response, 'Cost Explorer answered');
    assert.ok((await stsRequests('AssumeRole')).length > n1, 'through the role');
    const bad2 = await expectError(c2, `UPDATE billops.aws_api_source SET role_external_id = 'x' WHERE payer_account_id = '777700001111'`);
    assert.equal(bad2.code, '22023');
  }
  await c2.end();
});

test('keys AWS calls expired before pg_billops expected: made again once and the request resent; the sync does not fail', async () => {
  await sts('POST', 'config', { issuedLifetimeSeconds: null });
  await db.query('ALTER SYSTEM RESET billops.aws_credentials_refresh_margin');
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
  const c = await connect();
  await c.query(`SELECT * FROM billops.credentials_check('profile:reader')`);   // an hour-long session, cached
  const { expired } = await sts('POST', 'expire');
  assert.ok(expired > 0, 'the issued keys expire now, unknown to pg_billops');
  const n0 = (await stsRequests('AssumeRole')).length;
  generate(['--out', S3_ROOT, '--bucket', 'role-bucket', '--prefix', 'cur', '--report', 'roles',
    '--layout', 'legacy', '--period', '2024-03', '--rows', '2000', '--payer', '5', '--seed', '13']);
  await c.query(`CALL billops.sync_cur_source('roles')`);
  assert.equal((await stsRequests('AssumeRole')).length, n0 + 1, 'one new session after S3 said ExpiredToken');
  const { rows } = await c.query(`SELECT d.status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                                   WHERE s.name = 'roles' AND d.billing_period = '2024-03-01'`);
  assert.deepEqual(rows.map((r) => r.status), ['loaded']);
  await c.end();
});

test('no key, secret or session token in the server log', async () => {
  const log = fs.readFileSync(path.join(RUN, 'log', 'postgres.log'), 'utf8');
  const store = JSON.parse(fs.readFileSync(path.join(RUN, 'emulator-credentials.json'), 'utf8'));
  const issued = store.keys.filter((k) => k.roleArn);
  assert.ok(issued.length > 0, 'STS issued keys in these tests');
  for (const k of issued) {
    assert.ok(!log.includes(k.secretAccessKey), 'no issued secret in the log');
    assert.ok(!log.includes(k.sessionToken), 'no session token in the log');
  }
  for (const s of SECRETS) assert.ok(!log.includes(s), `no ${s} in the log`);
});
