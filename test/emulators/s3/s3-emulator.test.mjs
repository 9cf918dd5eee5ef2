// Self-test of the S3 emulator: node --test test/emulators/s3/
// Requests are signed by @smithy/signature-v4's own signRequest(), as the AWS SDK does.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { SignatureV4 } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { escapeUri, escapeUriPath } from '@smithy/core/protocols';
import { Sha256 } from '@aws-crypto/sha256-js';
import {
  createS3Emulator, computeSignature, percentDecode, parseQuery, collectHeaders, DEFAULT_KEYS,
} from './server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SIGV4_SUITE = path.resolve(HERE, '../../../../shared/testdata/sigv4');
const KEY = DEFAULT_KEYS[0];
const SESSION = { accessKeyId: 'ASIASESSION', secretAccessKey: 'session-secret', sessionToken: 'tok/en+==' };
const EXPIRED = { accessKeyId: 'ASIAEXPIRED', secretAccessKey: 'expired-secret', sessionToken: 'old-token', expired: true };
const ODD_KEY = 'cur/BILLING_PERIOD=2024-01/a b+c.csv.gz';

let tmp;
let emu;
let port;
const blob = crypto.randomBytes(100_000);
const oddBody = crypto.randomBytes(5000);

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 's3emu-'));
  const root = path.join(tmp, 'root');
  const put = (rel, data) => {
    const f = path.join(root, rel);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, data);
  };
  put(`billing/${ODD_KEY}`, oddBody);
  put('billing/cur/report-Manifest.json', '{"reportKeys":[]}');
  put('billing/data/blob.bin', blob);
  put('billing/empty.txt', '');
  for (let i = 0; i < 1100; i++) put(`many/flat/f${String(i).padStart(4, '0')}.csv`, `row ${i}\n`);
  for (let i = 0; i < 1050; i++) put(`many/nested/g${String(i).padStart(4, '0')}/a.txt`, 'x');
  put('many/nested/top.txt', 'top');
  for (const k of ['a', '\uFF21', '\u{1F600}']) put(`many/order/${k}`, k);
  fs.writeFileSync(path.join(tmp, 'outside.txt'), 'secret outside the root');
  fs.symlinkSync(path.join(tmp, 'outside.txt'), path.join(root, 'billing', 'link.txt'));
  emu = createS3Emulator({
    root, keys: [KEY, SESSION, EXPIRED], endpointHost: 's3.localhost', region: 'us-east-1',
  });
  port = await emu.listen(0, '127.0.0.1');
});

