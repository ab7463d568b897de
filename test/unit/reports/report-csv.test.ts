/**
 * The report's CSV tables parse back (with an independent RFC 4180 parser) to the numbers of the
 * JSON view.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  isCsvTable,
  PER_CLASS_CSV_HEADER,
  reportCsv,
  SUMMARY_CSV_HEADER,
  toReportView,
  type ResultView,
  type ReportView,
} from '../../../src/services/reports/index.ts';
import { fourArchitectureVariant, makeRealReport, parseCsv, removeRealReport, SCRIPT_CLASS, TRICKY_CLASSES, type RealReport } from './fixtures.ts';

/** What some summary columns must hold, read from the view independently of the CSV writer. */
const EXPECTED: Record<string, (r: ResultView) => number | boolean | string | null | undefined> = {
  rank: (r) => r.rank,
  architecture: (r) => r.architecture,
  accuracy: (r) => r.metrics.accuracy,
  balancedAccuracy: (r) => r.metrics.balancedAccuracy,
  macroPrecision: (r) => r.metrics.macroAvg.precision,
  macroRecall: (r) => r.metrics.macroAvg.recall,
  macroF1: (r) => r.metrics.macroAvg.f1,
  weightedF1: (r) => r.metrics.weightedAvg.f1,
  mcc: (r) => r.metrics.mcc,
  rocAucOvrMacro: (r) => r.metrics.rocAucOvrMacro,
  logLoss: (r) => r.metrics.logLoss,
  binarySensitivity: (r) => r.metrics.binary?.sensitivity,
  binarySpecificity: (r) => r.metrics.binary?.specificity,
  params: (r) => r.params,
  trainSeconds: (r) => r.timings.trainSeconds,
  inferenceMsPerImage: (r) => r.timings.inferenceMsPerImage,
  stoppedEarly: (r) => r.stoppedEarly,
};

/** A parsed cell back as the value it stands for. */
function cellValue(cell: string, expected: unknown): unknown {
  if (cell === '') return null;
  if (typeof expected === 'boolean') return cell === 'true';
  if (typeof expected === 'string') return cell;
  return Number(cell);
}

function assertSummaryMatches(view: ReportView): void {
  const rows = parseCsv(reportCsv(view, 'summary'));
  const [header, ...body] = rows;
  assert.deepEqual(header, SUMMARY_CSV_HEADER);
  assert.equal(body.length, view.results.length, 'one row per architecture');
  const byRank = [...view.results].sort((a, b) => (a.rank ?? 99) - (b.rank ?? 99));
  body.forEach((row, i) => {
    const result = byRank[i]!;
    assert.equal(row.length, header!.length, 'every row has every column');
    for (const [column, read] of Object.entries(EXPECTED)) {
      const expected = read(result) ?? null;
      const cell: string | undefined = row[header!.indexOf(column)];
      assert.ok(cell !== undefined, `column ${column} exists`);
      assert.deepEqual(cellValue(cell, expected), expected, `${result.architecture} ${column}`);
    }
  });
}

describe('reportCsv', () => {
  let real: RealReport | undefined;
  let view: ReportView;
  let variant: ReportView;

  before(async () => {
    real = await makeRealReport();
    view = toReportView('exp-1', real.report);
    variant = toReportView('exp-4', fourArchitectureVariant(real.report));
  });
  after(() => removeRealReport(real));

  it('writes one summary row per architecture whose cells parse back to the exact numbers', () => {
    assertSummaryMatches(view);
    assert.ok(view.results[0]?.metrics.binary, 'the real report has the binary view, so its columns are filled');
  });

  it('orders four architectures by rank and leaves undefined metrics empty', () => {
    assertSummaryMatches(variant);
    const [header, ...body] = parseCsv(reportCsv(variant));
    assert.deepEqual(body.map((row) => row[1]), ['cnn', 'vgg16', 'resnet50', 'inceptionv3']);
    const sensitivity = header!.indexOf('binarySensitivity');
    assert.ok(body.every((row) => row[sensitivity] === ''), 'no binary view: empty cells, same columns');
    const auc = header!.indexOf('rocAucOvrMacro');
    assert.equal(body[3]?.[auc], '', 'a null ROC AUC is an empty cell, not 0 or "null"');
    assert.equal(Number(body[0]?.[header!.indexOf('mcc')]), -0.2, 'negative numbers are written as numbers');
  });

  it('ends records with CRLF and quotes only the fields that need it', () => {
    const text = reportCsv(view);
    assert.ok(text.endsWith('\r\n'));
    assert.equal(text.split('\r\n').length, view.results.length + 2);
    assert.ok(!text.includes('"'), 'nothing in the summary needs quoting');
  });

  it('writes per-class rows that survive commas, quotes, line breaks and formula-like names', () => {
    const text = reportCsv(variant, 'perClass');
    const [header, ...body] = parseCsv(text);
    assert.deepEqual(header, PER_CLASS_CSV_HEADER);
    assert.equal(body.length, variant.results.length * TRICKY_CLASSES.length);
    const first = body.slice(0, TRICKY_CLASSES.length);
    // A cell a spreadsheet would run as a formula is prefixed with a quote; the rest come back as written.
    assert.deepEqual(
      first.map((row) => row[1]),
      TRICKY_CLASSES.map((name) => (name.startsWith('=') ? `'${name}` : name)),
    );
    assert.ok(first.some((row) => row[1] === SCRIPT_CLASS));
    for (const [i, row] of body.entries()) {
      const result = variant.results.find((r) => r.architecture === row[0]);
      const metrics = result?.metrics.perClass[i % TRICKY_CLASSES.length];
      assert.ok(metrics);
      assert.deepEqual(row.slice(3).map(Number), [metrics.precision, metrics.recall, metrics.f1, metrics.support]);
      assert.equal(row[2], String(metrics.positive));
    }
  });

  it('writes the real per-class table with the view numbers', () => {
    const [, ...body] = parseCsv(reportCsv(view, 'perClass'));
    const perClass = view.results[0]!.metrics.perClass;
    assert.deepEqual(
      body.map((row) => [row[1], Number(row[5])]),
      perClass.map((row) => [row.className, row.f1]),
    );
  });

  it('recognises only its own table names', () => {
    assert.ok(isCsvTable('summary') && isCsvTable('perClass'));
    assert.ok(!isCsvTable('perclass') && !isCsvTable(undefined) && !isCsvTable('__proto__'));
  });
});
