/**
 * Ranks trained architectures by one metric of their test-split report and names the winner with
 * a one-sentence reason a person can check against the table.
 * @module
 */
import type { ClassificationReport } from '../metrics/index.ts';

/** Metrics a comparison can be ranked by; all are "higher is better". */
export const RANK_METRICS = ['macroF1', 'accuracy', 'balancedAccuracy', 'mcc', 'weightedF1', 'rocAucOvrMacro', 'binarySensitivity', 'binaryRocAuc'] as const;
export type RankMetric = (typeof RANK_METRICS)[number];

/** Default: macro F1 treats every class as equally important, whatever its support (DESIGN.md). */
export const DEFAULT_RANK_METRIC: RankMetric = 'macroF1';

/** One row of the ranking. */
export interface RankingEntry {
  rank: number;
  architecture: string;
  /** The ranking metric, or null when it is undefined for this result (ranked last). */
  score: number | null;
}

/** The ranking and the winner's explanation. */
export interface Ranking {
  metric: RankMetric;
  entries: RankingEntry[];
  winner: { architecture: string; score: number | null; reason: string } | null;
}

/** What the ranking needs of one architecture's result. */
export interface RankableResult {
  architecture: string;
  metrics: ClassificationReport;
  params: number;
}

/** Reads `metric` from a report; null when the report cannot define it (e.g. no binary view). */
export function metricValue(report: ClassificationReport, metric: RankMetric): number | null {
  switch (metric) {
    case 'macroF1': return report.macroAvg.f1;
    case 'weightedF1': return report.weightedAvg.f1;
    case 'accuracy': return report.accuracy;
    case 'balancedAccuracy': return report.balancedAccuracy;
    case 'mcc': return report.mcc;
    case 'rocAucOvrMacro': return report.rocAucOvrMacro;
    case 'binarySensitivity': return report.binary?.sensitivity ?? null;
    case 'binaryRocAuc': return report.binary?.rocAuc ?? null;
  }
}

const METRIC_LABEL: Record<RankMetric, string> = {
  macroF1: 'macro F1',
  weightedF1: 'weighted F1',
  accuracy: 'accuracy',
  balancedAccuracy: 'balanced accuracy',
  mcc: 'MCC',
  rocAucOvrMacro: 'one-vs-rest macro ROC AUC',
  binarySensitivity: 'fracture sensitivity',
  binaryRocAuc: 'fracture ROC AUC',
};

/**
 * Sorts results by `metric` (descending). Ties, to 1e-12, go to the higher accuracy and then to the
 * smaller model, since a smaller model is cheaper to serve for the same quality.
 */
export function rankResults(results: readonly RankableResult[], metric: RankMetric = DEFAULT_RANK_METRIC): Ranking {
  const scored = results.map((result) => ({ result, score: metricValue(result.metrics, metric) }));
  scored.sort((a, b) => {
    const sa = a.score ?? Number.NEGATIVE_INFINITY;
    const sb = b.score ?? Number.NEGATIVE_INFINITY;
    if (Math.abs(sa - sb) > 1e-12) return sb - sa;
    const accuracyDelta = b.result.metrics.accuracy - a.result.metrics.accuracy;
    if (Math.abs(accuracyDelta) > 1e-12) return accuracyDelta;
    return a.result.params - b.result.params;
  });
  const entries = scored.map(({ result, score }, index) => ({ rank: index + 1, architecture: result.architecture, score }));
  const first = scored[0];
  if (first === undefined) return { metric, entries, winner: null };
  return {
    metric,
    entries,
    winner: { architecture: first.result.architecture, score: first.score, reason: explainWinner(scored, metric) },
  };
}

function explainWinner(scored: readonly { result: RankableResult; score: number | null }[], metric: RankMetric): string {
  const label = METRIC_LABEL[metric];
  const [first, second] = scored;
  if (first === undefined) return '';
  const name = first.result.architecture;
  if (first.score === null) return `${name} ranks first, but ${label} is undefined for every architecture.`;
  const own = `${name} has the highest ${label} on the test split (${first.score.toFixed(4)})`;
  if (second === undefined) return `${own}; it was the only architecture trained.`;
  if (second.score === null) return `${own}; ${label} is undefined for the others.`;
  const margin = first.score - second.score;
  if (Math.abs(margin) <= 1e-12) {
    const accuracyTie = Math.abs(first.result.metrics.accuracy - second.result.metrics.accuracy) <= 1e-12;
    return accuracyTie
      ? `${own}, tied with ${second.result.architecture}; it wins on accuracy tie and fewer parameters (${first.result.params.toLocaleString('en-US')}).`
      : `${own}, tied with ${second.result.architecture}; it wins on accuracy (${first.result.metrics.accuracy.toFixed(4)}).`;
  }
  return `${own}, ${margin.toFixed(4)} ahead of ${second.result.architecture} (${second.score.toFixed(4)}).`;
}
