#!/usr/bin/env node
// S3 emulator for pg_billops tests: serves a directory tree as S3 buckets over the
// real S3 REST API (ListObjectsV2, GetObject, HeadObject), verifies SigV4 with AWS's
// own signer (@smithy/signature-v4) and can inject faults through a control API.
//
//   node test/emulators/s3/server.mjs --root DIR --port N [--host 127.0.0.1]
//        [--credentials FILE] [--endpoint-host s3.localhost] [--region us-east-1]
//        [--port-file F]
//
// See README.md beside this file for the control API and the fault kinds.

import http from 'node:http';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { SignatureV4, getCanonicalHeaders, createScope, ALGORITHM_IDENTIFIER } from '@smithy/signature-v4';
import { HttpRequest } from '@smithy/protocol-http';
import { escapeUriPath } from '@smithy/core/protocols';
import { Sha256 } from '@aws-crypto/sha256-js';

export const S3_NS = 'http://s3.amazonaws.com/doc/2006-03-01/';
export const DEFAULT_KEYS = [
  { accessKeyId: 'AKIDBILLOPSTEST', secretAccessKey: 'billops-test-secret-key-0000000000000000' },
];
const MAX_KEYS = 1000;
const MAX_SKEW_MS = 15 * 60 * 1000; // S3 rejects requests more than 15 minutes off
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const MAX_REQUEST_BODY = 1024 * 1024; // GET/HEAD carry no body; anything big is abuse
const REQUEST_LOG_LIMIT = 10000; // oldest entries are dropped beyond this (bounded memory)
const CONTROL_PREFIX = '/_emulator/'; // '_' cannot start a bucket name, so no clash

// ---------------------------------------------------------------------------
// Errors, shaped like S3's: code -> [HTTP status, default message]
// ---------------------------------------------------------------------------
const ERRORS = {
  AccessDenied: [403, 'Access Denied'],
  AuthorizationHeaderMalformed: [400, 'The authorization header is malformed.'],
  ExpiredToken: [400, 'The provided token has expired.'],
  InternalError: [500, 'We encountered an internal error. Please try again.'],
  InvalidAccessKeyId: [403, 'The AWS Access Key Id you provided does not exist in our records.'],
  InvalidArgument: [400, 'Invalid Argument'],
  InvalidRange: [416, 'The requested range is not satisfiable'],
  InvalidRequest: [400, 'Invalid Request'],
  InvalidToken: [400, 'The provided token is malformed or otherwise invalid.'],
  InvalidURI: [400, "Couldn't parse the specified URI."],
  MaxMessageLengthExceeded: [400, 'Your request was too big.'],
  MethodNotAllowed: [405, 'The specified method is not allowed against this resource.'],
  NoSuchBucket: [404, 'The specified bucket does not exist'],
  NoSuchKey: [404, 'The specified key does not exist.'],
  NotImplemented: [501, 'A header you provided implies functionality that is not implemented'],
  PreconditionFailed: [412, 'At least one of the pre-conditions you specified did not hold'],
  RequestTimeTooSkewed: [403, 'The difference between the request time and the current time is too large.'],
  ServiceUnavailable: [503, 'Service is unable to handle request.'],
  SignatureDoesNotMatch: [403, 'The request signature we calculated does not match the signature you provided. Check your key and signing method.'],
  SlowDown: [503, 'Please reduce your request rate.'],
  XAmzContentSHA256Mismatch: [400, "The provided 'x-amz-content-sha256' header does not match what was computed."],
};

export class S3Error extends Error {
  // extra: [[elementName, value], ...] emitted between <Message> and <RequestId>, in order
  constructor(code, { message, status, extra = [], headers = {} } = {}) {
    const [defStatus, defMessage] = ERRORS[code] || [500, code];
    super(message || defMessage);
    this.code = code;
    this.status = status || defStatus;
    this.extra = extra;
    this.headers = headers;
  }
}

// Tab and newline stay literal (S3 returns multi-line CanonicalRequest text as is);
// other control characters become character references.
export function xmlEscape(s) {
  return String(s).replace(/[&<>"'\u0000-\u0008\u000b-\u001f]/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;',
  })[c] || `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`);
}

function errorXml(err, requestId, hostId) {
  const extra = err.extra.map(([k, v]) => `<${k}>${xmlEscape(v)}</${k}>`).join('');
  return '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<Error><Code>${err.code}</Code><Message>${xmlEscape(err.message)}</Message>${extra}` +
    `<RequestId>${requestId}</RequestId><HostId>${xmlEscape(hostId)}</HostId></Error>`;
}

// S3 puts the bytes of its canonical strings in SignatureDoesNotMatch as "41 57 53 ..."
const spacedHex = (s) => Buffer.from(s, 'utf8').toString('hex').replace(/(..)(?!$)/g, '$1 ');

// ---------------------------------------------------------------------------
// URL handling. S3 decodes the path and the query ('+' read as a space, as S3 does
// for legacy reasons) and builds the SigV4 canonical URI by re-encoding the decoded
// path with AWS's UriEncode ('/' kept, no normalisation). A client that sends '=' or
// '+' raw in the path therefore fails exactly as it would against real S3.
// ---------------------------------------------------------------------------
const utf8Strict = new TextDecoder('utf-8', { fatal: true });

