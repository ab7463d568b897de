/**
 * Parity of the ONNX export: every architecture at two input sizes (both heads, RGB and grey), run in
 * tfjs and in onnxruntime-node on random and real radiographs, agrees to 1e-4 on the probabilities;
 * the symbolic batch dimension runs batch 1 and 32.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { loadImageTensorData } from '../../../src/ml/data/index.ts';
import { exportToOnnx, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from '../../../src/ml/export/index.ts';
import { buildModel, PREPROCESS_MODE, type Architecture } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

const TOLERANCE = 1e-4;
const XRAY_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../../shared/datasets/xray-binary');
const SKIP_WITHOUT_XRAYS = existsSync(XRAY_DIR) ? false : `real X-rays not found at ${XRAY_DIR}`;

interface Case {
  architecture: Architecture;
  size: number;
  channels: 1 | 3;
  includeTop: boolean;
  /** Batch of random inputs (each case also runs batch 1); the smaller size of each architecture runs 32. */
  randomBatch: number;
}

const CASES: Case[] = [
  { architecture: 'cnn', size: 32, channels: 3, includeTop: false, randomBatch: 32 },
  { architecture: 'cnn', size: 56, channels: 1, includeTop: true, randomBatch: 8 },
  { architecture: 'vgg16', size: 32, channels: 3, includeTop: false, randomBatch: 32 },
  { architecture: 'vgg16', size: 48, channels: 1, includeTop: true, randomBatch: 8 },
  { architecture: 'resnet50', size: 32, channels: 3, includeTop: false, randomBatch: 32 },
  { architecture: 'resnet50', size: 64, channels: 1, includeTop: true, randomBatch: 8 },
  { architecture: 'inceptionv3', size: 75, channels: 3, includeTop: false, randomBatch: 32 },
  { architecture: 'inceptionv3', size: 99, channels: 1, includeTop: true, randomBatch: 8 },
];

const NUM_CLASSES = 4;

before(async () => {
  // wasm: the cpu backend would take minutes for ResNet50 and InceptionV3 at batch 32.
  await useTestBackend('wasm');
});

let realImages: string[] = [];
before(async () => {
  if (SKIP_WITHOUT_XRAYS) return;
  const pick = async (folder: string): Promise<string[]> =>
    (await readdir(path.join(XRAY_DIR, folder))).sort().slice(0, 2).map((name) => path.join(XRAY_DIR, folder, name));
  realImages = [...(await pick('fractured')), ...(await pick('not_fractured'))];
});

describe('ONNX export parity with tfjs', () => {
  for (const c of CASES) {
    describe(`${c.architecture} ${c.size}x${c.size}x${c.channels}${c.includeTop ? ' with the Keras top' : ''}`, () => {
      let model: tf.LayersModel;
      let session: ort.InferenceSession;

      before(async () => {
        model = buildModel({
          architecture: c.architecture,
          inputShape: [c.size, c.size, c.channels],
          numClasses: NUM_CLASSES,
          seed: 7,
          includeTop: c.includeTop,
          dropout: 0.3,
        });
        giveBatchNormStatistics(model);
        spreadPredictions(model, c);
        const bytes = exportToOnnx(model, { architecture: c.architecture, classNames: ['a', 'b', 'c', 'd'], positiveClasses: ['a'], preprocessing: {} });
        session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
      });

      after(async () => {
        model.dispose();
        await session.release();
      });

      test(`agrees on ${c.randomBatch} random inputs and on a single one`, async (t) => {
        let informative = 0;
        for (const batch of [c.randomBatch, 1]) {
          const x = randomInputs(batch, c, 11 + batch);
          const values = x.dataSync() as Float32Array;
          x.dispose();
          const { maxDiff, unsaturated } = await assertParity(model, session, values, batch, c);
          informative += unsaturated;
          t.diagnostic(`batch ${batch}: max |tfjs - onnx| ${maxDiff.toExponential(1)}`);
        }
        // Saturated outputs (all 0 or 1) would agree whatever the graph did in between.
        assert.ok(informative > 0, 'every probability is saturated: the comparison proves nothing');
      });

      test('agrees on real radiographs preprocessed as in serving', { skip: SKIP_WITHOUT_XRAYS }, async (t) => {
        const options = { height: c.size, width: c.size, channels: c.channels, mode: PREPROCESS_MODE[c.architecture], resize: 'letterbox' } as const;
        const inputs = await Promise.all(realImages.map((file) => loadImageTensorData(file, options)));
        const values = new Float32Array(inputs.reduce((sum, input) => sum + input.length, 0));
        let offset = 0;
        for (const input of inputs) {
          values.set(input, offset);
          offset += input.length;
        }
        const { maxDiff, unsaturated } = await assertParity(model, session, values, inputs.length, c);
        assert.ok(unsaturated > 0, 'every probability is saturated: the comparison proves nothing');
        t.diagnostic(`${inputs.length} radiographs: max |tfjs - onnx| ${maxDiff.toExponential(1)}`);
      });
    });
  }
});

