// AWS's official Signature Version 4 test suite, run against the C signer
// through billops.sigv4_sign().  Every case in ../shared/testdata/sigv4 runs;
// none is excluded.  Keys come from the 'sigv4-suite' credentials profile;
// get-vanilla-with-session-token uses a profile that also has the suite's
// session token, which the signer adds as a signed X-Amz-Security-Token header
// (post-sts-header-after is the unsigned variant: the token is added after
// signing, so it is signed without one).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { connect, closeAll, freshDatabase, SHARED } from './helpers.mjs';

const SUITE = path.join(SHARED, 'testdata/sigv4');

function findCases(dir) {
  const out = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...findCases(p));
    else if (e.name.endsWith('.req')) out.push(p.slice(0, -4));
  }
  return out.sort();
}

const decode = (s) => decodeURIComponent(s.replace(/\+/g, '%20'));

// Parse a raw HTTP request as the suite writes it (folded header lines included).
function parseRequest(raw) {
  const text = raw.toString('utf8');
  const split = text.indexOf('\n\n');
  const head = split >= 0 ? text.slice(0, split) : text;
  const body = split >= 0 ? Buffer.from(text.slice(split + 2), 'utf8') : null;
  const lines = head.split('\n');
  const m = /^(\S+) (.*) HTTP\/1\.1$/.exec(lines[0]);
  assert.ok(m, `bad request line: ${lines[0]}`);
  const [, method, target] = m;
  const q = target.indexOf('?');
  const rawPath = q >= 0 ? target.slice(0, q) : target;
  const query = [];
  if (q >= 0) {
    for (const part of target.slice(q + 1).split('&')) {
      if (part === '') continue;
      const eq = part.indexOf('=');
      query.push(decode(eq >= 0 ? part.slice(0, eq) : part), decode(eq >= 0 ? part.slice(eq + 1) : ''));
    }
  }
  const headers = [];
  for (const line of lines.slice(1)) {
    if (line === '') continue;
    if (/^\s/.test(line) && headers.length) {
      headers[headers.length - 1] += '\n' + line; // folded continuation
      continue;
    }
    const c = line.indexOf(':');
    headers.push(line.slice(0, c), line.slice(c + 1));
  }
  return { method, path: decode(rawPath), query, headers, body };
}

let client;
before(async () => {
  client = await freshDatabase('billops_it_sigv4');
});
after(async () => { await closeAll(); });

for (const base of findCases(SUITE)) {
  const name = path.relative(SUITE, base);
  test(`sigv4 suite: ${name}`, async () => {
    const req = parseRequest(fs.readFileSync(base + '.req'));
    const h = req.headers;
    const date = h[h.findIndex((x, i) => i % 2 === 0 && x.toLowerCase() === 'x-amz-date') + 1];
    const profile = name.includes('with-session-token') ? 'profile:sigv4-suite-session' : 'profile:sigv4-suite';
    const { rows } = await client.query(
      `SELECT * FROM billops.sigv4_sign($1, $2, $3, $4, $5, 'us-east-1', 'service', $6, $7, true)`,
      [req.method, req.path, req.query, req.headers, req.body, date, profile]);
    assert.equal(rows[0].canonical_request, fs.readFileSync(base + '.creq', 'utf8'), 'canonical request');
    assert.equal(rows[0].string_to_sign, fs.readFileSync(base + '.sts', 'utf8'), 'string to sign');
    assert.equal(rows[0].authorization, fs.readFileSync(base + '.authz', 'utf8'), 'Authorization header');
  });
}