export function percentDecode(s) {
  const bytes = [];
  const raw = Buffer.from(s, 'utf8');
  for (let i = 0; i < raw.length; i++) {
    const b = raw[i];
    if (b === 0x25) { // '%'
      const hex = raw.toString('latin1', i + 1, i + 3);
      if (!/^[0-9A-Fa-f]{2}$/.test(hex)) throw new S3Error('InvalidURI', { extra: [['URI', s]] });
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else if (b === 0x2b) { // '+'
      bytes.push(0x20);
    } else {
      bytes.push(b);
    }
  }
  try {
    return utf8Strict.decode(Uint8Array.from(bytes));
  } catch {
    throw new S3Error('InvalidURI', { extra: [['URI', s]] });
  }
}

// Query string -> { name: value | [values] } of DECODED strings, as smithy's signer
// wants them (it re-encodes for the canonical query). A name without '=' has value ''.
export function parseQuery(rawQuery) {
  const q = Object.create(null);
  for (const part of rawQuery.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = percentDecode(eq < 0 ? part : part.slice(0, eq));
    const value = eq < 0 ? '' : percentDecode(part.slice(eq + 1));
    if (name in q) q[name] = [].concat(q[name], value);
    else q[name] = value;
  }
  return q;
}

const first = (v) => (Array.isArray(v) ? v[0] : v);

// rawHeaders -> { lowercase-name: value }, repeated headers joined with ',' as SigV4
// specifies (Node would join unknown ones with ', ').
export function collectHeaders(rawHeaders) {
  const h = Object.create(null);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    h[name] = name in h ? `${h[name]},${rawHeaders[i + 1]}` : rawHeaders[i + 1];
  }
  return h;
}

// ---------------------------------------------------------------------------
// SigV4: the canonical request, string to sign and signature all come from
// @smithy/signature-v4. We drive its building blocks (the same calls signRequest()
// makes) instead of signRequest() itself because signRequest() drops a signed 'date'
// header and hides the canonical request, which S3 echoes in SignatureDoesNotMatch.
// Only headers named in SignedHeaders are handed to the signer, and they are all
// declared signable so smithy's always-unsignable list (user-agent, ...) cannot
// silently drop one the client did sign.
// ---------------------------------------------------------------------------
export async function computeSignature({
  method, canonicalPath, query, headers, signedHeaders, payloadHash,
  accessKeyId, secretAccessKey, sessionToken, region, service, longDate,
}) {
  const credentials = { accessKeyId, secretAccessKey, sessionToken };
  const signer = new SignatureV4({ credentials, region, service, sha256: Sha256, uriEscapePath: false });
  const signedOnly = {};
  for (const name of signedHeaders) if (name in headers) signedOnly[name] = headers[name];
  const request = new HttpRequest({
    method, hostname: headers.host || 'localhost', path: canonicalPath, query, headers: signedOnly,
  });
  const canonicalHeaders = getCanonicalHeaders(request, new Set(), new Set(signedHeaders));
  const canonicalRequest = signer.createCanonicalRequest(request, canonicalHeaders, payloadHash);
  const shortDate = longDate.slice(0, 8);
  const scope = createScope(shortDate, region, service);
  const stringToSign = await signer.createStringToSign(longDate, scope, canonicalRequest, ALGORITHM_IDENTIFIER);
  const signature = await signer.getSignature(
    longDate, scope, signer.getSigningKey(credentials, region, shortDate, service), canonicalRequest);
  return { signature, canonicalRequest, stringToSign };
}

function parseAuthorization(value) {
  const malformed = (why) => new S3Error('AuthorizationHeaderMalformed', {
    message: `The authorization header is malformed; ${why}`,
  });
  const rest = value.slice(ALGORITHM_IDENTIFIER.length).trim();
  const parts = Object.create(null);
  for (const piece of rest.split(',')) {
    const p = piece.trim();
    const eq = p.indexOf('=');
    if (eq > 0) parts[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  if (!parts.Credential || !parts.SignedHeaders || !parts.Signature) {
    throw malformed('the authorization header requires three components: Credential, SignedHeaders, and Signature.');
  }
  const cred = parts.Credential.split('/');
  if (cred.length !== 5 || !/^\d{8}$/.test(cred[1])) {
    throw malformed('the Credential is mal-formed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".');
  }
  const [accessKeyId, date, region, service, terminal] = cred;
  return {
    accessKeyId, date, region, service, terminal, malformed,
    signedHeaders: parts.SignedHeaders.split(';'),
    signature: parts.Signature,
  };
}

// "20240101T000000Z" -> Date, or null
function parseAmzDate(s) {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(s || '');
  if (!m) return null;
  const d = new Date(Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]));
  return Number.isNaN(d.getTime()) ? null : d;
}

const longDateOf = (d) => d.toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

