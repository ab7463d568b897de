/**
 * Training on the wasm backend end to end: every layer type the four architectures use must find its
 * gradient kernels, the loss must fall, and the composed kernels must not leak tensors or wasm buffers.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import { wasmTrainingKernelsRegistered } from '../../../src/ml/backend/wasm-training-kernels.ts';
import { createRandom, gaussian } from '../../../src/ml/util/random.ts';

const SIZE = 16;
const CLASSES = 3;

/** Learnable images: the class decides which third of the image is brighter. */
function makeData(count: number, seed: number): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  const rand = createRandom(seed);
  const pixels = new Float32Array(count * SIZE * SIZE);
  const labels = new Int32Array(count);
  for (let n = 0; n < count; n++) {
    const label = n % CLASSES;
    labels[n] = label;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const bright = Math.floor((x * CLASSES) / SIZE) === label ? 1 : 0;
        pixels[(n * SIZE + y) * SIZE + x] = bright + 0.3 * gaussian(rand);
      }
    }
  }
  return tf.tidy(() => ({
    xs: tf.tensor4d(pixels, [count, SIZE, SIZE, 1]),
    ys: tf.oneHot(tf.tensor1d(labels, 'int32'), CLASSES).toFloat() as tf.Tensor2D,
  }));
}

const init = (seed: number) => tf.initializers.glorotUniform({ seed });

/** conv-BN-ReLU-maxpool blocks, global average pooling and a dense softmax: the `cnn` architecture's shape. */
function smallCnn(): tf.LayersModel {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1) }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', kernelInitializer: init(2) }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.activation({ activation: 'relu' }));
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init(3) }));
  model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
  return model;
}

/**
 * One graph with every other layer type of VGG16, ResNet50 and InceptionV3: zero padding, strided
 * 7x7 and 1x1 convolutions, 'same' average pooling, concatenation, residual add, flatten, dropout and
 * a hidden dense layer.
 */
function everyLayerModel(): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 1] });
  const apply = (layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]) => layer.apply(x) as tf.SymbolicTensor;
  let x = apply(tf.layers.zeroPadding2d({ padding: [[3, 3], [3, 3]] }), input);
  x = apply(tf.layers.conv2d({ filters: 8, kernelSize: 7, strides: 2, kernelInitializer: init(4) }), x);
  x = apply(tf.layers.batchNormalization({ axis: 3 }), x);
  x = apply(tf.layers.activation({ activation: 'relu' }), x);
  const branch1 = apply(tf.layers.conv2d({ filters: 8, kernelSize: 1, kernelInitializer: init(5) }), x);
  const branch3 = apply(tf.layers.conv2d({ filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(6) }), x);
  const pooled = apply(tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same' }), x);
  let y = apply(tf.layers.concatenate({ axis: -1 }), [branch1, branch3, pooled]);
  y = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, padding: 'same' }), y);
  const shortcut = apply(tf.layers.conv2d({ filters: 24, kernelSize: 1, strides: 1, kernelInitializer: init(7) }), y);
  y = apply(tf.layers.add(), [y, shortcut]);
  y = apply(tf.layers.conv2d({ filters: 16, kernelSize: 1, strides: 2, kernelInitializer: init(8) }), y);
  const gap = apply(tf.layers.globalAveragePooling2d({}), y);
  const flat = apply(tf.layers.flatten(), y);
  let z = apply(tf.layers.concatenate(), [gap, flat]);
  z = apply(tf.layers.dropout({ rate: 0.2, seed: 9 }), z);
  z = apply(tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: init(10) }), z);
  const output = apply(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: init(11) }), z);
  const model = tf.model({ inputs: input, outputs: output });
  model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
  return model;
}

async function trainSteps(model: tf.LayersModel, xs: tf.Tensor, ys: tf.Tensor, steps: number): Promise<number[]> {
  const losses: number[] = [];
  for (let i = 0; i < steps; i++) {
    const loss = await model.trainOnBatch(xs, ys);
    losses.push(Array.isArray(loss) ? (loss[0] ?? NaN) : loss);
  }
  return losses;
}

function mean(values: number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

describe('training on the wasm backend', () => {
  before(async () => {
    await initBackend('wasm');
  });

  test('the training kernels are registered and active on wasm', () => {
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(wasmTrainingKernelsRegistered());
  });

  test('a small CNN (conv-BN-ReLU-maxpool-GAP-dense) lowers its loss without leaking tensors or wasm buffers', async () => {
    const start = tf.memory().numTensors;
    const { xs, ys } = makeData(24, 1);
    const model = smallCnn();
    // The first step creates the optimizer's slots; after it the count must stay flat.
    const first = await trainSteps(model, xs, ys, 1);
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    const later = await trainSteps(model, xs, ys, 14);
    assert.equal(tf.memory().numTensors, tensors, 'numTensors unchanged over 14 training steps');
    assert.equal(tf.backend().numDataIds(), dataIds, 'wasm data buffers unchanged over 14 training steps');
    const losses = [...first, ...later];
    assert.ok(losses.every(Number.isFinite), `finite losses ${losses}`);
    assert.ok(mean(losses.slice(-3)) < 0.7 * mean(losses.slice(0, 3)), `loss should fall: ${losses.map((l) => l.toFixed(3))}`);
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([xs, ys]);
    assert.equal(tf.memory().numTensors, start);
  });

  test('every layer type of the four architectures trains on wasm', async () => {
    const start = tf.memory().numTensors;
    const { xs, ys } = makeData(18, 2);
    const model = everyLayerModel();
    const losses = await trainSteps(model, xs, ys, 12);
    assert.ok(losses.every(Number.isFinite), `finite losses ${losses}`);
    assert.ok(mean(losses.slice(-3)) < mean(losses.slice(0, 3)), `loss should fall: ${losses.map((l) => l.toFixed(3))}`);
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([xs, ys]);
    assert.equal(tf.memory().numTensors, start);
  });

  test('repeated convolution backprop leaves tensor and wasm buffer counts unchanged', () => {
    const rand = createRandom(5);
    const x = tf.tensor4d(Float32Array.from({ length: 2 * 12 * 10 * 4 }, () => gaussian(rand)), [2, 12, 10, 4]);
    const w = tf.tensor4d(Float32Array.from({ length: 3 * 3 * 4 * 6 }, () => gaussian(rand)), [3, 3, 4, 6]);
    const w1 = tf.tensor4d(Float32Array.from({ length: 4 * 6 }, () => gaussian(rand)), [1, 1, 4, 6]);
    const tensors = tf.memory().numTensors;
    const dataIds = tf.backend().numDataIds();
    for (let i = 0; i < 20; i++) {
      tf.tidy(() => {
        const strides = (i % 2) + 1;
        const grads = tf.grads((a: tf.Tensor, b: tf.Tensor, c: tf.Tensor) =>
          tf.add(
            tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, i % 3 === 0 ? 'valid' : 'same')),
            tf.sum(tf.conv2d(a as tf.Tensor4D, c as tf.Tensor4D, strides, 'valid')),
          ),
        )([x, w, w1]);
        for (const g of grads) g.dataSync();
      });
    }
    assert.equal(tf.memory().numTensors, tensors);
    assert.equal(tf.backend().numDataIds(), dataIds);
    tf.dispose([x, w, w1]);
  });
});
