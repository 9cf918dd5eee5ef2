#!/usr/bin/env node
// gen-cur.mjs — deterministic synthetic AWS Cost and Usage Report generator (pg_billops tests).
//
// Writes legacy CUR ("create new report" versioned deliveries) or CUR 2.0 (AWS Data Exports) objects
// into the directory tree served by the S3 emulator (ROOT/BUCKET/KEY), plus optional expected totals
// computed with exact decimal arithmetic (BigInt on values scaled by 1e10), never floating point.
//
// Same arguments => byte-identical output (seeded PRNG, fixed gzip level, gzip mtime 0).
// Only node: built-ins are used. Rows are streamed through zlib in ~1 MiB chunks with backpressure,
// so memory does not grow with --rows. See README.md next to this file.

import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { pathToFileURL } from 'node:url';
import { parseOptions } from './cli-options.mjs';

const USAGE = `usage: node gen-cur.mjs --out ROOT --bucket BUCKET --prefix PREFIX --report NAME
         --layout legacy|cur2 --period YYYY-MM --rows N
         [--deliveries K] [--delivery k] [--files F] [--seed S] [--payer K] [--accounts A]
         [--final] [--columns known|all] [--no-gzip] [--gzip-level 0-9]
         [--numbers java|plain] [--overwrite OVERWRITE_REPORT|CREATE_NEW_REPORT]
         [--expected FILE] [--emit-plain FILE] [--quiet]`;

const OPTS = {
  out: { t: 'str' }, bucket: { t: 'str' }, prefix: { t: 'str', d: '' }, report: { t: 'str' },
  layout: { t: 'str' }, period: { t: 'str' }, rows: { t: 'int' },
  deliveries: { t: 'int', d: 1 }, delivery: { t: 'int', d: 0 }, files: { t: 'int', d: 0 },
  seed: { t: 'str', d: '1' }, payer: { t: 'int', d: 1 }, accounts: { t: 'int', d: 8 },
  final: { t: 'bool', d: false }, columns: { t: 'str', d: 'all' }, 'no-gzip': { t: 'bool', d: false },
  'gzip-level': { t: 'int', d: 6 }, numbers: { t: 'str', d: '' }, expected: { t: 'str', d: '' },
  'emit-plain': { t: 'str', d: '' }, overwrite: { t: 'str', d: 'OVERWRITE_REPORT' }, quiet: { t: 'bool', d: false }, help: { t: 'bool', d: false },
};

export function parseArgs(argv) {
  const o = parseOptions(argv, OPTS, USAGE);
  if (o.help) return o;
  for (const k of ['out', 'bucket', 'report', 'layout', 'period', 'rows'])
    if (o[k] === undefined) throw new Error(`missing required option --${k}\n${USAGE}`);
  if (o.layout !== 'legacy' && o.layout !== 'cur2') throw new Error(`--layout must be legacy or cur2, got "${o.layout}"`);
  if (o.columns !== 'known' && o.columns !== 'all') throw new Error(`--columns must be known or all, got "${o.columns}"`);
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(o.period)) throw new Error(`--period must be YYYY-MM, got "${o.period}"`);
  if (o.rows < 1) throw new Error('--rows must be >= 1');
  if (o.deliveries < 1) throw new Error('--deliveries must be >= 1');
  if (o.delivery > o.deliveries) throw new Error(`--delivery ${o.delivery} is beyond --deliveries ${o.deliveries}`);
  if (o.payer < 1 || o.payer > 50) throw new Error('--payer must be 1..50');
  if (o.accounts < 1 || o.accounts > 200) throw new Error('--accounts must be 1..200');
  if (o['gzip-level'] > 9) throw new Error('--gzip-level must be 0..9');
  if (o.overwrite !== 'OVERWRITE_REPORT' && o.overwrite !== 'CREATE_NEW_REPORT')
    throw new Error(`--overwrite must be OVERWRITE_REPORT or CREATE_NEW_REPORT (S3OutputConfigurations.Overwrite), got "${o.overwrite}"`);
  if (!o.numbers) o.numbers = o.layout === 'legacy' ? 'java' : 'plain';
  if (o.numbers !== 'java' && o.numbers !== 'plain') throw new Error('--numbers must be java or plain');
  if (!/^[A-Za-z0-9._-]+$/.test(o.report)) throw new Error(`--report "${o.report}" must match [A-Za-z0-9._-]+`);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(o.bucket)) throw new Error(`--bucket "${o.bucket}" is not a valid S3 bucket name`);
  o.prefix = o.prefix.replace(/^\/+|\/+$/g, '');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Deterministic randomness. One global mulberry32 state, re-seeded per row from (seed, stream, i)
