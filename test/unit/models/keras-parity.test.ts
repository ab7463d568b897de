/**
 * Parameter counts, layer names and output shapes against Keras applications (values from
 * `model.summary()` of keras.applications with include_top=True, weights=None, classes=1000).
 * Each big model is built once, checked and disposed.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { buildModel, summarizeModel, type Architecture, type ModelSummary } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

interface KerasFacts {
  size: number;
  params: number;
  trainable: number;
  layerCount: number;
  /** name -> [Keras class, output shape, params]. */
  layers: Record<string, [string, (number | null)[], number]>;
}

const KERAS: Partial<Record<Architecture, KerasFacts>> = {
  vgg16: {
    size: 224,
    params: 138_357_544,
    trainable: 138_357_544,
    layerCount: 23,
    layers: {
      block1_conv1: ['Conv2D', [null, 224, 224, 64], 1_792],
      block3_conv3: ['Conv2D', [null, 56, 56, 256], 590_080],
      block5_conv3: ['Conv2D', [null, 14, 14, 512], 2_359_808],
      block5_pool: ['MaxPooling2D', [null, 7, 7, 512], 0],
      flatten: ['Flatten', [null, 25_088], 0],
      fc1: ['Dense', [null, 4_096], 102_764_544],
      fc2: ['Dense', [null, 4_096], 16_781_312],
      predictions: ['Dense', [null, 1_000], 4_097_000],
    },
  },
  resnet50: {
    size: 224,
    params: 25_636_712,
    trainable: 25_583_592,
    layerCount: 177,
    layers: {
      conv1_pad: ['ZeroPadding2D', [null, 230, 230, 3], 0],
      conv1_conv: ['Conv2D', [null, 112, 112, 64], 9_472],
      conv1_bn: ['FastBatchNormalization', [null, 112, 112, 64], 256],
      pool1_pad: ['ZeroPadding2D', [null, 114, 114, 64], 0],
      pool1_pool: ['MaxPooling2D', [null, 56, 56, 64], 0],
      conv2_block1_0_conv: ['Conv2D', [null, 56, 56, 256], 16_640],
      conv2_block1_1_conv: ['Conv2D', [null, 56, 56, 64], 4_160],
      conv2_block3_out: ['Activation', [null, 56, 56, 256], 0],
      conv3_block1_1_conv: ['Conv2D', [null, 28, 28, 128], 32_896],
      conv3_block4_add: ['Add', [null, 28, 28, 512], 0],
      conv4_block6_out: ['Activation', [null, 14, 14, 1_024], 0],
      conv5_block1_0_conv: ['Conv2D', [null, 7, 7, 2_048], 2_099_200],
      conv5_block3_3_bn: ['FastBatchNormalization', [null, 7, 7, 2_048], 8_192],
      conv5_block3_out: ['Activation', [null, 7, 7, 2_048], 0],
      avg_pool: ['GlobalAveragePooling2D', [null, 2_048], 0],
      predictions: ['Dense', [null, 1_000], 2_049_000],
    },
  },
  inceptionv3: {
    size: 299,
    params: 23_851_784,
    trainable: 23_817_352,
    layerCount: 313,
    layers: {
      conv2d: ['Conv2D', [null, 149, 149, 32], 864],
      batch_normalization: ['FastBatchNormalization', [null, 149, 149, 32], 96],
      activation: ['Activation', [null, 149, 149, 32], 0],
      max_pooling2d: ['MaxPooling2D', [null, 73, 73, 64], 0],
      conv2d_4: ['Conv2D', [null, 71, 71, 192], 138_240],
      max_pooling2d_1: ['MaxPooling2D', [null, 35, 35, 192], 0],
      mixed0: ['Concatenate', [null, 35, 35, 256], 0],
      mixed2: ['Concatenate', [null, 35, 35, 288], 0],
      mixed3: ['Concatenate', [null, 17, 17, 768], 0],
      mixed7: ['Concatenate', [null, 17, 17, 768], 0],
      mixed8: ['Concatenate', [null, 8, 8, 1_280], 0],
      mixed9_0: ['Concatenate', [null, 8, 8, 768], 0],
      concatenate: ['Concatenate', [null, 8, 8, 768], 0],
      mixed9: ['Concatenate', [null, 8, 8, 2_048], 0],
      mixed9_1: ['Concatenate', [null, 8, 8, 768], 0],
      concatenate_1: ['Concatenate', [null, 8, 8, 768], 0],
      mixed10: ['Concatenate', [null, 8, 8, 2_048], 0],
      conv2d_93: ['Conv2D', [null, 8, 8, 192], 393_216],
      batch_normalization_93: ['FastBatchNormalization', [null, 8, 8, 192], 576],
      activation_93: ['Activation', [null, 8, 8, 192], 0],
      average_pooling2d_8: ['AveragePooling2D', [null, 8, 8, 2_048], 0],
      avg_pool: ['GlobalAveragePooling2D', [null, 2_048], 0],
      predictions: ['Dense', [null, 1_000], 2_049_000],
    },
  },
};

