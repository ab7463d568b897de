import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { FastBatchNormalization, ScalelessBatchNormalization, type FastBatchNormalizationArgs } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

const SHAPE = [4, 3, 2, 5] as const; // [batch, h, w, channels]
const C = SHAPE[3];
const EPS = 1e-3;
const GAMMA = [1.5, 0.5, 2, 1, 0.75];
const BETA = [0.5, -1, 0, 2, 0.25];

/** A BN layer built (through a symbolic call, as in a model) for `shape`. */
function makeLayer(args: FastBatchNormalizationArgs = {}, shape: readonly number[] = SHAPE): FastBatchNormalization {
  const layer = new FastBatchNormalization({ name: 'bn', ...args });
  layer.apply(tf.input({ shape: shape.slice(1) }));
  return layer;
}

/** Sets the layer's weights by name (gamma only when it has one). */
function setWeights(layer: FastBatchNormalization, values: { gamma?: number[]; beta?: number[]; mean?: number[]; variance?: number[] }): void {
  const byName: Record<string, number[] | undefined> = {
    gamma: values.gamma,
    beta: values.beta,
    moving_mean: values.mean,
    moving_variance: values.variance,
  };
  const tensors = layer.weights.map((w) => {
    const key = w.originalName.slice(layer.name.length + 1);
    const v = byName[key];
    return v === undefined ? w.read().clone() : tf.tensor1d(v);
  });
  layer.setWeights(tensors);
  tf.dispose(tensors);
}

function weight(layer: tf.layers.Layer, name: string): Float32Array {
  const w = layer.weights.find((v) => v.originalName === `${layer.name}/${name}`);
  assert.ok(w, `${layer.name}/${name}`);
  return w.read().dataSync() as Float32Array;
}

function input(seed = 1, shape: readonly number[] = SHAPE): tf.Tensor {
  return tf.randomNormal([...shape], 2, 3, 'float32', seed);
}

/** Per-channel mean and biased variance over every axis but the last, computed in plain JS. */
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

async function roundTrip(model: tf.LayersModel): Promise<{ topology: string; weightNames: string[]; loaded: tf.LayersModel }> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  assert.ok(artifacts);
  const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  return { topology: JSON.stringify(artifacts.modelTopology), weightNames: (artifacts.weightSpecs ?? []).map((s) => s.name), loaded };
}

