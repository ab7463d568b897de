/**
 * Prediction through the `inference` queue, for an `api` process whose workers run elsewhere
 * (DESIGN section 4, compose mode). Per request: resolve the model reference to a concrete id (so
 * the job names the model the API checked), refuse at once when the queue's backlog is full, write
 * each image to `DATA_DIR/uploads/<random>.bin` (random names, never the client's; the shared volume
 * is how workers read them), add one `predict` job, wait for it, and delete the files whatever
 * happens. Workers run the job with {@link LocalPredictor}, where the dynamic batching happens.
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Queue, QueueEvents, isRedisInstance, type ConnectionOptions } from 'bullmq';
import { AppError, toAppError } from '../infra/errors.ts';
import { DEFAULT_JOB_OPTIONS, QUEUE_NAMES, type PredictJob } from '../infra/queues.ts';
import { responseFromJobResult, type InferenceJobResult } from './inference-job.ts';
import { DEFAULT_MODEL_REF, type ModelResolver, type PredictRequest, type PredictResponse, type Predictor } from './types.ts';

export interface QueuePredictorOptions {
  /**
   * Redis for BullMQ: an ioredis instance (shared by the queue; duplicated for the event listener,
   * which needs a connection of its own) or connection options.
   */
  connection: ConnectionOptions;
  /** BullMQ key prefix (`QUEUE_PREFIX`). */
  prefix: string;
  /** Where request images are written for the workers: `ArtifactStore.uploadsDir`. */
  uploadsDir: string;
  /** The model registry: model id or alias to a concrete model (`MODEL_NOT_FOUND` otherwise). */
  resolveModel: ModelResolver;
  /** Longest wait for a worker's answer, in ms (`PREDICT_TIMEOUT_MS`); then `PREDICTION_TIMEOUT`. */
  timeoutMs: number;
  /** Jobs waiting in the `inference` queue beyond which requests get `QUEUE_FULL` (`PREDICT_MAX_QUEUE`). */
  maxQueue: number;
}

/** The part of an ioredis client this module uses on its own duplicate. */
type DuplicatedClient = ConnectionOptions & { quit(): Promise<unknown>; on(event: 'error', listener: (error: Error) => void): unknown };

/** Round trips remembered for the `Retry-After` estimate. */
const ROUND_TRIP_WINDOW = 32;

/**
 * Sends predictions to inference workers through BullMQ and waits for their answers.
 * @example
 * const predictor = new QueuePredictor({ connection: redis, prefix: config.QUEUE_PREFIX,
 *   uploadsDir: store.uploadsDir, resolveModel: registry.resolve, timeoutMs: 30_000, maxQueue: 256 });
 * const body = await predictor.predict({ images, explain: false });
 * await predictor.close();
 */
export class QueuePredictor implements Predictor {
  readonly #options: Readonly<QueuePredictorOptions>;
  readonly #queue: Queue<PredictJob['data'], InferenceJobResult, PredictJob['name']>;
  readonly #events: QueueEvents;
  /** The events connection this predictor duplicated (and so must close), if any. */
  readonly #ownedConnection: { quit(): Promise<unknown> } | undefined;
  readonly #inFlight = new Set<Promise<unknown>>();
  #roundTrips: number[] = [];
  #closed = false;

