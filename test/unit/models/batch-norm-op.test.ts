import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { batchNormTraining } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

const EPS = 1e-3;

/** The straightforward tfjs version: tf.moments, then tf.batchNorm (autodiff through both). */
function reference(x: tf.Tensor, gamma: tf.Tensor | undefined, beta: tf.Tensor | undefined, epsilon: number): tf.Tensor {
  const { mean, variance } = tf.moments(x, [...Array(x.rank - 1).keys()]);
  if (x.rank === 4) {
    // Constant unit scale / zero offset when absent: tf.batchNorm's gradient fails without them
    // (the second half of tensorflow/tfjs#2868).
    const scale = gamma ?? tf.onesLike(mean);
    const offset = beta ?? tf.zerosLike(mean);
    return tf.batchNorm(x, mean as tf.Tensor1D, variance as tf.Tensor1D, offset as tf.Tensor1D, scale as tf.Tensor1D, epsilon);
  }
  // tf.batchNorm's gradient only supports rank 4; the same formula in plain ops for rank 2.
  let y = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
  if (gamma) y = tf.mul(y, gamma);
  return beta ? tf.add(y, beta) : y;
}

/** True when tf.clone allocates a new data buffer on the current backend (wasm) instead of sharing. */
function cloneCopies(): boolean {
  const a = tf.ones([2]);
  const start = tf.engine().backend.numDataIds();
  const b = tf.clone(a);
  const copies = tf.engine().backend.numDataIds() > start;
  tf.dispose([a, b]);
  return copies;
}

/** Max |a - e| relative to max |e| (so near-zero entries do not dominate). */
function relativeError(actual: tf.Tensor, expected: tf.Tensor): number {
  const a = actual.dataSync();
  const e = expected.dataSync();
  assert.equal(a.length, e.length);
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < e.length; i++) {
    scale = Math.max(scale, Math.abs(e[i] as number));
    diff = Math.max(diff, Math.abs((a[i] as number) - (e[i] as number)));
  }
  return diff / Math.max(scale, 1e-12);
}

interface Case {
  shape: number[];
  gamma: boolean;
  beta: boolean;
}

const CASES: Case[] = [
  { shape: [4, 5, 3, 7], gamma: true, beta: true },
  { shape: [4, 5, 3, 7], gamma: false, beta: true },
  { shape: [3, 9, 11, 2], gamma: true, beta: false },
  { shape: [6, 13], gamma: true, beta: true }, // [N, C] after a dense layer
  { shape: [5, 3], gamma: false, beta: false },
  { shape: [1, 3, 2, 5], gamma: true, beta: true }, // batch 1: M = 6
  { shape: [2, 1, 1, 4], gamma: true, beta: true }, // M = 2
];

