/**
 * The service's configuration, read from the environment here and nowhere else (STYLE rule 9).
 * Every variable is parsed once against a schema; a bad start-up lists every bad variable at once.
 * `.env.example` documents each variable with its default (a test keeps the two in step).
 * @module
 */
import path from 'node:path';
import { z } from 'zod';

const integer = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);

/**
 * Schema of the environment. Keys are the variable names; defaults are what an operator gets by
 * setting nothing. Sizes are bytes, durations milliseconds.
 */
export const ENV_SCHEMA = z.object({
  /** TCP port of the API. */
  PORT: integer(8080, 0).refine((port) => port <= 65535, 'must be a port number (0-65535)'),
  /** Interface the API listens on; compose sets 0.0.0.0. */
  HOST: z.string().min(1).default('127.0.0.1'),
  /** Artifact store: datasets/, experiments/, models/, audit log. */
  DATA_DIR: z.string().min(1).default('./data'),
  /**
   * Free space `DATA_DIR` keeps for records, audit and prediction uploads: below it, dataset uploads
   * and experiments get 507 and training waits (0: no watermark).
   */
  DATA_DIR_MIN_FREE_BYTES: integer(256 * 1024 * 1024, 0),
  /** How often training held back by a full data directory tries again. */
  STORAGE_RETRY_INTERVAL_MS: integer(30_000, 100),
  /** Redis for BullMQ. Unset: `api`/`worker` use redis://127.0.0.1:6379; `start` also tries to start one. */
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  /** Prefix of every BullMQ key, so several deployments (or tests) share one Redis. */
  QUEUE_PREFIX: z.string().regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only').default('fracture'),
  /** Comma-separated `id:secret:scope[+scope]` (scopes predict, train, admin). */
  API_KEYS: z.string().optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** tfjs backend: auto, tensorflow, wasm or cpu. */
  FRACTURE_BACKEND: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  /**
   * Engine of predictions, per model: `auto` runs ONNX Runtime when the model has `model.onnx` and
   * onnxruntime-node loads, else tfjs; `onnx` requires ONNX Runtime; `tfjs` never uses it. Grad-CAM
   * always runs on tfjs.
   */
  INFERENCE_ENGINE: z.enum(['auto', 'onnx', 'tfjs']).default('auto'),
  /**
   * Threads of one ONNX Runtime forward pass; 0 (default) = the machine's cores. Lower it when other
   * processes share the host (e.g. an API and a worker on two cores).
   */
  ONNX_INTRA_OP_THREADS: integer(0, 0),
  /** Dynamic batching: largest forward pass, and longest wait after the first request of a batch. */
  PREDICT_MAX_BATCH_SIZE: integer(16, 1),
  PREDICT_MAX_DELAY_MS: integer(10, 0),
  /**
   * Back-pressure of `/v1/predict` (503 + Retry-After beyond it): images waiting per model in an
   * in-process batcher (`start`), or jobs waiting in the inference queue (`api` with workers).
   */
  PREDICT_MAX_QUEUE: integer(256, 1),
  /** How long a queued prediction may wait for a worker before 503 (queue mode). */
  PREDICT_TIMEOUT_MS: integer(30_000, 100),
  /** Asynchronous predictions waiting for a worker beyond which `POST /v1/predictions` answers 503 QUEUE_FULL. */
  PREDICTION_MAX_PENDING: integer(10_000, 1),
  /** How long an asynchronous prediction (its record and result) is kept. */
  PREDICTION_RETENTION_MS: integer(86_400_000, 1000),
  /** Loaded models kept per process (least recently used evicted). */
  MODEL_CACHE_SIZE: integer(3, 1),
  /** Upload limits of `/v1/predict`. */
  PREDICT_MAX_FILE_BYTES: integer(20 * 1024 * 1024, 1),
  PREDICT_MAX_FILES: integer(32, 1),
  /** Largest decoded image (width x height) accepted anywhere. */
  IMAGE_MAX_PIXELS: integer(100_000_000, 1),
  /** A request body that stops arriving for this long gets 408 REQUEST_TIMEOUT (any route). */
  UPLOAD_IDLE_TIMEOUT_MS: integer(30_000, 100),
  /** Longest time to receive the whole body of a `/v1/predict` request (other small bodies: the idle limit). */
  PREDICT_UPLOAD_TIMEOUT_MS: integer(60_000, 100),
  /** Longest time to receive a dataset zip. */
  DATASET_UPLOAD_TIMEOUT_MS: integer(3_600_000, 100),
  /** Limits of a dataset zip: upload bytes, entries, uncompressed bytes, compression ratio. */
  DATASET_MAX_UPLOAD_BYTES: integer(2 * 1024 * 1024 * 1024, 1),
  DATASET_MAX_ENTRIES: integer(200_000, 1),
  DATASET_MAX_UNCOMPRESSED_BYTES: integer(8 * 1024 * 1024 * 1024, 1),
  DATASET_MAX_RATIO: integer(100, 1),
  /** Requests per minute per API key. */
  RATE_LIMIT_PER_MINUTE: integer(600, 1),
  /** Port of a worker process's own `/metrics` (batch sizes of its inference batcher); 0: none. */
  WORKER_METRICS_PORT: integer(9091, 0).refine((port) => port <= 65535, 'must be a port number (0-65535)'),
  /** Jobs a worker process runs at once, per queue. */
  TRAINING_CONCURRENCY: integer(1, 1),
  INFERENCE_CONCURRENCY: integer(32, 1),
  PREDICTION_CONCURRENCY: integer(2, 1),
  /** BullMQ job lock: a worker that stops renewing it for this long is considered stalled. */
  JOB_LOCK_DURATION_MS: integer(30_000, 1000),
  /** How often workers look for stalled jobs. */
  STALLED_INTERVAL_MS: integer(30_000, 1000),
  /** Grace period of a graceful shutdown before the process exits anyway (compose stop_grace_period). */
  SHUTDOWN_TIMEOUT_MS: integer(25_000, 100),
  /**
   * After SIGTERM the API keeps its port open at least this long, answering new requests 503
   * SHUTTING_DOWN with Retry-After while those in flight finish (load balancers see /readyz fail).
   */
  SHUTDOWN_DRAIN_MS: integer(2_000, 0),
});

