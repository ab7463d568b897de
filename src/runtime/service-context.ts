/**
 * Wiring shared by the entry points: from a `Config`, the artifact store, the producer Redis
 * connection, the services, the metrics and the audit log — and the API built on them with one of
 * the two predictors (in-process for `start`, through the inference queue for `api`). Entry points
 * add listening, workers and shutdown; tests build the same context on a temporary data directory.
 * @module
 */
import { Queue, QueueEvents } from 'bullmq';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { buildApp } from '../api/app.ts';
import { registerWebPage } from '../web/web.plugin.ts';
import type { ApiKey } from '../infra/api-keys.ts';
import { ArtifactStore } from '../infra/artifact-store.ts';
import { AuditLog } from '../infra/audit-log.ts';
import { DEFAULT_REDIS_URL, type Config } from '../infra/config.ts';
import { withoutServerPaths } from '../infra/errors.ts';
import { createMetrics, type Metrics } from '../infra/metrics.ts';
import { QUEUE_NAMES, type PredictionJob } from '../infra/queues.ts';
import { StorageGuard } from '../infra/storage.ts';
import { closeConnection, createProducerConnection, createWorkerConnection, type RedisConnection } from '../infra/redis.ts';
import { initBackend, type BackendInfo } from '../ml/backend/select-backend.ts';
import { DatasetService, datasetLimitsFromConfig } from '../services/datasets/index.ts';
import { createExperimentQueues, type ExperimentQueues } from '../services/experiments/experiment-queues.ts';
import { ExperimentService } from '../services/experiments/experiment.service.ts';
import { ModelRegistry } from '../services/models/model-registry.ts';
import { PredictionService } from '../services/predictions/prediction.service.ts';
import { DEFAULT_ALIAS } from '../services/models/model.types.ts';
import { ReadinessService, type CheckResult, type ModelCheckResult } from '../services/readiness/readiness.service.ts';
import { ReportService } from '../services/reports/report.service.ts';
import { LocalPredictor } from '../serving/predictor.ts';
import { QueuePredictor } from '../serving/queue-predictor.ts';
import { EngineSelector } from '../serving/engine-selector.ts';
import type { ModelResolver } from '../serving/types.ts';
import path from 'node:path';

/** The services of one process and how to close them. */
export interface ServiceContext {
  config: Config;
  logger: Logger;
  redisUrl: string;
  store: ArtifactStore;
  redis: RedisConnection;
  queues: ExperimentQueues;
  datasets: DatasetService;
  experiments: ExperimentService;
  models: ModelRegistry;
  predictions: PredictionService;
  reports: ReportService;
  metrics: Metrics;
  audit: AuditLog;
  close(): Promise<void>;
}

/** Builds the services of one process. Nothing listens and no worker starts here. */
export function createServiceContext(config: Config, options: { logger: Logger; redisUrl?: string }): ServiceContext {
  const redisUrl = options.redisUrl ?? config.REDIS_URL ?? DEFAULT_REDIS_URL;
  const store = new ArtifactStore(config.DATA_DIR);
  const storage = new StorageGuard(store.root, config.DATA_DIR_MIN_FREE_BYTES);
  const redis = createProducerConnection(redisUrl);
  const queues = createExperimentQueues(redis, config.QUEUE_PREFIX);
  const experiments = new ExperimentService({ store, queues, storage });
  const models = new ModelRegistry(store);
  const predictionsQueue = new Queue<PredictionJob['data'], unknown, PredictionJob['name']>(QUEUE_NAMES.predictions, { connection: redis, prefix: config.QUEUE_PREFIX });
  // Connection errors reach callers as REDIS_UNAVAILABLE; unheard, each failed reconnect would be printed.
  predictionsQueue.on('error', () => {});
  const predictions = new PredictionService({
    store,
    queue: predictionsQueue,
    connection: redis,
    resolveModel: (ref) => models.resolve(ref),
    maxPending: config.PREDICTION_MAX_PENDING,
    retentionMs: config.PREDICTION_RETENTION_MS,
    storage,
  });
  const metrics = createMetrics();
  metrics.setQueueCounter(async () => ({
    [QUEUE_NAMES.training]: await queues.trainingQueue.getJobCounts(),
    [QUEUE_NAMES.predictions]: await predictionsQueue.getJobCounts(),
  }));
  metrics.setFreeSpaceReader(() => storage.freeBytes());
  const audit = new AuditLog(path.join(store.auditDir, 'predictions.jsonl'));
  return {
    config,
    logger: options.logger,
    redisUrl,
    store,
    redis,
    queues,
    datasets: new DatasetService(store, datasetLimitsFromConfig(config), { storage }),
    experiments,
    models,
    predictions,
    reports: new ReportService(store, async (id) => {
      try {
        const experiment = await experiments.get(id);
        return { datasetId: experiment.datasetId, status: experiment.status };
      } catch {
        return null;
      }
    }),
    metrics,
    audit,
    close: async () => {
      metrics.setQueueCounter(null);
      metrics.setFreeSpaceReader(null);
      await audit.close();
      await queues.close();
      await predictionsQueue.close();
      await closeConnection(redis);
    },
  };
}

