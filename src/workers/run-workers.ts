/**
 * Starts the BullMQ workers of one worker process: the `training` queue (train and compare jobs, in
 * a sandbox thread), the `inference` queue (`/v1/predict` in queue mode) and/or the `predictions`
 * queue (asynchronous predictions), the last two with in-process processors given by the caller.
 *
 * Training runs in a worker thread (BullMQ sandbox with `useWorkerThreads`): an epoch can take
 * minutes of CPU, and on the main thread it would starve the lock renewal, so BullMQ would think
 * the job stalled and start it twice. A thread dies with its process, so a SIGKILLed worker leaves
 * no training behind; the job's lock expires, another worker's stalled-job check puts it back in
 * the queue, and it resumes from its last epoch checkpoint.
 *
 * Shutdown ({@link RunningWorkers.close}): the workers stop taking jobs at once and wait for the
 * running ones. Training jobs still running after `handBackAfterMs` are aborted and handed back to
 * the queue untouched (no attempt used; the partial epoch is lost) so that another worker resumes
 * them from the last checkpoint right away. If even that cannot finish before the process exits,
 * the job's lock simply expires and the stalled-job check resumes it (after `JOB_LOCK_DURATION_MS`
 * plus up to two `STALLED_INTERVAL_MS`), which uses one of its `maxStalledCount` lives.
 * @module
 */
import os from 'node:os';
import { Worker, type Job, type Processor } from 'bullmq';
import type { Logger } from 'pino';
import { DEFAULT_REDIS_URL, type Config } from '../infra/config.ts';
import { ArtifactStore } from '../infra/artifact-store.ts';
import { JOB_QUEUE, QUEUE_NAMES, type CompareJob, type JobName, type PredictJob, type PredictionJob, type QueueName } from '../infra/queues.ts';
import { closeConnection, createWorkerConnection, type RedisConnection } from '../infra/redis.ts';
import { ExperimentRecords } from '../services/experiments/experiment-records.ts';
import { SHUTDOWN_REASON } from './stop-signal.ts';
import type { TrainingSandboxData } from './training-context.ts';
import { TRAINING_JOB_NAMES } from './training.processor.ts';

/**
 * How many times a job may stall (its worker died or froze) and still be resumed. A SIGKILL or a
 * lost machine costs one; the engine's checkpoints make each resume cheap, and a job that keeps
 * killing its worker (e.g. out of memory) still fails in the end.
 */
export const MAX_STALLED_COUNT = 3;

/**
 * How long a worker waits before fetching again after a fetch failed on a connection error, ms.
 * BullMQ's default (15 s) left jobs waiting that long after every Redis restart whenever the
 * outage hit a fetch; the connection's own reconnect backoff already keeps retries from spinning.
 */
export const FETCH_RETRY_DELAY_MS = 1_000;

/** The file BullMQ runs in the training sandbox thread. */
export const TRAINING_SANDBOX_FILE = new URL('./training.sandbox.js', import.meta.url);

export interface StartWorkersOptions<R = unknown> {
  config: Config;
  /** Queues this process serves. */
  queues: readonly QueueName[];
  /** Jobs run at once per queue. Default `TRAINING_CONCURRENCY` / `INFERENCE_CONCURRENCY` / `PREDICTION_CONCURRENCY`. */
  concurrency?: number;
  /** Processor of the `inference` queue's `predict` jobs; required when serving that queue. */
  inferenceProcessor?: Processor<PredictJob['data'], R, PredictJob['name']>;
  /** Processor of the `predictions` queue's `prediction` jobs; required when serving that queue. */
  predictionProcessor?: Processor<PredictionJob['data'], void, PredictionJob['name']>;
  /** Redis to use. Default `config.REDIS_URL`, else redis://127.0.0.1:6379. */
  redisUrl?: string;
  logger?: Logger;
}

export interface CloseOptions {
  /** How long running training jobs may go on before they are handed back to the queue, ms. Default half of `SHUTDOWN_TIMEOUT_MS`. */
  handBackAfterMs?: number;
}

export interface RunningWorkers {
  readonly workers: readonly Worker[];
  /** Resolves once every worker can take jobs (its Redis connections are up). */
  ready(): Promise<void>;
  /** Graceful shutdown (see the module comment); also closes the Redis connection. */
  close(options?: CloseOptions): Promise<void>;
}

/**
 * Names of the jobs routed to `queue` that no handler would take: a worker must not start and then
 * fail every such job.
 */
export function unhandledJobNames(queue: QueueName, handled: readonly JobName[]): JobName[] {
  return (Object.keys(JOB_QUEUE) as JobName[]).filter((name) => JOB_QUEUE[name] === queue && !handled.includes(name));
}

/**
 * Starts workers for `options.queues`.
 * @throws Error when a queue has a job without a handler (e.g. `inference` without `inferenceProcessor`).
 * @example
 * const running = startWorkers({ config, queues: ['training'] });
 * process.once('SIGTERM', () => void running.close());
 */
