// One month reads the same whichever layout delivered it, and a migration
// from legacy CUR to CUR 2.0 keeps one history without counting a month twice.
// The generator writes the same organisation's month in both layouts (same
// seed: same rows, amounts, tags); the S3 emulator serves them.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { freshDatabase, closeAll, expectError, generate, bucketDir, S3, S3_ROOT, normNumeric } from './helpers.mjs';

let db;
before(async () => { db = await freshDatabase('billops_it_layouts'); });
after(async () => { await closeAll(); });

const SEED = '23';
function gen(bucket, report, layout, period, extra = []) {
  bucketDir(bucket);
  const exp = path.join(S3_ROOT, `exp-${report}-${period}.json`);
  generate(['--out', S3_ROOT, '--bucket', bucket, '--prefix', 'cur', '--report', report, '--layout', layout,
    '--period', period, '--rows', '4000', '--payer', '1', '--accounts', '5', '--seed', SEED, '--final',
    '--expected', exp, '--quiet', ...extra]);
  return JSON.parse(fs.readFileSync(exp, 'utf8'));
}
async function source(name, bucket, report, layout, replaces = null) {
  await db.query(`SELECT billops.create_cur_source($1, $2, $3, layout => $4, prefix => 'cur', endpoint_url => $5,
                  path_style => true, replaces => $6)`, [name, bucket, report, layout, S3, replaces]);
}
async function sync(name) {
  db.notices = [];
  await db.query('CALL billops.sync_cur_source($1)', [name]);
  return db.notices;
}
const q = async (sql, args = []) => (await db.query(sql, args)).rows;

// What an analyst reads of a month: through both Athena faces and the canonical table.
async function monthReading(period) {
  const ym = period.slice(0, 7);
  return {
    cur2: await q(`SELECT product['product_name'] AS service, product['region'] AS region, line_item_usage_account_id AS account,
                          line_item_line_item_type AS type, resource_tags['user_cost_center'] AS cc, resource_tags['user_owner'] AS owner,
                          cost_category['team'] AS team, count(*)::int AS n, trim_scale(sum(line_item_unblended_cost))::text AS cost,
                          trim_scale(sum(pricing_public_on_demand_cost))::text AS od,
                          trim_scale(sum(savings_plan_savings_plan_effective_cost))::text AS sp
                     FROM billops.athena_cur2 WHERE billing_period = $1 GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 1, 2, 3, 4, 5, 6, 7`, [ym]),
    legacy: await q(`SELECT product_product_name AS service, product_region AS region, product_instance_type AS it,
                            resource_tags_user_environment AS env, cost_category_project AS project,
                            count(*)::int AS n, trim_scale(sum(line_item_unblended_cost))::text AS cost
                       FROM billops.athena_cur WHERE year || '-' || lpad(month, 2, '0') = $1
                      GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5`, [ym]),
    spend: await q(`SELECT usage_account_id, service, trim_scale(unblended_cost)::text AS unblended, trim_scale(amortized_cost)::text AS amortized
                      FROM billops.cur_spend_by_account_service WHERE billing_period = $1 ORDER BY 1, 2`, [period]),
  };
}

