import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import {
  classNameTokens,
  fracturePositiveClasses,
  isFractureClassName,
} from '../../../src/ml/metrics/fracture-classes.ts';

describe('classNameTokens', () => {
  it('splits on non-alphanumerics, camelCase and acronyms, lower-cased', () => {
    assert.deepEqual(classNameTokens('XR_HAND_positive'), ['xr', 'hand', 'positive']);
    assert.deepEqual(classNameTokens('notFractured'), ['not', 'fractured']);
    assert.deepEqual(classNameTokens('XRHand-Abnormal study'), ['xr', 'hand', 'abnormal', 'study']);
    assert.deepEqual(classNameTokens('  elbow__fractured  '), ['elbow', 'fractured']);
  });
});

describe('isFractureClassName', () => {
  const positives = [
    'elbow_fractured',
    'fractured',
    'Fracture',
    'XR_HAND_positive',
    'wrist-abnormal',
    'handFractured',
    'avulsion_fracture',
    'FRACTURED',
  ];
  const negatives = [
    'not fractured',
    'not_fractured',
    'non-fractured',
    'nonfractured',
    'notFractured',
    'NoFracture',
    'nofracture',
    'unfractured',
    'elbow_normal',
    'XR_HAND_negative',
    'normal',
    'abnormal_not',
    'fractures', // whole tokens only: the plural is not in the list
    'healthy',
    'elbow',
  ];

  for (const name of positives) {
    it(`"${name}" is fracture-positive`, () => assert.equal(isFractureClassName(name), true));
  }
  for (const name of negatives) {
    it(`"${name}" is not fracture-positive`, () => assert.equal(isFractureClassName(name), false));
  }

  it('does not mistake "abnormal" for the negating token "normal"', () => {
    assert.equal(isFractureClassName('abnormal'), true);
    assert.equal(isFractureClassName('abnormal_vs_normal'), false);
  });
});

describe('fracturePositiveClasses', () => {
  it('applies the name rule in class order', () => {
    assert.deepEqual(fracturePositiveClasses(['not_fractured', 'fractured']), ['fractured']);
    assert.deepEqual(
      fracturePositiveClasses(['elbow_fractured', 'elbow_normal', 'hand_fractured', 'hand_normal']),
      ['elbow_fractured', 'hand_fractured'],
    );
  });

  it('uses an explicit override instead of the rule, in class order and without duplicates', () => {
    assert.deepEqual(fracturePositiveClasses(['a', 'b', 'c'], ['c', 'a', 'c']), ['a', 'c']);
    assert.deepEqual(fracturePositiveClasses(['fractured', 'normal'], []), []);
  });

  it('rejects an override naming an unknown class with INVALID_ARGUMENT', () => {
    assert.throws(
      () => fracturePositiveClasses(['fractured', 'normal'], ['broken']),
      (error) => isMlError(error, 'INVALID_ARGUMENT') && /"broken"/.test(error.message) && /fractured, normal/.test(error.message),
    );
  });
});
