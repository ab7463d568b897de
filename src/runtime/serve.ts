/**
 * The three long-running entry points, as functions: `api` (HTTP only; predictions through the
 * inference queue), `worker` (queues only) and `start` (everything in one process tree for a single
 * machine; with `bootstrap`, also a first model, see `bootstrap.ts`). They wire configuration,
 * infrastructure and shutdown, and nothing else (STYLE rule 3).
 * @module
 */
import { rm } from 'node:fs/promises';
import { ConfigError, type Config } from '../infra/config.ts';
import { parseApiKeys, loadOrCreateStoredKeys, type ApiKey } from '../infra/api-keys.ts';
import { ArtifactStore } from '../infra/artifact-store.ts';
import { createLogger } from '../infra/logger.ts';
import { ALL_QUEUES, QUEUE_NAMES, type QueueName } from '../infra/queues.ts';
import { findOrStartRedis } from '../infra/redis-launcher.ts';
import { initBackend } from '../ml/backend/select-backend.ts';
import { LocalPredictor, type PredictorStatus } from '../serving/predictor.ts';
import { ModelRegistry } from '../services/models/model-registry.ts';
import { createInferenceProcessor } from '../workers/inference.processor.ts';
import { createPredictionProcessor } from '../workers/prediction.processor.ts';
import { startWorkers } from '../workers/run-workers.ts';
import { installGracefulShutdown } from './graceful-shutdown.ts';
import { startMetricsServer } from './metrics-server.ts';
import { createMetrics } from '../infra/metrics.ts';
import { createApiRuntime, createLocalPredictor, createServiceContext } from './service-context.ts';
import { bootstrapFirstModel, type BootstrapOutcome, type BootstrapProgress, type BootstrapSettings } from './bootstrap.ts';
import { pino, type DestinationStream } from 'pino';
import { PREDICTION_NOTICE } from '../serving/types.ts';
import { DEFAULT_ALIAS } from '../services/models/model.types.ts';

/** A listen failure on a taken port, as the configuration error it is. */
function portInUse(error: unknown, config: Config): ConfigError | null {
  if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') return null;
  return new ConfigError([`PORT: ${config.PORT} is in use on ${config.HOST}; stop what listens there or choose another PORT`]);
}

/** Where the API listens, as printed for people. */
function baseUrl(config: Config, port: number): string {
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * `fracture-service api`: the HTTP API. Refuses to start without `API_KEYS`: an API reachable by
 * other machines must not run open.
 */
export async function runApi(config: Config): Promise<void> {
  if (!config.API_KEYS) throw new ConfigError(['API_KEYS: required for `api` (id:secret:scope[+scope], comma-separated); `start` creates a key itself']);
  const keys = parseApiKeys(config.API_KEYS);
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'api' });
  const context = createServiceContext(config, { logger });
  const runtime = await createApiRuntime(context, { keys, mode: 'queue' });
  try {
    await runtime.app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    await runtime.close().catch(() => undefined);
    await context.close().catch(() => undefined);
    throw portInUse(error, config) ?? error;
  }
  installGracefulShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'api', close: () => runtime.close({ drainMs: config.SHUTDOWN_DRAIN_MS }) },
      { name: 'services', close: () => context.close() },
    ],
  });
}

/** `fracture-service worker`: serves `queues` (default both). */
export async function runWorker(config: Config, options: { queues?: readonly QueueName[]; concurrency?: number } = {}): Promise<void> {
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'worker' });
  const queues = options.queues ?? ALL_QUEUES;
  const store = new ArtifactStore(config.DATA_DIR);
  const metrics = createMetrics();
  let predictor: LocalPredictor | undefined;
  if (queues.includes(QUEUE_NAMES.inference) || queues.includes(QUEUE_NAMES.predictions)) {
    await initBackend(config.FRACTURE_BACKEND);
    const registry = new ModelRegistry(store);
    predictor = createLocalPredictor(config, (ref) => registry.resolve(ref), metrics);
    // Warm the serving model before taking jobs; without one yet, the first prediction loads it.
    await predictor.warmUp().catch((error: unknown) => logger.warn({ code: (error as { code?: string }).code }, 'no serving model to warm up yet'));
  }
  const running = startWorkers({
    config,
    queues,
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(predictor ? { inferenceProcessor: createInferenceProcessor(predictor, { uploadsDir: store.uploadsDir }) } : {}),
    ...(predictor ? { predictionProcessor: createPredictionProcessor(predictor, config.DATA_DIR) } : {}),
    logger,
  });
  await running.ready();
  const metricsServer = config.WORKER_METRICS_PORT > 0 ? await startMetricsServer(metrics, config.WORKER_METRICS_PORT, config.HOST) : null;
  logger.info({ queues, pid: process.pid, metricsPort: metricsServer?.port ?? null, ...(predictor ? { engine: predictor.status().engine } : {}) }, 'worker ready');
  installGracefulShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'workers', close: () => running.close() },
      ...(predictor ? [{ name: 'predictor', close: () => (predictor as LocalPredictor).close() }] : []),
      ...(metricsServer ? [{ name: 'metrics', close: () => metricsServer.close() }] : []),
    ],
  });
}

