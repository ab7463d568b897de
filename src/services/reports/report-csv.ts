/**
 * The comparison report as CSV (RFC 4180: CRLF line ends, fields quoted when they hold a comma, a
 * quote or a line break, quotes doubled). Two tables: `summary` (one row per architecture, the
 * headline metrics, ranking order) and `perClass` (one row per architecture and class).
 *
 * Numbers are written with full precision (JavaScript's shortest round-trip form), so parsing a cell
 * gives back the exact number of the JSON view; an undefined metric (null) is an empty cell. Text
 * cells that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) get a leading `'`
 * (OWASP "CSV injection"): class names come from folder names, which are user data.
 * @module
 */
import type { ReportView, ResultView } from './report-view.ts';

/** The tables {@link reportCsv} can write. */
export const CSV_TABLES = ['summary', 'perClass'] as const;
export type CsvTable = (typeof CSV_TABLES)[number];

/** A cell before quoting: null and undefined become empty cells. */
type Cell = string | number | boolean | null | undefined;

/** Columns of the `summary` table, in order, with how each reads a result. */
const SUMMARY_COLUMNS: readonly (readonly [header: string, read: (result: ResultView) => Cell])[] = [
  ['rank', (r) => r.rank],
  ['architecture', (r) => r.architecture],
  ['accuracy', (r) => r.metrics.accuracy],
  ['balancedAccuracy', (r) => r.metrics.balancedAccuracy],
  ['macroPrecision', (r) => r.metrics.macroAvg.precision],
  ['macroRecall', (r) => r.metrics.macroAvg.recall],
  ['macroF1', (r) => r.metrics.macroAvg.f1],
  ['weightedPrecision', (r) => r.metrics.weightedAvg.precision],
  ['weightedRecall', (r) => r.metrics.weightedAvg.recall],
  ['weightedF1', (r) => r.metrics.weightedAvg.f1],
  ['cohenKappa', (r) => r.metrics.cohenKappa],
  ['mcc', (r) => r.metrics.mcc],
  ['rocAucOvrMacro', (r) => r.metrics.rocAucOvrMacro],
  ['logLoss', (r) => r.metrics.logLoss],
  ['ece', (r) => r.metrics.ece],
  ['binarySensitivity', (r) => r.metrics.binary?.sensitivity],
  ['binarySpecificity', (r) => r.metrics.binary?.specificity],
  ['binaryPpv', (r) => r.metrics.binary?.precision],
  ['binaryNpv', (r) => r.metrics.binary?.npv],
  ['binaryF1', (r) => r.metrics.binary?.f1],
  ['binaryRocAuc', (r) => r.metrics.binary?.rocAuc],
  ['testImages', (r) => r.metrics.macroAvg.support],
  ['params', (r) => r.params],
  ['trainableParams', (r) => r.trainableParams],
  ['modelBytes', (r) => r.modelBytes],
  ['epochsRun', (r) => r.history.length],
  ['bestEpoch', (r) => r.bestEpoch],
  ['stoppedEarly', (r) => r.stoppedEarly],
  ['trainSeconds', (r) => r.timings.trainSeconds],
  ['trainImagesPerSecond', (r) => r.timings.trainImagesPerSecond],
  ['inferenceMsPerImage', (r) => r.timings.inferenceMsPerImage],
];

/** Header of the `summary` table. Binary columns are always there (empty cells when the view is undefined). */
export const SUMMARY_CSV_HEADER: readonly string[] = SUMMARY_COLUMNS.map(([header]) => header);

/** Header of the `perClass` table. */
export const PER_CLASS_CSV_HEADER: readonly string[] = ['architecture', 'className', 'fracturePositive', 'precision', 'recall', 'f1', 'support'];

const FORMULA_START = /^[=+\-@\t\r]/;

/** One RFC 4180 field. */
function field(value: Cell): string {
  if (value === null || value === undefined) return '';
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : '';
  let text = String(value);
  if (typeof value === 'string' && FORMULA_START.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

function toCsv(header: readonly string[], rows: readonly (readonly Cell[])[]): string {
  return [header, ...rows].map((row) => row.map(field).join(',')).join('\r\n') + '\r\n';
}

/** Results in ranking order; results the ranking does not list follow in training order. */
function ranked(view: ReportView): ResultView[] {
  return [...view.results].sort((a, b) => (a.rank ?? Number.POSITIVE_INFINITY) - (b.rank ?? Number.POSITIVE_INFINITY));
}

/**
 * Writes one table of the report as CSV text (`text/csv; charset=utf-8`; header row first).
 * @param table `summary` (default): one row per architecture, in ranking order; `perClass`: one row per
 *   architecture and class, classes in dataset order
 * @example
 * reply.type('text/csv; charset=utf-8').send(reportCsv(view, 'perClass'));
 */
export function reportCsv(view: ReportView, table: CsvTable = 'summary'): string {
  if (table === 'perClass') {
    return toCsv(
      PER_CLASS_CSV_HEADER,
      ranked(view).flatMap((result) =>
        result.metrics.perClass.map((row) => [result.architecture, row.className, row.positive, row.precision, row.recall, row.f1, row.support]),
      ),
    );
  }
  return toCsv(SUMMARY_CSV_HEADER, ranked(view).map((result) => SUMMARY_COLUMNS.map(([, read]) => read(result))));
}

/** True when `value` names a table of {@link reportCsv} (for validating a `?table=` query). */
export function isCsvTable(value: unknown): value is CsvTable {
  return typeof value === 'string' && (CSV_TABLES as readonly string[]).includes(value);
}
