// The default chain's last steps, against the STS emulator's container
// credentials endpoint and instance metadata service: the server is
// restarted with the AWS_* variables ECS, EKS or EC2 would give it, and
// with no profile to answer first (the shared credentials file is pointed
// elsewhere); then the whole chain's order, one step taken away at a time.
// The server is restarted as it was at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pgCtlEnv } from './bill-harness.mjs';
import { connect, closeAll, freshDatabase, expectError, generate, bucketDir, S3, S3_ROOT, RUN, stsControl } from './helpers.mjs';

const STS = process.env.STS_EMULATOR_CONTROL;
const BASE = process.env.STS_ENDPOINT;
const TASK_ROLE = 'arn:aws:iam::111122223333:role/billops-task';
const INSTANCE_ROLE = 'arn:aws:iam::111122223333:role/billops-instance';
const CONTAINER_TOKEN = 'container-auth-token-0123456789';
const LOG = path.join(RUN ?? '/tmp', 'log', 'postgres.log');

const sts = stsControl;

let admin;
async function restartWith(env) {
  await closeAll();
  pgCtlEnv({}, '-m', 'fast', 'stop');
  pgCtlEnv(env, '-l', LOG, '-w', 'start');
  admin = await connect();      // (the test's database, made in before())
}

before(async () => {
  assert.ok(STS && BASE, 'the STS emulator runs (test/run-tests.sh)');
  await sts('POST', 'reset');
  await sts('POST', 'metadata', {
    instanceRole: INSTANCE_ROLE, container: { path: '/v2/credentials/task-1', token: CONTAINER_TOKEN, role: TASK_ROLE },
  });
  admin = await freshDatabase('billops_it_metadata');
  // no profile answers before the container and instance steps
  await admin.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '/nonexistent/aws-credentials'`);
  await admin.query(`ALTER SYSTEM SET billops.aws_config_file = '/nonexistent/aws-config'`);
});
after(async () => {
  await admin?.query('ALTER SYSTEM RESET billops.aws_shared_credentials_file').catch(() => {});
  await admin?.query('ALTER SYSTEM RESET billops.aws_config_file').catch(() => {});
  await admin?.query('ALTER SYSTEM RESET billops.aws_imds_v1_allowed').catch(() => {});
  await closeAll();
  pgCtlEnv({}, '-m', 'fast', 'stop');
  pgCtlEnv({}, '-l', LOG, '-w', 'start');
  await sts('POST', 'reset').catch(() => {});
});

test('container credentials (ECS, EKS Pod Identity): the endpoint with its authorization token; S3 takes the keys', async () => {
  await restartWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${BASE}/v2/credentials/task-1`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: CONTAINER_TOKEN, AWS_EC2_METADATA_DISABLED: 'true' });
  const { rows: [r] } = await admin.query(`SELECT * FROM billops.credentials_check('default', 'us-east-1', true)`);
  assert.equal(r.origin, 'the container credentials endpoint');
  assert.equal(r.session_token, true);
  assert.ok(r.expires_at > new Date());
  assert.match(r.caller_arn, /assumed-role\/billops-task\//);
  bucketDir('meta-bucket');
  generate(['--out', S3_ROOT, '--bucket', 'meta-bucket', '--prefix', 'cur', '--report', 'meta',
    '--layout', 'legacy', '--period', '2024-01', '--rows', '1500', '--payer', '8', '--seed', '31']);
  await admin.query(`SELECT billops.create_cur_source('meta', 'meta-bucket', 'meta', prefix => 'cur', endpoint_url => $1, path_style => true)`, [S3]);
  await admin.query(`CALL billops.sync_cur_source('meta')`);
  const { rows: [d] } = await admin.query(`SELECT status FROM billops.cur_delivery ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(d.status, 'loaded');
  // the token from a file (EKS Pod Identity gives AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
  const tokenFile = path.join(RUN, 'container-token');
  fs.writeFileSync(tokenFile, `${CONTAINER_TOKEN}\n`, { mode: 0o644 });
  await restartWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${BASE}/v2/credentials/task-1`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: tokenFile, AWS_EC2_METADATA_DISABLED: 'true' });
  const { rows: [f] } = await admin.query(`SELECT * FROM billops.credentials_check('default')`);
  assert.equal(f.origin, 'the container credentials endpoint');
  // a wrong token: refused, and the token is not in the error
  await restartWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${BASE}/v2/credentials/task-1`,
    AWS_CONTAINER_AUTHORIZATION_TOKEN: 'not-the-token-0000', AWS_EC2_METADATA_DISABLED: 'true' });
  const e = await expectError(admin, `SELECT * FROM billops.credentials_check('default')`);
  assert.equal(e.code, '28000');
  assert.match(e.message, /container credentials endpoint did not give credentials: HTTP 401/);
  assert.ok(!JSON.stringify(e).includes('not-the-token-0000'));
  // a full URI to a host the SDKs do not allow over plain http
  await restartWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: 'http://169.254.169.254/creds', AWS_EC2_METADATA_DISABLED: 'true' });
  const e2 = await expectError(admin, `SELECT * FROM billops.credentials_check('default')`);
  assert.equal(e2.code, '22023');
});

test('the EC2 instance profile through IMDSv2: a session token first; IMDSv1 refused unless allowed', async () => {
  await restartWith({ AWS_EC2_METADATA_SERVICE_ENDPOINT: BASE });
  const before = (await sts('GET', 'requests')).length;
  const { rows: [r] } = await admin.query(`SELECT * FROM billops.credentials_check('default', 'us-east-1', true)`);
  assert.equal(r.origin, 'the EC2 instance profile (role billops-instance)');
  assert.match(r.caller_arn, /assumed-role\/billops-instance\//);
  const reqs = (await sts('GET', 'requests')).slice(before);
  assert.deepEqual(reqs.filter((q) => q.action.startsWith('PUT') || q.action.startsWith('GET /latest')).map((q) => `${q.action} ${q.token}`), [
    'PUT /latest/api/token false',
    'GET /latest/meta-data/iam/security-credentials/ true',
    'GET /latest/meta-data/iam/security-credentials/billops-instance true',
  ], 'IMDSv2: the token first, then both reads with it');
  // an instance that refuses IMDSv2 tokens: not used, unless IMDSv1 is allowed
  await sts('POST', 'metadata', { imdsV2Refused: true, imdsV1: true });
  const c = await connect();
  const e = await expectError(c, `SELECT * FROM billops.credentials_check('default')`);
  assert.equal(e.code, '28000');
  assert.match(e.detail, /IMDSv2 token refused: HTTP 403; IMDSv1 is not allowed/);
  await c.end();
  await admin.query('ALTER SYSTEM SET billops.aws_imds_v1_allowed = on');
  await admin.query('SELECT pg_reload_conf()');
  await sleep(300);
  const c2 = await connect();
  const { rows: [r2] } = await c2.query(`SELECT * FROM billops.credentials_check('default')`);
  assert.equal(r2.origin, 'the EC2 instance profile (role billops-instance)');
  await c2.end();
  await sts('POST', 'metadata', { imdsV2Refused: false, imdsV1: false });
  const log = fs.readFileSync(LOG, 'utf8');
  assert.ok(!log.includes(CONTAINER_TOKEN), 'no container token in the server log');
});

test('a role profile whose source is the container or the instance profile (credential_source EcsContainer, Ec2InstanceMetadata)', async () => {
  const PAYER_ROLE = 'arn:aws:iam::444455556666:role/billops-payer-reader';
  await sts('POST', 'roles', { arn: PAYER_ROLE, trust: [TASK_ROLE, INSTANCE_ROLE] });
  const config = path.join(RUN, 'aws-config-metadata-source');
  fs.writeFileSync(config, `[profile from-task]
