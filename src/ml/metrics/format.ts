/**
 * Plain-text rendering of a {@link ClassificationReport}: the table of scikit-learn's
 * `classification_report` (same columns, widths and rounding), then the other metrics, the binary
 * fracture view and the confusion matrix.
 * @module
 */
import { MlError } from '../errors.ts';
import type { ClassificationReport, ClassMetrics } from './types.ts';

/** Options of {@link formatClassificationReport}. */
export interface FormatOptions {
  /** Digits after the decimal point for every metric (default 2, as scikit-learn). */
  digits?: number;
}

/**
 * `x` with `digits` decimals, rounding like Python's `format(x, '.2f')`: on the exact binary value,
 * with a true tie going to the even digit (`0.125` → `0.12`), where `toFixed` would round it up.
 */
export function formatFixed(x: number, digits: number): string {
  if (!Number.isFinite(x)) return String(x);
  const rounded = x.toFixed(digits); // exact value, ties away from zero
  // A tie means the exact decimal expansion is ...d5000... right after the kept digits. A double that is
  // not a tie differs from one within 20 further digits, so 25 extra digits decide it.
  const expanded = Math.abs(x).toFixed(Math.min(100, digits + 25));
  const point = expanded.indexOf('.');
  if (!/^50*$/.test(expanded.slice(point + 1 + digits))) return rounded;
  const truncated = expanded.slice(0, digits === 0 ? point : point + 1 + digits);
  const lastKept = Number(truncated.at(-1));
  if (lastKept % 2 === 1) return rounded; // rounding up reaches the even digit
  return `${x < 0 ? '-' : ''}${truncated}`;
}

function pad(text: string, width: number): string {
  return text.padStart(width);
}

function metricOrNa(value: number | null, digits: number): string {
  return value === null ? 'n/a' : formatFixed(value, digits);
}

/**
 * Renders a report as text.
 * @param report the output of `classificationReport`
 * @param classNames the class names in index order (row labels and confusion-matrix legend)
 * @param options.digits decimals per metric (default 2)
 * @example
 * console.log(formatClassificationReport(report, classNames, { digits: 3 }));
 */
export function formatClassificationReport(
  report: ClassificationReport,
  classNames: readonly string[],
  options: FormatOptions = {},
): string {
  const digits = options.digits ?? 2;
  if (!Number.isInteger(digits) || digits < 0 || digits > 20) {
    throw new MlError('INVALID_ARGUMENT', `digits must be an integer from 0 to 20, got ${digits}`);
  }
  const f = (value: number): string => formatFixed(value, digits);

  // The layout of sklearn.metrics.classification_report.
  const width = Math.max(...classNames.map((name) => name.length), 'weighted avg'.length, digits);
  const row = (heading: string, m: ClassMetrics): string =>
    `${pad(heading, width)} ${[f(m.precision), f(m.recall), f(m.f1)].map((v) => ` ${pad(v, 9)}`).join('')} ${pad(String(m.support), 9)}`;
  const lines: string[] = [];
  lines.push(`${pad('', width)} ${['precision', 'recall', 'f1-score', 'support'].map((h) => ` ${pad(h, 9)}`).join('')}`);
  lines.push('');
  for (const name of classNames) {
    const metrics = report.perClass[name];
    if (!metrics) throw new MlError('INVALID_ARGUMENT', `class "${name}" is not in the report`);
    lines.push(row(name, metrics));
  }
  lines.push('');
  lines.push(`${pad('accuracy', width)} ${' '.repeat(20)} ${pad(f(report.accuracy), 9)} ${pad(String(report.macroAvg.support), 9)}`);
  lines.push(row('macro avg', report.macroAvg));
  lines.push(row('weighted avg', report.weightedAvg));

  const extras: [string, number | null][] = [
    ['balanced accuracy', report.balancedAccuracy],
    ["cohen's kappa", report.cohenKappa],
    ['mcc', report.mcc],
    ['log loss', report.logLoss],
    ['mse (probabilities)', report.mse],
    ['r2 (probabilities)', report.r2],
    ['roc auc (ovr macro)', report.rocAucOvrMacro],
    ['ece (15 bins)', report.ece],
  ];
  const extraWidth = Math.max(...extras.map(([label]) => label.length));
  lines.push('');
  for (const [label, value] of extras) lines.push(`${label.padEnd(extraWidth)}  ${metricOrNa(value, digits)}`);

  lines.push('');
  const binary = report.binary;
  if (binary === null) {
    lines.push('binary fracture view: n/a (needs some, but not all, classes to be fracture-positive)');
  } else {
    lines.push(`binary fracture view (positive: ${binary.positiveClasses.join(', ')})`);
    lines.push(`  tp ${binary.tp}  fp ${binary.fp}  tn ${binary.tn}  fn ${binary.fn}`);
    lines.push(
      `  sensitivity ${f(binary.sensitivity)}  specificity ${f(binary.specificity)}  ppv ${f(binary.precision)}` +
        `  npv ${f(binary.npv)}  f1 ${f(binary.f1)}  accuracy ${f(binary.accuracy)}  roc auc ${metricOrNa(binary.rocAuc, digits)}`,
    );
  }

  lines.push('');
  lines.push('confusion matrix (rows: true class, columns: predicted class)');
  const cells = report.confusionMatrix.flat().map(String);
  const cellWidth = Math.max(...cells.map((c) => c.length), String(classNames.length - 1).length);
  const indexWidth = String(classNames.length - 1).length;
  lines.push(`${' '.repeat(indexWidth)}  ${classNames.map((_, c) => pad(String(c), cellWidth)).join(' ')}`);
  report.confusionMatrix.forEach((counts, r) => {
    lines.push(`${pad(String(r), indexWidth)}  ${counts.map((n) => pad(String(n), cellWidth)).join(' ')}  ${classNames[r] ?? ''}`);
  });
  return `${lines.join('\n')}\n`;
}
