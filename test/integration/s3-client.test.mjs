// The S3 client itself: ListObjectsV2 pagination, keys that need careful
// encoding, and TLS verification (a self-signed peer is refused unless
// billops.ca_bundle names its certificate).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import https from 'node:https';
import { execFileSync } from 'node:child_process';
import { connect, closeAll, freshDatabase, expectError, bucketDir, S3, RUN } from './helpers.mjs';

let db;
before(async () => {
  db = await freshDatabase('billops_it_client');
});
after(async () => { await closeAll(); });

test('ListObjectsV2 pages through more than 1000 keys, with and without a delimiter', async () => {
  const dir = path.join(bucketDir('many-bucket'), 'cur', 'many');
  for (let d = 0; d < 3; d++) {
    fs.mkdirSync(path.join(dir, `folder-${d}`), { recursive: true });
    for (let i = 0; i < 900; i++) fs.writeFileSync(path.join(dir, `folder-${d}`, `k-${String(i).padStart(4, '0')}`), '');
  }
  const { rows: [{ id }] } = await db.query(
    `SELECT billops.create_cur_source('many', 'many-bucket', 'many', prefix => 'cur', endpoint_url => $1, path_style => true) AS id`, [S3]);
  const { rows: all } = await db.query(`SELECT count(*)::int AS n, count(DISTINCT key)::int AS d FROM billops._s3_list($1, 'cur/many/')`, [id]);
  assert.equal(all[0].n, 2700, 'every key, across three pages');
  assert.equal(all[0].d, 2700, 'no key twice');
  const { rows: pre } = await db.query(
    `SELECT key FROM billops._s3_list($1, 'cur/many/', '/') WHERE is_prefix ORDER BY key`, [id]);
  assert.deepEqual(pre.map((r) => r.key), ['cur/many/folder-0/', 'cur/many/folder-1/', 'cur/many/folder-2/']);
});

test('keys with "=", "+", spaces and UTF-8 are signed and fetched correctly', async () => {
  const dir = path.join(bucketDir('odd-bucket'), 'data', 'BILLING_PERIOD=2024-01');
  fs.mkdirSync(dir, { recursive: true });
  const name = 'a b+c=d ü.json';
  fs.writeFileSync(path.join(dir, name), '{"ok": true}');
  const { rows: [{ id }] } = await db.query(
    `SELECT billops.create_cur_source('odd', 'odd-bucket', 'odd', endpoint_url => $1, path_style => true) AS id`, [S3]);
  const { rows } = await db.query(`SELECT key FROM billops._s3_list($1, 'data/')`, [id]);
  assert.deepEqual(rows.map((r) => r.key), [`data/BILLING_PERIOD=2024-01/${name}`]);
  const { rows: body } = await db.query(`SELECT billops._s3_get_text($1, $2) AS t`, [id, rows[0].key]);
  assert.equal(body[0].t, '{"ok": true}');
});

test('TLS is verified: a self-signed peer is refused, and trusted through billops.ca_bundle', async () => {
  // a throwaway certificate for 127.0.0.1, readable by the server account
  const dir = fs.mkdtempSync(path.join(RUN, 'tls-'));
  fs.chmodSync(dir, 0o755);
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  fs.chmodSync(cert, 0o644);
  // answers every request the way S3 answers an unsigned one
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    res.writeHead(403, { 'content-type': 'application/xml' });
    res.end('<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${server.address().port}`;
  try {
    await db.query(`SELECT billops.create_cur_source('tls', 'tls-bucket', 'r', endpoint_url => $1, path_style => true)`, [url]);
    const refused = await expectError(db, `CALL billops.sync_cur_source('tls')`);
    assert.equal(refused.code, '58030', `untrusted certificate: ${refused.message}`);
    assert.match(refused.message, /SSL|certificate/i, 'the error says it is about the certificate');

    await db.query(`ALTER SYSTEM SET billops.ca_bundle = '${cert}'`);
    await db.query('SELECT pg_reload_conf()');
    await new Promise((r) => setTimeout(r, 300));
    const c = await connect();
    try {
      const trusted = await expectError(c, `CALL billops.sync_cur_source('tls')`);
      assert.equal(trusted.code, '28000', `with the CA bundle the TLS handshake succeeds and S3's answer comes through (${trusted.message})`);
      assert.match(trusted.message, /AccessDenied/);
    } finally {
      await c.end();
    }
  } finally {
    await db.query('ALTER SYSTEM RESET billops.ca_bundle');
    await db.query('SELECT pg_reload_conf()');
    server.close();
  }
});
