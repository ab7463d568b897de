/**
 * FastBatchNormalization inside the project's trainer (src/ml/train/step.ts): a training step must
 * give the same weights and moving statistics as with tfjs's own BatchNormalization layer, whole
 * batches and micro-batches alike.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { FastBatchNormalization } from '../../../src/ml/models/index.ts';
import { createOptimizer, disposeOptimizer } from '../../../src/ml/train/optimizer.ts';
import { isOutOfMemoryMessage } from '../../../src/ml/train/out-of-memory.ts';
import { trainStep } from '../../../src/ml/train/step.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

const SIZE = 10;
const CLASSES = 3;

/** conv -> BN -> relu -> maxpool -> conv -> BN -> relu -> global pool -> dense, seeded. */
function buildTwin(bn: (name: string) => tf.layers.Layer): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 2] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'c1' }).apply(input) as tf.SymbolicTensor;
  x = bn('c1_bn').apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.maxPooling2d({ poolSize: 2 }).apply(x) as tf.SymbolicTensor;
  // No conv biases: BN cancels them, so their true gradient is 0 and Adam would turn rounding noise
  // (of either implementation) into full-size steps.
  x = tf.layers.conv2d({ filters: 5, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'c2' }).apply(x) as tf.SymbolicTensor;
  x = bn('c2_bn').apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), name: 'out' }).apply(x) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out });
}

/** Weights by name after `steps` trainer steps of Adam on one fixed batch. */
async function trainedWeights(model: tf.LayersModel, microBatchSize: number | undefined, steps: number): Promise<Map<string, Float32Array>> {
  const optimizer = createOptimizer({ name: 'adam', learningRate: 0.01 });
  const [xs, ys] = tf.tidy(() => [
    tf.add(tf.mul(tf.randomNormal([8, SIZE, SIZE, 2], 0, 1, 'float32', 11), 2), 1) as tf.Tensor4D,
    tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), CLASSES) as tf.Tensor2D,
  ]);
  try {
    for (let i = 0; i < steps; i++) {
      await trainStep({ model, optimizer, isOutOfMemory: isOutOfMemoryMessage }, xs!, ys!, { size: microBatchSize }, () => {});
    }
    return new Map(model.weights.map((w) => [w.originalName, w.read().dataSync() as Float32Array]));
  } finally {
    tf.dispose([xs!, ys!]);
    disposeOptimizer(optimizer);
  }
}

describe('FastBatchNormalization in trainStep', () => {
  for (const microBatchSize of [undefined, 4]) {
    it(`gives the weights and moving statistics of tfjs BatchNormalization after 3 Adam steps (micro-batch ${microBatchSize ?? 'off'})`, async () => {
      const before = tf.memory().numTensors;
      const ours = buildTwin((name) => new FastBatchNormalization({ name }));
      const theirs = buildTwin((name) => tf.layers.batchNormalization({ name }));
      const a = await trainedWeights(ours, microBatchSize, 3);
      const b = await trainedWeights(theirs, microBatchSize, 3);
      assert.deepEqual([...a.keys()], [...b.keys()], 'same weight names in the same order');
      for (const [name, values] of a) {
        const expected = b.get(name)!;
        const tol = 1e-4 * Math.max(1, ...Array.from(expected, Math.abs));
        const diff = Math.max(...Array.from(values, (v, i) => Math.abs(v - (expected[i] as number))));
        assert.ok(diff <= tol, `${name}: max diff ${diff}`);
      }
      // The comparison must not be vacuous: every BN weight moved away from its initial value.
      for (const name of ['c1_bn/gamma', 'c1_bn/beta', 'c1_bn/moving_mean', 'c2_bn/moving_variance']) {
        const initial = name.endsWith('gamma') || name.endsWith('variance') ? 1 : 0;
        assert.ok(a.get(name)!.some((v) => Math.abs(v - initial) > 1e-4), `${name} moved`);
      }
      ours.dispose();
      theirs.dispose();
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    });
  }
});
