/**
 * DynamicBatcher with fake `runBatch` functions. Timing assertions are one-sided and generous (a
 * loaded 2-core machine delays timers): they check counts and order, and that a full batch does not
 * wait for a long delay.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AppError } from '../../../src/infra/errors.ts';
import { DynamicBatcher } from '../../../src/serving/dynamic-batcher.ts';

/** A promise with its resolve function, to hold a batch open. */
function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A batcher that doubles numbers and records every batch it ran. */
function doubling(options: { maxBatchSize: number; maxDelayMs: number; maxQueue?: number; gate?: () => Promise<void> }) {
  const batches: number[][] = [];
  const sizes: number[] = [];
  let active = 0;
  let maxActive = 0;
  const batcher = new DynamicBatcher<number, number>({
    maxBatchSize: options.maxBatchSize,
    maxDelayMs: options.maxDelayMs,
    maxQueue: options.maxQueue ?? 1000,
    onBatch: (size) => sizes.push(size),
    runBatch: async (items) => {
      active++;
      maxActive = Math.max(maxActive, active);
      batches.push([...items]);
      try {
        if (options.gate) await options.gate();
        else await sleep(1);
        return items.map((x) => x * 2);
      } finally {
        active--;
      }
    },
  });
  return { batcher, batches, sizes, maxActive: () => maxActive };
}

