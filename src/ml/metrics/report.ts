/**
 * The classification report: every metric of DESIGN.md section 5 for one set of predictions, as one
 * JSON-ready object.
 * @module
 */
import { binaryFractureMetrics } from './binary-view.ts';
import { calibration } from './calibration.ts';
import {
  accuracyScore,
  averageMetrics,
  balancedAccuracy,
  cohenKappa,
  matthewsCorrcoef,
  perClassMetrics,
} from './classification.ts';
import { confusionMatrix } from './confusion.ts';
import { fracturePositiveClasses } from './fracture-classes.ts';
import { logLoss, probabilityMse, probabilityR2 } from './probabilistic.ts';
import { rocAucOvrMacro } from './roc.ts';
import { validatePredictions } from './validate.ts';
import type { ClassificationReport, ClassMetrics, PredictionsInput } from './types.ts';

/**
 * Computes all metrics of a classifier's predictions (scikit-learn 1.2.1 semantics, `zero_division=0`).
 * Probability-based metrics (`logLoss`, `mse`, `r2`, `rocAucOvrMacro`, `ece`, `binary.rocAuc`) are
 * null when `yProb` is absent.
 * @param input class names, true and predicted class indices, optional `[samples][classes]`
 *   probabilities and optional fracture-positive class names (default: the class-name rule)
 * @throws MlError PREDICTIONS_INVALID when lengths differ, a label is out of range or a probability row
 *   is malformed; INVALID_ARGUMENT when `positiveClasses` names an unknown class
 * @example
 * const report = classificationReport({
 *   classNames: ['fractured', 'not_fractured'],
 *   yTrue: [0, 0, 1, 1],
 *   yPred: [0, 1, 1, 1],
 *   yProb: [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]],
 * });
 * report.accuracy;                 // 0.75
 * report.binary?.sensitivity;      // 0.5
 */
export function classificationReport(input: PredictionsInput): ClassificationReport {
  validatePredictions(input);
  const { classNames, yTrue, yPred } = input;
  const yProb = input.yProb ?? undefined;
  const nClasses = classNames.length;

  const perClass = perClassMetrics(yTrue, yPred, nClasses);
  const perClassByName = Object.fromEntries(
    classNames.map((name, c): [string, ClassMetrics] => [
      name,
      {
        precision: perClass.precision[c]!,
        recall: perClass.recall[c]!,
        f1: perClass.f1[c]!,
        support: perClass.support[c]!,
      },
    ]),
  );

  const positiveClasses = fracturePositiveClasses(classNames, input.positiveClasses);
  const binaryViewDefined = positiveClasses.length > 0 && positiveClasses.length < nClasses;

  return {
    accuracy: accuracyScore(yTrue, yPred),
    perClass: perClassByName,
    macroAvg: averageMetrics(perClass, 'macro'),
    weightedAvg: averageMetrics(perClass, 'weighted'),
    confusionMatrix: confusionMatrix(yTrue, yPred, nClasses),
    balancedAccuracy: balancedAccuracy(yTrue, yPred),
    cohenKappa: cohenKappa(yTrue, yPred),
    mcc: matthewsCorrcoef(yTrue, yPred),
    logLoss: yProb ? logLoss(yTrue, yProb) : null,
    mse: yProb ? probabilityMse(yTrue, yProb) : null,
    r2: yProb ? probabilityR2(yTrue, yProb) : null,
    rocAucOvrMacro: yProb ? rocAucOvrMacro(yTrue, yProb) : null,
    ece: yProb ? calibration(yTrue, yProb).ece : null,
    binary: binaryViewDefined ? binaryFractureMetrics({ ...input, positiveClasses }) : null,
  };
}