/** The engine choice `INFERENCE_ENGINE` and `ONNX_INTRA_OP_THREADS` configure. */
export function engineSelectorFor(config: Config): EngineSelector {
  return new EngineSelector({
    mode: config.INFERENCE_ENGINE,
    ...(config.ONNX_INTRA_OP_THREADS > 0 ? { intraOpNumThreads: config.ONNX_INTRA_OP_THREADS } : {}),
  });
}

/**
 * The in-process predictor with the configured engine (`INFERENCE_ENGINE`, chosen per model),
 * batching and model cache, feeding the batch metrics (used by `start` and by inference workers).
 */
export function createLocalPredictor(config: Config, resolveModel: ModelResolver, metrics: Metrics): LocalPredictor {
  return new LocalPredictor({
    resolveModel,
    engine: engineSelectorFor(config),
    maxBatchSize: config.PREDICT_MAX_BATCH_SIZE,
    maxDelayMs: config.PREDICT_MAX_DELAY_MS,
    maxQueue: config.PREDICT_MAX_QUEUE,
    maxModels: config.MODEL_CACHE_SIZE,
    maxPixels: config.IMAGE_MAX_PIXELS,
    onBatch: (size, seconds) => {
      metrics.predictBatchSize.observe(size);
      metrics.predictBatchDuration.observe(seconds);
    },
  });
}

/** How `/v1/predict` runs. */
export type PredictionMode = 'in-process' | 'queue';

/** The API of a context, with its predictor and readiness. */
export interface ApiRuntime {
  app: FastifyInstance;
  readiness: ReadinessService;
  /** In-process mode: the predictor (for warm-up after a model is promoted). */
  predictor: LocalPredictor | QueuePredictor;
  backend: BackendInfo | null;
  /**
   * Drains (new requests get 503 while those in flight finish, for at least `drainMs`; see the drain
   * plugin), then closes the listener, the predictor and the connections.
   */
  close(options?: { drainMs?: number }): Promise<void>;
}

/**
 * Share of the grace period (`SHUTDOWN_TIMEOUT_MS`) that requests in flight get to finish at
 * shutdown; the rest is for the workers' own shutdown (`start`) and closing connections.
 */
const DRAIN_SHARE_OF_GRACE = 0.4;

/** Longest a rate-limit counter update may wait for Redis before the request goes on unlimited, ms. */
const RATE_LIMIT_COMMAND_TIMEOUT_MS = 250;

async function redisCheck(redis: RedisConnection): Promise<CheckResult> {
  const answer = await redis.ping();
  return answer === 'PONG' ? { ok: true } : { ok: false, detail: `unexpected answer ${answer}` };
}

/**
 * Feeds the training gauges of `/metrics` from the workers' progress events. The job id is
 * `${experimentId}.${architecture}` (src/infra/queues.ts); the payload is the progress record.
 */
function followTrainingProgress(context: ServiceContext): { close(): Promise<void> } {
  // QueueEvents blocks on a stream read: it needs a connection of its own that retries forever.
  const connection = createWorkerConnection(context.redisUrl);
  const events = new QueueEvents(QUEUE_NAMES.training, { connection, prefix: context.config.QUEUE_PREFIX });
  events.on('error', () => {});
  const labelsOf = (jobId: string, architecture: string) => ({ experiment: jobId.slice(0, -(architecture.length + 1)), architecture });
  events.on('progress', ({ jobId, data }) => {
    const progress = data as { architecture?: string; progress?: number; epoch?: number };
    if (typeof progress.architecture !== 'string' || !jobId.endsWith(`.${progress.architecture}`)) return;
    context.metrics.setTrainingProgress(labelsOf(jobId, progress.architecture), progress.progress ?? 0, progress.epoch ?? 0);
  });
  const finished = ({ jobId }: { jobId: string }): void => {
    const architecture = jobId.split('.').at(-1);
    if (architecture && jobId.includes('.')) context.metrics.removeTraining(labelsOf(jobId, architecture));
  };
  events.on('completed', finished);
  events.on('failed', finished);
  return {
    close: async () => {
      await events.close();
      await closeConnection(connection);
    },
  };
}

/**
 * Builds the API on `context`. In-process mode loads the tfjs backend here and serves the
 * `production` model from this process; queue mode sends predictions to inference workers.
 */
