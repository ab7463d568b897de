/**
 * Input checks shared by the metric functions. Every failure is an `MlError('PREDICTIONS_INVALID')`
 * whose message names the field, the sample index and what was expected, so a bad predictions file is
 * fixed from the message alone.
 * @module
 */
import { MlError } from '../errors.ts';
import type { Labels, PredictionsInput, ProbabilityMatrix } from './types.ts';

/**
 * How far a probability may leave [0, 1] and a row sum may leave 1: float32 softmax outputs carry
 * rounding of about 1e-7 per class, logits or sigmoid outputs miss by far more.
 */
const PROBABILITY_TOLERANCE = 1e-6;
const ROW_SUM_TOLERANCE = 1e-3;

function invalid(message: string): never {
  throw new MlError('PREDICTIONS_INVALID', message);
}

function describe(value: unknown): string {
  return typeof value === 'number' || value === undefined ? String(value) : JSON.stringify(value);
}

/** Checks that `classNames` holds at least two unique non-empty strings. */
export function validateClassNames(classNames: unknown): asserts classNames is readonly string[] {
  if (!Array.isArray(classNames)) invalid('class_names must be an array of class names');
  if (classNames.length < 2) invalid(`class_names must list at least 2 classes, got ${classNames.length}`);
  const seen = new Set<string>();
  classNames.forEach((name: unknown, i) => {
    if (typeof name !== 'string' || name.length === 0) invalid(`class_names[${i}] must be a non-empty string`);
    if (seen.has(name)) invalid(`class_names[${i}] "${name}" is a duplicate`);
    seen.add(name);
  });
}

/**
 * Checks that `labels` is a non-empty array of class indices in `[0, nClasses)`.
 * @param field name used in messages (`y_true`, `y_pred`)
 * @param nClasses number of classes, or undefined to accept any non-negative integer
 */
export function validateLabels(labels: unknown, field: string, nClasses?: number): asserts labels is Labels {
  if (!Array.isArray(labels)) invalid(`${field} must be an array of class indices`);
  if (labels.length === 0) invalid(`${field} is empty: metrics need at least one sample`);
  labels.forEach((label: unknown, i) => {
    if (typeof label !== 'number' || !Number.isInteger(label) || label < 0) {
      invalid(`${field}[${i}] must be a non-negative integer class index, got ${describe(label)}`);
    }
    if (nClasses !== undefined && label >= nClasses) {
      invalid(`${field}[${i}] = ${label} is out of range: there are ${nClasses} classes (0..${nClasses - 1})`);
    }
  });
}

/** Checks that `yTrue` and `yPred` are label arrays of equal length. */
export function validateLabelPair(yTrue: unknown, yPred: unknown, nClasses?: number): asserts yTrue is Labels {
  validateLabels(yTrue, 'y_true', nClasses);
  validateLabels(yPred, 'y_pred', nClasses);
  if ((yTrue as Labels).length !== (yPred as Labels).length) {
    invalid(`y_true has ${(yTrue as Labels).length} samples but y_pred has ${(yPred as Labels).length}`);
  }
}

/**
 * Checks that `yProb` has `nSamples` rows of `nClasses` finite probabilities in [0, 1] that sum to 1.
 * @param nClasses expected row length, or undefined to take it from the first row (at least 2)
 */
export function validateProbabilities(
  yProb: unknown,
  nSamples: number,
  nClasses?: number,
): asserts yProb is ProbabilityMatrix {
  if (!Array.isArray(yProb)) invalid('y_prob must be an array of probability rows');
  if (yProb.length !== nSamples) invalid(`y_prob has ${yProb.length} rows but there are ${nSamples} samples`);
  const width = nClasses ?? (Array.isArray(yProb[0]) ? (yProb[0] as unknown[]).length : 0);
  if (width < 2) invalid(`y_prob rows must have one probability per class (at least 2), got ${width}`);
  yProb.forEach((row: unknown, i) => {
    if (!Array.isArray(row) || row.length !== width) {
      invalid(`y_prob[${i}] must be an array of ${width} probabilities (one per class)`);
    }
    let sum = 0;
    row.forEach((p: unknown, j) => {
      if (typeof p !== 'number' || !Number.isFinite(p)) {
        invalid(`y_prob[${i}][${j}] must be a finite number, got ${describe(p)}`);
      }
      if (p < -PROBABILITY_TOLERANCE || p > 1 + PROBABILITY_TOLERANCE) {
        invalid(`y_prob[${i}][${j}] = ${p} is not a probability in [0, 1]`);
      }
      sum += p;
    });
    if (Math.abs(sum - 1) > ROW_SUM_TOLERANCE) {
      invalid(`y_prob[${i}] sums to ${sum}, not 1: pass softmax probabilities, not logits or scores`);
    }
  });
}

/** Checks a whole {@link PredictionsInput}; `positiveClasses` is checked where it is resolved. */
export function validatePredictions(input: PredictionsInput): void {
  if (typeof input !== 'object' || input === null) invalid('predictions must be an object');
  validateClassNames(input.classNames);
  const nClasses = input.classNames.length;
  validateLabelPair(input.yTrue, input.yPred, nClasses);
  if (input.yProb !== undefined && input.yProb !== null) {
    validateProbabilities(input.yProb, input.yTrue.length, nClasses);
  }
}
