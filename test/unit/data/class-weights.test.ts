import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { classWeights } from '../../../src/ml/data/class-weights.ts';

test('balanced weights are n_samples / (n_classes * count) as in scikit-learn', () => {
  // sklearn.utils.class_weight.compute_class_weight('balanced', classes=[0, 1], y=[0]*300 + [1]*100)
  assert.deepEqual(classWeights([300, 100]), [400 / 600, 2]);
  // classes with 10, 20, 70 samples: 100 / (3 * count)
  const w = classWeights([10, 20, 70]);
  [100 / 30, 100 / 60, 100 / 210].forEach((expected, i) => assert.ok(Math.abs(w[i]! - expected) < 1e-12));
});

test('balanced classes all weigh 1 and the weighted counts are equal', () => {
  assert.deepEqual(classWeights([5, 5, 5, 5]), [1, 1, 1, 1]);
  const counts = [13, 200, 47];
  const weighted = classWeights(counts).map((w, i) => w * counts[i]!);
  for (const v of weighted) assert.ok(Math.abs(v - weighted[0]!) < 1e-9);
});

test('a class without samples gets weight 0; bad counts are rejected', () => {
  assert.deepEqual(classWeights([30, 0, 10]), [40 / 90, 0, 40 / 30]);
  assert.throws(() => classWeights([0, 0]), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => classWeights([1.5, 2]), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => classWeights([-1, 2]), (e) => isMlError(e, 'INVALID_ARGUMENT'));
});