/** Random inputs in the value range of the architecture's preprocessing (caffe: about ±128). */
function randomInputs(batch: number, c: Case, seed: number): tf.Tensor4D {
  const [low, high] = { caffe: [-128, 128], tf: [-1, 1], unit: [0, 1] }[PREPROCESS_MODE[c.architecture]];
  return tf.randomUniform([batch, c.size, c.size, c.channels], low, high, 'float32', seed);
}

/**
 * Runs both engines on the same inputs and compares every probability.
 * @returns the largest difference and how many probabilities are not saturated (in (0.001, 0.999))
 */
async function assertParity(
  model: tf.LayersModel,
  session: ort.InferenceSession,
  values: Float32Array,
  batch: number,
  c: Case,
): Promise<{ maxDiff: number; unsaturated: number }> {
  const expected = tf.tidy(() => (model.predict(tf.tensor4d(values, [batch, c.size, c.size, c.channels])) as tf.Tensor).dataSync() as Float32Array);
  const result = await session.run({ [ONNX_INPUT_NAME]: new ort.Tensor('float32', values, [batch, c.size, c.size, c.channels]) });
  const output = result[ONNX_OUTPUT_NAME];
  assert.ok(output, 'the session returns probabilities');
  assert.deepEqual(output.dims, [batch, NUM_CLASSES]);
  const actual = output.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(expected[i]! - actual[i]!));
  assert.ok(maxDiff <= TOLERANCE, `max |tfjs - onnx| = ${maxDiff} over ${batch} inputs`);
  return { maxDiff, unsaturated: expected.filter((p) => p > 1e-3 && p < 1 - 1e-3).length };
}

/**
 * Fresh BN layers hold mean 0, variance 1, gamma 1, beta 0, which would let a wrong statistics
 * mapping (swapped mean and variance, a missing gamma) pass. Give each its own values.
 */
function giveBatchNormStatistics(model: tf.LayersModel): void {
  let seed = 100;
  for (const layer of model.layers) {
    for (const weight of layer.weights) {
      const name = weight.originalName.split('/').at(-1)!;
      const shape = weight.read().shape;
      if (name === 'moving_variance' || name === 'gamma') weight.write(tf.randomUniform(shape, 0.5, 1.5, 'float32', seed++));
      else if (name === 'moving_mean' || name === 'beta') weight.write(tf.randomUniform(shape, -0.2, 0.2, 'float32', seed++));
    }
  }
}

/**
 * Scales the final dense layer until the probabilities of a few random inputs span at least 0.2: a
 * randomly initialised VGG16 (no BN, 13 ReLU convolutions) answers near-uniform probabilities, which
 * any graph at all would match to 1e-4.
 */
function spreadPredictions(model: tf.LayersModel, c: Case): void {
  const kernel = model.getLayer('predictions').weights.find((weight) => weight.originalName.endsWith('/kernel'));
  assert.ok(kernel, 'the model has a predictions kernel');
  const probe = randomInputs(4, c, 3);
  try {
    for (let attempt = 0; attempt < 8; attempt++) {
      const spread = tf.tidy(() => {
        const p = model.predict(probe) as tf.Tensor;
        return p.max().sub(p.min()).dataSync()[0]!;
      });
      if (spread >= 0.2) return;
      kernel.write(tf.tidy(() => kernel.read().mul(4)));
    }
    assert.fail('the probabilities stayed near-uniform: the parity check would prove nothing');
  } finally {
    probe.dispose();
  }
}
