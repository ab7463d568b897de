import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  accuracyScore,
  averageMetrics,
  balancedAccuracy,
  cohenKappa,
  matthewsCorrcoef,
  perClassMetrics,
} from '../../../src/ml/metrics/classification.ts';
import { confusionMatrix } from '../../../src/ml/metrics/confusion.ts';
import { numpySum, sequentialSum } from '../../../src/ml/metrics/numeric.ts';

describe('confusionMatrix', () => {
  it('counts [true][predicted] over all classes, absent ones included', () => {
    assert.deepEqual(confusionMatrix([0, 1, 1], [0, 0, 1], 3), [
      [1, 0, 0],
      [1, 1, 0],
      [0, 0, 0],
    ]);
  });
});

describe('perClassMetrics and averages (zero_division=0)', () => {
  // Everything predicted as class 0; class 1 is never predicted; class 2 never occurs.
  const yTrue = [0, 0, 1, 1];
  const yPred = [0, 0, 0, 0];
  const perClass = perClassMetrics(yTrue, yPred, 3);

  it('gives precision 0 to a class that is never predicted', () => {
    assert.equal(perClass.precision[1], 0);
    assert.equal(perClass.recall[1], 0);
    assert.equal(perClass.f1[1], 0);
  });

  it('gives 0 everywhere and support 0 to a class absent from y_true and y_pred', () => {
    assert.deepEqual(
      [perClass.precision[2], perClass.recall[2], perClass.f1[2], perClass.support[2]],
      [0, 0, 0, 0],
    );
  });

  it('computes precision, recall and F1 of the predicted class', () => {
    assert.equal(perClass.precision[0], 0.5);
    assert.equal(perClass.recall[0], 1);
    assert.equal(perClass.f1[0], (2 * 0.5 * 1) / 1.5);
    assert.deepEqual(perClass.support, [2, 2, 0]);
  });

  it('macro-averages over all classes, absent ones counting as 0', () => {
    const macro = averageMetrics(perClass, 'macro');
    assert.equal(macro.precision, 0.5 / 3);
    assert.equal(macro.recall, 1 / 3);
    assert.equal(macro.support, 4);
  });

  it('weights the average by support', () => {
    const weighted = averageMetrics(perClass, 'weighted');
    assert.equal(weighted.precision, 0.25);
    assert.equal(weighted.recall, 0.5);
    assert.equal(weighted.f1, ((2 / 3) * 2) / 4);
  });
});

describe('accuracy, balanced accuracy, kappa and MCC', () => {
  it('balanced accuracy averages recall over classes present in y_true only', () => {
    // Class 2 is only predicted: it is left out, unlike the macro recall.
    assert.equal(balancedAccuracy([0, 0, 1, 1], [0, 2, 1, 1]), 0.75);
    const macroRecall = averageMetrics(perClassMetrics([0, 0, 1, 1], [0, 2, 1, 1], 3), 'macro').recall;
    assert.equal(macroRecall, 0.5);
  });

  it('kappa and MCC match their binary textbook values', () => {
    const yTrue = [0, 0, 0, 1, 1, 1];
    const yPred = [0, 0, 1, 1, 1, 0];
    // tp = tn = 2, fp = fn = 1: MCC = (4 - 1) / sqrt(3^4) = 1/3; kappa = (4/6 - 1/2) / (1 - 1/2) = 1/3.
    assert.ok(Math.abs(matthewsCorrcoef(yTrue, yPred) - 1 / 3) < 1e-15);
    assert.ok(Math.abs(cohenKappa(yTrue, yPred)! - 1 / 3) < 1e-15);
    assert.equal(accuracyScore(yTrue, yPred), 4 / 6);
  });

  it('a perfect multiclass prediction scores 1 everywhere', () => {
    const labels = [0, 1, 2, 2, 1, 0];
    assert.equal(matthewsCorrcoef(labels, labels), 1);
    assert.equal(cohenKappa(labels, labels), 1);
    assert.equal(balancedAccuracy(labels, labels), 1);
  });

  it('all samples of one class: MCC 0, kappa null (scikit-learn NaN), accuracy 1', () => {
    assert.equal(matthewsCorrcoef([1, 1, 1], [1, 1, 1]), 0);
    assert.equal(cohenKappa([1, 1, 1], [1, 1, 1]), null);
    assert.equal(accuracyScore([1, 1, 1], [1, 1, 1]), 1);
    assert.equal(balancedAccuracy([1, 1, 1], [1, 1, 1]), 1);
  });

  it('predicting one constant class gives MCC 0 and kappa 0', () => {
    assert.equal(matthewsCorrcoef([0, 1, 2, 1], [1, 1, 1, 1]), 0);
    assert.equal(cohenKappa([0, 1, 2, 1], [1, 1, 1, 1]), 0);
  });
});

describe('numpySum', () => {
  it('sums pairwise like NumPy, not left to right', () => {
    const values = [1e16, 1, 1, 1, 1, 1, 1, 1];
    // Left to right every +1 is rounded away; NumPy's 8 partial sums keep 6 of them.
    assert.equal(sequentialSum(values), 1e16);
    assert.equal(numpySum(values), 1e16 + 6);
  });

  it('splits long arrays in blocks of multiples of 8 and stays exact on integers', () => {
    const values = Array.from({ length: 1000 }, (_, i) => i);
    assert.equal(numpySum(values), 499500);
    assert.equal(numpySum([]), 0);
  });
});
