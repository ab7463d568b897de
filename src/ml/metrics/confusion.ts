/**
 * Confusion matrices: the counts every label-based metric is computed from.
 * @module
 */
import { validateLabelPair } from './validate.ts';
import type { Labels } from './types.ts';

/**
 * `[true class][predicted class]` counts over the classes `0..nClasses-1`
 * (scikit-learn `confusion_matrix(y_true, y_pred, labels=range(nClasses))`).
 * @example
 * confusionMatrix([0, 1, 1], [0, 0, 1], 2); // [[1, 0], [1, 1]]
 */
export function confusionMatrix(yTrue: Labels, yPred: Labels, nClasses: number): number[][] {
  validateLabelPair(yTrue, yPred, nClasses);
  const matrix = Array.from({ length: nClasses }, () => new Array<number>(nClasses).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const row = matrix[yTrue[i]!]!;
    row[yPred[i]!]! += 1;
  }
  return matrix;
}

/**
 * The confusion matrix over only the labels that occur in `yTrue` or `yPred`, sorted: what
 * scikit-learn builds when no `labels` are given. Kappa and balanced accuracy depend on this
 * (a class absent from both contributes nothing, but it would change NumPy's summation order).
 */
export function presentLabelConfusion(yTrue: Labels, yPred: Labels): number[][] {
  validateLabelPair(yTrue, yPred);
  const present = [...new Set([...yTrue, ...yPred])].sort((a, b) => a - b);
  const position = new Map(present.map((label, i) => [label, i]));
  const matrix = Array.from({ length: present.length }, () => new Array<number>(present.length).fill(0));
  for (let i = 0; i < yTrue.length; i++) {
    const row = matrix[position.get(yTrue[i]!)!]!;
    row[position.get(yPred[i]!)!]! += 1;
  }
  return matrix;
}
