/**
 * The one error type of the service and the registry of its codes (STYLE rule 5). Each code has one
 * HTTP status and one title; `openapi.yaml` lists the same codes in `ProblemCode` (a test keeps the
 * two equal). The API's error handler turns an {@link AppError} into an RFC 9457 problem document.
 * @module
 */
import { isMlError, type MlErrorCode } from '../ml/errors.ts';

/** Every code the API can answer with, its HTTP status and a short title. */
export const ERROR_CATALOG = Object.freeze({
  VALIDATION_FAILED: { status: 400, title: 'The request does not match the API contract' },
  BODY_INVALID: { status: 400, title: 'The request body could not be parsed' },
  UNAUTHENTICATED: { status: 401, title: 'An API key is required' },
  FORBIDDEN: { status: 403, title: 'The API key lacks the scope this operation needs' },
  NOT_FOUND: { status: 404, title: 'No such route' },
  DATASET_NOT_FOUND: { status: 404, title: 'No such dataset' },
  EXPERIMENT_NOT_FOUND: { status: 404, title: 'No such experiment' },
  REPORT_NOT_FOUND: { status: 404, title: 'No such report' },
  CHART_NOT_FOUND: { status: 404, title: 'No such chart' },
  MODEL_NOT_FOUND: { status: 404, title: 'No such model' },
  MODEL_FILE_NOT_FOUND: { status: 404, title: 'No such model file' },
  PREDICTION_NOT_FOUND: { status: 404, title: 'No such prediction' },
  NOT_ACCEPTABLE: { status: 406, title: 'None of the accepted media types can be produced' },
  REQUEST_TIMEOUT: { status: 408, title: 'The request body did not arrive in time' },
  DATASET_EXISTS: { status: 409, title: 'A dataset with this id exists' },
  EXPERIMENT_FINISHED: { status: 409, title: 'The experiment has already finished' },
  IDEMPOTENCY_KEY_IN_USE: { status: 409, title: 'A request with this Idempotency-Key is still being processed' },
  REPORT_NOT_READY: { status: 409, title: 'The experiment has not finished yet' },
  PAYLOAD_TOO_LARGE: { status: 413, title: 'The request is larger than this route accepts' },
  TOO_MANY_FILES: { status: 413, title: 'The request has more files or parts than this route accepts' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, title: 'The request body has a media type this route does not accept' },
  IMAGE_TYPE_UNSUPPORTED: { status: 415, title: 'The image is not a JPEG or PNG' },
  IMAGE_UNDECODABLE: { status: 422, title: 'The image could not be decoded' },
  IMAGE_TOO_LARGE: { status: 422, title: 'The image has more pixels than allowed' },
  IMAGE_TOO_SMALL: { status: 422, title: 'The images are smaller than the model input' },
  ARCHIVE_INVALID: { status: 422, title: 'The archive could not be read' },
  ARCHIVE_UNSAFE: { status: 422, title: 'The archive breaks an extraction rule' },
  DATASET_EMPTY: { status: 422, title: 'The dataset has no usable images' },
  DATASET_SINGLE_CLASS: { status: 422, title: 'The dataset has only one class' },
  DATASET_TOO_SMALL: { status: 422, title: 'The dataset has too few images to train and test' },
  DATASET_INVALID: { status: 422, title: 'The dataset folders or its dataset.json do not follow the layout' },
  EXPERIMENT_INVALID: { status: 422, title: 'The experiment settings are invalid' },
  IDEMPOTENCY_KEY_REUSED: { status: 422, title: 'This Idempotency-Key was used with a different request' },
  RATE_LIMITED: { status: 429, title: 'Too many requests for this API key' },
  INTERNAL: { status: 500, title: 'Internal error' },
  MODEL_CORRUPT: { status: 500, title: 'The model files are damaged' },
  QUEUE_FULL: { status: 503, title: 'The service is at capacity; retry later' },
  REDIS_UNAVAILABLE: { status: 503, title: 'The job store is unreachable' },
  SHUTTING_DOWN: { status: 503, title: 'The service is shutting down' },
  PREDICTION_TIMEOUT: { status: 503, title: 'No worker answered in time; retry later' },
  OUT_OF_MEMORY: { status: 503, title: 'Not enough memory for this request' },
  ENGINE_UNAVAILABLE: { status: 503, title: 'The configured inference engine cannot run this model here' },
  INSUFFICIENT_STORAGE: { status: 507, title: 'The data directory is full' },
} as const satisfies Record<string, { status: number; title: string }>);

