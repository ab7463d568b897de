/**
 * Validation of a {@link ModelSpec}: checked once, defaults filled, frozen, so builders can trust it.
 * @module
 */
import { MlError } from '../errors.ts';
import {
  DEFAULT_BN_MOMENTUM,
  DEFAULT_CNN_FILTERS,
  DEFAULT_DROPOUT,
  MIN_INPUT_SIZE,
  parseArchitecture,
  type Architecture,
  type InputShape,
  type ModelSpec,
} from './types.ts';

/** A validated spec: every option present. `seed` stays `undefined` when the caller gave none. */
export interface ResolvedModelSpec {
  readonly architecture: Architecture;
  readonly inputShape: InputShape;
  readonly numClasses: number;
  readonly includeTop: boolean;
  readonly dropout: number;
  readonly seed: number | undefined;
  readonly cnnFilters: readonly number[];
  readonly bnMomentum: number;
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value > 0;
}

/**
 * Checks `spec` and fills defaults.
 * @throws MlError `ARCHITECTURE_UNKNOWN`, `INPUT_SHAPE_INVALID` (not `[h, w, c]` positive integers, or
 *   h/w below `MIN_INPUT_SIZE`), `INVALID_ARGUMENT` (classes < 2, dropout outside [0, 1), bad seed or
 *   CNN filters).
 */
export function resolveModelSpec(spec: ModelSpec): ResolvedModelSpec {
  const architecture = parseArchitecture(String(spec.architecture));
  const shape = spec.inputShape as readonly unknown[];
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every(isPositiveInteger)) {
    throw new MlError(
      'INPUT_SHAPE_INVALID',
      `Input shape must be [height, width, channels] of positive integers, got ${JSON.stringify(spec.inputShape)}.`,
    );
  }
  const [height, width, channels] = shape as [number, number, number];
  const min = MIN_INPUT_SIZE[architecture];
  if (height < min || width < min) {
    throw new MlError(
      'INPUT_SHAPE_INVALID',
      `${architecture} needs images of at least ${min}x${min} pixels, got ${height}x${width}.`,
    );
  }
  if (!Number.isInteger(spec.numClasses) || spec.numClasses < 2) {
    throw new MlError('INVALID_ARGUMENT', `numClasses must be an integer >= 2, got ${spec.numClasses}.`);
  }
  const dropout = spec.dropout ?? DEFAULT_DROPOUT;
  if (!(typeof dropout === 'number' && dropout >= 0 && dropout < 1)) {
    throw new MlError('INVALID_ARGUMENT', `dropout must be in [0, 1), got ${dropout}.`);
  }
  if (spec.seed !== undefined && !(Number.isInteger(spec.seed) && spec.seed >= 0)) {
    throw new MlError('INVALID_ARGUMENT', `seed must be a non-negative integer, got ${spec.seed}.`);
  }
  const bnMomentum = spec.bnMomentum ?? DEFAULT_BN_MOMENTUM;
  if (!(typeof bnMomentum === 'number' && bnMomentum >= 0 && bnMomentum < 1)) {
    throw new MlError('INVALID_ARGUMENT', `bnMomentum must be in [0, 1), got ${bnMomentum}.`);
  }
  const cnnFilters = spec.cnnFilters ?? DEFAULT_CNN_FILTERS;
  if (cnnFilters.length === 0 || !cnnFilters.every(isPositiveInteger)) {
    throw new MlError('INVALID_ARGUMENT', `cnnFilters must be a non-empty list of positive integers.`);
  }
  if (architecture === 'cnn' && Math.min(height, width) < 2 ** cnnFilters.length) {
    // Each block halves the feature map; it must stay at least 1x1.
    throw new MlError(
      'INPUT_SHAPE_INVALID',
      `A ${cnnFilters.length}-block CNN needs images of at least ${2 ** cnnFilters.length} pixels a side.`,
    );
  }
  return Object.freeze({
    architecture,
    inputShape: Object.freeze([height, width, channels] as const),
    numClasses: spec.numClasses,
    includeTop: spec.includeTop ?? false,
    dropout,
    bnMomentum,
    seed: spec.seed,
    cnnFilters: Object.freeze([...cnnFilters]),
  });
}

/**
 * Parses `HxWxC` (e.g. `224x224x3`) or `HxW` (3 channels) into an input shape. Only the syntax is
 * checked here; size limits depend on the architecture (see {@link resolveModelSpec}).
 * @throws MlError `INPUT_SHAPE_INVALID`.
 * @example
 * parseInputShape('299x299x1'); // [299, 299, 1]
 */
export function parseInputShape(text: string): InputShape {
  const match = /^\s*(\d+)\s*[xX]\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?$/.exec(text);
  const dims = match ? [match[1], match[2], match[3] ?? '3'].map(Number) : [];
  if (!dims.every(isPositiveInteger) || dims.length !== 3) {
    throw new MlError('INPUT_SHAPE_INVALID', `Input shape must look like HxWxC (e.g. 224x224x3), got "${text}".`);
  }
  return [dims[0], dims[1], dims[2]] as unknown as InputShape;
}
