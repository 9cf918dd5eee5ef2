// AWS STS emulator for pg_billops tests and the demo: AssumeRole,
// AssumeRoleWithWebIdentity and GetCallerIdentity in the Query protocol as
// botocore's sts 2011-06-15 model defines them (POST / with a form body,
// answers in XML under https://sts.amazonaws.com/doc/2011-06-15/ wrapped in
// <OpResult>, errors as <ErrorResponse><Error><Type/><Code/><Message/>).
// Callers of AssumeRole and GetCallerIdentity are checked with AWS's own
// SigV4 signer (@smithy/signature-v4, through ../s3/server.mjs); the keys it
// issues are written to the shared key store (the --credentials file), where
// the S3 and AWS API emulators find them, and refuse them once expired.
//
// Roles and web identity tokens are set up through the control API:
//   POST /_emulator/roles   {arn, trust: ["AKID…" | "arn:aws:iam::…:role/…" | "*"],
//                            externalId?, maxSessionDuration?, webIdentityTokens?: [{token, sub, expired?}]}
//   POST /_emulator/config  {issuedLifetimeSeconds?}   (a test knob: issued keys expire sooner than asked)
//   POST /_emulator/expire  every key issued so far expires now (the clients do not know)
//   POST /_emulator/metadata {instanceRole?, imdsV1?, imdsV2Refused?, container?: {path, token, role}}
// It also serves the EC2 instance metadata service (/latest/api/token, /latest/meta-data/iam/
// security-credentials/…) and a container credentials endpoint at the configured path.
//   GET  /_emulator/requests, POST /_emulator/reset, GET /_emulator/health
//
// usage: server.mjs --port N [--host 127.0.0.1] [--credentials FILE] [--port-file F]
//                   [--account 111122223333]
import http from 'node:http';
import fs from 'node:fs';
import crypto from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { ALGORITHM_IDENTIFIER } from '@smithy/signature-v4';
import { computeSignature, collectHeaders, loadCredentials, findKey, keyExpired } from '../s3/server.mjs';

const NS = 'https://sts.amazonaws.com/doc/2011-06-15/';
const CONTROL_PREFIX = '/_emulator/';
const MAX_SKEW_MS = 15 * 60 * 1000;

export class StsError extends Error {
  constructor(code, message, status = 400, type = 'Sender') {
    super(message);
    this.code = code;
    this.status = status;
    this.type = type;
  }
}

const xmlEscape = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const element = (name, value) => (value === undefined || value === null ? '' : `<${name}>${xmlEscape(value)}</${name}>`);

function errorXml(e, requestId) {
  return `<ErrorResponse xmlns="${NS}"><Error><Type>${e.type}</Type><Code>${xmlEscape(e.code)}</Code>` +
    `<Message>${xmlEscape(e.message)}</Message></Error><RequestId>${requestId}</RequestId></ErrorResponse>`;
}

function resultXml(action, inner, requestId) {
  return `<${action}Response xmlns="${NS}"><${action}Result>${inner}</${action}Result>` +
    `<ResponseMetadata><RequestId>${requestId}</RequestId></ResponseMetadata></${action}Response>`;
}

// botocore's constraints, as AWS words a validation failure
function validation(field, value, constraint) {
  return new StsError('ValidationError',
    `1 validation error detected: Value ${value === undefined ? 'null' : `'${value}'`} at '${field}' failed to satisfy constraint: ${constraint}`);
}
function checkString(params, name, field, { required, min, max, pattern }) {
  const v = params[name];
  if (v === undefined) {
    if (required) throw validation(field, undefined, 'Member must not be null');
    return undefined;
  }
  if (min !== undefined && v.length < min) throw validation(field, v, `Member must have length greater than or equal to ${min}`);
  if (max !== undefined && v.length > max) throw validation(field, v, `Member must have length less than or equal to ${max}`);
  if (pattern && !pattern.test(v)) throw validation(field, v, `Member must satisfy regular expression pattern: ${pattern.source}`);
  return v;
}
function checkDuration(params) {
  const v = params.DurationSeconds;
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v)) throw new StsError('ValidationError', `Invalid value for DurationSeconds: ${v}`);
  if (n < 900) throw validation('durationSeconds', n, 'Member must have value greater than or equal to 900');
  if (n > 43200) throw validation('durationSeconds', n, 'Member must have value less than or equal to 43200');
  return n;
}
const ROLE_ARN = { required: true, min: 20, max: 2048 };
const SESSION_NAME = { required: true, min: 2, max: 64, pattern: /^[\w+=,.@-]*$/ };

