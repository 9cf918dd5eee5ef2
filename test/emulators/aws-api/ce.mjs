// Cost Explorer (AWSInsightsIndexService, JSON 1.1): GetCostAndUsage and GetAnomalies over the
// emulator's cost rows and anomalies. Requests have already passed the model validation
// (model.mjs); what is checked here is what the model cannot say (dates, metric names, the
// GroupBy limit, filter semantics, page tokens).
import { ApiError } from './errors.mjs';
import { CE_METRICS, COST_METRICS } from './cur.mjs';
import { add, format, ZERO } from './decimal.mjs';
import {
  DAY_MS, parseYmd, ymd, firstOfMonth, addMonths, startOfDay, requestHash, encodeToken, decodeToken,
} from './util.mjs';

const invalid = (message) => new ApiError('ValidationException', message);

// Dimensions the emulator has data for (filter and GroupBy). The model's GroupBy documentation
// lists AZ, INSTANCE_TYPE, LEGAL_ENTITY_NAME, INVOICING_ENTITY, LINKED_ACCOUNT, OPERATION,
// PLATFORM, PURCHASE_TYPE, SERVICE, TENANCY, RECORD_TYPE and USAGE_TYPE; REGION is not in that
// list but is accepted by the real API (and the console groups by it).
export const DATA_DIMENSIONS = new Set(['LINKED_ACCOUNT', 'PAYER_ACCOUNT', 'SERVICE', 'SERVICE_CODE', 'REGION',
  'AZ', 'RECORD_TYPE', 'USAGE_TYPE', 'OPERATION', 'LEGAL_ENTITY_NAME', 'INVOICING_ENTITY', 'BILLING_ENTITY']);
const GROUP_DIMENSIONS = new Set(['AZ', 'INSTANCE_TYPE', 'LEGAL_ENTITY_NAME', 'INVOICING_ENTITY', 'LINKED_ACCOUNT',
  'OPERATION', 'PLATFORM', 'PURCHASE_TYPE', 'SERVICE', 'TENANCY', 'RECORD_TYPE', 'USAGE_TYPE', 'REGION']);
const MAX_GROUP_BY = 2;

// ---------------------------------------------------------------------------
// Filter expressions
// ---------------------------------------------------------------------------
const ROOTS = ['And', 'Or', 'Not', 'Dimensions', 'Tags', 'CostCategories'];

// Expression -> predicate(row). Exactly one root per expression object, as the Expression
// documentation describes ("Simple dimension values" or a compound And/Or/Not).
export function compileFilter(expr, where = 'Filter') {
  const roots = ROOTS.filter((k) => expr[k] !== undefined && expr[k] !== null);
  if (roots.length !== 1) {
    throw invalid(`${where} must have exactly one of ${ROOTS.join(', ')}; found ${roots.length ? roots.join(', ') : 'none'}`);
  }
  const root = roots[0];
  const v = expr[root];
  switch (root) {
    case 'And':
    case 'Or': {
      if (v.length === 0) throw invalid(`${where}.${root} must contain at least one expression`);
      const parts = v.map((e, i) => compileFilter(e, `${where}.${root}[${i}]`));
      return root === 'And' ? (r) => parts.every((p) => p(r)) : (r) => parts.some((p) => p(r));
    }
    case 'Not': {
      const p = compileFilter(v, `${where}.Not`);
      return (r) => !p(r);
    }
    case 'Dimensions': {
      if (!v.Key) throw invalid(`${where}.Dimensions.Key is required`);
      if (!DATA_DIMENSIONS.has(v.Key)) throw invalid(`${where}: dimension ${v.Key} is not supported for filtering by this emulator`);
      const opts = v.MatchOptions ?? ['EQUALS'];
      const bad = opts.filter((o) => o !== 'EQUALS' && o !== 'CASE_SENSITIVE');
      if (bad.length) throw invalid(`${where}: MatchOptions ${bad.join(', ')} not valid for Dimensions (valid: EQUALS, CASE_SENSITIVE)`);
      const values = new Set(v.Values ?? []);
      if (values.size === 0) throw invalid(`${where}.Dimensions.Values must not be empty`);
      return (r) => values.has(r.dims[v.Key] ?? '');
    }
    default: { // Tags, CostCategories
      if (!v.Key) throw invalid(`${where}.${root}.Key is required`);
      const opts = v.MatchOptions ?? ['EQUALS'];
      const bad = opts.filter((o) => !['EQUALS', 'ABSENT', 'CASE_SENSITIVE'].includes(o));
      if (bad.length) throw invalid(`${where}: MatchOptions ${bad.join(', ')} not valid for ${root} (valid: EQUALS, ABSENT, CASE_SENSITIVE)`);
      const field = root === 'Tags' ? 'tags' : 'costCategories';
      const values = new Set(v.Values ?? []);
      const absent = opts.includes('ABSENT');
      return (r) => {
        const val = r[field][v.Key];
        if (val === undefined || val === '') return absent || values.has('');
        return values.size === 0 ? !absent : values.has(val);
      };
    }
  }
}

