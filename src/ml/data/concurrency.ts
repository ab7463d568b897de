/**
 * Bounded concurrency for file and decode work. sharp decodes on libuv's thread pool, so running a
 * few decodes at once keeps the cores busy while JavaScript does other work; running thousands at
 * once would hold thousands of file buffers in memory.
 * @module
 */

/** Runs async tasks with at most `limit` in flight, in the order they were submitted. */
export interface Limiter {
  /** Runs `task` when a slot is free; settles with the task's result. */
  run<T>(task: () => Promise<T>): Promise<T>;
  /** Tasks running now. */
  readonly active: number;
  /** Tasks waiting for a slot. */
  readonly waiting: number;
}

/**
 * A first-in first-out limiter: tasks start in submission order, so work queued for an earlier
 * batch always starts before work for a later one.
 * @param limit maximum tasks in flight (at least 1)
 */
export function createLimiter(limit: number): Limiter {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be a positive integer, got ${limit}`);
  let active = 0;
  const queue: Array<() => void> = [];

  const release = (): void => {
    active--;
    const next = queue.shift();
    if (next) next();
  };

  return {
    run<T>(task: () => Promise<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const start = (): void => {
          active++;
          task().then(resolve, reject).finally(release);
        };
        if (active < limit) start();
        else queue.push(start);
      });
    },
    get active() {
      return active;
    },
    get waiting() {
      return queue.length;
    },
  };
}

/**
 * Maps `items` through `fn` with at most `limit` calls in flight; results keep the input order.
 * Rejects with the first error (calls already started still run to completion).
 */
export async function mapWithConcurrency<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const limiter = createLimiter(limit);
  return Promise.all(items.map((item, index) => limiter.run(() => fn(item, index))));
}
