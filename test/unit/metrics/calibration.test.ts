import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { calibration, expectedCalibrationError } from '../../../src/ml/metrics/calibration.ts';

const close = (actual: number, expected: number) =>
  assert.ok(Math.abs(actual - expected) <= 1e-15, `${actual} vs ${expected}`);

describe('expected calibration error (15 equal-width bins on the top probability)', () => {
  it('weights each bin gap |accuracy - confidence| by its share of samples', () => {
    // Confidences 0.9 (right), 0.75 (wrong), 0.7 (right), 0.62 (right) fall in 4 different bins:
    // ECE = (0.1 + 0.75 + 0.3 + 0.38) / 4.
    const yTrue = [0, 1, 1, 0];
    const yProb = [
      [0.9, 0.1],
      [0.75, 0.25],
      [0.3, 0.7],
      [0.62, 0.38],
    ];
    close(expectedCalibrationError(yTrue, yProb), (0.1 + 0.75 + 0.3 + 0.38) / 4);
  });

  it('averages accuracy and confidence within a shared bin before taking the gap', () => {
    // 0.9 (right) and 0.91 (wrong) share the bin (13/15, 14/15]: |0.5 - 0.905| · 2/2.
    close(expectedCalibrationError([0, 1], [[0.9, 0.1], [0.91, 0.09]]), 0.405);
  });

  it('is 0 when confidence equals accuracy in every bin', () => {
    // Four samples at confidence 0.75, three right: accuracy 0.75.
    const yProb = [
      [0.75, 0.25],
      [0.75, 0.25],
      [0.75, 0.25],
      [0.75, 0.25],
    ];
    assert.equal(expectedCalibrationError([0, 0, 0, 1], yProb), 0);
  });

  it('returns 15 bins covering every sample, with null statistics for empty bins', () => {
    const result = calibration([0, 1, 1], [[0.9, 0.1], [0.2, 0.8], [0.55, 0.45]]);
    assert.equal(result.bins.length, 15);
    assert.equal(result.bins.reduce((sum, bin) => sum + bin.count, 0), 3);
    assert.equal(result.bins[0]!.lower, 0);
    assert.equal(result.bins[14]!.upper, 1);
    const empty = result.bins.find((bin) => bin.count === 0)!;
    assert.equal(empty.accuracy, null);
    assert.equal(empty.confidence, null);
  });

  it('puts a confidence on an edge into the lower bin (bins are (lower, upper])', () => {
    const result = calibration([0, 0], [[0.5, 0.5], [1, 0]], { bins: 2 });
    assert.deepEqual(
      result.bins.map((bin) => bin.count),
      [1, 1],
    );
  });

  it('rejects a non-positive bin count', () => {
    assert.throws(() => calibration([0], [[1, 0]], { bins: 0 }), (error) => isMlError(error, 'INVALID_ARGUMENT'));
  });
});
