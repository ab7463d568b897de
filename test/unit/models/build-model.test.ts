import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import {
  ARCHITECTURES,
  DEFAULT_BN_MOMENTUM,
  DEFAULT_DROPOUT,
  GRAD_CAM_LAYER,
  MIN_INPUT_SIZE,
  PREPROCESS_MODE,
  FastBatchNormalization,
  buildModel,
  gradCamLayerName,
  parseArchitecture,
  parseInputShape,
  type Architecture,
  type InputShape,
  type ModelSpec,
} from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

/** Runs `fn` and asserts it created no lasting tensors. */
function noLeak<T>(fn: () => T): T {
  const before = tf.memory().numTensors;
  const result = fn();
  assert.equal(tf.memory().numTensors, before, 'tensor count unchanged');
  return result;
}

function withModel(spec: ModelSpec, fn: (model: tf.LayersModel) => void): void {
  noLeak(() => {
    const model = buildModel(spec);
    try {
      fn(model);
    } finally {
      model.dispose();
    }
  });
}

describe('parseArchitecture and parseInputShape', () => {
  it('accepts the four names in any case and rejects others listing the valid ones', () => {
    assert.deepEqual(ARCHITECTURES.map((a) => parseArchitecture(a.toUpperCase())), [...ARCHITECTURES]);
    assert.equal(parseArchitecture(' ResNet50 '), 'resnet50');
    assert.throws(() => parseArchitecture('alexnet'), (e: unknown) =>
      isMlError(e, 'ARCHITECTURE_UNKNOWN') && ARCHITECTURES.every((a) => e.message.includes(a)));
  });

  it('parses HxWxC (and HxW as 3 channels) and rejects anything else', () => {
    assert.deepEqual(parseInputShape('224x224x3'), [224, 224, 3]);
    assert.deepEqual(parseInputShape('33X47x1'), [33, 47, 1]);
    assert.deepEqual(parseInputShape('64x32'), [64, 32, 3]);
    for (const bad of ['224', '224x224x0', 'ax224x3', '224x224x3x1', '-1x5x3', '2.5x4x3', '']) {
      assert.throws(() => parseInputShape(bad), (e: unknown) => isMlError(e, 'INPUT_SHAPE_INVALID'), bad);
    }
  });

  it('gives each architecture its Grad-CAM layer and Keras preprocessing mode', () => {
    assert.deepEqual(GRAD_CAM_LAYER, { cnn: 'block3_relu', vgg16: 'block5_conv3', resnet50: 'conv5_block3_out', inceptionv3: 'mixed10' });
    assert.deepEqual(PREPROCESS_MODE, { cnn: 'unit', vgg16: 'caffe', resnet50: 'caffe', inceptionv3: 'tf' });
    assert.equal(gradCamLayerName({ architecture: 'cnn', cnnFilters: [8, 16] }), 'block2_relu');
    assert.equal(gradCamLayerName({ architecture: 'resnet50' }), 'conv5_block3_out');
  });
});

describe('buildModel validation', () => {
  const base: ModelSpec = { architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2 };
  const cases: [string, Partial<ModelSpec>, string][] = [
    ['unknown architecture', { architecture: 'alexnet' as Architecture }, 'ARCHITECTURE_UNKNOWN'],
    ['InceptionV3 below 75x75', { architecture: 'inceptionv3', inputShape: [74, 200, 3] }, 'INPUT_SHAPE_INVALID'],
    ['VGG16 below 32x32', { architecture: 'vgg16', inputShape: [64, 31, 3] }, 'INPUT_SHAPE_INVALID'],
    ['ResNet50 below 32x32', { architecture: 'resnet50', inputShape: [31, 31, 3] }, 'INPUT_SHAPE_INVALID'],
    ['zero channels', { inputShape: [32, 32, 0] }, 'INPUT_SHAPE_INVALID'],
    ['non-integer size', { inputShape: [32.5, 32, 1] }, 'INPUT_SHAPE_INVALID'],
    ['two dimensions', { inputShape: [32, 32] as unknown as InputShape }, 'INPUT_SHAPE_INVALID'],
    ['one class', { numClasses: 1 }, 'INVALID_ARGUMENT'],
    ['dropout of 1', { dropout: 1 }, 'INVALID_ARGUMENT'],
    ['negative seed', { seed: -1 }, 'INVALID_ARGUMENT'],
    ['a CNN too deep for its input', { cnnFilters: [4, 4, 4, 4, 4, 4], inputShape: [32, 32, 1] }, 'INPUT_SHAPE_INVALID'],
  ];
  for (const [what, override, code] of cases) {
    it(`rejects ${what} with ${code}`, () => {
      noLeak(() => assert.throws(() => buildModel({ ...base, ...override }), (e: unknown) => isMlError(e, code as never)));
    });
  }

  it('accepts the smallest sizes of every architecture', () => {
    for (const architecture of ARCHITECTURES) {
      const min = MIN_INPUT_SIZE[architecture];
      withModel({ architecture, inputShape: [min, min, 1], numClasses: 2, seed: 1 }, (model) => {
        assert.deepEqual(model.outputs[0]?.shape, [null, 2]);
      });
    }
  });
});