describe('FastBatchNormalization', () => {
  it('has Keras weights in Keras order: gamma and beta (trainable), moving_mean and moving_variance', () => {
    const full = makeLayer();
    assert.deepEqual(full.weights.map((w) => w.originalName), ['bn/gamma', 'bn/beta', 'bn/moving_mean', 'bn/moving_variance']);
    assert.deepEqual(full.trainableWeights.map((w) => w.originalName), ['bn/gamma', 'bn/beta']);
    assert.equal(full.countParams(), 4 * C);
    const scaleless = makeLayer({ scale: false, name: 'bn2' });
    assert.deepEqual(scaleless.weights.map((w) => w.originalName), ['bn2/beta', 'bn2/moving_mean', 'bn2/moving_variance']);
    assert.equal(scaleless.countParams(), 3 * C);
    const bare = makeLayer({ scale: false, center: false, name: 'bn3' });
    assert.deepEqual(bare.weights.map((w) => w.originalName), ['bn3/moving_mean', 'bn3/moving_variance']);
    assert.deepEqual([full.momentum, full.epsilon], [0.99, 1e-3], 'Keras defaults');
    for (const layer of [full, scaleless, bare]) layer.dispose();
  });

  for (const scale of [true, false]) {
    it(`normalises with batch statistics in training and moves the averages with momentum 0.99 (scale ${scale})`, () => {
      const layer = makeLayer({ scale });
      setWeights(layer, { gamma: GAMMA, beta: BETA });
      const before = tf.memory().numTensors;
      const x = input();
      const xs = x.dataSync() as Float32Array;
      const y = layer.apply(x, { training: true }) as tf.Tensor;
      const ys = y.dataSync();
      tf.dispose([x, y]);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');

      const { mean, variance } = channelStats(xs, C);
      const expected = Array.from(xs, (v, i) => {
        const c = i % C;
        return ((v - mean[c]!) / Math.sqrt(variance[c]! + EPS)) * (scale ? GAMMA[c]! : 1) + BETA[c]!;
      });
      assertClose(ys, expected, 1e-4, 'output');
      assertClose(weight(layer, 'moving_mean'), mean.map((m) => 0.01 * m), 1e-5, 'moving_mean');
      assertClose(weight(layer, 'moving_variance'), variance.map((v) => 0.99 + 0.01 * v), 1e-5, 'moving_variance');
      layer.dispose();
    });

    it(`normalises with the moving statistics in inference and leaves them unchanged (scale ${scale})`, () => {
      const layer = makeLayer({ scale, epsilon: 0.01 });
      const mm = [1, 2, 3, -1, 0];
      const mv = [4, 0.5, 1, 2, 9];
      setWeights(layer, { gamma: GAMMA, beta: BETA, mean: mm, variance: mv });
      const before = tf.memory().numTensors;
      const x = input(2);
      const xs = x.dataSync();
      for (const kwargs of [{}, { training: false }]) {
        const y = layer.apply(x, kwargs) as tf.Tensor;
        const expected = Array.from(xs, (v, i) => {
          const c = i % C;
          return ((v - mm[c]!) / Math.sqrt(mv[c]! + 0.01)) * (scale ? GAMMA[c]! : 1) + BETA[c]!;
        });
        assertClose(y.dataSync(), expected, 1e-5, 'output');
        y.dispose();
      }
      x.dispose();
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      assert.deepEqual(Array.from(weight(layer, 'moving_mean')), mm);
      assertClose(weight(layer, 'moving_variance'), mv, 1e-7, 'moving_variance');
      layer.dispose();
    });
  }

  it('normalises [batch, features] inputs (after a dense layer) the same way', () => {
    const layer = makeLayer({}, [6, 3]);
    const x = input(7, [6, 3]);
    const xs = x.dataSync() as Float32Array;
    const y = layer.apply(x, { training: true }) as tf.Tensor;
    const { mean, variance } = channelStats(xs, 3);
    assertClose(y.dataSync(), Array.from(xs, (v, i) => (v - mean[i % 3]!) / Math.sqrt(variance[i % 3]! + EPS)), 1e-4, 'output');
    assertClose(weight(layer, 'moving_mean'), mean.map((m) => 0.01 * m), 1e-5, 'moving_mean');
    tf.dispose([x, y]);
    layer.dispose();
  });

  it('runs in inference mode while frozen, even in a training call, like Keras', () => {
    const layer = makeLayer();
    setWeights(layer, { gamma: GAMMA, beta: BETA });
    layer.trainable = false;
    const x = input(6);
    const frozen = layer.apply(x, { training: true }) as tf.Tensor;
    const inference = layer.apply(x, { training: false }) as tf.Tensor;
    assert.deepEqual(Array.from(frozen.dataSync()), Array.from(inference.dataSync()));
    assert.ok(weight(layer, 'moving_mean').every((v) => v === 0) && weight(layer, 'moving_variance').every((v) => v === 1));
    layer.trainable = true;
    const trained = layer.apply(x, { training: true }) as tf.Tensor;
    assert.notDeepEqual(Array.from(trained.dataSync()), Array.from(inference.dataSync()));
    tf.dispose([x, frozen, inference, trained]);
    layer.dispose();
  });

  for (const scale of [true, false]) {
    it(`passes gradients to its input, gamma and beta equal to those of the unfused formula (scale ${scale})`, () => {
      const layer = makeLayer({ scale });
      setWeights(layer, { gamma: GAMMA, beta: BETA });
      const before = tf.memory().numTensors;
      const results = tf.tidy(() => {
        const x = input(3);
        // A non-uniform upstream gradient, else d/dx of a normalised sum is zero.
        const w = tf.randomNormal([...SHAPE], 0, 1, 'float32', 4);
        const variables = layer.trainableWeights.map((v) => v.read() as tf.Variable);
        const f = (xi: tf.Tensor): tf.Scalar => tf.sum(tf.mul(layer.apply(xi, { training: true }) as tf.Tensor, w));
        const dx = tf.grad(f)(x);
        const { grads } = tf.variableGrads(() => f(x), variables);
        // Inputs in the layer's weight order: x, then gamma (when scale), then beta.
        const reference = (...args: tf.Tensor[]): tf.Scalar => {
          const [xi, g, b] = scale ? args : [args[0], undefined, args[1]];
          const { mean, variance } = tf.moments(xi!, [0, 1, 2]);
          const normed = tf.div(tf.sub(xi!, mean), tf.sqrt(tf.add(variance, EPS)));
          return tf.sum(tf.mul(tf.add(g === undefined ? normed : tf.mul(normed, g), b!), w));
        };
        const refs = tf.grads(reference)([x, ...(scale ? [tf.tensor1d(GAMMA)] : []), tf.tensor1d(BETA)]);
        const ours = [dx, ...variables.map((v) => grads[v.name] as tf.Tensor)];
        return { ours, refs };
      });
      assert.equal(results.ours.length, scale ? 3 : 2);
      results.ours.forEach((g, i) => assertClose(g.dataSync(), results.refs[i]!.dataSync(), 1e-4, `gradient ${i}`));
      assert.ok(Array.from(results.ours[0]!.dataSync()).some((v) => Math.abs(v) > 1e-3), 'dx is not all zero');
      tf.dispose([...results.ours, ...results.refs]);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      layer.dispose();
    });
  }

  it('passes dy * gamma / sqrt(moving_variance + epsilon) back while frozen', () => {
    const layer = makeLayer();
    const mv = [4, 0.5, 1, 2, 9];
    setWeights(layer, { gamma: GAMMA, beta: BETA, mean: [1, 2, 3, -1, 0], variance: mv });
    layer.trainable = false;
    tf.tidy(() => {
      const w = tf.randomNormal([...SHAPE], 0, 1, 'float32', 8);
      const dx = tf.grad((xi: tf.Tensor) => tf.sum(tf.mul(layer.apply(xi, { training: true }) as tf.Tensor, w)))(input(9));
      const ws = w.dataSync();
      assertClose(dx.dataSync(), Array.from(ws, (v, i) => (v * GAMMA[i % C]!) / Math.sqrt(mv[i % C]! + EPS)), 1e-5, 'dx');
    });
    layer.dispose();
  });

  it('trains a small model with model.fit and updates its moving statistics', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        new FastBatchNormalization({ name: 'fit_bn' }),
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
    const bn = model.getLayer('fit_bn');
    const gammaBefore = weight(bn, 'gamma').slice();
    const history = await model.fit(x, y, { epochs: 15, batchSize: 8, verbose: 0, shuffle: false });
    const losses = history.history['loss'] as number[];
    assert.ok((losses.at(-1) as number) < (losses[0] as number) * 0.8, `loss fell: ${losses.join(', ')}`);
    assert.ok(weight(bn, 'moving_mean').some((v) => v !== 0), 'moving mean updated');
    assert.ok(weight(bn, 'gamma').some((v, i) => v !== gammaBefore[i]), 'gamma trained');
    tf.dispose([x, y]);
    optimizer.dispose(); // its state is the only thing fit may keep
    assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
    model.dispose();
  });

  for (const scale of [true, false]) {
    it(`survives a save/load round trip with its class, config, weight names and identical predictions (scale ${scale})`, async () => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
          new FastBatchNormalization({ name: 'rt_bn', scale, epsilon: 0.002, momentum: 0.9 }),
          tf.layers.flatten({}),
          tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
        ],
      });
      setWeights(model.getLayer('rt_bn') as FastBatchNormalization, { gamma: [1.2, 0.7, 2], beta: [0.3, -0.2, 0.1], mean: [0.5, -1, 2], variance: [2, 0.5, 3] });
      const { topology, weightNames, loaded } = await roundTrip(model);
      assert.match(topology, /"class_name":"FastBatchNormalization"/);
      assert.deepEqual(weightNames.filter((n) => n.startsWith('rt_bn/')), [...(scale ? ['rt_bn/gamma'] : []), 'rt_bn/beta', 'rt_bn/moving_mean', 'rt_bn/moving_variance']);
      const loadedBn = loaded.getLayer('rt_bn');
      assert.ok(loadedBn instanceof FastBatchNormalization);
      assert.deepEqual([loadedBn.epsilon, loadedBn.momentum, loadedBn.scale, loadedBn.center], [0.002, 0.9, scale, true]);
      const before = tf.memory().numTensors;
      const [a, b] = tf.tidy(() => {
        const x = tf.randomUniform([5, 6, 6, 2], -1, 1, 'float32', 9);
        return [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
      });
      assert.deepEqual(Array.from(b!.dataSync()), Array.from(a!.dataSync()));
      tf.dispose([a!, b!]);
      assert.equal(tf.memory().numTensors, before, 'no tensor leaks');
      model.dispose();
      loaded.dispose();
    });
  }

  it('rejects a momentum outside [0, 1], a non-positive epsilon and an input without channels', () => {
    assert.throws(() => new FastBatchNormalization({ momentum: 1.5 }), (e: unknown) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => new FastBatchNormalization({ epsilon: 0 }), (e: unknown) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => new FastBatchNormalization({}).apply(tf.input({ shape: [] })), (e: unknown) => isMlError(e, 'INPUT_SHAPE_INVALID'));
  });
});