after(async () => {
  await emu?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// --- a tiny S3 client on top of smithy's signer ---------------------------------------

function rawSend({ method = 'GET', target, headers = {}, body }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      const chunks = [];
      let aborted = false;
      res.on('data', (c) => chunks.push(c));
      res.on('aborted', () => { aborted = true; });
      res.on('error', () => { aborted = true; });
      res.on('close', () => resolve({
        status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks), aborted: aborted || !res.complete,
        text() { return this.body.toString('utf8'); },
      }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

// key: unencoded object key (encoded here like the AWS SDK does), or wirePath to send a
// path exactly as given (signed as given unless signPath says otherwise).
// query: { name: decodedValue }, sent encoded unless wireQuery gives the raw string.
async function s3({
  method = 'GET', bucket = 'billing', key, wirePath, signPath, query = {}, wireQuery, vhost = false, creds = KEY,
  date = new Date(), region = 'us-east-1', headers = {}, unsignable, drop = [], mutate, body,
}) {
  const host = vhost ? `${bucket}.s3.localhost:${port}` : `127.0.0.1:${port}`;
  const p = wirePath ?? (vhost ? '' : `/${bucket}`) + (key !== undefined ? `/${escapeUriPath(key)}` : (vhost ? '/' : ''));
  const signer = new SignatureV4({ credentials: creds, region, service: 's3', sha256: Sha256, uriEscapePath: false });
  const req = new HttpRequest({
    method, hostname: host, path: signPath ?? p, query, body,
    headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', ...headers },
  });
  const signed = await signer.sign(req, { signingDate: date, unsignableHeaders: unsignable });
  for (const h of drop) delete signed.headers[h];
  mutate?.(signed.headers);
  const qs = wireQuery ?? Object.entries(query).map(([k, v]) => (v === '' ? escapeUri(k) : `${escapeUri(k)}=${escapeUri(v)}`)).join('&');
  return rawSend({ method, target: p + (qs ? `?${qs}` : ''), headers: signed.headers, body });
}

const tag = (xml, name) => { const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(xml); return m && m[1]; };
const tags = (xml, name) => [...xml.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))].map((m) => m[1]);
const unxml = (s) => s.replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');
const md5 = (b) => `"${crypto.createHash('md5').update(b).digest('hex')}"`;

function assertError(r, status, code) {
  assert.equal(r.status, status, r.text());
  assert.equal(tag(r.text(), 'Code'), code, r.text());
  assert.match(r.text(), /^<\?xml version="1.0" encoding="UTF-8"\?>\n<Error><Code>/);
  assert.ok(tag(r.text(), 'RequestId'));
  assert.equal(r.headers['x-amz-request-id'], tag(r.text(), 'RequestId'));
}

async function control(method, what, json) {
  const body = json === undefined ? undefined : JSON.stringify(json);
  const r = await rawSend({ method, target: `/_emulator/${what}`, headers: { 'content-type': 'application/json' }, body });
  return { status: r.status, json: JSON.parse(r.text()) };
}

// --- the official SigV4 test suite through the verifier --------------------------------

function parseSignedRequest(text) {
  const [head, ...bodyParts] = text.split(/\r?\n\r?\n/);
  const lines = head.split(/\r?\n/);
  const [method, target] = lines[0].split(' ').length > 3
    ? [lines[0].split(' ')[0], lines[0].slice(lines[0].indexOf(' ') + 1, lines[0].lastIndexOf(' '))]
    : lines[0].split(' ');
  const raw = [];
  for (const line of lines.slice(1)) {
    if (/^[ \t]/.test(line)) { raw[raw.length - 1] += `\n${line}`; continue; } // obs-fold
    const c = line.indexOf(':');
    raw.push(line.slice(0, c), line.slice(c + 1).trim());
  }
  return { method, target, rawHeaders: raw, body: bodyParts.join('\n\n') };
}

test('SigV4 official suite: verifier reproduces canonical requests and signatures', async (t) => {
  if (!fs.existsSync(SIGV4_SUITE)) { t.skip(`no suite at ${SIGV4_SUITE}`); return; }
  // S3 never normalises paths, so of normalize-path only the encoding cases apply.
  const cases = [];
  for (const d of fs.readdirSync(SIGV4_SUITE)) {
    if (d === 'normalize-path') {
      for (const n of ['get-space', 'get-special-character']) cases.push(path.join(SIGV4_SUITE, d, n));
    } else if (d === 'post-sts-token') {
      for (const n of fs.readdirSync(path.join(SIGV4_SUITE, d))) if (!n.endsWith('.txt')) cases.push(path.join(SIGV4_SUITE, d, n));
    } else if (fs.statSync(path.join(SIGV4_SUITE, d)).isDirectory()) {
      cases.push(path.join(SIGV4_SUITE, d));
    }
  }
  assert.ok(cases.length >= 25);
  for (const dir of cases) {
    const name = path.basename(dir);
    const read = (ext) => fs.readFileSync(path.join(dir, `${name}.${ext}`), 'utf8');
    const req = parseSignedRequest(read('sreq'));
    const headers = collectHeaders(req.rawHeaders);
    const m = /Credential=[^/]+\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]+)/.exec(read('authz'));
    const [, region, service, signedHeaders, expectedSig] = m;
    const q = req.target.indexOf('?');
    const rawPath = q < 0 ? req.target : req.target.slice(0, q);
    const got = await computeSignature({
      method: req.method,
      canonicalPath: escapeUriPath(percentDecode(rawPath)),
      query: parseQuery(q < 0 ? '' : req.target.slice(q + 1)),
      headers, signedHeaders: signedHeaders.split(';'),
      payloadHash: crypto.createHash('sha256').update(req.body).digest('hex'),
      accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
      region, service, longDate: headers['x-amz-date'],
    });
    assert.equal(got.canonicalRequest, read('creq').replace(/\r\n/g, '\n'), name);
    assert.equal(got.signature, expectedSig, name);
  }
});

// --- authentication ----------------------------------------------------------------

