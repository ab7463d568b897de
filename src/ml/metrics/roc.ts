/**
 * ROC curves and the area under them, reproducing scikit-learn 1.2.1's `roc_curve` (including
 * `drop_intermediate=True` and its `thresholds[0] + 1` first threshold) and `roc_auc_score`. Tied scores
 * form one threshold, so the curve takes one diagonal step through a tie and the area counts a tied
 * positive/negative pair as one half.
 * @module
 */
import { MlError } from '../errors.ts';
import { numpyMean, numpySum } from './numeric.ts';
import { validateLabels, validateProbabilities } from './validate.ts';
import type { Labels, ProbabilityMatrix } from './types.ts';

/** Points of a ROC curve, from (0, 0) to (1, 1), ordered by decreasing threshold. */
export interface RocCurve {
  /** False-positive rate at each threshold. */
  fpr: number[];
  /** True-positive rate at each threshold. */
  tpr: number[];
  /** Score thresholds, decreasing; the first is `max score + 1` so that the curve starts at (0, 0). */
  thresholds: number[];
}

/** Binary ground truth: 1/true is the positive class, 0/false the negative one. */
export type BinaryLabels = readonly (number | boolean)[];

function toBinary(yTrue: BinaryLabels, yScore: readonly number[]): boolean[] {
  if (!Array.isArray(yTrue) || !Array.isArray(yScore) || yTrue.length !== yScore.length || yTrue.length === 0) {
    throw new MlError('PREDICTIONS_INVALID', 'ROC needs non-empty y_true and y_score of equal length');
  }
  yScore.forEach((s, i) => {
    if (typeof s !== 'number' || !Number.isFinite(s)) {
      throw new MlError('PREDICTIONS_INVALID', `y_score[${i}] must be a finite number, got ${String(s)}`);
    }
  });
  return yTrue.map((label, i) => {
    if (label === true || label === 1) return true;
    if (label === false || label === 0) return false;
    throw new MlError('PREDICTIONS_INVALID', `binary y_true[${i}] must be 0, 1 or a boolean, got ${String(label)}`);
  });
}

/**
 * Cumulative false and true positives at each distinct score, highest score first
 * (scikit-learn `_binary_clf_curve`).
 */
function binaryClfCurve(positive: boolean[], yScore: readonly number[]) {
  // A stable sort on descending score; within a tie the order does not matter because only the
  // cumulative counts at the end of each run of equal scores are kept.
  const order = yScore.map((_, i) => i).sort((a, b) => yScore[b]! - yScore[a]!);
  const fps: number[] = [];
  const tps: number[] = [];
  const thresholds: number[] = [];
  let tp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k]!;
    if (positive[i]) tp += 1;
    const next = order[k + 1];
    if (next === undefined || yScore[next] !== yScore[i]) {
      tps.push(tp);
      fps.push(k + 1 - tp);
      thresholds.push(yScore[i]!);
    }
  }
  return { fps, tps, thresholds };
}

/**
 * Receiver operating characteristic of a binary problem (`sklearn.metrics.roc_curve`, 1.2.1).
 * @param yTrue 1/true for positive samples
 * @param yScore score of each sample; higher means more likely positive
 * @param options.dropIntermediate drop points on straight segments that do not change the curve's
 *   shape or area (default true, as scikit-learn); handy for lighter charts
 * @throws MlError PREDICTIONS_INVALID when `yTrue` lacks positives or negatives (the rates are undefined)
 * @example
 * rocCurve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]);
 * // { fpr: [0, 0, 0.5, 0.5, 1], tpr: [0, 0.5, 0.5, 1, 1], thresholds: [1.8, 0.8, 0.4, 0.35, 0.1] }
 */
