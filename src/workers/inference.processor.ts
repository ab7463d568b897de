/**
 * The `inference` queue's processor: a `predict` job names a model and image files under
 * `DATA_DIR/uploads/`; this reads them and runs them through the process's {@link LocalPredictor}.
 * It runs in the worker process itself (not sandboxed: batches take milliseconds, and the model pool
 * and batchers must be shared by every job), with a high worker concurrency (~32) so that concurrent
 * jobs meet in the predictor's dynamic batcher and share forward passes.
 *
 * Refusals the caller must see (bad image, unknown model, full batcher) complete the job with
 * `{ ok: false, error }` (see `src/serving/inference-job.ts`); unexpected errors fail it.
 * @module
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { UnrecoverableError, type Job } from 'bullmq';
import { isSafeId } from '../infra/artifact-store.ts';
import { toAppError } from '../infra/errors.ts';
import type { PredictJob } from '../infra/queues.ts';
import { jobErrorResult, positionalImageId, type InferenceJobResult } from '../serving/inference-job.ts';
import type { LocalPredictor } from '../serving/predictor.ts';

export interface InferenceProcessorOptions {
  /**
   * `ArtifactStore.uploadsDir`: when given, a job naming a file outside it is refused (the payload
   * comes from Redis, which a worker should not trust to point anywhere on its disk).
   */
  uploadsDir?: string;
}

/** What the processor needs from the predictor (a `LocalPredictor` in production). */
export type InferencePredictor = Pick<LocalPredictor, 'predict'>;

/** A BullMQ processor for the `inference` queue (its only job is `predict`; others are refused). */
export type InferenceProcessor = (job: Job<PredictJob['data'], InferenceJobResult>) => Promise<InferenceJobResult>;

/**
 * Creates the `inference` queue's processor around one predictor (one per worker process).
 * @example
 * const worker = new Worker(QUEUE_NAMES.inference, createInferenceProcessor(predictor, { uploadsDir: store.uploadsDir }),
 *   { connection, prefix, concurrency: config.INFERENCE_CONCURRENCY });
 */
export function createInferenceProcessor(predictor: InferencePredictor, options: InferenceProcessorOptions = {}): InferenceProcessor {
  const uploadsDir = options.uploadsDir === undefined ? undefined : path.resolve(options.uploadsDir);
  return async (job) => {
    if (job.name !== 'predict') throw new UnrecoverableError(`the inference queue has no job named ${JSON.stringify(job.name)}`);
    const data = validateJobData(job.data, uploadsDir);
    // A missing file means the API gave up on the request (timeout) and deleted it: fail the job.
    const images = await Promise.all(
      data.imagePaths.map(async (file, index) => ({ id: positionalImageId(index), data: await readFile(file) })),
    );
    try {
      const response = await predictor.predict({ model: data.modelId, images, explain: data.explain });
      return { ok: true, response };
    } catch (error) {
      const result = jobErrorResult(toAppError(error));
      if (result === null) throw error;
      return result;
    }
  };
}

/** Checks a job's payload; a malformed one is never retried. */
function validateJobData(data: unknown, uploadsDir: string | undefined): PredictJob['data'] {
  const value = data as Partial<PredictJob['data']> | null;
  const problems: string[] = [];
  if (typeof value?.modelId !== 'string' || !isSafeId(value.modelId)) problems.push('modelId must be a model id');
  if (typeof value?.explain !== 'boolean') problems.push('explain must be a boolean');
  const paths = value?.imagePaths;
  if (!Array.isArray(paths) || paths.length === 0 || !paths.every((p) => typeof p === 'string' && path.isAbsolute(p))) {
    problems.push('imagePaths must be a non-empty list of absolute paths');
  } else if (uploadsDir !== undefined && !paths.every((p) => path.dirname(path.resolve(p)) === uploadsDir)) {
    problems.push('imagePaths must be files directly under the uploads directory');
  }
  if (problems.length > 0) throw new UnrecoverableError(`invalid predict job: ${problems.join('; ')}`);
  return value as PredictJob['data'];
}
