/**
 * Experiments as the API sees them: create one (a record on disk, then a BullMQ flow of one `train`
 * job per architecture under a `compare` parent), read it, list them, cancel one, and watch one
 * change (for server-sent events). Reads come from the files alone (see `experiment-view.ts`).
 * @module
 */
import { stat } from 'node:fs/promises';
import type { FlowJob, Job } from 'bullmq';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import { AppError } from '../../infra/errors.ts';
import type { RoomCheck } from '../../infra/storage.ts';
import { compareJobId, DEFAULT_JOB_OPTIONS, QUEUE_NAMES, trainJobId, type CompareJob, type TrainJob } from '../../infra/queues.ts';
import { isRedisConnectionError, redisUnavailable, withRedis } from '../../infra/redis.ts';
import type { Architecture } from '../../ml/models/index.ts';
import { newExperimentId } from './experiment-id.ts';
import type { ExperimentQueues } from './experiment-queues.ts';
import { ExperimentRecords } from './experiment-records.ts';
import { resolveExperimentSettings } from './experiment-settings.ts';
import { isFinalStatus, type ArchitectureProgressRecord, type ExperimentRecord, type ExperimentRequest, type ExperimentSettings, type ExperimentView } from './experiment.types.ts';
import { canonicalHash, IdempotencyKeys } from '../idempotency.ts';
import { buildExperimentView } from './experiment-view.ts';

/** What the service is built from. */
export interface ExperimentServiceDeps {
  store: ArtifactStore;
  /** The flow producer and training queue (with the `QUEUE_PREFIX` they were made with). */
  queues: ExperimentQueues;
  /** Whether a dataset exists. Default: `DATA_DIR/datasets/{id}` is a directory. */
  datasetExists?: (datasetId: string) => Promise<boolean>;
  /** How often {@link ExperimentService.watch} reads the files, ms. Default 500. */
  watchIntervalMs?: number;
  /** Refuses experiments (507) while the data directory is short of space. Default: no check. */
  storage?: RoomCheck;
  /** Clock, for tests. */
  now?: () => Date;
  /**
   * Where `Idempotency-Key`s are kept. Default: Redis through `queues.connection`, under the
   * training queue's prefix (`QUEUE_PREFIX`), 24 h per key.
   */
  idempotency?: IdempotencyKeys;
}

/** Options of {@link ExperimentService.create}. */
export interface CreateExperimentOptions {
  /**
   * The client's `Idempotency-Key` (validated by the route): a repeat of the same request with it
   * within 24 h answers the experiment the first one created and creates nothing.
   */
  idempotencyKey?: string | undefined;
  /** The caller's API key id (null without keys): idempotency keys are scoped by it. */
  callerId?: string | null | undefined;
}

/** Stops a {@link ExperimentService.watch}. */
export type Unsubscribe = () => void;

/** Job states from which a job can be removed without a worker holding it. */
const REMOVABLE_STATES = new Set(['waiting', 'delayed', 'prioritized', 'waiting-children', 'paused']);

/**
 * Creates, reads, lists, cancels and watches experiments.
 * @example
 * const service = new ExperimentService({ store, queues: createExperimentQueues(connection, config.QUEUE_PREFIX) });
 * const { id } = await service.create({ datasetId: 'xrays', architectures: ['cnn'], epochs: 3 });
 * const stop = await service.watch(id, (view) => send(view));
 */
export class ExperimentService {
  readonly #store: ArtifactStore;
  readonly #records: ExperimentRecords;
  readonly #queues: ExperimentQueues;
  readonly #datasetExists: (datasetId: string) => Promise<boolean>;
  readonly #watchIntervalMs: number;
  readonly #now: () => Date;
  readonly #idempotency: IdempotencyKeys;
  readonly #storage: RoomCheck | null;

  constructor(deps: ExperimentServiceDeps) {
    this.#store = deps.store;
    this.#records = new ExperimentRecords(deps.store);
    this.#queues = deps.queues;
    this.#datasetExists = deps.datasetExists ?? ((id) => isDirectory(this.#store.datasetDir(id)));
    this.#watchIntervalMs = deps.watchIntervalMs ?? 500;
    this.#now = deps.now ?? (() => new Date());
    this.#storage = deps.storage ?? null;
    this.#idempotency = deps.idempotency ?? new IdempotencyKeys(deps.queues.connection, deps.queues.trainingQueue.opts.prefix ?? 'bull');
  }