async function authenticate(ctx, cfg) {
  const h = ctx.headers;
  const auth = h.authorization;
  if (!auth) {
    if (Object.keys(ctx.query).some((k) => k.toLowerCase() === 'x-amz-algorithm')) {
      throw new S3Error('NotImplemented', { message: 'Query-string (presigned URL) authentication is not implemented by this emulator' });
    }
    throw new S3Error('AccessDenied');
  }
  if (!auth.startsWith(`${ALGORITHM_IDENTIFIER} `)) {
    if (/^AWS /.test(auth)) {
      throw new S3Error('InvalidRequest', { message: 'The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256.' });
    }
    throw new S3Error('InvalidArgument', {
      message: 'Unsupported Authorization Type', extra: [['ArgumentName', 'Authorization'], ['ArgumentValue', auth]],
    });
  }
  const a = parseAuthorization(auth);

  const contentSha = h['x-amz-content-sha256'];
  if (contentSha === undefined) {
    throw new S3Error('InvalidRequest', { message: 'Missing required header for this request: x-amz-content-sha256' });
  }
  if (contentSha !== 'UNSIGNED-PAYLOAD' && !/^[0-9a-f]{64}$/.test(contentSha)) {
    throw new S3Error('InvalidArgument', {
      message: 'x-amz-content-sha256 must be UNSIGNED-PAYLOAD, or a valid sha256 value.',
      extra: [['ArgumentName', 'x-amz-content-sha256'], ['ArgumentValue', contentSha]],
    });
  }

  // SigV4 takes the request time from x-amz-date, else from Date.
  const requestTime = h['x-amz-date'] !== undefined ? parseAmzDate(h['x-amz-date'])
    : (h.date && !Number.isNaN(Date.parse(h.date)) ? new Date(Date.parse(h.date)) : null);
  if (!requestTime) {
    throw new S3Error('AccessDenied', { message: 'AWS authentication requires a valid Date or x-amz-date header' });
  }
  const longDate = longDateOf(requestTime);

  if (a.date !== longDate.slice(0, 8)) throw a.malformed('Invalid credential date. Date is not the same as X-Amz-Date.');
  if (a.region !== cfg.region) {
    throw new S3Error('AuthorizationHeaderMalformed', {
      message: `The authorization header is malformed; the region '${a.region}' is wrong; expecting '${cfg.region}'`,
      extra: [['Region', cfg.region]],
    });
  }
  if (a.service !== 's3') throw a.malformed(`incorrect service "${a.service}". This endpoint belongs to "s3".`);
  if (a.terminal !== 'aws4_request') throw a.malformed(`incorrect terminal "${a.terminal}". This endpoint uses "aws4_request".`);

  const key = findKey(cfg, a.accessKeyId);
  if (!key) throw new S3Error('InvalidAccessKeyId', { extra: [['AWSAccessKeyId', a.accessKeyId]] });

  const skew = Math.abs(Date.now() - requestTime.getTime());
  if (skew > MAX_SKEW_MS) {
    throw new S3Error('RequestTimeTooSkewed', {
      extra: [['RequestTime', h['x-amz-date'] ?? h.date],
        ['ServerTime', new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')],
        ['MaxAllowedSkewMilliseconds', String(MAX_SKEW_MS)]],
    });
  }

  const token = h['x-amz-security-token'];
  if ((key.sessionToken || token !== undefined) && token !== key.sessionToken) {
    throw new S3Error('InvalidToken', { extra: token !== undefined ? [['Token-0', token]] : [] });
  }
  if (keyExpired(key)) throw new S3Error('ExpiredToken', { extra: token !== undefined ? [['Token-0', token]] : [] });

  // S3 refuses host and x-amz-* headers that are present but not covered by the signature.
  const signedSet = new Set(a.signedHeaders);
  const notSigned = Object.keys(h).filter((n) => (n === 'host' || n.startsWith('x-amz-')) && !signedSet.has(n));
  if (notSigned.length) {
    throw new S3Error('AccessDenied', {
      message: 'There were headers present in the request which were not signed',
      extra: [['HeadersNotSigned', notSigned.sort().join(', ')]],
    });
  }

  const { signature, canonicalRequest, stringToSign } = await computeSignature({
    method: ctx.method, canonicalPath: ctx.canonicalPath, query: ctx.query, headers: h,
    signedHeaders: a.signedHeaders, payloadHash: contentSha, ...key,
    region: cfg.region, service: 's3', longDate,
  });
  const ok = a.signature.length === signature.length &&
    crypto.timingSafeEqual(Buffer.from(a.signature), Buffer.from(signature));
  if (!ok) {
    throw new S3Error('SignatureDoesNotMatch', {
      extra: [['AWSAccessKeyId', a.accessKeyId], ['StringToSign', stringToSign],
        ['SignatureProvided', a.signature], ['StringToSignBytes', spacedHex(stringToSign)],
        ['CanonicalRequest', canonicalRequest], ['CanonicalRequestBytes', spacedHex(canonicalRequest)]],
    });
  }
  if (contentSha !== 'UNSIGNED-PAYLOAD' && contentSha !== ctx.bodySha256) {
    throw new S3Error('XAmzContentSHA256Mismatch', {
      extra: [['ClientComputedContentSHA256', contentSha], ['S3ComputedContentSHA256', ctx.bodySha256]],
    });
  }
  ctx.accessKeyId = a.accessKeyId;
}

// ---------------------------------------------------------------------------
// Objects on disk
// ---------------------------------------------------------------------------
const etagCache = new Map(); // absolute path -> { mtimeMs, size, etag }

async function md5Etag(file, st) {
  const hit = etagCache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.etag;
  const hash = crypto.createHash('md5');
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk);
  const etag = `"${hash.digest('hex')}"`;
  etagCache.set(file, { mtimeMs: st.mtimeMs, size: st.size, etag });
  return etag;
}

// S3 timestamps have second resolution in headers; keep listings consistent with them.
const mtimeSeconds = (st) => new Date(Math.floor(st.mtimeMs / 1000) * 1000);

function contentTypeFor(key) {
  const k = key.toLowerCase();
  if (k.endsWith('.json')) return 'application/json';
  if (k.endsWith('.gz')) return 'application/x-gzip';
  if (k.endsWith('.csv')) return 'text/csv';
  if (k.endsWith('.zip')) return 'application/zip';
  return 'application/octet-stream';
}

// Keys are opaque in S3, but on disk only "a/b/c" shapes can exist: empty, '.' and '..'
// segments can never name a file here, which also keeps every lookup inside the bucket.
const keyIsRepresentable = (key) => key.split('/').every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('\0'));

