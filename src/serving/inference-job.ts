/**
 * What a `predict` job returns, and how errors cross the queue. BullMQ carries only a string for a
 * failed job, so a worker that refuses a request for a reason the caller must see (an undecodable
 * image, a missing model, a full batcher) does not fail the job: it completes it with
 * `{ ok: false, error: { code, detail, ... } }`, and the API throws the same {@link AppError}. Only
 * unexpected errors fail the job; the API answers those with `INTERNAL`.
 *
 * Job payloads carry positions, never the client's image ids (they might be patient identifiers), so
 * the worker names images `images[i]` and the API puts the request's ids back.
 * @module
 */
import { AppError, ERROR_CATALOG, type ErrorCode } from '../infra/errors.ts';
import { ImageRejectedError, imageDetail } from './image-input.ts';
import type { PredictImage, PredictResponse } from './types.ts';

/** A refusal as it crosses the queue. */
export interface InferenceJobError {
  code: ErrorCode;
  detail: string;
  /** Response headers, e.g. `Retry-After` of `QUEUE_FULL`. */
  headers?: Record<string, string>;
  /** With image errors: the image's position in the request, and the reason without its id. */
  imageIndex?: number;
  reason?: string;
}

/** The return value of a `predict` job. */
export type InferenceJobResult = { ok: true; response: PredictResponse } | { ok: false; error: InferenceJobError };

/** The id a worker gives the image at `index` (the default id of `/v1/predict` as well). */
export function positionalImageId(index: number): string {
  return `images[${index}]`;
}

/**
 * The job result for an error thrown while predicting, or `null` when the error is unexpected
 * (an `INTERNAL` error) and should fail the job instead.
 */
export function jobErrorResult(error: AppError): InferenceJobResult | null {
  if (error.code === 'INTERNAL') return null;
  const encoded: InferenceJobError = { code: error.code, detail: error.message };
  if (Object.keys(error.headers).length > 0) encoded.headers = { ...error.headers };
  if (error instanceof ImageRejectedError) {
    encoded.imageIndex = error.imageIndex;
    encoded.reason = error.reason;
  }
  return { ok: false, error: encoded };
}

/**
 * The response for the request's `images` from a job's return value: the request's image ids put
 * back, or the job's error thrown again as the same AppError.
 * @throws AppError the worker's refusal, or `INTERNAL` for a result that is not a valid job result
 */
export function responseFromJobResult(result: unknown, images: readonly PredictImage[]): PredictResponse {
  const value = result as Partial<InferenceJobResult> | null;
  if (value?.ok === false && value.error && typeof value.error.code === 'string' && Object.hasOwn(ERROR_CATALOG, value.error.code)) {
    throw errorFromJob(value.error, images);
  }
  if (value?.ok === true && value.response && Array.isArray(value.response.predictions) && value.response.predictions.length === images.length) {
    const { response } = value;
    return {
      ...response,
      predictions: response.predictions.map((prediction, i) => ({ ...prediction, id: (images[i] as PredictImage).id })),
    };
  }
  throw new AppError('INTERNAL', 'the inference worker returned an invalid result', { cause: new Error('invalid predict job result') });
}

function errorFromJob(error: InferenceJobError, images: readonly PredictImage[]): AppError {
  const headers = error.headers ?? {};
  // Rebuilt from the position and reason (not the worker's text) for an image of this request.
  if (error.imageIndex !== undefined && error.imageIndex < images.length && error.reason !== undefined) {
    return new AppError(error.code, imageDetail(error.imageIndex, error.reason), { headers });
  }
  return new AppError(error.code, String(error.detail), { headers });
}
