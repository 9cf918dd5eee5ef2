// Endpoints configured the way AWS's SDKs configure them (src/aws_endpoint.c):
// AWS's own test vectors (aws-cli's configured_endpoint_urls/profile-tests.json,
// vendored in vectors/) run against billops.aws_endpoint, the server restarted
// with each of their environments; then S3 and Cost Explorer calls go where the
// environment and the config file say, with no endpoint in pg_billops' tables.
// The server is restarted as it was at the end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pgCtlEnv } from './bill-harness.mjs';
import { connect, closeAll, freshDatabase, expectError, generate, bucketDir, S3, S3_ROOT, RUN } from './helpers.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SUITE = JSON.parse(fs.readFileSync(path.join(HERE, 'vectors', 'aws-cli-configured-endpoint-urls.json'), 'utf8')).testSuites[0];
const CONFIG = path.join(RUN ?? '/tmp', 'aws-config-endpoints');
const LOG = path.join(RUN ?? '/tmp', 'log', 'postgres.log');
const DB = 'billops_it_endpoints';

// The vectors test S3 and DynamoDB; pg_billops calls no DynamoDB, so its two cases ask for
// Cost Explorer instead, with DynamoDB's settings renamed to Cost Explorer's identifiers
// (AWS_ENDPOINT_URL_COST_EXPLORER, services key cost_explorer): the same question (one
// service's setting does not leak into another's) for a service pg_billops has.
const SERVICE = { s3: 's3', dynamodb: 'ce' };
const renameVar = (k) => k.replace('AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_COST_EXPLORER');
const renameKey = (k) => (k === 'dynamodb' ? 'cost_explorer' : k);

// The config file of every profile and services section of the suite, written as aws-cli's
// runner writes it (test_configured_endpoint_url.py: nested settings indented under "key =").
function configFile() {
  let out = '';
  for (const [name, settings] of Object.entries(SUITE.profiles)) {
    out += name === 'default' ? '[default]\n' : `[profile ${name}]\n`;
    for (const [k, v] of Object.entries(settings)) out += `${k}=${v}\n`;
    out += '\n';
  }
  for (const [name, services] of Object.entries(SUITE.services)) {
    out += `[services ${name}]\n`;
    for (const [svc, settings] of Object.entries(services)) {
      out += `${renameKey(svc)} =\n`;
      for (const [k, v] of Object.entries(settings)) out += `  ${k}=${v}\n`;
    }
    out += '\n';
  }
  return out;
}

let admin;
async function restartWith(env) {
  await closeAll();
  pgCtlEnv({}, '-m', 'fast', 'stop');
  pgCtlEnv(env, '-l', LOG, '-w', 'start');
  admin = await connect();
}

before(async () => {
  fs.writeFileSync(CONFIG, configFile(), { mode: 0o644 });
  admin = await freshDatabase(DB);
  await admin.query(`ALTER SYSTEM SET billops.aws_config_file = '${CONFIG}'`);
});
after(async () => {
  await admin?.query('ALTER SYSTEM RESET billops.aws_config_file').catch(() => {});
  await closeAll();
  pgCtlEnv({}, '-m', 'fast', 'stop');
  pgCtlEnv({}, '-l', LOG, '-w', 'start');
});

test("AWS's configured-endpoint test vectors (aws-cli): every case pg_billops can express gives AWS's answer", async () => {
  // Two cases set ignore_configured_endpoint_urls on the client object itself; pg_billops
  // has no such per-call switch (the variable and the profile setting are covered by
  // other cases), and aws-cli's own runner skips those two for the same reason.
  const cases = SUITE.endpointUrlTests.filter((t) => !('ignore_configured_endpoint_urls' in SUITE.client_configs[t.client_config]));
  assert.equal(cases.length, SUITE.endpointUrlTests.length - 2);
  const byEnv = Map.groupBy ? Map.groupBy(cases, (t) => t.environment)
    : cases.reduce((m, t) => m.set(t.environment, [...(m.get(t.environment) ?? []), t]), new Map());
  let ran = 0;
  const failures = [];
  for (const [envName, envCases] of byEnv) {
    const env = Object.fromEntries(Object.entries(SUITE.environments[envName]).map(([k, v]) => [renameVar(k), v]));
    await restartWith(env);
    for (const t of envCases) {
      const profile = SUITE.profiles[t.profile];
      const explicit = SUITE.client_configs[t.client_config].endpoint_url ?? null;
      const { rows: [r] } = await admin.query('SELECT * FROM billops.aws_endpoint($1, $2, $3, $4)',
        [SERVICE[t.service], `profile:${t.profile}`, profile.region, explicit]);
      ran++;
      if (r.endpoint_url !== t.output.endpointUrl) failures.push(`${t.name}: got ${r.endpoint_url} (${r.configured_by}), AWS says ${t.output.endpointUrl}`);
    }
  }
  assert.equal(ran, cases.length);
  assert.deepEqual(failures, []);
});

