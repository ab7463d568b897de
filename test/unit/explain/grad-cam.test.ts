import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { defaultGradCamLayer, gradCam } from '../../../src/ml/explain/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

const SIZE = 16;
type Quadrant = 'top-left' | 'top-right' | 'bottom-left' | 'bottom-right';
const QUADRANTS: Quadrant[] = ['top-left', 'top-right', 'bottom-left', 'bottom-right'];

/** A dark 16x16 image with a bright 4x4 square in the middle of `quadrant`. */
function squareImage(quadrant: Quadrant): tf.Tensor4D {
  const pixels = new Float32Array(SIZE * SIZE);
  const top = quadrant.startsWith('top') ? 2 : 10;
  const left = quadrant.endsWith('left') ? 2 : 10;
  for (let y = top; y < top + 4; y++) for (let x = left; x < left + 4; x++) pixels[y * SIZE + x] = 1;
  return tf.tensor4d(pixels, [1, SIZE, SIZE, 1]);
}

function quadrantOf(index: number, width: number, height: number): Quadrant {
  const y = Math.floor(index / width);
  const x = index % width;
  return `${y < height / 2 ? 'top' : 'bottom'}-${x < width / 2 ? 'left' : 'right'}` as Quadrant;
}

function argMax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/**
 * Hand-set weights with a known response. Filter 0 of `detect` is a 3x3 mean (bright detector),
 * filter 1 is relu(1 - mean) (dark detector). Class 1 ("bright") reads channel 0 with weight 20,
 * class 0 ("dark") channel 1 with weight 1, so a 4x4 bright square makes class 1 win (20 * 16/256 >
 * 240/256) and a dark image class 0.
 */
function brightSquareModel(head: 'gap' | 'flatten'): tf.LayersModel {
  const input = tf.input({ shape: [SIZE, SIZE, 1] });
  const detect = tf.layers.conv2d({ filters: 2, kernelSize: 3, padding: 'same', activation: 'relu', name: 'detect' });
  let x = detect.apply(input) as tf.SymbolicTensor;
  if (head === 'gap') {
    x = tf.layers.globalAveragePooling2d({ name: 'gap' }).apply(x) as tf.SymbolicTensor;
  } else {
    x = tf.layers.maxPooling2d({ poolSize: 2, name: 'pool' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.flatten({ name: 'flatten' }).apply(x) as tf.SymbolicTensor;
  }
  const dense = tf.layers.dense({ units: 2, activation: 'softmax', name: 'predictions' });
  const model = tf.model({ inputs: input, outputs: dense.apply(x) as tf.SymbolicTensor });

  const weights = tf.tidy(() => {
    const kernel = tf.stack([tf.fill([3, 3, 1], 1 / 9), tf.fill([3, 3, 1], -1 / 9)], 3); // [3,3,1,2]
    const positions = head === 'gap' ? 1 : (SIZE / 2) * (SIZE / 2);
    const scale = 1 / positions; // flatten head: the sum over positions equals GAP's mean
    const perPosition = tf.tensor2d([[0, 20 * scale], [scale, 0]]); // rows: channel 0, channel 1
    const denseKernel = tf.tile(perPosition, [positions, 1]); // flatten order: position-major, channel-minor
    return [kernel, tf.tensor1d([0, 1]), denseKernel, tf.zeros([2])];
  });
  detect.setWeights(weights.slice(0, 2));
  dense.setWeights(weights.slice(2));
  tf.dispose(weights);
  return model;
}

/** conv-BN-relu-GAP-dropout-dense with random weights: the shape of the project's CNN head. */
function randomGapModel(seed: number, ending: 'dense-softmax' | 'activation-softmax'): tf.LayersModel {
  const input = tf.input({ shape: [10, 10, 2] });
  let x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed }), name: 'block1_conv' }).apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'block1_bn' });
  x = bn.apply(x) as tf.SymbolicTensor;
  x = tf.layers.activation({ activation: 'relu', name: 'block1_relu' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.globalAveragePooling2d({ name: 'avg_pool' }).apply(x) as tf.SymbolicTensor;
  x = tf.layers.dropout({ rate: 0.5, name: 'dropout' }).apply(x) as tf.SymbolicTensor;
  const kernelInitializer = tf.initializers.glorotUniform({ seed: seed + 1 });
  const biasInitializer = tf.initializers.randomNormal({ seed: seed + 2 });
  if (ending === 'dense-softmax') {
    x = tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer, biasInitializer, name: 'predictions' }).apply(x) as tf.SymbolicTensor;
  } else {
    x = tf.layers.dense({ units: 3, kernelInitializer, biasInitializer, name: 'logits' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.activation({ activation: 'softmax', name: 'predictions' }).apply(x) as tf.SymbolicTensor;
  }
  const model = tf.model({ inputs: input, outputs: x });
  const stats = tf.tidy(() => bn.getWeights().map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -1, i === 3 ? 2 : 1, 'float32', seed + 10 + i)));
  bn.setWeights(stats);
  tf.dispose(stats);
  return model;
}