async function bucketDir(cfg, bucket) {
  if (!bucket || bucket.startsWith('.') || bucket.includes('/') || bucket.includes('\0') || bucket === '..') return null;
  const dir = path.join(cfg.rootReal, bucket);
  try {
    const st = await fsp.lstat(dir);
    return st.isDirectory() ? dir : null;
  } catch {
    return null;
  }
}

// -> { file, st } for a regular file reached without symlinks, or null
async function findObject(dir, key) {
  if (!keyIsRepresentable(key)) return null;
  const file = path.join(dir, ...key.split('/'));
  try {
    if ((await fsp.realpath(file)) !== file) return null; // symlink somewhere: not an object
    const st = await fsp.stat(file);
    return st.isFile() ? { file, st } : null;
  } catch {
    return null;
  }
}

// All keys under the bucket starting with prefix, in UTF-8 binary order. Directories
// that cannot contain the prefix are not descended into; symlinks are ignored.
async function listKeys(dir, prefix) {
  const keys = [];
  async function walk(abs, rel) {
    let entries;
    try { entries = await fsp.readdir(abs, { withFileTypes: true }); } catch { return; }
    for (const e of entries) {
      if (e.isDirectory()) {
        const k = `${rel}${e.name}/`;
        if (k.startsWith(prefix) || prefix.startsWith(k)) await walk(path.join(abs, e.name), k);
      } else if (e.isFile()) {
        const k = rel + e.name;
        if (k.startsWith(prefix)) keys.push(k);
      }
    }
  }
  await walk(dir, '');
  return keys.map((k) => ({ k, b: Buffer.from(k, 'utf8') })).sort((x, y) => Buffer.compare(x.b, y.b));
}

// Continuation tokens are opaque to clients. Ours start with bytes that base64 to
// "++//" so that, like real S3 tokens, they need percent-encoding in the query string.
const TOKEN_MAGIC = Buffer.from([0xfb, 0xef, 0xff]);
const encodeToken = (obj) => Buffer.concat([TOKEN_MAGIC, Buffer.from(JSON.stringify(obj))]).toString('base64');
function decodeToken(tok) {
  const bad = new S3Error('InvalidArgument', {
    message: 'The continuation token provided is incorrect',
    extra: [['ArgumentName', 'continuation-token'], ['ArgumentValue', tok]],
  });
  const buf = Buffer.from(tok, 'base64');
  if (buf.length < 4 || !buf.subarray(0, 3).equals(TOKEN_MAGIC) || buf.toString('base64') !== tok) throw bad;
  try {
    const obj = JSON.parse(buf.subarray(3).toString('utf8'));
    if (typeof obj.k !== 'string') throw bad;
    return obj;
  } catch {
    throw bad;
  }
}