describe('batchNormTraining', () => {
  for (const { shape, gamma: withGamma, beta: withBeta } of CASES) {
    const label = `${shape.join('x')}, ${withGamma ? 'with' : 'without'} gamma, ${withBeta ? 'with' : 'without'} beta`;
    it(`matches tf.moments + tf.batchNorm in output, statistics and gradients (${label})`, () => {
      const before = tf.memory().numTensors;
      tf.tidy(() => {
        const channels = shape.at(-1) as number;
        // An offset mean and a spread unlike 1 so that centring and scaling both matter.
        const x = tf.add(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', 1), 3), 5);
        const gamma = withGamma ? tf.randomUniform([channels], 0.5, 2, 'float32', 2) : undefined;
        const beta = withBeta ? tf.randomNormal([channels], 0, 1, 'float32', 3) : undefined;
        // A non-uniform upstream gradient, else d/dx of a normalised sum is zero.
        const w = tf.randomNormal(shape, 0, 1, 'float32', 4);

        const ours = batchNormTraining(x, gamma, beta, EPS);
        const ref = reference(x, gamma, beta, EPS);
        assert.ok(relativeError(ours.y, ref) < 1e-4, `y: ${relativeError(ours.y, ref)}`);
        const moments = tf.moments(x, [...Array(x.rank - 1).keys()]);
        assert.deepEqual(ours.mean.shape, [channels]);
        assert.ok(relativeError(ours.mean, moments.mean) < 1e-5, 'mean');
        assert.ok(relativeError(ours.variance, moments.variance) < 1e-4, 'variance');

        const inputs = [x, ...(gamma ? [gamma] : []), ...(beta ? [beta] : [])];
        const split = (args: tf.Tensor[]): [tf.Tensor, tf.Tensor | undefined, tf.Tensor | undefined] => [
          args[0] as tf.Tensor,
          withGamma ? args[1] : undefined,
          withBeta ? args[withGamma ? 2 : 1] : undefined,
        ];
        const oursGrads = tf.grads((...args: tf.Tensor[]) => {
          const [xi, g, b] = split(args);
          return tf.sum(tf.mul(batchNormTraining(xi, g, b, EPS).y, w));
        })(inputs);
        const refGrads = tf.grads((...args: tf.Tensor[]) => {
          const [xi, g, b] = split(args);
          return tf.sum(tf.mul(reference(xi, g, b, EPS), w));
        })(inputs);
        assert.equal(oursGrads.length, inputs.length);
        oursGrads.forEach((g, i) => {
          const err = relativeError(g, refGrads[i] as tf.Tensor);
          assert.ok(err < 1e-4, `gradient of input ${i}: relative error ${err}`);
        });
        // Guard against a vacuous comparison (both all zero) where the gradient is informative.
        if (shape.slice(0, -1).reduce((a, b) => a * b, 1) > 2) {
          assert.ok(tf.max(tf.abs(oursGrads[0] as tf.Tensor)).dataSync()[0]! > 1e-3, 'dx is not all zero');
        }
      });
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    });
  }

  it('gives zero dx and y = beta when every channel is constant (variance 0)', () => {
    tf.tidy(() => {
      const x = tf.fill([1, 1, 1, 3], 2.5);
      const beta = tf.tensor1d([1, -2, 0.5]);
      const { y } = batchNormTraining(x, undefined, beta, EPS);
      assert.deepEqual(Array.from(y.dataSync()), [1, -2, 0.5]);
      const [dx] = tf.grads((xi: tf.Tensor) => tf.sum(tf.mul(batchNormTraining(xi, undefined, beta, EPS).y, tf.tensor1d([1, 2, 3]))))([x]);
      assert.deepEqual(Array.from(dx!.dataSync()), [0, 0, 0]);
    });
  });

  it('keeps only its output and two [C] vectors while a gradient tape records, and frees all afterwards', () => {
    const shape = [4, 8, 8, 16];
    const x = tf.randomNormal(shape, 0, 1, 'float32', 5);
    const gamma = tf.variable(tf.ones([16]), true, 'bn_op_test_gamma');
    const beta = tf.variable(tf.zeros([16]), true, 'bn_op_test_beta');
    // Data buffers, not tensors: saved-for-gradient clones share their source's buffer (and
    // tf.memory().numBytes counts each clone again).
    const buffers = (): number => tf.engine().backend.numDataIds();
    const keptWhileTaping = (normalize: (xi: tf.Tensor) => tf.Tensor): number => {
      let added = 0;
      const { value, grads } = tf.variableGrads(() => {
        const start = buffers();
        const y = normalize(x);
        added = buffers() - start;
        return tf.sum(tf.square(y)) as tf.Scalar;
      }, [gamma, beta]);
      assert.deepEqual(Object.keys(grads).sort(), ['bn_op_test_beta', 'bn_op_test_gamma']);
      tf.dispose([value, ...Object.values(grads)]);
      return added;
    };
    const before = tf.memory().numTensors;
    const ours = keptWhileTaping((xi) => {
      const { y, mean, variance } = batchNormTraining(xi, gamma, beta, EPS);
      tf.dispose([mean, variance]);
      return y;
    });
    // y, and the mean and 1/sqrt(variance + epsilon) saved for the gradient (the returned statistics
    // were disposed inside the closure); x and gamma are saved as clones, which share their buffer
    // on cpu but are copies on wasm (tfjs-backend-wasm's Identity kernel copies).
    assert.equal(ours, 3 + (cloneCopies() ? 2 : 0));
    const ops = keptWhileTaping((xi) => reference(xi, gamma, beta, EPS));
    assert.ok(ops > ours, `tf ops version keeps ${ops} buffers`);
    assert.equal(tf.memory().numTensors, before, 'tape and temporaries released');
    tf.dispose([x, gamma, beta]);
  });

  it('rejects inputs of rank < 2 and gamma or beta of the wrong shape', () => {
    tf.tidy(() => {
      const bad = (fn: () => unknown): void => assert.throws(fn, (e: unknown) => isMlError(e, 'INPUT_SHAPE_INVALID'));
      bad(() => batchNormTraining(tf.ones([5]), undefined, undefined, EPS));
      bad(() => batchNormTraining(tf.ones([2, 3]), tf.ones([4]), undefined, EPS));
      bad(() => batchNormTraining(tf.ones([2, 3]), undefined, tf.ones([3, 1]), EPS));
    });
  });
});