describe('forward pass at odd sizes', () => {
  // [architecture, input, classes, batch]: batch 1 for the two costliest on the pure-JS backend.
  const cases: [Architecture, InputShape, number, number][] = [
    ['cnn', [33, 47, 1], 4, 2],
    ['vgg16', [33, 47, 1], 3, 1],
    ['resnet50', [97, 61, 3], 5, 1],
    ['inceptionv3', [75, 75, 3], 2, 2],
    ['inceptionv3', [81, 90, 1], 3, 2],
  ];
  for (const [architecture, inputShape, numClasses, batch] of cases) {
    it(`${architecture} ${inputShape.join('x')} gives [${batch}, ${numClasses}] probabilities`, () => {
      withModel({ architecture, inputShape, numClasses, seed: 3 }, (model) => {
        const probs = tf.tidy(() => {
          const x = tf.randomUniform([batch, ...inputShape], -1, 1, 'float32', 4);
          return (model.predict(x) as tf.Tensor).arraySync() as number[][];
        });
        assert.equal(probs.length, batch);
        for (const row of probs) {
          assert.equal(row.length, numClasses);
          assert.ok(row.every((p) => Number.isFinite(p) && p >= 0 && p <= 1), JSON.stringify(row));
          assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) < 1e-5, `sums to 1: ${row}`);
        }
        const camLayer = model.getLayer(GRAD_CAM_LAYER[architecture]);
        assert.equal((camLayer.outputShape as number[]).length, 4, 'Grad-CAM layer is a 4-D feature map');
      });
    });
  }
});

describe('batch normalisation layers', () => {
  // [architecture, input, BN layers, has gamma, epsilon]: Keras's BN configuration per architecture.
  const cases: [Architecture, InputShape, number, boolean, number][] = [
    ['cnn', [32, 32, 1], 3, true, 1e-3],
    ['resnet50', [32, 32, 3], 53, true, 1.001e-5],
    ['inceptionv3', [75, 75, 3], 94, false, 1e-3],
  ];
  for (const [architecture, inputShape, count, scale, epsilon] of cases) {
    it(`${architecture}: ${count} FastBatchNormalization layers (scale ${scale}, epsilon ${epsilon}) whose training pass updates every moving mean`, () => {
      withModel({ architecture, inputShape, numClasses: 2, seed: 3 }, (model) => {
        const bn = model.layers.filter((l): l is FastBatchNormalization => l instanceof FastBatchNormalization);
        assert.equal(bn.length, count);
        assert.equal(model.layers.filter((l) => l.getClassName().includes('BatchNormalization')).length, count, 'no other BN class');
        for (const layer of bn) {
          assert.equal(layer.getClassName(), 'FastBatchNormalization');
          assert.equal(layer.scale, scale, layer.name);
          assert.equal(layer.epsilon, epsilon, layer.name);
          assert.equal(layer.momentum, DEFAULT_BN_MOMENTUM, layer.name);
          const names = layer.weights.map((w) => w.originalName.slice(layer.name.length + 1));
          assert.deepEqual(names, [...(scale ? ['gamma'] : []), 'beta', 'moving_mean', 'moving_variance'], layer.name);
        }
        // tfjs#2868 made InceptionV3's scale-less BN throw here.
        const probs = tf.tidy(() => {
          const x = tf.randomUniform([2, ...inputShape], -1, 1, 'float32', 4);
          return (model.apply(x, { training: true }) as tf.Tensor).arraySync() as number[][];
        });
        assert.ok(probs.every((row) => Math.abs(row[0]! + row[1]! - 1) < 1e-5));
        for (const layer of bn) {
          const movingMean = layer.weights.find((w) => w.originalName.endsWith('/moving_mean'))!.read().dataSync();
          assert.ok(movingMean.some((v) => v !== 0), `${layer.name} moving mean updated`);
        }
      });
    });
  }
});

