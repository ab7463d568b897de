/**
 * The comparison table printed at the end of a training run: one row per architecture in ranking
 * order, the test-split metrics that matter for the choice, size and speed, then the winner and why.
 * @module
 */
import type { ArchitectureResult, ExperimentReport } from './types.ts';

const fixed = (value: number | null | undefined, digits = 4): string =>
  value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);

/** Formats the ranking of `report` as a plain-text table followed by the winner's reason. */
export function formatComparisonTable(report: Pick<ExperimentReport, 'results' | 'ranking' | 'winner'>): string {
  const byArchitecture = new Map<string, ArchitectureResult>(report.results.map((result) => [result.architecture, result]));
  const header = ['rank', 'architecture', 'accuracy', 'macro F1', 'bal. acc', 'MCC', 'ROC AUC', 'sens.', 'spec.', 'params', 'train s', 'train img/s', 'ms/img'];
  const rows = report.ranking.entries.map((entry) => {
    const result = byArchitecture.get(entry.architecture);
    if (result === undefined) return [String(entry.rank), entry.architecture];
    const m = result.metrics;
    return [
      String(entry.rank),
      entry.architecture,
      fixed(m.accuracy),
      fixed(m.macroAvg.f1),
      fixed(m.balancedAccuracy),
      fixed(m.mcc),
      fixed(m.rocAucOvrMacro),
      fixed(m.binary?.sensitivity),
      fixed(m.binary?.specificity),
      result.params.toLocaleString('en-US'),
      fixed(result.timings.trainSeconds, 1),
      fixed(result.timings.trainImagesPerSecond, 1),
      fixed(result.timings.inferenceMsPerImage, 1),
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column <= 1 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join('  ').trimEnd();
  const lines = [line(header), ...rows.map(line)];
  lines.push('', `ranked by ${report.ranking.metric} on the test split; sens./spec.: the binary fracture view`);
  if (report.winner) lines.push(`winner: ${report.winner.architecture}. ${report.winner.reason}`);
  return lines.join('\n');
}
