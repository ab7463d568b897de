import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { MlError, isMlError } from '../../../src/ml/errors.ts';
import { createOptimizer, disposeOptimizer } from '../../../src/ml/train/optimizer.ts';
import { isOutOfMemoryMessage } from '../../../src/ml/train/out-of-memory.ts';
import { trainStep } from '../../../src/ml/train/step.ts';
import type { MicroBatchState, StepContext } from '../../../src/ml/train/step.ts';
import { CLASSES, SIZE, batchSource, buildBnModel, buildConvModel, maxAbsDiff, weightValues } from './fixtures/tiny.ts';
import type { TrainBatch } from '../../../src/ml/train/types.ts';

before(async () => {
  await useTestBackend();
});

/** The first batch of a source (the caller disposes it). */
async function firstBatch(batchSize: number, seed = 3): Promise<TrainBatch> {
  for await (const batch of batchSource({ seed, samples: batchSize, batchSize })()) return batch;
  throw new Error('no batch');
}

/** One trainStep on a fresh seeded model; returns the weights after it and the step totals. */
async function oneStep(
  build: () => tf.LayersModel,
  batch: TrainBatch,
  microBatchSize: number | undefined,
  extra: Partial<StepContext> = {},
): Promise<{ weights: number[][]; totals: { lossSum: number; correct: number; count: number }; micro: MicroBatchState; model: tf.LayersModel }> {
  const model = build();
  const optimizer = createOptimizer({ name: 'sgd', learningRate: 0.5 });
  const micro: MicroBatchState = { size: microBatchSize };
  try {
    const ctx: StepContext = { model, optimizer, isOutOfMemory: isOutOfMemoryMessage, ...extra };
    const totals = await trainStep(ctx, batch.xs, batch.ys, micro, () => {});
    return { weights: weightValues(model), totals, micro, model };
  } finally {
    disposeOptimizer(optimizer);
  }
}

