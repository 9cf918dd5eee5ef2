// AWS Invoicing (JSON 1.0): ListInvoiceSummaries and GetInvoicePDF over the emulator's invoices,
// the invoice summaries derived from a final CUR, and the pre-signed document URLs.
import crypto from 'node:crypto';
import { ApiError } from './errors.mjs';
import { add, sub, round, formatFixed, ZERO, parseDecimal } from './decimal.mjs';
import { DAY_MS, requestHash, encodeToken, decodeToken } from './util.mjs';

const validation = (message, fieldName, reason = 'fieldValidationFailed') => new ApiError('ValidationException', message, {
  fields: { reason, ...(fieldName ? { fieldList: [{ name: fieldName, message }] } : {}) },
});

// "Without ReceiverRole, TimeInterval is limited to one month"; with it, "up to 5 years" and
// "data is available starting 2025-06-01" (the model's ReceiverRole documentation).
const ONE_MONTH_MS = 31 * DAY_MS;
const FIVE_YEARS_MS = (5 * 365 + 2) * DAY_MS;
const RECEIVER_ROLE_SINCE = Date.UTC(2025, 5, 1);

const epochSeconds = (ms) => Math.floor(ms / 1000);

// ---------------------------------------------------------------------------
// Invoice records: { summary: <InvoiceSummary as the model has it>, pdf: Buffer|null,
//   supplemental: [{DocumentType, DocumentId, content: Buffer|null}], origin: 'cur'|'api', source }
// ---------------------------------------------------------------------------

const BILL_TYPES = { anniversary: 'ANNIVERSARY', purchase: 'PURCHASE', refund: 'REFUND' };
const BILLING_ENTITIES = { aws: 'AWS', 'aws marketplace': 'AWS_MARKETPLACE' };

