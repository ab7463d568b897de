/**
 * The predictions file format read by `fracture-service evaluate --predictions`:
 * `{ "class_names": [...], "y_true": [...], "y_pred": [...], "y_prob": [[...], ...] }` with optional
 * `y_prob` and `positive_classes`. camelCase keys (`classNames`, `yTrue`, `yPred`, `yProb`,
 * `positiveClasses`) are accepted too, so our own JSON and scikit-learn-side dumps both load.
 * @module
 */
import { MlError } from '../errors.ts';
import { validatePredictions } from './validate.ts';
import type { PredictionsInput } from './types.ts';

type Field = 'classNames' | 'yTrue' | 'yPred' | 'yProb' | 'positiveClasses';
const SNAKE: Record<Field, string> = {
  classNames: 'class_names',
  yTrue: 'y_true',
  yPred: 'y_pred',
  yProb: 'y_prob',
  positiveClasses: 'positive_classes',
};

function invalid(message: string): never {
  throw new MlError('PREDICTIONS_INVALID', message);
}

function pick(record: Record<string, unknown>, field: Field): unknown {
  const snake = SNAKE[field];
  const hasSnake = record[snake] !== undefined;
  const hasCamel = record[field] !== undefined;
  if (hasSnake && hasCamel) invalid(`both "${snake}" and "${field}" are given; keep one`);
  return hasSnake ? record[snake] : record[field];
}

/**
 * Validated predictions from a parsed predictions file. When `y_pred` is missing but `y_prob` is
 * present, `y_pred` is the argmax of each row (first maximum on ties).
 * @throws MlError PREDICTIONS_INVALID naming the missing or malformed field
 */
export function predictionsFromJson(value: unknown): PredictionsInput {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalid('predictions must be a JSON object with class_names, y_true, y_pred and optionally y_prob');
  }
  const record = value as Record<string, unknown>;
  const classNames = pick(record, 'classNames');
  const yTrue = pick(record, 'yTrue');
  const yProbRaw = pick(record, 'yProb');
  const yProb = yProbRaw === null ? undefined : yProbRaw;
  let yPred = pick(record, 'yPred');
  const positiveClasses = pick(record, 'positiveClasses');
  if (classNames === undefined) invalid('"class_names" is missing');
  if (yTrue === undefined) invalid('"y_true" is missing');
  if (positiveClasses !== undefined && positiveClasses !== null) {
    if (!Array.isArray(positiveClasses) || positiveClasses.some((name) => typeof name !== 'string')) {
      invalid('"positive_classes" must be an array of class names');
    }
  }
  if (yPred === undefined) {
    if (!Array.isArray(yProb)) invalid('"y_pred" is missing (it may only be left out when "y_prob" is given)');
    yPred = yProb.map((row: unknown) => {
      if (!Array.isArray(row) || row.length === 0) return -1; // reported by the validation below
      let best = 0;
      for (let c = 1; c < row.length; c++) if ((row[c] as number) > (row[best] as number)) best = c;
      return best;
    });
  }
  const input = {
    classNames,
    yTrue,
    yPred,
    yProb,
    positiveClasses: positiveClasses ?? undefined,
  } as PredictionsInput;
  validatePredictions(input);
  return input;
}
