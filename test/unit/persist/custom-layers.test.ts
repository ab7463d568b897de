import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { ScalelessBatchNormalization } from '../../../src/ml/models/index.ts';
import { saveModel } from '../../../src/ml/persist/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
let root: string;
before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'persist-custom-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('loadModel and the project custom layers', () => {
  it('loads a model with ScalelessBatchNormalization in a process that never imported src/ml/models', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 3, kernelSize: 3, useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'conv' }),
        new ScalelessBatchNormalization({ name: 'conv_bn' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    const bn = model.getLayer('conv_bn');
    const stats = tf.tidy(() => bn.getWeights().map((w, i) => tf.randomUniform(w.shape, i === 2 ? 0.5 : -1, i === 2 ? 2 : 1, 'float32', 10 + i)));
    bn.setWeights(stats);
    tf.dispose(stats);
    const dir = path.join(root, 'scaleless');
    await saveModel(model, dir, {
      architecture: 'inceptionv3',
      classNames: ['normal', 'fractured'],
      positiveClasses: ['fractured'],
      inputShape: [6, 6, 1],
      preprocessing: { mode: 'tf' },
    });
    const x = tf.randomUniform([3, 6, 6, 1], 0, 1, 'float32', 99);
    const y = model.predict(x) as tf.Tensor;
    const expected = (await y.array()) as number[][];
    tf.dispose([x, y]);
    model.dispose();

    // A fresh process importing only the persist module: the registration must come from loadModel.
    const script = `
      import * as tf from '@tensorflow/tfjs';
      import { loadModel } from './src/ml/persist/index.ts';
      await tf.setBackend('cpu');
      const before = tf.serialization.SerializationMap.getMap().classNameMap.ScalelessBatchNormalization !== undefined;
      const { model } = await loadModel(${JSON.stringify(dir)});
      const x = tf.randomUniform([3, 6, 6, 1], 0, 1, 'float32', 99);
      console.log(JSON.stringify({ before, probs: await model.predict(x).array() }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!) as { before: boolean; probs: number[][] };
    assert.equal(result.before, false, 'the child had not registered the class itself');
    for (let i = 0; i < expected.length; i++) {
      for (let j = 0; j < 2; j++) assert.ok(Math.abs(result.probs[i]![j]! - expected[i]![j]!) < 1e-6);
    }
  });
});
