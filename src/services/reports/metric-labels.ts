/**
 * Human labels of the ranking metrics, shared by the HTML page and the charts.
 * @module
 */
import type { RankMetric } from '../../ml/experiment/index.ts';

/** How a page or chart names each ranking metric. */
export const RANK_METRIC_LABELS: Readonly<Record<RankMetric, string>> = Object.freeze({
  macroF1: 'macro F1',
  weightedF1: 'weighted F1',
  accuracy: 'accuracy',
  balancedAccuracy: 'balanced accuracy',
  mcc: 'MCC',
  rocAucOvrMacro: 'one-vs-rest macro ROC AUC',
  binarySensitivity: 'fracture sensitivity',
  binaryRocAuc: 'fracture ROC AUC',
});
