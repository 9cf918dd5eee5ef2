#!/usr/bin/env node
// Regenerates the model subsets beside this file from the botocore service models:
//
//   node test/emulators/aws-api/models/extract.mjs [MODELS_DIR]
//
// MODELS_DIR defaults to ../../../../../shared/testdata/aws-models. Only the shapes reachable
// from the emulated operations (input, output, errors) are kept, documentation stripped; the
// self-test checks that the subsets still equal a fresh extraction when the models are present.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const DEFAULT_MODELS_DIR = path.resolve(HERE, '../../../../../shared/testdata/aws-models');
export const SUBSETS = {
  ce: { file: 'ce.json', operations: ['GetCostAndUsage', 'GetAnomalies'] },
  invoicing: { file: 'invoicing.json', operations: ['ListInvoiceSummaries', 'GetInvoicePDF'] },
};

const strip = (obj) => {
  if (Array.isArray(obj)) return obj.map(strip);
  if (obj && typeof obj === 'object') {
    const out = {};
    for (const [k, v] of Object.entries(obj)) if (k !== 'documentation') out[k] = strip(v);
    return out;
  }
  return obj;
};

export function extractSubset(model, operations) {
  const shapes = {};
  const visit = (name) => {
    if (shapes[name]) return;
    const s = model.shapes[name];
    if (!s) throw new Error(`shape ${name} missing from model`);
    shapes[name] = strip(s);
    if (s.type === 'structure') for (const m of Object.values(s.members)) visit(m.shape);
    else if (s.type === 'list') visit(s.member.shape);
    else if (s.type === 'map') { visit(s.key.shape); visit(s.value.shape); }
  };
  const ops = {};
  for (const name of operations) {
    const op = model.operations[name];
    if (!op) throw new Error(`operation ${name} missing from model`);
    ops[name] = strip(op);
    if (op.input) visit(op.input.shape);
    if (op.output) visit(op.output.shape);
    for (const e of op.errors || []) visit(e.shape);
  }
  const sorted = Object.fromEntries(Object.keys(shapes).sort().map((k) => [k, shapes[k]]));
  // all operation names, so an operation that exists but is not emulated can be told apart
  const operationNames = Object.keys(model.operations).sort();
  return { version: model.version, metadata: model.metadata, operationNames, operations: ops, shapes: sorted };
}

export function extractAll(modelsDir = DEFAULT_MODELS_DIR) {
  const out = {};
  for (const [service, { file, operations }] of Object.entries(SUBSETS)) {
    out[service] = extractSubset(JSON.parse(fs.readFileSync(path.join(modelsDir, file), 'utf8')), operations);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href) {
  const subsets = extractAll(process.argv[2] || DEFAULT_MODELS_DIR);
  for (const [service, subset] of Object.entries(subsets)) {
    const f = path.join(HERE, `${service}.subset.json`);
    fs.writeFileSync(f, `${JSON.stringify(subset, null, 1)}\n`);
    console.log(`wrote ${f} (${Object.keys(subset.shapes).length} shapes)`);
  }
}
