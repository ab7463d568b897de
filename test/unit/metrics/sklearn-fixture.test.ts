/**
 * Golden cases from scikit-learn 1.2.1 (../shared/fixtures/sklearn-metrics.json): every number of our
 * report must be within 1e-9 of scikit-learn's, and nulls must match (scikit-learn raised there).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { classificationReport } from '../../../src/ml/metrics/report.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const fixturePath = path.resolve(repoRoot, '../shared/fixtures/sklearn-metrics.json');
const TOLERANCE = 1e-9;

interface SklearnRow {
  precision: number;
  recall: number;
  'f1-score': number;
  support: number;
}
interface FixtureCase {
  mode: string;
  class_names: string[];
  y_true: number[];
  y_pred: number[];
  y_prob: number[][];
  expected: {
    per_class: Record<string, SklearnRow>;
    accuracy: number;
    macro_avg: SklearnRow;
    weighted_avg: SklearnRow;
    confusion_matrix: number[][];
    balanced_accuracy: number;
    cohen_kappa: number;
    mcc: number;
    log_loss: number;
    mse: number;
    r2: number;
    roc_auc_ovr_macro: number | null;
    binary: Record<'tp' | 'fp' | 'tn' | 'fn' | 'sensitivity' | 'specificity' | 'precision' | 'npv' | 'f1' | 'accuracy' | 'roc_auc', number | null>;
  };
}

const cases: FixtureCase[] = existsSync(fixturePath)
  ? (JSON.parse(readFileSync(fixturePath, 'utf8')) as { cases: FixtureCase[] }).cases
  : [];

/** Largest |ours - expected| seen over all cases, printed at the end for the record. */
let maxDeviation = 0;

function close(actual: number | null | undefined, expected: number | null, label: string): void {
  if (expected === null) {
    assert.equal(actual, null, `${label}: expected null`);
    return;
  }
  assert.equal(typeof actual, 'number', `${label}: expected a number, got ${String(actual)}`);
  const deviation = Math.abs((actual as number) - expected);
  maxDeviation = Math.max(maxDeviation, deviation);
  assert.ok(deviation <= TOLERANCE, `${label}: ours ${actual} vs scikit-learn ${expected} (|diff| = ${deviation})`);
}

function closeRow(actual: { precision: number; recall: number; f1: number; support: number }, expected: SklearnRow, label: string) {
  close(actual.precision, expected.precision, `${label}.precision`);
  close(actual.recall, expected.recall, `${label}.recall`);
  close(actual.f1, expected['f1-score'], `${label}.f1`);
  close(actual.support, expected.support, `${label}.support`);
}

describe('classificationReport against scikit-learn 1.2.1 golden cases', { skip: cases.length === 0 ? `fixture missing: ${fixturePath}` : false }, () => {
  it('the fixture holds the 10 expected cases', () => {
    assert.equal(cases.length, 10);
  });

  cases.forEach((fixture, index) => {
    it(`case ${index} (${fixture.mode}, ${fixture.class_names.length} classes, ${fixture.y_true.length} samples) matches every number within 1e-9`, () => {
      const report = classificationReport({
        classNames: fixture.class_names,
        yTrue: fixture.y_true,
        yPred: fixture.y_pred,
        yProb: fixture.y_prob,
      });
      const { expected } = fixture;

      assert.deepEqual(Object.keys(report.perClass), fixture.class_names);
      for (const name of fixture.class_names) {
        closeRow(report.perClass[name]!, expected.per_class[name]!, `perClass.${name}`);
      }
      close(report.accuracy, expected.accuracy, 'accuracy');
      closeRow(report.macroAvg, expected.macro_avg, 'macroAvg');
      closeRow(report.weightedAvg, expected.weighted_avg, 'weightedAvg');
      assert.deepEqual(report.confusionMatrix, expected.confusion_matrix);
      close(report.balancedAccuracy, expected.balanced_accuracy, 'balancedAccuracy');
      close(report.cohenKappa, expected.cohen_kappa, 'cohenKappa');
      close(report.mcc, expected.mcc, 'mcc');
      close(report.logLoss, expected.log_loss, 'logLoss');
      close(report.mse, expected.mse, 'mse');
      close(report.r2, expected.r2, 'r2');
      close(report.rocAucOvrMacro, expected.roc_auc_ovr_macro, 'rocAucOvrMacro');

      const binary = report.binary;
      assert.ok(binary, 'the fixture class names include fracture-positive and other classes');
      assert.deepEqual(
        binary.positiveClasses,
        fixture.class_names.filter((name) => name.endsWith('_fractured')),
      );
      close(binary.tp, expected.binary.tp, 'binary.tp');
      close(binary.fp, expected.binary.fp, 'binary.fp');
      close(binary.tn, expected.binary.tn, 'binary.tn');
      close(binary.fn, expected.binary.fn, 'binary.fn');
      close(binary.sensitivity, expected.binary.sensitivity, 'binary.sensitivity');
      close(binary.specificity, expected.binary.specificity, 'binary.specificity');
      close(binary.precision, expected.binary.precision, 'binary.precision');
      close(binary.npv, expected.binary.npv, 'binary.npv');
      close(binary.f1, expected.binary.f1, 'binary.f1');
      close(binary.accuracy, expected.binary.accuracy, 'binary.accuracy');
      close(binary.rocAuc, expected.binary.roc_auc, 'binary.rocAuc');
    });
  });

  it('reports the largest deviation observed', () => {
    // Runs after the cases (node:test runs a suite's tests in order); the value is for the record.
    assert.ok(maxDeviation <= TOLERANCE);
    console.log(`max |ours - scikit-learn| over all fixture numbers: ${maxDeviation}`);
  });
});
