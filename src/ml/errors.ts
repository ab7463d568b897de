/**
 * The one error type of the ML engine: a stable machine `code`, a human message and the `cause`.
 * The service layer maps codes to HTTP statuses; the CLI prints `code: message`.
 * @module
 */

/** Codes are stable: callers (the API, tests, scripts) switch on them. */
export type MlErrorCode =
  | 'BACKEND_UNAVAILABLE'
  | 'ARCHITECTURE_UNKNOWN'
  | 'INPUT_SHAPE_INVALID'
  | 'DATASET_NOT_FOUND'
  | 'DATASET_EMPTY'
  | 'DATASET_SINGLE_CLASS'
  | 'DATASET_TOO_SMALL'
  | 'IMAGE_TOO_SMALL'
  | 'IMAGE_UNDECODABLE'
  | 'PREDICTIONS_INVALID'
  | 'MODEL_NOT_FOUND'
  | 'MODEL_CORRUPT'
  | 'CHECKPOINT_INVALID'
  | 'TRAINING_CANCELLED'
  | 'OUT_OF_MEMORY'
  | 'EXPORT_UNSUPPORTED'
  | 'INVALID_ARGUMENT';

export class MlError extends Error {
  override readonly name = 'MlError';
  readonly code: MlErrorCode;

  constructor(code: MlErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** True when `error` is an `MlError`, optionally with the given code. */
export function isMlError(error: unknown, code?: MlErrorCode): error is MlError {
  return error instanceof MlError && (code === undefined || error.code === code);
}
