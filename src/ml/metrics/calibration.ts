/**
 * Calibration: how well the confidence of the top prediction matches how often it is right.
 *
 * Definition (Guo et al. 2017, "On Calibration of Modern Neural Networks", and the usual code for it):
 * the confidence of a sample is its largest probability and the prediction is that column (the first
 * one on ties, like `np.argmax`); samples go into `bins` equal-width bins on (0, 1], bin b holding
 * confidences in `(b/bins, (b+1)/bins]` (edges computed as `b * (1/bins)`, like `np.linspace`; a
 * confidence of exactly 0 joins the first bin); then
 * `ECE = Σ_b (n_b / n) · |accuracy_b − mean confidence_b|`, empty bins contributing nothing.
 * ECE is 0 for a perfectly calibrated model and at most 1.
 * @module
 */
import { MlError } from '../errors.ts';
import { validateLabels, validateProbabilities } from './validate.ts';
import type { Labels, ProbabilityMatrix } from './types.ts';

/** Default number of bins: 15, the common choice since Guo et al. */
export const DEFAULT_CALIBRATION_BINS = 15;

/** One bin of a reliability diagram. */
export interface CalibrationBin {
  /** Exclusive lower edge of the confidence range (inclusive for the first bin). */
  lower: number;
  /** Inclusive upper edge. */
  upper: number;
  /** Samples whose confidence falls in the bin. */
  count: number;
  /** Fraction of those samples predicted correctly; null for an empty bin. */
  accuracy: number | null;
  /** Mean confidence of those samples; null for an empty bin. */
  confidence: number | null;
}

/** Result of {@link calibration}: the ECE and the bins behind it (for reliability diagrams). */
export interface Calibration {
  ece: number;
  bins: CalibrationBin[];
}

/**
 * Expected calibration error and reliability-diagram bins of `[samples][classes]` probabilities.
 * @param options.bins number of equal-width confidence bins (default 15)
 * @example
 * calibration([0, 1], [[0.9, 0.1], [0.8, 0.2]]).ece; // 0.5 * |1 - 0.9| + 0.5 * |0 - 0.8| = 0.45
 */
export function calibration(
  yTrue: Labels,
  yProb: ProbabilityMatrix,
  options: { bins?: number } = {},
): Calibration {
  const nBins = options.bins ?? DEFAULT_CALIBRATION_BINS;
  if (!Number.isInteger(nBins) || nBins < 1) {
    throw new MlError('INVALID_ARGUMENT', `calibration bins must be a positive integer, got ${nBins}`);
  }
  validateLabels(yTrue, 'y_true');
  validateProbabilities(yProb, yTrue.length);
  validateLabels(yTrue, 'y_true', yProb[0]!.length);

  const step = 1 / nBins;
  const edges = Array.from({ length: nBins + 1 }, (_, b) => (b === nBins ? 1 : b * step));
  const counts = new Array<number>(nBins).fill(0);
  const correct = new Array<number>(nBins).fill(0);
  const confidenceSums = new Array<number>(nBins).fill(0);
  yProb.forEach((row, i) => {
    let predicted = 0;
    for (let c = 1; c < row.length; c++) if (row[c]! > row[predicted]!) predicted = c;
    const confidence = row[predicted]!;
    let bin = 0;
    while (bin < nBins - 1 && confidence > edges[bin + 1]!) bin++;
    counts[bin]! += 1;
    confidenceSums[bin]! += confidence;
    if (predicted === yTrue[i]) correct[bin]! += 1;
  });

  const n = yTrue.length;
  let ece = 0;
  const bins = counts.map((count, b): CalibrationBin => {
    const accuracy = count === 0 ? null : correct[b]! / count;
    const confidence = count === 0 ? null : confidenceSums[b]! / count;
    if (accuracy !== null && confidence !== null) ece += Math.abs(confidence - accuracy) * (count / n);
    return { lower: edges[b]!, upper: edges[b + 1]!, count, accuracy, confidence };
  });
  return { ece, bins };
}

/** Expected calibration error with `bins` equal-width bins (default 15); see {@link calibration}. */
export function expectedCalibrationError(yTrue: Labels, yProb: ProbabilityMatrix, bins = DEFAULT_CALIBRATION_BINS): number {
  return calibration(yTrue, yProb, { bins }).ece;
}