// so that row i has the same content in every delivery regardless of what came before.
// ---------------------------------------------------------------------------------------------
let S = 0;
function rnd() {
  S = (S + 0x6D2B79F5) | 0;
  let t = Math.imul(S ^ (S >>> 15), 1 | S);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
function rndInt(n) { return Math.floor(rnd() * n); }
function pick(a) { return a[Math.floor(rnd() * a.length)]; }
function fmix(h) {
  h ^= h >>> 16; h = Math.imul(h, 0x85ebca6b); h ^= h >>> 13; h = Math.imul(h, 0xc2b2ae35); h ^= h >>> 16;
  return h >>> 0;
}
function seedFor(base, stream, i) {
  S = fmix((base ^ fmix(stream + 0x9e3779b9) ^ fmix((i + 1) * 0x27d4eb2f | 0) ^ Math.floor(i / 4294967296)) | 0) | 0;
}
function sha(s) { return crypto.createHash('sha256').update(s).digest(); }
function uuidFrom(s) {
  const b = sha(s);
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}
// Map columns (CUR 2.0 resource_tags, cost_category, product, discount) hold JSON text; the record keeps
// them already CSV-encoded (they always contain quotes) so the hot path does not re-scan them. {} -> empty.
function csvJson(o) {
  const j = JSON.stringify(o);
  return j === '{}' ? '' : '"' + j.replace(/"/g, '""') + '"';
}
function charsFrom(s, alphabet, n) {
  const b = sha(s); let out = '';
  for (let i = 0; i < n; i++) out += alphabet[b[i % 32] % alphabet.length];
  return out;
}
const HEX = '0123456789abcdef', UPPER = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789', LOWER = 'abcdefghijklmnopqrstuvwxyz0123456789';
const B32 = 'abcdefghijklmnopqrstuvwxyz234567';

// ---------------------------------------------------------------------------------------------
// Exact decimals: amounts are integers scaled by 1e10 (10 decimal places, like real CUR), kept in
// JS Numbers only while |v| < 2^53 (per line amounts are capped far below), summed into BigInt.
// ---------------------------------------------------------------------------------------------
const SCALE = 1e10;
function decToScaled(str) {
  const m = /^(-?)(\d+)(?:\.(\d{1,10}))?$/.exec(str);
  if (!m) throw new Error(`bad decimal literal ${str}`);
  const v = Number(m[2]) * SCALE + Number((m[3] || '').padEnd(10, '0'));
  return m[1] ? -v : v;
}
function splitScaled(v) {
  let ip = Math.floor(v / SCALE), fp = v - ip * SCALE;
  if (fp < 0) { ip -= 1; fp += SCALE; } else if (fp >= SCALE) { ip += 1; fp -= SCALE; }
  return [ip, fp];
}
function fracStr(fp) { // 0 <= fp < 1e10 -> digits after the point, trailing zeros removed (at least one digit)
  const f = String(fp + SCALE); let e = 11;
  while (e > 2 && f.charCodeAt(e - 1) === 48) e--;
  return f.slice(1, e);
}
// "plain": 0.0123456789, 24.0, -1.5 (never an exponent).
function fmtPlain(v) {
  if (v === 0) return '0.0';
  const neg = v < 0; if (neg) v = -v;
  const [ip, fp] = splitScaled(v);
  return (neg ? '-' : '') + ip + '.' + (fp === 0 ? '0' : fracStr(fp));
}
// "java": Java Double.toString style as in real legacy CUR files: 0.0, 1.0, 0.0029729825, 1.6E-5, 9.0E-9.
function fmtJava(v) {
  if (v === 0) return '0.0';
  const neg = v < 0; const a = neg ? -v : v;
  if (a >= 1e7) return fmtPlain(v);
  const s = String(a); let e = s.length;
  while (e > 1 && s.charCodeAt(e - 1) === 48) e--;
  const d = s.slice(0, e);
  return (neg ? '-' : '') + d[0] + '.' + (d.length > 1 ? d.slice(1) : '0') + 'E-' + (10 - s.length + 1);
}
function fmtBig(b) { // BigInt scaled by 1e10 -> fixed 10 decimals
  const neg = b < 0n; if (neg) b = -b;
  const s = b.toString().padStart(11, '0');
  return (neg ? '-' : '') + s.slice(0, -10) + '.' + s.slice(-10);
}

class Sums { // exact per-index sums: Number accumulator flushed into BigInt before it could lose precision
  constructor(n) { this.n = new Float64Array(n); this.b = new Array(n).fill(0n); this.c = new Float64Array(n); }
  add(i, v) {
    const x = this.n[i] + v; this.c[i]++;
    if (x > 7e15 || x < -7e15) { this.b[i] += BigInt(x); this.n[i] = 0; } else this.n[i] = x;
  }
  big(i) { return this.b[i] + BigInt(this.n[i]); }
  str(i) { return fmtBig(this.big(i)); }
  count(i) { return this.c[i]; }
}

// ---------------------------------------------------------------------------------------------
// Columns. Record keys are the Athena/CUR 2.0 snake-case names; legacy headers map to them by the
// same rule Athena uses (lineItem/UnblendedCost -> line_item_unblended_cost, ReservationARN -> a_r_n).
// ---------------------------------------------------------------------------------------------
export function snake(legacyName) {
  const [cat, name] = legacyName.split('/');
  const sn = (s) => s.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()).replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
  return sn(cat) + '_' + sn(name);
}

// The 94 columns of the real sample (test/../shared/testdata/cur/legacy-cur-2023-11-sample.csv) are
// marked 1; 0 marks the extra columns written with --columns all (resource ids, net/discount columns,
// more product attributes, tags, cost categories, split line items and a never-seen attribute).
// Product attributes AWS's CUR queries read (legacy columns product/<name>; CUR 2.0 product map keys)
const EXTRA_ATTRS = ['volumeApiName', 'physicalProcessor', 'preInstalledSw', 'deploymentOption', 'attachmentType', 'brokerEngine',
  'bundle', 'portSpeed', 'usageFamily', 'storage', 'directConnectLocation', 'license', 'description', 'runningMode', 'softwareIncluded'];

const LEGACY_COLUMNS = [
  ['identity/LineItemId', 1], ['identity/TimeInterval', 1],
  ['bill/InvoiceId', 1], ['bill/InvoicingEntity', 1], ['bill/BillingEntity', 1], ['bill/BillType', 1],
  ['bill/PayerAccountId', 1], ['bill/BillingPeriodStartDate', 1], ['bill/BillingPeriodEndDate', 1],
  ['lineItem/UsageAccountId', 1], ['lineItem/LineItemType', 1], ['lineItem/UsageStartDate', 1],
  ['lineItem/UsageEndDate', 1], ['lineItem/ProductCode', 1], ['lineItem/UsageType', 1], ['lineItem/Operation', 1],
  ['lineItem/AvailabilityZone', 1], ['lineItem/ResourceId', 0], ['lineItem/UsageAmount', 1],
  ['lineItem/NormalizationFactor', 1], ['lineItem/NormalizedUsageAmount', 1], ['lineItem/CurrencyCode', 1],
  ['lineItem/UnblendedRate', 1], ['lineItem/UnblendedCost', 1], ['lineItem/BlendedRate', 1], ['lineItem/BlendedCost', 1],
  ['lineItem/LineItemDescription', 1], ['lineItem/TaxType', 1], ['lineItem/NetUnblendedRate', 0],
  ['lineItem/NetUnblendedCost', 0], ['lineItem/LegalEntity', 1],
  ['product/ProductName', 1], ['product/availability', 1], ['product/databaseEngine', 0], ['product/durability', 1],
  ['product/eventType', 1], ['product/feeCode', 1], ['product/feeDescription', 1], ['product/fromLocation', 1],
  ['product/fromLocationType', 1], ['product/fromRegionCode', 1], ['product/group', 1], ['product/groupDescription', 1],
  ['product/instanceFamily', 0], ['product/instanceType', 0], ['product/location', 1], ['product/locationType', 1],
  ['product/memory', 0], ['product/messageDeliveryFrequency', 1], ['product/messageDeliveryOrder', 1],
  ['product/operatingSystem', 0], ['product/operation', 1], ['product/overhead', 1], ['product/productFamily', 1],
  ['product/productType', 1], ['product/queueType', 1], ['product/region', 1], ['product/regionCode', 1],
  ['product/servicecode', 1], ['product/servicename', 1], ['product/sku', 1], ['product/someNewAttribute', 0],
  ['product/storageClass', 1], ['product/storageMedia', 1], ['product/tenancy', 0], ['product/toLocation', 1],
  ['product/toLocationType', 1], ['product/toRegionCode', 1], ['product/transferType', 1], ['product/usagetype', 1],
  ['product/vcpu', 0], ['product/version', 1], ['product/volumeType', 1],
  ...EXTRA_ATTRS.map((n) => [`product/${n}`, 0]),
  ['pricing/LeaseContractLength', 0], ['pricing/OfferingClass', 0], ['pricing/PurchaseOption', 0],
  ['pricing/RateCode', 1], ['pricing/RateId', 1], ['pricing/currency', 1], ['pricing/publicOnDemandCost', 1],
  ['pricing/publicOnDemandRate', 1], ['pricing/term', 1], ['pricing/unit', 1],
  ['reservation/AmortizedUpfrontCostForUsage', 1], ['reservation/AmortizedUpfrontFeeForBillingPeriod', 1],
  ['reservation/EffectiveCost', 1], ['reservation/EndTime', 1], ['reservation/ModificationStatus', 1],
  ['reservation/NormalizedUnitsPerReservation', 1], ['reservation/NumberOfReservations', 1],
  ['reservation/RecurringFeeForUsage', 1], ['reservation/ReservationARN', 0], ['reservation/StartTime', 1],
  ['reservation/SubscriptionId', 1], ['reservation/TotalReservedNormalizedUnits', 1],
  ['reservation/TotalReservedUnits', 1], ['reservation/UnitsPerReservation', 1],
  ['reservation/UnusedAmortizedUpfrontFeeForBillingPeriod', 1], ['reservation/UnusedNormalizedUnitQuantity', 1],
  ['reservation/UnusedQuantity', 1], ['reservation/UnusedRecurringFee', 1], ['reservation/UpfrontValue', 1],
  ['savingsPlan/TotalCommitmentToDate', 1], ['savingsPlan/SavingsPlanARN', 1], ['savingsPlan/SavingsPlanRate', 1],
  ['savingsPlan/UsedCommitment', 1], ['savingsPlan/SavingsPlanEffectiveCost', 1],
  ['savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod', 1], ['savingsPlan/RecurringCommitmentForBillingPeriod', 1],
  ['savingsPlan/StartTime', 0], ['savingsPlan/EndTime', 0], ['savingsPlan/OfferingType', 0],
  ['savingsPlan/PaymentOption', 0], ['savingsPlan/PurchaseTerm', 0], ['savingsPlan/Region', 0],
  ['savingsPlan/InstanceTypeFamily', 0],
  ['discount/BundledDiscount', 0], ['discount/EdpDiscount', 0], ['discount/TotalDiscount', 0],
  ['resourceTags/aws:createdBy', 0], ['resourceTags/user:CostCenter', 0], ['resourceTags/user:Environment', 0],
  ['resourceTags/user:Name', 0], ['resourceTags/user:Owner', 0],
  ['costCategory/Project', 0], ['costCategory/Team', 0],
  ['splitLineItem/ParentResourceId', 0], ['splitLineItem/SplitCost', 0], ['splitLineItem/SplitUsage', 0],
  ['splitLineItem/SplitUsageRatio', 0], ['splitLineItem/UnusedCost', 0],
];

// CUR 2.0's columns are AWS's data dictionary (../shared/docs/cur2-data-dictionary.tsv, extracted
// from the Data Exports user guide's "table-dictionary-cur2-*" pages): the generator reads that file,
// so what it writes follows the document. Names are written as the SQL AWS's console generates them
// (lower case: the dictionary's product_instanceSKU is the header product_instancesku; the guide
// spells it both ways, see cur2-delivery-layout.md). Attributes that are not static columns
// (product_name, region, servicename, ...) are keys of the product map, as in AWS's CUR 2.0.
const SHARED = process.env.BILLOPS_SHARED || path.resolve(path.dirname(new URL(import.meta.url).pathname), '../../../shared');
export const CUR2_DICTIONARY = fs.readFileSync(path.join(SHARED, 'docs', 'cur2-data-dictionary.tsv'), 'utf8')
  .split('\n').slice(1).filter(Boolean).map((l) => { const [group, name, type, needs] = l.split('\t'); return { group, name: name.toLowerCase(), type, needs }; });
const CUR2_TYPE = new Map(CUR2_DICTIONARY.map((c) => [c.name, c.type]));

// CUR 2.0 --columns known: this exact list, in this order (the benchmark's COPY target).
export const CUR2_KNOWN = [
  'identity_line_item_id', 'identity_time_interval', 'bill_invoice_id', 'bill_invoicing_entity',
  'bill_billing_entity', 'bill_bill_type', 'bill_payer_account_id', 'bill_payer_account_name',
  'bill_billing_period_start_date', 'bill_billing_period_end_date', 'line_item_usage_account_id',
  'line_item_usage_account_name', 'line_item_line_item_type', 'line_item_usage_start_date',
  'line_item_usage_end_date', 'line_item_product_code', 'line_item_usage_type', 'line_item_operation',
  'line_item_availability_zone', 'line_item_resource_id', 'line_item_usage_amount',
  'line_item_normalization_factor', 'line_item_normalized_usage_amount', 'line_item_currency_code',
  'line_item_unblended_rate', 'line_item_unblended_cost', 'line_item_blended_rate', 'line_item_blended_cost',
  'line_item_net_unblended_rate', 'line_item_net_unblended_cost', 'line_item_line_item_description',
  'line_item_tax_type', 'line_item_legal_entity', 'product_servicecode',
  'product_product_family', 'product_region_code', 'product_location', 'product_sku', 'product_usagetype',
  'product_operation', 'product_instance_type', 'pricing_rate_code', 'pricing_rate_id', 'pricing_currency',
  'pricing_public_on_demand_cost', 'pricing_public_on_demand_rate', 'pricing_term', 'pricing_unit',
  'reservation_reservation_a_r_n', 'reservation_effective_cost', 'reservation_amortized_upfront_cost_for_usage',
  'reservation_amortized_upfront_fee_for_billing_period', 'reservation_recurring_fee_for_usage',
  'reservation_unused_amortized_upfront_fee_for_billing_period', 'reservation_unused_recurring_fee',
  'reservation_start_time', 'reservation_end_time', 'savings_plan_savings_plan_a_r_n',
  'savings_plan_savings_plan_rate', 'savings_plan_savings_plan_effective_cost',
  'savings_plan_total_commitment_to_date', 'savings_plan_used_commitment',
  'savings_plan_amortized_upfront_commitment_for_billing_period',
  'savings_plan_recurring_commitment_for_billing_period', 'resource_tags', 'cost_category', 'discount', 'product',
];
// CUR 2.0 --columns all: every column of the dictionary (optional groups included, as an export with
// every table option on), sorted by name like a default Data Exports query.
const CUR2_EXTRA = CUR2_DICTIONARY.map((c) => c.name).filter((n) => !CUR2_KNOWN.includes(n));
for (const k of CUR2_KNOWN) if (!CUR2_TYPE.has(k)) throw new Error(`CUR2_KNOWN column ${k} is not in AWS's data dictionary`);
// Text columns whose values come from fixed vocabularies without commas or quotes: written without the
// quoting check (the test re-parses every row and would catch a stray comma).
export const RAW_TEXT = new Set(['bill_billing_entity', 'bill_bill_type', 'line_item_line_item_type', 'line_item_product_code',
  'line_item_usage_type', 'line_item_operation', 'line_item_availability_zone', 'line_item_tax_type', 'product_servicecode',
  'product_region_code', 'product_region', 'product_usagetype', 'product_operation', 'product_instance_type', 'pricing_term',
  'pricing_unit', 'product_product_family', 'product_location_type', 'bill_invoice_id', 'line_item_resource_id',
  'product_location']);
const MAP_KEYS = new Set(['resource_tags', 'cost_category', 'discount', 'product', 'tags']);

export function keyKind(k) { // num | date | interval | map | id | text  (drives manifest types and CSV quoting)
  if (MAP_KEYS.has(k)) return 'map';
  if (k === 'identity_time_interval') return 'interval';
  if (k.endsWith('_commitment_to_date')) return 'num';
  if (/_(date|time)$/.test(k)) return 'date';
  if (/(_cost|_rate|_amount|_factor|_fee|_discount|_commitment_to_date|_used_commitment|_for_billing_period|_for_usage|_value|_units|_quantity|_usage|_ratio|_reservations|_reservation)$/.test(k)
    && !/(_usage_type|_split_usage_type)$/.test(k)) return 'num';
  if (/(account_id|line_item_id|_a_r_n|_sku|rate_id|rate_code|subscription_id|currency_code|^pricing_currency)$/.test(k)) return 'id';
  return 'text';
}

// ---------------------------------------------------------------------------------------------
// Reference data.
// ---------------------------------------------------------------------------------------------
const ENTITIES = [ // AWS sellers of record / invoicing entities
  { name: 'Amazon Web Services, Inc.', tax: 'US Sales Tax', inv: 'us' },
  { name: 'Amazon Web Services EMEA SARL', tax: 'VAT', inv: 'emea' },
  { name: 'Amazon Web Services Canada, Inc.', tax: 'Canada Tax', inv: 'ca' },
];
const SELLERS = [ // AWS Marketplace sellers of record (lineItem/LegalEntity)
  { name: 'Datadog, Inc.', product: 'Datadog Pro (Pay-As-You-Go)', dims: [['hosts', '0.0312500000'], ['apm_hosts', '0.0430000000'], ['logs_indexed_million', '1.7000000000']] },
  { name: 'Snowflake Inc.', product: 'Snowflake Data Cloud', dims: [['credits', '2.0000000000'], ['storage_tb_month', '0.7666666667']] },
  { name: 'MongoDB, Inc.', product: 'MongoDB Atlas (pay-as-you-go)', dims: [['atlas_usage_units', '0.0100000000']] },
  { name: 'Confluent, Inc.', product: 'Confluent Cloud (Pay as you Go)', dims: [['cku_hours', '1.5000000000'], ['data_in_gb', '0.0500000000']] },
  { name: 'Elasticsearch, Inc.', product: 'Elastic Cloud (Elasticsearch Service)', dims: [['ecu', '0.0012500000']] },
  { name: 'CrowdStrike, Inc.', product: 'CrowdStrike Falcon Endpoint Protection', dims: [['endpoints', '0.0118000000']] },
];
const LEGAL = [...ENTITIES.map((e) => e.name), ...SELLERS.map((s) => s.name)];
const REGIONS = [
  { code: 'us-east-1', px: 'USE1', loc: 'US East (N. Virginia)', az: 'abcdf', mult: 1.0 },
  { code: 'us-west-2', px: 'USW2', loc: 'US West (Oregon)', az: 'abcd', mult: 1.0 },
  { code: 'eu-west-1', px: 'EU', loc: 'EU (Ireland)', az: 'abc', mult: 1.1 },
  { code: 'eu-central-1', px: 'EUC1', loc: 'EU (Frankfurt)', az: 'abc', mult: 1.2 },
  { code: 'ca-central-1', px: 'CAN1', loc: 'Canada (Central)', az: 'abd', mult: 1.1 },
  { code: 'ap-southeast-1', px: 'APS1', loc: 'Asia Pacific (Singapore)', az: 'abc', mult: 1.25 },
  { code: 'ap-northeast-1', px: 'APN1', loc: 'Asia Pacific (Tokyo)', az: 'acd', mult: 1.3 },
  { code: 'ap-south-1', px: 'APS3', loc: 'Asia Pacific (Mumbai)', az: 'abc', mult: 1.05 },
];
const HOME_REGIONS = [[0, 1], [2, 3], [4, 0]]; // per entity index
const INSTANCES = { // type: [on-demand $/h in us-east-1, normalization factor, vcpu, memory]
  't3.micro': ['0.0104', '0.5', '2', '1 GiB'], 't3.medium': ['0.0416', '2.0', '2', '4 GiB'],
  'm5.large': ['0.096', '4.0', '2', '8 GiB'], 'm5.xlarge': ['0.192', '8.0', '4', '16 GiB'],
  'c5.2xlarge': ['0.34', '16.0', '8', '16 GiB'], 'r5.large': ['0.126', '4.0', '2', '16 GiB'],
  'm6g.large': ['0.077', '4.0', '2', '8 GiB'], 'c6i.4xlarge': ['0.68', '32.0', '16', '32 GiB'],
};
const WORDS = ['orders', 'search', 'ingest', 'billing', 'auth', 'catalog', 'reports', 'events', 'media', 'checkout', 'ledger', 'notify'];
const OWNERS = ['alice', 'bob', 'carol', 'dmitri', 'eve', "o'brien", 'chen, wei', 'farah'];
const ENVS = ['prod', 'prod', 'staging', 'dev', 'test'];
const COST_CENTERS = ['CC-1001', 'CC-1002', 'CC-2040', 'CC-3100', 'CC-4200'];
const PROJECTS = ['checkout', 'search', 'data-lake', 'mobile', 'internal-tools'];
const PAYER_NAMES = ['Acme Corp', 'Globex Holdings', 'Initech, Inc.', 'Umbrella Group', 'Stark Industries', 'Wayne Enterprises'];
const ACCOUNT_SUFFIXES = [['prod', 'platform'], ['staging', 'platform'], ['data-platform', 'data'], ['dev', 'engineering'],
  ['security-audit', 'security'], ['log-archive', 'security'], ['research, sandbox', ''], ['shared-services', 'platform'],
  ['ml-training', 'data'], ['networking', 'network'], ['analytics', 'data'], ['payments', 'payments']];

// Usage templates: product code, product name, servicecode, family, usage-type suffix, operation, unit,
// us-east-1 rate, usage kind, resource kind, weight, extra product attributes.
function T(o) { return o; }
const TEMPLATES = [];
for (const [it, [rate, nf, vcpu, mem]] of Object.entries(INSTANCES)) {
  TEMPLATES.push(T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'Compute Instance', ut: `BoxUsage:${it}`,
    op: 'RunInstances', unit: 'Hrs', rate, kind: 'hours', res: 'ec2', w: it.startsWith('m5') ? 7 : 3, az: true, inst: it, nf,
    riable: true, spable: true, desc: (r) => `$${r} per On Demand Linux ${it} Instance Hour`,
    attrs: { instanceType: it, instanceFamily: it.startsWith('c') ? 'Compute optimized' : it.startsWith('r') ? 'Memory optimized' : 'General purpose',
      vcpu, memory: mem, operatingSystem: 'Linux', tenancy: 'Shared', availability: '', version: '',
      physicalProcessor: /g\./.test(it) ? 'AWS Graviton2 Processor' : 'Intel Xeon Platinum 8175', preInstalledSw: 'NA' } }));
}
TEMPLATES.push(
  T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'Storage', ut: 'EBS:VolumeUsage.gp3', op: 'CreateVolume-Gp3', unit: 'GB-Mo', rate: '0.08', kind: 'gbmo', res: 'vol', w: 8, az: true,
    desc: (r, g) => `$${r} per GB-month of General Purpose (gp3) provisioned storage - ${g.loc}`, attrs: { volumeType: 'General Purpose', storageMedia: 'SSD-backed', volumeApiName: 'gp3' } }),
  T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'Storage Snapshot', ut: 'EBS:SnapshotUsage', op: 'CreateSnapshot', unit: 'GB-Mo', rate: '0.05', kind: 'gbmo', res: 'snap', w: 3,
    desc: (r, g) => `$${r} per GB-Month of snapshot data stored - ${g.loc}`, attrs: { storageMedia: 'Amazon S3' } }),
  T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'NAT Gateway', ut: 'NatGateway-Hours', op: 'NatGateway', unit: 'Hrs', rate: '0.045', kind: 'hours', res: 'nat', w: 2,
    desc: (r) => `$${r} per NAT Gateway Hour`, attrs: { group: 'NGW:NatGateway', groupDescription: 'Hourly charge for NAT Gateways' } }),
  T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'NAT Gateway', ut: 'NatGateway-Bytes', op: 'NatGateway', unit: 'GB', rate: '0.045', kind: 'gb', res: 'nat', w: 2,
    desc: (r) => `$${r} per GB Data Processed by NAT Gateways`, attrs: { group: 'NGW:NatGateway', groupDescription: 'Charge for per GB data processed by NatGateways' } }),
  T({ code: 'AmazonEC2', pn: 'Amazon Elastic Compute Cloud', fam: 'Data Transfer', ut: 'DataTransfer-Regional-Bytes', op: 'InterZone-Out', unit: 'GB', rate: '0.01', kind: 'gb', res: 'ec2', w: 4,
    desc: (r) => `$${r} per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB`, attrs: { transferType: 'IntraRegion', fromLocationType: 'AWS Region', toLocationType: 'AWS Region', sameRegionTransfer: true } }),
  T({ code: 'AWSDataTransfer', pn: 'AWS Data Transfer', fam: 'Data Transfer', ut: 'DataTransfer-Out-Bytes', op: 'RunInstances', unit: 'GB', rate: '0.09', kind: 'gb', res: '', w: 3,
    desc: (r) => `$${r} per GB - first 10 TB / month data transfer out beyond the global free tier`, attrs: { transferType: 'AWS Outbound', fromLocationType: 'AWS Region', toLocation: 'External', toLocationType: 'Other', outbound: true } }),
  T({ code: 'AWSDataTransfer', pn: 'AWS Data Transfer', fam: 'Data Transfer', ut: '{pair}-AWS-Out-Bytes', op: 'RunInstances', unit: 'GB', rate: '0.02', kind: 'gb', res: '', w: 2, interRegion: true,
    desc: (r, g, g2) => `$${r} per GB - ${g.loc} data transfer to ${g2.loc}`, attrs: { transferType: 'InterRegion Outbound', fromLocationType: 'AWS Region', toLocationType: 'AWS Region' } }),
  T({ code: 'AmazonS3', pn: 'Amazon Simple Storage Service', fam: 'Storage', ut: 'TimedStorage-ByteHrs', op: 'StandardStorage', unit: 'GB-Mo', rate: '0.023', kind: 'gbmo', res: 's3', w: 6,
    desc: (r) => `$${r} per GB - first 50 TB / month of storage used`, attrs: { storageClass: 'General Purpose', volumeType: 'Standard', durability: '99.999999999%', availability: '99.99%' } }),
  T({ code: 'AmazonS3', pn: 'Amazon Simple Storage Service', fam: 'API Request', ut: 'Requests-Tier1', op: 'PutObject', unit: 'Requests', rate: '0.000005', kind: 'req', res: 's3', w: 5,
    desc: () => '$0.005 per 1,000 PUT, COPY, POST, or LIST requests', attrs: { group: 'S3-API-Tier1', groupDescription: 'PUT/COPY/POST or LIST requests' } }),
  T({ code: 'AmazonS3', pn: 'Amazon Simple Storage Service', fam: 'API Request', ut: 'Requests-Tier2', op: 'GetObject', unit: 'Requests', rate: '0.0000004', kind: 'req', res: 's3', w: 5,
    desc: () => '$0.0004 per 1,000 GET and all other requests', attrs: { group: 'S3-API-Tier2', groupDescription: 'GET and all other requests' } }),
  T({ code: 'AmazonRDS', pn: 'Amazon Relational Database Service', fam: 'Database Instance', ut: 'InstanceUsage:db.r5.large', op: 'CreateDBInstance:0002', unit: 'Hrs', rate: '0.25', kind: 'hours', res: 'rds', w: 3, az: true, nf: '4.0', riable: true,
    desc: (r) => `$${r} per RDS db.r5.large Single-AZ instance hour (or partial hour) running MySQL`, attrs: { instanceType: 'db.r5.large', instanceFamily: 'Memory optimized', databaseEngine: 'MySQL', vcpu: '2', memory: '16 GiB', deploymentOption: 'Single-AZ' } }),
  T({ code: 'AmazonRDS', pn: 'Amazon Relational Database Service', fam: 'Database Instance', ut: 'InstanceUsage:db.t3.medium', op: 'CreateDBInstance:0014', unit: 'Hrs', rate: '0.072', kind: 'hours', res: 'rds', w: 2, az: true, nf: '2.0',
    desc: (r) => `$${r} per RDS db.t3.medium Single-AZ instance hour (or partial hour) running PostgreSQL`, attrs: { instanceType: 'db.t3.medium', instanceFamily: 'General purpose', databaseEngine: 'PostgreSQL', vcpu: '2', memory: '4 GiB', deploymentOption: 'Single-AZ' } }),
  T({ code: 'AmazonRDS', pn: 'Amazon Relational Database Service', fam: 'Database Storage', ut: 'RDS:GP2-Storage', op: 'CreateDBInstance:0002', unit: 'GB-Mo', rate: '0.115', kind: 'gbmo', res: 'rds', w: 2,
    desc: (r) => `$${r} per GB-month of provisioned GP2 storage running MySQL`, attrs: { volumeType: 'General Purpose', databaseEngine: 'MySQL' } }),
  T({ code: 'AWSLambda', pn: 'AWS Lambda', fam: 'Serverless', ut: 'Lambda-GB-Second', op: 'Invoke', unit: 'Lambda-GB-Second', rate: '0.0000166667', kind: 'gbsec', res: 'lambda', w: 6, spable: true,
    desc: (r) => `AWS Lambda - Total Compute - ${r} per GB-second`, attrs: { group: 'AWS-Lambda-Duration', groupDescription: 'Invocation duration' } }),
  T({ code: 'AWSLambda', pn: 'AWS Lambda', fam: 'Serverless', ut: 'Request', op: 'Invoke', unit: 'Requests', rate: '0.0000002', kind: 'req', res: 'lambda', w: 4,
    desc: () => 'AWS Lambda - Total Requests - $0.20 per 1M requests', attrs: { group: 'AWS-Lambda-Requests', groupDescription: 'Invocation call for a Lambda function' } }),
  T({ code: 'AmazonCloudWatch', pn: 'AmazonCloudWatch', fam: 'Metric', ut: 'CW:MetricMonitorUsage', op: 'MetricStorage', unit: 'Metrics', rate: '0.3', kind: 'count', res: '', w: 3,
    desc: (r) => `$${r} per metric-month - first 10,000 metrics`, attrs: { group: 'Metric', groupDescription: 'Metric' } }),
  T({ code: 'AmazonCloudWatch', pn: 'AmazonCloudWatch', fam: 'Data Payload', ut: 'DataProcessing-Bytes', op: 'PutLogEvents', unit: 'GB', rate: '0.5', kind: 'gb', res: 'logs', w: 3,
    desc: (r) => `$${r} per GB - data ingested for Standard logs`, attrs: { group: 'Ingested Logs', groupDescription: 'Existing system, application, and custom log files' } }),
  T({ code: 'AmazonCloudWatch', pn: 'AmazonCloudWatch', fam: 'Storage Snapshot', ut: 'TimedStorage-ByteHrs', op: 'PutLogEvents', unit: 'GB-Mo', rate: '0.03', kind: 'gbmo', res: 'logs', w: 2,
    desc: (r) => `$${r} per GB-mo of log storage`, attrs: { storageMedia: 'Amazon S3' } }),
  T({ code: 'AmazonDynamoDB', pn: 'Amazon DynamoDB', fam: 'Amazon DynamoDB PayPerRequest Throughput', ut: 'ReadRequestUnits', op: 'PayPerRequestThroughput', unit: 'ReadRequestUnits', rate: '0.00000025', kind: 'req', res: 'ddb', w: 3,
    desc: (r) => `$${r} per ReadRequestUnits`, attrs: { group: 'DDB-ReadUnits', groupDescription: 'DynamoDB PayPerRequest Read Request Units' } }),
  T({ code: 'AmazonDynamoDB', pn: 'Amazon DynamoDB', fam: 'Database Storage', ut: 'TimedStorage-ByteHrs', op: 'StandardStorage', unit: 'GB-Mo', rate: '0.25', kind: 'gbmo', res: 'ddb', w: 2,
    desc: (r) => `$${r} per GB-Month of storage used beyond first 25 free GB-Months`, attrs: { volumeType: 'Amazon DynamoDB - Indexed DataStore' } }),
  T({ code: 'AmazonCloudFront', pn: 'Amazon CloudFront', fam: 'Data Transfer', ut: 'US-DataTransfer-Out-Bytes', op: 'GET', unit: 'GB', rate: '0.085', kind: 'gb', res: 'cf', w: 2, global: 'United States',
    desc: (r) => `$${r} per GB - first 10 TB / month data transfer out (United States)`, attrs: { transferType: 'CloudFront Outbound', toLocation: 'External', toLocationType: 'Other' } }),
  T({ code: 'AmazonVPC', pn: 'Amazon Virtual Private Cloud', fam: 'VpcEndpoint', ut: 'VpcEndpoint-Hours', op: 'VpcEndpoint', unit: 'Hrs', rate: '0.01', kind: 'hours', res: 'vpce', w: 2,
    desc: (r) => `$${r} per VPC Endpoint Hour`, attrs: { group: 'VpcEndpoint', groupDescription: 'Hourly charge for VPC Endpoints' } }),
  T({ code: 'AmazonVPC', pn: 'Amazon Virtual Private Cloud', fam: 'IP Address', ut: 'PublicIPv4:InUseAddress', op: 'AssociateAddressVPC', unit: 'Hrs', rate: '0.005', kind: 'hours', res: 'eip', w: 3,
    desc: (r) => `$${r} per In-use public IPv4 address per hour`, attrs: { group: 'VPCPublicIPv4Address', groupDescription: 'Hourly charge for In-use Public IPv4 Addresses' } }),
  T({ code: 'AWSELB', pn: 'Elastic Load Balancing', fam: 'Load Balancer-Application', ut: 'LoadBalancerUsage', op: 'LoadBalancing:Application', unit: 'Hrs', rate: '0.0225', kind: 'hours', res: 'alb', w: 2,
    desc: (r) => `$${r} per Application LoadBalancer-hour (or partial hour)`, attrs: { group: 'ELB:Balancer', groupDescription: 'LoadBalancer hourly usage by Application Load Balancer' } }),
  T({ code: 'AWSELB', pn: 'Elastic Load Balancing', fam: 'Load Balancer-Application', ut: 'LCUUsage', op: 'LoadBalancing:Application', unit: 'LCU-Hrs', rate: '0.008', kind: 'gb', res: 'alb', w: 2,
    desc: (r) => `$${r} per used Application load balancer capacity unit-hour (or partial hour)`, attrs: { group: 'ELB:Balancer', groupDescription: 'Used Application load balancer capacity units-hr' } }),
  T({ code: 'awskms', pn: 'AWS Key Management Service', fam: 'Encryption Key', ut: 'KMS-Keys', op: 'CreateKey', unit: 'Keys', rate: '1', kind: 'count', res: 'kms', w: 1,
    desc: (r) => `$${r} per customer master key (CMK) per month`, attrs: {} }),
  T({ code: 'awskms', pn: 'AWS Key Management Service', fam: 'API Request', ut: 'KMS-Requests', op: 'DescribeKey', unit: 'Requests', rate: '0.000003', kind: 'req', res: 'kms', w: 2,
    desc: () => '$0.03 per 10,000 requests', attrs: { group: 'KMS-Requests', groupDescription: 'All AWS KMS API requests' } }),
  T({ code: 'AWSQueueService', pn: 'Amazon Simple Queue Service', fam: 'API Request', ut: 'Requests-Tier1', op: 'SendMessage', unit: 'Requests', rate: '0.0000004', kind: 'req', res: 'sqs', w: 2,
    desc: () => 'First 1,000,000 Amazon SQS Requests per month are free', attrs: { queueType: 'Standard', messageDeliveryFrequency: 'At Least Once', messageDeliveryOrder: 'Not Guaranteed', group: 'SQS-APIRequest-Tier1', groupDescription: 'Amazon SQS Requests' } }),
  T({ code: 'AmazonSNS', pn: 'Amazon Simple Notification Service', fam: 'API Request', ut: 'Requests-Tier1', op: 'Publish', unit: 'Requests', rate: '0.0000005', kind: 'req', res: 'sns', w: 1,
    desc: () => '$0.50 per 1 million Amazon SNS API Requests', attrs: { group: 'SNS-Requests-Tier1', groupDescription: 'Amazon SNS API Requests' } }),
  T({ code: 'AmazonEKS', pn: 'Amazon Elastic Container Service for Kubernetes', fam: 'Compute', ut: 'AmazonEKS-Hours:perCluster', op: 'CreateOperation', unit: 'Hours', rate: '0.1', kind: 'hours', res: 'eks', w: 1,
    desc: (r) => `Amazon EKS cluster usage - $${r} per hour`, attrs: {} }),
  T({ code: 'AmazonRoute53', pn: 'Amazon Route 53', fam: 'DNS Zone', ut: 'HostedZone', op: '', unit: 'HostedZone', rate: '0.5', kind: 'count', res: 'r53', w: 1, global: 'Global',
    desc: (r) => `$${r} per Hosted Zone for the first 25 Hosted Zones`, attrs: {} }),
  T({ code: 'AmazonRoute53', pn: 'Amazon Route 53', fam: 'DNS Query', ut: 'DNS-Queries', op: 'Query', unit: 'Queries', rate: '0.0000004', kind: 'req', res: 'r53', w: 1, global: 'Global',
    desc: () => '$0.40 per 1,000,000 queries for the first 1 Billion queries', attrs: {} }),
  T({ code: 'AWSSecretsManager', pn: 'AWS Secrets Manager', fam: 'Secret', ut: 'AWSSecretsManager-Secrets', op: 'Secrets', unit: 'Secrets', rate: '0.4', kind: 'count', res: 'secret', w: 1,
    desc: (r) => `$${r} per secret per month`, attrs: {} }),
  // services whose attributes AWS's CUR queries read (product/attachmentType, brokerEngine, bundle, portSpeed, usageFamily)
  T({ code: 'AmazonVPC', pn: 'Amazon Virtual Private Cloud', fam: 'TransitGateway', ut: 'TransitGateway-Hours', op: 'TransitGatewayVPC', unit: 'hours', rate: '0.05', kind: 'hours', res: 'tgw', w: 1,
    desc: (r) => `$${r} per TransitGateway VPC attachment-hour (or partial hour)`, attrs: { attachmentType: 'VPC', group: 'AWSTransitGateway', groupDescription: 'Charge for Transit Gateway attachment hours' } }),
  T({ code: 'AmazonMQ', pn: 'Amazon MQ', fam: 'Broker Instances', ut: 'BrokerUsage:mq.m5.large', op: 'CreateBroker:0001', unit: 'Hrs', rate: '0.288', kind: 'hours', res: 'mq', w: 1,
    desc: (r) => `$${r} per hour for mq.m5.large single-instance broker`, attrs: { brokerEngine: 'ActiveMQ', deploymentOption: 'Single-AZ', instanceType: 'mq.m5.large' } }),
  T({ code: 'AmazonWorkSpaces', pn: 'Amazon WorkSpaces', fam: 'Amazon WorkSpaces', ut: 'AW-HW-2-AutoStop-Usage', op: 'Windows', unit: 'Hourly', rate: '0.26', kind: 'hours', res: 'ws', w: 1,
    desc: (r) => `$${r} per hour for Standard Windows AutoStop WorkSpace`, attrs: { bundle: 'Standard', runningMode: 'AutoStop', operatingSystem: 'Windows', storage: 'Root:80 GB,User:50 GB', license: 'Included', softwareIncluded: 'Plus', vcpu: '2', memory: '4 GiB' } }),
  T({ code: 'AWSDirectConnect', pn: 'AWS Direct Connect', fam: 'Direct Connect', ut: 'DirectConnect-Port-Hours:1G', op: 'CreateConnection', unit: 'Hrs', rate: '0.3', kind: 'hours', res: 'dx', w: 1,
    desc: (r) => `$${r} per 1G port-hour`, attrs: { portSpeed: '1G', connectionType: 'Dedicated', directConnectLocation: 'Equinix DC2/DC11, Ashburn, VA' } }),
  T({ code: 'AmazonRedshift', pn: 'Amazon Redshift', fam: 'Compute Instance', ut: 'Node:ra3.xlplus', op: 'RunComputeNode:0001', unit: 'Hrs', rate: '1.086', kind: 'hours', res: 'rs', w: 1,
    desc: (r) => `$${r} per RA3 XL Plus Compute Node hour`, attrs: { usageFamily: 'Compute', instanceType: 'ra3.xlplus', vcpu: '4', memory: '32 GiB' } }),
  T({ code: 'AWSGlue', pn: 'AWS Glue', fam: 'AWS Glue', ut: 'Catalog-Request', op: 'Request', unit: 'Request', rate: '0.000001', kind: 'req', res: '', w: 1,
    desc: () => '$1.00 per million requests above 1M free requests', attrs: { group: 'Data catalog requests', groupDescription: 'Data catalog requests', description: 'AWS Glue Data Catalog requests' } }),
);
for (const t of TEMPLATES) t.rateS = decToScaled(t.rate);
const TPL_CUM = []; { let c = 0; for (const t of TEMPLATES) { c += t.w; TPL_CUM.push(c); } }
const TPL_TOTAL = TPL_CUM[TPL_CUM.length - 1];
function pickTemplate() {
  const x = rnd() * TPL_TOTAL; let i = 0;
  while (TPL_CUM[i] <= x) i++;
  return i;
}
const EC2_TPLS = TEMPLATES.map((t, i) => (t.spable ? i : -1)).filter((i) => i >= 0);
const TAX_PRODUCTS = [...new Set(TEMPLATES.map((t) => t.code))];
const PN_OF = Object.fromEntries(TEMPLATES.map((t) => [t.code, t.pn]));

