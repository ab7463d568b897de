/**
 * Label-based classification metrics with scikit-learn 1.2.1 semantics and `zero_division=0`:
 * per-class precision/recall/F1/support, their averages, accuracy, balanced accuracy, Cohen's kappa and
 * the multiclass Matthews correlation coefficient.
 * @module
 */
import { confusionMatrix, presentLabelConfusion } from './confusion.ts';
import { divideOrZero, numpyMean, numpySum } from './numeric.ts';
import { validateLabelPair } from './validate.ts';
import type { ClassMetrics, Labels } from './types.ts';

/** Per-class metrics as parallel arrays indexed by class. */
export interface PerClassArrays {
  precision: number[];
  recall: number[];
  f1: number[];
  support: number[];
}

/**
 * Precision, recall, F1 and support of every class `0..nClasses-1`
 * (`precision_recall_fscore_support(labels=range(nClasses), average=None, zero_division=0)`).
 * A class never predicted has precision 0; a class absent from `yTrue` has recall 0 and support 0.
 * F1 is `2·p·r / (p + r)` computed from the rounded p and r, as scikit-learn does, and 0 when p + r = 0.
 */
export function perClassMetrics(yTrue: Labels, yPred: Labels, nClasses: number): PerClassArrays {
  const matrix = confusionMatrix(yTrue, yPred, nClasses);
  const result: PerClassArrays = { precision: [], recall: [], f1: [], support: [] };
  for (let c = 0; c < nClasses; c++) {
    const tp = matrix[c]![c]!;
    const support = numpySum(matrix[c]!);
    let predicted = 0;
    for (let r = 0; r < nClasses; r++) predicted += matrix[r]![c]!;
    const precision = divideOrZero(tp, predicted);
    const recall = divideOrZero(tp, support);
    const denominator = precision + recall;
    result.precision.push(precision);
    result.recall.push(recall);
    result.f1.push(denominator === 0 ? 0 : (2 * precision * recall) / denominator);
    result.support.push(support);
  }
  return result;
}

/**
 * Macro (unweighted mean over all classes, absent ones included) or weighted (by support) average of
 * per-class metrics, as the `macro avg` and `weighted avg` rows of `classification_report`.
 */
export function averageMetrics(perClass: PerClassArrays, average: 'macro' | 'weighted'): ClassMetrics {
  const total = numpySum(perClass.support);
  const mean = (values: number[]): number => {
    if (average === 'macro') return numpyMean(values);
    // np.average(values, weights=support): sum(values * support) / sum(support), 0 if no support.
    return divideOrZero(numpySum(values.map((v, i) => v * perClass.support[i]!)), total);
  };
  return {
    precision: mean(perClass.precision),
    recall: mean(perClass.recall),
    f1: mean(perClass.f1),
    support: total,
  };
}

/** Fraction of samples whose predicted class equals the true class (`accuracy_score`). */
export function accuracyScore(yTrue: Labels, yPred: Labels): number {
  validateLabelPair(yTrue, yPred);
  return numpyMean(yTrue.map((t, i) => (t === yPred[i] ? 1 : 0)));
}

/**
 * Mean recall over the classes present in `yTrue` (`balanced_accuracy_score`): a class that is only
 * predicted is left out, as scikit-learn does after its warning.
 */
export function balancedAccuracy(yTrue: Labels, yPred: Labels): number {
  const matrix = presentLabelConfusion(yTrue, yPred);
  const recalls: number[] = [];
  matrix.forEach((row, c) => {
    const support = numpySum(row);
    if (support > 0) recalls.push(row[c]! / support);
  });
  return numpyMean(recalls);
}

/**
 * Cohen's kappa, unweighted (`cohen_kappa_score`): `1 - Σ_{i≠j} O_ij / Σ_{i≠j} E_ij` with
 * `E = outer(predicted totals, true totals) / n`.
 * @returns null when undefined (no disagreement is possible by chance, e.g. a single class everywhere),
 *   where scikit-learn returns NaN
 */
export function cohenKappa(yTrue: Labels, yPred: Labels): number | null {
  const matrix = presentLabelConfusion(yTrue, yPred);
  const k = matrix.length;
  const rowTotals = matrix.map((row) => numpySum(row));
  const columnTotals = matrix.map((_, j) => matrix.reduce((sum, row) => sum + row[j]!, 0));
  const n = numpySum(columnTotals);
  const observed: number[] = [];
  const expected: number[] = [];
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      const weight = i === j ? 0 : 1;
      observed.push(weight * matrix[i]![j]!);
      // np.outer(sum0, sum1) with sum0 = column totals, sum1 = row totals, flattened row-major.
      expected.push(weight * ((columnTotals[i]! * rowTotals[j]!) / n));
    }
  }
  const expectedDisagreement = numpySum(expected);
  if (expectedDisagreement === 0) return null;
  return 1 - numpySum(observed) / expectedDisagreement;
}

/**
 * Multiclass Matthews correlation coefficient (`matthews_corrcoef`, Gorodkin's R_K):
 * `(c·s - t·p) / sqrt((s² - p·p)(s² - t·t))` with c correct, s samples, t true and p predicted totals.
 * 0 when the denominator is 0 (one class only in `yTrue` or in `yPred`), as scikit-learn.
 */
export function matthewsCorrcoef(yTrue: Labels, yPred: Labels): number {
  const matrix = presentLabelConfusion(yTrue, yPred);
  const trueTotals = matrix.map((row) => numpySum(row));
  const predTotals = matrix.map((_, j) => matrix.reduce((sum, row) => sum + row[j]!, 0));
  const correct = matrix.reduce((sum, row, i) => sum + row[i]!, 0);
  const samples = numpySum(predTotals);
  const dot = (a: number[], b: number[]): number => a.reduce((sum, v, i) => sum + v * b[i]!, 0);
  // All terms are integer counts held exactly in float64, so the order of summation is irrelevant.
  const covTruePred = correct * samples - dot(trueTotals, predTotals);
  const covPredPred = samples * samples - dot(predTotals, predTotals);
  const covTrueTrue = samples * samples - dot(trueTotals, trueTotals);
  if (covPredPred * covTrueTrue === 0) return 0;
  return covTruePred / Math.sqrt(covTrueTrue * covPredPred);
}