test('a request signed by smithy passes, path-style and virtual-hosted, with = space + in the key', async () => {
  for (const vhost of [false, true]) {
    const r = await s3({ key: ODD_KEY, vhost });
    assert.equal(r.status, 200, r.text());
    assert.ok(r.body.equals(oddBody));
    assert.equal(r.headers.etag, md5(oddBody));
    assert.equal(r.headers['content-length'], String(oddBody.length));
    assert.equal(r.headers['content-type'], 'application/x-gzip');
    assert.equal(r.headers['accept-ranges'], 'bytes');
    assert.match(r.headers['last-modified'], /^\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/);
    assert.match(r.headers['x-amz-request-id'], /^[0-9A-F]{16}$/);
  }
  // Virtual-hosted listing of the same key
  const l = await s3({ vhost: true, query: { 'list-type': '2', prefix: 'cur/BILLING_PERIOD=2024-01/' } });
  assert.equal(l.status, 200, l.text());
  assert.deepEqual(tags(l.text(), 'Key'), [ODD_KEY]);
});

test('= and + left raw on the wire behave like real S3 (canonical URI re-encoded, + is a space)', async () => {
  // Signed over the raw path: S3 canonicalises to %3D, so the signature cannot match.
  const raw = '/billing/cur/BILLING_PERIOD=2024-01/report-Manifest.json';
  const r = await s3({ wirePath: raw.replace('report-Manifest.json', 'x') });
  assertError(r, 403, 'SignatureDoesNotMatch');
  assert.match(tag(r.text(), 'CanonicalRequest'), /BILLING_PERIOD%3D2024-01/);
  assert.equal(tag(r.text(), 'AWSAccessKeyId'), KEY.accessKeyId);
  assert.ok(tag(r.text(), 'StringToSign').startsWith('AWS4-HMAC-SHA256\n'));
  assert.match(tag(r.text(), 'SignatureProvided'), /^[0-9a-f]{64}$/);
  assert.match(tag(r.text(), 'CanonicalRequestBytes'), /^47 45 54 0a /);

  // A raw '+' is read as a space, in the path and in the query (S3's legacy decoding).
  const plus = '/billing/cur/BILLING_PERIOD%3D2024-01/a%20b+c.csv.gz';
  const p = await s3({ wirePath: plus, signPath: plus.replace('+', '%20') });
  assertError(p, 404, 'NoSuchKey');
  assert.equal(tag(p.text(), 'Key'), 'cur/BILLING_PERIOD=2024-01/a b c.csv.gz');
  const q = await s3({
    query: { 'list-type': '2', prefix: 'cur/BILLING_PERIOD=2024-01/a b' },
    wireQuery: 'list-type=2&prefix=cur%2FBILLING_PERIOD%3D2024-01%2Fa+b',
  });
  assert.equal(q.status, 200, q.text());
  assert.deepEqual(tags(q.text(), 'Key'), [ODD_KEY]);
});