/** What `start` prints once it serves. */
export interface StartSummary {
  url: string;
  redis: { url: string; source: string };
  /** The admin key, only when this start created it. */
  createdAdminKey?: string;
  keysFrom: 'API_KEYS' | 'stored';
  /** With `bootstrap`: how training the first model went. */
  bootstrap?: BootstrapOutcome;
}

/** Options of {@link runStart}. */
export interface StartOptions {
  /** Prints one line for people. Default: to stdout. */
  print?: (line: string) => void;
  /**
   * Train a first model when no model holds `production` (`start --bootstrap`, what `npm start`
   * runs), then print the closing summary. Default: do not.
   */
  bootstrap?: BootstrapSettings;
  /** The progress display of the bootstrap experiment. Default: none (only the bootstrap's own lines). */
  createProgress?: () => BootstrapProgress;
}

/**
 * Log lines go to stdout, or above the progress display while one is shown (a JSON line written
 * straight to the terminal would tear the progress bars apart).
 */
function switchableLogDestination(): { destination: DestinationStream; divert(to: ((line: string) => void) | null): void } {
  const stdout = pino.destination({ dest: 1, sync: true });
  let diverted: ((line: string) => void) | null = null;
  return {
    destination: { write: (line: string) => (diverted ? diverted(line.replace(/\n$/, '')) : stdout.write(line)) },
    divert: (to) => {
      diverted = to;
    },
  };
}

/** A progress display that diverts the log lines to itself while it is shown. */
function divertingLogs(create: () => BootstrapProgress, divert: (to: ((line: string) => void) | null) => void): () => BootstrapProgress {
  return () => {
    const view = create();
    divert((line) => view.log(line));
    return {
      update: (experiment) => view.update(experiment),
      log: (line) => view.log(line),
      stop: () => {
        divert(null);
        view.stop();
      },
    };
  };
}

/** No progress display: only the lines the bootstrap prints itself (for callers that give none). */
function silentProgress(print: (line: string) => void): BootstrapProgress {
  return { update() {}, log: print, stop() {} };
}

/**
 * `fracture-service start`: API, training workers and an in-process predictor in one process (the
 * training itself runs in worker threads), on a Redis it finds or starts. With `bootstrap`, it also
 * trains a first model when none holds `production` (see `bootstrap.ts`) and ends with a summary:
 * the page, the API docs, the admin key (when this start created it), the model that serves, and a
 * `Ready:` line. Resolves once all of that is done; the process then keeps serving until a signal.
 */
