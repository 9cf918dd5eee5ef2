// Cost Explorer and Invoicing through the C client (billops._aws_api_call)
// against the AWS API emulator: paging, the cache, the daily call cap and the
// ledger (checked against what the emulator billed), retries and failures,
// anomaly dedupe, invoice summaries and their PDFs attached to payables.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import {
  freshDatabase, closeAll, expectError, one, awsApiControl as ctl, writeBillTestMonth, AWS_INC, RUN, decimalSum,
  decimalToString,
} from './helpers.mjs';

const PAYER = '999900001111';
const ENDPOINT = process.env.AWS_API_ENDPOINT;
let db;

before(async () => {
  db = await freshDatabase('billops_it_aws_api');
  await db.query('SET client_min_messages = error');
  await db.query('SET billops.aws_api_retry_base = 1');
  await db.query(`INSERT INTO billops.aws_api_source (payer_account_id, cost_explorer_url, invoicing_url)
                  VALUES ($1, $2, $2), ('111111111111', $2, $2)`, [PAYER, ENDPOINT]);
});
after(async () => {
  await ctl('POST', 'reset');
  await closeAll();
});
beforeEach(async () => {
  await ctl('POST', 'reset');
  await ctl('POST', 'config', { cePageSize: 100, anomalyPageSize: 20, invoicePageSize: 100 });
});

// The first day of the month `n` months before this one ('YYYY-MM-DD'), and day d of it.
// Days of past months are final in Cost Explorer; within 14 months any start day may be asked for.
function monthsAgo(n, d = 1) {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - n, d)).toISOString().slice(0, 10);
}

const ACCOUNTS = ['100000000001', '100000000002', '100000000003', '100000000004', '100000000005'];
// Seeded cost rows: every account on every day of [from, to], a cent-exact amount
// that differs per day and account, plus sub-cent noise; returns {"day|account": total}.
async function seedCosts(from, to, { estimated = false, extra = '0' } = {}) {
  const rows = [];
  const expected = {};
  for (let d = new Date(`${from}T00:00:00Z`); d <= new Date(`${to}T00:00:00Z`); d.setUTCDate(d.getUTCDate() + 1)) {
    const day = d.toISOString().slice(0, 10);
    ACCOUNTS.forEach((account, i) => {
      const amount = `${d.getUTCDate() * 10 + i}.${String(i * 7).padStart(2, '0')}0000001${extra}`;
      rows.push({ date: day, account, service: i % 2 ? 'Amazon Simple Storage Service' : 'Amazon Elastic Compute Cloud',
        amount, payer: PAYER, estimated });
      expected[`${day}|${account}`] = amount;
    });
  }
  await ctl('POST', 'costs', { rows });
  return expected;
}
const fetchSpend = async (from, to) => one(db, 'SELECT * FROM billops.fetch_ce_daily_spend($1, $2, $3)', [PAYER, from, to]);
const billed = async () => (await ctl('GET', 'stats')).ce.billableRequests.GetCostAndUsage ?? 0;
const cached = async (from, to) => {
  const { rows } = await db.query(
    `SELECT day::text || '|' || linked_account_id AS k, unblended_cost::text AS v FROM billops.ce_daily_spend
      WHERE payer_account_id = $1 AND day BETWEEN $2 AND $3`, [PAYER, from, to]);
  return Object.fromEntries(rows.map((r) => [r.k, r.v]));
};
const exact = (m) => Object.fromEntries(Object.entries(m).map(([k, v]) => [k, decimalToString(decimalSum([v]))]));

