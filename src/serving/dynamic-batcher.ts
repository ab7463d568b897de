/**
 * Dynamic batching (DESIGN section 4): requests that arrive close together share one forward pass.
 * A batch closes when it holds `maxBatchSize` items or `maxDelayMs` after its FIRST item arrived,
 * whichever comes first; one batch runs at a time while the next one collects. The backlog is bounded:
 * when it is full, `submit` refuses at once with `QUEUE_FULL` and a `Retry-After` estimated from the
 * recent batch durations, so callers are told to come back rather than left to time out.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { AppError } from '../infra/errors.ts';

export interface DynamicBatcherOptions<I, O> {
  /**
   * Runs one batch: `items` in submission order (1 to `maxBatchSize` of them), answered by position.
   * A rejection, or an answer of the wrong length, rejects every item of the batch.
   */
  runBatch(items: I[]): Promise<O[]>;
  /** Most items in one call of `runBatch` (at least 1). */
  maxBatchSize: number;
  /** Longest wait, in milliseconds, after a batch's first item before the batch runs anyway (0 or more). */
  maxDelayMs: number;
  /**
   * Most items waiting for a batch (the running batch not counted) before `submit` answers
   * `QUEUE_FULL`. A submission into an empty backlog is always accepted, however many items it has,
   * so one large request cannot be refused forever.
   */
  maxQueue: number;
  /** Called after every batch with its size and its `runBatch` duration in seconds (e.g. a histogram). */
  onBatch?(size: number, seconds: number): void;
}

interface Pending<I, O> {
  item: I;
  /** `performance.now()` at submission, in milliseconds. */
  arrivedAt: number;
  resolve(value: O): void;
  reject(error: unknown): void;
}

/** Batch durations remembered for the `Retry-After` estimate. */
const DURATION_WINDOW = 16;

/**
 * Collects items into batches and runs them through `runBatch`, one batch at a time.
 * @example
 * const batcher = new DynamicBatcher<Float32Array, Float32Array>({
 *   maxBatchSize: 16, maxDelayMs: 10, maxQueue: 256,
 *   runBatch: (inputs) => model.predictRows(inputs),
 * });
 * const row = await batcher.submit(input);
 */
export class DynamicBatcher<I, O> {
  readonly #options: Readonly<DynamicBatcherOptions<I, O>>;
  #pending: Pending<I, O>[] = [];
  #timer: NodeJS.Timeout | undefined;
  /** The collecting batch has waited `maxDelayMs` since its first item and runs as soon as it can. */
  #due = false;
  #running = false;
  #closed = false;
  #idleWaiters: (() => void)[] = [];
  #durations: number[] = [];

