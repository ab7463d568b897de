/**
 * The wasm training kernels against the pure-JS `cpu` backend's gradients on the same data.
 * Error measure throughout: max|wasm - cpu| / max|cpu| over all elements, required <= 1e-4.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap } from '@tensorflow/tfjs';
import { conv2DBackpropFilterWasm } from '../../../src/ml/backend/conv2d-backprop-filter.ts';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import { createRandom, deriveSeed, gaussian, randomInt } from '../../../src/ml/util/random.ts';
import type { Random } from '../../../src/ml/util/random.ts';

const TOLERANCE = 1e-4;

type Pad = 'same' | 'valid' | number | [[0, 0], [number, number], [number, number], [0, 0]];
interface ConvCase {
  x: [number, number, number, number];
  /** [KH, KW, Ci, Co] */
  w: [number, number, number, number];
  strides: number | [number, number];
  pad: Pad;
}

function gaussianArray(rand: Random, size: number): Float32Array {
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = gaussian(rand);
  return values;
}

/** Relative error max|a-b| / max|b|. */
function relativeError(actual: Float32Array, expected: Float32Array): number {
  assert.equal(actual.length, expected.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs((actual[i] ?? 0) - (expected[i] ?? 0)));
    scale = Math.max(scale, Math.abs(expected[i] ?? 0));
  }
  return diff / Math.max(scale, 1e-30);
}

/**
 * dL/dx and dL/dW of L = sum(conv2d(x, W) * r), with r a fixed random projection so every output
 * element carries a different weight, computed on `backend`.
 */
async function convGradients(backend: 'wasm' | 'cpu', c: ConvCase, seed: number): Promise<{ dx: Float32Array; dw: Float32Array }> {
  await tf.setBackend(backend);
  const rand = createRandom(seed);
  const xValues = gaussianArray(rand, c.x.reduce((a, b) => a * b, 1));
  const wValues = gaussianArray(rand, c.w.reduce((a, b) => a * b, 1));
  const before = tf.memory().numTensors;
  const [dx, dw] = tf.tidy(() => {
    const x = tf.tensor4d(xValues, c.x);
    const w = tf.tensor4d(wValues, c.w);
    const outShape = tf.conv2d(x, w, c.strides, c.pad).shape;
    const r = tf.tensor(gaussianArray(createRandom(deriveSeed(seed, 'r')), outShape.reduce((a, b) => a * b, 1)), outShape);
    const loss = (a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, c.strides, c.pad), r));
    const [gx, gw] = tf.grads(loss)([x, w]);
    return [(gx as tf.Tensor).dataSync() as Float32Array, (gw as tf.Tensor).dataSync() as Float32Array];
  });
  assert.equal(tf.memory().numTensors, before, `${backend}: no tensor leaks`);
  return { dx: Float32Array.from(dx), dw: Float32Array.from(dw) };
}

async function assertMatchesCpu(c: ConvCase, seed: number): Promise<void> {
  const wasm = await convGradients('wasm', c, seed);
  const cpu = await convGradients('cpu', c, seed);
  const label = JSON.stringify(c);
  const dxError = relativeError(wasm.dx, cpu.dx);
  const dwError = relativeError(wasm.dw, cpu.dw);
  assert.ok(dxError <= TOLERANCE, `dx relative error ${dxError} for ${label}`);
  assert.ok(dwError <= TOLERANCE, `dW relative error ${dwError} for ${label}`);
}

const FIXED_CASES: ConvCase[] = [
  { x: [2, 9, 7, 3], w: [3, 3, 3, 4], strides: 1, pad: 'same' },
  { x: [2, 9, 7, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 8, 8, 3], w: [3, 3, 3, 4], strides: 2, pad: 'same' },
  { x: [2, 8, 8, 3], w: [3, 3, 3, 4], strides: 2, pad: 'valid' },
  { x: [1, 11, 13, 5], w: [7, 7, 5, 2], strides: 2, pad: 'same' },
  { x: [1, 15, 9, 3], w: [7, 7, 3, 8], strides: 2, pad: 'valid' },
  { x: [1, 11, 13, 5], w: [1, 1, 5, 6], strides: 2, pad: 'valid' },
  { x: [1, 7, 7, 2], w: [1, 1, 2, 3], strides: 2, pad: 'same' },
  { x: [3, 10, 6, 4], w: [1, 1, 4, 6], strides: 1, pad: 'same' },
  { x: [2, 10, 9, 3], w: [1, 1, 3, 5], strides: 3, pad: 'valid' },
  { x: [2, 9, 9, 3], w: [3, 3, 3, 2], strides: 3, pad: 'valid' },
  { x: [1, 12, 10, 2], w: [2, 2, 2, 3], strides: 2, pad: 'same' },
  { x: [2, 6, 11, 3], w: [3, 5, 3, 4], strides: [1, 2], pad: 'same' },
  { x: [2, 9, 9, 3], w: [3, 3, 3, 2], strides: 1, pad: [[0, 0], [2, 1], [0, 3], [0, 0]] },
  { x: [1, 8, 8, 2], w: [3, 3, 2, 2], strides: 2, pad: 1 },
  { x: [1, 5, 5, 2], w: [1, 1, 2, 3], strides: 1, pad: [[0, 0], [1, 1], [2, 0], [0, 0]] },
  // Polyphase dx: phases without filter taps (filter smaller than the stride), mixed strides, big pads.
  { x: [1, 8, 8, 2], w: [1, 1, 2, 3], strides: 2, pad: 1 },
  { x: [2, 10, 11, 3], w: [2, 2, 3, 2], strides: 3, pad: 'same' },
  { x: [1, 13, 13, 4], w: [3, 3, 4, 5], strides: [2, 3], pad: 'valid' },
  { x: [1, 9, 9, 2], w: [3, 3, 2, 2], strides: 2, pad: [[0, 0], [3, 0], [0, 4], [0, 0]] },
  { x: [2, 17, 17, 8], w: [3, 3, 8, 16], strides: 2, pad: 'valid' },
];