test('GetCostAndUsage: pages merged by day, amounts exact, every page counted at USD 0.01 like AWS bills it', async () => {
  // 5 accounts a day, 3 groups a page: most days continue on the next page
  await ctl('POST', 'config', { cePageSize: 3 });
  const expected = await seedCosts(monthsAgo(2, 1), monthsAgo(2, 10));
  const r = await fetchSpend(monthsAgo(2, 1), monthsAgo(2, 10));
  assert.equal(r.status, 'fetched');
  assert.equal(r.items, 10, 'ten days');
  assert.equal(r.calls, Math.ceil(50 / 3), 'one call per page of 3 groups');
  assert.equal(r.billed_usd, (r.calls * 0.01).toFixed(2));
  assert.equal(await billed(), r.calls, 'the ledger counts what the emulator billed');
  assert.deepEqual(exact(await cached(monthsAgo(2, 1), monthsAgo(2, 10))), exact(expected));
  const ledger = await one(db, `SELECT count(*)::int AS n, sum(billed_usd)::text AS usd, bool_and(request_id IS NOT NULL) AS ids,
                                       bool_and(NOT request ? 'NextPageToken') AS no_tokens
                                  FROM billops.aws_api_call WHERE operation = 'GetCostAndUsage'`);
  assert.deepEqual(ledger, { n: r.calls, usd: r.billed_usd, ids: true, no_tokens: true });
  const spend = await one(db, `SELECT calls::int, billed_usd::text FROM billops.aws_api_spend WHERE operation = 'GetCostAndUsage'`);
  assert.deepEqual(spend, { calls: r.calls, billed_usd: r.billed_usd });
});

test('the cache: final days are never asked again; a wider range asks only for the days missing', async () => {
  await seedCosts(monthsAgo(3, 1), monthsAgo(3, 12));
  assert.equal((await fetchSpend(monthsAgo(3, 1), monthsAgo(3, 10))).calls, 1);
  const again = await fetchSpend(monthsAgo(3, 1), monthsAgo(3, 10));
  assert.deepEqual([again.status, again.calls], ['cached', 0]);
  await ctl('DELETE', 'requests');
  const wider = await fetchSpend(monthsAgo(3, 3), monthsAgo(3, 12));
  assert.deepEqual([wider.status, wider.calls, wider.items], ['fetched', 1, 2], wider.message);
  const [req] = (await ctl('GET', 'requests')).filter((x) => x.operation === 'GetCostAndUsage');
  assert.deepEqual(req.params.TimePeriod, { Start: monthsAgo(3, 11), End: monthsAgo(3, 13) }, 'only the two days not cached, End exclusive');
  assert.equal(await billed(), 2);
});

test('beyond 14 months Cost Explorer wants the 1st as start day: the request starts on the 1st', async () => {
  const expected = await seedCosts(monthsAgo(16, 1), monthsAgo(16, 12));
  await ctl('DELETE', 'requests');
  const r = await fetchSpend(monthsAgo(16, 10), monthsAgo(16, 12));
  assert.deepEqual([r.status, r.calls, r.items], ['fetched', 1, 12], r.message);
  const [req] = (await ctl('GET', 'requests')).filter((x) => x.operation === 'GetCostAndUsage');
  assert.deepEqual(req.params.TimePeriod, { Start: monthsAgo(16, 1), End: monthsAgo(16, 13) });
  assert.deepEqual(exact(await cached(monthsAgo(16, 1), monthsAgo(16, 12))), exact(expected));
});

test('estimated days are fetched again after ce_estimated_refresh_hours, and replace (not add to) the old copy', async () => {
  await seedCosts(monthsAgo(4, 1), monthsAgo(4, 2), { estimated: true });
  await fetchSpend(monthsAgo(4, 1), monthsAgo(4, 2));
  assert.equal((await one(db, `SELECT bool_and(estimated) AS e FROM billops.ce_fetched_day WHERE day BETWEEN $1 AND $2`, [monthsAgo(4, 1), monthsAgo(4, 2)])).e, true);
  assert.equal((await fetchSpend(monthsAgo(4, 1), monthsAgo(4, 2))).status, 'cached', 'fresh enough');
  // AWS revises the day: one more cent for every account
  await ctl('POST', 'costs', { rows: ACCOUNTS.map((account) => ({ date: monthsAgo(4, 1), account, service: 'Tax', amount: '0.01', payer: PAYER })) });
  await db.query(`UPDATE billops.setting SET value = '0' WHERE name = 'ce_estimated_refresh_hours'`);
  try {
    const r = await fetchSpend(monthsAgo(4, 1), monthsAgo(4, 2));
    assert.deepEqual([r.status, r.calls], ['fetched', 1]);
  } finally {
    await db.query(`UPDATE billops.setting SET value = '6' WHERE name = 'ce_estimated_refresh_hours'`);
  }
  const v = await one(db, `SELECT unblended_cost::text AS v FROM billops.ce_daily_spend
                            WHERE day = $2 AND linked_account_id = $1`, [ACCOUNTS[0], monthsAgo(4, 1)]);
  assert.equal(decimalToString(decimalSum([v.v])), decimalToString(decimalSum(['10.000000001', '0.01'])));
});

