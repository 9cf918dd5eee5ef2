// credential_process (src/aws_credential_process.c): a profile's external program prints
// the keys.  Helper programs are shell scripts written here; the S3 emulator accepts the keys
// they print only if they are ones it issued, so a sync proves the keys were used.  Every
// refusal is checked for its SQLSTATE, its words, and for never showing the secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, closeAll, freshDatabase, expectError, generate, bucketDir, S3, S3_ROOT, RUN } from './helpers.mjs';

const DIR = path.join(RUN ?? '/tmp', 'cred helpers');          // a space: the command is split, not given to a shell
const CONFIG = path.join(RUN ?? '/tmp', 'aws-config-process');
const CREDS = path.join(RUN ?? '/tmp', 'aws-credentials-process');
const LOG = path.join(RUN ?? '/tmp', 'log', 'postgres.log');
// keys the S3 emulator knows (test/lib.sh, emulator-credentials.json)
const KEY = { id: 'AKIDBILLOPSTEST', secret: 'billops-test-secret-key-0000000000000000' };
const SESSION = { id: 'ASIABILLOPSSESSION', secret: 'billops-session-secret-000000000000000', token: 'billops-session-token-1234567890' };
const SECRETS = [KEY.secret, SESSION.secret, SESSION.token];
const inAnHour = () => new Date(Date.now() + 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');

function helper(name, body) {
  const file = path.join(DIR, name);
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}
const q = (file) => `"${file}"`;

let db;
before(async () => {
  fs.mkdirSync(DIR, { recursive: true, mode: 0o755 });
  fs.chmodSync(DIR, 0o777);
  const count = path.join(DIR, 'runs');
  fs.rmSync(count, { force: true });
  const ok = helper('ok.sh', `echo run >> "${count}"
printf '%s\\n' "$@" > "${path.join(DIR, 'args')}"
cat <<JSON
{"Version": 1, "AccessKeyId": "${KEY.id}", "SecretAccessKey": "${KEY.secret}"}
JSON`);
  const session = helper('session.sh', `cat <<JSON
{"Version": 1, "AccessKeyId": "${SESSION.id}", "SecretAccessKey": "${SESSION.secret}",
 "SessionToken": "${SESSION.token}", "Expiration": "$1"}
JSON`);
  helper('not-json.sh', `echo 'AccessKeyId=${KEY.id} SecretAccessKey=${KEY.secret}'`);
  helper('version2.sh', `echo '{"Version": 2, "AccessKeyId": "${KEY.id}", "SecretAccessKey": "${KEY.secret}"}'`);
  helper('no-secret.sh', `echo '{"Version": 1, "AccessKeyId": "${KEY.id}"}'`);
  helper('bad-expiry.sh', `echo '{"Version": 1, "AccessKeyId": "${KEY.id}", "SecretAccessKey": "${KEY.secret}", "Expiration": "tomorrow"}'`);
  helper('fails.sh', `echo '{"Version": 1, "AccessKeyId": "${KEY.id}", "SecretAccessKey": "${KEY.secret}"}'
echo 'sso session expired; run aws sso login' >&2
exit 3`);
  helper('sleeps.sh', `echo $$ > "${path.join(DIR, 'sleeper.pid')}"
exec sleep 600`);
  helper('huge.sh', `head -c 200000 /dev/zero | tr '\\0' 'x'`);
  fs.writeFileSync(CONFIG, `[profile proc]
credential_process = ${q(ok)} --account 'acme billing' "quoted \\"word\\"" $HOME plain\\ space

[profile proc-session]
credential_process = ${q(session)} ${inAnHour()}

[profile proc-expired]
credential_process = ${q(session)} 2020-01-01T00:00:00Z

[profile proc-not-json]
credential_process = ${q(path.join(DIR, 'not-json.sh'))}

[profile proc-version2]
credential_process = ${q(path.join(DIR, 'version2.sh'))}

[profile proc-no-secret]
credential_process = ${q(path.join(DIR, 'no-secret.sh'))}

[profile proc-bad-expiry]
credential_process = ${q(path.join(DIR, 'bad-expiry.sh'))}

[profile proc-fails]
credential_process = ${q(path.join(DIR, 'fails.sh'))}

[profile proc-missing]
credential_process = ${path.join(RUN ?? '/tmp', 'no-such-helper')}

[profile proc-sleeps]
credential_process = ${q(path.join(DIR, 'sleeps.sh'))}

[profile proc-huge]
credential_process = ${q(path.join(DIR, 'huge.sh'))}

[profile proc-unbalanced]
credential_process = ${q(ok)} 'unterminated

[profile keys-win]
credential_process = ${q(path.join(DIR, 'fails.sh'))}

[profile process-wins]
aws_access_key_id = AKIDCONFIGFILEKEY
aws_secret_access_key = not-a-key-the-emulator-knows
credential_process = ${q(session)} ${inAnHour()}
`, { mode: 0o644 });
  // the credentials file's keys win over credential_process of the same profile (botocore's order)
  fs.writeFileSync(CREDS, `[default]
aws_access_key_id = ${KEY.id}
aws_secret_access_key = ${KEY.secret}

[keys-win]
aws_access_key_id = ${KEY.id}
aws_secret_access_key = ${KEY.secret}
`, { mode: 0o644 });
  db = await freshDatabase('billops_it_credential_process');
  await db.query(`ALTER SYSTEM SET billops.aws_config_file = '${CONFIG}'`);
  await db.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '${CREDS}'`);
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
});
after(async () => {
  await db?.query('ALTER SYSTEM RESET billops.aws_config_file').catch(() => {});
  await db?.query('ALTER SYSTEM RESET billops.aws_credential_process_timeout').catch(() => {});
  await db?.query(`ALTER SYSTEM SET billops.aws_shared_credentials_file = '${path.join(RUN, 'aws-credentials')}'`).catch(() => {});
  await db?.query('SELECT pg_reload_conf()').catch(() => {});
  await closeAll();
});

// in the region the CUR source below reads: keys are kept per reference, role and region
const check = (c, profile) => c.query(`SELECT * FROM billops.credentials_check('profile:${profile}', 'us-east-1')`).then((r) => r.rows[0]);
const assertNoSecret = (e) => { for (const s of SECRETS) assert.ok(!JSON.stringify(e).includes(s), `no secret in ${e.message}`); };

test('a program prints long-term keys: run without a shell (its words as written), once per backend; S3 takes the keys', async () => {
  const c = await connect();
  const r = await check(c, 'proc');
  assert.match(r.origin, /^credential_process of profile "proc" in /);
  assert.equal(r.access_key_id, '****TEST');
  assert.equal(r.session_token, false);
  assert.equal(r.expires_at, null);
  // the words: quotes and escapes as a POSIX shell reads them, and no expansion ($HOME stays)
  assert.deepEqual(fs.readFileSync(path.join(DIR, 'args'), 'utf8').split('\n').slice(0, -1),
    ['--account', 'acme billing', 'quoted "word"', '$HOME', 'plain space']);
  await check(c, 'proc');
  assert.equal(fs.readFileSync(path.join(DIR, 'runs'), 'utf8').trim().split('\n').length, 1, 'kept: not run again per request');
  bucketDir('process-bucket');
  generate(['--out', S3_ROOT, '--bucket', 'process-bucket', '--prefix', 'cur', '--report', 'proc',
    '--layout', 'legacy', '--period', '2024-03', '--rows', '600', '--payer', '10', '--seed', '43']);
  await c.query(`SELECT billops.create_cur_source('proc', 'process-bucket', 'proc', prefix => 'cur', endpoint_url => $1,
                                                  path_style => true, credentials => 'profile:proc')`, [S3]);
  await c.query(`CALL billops.sync_cur_source('proc')`);
  const { rows: [d] } = await c.query(`SELECT status FROM billops.cur_delivery ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(d.status, 'loaded');
  assert.equal(fs.readFileSync(path.join(DIR, 'runs'), 'utf8').trim().split('\n').length, 1, 'the whole sync ran it once');
  await c.end();
});

test('temporary keys with an expiry: kept until shortly before it; expired keys are refused', async () => {
  const c = await connect();
  const r = await check(c, 'proc-session');
  assert.equal(r.session_token, true);
  assert.ok(r.expires_at > new Date(Date.now() + 3000e3));
  const e = await expectError(c, `SELECT * FROM billops.credentials_check('profile:proc-expired')`);
  assert.equal(e.code, '28000');
  assert.match(e.message, /printed credentials that expired at 2020-01-01T00:00:00Z/);
  assertNoSecret(e);
  await c.end();
});

test('output that is not Version 1 credentials: 28000 saying what is wrong, never the output', async () => {
  const c = await connect();
  for (const [profile, words] of [['proc-not-json', /something that is not JSON/], ['proc-version2', /a "Version" other than 1/],
    ['proc-no-secret', /printed no SecretAccessKey/], ['proc-bad-expiry', /the expiry "tomorrow" .* is not an ISO 8601 time/],
    ['proc-huge', /printed more than 64 kB/]]) {
    const e = await expectError(c, `SELECT * FROM billops.credentials_check('profile:${profile}')`);
    assert.equal(e.code, '28000', `${profile}: ${e.message}`);
    assert.match(e.message, words);
    assertNoSecret(e);
  }
  const u = await expectError(c, `SELECT * FROM billops.credentials_check('profile:proc-unbalanced')`);
  assert.equal(u.code, '22023');
  assert.match(u.message, /unbalanced quote/);
  await c.end();
});

test('a program that fails, is missing, or never answers: 38000 with its exit and its standard error, never its output', async () => {
  const c = await connect();
  const e = await expectError(c, `SELECT * FROM billops.credentials_check('profile:proc-fails')`);
  assert.equal(e.code, '38000');
  assert.match(e.message, /fails\.sh" of profile "proc-fails" .* exited with status 3/);
  assert.equal(e.detail, 'standard error: sso session expired; run aws sso login');
  assertNoSecret(e);   // it printed the keys before failing
  const m = await expectError(c, `SELECT * FROM billops.credentials_check('profile:proc-missing')`);
  assert.equal(m.code, '38000');
  assert.match(m.message, /exited with status 127/);
  assert.match(m.hint, /not found/);
  // the timeout kills it (and its process group)
  await db.query('ALTER SYSTEM SET billops.aws_credential_process_timeout = 1');
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
  const c2 = await connect();
  const t0 = Date.now();
  const t = await expectError(c2, `SELECT * FROM billops.credentials_check('profile:proc-sleeps')`);
  assert.equal(t.code, '38000');
  assert.match(t.message, /did not finish within 1 s and was killed/);
  assert.ok(Date.now() - t0 < 10000);
  const pid = Number(fs.readFileSync(path.join(DIR, 'sleeper.pid'), 'utf8'));
  assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the program is gone');
  await db.query('ALTER SYSTEM RESET billops.aws_credential_process_timeout');
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
  // cancel while it runs: prompt, and the program is killed
  const c3 = await connect();
  fs.rmSync(path.join(DIR, 'sleeper.pid'), { force: true });
  const { rows: [{ pid: backend }] } = await c3.query('SELECT pg_backend_pid() AS pid');
  const running = expectError(c3, `SELECT * FROM billops.credentials_check('profile:proc-sleeps')`);
  for (let i = 0; i < 100 && !fs.existsSync(path.join(DIR, 'sleeper.pid')); i++) await sleep(50);
  const t1 = Date.now();
  await db.query('SELECT pg_cancel_backend($1)', [backend]);
  const cancelled = await running;
  assert.equal(cancelled.code, '57014');
  assert.ok(Date.now() - t1 < 3000, 'cancel is prompt');
  const pid2 = Number(fs.readFileSync(path.join(DIR, 'sleeper.pid'), 'utf8'));
  await sleep(100);
  assert.throws(() => process.kill(pid2, 0), /ESRCH/, 'the cancelled program is gone');
  await c.end(); await c2.end(); await c3.end();
});

test("within a profile: the credentials file's keys, then credential_process, then the config file's keys (botocore's order)", async () => {
  const c = await connect();
  const k = await check(c, 'keys-win');
  assert.match(k.origin, /^profile "keys-win" in .*aws-credentials-process"$/);
  const p = await check(c, 'process-wins');
  assert.match(p.origin, /^credential_process of profile "process-wins"/);
  assert.equal(p.access_key_id, '****SION');
  await c.end();
});

test('no secret a program printed reaches the server log', async () => {
  const log = fs.readFileSync(LOG, 'utf8');
  for (const s of SECRETS) assert.ok(!log.includes(s), 'the server log holds no secret');
});
