// Measures the BILL push on a prepared database (see bill.sh): commit-to-BILL
// latency for single payables, then throughput for the rest routed in one
// commit.  Prints name=value lines.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const pg = require('pg');
const CONTROL = process.env.BILL_EMULATOR_CONTROL;
const TRIALS = Number(process.env.TRIALS || 9);
const N = Number(process.env.N || 1000);
const WAN_N = Number(process.env.WAN_N || 150);
const WAN_MS = Number(process.env.WAN_MS || 50);

const db = new pg.Client({ database: 'billops_bench' });
await db.connect();
const state = async () => (await fetch(`${CONTROL}/state`)).json();
const stats = async () => (await fetch(`${CONTROL}/stats`)).json();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const faults = (list) => fetch(`${CONTROL}/faults`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ faults: list }) });
const drafts = async (n) => (await db.query(`SELECT payable_id FROM billops.payable WHERE status = 'draft' ORDER BY payable_id LIMIT $1`, [n])).rows.map((r) => r.payable_id);
// route these payables in one commit; seconds until the outbox is drained
async function push(ids) {
  const t0 = performance.now();
  await db.query('SELECT count(billops.route_payable(id)) FROM unnest($1::bigint[]) id', [ids]);
  for (;;) {
    const { n } = (await db.query(`SELECT count(*)::int AS n FROM billops.bill_outbox WHERE state IN ('pending', 'in_flight')`)).rows[0];
    if (n === 0) break;
    await sleep(20);
  }
  return (performance.now() - t0) / 1000;
}
async function lanes(n) {
  await db.query(`ALTER SYSTEM SET billops.bill_max_concurrent_requests = ${Number(n)}`);
  await db.query('SELECT pg_reload_conf()');
  await sleep(300);
}

// latency: route one payable (the COMMIT wakes the worker), wait for its bill to exist in BILL
const ids = (await db.query('SELECT payable_id, billops.bill_invoice_number(dedupe_key) AS inv FROM billops.payable ORDER BY payable_id LIMIT $1', [TRIALS])).rows;
const lat = [];
for (const { payable_id: id, inv } of ids) {
  const t0 = performance.now();
  await db.query('SELECT billops.route_payable($1)', [id]);
  for (;;) {
    const s = await state();
    if (s.bills.some((b) => b.invoice?.invoiceNumber === inv)) break;
    await sleep(2);
  }
  lat.push(performance.now() - t0);
}
lat.sort((a, b) => a - b);
console.log(`bill_commit_to_bill_ms_median=${lat[(lat.length - 1) >> 1].toFixed(0)}`);
console.log(`bill_commit_to_bill_ms_max=${lat.at(-1).toFixed(0)}`);

// throughput: N payables routed in one transaction, three lanes, BILL on loopback
const before = await stats();
const billsBefore = (await state()).bills.length;
const batch = await drafts(N);
const secs = await push(batch);
const after = await stats();
const bills = (await state()).bills.length - billsBefore;
const notDone = (await db.query(`SELECT count(*)::int AS n FROM billops.bill_outbox WHERE state <> 'done'`)).rows[0].n;
console.log(`bill_throughput_payables_routed=${batch.length}`);
console.log(`bill_throughput_bills_created=${bills}`);
console.log(`bill_throughput_seconds=${secs.toFixed(2)}`);
console.log(`bill_throughput_bills_per_s=${(bills / secs).toFixed(1)}`);
console.log(`bill_throughput_requests_per_s=${((after.apiRequests - before.apiRequests) / secs).toFixed(1)}`);
console.log(`bill_max_requests_in_flight=${Math.max(...Object.values(after.maxConcurrentByOrg))}`);
console.log(`bill_outbox_rows_not_done=${notDone}`);
// how much of that is BILL (the emulator) answering, as it measured itself
const log = await (await fetch(`${CONTROL}/requests`)).json();
const phase = log.slice(-(after.apiRequests - before.apiRequests));
console.log(`bill_throughput_emulator_ms_per_request=${(phase.reduce((a, r) => a + r.durationMs, 0) / Math.max(1, phase.length)).toFixed(1)}`);

// what the lanes buy when BILL is a network away: every request delayed WAN_MS
await faults([{ match: { path: '/v3/' }, kind: 'slow', ms: WAN_MS, count: null }]);
await lanes(1);
const one = await push(await drafts(WAN_N));
await lanes(3);
const three = await push(await drafts(WAN_N));
await faults([]);
await db.query('ALTER SYSTEM RESET billops.bill_max_concurrent_requests');
await db.query('SELECT pg_reload_conf()');
console.log(`bill_wan${WAN_MS}_one_at_a_time_bills_per_s=${(WAN_N / one).toFixed(1)}`);
console.log(`bill_wan${WAN_MS}_three_lanes_bills_per_s=${(WAN_N / three).toFixed(1)}`);
console.log(`bill_concurrency_speedup_ratio=${(one / three).toFixed(2)}`);
await db.end();