test('the daily call cap stops paging before the call that would pass it; nothing half-fetched is kept', async () => {
  await ctl('POST', 'config', { cePageSize: 2 });
  await seedCosts(monthsAgo(5, 1), monthsAgo(5, 4));     // 20 groups: 10 pages
  const used = (await one(db, `SELECT count(*)::int AS n FROM billops.aws_api_call WHERE service = 'ce'
                                  AND called_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`)).n;
  const before = await billed();
  await db.query(`UPDATE billops.setting SET value = $1 WHERE name = 'ce_daily_call_cap'`, [String(used + 3)]);
  try {
    db.notices = [];
    await db.query('SET client_min_messages = warning');
    const r = await fetchSpend(monthsAgo(5, 1), monthsAgo(5, 4));
    await db.query('SET client_min_messages = error');
    assert.deepEqual([r.status, r.calls, r.sqlstate], ['capped', 3, '54000']);
    assert.match(r.message, /daily cap of \d+ Cost Explorer calls is reached/);
    assert.ok(db.notices.some((n) => /GetCostAndUsage for payer 999900001111 stopped/.test(n)), 'a WARNING says so');
    assert.equal(await billed() - before, 3, 'exactly the capped number of calls reached AWS');
    assert.equal((await one(db, `SELECT count(*)::int AS n FROM billops.ce_fetched_day WHERE day BETWEEN $1 AND $2`, [monthsAgo(5, 1), monthsAgo(5, 4)])).n, 0);
    // a capped fetch asks nothing at all
    const again = await fetchSpend(monthsAgo(5, 1), monthsAgo(5, 4));
    assert.deepEqual([again.status, again.calls], ['capped', 0]);
    assert.equal(await billed() - before, 3);
  } finally {
    await db.query(`UPDATE billops.setting SET value = '100' WHERE name = 'ce_daily_call_cap'`);
  }
  const r = await fetchSpend(monthsAgo(5, 1), monthsAgo(5, 4));
  assert.deepEqual([r.status, r.calls, r.items], ['fetched', 10, 4]);
});

test('throttling and 5xx are retried; a failure after retries keeps the ledger and the cache as they were', async () => {
  const expected = await seedCosts(monthsAgo(6, 1), monthsAgo(6, 2));
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'throttle', count: 2 }] });
  const r = await fetchSpend(monthsAgo(6, 1), monthsAgo(6, 1));
  assert.deepEqual([r.status, r.calls], ['fetched', 1]);
  assert.equal((await one(db, `SELECT attempts FROM billops.aws_api_call ORDER BY call_id DESC LIMIT 1`)).attempts, 3);

  await db.query('SET billops.aws_api_max_retries = 2');
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'status', status: 503, count: null }] });
  await db.query(`UPDATE billops.setting SET value = '0' WHERE name = 'ce_estimated_refresh_hours'`);
  await db.query(`UPDATE billops.ce_fetched_day SET estimated = true WHERE day = $1`, [monthsAgo(6, 1)]);
  try {
    const f = await fetchSpend(monthsAgo(6, 1), monthsAgo(6, 2));
    assert.deepEqual([f.status, f.calls, f.sqlstate], ['failed', 1, '58030']);
    assert.match(f.message, /failed after 3 attempts/);
    const last = await one(db, `SELECT outcome, billed_usd::text, error_sqlstate FROM billops.aws_api_call ORDER BY call_id DESC LIMIT 1`);
    assert.deepEqual(last, { outcome: 'error', billed_usd: '0.00', error_sqlstate: '58030' });
    const kept = await cached(monthsAgo(6, 1), monthsAgo(6, 2));
    assert.deepEqual(Object.keys(kept).sort(), ACCOUNTS.map((a) => `${monthsAgo(6, 1)}|${a}`), 'the day fetched before is still there');
    assert.equal(exact(kept)[`${monthsAgo(6, 1)}|${ACCOUNTS[1]}`], exact(expected)[`${monthsAgo(6, 1)}|${ACCOUNTS[1]}`]);
  } finally {
    await db.query('RESET billops.aws_api_max_retries');
    await db.query(`UPDATE billops.setting SET value = '6' WHERE name = 'ce_estimated_refresh_hours'`);
    await ctl('DELETE', 'faults');
  }
  // a dropped connection is retried too
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetCostAndUsage' }, kind: 'drop' }] });
  const d = await fetchSpend(monthsAgo(6, 2), monthsAgo(6, 2));
  assert.deepEqual([d.status, d.calls], ['fetched', 1], d.message);
});