describe('trainStep', () => {
  test('micro-batches of B/4 give the same update as one full batch (to 1e-5), class weights included', async () => {
    const batch = await firstBatch(16);
    const classWeights = tf.tensor1d([1, 3, 0.5]);
    const before = tf.memory().numTensors;
    const full = await oneStep(() => buildConvModel(7), batch, undefined, { classWeights });
    const quarter = await oneStep(() => buildConvModel(7), batch, 4, { classWeights });
    const initial = buildConvModel(7);
    // The step must have moved the weights, or equality would prove nothing.
    assert.ok(maxAbsDiff(full.weights, weightValues(initial)) > 1e-3);
    assert.ok(maxAbsDiff(full.weights, quarter.weights) < 1e-5, `max diff ${maxAbsDiff(full.weights, quarter.weights)}`);
    assert.ok(Math.abs(full.totals.lossSum - quarter.totals.lossSum) < 1e-4);
    assert.equal(full.totals.correct, quarter.totals.correct);
    assert.equal(quarter.totals.count, 16);
    [full.model, quarter.model, initial].forEach((m) => m.dispose());
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([batch.xs, batch.ys, classWeights]);
  });

  test('a full-batch step equals tfjs model.fit with classWeight (Keras semantics: mean of w*loss)', async () => {
    const batch = await firstBatch(12, 5);
    const ours = await oneStep(() => buildConvModel(11), batch, 3, { classWeights: tf.tensor1d([2, 1, 0.25]) });
    const reference = buildConvModel(11);
    const sgd = tf.train.sgd(0.5);
    reference.compile({ optimizer: sgd, loss: 'categoricalCrossentropy' });
    const history = await reference.fit(batch.xs, batch.ys, { batchSize: 12, epochs: 1, shuffle: false, classWeight: { 0: 2, 1: 1, 2: 0.25 }, verbose: 0 });
    assert.ok(maxAbsDiff(ours.weights, weightValues(reference)) < 1e-5, `max diff ${maxAbsDiff(ours.weights, weightValues(reference))}`);
    // fit's reported loss is the weighted batch mean, i.e. our lossSum / N.
    assert.ok(Math.abs((history.history.loss?.[0] as number) - ours.totals.lossSum / 12) < 1e-5);
    ours.model.dispose();
    reference.dispose();
    sgd.dispose();
    tf.dispose([batch.xs, batch.ys]);
  });

  test('BatchNormalization runs in training mode and updates its moving mean and variance', async () => {
    const batch = await firstBatch(8, 9);
    const { model } = await oneStep(() => buildBnModel(2), batch, undefined);
    const bn = model.layers[0] as tf.layers.Layer;
    const [, , movingMean, movingVariance] = bn.getWeights().map((w) => w.dataSync()[0] as number);
    const [mean, variance] = tf.tidy(() => {
      const m = tf.moments(batch.xs, [0, 1, 2]);
      return [m.mean.dataSync()[0] as number, m.variance.dataSync()[0] as number];
    });
    // Keras/tfjs update with momentum 0.99 from mean 0 / variance 1: new = 0.99 * old + 0.01 * batch.
    assert.ok(Math.abs((movingMean as number) - 0.01 * (mean as number)) < 1e-6, `moving mean ${movingMean}`);
    assert.ok(Math.abs((movingVariance as number) - (0.99 + 0.01 * (variance as number))) < 1e-6, `moving variance ${movingVariance}`);
    // Training mode also means gamma/beta got gradients (they start at 1 and 0).
    const [gamma, beta] = bn.getWeights().map((w) => w.dataSync()[0] as number);
    assert.ok(gamma !== 1 || beta !== 0);
    model.dispose();
    tf.dispose([batch.xs, batch.ys]);
  });

  test('BN moving statistics are updated once per micro-batch (documented difference)', async () => {
    const batch = await firstBatch(8, 9);
    const { model } = await oneStep(() => buildBnModel(2), batch, 4);
    const movingMean = (model.layers[0] as tf.layers.Layer).getWeights()[2]?.dataSync()[0] as number;
    const [m1, m2] = tf.tidy(() =>
      [0, 4].map((start) => tf.mean(tf.slice(batch.xs, [start, 0, 0, 0], [4, -1, -1, -1])).dataSync()[0] as number),
    );
    const expected = 0.99 * (0.01 * (m1 as number)) + 0.01 * (m2 as number);
    assert.ok(Math.abs(movingMean - expected) < 1e-6, `moving mean ${movingMean}, expected ${expected}`);
    model.dispose();
    tf.dispose([batch.xs, batch.ys]);
  });
});

/** Passes data through, but fails like an allocator when a training pass has more than `limit` samples. */
class FakeMemoryLimit extends tf.layers.Layer {
  static className = 'FakeMemoryLimit';
  calls: number[] = [];
  constructor(private readonly limit: number, private readonly message: string | MlError = 'fake: out of memory') {
    super({});
  }
  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    const x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
    this.calls.push(x.shape[0] as number);
    if (kwargs.training === true && (x.shape[0] as number) > this.limit) {
      throw typeof this.message === 'string' ? new Error(this.message) : this.message;
    }
    return tf.mul(x, 1);
  }
}

function buildLimitedModel(limit: number, message?: string | MlError): { model: tf.Sequential; fault: FakeMemoryLimit } {
  const fault = new FakeMemoryLimit(limit, message);
  const model = tf.sequential();
  // BN first so a failed attempt has already moved the moving statistics, which must be undone.
  model.add(tf.layers.batchNormalization({ inputShape: [SIZE, SIZE, 1] }));
  model.add(tf.layers.conv2d({ filters: 2, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }));
  model.add(fault);
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }));
  return { model, fault };
}