// Line item types for ordinary (non-late) rows: [type, cumulative weight in per-mille].
const TYPE_NAMES = ['Usage', 'DiscountedUsage', 'SavingsPlanCoveredUsage', 'SavingsPlanNegation', 'SavingsPlanRecurringFee',
  'SavingsPlanUpfrontFee', 'RIFee', 'Fee', 'Tax', 'Credit', 'Refund', 'EdpDiscount', 'BundledDiscount'];
const TYPE_IX = Object.fromEntries(TYPE_NAMES.map((n, i) => [n, i]));
// Rows per 10,000, tuned so that amounts keep realistic shares of the bill at any --rows: usage ~75%,
// Marketplace ~7%, tax ~6%, credits/refunds ~-3%, EDP ~-5%, SP commitments close to the covered usage.
const MIX = [ // 'MP' = AWS Marketplace usage (type Usage)
  ['Usage', 7412], ['MP', 300], ['DiscountedUsage', 500], ['SavingsPlanCoveredUsage', 600], ['SavingsPlanNegation', 550],
  ['SavingsPlanRecurringFee', 150], ['SavingsPlanUpfrontFee', 3], ['RIFee', 10], ['Fee', 10], ['Tax', 250], ['Credit', 80],
  ['Refund', 20], ['EdpDiscount', 100], ['BundledDiscount', 15],
];
const MIX_CUM = []; { let c = 0; for (const [n, w] of MIX) { c += w; MIX_CUM.push([c / 10000, n]); } if (c !== 10000) throw new Error('mix'); }

