// The one-page PDF pg_billops writes for a payable's context, read back by an
// independent reader (poppler's pdftotext, a Debian package): it is a valid
// PDF whose text is the context, line for line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { freshDatabase, closeAll, RUN, AWS_INC, writeBillTestMonth } from './helpers.mjs';

let db;
before(async () => { db = await freshDatabase('billops_it_context'); });
after(async () => { await closeAll(); });

test('the context PDF reads back as the context, with an independent reader', async () => {
  const dir = path.join(RUN, 'bill-context');
  fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  for (const [period, amounts] of [['2024-02-01', ['600.00', '41.50']], ['2024-03-01', ['800.00', '12.25']]]) {
    const file = path.join(dir, `${period}.csv`);
    writeBillTestMonth(file, [
      [`INV-${period}`, AWS_INC, 'AWS Marketplace', '222222222222', 'Usage', 'prod-dd1', amounts[0], '"Datadog, Inc."', 'Datadog Pro'],
      // characters PDF strings must escape, and some it cannot show in its standard font
      [`INV-${period}`, AWS_INC, 'AWS Marketplace', '333333333333', 'Usage', 'prod-dd1', amounts[1], '"Datadog, Inc."', '"Logs (archive) \\ 100% — Zürich"'],
    ], 0, { period });
    await db.query('SELECT billops.load_cur_file($1, $2, $3)', [file, 'context', `ctx-${period}`]);
    await db.query('SELECT billops.build_payables($1)', [period]);
  }
  const { rows: [p] } = await db.query(`SELECT payable_id FROM billops.payable
                                         WHERE billing_period = '2024-03-01' AND charge_source LIKE 'marketplace:Datadog, Inc.%'`);
  const { rows: [r] } = await db.query(`SELECT billops.payable_context_pdf($1) AS pdf,
                                               billops._payable_context_lines(billops.payable_context($1)) AS lines,
                                               billops.payable_context($1)->>'dedupe_key' AS key`, [p.payable_id]);
  const file = path.join(dir, 'context.pdf');
  fs.writeFileSync(file, r.pdf);
  const info = execFileSync('pdfinfo', [file], { encoding: 'utf8' });
  assert.match(info, /^Pages:\s+1$/m, info);
  assert.match(info, /^PDF version:\s+1\.4$/m, info);
  const text = execFileSync('pdftotext', ['-layout', '-enc', 'UTF-8', file, '-'], { encoding: 'utf8' });
  const got = text.split('\n').map((l) => l.trim()).filter(Boolean);
  // the reader shows what the PDF says: the lines, with characters outside its font as ?
  const want = [`Why this bill: ${r.key}`, ...r.lines.filter(Boolean)].map((l) => l.replace(/[^\x20-\x7e]/g, '?'));
  // (a line longer than the page is wrapped: compare the words, in order)
  assert.deepEqual(got.join(' ').split(/\s+/), want.join(' ').split(/\s+/));
  assert.ok(got.length > want.length, 'the long title was wrapped, not cut off at the page edge');
  assert.ok(want.some((l) => l.includes('Top change by service: Logs (archive) \\ 100% ? Z?rich')), 'escapes survive');
});
