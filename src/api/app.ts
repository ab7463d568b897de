/**
 * The API as a Fastify instance, built from its dependencies and never listening (STYLE rule 3):
 * tests call `inject`, and the entry points (`api`, `start`) listen and shut down.
 *
 * Order matters: logging and errors first, then auth (identifies the key on every request), rate
 * limits (per key, so after auth), metrics, body parsers, `/docs`, and the spec's operations last.
 * @module
 */
import type { Readable } from 'node:stream';
import fastifyAccepts from '@fastify/accepts';
import fastifyMultipart from '@fastify/multipart';
import { fastifySSE as fastifySse } from '@fastify/sse';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { ApiKey } from '../infra/api-keys.ts';
import type { Config } from '../infra/config.ts';
import { fastifyLoggerOptions } from '../infra/logger.ts';
import type { Metrics } from '../infra/metrics.ts';
import { registerOperations } from './openapi/register-operations.ts';
import { loadSpec } from './openapi/spec.ts';
import { authPlugin } from './plugins/auth.plugin.ts';
import { bodyTimeoutPlugin } from './plugins/body-timeout.plugin.ts';
import { drainPlugin } from './plugins/drain.plugin.ts';
import { metricsPlugin } from './plugins/metrics.plugin.ts';
import { rateLimitPlugin } from './plugins/rate-limit.plugin.ts';
import type { DatasetsPort, ExperimentsPort, ModelsPort, PredictionsPort, PredictorPort, ReadinessPort, ReportsPort } from './ports.ts';
import { installProblemHandler } from './problem-handler.ts';
import { datasetHandlers } from './routes/datasets.routes.ts';
import { experimentHandlers } from './routes/experiments.routes.ts';
import { healthHandlers } from './routes/health.routes.ts';
import { modelHandlers } from './routes/models.routes.ts';
import { predictHandlers, type AuditPort } from './routes/predict.routes.ts';
import { reportHandlers } from './routes/reports.routes.ts';

/** Everything the API needs, built by the entry point (or a test). */
export interface AppDependencies {
  config: Config;
  logger: Logger;
  keys: readonly ApiKey[];
  metrics: Metrics;
  audit: AuditPort;
  readiness: ReadinessPort;
  datasets: DatasetsPort;
  experiments: ExperimentsPort;
  reports: ReportsPort;
  models: ModelsPort;
  predictor: PredictorPort;
  predictions: PredictionsPort;
  /**
   * Redis (an ioredis client) for the rate-limit counters, so every API process shares one budget per
   * key; absent, each process counts alone (tests, or a single process).
   */
  rateLimitRedis?: unknown;
  /** Extra plugins registered last (the web page of issue 4). */
  extraRoutes?: (app: FastifyInstance) => Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Each registered route with the operation it implements (undefined for /docs and plugins' own routes). */
    routeTable: readonly { method: string; url: string; operationId: string | undefined }[];
  }
}

/** Media types of a raw dataset upload; the body reaches the handler as a stream. */
const ZIP_MEDIA_TYPES = ['application/zip', 'application/x-zip-compressed'];

/** The operations that take large bodies, and how long each body may take to arrive (ms). */
const UPLOAD_DEADLINES: Readonly<Record<string, (config: Config) => number>> = Object.freeze({
  predict: (config) => config.PREDICT_UPLOAD_TIMEOUT_MS,
  createDataset: (config) => config.DATASET_UPLOAD_TIMEOUT_MS,
});

/** An Ajv instance for request validation (draft-07, the subset openapi.yaml keeps to). */
function schemaValidator(coerceTypes: boolean): Ajv {
  const ajv = new Ajv({ removeAdditional: false, useDefaults: true, allErrors: true, strict: false, coerceTypes: coerceTypes ? 'array' : false });
  addFormats.default(ajv);
  return ajv;
}

