import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { isMlError } from '../../../src/ml/errors.ts';
import { createBatchStream, epochBatches } from '../../../src/ml/data/batches.ts';
import type { BatchStreamOptions } from '../../../src/ml/data/batches.ts';
import { SKIP_WITHOUT_XRAYS, copyXrays, makeTempDir, removeDir, writeBytes, writeSolid } from './fixtures.ts';

const COUNT = 10;
const NUM_CLASSES = 3;
/** Image i is a solid grey of level `grey(i)` with label i % 3, so every row of a batch can be traced to its item. */
const grey = (i: number): number => 20 * i + 5;
let root: string;
const items = Array.from({ length: COUNT }, (_, i) => ({ path: `c${i % NUM_CLASSES}/img${i}.png`, label: i % NUM_CLASSES }));
const base: BatchStreamOptions = {
  batchSize: 4,
  numClasses: NUM_CLASSES,
  imageOptions: { height: 4, width: 4, channels: 1, mode: 'unit', resize: 'crop' },
};

before(async () => {
  await useTestBackend();
  root = await makeTempDir('batches');
  for (let i = 0; i < COUNT; i++) await writeSolid(path.join(root, items[i]!.path), 8, 8, { r: grey(i), g: grey(i), b: grey(i) });
});
after(async () => {
  await removeDir(root);
});