  constructor(options: QueuePredictorOptions) {
    if (!Number.isInteger(options.maxQueue) || options.maxQueue < 1) throw new RangeError(`maxQueue must be an integer >= 1, got ${options.maxQueue}`);
    if (!(options.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
    this.#options = Object.freeze({ ...options });
    const { connection, prefix } = options;
    this.#queue = new Queue(QUEUE_NAMES.inference, { connection, prefix });
    let eventsConnection: ConnectionOptions = connection;
    if (isRedisInstance(connection)) {
      // QueueEvents blocks on XREAD: it needs its own connection, without a per-request retry limit.
      const duplicate = (connection as unknown as { duplicate(override: object): DuplicatedClient }).duplicate({
        maxRetriesPerRequest: null,
      });
      // Its failures reach callers as rejected predictions; unheard, ioredis would print each one.
      duplicate.on('error', () => undefined);
      eventsConnection = duplicate;
      this.#ownedConnection = duplicate;
    }
    this.#events = new QueueEvents(QUEUE_NAMES.inference, { connection: eventsConnection, prefix });
    // Errors also surface as rejected predictions; without a listener an EventEmitter would throw.
    this.#events.on('error', () => undefined);
    this.#queue.on('error', () => undefined);
    // Every waiting request adds a listener (waitUntilFinished): as many as requests in flight.
    this.#events.setMaxListeners(0);
    this.#queue.setMaxListeners(0);
  }

  /** Resolves once the event listener is connected (predictions wait for it anyway). */
  async waitUntilReady(): Promise<void> {
    await Promise.all([this.#queue.waitUntilReady(), this.#events.waitUntilReady()]);
  }

  /** Classifies the request's images on an inference worker; see {@link Predictor.predict}. */
  predict(request: PredictRequest): Promise<PredictResponse> {
    if (this.#closed) return Promise.reject(new AppError('SHUTTING_DOWN', 'the API is shutting down; retry on another instance'));
    const work = this.#predict(request).catch((error: unknown) => {
      throw toAppError(error);
    });
    this.#inFlight.add(work);
    void work.catch(() => undefined).finally(() => this.#inFlight.delete(work));
    return work;
  }

  /** Waits for predictions in flight, then closes the queue and event listener. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    await Promise.allSettled([this.#events.close(), this.#queue.close()]);
    await this.#ownedConnection?.quit().catch(() => undefined);
  }

  async #predict(request: PredictRequest): Promise<PredictResponse> {
    if (request.images.length === 0) throw new AppError('VALIDATION_FAILED', 'the request has no images');
    const resolved = await this.#options.resolveModel(request.model ?? DEFAULT_MODEL_REF);

    const waiting = await redisCall(() => this.#queue.count());
    if (waiting >= this.#options.maxQueue) {
      const seconds = this.#retryAfterSeconds();
      throw new AppError('QUEUE_FULL', `the inference queue is full (${waiting} requests waiting); retry in ${seconds} s`, {
        headers: { 'Retry-After': String(seconds) },
      });
    }

    const started = performance.now();
    const imagePaths = request.images.map(() => path.join(this.#options.uploadsDir, `${randomUUID()}.bin`));
    try {
      await mkdir(this.#options.uploadsDir, { recursive: true, mode: 0o700 });
      await Promise.all(request.images.map((image, i) => writeFile(imagePaths[i] as string, image.data, { mode: 0o600, flag: 'wx' })));
      const job = await redisCall(() =>
        this.#queue.add('predict', { modelId: resolved.id, imagePaths, explain: request.explain }, DEFAULT_JOB_OPTIONS.predict),
      );
      let result: InferenceJobResult;
      try {
        result = await job.waitUntilFinished(this.#events, this.#options.timeoutMs);
      } catch (error) {
        if (isWaitTimeout(error)) {
          // Nobody will read the answer: take the job back if no worker has started it.
          await job.remove().catch(() => undefined);
          throw new AppError('PREDICTION_TIMEOUT', `no inference worker answered within ${this.#options.timeoutMs} ms; retry later`, {
            cause: error,
            // A worker may be restarting: a retry after the timeout itself is a fair first guess.
            headers: { 'Retry-After': String(Math.max(1, Math.ceil(this.#options.timeoutMs / 1000))) },
          });
        }
        // The job failed in the worker with an unexpected error; its message is for the log only.
        throw new AppError('INTERNAL', 'the inference worker failed; it has been logged', { cause: error });
      }
      const response = responseFromJobResult(result, request.images);
      this.#recordRoundTrip((performance.now() - started) / 1000);
      return response;
    } finally {
      await Promise.all(imagePaths.map((file) => rm(file, { force: true }).catch(() => undefined)));
    }
  }

  #recordRoundTrip(seconds: number): void {
    this.#roundTrips.push(seconds);
    if (this.#roundTrips.length > ROUND_TRIP_WINDOW) this.#roundTrips.shift();
  }

  /** About one recent round trip, in whole seconds (at least 1): by then the backlog has moved. */
  #retryAfterSeconds(): number {
    if (this.#roundTrips.length === 0) return 1;
    const mean = this.#roundTrips.reduce((sum, s) => sum + s, 0) / this.#roundTrips.length;
    return Math.max(1, Math.ceil(mean));
  }
}

/** Runs a queue command; a failure means Redis is unreachable (producers fail fast, DESIGN section 4). */
async function redisCall<T>(command: () => Promise<T>): Promise<T> {
  try {
    return await command();
  } catch (error) {
    throw new AppError('REDIS_UNAVAILABLE', 'the job store is unreachable; retry later', { cause: error });
  }
}

/** BullMQ's `waitUntilFinished` rejects with this message when its `ttl` expires (bullmq 5-6). */
function isWaitTimeout(error: unknown): boolean {
  return error instanceof Error && /timed out before finishing/.test(error.message);
}
