/**
 * The ROC curves a report stores for its charts: the binary fracture view (summed probability of the
 * fracture-positive classes) and one-vs-rest per class. A curve is null where it is undefined (the
 * test split lacks positives or negatives of it, or there is no binary view).
 * @module
 */
import { rocCurve, type RocCurve } from './roc.ts';
import type { Labels, ProbabilityMatrix } from './types.ts';

/** ROC curves of one evaluation. */
export interface RocCurves {
  binary: RocCurve | null;
  /** Keyed by class name. */
  perClass: Record<string, RocCurve | null>;
}

/** `rocCurve`, or null when the curve is undefined for these labels. */
function curveOrNull(yTrue: readonly boolean[], scores: readonly number[]): RocCurve | null {
  const positives = yTrue.filter(Boolean).length;
  if (positives === 0 || positives === yTrue.length) return null;
  return rocCurve(yTrue, scores);
}

/**
 * The curves of a test split.
 * @param classNames class names in index order
 * @param yTrue true class index per sample
 * @param yProb `[samples][classes]` probabilities
 * @param positiveClasses the fracture-positive classes; the binary curve is null when none or all are
 * @example
 * const curves = rocCurves(['fractured', 'normal'], [0, 1], [[0.9, 0.1], [0.2, 0.8]], ['fractured']);
 * curves.binary?.tpr; // [0, 1, 1]
 */
export function rocCurves(classNames: readonly string[], yTrue: Labels, yProb: ProbabilityMatrix, positiveClasses: readonly string[]): RocCurves {
  const perClass: Record<string, RocCurve | null> = {};
  classNames.forEach((className, c) => {
    perClass[className] = curveOrNull(
      yTrue.map((label) => label === c),
      yProb.map((row) => row[c] ?? 0),
    );
  });
  const positive = classNames.map((name) => positiveClasses.includes(name));
  const binaryDefined = positive.some(Boolean) && !positive.every(Boolean);
  const binary = binaryDefined
    ? curveOrNull(
        yTrue.map((label) => positive[label] === true),
        yProb.map((row) => row.reduce((sum, p, c) => (positive[c] ? sum + p : sum), 0)),
      )
    : null;
  return { binary, perClass };
}
