/**
 * The binary fracture view of a multiclass result: fracture-positive classes merge into "fracture",
 * all others into "no fracture"; a sample is predicted "fracture" when its predicted class is positive,
 * and its fracture score is the sum of the positive classes' probabilities.
 * @module
 */
import { MlError } from '../errors.ts';
import { divideOrZero, numpySum } from './numeric.ts';
import { rocAucScore } from './roc.ts';
import { validatePredictions } from './validate.ts';
import type { BinaryFractureMetrics, PredictionsInput } from './types.ts';

/**
 * Confusion counts and rates of the binary fracture view (positive = fracture), with
 * `zero_division=0` for every rate.
 * @param input predictions; `positiveClasses` (required here) names the fracture classes
 * @throws MlError PREDICTIONS_INVALID on malformed predictions, INVALID_ARGUMENT on unknown positive classes
 */
export function binaryFractureMetrics(
  input: PredictionsInput & { readonly positiveClasses: readonly string[] },
): BinaryFractureMetrics {
  validatePredictions(input);
  const { classNames, yTrue, yPred, yProb } = input;
  const unknown = input.positiveClasses.filter((name) => !classNames.includes(name));
  if (unknown.length > 0) {
    throw new MlError('INVALID_ARGUMENT', `positive classes not among the classes: ${unknown.join(', ')}`);
  }
  const isPositive = classNames.map((name) => input.positiveClasses.includes(name));
  const truth = yTrue.map((label) => isPositive[label]!);
  const predicted = yPred.map((label) => isPositive[label]!);

  let tp = 0;
  let fp = 0;
  let tn = 0;
  let fn = 0;
  truth.forEach((actual, i) => {
    if (predicted[i]) {
      if (actual) tp++;
      else fp++;
    } else if (actual) fn++;
    else tn++;
  });

  const sensitivity = divideOrZero(tp, tp + fn);
  const precision = divideOrZero(tp, tp + fp);
  const positiveColumns = isPositive.flatMap((positive, c) => (positive ? [c] : []));
  return {
    positiveClasses: classNames.filter((_, c) => isPositive[c]),
    tp,
    fp,
    tn,
    fn,
    sensitivity,
    specificity: divideOrZero(tn, tn + fp),
    precision,
    npv: divideOrZero(tn, tn + fn),
    // As scikit-learn's f1_score: from the already divided precision and recall.
    f1: precision + sensitivity === 0 ? 0 : (2 * precision * sensitivity) / (precision + sensitivity),
    accuracy: (tp + tn) / truth.length,
    rocAuc: yProb
      ? rocAucScore(
          truth,
          yProb.map((row) => numpySum(positiveColumns.map((c) => row[c]!))),
        )
      : null,
  };
}