export function rocCurve(
  yTrue: BinaryLabels,
  yScore: readonly number[],
  options: { dropIntermediate?: boolean } = {},
): RocCurve {
  const positive = toBinary(yTrue, yScore);
  let { fps, tps, thresholds } = binaryClfCurve(positive, yScore);
  const totalPositives = tps[tps.length - 1]!;
  const totalNegatives = fps[fps.length - 1]!;
  if (totalPositives === 0 || totalNegatives === 0) {
    throw new MlError(
      'PREDICTIONS_INVALID',
      `a ROC curve needs both classes in y_true (got ${totalPositives} positives and ${totalNegatives} negatives)`,
    );
  }
  if ((options.dropIntermediate ?? true) && fps.length > 2) {
    // Keep the ends and every point where the second difference of fps or tps is non-zero (a corner).
    const keep = fps.map(
      (_, i) =>
        i === 0 ||
        i === fps.length - 1 ||
        fps[i + 1]! - 2 * fps[i]! + fps[i - 1]! !== 0 ||
        tps[i + 1]! - 2 * tps[i]! + tps[i - 1]! !== 0,
    );
    fps = fps.filter((_, i) => keep[i]);
    tps = tps.filter((_, i) => keep[i]);
    thresholds = thresholds.filter((_, i) => keep[i]);
  }
  return {
    fpr: [0, ...fps].map((v) => v / totalNegatives),
    tpr: [0, ...tps].map((v) => v / totalPositives),
    thresholds: [thresholds[0]! + 1, ...thresholds],
  };
}

/**
 * Area under a curve by the trapezoidal rule (`sklearn.metrics.auc`): `x` must be monotonic; a
 * decreasing `x` gives the same positive area.
 */
export function auc(x: readonly number[], y: readonly number[]): number {
  if (x.length !== y.length || x.length < 2) {
    throw new MlError('INVALID_ARGUMENT', `auc needs x and y of equal length >= 2, got ${x.length} and ${y.length}`);
  }
  const dx = x.slice(1).map((v, i) => v - x[i]!);
  let direction = 1;
  if (dx.some((d) => d < 0)) {
    if (dx.every((d) => d <= 0)) direction = -1;
    else throw new MlError('INVALID_ARGUMENT', 'auc needs x to be monotonic (increasing or decreasing)');
  }
  // np.trapz: sum(d * (y[1:] + y[:-1]) / 2.0)
  return direction * numpySum(dx.map((d, i) => (d * (y[i + 1]! + y[i]!)) / 2));
}

/**
 * Binary ROC AUC (`roc_auc_score` on binary targets): the probability that a random positive scores
 * above a random negative, ties counting one half.
 * @returns null when `yTrue` has only one class (scikit-learn raises)
 */
export function rocAucScore(yTrue: BinaryLabels, yScore: readonly number[]): number | null {
  const positive = toBinary(yTrue, yScore);
  if (positive.every((p) => p) || positive.every((p) => !p)) return null;
  const curve = rocCurve(positive, yScore);
  return auc(curve.fpr, curve.tpr);
}

/**
 * One-vs-rest macro ROC AUC of a multiclass classifier (`roc_auc_score(y_true, y_prob,
 * multi_class='ovr', average='macro', labels=range(nClasses))`): the unweighted mean over classes of the
 * binary AUC of "this class" against the rest, scored by that class's probability column.
 * @param yProb `[samples][classes]` probabilities
 * @returns null when some class has no positive or no negative sample in `yTrue` (scikit-learn raises)
 */
export function rocAucOvrMacro(yTrue: Labels, yProb: ProbabilityMatrix): number | null {
  validateLabels(yTrue, 'y_true');
  validateProbabilities(yProb, yTrue.length);
  const nClasses = yProb[0]!.length;
  validateLabels(yTrue, 'y_true', nClasses);
  const scores: number[] = [];
  for (let c = 0; c < nClasses; c++) {
    const score = rocAucScore(
      yTrue.map((label) => label === c),
      yProb.map((row) => row[c]!),
    );
    if (score === null) return null;
    scores.push(score);
  }
  return numpyMean(scores);
}
