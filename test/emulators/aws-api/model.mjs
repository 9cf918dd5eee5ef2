// The botocore models of the emulated operations (subsets in models/, see extract.mjs) and a
// validator driven by them: JSON types, required members, enums, lengths, ranges and patterns,
// checked the way AWS's JSON-protocol services do before an operation runs. The same walker
// checks responses in the self-tests, so a member name or type that drifts from the model fails.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export function loadModels() {
  const read = (s) => JSON.parse(fs.readFileSync(path.join(HERE, 'models', `${s}.subset.json`), 'utf8'));
  return { ce: read('ce'), invoicing: read('invoicing') };
}

// Smithy patterns are ECMA-262 and not anchored. One CE pattern (CostCategoryName) uses a class
// that is invalid in JS's unicode mode; patterns that do not compile are not checked.
const patternCache = new Map();
function compilePattern(p) {
  if (!patternCache.has(p)) {
    let re = null;
    for (const flags of ['u', '']) {
      try { re = new RegExp(p, flags); break; } catch { /* try the next */ }
    }
    patternCache.set(p, re);
  }
  return patternCache.get(p);
}

const lowerFirst = (s) => s.charAt(0).toLowerCase() + s.slice(1);
const show = (v) => (typeof v === 'string' ? `'${v}'` : v === null || v === undefined ? 'null' : JSON.stringify(v));
const jsonKind = (v) => (v === null ? 'null' : Array.isArray(v) ? 'list' : typeof v === 'object' ? 'structure or map' : typeof v);

export class SerializationError extends Error {}

