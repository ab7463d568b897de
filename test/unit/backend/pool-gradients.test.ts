/**
 * The wasm pooling gradients against the pure-JS `cpu` backend's on the same data, including tied
 * maxima (first position wins on cpu), windows in the padding and all -Infinity windows.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import { createRandom, deriveSeed, gaussian, randomInt } from '../../../src/ml/util/random.ts';
import type { Random } from '../../../src/ml/util/random.ts';

interface PoolCase {
  x: [number, number, number, number];
  pool: [number, number];
  strides: [number, number];
  pad: 'same' | 'valid';
}

type PoolKind = 'max' | 'avg';

/** Gaussian values, or small integers (many ties) when `tied`. */
function inputValues(rand: Random, size: number, tied: boolean): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = tied ? randomInt(rand, 0, 2) : gaussian(rand);
  return values;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): { diff: number; scale: number } {
  assert.equal(a.length, b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs((a[i] ?? 0) - (b[i] ?? 0)));
    scale = Math.max(scale, Math.abs(b[i] ?? 0));
  }
  return { diff, scale };
}

/** dL/dx of L = sum(pool(x) * r), r a fixed random projection, on `backend`. */
async function poolGradient(backend: 'wasm' | 'cpu', kind: PoolKind, c: PoolCase, xValues: Float32Array, seed: number): Promise<Float32Array> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const dx = tf.tidy(() => {
    const x = tf.tensor4d(xValues, c.x);
    const pool = (t: tf.Tensor) =>
      kind === 'max' ? tf.maxPool(t as tf.Tensor4D, c.pool, c.strides, c.pad) : tf.avgPool(t as tf.Tensor4D, c.pool, c.strides, c.pad);
    const outShape = pool(x).shape;
    const rand = createRandom(deriveSeed(seed, 'r'));
    const r = tf.tensor(inputValues(rand, outShape.reduce((a, b) => a * b, 1), false), outShape);
    const grad = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(pool(t), r)))(x);
    return grad.dataSync() as Float32Array;
  });
  assert.equal(tf.memory().numTensors, before, `${backend}: no tensor leaks`);
  return Float32Array.from(dx);
}

async function assertMatchesCpu(kind: PoolKind, c: PoolCase, seed: number, tied: boolean): Promise<void> {
  const xValues = inputValues(createRandom(seed), c.x.reduce((a, b) => a * b, 1), tied);
  const wasm = await poolGradient('wasm', kind, c, xValues, seed);
  const cpu = await poolGradient('cpu', kind, c, xValues, seed);
  const { diff, scale } = maxAbsDiff(wasm, cpu);
  assert.ok(scale > 0, 'the gradient is not all zero');
  assert.ok(diff <= 1e-6 * scale, `${kind} pool ${JSON.stringify(c)} tied=${tied}: max diff ${diff} (scale ${scale})`);
}

const CASES: PoolCase[] = [
  { x: [2, 8, 8, 3], pool: [2, 2], strides: [2, 2], pad: 'valid' },
  { x: [2, 9, 7, 5], pool: [2, 2], strides: [2, 2], pad: 'valid' },
  { x: [2, 9, 7, 5], pool: [2, 2], strides: [2, 2], pad: 'same' },
  { x: [2, 11, 11, 4], pool: [3, 3], strides: [2, 2], pad: 'valid' },
  { x: [2, 11, 10, 4], pool: [3, 3], strides: [2, 2], pad: 'same' },
  { x: [1, 7, 9, 6], pool: [3, 3], strides: [1, 1], pad: 'same' },
  { x: [1, 10, 8, 2], pool: [3, 2], strides: [1, 2], pad: 'same' },
];

describe('wasm pooling gradients match the cpu backend', () => {
  before(async () => {
    await initBackend('wasm');
  });

  for (const [index, c] of CASES.entries()) {
    const label = `pool ${c.pool.join('x')} stride ${c.strides.join('x')} ${c.pad} on ${c.x.join('x')}`;
    test(`max ${label}, distinct and tied values`, async () => {
      await assertMatchesCpu('max', c, 300 + index, false);
      await assertMatchesCpu('max', c, 400 + index, true);
    });
    test(`avg ${label}`, async () => {
      await assertMatchesCpu('avg', c, 500 + index, false);
    });
  }

  test('max pool: random shapes agree with cpu', async () => {
    const rand = createRandom(808);
    for (let i = 0; i < 8; i++) {
      const k = randomInt(rand, 1, 4);
      const s = randomInt(rand, 1, 3);
      const c: PoolCase = {
        x: [randomInt(rand, 1, 3), randomInt(rand, k, k + 8), randomInt(rand, k, k + 8), randomInt(rand, 1, 9)],
        pool: [k, k],
        strides: [s, s],
        pad: rand() < 0.5 ? 'same' : 'valid',
      };
      await assertMatchesCpu('max', c, 900 + i, rand() < 0.5);
    }
  });

  test('max pool: windows of -Infinity pass no gradient, as on cpu', async () => {
    const c: PoolCase = { x: [1, 4, 4, 2], pool: [2, 2], strides: [2, 2], pad: 'valid' };
    const xValues = inputValues(createRandom(5), 32, false);
    // The whole top-left window of channel 0 is -Infinity.
    for (const [y, x] of [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ] as const) {
      xValues[(y * 4 + x) * 2] = Number.NEGATIVE_INFINITY;
    }
    const wasm = await poolGradient('wasm', 'max', c, xValues, 5);
    const cpu = await poolGradient('cpu', 'max', c, xValues, 5);
    assert.deepEqual(Array.from(wasm), Array.from(cpu));
    assert.equal(wasm[0], 0);
  });

  test('max pool gradient frees everything it allocates (repeated calls)', async () => {
    await tf.setBackend('wasm');
    const backend = tf.backend();
    const x = tf.tensor4d(inputValues(createRandom(6), 2 * 9 * 9 * 3, false), [2, 9, 9, 3]);
    const step = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 3, 2, 'same')))(x).dataSync());
    step();
    const dataIds = backend.numDataIds();
    for (let i = 0; i < 3; i++) step();
    assert.equal(backend.numDataIds(), dataIds);
    x.dispose();
  });
});
