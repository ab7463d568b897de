import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { logLoss, probabilityMse, probabilityR2 } from '../../../src/ml/metrics/probabilistic.ts';

const close = (actual: number, expected: number, tolerance = 1e-15) =>
  assert.ok(Math.abs(actual - expected) <= tolerance, `${actual} vs ${expected}`);

describe('logLoss', () => {
  it('is the mean negative log probability of the true class', () => {
    close(logLoss([0, 1], [[0.8, 0.2], [0.4, 0.6]]), -(Math.log(0.8) + Math.log(0.6)) / 2);
  });

  it('clips a zero probability of the true class to float64 epsilon instead of returning Infinity', () => {
    const loss = logLoss([0], [[0, 1]]);
    // clip → [eps, 1 - eps], row sum 1, loss = -ln(eps) ≈ 36.04.
    close(loss, -Math.log(Number.EPSILON), 1e-12);
    assert.ok(Number.isFinite(loss));
  });

  it('renormalises rows after clipping, so a certain correct answer costs ~(K-1)·eps', () => {
    const loss = logLoss([0], [[1, 0, 0, 0]]);
    assert.ok(loss > 0 && loss < 1e-14, String(loss));
  });
});

describe('probabilityMse and probabilityR2 against one-hot labels', () => {
  const yTrue = [0, 1];
  const yProb = [
    [0.8, 0.2],
    [0.4, 0.6],
  ];

  it('MSE averages squared errors over samples and class columns', () => {
    // Column errors: 0.2² + 0.4² = 0.2 for both columns → 0.1 per column.
    close(probabilityMse(yTrue, yProb), 0.1);
  });

  it('R2 is 1 - SSE/SST per class column, averaged', () => {
    // Each column: SST = 0.5, SSE = 0.2 → 0.6.
    close(probabilityR2(yTrue, yProb), 0.6);
  });

  it('scores a constant class column 1 when predicted exactly (force_finite)', () => {
    // Class 2 never occurs and always gets probability 0.
    close(probabilityR2(yTrue, [[0.8, 0.2, 0], [0.4, 0.6, 0]]), (0.6 + 0.6 + 1) / 3);
  });

  it('scores a constant class column 0 when predicted inexactly (force_finite)', () => {
    // Column 0: SSE = 0.3² + 0.4² = 0.25, SST = 0.5 → 0.5; column 1: SSE = 0.2² + 0.5² = 0.29 → 0.42.
    close(probabilityR2(yTrue, [[0.7, 0.2, 0.1], [0.4, 0.5, 0.1]]), (0.5 + 0.42 + 0) / 3, 1e-15);
  });
});