/** Builds the Keras-top model, summarises it and disposes it, checking that nothing leaks. */
function summarizeKerasTop(architecture: Architecture, size: number): { summary: ModelSummary; weightNames: string[] } {
  const before = tf.memory().numTensors;
  const model = buildModel({ architecture, inputShape: [size, size, 3], numClasses: 1000, includeTop: true, seed: 1 });
  try {
    return { summary: summarizeModel(model), weightNames: model.weights.map((w) => w.originalName) };
  } finally {
    model.dispose();
    assert.equal(tf.memory().numTensors, before, 'all weights released by dispose()');
  }
}

for (const [architecture, facts] of Object.entries(KERAS) as [Architecture, KerasFacts][]) {
  describe(`${architecture} with the Keras top at ${facts.size}x${facts.size}x3, 1000 classes`, () => {
    let summary: ModelSummary;
    let weightNames: string[];
    before(() => {
      ({ summary, weightNames } = summarizeKerasTop(architecture, facts.size));
    });

    it('has exactly Keras total and trainable parameter counts', () => {
      assert.equal(summary.architecture, architecture);
      assert.equal(summary.params, facts.params);
      assert.equal(summary.trainableParams, facts.trainable);
    });

    it('has Keras layer count, names, output shapes and per-layer params', () => {
      assert.equal(summary.layers.length, facts.layerCount);
      assert.equal(new Set(summary.layers.map((l) => l.name)).size, summary.layers.length, 'names unique');
      for (const [name, [type, shape, params]] of Object.entries(facts.layers)) {
        const layer = summary.layers.find((l) => l.name === name);
        assert.ok(layer, `layer ${name} exists`);
        assert.deepEqual([layer.type, layer.outputShape, layer.params], [type, shape, params], name);
      }
    });

    it('names weights layer/weight like Keras so converted weights load by name', () => {
      const expected: Record<Architecture, string[]> = {
        cnn: [],
        vgg16: ['block1_conv1/kernel', 'block1_conv1/bias', 'fc1/kernel', 'predictions/bias'],
        resnet50: ['conv1_conv/bias', 'conv1_bn/gamma', 'conv1_bn/moving_variance', 'conv5_block3_3_bn/beta'],
        inceptionv3: ['conv2d/kernel', 'batch_normalization/beta', 'batch_normalization_93/moving_mean', 'predictions/kernel'],
      };
      for (const name of expected[architecture]) assert.ok(weightNames.includes(name), name);
      if (architecture === 'inceptionv3') {
        assert.ok(!weightNames.some((n) => n.endsWith('/gamma')), 'InceptionV3 BN has no gamma (scale=False)');
        assert.ok(!weightNames.some((n) => /^conv2d(_\d+)?\/bias$/.test(n)), 'InceptionV3 convs have no bias');
      }
    });
  });
}

describe('Keras top at other sizes', () => {
  it('sizes VGG16 fc1 by the flattened block5_pool, as Keras does without ImageNet weights', () => {
    const before = tf.memory().numTensors;
    const model = buildModel({ architecture: 'vgg16', inputShape: [64, 96, 1], numClasses: 3, includeTop: true, seed: 1 });
    const fc1 = model.getLayer('fc1');
    assert.deepEqual(model.getLayer('block5_pool').outputShape, [null, 2, 3, 512]);
    assert.equal(fc1.countParams(), 2 * 3 * 512 * 4096 + 4096);
    assert.equal(model.getLayer('block1_conv1').countParams(), 3 * 3 * 1 * 64 + 64);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });
});