test('signature and access errors: 28000 with AWS\'s type, and no secret in the message, the ledger or the log', async () => {
  await seedCosts(monthsAgo(7, 1), monthsAgo(7, 1));
  const token = 'billops-session-token-1234567890';
  await db.query(`UPDATE billops.aws_api_source SET credentials = 'profile:session' WHERE payer_account_id = $1`, [PAYER]);
  try {
    // the session token is signed and accepted
    assert.equal((await fetchSpend(monthsAgo(7, 1), monthsAgo(7, 1))).status, 'fetched');
    // AWS's InvalidSignatureException goes on with the canonical request, token included
    await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetAnomalies' }, kind: 'error', type: 'InvalidSignatureException',
      message: `The request signature we calculated does not match the signature you provided.\n\nThe Canonical String for this request should have been\n'POST\n/\n\nx-amz-security-token:${token}\n'` }] });
    const r = await one(db, `SELECT * FROM billops.fetch_ce_anomalies($1, current_date - 10)`, [PAYER]);
    assert.deepEqual([r.status, r.sqlstate], ['failed', '28000']);
    assert.match(r.message, /GetAnomalies failed: InvalidSignatureException/);
    assert.match(r.message, /does not match the signature you provided/);
    const { rows } = await db.query(`SELECT error_message FROM billops.aws_api_call WHERE error_message IS NOT NULL`);
    const log = fs.readFileSync(path.join(RUN, 'log', 'postgres.log'), 'utf8');
    assert.match(log, /GetAnomalies for payer 999900001111 stopped: AWS Cost Explorer GetAnomalies failed: InvalidSignatureException/,
      'the WARNING reached the server log');
    for (const x of [r.message, log, ...rows.map((y) => y.error_message)]) {
      assert.ok(!x.includes(token) && !x.includes('billops-session-secret'), `no secret in: ${x.slice(-2000)}`);
    }
    await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetAnomalies' }, kind: 'error', type: 'AccessDeniedException',
      message: 'User is not authorized to perform: ce:GetAnomalies' }] });
    const a = await one(db, `SELECT * FROM billops.fetch_ce_anomalies($1, current_date - 10)`, [PAYER]);
    assert.deepEqual([a.status, a.sqlstate], ['failed', '28000']);
  } finally {
    await db.query(`UPDATE billops.aws_api_source SET credentials = 'default' WHERE payer_account_id = $1`, [PAYER]);
  }
  // a wrong secret: AWS's own check, through the emulator's signer
  await db.query(`UPDATE billops.aws_api_source SET credentials = 'profile:wrong-secret' WHERE payer_account_id = $1`, [PAYER]);
  try {
    const w = await one(db, `SELECT * FROM billops.fetch_ce_anomalies($1, current_date - 10)`, [PAYER]);
    assert.deepEqual([w.status, w.sqlstate], ['failed', '28000']);
    assert.match(w.message, /InvalidSignatureException/);
    assert.ok(!w.message.includes('Canonical'), 'the canonical request AWS echoes is cut off');
  } finally {
    await db.query(`UPDATE billops.aws_api_source SET credentials = 'default' WHERE payer_account_id = $1`, [PAYER]);
  }
});

