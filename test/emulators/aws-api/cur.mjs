// Legacy CUR CSV -> what Cost Explorer and Invoicing would show for it:
//   * cost rows: per usage day, linked account, payer, service, region, record type, usage type,
//     operation, AZ, legal entity, invoicing/billing entity, tags and cost categories, with the
//     seven Cost Explorer metrics summed exactly (BigInt decimals, see decimal.mjs);
//   * invoice aggregates: per (payer account, bill/InvoiceId) for lines that carry an invoice id.
// Column names are matched case-insensitively with separators removed, so the CSV's
// `lineItem/UnblendedCost` and Athena's `line_item_unblended_cost` both work. The file is
// streamed (gzip if it ends in .gz); only the aggregates are kept in memory.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { parse } from 'csv-parse';
import { parseDecimal, add, sub, ZERO } from './decimal.mjs';

export const CE_METRICS = ['AmortizedCost', 'BlendedCost', 'NetAmortizedCost', 'NetUnblendedCost',
  'NormalizedUsageAmount', 'UnblendedCost', 'UsageQuantity'];
export const COST_METRICS = new Set(['AmortizedCost', 'BlendedCost', 'NetAmortizedCost', 'NetUnblendedCost', 'UnblendedCost']);

const norm = (name) => name.toLowerCase().replace(/[^a-z0-9]/g, '');

const COLUMNS = {
  payer: 'billpayeraccountid',
  account: 'lineitemusageaccountid',
  accountName: 'lineitemusageaccountname',
  payerName: 'billpayeraccountname',
  invoiceId: 'billinvoiceid',
  invoicingEntity: 'billinvoicingentity',
  billingEntity: 'billbillingentity',
  billType: 'billbilltype',
  periodStart: 'billbillingperiodstartdate',
  type: 'lineitemlineitemtype',
  usageStart: 'lineitemusagestartdate',
  productCode: 'lineitemproductcode',
  productName: 'productproductname',
  regionCode: 'productregioncode',
  region: 'productregion',
  usageType: 'lineitemusagetype',
  operation: 'lineitemoperation',
  az: 'lineitemavailabilityzone',
  legalEntity: 'lineitemlegalentity',
  currency: 'lineitemcurrencycode',
  taxType: 'lineitemtaxtype',
  unblended: 'lineitemunblendedcost',
  netUnblended: 'lineitemnetunblendedcost',
  blended: 'lineitemblendedcost',
  usageAmount: 'lineitemusageamount',
  normalizedUsage: 'lineitemnormalizedusageamount',
  spEffective: 'savingsplansavingsplaneffectivecost',
  spNetEffective: 'savingsplannetsavingsplaneffectivecost',
  spTotalCommitment: 'savingsplantotalcommitmenttodate',
  spNetTotalCommitment: 'savingsplannettotalcommitmenttodate',
  spUsedCommitment: 'savingsplanusedcommitment',
  riEffective: 'reservationeffectivecost',
  riNetEffective: 'reservationneteffectivecost',
};
const REQUIRED = ['payer', 'account', 'type', 'usageStart', 'productCode', 'unblended'];

// Invoice breakdown buckets by lineItem/LineItemType (the split is an emulator choice, see README).
const DISCOUNT_TYPES = new Set(['Discount', 'EdpDiscount', 'BundledDiscount', 'PrivateRateDiscount', 'SppDiscount']);
const FEE_TYPES = new Set(['Fee']);

export class CurError extends Error {}

// AWS's CUR query library rules (shared/docs/aws-billing.md, "Amortized cost").
function amortized(type, get, unblended, net) {
  const pick = (netCol, col) => (net && get(netCol) !== null ? get(netCol) : get(col));
  switch (type) {
    case 'SavingsPlanCoveredUsage': return pick('spNetEffective', 'spEffective') ?? ZERO;
    case 'SavingsPlanRecurringFee':
      return sub(pick('spNetTotalCommitment', 'spTotalCommitment') ?? ZERO, get('spUsedCommitment') ?? ZERO);
    case 'SavingsPlanNegation':
    case 'SavingsPlanUpfrontFee': return ZERO;
    case 'DiscountedUsage': return pick('riNetEffective', 'riEffective') ?? ZERO;
    default: return unblended;
  }
}

