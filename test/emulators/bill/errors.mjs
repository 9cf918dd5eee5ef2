// BILL v3 error responses: HTTP 4xx/5xx with a JSON array
//   [{"timestamp","code":"BDC_xxxx","severity":"ERROR","category":"...","message":"..."}]
// (developer.bill.com "Common API error codes"). The codes and message texts come from
// BILL's published error list (v2 and v3 share it); which HTTP status and category goes
// with which code is only documented for a few of them, so the rest is an assumption,
// listed in README.md.

// status null = the configured throttle status (--throttle-status): BILL does not
// document the HTTP status of BDC_1144 / BDC_1322 (422 and other 4xx have been seen).
export const CODES = {
  BDC_1001: [500, 'SERVER', 'System error occurred.'],
  BDC_1002: [500, 'SERVER', 'Unknown error occurred.'],
  BDC_1101: [401, 'DOWNSTREAM', 'User name and/or password do not match our records.'],
  BDC_1102: [401, 'DOWNSTREAM', 'Developer key is invalid.'],
  BDC_1108: [400, 'REQUEST', 'Missing parameter value for parameter: {0}.'],
  // two spaces after the first full stop, exactly as BILL's documented example
  BDC_1109: [401, 'DOWNSTREAM', 'Session is invalid.  Please log in.'],
  BDC_1117: [400, 'REQUEST', 'Missing required data for: {0}.'],
  BDC_1119: [400, 'REQUEST', 'Invalid field,value: {0}, {1}.'],
  BDC_1120: [404, 'REQUEST', 'No data found.'],
  BDC_1121: [404, 'REQUEST', 'API not supported.'],
  BDC_1122: [400, 'REQUEST', 'Error Parsing Json Object. Please check your request.'],
  BDC_1123: [401, 'DOWNSTREAM', 'Invalid organization id.'],
  BDC_1129: [400, 'REQUEST', 'Invalid parameter value for parameter,value: {0}, {1}.'],
  BDC_1130: [400, 'REQUEST', 'Invalid list filter field: {0}.'],
  BDC_1131: [400, 'REQUEST', 'Invalid list filter operator: {0}.'],
  BDC_1144: [null, 'DOWNSTREAM', 'Max number of allowed requests per hour reached: {0}.'],
  BDC_1322: [null, 'DOWNSTREAM', 'Max number of concurrent requests per organization reached.'],
};

export class BillError extends Error {
  // params fill {0}, {1} in the message; message overrides the text entirely
  constructor(code, { params = [], message, status, category } = {}) {
    const [defStatus, defCategory, template] = CODES[code] || [400, 'REQUEST', `Error ${code}.`];
    super(message ?? template.replace(/\{(\d)\}/g, (_, i) => String(params[Number(i)] ?? '')));
    this.code = code;
    this.status = status ?? defStatus; // null: throttle status, resolved when sent
    this.category = category ?? defCategory;
  }
}

// Shorthands for the validation errors the handlers raise.
export const missing = (field) => new BillError('BDC_1117', { params: [field] });
export const invalid = (field, value) => new BillError('BDC_1119', {
  params: [field, typeof value === 'string' ? value : JSON.stringify(value)],
});
export const badParam = (name, value) => new BillError('BDC_1129', { params: [name, value] });
export const notFound = () => new BillError('BDC_1120');

// BILL's documented timestamps look like "2025-12-25T00:00:00.000+00:00".
export const errorTimestamp = (ms) => new Date(ms).toISOString().replace('Z', '+00:00');

export function errorBody(err, nowMs) {
  return [{
    timestamp: errorTimestamp(nowMs),
    code: err.code,
    severity: 'ERROR',
    category: err.category,
    message: err.message,
  }];
}
