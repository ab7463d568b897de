/**
 * The three long-running entry points, as functions: `api` (HTTP only; predictions through the
 * inference queue), `worker` (queues only) and `start` (everything in one process tree for a single
 * machine). They wire configuration, infrastructure and shutdown, and nothing else (STYLE rule 3).
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
import { LocalPredictor } from '../serving/predictor.ts';
import { ModelRegistry } from '../services/models/model-registry.ts';
import { createInferenceProcessor } from '../workers/inference.processor.ts';
import { startWorkers } from '../workers/run-workers.ts';
import { installGracefulShutdown } from './graceful-shutdown.ts';
import { startMetricsServer } from './metrics-server.ts';
import { createMetrics } from '../infra/metrics.ts';
import { createApiRuntime, createLocalPredictor, createServiceContext } from './service-context.ts';

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
      { name: 'api', close: () => runtime.close() },
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
  if (queues.includes(QUEUE_NAMES.inference)) {
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
    logger,
  });
  await running.ready();
  const metricsServer = config.WORKER_METRICS_PORT > 0 ? await startMetricsServer(metrics, config.WORKER_METRICS_PORT, config.HOST) : null;
  logger.info({ queues, pid: process.pid, metricsPort: metricsServer?.port ?? null }, 'worker ready');
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
}

/**
 * `fracture-service start`: API, training workers and an in-process predictor in one process (the
 * training itself runs in worker threads), on a Redis it finds or starts.
 */
export async function runStart(config: Config, print: (line: string) => void = (line) => process.stdout.write(`${line}\n`)): Promise<StartSummary> {
  const logger = createLogger({ level: config.LOG_LEVEL, name: 'start' });
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
    workers = startWorkers({ config, queues: [QUEUE_NAMES.training], redisUrl: redis.url, logger });
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
  installGracefulShutdown({
    logger,
    timeoutMs: config.SHUTDOWN_TIMEOUT_MS,
    steps: [
      { name: 'api', close: () => runtime.close() },
      { name: 'workers', close: () => workers.close() },
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
  print('For research use only. Not for use in diagnostic procedures.');
  return summary;
}