// ---------------------------------------------------------------------------
// GetCostAndUsage
// ---------------------------------------------------------------------------
function parsePeriodDate(s, what) {
  if (/T/.test(s)) throw invalid('Hourly timePeriod is not supported for this request');
  const t = parseYmd(s);
  if (t === null) throw invalid(`${what} date ${JSON.stringify(s)} is not a valid date (expected YYYY-MM-DD)`);
  return t;
}

function buildPeriods(startMs, endMs, granularity) {
  const periods = [];
  if (granularity === 'DAILY') {
    for (let t = startMs; t < endMs; t += DAY_MS) periods.push({ start: t, end: t + DAY_MS });
  } else {
    for (let t = startMs; t < endMs;) {
      const next = Math.min(addMonths(firstOfMonth(t), 1), endMs);
      periods.push({ start: t, end: next });
      t = next;
    }
  }
  return periods;
}

function groupKeyOf(def, row) {
  switch (def.Type) {
    case 'DIMENSION': return row.dims[def.Key] ?? '';
    case 'TAG': return `${def.Key}$${row.tags[def.Key] ?? ''}`;
    default: return `${def.Key}$${row.costCategories[def.Key] ?? ''}`; // COST_CATEGORY
  }
}

function validateGroupBy(groupBy) {
  if (groupBy.length > MAX_GROUP_BY) {
    throw invalid(`GroupBy can contain up to ${MAX_GROUP_BY} group definitions; found ${groupBy.length}`);
  }
  groupBy.forEach((g, i) => {
    if (!g.Type || !g.Key) throw invalid(`GroupBy[${i}] needs both Type and Key`);
    if (g.Type === 'DIMENSION') {
      if (!GROUP_DIMENSIONS.has(g.Key)) {
        throw invalid(`Invalid group by dimension ${g.Key}. Valid values are ${[...GROUP_DIMENSIONS].join(', ')}`);
      }
      if (!DATA_DIMENSIONS.has(g.Key)) throw invalid(`GroupBy dimension ${g.Key} is not supported by this emulator`);
    }
  });
}

