/**
 * Prometheus metrics of one process (DESIGN section 3, `/metrics`): HTTP latency by route template,
 * dynamic-batching sizes and durations, queue depths and the data directory's free space read at
 * scrape time, training progress, audit records that could not be written, and prom-client's
 * default process metrics. Each {@link createMetrics} call has its own `Registry` (not
 * prom-client's global one), so apps built in tests never collide on metric names.
 * @module
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Job counts per queue and state, e.g. `{ training: { waiting: 2, active: 1 } }` (BullMQ's `getJobCounts`). */
export type QueueCounts = Readonly<Record<string, Readonly<Record<string, number>>>>;

/** Reads the job counts at scrape time. */
export type QueueCounter = () => Promise<QueueCounts>;

/** Settings of {@link createMetrics}. */
export interface MetricsSettings {
  /** Also collect prom-client's default process metrics (CPU, memory, event loop, GC). Default true. */
  defaultMetrics?: boolean;
  /** Labels added to every series, e.g. `{ process: 'api' }`. Default none. */
  defaultLabels?: Record<string, string>;
}

/** Latency buckets of HTTP requests, seconds: from a health check to a batch of predictions. */
export const HTTP_DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
/** Batch-size buckets: powers of two up to the largest sensible `PREDICT_MAX_BATCH_SIZE`. */
export const BATCH_SIZE_BUCKETS: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64]);
/** Forward-pass duration buckets, seconds. */
export const BATCH_DURATION_BUCKETS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

/** The metrics of one process and the registry that exposes them. */
export interface Metrics {
  readonly registry: Registry;
  /** Labels `method`, `route` (template, e.g. `/v1/models/:id`), `status`; seconds. */
  readonly httpRequestDuration: Histogram<'method' | 'route' | 'status'>;
  /** Images per forward pass of the prediction batcher. */
  readonly predictBatchSize: Histogram<string>;
  /** Seconds per forward pass of the prediction batcher. */
  readonly predictBatchDuration: Histogram<string>;
  /** Jobs per `queue` and `state`, read at scrape time from the {@link setQueueCounter} callback. */
  readonly queueJobs: Gauge<'queue' | 'state'>;
  /** Share of an architecture's training done, 0..1. Labels `experiment`, `architecture`. */
  readonly trainingProgress: Gauge<'experiment' | 'architecture'>;
  /** Current epoch (1-based) of an architecture's training. Labels `experiment`, `architecture`. */
  readonly trainingEpoch: Gauge<'experiment' | 'architecture'>;
  /** Free bytes of the data directory's file system, read at scrape time ({@link setFreeSpaceReader}). */
  readonly dataDirFreeBytes: Gauge<string>;
  /** Audit records that could not be written (e.g. a full disk): each is a prediction without its record. */
  readonly auditWriteFailures: Counter<string>;
  /** Sets (or, with null, clears) the callback that fills `data_dir_free_bytes` at each scrape. */
  setFreeSpaceReader(reader: (() => Promise<number>) | null): void;
  /** Sets (or, with null, clears) the callback that fills `queue_jobs` at each scrape. */
  setQueueCounter(counter: QueueCounter | null): void;
  /** Records a training's progress (`ratio` 0..1, `epoch` 1-based). */
  setTrainingProgress(labels: { experiment: string; architecture: string }, ratio: number, epoch: number): void;
  /** Removes a training's series once it ended, so finished experiments do not pile up. */
  removeTraining(labels: { experiment: string; architecture: string }): void;
  /** The exposition in Prometheus text format. */
  exposition(): Promise<string>;
  /** The exposition's content type. */
  readonly contentType: string;
}

/**
 * Creates the metrics of one process in a fresh registry.
 * @example
 * const metrics = createMetrics();
 * metrics.setQueueCounter(async () => ({ training: await trainingQueue.getJobCounts() }));
 * metrics.predictBatchSize.observe(batch.length);
 */
export function createMetrics(settings: MetricsSettings = {}): Metrics {
  const registry = new Registry();
  if (settings.defaultLabels !== undefined) registry.setDefaultLabels(settings.defaultLabels);
  if (settings.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });

  const httpRequestDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request latency by method, route template and status code',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [...HTTP_DURATION_BUCKETS],
    registers: [registry],
  });
  const predictBatchSize = new Histogram({
    name: 'predict_batch_size',
    help: 'Images per forward pass of the prediction batcher',
    buckets: [...BATCH_SIZE_BUCKETS],
    registers: [registry],
  });
  const predictBatchDuration = new Histogram({
    name: 'predict_batch_duration_seconds',
    help: 'Duration of one forward pass of the prediction batcher',
    buckets: [...BATCH_DURATION_BUCKETS],
    registers: [registry],
  });

  let queueCounter: QueueCounter | null = null;
  const queueJobs = new Gauge({
    name: 'queue_jobs',
    help: 'Jobs per queue and state, read from Redis at scrape time',
    labelNames: ['queue', 'state'] as const,
    registers: [registry],
    async collect() {
      // stale counts are worse than none: clear first, so an unreachable Redis shows no series
      this.reset();
      if (queueCounter === null) return;
      let counts: QueueCounts;
      try {
        counts = await queueCounter();
      } catch {
        // a scrape must not fail because Redis is down; /readyz reports that
        return;
      }
      for (const [queue, states] of Object.entries(counts)) {
        for (const [state, count] of Object.entries(states)) {
          if (Number.isFinite(count)) this.set({ queue, state }, count);
        }
      }
    },
  });
  let freeSpaceReader: (() => Promise<number>) | null = null;
  const dataDirFreeBytes = new Gauge({
    name: 'data_dir_free_bytes',
    help: 'Free bytes of the file system holding DATA_DIR (below DATA_DIR_MIN_FREE_BYTES new work is refused)',
    registers: [registry],
    async collect() {
      this.reset();
      if (freeSpaceReader === null) return;
      try {
        this.set(await freeSpaceReader());
      } catch {
        // no series rather than a wrong one
      }
    },
  });
  const auditWriteFailures = new Counter({
    name: 'audit_write_failures_total',
    help: 'Prediction audit records that could not be written',
    registers: [registry],
  });
  const trainingProgress = new Gauge({
    name: 'training_progress_ratio',
    help: 'Share of an architecture training done (0..1)',
    labelNames: ['experiment', 'architecture'] as const,
    registers: [registry],
  });
  const trainingEpoch = new Gauge({
    name: 'training_epoch',
    help: 'Current epoch (1-based) of an architecture training',
    labelNames: ['experiment', 'architecture'] as const,
    registers: [registry],
  });

  return {
    registry,
    httpRequestDuration,
    predictBatchSize,
    predictBatchDuration,
    queueJobs,
    trainingProgress,
    trainingEpoch,
    dataDirFreeBytes,
    auditWriteFailures,
    setFreeSpaceReader(reader) {
      freeSpaceReader = reader;
    },
    setQueueCounter(counter) {
      queueCounter = counter;
    },
    setTrainingProgress(labels, ratio, epoch) {
      trainingProgress.set(labels, Math.min(1, Math.max(0, ratio)));
      trainingEpoch.set(labels, epoch);
    },
    removeTraining(labels) {
      trainingProgress.remove(labels);
      trainingEpoch.remove(labels);
    },
    exposition: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