/**
 * Grad-CAM in closed form for a head that is linear in the channel means (GAP then a linear score):
 * d score_c / d A_k(i,j) = W[k,c] / (h*w), so the map is relu(sum_k W[k,c] A_k) up to scale.
 */
async function closedFormCam(model: tf.LayersModel, layerName: string, x: tf.Tensor4D, channelWeights: number[]): Promise<Float32Array> {
  const features = tf.model({ inputs: model.inputs, outputs: model.getLayer(layerName).output as tf.SymbolicTensor });
  const cam = tf.tidy(() => tf.relu(tf.sum(tf.mul((features.predict(x) as tf.Tensor4D).squeeze([0]), tf.tensor1d(channelWeights)), -1)));
  const values = (await cam.data()) as Float32Array;
  cam.dispose();
  let max = 0;
  for (const v of values) max = Math.max(max, v);
  return values.map((v) => (max > 0 ? v / max : 0));
}

function assertAllClose(actual: Float32Array, expected: Float32Array, tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i]! - expected[i]!) <= tolerance, `index ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

async function assertRejectsWithCode(promise: Promise<unknown>, code: string, messagePart?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isMlError(error), `expected MlError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (messagePart) assert.match(error.message, messagePart);
    return true;
  });
}

describe('gradCam', () => {
  for (const quadrant of QUADRANTS) {
    it(`puts the heat-map maximum in the ${quadrant} quadrant when the bright square is there`, async () => {
      const model = brightSquareModel('gap');
      const x = squareImage(quadrant);
      const before = tf.memory().numTensors;
      const cam = await gradCam(model, x, { layerName: 'detect' });
      assert.equal(tf.memory().numTensors, before, 'no tensor leak');
      assert.equal(cam.classIndex, 1, 'the bright class is predicted and explained by default');
      assert.equal(cam.score, 'logit');
      assert.deepEqual([cam.width, cam.height, cam.heatmap.length], [SIZE, SIZE, SIZE * SIZE]);
      assert.equal(quadrantOf(argMax(cam.heatmap), cam.width, cam.height), quadrant);
      assert.equal(Math.max(...cam.heatmap), 1);
      assert.ok(Math.min(...cam.heatmap) >= 0);
      x.dispose();
      model.dispose();
    });
  }

  it('explains the requested class: the dark class is cold on the bright square', async () => {
    const model = brightSquareModel('gap');
    const x = squareImage('bottom-right');
    const bright = await gradCam(model, x, { layerName: 'detect', classIndex: 1 });
    const dark = await gradCam(model, x, { layerName: 'detect', classIndex: 0 });
    assert.equal(dark.classIndex, 0);
    const centre = 11 * SIZE + 11; // inside the square
    assert.ok(bright.heatmap[centre]! > 1 - 1e-6, `bright map at the square: ${bright.heatmap[centre]}`);
    assert.ok(dark.heatmap[centre]! < 1e-6, `dark map at the square: ${dark.heatmap[centre]}`);
    assert.ok(dark.heatmap[0]! > 1 - 1e-6, 'the dark corner carries the dark class');
    x.dispose();
    model.dispose();
  });

  it('follows gradients through max pooling and a flatten-dense head', async () => {
    const model = brightSquareModel('flatten');
    for (const quadrant of ['top-right', 'bottom-left'] as const) {
      const x = squareImage(quadrant);
      const before = tf.memory().numTensors;
      const cam = await gradCam(model, x, { layerName: 'detect' });
      assert.equal(tf.memory().numTensors, before);
      assert.equal(cam.classIndex, 1);
      assert.equal(quadrantOf(argMax(cam.heatmap), cam.width, cam.height), quadrant);
      x.dispose();
    }
    model.dispose();
  });

  for (const ending of ['dense-softmax', 'activation-softmax'] as const) {
    it(`matches the closed-form map of a GAP head from the pre-softmax logits (${ending})`, async () => {
      const model = randomGapModel(5, ending);
      const x = tf.randomUniform([1, 10, 10, 2], 0, 1, 'float32', 6) as tf.Tensor4D;
      const dense = model.getLayer(ending === 'dense-softmax' ? 'predictions' : 'logits');
      const kernel = (await dense.getWeights()[0]!.array()) as number[][];
      for (const classIndex of [0, 1, 2]) {
        const cam = await gradCam(model, x, { layerName: 'block1_relu', classIndex });
        assert.equal(cam.score, 'logit');
        const expected = await closedFormCam(model, 'block1_relu', x, kernel.map((row) => row[classIndex]!));
        // A gradient of the probability would mix in the other classes' weights and fail this.
        assertAllClose(cam.heatmap, expected, 1e-5);
      }
      x.dispose();
      model.dispose();
    });
  }

  it('handles a residual shortcut around the explained layer (a DAG, not a chain)', async () => {
    const input = tf.input({ shape: [8, 8, 2] });
    const shortcut = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 20 }), name: 'conv1' }).apply(input) as tf.SymbolicTensor;
    const branch = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 21 }), name: 'conv2' }).apply(shortcut) as tf.SymbolicTensor;
    const added = tf.layers.add({ name: 'block_out' }).apply([shortcut, branch]) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(added) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 22 }), name: 'predictions' }).apply(pooled) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const x = tf.randomUniform([1, 8, 8, 2], 0, 1, 'float32', 23) as tf.Tensor4D;
    const kernel = (await model.getLayer('predictions').getWeights()[0]!.array()) as number[][];

    const before = tf.memory().numTensors;
    const cam = await gradCam(model, x, { layerName: 'conv2', classIndex: 1 });
    assert.equal(tf.memory().numTensors, before);
    // The shortcut is held fixed: d logit / d conv2 is W / (h*w) exactly as without it.
    assertAllClose(cam.heatmap, await closedFormCam(model, 'conv2', x, kernel.map((row) => row[1]!)), 1e-5);
    // The block output itself (ResNet's conv5_block3_out is such an Add+ReLU) works too.
    const out = await gradCam(model, x, { layerName: 'block_out', classIndex: 1 });
    assertAllClose(out.heatmap, await closedFormCam(model, 'block_out', x, kernel.map((row) => row[1]!)), 1e-5);
    x.dispose();
    model.dispose();
  });

  it('runs a backbone with dropout in inference mode and frees its intermediates', async () => {
    const input = tf.input({ shape: [8, 8, 1] });
    let x = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 60 }), name: 'conv1' }).apply(input) as tf.SymbolicTensor;
    x = tf.layers.dropout({ rate: 0.3, name: 'drop' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 61 }), name: 'conv2' }).apply(x) as tf.SymbolicTensor;
    x = tf.layers.globalAveragePooling2d({}).apply(x) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 62 }), name: 'predictions' }).apply(x) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: output });
    const image = tf.randomUniform([1, 8, 8, 1], 0, 1, 'float32', 63) as tf.Tensor4D;
    const kernel = (await model.getLayer('predictions').getWeights()[0]!.array()) as number[][];
    const before = tf.memory().numTensors;
    const cam = await gradCam(model, image, { layerName: 'conv2', classIndex: 0 });
    assert.equal(tf.memory().numTensors, before);
    assertAllClose(cam.heatmap, await closedFormCam(model, 'conv2', image, kernel.map((row) => row[0]!)), 1e-5);
    assert.equal(image.isDisposed, false, 'the caller keeps its input');
    image.dispose();
    model.dispose();
  });

  it('differentiates the output itself when the model does not end in a dense or softmax layer', async () => {
    const input = tf.input({ shape: [6, 6, 1] });
    const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 30 }), name: 'conv' }).apply(input) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: tf.layers.globalAveragePooling2d({}).apply(conv) as tf.SymbolicTensor });
    const x = tf.randomUniform([1, 6, 6, 1], 0, 1, 'float32', 31) as tf.Tensor4D;
    const cam = await gradCam(model, x, { layerName: 'conv', classIndex: 2 });
    assert.equal(cam.score, 'output');
    // Score = mean of channel 2, so the map is that channel, normalised.
    assertAllClose(cam.heatmap, await closedFormCam(model, 'conv', x, [0, 0, 1]), 1e-6);
    x.dispose();
    model.dispose();
  });

  it('picks the last feature-map layer that is not pooling or dropout by default', async () => {
    const model = randomGapModel(40, 'dense-softmax');
    assert.equal(defaultGradCamLayer(model), 'block1_relu');
    const x = tf.randomUniform([1, 10, 10, 2], 0, 1, 'float32', 41) as tf.Tensor4D;
    const cam = await gradCam(model, x);
    assert.equal(cam.layerName, 'block1_relu');
    x.dispose();
    model.dispose();
  });

  it('rejects unknown or non-spatial layers, wrong input shapes and out-of-range classes', async () => {
    const model = brightSquareModel('gap');
    const x = squareImage('top-left');
    const before = tf.memory().numTensors;
    await assertRejectsWithCode(gradCam(model, x, { layerName: 'block5_conv3' }), 'INVALID_ARGUMENT', /No layer "block5_conv3".*detect/);
    await assertRejectsWithCode(gradCam(model, x, { layerName: 'gap' }), 'INVALID_ARGUMENT', /4-D feature map/);
    await assertRejectsWithCode(gradCam(model, x, { layerName: 'detect', classIndex: 2 }), 'INVALID_ARGUMENT', /classIndex 2/);
    const batch = tf.concat([x, x]) as tf.Tensor4D;
    await assertRejectsWithCode(gradCam(model, batch, { layerName: 'detect' }), 'INPUT_SHAPE_INVALID');
    const wrong = tf.zeros([1, 8, 8, 1]) as tf.Tensor4D;
    await assertRejectsWithCode(gradCam(model, wrong, { layerName: 'detect' }), 'INPUT_SHAPE_INVALID');
    tf.dispose([batch, wrong]);
    assert.equal(tf.memory().numTensors, before);
    x.dispose();
    model.dispose();
  });

  it('leaves the model unchanged: predictions and saved topology are the same after explaining', async () => {
    const model = randomGapModel(50, 'dense-softmax');
    const x = tf.randomUniform([1, 10, 10, 2], 0, 1, 'float32', 51) as tf.Tensor4D;
    const topology = JSON.stringify(model.toJSON(null, false));
    const nodeCounts = () => model.layers.map((l) => `${l.name}:${l.inboundNodes.length}/${l.outboundNodes.length}`);
    const nodesBefore = nodeCounts();
    const y0 = model.predict(x) as tf.Tensor;
    await gradCam(model, x, { layerName: 'block1_relu' });
    await gradCam(model, x, { layerName: 'block1_conv' });
    const y1 = model.predict(x) as tf.Tensor;
    assert.deepEqual(await y1.data(), await y0.data());
    assert.equal(JSON.stringify(model.toJSON(null, false)), topology);
    // No layer was re-applied symbolically, so `layer.output` still works for other code.
    assert.deepEqual(nodeCounts(), nodesBefore);
    assert.ok(model.getLayer('predictions').output);
    tf.dispose([x, y0, y1]);
    model.dispose();
  });
});