test('S3 and Cost Explorer go where the environment and the config file say; the source names no endpoint', async () => {
  await fs.promises.writeFile(CONFIG, `${configFile()}
[profile routed]
services = routed-endpoints
endpoint_url = ${process.env.AWS_API_ENDPOINT}

[services routed-endpoints]
cost_explorer =
  endpoint_url = ${process.env.AWS_API_ENDPOINT}/
`, { mode: 0o644 });
  assert.ok(process.env.AWS_API_ENDPOINT, 'the AWS API emulator runs (test/run-tests.sh)');
  // S3 through AWS_ENDPOINT_URL_S3: a CUR source with no endpoint_url syncs from the emulator
  await restartWith({ AWS_ENDPOINT_URL_S3: S3 });
  const where = (await admin.query(`SELECT * FROM billops.aws_endpoint('s3')`)).rows[0];
  assert.deepEqual(where, { endpoint_url: S3, configured_by: 'AWS_ENDPOINT_URL_S3' });
  bucketDir('endpoint-bucket');
  generate(['--out', S3_ROOT, '--bucket', 'endpoint-bucket', '--prefix', 'cur', '--report', 'ep',
    '--layout', 'legacy', '--period', '2024-02', '--rows', '800', '--payer', '9', '--seed', '41']);
  await admin.query(`SELECT billops.create_cur_source('ep', 'endpoint-bucket', 'ep', prefix => 'cur', path_style => true)`);
  await admin.query(`CALL billops.sync_cur_source('ep')`);
  const { rows: [d] } = await admin.query(`SELECT status, rows_loaded FROM billops.cur_delivery ORDER BY delivery_id DESC LIMIT 1`);
  assert.equal(d.status, 'loaded');
  assert.equal(Number(d.rows_loaded), 800);
  const { rows: [src] } = await admin.query(`SELECT endpoint_url FROM billops.cur_source WHERE name = 'ep'`);
  assert.equal(src.endpoint_url, null, 'no endpoint stored with the source');

  // Cost Explorer through the services section of the credentials' profile; the ledger says ok
  const { rows: [ce] } = await admin.query(`SELECT * FROM billops.aws_endpoint('ce', 'profile:routed')`);
  assert.equal(ce.endpoint_url, process.env.AWS_API_ENDPOINT);
  assert.match(ce.configured_by, /^cost_explorer endpoint_url of \[services routed-endpoints\]/);
  const { rows: [inv] } = await admin.query(`SELECT * FROM billops.aws_endpoint('invoicing', 'profile:routed')`);
  assert.match(inv.configured_by, /^endpoint_url of profile "routed"/);
  await admin.query(`INSERT INTO billops.aws_api_source (payer_account_id) VALUES ('444455556666')`);
  const { rows: [srcRow] } = await admin.query(`SELECT cost_explorer_url, invoicing_url FROM billops.aws_api_source`);
  assert.deepEqual(srcRow, { cost_explorer_url: null, invoicing_url: null });
  // 'default' has no services section: with no variable set, Cost Explorer's own endpoint
  const { rows: [def] } = await admin.query(`SELECT * FROM billops.aws_endpoint('ce')`);
  assert.deepEqual(def, { endpoint_url: 'https://ce.us-east-1.amazonaws.com', configured_by: "the service's default endpoint" });
  // a call through AWS_ENDPOINT_URL_COST_EXPLORER (the server restarted with it): the emulator answers
  await restartWith({ AWS_ENDPOINT_URL_COST_EXPLORER: process.env.AWS_API_ENDPOINT });
  const { rows: [call] } = await admin.query(`SELECT (billops._aws_api_call(NULL, 'us-east-1', 'default', 'ce', 'GetAnomalies',
                                                '{"DateInterval": {"StartDate": "2024-01-01", "EndDate": "2024-01-31"}}')).response`);
  assert.ok(call.response && 'Anomalies' in call.response, 'Cost Explorer answered');
  const fetched = (await admin.query(`SELECT * FROM billops.fetch_ce_anomalies('444455556666', '2024-01-01', '2024-01-31')`)).rows[0];
  assert.equal(fetched.status, 'fetched', JSON.stringify(fetched));
});

test('a configured endpoint is held to the same rules as a stored one: https, or http to loopback only', async () => {
  await fs.promises.writeFile(CONFIG, `[default]
endpoint_url = http://billing.example.com
`, { mode: 0o644 });
  await restartWith({});
  const e = await expectError(admin, `SELECT billops._aws_api_call(NULL, 'us-east-1', 'default', 'ce', 'GetAnomalies', '{}')`);
  assert.match(e.message, /http:\/\/billing\.example\.com/);
  assert.notEqual(e.code, 'XX000');
  // AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: back to AWS's own endpoint
  await restartWith({ AWS_IGNORE_CONFIGURED_ENDPOINT_URLS: 'true' });
  const { rows: [r] } = await admin.query(`SELECT * FROM billops.aws_endpoint('invoicing')`);
  assert.equal(r.endpoint_url, 'https://invoicing.us-east-1.api.aws');
  const bad = await expectError(admin, `SELECT * FROM billops.aws_endpoint('dynamodb')`);
  assert.equal(bad.code, '22023');
});