  /**
   * Validates the request, writes `experiments/{id}/experiment.json` (status `queued`), then queues
   * the flow. The record exists before any job does, so the id a 202 names always resolves.
   *
   * With `options.idempotencyKey`, the request is made once per (caller, key): a repeat with the same
   * dataset and settings (compared after defaults are filled in) answers the first one's experiment,
   * as it is now, and creates nothing, also when the repeats arrive concurrently.
   * @throws AppError `EXPERIMENT_INVALID` (listing every problem in `errors`), `DATASET_NOT_FOUND`,
   *   `REDIS_UNAVAILABLE` (then nothing is left behind), `VALIDATION_FAILED` (the key was used with a
   *   different request), `QUEUE_FULL` (a request with the key is still being made; retry).
   */
  async create(request: ExperimentRequest, options: CreateExperimentOptions = {}): Promise<ExperimentView> {
    const { settings, problems } = resolveExperimentSettings(request);
    if (problems.length > 0) {
      throw new AppError('EXPERIMENT_INVALID', `invalid experiment settings: ${problems.join('; ')}`, {
        extensions: { errors: problems.map((message) => ({ ...fieldOf(message), message })) },
      });
    }
    if (typeof request.datasetId !== 'string' || !isSafeId(request.datasetId) || !(await this.#datasetExists(request.datasetId))) {
      throw new AppError('DATASET_NOT_FOUND', `no dataset with id ${JSON.stringify(String(request.datasetId).slice(0, 128))}`);
    }
    // Fail before writing anything when Redis is known to be away.
    if (this.#queues.connection.status !== 'ready' && this.#queues.connection.status !== 'connecting' && this.#queues.connection.status !== 'connect') {
      throw redisUnavailable();
    }
    const datasetId = request.datasetId;
    if (options.idempotencyKey === undefined) return this.#view(await this.#createRecordAndFlow(datasetId, settings));

    const { id } = await this.#idempotency.run(
      { callerId: options.callerId ?? null, key: options.idempotencyKey, bodyHash: canonicalHash({ datasetId, settings }) },
      async () => (await this.#createRecordAndFlow(datasetId, settings)).id,
      async (existing) => (await this.#records.read(existing).catch(() => null)) !== null,
    );
    return this.get(id);
  }

  /** Writes the record, then queues its flow; removes the record again when queueing fails. */
  async #createRecordAndFlow(datasetId: string, settings: ExperimentSettings): Promise<ExperimentRecord> {
    // Here, not before the idempotency check: a repeat of a created experiment is answered anyway.
    await this.#storage?.assertRoom('an experiment');
    const createdAt = this.#now();
    let record: ExperimentRecord | undefined;
    for (let attempt = 0; attempt < 5 && record === undefined; attempt++) {
      const candidate: ExperimentRecord = {
        schemaVersion: 1,
        id: newExperimentId(createdAt),
        datasetId,
        settings,
        status: 'queued',
        createdAt: createdAt.toISOString(),
        compareRuns: 0,
      };
      if (await this.#records.create(candidate)) record = candidate;
    }
    if (record === undefined) throw new AppError('INTERNAL', 'could not choose a free experiment id');

    try {
      await withRedis(this.#queues.connection, () => this.#queues.flowProducer.add(experimentFlow(record.id, settings.architectures)));
    } catch (error) {
      // The client gets a 503 and will retry with a new request: leave no half-made experiment.
      await this.#records.remove(record.id);
      throw error;
    }
    return record;
  }

  /**
   * The experiment's view, from its files.
   * @throws AppError `EXPERIMENT_NOT_FOUND`.
   */
  async get(id: string): Promise<ExperimentView> {
    const record = await this.#records.read(id);
    if (record === null) throw notFound(id);
    return this.#view(record);
  }

  /** Every experiment, newest first. */
  async list(): Promise<ExperimentView[]> {
    const ids = await this.#records.listIds();
    const views: ExperimentView[] = [];
    for (const id of ids) {
      const record = await this.#records.read(id).catch(() => null);
      if (record !== null) views.push(await this.#view(record));
    }
    return views.sort((a, b) => (a.createdAt === b.createdAt ? b.id.localeCompare(a.id) : b.createdAt.localeCompare(a.createdAt)));
  }

  /**
   * Cancels a queued or running experiment: writes the cancel marker (running `train` jobs see it
   * within about a second and stop without retry), marks the record `cancelled`, and removes the
   * jobs no worker holds. Cancelling a cancelled experiment answers its view again.
   *
   * Queue clean-up is best effort: when Redis is away the files already say cancelled, and any job
   * that starts later sees the marker and ends at once.
   * @throws AppError `EXPERIMENT_NOT_FOUND`, `EXPERIMENT_FINISHED` (completed or failed).
   */
  async cancel(id: string): Promise<ExperimentView> {
    const record = await this.#records.read(id);
    if (record === null) throw notFound(id);
    if (record.status === 'completed' || record.status === 'failed') {
      throw new AppError('EXPERIMENT_FINISHED', `experiment ${id} has already ${record.status === 'completed' ? 'completed' : 'failed'}`);
    }
    await this.#records.requestCancel(id);
    const finishedAt = this.#now().toISOString();
    const updated = await this.#records.update(id, (current) =>
      isFinalStatus(current.status) ? null : { ...current, status: 'cancelled', finishedAt },
    );
    if (updated?.status === 'completed' || updated?.status === 'failed') {
      // It finished between our read and the marker: the marker stays harmless, the outcome stands.
      throw new AppError('EXPERIMENT_FINISHED', `experiment ${id} has already ${updated.status}`);
    }
    await this.#removeQueuedJobs(record).catch((error: unknown) => {
      if (!isRedisConnectionError(error) && !(error instanceof AppError && error.code === 'REDIS_UNAVAILABLE')) throw error;
    });
    return this.get(id);
  }

  /**
   * Calls `onChange(view)` with the current view, then whenever it changes, until the returned
   * function is called. It reads the files every `watchIntervalMs` (500 ms by default): polling works
   * across processes and machines sharing `DATA_DIR` (unlike `fs.watch` on network file systems) and
   * needs no Redis connection per watcher; a view costs a few small file reads.
   * @throws AppError `EXPERIMENT_NOT_FOUND` (before any call of `onChange`).
   */
  async watch(id: string, onChange: (view: ExperimentView) => void): Promise<Unsubscribe> {
    const first = await this.get(id);
    let last = JSON.stringify(first);
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async (): Promise<void> => {
      try {
        const view = await this.get(id);
        const text = JSON.stringify(view);
        if (!stopped && text !== last) {
          last = text;
          onChange(view);
        }
      } catch {
        // A file caught mid-replace or a deleted experiment: try again next tick.
      }
      if (!stopped) schedule();
    };
    const schedule = (): void => {
      timer = setTimeout(() => void tick(), this.#watchIntervalMs);
      timer.unref();
    };
    onChange(first);
    schedule();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }

  async #view(record: ExperimentRecord): Promise<ExperimentView> {
    const progress: Partial<Record<Architecture, ArchitectureProgressRecord | null>> = {};
    for (const architecture of record.settings.architectures) {
      progress[architecture] = await this.#records.readProgress(record.id, architecture).catch(() => null);
    }
    return buildExperimentView({ record, progress, cancelRequested: await this.#records.cancelRequested(record.id) });
  }

  /**
   * Removes the flow when no worker holds any of its jobs; otherwise removes the children still
   * waiting, and leaves the running ones to stop at the marker (the parent then fails at once).
   */
  async #removeQueuedJobs(record: ExperimentRecord): Promise<void> {
    const queue = this.#queues.trainingQueue;
    await withRedis(this.#queues.connection, async () => {
      const removedAll = await queue.remove(compareJobId(record.id), { removeChildren: true });
      if (removedAll === 1) return;
      for (const architecture of record.settings.architectures) {
        const job: Job | undefined = await queue.getJob(trainJobId(record.id, architecture));
        if (job === undefined) continue;
        const state = await job.getState();
        if (REMOVABLE_STATES.has(state)) await job.remove().catch(() => {});
      }
    });
  }
}

/** The flow of one experiment: a `compare` parent and one `train` child per architecture. */
export function experimentFlow(experimentId: string, architectures: readonly Architecture[]): FlowJob {
  const compareData: CompareJob['data'] = { experimentId };
  return {
    name: 'compare',
    queueName: QUEUE_NAMES.training,
    data: compareData,
    opts: { ...DEFAULT_JOB_OPTIONS.compare, jobId: compareJobId(experimentId) },
    children: architectures.map((architecture) => {
      const data: TrainJob['data'] = { experimentId, architecture };
      return {
        name: 'train',
        queueName: QUEUE_NAMES.training,
        data,
        // A child's final failure starts the parent at once, which records why the experiment failed
        // (including failures no processor saw, such as a job that stalled too often).
        opts: { ...DEFAULT_JOB_OPTIONS.train, jobId: trainJobId(experimentId, architecture), continueParentOnFailure: true },
      };
    }),
  };
}

function notFound(id: string): AppError {
  return new AppError('EXPERIMENT_NOT_FOUND', `no experiment with id ${JSON.stringify(id.slice(0, 128))}`);
}

const REQUEST_FIELDS = new Set([
  'architectures', 'imageSize', 'channels', 'epochs', 'batchSize', 'learningRate', 'optimizer', 'seed',
  'valFraction', 'testFraction', 'augment', 'classWeights', 'earlyStoppingPatience', 'reduceLrPatience', 'rankBy',
]);

/** The request field a problem sentence is about (`body/epochs`): the first one it names. */
function fieldOf(problem: string): { path?: string } {
  const field = problem.match(/[A-Za-z]+/g)?.find((word) => REQUEST_FIELDS.has(word));
  if (field !== undefined) return { path: `body/${field}` };
  if (/architecture/.test(problem)) return { path: 'body/architectures' };
  return {};
}

async function isDirectory(dir: string): Promise<boolean> {
  try {
    return (await stat(dir)).isDirectory();
  } catch {
    return false;
  }
}
