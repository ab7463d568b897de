import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EXPERIMENT_ID_PATTERN, newExperimentId } from '../../../src/services/experiments/experiment-id.ts';
import { engineOptions, resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';
import type { ExperimentRequest } from '../../../src/services/experiments/experiment.types.ts';
import { isSafeId } from '../../../src/infra/artifact-store.ts';

describe('resolveExperimentSettings', () => {
  it('fills in all four architectures and the engine defaults', () => {
    const { settings, problems } = resolveExperimentSettings({ datasetId: 'xr' });
    assert.deepEqual(problems, []);
    assert.deepEqual(settings.architectures, ['cnn', 'vgg16', 'resnet50', 'inceptionv3']);
    assert.equal(settings.imageSize, 128);
    assert.equal(settings.epochs, 10);
    assert.equal(settings.batchSize, 16);
    assert.equal(settings.learningRate, null);
    assert.equal(settings.rankBy, 'macroF1');
  });

  it('keeps what the client chose, and null learning rate means each architecture default', () => {
    const request: ExperimentRequest = { datasetId: 'xr', architectures: ['cnn'], imageSize: 48, epochs: 3, batchSize: 4, learningRate: null, seed: 9, augment: false, optimizer: 'sgd', rankBy: 'accuracy' };
    const { settings, problems } = resolveExperimentSettings(request);
    assert.deepEqual(problems, []);
    assert.deepEqual([settings.imageSize, settings.epochs, settings.batchSize, settings.seed, settings.augment, settings.optimizer, settings.rankBy], [48, 3, 4, 9, false, 'sgd', 'accuracy']);
    const options = engineOptions(settings);
    assert.equal('learningRate' in options, false);
    assert.equal(engineOptions({ ...settings, learningRate: 0.01 }).learningRate, 0.01);
  });

  it('lists every problem at once, including unknown names the engine types would exclude', () => {
    const { problems } = resolveExperimentSettings({
      datasetId: 'xr',
      architectures: ['inceptionv3', 'alexnet' as never],
      imageSize: 64,
      epochs: 0,
      batchSize: 2.5,
      valFraction: 0.6,
      testFraction: 0.5,
      rankBy: 'auc' as never,
      optimizer: 'rmsprop' as never,
    });
    const text = problems.join('\n');
    assert.match(text, /unknown architecture "alexnet"/);
    assert.match(text, /inceptionv3 needs imageSize >= 75, got 64/);
    assert.match(text, /epochs must be a positive integer/);
    assert.match(text, /batchSize must be a positive integer/);
    assert.match(text, /valFraction \+ testFraction must be below 1/);
    assert.match(text, /rankBy must be one of/);
    assert.match(text, /optimizer must be adam or sgd/);
    assert.equal(problems.length, 7);
  });
});

describe('newExperimentId', () => {
  it('is sortable by creation time, safe as a path segment and a BullMQ job id', () => {
    const early = newExperimentId(new Date('2026-12-04T17:45:12.345Z'), () => 'ffff');
    const late = newExperimentId(new Date('2026-12-04T17:45:13.000Z'), () => '0000');
    assert.equal(early, 'exp-20261204-174512-ffff');
    assert.ok(early < late);
    const random = newExperimentId();
    assert.match(random, EXPERIMENT_ID_PATTERN);
    assert.ok(isSafeId(random) && !random.includes(':'));
  });
});