describe('wasm convolution gradients match the cpu backend', () => {
  before(async () => {
    await initBackend('wasm');
  });

  for (const [index, c] of FIXED_CASES.entries()) {
    test(`case ${index}: x ${c.x.join('x')}, filter ${c.w.join('x')}, strides ${JSON.stringify(c.strides)}, pad ${JSON.stringify(c.pad)}`, async () => {
      await assertMatchesCpu(c, 1000 + index);
    });
  }

  test('twelve random shapes (odd sizes, 1x1 to 7x7, strides 1-2, same/valid) agree', async () => {
    const rand = createRandom(20240611);
    for (let i = 0; i < 12; i++) {
      const k = [1, 3, 5, 7][randomInt(rand, 0, 3)] ?? 3;
      const pad = rand() < 0.5 ? 'same' : 'valid';
      const c: ConvCase = {
        x: [randomInt(rand, 1, 3), randomInt(rand, k, k + 9), randomInt(rand, k, k + 9), randomInt(rand, 1, 6)],
        w: [k, k, 0, randomInt(rand, 1, 7)],
        strides: randomInt(rand, 1, 2),
        pad,
      };
      c.w[2] = c.x[3];
      await assertMatchesCpu(c, 5000 + i);
    }
  });

  test('a ResNet-like 3x3 64->64 layer agrees', async () => {
    await assertMatchesCpu({ x: [2, 8, 8, 64], w: [3, 3, 64, 64], strides: 1, pad: 'same' }, 77);
  });

  test('the stride-2 input gradient frees every intermediate (repeated calls)', async () => {
    await initBackend('wasm');
    const backend = tf.backend();
    const rand = createRandom(17);
    const dy = tf.tensor4d(gaussianArray(rand, 2 * 5 * 5 * 4), [2, 5, 5, 4]);
    const w = tf.tensor4d(gaussianArray(rand, 3 * 3 * 3 * 4), [3, 3, 3, 4]);
    const run = () => tf.tidy(() => tf.conv2dTranspose(dy, w, [2, 9, 9, 3], 2, 'same').dataSync());
    const first = run();
    const dataIds = backend.numDataIds();
    for (let i = 0; i < 3; i++) assert.deepEqual(run(), first);
    assert.equal(backend.numDataIds(), dataIds);
    tf.dispose([dy, w]);
  });

  test('a filter gradient summed over batch chunks equals the one-piece gradient', async () => {
    await initBackend('wasm');
    const rand = createRandom(91);
    const xShape = [5, 9, 8, 3];
    const dyShape = [5, 5, 4, 4];
    const x = tf.tensor(gaussianArray(rand, 5 * 9 * 8 * 3), xShape);
    const dy = tf.tensor(gaussianArray(rand, 5 * 5 * 4 * 4), dyShape);
    const attrs = { strides: 2, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 3, 4] };
    const backend = tf.backend();
    const run = (chunkBytes: number) => {
      const info = conv2DBackpropFilterWasm({ inputs: { x, dy }, backend, attrs: attrs as unknown as NamedAttrMap }, { chunkBytes });
      const tensor = tf.engine().makeTensorFromTensorInfo(info);
      const values = Float32Array.from(tensor.dataSync() as Float32Array);
      tensor.dispose();
      return values;
    };
    const dataIds = backend.numDataIds();
    const whole = run(2 ** 30);
    // 2 images' worth of dy per chunk: chunks of 2, 2 and 1 images.
    const chunked = run(2 * 5 * 4 * 4 * 4);
    assert.equal(backend.numDataIds(), dataIds, 'the chunk loop frees every intermediate');
    const error = relativeError(chunked, whole);
    assert.ok(error <= 1e-6, `relative error ${error}`);
    assert.ok(whole.some((v) => v !== 0));
    tf.dispose([x, dy]);
  });
});

describe('wasm BatchMatMul with transposed operands matches the cpu backend', () => {
  for (const [transposeA, transposeB] of [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ] as const) {
    test(`transposeA=${transposeA}, transposeB=${transposeB}, rank 2 and rank 3 with batch 1`, async () => {
      await initBackend('wasm');
      const rand = createRandom(deriveSeed(3, `${transposeA}${transposeB}`));
      const a = gaussianArray(rand, 37 * 19);
      const b = gaussianArray(rand, 19 * 23);
      const aShape = transposeA ? [19, 37] : [37, 19];
      const bShape = transposeB ? [23, 19] : [19, 23];
      const run = async (backend: string, rank3: boolean) => {
        await tf.setBackend(backend);
        const before = tf.memory().numTensors;
        const out = tf.tidy(() => {
          const ta = tf.tensor(a, rank3 ? [1, ...aShape] : aShape);
          const tb = tf.tensor(b, rank3 ? [1, ...bShape] : bShape);
          const product = tf.matMul(ta, tb, transposeA, transposeB);
          assert.deepEqual(product.shape, rank3 ? [1, 37, 23] : [37, 23]);
          return product.dataSync() as Float32Array;
        });
        assert.equal(tf.memory().numTensors, before);
        return Float32Array.from(out);
      };
      for (const rank3 of [false, true]) {
        const error = relativeError(await run('wasm', rank3), await run('cpu', rank3));
        assert.ok(error <= TOLERANCE, `relative error ${error} (rank3=${rank3})`);
      }
    });
  }
});
