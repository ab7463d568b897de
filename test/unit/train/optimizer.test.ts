import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { isMlError } from '../../../src/ml/errors.ts';
import {
  createOptimizer,
  disposeOptimizer,
  getLearningRate,
  restoreOptimizerState,
  saveOptimizerState,
  setLearningRate,
} from '../../../src/ml/train/optimizer.ts';
import type { TrainOptimizer } from '../../../src/ml/train/optimizer.ts';
import type { OptimizerSpec } from '../../../src/ml/train/types.ts';

before(async () => {
  await useTestBackend();
});

/** Applies a constant gradient `g` to `v` and returns how far v moved. */
function stepDelta(optimizer: TrainOptimizer, v: tf.Variable, g: number): number {
  const before = v.dataSync()[0] as number;
  tf.tidy(() => optimizer.applyGradients([{ name: v.name, tensor: tf.tensor1d([g]) }]));
  return (v.dataSync()[0] as number) - before;
}

describe('optimizer', () => {
  test('setLearningRate changes the step Adam actually takes (its learningRate field is read per step)', () => {
    const v = tf.variable(tf.tensor1d([1]));
    const adam = createOptimizer({ name: 'adam', learningRate: 0.1 });
    // With a constant gradient Adam's bias-corrected m/sqrt(v) is 1, so a step moves by exactly -lr.
    assert.ok(Math.abs(stepDelta(adam, v, 2) + 0.1) < 1e-5);
    setLearningRate(adam, 0.01);
    assert.equal(getLearningRate(adam), 0.01);
    assert.ok(Math.abs(stepDelta(adam, v, 2) + 0.01) < 1e-5);
    disposeOptimizer(adam);
    v.dispose();
  });

  for (const spec of [{ name: 'sgd', learningRate: 0.1 }, { name: 'sgd', learningRate: 0.1, momentum: 0.5 }] as OptimizerSpec[]) {
    test(`setLearningRate changes the step of ${spec.momentum === undefined ? 'plain SGD' : 'SGD with momentum'}`, () => {
      const v = tf.variable(tf.tensor1d([1]));
      const before = tf.memory().numTensors;
      const sgd = createOptimizer(spec);
      assert.ok(Math.abs(stepDelta(sgd, v, 2) + 0.2) < 1e-6);
      setLearningRate(sgd, 0.01);
      // Momentum carries 0.5 * previous accumulation (2) into the new step: 0.01 * (0.5 * 2 + 2).
      const expected = spec.momentum === undefined ? -0.02 : -0.03;
      assert.ok(Math.abs(stepDelta(sgd, v, 2) - expected) < 1e-6);
      disposeOptimizer(sgd);
      // Includes the -lr scalar tfjs's MomentumOptimizer.dispose forgets.
      assert.equal(tf.memory().numTensors, before);
      v.dispose();
    });
  }

  test('saved Adam state restored into a new optimizer continues exactly (moments and iteration count)', async () => {
    const a = tf.variable(tf.tensor1d([1, -1]));
    const b = tf.variable(tf.tensor1d([1, -1]));
    const before = tf.memory().numTensors;
    const first = createOptimizer({ name: 'adam', learningRate: 0.05 });
    const grads = [[0.3, -2], [1, 0.5], [-0.7, 0.1]];
    const apply = (opt: TrainOptimizer, v: tf.Variable, g: number[]): void =>
      tf.tidy(() => opt.applyGradients([{ name: v.name, tensor: tf.tensor1d(g) }]));
    for (const g of grads) apply(first, a, g);
    b.assign(a);
    const state = await saveOptimizerState(first);
    const second = createOptimizer({ name: 'adam', learningRate: 0.05 });
    await restoreOptimizerState(second, state);
    apply(first, a, [0.2, 0.9]);
    apply(second, b, [0.2, 0.9]);
    // A fresh optimizer (no restore) would take a different step, so equality proves the restore.
    const fresh = createOptimizer({ name: 'adam', learningRate: 0.05 });
    const c = tf.tidy(() => tf.variable(b.clone()));
    apply(fresh, c, [0.2, 0.9]);
    const [va, vb, vc] = [a, b, c].map((v) => Array.from(v.dataSync()));
    assert.deepEqual(vb, va);
    assert.ok(Math.abs((vc?.[0] as number) - (va?.[0] as number)) > 1e-4);
    [first, second, fresh].forEach(disposeOptimizer);
    c.dispose();
    assert.equal(tf.memory().numTensors, before);
    a.dispose();
    b.dispose();
  });

  test('rejects unknown optimizers and bad hyper-parameters with INVALID_ARGUMENT', () => {
    assert.throws(() => createOptimizer({ name: 'rmsprop' as 'adam', learningRate: 0.1 }), (e: unknown) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => createOptimizer({ name: 'adam', learningRate: 0 }), (e: unknown) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => createOptimizer({ name: 'sgd', learningRate: 0.1, momentum: 1 }), (e: unknown) => isMlError(e, 'INVALID_ARGUMENT'));
  });
});
