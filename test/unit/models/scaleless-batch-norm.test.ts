import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ScalelessBatchNormalization } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

const SHAPE = [4, 3, 2, 5] as const; // [batch, h, w, channels]
const EPS = 1e-3;

/** A BN layer built (through a symbolic call, as in a model) for SHAPE. */
function makeLayer(args: ConstructorParameters<typeof ScalelessBatchNormalization>[0] = {}): ScalelessBatchNormalization {
  const layer = new ScalelessBatchNormalization({ name: 'bn', ...args });
  layer.apply(tf.input({ shape: [SHAPE[1], SHAPE[2], SHAPE[3]] }));
  return layer;
}

function input(seed = 1): tf.Tensor4D {
  return tf.randomNormal([...SHAPE], 2, 3, 'float32', seed) as tf.Tensor4D;
}

/** Per-channel mean and biased variance over batch, height and width, computed in plain JS. */
function channelStats(values: Float32Array, channels: number): { mean: number[]; variance: number[] } {
  const count = values.length / channels;
  const mean = Array.from({ length: channels }, (_, c) => {
    let s = 0;
    for (let i = c; i < values.length; i += channels) s += values[i] as number;
    return s / count;
  });
  const variance = mean.map((m, c) => {
    let s = 0;
    for (let i = c; i < values.length; i += channels) s += ((values[i] as number) - m) ** 2;
    return s / count;
  });
  return { mean, variance };
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i] as number;
    const e = expected[i] as number;
    assert.ok(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${a} vs ${e}`);
  }
}

describe('ScalelessBatchNormalization', () => {
  it('has Keras scale=False weights: beta (trainable), moving_mean and moving_variance, no gamma', () => {
    const layer = makeLayer();
    assert.deepEqual(layer.weights.map((w) => w.originalName), ['bn/beta', 'bn/moving_mean', 'bn/moving_variance']);
    assert.deepEqual(layer.trainableWeights.map((w) => w.originalName), ['bn/beta']);
    assert.equal(layer.countParams(), 3 * SHAPE[3]);
    const noCenter = makeLayer({ center: false, name: 'bn2' });
    assert.equal(noCenter.countParams(), 2 * SHAPE[3]);
    assert.deepEqual(noCenter.weights.map((w) => w.originalName), ['bn2/moving_mean', 'bn2/moving_variance']);
    layer.dispose();
    noCenter.dispose();
  });

  it('normalises with batch statistics in training and moves the averages with momentum 0.99', () => {
    const layer = makeLayer();
    const beta = tf.tensor1d([0.5, -1, 0, 2, 0.25]);
    layer.setWeights([beta, tf.zeros([5]), tf.ones([5])].map((t) => t));
    const before = tf.memory().numTensors;
    const x = input();
    const xs = x.dataSync() as Float32Array;
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    const ys = y.dataSync();
    tf.dispose([x, y]);
    assert.equal(tf.memory().numTensors, before);

    const { mean, variance } = channelStats(xs, 5);
    const betas = [0.5, -1, 0, 2, 0.25];
    const expected = Array.from(xs, (v, i) => (v - (mean[i % 5] as number)) / Math.sqrt((variance[i % 5] as number) + EPS) + (betas[i % 5] as number));
    assertClose(ys, expected, 1e-4, 'output');
    const [, movingMean, movingVariance] = layer.getWeights();
    assertClose(movingMean!.dataSync(), mean.map((m) => 0.01 * m), 1e-5, 'moving_mean');
    assertClose(movingVariance!.dataSync(), variance.map((v) => 0.99 + 0.01 * v), 1e-5, 'moving_variance');
    tf.dispose(beta);
    layer.dispose();
  });

  it('normalises with the moving statistics in inference and leaves them unchanged', () => {
    const layer = makeLayer({ epsilon: 0.01 });
    const mm = [1, 2, 3, -1, 0];
    const mv = [4, 0.5, 1, 2, 9];
    const b = [0, 1, -1, 0.5, 2];
    const weights = [tf.tensor1d(b), tf.tensor1d(mm), tf.tensor1d(mv)];
    layer.setWeights(weights);
    tf.dispose(weights);
    const before = tf.memory().numTensors;
    const x = input(2);
    const xs = x.dataSync();
    for (const kwargs of [{}, { training: false }]) {
      const y = layer.apply(x, kwargs) as tf.Tensor;
      const expected = Array.from(xs, (v, i) => (v - (mm[i % 5] as number)) / Math.sqrt((mv[i % 5] as number) + 0.01) + (b[i % 5] as number));
      assertClose(y.dataSync(), expected, 1e-5, 'output');
      y.dispose();
    }
    x.dispose();
    assert.equal(tf.memory().numTensors, before);
    const [, movingMean, movingVariance] = layer.getWeights();
    assert.deepEqual(Array.from(movingMean!.dataSync()), mm);
    assertClose(movingVariance!.dataSync(), mv, 1e-7, 'moving_variance');
    layer.dispose();
  });

  it('runs in inference mode while frozen, even in a training call, like Keras', () => {
    const layer = makeLayer();
    layer.trainable = false;
    const x = input(6);
    const frozen = layer.apply(x, { training: true }) as tf.Tensor;
    const inference = layer.apply(x, { training: false }) as tf.Tensor;
    assert.deepEqual(Array.from(frozen.dataSync()), Array.from(inference.dataSync()));
    const [, movingMean, movingVariance] = layer.getWeights();
    assert.ok(movingMean!.dataSync().every((v) => v === 0) && movingVariance!.dataSync().every((v) => v === 1));
    layer.trainable = true;
    const trained = layer.apply(x, { training: true }) as tf.Tensor;
    assert.notDeepEqual(Array.from(trained.dataSync()), Array.from(inference.dataSync()));
    tf.dispose([x, frozen, inference, trained]);
    layer.dispose();
  });

  it('passes gradients to its input and beta equal to those of the unfused formula', () => {
    const layer = makeLayer();
    const before = tf.memory().numTensors;
    const [dx, dBeta, refDx, refDBeta] = tf.tidy(() => {
      const x = input(3);
      // A non-uniform upstream gradient, else d/dx of a normalised sum is zero.
      const w = tf.randomNormal([...SHAPE], 0, 1, 'float32', 4);
      const betaValue = tf.tensor1d([0.1, 0.2, 0.3, 0.4, 0.5]);
      const beta = layer.trainableWeights[0]!.read() as tf.Variable;
      beta.assign(betaValue);
      const f = (xi: tf.Tensor) => tf.sum(tf.mul(layer.apply(xi, { training: true }) as tf.Tensor, w)) as tf.Scalar;
      const g = tf.grad(f)(x);
      const { grads } = tf.variableGrads(() => f(x), [beta]);
      const reference = (xi: tf.Tensor, b: tf.Tensor) => {
        const { mean, variance } = tf.moments(xi, [0, 1, 2]);
        return tf.sum(tf.mul(tf.add(tf.div(tf.sub(xi, mean), tf.sqrt(tf.add(variance, EPS))), b), w));
      };
      const [rx, rb] = tf.grads(reference)([x, betaValue]);
      return [g, grads[beta.name] as tf.Tensor, rx!, rb!];
    });
    assertClose(dx.dataSync(), refDx.dataSync(), 1e-3, 'dx');
    assertClose(dBeta.dataSync(), refDBeta.dataSync(), 1e-4, 'dbeta');
    assert.ok(Array.from(dx.dataSync()).some((v) => Math.abs(v) > 1e-3), 'dx is not all zero');
    tf.dispose([dx, dBeta, refDx, refDBeta]);
    assert.equal(tf.memory().numTensors, before);
    layer.dispose();
  });

  it('trains with model.fit (the case tfjs batchNormalization({scale: false}) throws on)', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        new ScalelessBatchNormalization({ name: 'fit_bn' }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    const before = tf.memory().numTensors;
    const optimizer = tf.train.adam(0.05);
    model.compile({ optimizer, loss: 'categoricalCrossentropy' });
    const x = tf.tidy(() => {
      // Class 1 images are brighter in the centre: learnable through conv + BN + pooling.
      const base = tf.randomUniform([16, 8, 8, 1], 0, 1, 'float32', 5);
      const mask = tf.pad(tf.ones([1, 4, 4, 1]), [[0, 0], [2, 2], [2, 2], [0, 0]]);
      const labels = tf.tensor1d([...Array(16).keys()].map((i) => i % 2), 'float32').reshape([16, 1, 1, 1]);
      return tf.add(base, tf.mul(tf.mul(mask, labels), 2));
    });
    const y = tf.tidy(() => tf.oneHot(tf.tensor1d([...Array(16).keys()].map((i) => i % 2), 'int32'), 2));
    const history = await model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0, shuffle: false });
    const losses = history.history['loss'] as number[];
    assert.ok((losses.at(-1) as number) < (losses[0] as number) * 0.8, `loss fell: ${losses.join(', ')}`);
    const movingMean = model.getLayer('fit_bn').getWeights()[1]!.dataSync();
    assert.ok(Array.from(movingMean).some((v) => v !== 0), 'moving mean updated');
    tf.dispose([x, y]);
    optimizer.dispose(); // its state is the only thing fit may keep
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });

  it('survives a save/load round trip with its class, config and identical predictions', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
        new ScalelessBatchNormalization({ name: 'rt_bn', epsilon: 0.002, momentum: 0.9 }),
        tf.layers.flatten({}),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
      ],
    });
    const bn = model.getLayer('rt_bn');
    const stats = [tf.tensor1d([0.3, -0.2, 0.1]), tf.tensor1d([0.5, -1, 2]), tf.tensor1d([2, 0.5, 3])];
    bn.setWeights(stats);
    tf.dispose(stats);
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    assert.ok(artifacts);
    const topology = JSON.stringify(artifacts.modelTopology);
    assert.match(topology, /"class_name":"ScalelessBatchNormalization"/);
    assert.ok(artifacts.weightSpecs?.some((s) => s.name === 'rt_bn/beta'));
    assert.ok(!artifacts.weightSpecs?.some((s) => s.name.includes('gamma')));

    const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
    const loadedBn = loaded.getLayer('rt_bn') as ScalelessBatchNormalization;
    assert.ok(loadedBn instanceof ScalelessBatchNormalization);
    assert.equal(loadedBn.epsilon, 0.002);
    assert.equal(loadedBn.momentum, 0.9);
    const before = tf.memory().numTensors;
    const [a, b] = tf.tidy(() => {
      const x = tf.randomUniform([5, 6, 6, 2], -1, 1, 'float32', 9);
      return [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    });
    assert.deepEqual(Array.from(b!.dataSync()), Array.from(a!.dataSync()));
    tf.dispose([a!, b!]);
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
    loaded.dispose();
  });
});
