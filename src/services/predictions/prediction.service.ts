/**
 * Asynchronous predictions (`POST /v1/predictions`, `GET /v1/predictions/{id}`): for a PACS export of
 * a whole study, or a client that must not hold a connection open. A prediction is created at once
 * (202): its images are checked to be JPEG or PNG, its model reference is resolved to a concrete
 * model, the record and the images are written under `DATA_DIR/predictions/{id}/`, and one
 * `prediction` job is queued on the `predictions` queue (job id = prediction id). A worker runs it
 * through its predictor (the same batcher as `/v1/predict`) and writes the result into the record;
 * the images are deleted then. Records are kept for `PREDICTION_RETENTION_MS` (default 24 h).
 *
 * With an `Idempotency-Key`, 20 concurrent identical requests create one prediction and one job, and
 * all get its id. Only the API key that created a prediction (or an admin key) can read it.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Queue } from 'bullmq';
import { AppError } from '../../infra/errors.ts';
import { DEFAULT_JOB_OPTIONS, type PredictionJob } from '../../infra/queues.ts';
import { redisUnavailable, withRedis, type RedisConnection } from '../../infra/redis.ts';
import type { RoomCheck } from '../../infra/storage.ts';
import { imageTypeOf } from '../../serving/image-input.ts';
import { DEFAULT_MODEL_REF, type ModelResolver, type PredictRequest } from '../../serving/types.ts';
import { canonicalHash, IdempotencyKeys } from '../idempotency.ts';
import { newPredictionId, PredictionRecords } from './prediction-records.ts';
import { predictionView, type PredictionRecord, type PredictionView } from './prediction.types.ts';
import type { ArtifactStore } from '../../infra/artifact-store.ts';

export interface PredictionServiceDeps {
  store: ArtifactStore;
  /** The `predictions` queue, on a producer connection. */
  queue: Queue<PredictionJob['data'], unknown, PredictionJob['name']>;
  /** The producer connection of `queue` (checked before each Redis call). */
  connection: RedisConnection;
  resolveModel: ModelResolver;
  /** Predictions waiting for a worker beyond which creating one answers `QUEUE_FULL` (`PREDICTION_MAX_PENDING`). */
  maxPending: number;
  /** How long a prediction's record is kept, ms (`PREDICTION_RETENTION_MS`). */
  retentionMs: number;
  /** Refuses predictions (507) while the data directory is short of space. Default: no check. */
  storage?: RoomCheck;
  /** Default: Redis through `connection`, under the queue's prefix, namespace `idempotency:predictions`. */
  idempotency?: IdempotencyKeys;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Options of {@link PredictionService.create}. */
export interface CreatePredictionOptions {
  /** The caller's API key id (null without keys): it owns the prediction, and scopes the idempotency key. */
  callerId?: string | null | undefined;
  idempotencyKey?: string | undefined;
}

/** Who is reading: the owner, or an admin key, sees a prediction; anyone else gets 404. */
export interface PredictionReader {
  callerId: string | null;
  admin: boolean;
}

/** How often old records are looked for, at most, ms. */
const SWEEP_INTERVAL_MS = 60_000;

/** Creates and reads asynchronous predictions. */
export class PredictionService {
  readonly #deps: PredictionServiceDeps;
  readonly #records: PredictionRecords;
  readonly #idempotency: IdempotencyKeys;
  readonly #now: () => Date;
  #lastSweep = 0;

  constructor(deps: PredictionServiceDeps) {
    this.#deps = deps;
    this.#records = new PredictionRecords(deps.store);
    this.#now = deps.now ?? (() => new Date());
    this.#idempotency = deps.idempotency ?? new IdempotencyKeys(deps.connection, deps.queue.opts.prefix ?? 'bull', { namespace: 'idempotency:predictions' });
  }