export async function runStart(config: Config, options: StartOptions = {}): Promise<StartSummary> {
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const logs = switchableLogDestination();
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'start', destination: logs.destination });
  const store = new ArtifactStore(config.DATA_DIR);
  const redis = await findOrStartRedis({ configuredUrl: config.REDIS_URL, dataDir: store.redisDir });
  let keys: ApiKey[];
  let createdAdminKey: string | undefined;
  if (config.API_KEYS) {
    keys = parseApiKeys(config.API_KEYS);
  } else {
    const stored = await loadOrCreateStoredKeys(store.apiKeysFile);
    keys = [...stored.keys];
    createdAdminKey = stored.createdSecret;
  }
  // Until the API listens, a failure must undo what this start made: a key nobody saw would
  // lock the operator out (the next start finds it "created earlier"), and a Redis it launched
  // would outlive it.
  const started: { close: () => Promise<void> }[] = [];
  let address: string;
  let runtime: Awaited<ReturnType<typeof createApiRuntime>>;
  let workers: ReturnType<typeof startWorkers>;
  let context: ReturnType<typeof createServiceContext>;
  try {
    context = createServiceContext(config, { logger, redisUrl: redis.url });
    started.push(context);
    runtime = await createApiRuntime(context, { keys, mode: 'in-process' });
    started.unshift(runtime);
    // Asynchronous predictions run here too, through the same predictor (and batcher) as /v1/predict.
    workers = startWorkers({
      config,
      queues: [QUEUE_NAMES.training, QUEUE_NAMES.predictions],
      predictionProcessor: createPredictionProcessor(runtime.predictor, config.DATA_DIR),
      redisUrl: redis.url,
      logger,
    });
    started.unshift(workers);
    await workers.ready();
    if (runtime.predictor instanceof LocalPredictor) await runtime.predictor.warmUp().catch(() => undefined);
    address = await runtime.app.listen({ port: config.PORT, host: config.HOST });
  } catch (error) {
    for (const part of started) await part.close().catch(() => undefined);
    if (createdAdminKey) await rm(store.apiKeysFile, { force: true });
    await redis.stop();
    throw portInUse(error, config) ?? error;
  }
  const port = Number(new URL(address).port);
  // Stopping while the first model trains: stop showing it, and hand its jobs back to the queue at
  // once (a person pressed Ctrl+C; the next start resumes them from their last epoch).
  const bootstrapping = new AbortController();
  let training = false;
  let stoppedWhileTraining = false;
  installGracefulShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      {
        name: 'bootstrap',
        close: async () => {
          stoppedWhileTraining = training;
          bootstrapping.abort();
          // The progress display stops on the abort (a few promise turns later): print below it.
          await new Promise((resolve) => setImmediate(resolve));
          if (stoppedWhileTraining) print('Stopping: the training goes back to the queue and resumes from its last epoch on the next start.');
        },
      },
      { name: 'api', close: () => runtime.close({ drainMs: config.SHUTDOWN_DRAIN_MS }) },
      { name: 'workers', close: () => workers.close(stoppedWhileTraining ? { handBackAfterMs: 0 } : {}) },
      { name: 'services', close: () => context.close() },
      { name: 'redis', close: () => redis.stop() },
    ],
  });
  const summary: StartSummary = {
    url: baseUrl(config, port),
    redis: { url: redis.url, source: redis.source },
    ...(createdAdminKey ? { createdAdminKey } : {}),
    keysFrom: config.API_KEYS ? 'API_KEYS' : 'stored',
  };
  print(`fracture-service is serving at ${summary.url} (API docs: ${summary.url}/docs)`);
  print(`Redis: ${redis.url} (${redis.source === 'started' ? `started here, data in ${store.redisDir}` : `found via ${redis.source}`})`);
  if (createdAdminKey) {
    print(`Admin API key (shown once; its hash is stored in ${store.apiKeysFile}):`);
    print(`  ${createdAdminKey}`);
  } else if (!config.API_KEYS) {
    print(`API keys: the admin key created earlier (hash in ${store.apiKeysFile}; delete that file to create a new one)`);
  }
  print(PREDICTION_NOTICE);
  if (options.bootstrap === undefined) return summary;

  const predictor = runtime.predictor;
  // `start` predicts in-process (createApiRuntime's 'in-process' mode).
  if (!(predictor instanceof LocalPredictor)) throw new Error('start must serve predictions in-process');
  print('');
  training = true;
  const outcome = await bootstrapFirstModel(
    {
      context,
      warmUp: () => predictor.warmUp(),
      print,
      createProgress: divertingLogs(options.createProgress ?? (() => silentProgress(print)), logs.divert),
      baseUrl: summary.url,
      signal: bootstrapping.signal,
    },
    options.bootstrap,
  ).finally(() => {
    training = false;
  });
  summary.bootstrap = outcome;
  if (outcome.status === 'stopped') return summary;
  printClosing(print, summary, store.apiKeysFile, predictor.status(), outcome);
  return summary;
}

/** The summary `start --bootstrap` ends with: where to go, with which key, and what serves. */
function printClosing(
  print: (line: string) => void,
  summary: StartSummary,
  apiKeysFile: string,
  serving: PredictorStatus,
  outcome: BootstrapOutcome,
): void {
  print('');
  print(`Page:      ${summary.url}/`);
  print(`API docs:  ${summary.url}/docs`);
  if (summary.createdAdminKey) {
    print(`Admin API key (created by this start; only its hash is kept, in ${apiKeysFile}):`);
    print(`  ${summary.createdAdminKey}`);
  } else if (summary.keysFrom === 'stored') {
    print(`API key:   the admin key printed by the first start (its hash is in ${apiKeysFile}; delete that file and restart for a new one)`);
  } else {
    print('API keys:  from API_KEYS');
  }
  const model = serving.ready ? serving.model : undefined;
  if (model) {
    print(`Model:     ${model.id} (${model.architecture}, version ${model.version}) serves as ${DEFAULT_ALIAS}`);
    print(`Engine:    ${serving.engine}${serving.engineReason === undefined ? '' : ` (${serving.engineReason})`}`);
  } else {
    const why = outcome.status === 'failed' ? `the first model could not be trained (${outcome.error.code}: ${outcome.error.detail})` : (serving.detail ?? 'no model serves yet');
    print(`Model:     none; ${why}. The page and the API still work: start an experiment there.`);
  }
  print(PREDICTION_NOTICE);
  print(`Ready: ${summary.url}/ ${model ? `predicts with ${model.id}` : 'serves the page and the API (no model yet)'}. Press Ctrl+C to stop.`);
}
