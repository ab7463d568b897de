import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { auc, rocAucOvrMacro, rocAucScore, rocCurve } from '../../../src/ml/metrics/roc.ts';

describe('rocCurve (scikit-learn 1.2.1 roc_curve)', () => {
  it('reproduces the scikit-learn documentation example', () => {
    assert.deepEqual(rocCurve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), {
      fpr: [0, 0, 0.5, 0.5, 1],
      tpr: [0, 0.5, 0.5, 1, 1],
      thresholds: [1.8, 0.8, 0.4, 0.35, 0.1],
    });
  });

  it('takes one diagonal step through tied scores', () => {
    // 0.4 is shared by a negative and a positive: one threshold, fpr and tpr move together.
    assert.deepEqual(rocCurve([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]), {
      fpr: [0, 0, 0.5, 1],
      tpr: [0, 0.5, 1, 1],
      thresholds: [1.8, 0.8, 0.4, 0.1],
    });
  });

  it('drops collinear points by default and keeps them with dropIntermediate false', () => {
    const yTrue = [1, 1, 0, 0];
    const scores = [0.9, 0.8, 0.3, 0.2];
    assert.deepEqual(rocCurve(yTrue, scores), {
      fpr: [0, 0, 0, 1],
      tpr: [0, 0.5, 1, 1],
      thresholds: [1.9, 0.9, 0.8, 0.2],
    });
    assert.deepEqual(rocCurve(yTrue, scores, { dropIntermediate: false }), {
      fpr: [0, 0, 0, 0.5, 1],
      tpr: [0, 0.5, 1, 1, 1],
      thresholds: [1.9, 0.9, 0.8, 0.3, 0.2],
    });
  });

  it('accepts booleans as labels', () => {
    assert.deepEqual(rocCurve([false, true], [0.2, 0.7]).tpr, [0, 1, 1]);
  });

  it('throws PREDICTIONS_INVALID when y_true has one class only', () => {
    assert.throws(() => rocCurve([1, 1], [0.2, 0.3]), (error) => isMlError(error, 'PREDICTIONS_INVALID'));
  });
});

describe('rocAucScore', () => {
  it('counts a tied positive/negative pair as one half', () => {
    // Pairs (pos, neg): (0.4, 0.1) 1, (0.4, 0.4) 1/2, (0.8, 0.1) 1, (0.8, 0.4) 1 → 3.5 / 4.
    assert.equal(rocAucScore([0, 0, 1, 1], [0.1, 0.4, 0.4, 0.8]), 0.875);
  });

  it('is 0.5 when every score is tied', () => {
    assert.equal(rocAucScore([0, 1, 0, 1, 1], [0.3, 0.3, 0.3, 0.3, 0.3]), 0.5);
  });

  it('is 1 for a perfect ranking and 0 for a reversed one', () => {
    assert.equal(rocAucScore([0, 0, 1], [0.1, 0.2, 0.9]), 1);
    assert.equal(rocAucScore([1, 0, 0], [0.1, 0.2, 0.9]), 0);
  });

  it('equals the pairwise ranking probability on a random example', () => {
    const yTrue = [1, 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, 1];
    const scores = [0.9, 0.1, 0.5, 0.5, 0.5, 0.2, 0.7, 0.7, 0.3, 0.3, 0.05, 0.3];
    let wins = 0;
    let pairs = 0;
    yTrue.forEach((p, i) => {
      if (p !== 1) return;
      yTrue.forEach((n, j) => {
        if (n !== 0) return;
        pairs++;
        wins += scores[i]! > scores[j]! ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      });
    });
    assert.ok(Math.abs(rocAucScore(yTrue, scores)! - wins / pairs) < 1e-15);
  });

  it('is null when y_true has a single class', () => {
    assert.equal(rocAucScore([0, 0, 0], [0.1, 0.2, 0.3]), null);
  });
});

describe('auc', () => {
  it('integrates by trapezoids and accepts decreasing x', () => {
    assert.equal(auc([0, 0.5, 1], [0, 1, 1]), 0.75);
    assert.equal(auc([1, 0.5, 0], [1, 1, 0]), 0.75);
  });

  it('rejects non-monotonic x', () => {
    assert.throws(() => auc([0, 1, 0.5], [0, 1, 1]), (error) => isMlError(error, 'INVALID_ARGUMENT'));
  });
});

describe('rocAucOvrMacro', () => {
  it('averages the one-vs-rest AUC of each class column', () => {
    const yTrue = [0, 1, 2, 0, 1, 2];
    const yProb = [
      [0.6, 0.3, 0.1],
      [0.2, 0.5, 0.3],
      [0.2, 0.4, 0.4],
      [0.3, 0.4, 0.3],
      [0.5, 0.4, 0.1],
      [0.1, 0.1, 0.8],
    ];
    const perClass = [0, 1, 2].map((c) =>
      rocAucScore(
        yTrue.map((t) => t === c),
        yProb.map((row) => row[c]!),
      )!,
    );
    assert.equal(rocAucOvrMacro(yTrue, yProb), (perClass[0]! + perClass[1]! + perClass[2]!) / 3);
  });

  it('is null when a class has no sample in y_true (scikit-learn raises)', () => {
    assert.equal(
      rocAucOvrMacro([0, 1, 0], [
        [0.7, 0.2, 0.1],
        [0.2, 0.7, 0.1],
        [0.6, 0.3, 0.1],
      ]),
      null,
    );
  });
});
