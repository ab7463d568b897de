import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { buildModel, DEFAULT_BN_MOMENTUM, FastBatchNormalization, type Architecture } from '../../../src/ml/models/index.ts';
import { isMlError } from '../../../src/ml/errors.ts';

/** The momentum of every batch-norm layer of a freshly built model. */
function momenta(architecture: Architecture, bnMomentum?: number): number[] {
  const size = architecture === 'inceptionv3' ? 75 : 32;
  const model = buildModel({ architecture, inputShape: [size, size, 3], numClasses: 2, seed: 1, ...(bnMomentum === undefined ? {} : { bnMomentum }) });
  try {
    return model.layers.filter((layer) => layer instanceof FastBatchNormalization).map((layer) => (layer as FastBatchNormalization).momentum);
  } finally {
    model.dispose();
  }
}

describe('batch-norm momentum', () => {
  it('defaults to 0.9 in every BN layer of the cnn, resnet50 and inceptionv3', async () => {
    await useTestBackend();
    const tensorsBefore = tf.memory().numTensors;
    assert.equal(DEFAULT_BN_MOMENTUM, 0.9);
    for (const architecture of ['cnn', 'resnet50', 'inceptionv3'] as const) {
      const values = momenta(architecture);
      assert.ok(values.length > 0, `${architecture} has BN layers`);
      assert.deepEqual(new Set(values), new Set([0.9]), architecture);
    }
    assert.equal(tf.memory().numTensors, tensorsBefore, 'built models are disposed');
  });

  it('takes Keras 0.99 on request, and rejects values outside [0, 1)', async () => {
    await useTestBackend();
    assert.deepEqual(new Set(momenta('resnet50', 0.99)), new Set([0.99]));
    assert.throws(() => buildModel({ architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2, bnMomentum: 1 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  });
});
