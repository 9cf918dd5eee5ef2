// Webhook delivery for the BILL emulator.
//
// BILL POSTs a JSON notification to each enabled subscription's notificationUrl,
// signed with the subscription's securityKey:
//   x-bill-sha-signature: base64(HMAC-SHA256(securityKey, raw body))
// Deliveries are asynchronous (the API call that caused the event has long returned),
// retried with exponential backoff on a non-2xx answer or a network error, and recorded.
// One queue per subscription keeps a subscription's notifications in order, so a test can
// expect bill.created before the bill.updated that followed it.

import http from 'node:http';
import https from 'node:https';
import crypto from 'node:crypto';

export const SIGNATURE_HEADER = 'x-bill-sha-signature';

export const sign = (securityKey, rawBody) => crypto.createHmac('sha256', securityKey).update(rawBody).digest('base64');

function post(url, body, headers, timeoutMs) {
  return new Promise((resolve) => {
    let u;
    try { u = new URL(url); } catch { resolve({ status: null, error: `bad URL ${url}` }); return; }
    const lib = u.protocol === 'https:' ? https : http;
    const req = lib.request(u, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': body.length, ...headers },
      timeout: timeoutMs,
      agent: false,
    }, (res) => {
      res.resume(); // the answer's body is of no interest, only its status
      res.on('end', () => resolve({ status: res.statusCode, error: null }));
      res.on('error', (e) => resolve({ status: res.statusCode, error: e.message }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e) => resolve({ status: null, error: e.message }));
    req.end(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// cfg: live config object (webhookRetries, webhookRetryMs, webhookTimeoutMs)
// record(entry): called once per attempt
export function createDispatcher(cfg, record) {
  let queues = new Map(); // subscriptionId -> tail promise
  let generation = 0; // bumped by reset(): queued work of an older generation is dropped
  let pending = 0;
  let idleWaiters = [];

  const settle = () => {
    if (pending === 0) { const w = idleWaiters; idleWaiters = []; w.forEach((f) => f()); }
  };

  async function deliver(job, gen) {
    const attempts = 1 + cfg.webhookRetries;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (gen !== generation) return;
      const started = Date.now();
      const r = await post(job.url, job.body, { [SIGNATURE_HEADER]: job.signature }, cfg.webhookTimeoutMs);
      const ok = r.status !== null && r.status >= 200 && r.status < 300;
      if (gen !== generation) return;
      record({
        eventId: job.eventId, subscriptionId: job.subscriptionId, eventType: job.eventType,
        url: job.url, attempt, status: r.status, ok, error: r.error, signature: job.signature,
        badSignature: job.badSignature, duplicate: job.duplicate,
        time: new Date(started).toISOString(), durationMs: Date.now() - started,
      });
      if (ok) return;
      if (attempt < attempts) await sleep(cfg.webhookRetryMs * 2 ** (attempt - 1));
    }
  }

  return {
    // job: { subscriptionId, url, eventId, eventType, body (Buffer), signature, badSignature, duplicate }
    enqueue(job) {
      const gen = generation;
      pending++;
      const tail = (queues.get(job.subscriptionId) || Promise.resolve())
        .then(() => deliver(job, gen))
        .catch((e) => console.error('bill-emulator: webhook delivery failed:', e))
        .finally(() => { pending--; settle(); });
      queues.set(job.subscriptionId, tail);
    },
    get pending() { return pending; },
    // resolves true when nothing is queued or being retried, false on timeout
    idle(timeoutMs) {
      if (pending === 0) return Promise.resolve(true);
      return new Promise((resolve) => {
        const t = setTimeout(() => { idleWaiters = idleWaiters.filter((f) => f !== done); resolve(false); }, timeoutMs);
        const done = () => { clearTimeout(t); resolve(true); };
        idleWaiters.push(done);
      });
    },
    reset() { generation++; queues = new Map(); },
  };
}