  /**
   * Queues a prediction of `request`'s images and answers its view (status `queued`).
   * @throws AppError `VALIDATION_FAILED` (no image), `IMAGE_TYPE_UNSUPPORTED`, `MODEL_NOT_FOUND`,
   *   `QUEUE_FULL` (with `Retry-After`), `INSUFFICIENT_STORAGE`, `REDIS_UNAVAILABLE` (nothing is left
   *   behind), `IDEMPOTENCY_KEY_REUSED`, `IDEMPOTENCY_KEY_IN_USE`.
   */
  async create(request: PredictRequest, options: CreatePredictionOptions = {}): Promise<PredictionView> {
    if (request.images.length === 0) throw new AppError('VALIDATION_FAILED', 'no image in the request: send at least one');
    request.images.forEach((image, index) => imageTypeOf({ index, data: image.data }));
    const model = await this.#deps.resolveModel(request.model ?? DEFAULT_MODEL_REF);
    const callerId = options.callerId ?? null;
    const record = (): PredictionRecord => ({
      schemaVersion: 1,
      id: newPredictionId(this.#now()),
      status: 'queued',
      ownerKeyId: callerId,
      model: { id: model.id, architecture: model.architecture, version: model.version },
      explain: request.explain,
      imageIds: request.images.map((image) => image.id),
      createdAt: this.#now().toISOString(),
    });
    this.#sweepSometimes();
    if (options.idempotencyKey === undefined) return predictionView(await this.#createRecordAndJob(record(), request));
    const { id } = await this.#idempotency.run(
      { callerId, key: options.idempotencyKey, bodyHash: requestHash(request, model.id) },
      async () => (await this.#createRecordAndJob(record(), request)).id,
      async (existing) => (await this.#records.read(existing).catch(() => null)) !== null,
    );
    return this.get(id, { callerId, admin: false });
  }

  /**
   * The prediction `id` as `reader` may see it.
   * @throws AppError `PREDICTION_NOT_FOUND` (unknown, expired, or another key's)
   */
  async get(id: string, reader: PredictionReader): Promise<PredictionView> {
    const record = await this.#records.read(id);
    if (record === null || (!reader.admin && record.ownerKeyId !== reader.callerId)) throw notFound(id);
    return predictionView(record);
  }

  /** Job counts of the `predictions` queue by state (for `/metrics`). */
  jobCounts(): Promise<Record<string, number>> {
    return this.#deps.queue.getJobCounts();
  }

  /** Deletes predictions created more than the retention ago; resolves to how many. */
  async sweep(): Promise<number> {
    const cutoff = this.#now().getTime() - this.#deps.retentionMs;
    let removed = 0;
    for (const id of await this.#records.listIds()) {
      const record = await this.#records.read(id).catch(() => null);
      if (record !== null && Date.parse(record.createdAt) >= cutoff) continue;
      await this.#records.remove(id);
      removed += 1;
    }
    return removed;
  }

  #sweepSometimes(): void {
    const now = Date.now();
    if (now - this.#lastSweep < SWEEP_INTERVAL_MS) return;
    this.#lastSweep = now;
    void this.sweep().catch(() => undefined);
  }

  /** Checks room and backlog, writes the record and images, then queues the job (or removes them again). */
  async #createRecordAndJob(record: PredictionRecord, request: PredictRequest): Promise<PredictionRecord> {
    await this.#deps.storage?.assertRoom('a prediction');
    const { queue, connection, maxPending } = this.#deps;
    const waiting = await withRedis(connection, () => queue.count());
    if (waiting >= maxPending) {
      throw new AppError('QUEUE_FULL', `${waiting} predictions are waiting for a worker; retry later`, { headers: { 'Retry-After': '30' } });
    }
    await this.#records.create(record, request.images.map((image) => image.data));
    try {
      await withRedis(connection, () => queue.add('prediction', { predictionId: record.id }, { ...DEFAULT_JOB_OPTIONS.prediction, jobId: record.id }));
    } catch (error) {
      // Unqueued, the prediction would wait for ever: it was never accepted.
      await this.#records.remove(record.id).catch(() => undefined);
      throw error instanceof AppError ? error : redisUnavailable(error);
    }
    return record;
  }
}

/** The request as an idempotency key must repeat it: the images' digests, their ids, the model, explain. */
function requestHash(request: PredictRequest, modelId: string): string {
  return canonicalHash({
    modelId,
    explain: request.explain,
    images: request.images.map((image) => ({ id: image.id, sha256: createHash('sha256').update(image.data).digest('hex') })),
  });
}

function notFound(id: string): AppError {
  return new AppError('PREDICTION_NOT_FOUND', `no prediction with id ${JSON.stringify(id.slice(0, 128))} (predictions are kept for a limited time)`);
}