// A CUR invoice aggregate (cur.mjs) -> invoice record. Issued on the 2nd of the month after the
// billing period, due 30 days later; amounts rounded to cents (emulator choices, see README).
export function invoiceFromCur(agg) {
  const [y, m] = agg.periodStart.split('-').map(Number);
  const issued = Date.UTC(y, m, 2); // month m (1-based) as a 0-based index = the next month
  const taxes = [...agg.taxes.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
  const taxTotal = round(taxes.reduce((acc, [, v]) => add(acc, v), ZERO), 2);
  const total = round(agg.total, 2);
  const subTotal = sub(total, taxTotal);
  const cents = (d) => formatFixed(d, 2);
  const amount = {
    TotalAmount: cents(total),
    TotalAmountBeforeTax: cents(subTotal),
    CurrencyCode: agg.currency,
    AmountBreakdown: {
      SubTotalAmount: cents(subTotal),
      Discounts: { Breakdown: [], TotalAmount: cents(agg.discounts) },
      Taxes: {
        Breakdown: taxes.map(([desc, v]) => ({ Description: desc, Amount: cents(v) })),
        TotalAmount: cents(taxTotal),
      },
      Fees: { Breakdown: [], TotalAmount: cents(agg.fees) },
    },
  };
  const billType = BILL_TYPES[agg.billType.toLowerCase()];
  const summary = {
    AccountId: agg.payer,
    InvoiceId: agg.invoiceId,
    IssuedDate: epochSeconds(issued),
    DueDate: epochSeconds(issued + 30 * DAY_MS),
    Entity: {
      InvoicingEntity: agg.invoicingEntity,
      ...(BILLING_ENTITIES[agg.billingEntity.toLowerCase()] && { BillingEntity: BILLING_ENTITIES[agg.billingEntity.toLowerCase()] }),
    },
    BillingPeriod: { Month: m, Year: y },
    ...(billType && { BillType: billType }),
    InvoiceType: billType === 'REFUND' || total.n < 0n ? 'CREDIT_MEMO' : 'INVOICE',
    BaseCurrencyAmount: amount,
    TaxCurrencyAmount: structuredClone(amount),
    PaymentCurrencyAmount: structuredClone(amount),
  };
  return { summary, pdf: null, supplemental: [], origin: 'cur', source: `cur:${agg.payer}:${agg.periodStart}` };
}

// Control-API invoice -> record. Takes the model's InvoiceSummary members (dates as epoch seconds
// or ISO strings) plus shorthands: totalAmount / taxAmount / currencyCode build the three
// currency amounts; pdfBase64 and supplementalDocuments [{DocumentType, DocumentId?, contentBase64?}].
export function invoiceFromApi(input) {
  const s = structuredClone(input);
  const extra = {
    pdf: s.pdfBase64 !== undefined ? Buffer.from(s.pdfBase64, 'base64') : null,
    supplemental: (s.supplementalDocuments ?? []).map((d, i) => ({
      DocumentType: d.DocumentType ?? 'SUPPLEMENT',
      DocumentId: d.DocumentId ?? `${s.InvoiceId}-S${i + 1}`,
      content: d.contentBase64 !== undefined ? Buffer.from(d.contentBase64, 'base64') : null,
    })),
  };
  const shorthand = { total: s.totalAmount, tax: s.taxAmount, currency: s.currencyCode };
  for (const k of ['pdfBase64', 'supplementalDocuments', 'totalAmount', 'taxAmount', 'currencyCode']) delete s[k];
  if (typeof s.InvoiceId !== 'string' || s.InvoiceId === '') throw new Error('InvoiceId is required');
  if (!/^\d{12}$/.test(s.AccountId ?? '')) throw new Error(`${s.InvoiceId}: AccountId must be 12 digits`);
  for (const k of ['IssuedDate', 'DueDate']) {
    if (typeof s[k] === 'string') {
      const t = Date.parse(s[k]);
      if (Number.isNaN(t)) throw new Error(`${s.InvoiceId}: ${k} is not a date`);
      s[k] = epochSeconds(t);
    }
  }
  if (s.IssuedDate === undefined) throw new Error(`${s.InvoiceId}: IssuedDate is required`);
  if (s.DueDate === undefined) s.DueDate = s.IssuedDate + 30 * 86400;
  if (!s.BillingPeriod) {
    const d = new Date(s.IssuedDate * 1000 - 2 * DAY_MS); // the month before the issue date
    s.BillingPeriod = { Month: d.getUTCMonth() + 1, Year: d.getUTCFullYear() };
  }
  s.InvoiceType ??= 'INVOICE';
  s.Entity ??= { InvoicingEntity: 'Amazon Web Services, Inc.' };
  if (shorthand.total !== undefined && !s.BaseCurrencyAmount) {
    const total = parseDecimal(String(shorthand.total));
    const tax = parseDecimal(String(shorthand.tax ?? '0'));
    if (!total || !tax) throw new Error(`${s.InvoiceId}: totalAmount/taxAmount must be decimal numbers`);
    const cents = (d) => formatFixed(d, 2);
    const amount = {
      TotalAmount: cents(total),
      TotalAmountBeforeTax: cents(sub(total, tax)),
      CurrencyCode: shorthand.currency ?? 'USD',
      AmountBreakdown: {
        SubTotalAmount: cents(sub(total, tax)),
        Discounts: { Breakdown: [], TotalAmount: '0.00' },
        Taxes: { Breakdown: [], TotalAmount: cents(tax) },
        Fees: { Breakdown: [], TotalAmount: '0.00' },
      },
    };
    s.BaseCurrencyAmount = amount;
    s.TaxCurrencyAmount ??= structuredClone(amount);
    s.PaymentCurrencyAmount ??= structuredClone(amount);
  }
  return { summary: s, ...extra, origin: 'api', source: 'api' };
}

// ---------------------------------------------------------------------------
// ListInvoiceSummaries
// ---------------------------------------------------------------------------
export function listInvoiceSummaries(input, env) {
  const { state, cfg } = env;
  const sel = input.Selector;
  if (sel.ResourceType === 'ACCOUNT_ID' && !/^\d{12}$/.test(sel.Value)) {
    throw validation(`Selector.Value ${JSON.stringify(sel.Value)} is not a valid account ID (12 digits)`, 'Selector.Value');
  }
  const f = input.Filter ?? {};
  let from = null;
  let to = null;
  if (f.TimeInterval) {
    from = f.TimeInterval.StartDate * 1000;
    to = f.TimeInterval.EndDate * 1000;
    if (from >= to) throw validation('TimeInterval.StartDate must be before TimeInterval.EndDate', 'Filter.TimeInterval');
    const max = f.ReceiverRole ? FIVE_YEARS_MS : ONE_MONTH_MS;
    if (to - from > max) {
      throw validation(f.ReceiverRole ? 'TimeInterval cannot exceed 5 years' : 'TimeInterval cannot exceed one month unless ReceiverRole is specified', 'Filter.TimeInterval');
    }
  }
  if (f.ReceiverRole) {
    const bp = f.BillingPeriod;
    const earliest = from ?? (bp ? Date.UTC(bp.Year, bp.Month - 1, 1) : null);
    if (earliest !== null && earliest < RECEIVER_ROLE_SINCE) {
      throw validation('Data filtered by ReceiverRole is available starting 2025-06-01', 'Filter.ReceiverRole');
    }
  }
  if (input.MaxResults !== undefined && (input.MaxResults < 1 || input.MaxResults > 100)) {
    throw validation('MaxResults must be between 1 and 100', 'MaxResults'); // also caught by the model
  }
  const pageSize = input.MaxResults ?? cfg.invoicePageSize;
  const hash = requestHash({ ...input, MaxResults: undefined }, 'NextToken');
  let offset = 0;
  if (input.NextToken !== undefined) {
    const t = decodeToken(state.tokenSecret, input.NextToken);
    if (!t || t.op !== 'invoices' || !Number.isInteger(t.o) || t.o <= 0 || t.h !== hash) {
      throw validation('The NextToken is invalid', 'NextToken', 'invalidNextToken');
    }
    offset = t.o;
  }

  const matches = [...state.invoices.values()].map((r) => r.summary).filter((s) => {
    if (sel.ResourceType === 'ACCOUNT_ID' ? s.AccountId !== sel.Value : s.InvoiceId !== sel.Value) return false;
    if (from !== null && !(s.IssuedDate * 1000 >= from && s.IssuedDate * 1000 < to)) return false;
    if (f.BillingPeriod && (s.BillingPeriod?.Month !== f.BillingPeriod.Month || s.BillingPeriod?.Year !== f.BillingPeriod.Year)) return false;
    if (f.InvoicingEntity !== undefined && s.Entity?.InvoicingEntity !== f.InvoicingEntity) return false;
    if (f.ReceiverRole !== undefined && (s.ReceiverRole ?? 'BUYER') !== f.ReceiverRole) return false;
    return true;
  }).sort((a, b) => (b.IssuedDate - a.IssuedDate) || (a.InvoiceId < b.InvoiceId ? -1 : a.InvoiceId > b.InvoiceId ? 1 : 0));

  if (sel.ResourceType === 'INVOICE_ID' && !state.invoices.has(sel.Value)) {
    throw new ApiError('ResourceNotFoundException', `Invoice ${sel.Value} was not found`);
  }
  if (offset > 0 && offset >= matches.length) throw validation('The NextToken is invalid', 'NextToken', 'invalidNextToken');
  const out = { InvoiceSummaries: matches.slice(offset, offset + pageSize).map((s) => structuredClone(s)) };
  if (offset + pageSize < matches.length) {
    out.NextToken = encodeToken(state.tokenSecret, { op: 'invoices', o: offset + pageSize, h: hash });
  }
  return out;
}

// ---------------------------------------------------------------------------
// GetInvoicePDF and the pre-signed document URLs
// ---------------------------------------------------------------------------
export const DOCUMENT_PREFIX = '/invoice-documents/';

const amzDate = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z').replace(/[-:]/g, '');

function docSignature(secret, docId, date, expires) {
  return crypto.createHmac('sha256', secret).update(`${docId}\n${date}\n${expires}`).digest('hex');
}

// A URL shaped like a pre-signed S3 URL, valid for cfg.pdfUrlTtlSeconds on the emulator clock.
function presign(env, baseUrl, docId) {
  const now = env.now();
  const date = amzDate(now);
  const expires = env.cfg.pdfUrlTtlSeconds;
  const sig = docSignature(env.state.tokenSecret, docId, date, expires);
  const url = `${baseUrl}${DOCUMENT_PREFIX}${encodeURIComponent(docId)}.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256` +
    `&X-Amz-Date=${date}&X-Amz-Expires=${expires}&X-Amz-SignedHeaders=host&X-Amz-Signature=${sig}`;
  return { url, expiresAt: epochSeconds(now) + expires };
}

export function getInvoicePDF(input, env, baseUrl) {
  const rec = env.state.invoices.get(input.InvoiceId);
  if (!rec) throw new ApiError('ResourceNotFoundException', `Invoice ${input.InvoiceId} was not found`);
  const main = presign(env, baseUrl, rec.summary.InvoiceId);
  return {
    InvoicePDF: {
      InvoiceId: rec.summary.InvoiceId,
      DocumentUrl: main.url,
      DocumentUrlExpirationDate: main.expiresAt,
      SupplementalDocuments: rec.supplemental.map((d) => {
        const p = presign(env, baseUrl, `${rec.summary.InvoiceId}/${d.DocumentId}`);
        return { DocumentType: d.DocumentType, DocumentId: d.DocumentId, DocumentUrl: p.url, DocumentUrlExpirationDate: p.expiresAt };
      }),
    },
  };
}

// GET <DOCUMENT_PREFIX><docId>.pdf?X-Amz-...: -> { status, headers, body } (S3-style XML errors).
export function serveDocument(env, rawPath, query) {
  const xmlError = (status, code, message, extra = '') => ({
    status,
    headers: { 'Content-Type': 'application/xml' },
    body: Buffer.from(`<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${extra}` +
      `<RequestId>${crypto.randomBytes(8).toString('hex').toUpperCase()}</RequestId></Error>`),
  });
  const m = /^(.+)\.pdf$/.exec(rawPath.slice(DOCUMENT_PREFIX.length));
  let docId = null;
  try { docId = m ? decodeURIComponent(m[1]) : null; } catch { docId = null; }
  const date = query.get('X-Amz-Date') ?? '';
  const expires = query.get('X-Amz-Expires') ?? '';
  const sig = query.get('X-Amz-Signature') ?? '';
  if (!docId || !/^\d{8}T\d{6}Z$/.test(date) || !/^\d+$/.test(expires) || !sig) {
    return xmlError(403, 'AccessDenied', 'Query-string authentication requires the X-Amz-Date, X-Amz-Expires and X-Amz-Signature parameters');
  }
  const want = docSignature(env.state.tokenSecret, docId, date, Number(expires));
  if (sig.length !== want.length || !crypto.timingSafeEqual(Buffer.from(sig), Buffer.from(want))) {
    return xmlError(403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided. Check your key and signing method.');
  }
  const signedAt = Date.UTC(+date.slice(0, 4), +date.slice(4, 6) - 1, +date.slice(6, 8), +date.slice(9, 11), +date.slice(11, 13), +date.slice(13, 15));
  const expiresAt = signedAt + Number(expires) * 1000;
  const now = env.now();
  if (now > expiresAt) {
    env.state.stats.documents.expired++;
    const iso = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
    return xmlError(403, 'AccessDenied', 'Request has expired',
      `<X-Amz-Expires>${expires}</X-Amz-Expires><Expires>${iso(expiresAt)}</Expires><ServerTime>${iso(now)}</ServerTime>`);
  }
  const slash = docId.indexOf('/');
  const rec = env.state.invoices.get(slash < 0 ? docId : docId.slice(0, slash));
  let content = null;
  if (rec && slash < 0) content = rec.pdf ?? invoicePdf(rec.summary);
  if (rec && slash >= 0) {
    const d = rec.supplemental.find((s) => s.DocumentId === docId.slice(slash + 1));
    if (d) content = d.content ?? simplePdf([`Supplemental document ${d.DocumentId}`, `Type: ${d.DocumentType}`, `Invoice: ${rec.summary.InvoiceId}`]);
  }
  if (!content) return xmlError(404, 'NoSuchKey', 'The specified key does not exist.');
  env.state.stats.documents.downloads++;
  return { status: 200, headers: { 'Content-Type': 'application/pdf' }, body: content };
}

// A minimal, valid one-page PDF (PDF 1.4, Helvetica) with the given lines of ASCII text.
export function simplePdf(lines) {
  const esc = (s) => s.replace(/[^\x20-\x7e]/g, '?').replace(/([\\()])/g, '\\$1');
  const text = lines.map((l, i) => `BT /F1 12 Tf 72 ${760 - i * 18} Td (${esc(l)}) Tj ET`).join('\n');
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>',
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
    `<< /Length ${Buffer.byteLength(text)} >>\nstream\n${text}\nendstream`,
  ];
  let out = '%PDF-1.4\n';
  const offsets = [];
  objects.forEach((o, i) => { offsets.push(Buffer.byteLength(out)); out += `${i + 1} 0 obj\n${o}\nendobj\n`; });
  const xref = Buffer.byteLength(out);
  out += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  for (const off of offsets) out += `${String(off).padStart(10, '0')} 00000 n \n`;
  out += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(out, 'latin1');
}

function invoicePdf(s) {
  const a = s.BaseCurrencyAmount;
  return simplePdf([
    `${s.Entity?.InvoicingEntity ?? 'Amazon Web Services'} - ${s.InvoiceType ?? 'INVOICE'}`,
    `Invoice ${s.InvoiceId}  Account ${s.AccountId}`,
    `Billing period ${s.BillingPeriod?.Year}-${String(s.BillingPeriod?.Month).padStart(2, '0')}`,
    `Issued ${new Date(s.IssuedDate * 1000).toISOString().slice(0, 10)}`,
    a ? `Total ${a.TotalAmount} ${a.CurrencyCode}` : 'Total n/a',
    '(pg_billops AWS API emulator)',
  ]);
}
