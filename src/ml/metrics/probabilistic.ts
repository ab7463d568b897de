/**
 * Metrics of predicted probabilities against the true labels: log loss, and the mean squared error and
 * R² of the probability matrix against the one-hot label matrix (the multi-class Brier score and its
 * skill relative to predicting the class frequencies).
 * @module
 */
import { numpyMean, numpySum, sequentialSum } from './numeric.ts';
import { validateLabels, validateProbabilities } from './validate.ts';
import type { Labels, ProbabilityMatrix } from './types.ts';

/** float64 machine epsilon: scikit-learn 1.2.1's `eps='auto'` for float64 input. */
const EPSILON = Number.EPSILON;

function checkInputs(yTrue: Labels, yProb: ProbabilityMatrix): number {
  validateLabels(yTrue, 'y_true');
  validateProbabilities(yProb, yTrue.length);
  const nClasses = yProb[0]!.length;
  validateLabels(yTrue, 'y_true', nClasses);
  return nClasses;
}

/**
 * Mean cross-entropy in nats (`log_loss(y_true, y_prob, labels=range(nClasses))`, scikit-learn 1.2.1):
 * every probability is clipped to `[eps, 1 - eps]` with `eps` = float64 machine epsilon (2.22e-16),
 * each row is renormalised to sum 1, and the loss is `-mean(log p[true class])`. Clipping bounds the
 * loss of a confident wrong answer at about 36 nats instead of infinity.
 * @param yProb `[samples][classes]` probabilities
 */
export function logLoss(yTrue: Labels, yProb: ProbabilityMatrix): number {
  checkInputs(yTrue, yProb);
  const losses = yTrue.map((label, i) => {
    const clipped = yProb[i]!.map((p) => Math.min(Math.max(p, EPSILON), 1 - EPSILON));
    return -Math.log(clipped[label]! / numpySum(clipped));
  });
  return numpyMean(losses);
}

/** Per-column (per-class) statistics against the one-hot labels, summed sample by sample as NumPy's axis-0 sums. */
function columnStatistics(yTrue: Labels, yProb: ProbabilityMatrix, nClasses: number) {
  const n = yTrue.length;
  const squaredError = new Array<number>(nClasses).fill(0);
  const onesPerClass = new Array<number>(nClasses).fill(0);
  for (let i = 0; i < n; i++) {
    onesPerClass[yTrue[i]!]! += 1;
    const row = yProb[i]!;
    for (let c = 0; c < nClasses; c++) {
      const diff = (yTrue[i] === c ? 1 : 0) - row[c]!;
      squaredError[c]! += diff * diff;
    }
  }
  const totalSquares = onesPerClass.map((ones, c) => {
    const mean = ones / n;
    // Σ (y - mean)² over n samples of which `ones` are 1, accumulated in sample order like NumPy.
    const column = yTrue.map((label) => ((label === c ? 1 : 0) - mean) ** 2);
    return sequentialSum(column);
  });
  return { squaredError, totalSquares };
}

/**
 * Mean squared error between the probabilities and the one-hot labels, averaged uniformly over
 * classes (`mean_squared_error(one_hot, y_prob)`); equals the multi-class Brier score divided by the
 * number of classes.
 */
export function probabilityMse(yTrue: Labels, yProb: ProbabilityMatrix): number {
  const nClasses = checkInputs(yTrue, yProb);
  const { squaredError } = columnStatistics(yTrue, yProb, nClasses);
  return numpyMean(squaredError.map((sse) => sse / yTrue.length));
}

/**
 * Coefficient of determination of the probabilities against the one-hot labels, one R² per class
 * column averaged uniformly (`r2_score(one_hot, y_prob)`, `force_finite=True`): a class column that is
 * constant in `yTrue` (a class with no sample, or every sample) scores 1 when predicted exactly and 0
 * otherwise, instead of NaN or -inf.
 */
export function probabilityR2(yTrue: Labels, yProb: ProbabilityMatrix): number {
  const nClasses = checkInputs(yTrue, yProb);
  const { squaredError, totalSquares } = columnStatistics(yTrue, yProb, nClasses);
  const scores = squaredError.map((sse, c) => {
    const sst = totalSquares[c]!;
    if (sst !== 0 && sse !== 0) return 1 - sse / sst;
    return sst === 0 && sse !== 0 ? 0 : 1;
  });
  return numpyMean(scores);
}