export function startWorkers<R = unknown>(options: StartWorkersOptions<R>): RunningWorkers {
  const { config, logger } = options;
  const handled: Record<QueueName, readonly JobName[]> = {
    training: TRAINING_JOB_NAMES,
    inference: options.inferenceProcessor === undefined ? [] : ['predict'],
    predictions: options.predictionProcessor === undefined ? [] : ['prediction'],
  };
  for (const queue of options.queues) {
    const missing = unhandledJobNames(queue, handled[queue]);
    if (missing.length > 0) throw new Error(`no handler for job ${missing.map((name) => JSON.stringify(name)).join(', ')} of queue ${queue}`);
  }

  const connection = createWorkerConnection(options.redisUrl ?? config.REDIS_URL ?? DEFAULT_REDIS_URL, { connectionName: `${config.QUEUE_PREFIX}:worker` });
  const common = {
    connection,
    prefix: config.QUEUE_PREFIX,
    lockDuration: config.JOB_LOCK_DURATION_MS,
    stalledInterval: config.STALLED_INTERVAL_MS,
    maxStalledCount: MAX_STALLED_COUNT,
    runRetryDelay: FETCH_RETRY_DELAY_MS,
    name: `${os.hostname()}:${process.pid}`,
  };
  const workers: Worker[] = [];
  const trainingWorkers: Worker[] = [];
  try {
    for (const queue of [...new Set(options.queues)]) {
      if (queue === QUEUE_NAMES.training) {
        const sandboxData: TrainingSandboxData = { config };
        const worker = new Worker(QUEUE_NAMES.training, TRAINING_SANDBOX_FILE, {
          ...common,
          concurrency: options.concurrency ?? config.TRAINING_CONCURRENCY,
          useWorkerThreads: true,
          // execArgv: none of the process's (`--no-liftoff` is refused in a thread; `--import tsx` has no
          // effect there); the sandbox file sets both up itself.
          workerThreadsOptions: { execArgv: [], workerData: sandboxData },
        });
        workers.push(worker);
        trainingWorkers.push(worker);
      } else if (queue === QUEUE_NAMES.inference) {
        const processor = options.inferenceProcessor as Processor<PredictJob['data'], R, PredictJob['name']>;
        const worker = new Worker(QUEUE_NAMES.inference, processor, { ...common, concurrency: options.concurrency ?? config.INFERENCE_CONCURRENCY });
        // Worker is invariant in its job types; the list only needs the queue-independent methods.
        workers.push(worker as unknown as Worker);
      } else {
        const processor = options.predictionProcessor as Processor<PredictionJob['data'], void, PredictionJob['name']>;
        // Few at once: each job may carry many images, and they share the batcher with /v1/predict.
        const worker = new Worker(QUEUE_NAMES.predictions, processor, { ...common, concurrency: options.concurrency ?? config.PREDICTION_CONCURRENCY });
        workers.push(worker as unknown as Worker);
      }
    }
  } catch (error) {
    void Promise.allSettled(workers.map((worker) => worker.close(true))).then(() => closeConnection(connection));
    throw error;
  }
  for (const worker of workers) observe(worker, logger);
  const records = new ExperimentRecords(new ArtifactStore(config.DATA_DIR));
  for (const worker of trainingWorkers) {
    worker.on('failed', (job: Job | undefined) => {
      if (job !== undefined) void failExperimentOfLostCompare(records, job).catch((error: unknown) => logger?.error({ err: error, jobId: job.id }, 'could not record the failed experiment'));
    });
  }

  let closing: Promise<void> | undefined;
  return {
    workers,
    async ready() {
      await Promise.all(workers.map((worker) => worker.waitUntilReady()));
    },
    close(closeOptions = {}) {
      closing ??= (async () => {
        const handBackAfterMs = closeOptions.handBackAfterMs ?? Math.floor(config.SHUTDOWN_TIMEOUT_MS / 2);
        const handBack = setTimeout(() => {
          logger?.warn({ handBackAfterMs }, 'training still running at shutdown: handing its jobs back to the queue');
          for (const worker of trainingWorkers) worker.cancelAllJobs(SHUTDOWN_REASON);
        }, handBackAfterMs);
        try {
          await Promise.allSettled(workers.map((worker) => worker.close()));
        } finally {
          clearTimeout(handBack);
          await closeConnection(connection as RedisConnection);
        }
      })();
      return closing;
    },
  };
}

/**
 * A `compare` job's processor records every failure it sees; one that failed without running (it
 * stalled more than {@link MAX_STALLED_COUNT} times, e.g. its workers kept dying) is recorded here,
 * so the experiment does not stay `running` forever.
 */
async function failExperimentOfLostCompare(records: ExperimentRecords, job: Job): Promise<void> {
  const data = job.data as Partial<CompareJob['data']> | undefined;
  if (job.name !== 'compare' || job.finishedOn === undefined || typeof data?.experimentId !== 'string') return;
  await records.markFailed(data.experimentId, {
    code: 'INTERNAL',
    detail: 'building the report stopped: its worker died or stopped responding too many times',
  });
}

/** Logs what an operator needs to see: failures, stalls, connection errors. */
function observe(worker: Worker, logger: Logger | undefined): void {
  const queue = worker.name;
  worker.on('error', (error) => logger?.error({ err: error, queue }, 'worker error'));
  worker.on('failed', (job: Job | undefined, error: Error) => {
    logger?.warn({ queue, jobId: job?.id, job: job?.name, attemptsMade: job?.attemptsMade, reason: error.message }, 'job failed');
  });
  worker.on('stalled', (jobId: string) => logger?.warn({ queue, jobId }, 'job stalled: its worker stopped renewing the lock; it will be resumed'));
  worker.on('completed', (job: Job) => logger?.info({ queue, jobId: job.id, job: job.name }, 'job completed'));
}