export function getCostAndUsage(input, env) {
  const { state, cfg } = env;
  const now = env.now();
  if (input.Granularity === 'HOURLY') {
    throw invalid('Hourly granularity is not enabled for this account; this emulator supports DAILY and MONTHLY');
  }
  const startMs = parsePeriodDate(input.TimePeriod.Start, 'Start');
  const endMs = parsePeriodDate(input.TimePeriod.End, 'End');
  if (startMs >= endMs) throw invalid('Start date (and hour) should be before end date (and hour)');
  if (endMs > addMonths(firstOfMonth(now), 1)) throw invalid('end date past the beginning of next month');
  if (startMs < addMonths(firstOfMonth(now), -13) && new Date(startMs).getUTCDate() !== 1) {
    throw invalid('To retrieve data beyond the past 14 months, your start date needs to be the first day of the month.');
  }
  const metrics = input.Metrics;
  if (metrics.length === 0) throw invalid('Metrics must contain at least one metric');
  const unknown = metrics.filter((m) => !CE_METRICS.includes(m));
  if (unknown.length) {
    throw invalid(`Metrics [${unknown.join(', ')}] are not valid. Valid values are ${CE_METRICS.join(', ')}`);
  }
  const groupBy = input.GroupBy ?? [];
  validateGroupBy(groupBy);
  const filter = input.Filter ? compileFilter(input.Filter) : () => true;
  if (input.BillingViewArn !== undefined) {
    const m = /:billingview\/(.+)$/.exec(input.BillingViewArn);
    if (!m || m[1] !== 'primary') {
      throw new ApiError('ResourceNotFoundException', `Billing view ${input.BillingViewArn} does not exist`,
        { fields: { ResourceName: input.BillingViewArn } });
    }
  }

  const hash = requestHash(input, 'NextPageToken');
  let offset = 0;
  if (input.NextPageToken !== undefined) {
    const t = decodeToken(state.tokenSecret, input.NextPageToken);
    if (!t || t.op !== 'ce' || !Number.isInteger(t.o) || t.o <= 0) {
      throw new ApiError('InvalidNextTokenException', 'The pagination token is invalid. Try again without a pagination token.');
    }
    if (t.h !== hash) {
      throw new ApiError('RequestChangedException', 'Your request parameters changed between pages. Try again with the old parameters or without a pagination token.');
    }
    offset = t.o;
  }

  const periods = buildPeriods(startMs, endMs, input.Granularity);
  const cells = periods.map(() => new Map());
  // Estimated: the period touches the open month (or later), or a month that holds estimated
  // (preliminary) data, whatever the filter: it is a property of the bill month, not of a group.
  const estimatedMonths = new Set();
  for (const row of state.costs.values()) if (row.estimated) estimatedMonths.add(row.date.slice(0, 7));
  const estimated = periods.map((p) => {
    if (p.end > firstOfMonth(now)) return true;
    for (let t = firstOfMonth(p.start); t < p.end; t = addMonths(t, 1)) if (estimatedMonths.has(ymd(t).slice(0, 7))) return true;
    return false;
  });
  const grouped = groupBy.length > 0;
  const sy = new Date(startMs).getUTCFullYear();
  const sm = new Date(startMs).getUTCMonth();
  for (const row of state.costs.values()) {
    const t = parseYmd(row.date);
    if (t < startMs || t >= endMs || !filter(row)) continue;
    const d = new Date(t);
    const pi = input.Granularity === 'DAILY' ? Math.round((t - startMs) / DAY_MS)
      : (d.getUTCFullYear() - sy) * 12 + (d.getUTCMonth() - sm);
    const keys = grouped ? groupBy.map((g) => groupKeyOf(g, row)) : [];
    const k = JSON.stringify(keys);
    let cell = cells[pi].get(k);
    if (!cell) {
      cell = { keys, metrics: Object.fromEntries(metrics.map((m) => [m, ZERO])), currency: row.currency };
      cells[pi].set(k, cell);
    }
    for (const m of metrics) cell.metrics[m] = add(cell.metrics[m], row.metrics[m]);
  }

  const metricValues = (cell) => Object.fromEntries(metrics.map((m) => [m, {
    Amount: format(cell ? cell.metrics[m] : ZERO),
    Unit: COST_METRICS.has(m) ? (cell?.currency ?? 'USD') : 'N/A',
  }]));
  const timePeriod = (p) => ({ Start: ymd(p.start), End: ymd(p.end) });

  const out = {};
  if (grouped) out.GroupDefinitions = groupBy.map((g) => ({ Type: g.Type, Key: g.Key }));
  const results = [];
  let next = null;
  if (!grouped) {
    // One Total per period; without groups the answer is small and never paged.
    periods.forEach((p, i) => {
      results.push({ TimePeriod: timePeriod(p), Total: metricValues(cells[i].get('[]')), Groups: [], Estimated: estimated[i] });
    });
  } else {
    // Paging counts groups (a period without groups counts as one), so a period's groups
    // can continue on the next page under the same TimePeriod.
    const units = [];
    periods.forEach((p, i) => {
      const groups = [...cells[i].values()].sort((a, b) => {
        for (let j = 0; j < a.keys.length; j++) if (a.keys[j] !== b.keys[j]) return a.keys[j] < b.keys[j] ? -1 : 1;
        return 0;
      });
      if (groups.length === 0) units.push({ i, g: null });
      for (const g of groups) units.push({ i, g });
    });
    if (offset > 0 && offset >= units.length) {
      throw new ApiError('InvalidNextTokenException', 'The pagination token is invalid. Try again without a pagination token.');
    }
    const page = units.slice(offset, offset + cfg.cePageSize);
    if (offset + cfg.cePageSize < units.length) next = offset + cfg.cePageSize;
    for (const u of page) {
      let r = results[results.length - 1];
      if (!r || r._i !== u.i) {
        r = { _i: u.i, TimePeriod: timePeriod(periods[u.i]), Total: {}, Groups: [], Estimated: estimated[u.i] };
        results.push(r);
      }
      if (u.g) r.Groups.push({ Keys: u.g.keys, Metrics: metricValues(u.g) });
    }
    for (const r of results) delete r._i;
  }
  out.ResultsByTime = results;
  const accountIdx = groupBy.findIndex((g) => g.Type === 'DIMENSION' && g.Key === 'LINKED_ACCOUNT');
  const accounts = new Set();
  if (accountIdx >= 0) for (const r of results) for (const g of r.Groups) accounts.add(g.Keys[accountIdx]);
  out.DimensionValueAttributes = [...accounts].sort().map((id) => ({
    Value: id,
    Attributes: state.accountNames.has(id) ? { description: state.accountNames.get(id) } : {},
  }));
  if (next !== null) out.NextPageToken = encodeToken(state.tokenSecret, { op: 'ce', o: next, h: hash });
  return out;
}

