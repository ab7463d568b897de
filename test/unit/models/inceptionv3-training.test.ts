/**
 * InceptionV3 trains in tfjs (tensorflow/tfjs#2868 made its scale-less BN throw in training mode).
 * Runs on the wasm backend with the project's training kernels: the pure-JS cpu backend's
 * Conv2DBackpropFilter needs minutes per InceptionV3 step, too slow for a unit test.
 */
import assert from 'node:assert/strict';
import { before, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import { buildModel } from '../../../src/ml/models/index.ts';

before(async () => {
  await initBackend('wasm');
});

it('InceptionV3 at 75x75 takes two SGD steps: finite loss, every weight kind and BN statistic moves', async () => {
  const before = tf.memory().numTensors;
  const model = buildModel({ architecture: 'inceptionv3', inputShape: [75, 75, 3], numClasses: 3, seed: 1 });
  const optimizer = tf.train.sgd(0.01);
  model.compile({ optimizer, loss: 'categoricalCrossentropy' });
  const bnLayers = model.layers.filter((l) => l.getClassName() === 'FastBatchNormalization');
  assert.equal(bnLayers.length, 94);
  const snapshot = (): Map<string, Float32Array> =>
    new Map(model.weights.map((w) => [w.originalName, w.read().dataSync().slice() as Float32Array]));
  const initial = snapshot();

  const [x, y] = tf.tidy(() => [
    tf.randomUniform([2, 75, 75, 3], -1, 1, 'float32', 2),
    tf.oneHot(tf.tensor1d([0, 2], 'int32'), 3),
  ]);
  const losses: number[] = [];
  for (let step = 0; step < 2; step++) {
    losses.push((await model.trainOnBatch(x!, y!)) as number);
  }
  tf.dispose([x!, y!]);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);

  const after = snapshot();
  const moved = (name: string): boolean => {
    const a = initial.get(name);
    const b = after.get(name);
    assert.ok(a && b, name);
    return a.some((v, i) => v !== b[i]);
  };
  for (const layer of bnLayers) {
    for (const w of ['moving_mean', 'moving_variance', 'beta']) {
      assert.ok(moved(`${layer.name}/${w}`), `${layer.name}/${w} updated`);
    }
  }
  for (const name of ['conv2d/kernel', 'conv2d_93/kernel', 'predictions/kernel', 'predictions/bias']) {
    assert.ok(moved(name), `${name} trained`);
  }

  model.dispose();
  optimizer.dispose();
  assert.equal(tf.memory().numTensors, before);
});