/** Builds the API. The caller owns the returned instance: `close()` it when done. */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config } = deps;
  const app = Fastify({
    ...fastifyLoggerOptions(deps.logger),
    // Request ids in logs and problem documents; a client's own X-Request-Id is not trusted.
    genReqId: () => crypto.randomUUID(),
    // Requests that arrive during a graceful shutdown are answered by the drain plugin (a problem
    // document with a code and Retry-After) rather than Fastify's fixed 503 body.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
  });
  installProblemHandler(app);
  // Query strings and path parameters are text, so their values are coerced to the schema's types;
  // JSON bodies are not: `"epochs": "3"` is a client bug to report, not to guess about. Unknown
  // members are refused everywhere (a typo must not be silently dropped).
  const validators = { coercing: schemaValidator(true), strict: schemaValidator(false) };
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? validators.strict : validators.coercing).compile(schema));
  // Graceful shutdown: in-flight requests finish; new ones get 503 while the process drains.
  await app.register(drainPlugin);
  // Every route as registered, so a test can prove each one implements an operation of the spec.
  const routeTable: { method: string; url: string; operationId: string | undefined }[] = [];
  app.decorate('routeTable', routeTable);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routeTable.push({ method, url: route.url, operationId: route.config?.operationId });
  });

  await app.register(bodyTimeoutPlugin, {
    idleMs: config.UPLOAD_IDLE_TIMEOUT_MS,
    deadlineMs: (operationId) => UPLOAD_DEADLINES[operationId ?? '']?.(config) ?? config.UPLOAD_IDLE_TIMEOUT_MS,
  });
  await app.register(authPlugin, { keys: deps.keys });
  await app.register(rateLimitPlugin, {
    max: config.RATE_LIMIT_PER_MINUTE,
    ...(deps.rateLimitRedis === undefined ? {} : { redis: deps.rateLimitRedis, nameSpace: `${config.QUEUE_PREFIX}:rate-limit:` }),
  });
  await app.register(metricsPlugin, { metrics: deps.metrics });
  await app.register(fastifyAccepts);
  await app.register(fastifySse, { heartbeatInterval: 15_000 });
  await app.register(fastifyMultipart, {
    limits: {
      fileSize: config.PREDICT_MAX_FILE_BYTES,
      files: config.PREDICT_MAX_FILES,
      parts: config.PREDICT_MAX_FILES + 8,
      fields: 8,
      fieldSize: 1024,
      headerPairs: 100,
    },
  });
  // No route takes plain text; without Fastify's default parser a text body is a 415, not a 400.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(ZIP_MEDIA_TYPES, (_request, payload, done) => done(null, payload as Readable));

  await app.register(fastifySwagger, { mode: 'static', specification: { document: loadSpec() as never } });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  registerOperations(app, {
    ...healthHandlers({ readiness: deps.readiness, metrics: { contentType: deps.metrics.contentType, render: () => deps.metrics.exposition() } }),
    ...datasetHandlers({ datasets: deps.datasets, maxUploadBytes: config.DATASET_MAX_UPLOAD_BYTES }),
    ...experimentHandlers({ experiments: deps.experiments }),
    ...reportHandlers({ reports: deps.reports }),
    ...modelHandlers({ models: deps.models }),
    ...predictHandlers({
      predictor: deps.predictor,
      predictions: deps.predictions,
      audit: deps.audit,
      keyIdOf: (request) => request.apiKey?.id ?? null,
      isAdmin: (request) => request.apiKey?.scopes.includes('admin') ?? false,
      maxFiles: config.PREDICT_MAX_FILES,
      // A JSON body carries base64 (4/3 of the bytes): room for one largest image, plus the wrapping.
      jsonBodyLimit: Math.ceil((config.PREDICT_MAX_FILE_BYTES * 4) / 3) + 64 * 1024,
      onAuditFailure: () => deps.metrics.auditWriteFailures.inc(),
    }),
  });
  if (deps.extraRoutes) await deps.extraRoutes(app);
  return app;
}
