import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { auc, rocAucScore, rocCurve } from '../../../src/ml/metrics/roc.ts';
import { rocCurves } from '../../../src/ml/metrics/roc-curves.ts';

const classes = ['elbow_fractured', 'elbow_normal', 'hand_fractured'];
const yTrue = [0, 1, 2, 0, 1, 2];
const yProb = [
  [0.7, 0.2, 0.1],
  [0.3, 0.6, 0.1],
  [0.2, 0.1, 0.7],
  [0.4, 0.5, 0.1],
  [0.1, 0.8, 0.1],
  [0.3, 0.3, 0.4],
];

describe('rocCurves', () => {
  it('gives one-vs-rest curves per class whose areas equal the per-class ROC AUC', () => {
    const curves = rocCurves(classes, yTrue, yProb, ['elbow_fractured', 'hand_fractured']);
    classes.forEach((name, c) => {
      const curve = curves.perClass[name];
      assert.ok(curve, name);
      const truth = yTrue.map((label) => label === c);
      const scores = yProb.map((row) => row[c] as number);
      assert.deepEqual(curve, rocCurve(truth, scores));
      assert.ok(Math.abs(auc(curve.fpr, curve.tpr) - (rocAucScore(truth, scores) as number)) < 1e-12);
    });
  });

  it('scores the binary curve with the summed probability of the fracture-positive classes', () => {
    const curves = rocCurves(classes, yTrue, yProb, ['elbow_fractured', 'hand_fractured']);
    const truth = yTrue.map((label) => label !== 1);
    const scores = yProb.map((row) => (row[0] as number) + (row[2] as number));
    assert.deepEqual(curves.binary, rocCurve(truth, scores));
  });

  it('leaves curves null where they are undefined', () => {
    const noPositive = rocCurves(classes, yTrue, yProb, []);
    assert.equal(noPositive.binary, null);
    const allPositive = rocCurves(classes, yTrue, yProb, classes);
    assert.equal(allPositive.binary, null);
    const missingClass = rocCurves(classes, [0, 1, 0, 1], yProb.slice(0, 4), ['elbow_fractured']);
    assert.equal(missingClass.perClass.hand_fractured, null);
    assert.ok(missingClass.perClass.elbow_fractured);
  });
});