test('the same month as legacy CUR and as CUR 2.0 reads the same; a second source of a month is refused, then a migration takes it over', async () => {
  // legacy CUR for October and November; CUR 2.0 (AWS Data Exports) for November and December
  const legOct = gen('mig-legacy', 'hourly', 'legacy', '2023-10', ['--columns', 'all']);
  const legNov = gen('mig-legacy', 'hourly', 'legacy', '2023-11', ['--columns', 'all']);
  const c2Nov = gen('mig-cur2', 'export', 'cur2', '2023-11');
  const c2Dec = gen('mig-cur2', 'export', 'cur2', '2023-12');
  const payer = Object.keys(legNov.payers)[0];
  assert.equal(Object.keys(c2Nov.payers)[0], payer, 'one organisation in both layouts');
  assert.equal(c2Nov.payers[payer].unblendedCost, legNov.payers[payer].unblendedCost, 'the generator wrote the same month twice');

  await source('old-cur', 'mig-legacy', 'hourly', 'legacy_cur');
  await sync('old-cur');
  const legacyReading = await monthReading('2023-11-01');
  assert.ok(legacyReading.cur2.length > 20 && legacyReading.legacy.length > 20, 'a month with some variety');
  assert.ok(legacyReading.cur2.some((r) => r.cc !== null), 'legacy user:CostCenter reads as resource_tags[\'user_cost_center\']');
  assert.ok(legacyReading.legacy.some((r) => r.env !== ''), 'and as resource_tags_user_environment');
  await db.query(`SELECT billops.build_payables('2023-11-01')`);
  const payablesLegacy = await q(`SELECT charge_source, amount::text FROM billops.payable WHERE billing_period = '2023-11-01' AND status <> 'void' ORDER BY 1`);

  // a CUR 2.0 source of the same payer, not marked as a migration: refused, nothing changes
  await source('new-export', 'mig-cur2', 'export', 'cur2');
  const err = await expectError(db, 'CALL billops.sync_cur_source($1)', ['new-export']);
  assert.equal(err.code, '55000');
  assert.match(err.message, /already loaded from source "old-cur"/);
  assert.match(err.detail, /counted twice/);
  assert.match(err.hint, /replaces_source_id/);
  const [{ total }] = await q(`SELECT sum(line_item_unblended_cost)::text AS total FROM billops.cur_line_item
                                WHERE bill_billing_period_start_date = '2023-11-01'`);
  assert.equal(normNumeric(total), normNumeric(legNov.payers[payer].unblendedCost), 'November is counted once, from the legacy source');
  assert.deepEqual((await q(`SELECT to_char(billing_period, 'YYYY-MM') AS p, s.name FROM billops.cur_partition JOIN billops.cur_source s USING (source_id) ORDER BY 1`))
    .map((r) => `${r.p} ${r.name}`), ['2023-10 old-cur', '2023-11 old-cur', '2023-12 new-export'],
  'December (no conflict) loaded; November stays legacy');

  // the migration: the export replaces the legacy report
  await db.query(`UPDATE billops.cur_source SET replaces_source_id = (SELECT source_id FROM billops.cur_source WHERE name = 'old-cur')
                   WHERE name = 'new-export'`);
  await sync('new-export');
  assert.deepEqual((await q(`SELECT to_char(billing_period, 'YYYY-MM') AS p, s.name FROM billops.cur_partition JOIN billops.cur_source s USING (source_id) ORDER BY 1`))
    .map((r) => `${r.p} ${r.name}`), ['2023-10 old-cur', '2023-11 new-export', '2023-12 new-export'],
  'November now comes from CUR 2.0; October\'s history stays');
  const [{ n, total: t2 }] = await q(`SELECT count(*)::int AS n, sum(line_item_unblended_cost)::text AS total FROM billops.cur_line_item
                                        WHERE bill_billing_period_start_date = '2023-11-01'`);
  assert.equal(n, c2Nov.payers[payer].rows, 'November holds the CUR 2.0 rows only');
  assert.equal(normNumeric(t2), normNumeric(c2Nov.payers[payer].unblendedCost), 'and is counted once');
  assert.deepEqual((await q(`SELECT d.status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                              WHERE s.name = 'old-cur' AND d.billing_period = '2023-11-01'`)).map((r) => r.status), ['superseded'],
  'the legacy delivery it replaced is history');

  // the same month read through CUR 2.0 is the month read through legacy CUR
  const cur2Reading = await monthReading('2023-11-01');
  assert.deepEqual(cur2Reading.cur2, legacyReading.cur2, 'athena_cur2 answers the same for the month, whichever layout delivered it');
  assert.deepEqual(cur2Reading.legacy, legacyReading.legacy, 'athena_cur answers the same');
  assert.deepEqual(cur2Reading.spend, legacyReading.spend, 'cur_spend_by_account_service answers the same');
  await db.query(`SELECT billops.build_payables('2023-11-01')`);
  const payablesCur2 = await q(`SELECT charge_source, amount::text FROM billops.payable WHERE billing_period = '2023-11-01' AND status <> 'void' ORDER BY 1`);
  assert.deepEqual(payablesCur2, payablesLegacy, 'payables of the month are the same, to the cent');

  // the legacy source keeps running and no longer loads the months its replacement holds
  const before = await q(`SELECT count(*)::int AS n FROM billops.cur_delivery`);
  const notices = await sync('old-cur');
  assert.ok(notices.some((m) => /2023-11: loaded from source "new-export", which replaces this one/.test(m)), notices.join('\n'));
  assert.deepEqual(await q(`SELECT count(*)::int AS n FROM billops.cur_delivery`), before, 'nothing downloaded again');
  // a late legacy re-delivery of November cannot take the month back either
  gen('mig-legacy', 'hourly', 'legacy', '2023-11', ['--columns', 'all', '--deliveries', '2', '--delivery', '2']);
  await sync('old-cur');
  const [{ total: t3 }] = await q(`SELECT sum(line_item_unblended_cost)::text AS total FROM billops.cur_line_item
                                    WHERE bill_billing_period_start_date = '2023-11-01'`);
  assert.equal(normNumeric(t3), normNumeric(c2Nov.payers[payer].unblendedCost), 'November is still the CUR 2.0 delivery, once');
  assert.ok(c2Dec.payers[payer].rows > 0);
});

test('a CREATE_NEW_REPORT export: every run is kept under its executionId and the newest one is loaded', async () => {
  const first = gen('keep-all', 'versions', 'cur2', '2024-01', ['--overwrite', 'CREATE_NEW_REPORT', '--deliveries', '2', '--delivery', '1']);
  await source('versions', 'keep-all', 'versions', 'cur2');
  await sync('versions');
  const payer = Object.keys(first.payers)[0];
  const total = async () => normNumeric((await q(`SELECT sum(line_item_unblended_cost)::text AS t FROM billops.cur_line_item
                                                   WHERE bill_billing_period_start_date = '2024-01-01' AND bill_payer_account_id = $1`, [payer]))[0].t);
  assert.equal(await total(), normNumeric(first.payers[payer].unblendedCost));
  const second = gen('keep-all', 'versions', 'cur2', '2024-01', ['--overwrite', 'CREATE_NEW_REPORT', '--deliveries', '2', '--delivery', '2']);
  assert.notEqual(second.payers[payer].unblendedCost, first.payers[payer].unblendedCost);
  await sync('versions');
  assert.equal(await total(), normNumeric(second.payers[payer].unblendedCost), 'the second run replaced the first');
  const d = await q(`SELECT d.assembly_id, d.status FROM billops.cur_delivery d JOIN billops.cur_source s USING (source_id)
                      WHERE s.name = 'versions' ORDER BY delivery_id`);
  assert.deepEqual(d.map((x) => x.assembly_id), [first.last.assemblyId, second.last.assemblyId], 'each run is the executionId of its manifest');
  assert.deepEqual(d.map((x) => x.status), ['superseded', 'loaded']);
  // both runs' files are still in S3 (create-new keeps them)
  const runs = fs.readdirSync(path.join(S3_ROOT, 'keep-all', 'cur', 'versions', 'data', 'BILLING_PERIOD=2024-01'));
  assert.equal(runs.length, 2);
});