// ---------------------------------------------------------------------------------------------
// The generator.
// ---------------------------------------------------------------------------------------------
export async function generate(opt) {
  const t0 = process.hrtime.bigint();
  const layout = opt.layout, legacy = layout === 'legacy';
  const seedBase = sha(`gen-cur|${opt.seed}`).readUInt32LE(0) | 0;
  const ctxTag = `${opt.seed}|${layout}|${opt.period}|${opt.rows}|${opt.report}|${opt.payer}|${opt.accounts}|${opt.deliveries}`;
  const [year, month] = opt.period.split('-').map(Number);
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const ny = month === 12 ? year + 1 : year, nm = month === 12 ? 1 : month + 1;
  const p2 = (n) => String(n).padStart(2, '0');
  const ymd = (y, m, d) => `${y}-${p2(m)}-${p2(d)}`;
  const ms = legacy ? '.000Z' : 'Z'; // legacy: as the real sample; CUR 2.0: per our brief
  const dayIso = []; for (let d = 0; d <= days; d++) dayIso.push(d < days ? ymd(year, month, d + 1) : ymd(ny, nm, 1));
  const hourStr = dayIso.map((ds) => { const a = []; for (let h = 0; h < 24; h++) a.push(`${ds}T${p2(h)}:00:00${ms}`); return a; });
  const interval = []; for (let d = 0; d < days; d++) interval.push(`${dayIso[d]}T00:00:00Z/${dayIso[d + 1]}T00:00:00Z`);
  const periodStart = hourStr[0][0], periodEnd = hourStr[days][0];
  const hoursInMonth = days * 24;
  const fmt = opt.numbers === 'java' ? fmtJava : fmtPlain;
  const rateTxt = (s) => fmtPlain(s).replace(/\.0$/, '');
  const yy = String(year % 100).padStart(2, '0');

  // --- columns for this layout ---
  let header, keys, manifestColumns;
  if (legacy) {
    const cols = LEGACY_COLUMNS.filter(([, known]) => opt.columns === 'all' || known).map(([n]) => n);
    header = cols; keys = cols.map(snake);
    manifestColumns = cols.map((n, i) => {
      const [category, name] = n.split('/'); const kind = keyKind(keys[i]);
      const type = kind === 'num' ? 'OptionalBigDecimal' : kind === 'interval' ? 'Interval'
        : kind === 'date' ? (category === 'bill' || category === 'lineItem' ? 'DateTime' : 'OptionalDateTime')
          : (category === 'identity' || n === 'bill/PayerAccountId' || n === 'lineItem/UsageAccountId' || n === 'lineItem/LineItemType'
            || n === 'lineItem/CurrencyCode' || n === 'lineItem/ProductCode') ? 'String' : 'OptionalString';
      return { category, name, type };
    });
  } else {
    keys = opt.columns === 'known' ? CUR2_KNOWN.slice() : [...CUR2_KNOWN, ...CUR2_EXTRA].sort();
    header = keys;
    manifestColumns = keys.map((k) => {
      const kind = keyKind(k);
      return { name: k, type: CUR2_TYPE.get(k) };
    });
  }
  const allKeys = [...new Set([...LEGACY_COLUMNS.map(([n]) => snake(n)), ...CUR2_KNOWN, ...CUR2_EXTRA])];
  const R = new Function(`return {${allKeys.map((k) => `${k}:''`).join(',')}};`)();
  // only the written columns need clearing between rows (every generator sets the usage dates it reads back)
  const PRODUCT_MAP_FIELDS = ['product_product_name', 'product_region', 'product_servicename'];
  const reset = new Function('r', [...keys, ...(legacy ? [] : PRODUCT_MAP_FIELDS)].map((k) => `r.${k}='';`).join(''));
  const NEEDQ = /[",\r\n]/;
  const q = (s) => (s.length === 0 || !NEEDQ.test(s) ? s : '"' + s.replace(/"/g, '""') + '"');
  const serialize = new Function('q', `const A = new Array(${keys.length}).fill(''); return function(r){${keys.map((k, i) => {
    const kind = keyKind(k); return `A[${i}]=` + (kind === 'text' && !RAW_TEXT.has(k) ? `q(r.${k})` : `r.${k}`) + ';';
  }).join('')} return A.join(',');};`)(q);
  const headerLine = header.map(q).join(',') + '\n';
  const headerLen = Buffer.byteLength(headerLine);
  const needMaps = !legacy && keys.some((k) => MAP_KEYS.has(k));

  // --- payers, accounts, commitments (deterministic from the seed) ---
  const hashDigits = (s, n) => { const b = sha(s); let o = ''; for (let i = 0; o.length < n; i++) o += String(b[i % 32] % 10); return o; };
  const acctId = (s) => String(1 + (sha(s).readUInt32LE(0) % 9)) + hashDigits(s + '#', 11);
  const iso = (t) => new Date(t).toISOString().replace('.000Z', ms);
  const pStartMs = Date.UTC(year, month - 1, 1);
  const payers = [];
  // AWS writes one payer per report (bill/PayerAccountId is the management account: AWS's CUR data
  // dictionary), so a report holds the rows of one payer: the --payer-th of the seed's organizations.
  // Its ids and names depend on the seed and w only, so payer 2's report of a seed is the same
  // organization whatever else was generated; p indexes this run's statistics.
  for (const w of [opt.payer - 1]) {
    const p = 0;
    const base = PAYER_NAMES[w % PAYER_NAMES.length];
    const name = w < PAYER_NAMES.length ? base : `${base} ${Math.floor(w / PAYER_NAMES.length) + 1}`;
    const slug = name.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/-inc-?$|-$/g, '').split('-')[0];
    const id = acctId(`${opt.seed}|payer|${w}`);
    const ent = w % ENTITIES.length;
    const accounts = [{ id, name: `${slug}-management`, team: 'finops', ent, w: 0.15 }];
    for (let a = 1; a <= opt.accounts; a++) {
      const [suffix, team] = ACCOUNT_SUFFIXES[(a - 1) % ACCOUNT_SUFFIXES.length];
      const nth = Math.floor((a - 1) / ACCOUNT_SUFFIXES.length);
      // every 4th linked account is located elsewhere, so the payer gets a second AWS seller/invoice
      const aent = a % 4 === 3 ? (ent === 0 ? 1 : 0) : ent;
      accounts.push({ id: acctId(`${opt.seed}|acct|${w}|${a}`), name: `${slug}-${suffix}${nth ? '-' + (nth + 1) : ''}`, team, ent: aent, w: 1 / Math.pow(a, 0.7) });
    }
    const cum = []; let c = 0; for (const a of accounts) { c += a.w; cum.push(c); }
    const country = ['GB', 'DE', 'FR', 'IE', 'NL'][sha(`${opt.seed}|cc|${w}`)[0] % 5];
    // Reserved Instances (EC2 + RDS) and Savings Plans bought in the payer account.
    const ris = [];
    const riTpls = TEMPLATES.map((t, i) => (t.riable ? i : -1)).filter((i) => i >= 0);
    for (let r = 0; r < 4; r++) {
      const ti = riTpls[(r * 3 + w) % riTpls.length], t = TEMPLATES[ti];
      const region = REGIONS[HOME_REGIONS[ent][r % 2]];
      const odS = Math.round(t.rateS * region.mult / 1e4) * 1e4;
      const partial = r % 2 === 0;
      const effS = Math.round(odS * 0.62 / 1e4) * 1e4;
      const upS = partial ? Math.round(effS / 2 / 1e4) * 1e4 : 0;
      const count = 1 + (r * 7 + w) % 3;
      const startMs = pStartMs - (40 + r * 61) * 86400000 + 33082000;
      const isRds = t.code === 'AmazonRDS';
      const uid = uuidFrom(`${ctxTag}|ri|${w}|${r}`);
      ris.push({ ti, region, odS, effS, upS, recS: effS - upS, count, partial, subscription: hashDigits(`sub${w}|${r}`, 10),
        arn: isRds ? `arn:aws:rds:${region.code}:${id}:ri:ri-${uid.slice(0, 18)}` : `arn:aws:ec2:${region.code}:${id}:reserved-instances/${uid}`,
        start: iso(startMs), end: iso(startMs + 365 * 86400000), nf: t.nf || '1.0' });
    }
    const sps = [0, 1].map((s) => {
      const uid = uuidFrom(`${ctxTag}|sp|${w}|${s}`);
      const startMs = pStartMs - (100 + s * 45) * 86400000 + 51000000;
      const compute = s === 0;
      const commitS = decToScaled(compute ? ['0.375', '0.5', '0.25'][w % 3] : '0.2');
      const upS = compute ? 0 : decToScaled('0.1');
      return { arn: `arn:aws:savingsplans::${id}:savingsplan/${uid}`, compute, commitS, upS, disc: compute ? 0.28 : 0.42,
        offering: compute ? 'ComputeSavingsPlans' : 'EC2InstanceSavingsPlans', payment: compute ? 'No Upfront' : 'Partial Upfront',
        term: compute ? '1yr' : '3yr', ut: compute ? 'ComputeSP:1yrNoUpfront' : 'EC2SP:m5.3yrPartialUpfront', family: compute ? '' : 'm5',
        region: compute ? '' : 'us-east-1', start: iso(startMs), end: iso(startMs + (compute ? 365 : 1095) * 86400000) };
    });
    payers.push({ p, id, name, slug, ent, accounts, cum, country, ris, sps, edp: w % 2 === 0 ? 0.05 : 0 });
  }
  const NA = opt.accounts + 1;

  // --- per (template, region) product/pricing attributes, lazily cached ---
  const tplCache = new Map();
  function tplInfo(ti, ri, ri2 = 0) {
    const key = (ti * 16 + ri) * 16 + ri2;
    let o = tplCache.get(key); if (o) return o;
    const t = TEMPLATES[ti], g = REGIONS[ri], g2 = REGIONS[ri2];
    const rateS = t.global ? t.rateS : Math.round(t.rateS * g.mult / 1e3) * 1e3;
    let ut;
    if (t.interRegion) ut = `${g.px}-${g2.px}-AWS-Out-Bytes`;
    else if (t.global || g.code === 'us-east-1') ut = t.ut;
    else ut = `${g.px}-${t.ut}`;
    const sku = charsFrom(`sku|${ti}|${ri}|${ri2}`, UPPER, 16);
    const a = t.attrs;
    o = { t, ti, rateS, ut, sku, rateCode: `${sku}.JRTCKXETXF.6YS6EN2CT7`, rateId: String(1e10 + (sha(`rid|${ti}|${ri}|${ri2}`).readUInt32LE(0) % 9e9)),
      region: t.global ? '' : g.code, loc: t.global ? t.global : g.loc, locType: t.global ? '' : 'AWS Region',
      desc: t.desc(rateTxt(rateS), g, g2), freeDesc: `$0.00 per ${t.unit} under the monthly free tier for ${t.pn}`,
      fromLoc: a.fromLocationType ? g.loc : '', fromRegion: a.fromLocationType ? g.code : '',
      toLoc: a.sameRegionTransfer ? g.loc : t.interRegion ? g2.loc : (a.toLocation || ''), toRegion: a.sameRegionTransfer ? g.code : t.interRegion ? g2.code : '',
      productJson: '', newAttr: '', legacyAttrs: EXTRA_ATTRS.map((n) => ['product_' + n.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase()), a[n] || '']) };
    const pm = { product_name: t.pn, servicename: t.pn };
    if (!t.global) pm.region = g.code;
    for (const [k, v] of Object.entries(a)) if (typeof v === 'string' && v && !['instanceType', 'instanceFamily', 'toLocation', 'toLocationType', 'fromLocationType'].includes(k))
      pm[k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase())] = v;
    if (t.code === 'AmazonEC2' && t.inst && ri % 2 === 1) { pm.some_new_attribute = 'nitro-v5'; o.newAttr = 'nitro-v5'; }
    o.productJson = csvJson(pm);
    tplCache.set(key, o); return o;
  }

  // --- resource pools per (payer, account, template) with stable tags ---
  const resCache = new Map();
  const POOL = { tgw: 2, mq: 1, ws: 4, dx: 1, rs: 2, ec2: 24, vol: 24, snap: 8, nat: 2, s3: 8, rds: 4, lambda: 12, logs: 8, ddb: 5, cf: 2, vpce: 3, eip: 6, alb: 3, kms: 4, sqs: 4, sns: 2, eks: 2, r53: 3, secret: 5, '': 4 };
  function resource(P, ai, ti) {
    const key = (P.p * NA + ai) * 64 + ti;
    let pool = resCache.get(key);
    if (!pool) {
      const A = P.accounts[ai], t = TEMPLATES[ti], n = POOL[t.res];
      const save = S; pool = [];
      for (let k = 0; k < n; k++) {
        seedFor(seedBase, 77 + key, k);
        const home = HOME_REGIONS[A.ent];
        const ri = rnd() < 0.75 ? home[rndInt(2)] : rndInt(REGIONS.length);
        const g = REGIONS[ri], w = pick(WORDS), hx = charsFrom(`${key}|${k}|${opt.seed}`, HEX, 17), acct = A.id;
        let id = '';
        switch (t.res) {
          case 'ec2': id = `i-0${hx.slice(0, 16)}`; break;
          case 'vol': id = `vol-0${hx.slice(0, 16)}`; break;
          case 'snap': id = `arn:aws:ec2:${g.code}:${acct}:snapshot/snap-0${hx.slice(0, 16)}`; break;
          case 'nat': id = `arn:aws:ec2:${g.code}:${acct}:natgateway/nat-0${hx.slice(0, 16)}`; break;
          case 's3': id = `${P.slug}-${w}-${acct.slice(-4)}-${k}`; break;
          case 'rds': id = `arn:aws:rds:${g.code}:${acct}:db:${w}-db-${k}`; break;
          case 'lambda': id = `arn:aws:lambda:${g.code}:${acct}:function:${w}-handler-${k}`; break;
          case 'logs': id = `arn:aws:logs:${g.code}:${acct}:log-group:/aws/lambda/${w}-${k}`; break;
          case 'ddb': id = `arn:aws:dynamodb:${g.code}:${acct}:table/${w}-${k}`; break;
          case 'cf': id = `arn:aws:cloudfront::${acct}:distribution/E${charsFrom(hx, UPPER, 13)}`; break;
          case 'vpce': id = `arn:aws:ec2:${g.code}:${acct}:vpc-endpoint/vpce-0${hx.slice(0, 16)}`; break;
          case 'eip': id = `arn:aws:ec2:${g.code}:${acct}:elastic-ip/eipalloc-0${hx.slice(0, 16)}`; break;
          case 'alb': id = `arn:aws:elasticloadbalancing:${g.code}:${acct}:loadbalancer/app/${w}-alb/${hx.slice(0, 16)}`; break;
          case 'kms': id = `arn:aws:kms:${g.code}:${acct}:key/${uuidFrom(hx)}`; break;
          case 'sqs': id = `arn:aws:sqs:${g.code}:${acct}:${w}-queue-${k}`; break;
          case 'sns': id = `arn:aws:sns:${g.code}:${acct}:${w}-alerts`; break;
          case 'eks': id = `arn:aws:eks:${g.code}:${acct}:cluster/${w}-${k}`; break;
          case 'r53': id = `arn:aws:route53:::hostedzone/Z${charsFrom(hx, UPPER, 20)}`; break;
          case 'secret': id = `arn:aws:secretsmanager:${g.code}:${acct}:secret:${w}/db-${charsFrom(hx, LOWER, 6)}`; break;
          case 'tgw': id = `arn:aws:ec2:${g.code}:${acct}:transit-gateway-attachment/tgw-attach-0${hx.slice(0, 16)}`; break;
          case 'mq': id = `arn:aws:mq:${g.code}:${acct}:broker:${w}:b-${uuidFrom(hx)}`; break;
          case 'ws': id = `ws-${charsFrom(hx, LOWER, 9)}`; break;
          case 'dx': id = `dxcon-${charsFrom(hx, LOWER, 8)}`; break;
          case 'rs': id = `arn:aws:redshift:${g.code}:${acct}:cluster:${w}-dw`; break;
          default: id = '';
        }
        const tagged = rnd() < 0.6;
        const tags = tagged ? {
          owner: pick(OWNERS), cc: rnd() < 0.7 ? pick(COST_CENTERS) : '', env: pick(ENVS),
          name: rnd() < 0.5 ? (rnd() < 0.15 ? `${w} "primary", ${k}` : `${w}-${k}`) : '',
          createdBy: rnd() < 0.5 ? (rnd() < 0.5 ? `IAMUser:AIDA${charsFrom(hx + 'u', UPPER, 17)}:${pick(OWNERS).replace(/\W/g, '')}`
            : `AssumedRole:AROA${charsFrom(hx + 'r', UPPER, 17)}:terraform`) : '',
        } : { owner: '', cc: '', env: '', name: '', createdBy: '' };
        const tj = {};
        if (tags.createdBy) tj.aws_created_by = tags.createdBy;
        if (tags.cc) tj.user_cost_center = tags.cc;
        if (tags.env) tj.user_environment = tags.env;
        if (tags.name) tj.user_name = tags.name;
        if (tags.owner) tj.user_owner = tags.owner;
        const project = tagged && rnd() < 0.8 ? pick(PROJECTS) : '';
        const cc = {}; if (project) cc.Project = project; if (A.team) cc.Team = A.team;
        pool.push({ id, ri, az: t.az ? g.code + g.az[rndInt(g.az.length)] : '', tags, tagsJson: csvJson(tj),
          project, ccJson: csvJson(cc), size: 20 + rndInt(2000), eks: t.res === 'ec2' && rnd() < 0.15 });
      }
      S = save; resCache.set(key, pool);
    }
    return pool[rndInt(pool.length)];
  }
  const teamJson = (A) => (A.team ? csvJson({ Team: A.team }) : '');

  // --- invoices: one id per (payer, invoicing entity, billing entity, marketplace seller) ---
  const invCache = new Map();
  function invoiceId(P, ent, seller) {
    const key = (P.p * 4 + ent) * 8 + (seller + 1);
    let v = invCache.get(key); if (v) return v;
    const dig = hashDigits(`${opt.seed}|inv|${opt.period}|${key}`, 10);
    const kind = seller >= 0 ? 'us' : ENTITIES[ent].inv;
    v = kind === 'emea' ? `EUIN${P.country}${yy}-${dig.slice(0, 6)}` : kind === 'ca' ? `CAIN${yy}-${dig.slice(0, 7)}` : `${2 + (Number(dig[0]) % 7)}${dig.slice(1, 10)}`;
    invCache.set(key, v); return v;
  }

  // --- statistics of one delivery ---
  const NT = TYPE_NAMES.length, NP = 1, NL = LEGAL.length, NI = NP * 4 * 8;
  function newStats() {
    return { rows: 0, total: new Sums(1), payer: new Sums(NP), type: new Sums(NP * NT), acct: new Sums(NP * NA),
      legal: new Sums(NP * NL), inv: new Sums(NI), invInfo: new Map(), amort: new Sums(NP) };
  }

  // --- one row ---
  // Each generator fills R (after reset) and returns nothing; it sets these for the statistics:
  let cost = 0, amort = 0, tIx = 0, pIx = 0, aIx = 0, lIx = 0, invKey = 0;
  function common(P, ai, type, d) {
    const A = P.accounts[ai];
    R.identity_time_interval = interval[d];
    R.bill_payer_account_id = P.id; R.bill_payer_account_name = P.name;
    R.bill_billing_period_start_date = periodStart; R.bill_billing_period_end_date = periodEnd;
    R.bill_billing_entity = 'AWS'; R.bill_bill_type = 'Anniversary';
    R.line_item_usage_account_id = A.id; R.line_item_usage_account_name = A.name;
    R.line_item_line_item_type = type; R.line_item_currency_code = 'USD';
    const e = ENTITIES[A.ent].name;
    R.bill_invoicing_entity = e; R.line_item_legal_entity = e;
    pIx = P.p; aIx = ai; tIx = TYPE_IX[type]; lIx = A.ent; invKey = (P.p * 4 + A.ent) * 8;
    return A;
  }
  function monthly() {
    R.line_item_usage_start_date = periodStart; R.line_item_usage_end_date = periodEnd;
  }
  function hoursWindow(d, full) { // returns hours, sets start/end within day d
    let h1 = 0, h2 = 24;
    if (!full) { h1 = rndInt(24); h2 = h1 + 1 + rndInt(24 - h1); }
    R.line_item_usage_start_date = hourStr[d][h1];
    R.line_item_usage_end_date = h2 === 24 ? hourStr[d + 1][0] : hourStr[d][h2];
    return h2 - h1;
  }
  function setCosts(c, rateS) {
    const cs = fmt(c);
    R.line_item_unblended_cost = cs; R.line_item_blended_cost = cs;
    if (rateS !== null) { const rs = fmt(rateS); R.line_item_unblended_rate = rs; R.line_item_blended_rate = rs; }
  }
  function setNet(P, c, rateS, discountable = false) { // EDP applies to AWS usage only (not tax, fees, Marketplace)
    if (P.edp && discountable && c !== 0) {
      R.line_item_net_unblended_cost = fmt(Math.round(c * (1 - P.edp)));
      if (rateS !== null) R.line_item_net_unblended_rate = fmt(Math.round(rateS * (1 - P.edp)));
    } else {
      R.line_item_net_unblended_cost = fmt(c);
      if (rateS !== null) R.line_item_net_unblended_rate = fmt(rateS);
    }
  }
  function product(info) {
    const t = info.t, a = t.attrs;
    R.product_product_name = t.pn; R.product_servicecode = t.code; R.product_servicename = t.pn;
    R.product_product_family = t.fam; R.product_region_code = info.region; R.product_region = info.region;
    R.product_location = info.loc; R.product_location_type = info.locType; R.product_sku = info.sku;
    R.product_usagetype = info.ut; R.product_operation = t.op;
    R.product_instance_type = a.instanceType || ''; R.product_instance_family = a.instanceFamily || '';
    R.product_vcpu = a.vcpu || ''; R.product_memory = a.memory || ''; R.product_operating_system = a.operatingSystem || '';
    R.product_tenancy = a.tenancy || ''; R.product_database_engine = a.databaseEngine || '';
    R.product_storage_class = a.storageClass || ''; R.product_storage_media = a.storageMedia || '';
    R.product_volume_type = a.volumeType || ''; R.product_durability = a.durability || ''; R.product_availability = a.availability || '';
    R.product_group = a.group || ''; R.product_group_description = a.groupDescription || '';
    R.product_transfer_type = a.transferType || ''; R.product_queue_type = a.queueType || '';
    R.product_message_delivery_frequency = a.messageDeliveryFrequency || ''; R.product_message_delivery_order = a.messageDeliveryOrder || '';
    R.product_from_location = info.fromLoc; R.product_from_location_type = a.fromLocationType || ''; R.product_from_region_code = info.fromRegion;
    R.product_to_location = info.toLoc; R.product_to_location_type = a.toLocationType || ''; R.product_to_region_code = info.toRegion;
    R.product_some_new_attribute = info.newAttr;
    for (const [k, v] of info.legacyAttrs) R[k] = v;
    if (needMaps) R.product = info.productJson;
    R.pricing_rate_code = info.rateCode; R.pricing_rate_id = info.rateId; R.pricing_currency = 'USD'; R.pricing_unit = t.unit;
  }
  function tags(res, A) {
    const tg = res.tags;
    R.resource_tags_user_owner = tg.owner; R.resource_tags_user_cost_center = tg.cc; R.resource_tags_user_environment = tg.env;
    R.resource_tags_user_name = tg.name; R.resource_tags_aws_created_by = tg.createdBy;
    R.cost_category_team = A.team; R.cost_category_project = res.project;
    if (needMaps) { R.resource_tags = res.tagsJson; R.cost_category = res.ccJson; }
  }
  function usageAmount(t, hours, res) { // scaled usage for a template kind
    switch (t.kind) {
      case 'hours': return hours * SCALE;
      case 'gbmo': return Math.round(res.size * hours / hoursInMonth * SCALE);
      case 'gb': return Math.round(Math.pow(10, rnd() * 6 - 4) * SCALE);
      case 'gbsec': return Math.round(Math.pow(10, rnd() * 5.5) * SCALE);
      case 'req': return Math.floor(Math.pow(10, rnd() * 5.9)) * SCALE;
      case 'count': return Math.round((1 + rndInt(20)) * hours / hoursInMonth * SCALE);
      default: return SCALE;
    }
  }

  function pickAccount(P) { const x = rnd() * P.cum[P.cum.length - 1]; let i = 0; while (P.cum[i] <= x) i++; return i; }
  function pickPayer() { return payers[0]; } // one payer per report

  function genUsage(P, d, freeOk) {
    const ai = pickAccount(P), ti = pickTemplate(), t = TEMPLATES[ti];
    const A = common(P, ai, 'Usage', d);
    const res = resource(P, ai, ti);
    const info = tplInfo(ti, res.ri, t.interRegion ? (res.ri + 1 + rndInt(REGIONS.length - 1)) % REGIONS.length : 0);
    const hours = hoursWindow(d, t.kind === 'hours' || t.kind === 'gbmo' || t.kind === 'count' ? rnd() < 0.7 : rnd() < 0.1);
    const u = usageAmount(t, hours, res);
    const free = freeOk && rnd() < 0.03;
    const rateS = free ? 0 : info.rateS;
    cost = Math.round(u * rateS / SCALE); amort = cost;
    R.line_item_product_code = t.code; R.line_item_usage_type = info.ut; R.line_item_operation = t.op;
    R.line_item_availability_zone = res.az; R.line_item_resource_id = res.id;
    R.line_item_usage_amount = fmt(u);
    if (t.nf) { R.line_item_normalization_factor = t.nf; R.line_item_normalized_usage_amount = fmt(Math.round(u * Number(t.nf))); }
    setCosts(cost, rateS); setNet(P, cost, rateS, true);
    R.line_item_line_item_description = free ? info.freeDesc : info.desc;
    product(info); tags(res, A);
    R.pricing_term = 'OnDemand'; R.pricing_public_on_demand_cost = fmt(cost); R.pricing_public_on_demand_rate = fmt(rateS);
    if (res.eks) {
      const ratio = 1 + rndInt(9999);
      const sc = Math.round(cost * ratio / 10000);
      R.split_line_item_parent_resource_id = res.id; R.split_line_item_split_usage_ratio = fmt(ratio * 1e6);
      R.split_line_item_split_usage = fmt(Math.round(u * ratio / 10000)); R.split_line_item_split_cost = fmt(sc);
      R.split_line_item_unused_cost = fmt(cost - sc); R.split_line_item_net_split_cost = fmt(sc); R.split_line_item_net_unused_cost = fmt(cost - sc);
    }
    return info;
  }

  function genMarketplace(P, d) {
    const ai = pickAccount(P), A = common(P, ai, 'Usage', d);
    const si = rndInt(SELLERS.length), s = SELLERS[si], [dim, rate] = s.dims[rndInt(s.dims.length)];
    const code = mpCode(si), rateS = decToScaled(rate);
    const ent = A.ent === 1 ? 1 : 0; // Marketplace operator: AWS EMEA SARL in EMEA, else AWS Inc.
    R.bill_billing_entity = 'AWS Marketplace'; R.bill_invoicing_entity = ENTITIES[ent].name; R.line_item_legal_entity = s.name;
    lIx = 3 + si; invKey = (P.p * 4 + ent) * 8 + 1 + si;
    const hours = hoursWindow(d, rnd() < 0.5);
    const u = Math.round((0.2 + rnd() * 15) * hours / 24 * 1e4) * 1e6;
    cost = Math.round(u * rateS / SCALE); amort = cost;
    R.line_item_product_code = code; R.line_item_usage_type = `USE1-MP:${dim}`; R.line_item_operation = 'Usage';
    R.line_item_usage_amount = fmt(u); setCosts(cost, rateS); setNet(P, cost, rateS);
    R.line_item_line_item_description = `${s.product} - ${dim.replace(/_/g, ' ')} at $${rate.replace(/0+$/, '').replace(/\.$/, '')} per unit`;
    R.product_product_name = s.product; R.product_region_code = 'us-east-1'; R.product_region = 'us-east-1';
    R.product_location = REGIONS[0].loc; R.product_product_family = ''; R.product_usagetype = R.line_item_usage_type;
    R.product_operation = 'Usage'; R.product_sku = charsFrom(`mpsku|${si}|${dim}`, UPPER, 16);
    if (needMaps) R.product = csvJson({ product_name: s.product, region: 'us-east-1', seller: s.name });
    R.pricing_unit = 'Units'; R.pricing_currency = 'USD';
    R.pricing_public_on_demand_cost = fmt(cost); R.pricing_public_on_demand_rate = fmt(rateS);
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }
  const mpCodes = SELLERS.map((s) => charsFrom(`mp|${s.name}`, LOWER, 25));
  function mpCode(si) { return mpCodes[si]; }

  function genDiscounted(P, d) {
    const ri = P.ris[rndInt(P.ris.length)], t = TEMPLATES[ri.ti];
    const ai = pickAccount(P), A = common(P, ai, 'DiscountedUsage', d);
    const res = resource(P, ai, ri.ti);
    const info = tplInfo(ri.ti, REGIONS.indexOf(ri.region));
    const hours = hoursWindow(d, rnd() < 0.8), u = hours * SCALE;
    cost = 0;
    const eff = Math.round(u * ri.effS / SCALE), up = Math.round(u * ri.upS / SCALE);
    amort = eff;
    R.line_item_product_code = t.code; R.line_item_usage_type = info.ut; R.line_item_operation = t.op;
    R.line_item_availability_zone = res.az; R.line_item_resource_id = res.id; R.line_item_usage_amount = fmt(u);
    R.line_item_normalization_factor = ri.nf; R.line_item_normalized_usage_amount = fmt(Math.round(u * Number(ri.nf)));
    setCosts(0, 0); setNet(P, 0, 0);
    R.line_item_line_item_description = `USD ${rateTxt(ri.recS)} hourly fee per ${t.code === 'AmazonRDS' ? 'RDS' : 'Linux/UNIX (Amazon VPC)'}, ${t.attrs.instanceType} instance`;
    product(info); tags(res, A);
    R.pricing_term = 'Reserved'; R.pricing_purchase_option = ri.partial ? 'Partial Upfront' : 'No Upfront';
    R.pricing_lease_contract_length = '1yr'; R.pricing_offering_class = 'standard';
    R.pricing_public_on_demand_cost = fmt(Math.round(u * ri.odS / SCALE)); R.pricing_public_on_demand_rate = fmt(ri.odS);
    R.reservation_reservation_a_r_n = ri.arn; R.reservation_effective_cost = fmt(eff);
    R.reservation_amortized_upfront_cost_for_usage = fmt(up); R.reservation_recurring_fee_for_usage = fmt(eff - up);
    R.reservation_start_time = ri.start; R.reservation_end_time = ri.end; R.reservation_subscription_id = ri.subscription;
    R.reservation_modification_status = 'Original';
  }

  function genSpCovered(P, d, negation) {
    const sp = P.sps[rndInt(2)];
    const ti = EC2_TPLS[rndInt(EC2_TPLS.length)], t = TEMPLATES[ti];
    const ai = pickAccount(P), A = common(P, ai, negation ? 'SavingsPlanNegation' : 'SavingsPlanCoveredUsage', d);
    const res = resource(P, ai, ti);
    const info = tplInfo(ti, res.ri);
    const hours = hoursWindow(d, rnd() < 0.6);
    const u = t.kind === 'hours' ? hours * SCALE : usageAmount(t, hours, res);
    const od = Math.round(u * info.rateS / SCALE);
    const spRate = Math.round(info.rateS * (1 - sp.disc));
    R.line_item_product_code = t.code; R.line_item_usage_type = info.ut; R.line_item_operation = t.op;
    R.line_item_availability_zone = res.az; R.line_item_resource_id = res.id; R.line_item_usage_amount = fmt(u);
    if (t.nf) { R.line_item_normalization_factor = t.nf; R.line_item_normalized_usage_amount = fmt(Math.round(u * Number(t.nf))); }
    product(info); tags(res, A);
    R.savings_plan_savings_plan_a_r_n = sp.arn;
    R.savings_plan_start_time = sp.start; R.savings_plan_end_time = sp.end;
    R.pricing_term = 'OnDemand'; R.pricing_public_on_demand_cost = fmt(od); R.pricing_public_on_demand_rate = fmt(info.rateS);
    if (negation) {
      cost = -od; amort = 0;
      setCosts(cost, -info.rateS); setNet(P, cost, -info.rateS, true);
      R.line_item_line_item_description = `SavingsPlanNegation used by AccountId : ${A.id} and UsageSku : ${info.sku}`;
    } else {
      cost = od; const eff = Math.round(u * spRate / SCALE); amort = eff;
      setCosts(cost, info.rateS); setNet(P, cost, info.rateS, true);
      R.line_item_line_item_description = `${rateTxt(spRate)} per hour for ${t.ut.replace(/^BoxUsage:/, '')} in ${info.region} covered by ${sp.offering}`;
      R.savings_plan_savings_plan_rate = fmt(spRate); R.savings_plan_savings_plan_effective_cost = fmt(eff);
    }
  }

  function spProduct(sp) {
    R.line_item_product_code = sp.offering; R.line_item_usage_type = sp.ut; R.line_item_operation = '';
    R.product_product_name = sp.compute ? 'Savings Plans for AWS Compute usage' : 'Savings Plans for Amazon EC2';
    R.product_servicecode = sp.offering; R.product_product_family = 'Savings Plans'; R.product_usagetype = sp.ut;
    R.product_region_code = sp.region; R.product_sku = charsFrom(`spsku|${sp.ut}`, UPPER, 16);
    if (needMaps) R.product = csvJson({ product_name: R.product_product_name, purchase_option: sp.payment, purchase_term: sp.term });
    R.savings_plan_savings_plan_a_r_n = sp.arn; R.savings_plan_start_time = sp.start; R.savings_plan_end_time = sp.end;
    R.savings_plan_offering_type = sp.offering; R.savings_plan_payment_option = sp.payment; R.savings_plan_purchase_term = sp.term;
    R.savings_plan_region = sp.region; R.savings_plan_instance_type_family = sp.family;
  }
  function genSpFee(P, d) {
    const sp = P.sps[rndInt(2)];
    const A = common(P, 0, 'SavingsPlanRecurringFee', d);
    const hours = hoursWindow(d, rnd() < 0.9), u = hours * SCALE;
    const rec = sp.commitS * hours, up = sp.upS * hours, total = rec + up;
    const used = Math.round(total * (0.78 + rnd() * 0.22));
    cost = rec; amort = total - used;
    spProduct(sp);
    R.line_item_usage_amount = fmt(u); setCosts(cost, sp.commitS); setNet(P, cost, sp.commitS);
    R.line_item_line_item_description = `${sp.term === '1yr' ? '1 year' : '3 year'} ${sp.payment} ${sp.compute ? 'Compute' : 'EC2 Instance'} Savings Plan`;
    R.savings_plan_total_commitment_to_date = fmt(total); R.savings_plan_used_commitment = fmt(used);
    R.savings_plan_recurring_commitment_for_billing_period = fmt(rec); R.savings_plan_amortized_upfront_commitment_for_billing_period = fmt(up);
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }
  function genSpUpfront(P, d) {
    const sp = P.sps[1];
    common(P, 0, 'SavingsPlanUpfrontFee', d); monthly();
    R.bill_bill_type = 'Purchase';
    cost = sp.upS * hoursInMonth; amort = 0; // the upfront part of one month of commitment
    spProduct(sp);
    R.line_item_usage_amount = fmt(SCALE); setCosts(cost, cost); setNet(P, cost, cost);
    R.line_item_line_item_description = 'Upfront fee for 3 year Partial Upfront EC2 Instance Savings Plan';
  }

  function genRiFee(P, d) {
    const ri = P.ris[rndInt(P.ris.length)], t = TEMPLATES[ri.ti];
    common(P, 0, 'RIFee', d); monthly();
    const info = tplInfo(ri.ti, REGIONS.indexOf(ri.region));
    const hrs = ri.count * hoursInMonth, u = hrs * SCALE;
    cost = ri.recS * hrs;
    const unusedQ = rndInt(Math.max(1, Math.floor(hrs * 0.1)));
    // AWS's CUR query library: an RI fee amortizes to its unused parts (the used ones are in the
    // DiscountedUsage lines' effective cost)
    amort = unusedQ * ri.recS + unusedQ * ri.upS;
    R.line_item_product_code = t.code; R.line_item_operation = t.op;
    R.line_item_usage_type = info.ut.replace(/(BoxUsage|InstanceUsage):/, 'HeavyUsage:');
    R.line_item_usage_amount = fmt(u); setCosts(cost, ri.recS); setNet(P, cost, ri.recS);
    R.line_item_line_item_description = `USD ${rateTxt(ri.recS)} hourly fee per ${t.code === 'AmazonRDS' ? 'RDS' : 'Linux/UNIX (Amazon VPC)'}, ${t.attrs.instanceType} instance`;
    R.line_item_normalization_factor = ri.nf;
    R.product_product_name = t.pn; R.product_servicecode = t.code; R.product_product_family = t.fam;
    R.product_region_code = ri.region.code; R.product_location = ri.region.loc; R.product_instance_type = t.attrs.instanceType;
    R.product_usagetype = R.line_item_usage_type; R.product_operation = t.op; R.product_sku = info.sku;
    R.product_region = ri.region.code; R.product_servicename = t.pn;
    // the same attributes in both layouts: columns in legacy CUR, the product map in CUR 2.0
    if (needMaps) R.product = csvJson({ product_name: t.pn, region: ri.region.code, servicename: t.pn });
    R.pricing_term = 'Reserved'; R.pricing_unit = 'Hrs'; R.pricing_currency = 'USD';
    R.pricing_purchase_option = ri.partial ? 'Partial Upfront' : 'No Upfront'; R.pricing_lease_contract_length = '1yr'; R.pricing_offering_class = 'standard';
    R.reservation_reservation_a_r_n = ri.arn; R.reservation_number_of_reservations = String(ri.count);
    R.reservation_units_per_reservation = fmt(hoursInMonth * SCALE); R.reservation_total_reserved_units = fmt(u);
    R.reservation_normalized_units_per_reservation = fmt(Math.round(hoursInMonth * Number(ri.nf) * SCALE));
    R.reservation_total_reserved_normalized_units = fmt(Math.round(hrs * Number(ri.nf) * SCALE));
    R.reservation_unused_quantity = fmt(unusedQ * SCALE); R.reservation_unused_normalized_unit_quantity = fmt(Math.round(unusedQ * Number(ri.nf) * SCALE));
    R.reservation_unused_recurring_fee = fmt(unusedQ * ri.recS);
    R.reservation_amortized_upfront_fee_for_billing_period = fmt(hrs * ri.upS);
    R.reservation_unused_amortized_upfront_fee_for_billing_period = fmt(unusedQ * ri.upS);
    R.reservation_upfront_value = fmt(ri.upS * ri.count * 24 * 365);
    R.reservation_start_time = ri.start; R.reservation_end_time = ri.end; R.reservation_subscription_id = ri.subscription;
    R.reservation_modification_status = 'Original';
  }

  function genFee(P, d) {
    const x = rnd(), kind = x < 0.4 ? 0 : x < 0.5 ? 1 : x < 0.7 ? 2 : 3, ai = kind === 3 ? pickAccount(P) : 0;
    const A = common(P, ai, 'Fee', d); monthly();
    R.line_item_usage_amount = fmt(SCALE);
    if (kind === 0) { // support plan
      cost = (10 + rndInt(290)) * SCALE + rndInt(100) * 1e8;
      R.line_item_product_code = 'AWSSupportBusiness'; R.line_item_usage_type = 'Dollar'; R.line_item_operation = '';
      R.line_item_line_item_description = 'AWS Support (Business)'; R.product_product_name = 'AWS Support (Business)';
      R.product_servicecode = 'AWSSupportBusiness'; R.product_product_family = 'Support';
    } else if (kind === 1) { // RI upfront purchase
      const ri = P.ris[0]; R.bill_bill_type = 'Purchase';
      cost = ri.upS * ri.count * 24 * 365 || decToScaled('1234.5');
      R.line_item_product_code = TEMPLATES[ri.ti].code; R.line_item_usage_type = TEMPLATES[ri.ti].code === 'AmazonRDS' ? 'RDS:HeavyUsage' : 'HeavyUsage';
      R.line_item_operation = 'RunInstances';
      R.line_item_line_item_description = `Sign up charge for subscription: ${ri.subscription}, planId: ${hashDigits(ri.arn, 7)}`;
      R.product_product_name = TEMPLATES[ri.ti].pn; R.product_servicecode = TEMPLATES[ri.ti].code;
      R.reservation_reservation_a_r_n = ri.arn; R.reservation_subscription_id = ri.subscription;
    } else if (kind === 2) { // domain registration
      R.bill_bill_type = 'Purchase'; cost = decToScaled(pick(['13', '14', '9', '71']));
      R.line_item_product_code = 'AmazonRoute53'; R.line_item_usage_type = 'Global-DomainRegistration'; R.line_item_operation = 'RegisterDomain';
      R.line_item_line_item_description = `Registration of ${pick(WORDS)}-${P.slug}.com`;
      R.product_product_name = 'Amazon Route 53'; R.product_servicecode = 'AmazonRoute53'; R.product_product_family = 'Domain';
      R.product_fee_code = 'DomainRegistration'; R.product_fee_description = 'Domain registration fee';
    } else { // marketplace contract/subscription fee
      const si = rndInt(SELLERS.length), s = SELLERS[si], ent = A.ent === 1 ? 1 : 0;
      R.bill_billing_entity = 'AWS Marketplace'; R.bill_bill_type = 'Purchase'; R.bill_invoicing_entity = ENTITIES[ent].name;
      R.line_item_legal_entity = s.name; lIx = 3 + si; invKey = (P.p * 4 + ent) * 8 + 1 + si;
      cost = (20 + rndInt(380)) * SCALE;
      R.line_item_product_code = mpCode(si); R.line_item_usage_type = 'MP:Subscription'; R.line_item_operation = 'Subscription';
      R.line_item_line_item_description = `${s.product}, 12 month contract, monthly charge`;
      R.product_product_name = s.product;
    }
    // an RI's upfront fee amortizes to 0 (into its DiscountedUsage lines), any other fee to its cost
    amort = kind === 1 ? 0 : cost; setCosts(cost, cost); setNet(P, cost, cost);
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }

  function genTax(P, d) {
    const ai = pickAccount(P), A = common(P, ai, 'Tax', d); monthly();
    let code, pn;
    if (rnd() < 0.12) { // tax on a Marketplace product
      const si = rndInt(SELLERS.length), s = SELLERS[si], ent = A.ent === 1 ? 1 : 0;
      code = mpCode(si); pn = s.product;
      R.bill_billing_entity = 'AWS Marketplace'; R.bill_invoicing_entity = ENTITIES[ent].name; R.line_item_legal_entity = s.name;
      lIx = 3 + si; invKey = (P.p * 4 + ent) * 8 + 1 + si;
    } else { code = pick(TAX_PRODUCTS); pn = PN_OF[code]; }
    cost = Math.round(Math.pow(10, rnd() * 3 - 1.5) * 100) * 1e8; amort = cost;
    R.line_item_product_code = code; R.line_item_usage_amount = fmt(SCALE);
    setCosts(cost, null); setNet(P, cost, null);
    R.line_item_line_item_description = `Tax for product code ${code}`;
    R.line_item_tax_type = ENTITIES[A.ent].tax; R.product_product_name = pn;
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }

  const CREDIT_DESC = ['AWS Activate Credits', 'AWS Promotional Credit - MAP 2.0', 'Service Level Agreement Credit',
    'Credit for the SQS, SNS service event', 'AWS Credits - "Well-Architected" review'];
  function genCredit(P, d, refund, late) {
    const ai = pickAccount(P), ti = pickTemplate(), t = TEMPLATES[ti];
    const A = common(P, ai, refund ? 'Refund' : 'Credit', d);
    if (late || refund || rnd() < 0.5) monthly(); else hoursWindow(d, true);
    const info = tplInfo(ti, HOME_REGIONS[A.ent][0]);
    if (refund) R.bill_bill_type = 'Refund';
    cost = -(Math.round(Math.pow(10, rnd() * 2.5 - 1) * 100) * 1e8 + 1e8); amort = cost;
    R.line_item_product_code = t.code; R.line_item_usage_type = info.ut;
    R.line_item_usage_amount = fmt(0); setCosts(cost, null); setNet(P, cost, null);
    R.line_item_line_item_description = refund ? `Refund for ${t.pn} charges on ${dayIso[d]}` : (late ? 'Late credit: ' : '') + CREDIT_DESC[rndInt(CREDIT_DESC.length)];
    R.product_product_name = t.pn; R.product_servicecode = t.code;
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }

  function genDiscount(P, d, bundled) {
    const ai = pickAccount(P);
    const ti = bundled ? TEMPLATES.findIndex((t) => t.code === 'AmazonCloudFront') : pickTemplate(), t = TEMPLATES[ti];
    const A = common(P, ai, bundled ? 'BundledDiscount' : 'EdpDiscount', d);
    hoursWindow(d, true);
    const info = tplInfo(ti, HOME_REGIONS[A.ent][0]);
    cost = -Math.max(1, Math.round(Math.pow(10, rnd() * 4 - 2) * SCALE * (bundled ? 0.5 : 0.75))); amort = cost;
    R.line_item_product_code = t.code; R.line_item_usage_type = info.ut; R.line_item_operation = t.op;
    R.line_item_usage_amount = fmt(0); setCosts(cost, null);
    R.line_item_net_unblended_cost = '0.0';
    R.line_item_line_item_description = bundled ? 'Free CloudFront data transfer out bundled with AWS Shield Advanced' : `Enterprise Program Discount (${Math.round((P.edp || 0.03) * 100)}%)`;
    R.product_product_name = t.pn; R.product_servicecode = t.code; R.product_region_code = info.region;
    const cs = fmt(cost);
    if (bundled) { R.discount_bundled_discount = cs; if (needMaps) R.discount = csvJson({ bundled_discount: cs }); }
    else { R.discount_edp_discount = cs; if (needMaps) R.discount = csvJson({ edp_discount: cs }); }
    R.discount_total_discount = cs;
    R.cost_category_team = A.team; if (needMaps) R.cost_category = teamJson(A);
  }

  // Row i of the stream: ordinary rows are stable across deliveries; "late" rows (credits and refunds
  // that appear only in later deliveries) are at the end. identity_line_item_id differs per delivery.
  function genRow(i, base, delivery, final) {
    reset(R);
    seedFor(seedBase, 1000 + delivery, i);
    let id = '';
    for (let k = 0; k < 9; k++) {
      let x = (rnd() * 1073741824) | 0;
      for (let j = 0; j < 6; j++) { id += B32[x & 31]; x >>>= 5; }
    }
    R.identity_line_item_id = id.slice(0, 52);
    if (i < base) {
      // Savings Plan coverage comes in pairs, as AWS bills it: a SavingsPlanCoveredUsage line at the
      // on-demand cost and the SavingsPlanNegation that cancels it. A row drawing either kind at an
      // even index is the covered line, and the next index its negation (the same draws replayed);
      // a row drawing either kind at an odd index is ordinary usage.
      const kindAt = (j) => { seedFor(seedBase, 1, j); pickPayer(); rndInt(days); const x = rnd(); let k = 0; while (MIX_CUM[k][0] <= x) k++; return MIX_CUM[k][1]; };
      const isSp = (kind) => kind === 'SavingsPlanCoveredUsage' || kind === 'SavingsPlanNegation';
      if (i % 2 === 1 && isSp(kindAt(i - 1))) {
        seedFor(seedBase, 1, i - 1);
        const P = pickPayer(), d = rndInt(days); rnd();
        genSpCovered(P, d, true);
        if (d !== 0 && R.line_item_usage_start_date === periodStart) R.identity_time_interval = interval[0];
        if (final) {
          const FP = payers[pIx], inv = invKey & 7;
          R.bill_invoice_id = invoiceId(FP, (invKey >> 3) & 3, inv - 1);
        }
        return;
      }
      seedFor(seedBase, 1, i);
      const P = pickPayer(), d = rndInt(days), x = rnd();
      let k = 0; while (MIX_CUM[k][0] <= x) k++;
      let kind = MIX_CUM[k][1];
      if (isSp(kind)) kind = i % 2 === 0 && i + 1 < base ? 'SavingsPlanCoveredUsage' : 'Usage';
      switch (kind) {
        case 'Usage': genUsage(P, d, true); break;
        case 'MP': genMarketplace(P, d); break;
        case 'DiscountedUsage': genDiscounted(P, d); break;
        case 'SavingsPlanCoveredUsage': genSpCovered(P, d, false); break;
        case 'SavingsPlanNegation': genSpCovered(P, d, true); break;
        case 'SavingsPlanRecurringFee': genSpFee(P, d); break;
        case 'SavingsPlanUpfrontFee': genSpUpfront(P, d); break;
        case 'RIFee': genRiFee(P, d); break;
        case 'Fee': genFee(P, d); break;
        case 'Tax': genTax(P, d); break;
        case 'Credit': genCredit(P, d, false, false); break;
        case 'Refund': genCredit(P, d, true, false); break;
        case 'EdpDiscount': genDiscount(P, d, false); break;
        case 'BundledDiscount': genDiscount(P, d, true); break;
      }
      if (d !== 0 && R.line_item_usage_start_date === periodStart) R.identity_time_interval = interval[0];
    } else {
      seedFor(seedBase, 2, i - base);
      const P = pickPayer();
      genCredit(P, rndInt(days), rnd() < 0.35, true);
      R.identity_time_interval = interval[0];
    }
    if (final) {
      const P = payers[pIx], inv = invKey & 7;
      R.bill_invoice_id = invoiceId(P, (invKey >> 3) & 3, inv - 1);
    }
  }

  // --- delivery plan ---
  const N = opt.rows, K = opt.deliveries;
  let lateStep = 0;
  if (K > 1) {
    lateStep = Math.min(Math.max(1, Math.floor(N * 0.004)), Math.floor((N - Math.ceil(N / 2)) / (K - 1)));
    if (lateStep < 1) throw new Error(`--rows ${N} is too small for --deliveries ${K} (need at least ${2 * K} rows)`);
  }
  const base = N - lateStep * (K - 1);
  const root = path.resolve(opt.out, opt.bucket);
  const join = (...parts) => parts.filter((s) => s !== '').join('/');
  const ext = opt['no-gzip'] ? '.csv' : '.csv.gz';
  const periodKey = `${year}${p2(month)}01-${ny}${p2(nm)}01`;
  const reportId = sha(`${ctxTag}|reportId`).toString('hex');
  const deliveries = [];
  const first = opt.delivery || 1, last = opt.delivery || K;
  let lastStats = null, manifestKey = '';

  for (let k = first; k <= last; k++) {
    const n = base + lateStep * (k - 1);
    const final = opt.final && k === K;
    const F = Math.max(1, Math.min(n, opt.files || Math.ceil(n / 250000)));
    const id = uuidFrom(`${ctxTag}|delivery|${k}`);
    let dir, fileName;
    if (legacy) {
      dir = join(opt.prefix, opt.report, periodKey, id);
      fileName = (f) => `${opt.report}-${f}${ext}`;
      manifestKey = join(opt.prefix, opt.report, periodKey, `${opt.report}-Manifest.json`);
    } else if (opt.overwrite === 'OVERWRITE_REPORT') {
      // "Understanding export delivery" (AWS Data Exports user guide): data/<partition>/ and
      // metadata/<partition>/<export-name>-Manifest.json; an overwriting export replaces the
      // previous delivery's files.
      dir = join(opt.prefix, opt.report, 'data', `BILLING_PERIOD=${opt.period}`);
      fileName = (f) => `${opt.report}-${String(f).padStart(5, '0')}${ext}`;
      manifestKey = join(opt.prefix, opt.report, 'metadata', `BILLING_PERIOD=${opt.period}`, `${opt.report}-Manifest.json`);
      fs.rmSync(path.join(root, dir), { recursive: true, force: true });
    } else {
      // CREATE_NEW_REPORT keeps every run; the manifest reference says the executionId "appears in
      // the delivery path" without showing where. We put it below the partition, for data and
      // metadata alike (unclear in AWS's text: cur2-delivery-layout.md); pg_billops reads the
      // newest manifest of the partition and the files it lists, so it does not depend on this.
      dir = join(opt.prefix, opt.report, 'data', `BILLING_PERIOD=${opt.period}`, id);
      fileName = (f) => `${opt.report}-${String(f).padStart(5, '0')}${ext}`;
      manifestKey = join(opt.prefix, opt.report, 'metadata', `BILLING_PERIOD=${opt.period}`, id, `${opt.report}-Manifest.json`);
    }
    fs.mkdirSync(path.join(root, dir), { recursive: true });
    const stats = newStats();
    const keysOut = [];
    const plain = opt['emit-plain'] && k === last ? fs.createWriteStream(opt['emit-plain'], { highWaterMark: 1 << 20 }) : null;
    if (plain) await writeChunk(plain, headerLine);
    const per = Math.ceil(n / F);
    for (let f = 1; f <= F; f++) {
      const lo = (f - 1) * per, hi = Math.min(n, f * per);
      const key = join(dir, fileName(f));
      keysOut.push(key);
      const fileStream = fs.createWriteStream(path.join(root, key), { highWaterMark: 1 << 20 });
      let sink = fileStream;
      if (!opt['no-gzip']) {
        // a few MiB of buffering lets zlib (libuv thread pool) compress while the next rows are built
        sink = zlib.createGzip({ level: opt['gzip-level'], memLevel: 9, chunkSize: 1 << 20, highWaterMark: 4 << 20 });
        sink.pipe(fileStream);
      }
      // Rows go straight into a 1 MiB Buffer (one flat string per row): accumulating a long string
      // rope instead makes V8 promote every piece and spend most of its time in GC.
      const CHUNK = 1 << 20;
      let buf = Buffer.allocUnsafe(CHUNK + 65536), off = buf.write(headerLine, 0), hasHeader = true;
      const flush = async () => {
        const out = buf.subarray(0, off);
        await writeChunk(sink, out);
        if (plain) await writeChunk(plain, hasHeader ? out.subarray(headerLen) : out);
        buf = Buffer.allocUnsafe(CHUNK + 65536); off = 0; hasHeader = false;
      };
      for (let i = lo; i < hi; i++) {
        genRow(i, base, k, final);
        // rows without a product template (tax, fees, credits ...) still name their product in CUR 2.0's map
        if (needMaps && R.product === '' && R.product_product_name !== '')
          R.product = csvJson(R.product_region ? { product_name: R.product_product_name, region: R.product_region } : { product_name: R.product_product_name });
        const line = serialize(R);
        if (off + line.length * 3 + 1 > buf.length) {
          await flush();
          if (line.length * 3 > buf.length) buf = Buffer.allocUnsafe(line.length * 3);
        }
        off += buf.utf8Write(line, off); buf[off++] = 10;
        stats.rows++;
        stats.total.add(0, cost); stats.payer.add(pIx, cost); stats.type.add(pIx * NT + tIx, cost);
        stats.acct.add(pIx * NA + aIx, cost); stats.legal.add(pIx * NL + lIx, cost); stats.amort.add(pIx, amort);
        stats.inv.add(invKey, cost);
        if (off >= CHUNK) await flush();
      }
      if (off) await flush();
      sink.end();
      await once(fileStream, 'close');
    }
    if (plain) { plain.end(); await once(plain, 'close'); }

    const manifest = legacy ? {
      assemblyId: id, account: payers[0].id, columns: manifestColumns, charset: 'UTF-8',
      compression: opt['no-gzip'] ? 'NONE' : 'GZIP', contentType: 'text/csv', reportId, reportName: opt.report,
      billingPeriod: { start: `${year}${p2(month)}01T000000.000Z`, end: `${ny}${p2(nm)}01T000000.000Z` },
      bucket: opt.bucket, reportKeys: keysOut, additionalArtifactKeys: [],
    } : {
      // Only the fields of AWS's "Data Exports manifest file reference"; the page's description of a
      // column object was not readable, so columns carry the name and the dictionary type.
      executionId: id, exportArn: `arn:aws:bcm-data-exports:us-east-1:${payers[0].id}:export/${opt.report}-${reportId.slice(0, 8)}`,
      columns: manifestColumns, dataFiles: keysOut.map((x) => `s3://${opt.bucket}/${x}`), additionalOutputFiles: [],
    };
    const mjson = JSON.stringify(manifest, null, 2) + '\n';
    fs.mkdirSync(path.dirname(path.join(root, manifestKey)), { recursive: true });
    if (legacy) fs.writeFileSync(path.join(root, dir, `${opt.report}-Manifest.json`), mjson);
    fs.writeFileSync(path.join(root, manifestKey), mjson);
    if (!legacy && opt.overwrite === 'CREATE_NEW_REPORT') {
      // a reader takes the newest manifest of the partition (S3 LastModified has whole seconds): run
      // k is k seconds newer than run k-1 even when both are written within one second
      const t = (Math.floor(Date.now() / 1000) + k) ;
      fs.utimesSync(path.join(root, manifestKey), t, t);
    }
    deliveries.push({ index: k, assemblyId: id, executionId: legacy ? undefined : id, final, rows: stats.rows, unblendedCost: stats.total.str(0),
      files: keysOut.length, manifestKey, assemblyManifestKey: legacy ? join(dir, `${opt.report}-Manifest.json`) : undefined,
      reportKeys: keysOut, byPayer: Object.fromEntries(payers.map((P) => [P.id, { rows: stats.payer.count(P.p), unblendedCost: stats.payer.str(P.p) }])) });
    lastStats = stats;
  }

  // --- expected totals (last delivery) ---
  const st = lastStats, lastD = deliveries[deliveries.length - 1];
  const expected = {
    generator: 'pg_billops test/generator/gen-cur.mjs', formatVersion: 1,
    args: { layout, bucket: opt.bucket, prefix: opt.prefix, report: opt.report, period: opt.period, rows: opt.rows,
      deliveries: K, delivery: opt.delivery || null, seed: opt.seed, payer: opt.payer, accounts: opt.accounts, final: opt.final,
      columns: opt.columns, gzip: !opt['no-gzip'], gzipLevel: opt['gzip-level'], numbers: opt.numbers },
    bucket: opt.bucket, manifestKey, billingPeriod: { start: `${ymd(year, month, 1)}T00:00:00Z`, end: `${ymd(ny, nm, 1)}T00:00:00Z` },
    columns: header,
    last: { index: lastD.index, assemblyId: lastD.assemblyId, final: lastD.final, rows: st.rows, unblendedCost: st.total.str(0), reportKeys: lastD.reportKeys },
    payers: {},
    deliveries: deliveries.map(({ reportKeys, ...rest }) => rest),
  };
  for (const P of payers) {
    const o = { name: P.name, rows: st.payer.count(P.p), unblendedCost: st.payer.str(P.p), amortizedCost: st.amort.str(P.p),
      byLineItemType: {}, byUsageAccount: {}, byLegalEntity: {}, invoices: [] };
    TYPE_NAMES.forEach((tn, t) => { const i = P.p * NT + t; if (st.type.count(i)) o.byLineItemType[tn] = { rows: st.type.count(i), unblendedCost: st.type.str(i) }; });
    P.accounts.forEach((A, a) => { const i = P.p * NA + a; if (st.acct.count(i)) o.byUsageAccount[A.id] = { name: A.name, rows: st.acct.count(i), unblendedCost: st.acct.str(i) }; });
    LEGAL.forEach((ln, l) => { const i = P.p * NL + l; if (st.legal.count(i)) o.byLegalEntity[ln] = { rows: st.legal.count(i), unblendedCost: st.legal.str(i) }; });
    for (let ent = 0; ent < 4; ent++) for (let s = 0; s < 8; s++) {
      const i = (P.p * 4 + ent) * 8 + s; if (!st.inv.count(i)) continue;
      o.invoices.push({ invoiceId: lastD.final ? invoiceId(P, ent, s - 1) : null, invoicingEntity: ENTITIES[ent].name,
        billingEntity: s ? 'AWS Marketplace' : 'AWS', legalEntity: s ? SELLERS[s - 1].name : null, rows: st.inv.count(i), unblendedCost: st.inv.str(i) });
    }
    expected.payers[P.id] = o;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (opt.expected) {
    fs.mkdirSync(path.dirname(path.resolve(opt.expected)), { recursive: true });
    fs.writeFileSync(opt.expected, JSON.stringify(expected, null, 2) + '\n');
  }
  const totalRows = deliveries.reduce((a, d) => a + d.rows, 0);
  const summary = `gen-cur: ${layout} s3://${opt.bucket}/${manifestKey} period=${opt.period} deliveries=${deliveries.map((d) => d.index).join(',')}/${K}` +
    ` last=${lastD.assemblyId} rows=${st.rows} files=${lastD.files} unblended=${st.total.str(0)} final=${lastD.final}` +
    ` columns=${header.length} (${totalRows} rows in ${secs.toFixed(2)}s, ${Math.round(totalRows / secs)} rows/s)`;
  return { expected, summary, seconds: secs };
}

async function writeChunk(stream, s) {
  if (!stream.write(s)) await once(stream, 'drain');
  else await new Promise(setImmediate); // let zlib/fs callbacks run so compression overlaps generation
}

async function main() {
  let opt;
  try { opt = parseArgs(process.argv.slice(2)); } catch (e) { process.stderr.write(`gen-cur: ${e.message}\n`); process.exit(2); }
  if (opt.help) { process.stdout.write(USAGE + '\n'); return; }
  const { summary } = await generate(opt);
  if (!opt.quiet) process.stderr.write(summary + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main().catch((e) => { process.stderr.write(`gen-cur: ${e.stack || e}\n`); process.exit(1); });
}
