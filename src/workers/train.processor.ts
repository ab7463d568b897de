/**
 * The `train` job: trains one architecture of an experiment with the ML engine, in the training
 * sandbox (a worker thread, so a long epoch never delays the job's lock renewal).
 *
 * At-least-once and resumable: the engine checkpoints every epoch under
 * `experiments/{id}/checkpoints/{arch}/` and resumes from there, and reuses a finished result, so a
 * retried, stalled-and-restarted or duplicated job continues where the last one stopped. Jobs of one
 * experiment share its folder; each writes only its own files (`progress/{arch}.json`,
 * `results/{arch}.json`, `models/{arch}/`), and the report is left to the `compare` job.
 *
 * Endings: done (returns headline metrics); cancelled or experiment already ended (unrecoverable: no
 * retry); worker shutting down (the job goes back to the queue untouched, to resume elsewhere);
 * the data directory full (held back as delayed without using an attempt, see `storage-hold.ts`);
 * a failure (retried while attempts remain, except for problems a retry cannot fix).
 * @module
 */
import { UnrecoverableError, WaitingError, type SandboxedJob } from 'bullmq';
import { toAppError } from '../infra/errors.ts';
import type { TrainJob } from '../infra/queues.ts';
import { requiresBackendReset, resetWasmBackend } from '../ml/backend/wasm-memory.ts';
import { isMlError, type MlErrorCode } from '../ml/errors.ts';
import { runExperiment } from '../ml/experiment/index.ts';
import { isArchitecture, type Architecture } from '../ml/models/index.ts';
import { engineOptions } from '../services/experiments/experiment-settings.ts';
import { isFinalStatus, type ArchitectureResultSummary, type ExperimentError } from '../services/experiments/experiment.types.ts';
import { ProgressTracker, summarizeResult } from './progress-tracker.ts';
import { holdForStorage } from './storage-hold.ts';
import { watchStopSignal, type StopReason } from './stop-signal.ts';
import type { TrainingContext } from './training-context.ts';

/** What a `train` job returns (kept small: it is stored in Redis). */
export interface TrainJobResult {
  architecture: Architecture;
  result: ArchitectureResultSummary;
}

/** Engine errors a retry cannot fix: the same data and settings fail the same way. */
const PERMANENT_ML_CODES: ReadonlySet<MlErrorCode> = new Set([
  'ARCHITECTURE_UNKNOWN',
  'INPUT_SHAPE_INVALID',
  'INVALID_ARGUMENT',
  'DATASET_NOT_FOUND',
  'DATASET_EMPTY',
  'DATASET_SINGLE_CLASS',
  'DATASET_TOO_SMALL',
  'IMAGE_TOO_SMALL',
]);

/** Checks a `train` job's data; bad data can never succeed, so it is unrecoverable. */
export function parseTrainJobData(data: unknown): TrainJob['data'] {
  const value = data as Partial<TrainJob['data']> | null;
  if (typeof value?.experimentId !== 'string' || !isArchitecture(value.architecture)) {
    throw new UnrecoverableError('train job data must be { experimentId, architecture }');
  }
  return { experimentId: value.experimentId, architecture: value.architecture };
}

/**
 * Runs a `train` job.
 * @param token the job's lock token (to hand the job back on shutdown)
 * @param jobSignal BullMQ's signal: aborted when the worker shuts down
 */