/** The parsed configuration: frozen, paths absolute. */
export type Config = Readonly<
  Omit<z.infer<typeof ENV_SCHEMA>, 'DATA_DIR'> & {
    DATA_DIR: string;
  }
>;

/** Thrown at start-up when variables are bad; `problems` lists each as `NAME: reason`. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.problems = problems;
  }
}

/**
 * Parses the environment. Empty strings count as unset, so `FOO=` in an env file means "default".
 * @throws ConfigError listing every bad variable.
 * @example
 * const config = loadConfig({ PORT: '9000' });
 * config.PORT; // 9000
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const relevant: Record<string, string> = {};
  for (const key of Object.keys(ENV_SCHEMA.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') relevant[key] = value;
  }
  const parsed = ENV_SCHEMA.safeParse(relevant);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  return Object.freeze({ ...parsed.data, DATA_DIR: path.resolve(parsed.data.DATA_DIR) });
}

/**
 * `FRACTURE_BACKEND` alone, for the local commands (`train`, `predict`, ...), which must not fail
 * because a service variable they do not use is bad.
 * @throws ConfigError when FRACTURE_BACKEND itself is invalid.
 */
export function backendFromEnvironment(env: NodeJS.ProcessEnv = process.env): Config['FRACTURE_BACKEND'] {
  const value = env.FRACTURE_BACKEND;
  const parsed = ENV_SCHEMA.shape.FRACTURE_BACKEND.safeParse(value === '' ? undefined : value);
  if (!parsed.success) throw new ConfigError([`FRACTURE_BACKEND: ${parsed.error.issues[0]?.message ?? 'invalid'}`]);
  return parsed.data;
}

/** The names of every variable the service reads (for `.env.example` checks and docs). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(ENV_SCHEMA.shape));

/** Redis URL to use when `REDIS_URL` is unset. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