// -> { violations: [text], unknown: [path] }; throws SerializationError on a JSON type mismatch.
// Paths are lowerCamel member names joined with '.', list items as '.N.member' (1-based), as in
// AWS's "1 validation error detected: Value ... at 'groupBy.1.member.type' ..." messages.
export function validateInput(model, shapeName, value) {
  const violations = [];
  const unknown = [];
  const walk = (name, v, p) => {
    const s = model.shapes[name];
    const bad = (what) => { throw new SerializationError(`${what} at '${p || name}'`); };
    switch (s.type) {
      case 'structure': {
        if (typeof v !== 'object' || v === null || Array.isArray(v)) bad(`Start of ${jsonKind(v)} found where a structure was expected`);
        for (const req of s.required || []) {
          if (v[req] === undefined || v[req] === null) {
            violations.push(`Value null at '${p ? `${p}.` : ''}${lowerFirst(req)}' failed to satisfy constraint: Member must not be null`);
          }
        }
        for (const [k, mv] of Object.entries(v)) {
          const member = s.members[k];
          const mp = `${p ? `${p}.` : ''}${lowerFirst(k)}`;
          if (!member) { unknown.push(mp); continue; }
          if (mv === null) continue; // JSON null = absent
          walk(member.shape, mv, mp);
        }
        return;
      }
      case 'list':
        if (!Array.isArray(v)) bad(`Start of ${jsonKind(v)} found where a list was expected`);
        if (s.min !== undefined && v.length < s.min) violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must have length greater than or equal to ${s.min}`);
        if (s.max !== undefined && v.length > s.max) violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must have length less than or equal to ${s.max}`);
        v.forEach((item, i) => {
          if (item === null) bad('null list member');
          walk(s.member.shape, item, `${p}.${i + 1}.member`);
        });
        return;
      case 'map':
        if (typeof v !== 'object' || Array.isArray(v)) bad(`Start of ${jsonKind(v)} found where a map was expected`);
        for (const [k, mv] of Object.entries(v)) { walk(s.key.shape, k, `${p}.key`); walk(s.value.shape, mv, `${p}.${k}`); }
        return;
      case 'string': {
        if (typeof v !== 'string') bad(`${jsonKind(v)} value found where a string was expected`);
        if (s.enum && !s.enum.includes(v)) {
          violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must satisfy enum value set: [${s.enum.join(', ')}]`);
        }
        const len = [...v].length;
        if (s.min !== undefined && len < s.min) violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must have length greater than or equal to ${s.min}`);
        if (s.max !== undefined && len > s.max) violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must have length less than or equal to ${s.max}`);
        const re = s.pattern !== undefined ? compilePattern(s.pattern) : null;
        if (re && !re.test(v)) violations.push(`Value ${show(v)} at '${p}' failed to satisfy constraint: Member must satisfy regular expression pattern: ${s.pattern}`);
        return;
      }
      case 'integer':
      case 'long':
        if (typeof v !== 'number' || !Number.isInteger(v)) bad(`${jsonKind(v)} value found where an integer was expected`);
        if (s.min !== undefined && v < s.min) violations.push(`Value ${v} at '${p}' failed to satisfy constraint: Member must have value greater than or equal to ${s.min}`);
        if (s.max !== undefined && v > s.max) violations.push(`Value ${v} at '${p}' failed to satisfy constraint: Member must have value less than or equal to ${s.max}`);
        return;
      case 'double':
      case 'float':
        if (typeof v !== 'number') bad(`${jsonKind(v)} value found where a number was expected`);
        if (s.min !== undefined && v < s.min) violations.push(`Value ${v} at '${p}' failed to satisfy constraint: Member must have value greater than or equal to ${s.min}`);
        return;
      case 'boolean':
        if (typeof v !== 'boolean') bad(`${jsonKind(v)} value found where a boolean was expected`);
        return;
      case 'timestamp': // JSON protocols: epoch seconds, a JSON number
        if (typeof v !== 'number' || !Number.isFinite(v)) bad(`${jsonKind(v)} value found where a timestamp (epoch seconds) was expected`);
        return;
      default:
        throw new Error(`model shape type ${s.type} not handled`);
    }
  };
  walk(shapeName, value, '');
  return { violations, unknown };
}

export const validationMessage = (violations) =>
  `${violations.length} validation error${violations.length === 1 ? '' : 's'} detected: ${violations.join('; ')}`;

// For tests: every member of `value` must exist in the shape with the right JSON type, and
// required members must be present. -> list of problems (empty = conforms).
export function checkOutput(model, shapeName, value) {
  const problems = [];
  const walk = (name, v, p) => {
    const s = model.shapes[name];
    const bad = (what) => problems.push(`${p || name}: ${what} (got ${JSON.stringify(v)?.slice(0, 80)})`);
    switch (s.type) {
      case 'structure':
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('expected an object');
        for (const req of s.required || []) if (v[req] === undefined) problems.push(`${p}.${req}: required member missing`);
        for (const [k, mv] of Object.entries(v)) {
          if (!s.members[k]) problems.push(`${p}.${k}: not a member of ${name}`);
          else walk(s.members[k].shape, mv, `${p}.${k}`);
        }
        return undefined;
      case 'list':
        if (!Array.isArray(v)) return bad('expected a list');
        v.forEach((item, i) => walk(s.member.shape, item, `${p}[${i}]`));
        return undefined;
      case 'map':
        if (typeof v !== 'object' || v === null || Array.isArray(v)) return bad('expected a map');
        for (const [k, mv] of Object.entries(v)) walk(s.value.shape, mv, `${p}{${k}}`);
        return undefined;
      case 'string':
        if (typeof v !== 'string') return bad('expected a string');
        if (s.enum && !s.enum.includes(v)) return bad(`not in enum ${s.enum.join('|')}`);
        return undefined;
      case 'integer': case 'long':
        return Number.isInteger(v) ? undefined : bad('expected an integer');
      case 'double': case 'float':
        return typeof v === 'number' ? undefined : bad('expected a number');
      case 'boolean':
        return typeof v === 'boolean' ? undefined : bad('expected a boolean');
      case 'timestamp':
        return typeof v === 'number' ? undefined : bad('expected epoch seconds (a number)');
      default:
        return bad(`unhandled shape type ${s.type}`);
    }
  };
  walk(shapeName, value, '');
  return problems;
}

// Error shapes an operation may return, from the model.
export const modeledErrors = (model, op) => (model.operations[op]?.errors || []).map((e) => e.shape);

// The member that carries the message in a modeled error shape ("Message" in CE, "message" in
// Invoicing); AWS serializes the members under their model names.
export function messageMember(model, errorShape) {
  const s = model.shapes[errorShape];
  if (!s) return 'message';
  return Object.keys(s.members).find((k) => k.toLowerCase() === 'message') || 'message';
}