test('GetAnomalies: paged, recorded as signals for the account owner, deduplicated across re-runs', async () => {
  await ctl('POST', 'config', { anomalyPageSize: 2 });
  const day = (n) => new Date(Date.now() - n * 86400000).toISOString().slice(0, 10);
  const anomaly = (id, n, account, impact) => ({
    AnomalyId: id, AnomalyStartDate: day(n), AnomalyEndDate: day(n - 1), DimensionValue: 'Amazon EC2',
    RootCauses: [{ Service: 'Amazon Elastic Compute Cloud - Compute', LinkedAccount: account, Region: 'us-east-1' }],
    AnomalyScore: { MaxScore: 0.9, CurrentScore: 0.5 },
    Impact: { MaxImpact: impact, TotalActualSpend: impact + 100, TotalExpectedSpend: 100 },
  });
  await ctl('POST', 'anomalies', { anomalies: [anomaly('an-1', 20, ACCOUNTS[0], 500), anomaly('an-2', 10, ACCOUNTS[1], 250),
    anomaly('an-3', 5, ACCOUNTS[2], 75.5)] });
  const r = await one(db, 'SELECT * FROM billops.fetch_ce_anomalies($1)', [PAYER]);
  assert.deepEqual([r.status, r.calls, r.items, r.new_items], ['fetched', 2, 3, 3]);
  const again = await one(db, 'SELECT * FROM billops.fetch_ce_anomalies($1)', [PAYER]);
  assert.deepEqual([again.items, again.new_items], [3, 0]);
  const { rows } = await db.query(`SELECT dedupe_key, payer_account_id, usage_account_id, impact::text, times_seen
                                     FROM billops.spend_signal WHERE source = 'ce_anomaly' ORDER BY dedupe_key`);
  assert.deepEqual(rows, [
    { dedupe_key: 'ce_anomaly|an-1', payer_account_id: PAYER, usage_account_id: ACCOUNTS[0], impact: '500.00', times_seen: 2 },
    { dedupe_key: 'ce_anomaly|an-2', payer_account_id: PAYER, usage_account_id: ACCOUNTS[1], impact: '250.00', times_seen: 2 },
    { dedupe_key: 'ce_anomaly|an-3', payer_account_id: PAYER, usage_account_id: ACCOUNTS[2], impact: '75.50', times_seen: 2 },
  ]);
  const q = await one(db, `SELECT count(*)::int AS n FROM billops.early_review_queue WHERE source = 'ce_anomaly'`);
  assert.equal(q.n, 3, 'each is an early-review item');
});