const randomId = (prefix, n) => prefix + Array.from(crypto.randomBytes(n), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[b % 32]).join('');
const isoSeconds = (t) => new Date(t).toISOString().replace(/\.\d{3}Z$/, 'Z');

export function createStsEmulator(options = {}) {
  const cfg = { account: '111122223333', credentialsFile: options.credentials, keys: [], ...options };
  if (cfg.credentialsFile) cfg.keys = loadCredentials(cfg.credentialsFile);
  const freshState = () => ({ roles: new Map(), requests: [], issued: 0, issuedLifetimeSeconds: null,
    metadata: { tokens: new Map(), instanceRole: null, imdsV1: false, imdsV2Refused: false, container: null } });
  let state = freshState();

  // the caller of a signed request (SigV4, service "sts", any region: each region has its endpoint)
  async function authenticate(req, headers, body) {
    const auth = headers.authorization;
    if (!auth || !auth.startsWith(`${ALGORITHM_IDENTIFIER} `)) {
      throw new StsError('MissingAuthenticationToken', 'Request is missing Authentication Token', 403);
    }
    const parts = Object.fromEntries(auth.slice(ALGORITHM_IDENTIFIER.length).split(',')
      .map((p) => p.trim().split('=')).filter((p) => p.length === 2));
    const cred = (parts.Credential ?? '').split('/');
    if (cred.length !== 5 || !parts.SignedHeaders || !parts.Signature) {
      throw new StsError('IncompleteSignature', 'Authorization header requires Credential, SignedHeaders and Signature.', 400);
    }
    const [accessKeyId, , region, service] = cred;
    if (service !== 'sts') throw new StsError('SignatureDoesNotMatch', `Credential should be scoped to correct service: 'sts'.`, 403);
    const key = findKey(cfg, accessKeyId);
    if (!key) throw new StsError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
    const token = headers['x-amz-security-token'];
    if ((key.sessionToken || token !== undefined) && token !== key.sessionToken) {
      throw new StsError('InvalidClientTokenId', 'The security token included in the request is invalid.', 403);
    }
    if (keyExpired(key)) throw new StsError('ExpiredToken', 'The security token included in the request is expired', 403);
    const amz = headers['x-amz-date'] ?? '';
    const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amz);
    if (!m) throw new StsError('IncompleteSignature', 'Missing or invalid X-Amz-Date header.', 400);
    const t = Date.UTC(+m[1], m[2] - 1, +m[3], +m[4], +m[5], +m[6]);
    if (Math.abs(Date.now() - t) > MAX_SKEW_MS) throw new StsError('SignatureDoesNotMatch', 'Signature expired.', 403);
    const { signature } = await computeSignature({
      method: req.method, canonicalPath: '/', query: {}, headers, signedHeaders: parts.SignedHeaders.split(';'),
      payloadHash: crypto.createHash('sha256').update(body).digest('hex'), ...key, region, service: 'sts', longDate: amz,
    });
    if (signature.length !== parts.Signature.length || !crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(parts.Signature))) {
      throw new StsError('SignatureDoesNotMatch',
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.', 403);
    }
    return key;
  }

  // a role session's ARN is in the role's account; a key of our own is a user of the emulator's account
  const accountOf = (roleArn) => roleArn.split(':')[4] || cfg.account;
  const callerArn = (key) => (key.roleArn
    ? `arn:aws:sts::${accountOf(key.roleArn)}:assumed-role/${key.roleArn.split('/').pop()}/${key.sessionName}`
    : `arn:aws:iam::${cfg.account}:user/${key.accessKeyId}`);

  // Temporary keys for a role session, added to the shared key store.
  function mint(role, sessionName, duration) {
    const lifetime = state.issuedLifetimeSeconds ?? duration ?? 3600;
    const key = {
      accessKeyId: randomId('ASIA', 16), secretAccessKey: crypto.randomBytes(30).toString('base64'),
      sessionToken: crypto.randomBytes(96).toString('base64'), expiresAt: isoSeconds(Date.now() + lifetime * 1000),
      roleArn: role.arn, sessionName,
    };
    if (cfg.credentialsFile) {
      const doc = JSON.parse(fs.readFileSync(cfg.credentialsFile, 'utf8'));
      doc.keys.push(key);
      fs.writeFileSync(`${cfg.credentialsFile}.tmp`, JSON.stringify(doc, null, 1));
      fs.renameSync(`${cfg.credentialsFile}.tmp`, cfg.credentialsFile);
    }
    cfg.keys.push({ ...key, expired: false });
    state.issued++;
    return key;
  }

  // The <Credentials> and <AssumedRoleUser> of an AssumeRole* answer.
  function issue(role, sessionName, duration) {
    const key = mint(role, sessionName, duration);
    const roleId = `AROA${crypto.createHash('sha1').update(role.arn).digest('hex').slice(0, 17).toUpperCase()}`;
    return `<Credentials>${element('AccessKeyId', key.accessKeyId)}${element('SecretAccessKey', key.secretAccessKey)}` +
      `${element('SessionToken', key.sessionToken)}${element('Expiration', key.expiresAt)}</Credentials>` +
      `<AssumedRoleUser>${element('AssumedRoleId', `${roleId}:${sessionName}`)}` +
      `${element('Arn', `arn:aws:sts::${accountOf(role.arn)}:assumed-role/${role.arn.split('/').pop()}/${sessionName}`)}</AssumedRoleUser>`;
  }

  function roleOf(arn, callerArnText) {
    const role = state.roles.get(arn);
    if (!role) {
      throw new StsError('AccessDenied', `User: ${callerArnText} is not authorized to perform: sts:AssumeRole on resource: ${arn}`, 403);
    }
    return role;
  }

  async function assumeRole(req, headers, body, params) {
    const caller = await authenticate(req, headers, body);
    const arn = checkString(params, 'RoleArn', 'roleArn', ROLE_ARN);
    const sessionName = checkString(params, 'RoleSessionName', 'roleSessionName', SESSION_NAME);
    const externalId = checkString(params, 'ExternalId', 'externalId', { min: 2, max: 1224, pattern: /^[\w+=,.@:/-]*$/ });
    const duration = checkDuration(params);
    const who = callerArn(caller);
    const role = roleOf(arn, who);
    const trusted = role.trust.includes('*') || role.trust.includes(caller.accessKeyId) ||
      (caller.roleArn && role.trust.includes(caller.roleArn));
    if (!trusted || (role.externalId !== undefined && role.externalId !== externalId)) {
      throw new StsError('AccessDenied', `User: ${who} is not authorized to perform: sts:AssumeRole on resource: ${arn}`, 403);
    }
    if (caller.roleArn && duration !== undefined && duration > 3600) {
      throw new StsError('ValidationError',
        'The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.');
    }
    if (duration !== undefined && duration > (role.maxSessionDuration ?? 3600)) {
      throw new StsError('ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
    }
    return resultXml('AssumeRole', issue(role, sessionName, duration) + element('PackedPolicySize', 0), crypto.randomUUID());
  }

  function assumeRoleWithWebIdentity(params) {
    const arn = checkString(params, 'RoleArn', 'roleArn', ROLE_ARN);
    const sessionName = checkString(params, 'RoleSessionName', 'roleSessionName', SESSION_NAME);
    const token = checkString(params, 'WebIdentityToken', 'webIdentityToken', { required: true, min: 4, max: 20000 });
    const duration = checkDuration(params);
    const role = state.roles.get(arn);
    const known = role?.webIdentityTokens?.find((t) => t.token === token);
    if (!role || !known) {
      throw new StsError('InvalidIdentityToken', 'Couldn\'t retrieve verification key from your identity provider, please reference AssumeRoleWithWebIdentity documentation for requirements', 400);
    }
    if (known.expired) throw new StsError('ExpiredTokenException', 'Token expired: current date/time must be before the expiration date/time.', 400);
    if (duration !== undefined && duration > (role.maxSessionDuration ?? 3600)) {
      throw new StsError('ValidationError', 'The requested DurationSeconds exceeds the MaxSessionDuration set for this role.');
    }
    return resultXml('AssumeRoleWithWebIdentity', issue(role, sessionName, duration) +
      element('SubjectFromWebIdentityToken', known.sub ?? 'system:serviceaccount:billops:pg_billops') +
      element('Provider', 'oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE') + element('Audience', 'sts.amazonaws.com'), crypto.randomUUID());
  }

  async function getCallerIdentity(req, headers, body) {
    const caller = await authenticate(req, headers, body);
    return resultXml('GetCallerIdentity', element('UserId', caller.roleArn ? `AROAEXAMPLE:${caller.sessionName}` : caller.accessKeyId) +
      element('Account', caller.roleArn ? accountOf(caller.roleArn) : cfg.account) + element('Arn', callerArn(caller)), crypto.randomUUID());
  }

  // ---- the EC2 instance metadata service (IMDSv2; v1 only when allowed) and the container
  // credentials endpoint (ECS task roles, EKS Pod Identity): both hand out a role's keys as
  // {AccessKeyId, SecretAccessKey, Token, Expiration} (AWS SDKs and Tools Reference Guide,
  // "IMDS credential provider", "Container credential provider").
  function credentialsJson(role, extra = {}) {
    const key = mint(role, 'i-0123456789abcdef0', undefined);
    return { ...extra, AccessKeyId: key.accessKeyId, SecretAccessKey: key.secretAccessKey, Token: key.sessionToken,
      Expiration: key.expiresAt };
  }
  function handleMetadata(req, res, path, headers) {
    const send = (status, text, type = 'text/plain') => {
      const out = Buffer.from(text);
      res.writeHead(status, { 'Content-Type': type, 'Content-Length': out.length });
      res.end(out);
    };
    const m = state.metadata;
    state.requests.push({ seq: state.requests.length + 1, action: `${req.method} ${path}`, signed: false,
      token: Boolean(headers['x-aws-ec2-metadata-token']) });
    if (path === '/latest/api/token') {
      if (req.method !== 'PUT') return send(405, '');
      if (m.imdsV2Refused) return send(403, '');
      const ttl = Number(headers['x-aws-ec2-metadata-token-ttl-seconds']);
      if (!(ttl >= 1 && ttl <= 21600)) return send(400, '');
      const token = crypto.randomBytes(32).toString('base64');
      m.tokens.set(token, Date.now() + ttl * 1000);
      return send(200, token);
    }
    if (path.startsWith('/latest/meta-data/iam/security-credentials/')) {
      const t = headers['x-aws-ec2-metadata-token'];
      if (t === undefined ? !m.imdsV1 : !(m.tokens.get(t) > Date.now())) return send(401, '');
      if (!m.instanceRole) return send(404, '');
      const name = m.instanceRole.arn.split('/').pop();
      const rest = path.slice('/latest/meta-data/iam/security-credentials/'.length);
      if (rest === '') return send(200, name);
      if (rest !== name) return send(404, '');
      return send(200, JSON.stringify(credentialsJson(m.instanceRole, { Code: 'Success', LastUpdated: isoSeconds(Date.now()), Type: 'AWS-HMAC' })), 'application/json');
    }
    if (m.container && path === m.container.path) {
      if (headers.authorization !== m.container.token) return send(401, JSON.stringify({ message: 'unauthorized' }), 'application/json');
      return send(200, JSON.stringify(credentialsJson(m.container.role, { RoleArn: m.container.role.arn })), 'application/json');
    }
    return send(404, '');
  }

  async function handleApi(req, res, body) {
    const headers = collectHeaders(req.rawHeaders);
    const requestId = crypto.randomUUID();
    let status = 200;
    let xml;
    let action;
    try {
      if (req.method !== 'POST' || req.url.split('?')[0] !== '/') throw new StsError('InvalidAction', 'Could not find operation', 400);
      const params = Object.fromEntries(new URLSearchParams(body.toString('utf8')));
      action = params.Action;
      if (params.Version !== '2011-06-15') throw new StsError('InvalidAction', `Could not find operation ${action} for version ${params.Version}`, 400);
      if (action === 'AssumeRole') xml = await assumeRole(req, headers, body, params);
      else if (action === 'AssumeRoleWithWebIdentity') xml = assumeRoleWithWebIdentity(params);
      else if (action === 'GetCallerIdentity') xml = await getCallerIdentity(req, headers, body);
      else throw new StsError('InvalidAction', `Could not find operation ${action} for version 2011-06-15`, 400);
    } catch (e) {
      if (!(e instanceof StsError)) throw e;
      status = e.status;
      xml = errorXml(e, requestId);
    }
    // no token, key or secret in the log: the action, the role and the outcome
    state.requests.push({ seq: state.requests.length + 1, action, status, signed: Boolean(headers.authorization),
      roleArn: new URLSearchParams(body.toString('utf8')).get('RoleArn') ?? undefined });
    const out = Buffer.from(xml);
    res.writeHead(status, { 'Content-Type': 'text/xml', 'Content-Length': out.length, 'x-amzn-RequestId': requestId });
    res.end(out);
  }

  function handleControl(req, res, what, body) {
    const reply = (status, obj) => {
      const out = Buffer.from(JSON.stringify(obj));
      res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': out.length });
      res.end(out);
    };
    try {
      const doc = body.length ? JSON.parse(body.toString('utf8')) : {};
      const route = `${req.method} ${what}`;
      if (route === 'GET health') return reply(200, { status: 'ok' });
      if (route === 'POST reset') {
        state = freshState();
        return reply(200, { ok: true });
      }
      if (route === 'GET requests') return reply(200, state.requests);
      if (route === 'GET state') return reply(200, { roles: [...state.roles.keys()], issued: state.issued });
      if (route === 'POST config') {
        if (doc.issuedLifetimeSeconds !== undefined && !(doc.issuedLifetimeSeconds === null || Number.isInteger(doc.issuedLifetimeSeconds))) {
          throw new Error('issuedLifetimeSeconds must be an integer or null');
        }
        state.issuedLifetimeSeconds = doc.issuedLifetimeSeconds ?? null;
        return reply(200, { issuedLifetimeSeconds: state.issuedLifetimeSeconds });
      }
      if (route === 'POST expire') {
        // every key issued so far expires now (AWS revoking sessions, or a clock the client
        // trusts more than it should): the other emulators refuse them from now on
        const now = isoSeconds(Date.now() - 1000);
        let n = 0;
        if (cfg.credentialsFile) {
          const store = JSON.parse(fs.readFileSync(cfg.credentialsFile, 'utf8'));
          for (const k of store.keys) if (k.roleArn && Date.parse(k.expiresAt) > Date.now()) { k.expiresAt = now; n++; }
          fs.writeFileSync(`${cfg.credentialsFile}.tmp`, JSON.stringify(store, null, 1));
          fs.renameSync(`${cfg.credentialsFile}.tmp`, cfg.credentialsFile);
        }
        for (const k of cfg.keys) if (k.roleArn) k.expiresAt = now;
        return reply(200, { expired: n });
      }
      if (route === 'POST metadata') {
        // {instanceRole?: arn, imdsV1?: bool, imdsV2Refused?: bool, container?: {path, token, role: arn}}
        const m = state.metadata;
        if (doc.instanceRole !== undefined) m.instanceRole = doc.instanceRole ? { arn: doc.instanceRole } : null;
        if (doc.imdsV1 !== undefined) m.imdsV1 = Boolean(doc.imdsV1);
        if (doc.imdsV2Refused !== undefined) m.imdsV2Refused = Boolean(doc.imdsV2Refused);
        if (doc.container !== undefined) {
          m.container = doc.container ? { path: doc.container.path, token: doc.container.token, role: { arn: doc.container.role } } : null;
        }
        return reply(200, { ok: true });
      }
      if (route === 'POST roles') {
        if (typeof doc.arn !== 'string' || !/^arn:aws:iam::\d{12}:role\/[\w+=,.@/-]+$/.test(doc.arn)) throw new Error('arn must be an IAM role ARN');
        if (!Array.isArray(doc.trust)) throw new Error('trust must be an array of access key ids, role ARNs or "*"');
        state.roles.set(doc.arn, { arn: doc.arn, trust: doc.trust, externalId: doc.externalId,
          maxSessionDuration: doc.maxSessionDuration, webIdentityTokens: doc.webIdentityTokens ?? [] });
        return reply(201, { arn: doc.arn });
      }
      return reply(404, { error: `no control route ${route}` });
    } catch (e) {
      return reply(400, { error: e.message });
    }
  }

  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const path = req.url.split('?')[0];
      if (path.startsWith('/latest/') || (state.metadata.container && path === state.metadata.container.path)) {
        handleMetadata(req, res, path, collectHeaders(req.rawHeaders));
        return;
      }
      const done = path.startsWith(CONTROL_PREFIX)
        ? Promise.resolve(handleControl(req, res, path.slice(CONTROL_PREFIX.length).replace(/\/$/, ''), body))
        : handleApi(req, res, body);
      done.catch((e) => {
        res.writeHead(500, { 'Content-Type': 'text/xml' });
        res.end(errorXml(new StsError('InternalFailure', e.message, 500, 'Receiver'), crypto.randomUUID()));
      });
    });
  });
  return {
    listen: (port, host) => new Promise((resolve) => server.listen(port, host, () => resolve(server.address().port))),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

async function main(argv) {
  const opts = { host: '127.0.0.1' };
  const names = { '--port': 'port', '--host': 'host', '--credentials': 'credentials', '--port-file': 'portFile', '--account': 'account' };
  for (let i = 0; i < argv.length; i++) {
    const name = names[argv[i]];
    if (!name || i + 1 >= argv.length) throw new Error(`bad argument ${argv[i]}`);
    opts[name] = argv[++i];
  }
  if (opts.port === undefined) throw new Error('--port N is required');
  const emu = createStsEmulator({ credentials: opts.credentials, ...(opts.account && { account: opts.account }) });
  const port = await emu.listen(Number(opts.port), opts.host);
  if (opts.portFile) {
    fs.writeFileSync(`${opts.portFile}.tmp`, `${port}\n`);
    fs.renameSync(`${opts.portFile}.tmp`, opts.portFile);
  }
  console.log(`sts-emulator listening on http://${opts.host}:${port}`);
  const stop = async () => { await emu.close(); process.exit(0); };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  main(process.argv.slice(2)).catch((e) => { console.error(`sts-emulator: ${e.message}`); process.exit(1); });
}