describe('trainStep out-of-memory fallback', () => {
  test('halves the micro-batch size until the step fits, retries the same batch, undoes BN side effects, leaks nothing', async () => {
    const batch = await firstBatch(16);
    const reductions: number[] = [];
    const before = tf.memory().numTensors;
    const { model, fault } = buildLimitedModel(4);
    const optimizer = createOptimizer({ name: 'sgd', learningRate: 0.5 });
    const micro: MicroBatchState = { size: undefined };
    const ctx: StepContext = { model, optimizer, isOutOfMemory: isOutOfMemoryMessage };
    const totals = await trainStep(ctx, batch.xs, batch.ys, micro, (size) => reductions.push(size));
    assert.deepEqual(reductions, [8, 4]);
    assert.equal(micro.size, 4);
    assert.equal(totals.count, 16);
    assert.deepEqual(fault.calls.slice(0, 3), [16, 8, 4]);
    const fallbackWeights = weightValues(model);
    disposeOptimizer(optimizer);

    // The same step run directly at micro-batch size 4 must give identical weights (BN stats included).
    const direct = buildLimitedModel(4);
    const optimizer2 = createOptimizer({ name: 'sgd', learningRate: 0.5 });
    await trainStep({ model: direct.model, optimizer: optimizer2, isOutOfMemory: isOutOfMemoryMessage }, batch.xs, batch.ys, { size: 4 }, () => {});
    assert.ok(maxAbsDiff(fallbackWeights, weightValues(direct.model)) < 1e-6);
    disposeOptimizer(optimizer2);
    model.dispose();
    direct.model.dispose();
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([batch.xs, batch.ys]);
  });

  test('fails with OUT_OF_MEMORY once size 1 does not fit, and rethrows other errors unchanged', async () => {
    const batch = await firstBatch(4);
    const before = tf.memory().numTensors;
    const tooSmall = buildLimitedModel(0);
    const optimizer = createOptimizer({ name: 'adam', learningRate: 0.01 });
    const sizes: number[] = [];
    await assert.rejects(
      trainStep({ model: tooSmall.model, optimizer, isOutOfMemory: isOutOfMemoryMessage }, batch.xs, batch.ys, { size: undefined }, (s) => sizes.push(s)),
      (err: unknown) => isMlError(err, 'OUT_OF_MEMORY'),
    );
    assert.deepEqual(sizes, [2, 1]);

    const broken = buildLimitedModel(0, 'shape mismatch');
    await assert.rejects(
      trainStep({ model: broken.model, optimizer, isOutOfMemory: isOutOfMemoryMessage }, batch.xs, batch.ys, { size: undefined }, () => {}),
      /shape mismatch/,
    );
    // An injected predicate decides what counts as out of memory.
    const custom = buildLimitedModel(1, 'ALLOC_FAILED');
    const micro: MicroBatchState = { size: undefined };
    await trainStep({ model: custom.model, optimizer, isOutOfMemory: (e) => String(e).includes('ALLOC_FAILED') }, batch.xs, batch.ys, micro, () => {});
    assert.equal(micro.size, 1);
    // The backend's allocation guard throws MlError('OUT_OF_MEMORY'): the default predicate retries it.
    const guarded = buildLimitedModel(2, new MlError('OUT_OF_MEMORY', 'allocation of 9 GB refused'));
    const guardedMicro: MicroBatchState = { size: undefined };
    await trainStep({ model: guarded.model, optimizer, isOutOfMemory: isOutOfMemoryMessage }, batch.xs, batch.ys, guardedMicro, () => {});
    assert.equal(guardedMicro.size, 2);
    guarded.model.dispose();
    disposeOptimizer(optimizer);
    [tooSmall.model, broken.model, custom.model].forEach((m) => m.dispose());
    assert.equal(tf.memory().numTensors, before);
    tf.dispose([batch.xs, batch.ys]);
  });

  test('the default predicate recognises the allocation failures of our backends', () => {
    assert.ok(isOutOfMemoryMessage(new Error('RangeError: Array buffer allocation failed')));
    assert.ok(isOutOfMemoryMessage(new RangeError('WebAssembly: memory access out of bounds')));
    assert.ok(isOutOfMemoryMessage(new Error('OOM when allocating tensor with shape[64,112,112,64]')));
    assert.ok(isOutOfMemoryMessage(new Error('step failed', { cause: new Error('Out of memory') })));
    assert.ok(isOutOfMemoryMessage(new MlError('OUT_OF_MEMORY', 'tensor of 6 GB does not fit the wasm heap')));
    assert.equal(isOutOfMemoryMessage(new MlError('TRAINING_CANCELLED', 'cancelled')), false);
    assert.equal(isOutOfMemoryMessage(new Error('Booms and zooms')), false);
    assert.equal(isOutOfMemoryMessage(undefined), false);
  });
});
