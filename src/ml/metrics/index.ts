/**
 * Classification metrics with scikit-learn 1.2.1 semantics (`zero_division=0`), the fracture-class
 * rule, the classification report and its text form. Pure functions on plain arrays: no tensors.
 * @module
 */
export type {
  BinaryFractureMetrics,
  ClassificationReport,
  ClassMetrics,
  Labels,
  PredictionsInput,
  ProbabilityMatrix,
} from './types.ts';
export { classificationReport } from './report.ts';
export { rocCurves, type RocCurves } from './roc-curves.ts';
export { formatClassificationReport, formatFixed, type FormatOptions } from './format.ts';
export { classNameTokens, fracturePositiveClasses, isFractureClassName } from './fracture-classes.ts';
export { confusionMatrix } from './confusion.ts';
export {
  accuracyScore,
  averageMetrics,
  balancedAccuracy,
  cohenKappa,
  matthewsCorrcoef,
  perClassMetrics,
  type PerClassArrays,
} from './classification.ts';
export { logLoss, probabilityMse, probabilityR2 } from './probabilistic.ts';
export { auc, rocAucOvrMacro, rocAucScore, rocCurve, type BinaryLabels, type RocCurve } from './roc.ts';
export {
  calibration,
  expectedCalibrationError,
  DEFAULT_CALIBRATION_BINS,
  type Calibration,
  type CalibrationBin,
} from './calibration.ts';
export { binaryFractureMetrics } from './binary-view.ts';
export { validatePredictions } from './validate.ts';
