/**
 * A whole experiment on a tiny synthetic dataset, on the real backend: scan, split, train, evaluate,
 * save, report, resume. Tiny images and one epoch keep it to seconds.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/ml/backend/select-backend.ts';
import { isMlError } from '../../src/ml/errors.ts';
import { DEFAULT_LEARNING_RATE, runExperiment, type ExperimentEvent, type ExperimentReport } from '../../src/ml/experiment/index.ts';
import { classifyImages } from '../../src/ml/inference/index.ts';
import { loadModel } from '../../src/ml/persist/index.ts';
import { generateSyntheticDataset } from '../../src/ml/synth/index.ts';

describe('runExperiment', () => {
  let root: string;
  let dataDir: string;
  let outDir: string;
  let report: ExperimentReport;
  let backend: string;
  const events: ExperimentEvent[] = [];

  before(async () => {
    backend = process.env.FRACTURE_TEST_BACKEND ?? 'wasm';
    await initBackend(backend);
    root = await mkdtemp(path.join(os.tmpdir(), 'experiment-test-'));
    dataDir = path.join(root, 'data');
    outDir = path.join(root, 'run');
    await generateSyntheticDataset({ outDir: dataDir, perClass: 6, size: 40, seed: 5, regions: ['hand', 'forearm'] });
    report = await runExperiment({
      dataDir,
      outDir,
      architectures: ['cnn'],
      imageSize: 32,
      epochs: 2,
      batchSize: 4,
      seed: 9,
      backend,
      onEvent: (event) => events.push(event),
    });
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('writes report.json with provenance, per-architecture metrics, history, timings and the winner', async () => {
    const onDisk = JSON.parse(await readFile(path.join(outDir, 'report.json'), 'utf8')) as ExperimentReport;
    assert.deepEqual(onDisk.winner, report.winner);
    assert.equal(onDisk.backend.name, tf.getBackend());
    assert.match(onDisk.dataset.hash, /^[0-9a-f]{64}$/);
    assert.deepEqual(onDisk.dataset.classNames, ['forearm_fractured', 'forearm_normal', 'hand_fractured', 'hand_normal']);
    assert.deepEqual(onDisk.dataset.positiveClasses, ['forearm_fractured', 'hand_fractured']);
    const [result] = onDisk.results;
    assert.ok(result);
    assert.equal(result.architecture, 'cnn');
    assert.equal(result.history.length, 2);
    assert.equal(result.metrics.macroAvg.support, onDisk.results[0]?.metrics.confusionMatrix.flat().reduce((a, b) => a + b, 0));
    assert.ok(result.metrics.binary, 'the binary fracture view is present');
    assert.ok(result.timings.trainSeconds > 0 && result.timings.inferenceMsPerImage > 0);
    assert.ok(result.params > 0 && result.modelBytes > 0);
    assert.equal(onDisk.winner?.architecture, 'cnn');
    assert.equal(onDisk.config.seed, 9);
  });

  it('emits dataset, start, per-batch and per-epoch progress, and done events in order', () => {
    const types = events.map((event) => (event.type === 'train' ? `train:${event.progress.type}` : event.type));
    assert.equal(types[0], 'dataset');
    assert.equal(types[1], 'architecture-start');
    assert.equal(types.at(-1), 'architecture-done');
    assert.equal(types.filter((type) => type === 'train:epoch').length, 2);
    assert.ok(types.includes('train:batch'));
  });

  it('saves a model that reloads and classifies an image with the training preprocessing', async () => {
    const loaded = await loadModel(path.join(outDir, 'models', 'cnn'));
    try {
      assert.equal(loaded.metadata.architecture, 'cnn');
      assert.deepEqual(loaded.metadata.inputShape, [32, 32, 3]);
      const training = loaded.metadata.training as { learningRate?: number; split?: { seed: number } } | undefined;
      assert.equal(training?.learningRate, DEFAULT_LEARNING_RATE.cnn, 'the default learning rate of the cnn was used and recorded');
      assert.equal(training?.split?.seed, 9);
      const image = path.join(dataDir, 'hand_normal', 'hand_normal_0000.png');
      const [prediction] = await classifyImages(loaded, [image]);
      assert.ok(prediction);
      const sum = Object.values(prediction.probabilities).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(sum - 1) < 1e-5);
      const fracture = (prediction.probabilities.forearm_fractured ?? 0) + (prediction.probabilities.hand_fractured ?? 0);
      assert.ok(Math.abs((prediction.fractureProbability ?? -1) - fracture) < 1e-9);
    } finally {
      loaded.model.dispose();
    }
  });

  it('removes checkpoints once the model is saved and reuses finished architectures on a rerun', async () => {
    await assert.rejects(readdir(path.join(outDir, 'checkpoints')), { code: 'ENOENT' });
    const started: string[] = [];
    const again = await runExperiment({
      dataDir, outDir, architectures: ['cnn'], imageSize: 32, epochs: 2, batchSize: 4, seed: 9, backend,
      onEvent: (event) => { if (event.type === 'architecture-start') started.push(event.architecture); },
    });
    assert.deepEqual(started, [], 'nothing was retrained');
    assert.deepEqual(again.results[0]?.metrics, report.results[0]?.metrics);
  });

  it('leaks no tensors across a run', async () => {
    const before = tf.memory().numTensors;
    await runExperiment({ dataDir, outDir: path.join(root, 'run-leak'), architectures: ['cnn'], imageSize: 32, epochs: 1, batchSize: 8, seed: 1 });
    assert.equal(tf.memory().numTensors, before);
  });

  it('refuses images smaller than the input with IMAGE_TOO_SMALL unless allowed', async () => {
    await assert.rejects(
      runExperiment({ dataDir, outDir: path.join(root, 'run-small'), architectures: ['cnn'], imageSize: 48, epochs: 1 }),
      (error) => isMlError(error, 'IMAGE_TOO_SMALL'),
    );
  });

  it('stops with TRAINING_CANCELLED when the signal aborts', async () => {
    const controller = new AbortController();
    await assert.rejects(
      runExperiment({
        dataDir, outDir: path.join(root, 'run-cancel'), architectures: ['cnn'], imageSize: 32, epochs: 3, batchSize: 4, seed: 2,
        signal: controller.signal,
        onEvent: (event) => { if (event.type === 'train' && event.progress.type === 'batch') controller.abort(); },
      }),
      (error) => isMlError(error, 'TRAINING_CANCELLED'),
    );
  });

  it('resumes a stopped run from its last epoch checkpoint, but never a checkpoint made with other settings', async () => {
    const resumeDir = path.join(root, 'run-resume');
    const options = { dataDir, outDir: resumeDir, architectures: ['cnn'] as const, imageSize: 32, epochs: 3, batchSize: 4, seed: 4, backend };
    /** Runs, optionally stopping right after the first checkpoint; returns the first epoch it trained. */
    const attempt = async (learningRate: number, stopAfterCheckpoint: boolean): Promise<number | undefined> => {
      const controller = new AbortController();
      let firstEpoch: number | undefined;
      const run = runExperiment({
        ...options, architectures: [...options.architectures], learningRate, signal: controller.signal,
        onEvent: (event) => {
          if (event.type !== 'train') return;
          if (event.progress.type === 'start') firstEpoch = event.progress.epoch;
          if (stopAfterCheckpoint && event.progress.type === 'checkpoint') controller.abort();
        },
      });
      if (stopAfterCheckpoint) await assert.rejects(run, (error) => isMlError(error, 'TRAINING_CANCELLED'));
      else assert.equal((await run).results[0]?.history.length, 3);
      return firstEpoch;
    };
    assert.equal(await attempt(1e-3, true), 1);
    assert.equal(await attempt(1e-2, true), 1, 'a checkpoint of another learning rate is not resumed');
    assert.equal(await attempt(1e-2, false), 2, 'the same settings resume after epoch 1');
  });

  it('retrains an architecture when a setting changes', async () => {
    const started: string[] = [];
    await runExperiment({
      dataDir, outDir, architectures: ['cnn'], imageSize: 32, epochs: 2, batchSize: 4, seed: 9, learningRate: 5e-4, backend,
      onEvent: (event) => { if (event.type === 'architecture-start') started.push(event.architecture); },
    });
    assert.deepEqual(started, ['cnn']);
  });

  it('lists every invalid option at once', async () => {
    await assert.rejects(
      runExperiment({ dataDir, outDir, architectures: ['inceptionv3'], imageSize: 40, epochs: 0, batchSize: 4 }),
      (error) => isMlError(error, 'INVALID_ARGUMENT') && /inceptionv3 needs imageSize >= 75/.test(error.message) && /epochs/.test(error.message),
    );
  });
});
