import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import {
  earlyStoppingStep,
  initialEarlyStopping,
  initialPlateau,
  isImprovement,
  plateauStep,
  validateCallbackOptions,
} from '../../../src/ml/train/callbacks.ts';
import type { EarlyStoppingState, PlateauState } from '../../../src/ml/train/callbacks.ts';
import type { EarlyStoppingOptions, ReduceLrOnPlateauOptions } from '../../../src/ml/train/types.ts';

/** Runs early stopping over a series; returns the 1-based epoch it stops at (0 = never). */
function stopEpoch(values: number[], options: EarlyStoppingOptions): number {
  let state: EarlyStoppingState = initialEarlyStopping();
  for (let i = 0; i < values.length; i++) {
    const step = earlyStoppingStep(state, values[i] as number, options, i);
    state = step.state;
    if (step.stop) return i + 1;
  }
  return 0;
}

/** Runs reduce-LR-on-plateau over a series; returns the LR in effect during each epoch. */
function lrSchedule(values: number[], lr: number, options: ReduceLrOnPlateauOptions): number[] {
  let state: PlateauState = initialPlateau();
  const used: number[] = [];
  for (const value of values) {
    used.push(lr);
    const step = plateauStep(state, value, lr, options);
    state = step.state;
    if (step.newLearningRate !== undefined) lr = step.newLearningRate;
  }
  return used;
}

describe('isImprovement', () => {
  test('follows Keras: strictly beyond best by more than minDelta, NaN never improves', () => {
    assert.equal(isImprovement('min', 0.5, null, 0), true);
    assert.equal(isImprovement('min', 0.5, 0.6, 0), true);
    assert.equal(isImprovement('min', 0.55, 0.6, 0.1), false);
    assert.equal(isImprovement('min', 0.6, 0.6, 0), false);
    assert.equal(isImprovement('max', 0.7, 0.6, 0.05), true);
    assert.equal(isImprovement('max', 0.6, 0.7, 0), false);
    assert.equal(isImprovement('min', Number.NaN, null, 0), false);
  });
});

describe('early stopping', () => {
  test('stops after `patience` epochs without improvement of val_loss', () => {
    assert.equal(stopEpoch([1, 0.9, 0.95, 0.93, 0.8], { monitor: 'val_loss', patience: 2 }), 4);
    assert.equal(stopEpoch([1, 0.9, 0.95, 0.85, 0.8], { monitor: 'val_loss', patience: 2 }), 0);
  });

  test('counts improvements smaller than minDelta as none, and maximises accuracies', () => {
    assert.equal(stopEpoch([1, 0.99, 0.98], { monitor: 'val_loss', patience: 2, minDelta: 0.05 }), 3);
    assert.equal(stopEpoch([0.5, 0.6, 0.55, 0.58], { monitor: 'val_accuracy', patience: 2 }), 4);
  });

  test('never stops after the first epoch, even with patience 0', () => {
    assert.equal(stopEpoch([Number.NaN, 1, 2], { monitor: 'val_loss', patience: 0 }), 3);
    assert.equal(stopEpoch([1, 2], { monitor: 'val_loss', patience: 0 }), 2);
  });
});

describe('reduce LR on plateau', () => {
  test('multiplies the LR by factor after `patience` flat epochs, down to minLr', () => {
    const used = lrSchedule([1, 1, 1, 1, 1, 1], 0.1, { monitor: 'val_loss', factor: 0.5, patience: 2, minLr: 0.03 });
    assert.deepEqual(used, [0.1, 0.1, 0.1, 0.05, 0.05, 0.03]);
  });

  test('resets the wait on improvement beyond minDelta (default 1e-4) and honours cooldown', () => {
    assert.deepEqual(lrSchedule([1, 0.5, 0.25, 0.2], 0.1, { monitor: 'val_loss', factor: 0.1, patience: 1 }), [0.1, 0.1, 0.1, 0.1]);
    assert.deepEqual(lrSchedule([1, 0.99995, 1], 0.1, { monitor: 'val_loss', factor: 0.5, patience: 1 }), [0.1, 0.1, 0.05]);
    const withCooldown = lrSchedule([1, 1, 1, 1, 1], 0.8, { monitor: 'loss', factor: 0.5, patience: 1, cooldown: 2 });
    // Keras counts the epoch the cool-down ends in as a waiting epoch again.
    assert.deepEqual(withCooldown, [0.8, 0.8, 0.4, 0.4, 0.2]);
    assert.deepEqual(lrSchedule([1, 1, 1, 1, 1], 0.8, { monitor: 'loss', factor: 0.5, patience: 1 }), [0.8, 0.8, 0.4, 0.2, 0.1]);
  });
});

describe('validateCallbackOptions', () => {
  test('rejects validation monitors without validation data and bad factors', () => {
    const bad = (e: unknown): boolean => isMlError(e, 'INVALID_ARGUMENT');
    assert.throws(() => validateCallbackOptions({ monitor: 'val_loss', patience: 1 }, undefined, false), bad);
    assert.throws(() => validateCallbackOptions(undefined, { monitor: 'loss', factor: 1.5, patience: 1 }, false), bad);
    assert.throws(() => validateCallbackOptions({ monitor: 'loss', patience: -1 }, undefined, false), bad);
    assert.doesNotThrow(() => validateCallbackOptions({ monitor: 'loss', patience: 1 }, { monitor: 'val_accuracy', factor: 0.5, patience: 1 }, true));
  });
});