describe('ScalelessBatchNormalization (the class name InceptionV3 BN layers were first saved under)', () => {
  it('is the scale-less FastBatchNormalization and still loads under its own class name', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 2], filters: 3, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }) }),
        new ScalelessBatchNormalization({ name: 'old_bn', epsilon: 0.002 }),
        tf.layers.flatten({}),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) }),
      ],
    });
    const bn = model.getLayer('old_bn') as ScalelessBatchNormalization;
    assert.equal(bn.scale, false);
    assert.deepEqual(bn.weights.map((w) => w.originalName), ['old_bn/beta', 'old_bn/moving_mean', 'old_bn/moving_variance']);
    setWeights(bn, { beta: [0.3, -0.2, 0.1], mean: [0.5, -1, 2], variance: [2, 0.5, 3] });
    const { topology, loaded } = await roundTrip(model);
    assert.match(topology, /"class_name":"ScalelessBatchNormalization"/);
    const loadedBn = loaded.getLayer('old_bn');
    assert.ok(loadedBn instanceof ScalelessBatchNormalization && loadedBn.scale === false && loadedBn.epsilon === 0.002);
    const [a, b] = tf.tidy(() => {
      const x = tf.randomUniform([2, 6, 6, 2], -1, 1, 'float32', 9);
      return [model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor];
    });
    assert.deepEqual(Array.from(b!.dataSync()), Array.from(a!.dataSync()));
    tf.dispose([a!, b!]);
    model.dispose();
    loaded.dispose();
  });
});