test('invoices: summaries paged, PDFs fetched byte for byte and attached to the payables built from them', async () => {
  // more than one page (pg_billops asks for the most a page may hold, 100)
  const small = Array.from({ length: 101 }, (_, i) => ({ AccountId: '111111111111', InvoiceId: `INV-FEB-${i}`,
    IssuedDate: '2024-03-02T00:00:00Z', BillingPeriod: { Month: 2, Year: 2024 }, totalAmount: `${i}.01`, currencyCode: 'USD' }));
  await ctl('POST', 'invoices', { invoices: small });
  const feb = await one(db, `SELECT * FROM billops.fetch_aws_invoices('111111111111', '2024-02-01', documents => false)`);
  assert.deepEqual([feb.status, feb.calls, feb.items, feb.new_items], ['fetched', 2, 101, 101]);
  const febTotal = (await one(db, `SELECT sum(total_amount)::text AS t FROM billops.aws_invoice WHERE billing_period = '2024-02-01'`)).t;
  assert.equal(decimalToString(decimalSum([febTotal])), decimalToString(decimalSum(small.map((x) => x.totalAmount))));

  const csv = path.join(RUN, 'aws-api-invoices.csv');
  writeBillTestMonth(csv, [
    ['INV-AWS-7', AWS_INC, 'AWS', '222222222222', 'Usage', 'AmazonEC2', '700.25', AWS_INC, 'Amazon Elastic Compute Cloud'],
    ['INV-AWS-7', AWS_INC, 'AWS', '222222222222', 'Tax', 'AmazonEC2', '56.02', AWS_INC, 'Amazon Elastic Compute Cloud'],
    ['INV-SF-7', AWS_INC, 'AWS Marketplace', '333333333333', 'Usage', 'prod-sf', '1234.56', 'Snowflake Inc.', 'Snowflake Compute'],
  ], 0);
  await db.query(`INSERT INTO billops.vendor (name, kind) VALUES ('Snowflake', 'marketplace_seller')`);
  await db.query(`INSERT INTO billops.vendor_alias (vendor_id, match_kind, pattern)
                  SELECT vendor_id, 'exact', 'Snowflake Inc.' FROM billops.vendor WHERE name = 'Snowflake'`);
  await db.query(`SELECT billops.load_cur_file($1, 'aws-api-test', 'aws-api-1')`, [csv]);
  await db.query('SELECT count(*) FROM billops.build_payables()');
  const pdf = (s) => Buffer.from(`%PDF-1.4\n% ${s}\n%%EOF\n`);
  const inv = (id, total, tax, body) => ({ AccountId: '111111111111', InvoiceId: id, IssuedDate: '2024-04-02T00:00:00Z',
    BillingPeriod: { Month: 3, Year: 2024 }, totalAmount: total, taxAmount: tax, currencyCode: 'USD',
    Entity: { InvoicingEntity: 'Amazon Web Services, Inc.' }, pdfBase64: body.toString('base64') });
  await ctl('POST', 'invoices', { invoices: [inv('INV-AWS-7', '756.27', '56.02', pdf('aws')), inv('INV-SF-7', '1234.56', '0.00', pdf('sf')),
    inv('INV-OTHER-7', '10.00', '0.00', pdf('other'))] });
  // the first document link has expired by the time it is used: a new one is asked for
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'GetDocument' }, kind: 'status', status: 403, type: 'AccessDenied', message: 'Request has expired' }] });

  const r = await one(db, `SELECT * FROM billops.fetch_aws_invoices('111111111111', '2024-03-01')`);
  assert.deepEqual([r.status, r.items, r.new_items], ['fetched', 3, 3]);
  assert.equal(r.calls, 1 + 4, `one page, then GetInvoicePDF three times plus once more for the expired link: ${JSON.stringify((await ctl('GET', 'requests')).map((x) => [x.operation, x.status, x.outcome]))}`);
  const { rows: docs } = await db.query(`SELECT invoice_id, encode(content, 'escape') AS body FROM billops.aws_invoice_document ORDER BY 1`);
  assert.deepEqual(docs.map((d) => [d.invoice_id, d.body]), [
    ['INV-AWS-7', pdf('aws').toString()], ['INV-OTHER-7', pdf('other').toString()], ['INV-SF-7', pdf('sf').toString()]]);
  // each PDF on every payable built from its invoice's lines (INV-AWS-7 carries usage and tax: two
  // payables); the invoice with no CUR lines, and so no payable, waits
  const { rows: att } = await db.query(
    `SELECT d.file_name, encode(d.content, 'escape') AS body, count(*)::int AS n,
            bool_and(p.aws_invoice_ids @> ARRAY[substring(d.file_name FROM 'aws-invoice-(.*)\\.pdf')]) AS own
       FROM billops.payable_document d JOIN billops.payable p USING (payable_id) GROUP BY 1, 2 ORDER BY 1`);
  const payablesOf = async (id) => (await one(db, `SELECT count(*)::int AS n FROM billops.payable WHERE $1 = ANY (aws_invoice_ids)`, [id])).n;
  assert.deepEqual(att, [
    { file_name: 'aws-invoice-INV-AWS-7.pdf', body: pdf('aws').toString(), n: await payablesOf('INV-AWS-7'), own: true },
    { file_name: 'aws-invoice-INV-SF-7.pdf', body: pdf('sf').toString(), n: await payablesOf('INV-SF-7'), own: true }]);
  assert.ok(att[0].n >= 1 && att[1].n >= 1);
  const ov = await one(db, `SELECT visible_delivery_id IS NOT NULL AS seen, cardinality(payable_ids) AS n, document
                              FROM billops.aws_invoice_overview WHERE invoice_id = 'INV-SF-7'`);
  assert.deepEqual(ov, { seen: true, n: 1, document: 'aws-invoice-INV-SF-7.pdf' });

  // again: the summaries are read, nothing is downloaded or attached twice
  const again = await one(db, `SELECT * FROM billops.fetch_aws_invoices('111111111111', '2024-03-01')`);
  assert.deepEqual([again.status, again.calls, again.new_items], ['fetched', 1, 0]);
  assert.equal((await one(db, 'SELECT count(*)::int AS n FROM billops.payable_document')).n, att[0].n + att[1].n);

  // the invoices reconcile with the CUR
  const { rows: recon } = await db.query(`SELECT check_name, subject FROM billops.reconcile('2024-03-01', '111111111111')
                                           WHERE check_name = 'invoice_vs_cur'`);
  assert.deepEqual(recon, [{ check_name: 'invoice_vs_cur', subject: 'INV-OTHER-7' }], 'only the invoice with no CUR lines differs');
});