test('bad credentials and bad signatures fail with the S3 error codes', async () => {
  const obj = { key: 'cur/report-Manifest.json' };
  const tampered = await s3({ ...obj, mutate: (h) => { h.authorization = h.authorization.replace(/.$/, (c) => (c === '0' ? '1' : '0')); } });
  assertError(tampered, 403, 'SignatureDoesNotMatch');

  assertError(await s3({ ...obj, creds: { ...KEY, secretAccessKey: 'wrong' } }), 403, 'SignatureDoesNotMatch');

  const unknown = await s3({ ...obj, creds: { accessKeyId: 'AKIDNOBODY', secretAccessKey: 'x' } });
  assertError(unknown, 403, 'InvalidAccessKeyId');
  assert.equal(tag(unknown.text(), 'Message'), 'The AWS Access Key Id you provided does not exist in our records.');
  assert.equal(tag(unknown.text(), 'AWSAccessKeyId'), 'AKIDNOBODY');

  const stale = await s3({ ...obj, date: new Date(Date.now() - 20 * 60 * 1000) });
  assertError(stale, 403, 'RequestTimeTooSkewed');
  assert.equal(tag(stale.text(), 'MaxAllowedSkewMilliseconds'), '900000');
  assertError(await s3({ ...obj, date: new Date(Date.now() + 16 * 60 * 1000) }), 403, 'RequestTimeTooSkewed');
  assert.equal((await s3({ ...obj, date: new Date(Date.now() - 10 * 60 * 1000) })).status, 200);

  const noSha = await s3({ ...obj, drop: ['x-amz-content-sha256'], mutate: (h) => { h.authorization = h.authorization.replace('x-amz-content-sha256;', ''); } });
  assertError(noSha, 400, 'InvalidRequest');
  assert.equal(tag(noSha.text(), 'Message'), 'Missing required header for this request: x-amz-content-sha256');

  const anon = await rawSend({ target: '/billing/cur/report-Manifest.json' });
  assertError(anon, 403, 'AccessDenied');
  assert.equal(tag(anon.text(), 'Message'), 'Access Denied');

  const region = await s3({ ...obj, region: 'eu-west-1' });
  assertError(region, 400, 'AuthorizationHeaderMalformed');
  assert.equal(tag(region.text(), 'Region'), 'us-east-1');
  assertError(await s3({ ...obj, mutate: (h) => { h.authorization = h.authorization.replace('/s3/aws4_request', '/s3'); } }), 400, 'AuthorizationHeaderMalformed');
  assertError(await s3({ ...obj, mutate: (h) => { h.authorization = h.authorization.replace(/, Signature=.*/, ''); } }), 400, 'AuthorizationHeaderMalformed');

  const badSha = await s3({ ...obj, headers: { 'x-amz-content-sha256': 'a'.repeat(64) } });
  assertError(badSha, 400, 'XAmzContentSHA256Mismatch');
  assert.equal(tag(badSha.text(), 'S3ComputedContentSHA256'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  // The real hash of the (empty) body is accepted.
  assert.equal((await s3({ ...obj, headers: { 'x-amz-content-sha256': 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' } })).status, 200);

  const unsignedAmz = await s3({ ...obj, headers: { 'x-amz-meta-extra': 'v' }, unsignable: new Set(['x-amz-meta-extra']) });
  assertError(unsignedAmz, 403, 'AccessDenied');
  assert.equal(tag(unsignedAmz.text(), 'HeadersNotSigned'), 'x-amz-meta-extra');
  // Headers outside SignedHeaders that S3 does not require signed are fine.
  assert.equal((await s3({ ...obj, headers: { 'x-custom': 'whatever' }, unsignable: new Set(['x-custom']) })).status, 200);
});

test('signed header values: spaces collapsed and trimmed like S3; user-agent can be signed', async () => {
  const r = await s3({
    key: 'cur/report-Manifest.json',
    headers: { 'x-amz-meta-spaces': '  a    b \t c  ' },
  });
  assert.equal(r.status, 200, r.text());
  // smithy leaves user-agent unsigned by default; some clients sign it, and S3 accepts that.
  const signer = new SignatureV4({ credentials: KEY, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
  const host = `127.0.0.1:${port}`;
  const signed = await signer.sign(new HttpRequest({
    method: 'GET', hostname: host, path: '/billing/empty.txt',
    headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'user-agent': 'pg_billops/0.1' },
  }), { signableHeaders: new Set(['user-agent']) });
  assert.match(signed.headers.authorization, /SignedHeaders=host;user-agent;/);
  const r2 = await rawSend({ target: '/billing/empty.txt', headers: signed.headers });
  assert.equal(r2.status, 200, r2.text());
  assert.equal(r2.body.length, 0);
});

test('session tokens: missing or wrong token -> InvalidToken, expired key -> ExpiredToken', async () => {
  const obj = { key: 'cur/report-Manifest.json' };
  assert.equal((await s3({ ...obj, creds: SESSION })).status, 200);
  const { sessionToken, ...noToken } = SESSION;
  assertError(await s3({ ...obj, creds: noToken }), 400, 'InvalidToken');
  assertError(await s3({ ...obj, creds: { ...SESSION, sessionToken: 'other' } }), 400, 'InvalidToken');
  const expired = await s3({ ...obj, creds: EXPIRED });
  assertError(expired, 400, 'ExpiredToken');
  assert.equal(tag(expired.text(), 'Message'), 'The provided token has expired.');
});

test('other methods -> 405 MethodNotAllowed; unknown bucket/key -> NoSuchBucket/NoSuchKey', async () => {
  const put = await s3({ method: 'PUT', key: 'x', body: 'data' });
  assertError(put, 405, 'MethodNotAllowed');
  assert.equal(put.headers.allow, 'GET, HEAD');
  const nb = await s3({ bucket: 'nope', key: 'x' });
  assertError(nb, 404, 'NoSuchBucket');
  assert.equal(tag(nb.text(), 'BucketName'), 'nope');
  const nk = await s3({ key: 'cur/missing.csv' });
  assertError(nk, 404, 'NoSuchKey');
  assert.equal(tag(nk.text(), 'Key'), 'cur/missing.csv');
  assert.equal(tag(nk.text(), 'Message'), 'The specified key does not exist.');
  const head = await s3({ method: 'HEAD', key: 'cur/missing.csv' });
  assert.equal(head.status, 404);
  assert.equal(head.body.length, 0);
});

test('keys cannot escape the bucket or the root', async () => {
  // Correctly signed (over S3's canonical form of the path), so only the lookup can refuse.
  const canonical = (p) => escapeUriPath(percentDecode(p));
  for (const wirePath of ['/billing/../outside.txt', '/billing/..%2F..%2Foutside.txt', '/billing/cur/%2E%2E/%2E%2E/%2E%2E/outside.txt']) {
    const r = await s3({ wirePath, signPath: canonical(wirePath) });
    assertError(r, 404, 'NoSuchKey');
    assert.ok(!r.text().includes('secret outside'), wirePath);
  }
  assertError(await s3({ key: 'link.txt' }), 404, 'NoSuchKey'); // symlink out of the root
  const up = '/%2E%2E/outside.txt';
  assertError(await s3({ wirePath: up, signPath: canonical(up) }), 404, 'NoSuchBucket');
});

// --- GetObject / HeadObject ----------------------------------------------------------

test('HeadObject returns the GetObject headers and no body', async () => {
  const r = await s3({ method: 'HEAD', key: 'data/blob.bin' });
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-length'], String(blob.length));
  assert.equal(r.headers.etag, md5(blob));
  assert.equal(r.body.length, 0);
});

test('Range requests', async () => {
  const get = (range) => s3({ key: 'data/blob.bin', headers: { range } });
  let r = await get('bytes=10-19');
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 10-19/${blob.length}`);
  assert.equal(r.headers['content-length'], '10');
  assert.ok(r.body.equals(blob.subarray(10, 20)));
  r = await get('bytes=99990-');
  assert.equal(r.status, 206);
  assert.ok(r.body.equals(blob.subarray(99990)));
  r = await get('bytes=-5');
  assert.equal(r.headers['content-range'], `bytes ${blob.length - 5}-${blob.length - 1}/${blob.length}`);
  assert.ok(r.body.equals(blob.subarray(-5)));
  r = await get('bytes=99000-200000'); // end beyond the object is clamped
  assert.equal(r.status, 206);
  assert.equal(r.body.length, 1000);
  r = await get(`bytes=${blob.length}-`);
  assertError(r, 416, 'InvalidRange');
  assert.equal(tag(r.text(), 'ActualObjectSize'), String(blob.length));
  assertError(await s3({ key: 'empty.txt', headers: { range: 'bytes=0-' } }), 416, 'InvalidRange');
});

test('If-Match / If-None-Match', async () => {
  const etag = md5(blob);
  const bad = await s3({ key: 'data/blob.bin', headers: { 'if-match': '"0123"' } });
  assertError(bad, 412, 'PreconditionFailed');
  assert.equal(tag(bad.text(), 'Condition'), 'If-Match');
  assert.equal((await s3({ key: 'data/blob.bin', headers: { 'if-match': etag } })).status, 200);
  const nm = await s3({ key: 'data/blob.bin', headers: { 'if-none-match': etag } });
  assert.equal(nm.status, 304);
  assert.equal(nm.body.length, 0);
  assert.equal(nm.headers.etag, etag);
  assert.equal((await s3({ key: 'data/blob.bin', headers: { 'if-none-match': '"other"' } })).status, 200);
});

// --- ListObjectsV2 -------------------------------------------------------------------

async function listAll(bucket, query) {
  const pages = [];
  let token;
  for (let i = 0; i < 100; i++) {
    const r = await s3({ bucket, query: { 'list-type': '2', ...query, ...(token && { 'continuation-token': token }) } });
    assert.equal(r.status, 200, r.text());
    const x = r.text();
    pages.push({
      keys: tags(x, 'Key').map(unxml), prefixes: [...x.matchAll(/<CommonPrefixes><Prefix>([^<]*)<\/Prefix><\/CommonPrefixes>/g)].map((m) => unxml(m[1])),
      keyCount: Number(tag(x, 'KeyCount')), truncated: tag(x, 'IsTruncated') === 'true', xml: x,
    });
    token = tag(x, 'NextContinuationToken');
    assert.equal(pages.at(-1).truncated, Boolean(token));
    if (!token) break;
    token = unxml(token);
  }
  return pages;
}

test('ListObjectsV2 paginates > 1000 keys without a delimiter', async () => {
  const pages = await listAll('many', { prefix: 'flat/' });
  assert.deepEqual(pages.map((p) => p.keys.length), [1000, 100]);
  assert.deepEqual(pages.map((p) => p.keyCount), [1000, 100]);
  const all = pages.flatMap((p) => p.keys);
  assert.deepEqual(all, Array.from({ length: 1100 }, (_, i) => `flat/f${String(i).padStart(4, '0')}.csv`));
  const x = pages[0].xml;
  assert.match(x, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<ListBucketResult xmlns="http:\/\/s3.amazonaws.com\/doc\/2006-03-01\/">/);
  assert.equal(tag(x, 'Name'), 'many');
  assert.equal(tag(x, 'MaxKeys'), '1000');
  assert.match(x, /<Contents><Key>flat\/f0000.csv<\/Key><LastModified>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z<\/LastModified><ETag>&quot;[0-9a-f]{32}&quot;<\/ETag><Size>6<\/Size><StorageClass>STANDARD<\/StorageClass><\/Contents>/);
  // tokens hold '+' and '/' like real S3 ones, so clients must percent-encode them
  assert.match(tag(pages[0].xml, 'NextContinuationToken'), /^\+\+\/\//);
  assert.equal(tag(pages[1].xml, 'ContinuationToken'), tag(pages[0].xml, 'NextContinuationToken'));

  // small pages over the whole bucket give the same keys as one big listing
  const small = await listAll('many', { 'max-keys': '333' });
  const big = await listAll('many', {});
  assert.deepEqual(small.flatMap((p) => p.keys), big.flatMap((p) => p.keys));
  assert.equal(big.flatMap((p) => p.keys).length, 1100 + 1051 + 3);
  assert.deepEqual(small.map((p) => p.keyCount).slice(0, 3), [333, 333, 333]);
});

test('ListObjectsV2 paginates > 1000 CommonPrefixes with a delimiter', async () => {
  const pages = await listAll('many', { prefix: 'nested/', delimiter: '/' });
  assert.deepEqual(pages.map((p) => p.keyCount), [1000, 51]);
  const prefixes = pages.flatMap((p) => p.prefixes);
  assert.deepEqual(prefixes, Array.from({ length: 1050 }, (_, i) => `nested/g${String(i).padStart(4, '0')}/`));
  assert.deepEqual(pages.flatMap((p) => p.keys), ['nested/top.txt']);
  assert.equal(tag(pages[0].xml, 'Delimiter'), '/');
  // a page ending on a CommonPrefix resumes after that whole group
  const tiny = await listAll('many', { delimiter: '/', 'max-keys': '1' });
  assert.deepEqual(tiny.flatMap((p) => p.prefixes), ['flat/', 'nested/', 'order/']);
});

test('ListObjectsV2: UTF-8 binary order, start-after, encoding-type=url, bad arguments', async () => {
  const [order] = await listAll('many', { prefix: 'order/' });
  assert.deepEqual(order.keys, ['order/a', 'order/\uFF21', 'order/\u{1F600}']); // not UTF-16 order
  const [sa] = await listAll('many', { prefix: 'order/', 'start-after': 'order/a' });
  assert.deepEqual(sa.keys, ['order/\uFF21', 'order/\u{1F600}']);
  assert.equal(tag(sa.xml, 'StartAfter'), 'order/a');

  const enc = await s3({ query: { 'list-type': '2', prefix: 'cur/BILLING_PERIOD=', 'encoding-type': 'url' } });
  assert.equal(tag(enc.text(), 'Key'), 'cur/BILLING_PERIOD%3D2024-01/a%20b%2Bc.csv.gz');
  assert.equal(tag(enc.text(), 'Prefix'), 'cur/BILLING_PERIOD%3D');
  assert.equal(tag(enc.text(), 'EncodingType'), 'url');

  const plain = await s3({ query: { 'list-type': '2', prefix: 'cur/' } });
  assert.deepEqual(tags(plain.text(), 'Key'), ['cur/BILLING_PERIOD=2024-01/a b+c.csv.gz', 'cur/report-Manifest.json']);
  assert.deepEqual(tags(plain.text(), 'Size'), ['5000', '17']);

  assertError(await s3({ query: { 'list-type': '2', 'max-keys': 'abc' } }), 400, 'InvalidArgument');
  assertError(await s3({ query: { 'list-type': '2', 'continuation-token': 'bogus' } }), 400, 'InvalidArgument');
  assertError(await s3({ query: { 'list-type': '2', 'encoding-type': 'xml' } }), 400, 'InvalidArgument');
  assertError(await s3({ bucket: 'nope', query: { 'list-type': '2' } }), 404, 'NoSuchBucket');
});

// --- faults and the control API -------------------------------------------------------

test('control API: health, faults and the request log', async () => {
  assert.equal((await control('GET', 'health')).status, 200);
  assert.equal((await control('POST', 'faults', { faults: [{ kind: 'nope' }] })).status, 400);
  await control('DELETE', 'requests');

  // status: 503 SlowDown once, then normal
  await control('POST', 'faults', { faults: [{ op: 'GetObject', keyContains: 'blob', kind: 'status', status: 503, times: 1 }] });
  const slowDown = await s3({ key: 'data/blob.bin' });
  assertError(slowDown, 503, 'SlowDown');
  assert.equal(tag(slowDown.text(), 'Message'), 'Please reduce your request rate.');
  assert.equal((await s3({ key: 'cur/report-Manifest.json' })).status, 200); // keyContains does not match
  assert.equal((await s3({ key: 'data/blob.bin' })).status, 200); // times exhausted

  await control('POST', 'faults', { faults: [{ op: '*', kind: 'status', status: 500 }] });
  assertError(await s3({ query: { 'list-type': '2' } }), 500, 'InternalError');
  await control('DELETE', 'faults');


  // truncate: full Content-Length announced, connection closed after N bytes
  await control('POST', 'faults', { faults: [{ op: 'GetObject', kind: 'truncate', afterBytes: 1000, times: 1 }] });
  let r = await s3({ key: 'data/blob.bin' });
  assert.equal(r.headers['content-length'], String(blob.length));
  assert.ok(r.aborted);
  assert.ok(r.body.equals(blob.subarray(0, 1000)), `got ${r.body.length} bytes`);

  // wrongLength < 0: self-consistent but short response
  await control('POST', 'faults', { faults: [{ op: 'GetObject', kind: 'wrongLength', delta: -100, times: 1 }] });
  r = await s3({ key: 'data/blob.bin' });
  assert.equal(r.status, 200);
  assert.ok(!r.aborted);
  assert.equal(r.headers['content-length'], String(blob.length - 100));
  assert.ok(r.body.equals(blob.subarray(0, blob.length - 100)));

  // wrongLength > 0: announces more than it sends, then closes
  await control('POST', 'faults', { faults: [{ op: 'GetObject', kind: 'wrongLength', delta: 50, times: 1 }] });
  r = await s3({ key: 'data/blob.bin' });
  assert.equal(r.headers['content-length'], String(blob.length + 50));
  assert.ok(r.aborted);
  assert.ok(r.body.equals(blob));

  // corrupt: one byte flipped, length unchanged
  await control('POST', 'faults', { faults: [{ op: 'GetObject', kind: 'corrupt', atByte: 70000, times: 1 }] });
  r = await s3({ key: 'data/blob.bin' });
  assert.equal(r.body.length, blob.length);
  const diff = [...r.body].flatMap((b, i) => (b !== blob[i] ? [i] : []));
  assert.deepEqual(diff, [70000]);

  // delay and slow
  await control('POST', 'faults', { faults: [{ op: 'HeadObject', kind: 'delay', ms: 300, times: 1 }] });
  let t0 = Date.now();
  assert.equal((await s3({ method: 'HEAD', key: 'data/blob.bin' })).status, 200);
  assert.ok(Date.now() - t0 >= 290);
  await control('POST', 'faults', { faults: [{ op: 'GetObject', kind: 'slow', bytesPerSecond: 20000, times: 1 }] });
  t0 = Date.now();
  r = await s3({ key: 'data/blob.bin', headers: { range: 'bytes=0-9999' } });
  assert.ok(r.body.equals(blob.subarray(0, 10000)));
  assert.ok(Date.now() - t0 >= 400, `slow took ${Date.now() - t0} ms`);
  const left = await control('GET', 'faults');
  assert.equal(left.json.faults[0].remaining, 0);
  await control('DELETE', 'faults');

  const log = (await control('GET', 'requests')).json;
  const ops = log.map((e) => `${e.op}:${e.status}`);
  assert.deepEqual(ops.slice(0, 5), ['GetObject:503', 'GetObject:200', 'GetObject:200', 'ListObjectsV2:500', 'GetObject:200']);
  assert.equal(log[4].bytesSent, 1000);
  assert.equal(log[4].complete, false);
  const ranged = log.find((e) => e.range === 'bytes=0-9999');
  assert.equal(ranged.status, 206);
  assert.equal(ranged.bytesSent, 10000);
  assert.deepEqual(ranged.faults, ['slow']);
  assert.equal(log[3].query['list-type'], '2');
  for (const e of log) for (const f of ['time', 'method', 'path', 'query', 'op', 'status', 'bytesSent', 'range']) assert.ok(f in e, f);
  await control('DELETE', 'requests');
  assert.deepEqual((await control('GET', 'requests')).json, []);
  // skip: the first two matching requests pass, the third is hit, then the fault is used up
  await control('POST', 'faults', { faults: [{ op: 'GetObject', keyContains: 'blob', kind: 'status', status: 503, skip: 2, times: 1 }] });
  assert.deepEqual([(await s3({ key: 'data/blob.bin' })).status, (await s3({ key: 'data/blob.bin' })).status,
    (await s3({ key: 'data/blob.bin' })).status, (await s3({ key: 'data/blob.bin' })).status], [200, 200, 503, 200]);
  assert.equal((await control('POST', 'faults', { faults: [{ kind: 'delay', ms: 1, skip: -1 }] })).status, 400);
  await control('DELETE', 'faults');
});

// --- the CLI ------------------------------------------------------------------------

test('CLI: --port 0, --port-file, --credentials, --endpoint-host, exits on SIGTERM', async () => {
  const creds = path.join(tmp, 'creds.json');
  fs.writeFileSync(creds, JSON.stringify({ keys: [{ accessKeyId: 'AKIDCLI', secretAccessKey: 'cli-secret' }] }));
  const portFile = path.join(tmp, 'port');
  const child = spawn(process.execPath, [path.join(HERE, 'server.mjs'), '--root', path.join(tmp, 'root'), '--port', '0',
    '--credentials', creds, '--endpoint-host', 's3.example.test', '--port-file', portFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.on('exit', (code, signal) => r({ code, signal })));
  const line = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => { out += d; if (out.includes('\n')) resolve(out.trim()); });
    child.on('exit', () => reject(new Error(`exited early: ${out}`)));
  });
  const cliPort = Number(fs.readFileSync(portFile, 'utf8'));
  assert.equal(line, `s3-emulator listening on http://127.0.0.1:${cliPort}`);

  const saved = port;
  port = cliPort;
  try {
    const host = `billing.s3.example.test:${cliPort}`;
    const signer = new SignatureV4({ credentials: { accessKeyId: 'AKIDCLI', secretAccessKey: 'cli-secret' }, region: 'us-east-1', service: 's3', sha256: Sha256, uriEscapePath: false });
    const signed = await signer.sign(new HttpRequest({ method: 'GET', hostname: host, path: '/data/blob.bin', headers: { host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD' } }));
    const r = await rawSend({ target: '/data/blob.bin', headers: signed.headers });
    assert.equal(r.status, 200, r.text());
    assert.ok(r.body.equals(blob));
    assertError(await s3({ key: 'data/blob.bin' }), 403, 'InvalidAccessKeyId'); // default key not loaded
  } finally {
    port = saved;
  }
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
});
