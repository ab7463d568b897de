import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { evaluateBatches, predictBatches } from '../../../src/ml/train/evaluate.ts';
import { crossEntropyPerSample, sampleWeights } from '../../../src/ml/train/loss.ts';
import { CLASSES, batchSource, buildBnModel, buildConvModel } from './fixtures/tiny.ts';

before(async () => {
  await useTestBackend();
});

describe('loss', () => {
  test('cross-entropy renormalises and clips probabilities like Keras, class weights follow the label', () => {
    const before = tf.memory().numTensors;
    const [ce, w] = tf.tidy(() => {
      const yTrue = tf.tensor2d([[1, 0, 0], [0, 0, 1], [0, 1, 0]]);
      // Row 2 sums to 2 (renormalised to 0.25/0.25/0.5); row 3 puts 0 on the label (clipped to 1e-7).
      const yProb = tf.tensor2d([[0.7, 0.2, 0.1], [0.5, 0.5, 1], [1, 0, 0]]);
      return [Array.from(crossEntropyPerSample(yTrue, yProb).dataSync()), Array.from(sampleWeights(yTrue, tf.tensor1d([2, 3, 5])).dataSync())];
    });
    const expected = [-Math.log(0.7), -Math.log(0.5), -Math.log(1e-7)];
    ce?.forEach((v, i) => assert.ok(Math.abs(v - (expected[i] as number)) < 1e-4, `sample ${i}: ${v}`));
    assert.deepEqual(w, [2, 5, 3]);
    assert.equal(tf.memory().numTensors, before);
  });
});

describe('predictBatches', () => {
  test('returns labels, probabilities and argmax predictions equal to model.predict, in batch order', async () => {
    const model = buildConvModel(3);
    const source = batchSource({ seed: 4, samples: 10, batchSize: 4 });
    // The reference: the same samples, predicted in one go.
    const xsAll: tf.Tensor[] = [];
    const labels: number[] = [];
    for await (const b of source()) {
      xsAll.push(b.xs);
      labels.push(...Array.from(tf.tidy(() => tf.argMax(b.ys, -1).dataSync())));
      b.ys.dispose();
    }
    const reference = tf.tidy(() => (model.predict(tf.concat(xsAll)) as tf.Tensor2D).arraySync());
    tf.dispose(xsAll);

    const before = tf.memory().numTensors;
    const result = await predictBatches(model, source(), { chunkSize: 3 });
    assert.equal(tf.memory().numTensors, before, 'batches disposed, nothing leaked');
    assert.deepEqual(result.yTrue, labels);
    assert.equal(result.yProb.length, 10);
    result.yProb.forEach((row, i) => {
      assert.equal(row.length, CLASSES);
      row.forEach((p, c) => assert.ok(Math.abs(p - (reference[i]?.[c] as number)) < 1e-6));
      assert.equal(result.yPred[i], row.indexOf(Math.max(...row)));
    });
    assert.deepEqual(result.indices, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    model.dispose();
  });

  test('runs in inference mode: BatchNormalization uses (and does not change) its moving statistics', async () => {
    const model = buildBnModel(1);
    const stats = (): number[] => model.layers[0]?.getWeights().slice(2).flatMap((w) => Array.from(w.dataSync())) ?? [];
    const initialStats = stats();
    const source = batchSource({ seed: 2, samples: 6, batchSize: 6 });
    const predicted = await predictBatches(model, source());
    const evaluated = await evaluateBatches(model, source());
    assert.deepEqual(stats(), initialStats);
    let inference: number[][] = [];
    let training: number[][] = [];
    for await (const b of source()) {
      inference = tf.tidy(() => (model.apply(b.xs, { training: false }) as tf.Tensor2D).arraySync());
      tf.dispose([b.xs, b.ys]);
    }
    const snapshot = model.getWeights().map((w) => w.clone());
    for await (const b of source()) {
      training = tf.tidy(() => (model.apply(b.xs, { training: true }) as tf.Tensor2D).arraySync());
      tf.dispose([b.xs, b.ys]);
    }
    model.setWeights(snapshot);
    tf.dispose(snapshot);
    const maxDiff = (a: number[][], b: number[][]): number => Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - (b[i]?.[j] as number)))));
    assert.ok(maxDiff(predicted.yProb, inference) < 1e-6);
    assert.ok(maxDiff(predicted.yProb, training) > 1e-3, 'training mode (batch statistics) would differ');

    assert.equal(evaluated.count, 6);
    const meanLoss = predicted.yProb.reduce((s, row, i) => s - Math.log(row[predicted.yTrue[i] as number] as number), 0) / 6;
    assert.ok(Math.abs(evaluated.loss - meanLoss) < 1e-5, `val loss ${evaluated.loss} vs ${meanLoss}`);
    const accuracy = predicted.yPred.filter((p, i) => p === predicted.yTrue[i]).length / 6;
    assert.equal(evaluated.accuracy, accuracy);
    model.dispose();
  });
});