export async function createApiRuntime(context: ServiceContext, options: { keys: readonly ApiKey[]; mode: PredictionMode }): Promise<ApiRuntime> {
  const { config, models, metrics } = context;
  const resolveModel = (ref: string) => models.resolve(ref);
  let predictor: LocalPredictor | QueuePredictor;
  let backend: BackendInfo | null = null;
  let backendCheck: () => Promise<CheckResult>;
  let modelCheck: () => Promise<ModelCheckResult>;
  const closers: (() => Promise<void>)[] = [];
  if (options.mode === 'in-process') {
    backend = await initBackend(config.FRACTURE_BACKEND);
    const local = createLocalPredictor(config, resolveModel, metrics);
    predictor = local;
    const loadedBackend = backend;
    backendCheck = async () => ({ ok: true, detail: loadedBackend.name });
    modelCheck = async () => {
      let status = local.status();
      // A model promoted since start-up (e.g. by the first experiment) is loaded on the first check.
      if (!status.ready) {
        await local.warmUp().catch(() => undefined);
        status = local.status();
      }
      return status.ready && status.model
        ? {
            ok: true,
            detail: `${status.model.id} (${status.model.architecture}, version ${status.model.version})`,
            engine: status.engine,
            ...(status.engineReason === undefined ? {} : { engineReason: status.engineReason }),
          }
        : { ok: false, detail: status.detail ?? 'no serving model' };
    };
  } else {
    const remote = new QueuePredictor({
      connection: context.redis,
      prefix: config.QUEUE_PREFIX,
      uploadsDir: context.store.uploadsDir,
      resolveModel,
      timeoutMs: config.PREDICT_TIMEOUT_MS,
      maxQueue: config.PREDICT_MAX_QUEUE,
    });
    predictor = remote;
    // The API runs no model in this mode: the backend that matters is on the inference workers.
    const inferenceQueue = new Queue(QUEUE_NAMES.inference, { connection: context.redis, prefix: config.QUEUE_PREFIX });
    inferenceQueue.on('error', () => {});
    closers.push(() => inferenceQueue.close());
    metrics.setQueueCounter(async () => ({
      [QUEUE_NAMES.training]: await context.queues.trainingQueue.getJobCounts(),
      [QUEUE_NAMES.inference]: await inferenceQueue.getJobCounts(),
      [QUEUE_NAMES.predictions]: await context.predictions.jobCounts(),
    }));
    const inferenceWorkers = async (): Promise<CheckResult> => {
      const workers = await inferenceQueue.getWorkersCount();
      return workers > 0 ? { ok: true, detail: `${workers} inference worker(s) connected` } : { ok: false, detail: 'no inference worker is connected' };
    };
    backendCheck = inferenceWorkers;
    // Hashing every file of a large model takes longer than a probe may: verify each model version
    // once (a verification that outlives a probe's timeout still completes and counts).
    let verified: string | null = null;
    // The workers load the model; with the same INFERENCE_ENGINE they make the choice made here.
    const selector = engineSelectorFor(config);
    modelCheck = async () => {
      const model = await models.resolve(DEFAULT_ALIAS);
      const key = `${model.id}@${model.version}`;
      if (verified !== key) {
        await models.verify(model.id);
        verified = key;
      }
      const choice = await selector.choose(model.dir);
      return {
        ok: true,
        detail: `${model.id} (${model.architecture}, version ${model.version})`,
        engine: choice.engine,
        ...(choice.reason === undefined ? {} : { engineReason: withoutServerPaths(choice.reason) }),
      };
    };
  }
  const readiness = new ReadinessService({ redis: () => redisCheck(context.redis), backend: backendCheck, model: modelCheck });
  // Rate-limit counters get a connection of their own with a short command timeout: the limiter runs
  // on every authenticated request and skips itself on errors, so a hung Redis must cost each request
  // a quarter of a second at most, not the producer connection's 5 s command timeout.
  const rateLimitRedis = createProducerConnection(context.redisUrl, { commandTimeoutMs: RATE_LIMIT_COMMAND_TIMEOUT_MS, connectionName: `${config.QUEUE_PREFIX}:rate-limit` });
  closers.push(() => closeConnection(rateLimitRedis));
  // The audit log's reserve is written while there is room, not at the first prediction.
  await context.audit.prepare().catch((error: unknown) => context.logger.error({ err: error }, 'the audit log could not be opened'));
  const trainingEvents = followTrainingProgress(context);
  const app = await buildApp({
    config,
    logger: context.logger,
    keys: options.keys,
    metrics,
    audit: context.audit,
    readiness,
    datasets: context.datasets,
    experiments: context.experiments,
    reports: context.reports,
    models: context.models,
    predictor,
    predictions: context.predictions,
    rateLimitRedis,
    extraRoutes: registerWebPage,
  });
  return {
    app,
    readiness,
    predictor,
    backend,
    close: async (closeOptions = {}) => {
      readiness.startDraining();
      await app.drain({ minimumMs: closeOptions.drainMs ?? 0, timeoutMs: Math.floor(config.SHUTDOWN_TIMEOUT_MS * DRAIN_SHARE_OF_GRACE) });
      await app.close();
      await predictor.close();
      await trainingEvents.close();
      for (const close of closers) await close();
    },
  };
}