describe('DynamicBatcher', () => {
  it('answers each item with its own result and groups concurrent submissions into full batches', async () => {
    const { batcher, batches, sizes } = doubling({ maxBatchSize: 4, maxDelayMs: 5_000 });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => batcher.submit(i)));
    assert.deepEqual(answers, Array.from({ length: 12 }, (_, i) => 2 * i));
    // Full batches never wait for the 5 s delay, and keep submission order.
    assert.deepEqual(batches, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
    assert.deepEqual(sizes, [4, 4, 4]);
  });

  it('runs a partial batch once maxDelayMs has passed since its first item', async () => {
    const { batcher, batches } = doubling({ maxBatchSize: 100, maxDelayMs: 80 });
    const started = performance.now();
    const first = batcher.submit(1);
    await sleep(20);
    const second = batcher.submit(2);
    assert.deepEqual(await Promise.all([first, second]), [2, 4]);
    const elapsed = performance.now() - started;
    assert.deepEqual(batches, [[1, 2]], 'both items arrived within the delay: one batch');
    // Timers never fire early by more than a millisecond; the delay counts from the FIRST item.
    assert.ok(elapsed >= 75, `ran after ${elapsed} ms, before the 80 ms delay`);
  });

  it('does not wait for the delay when a batch fills up', async () => {
    const { batcher } = doubling({ maxBatchSize: 3, maxDelayMs: 60_000 });
    const started = performance.now();
    await Promise.all([batcher.submit(1), batcher.submit(2), batcher.submit(3)]);
    assert.ok(performance.now() - started < 10_000);
  });

  it('runs one batch at a time and collects the next batch while one runs', async () => {
    const gates: Array<ReturnType<typeof deferred>> = [];
    const { batcher, batches, maxActive } = doubling({
      maxBatchSize: 8,
      maxDelayMs: 0,
      gate: () => {
        const gate = deferred();
        gates.push(gate);
        return gate.promise;
      },
    });
    const first = batcher.submit(0); // delay 0: runs alone at once
    await sleep(10);
    assert.equal(batches.length, 1);
    const rest = Array.from({ length: 5 }, (_, i) => batcher.submit(i + 1));
    await sleep(30);
    assert.equal(batches.length, 1, 'the next batch waits for the running one');
    assert.equal(batcher.queued, 5);
    gates[0]!.resolve();
    await first;
    await sleep(10);
    assert.deepEqual(batches[1], [1, 2, 3, 4, 5], 'everything that arrived meanwhile runs as one batch');
    gates[1]!.resolve();
    assert.deepEqual(await Promise.all(rest), [2, 4, 6, 8, 10]);
    assert.equal(maxActive(), 1);
  });

  it('rejects every item of a failing batch with its error and keeps serving later batches', async () => {
    const failure = new Error('forward pass failed');
    let calls = 0;
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 2,
      maxDelayMs: 5_000,
      maxQueue: 10,
      runBatch: async (items) => {
        calls++;
        if (items.includes(13)) throw failure;
        return items.map((x) => x + 1);
      },
    });
    const results = await Promise.allSettled([batcher.submit(13), batcher.submit(1), batcher.submit(2), batcher.submit(3)]);
    assert.deepEqual(results.slice(0, 2).map((r) => r.status === 'rejected' && r.reason), [failure, failure]);
    assert.deepEqual(results.slice(2).map((r) => r.status === 'fulfilled' && r.value), [3, 4]);
    assert.equal(calls, 2);
  });

  it('rejects a batch whose runBatch answers the wrong number of results', async () => {
    const batcher = new DynamicBatcher<number, number>({ maxBatchSize: 2, maxDelayMs: 0, maxQueue: 10, runBatch: async () => [1, 2, 3] });
    await assert.rejects(batcher.submit(1), /answered 3 results for 1 items/);
  });

  it('refuses at once with QUEUE_FULL and a Retry-After when the backlog is full, queueing nothing', async () => {
    const gate = deferred();
    const { batcher, batches } = doubling({ maxBatchSize: 2, maxDelayMs: 0, maxQueue: 3, gate: () => gate.promise });
    const running = batcher.submit(0);
    await sleep(10);
    const queued = [batcher.submit(1), batcher.submit(2), batcher.submit(3)];
    assert.equal(batcher.queued, 3);
    const refused = await batcher.submit(4).then(
      () => assert.fail('should be refused'),
      (error: unknown) => error,
    );
    assert.ok(refused instanceof AppError);
    assert.equal(refused.code, 'QUEUE_FULL');
    assert.equal(refused.status, 503);
    const retryAfter = Number(refused.headers['Retry-After']);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${refused.headers['Retry-After']}`);
    // All-or-nothing: two items do not fit either, one item still would not.
    await assert.rejects(batcher.submitAll([5, 6]), { code: 'QUEUE_FULL' });
    assert.equal(batcher.queued, 3);
    gate.resolve();
    assert.deepEqual(await Promise.all([running, ...queued]), [0, 2, 4, 6]);
    assert.equal(batches.flat().includes(4), false);
  });

  it('accepts a submission larger than maxQueue into an empty backlog', async () => {
    const { batcher, sizes } = doubling({ maxBatchSize: 2, maxDelayMs: 0, maxQueue: 2 });
    assert.deepEqual(await batcher.submitAll([1, 2, 3, 4, 5]), [2, 4, 6, 8, 10]);
    assert.deepEqual(sizes, [2, 2, 1]);
  });

  it('estimates Retry-After from recent batch durations', async () => {
    let hold = 0;
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 1,
      maxDelayMs: 0,
      maxQueue: 100,
      runBatch: async (items) => {
        await sleep(hold);
        return items;
      },
    });
    assert.equal(batcher.retryAfterSeconds(), 1, 'no history: the minimum');
    hold = 600;
    await batcher.submit(1);
    // 4 batches ahead of ~0.6 s each: at least 2 s.
    assert.ok(batcher.retryAfterSeconds(4) >= 2, `got ${batcher.retryAfterSeconds(4)}`);
  });

  it('reports every batch to onBatch with its size and duration', async () => {
    const reported: Array<[number, number]> = [];
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 3,
      maxDelayMs: 20,
      maxQueue: 100,
      onBatch: (size, seconds) => reported.push([size, seconds]),
      runBatch: async (items) => items,
    });
    await Promise.all(Array.from({ length: 7 }, (_, i) => batcher.submit(i)));
    assert.deepEqual(reported.map(([size]) => size), [3, 3, 1]);
    assert.ok(reported.every(([, seconds]) => seconds >= 0 && seconds < 60));
  });

  it('survives an onBatch hook that throws', async () => {
    const batcher = new DynamicBatcher<number, number>({
      maxBatchSize: 1,
      maxDelayMs: 0,
      maxQueue: 10,
      onBatch: () => {
        throw new Error('metrics down');
      },
      runBatch: async (items) => items,
    });
    assert.equal(await batcher.submit(7), 7);
  });

  it('close() runs what is queued without waiting for the delay, then refuses new items', async () => {
    const { batcher, batches } = doubling({ maxBatchSize: 10, maxDelayMs: 60_000 });
    const pending = [batcher.submit(1), batcher.submit(2)];
    const started = performance.now();
    await batcher.close();
    assert.ok(performance.now() - started < 10_000);
    assert.deepEqual(await Promise.all(pending), [2, 4]);
    assert.deepEqual(batches, [[1, 2]]);
    await assert.rejects(batcher.submit(3), { code: 'SHUTTING_DOWN' });
    await batcher.close(); // idempotent
  });

  it('validates its options', () => {
    const runBatch = async (items: number[]) => items;
    assert.throws(() => new DynamicBatcher({ runBatch, maxBatchSize: 0, maxDelayMs: 0, maxQueue: 1 }), RangeError);
    assert.throws(() => new DynamicBatcher({ runBatch, maxBatchSize: 1, maxDelayMs: -1, maxQueue: 1 }), RangeError);
    assert.throws(() => new DynamicBatcher({ runBatch, maxBatchSize: 1, maxDelayMs: 0, maxQueue: 0 }), RangeError);
  });

  it('answers every item exactly once, in order, in batches of at most maxBatchSize (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 0, max: 3 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 8 }),
        async (maxBatchSize, maxDelayMs, groups) => {
          const { batcher, batches } = doubling({ maxBatchSize, maxDelayMs });
          let next = 0;
          const submissions: Promise<number[]>[] = [];
          for (const size of groups) {
            const items = Array.from({ length: size }, () => next++);
            submissions.push(batcher.submitAll(items));
            await sleep(0);
          }
          const answers = (await Promise.all(submissions)).flat();
          assert.deepEqual(answers, Array.from({ length: next }, (_, i) => 2 * i));
          assert.deepEqual(batches.flat(), Array.from({ length: next }, (_, i) => i));
          assert.ok(batches.every((b) => b.length >= 1 && b.length <= maxBatchSize));
        },
      ),
      { numRuns: 40 },
    );
  });
});