role_arn = ${PAYER_ROLE}
credential_source = EcsContainer

[profile from-instance]
role_arn = ${PAYER_ROLE}
credential_source = Ec2InstanceMetadata

[profile from-nowhere]
role_arn = ${PAYER_ROLE}
credential_source = Ec2Instance
`, { mode: 0o644 });
  await admin.query(`ALTER SYSTEM SET billops.aws_config_file = '${config}'`);
  try {
    await restartWith({ AWS_CONTAINER_CREDENTIALS_FULL_URI: `${BASE}/v2/credentials/task-1`,
      AWS_CONTAINER_AUTHORIZATION_TOKEN: CONTAINER_TOKEN, AWS_EC2_METADATA_SERVICE_ENDPOINT: BASE });
    const { rows: [t] } = await admin.query(`SELECT * FROM billops.credentials_check('profile:from-task', 'us-east-1', true)`);
    assert.equal(t.role_arn, PAYER_ROLE);
    assert.match(t.origin, new RegExp(`^role ${PAYER_ROLE} assumed with the container credentials endpoint`));
    assert.match(t.caller_arn, /^arn:aws:sts::444455556666:assumed-role\/billops-payer-reader\//);
    const { rows: [i] } = await admin.query(`SELECT * FROM billops.credentials_check('profile:from-instance', 'us-east-1')`);
    assert.match(i.origin, /assumed with the EC2 instance profile \(role billops-instance\)/);
    const e = await expectError(admin, `SELECT * FROM billops.credentials_check('profile:from-nowhere')`);
    assert.equal(e.code, '22023');
    assert.match(e.hint, /Environment, EcsContainer or Ec2InstanceMetadata/);
    // the container endpoint gone: the role profile says its source gave nothing
    await restartWith({ AWS_EC2_METADATA_DISABLED: 'true' });
    const g = await expectError(admin, `SELECT * FROM billops.credentials_check('profile:from-task')`);
    assert.equal(g.code, '28000');
    assert.match(g.message, /takes its source credentials from the container credentials endpoint, which gave none/);
  } finally {
    await admin.query(`ALTER SYSTEM SET billops.aws_config_file = '/nonexistent/aws-config'`);
  }
});

test("the default chain's order: environment, web identity, profile, container, instance profile; each step answers when those before it are absent", async () => {
  const POD = 'arn:aws:iam::111122223333:role/billops-pod-order';
  await sts('POST', 'roles', { arn: POD, trust: [], webIdentityTokens: [{ token: 'order-web-identity-token', sub: 'system:serviceaccount:finance:pg-billops' }] });
  const tokenFile = path.join(RUN, 'order-web-identity-token');
  fs.writeFileSync(tokenFile, 'order-web-identity-token\n', { mode: 0o644 });
  const creds = path.join(RUN, 'aws-credentials-order');
  fs.writeFileSync(creds, '[default]\naws_access_key_id = AKIDBILLOPSTEST\naws_secret_access_key = billops-test-secret-key-0000000000000000\n', { mode: 0o644 });
  const steps = {
    env: { AWS_ACCESS_KEY_ID: 'AKIDBILLOPSTEST', AWS_SECRET_ACCESS_KEY: 'billops-test-secret-key-0000000000000000' },
    webIdentity: { AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: POD },
    container: { AWS_CONTAINER_CREDENTIALS_FULL_URI: `${BASE}/v2/credentials/task-1`, AWS_CONTAINER_AUTHORIZATION_TOKEN: CONTAINER_TOKEN },
    imds: { AWS_EC2_METADATA_SERVICE_ENDPOINT: BASE },
  };
  const expected = [
    ['env', /^environment variables of the PostgreSQL server$/],
    ['webIdentity', new RegExp(`^role ${POD} assumed with the web identity token in `)],
    ['profile', /^profile "default" in ".*aws-credentials-order"$/],
    ['container', /^the container credentials endpoint$/],
    ['imds', /^the EC2 instance profile \(role billops-instance\)$/],
  ];
  try {
    for (let i = 0; i < expected.length; i++) {
      const present = expected.slice(i).map(([name]) => name);
      const env = Object.assign({}, ...present.filter((n) => steps[n]).map((n) => steps[n]));
      if (!present.includes('imds')) env.AWS_EC2_METADATA_DISABLED = 'true';
      await admin.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '${present.includes('profile') ? creds : '/nonexistent/aws-credentials'}'`);
      await restartWith(env);
      const { rows: [r] } = await admin.query(`SELECT origin FROM billops.credentials_check('default', 'us-east-1')`);
      assert.match(r.origin, expected[i][1], `with ${present.join(', ')} present`);
    }
    // none left: 28000, the detail naming every step searched
    await admin.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '/nonexistent/aws-credentials'`);
    await restartWith({ AWS_EC2_METADATA_DISABLED: 'true' });
    const e = await expectError(admin, `SELECT * FROM billops.credentials_check('default')`);
    assert.equal(e.code, '28000');
    for (const step of [/environment variables/, /web identity/, /profile "default"/, /container credentials/, /AWS_EC2_METADATA_DISABLED/]) {
      assert.match(e.detail, step);
    }
  } finally {
    await admin.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '/nonexistent/aws-credentials'`);
  }
});
