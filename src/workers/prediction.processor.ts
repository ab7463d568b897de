/**
 * The `predictions` queue's processor: runs an asynchronous prediction through the process's
 * predictor (the same batcher as `/v1/predict`) and writes the outcome into its record
 * (`DATA_DIR/predictions/{id}/prediction.json`); the uploaded images are deleted afterwards.
 *
 * Endings: completed (the result in the record); failed for good (a bad image, a model that is gone:
 * the error in the record, no retry); held back (the predictor's backlog is full, or it is shutting
 * down: the job waits as delayed, without using an attempt, and tries again); retried (anything
 * unexpected, while attempts remain; the last one records `INTERNAL`). Idempotent: a prediction
 * already finished is not run again.
 * @module
 */
import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { ArtifactStore, isSafeId } from '../infra/artifact-store.ts';
import { toAppError, type ErrorCode } from '../infra/errors.ts';
import type { PredictionJob } from '../infra/queues.ts';
import { positionalImageId } from '../serving/inference-job.ts';
import type { Predictor } from '../serving/types.ts';
import { PredictionRecords } from '../services/predictions/prediction-records.ts';
import { isFinalPrediction, type PredictionError } from '../services/predictions/prediction.types.ts';

/** Refusals that say "not now" rather than "never": the job waits and tries again. */
const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set(['QUEUE_FULL', 'SHUTTING_DOWN', 'OUT_OF_MEMORY']);

/** What the processor needs from the predictor (a `LocalPredictor` in production). */
export type PredictionPredictor = Pick<Predictor, 'predict'>;

export type PredictionProcessor = (job: Job<PredictionJob['data'], void, PredictionJob['name']>, token?: string) => Promise<void>;

/**
 * Creates the processor of the `predictions` queue around one predictor.
 * @param dataDir `DATA_DIR`, where the predictions' records and images are
 * @example
 * const processor = createPredictionProcessor(predictor, config.DATA_DIR);
 */
export function createPredictionProcessor(predictor: PredictionPredictor, dataDir: string): PredictionProcessor {
  const records = new PredictionRecords(new ArtifactStore(dataDir));
  return async (job, token) => {
    if (job.name !== 'prediction') throw new UnrecoverableError(`the predictions queue has no job named ${JSON.stringify(job.name)}`);
    const id = job.data?.predictionId;
    if (typeof id !== 'string' || !isSafeId(id)) throw new UnrecoverableError('prediction job data must be { predictionId }');
    const record = await records.read(id);
    if (record === null) throw new UnrecoverableError('the prediction is gone (expired or never accepted)');
    if (isFinalPrediction(record.status)) return;

    await records.update(id, (current) => (current.status === 'queued' ? { ...current, status: 'running', startedAt: new Date().toISOString() } : null));
    const finish = async (outcome: { result: NonNullable<typeof record.result> } | { error: PredictionError }): Promise<void> => {
      const finishedAt = new Date().toISOString();
      await records.update(id, (current) =>
        isFinalPrediction(current.status) ? null : 'result' in outcome ? { ...current, status: 'completed', finishedAt, result: outcome.result } : { ...current, status: 'failed', finishedAt, error: outcome.error },
      );
      await records.removeImages(id);
    };

    let response;
    try {
      const data = await records.readImages(id, record.imageIds.length);
      // The predictor sees positions only; the caller's ids go back in below.
      response = await predictor.predict({ model: record.model.id, explain: record.explain, images: data.map((bytes, index) => ({ id: positionalImageId(index), data: bytes })) });
    } catch (error) {
      const appError = toAppError(error);
      if (TRANSIENT_CODES.has(appError.code) && token !== undefined) {
        const seconds = Number(appError.headers['Retry-After'] ?? 1);
        await job.moveToDelayed(Date.now() + Math.max(1, seconds) * 1000, token);
        throw new DelayedError();
      }
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      if (appError.code !== 'INTERNAL' || lastAttempt) {
        await finish({ error: { code: appError.code, detail: appError.message } });
        throw new UnrecoverableError(`${appError.code}: ${appError.message}`);
      }
      throw error;
    }
    await finish({ result: { ...response, predictions: response.predictions.map((prediction, i) => ({ ...prediction, id: record.imageIds[i] ?? prediction.id })) } });
  };
}
