/**
 * Shapes shared by the metric functions and the classification report (camelCase in JSON).
 * @module
 */

/** Class labels: one integer class index in `[0, classNames.length)` per sample. */
export type Labels = readonly number[];

/** Predicted probabilities: one row per sample, one column per class, each row summing to 1. */
export type ProbabilityMatrix = readonly (readonly number[])[];

/** What a classifier produced on a labelled set: the input of {@link classificationReport}. */
export interface PredictionsInput {
  /** Class names in index order (at least two, unique). */
  readonly classNames: readonly string[];
  /** True class index of each sample. */
  readonly yTrue: Labels;
  /** Predicted class index of each sample (usually the argmax of `yProb`). */
  readonly yPred: Labels;
  /** Optional `[samples][classes]` probabilities; probability-based metrics are `null` without it. */
  readonly yProb?: ProbabilityMatrix | undefined;
  /**
   * Names of the fracture-positive classes for the binary view. Default: the name rule of
   * `fracture-classes.ts` (DESIGN.md section 5); a dataset's `dataset.json` may override it.
   */
  readonly positiveClasses?: readonly string[] | undefined;
}

/** Precision, recall, F1 and support of one class or one average. */
export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Number of samples whose true class is this one (for averages: all samples). */
  support: number;
}

/** The binary fracture view: fracture-positive classes merged into "fracture", the rest into "no fracture". */
export interface BinaryFractureMetrics {
  /** Names of the classes counted as fracture-positive, in class order. */
  positiveClasses: string[];
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** tp / (tp + fn), 0 when undefined. Also called recall or true-positive rate. */
  sensitivity: number;
  /** tn / (tn + fp), 0 when undefined. */
  specificity: number;
  /** Positive predictive value tp / (tp + fp), 0 when undefined. */
  precision: number;
  /** Negative predictive value tn / (tn + fn), 0 when undefined. */
  npv: number;
  f1: number;
  accuracy: number;
  /** ROC AUC of the summed fracture probability; null without probabilities or when y_true is one-sided. */
  rocAuc: number | null;
}

/** Every metric of one evaluation. Numbers follow scikit-learn 1.2.1 with `zero_division=0`. */
export interface ClassificationReport {
  accuracy: number;
  /** Keyed by class name, in class order. */
  perClass: Record<string, ClassMetrics>;
  macroAvg: ClassMetrics;
  weightedAvg: ClassMetrics;
  /** `[true class][predicted class]` counts over all classes. */
  confusionMatrix: number[][];
  balancedAccuracy: number;
  /** null when undefined (expected agreement equals 1, e.g. one class everywhere), where scikit-learn gives NaN. */
  cohenKappa: number | null;
  mcc: number;
  logLoss: number | null;
  mse: number | null;
  r2: number | null;
  /** null when some class has no positive or no negative sample in y_true (scikit-learn raises). */
  rocAucOvrMacro: number | null;
  /** Expected calibration error over 15 equal-width confidence bins. */
  ece: number | null;
  /** null when no class, or every class, is fracture-positive: the binary view is then meaningless. */
  binary: BinaryFractureMetrics | null;
}
