/**
 * Class weights against imbalance, the scikit-learn / Keras `'balanced'` heuristic.
 * @module
 */
import { MlError } from '../errors.ts';

/**
 * `weight_c = n_samples / (n_classes * count_c)`: each class contributes equally to the loss in
 * expectation. `n_classes` is `counts.length`. A class with no samples gets weight 0 (scikit-learn
 * raises instead; here it cannot contribute to the loss anyway, and the split record shows it).
 * @param counts samples per class (e.g. the training split's counts), aligned with the class names
 * @returns one weight per class, same order
 * @throws MlError INVALID_ARGUMENT for negative or non-integer counts, or no samples at all
 * @example
 * classWeights([300, 100]); // [0.6666…, 2]
 */
export function classWeights(counts: readonly number[]): number[] {
  if (counts.some((c) => !Number.isInteger(c) || c < 0)) {
    throw new MlError('INVALID_ARGUMENT', `class counts must be non-negative integers, got [${counts.join(', ')}]`);
  }
  const total = counts.reduce((a, b) => a + b, 0);
  if (total === 0) throw new MlError('INVALID_ARGUMENT', 'class weights need at least one sample');
  return counts.map((c) => (c === 0 ? 0 : total / (counts.length * c)));
}