async function mapLimit(items, limit, fn) {
  const out = new Array(items.length);
  let next = 0;
  const worker = async () => { while (next < items.length) { const i = next++; out[i] = await fn(items[i]); } };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

async function listObjectsV2(ctx, dir) {
  const q = ctx.query;
  const prefix = first(q.prefix) ?? '';
  const delimiter = first(q.delimiter) ?? '';
  const startAfter = first(q['start-after']);
  const token = first(q['continuation-token']);
  const encodingType = first(q['encoding-type']);
  if (encodingType !== undefined && encodingType !== 'url') {
    throw new S3Error('InvalidArgument', {
      message: 'Invalid Encoding Method specified in Request',
      extra: [['ArgumentName', 'encoding-type'], ['ArgumentValue', encodingType]],
    });
  }
  let maxKeys = MAX_KEYS;
  if (q['max-keys'] !== undefined) {
    const mk = first(q['max-keys']);
    if (!/^\d+$/.test(mk) || Number(mk) > 2147483647) {
      throw new S3Error('InvalidArgument', {
        message: 'Provided max-keys not an integer or within integer range',
        extra: [['ArgumentName', 'max-keys'], ['ArgumentValue', mk]],
      });
    }
    maxKeys = Math.min(Number(mk), MAX_KEYS);
  }
  // A continuation token wins over start-after; both are echoed.
  let after = startAfter;
  let skipPrefix = null;
  if (token !== undefined) {
    const t = decodeToken(token);
    after = t.k;
    if (t.p) skipPrefix = t.k; // last page ended on a CommonPrefix: skip its whole group
  }
  const afterBuf = after !== undefined && after !== '' ? Buffer.from(after, 'utf8') : null;

  const keys = await listKeys(dir, prefix);
  const contents = [];
  const commonPrefixes = [];
  let truncated = false;
  let last = null;
  let lastWasPrefix = false;
  if (maxKeys > 0) {
    for (const { k, b } of keys) {
      if (afterBuf && Buffer.compare(b, afterBuf) <= 0) continue;
      if (skipPrefix !== null && k.startsWith(skipPrefix)) continue;
      let cp = null;
      if (delimiter) {
        const i = k.indexOf(delimiter, prefix.length);
        if (i >= 0) cp = k.slice(0, i + delimiter.length);
      }
      if (cp !== null && lastWasPrefix && cp === last) continue; // same group as previous
      if (contents.length + commonPrefixes.length === maxKeys) { truncated = true; break; }
      if (cp !== null) commonPrefixes.push(cp); else contents.push(k);
      last = cp ?? k;
      lastWasPrefix = cp !== null;
    }
  }

  const dirAbs = dir;
  const entries = await mapLimit(contents, 16, async (k) => {
    const file = path.join(dirAbs, ...k.split('/'));
    try {
      const st = await fsp.stat(file);
      return { k, st, etag: await md5Etag(file, st) };
    } catch {
      return null; // vanished since the walk
    }
  });

  const enc = encodingType === 'url' ? escapeUriPath : (s) => s;
  const el = (name, v) => `<${name}>${xmlEscape(v)}</${name}>`;
  let xml = '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<ListBucketResult xmlns="${S3_NS}">` + el('Name', ctx.bucket) + el('Prefix', enc(prefix));
  if (token !== undefined) xml += el('ContinuationToken', token);
  if (truncated) xml += el('NextContinuationToken', encodeToken({ k: last, p: lastWasPrefix }));
  if (startAfter !== undefined) xml += el('StartAfter', enc(startAfter));
  xml += el('KeyCount', contents.length + commonPrefixes.length) + el('MaxKeys', maxKeys);
  if (delimiter) xml += el('Delimiter', enc(delimiter));
  if (encodingType) xml += el('EncodingType', encodingType);
  xml += el('IsTruncated', truncated);
  for (const e of entries) {
    if (!e) continue;
    xml += '<Contents>' + el('Key', enc(e.k)) + el('LastModified', mtimeSeconds(e.st).toISOString()) +
      el('ETag', e.etag) + el('Size', e.st.size) + el('StorageClass', 'STANDARD') + '</Contents>';
  }
  for (const p of commonPrefixes) xml += '<CommonPrefixes>' + el('Prefix', enc(p)) + '</CommonPrefixes>';
  xml += '</ListBucketResult>';
  return xml;
}

// Range header -> null (ignore: serve whole object), {start, end} inclusive, or throws 416.
// S3 serves only single ranges; anything it cannot parse is ignored, like S3 does.
function parseRange(value, size) {
  if (value === undefined) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(value.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start;
  let end;
  if (m[1] === '') { // suffix: last N bytes
    const n = Number(m[2]);
    if (n === 0 || size === 0) throw invalidRange(value, size);
    start = Math.max(0, size - n);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null; // syntactically invalid: ignored
    if (start >= size) throw invalidRange(value, size);
  }
  return { start, end };
}

const invalidRange = (value, size) => new S3Error('InvalidRange', {
  extra: [['RangeRequested', value], ['ActualObjectSize', String(size)]],
  headers: { 'Content-Range': `bytes */${size}` },
});

// If-Match / If-None-Match lists: "etag", W/"etag", *
function etagListMatches(header, etag) {
  return header.split(',').map((s) => s.trim().replace(/^W\//, '')).some((t) => t === '*' || t === etag || `"${t}"` === etag);
}

// S3's precedence: If-Match beats If-Unmodified-Since (-> 412), If-None-Match beats
// If-Modified-Since (-> 304).
function checkConditions(h, etag, lastModified) {
  const since = (v) => { const t = Date.parse(v); return Number.isNaN(t) ? null : t; };
  if (h['if-match'] !== undefined) {
    if (!etagListMatches(h['if-match'], etag)) {
      throw new S3Error('PreconditionFailed', { extra: [['Condition', 'If-Match']] });
    }
  } else if (h['if-unmodified-since'] !== undefined) {
    const t = since(h['if-unmodified-since']);
    if (t !== null && lastModified.getTime() > t) {
      throw new S3Error('PreconditionFailed', { extra: [['Condition', 'If-Unmodified-Since']] });
    }
  }
  if (h['if-none-match'] !== undefined) {
    if (etagListMatches(h['if-none-match'], etag)) return 304;
  } else if (h['if-modified-since'] !== undefined) {
    const t = since(h['if-modified-since']);
    if (t !== null && lastModified.getTime() <= t) return 304;
  }
  return null;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Writes chunks to res honouring back-pressure, an optional rate limit and a one-byte
// corruption at an absolute object offset. Resolves once the last write is flushed.
async function pumpBody(res, ctx, stream, { objectOffset, bytesPerSecond, corruptAt }) {
  let offset = objectOffset;
  let flushed = Promise.resolve();
  const closed = new Promise((r) => res.once('close', r));
  for await (let chunk of stream) {
    if (corruptAt !== undefined && corruptAt >= offset && corruptAt < offset + chunk.length) {
      chunk = Buffer.from(chunk); // read streams may share buffers: copy before flipping
      chunk[corruptAt - offset] ^= 0xff;
    }
    offset += chunk.length;
    // Under a rate limit, send small slices so the throttle is smooth (~20 per second).
    const slice = bytesPerSecond ? Math.max(1, Math.floor(bytesPerSecond / 20)) : chunk.length;
    for (let i = 0; i < chunk.length; i += slice) {
      if (res.destroyed) return;
      const piece = chunk.subarray(i, i + slice);
      let more;
      flushed = new Promise((r) => { more = res.write(piece, () => r()); });
      ctx.bytesSent += piece.length;
      if (!more) await Promise.race([new Promise((r) => res.once('drain', r)), closed]);
      if (bytesPerSecond) await sleep((piece.length / bytesPerSecond) * 1000);
    }
  }
  await Promise.race([flushed, closed]);
}

async function getOrHeadObject(ctx, res, dir, faults) {
  const obj = await findObject(dir, ctx.key);
  if (!obj) throw new S3Error('NoSuchKey', { extra: [['Key', ctx.key]] });
  const { file, st } = obj;
  const etag = await md5Etag(file, st);
  const lastModified = mtimeSeconds(st);
  const common = {
    'Last-Modified': lastModified.toUTCString(),
    ETag: etag,
    'Accept-Ranges': 'bytes',
    'x-amz-server-side-encryption': 'AES256',
  };
  const cond = checkConditions(ctx.headers, etag, lastModified);
  if (cond === 304) {
    res.writeHead(304, common);
    res.end();
    return;
  }
  const size = st.size;
  // HeadObject honours Range too (206 + Content-Range), like GetObject.
  const range = parseRange(ctx.headers.range, size);
  const start = range ? range.start : 0;
  const length = range ? range.end - range.start + 1 : size;

  let announced = length; // Content-Length we claim
  let sendBytes = length; // body bytes we actually send
  let closeEarly = false; // close the connection instead of finishing the response
  const wrong = faults.find((f) => f.kind === 'wrongLength');
  if (wrong) {
    announced = Math.max(0, length + wrong.delta);
    if (wrong.delta < 0) sendBytes = announced; else closeEarly = wrong.delta > 0;
  }
  const trunc = faults.find((f) => f.kind === 'truncate');
  if (trunc && trunc.afterBytes < sendBytes) { sendBytes = trunc.afterBytes; closeEarly = true; }

  const headers = { ...common, 'Content-Type': contentTypeFor(ctx.key), 'Content-Length': String(announced) };
  if (range) headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  res.writeHead(range ? 206 : 200, headers);
  if (ctx.method === 'HEAD') { res.end(); return; }

  if (sendBytes > 0) {
    const slow = faults.find((f) => f.kind === 'slow');
    const corrupt = faults.find((f) => f.kind === 'corrupt');
    const stream = fs.createReadStream(file, { start, end: start + sendBytes - 1 });
    try {
      await pumpBody(res, ctx, stream, {
        objectOffset: start, bytesPerSecond: slow?.bytesPerSecond, corruptAt: corrupt?.atByte,
      });
    } finally {
      stream.destroy();
    }
  } else {
    res.flushHeaders();
  }
  if (closeEarly) {
    // socket.end() sends whatever is still buffered, then a FIN: the body stops short
    // of the announced Content-Length, which is what a dropped transfer looks like.
    res.socket?.end();
    return;
  }
  res.end();
}

// ---------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------
const FAULT_OPS = new Set(['GetObject', 'ListObjectsV2', 'HeadObject', '*']);
const FAULT_KINDS = {
  status: (f) => Number.isInteger(f.status) && f.status >= 400 && f.status <= 599,
  slow: (f) => typeof f.bytesPerSecond === 'number' && f.bytesPerSecond > 0,
  truncate: (f) => Number.isInteger(f.afterBytes) && f.afterBytes >= 0,
  wrongLength: (f) => Number.isInteger(f.delta) && f.delta !== 0,
  delay: (f) => typeof f.ms === 'number' && f.ms >= 0,
  corrupt: (f) => Number.isInteger(f.atByte) && f.atByte >= 0,
};

export function validateFaults(list) {
  if (!Array.isArray(list)) throw new Error('"faults" must be an array');
  return list.map((f, i) => {
    if (typeof f !== 'object' || f === null) throw new Error(`fault ${i}: not an object`);
    const op = f.op ?? '*';
    if (!FAULT_OPS.has(op)) throw new Error(`fault ${i}: op must be one of ${[...FAULT_OPS].join(', ')}`);
    if (!FAULT_KINDS[f.kind]) throw new Error(`fault ${i}: kind must be one of ${Object.keys(FAULT_KINDS).join(', ')}`);
    if (!FAULT_KINDS[f.kind](f)) throw new Error(`fault ${i}: missing or invalid parameter for kind "${f.kind}"`);
    if (f.times !== undefined && !(Number.isInteger(f.times) && f.times > 0)) throw new Error(`fault ${i}: times must be a positive integer`);
    if (f.keyContains !== undefined && typeof f.keyContains !== 'string') throw new Error(`fault ${i}: keyContains must be a string`);
    if (f.skip !== undefined && !(Number.isInteger(f.skip) && f.skip >= 0)) throw new Error(`fault ${i}: skip must be a non-negative integer`);
    return { ...f, op, remaining: f.times ?? null, skipLeft: f.skip ?? 0 }; // remaining null = unlimited
  });
}

// Faults matching this request, in list order; each one used is decremented. A status
// fault ends the request, so later faults are not consumed by it.
function takeFaults(state, op, subject) {
  const hits = [];
  for (const f of state.faults) {
    if (f.op !== '*' && f.op !== op) continue;
    if (f.keyContains !== undefined && !subject.includes(f.keyContains)) continue;
    if (f.remaining === 0) continue;
    if (f.skipLeft > 0) { f.skipLeft--; continue; } // the first `skip` matching requests pass untouched
    if (f.remaining !== null) f.remaining--;
    hits.push(f);
    if (f.kind === 'status') break;
  }
  return hits;
}

// ---------------------------------------------------------------------------
// Control API (unsigned, JSON)
// ---------------------------------------------------------------------------
async function readBody(req, limit) {
  const chunks = [];
  let n = 0;
  for await (const c of req) {
    n += c.length;
    if (n > limit) throw new S3Error('MaxMessageLengthExceeded');
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

async function handleControl(req, res, rawPath, state) {
  const send = (status, obj) => {
    const body = JSON.stringify(obj);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
    res.end(body);
  };
  const route = `${req.method} ${rawPath.slice(CONTROL_PREFIX.length).replace(/\/$/, '')}`;
  try {
    switch (route) {
      case 'GET health': return send(200, { status: 'ok' });
      case 'GET faults': return send(200, { faults: state.faults });
      case 'POST faults': {
        const body = JSON.parse((await readBody(req, MAX_REQUEST_BODY)).toString('utf8') || '{}');
        state.faults = validateFaults(body.faults);
        return send(200, { faults: state.faults });
      }
      case 'DELETE faults': state.faults = []; return send(200, { faults: [] });
      case 'GET requests': return send(200, state.requests);
      case 'DELETE requests': state.requests = []; return send(200, { ok: true });
      default: return send(404, { error: `no control endpoint ${route}` });
    }
  } catch (e) {
    return send(400, { error: e.message });
  }
}

// ---------------------------------------------------------------------------
// Request dispatch
// ---------------------------------------------------------------------------
const newRequestId = () => crypto.randomBytes(8).toString('hex').toUpperCase();
const newHostId = () => crypto.randomBytes(48).toString('base64');

function route(ctx, cfg) {
  // Virtual-hosted style: Host is <bucket>.<endpoint-host>[:port]
  const host = (ctx.headers.host || '').toLowerCase().replace(/:\d+$/, '');
  const suffix = `.${cfg.endpointHost}`;
  let bucket;
  let key;
  if (host.endsWith(suffix) && host.length > suffix.length) {
    bucket = host.slice(0, -suffix.length);
    key = ctx.path.slice(1);
  } else {
    const p = ctx.path.slice(1);
    const slash = p.indexOf('/');
    bucket = slash < 0 ? p : p.slice(0, slash);
    key = slash < 0 ? '' : p.slice(slash + 1);
  }
  ctx.bucket = bucket || null;
  ctx.key = key || null;
  const isGet = ctx.method === 'GET';
  if (!ctx.bucket) ctx.op = 'ListBuckets';
  else if (ctx.key) ctx.op = isGet ? 'GetObject' : 'HeadObject';
  else if (!isGet) ctx.op = 'HeadBucket';
  else if (first(ctx.query['list-type']) === '2') ctx.op = 'ListObjectsV2';
  else if ('location' in ctx.query) ctx.op = 'GetBucketLocation';
  else ctx.op = 'ListObjects';
}

async function handleS3(req, res, ctx, cfg, state) {
  route(ctx, cfg);
  if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
    ctx.op = null;
    throw new S3Error('MethodNotAllowed', {
      extra: [['Method', ctx.method], ['ResourceType', ctx.key ? 'OBJECT' : ctx.bucket ? 'BUCKET' : 'SERVICE']],
      headers: { Allow: 'GET, HEAD' },
    });
  }
  // Hash any request body (bounded) so x-amz-content-sha256 can be checked.
  const hash = crypto.createHash('sha256');
  hash.update(await readBody(req, MAX_REQUEST_BODY));
  ctx.bodySha256 = hash.digest('hex');

  await authenticate(ctx, cfg);

  const faults = takeFaults(state, ctx.op, ctx.op === 'ListObjectsV2' ? (first(ctx.query.prefix) ?? '') : (ctx.key ?? ''));
  ctx.faults = faults.map((f) => f.kind);
  for (const f of faults) if (f.kind === 'delay') await sleep(f.ms);
  const statusFault = faults.find((f) => f.kind === 'status');
  if (statusFault) {
    const code = statusFault.code || { 500: 'InternalError', 503: 'SlowDown' }[statusFault.status] || 'InternalError';
    throw new S3Error(code, { status: statusFault.status, message: statusFault.message });
  }

  if (ctx.op === 'ListBuckets') throw new S3Error('NotImplemented', { message: 'ListBuckets is not implemented by this emulator' });
  const dir = await bucketDir(cfg, ctx.bucket);
  if (!dir) throw new S3Error('NoSuchBucket', { extra: [['BucketName', ctx.bucket]] });

  switch (ctx.op) {
    case 'GetObject':
    case 'HeadObject':
      return getOrHeadObject(ctx, res, dir, faults);
    case 'HeadBucket':
      res.writeHead(200, { 'x-amz-bucket-region': cfg.region });
      return res.end();
    case 'GetBucketLocation': {
      const loc = cfg.region === 'us-east-1' ? '' : cfg.region; // S3 answers empty for us-east-1
      return sendXml(res, 200, `<?xml version="1.0" encoding="UTF-8"?>\n<LocationConstraint xmlns="${S3_NS}">${loc}</LocationConstraint>`, ctx);
    }
    case 'ListObjectsV2':
      return sendXml(res, 200, await listObjectsV2(ctx, dir), ctx);
    default:
      throw new S3Error('NotImplemented', { message: 'Only ListObjectsV2 (list-type=2) is implemented by this emulator for listing' });
  }
}

function sendXml(res, status, xml, ctx, headers = {}) {
  const body = Buffer.from(xml, 'utf8');
  if (ctx.method === 'HEAD') { // HEAD responses, errors included, carry no body, as in S3
    res.writeHead(status, { ...headers, 'Content-Type': 'application/xml' });
    res.end();
    return;
  }
  res.writeHead(status, { ...headers, 'Content-Type': 'application/xml', 'Content-Length': body.length });
  ctx.bytesSent += body.length;
  res.end(body);
}

export function createS3Emulator(options) {
  const cfg = {
    region: 'us-east-1',
    endpointHost: 's3.localhost',
    keys: DEFAULT_KEYS,
    ...options,
  };
  cfg.endpointHost = cfg.endpointHost.toLowerCase();
  cfg.rootReal = fs.realpathSync(cfg.root);
  const state = { faults: [], requests: [] };

  const server = http.createServer(async (req, res) => {
    const qmark = req.url.indexOf('?');
    const rawPath = qmark < 0 ? req.url : req.url.slice(0, qmark);
    const rawQuery = qmark < 0 ? '' : req.url.slice(qmark + 1);
    const hostHeader = (req.headers.host || '').toLowerCase().replace(/:\d+$/, '');
    const isVirtualHost = hostHeader.endsWith(`.${cfg.endpointHost}`);
    if (!isVirtualHost && rawPath.startsWith(CONTROL_PREFIX)) return handleControl(req, res, rawPath, state);

    const ctx = {
      time: new Date(), method: req.method, rawPath, rawQuery, query: {}, op: null,
      bucket: null, key: null, headers: collectHeaders(req.rawHeaders), bytesSent: 0, faults: [],
      requestId: newRequestId(), hostId: newHostId(),
    };
    res.setHeader('x-amz-request-id', ctx.requestId);
    res.setHeader('x-amz-id-2', ctx.hostId);
    res.setHeader('Server', 'AmazonS3');
    res.on('close', () => {
      state.requests.push({
        time: ctx.time.toISOString(), method: ctx.method, path: rawPath, query: { ...ctx.query },
        op: ctx.op, bucket: ctx.bucket, key: ctx.key, status: res.statusCode, bytesSent: ctx.bytesSent,
        range: ctx.headers.range ?? null, faults: ctx.faults, complete: res.writableFinished,
        durationMs: Date.now() - ctx.time.getTime(), requestId: ctx.requestId, accessKeyId: ctx.accessKeyId ?? null,
      });
      if (state.requests.length > REQUEST_LOG_LIMIT) state.requests.splice(0, state.requests.length - REQUEST_LOG_LIMIT);
    });
    try {
      ctx.path = percentDecode(rawPath);
      ctx.canonicalPath = escapeUriPath(ctx.path);
      ctx.query = parseQuery(rawQuery);
      await handleS3(req, res, ctx, cfg, state);
    } catch (e) {
      let err = e;
      if (!(err instanceof S3Error)) {
        console.error('s3-emulator: internal error:', err);
        err = new S3Error('InternalError');
      }
      if (res.headersSent) { res.destroy(); return; }
      // Keep-alive clients must not see the unread part of a rejected request's body.
      if (!req.complete) res.setHeader('Connection', 'close');
      sendXml(res, err.status, errorXml(err, ctx.requestId, ctx.hostId), ctx, err.headers);
    }
  });

  return {
    server,
    state,
    config: cfg,
    listen(port = 0, host = '127.0.0.1') {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => { server.off('error', reject); resolve(server.address().port); });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

// ---------------------------------------------------------------------------
// CLI
// ---------------------------------------------------------------------------
function usage(msg) {
  if (msg) console.error(`s3-emulator: ${msg}`);
  console.error('usage: server.mjs --root DIR --port N [--host 127.0.0.1] [--credentials FILE]\n' +
    '                  [--endpoint-host s3.localhost] [--region us-east-1] [--port-file F]');
  process.exit(2);
}

export function loadCredentials(file) {
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (!Array.isArray(doc.keys) || doc.keys.length === 0) throw new Error(`${file}: "keys" must be a non-empty array`);
  for (const k of doc.keys) {
    if (typeof k.accessKeyId !== 'string' || typeof k.secretAccessKey !== 'string') {
      throw new Error(`${file}: each key needs string accessKeyId and secretAccessKey`);
    }
  }
  return doc.keys.map((k) => ({
    accessKeyId: k.accessKeyId, secretAccessKey: k.secretAccessKey,
    sessionToken: k.sessionToken || undefined, expired: Boolean(k.expired),
    // temporary keys the STS emulator issued (test/emulators/sts) carry their expiry and role
    expiresAt: k.expiresAt, roleArn: k.roleArn, sessionName: k.sessionName,
  }));
}

// The key an access key id names. The credentials file is a live key store: the STS
// emulator adds the temporary keys it issues (and can expire them early), so the file is
// read again whenever it changed (it is written by rename, so never read half-written).
export function findKey(cfg, accessKeyId) {
  if (cfg.credentialsFile) {
    // read again when it changed (a key issued, or expired early by the STS emulator)
    const mtime = fs.statSync(cfg.credentialsFile, { throwIfNoEntry: false })?.mtimeMs;
    if (mtime !== undefined && mtime !== cfg.credentialsMtime) {
      cfg.keys = loadCredentials(cfg.credentialsFile);
      cfg.credentialsMtime = mtime;
    }
  }
  return cfg.keys.find((k) => k.accessKeyId === accessKeyId);
}

// Expired: marked so, or past the expiry STS gave it.
export const keyExpired = (key) => key.expired || (key.expiresAt !== undefined && Date.parse(key.expiresAt) <= Date.now());

async function main(argv) {
  const opts = { host: '127.0.0.1' };
  const names = { '--root': 'root', '--port': 'port', '--host': 'host', '--credentials': 'credentials',
    '--endpoint-host': 'endpointHost', '--region': 'region', '--port-file': 'portFile' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--help' || argv[i] === '-h') usage();
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    opts[name] = argv[++i];
  }
  if (!opts.root) usage('--root is required');
  if (opts.port === undefined || !/^\d+$/.test(opts.port)) usage('--port N is required');
  if (!fs.statSync(opts.root, { throwIfNoEntry: false })?.isDirectory()) usage(`--root ${opts.root} is not a directory`);

  const emu = createS3Emulator({
    root: opts.root,
    keys: opts.credentials ? loadCredentials(opts.credentials) : DEFAULT_KEYS,
    credentialsFile: opts.credentials,
    ...(opts.endpointHost && { endpointHost: opts.endpointHost }),
    ...(opts.region && { region: opts.region }),
  });
  const port = await emu.listen(Number(opts.port), opts.host);
  if (opts.portFile) { // write then rename so a watcher never reads a half-written file
    fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
  }
  const shownHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  console.log(`s3-emulator listening on http://${shownHost}:${port}`);
  const stop = async () => { await emu.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(`s3-emulator: ${e.message}`); process.exit(1); });
}