describe('heads', () => {
  it('defaults to avg_pool, head_dropout and a softmax predictions layer', () => {
    withModel({ architecture: 'resnet50', inputShape: [32, 32, 3], numClasses: 4 }, (model) => {
      const tail = model.layers.slice(-3);
      assert.deepEqual(tail.map((l) => [l.name, l.getClassName()]), [
        ['avg_pool', 'GlobalAveragePooling2D'],
        ['head_dropout', 'Dropout'],
        ['predictions', 'Dense'],
      ]);
      assert.equal((tail[1]?.getConfig() as { rate: number }).rate, DEFAULT_DROPOUT);
      assert.equal((tail[2]?.getConfig() as { activation: string }).activation, 'softmax');
      assert.equal(model.getLayer('conv5_block3_out').outputShape[3], 2048);
      assert.equal(tail[2]?.countParams(), 2048 * 4 + 4);
    });
  });

  it('leaves the dropout layer out when dropout is 0 and uses the given rate otherwise', () => {
    withModel({ architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2, dropout: 0 }, (model) => {
      assert.ok(!model.layers.some((l) => l.getClassName() === 'Dropout'));
    });
    withModel({ architecture: 'vgg16', inputShape: [32, 32, 3], numClasses: 2, dropout: 0.25 }, (model) => {
      assert.equal((model.getLayer('head_dropout').getConfig() as { rate: number }).rate, 0.25);
    });
  });

  it('builds the CNN as conv-BN-ReLU-pool blocks with the configured filters', () => {
    withModel({ architecture: 'cnn', inputShape: [48, 40, 1], numClasses: 3, cnnFilters: [8, 16] }, (model) => {
      assert.deepEqual(model.layers.slice(1, 9).map((l) => l.name), [
        'block1_conv', 'block1_bn', 'block1_relu', 'block1_pool', 'block2_conv', 'block2_bn', 'block2_relu', 'block2_pool',
      ]);
      assert.deepEqual(model.getLayer('block2_relu').outputShape, [null, 24, 20, 16]);
      assert.deepEqual(model.getLayer('block2_pool').outputShape, [null, 12, 10, 16]);
    });
    withModel({ architecture: 'cnn', inputShape: [64, 64, 1], numClasses: 3, includeTop: true }, (model) => {
      assert.deepEqual(model.layers.slice(-4).map((l) => l.name), ['flatten', 'fc1', 'fc1_dropout', 'predictions']);
      assert.equal(model.getLayer('fc1').countParams(), 8 * 8 * 128 * 128 + 128);
    });
  });
});

describe('seeded initialisation', () => {
  function weightsOf(spec: ModelSpec): Float32Array[] {
    return noLeak(() => {
      const model = buildModel(spec);
      const values = model.weights.map((w) => w.read().dataSync() as Float32Array);
      model.dispose();
      return values;
    });
  }

  for (const architecture of ARCHITECTURES) {
    it(`${architecture}: the same seed gives identical weights, another seed different kernels`, () => {
      const spec: ModelSpec = { architecture, inputShape: [MIN_INPUT_SIZE[architecture], MIN_INPUT_SIZE[architecture], 1], numClasses: 3 };
      const a = weightsOf({ ...spec, seed: 11 });
      const b = weightsOf({ ...spec, seed: 11 });
      const c = weightsOf({ ...spec, seed: 12 });
      assert.equal(a.length, b.length);
      a.forEach((w, i) => assert.ok(Buffer.from(w.buffer).equals(Buffer.from((b[i] as Float32Array).buffer)), `weight ${i} identical`));
      // Every kernel differs (biases, BN statistics start at constants in both).
      const randomInit = a.map((w) => w.subarray(0, 64).some((v) => v !== w[0]));
      assert.ok(randomInit.some(Boolean));
      a.forEach((w, i) => {
        if (randomInit[i]) assert.ok(!Buffer.from(w.buffer).equals(Buffer.from((c[i] as Float32Array).buffer)), `weight ${i} differs`);
      });
    });
  }

  it('gives each layer its own stream, so two equally shaped kernels differ', () => {
    withModel({ architecture: 'vgg16', inputShape: [32, 32, 3], numClasses: 2, seed: 5 }, (model) => {
      const [k1, k2] = ['block5_conv2', 'block5_conv3'].map((n) => model.getLayer(n).getWeights()[0]!.dataSync());
      assert.notDeepEqual(Array.from(k1!.slice(0, 10)), Array.from(k2!.slice(0, 10)));
    });
  });
});