// -> { rows: [row], invoices: [aggregate], lines, periods: Set('payer|YYYY-MM'), accountNames }
// estimated: true/false forces the flag on every line; undefined = a line is estimated while its
// bill/InvoiceId is empty (preliminary data).
// `files` may be one path or the paths of one delivery's report files (read as one report,
// each file with its own header row).
export async function readCur(files, { estimated } = {}) {
  const rows = new Map();
  const invoices = new Map();
  const periods = new Set();
  const accountNames = new Map();
  let lines = 0;
  for (const file of [files].flat()) {
    let input = fs.createReadStream(file);
    if (file.endsWith('.gz')) input = input.pipe(zlib.createGunzip());
    const parser = input.pipe(parse({ bom: true, relax_quotes: false }));
    let idx = null;
    const tagCols = [];
    const ccCols = [];
    let lineNo = 0;
    try {
      for await (const rec of parser) {
        lineNo++;
        if (!idx) {
          idx = {};
          const byNorm = new Map(rec.map((h, i) => [norm(h), i]));
          for (const [k, n] of Object.entries(COLUMNS)) if (byNorm.has(n)) idx[k] = byNorm.get(n);
          const missing = REQUIRED.filter((k) => idx[k] === undefined);
          if (missing.length) throw new CurError(`${file}: not a CUR: missing column(s) ${missing.map((k) => COLUMNS[k]).join(', ')}`);
          rec.forEach((h, i) => {
            const m = /^resourceTags\/(?:user:)?(.+)$/.exec(h) || /^resource_tags_(?:user_)?(.+)$/.exec(h);
            if (m) tagCols.push([m[1], i]);
            const c = /^costCategory\/(.+)$/.exec(h) || /^cost_category_(.+)$/.exec(h);
            if (c) ccCols.push([c[1], i]);
          });
          continue;
        }
        lines++;
        const raw = (k) => (idx[k] === undefined ? '' : (rec[idx[k]] ?? '').trim());
        const get = (k) => {
          const v = raw(k);
          if (v === '') return null;
          const d = parseDecimal(v);
          if (!d) throw new CurError(`${file}:${lineNo}: ${COLUMNS[k]} is not a number: ${JSON.stringify(v)}`);
          return d;
        };
        const start = raw('usageStart');
        if (!/^\d{4}-\d{2}-\d{2}/.test(start)) throw new CurError(`${file}:${lineNo}: bad ${COLUMNS.usageStart}: ${JSON.stringify(start)}`);
        const date = start.slice(0, 10);
        const payer = raw('payer');
        const account = raw('account');
        const type = raw('type');
        const invoiceId = raw('invoiceId');
        const periodStart = (raw('periodStart') || start).slice(0, 7);
        periods.add(`${payer}|${periodStart}`);
        if (raw('accountName')) accountNames.set(account, raw('accountName'));
        if (raw('payerName')) accountNames.set(payer, raw('payerName'));

        const unblended = get('unblended') ?? ZERO;
        const netUnblended = get('netUnblended') ?? unblended;
        const metrics = {
          UnblendedCost: unblended,
          BlendedCost: get('blended') ?? unblended,
          NetUnblendedCost: netUnblended,
          AmortizedCost: amortized(type, get, unblended, false),
          NetAmortizedCost: amortized(type, get, netUnblended, true),
          UsageQuantity: get('usageAmount') ?? ZERO,
          NormalizedUsageAmount: get('normalizedUsage') ?? ZERO,
        };
        const dims = {
          LINKED_ACCOUNT: account,
          PAYER_ACCOUNT: payer,
          // Cost Explorer lists all taxes under the service "Tax"; otherwise the product name.
          SERVICE: type === 'Tax' ? 'Tax' : (raw('productName') || raw('productCode')),
          SERVICE_CODE: raw('productCode'),
          REGION: raw('regionCode') || raw('region') || 'NoRegion',
          AZ: raw('az') || 'NoAZ',
          RECORD_TYPE: type,
          USAGE_TYPE: raw('usageType'),
          OPERATION: raw('operation'),
          LEGAL_ENTITY_NAME: raw('legalEntity'),
          INVOICING_ENTITY: raw('invoicingEntity'),
          BILLING_ENTITY: raw('billingEntity'),
        };
        const tags = {};
        for (const [k, i] of tagCols) if ((rec[i] ?? '') !== '') tags[k] = rec[i];
        const costCategories = {};
        for (const [k, i] of ccCols) if ((rec[i] ?? '') !== '') costCategories[k] = rec[i];
        const est = estimated === undefined ? invoiceId === '' : Boolean(estimated);
        const currency = raw('currency') || 'USD';
        const key = JSON.stringify([date, dims, tags, costCategories, est, currency, periodStart]);
        const row = rows.get(key);
        if (row) {
          for (const m of CE_METRICS) row.metrics[m] = add(row.metrics[m], metrics[m]);
        } else {
          rows.set(key, {
            date, dims, tags, costCategories, metrics, estimated: est, currency,
            source: `cur:${payer}:${periodStart}`,
          });
        }

        if (invoiceId !== '') {
          const ik = `${payer}\u0000${invoiceId}`;
          let inv = invoices.get(ik);
          if (!inv) {
            inv = {
              payer, invoiceId, periodStart, invoicingEntity: raw('invoicingEntity'),
              billingEntity: raw('billingEntity'), billType: raw('billType'), currency,
              total: ZERO, taxes: new Map(), discounts: ZERO, fees: ZERO, lines: 0,
            };
            invoices.set(ik, inv);
          }
          inv.lines++;
          inv.total = add(inv.total, unblended);
          if (type === 'Tax') {
            const t = raw('taxType') || 'Tax';
            inv.taxes.set(t, add(inv.taxes.get(t) ?? ZERO, unblended));
          } else if (DISCOUNT_TYPES.has(type)) {
            inv.discounts = add(inv.discounts, unblended);
          } else if (FEE_TYPES.has(type)) {
            inv.fees = add(inv.fees, unblended);
          }
        }
      }
    } catch (e) {
      if (e instanceof CurError) throw e;
      throw new CurError(`${file}: ${e.message}`);
    }
    if (!idx) throw new CurError(`${file}: empty file`);
  }
  return { rows: [...rows.values()], invoices: [...invoices.values()], lines, periods, accountNames };
}