test('the monthly cycle fetches invoices, anomalies and daily spend per payer, and a failed fetch fails the run', async () => {
  await ctl('POST', 'faults', { faults: [{ match: { operation: 'ListInvoiceSummaries' }, kind: 'error', type: 'AccessDeniedException',
    message: 'not authorized' }] });
  await db.query('SET client_min_messages = error');
  await db.query('CALL billops.run_monthly_cycle()');
  const run = await one(db, `SELECT status, detail->'aws_api' AS api, errors FROM billops.job_run ORDER BY run_id DESC LIMIT 1`);
  assert.equal(run.status, 'failed');
  const ops = run.api.map((x) => `${x.payer} ${x.operation} ${x.status}`).sort();
  assert.deepEqual(ops, [
    '111111111111 GetAnomalies fetched', '111111111111 GetCostAndUsage fetched', '111111111111 ListInvoiceSummaries failed',
    `${PAYER} GetAnomalies fetched`, `${PAYER} GetCostAndUsage fetched`, `${PAYER} ListInvoiceSummaries fetched`,
  ].sort(), 'the one-shot fault hit the first payer (in account order) only, and the run went on');
  assert.deepEqual(run.errors.map((e) => [e.step, e.sqlstate]), [['ListInvoiceSummaries', '28000']]);
  // the next run: the days fetched are cached, so Cost Explorer is asked nothing new
  await ctl('DELETE', 'faults');
  await ctl('DELETE', 'stats');
  await db.query('CALL billops.run_monthly_cycle()');
  const next = await one(db, `SELECT status, detail->'aws_api' AS api FROM billops.job_run ORDER BY run_id DESC LIMIT 1`);
  assert.equal(next.status, 'succeeded');
  assert.ok(next.api.filter((x) => x.operation === 'GetCostAndUsage').every((x) => x.status === 'cached' || x.calls <= 1),
    'at most the estimated recent days again');
});

test('bad input is refused before any call, with a SQLSTATE', async () => {
  let e = await expectError(db, `SELECT billops.fetch_ce_daily_spend('123456789012')`);
  assert.equal(e.code, '42704');
  assert.match(e.hint, /INSERT INTO billops.aws_api_source/);
  e = await expectError(db, `SELECT billops.fetch_ce_daily_spend($1, '2024-02-01', '2024-01-01')`, [PAYER]);
  assert.equal(e.code, '22023');
  e = await expectError(db, `SELECT billops.fetch_ce_daily_spend($1, current_date, current_date + 3)`, [PAYER]);
  assert.equal(e.code, '22023');
  e = await expectError(db, `SELECT billops.fetch_aws_invoices($1, '2024-03-15')`, [PAYER]);
  assert.equal(e.code, '22023');
  e = await expectError(db, `INSERT INTO billops.aws_api_source (payer_account_id, credentials) VALUES ('123456789012', 'AKIDLOOKSLIKEAKEY')`);
  assert.equal(e.code, '23514', 'a key is not a credentials reference');
  e = await expectError(db, `UPDATE billops.aws_api_source SET cost_explorer_url = 'http://example.com' WHERE payer_account_id = $1
                             RETURNING billops._aws_api_call(cost_explorer_url, region, credentials, 'ce', 'GetAnomalies', '{}')`, [PAYER]);
  assert.equal(e.code, '22023', 'plain HTTP only to loopback');
  await db.query(`UPDATE billops.aws_api_source SET enabled = false WHERE payer_account_id = $1`, [PAYER]);
  e = await expectError(db, `SELECT billops.fetch_ce_anomalies($1)`, [PAYER]);
  assert.equal(e.code, '55000');
  await db.query(`UPDATE billops.aws_api_source SET enabled = true WHERE payer_account_id = $1`, [PAYER]);
  assert.equal((await ctl('GET', 'stats')).apiRequests, 0, 'nothing reached AWS');
});