export async function processTrainJob(
  job: SandboxedJob<TrainJob['data']>,
  token: string | undefined,
  jobSignal: AbortSignal | undefined,
  context: TrainingContext,
): Promise<TrainJobResult> {
  const { experimentId, architecture } = parseTrainJobData(job.data);
  const { records, store } = context;
  const record = await records.read(experimentId);
  if (record === null) throw new UnrecoverableError(`experiment ${experimentId} has no record`);
  if (!record.settings.architectures.includes(architecture)) {
    throw new UnrecoverableError(`experiment ${experimentId} does not train ${architecture}`);
  }

  const stopReason = async (): Promise<StopReason | null> => {
    if (await records.cancelRequested(experimentId)) return 'cancelled';
    const now = await records.read(experimentId);
    return now === null || isFinalStatus(now.status) ? 'experiment-ended' : null;
  };
  const tracker = new ProgressTracker({
    architecture,
    epochs: record.settings.epochs,
    previous: await records.readProgress(experimentId, architecture),
    write: (progress) => records.writeProgress(experimentId, progress),
    report: (progress) => job.updateProgress({ ...progress }),
  });

  const early = await stopReason();
  if (early !== null) {
    await tracker.finish('cancelled');
    throw new UnrecoverableError(`not trained: ${early === 'cancelled' ? 'the experiment was cancelled' : 'the experiment has ended'}`);
  }
  const stop = watchStopSignal(stopReason, context.cancelPollMs, jobSignal);
  try {
    // Before the first write: a job held back for space comes here again every retry interval.
    await context.storage.assertRoom('training');
    const startedAt = new Date().toISOString();
    await records.update(experimentId, (current) => (current.status === 'queued' ? { ...current, status: 'running', startedAt } : null));
    await tracker.begin();
    const report = await runExperiment({
      dataDir: store.datasetDir(record.datasetId),
      outDir: store.experimentDir(experimentId),
      architectures: [architecture],
      ...engineOptions(record.settings),
      backend: context.config.FRACTURE_BACKEND,
      signal: stop.signal,
      onEvent: tracker.onEvent,
      writeReport: false,
    });
    const result = report.results[0];
    if (result === undefined) throw new Error(`the engine returned no result for ${architecture}`);
    await tracker.finish('completed', { result });
    return { architecture, result: summarizeResult(result) };
  } catch (error) {
    throw await failure(error, stop.reason(), job, token, tracker, context.config.STORAGE_RETRY_INTERVAL_MS);
  } finally {
    stop.stop();
  }
}

/** Records how the run ended and returns the error that tells BullMQ what to do with the job. */
async function failure(
  error: unknown,
  stopped: StopReason | null,
  job: SandboxedJob<TrainJob['data']>,
  token: string | undefined,
  tracker: ProgressTracker,
  storageRetryMs: number,
): Promise<Error> {
  const cancelled = isMlError(error, 'TRAINING_CANCELLED');
  if (cancelled && stopped === 'shutdown') {
    // Hand the job back as it is (no attempt used): another worker resumes from the checkpoint.
    await tracker.retryLater({ code: 'SHUTTING_DOWN', detail: 'the worker shut down; training resumes from the last epoch checkpoint' });
    if (token !== undefined) {
      await job.moveToWait(token);
      return new WaitingError();
    }
    return new Error('the worker shut down during training');
  }
  if (cancelled && stopped !== null) {
    await tracker.finish('cancelled');
    return new UnrecoverableError(stopped === 'cancelled' ? 'training cancelled' : 'training stopped: the experiment has ended');
  }
  if (requiresBackendReset(error)) {
    // The wasm module trapped and its memory may be corrupt: give this sandbox thread a fresh one, so
    // its next job (this one's retry, resuming from the checkpoint) does not compute garbage.
    await resetWasmBackend().catch(() => {});
  }
  const appError = toAppError(error);
  if (appError.code === 'INSUFFICIENT_STORAGE') {
    const detail = `${appError.message}; training resumes from its last epoch checkpoint once there is room (checked every ${Math.round(storageRetryMs / 1000)} s)`;
    // On a full disk even the progress file may not be written; the job is held back all the same.
    await tracker.retryLater({ code: appError.code, detail }).catch(() => undefined);
    return holdForStorage(job, token, storageRetryMs);
  }
  const reported: ExperimentError = { code: appError.code, detail: appError.message };
  const permanent = isMlError(error) && PERMANENT_ML_CODES.has(error.code);
  const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
  if (permanent || lastAttempt) {
    await tracker.finish('failed', { error: reported });
    return new UnrecoverableError(`${reported.code}: ${reported.detail}`);
  }
  await tracker.retryLater(reported);
  return new Error(`${reported.code}: ${reported.detail}`);
}
