/**
 * Queue names, job names, payloads and default job options: the one place both the API (producer)
 * and the workers (consumers) take them from (DESIGN section 4, STYLE rule 6). Payloads carry ids
 * and paths under `DATA_DIR`, never secrets, file names from clients or patient identifiers.
 * @module
 */
import type { JobsOptions } from 'bullmq';
import type { Architecture } from '../ml/models/index.ts';

export const QUEUE_NAMES = Object.freeze({
  training: 'training',
  inference: 'inference',
  /** Asynchronous predictions: a queue of their own, so a large batch never holds up `/v1/predict`. */
  predictions: 'predictions',
} as const);

export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

/** Every queue a worker can serve, for `worker --queues`. */
export const ALL_QUEUES: readonly QueueName[] = Object.freeze([QUEUE_NAMES.training, QUEUE_NAMES.inference, QUEUE_NAMES.predictions]);

/** Trains one architecture of an experiment; the experiment's settings are in its `experiment.json`. */
export interface TrainJob {
  name: 'train';
  data: { experimentId: string; architecture: Architecture };
}

/** The flow's parent: builds the comparison report once every `train` child has finished. */
export interface CompareJob {
  name: 'compare';
  data: { experimentId: string };
}

/** Classifies images saved under `DATA_DIR/uploads/` with one model (queue mode of `/v1/predict`). */
export interface PredictJob {
  name: 'predict';
  data: {
    modelId: string;
    /** Absolute paths under `DATA_DIR/uploads/`; the API deletes them once answered. */
    imagePaths: string[];
    explain: boolean;
  };
}

/**
 * Runs an asynchronous prediction (`POST /v1/predictions`): its record and images are under
 * `DATA_DIR/predictions/{predictionId}/`; the job writes the result there. The job id is the
 * prediction id, so the same prediction is never queued twice.
 */
export interface PredictionJob {
  name: 'prediction';
  data: { predictionId: string };
}

/** Every job, discriminated by `name`. */
export type JobPayload = TrainJob | CompareJob | PredictJob | PredictionJob;
export type JobName = JobPayload['name'];
export type JobData<N extends JobName> = Extract<JobPayload, { name: N }>['data'];

/** Which queue each job goes to. */
export const JOB_QUEUE: Readonly<Record<JobName, QueueName>> = Object.freeze({
  train: QUEUE_NAMES.training,
  compare: QUEUE_NAMES.training,
  predict: QUEUE_NAMES.inference,
  prediction: QUEUE_NAMES.predictions,
});

/**
 * Job id of an architecture's training. BullMQ refuses custom ids with one `:` (it separates Redis
 * key parts), so the DESIGN's `${experimentId}:${architecture}` is written with a dot.
 */
export function trainJobId(experimentId: string, architecture: Architecture): string {
  return `${experimentId}.${architecture}`;
}

/** Job id of an experiment's `compare` parent: the experiment id itself. */
export function compareJobId(experimentId: string): string {
  return experimentId;
}

const DAY_SECONDS = 24 * 60 * 60;

/** Default options of each job. Completed and failed jobs are trimmed (DESIGN section 4). */
export const DEFAULT_JOB_OPTIONS: Readonly<Record<JobName, JobsOptions>> = Object.freeze({
  // A failed attempt (not a stall: stalls are counted by the worker's maxStalledCount) is retried;
  // the retry resumes from the last epoch's checkpoint.
  train: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 5_000 },
    removeOnComplete: { age: 30 * DAY_SECONDS },
    removeOnFail: { age: 30 * DAY_SECONDS },
  },
  compare: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 2_000 },
    removeOnComplete: { age: 30 * DAY_SECONDS },
    removeOnFail: { age: 30 * DAY_SECONDS },
  },
  predict: {
    attempts: 1,
    removeOnComplete: { age: 60, count: 1000 },
    removeOnFail: { age: 60 * 60, count: 1000 },
  },
  // The result is in the prediction's record, not in Redis; a worker that fails unexpectedly (or
  // dies) is retried, and the job is idempotent.
  prediction: {
    attempts: 3,
    backoff: { type: 'exponential', delay: 1_000 },
    removeOnComplete: { age: DAY_SECONDS },
    removeOnFail: { age: DAY_SECONDS },
  },
});