  constructor(options: DynamicBatcherOptions<I, O>) {
    const { maxBatchSize, maxDelayMs, maxQueue } = options;
    if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1) throw new RangeError(`maxBatchSize must be an integer >= 1, got ${maxBatchSize}`);
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < 0) throw new RangeError(`maxDelayMs must be >= 0, got ${maxDelayMs}`);
    if (!Number.isInteger(maxQueue) || maxQueue < 1) throw new RangeError(`maxQueue must be an integer >= 1, got ${maxQueue}`);
    this.#options = Object.freeze({ ...options });
  }

  /** Items waiting for a batch (not counting the running one). */
  get queued(): number {
    return this.#pending.length;
  }

  /** True while a batch runs. */
  get running(): boolean {
    return this.#running;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Queues one item; settles with its answer.
   * @throws AppError `QUEUE_FULL` (with a `Retry-After` header) when the backlog is full;
   *   `SHUTTING_DOWN` after `close()`. Both reject at once, before anything is queued.
   */
  submit(item: I): Promise<O> {
    return this.submitAll([item]).then((answers) => answers[0] as O);
  }

  /**
   * Queues several items at once, all or none (one request's images): they join the same batches in
   * order, and the answer keeps their order. Rejects with the first item's error if any fails.
   * @throws AppError `QUEUE_FULL` / `SHUTTING_DOWN` as {@link submit}, for all items together.
   */
  submitAll(items: readonly I[]): Promise<O[]> {
    if (this.#closed) return Promise.reject(new AppError('SHUTTING_DOWN', 'inference is shutting down; retry on another instance'));
    if (items.length === 0) return Promise.resolve([]);
    if (this.#pending.length > 0 && this.#pending.length + items.length > this.#options.maxQueue) {
      const seconds = this.retryAfterSeconds(items.length);
      return Promise.reject(
        new AppError('QUEUE_FULL', `the inference backlog is full (${this.#pending.length} images waiting); retry in ${seconds} s`, {
          headers: { 'Retry-After': String(seconds) },
        }),
      );
    }
    const wasEmpty = this.#pending.length === 0;
    const arrivedAt = performance.now();
    const answers = items.map(
      (item) => new Promise<O>((resolve, reject) => this.#pending.push({ item, arrivedAt, resolve, reject })),
    );
    if (wasEmpty) this.#armTimer(arrivedAt);
    this.#dispatch();
    return Promise.all(answers);
  }

  /**
   * Whole seconds (at least 1) until a submission of `extra` items would likely be served: the
   * batches ahead of it times the mean of the recent batch durations.
   */
  retryAfterSeconds(extra = 1): number {
    const { maxBatchSize, maxDelayMs } = this.#options;
    const batchesAhead = Math.ceil((this.#pending.length + extra) / maxBatchSize) + (this.#running ? 1 : 0);
    const mean = this.#durations.length === 0
      ? maxDelayMs / 1000
      : this.#durations.reduce((sum, d) => sum + d, 0) / this.#durations.length;
    return Math.max(1, Math.ceil(batchesAhead * mean));
  }

  /**
   * Stops accepting items (later submissions reject with `SHUTTING_DOWN`), runs everything already
   * queued without waiting for the delay, and resolves once no batch runs. Idempotent.
   */
  close(): Promise<void> {
    this.#closed = true;
    this.#due = true;
    this.#dispatch();
    if (!this.#running && this.#pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Starts the delay of a batch whose first item arrived at `firstArrival`. */
  #armTimer(firstArrival: number): void {
    this.#clearTimer();
    const wait = firstArrival + this.#options.maxDelayMs - performance.now();
    if (wait <= 0 || this.#closed) {
      this.#due = true;
      return;
    }
    this.#due = false;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#due = true;
      this.#dispatch();
    }, wait);
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Starts the collecting batch when nothing runs and it is full or due. */
  #dispatch(): void {
    if (this.#running) return;
    if (this.#pending.length === 0) {
      this.#settleIdle();
      return;
    }
    if (!this.#due && this.#pending.length < this.#options.maxBatchSize) return;
    const batch = this.#pending.splice(0, this.#options.maxBatchSize);
    this.#clearTimer();
    this.#due = false;
    // Items left over arrived earlier: their batch is due maxDelayMs after the first of them.
    const next = this.#pending[0];
    if (next) this.#armTimer(next.arrivedAt);
    this.#running = true;
    void this.#run(batch).finally(() => {
      this.#running = false;
      this.#dispatch();
    });
  }

  async #run(batch: Pending<I, O>[]): Promise<void> {
    const started = performance.now();
    let answers: O[];
    try {
      answers = await this.#options.runBatch(batch.map((entry) => entry.item));
      if (!Array.isArray(answers) || answers.length !== batch.length) {
        throw new Error(`runBatch answered ${Array.isArray(answers) ? answers.length : typeof answers} results for ${batch.length} items`);
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error);
      return;
    } finally {
      this.#record(batch.length, (performance.now() - started) / 1000);
    }
    batch.forEach((entry, i) => entry.resolve(answers[i] as O));
  }

  #record(size: number, seconds: number): void {
    this.#durations.push(seconds);
    if (this.#durations.length > DURATION_WINDOW) this.#durations.shift();
    try {
      this.#options.onBatch?.(size, seconds);
    } catch {
      // A metrics hook must never fail a prediction.
    }
  }

  #settleIdle(): void {
    const waiters = this.#idleWaiters;
    this.#idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
