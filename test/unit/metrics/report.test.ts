import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { formatClassificationReport, formatFixed } from '../../../src/ml/metrics/format.ts';
import { predictionsFromJson } from '../../../src/ml/metrics/predictions-json.ts';
import { classificationReport } from '../../../src/ml/metrics/report.ts';
import type { PredictionsInput } from '../../../src/ml/metrics/types.ts';

const base: PredictionsInput = {
  classNames: ['fractured', 'not_fractured'],
  yTrue: [0, 0, 1, 1],
  yPred: [0, 1, 1, 1],
  yProb: [
    [0.9, 0.1],
    [0.4, 0.6],
    [0.2, 0.8],
    [0.3, 0.7],
  ],
};

function rejects(input: unknown, pattern: RegExp, code: 'PREDICTIONS_INVALID' | 'INVALID_ARGUMENT' = 'PREDICTIONS_INVALID') {
  assert.throws(
    () => classificationReport(input as PredictionsInput),
    (error) => isMlError(error, code) && pattern.test(error.message),
  );
}

describe('classificationReport', () => {
  it('computes the documented example', () => {
    const report = classificationReport(base);
    assert.equal(report.accuracy, 0.75);
    assert.deepEqual(report.perClass.fractured, { precision: 1, recall: 0.5, f1: 2 / 3, support: 2 });
    assert.deepEqual(report.confusionMatrix, [
      [1, 1],
      [0, 2],
    ]);
    assert.deepEqual(report.binary?.positiveClasses, ['fractured']);
    assert.deepEqual(
      [report.binary?.tp, report.binary?.fp, report.binary?.tn, report.binary?.fn],
      [1, 0, 2, 1],
    );
    assert.equal(report.binary?.sensitivity, 0.5);
    assert.equal(report.binary?.specificity, 1);
    assert.equal(report.binary?.npv, 2 / 3);
    assert.equal(report.binary?.rocAuc, 1);
    assert.equal(report.rocAucOvrMacro, 1);
  });

  it('leaves every probability-based metric null without y_prob', () => {
    const report = classificationReport({ ...base, yProb: undefined });
    assert.deepEqual(
      [report.logLoss, report.mse, report.r2, report.rocAucOvrMacro, report.ece, report.binary?.rocAuc],
      [null, null, null, null, null, null],
    );
    assert.equal(report.accuracy, 0.75);
  });

  it('honours a positive-class override for the binary view', () => {
    const report = classificationReport({ ...base, positiveClasses: ['not_fractured'] });
    assert.deepEqual(report.binary?.positiveClasses, ['not_fractured']);
    assert.equal(report.binary?.tp, 2);
  });

  it('has no binary view when every class is a fracture (e.g. bone-break types)', () => {
    const report = classificationReport({ ...base, classNames: ['avulsion_fracture', 'spiral_fracture'] });
    assert.equal(report.binary, null);
  });

  it('has no binary view when no class is a fracture', () => {
    assert.equal(classificationReport({ ...base, classNames: ['cat', 'dog'] }).binary, null);
  });

  it('keys perClass by class name in class order, even for awkward names', () => {
    const report = classificationReport({ ...base, classNames: ['__proto__', 'constructor'] });
    assert.deepEqual(Object.keys(report.perClass), ['__proto__', 'constructor']);
    assert.equal(JSON.parse(JSON.stringify(report)).perClass.__proto__.support, 2);
  });
});

describe('classificationReport input validation', () => {
  it('rejects y_true and y_pred of different lengths', () => {
    rejects({ ...base, yPred: [0, 1, 1] }, /y_true has 4 samples but y_pred has 3/);
  });

  it('rejects a label out of range, negative or fractional', () => {
    rejects({ ...base, yPred: [0, 1, 2, 1] }, /y_pred\[2\] = 2 is out of range: there are 2 classes/);
    rejects({ ...base, yTrue: [0, -1, 1, 1] }, /y_true\[1\] must be a non-negative integer/);
    rejects({ ...base, yTrue: [0, 0.5, 1, 1] }, /y_true\[1\] must be a non-negative integer/);
  });

  it('rejects empty predictions and fewer than two or duplicate class names', () => {
    rejects({ ...base, yTrue: [], yPred: [], yProb: [] }, /y_true is empty/);
    rejects({ ...base, classNames: ['only'] }, /at least 2 classes/);
    rejects({ ...base, classNames: ['a', 'a'] }, /class_names\[1\] "a" is a duplicate/);
  });

  it('rejects probability rows of the wrong count or length', () => {
    rejects({ ...base, yProb: base.yProb!.slice(1) }, /y_prob has 3 rows but there are 4 samples/);
    rejects({ ...base, yProb: [[0.9, 0.1], [1], [0.2, 0.8], [0.3, 0.7]] }, /y_prob\[1\] must be an array of 2 probabilities/);
  });

  it('rejects non-finite, out-of-range or unnormalised probabilities', () => {
    rejects({ ...base, yProb: [[Number.NaN, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]] }, /y_prob\[0\]\[0\] must be a finite number, got NaN/);
    rejects({ ...base, yProb: [[1.5, -0.5], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]] }, /y_prob\[0\]\[0\] = 1.5 is not a probability/);
    rejects({ ...base, yProb: [[0.5, 0.3], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]] }, /y_prob\[0\] sums to 0.8, not 1/);
  });

  it('accepts float32 softmax rounding in row sums', () => {
    const report = classificationReport({ ...base, yProb: [[0.9000001, 0.1], [0.4, 0.6], [0.2, 0.8], [0.3, 0.7]] });
    assert.equal(typeof report.logLoss, 'number');
  });

  it('rejects a positive-class override naming an unknown class', () => {
    rejects({ ...base, positiveClasses: ['broken'] }, /"broken"/, 'INVALID_ARGUMENT');
  });
});