// ---------------------------------------------------------------------------
// GetAnomalies
// ---------------------------------------------------------------------------
export const ANOMALY_RETENTION_DAYS = 90;

function anomalyDay(s, what) {
  const day = s.slice(0, 10);
  const t = parseYmd(day);
  if (t === null || !/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}Z)?$/.test(s)) {
    throw invalid(`${what} ${JSON.stringify(s)} is not a valid date (expected YYYY-MM-DD)`);
  }
  return t;
}

const IMPACT_OPS = {
  EQUAL: (v, a) => v === a,
  GREATER_THAN_OR_EQUAL: (v, a) => v >= a,
  LESS_THAN_OR_EQUAL: (v, a) => v <= a,
  GREATER_THAN: (v, a) => v > a,
  LESS_THAN: (v, a) => v < a,
  BETWEEN: (v, a, b) => v >= a && v <= b,
};

export function getAnomalies(input, env) {
  const { state, cfg } = env;
  const today = startOfDay(env.now());
  const startMs = anomalyDay(input.DateInterval.StartDate, 'StartDate');
  const endMs = input.DateInterval.EndDate !== undefined ? anomalyDay(input.DateInterval.EndDate, 'EndDate') : today;
  if (startMs > endMs) throw invalid('StartDate must be on or before EndDate');
  const ti = input.TotalImpact;
  if (ti && ti.NumericOperator === 'BETWEEN' && ti.EndValue === undefined) {
    throw invalid('TotalImpact.EndValue is required when NumericOperator is BETWEEN');
  }
  if (input.MaxResults !== undefined && input.MaxResults < 1) throw invalid('MaxResults must be greater than 0');
  const pageSize = input.MaxResults ?? cfg.anomalyPageSize;
  const hash = requestHash({ ...input, MaxResults: undefined }, 'NextPageToken');
  let offset = 0;
  if (input.NextPageToken !== undefined) {
    const t = decodeToken(state.tokenSecret, input.NextPageToken);
    // GetAnomalies models no RequestChangedException: a token from other parameters is invalid.
    if (!t || t.op !== 'anomalies' || !Number.isInteger(t.o) || t.o <= 0 || t.h !== hash) {
      throw new ApiError('InvalidNextTokenException', 'The pagination token is invalid. Try again without a pagination token.');
    }
    offset = t.o;
  }
  const oldest = today - ANOMALY_RETENTION_DAYS * DAY_MS;
  const list = [...state.anomalies.values()].filter((a) => {
    const end = parseYmd((a.AnomalyEndDate ?? a.AnomalyStartDate ?? '').slice(0, 10));
    if (end === null || end < oldest || end < startMs || end > endMs) return false;
    if (input.MonitorArn !== undefined && a.MonitorArn !== input.MonitorArn) return false;
    if (input.Feedback !== undefined && a.Feedback !== input.Feedback) return false;
    if (ti && !IMPACT_OPS[ti.NumericOperator](a.Impact.TotalImpact ?? 0, ti.StartValue, ti.EndValue)) return false;
    return true;
  }).sort((a, b) => {
    const sa = a.AnomalyStartDate ?? '';
    const sb = b.AnomalyStartDate ?? '';
    if (sa !== sb) return sa < sb ? 1 : -1; // newest first
    return a.AnomalyId < b.AnomalyId ? -1 : a.AnomalyId > b.AnomalyId ? 1 : 0;
  });
  if (offset > 0 && offset >= list.length) {
    throw new ApiError('InvalidNextTokenException', 'The pagination token is invalid. Try again without a pagination token.');
  }
  const out = { Anomalies: list.slice(offset, offset + pageSize).map((a) => structuredClone(a)) };
  if (offset + pageSize < list.length) {
    out.NextPageToken = encodeToken(state.tokenSecret, { op: 'anomalies', o: offset + pageSize, h: hash });
  }
  return out;
}
