import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { isMlError } from '../../../src/ml/errors.ts';
import { readCheckpoint } from '../../../src/ml/train/checkpoint.ts';
import { trainModel } from '../../../src/ml/train/trainer.ts';
import type { EpochRecord, TrainOptions, TrainProgressEvent, TrainResult } from '../../../src/ml/train/types.ts';
import { resumeRunOptions } from './fixtures/resume-options.ts';
import { CLASSES, SIZE, batchSource, buildConvModel, maxAbsDiff, weightValues } from './fixtures/tiny.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
let scratch: string;

before(async () => {
  await useTestBackend();
  scratch = await mkdtemp(path.join(tmpdir(), 'fracture-train-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

const isCode = (code: Parameters<typeof isMlError>[1]) => (e: unknown): boolean => isMlError(e, code);

/** Standard small run: 24 training samples in batches of 8, 9 validation samples. */
function baseOptions(overrides: Partial<TrainOptions> & { flipVal?: boolean; seed?: number } = {}): TrainOptions & { sources: { closed: number } } {
  const sources = { closed: 0 };
  const seed = overrides.seed ?? 5;
  const train = batchSource({ seed, samples: 24, batchSize: 8 }, () => sources.closed++);
  const val = batchSource({ seed: seed + 1, samples: 9, batchSize: 9, flipLabels: overrides.flipVal === true }, () => sources.closed++);
  const { flipVal: _flip, ...rest } = overrides;
  return {
    model: buildConvModel(seed),
    trainBatches: (epoch) => train(epoch),
    valBatches: () => val(),
    epochs: 2,
    optimizer: { name: 'adam', learningRate: 0.02 },
    ...rest,
    sources,
  };
}

describe('trainModel', () => {
  test('trains, reports history and progress, disposes every batch and leaks no tensor', async () => {
    const options = baseOptions({ stepsPerEpoch: 3 });
    const initial = weightValues(options.model);
    const events: TrainProgressEvent[] = [];
    const before = tf.memory().numTensors;
    const result = await trainModel({ ...options, onProgress: (e) => events.push(e) });
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    assert.equal(options.sources.closed, 4, 'every batch iteration ran to its end');

    assert.deepEqual(result.history.map((h) => h.epoch), [1, 2]);
    for (const h of result.history) {
      assert.ok(Number.isFinite(h.loss) && Number.isFinite(h.valLoss as number));
      assert.ok((h.accuracy as number) >= 0 && h.accuracy <= 1 && (h.valAccuracy as number) >= 0);
      assert.equal(h.learningRate, 0.02);
      assert.ok(h.seconds > 0 && h.imagesPerSecond > 0);
    }
    assert.ok((result.history[1] as EpochRecord).loss < (result.history[0] as EpochRecord).loss, 'training lowers the loss');
    assert.ok(maxAbsDiff(initial, weightValues(options.model)) > 1e-3);
    assert.equal(result.epochsRun, 2);
    assert.equal(result.stoppedEarly, false);
    assert.equal(result.microBatchSize, 8);
    assert.equal(result.resumedFromEpoch, undefined);
    assert.ok(result.trainSeconds > 0);

    const batches = events.filter((e) => e.type === 'batch');
    assert.deepEqual(batches.map((e) => `${e.epoch}:${e.batch}/${e.batches}`), ['1:1/3', '1:2/3', '1:3/3', '2:1/3', '2:2/3', '2:3/3']);
    assert.ok(batches.every((e) => e.imagesPerSecond > 0 && e.microBatchSize === 8 && e.learningRate === 0.02 && e.epochs === 2));
    const etas = batches.map((e) => e.etaSeconds as number);
    assert.ok(etas.every((t) => Number.isFinite(t) && t >= 0));
    assert.ok((etas[0] as number) > (etas[5] as number), 'the ETA shrinks as training advances');
    const epochEvents = events.filter((e) => e.type === 'epoch');
    assert.deepEqual(epochEvents.map((e) => e.valLoss), result.history.map((h) => h.valLoss));
    assert.equal(events[0]?.type, 'start');
    options.model.dispose();
  });

  test('early stopping ends the run and the best epoch weights are restored', async () => {
    // Validation labels are shifted, so the better the model learns, the worse val_loss gets.
    const options = baseOptions({ flipVal: true, epochs: 5, earlyStopping: { monitor: 'val_loss', patience: 1 } });
    const perEpoch: number[][][] = [];
    const stops: TrainProgressEvent[] = [];
    const result = await trainModel({
      ...options,
      onProgress: (e) => {
        if (e.type === 'epoch') perEpoch.push(weightValues(options.model));
        if (e.type === 'early-stopped') stops.push(e);
      },
    });
    assert.ok((result.history[1]?.valLoss as number) > (result.history[0]?.valLoss as number), 'val_loss rose');
    assert.equal(result.stoppedEarly, true);
    assert.equal(result.epochsRun, 2);
    assert.equal(result.bestEpoch, 1);
    assert.equal(result.restoredBestWeights, true);
    assert.equal(stops.length, 1);
    assert.ok(maxAbsDiff(weightValues(options.model), perEpoch[0] as number[][]) < 1e-7, 'weights are those of epoch 1');
    assert.ok(maxAbsDiff(perEpoch[1] as number[][], perEpoch[0] as number[][]) > 1e-4);
    options.model.dispose();
  });

  test('reduce-LR-on-plateau lowers the learning rate the optimizer really uses from the next epoch', async () => {
    const options = baseOptions({
      epochs: 3,
      reduceLrOnPlateau: { monitor: 'loss', factor: 1e-6, patience: 1, minDelta: 1e9 },
    });
    const perEpoch: number[][][] = [];
    const reduced: TrainProgressEvent[] = [];
    const result = await trainModel({
      ...options,
      onProgress: (e) => {
        if (e.type === 'epoch') perEpoch.push(weightValues(options.model));
        if (e.type === 'learning-rate-reduced') reduced.push(e);
      },
    });
    assert.deepEqual(result.history.map((h) => h.learningRate), [0.02, 0.02, 0.02 * 1e-6]);
    // Keras semantics: the wait restarts after a reduction, so flat epochs 2 and 3 both reduce.
    assert.deepEqual(reduced.map((e) => e.epoch), [2, 3]);
    // Adam moves each weight by about the LR per step: ~2e-8 in epoch 3 against ~1e-2 in epoch 2.
    assert.ok(maxAbsDiff(perEpoch[2] as number[][], perEpoch[1] as number[][]) < 1e-6);
    assert.ok(maxAbsDiff(perEpoch[1] as number[][], perEpoch[0] as number[][]) > 1e-3);
    options.model.dispose();
  });

  test('an out-of-memory step falls back to smaller micro-batches and reports the effective size', async () => {
    const options = baseOptions({ epochs: 1 });
    const limit = new FakeMemoryLimit(4);
    const model = tf.sequential();
    model.add(tf.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 2, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
    model.add(limit);
    model.add(tf.layers.flatten());
    model.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
    const events: TrainProgressEvent[] = [];
    const before = tf.memory().numTensors;
    const result = await trainModel({ ...options, model, onProgress: (e) => events.push(e) });
    assert.equal(tf.memory().numTensors, before);
    assert.equal(result.microBatchSize, 4);
    assert.deepEqual(events.filter((e) => e.type === 'micro-batch-reduced').map((e) => e.microBatchSize), [4]);
    assert.deepEqual(events.filter((e) => e.type === 'batch').map((e) => e.microBatchSize), [4, 4, 4]);
    assert.ok(Number.isFinite(result.history[0]?.valLoss as number), 'validation ran in chunks that fit');
    model.dispose();
    options.model.dispose();
  });

  test('cancellation between micro-batches throws TRAINING_CANCELLED, applies nothing, keeps the checkpoint', async () => {
    const dir = path.join(scratch, 'cancel');
    const controller = new AbortController();
    const options = baseOptions({ epochs: 3, microBatchSize: 2, checkpointDir: dir, signal: controller.signal });
    let afterEpoch1: number[][] = [];
    let trainingCalls = 0;
    // Aborts during the second micro-batch of the first batch of epoch 2.
    const spy = new CallSpy(() => {
      trainingCalls++;
      if (trainingCalls === 12 + 2) controller.abort();
    });
    const model = tf.sequential();
    model.add(tf.layers.conv2d({ inputShape: [SIZE, SIZE, 1], filters: 2, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }) }));
    model.add(spy);
    model.add(tf.layers.flatten());
    model.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
    const before = tf.memory().numTensors;
    await assert.rejects(
      trainModel({
        ...options,
        model,
        onProgress: (e) => {
          if (e.type === 'epoch') afterEpoch1 = weightValues(model);
        },
      }),
      isCode('TRAINING_CANCELLED'),
    );
    assert.equal(trainingCalls, 14, 'stopped before the third micro-batch');
    assert.equal(tf.memory().numTensors, before);
    assert.ok(maxAbsDiff(weightValues(model), afterEpoch1) === 0, 'the interrupted step was not applied');
    const checkpoint = await readCheckpoint(dir);
    assert.equal(checkpoint?.state.epoch, 1);
    assert.equal(checkpoint?.state.history.length, 1);
    assert.equal(options.sources.closed, 3, 'the interrupted batch source was closed');
    model.dispose();
    options.model.dispose();
  });

  test('a run resumed in-process continues after the checkpoint and restores best weights kept on disk', async () => {
    const dir = path.join(scratch, 'inprocess');
    const common = { flipVal: true, restoreBestWeights: true, optimizer: { name: 'sgd', learningRate: 0.3, momentum: 0.5 } } as const;
    const reference = baseOptions({ ...common, epochs: 3 });
    const full = await trainModel(reference);

    const first = baseOptions({ ...common, epochs: 2, checkpointDir: dir });
    await trainModel(first);
    const state = (await readCheckpoint(dir))?.state;
    assert.equal(state?.best.weights, 'file', 'epoch 1 was best, so its weights are stored beside epoch 2');

    const second = baseOptions({ ...common, epochs: 3, checkpointDir: dir });
    const before = tf.memory().numTensors;
    const resumed = await trainModel(second);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(resumed.resumedFromEpoch, 2);
    assert.equal(resumed.epochsRun, 1);
    assert.deepEqual(resumed.history.map((h) => h.epoch), [1, 2, 3]);
    assert.equal(resumed.bestEpoch, full.bestEpoch);
    assert.ok(Math.abs((resumed.history[2]?.loss as number) - (full.history[2]?.loss as number)) < 1e-5);
    assert.ok(maxAbsDiff(weightValues(second.model), weightValues(reference.model)) < 1e-5);
    [reference, first, second].forEach((o) => o.model.dispose());
  });

  test('the checkpoint directory holds one complete checkpoint; corrupt ones and other seeds are refused', async () => {
    const dir = path.join(scratch, 'layout');
    const options = baseOptions({ epochs: 2, checkpointDir: dir, seed: 9, restoreBestWeights: false });
    await trainModel(options);
    const entries = (await readdir(dir)).sort();
    assert.deepEqual(entries, ['checkpoint.json', 'epoch-0002']);
    const files = (await readdir(path.join(dir, 'epoch-0002'))).sort();
    assert.deepEqual(files, ['model.json', 'optimizer.bin', 'state.json', 'weights.bin']);
    const modelJson = JSON.parse(await readFile(path.join(dir, 'epoch-0002', 'model.json'), 'utf8')) as tf.io.ModelJSON;
    assert.equal(modelJson.format, 'layers-model');
    assert.equal(modelJson.weightsManifest[0]?.weights.length, options.model.weights.length);

    const otherSeed = baseOptions({ epochs: 3, checkpointDir: dir, seed: 9 });
    await assert.rejects(trainModel({ ...otherSeed, seed: 10 }), isCode('CHECKPOINT_INVALID'));
    await assert.rejects(trainModel({ ...otherSeed, optimizer: { name: 'sgd', learningRate: 0.1 } }), isCode('CHECKPOINT_INVALID'));

    await writeFile(path.join(dir, 'epoch-0002', 'weights.bin'), new Uint8Array(10));
    const before = tf.memory().numTensors;
    await assert.rejects(trainModel(otherSeed), isCode('CHECKPOINT_INVALID'));
    assert.equal(tf.memory().numTensors, before);
    [options, otherSeed].forEach((o) => o.model.dispose());
  });

  test('invalid options and batches fail with INVALID_ARGUMENT without leaking the batch', async () => {
    const options = baseOptions();
    await assert.rejects(trainModel({ ...options, epochs: 0 }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(trainModel({ ...options, microBatchSize: 1.5 }), isCode('INVALID_ARGUMENT'));
    await assert.rejects(trainModel({ ...options, valBatches: undefined, earlyStopping: { monitor: 'val_loss', patience: 1 } }), isCode('INVALID_ARGUMENT'));
    const before = tf.memory().numTensors;
    await assert.rejects(trainModel({ ...options, classWeights: [1, 2] }), isCode('INVALID_ARGUMENT'));
    assert.equal(tf.memory().numTensors, before);
    options.model.dispose();
  });
});

describe('trainModel resume across processes', () => {
  test('a run killed after epoch 1 and resumed in a new process equals an uninterrupted run', async () => {
    const dir = path.join(scratch, 'subprocess');
    const out = path.join(scratch, 'resumed.json');
    const script = path.join(here, 'fixtures', 'resume-run.ts');
    const killed = await runNode(script, ['interrupt', dir, out]);
    assert.equal(killed.signal, 'SIGKILL', `the first process was killed (stderr: ${killed.stderr})`);
    assert.equal((await readCheckpoint(dir))?.state.epoch, 1);

    const finished = await runNode(script, ['run', dir, out]);
    assert.equal(finished.code, 0, finished.stderr);
    const resumed = JSON.parse(await readFile(out, 'utf8')) as TrainResult & { weights: number[][] };

    const referenceOptions = resumeRunOptions(undefined);
    const reference = await trainModel(referenceOptions);
    assert.equal(resumed.resumedFromEpoch, 1);
    assert.equal(resumed.epochsRun, 2);
    assert.deepEqual(resumed.history.map((h) => h.epoch), [1, 2, 3]);
    assert.deepEqual(resumed.history.map((h) => h.learningRate), reference.history.map((h) => h.learningRate));
    assert.equal(reference.history[2]?.learningRate, 0.005, 'the plateau reduction happened after epoch 2');
    resumed.history.forEach((h, i) => {
      assert.ok(Math.abs(h.loss - (reference.history[i]?.loss as number)) < 1e-5, `loss of epoch ${h.epoch}`);
    });
    const diff = maxAbsDiff(resumed.weights, weightValues(referenceOptions.model));
    assert.ok(diff < 1e-5, `final weights differ by ${diff}`);
    referenceOptions.model.dispose();
  });
});

function runNode(script: string, args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-liftoff', '--import', 'tsx', script, ...args], {
      cwd: path.resolve(here, '../../..'),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, stderr }));
  });
}

/** Passes data through; fails like an allocator when a training pass has more than `limit` samples. */
class FakeMemoryLimit extends tf.layers.Layer {
  static className = 'FakeMemoryLimit';
  constructor(private readonly limit: number) {
    super({});
  }
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
    if (kwargs.training === true && (x.shape[0] as number) > this.limit) throw new Error('fake: out of memory');
    return tf.mul(x, 1);
  }
}

/** Passes data through and calls `onTraining` on every training-mode forward pass. */
class CallSpy extends tf.layers.Layer {
  static className = 'CallSpy';
  constructor(private readonly onTraining: () => void) {
    super({});
  }
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    if (kwargs.training === true) this.onTraining();
    return tf.mul(Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs, 1);
  }
}
