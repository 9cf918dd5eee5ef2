// Measures the BILL push on a prepared database (see bill.sh): commit-to-BILL
// latency for single payables, then throughput for the rest routed in one
// commit.  Prints name=value lines.
import { createRequire } from 'node:module';

const require = createRequire(new URL('../emulators/package.json', import.meta.url));
const pg = require('pg');
const CONTROL = process.env.BILL_EMULATOR_CONTROL;
const TRIALS = Number(process.env.TRIALS || 9);

const db = new pg.Client({ database: 'billops_bench' });
await db.connect();
const state = async () => (await fetch(`${CONTROL}/state`)).json();
const stats = async () => (await fetch(`${CONTROL}/stats`)).json();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

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

// throughput: everything else routed in one transaction
const before = await stats();
const billsBefore = (await state()).bills.length;
const t0 = performance.now();
const routed = (await db.query(`SELECT count(billops.route_payable(payable_id))::int AS n FROM billops.payable WHERE status = 'draft'`)).rows[0].n;
for (;;) {
  const { n } = (await db.query(`SELECT count(*)::int AS n FROM billops.bill_outbox WHERE state IN ('pending', 'in_flight')`)).rows[0];
  if (n === 0) break;
  await sleep(20);
}
const secs = (performance.now() - t0) / 1000;
const after = await stats();
const bills = (await state()).bills.length - billsBefore;
const notDone = (await db.query(`SELECT count(*)::int AS n FROM billops.bill_outbox WHERE state <> 'done'`)).rows[0].n;
console.log(`bill_throughput_payables_routed=${routed}`);
console.log(`bill_throughput_bills_created=${bills}`);
console.log(`bill_throughput_seconds=${secs.toFixed(2)}`);
console.log(`bill_throughput_bills_per_s=${(bills / secs).toFixed(1)}`);
console.log(`bill_throughput_requests_per_s=${((after.apiRequests - before.apiRequests) / secs).toFixed(1)}`);
console.log(`bill_max_requests_in_flight=${Math.max(...Object.values(after.maxConcurrentByOrg))}`);
console.log(`bill_outbox_rows_not_done=${notDone}`);
await db.end();