export type ErrorCode = keyof typeof ERROR_CATALOG;

/** Every code, in catalogue order. */
export const ERROR_CODES = Object.freeze(Object.keys(ERROR_CATALOG) as ErrorCode[]);

export interface AppErrorOptions {
  cause?: unknown;
  /** Extra response headers, e.g. `Retry-After`. */
  headers?: Readonly<Record<string, string>>;
  /** Extra members of the problem document (e.g. `errors` of a validation failure). */
  extensions?: Readonly<Record<string, unknown>>;
}

/**
 * An error the API answers with: a stable `code` (and so status and title), a `detail` safe to show
 * the caller (never patient data, file names or request bodies) and the `cause` for the log.
 * @example
 * throw new AppError('MODEL_NOT_FOUND', 'no model holds the alias "production"');
 */
export class AppError extends Error {
  override readonly name = 'AppError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly extensions: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCode, detail: string, options: AppErrorOptions = {}) {
    super(detail, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_CATALOG[code].status;
    this.headers = options.headers ?? {};
    this.extensions = options.extensions ?? {};
  }
}

/** Which service code an ML engine error becomes. */
const ML_CODE_MAP: Readonly<Record<MlErrorCode, ErrorCode>> = Object.freeze({
  BACKEND_UNAVAILABLE: 'ENGINE_UNAVAILABLE',
  ARCHITECTURE_UNKNOWN: 'EXPERIMENT_INVALID',
  INPUT_SHAPE_INVALID: 'EXPERIMENT_INVALID',
  DATASET_NOT_FOUND: 'DATASET_NOT_FOUND',
  DATASET_EMPTY: 'DATASET_EMPTY',
  DATASET_SINGLE_CLASS: 'DATASET_SINGLE_CLASS',
  DATASET_TOO_SMALL: 'DATASET_TOO_SMALL',
  IMAGE_TOO_SMALL: 'IMAGE_TOO_SMALL',
  IMAGE_UNDECODABLE: 'IMAGE_UNDECODABLE',
  PREDICTIONS_INVALID: 'VALIDATION_FAILED',
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  MODEL_CORRUPT: 'MODEL_CORRUPT',
  CHECKPOINT_INVALID: 'INTERNAL',
  TRAINING_CANCELLED: 'EXPERIMENT_FINISHED',
  OUT_OF_MEMORY: 'OUT_OF_MEMORY',
  EXPORT_UNSUPPORTED: 'INTERNAL',
  INVALID_ARGUMENT: 'EXPERIMENT_INVALID',
});

/** Absolute paths in ML engine messages, which callers of the API must not see (server layout). */
const ABSOLUTE_PATH = /(?<![\w.])\/(?:[^\s'"`/]+\/)*([^\s'"`/]+)/g;

/** `message` with each absolute path cut to its last segment (e.g. a class folder's name). */
export function withoutServerPaths(message: string): string {
  return message.replace(ABSOLUTE_PATH, (_match, last: string) => last);
}

/** True when `error`, or an error in its `cause` chain, says the disk or a quota is full. */
export function isOutOfSpace(error: unknown): boolean {
  for (let current = error, depth = 0; current instanceof Error && depth < 8; current = current.cause, depth++) {
    const code = (current as NodeJS.ErrnoException).code;
    if (code === 'ENOSPC' || code === 'EDQUOT') return true;
  }
  return false;
}

/**
 * `error` as an {@link AppError}: an AppError as is, a full disk as `INSUFFICIENT_STORAGE`, an ML
 * engine error by its code, anything else as `INTERNAL` (whose detail never repeats the original
 * message, which may hold paths or data).
 */
export function toAppError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  if (isOutOfSpace(error)) return new AppError('INSUFFICIENT_STORAGE', 'the data directory is full; free space and retry', { cause: error });
  if (isMlError(error)) {
    const code = ML_CODE_MAP[error.code];
    const generic = code === 'INTERNAL' || code === 'MODEL_CORRUPT' || code === 'MODEL_NOT_FOUND';
    return new AppError(code, generic ? ERROR_CATALOG[code].title : withoutServerPaths(error.message), { cause: error });
  }
  return new AppError('INTERNAL', 'an unexpected error occurred; it has been logged', { cause: error });
}