describe('createBatchStream', () => {
  test('yields [n, H, W, C] images and one-hot labels in items order, last batch partial', async () => {
    const before = tf.memory().numTensors;
    const stream = createBatchStream(items, { ...base, root });
    assert.equal(stream.numBatches, 3);
    const sizes: number[] = [];
    const seen: number[] = [];
    for await (const { xs, ys, indices } of stream) {
      sizes.push(indices.length);
      seen.push(...indices);
      assert.deepEqual(xs.shape, [indices.length, 4, 4, 1]);
      assert.deepEqual(ys.shape, [indices.length, NUM_CLASSES]);
      assert.equal(xs.dtype, 'float32');
      const x = await xs.data();
      const y = await ys.data();
      indices.forEach((itemIndex, row) => {
        for (let p = 0; p < 16; p++) assert.ok(Math.abs(x[row * 16 + p]! - grey(itemIndex) / 255) < 1e-6, `row ${row} pixel ${p}`);
        const oneHot = [...y.subarray(row * NUM_CLASSES, (row + 1) * NUM_CLASSES)];
        assert.deepEqual(oneHot, [0, 1, 2].map((c) => (c === itemIndex % NUM_CLASSES ? 1 : 0)));
      });
      tf.dispose([xs, ys]);
    }
    assert.deepEqual(sizes, [4, 4, 2]);
    assert.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks once the consumer disposes');
  });

  test('visits every item once per epoch, in a seeded order that changes between epochs', async () => {
    const orderOf = async (seed: number, epoch: number): Promise<number[]> => {
      const order: number[] = [];
      for await (const b of createBatchStream(items, { ...base, root, shuffle: true, seed, epoch, batchSize: 3 })) {
        order.push(...b.indices);
        tf.dispose([b.xs, b.ys]);
      }
      return order;
    };
    const e0 = await orderOf(1, 0);
    assert.deepEqual([...e0].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(await orderOf(1, 0), e0, 'same seed and epoch, same order');
    const e1 = await orderOf(1, 1);
    assert.deepEqual([...e1].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.notDeepEqual(e1, e0, 'a new epoch reshuffles');
    assert.deepEqual(epochBatches(5, 2, false, 0, 0), [[0, 1], [2, 3], [4]]);
  });

  test('never holds more than prefetch + 1 batches, however slow the consumer', async () => {
    for (const prefetch of [0, 2]) {
      const stream = createBatchStream(items, { ...base, root, batchSize: 1, prefetch });
      for await (const b of stream) {
        const s = stream.stats;
        // Loads started so far: the batches handed over plus at most `prefetch` queued behind them.
        assert.ok(s.imagesDecoded <= s.batchesYielded + prefetch, `prefetch ${prefetch}: decoded ${s.imagesDecoded} after ${s.batchesYielded} batches`);
        await sleep(15); // a slow training step: the producer must stop, not run ahead
        tf.dispose([b.xs, b.ys]);
      }
      const s = stream.stats;
      assert.equal(s.batchesYielded, COUNT);
      assert.equal(s.imagesDecoded, COUNT);
      assert.equal(s.buffered, 0);
      assert.ok(s.peakBuffered <= prefetch + 1, `peak ${s.peakBuffered} with prefetch ${prefetch}`);
      assert.ok(s.peakBuffered >= Math.max(1, prefetch), `peak ${s.peakBuffered}: prefetching really happens`);
    }
  });

  test('stopping early settles in-flight work and leaks nothing', async () => {
    const before = tf.memory().numTensors;
    const stream = createBatchStream(items, { ...base, root, batchSize: 2, prefetch: 3 });
    for await (const b of stream) {
      tf.dispose([b.xs, b.ys]);
      break;
    }
    assert.equal(stream.stats.buffered, 0);
    assert.equal(stream.stats.batchesYielded, 1);
    assert.equal(tf.memory().numTensors, before);
  });

  test('a file that fails to decode stops the stream with IMAGE_UNDECODABLE naming it', async () => {
    await writeBytes(path.join(root, 'c0', 'broken.png'), 'not a png');
    const withBroken = [...items.slice(0, 5), { path: 'c0/broken.png', label: 0 }];
    const before = tf.memory().numTensors;
    await assert.rejects(
      (async () => {
        for await (const b of createBatchStream(withBroken, { ...base, root, batchSize: 2 })) tf.dispose([b.xs, b.ys]);
      })(),
      (e) => isMlError(e, 'IMAGE_UNDECODABLE') && e.message.startsWith('c0/broken.png: '),
    );
    assert.equal(tf.memory().numTensors, before);
  });

  test('augments deterministically per (seed, epoch) and only when asked', async () => {
    const collect = async (options: Partial<BatchStreamOptions>): Promise<Float32Array> => {
      const out: number[] = [];
      for await (const b of createBatchStream(items, { ...base, root, batchSize: 5, ...options })) {
        out.push(...(await b.xs.data()));
        tf.dispose([b.xs, b.ys]);
      }
      return Float32Array.from(out);
    };
    const plain = await collect({});
    const a = await collect({ augment: true, seed: 4, epoch: 0 });
    assert.deepEqual(await collect({ augment: true, seed: 4, epoch: 0 }), a);
    assert.notDeepEqual(a, plain);
    assert.notDeepEqual(await collect({ augment: true, seed: 4, epoch: 1 }), a);
    assert.deepEqual(await collect({ augment: false, seed: 4, epoch: 1 }), plain);
  });

  test('rejects bad options up front', () => {
    assert.throws(() => createBatchStream(items, { ...base, root, batchSize: 0 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => createBatchStream(items, { ...base, root, numClasses: 2 }), (e) => isMlError(e, 'INVALID_ARGUMENT') && /label 2/.test(e.message));
  });
});

describe('createBatchStream on real radiographs', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let dir: string;
  before(async () => {
    dir = await makeTempDir('batches-xray');
    await copyXrays(dir, 'fractured', [0, 1, 2]);
    await copyXrays(dir, 'not_fractured', [0, 1]);
  });
  after(async () => {
    await removeDir(dir);
  });

  test('streams caffe-normalised 64x64 RGB batches', async () => {
    const real = [
      ...[0, 1, 2].map((n) => ({ path: `fractured/fractured-000${n}.jpg`, label: 0 })),
      ...[0, 1].map((n) => ({ path: `not_fractured/not_fractured-000${n}.jpg`, label: 1 })),
    ];
    const before = tf.memory().numTensors;
    let rows = 0;
    for await (const { xs, ys } of createBatchStream(real, {
      root: dir,
      batchSize: 2,
      numClasses: 2,
      shuffle: true,
      augment: true,
      imageOptions: { height: 64, width: 64, channels: 3, mode: 'caffe', resize: 'letterbox' },
    })) {
      rows += xs.shape[0];
      assert.deepEqual(xs.shape.slice(1), [64, 64, 3]);
      const [min, max] = tf.tidy(() => [xs.min().dataSync()[0]!, xs.max().dataSync()[0]!]);
      assert.ok(min >= -123.7 && max <= 151.1 && max - min > 50, `range [${min}, ${max}]`);
      assert.deepEqual(tf.tidy(() => ys.sum(1).arraySync()), new Array(xs.shape[0]).fill(1));
      tf.dispose([xs, ys]);
    }
    assert.equal(rows, 5);
    assert.equal(tf.memory().numTensors, before);
  });
});