describe('predictionsFromJson', () => {
  it('reads snake_case and camelCase keys', () => {
    const snake = predictionsFromJson({ class_names: ['a', 'b'], y_true: [0, 1], y_pred: [1, 1] });
    const camel = predictionsFromJson({ classNames: ['a', 'b'], yTrue: [0, 1], yPred: [1, 1] });
    assert.deepEqual(snake, camel);
    assert.deepEqual(snake.yPred, [1, 1]);
  });

  it('derives y_pred as the argmax of y_prob when it is missing', () => {
    const input = predictionsFromJson({ class_names: ['a', 'b'], y_true: [0, 1], y_prob: [[0.7, 0.3], [0.5, 0.5]] });
    assert.deepEqual(input.yPred, [0, 0]);
  });

  it('rejects missing fields and ambiguous duplicates', () => {
    const invalid = (value: unknown, pattern: RegExp) =>
      assert.throws(() => predictionsFromJson(value), (error) => isMlError(error, 'PREDICTIONS_INVALID') && pattern.test(error.message));
    invalid([], /must be a JSON object/);
    invalid({ y_true: [0], y_pred: [0] }, /"class_names" is missing/);
    invalid({ class_names: ['a', 'b'], y_true: [0] }, /"y_pred" is missing/);
    invalid({ class_names: ['a', 'b'], classNames: ['a', 'b'], y_true: [0], y_pred: [0] }, /both "class_names" and "classNames"/);
  });
});

describe('formatClassificationReport', () => {
  const report = classificationReport(base);
  const text = formatClassificationReport(report, base.classNames);
  const lines = text.split('\n');

  it('prints the scikit-learn classification_report table', () => {
    // Layout of sklearn: name column as wide as "weighted avg" or the longest name, then 4 columns of 9.
    assert.deepEqual(lines.slice(0, 9), [
      '               precision    recall  f1-score   support',
      '',
      '    fractured       1.00      0.50      0.67         2',
      'not_fractured       0.67      1.00      0.80         2',
      '',
      '     accuracy                           0.75         4',
      '    macro avg       0.83      0.75      0.73         4',
      ' weighted avg       0.83      0.75      0.73         4',
      '',
    ]);
  });

  it('adds the other metrics, the binary view and the confusion matrix', () => {
    assert.match(text, /^balanced accuracy +0\.75$/m);
    assert.match(text, /^cohen's kappa +0\.50$/m);
    assert.match(text, /^roc auc \(ovr macro\) +1\.00$/m);
    assert.match(text, /^binary fracture view \(positive: fractured\)$/m);
    assert.match(text, /^ {2}tp 1 {2}fp 0 {2}tn 2 {2}fn 1$/m);
    assert.match(text, /sensitivity 0\.50 {2}specificity 1\.00 {2}ppv 1\.00 {2}npv 0\.67/);
    assert.match(text, /^0 {2}1 1 {2}fractured$/m);
    assert.match(text, /^1 {2}0 2 {2}not_fractured$/m);
  });

  it('prints n/a for metrics that need probabilities when they are absent', () => {
    const bare = formatClassificationReport(classificationReport({ ...base, yProb: undefined }), base.classNames);
    assert.match(bare, /^log loss +n\/a$/m);
    assert.match(bare, /roc auc n\/a$/m);
  });

  it('uses the requested number of digits', () => {
    const three = formatClassificationReport(report, base.classNames, { digits: 3 });
    assert.match(three, /^ {4}fractured {6}1\.000 {5}0\.500 {5}0\.667 {9}2$/m);
    assert.throws(() => formatClassificationReport(report, base.classNames, { digits: -1 }), (error) => isMlError(error, 'INVALID_ARGUMENT'));
  });
});

describe('formatFixed', () => {
  it('rounds exact ties to even like Python and everything else to nearest', () => {
    assert.equal(formatFixed(0.125, 2), '0.12');
    assert.equal(formatFixed(0.375, 2), '0.38');
    assert.equal(formatFixed(2.5, 0), '2');
    assert.equal(formatFixed(-0.125, 2), '-0.12');
    // 0.135 and 0.015 are not ties in binary: 0.13500000000000000888…, 0.01499999999999999944…
    assert.equal(formatFixed(0.135, 2), '0.14');
    assert.equal(formatFixed(0.015, 2), '0.01');
    assert.equal(formatFixed(0.9999, 2), '1.00');
  });
});
