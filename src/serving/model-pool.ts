/**
 * The models loaded in this process, keyed by model id, least-recently-used first out (DESIGN
 * section 4: models load once per process, warm up before use, and are evicted LRU).
 *
 * - A model loads once even when many requests want it at the same time: they share one promise.
 * - It is warmed up before anyone gets it; a load or warm-up that fails is not kept, so the next
 *   request tries again.
 * - An evicted model is disposed only once no request holds it: callers take a {@link ModelLease}
 *   and release it when done, so eviction never pulls a model out from under a running batch.
 * @module
 */
import { LRUCache } from 'lru-cache';

export interface ModelPoolOptions<V, S> {
  /** Most models kept loaded (at least 1); the least recently used is evicted beyond it. */
  maxModels: number;
  /**
   * Loads the model `key` from `source` (whatever the caller passed to `acquire`, e.g. its
   * directory). Called once per key until the model is evicted or its load fails.
   */
  load(key: string, source: S): Promise<V>;
  /** Runs before the model is handed out (e.g. one forward pass on zeros); a failure discards it. */
  warmUp?(value: V, key: string): Promise<void>;
  /** Frees the model. Called once per loaded model, after its last lease is released. */
  dispose(value: V, key: string): Promise<void> | void;
  /** Told about every disposal failure (they are otherwise swallowed: eviction must not throw). */
  onDisposeError?(error: unknown, key: string): void;
}

/** Use of a pooled model; `release()` when done (idempotent). */
export interface ModelLease<V> {
  readonly key: string;
  readonly value: V;
  release(): void;
}

/** One loaded model and who is using it. */
class Entry<V> {
  leases = 0;
  retired = false;
  disposed = false;

  constructor(
    readonly key: string,
    readonly value: V,
    private readonly destroy: (entry: Entry<V>) => void,
  ) {}

  /** Takes a lease unless the entry was already disposed. */
  tryLease(): boolean {
    if (this.disposed) return false;
    this.leases++;
    return true;
  }

  release(): void {
    this.leases--;
    this.#disposeIfUnused();
  }

  /** Out of the pool: dispose now, or when the last lease is released. */
  retire(): void {
    this.retired = true;
    this.#disposeIfUnused();
  }

  #disposeIfUnused(): void {
    if (this.retired && this.leases === 0 && !this.disposed) {
      this.disposed = true;
      this.destroy(this);
    }
  }
}

/**
 * A least-recently-used pool of loaded models.
 * @example
 * const pool = new ModelPool<EngineModel, string>({
 *   maxModels: 3,
 *   load: (_id, dir) => engine.load(dir),
 *   warmUp: (model) => warmUpModel(model),
 *   dispose: (model) => model.dispose(),
 * });
 * const lease = await pool.acquire('m1', '/data/models/m1');
 * try { await lease.value.predict(batch, n); } finally { lease.release(); }
 */
export class ModelPool<V, S = void> {
  readonly #options: ModelPoolOptions<V, S>;
  readonly #cache: LRUCache<string, Promise<Entry<V>>>;
  /** Disposals still running, so `close()` can wait for them. */
  readonly #disposals = new Set<Promise<void>>();
  #loads = 0;

  constructor(options: ModelPoolOptions<V, S>) {
    if (!Number.isInteger(options.maxModels) || options.maxModels < 1) {
      throw new RangeError(`maxModels must be an integer >= 1, got ${options.maxModels}`);
    }
    this.#options = options;
    this.#cache = new LRUCache<string, Promise<Entry<V>>>({
      max: options.maxModels,
      // Evicted or deleted: retire the model once (and if) its load succeeds. A failed load has
      // already removed itself and has nothing to dispose.
      dispose: (pending) => {
        pending.then((entry) => entry.retire(), () => undefined);
      },
    });
  }

  /** Models loaded or loading now. */
  get size(): number {
    return this.#cache.size;
  }

  /** How many loads were started since the pool was made (for tests and metrics). */
  get loadCount(): number {
    return this.#loads;
  }

  /** Keys loaded or loading, most recently used first. */
  keys(): string[] {
    return [...this.#cache.keys()];
  }

  /** True when `key` is loaded or loading (does not count as a use). */
  has(key: string): boolean {
    return this.#cache.has(key);
  }

  /**
   * The model `key`, loaded (from `source`) and warmed up if it is not in the pool yet, leased to
   * the caller. Concurrent calls for one key share one load.
   * @throws whatever `load` or `warmUp` threw; the failure is not cached
   */
  async acquire(key: string, source: S): Promise<ModelLease<V>> {
    // A lease can only fail when the model was evicted and disposed between its load finishing and
    // this call resuming; the next round loads it again.
    for (;;) {
      const entry = await this.#entry(key, source);
      if (entry.tryLease()) {
        let released = false;
        return {
          key,
          value: entry.value,
          release: () => {
            if (released) return;
            released = true;
            entry.release();
          },
        };
      }
    }
  }

  /** Removes `key` from the pool; it is disposed once no lease holds it. */
  evict(key: string): void {
    this.#cache.delete(key);
  }

  /** Evicts every model and waits until those without leases are disposed. */
  async close(): Promise<void> {
    const pending = [...this.#cache.values()];
    this.#cache.clear();
    await Promise.allSettled(pending);
    await Promise.allSettled([...this.#disposals]);
  }

  #entry(key: string, source: S): Promise<Entry<V>> {
    const cached = this.#cache.get(key);
    if (cached) return cached;
    const loading = this.#load(key, source);
    this.#cache.set(key, loading);
    // A failed load leaves the pool, unless something else already replaced it.
    loading.catch(() => {
      if (this.#cache.peek(key) === loading) this.#cache.delete(key);
    });
    return loading;
  }

  async #load(key: string, source: S): Promise<Entry<V>> {
    this.#loads++;
    const value: V = await this.#options.load(key, source);
    try {
      await this.#options.warmUp?.(value, key);
    } catch (error) {
      await this.#runDispose(value, key);
      throw error;
    }
    return new Entry<V>(key, value, (entry) => {
      void this.#runDispose(entry.value, entry.key);
    });
  }

  #runDispose(value: V, key: string): Promise<void> {
    const done = Promise.resolve()
      .then(() => this.#options.dispose(value, key))
      .catch((error: unknown) => this.#options.onDisposeError?.(error, key))
      .finally(() => this.#disposals.delete(done));
    this.#disposals.add(done);
    return done;
  }
}
