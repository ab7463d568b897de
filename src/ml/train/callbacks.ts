/**
 * Epoch-end decisions with Keras semantics, as pure state machines: early stopping, reduce-LR-on-plateau
 * and best-epoch tracking. Their state is plain JSON (a best of +-Infinity is stored as `null`) so a
 * checkpoint can carry the counters across a resume.
 * @module
 */
import { MlError } from '../errors.ts';
import type {
  EarlyStoppingOptions,
  EpochRecord,
  MonitoredMetric,
  ReduceLrOnPlateauOptions,
} from './types.ts';

/** `min` for losses, `max` for accuracies (Keras's `mode='auto'`). */
export type MonitorMode = 'min' | 'max';

export function monitorMode(metric: MonitoredMetric): MonitorMode {
  return metric.endsWith('accuracy') ? 'max' : 'min';
}

/** The monitored value of an epoch (NaN when the epoch lacks it). */
export function monitoredValue(record: EpochRecord, metric: MonitoredMetric): number {
  switch (metric) {
    case 'loss':
      return record.loss;
    case 'accuracy':
      return record.accuracy;
    case 'val_loss':
      return record.valLoss ?? Number.NaN;
    case 'val_accuracy':
      return record.valAccuracy ?? Number.NaN;
  }
}

/**
 * Keras's improvement test: `current < best - minDelta` (min) or `current > best + minDelta` (max).
 * A `null` best means none yet, so any finite value improves; NaN never does.
 */
export function isImprovement(mode: MonitorMode, current: number, best: number | null, minDelta: number): boolean {
  if (Number.isNaN(current)) return false;
  if (best === null) return true;
  const delta = Math.abs(minDelta);
  return mode === 'min' ? current < best - delta : current > best + delta;
}

/** Counters of early stopping. */
export interface EarlyStoppingState {
  best: number | null;
  /** Epochs since the last improvement. */
  wait: number;
}

export const initialEarlyStopping = (): EarlyStoppingState => ({ best: null, wait: 0 });

/**
 * One epoch of Keras `EarlyStopping` (no baseline): an improvement resets the wait, otherwise it grows,
 * and training stops once it reaches `patience`.
 * @param epochIndex 0-based index of the epoch in the run; like Keras, never stops after the first
 */
export function earlyStoppingStep(
  state: EarlyStoppingState,
  current: number,
  options: EarlyStoppingOptions,
  epochIndex: number,
): { state: EarlyStoppingState; stop: boolean } {
  if (isImprovement(monitorMode(options.monitor), current, state.best, options.minDelta ?? 0)) {
    return { state: { best: current, wait: 0 }, stop: false };
  }
  const wait = state.wait + 1;
  return { state: { best: state.best, wait }, stop: wait >= options.patience && epochIndex > 0 };
}

/** Counters of reduce-LR-on-plateau. */
export interface PlateauState {
  best: number | null;
  wait: number;
  /** Epochs left in the cool-down after a reduction. */
  cooldown: number;
}

export const initialPlateau = (): PlateauState => ({ best: null, wait: 0, cooldown: 0 });

/**
 * One epoch of Keras `ReduceLROnPlateau`: after `patience` epochs without an improvement of more than
 * `minDelta` (default 1e-4), the LR becomes `max(lr * factor, minLr)`, then `cooldown` epochs pass
 * before counting resumes.
 * @returns the next state and the new learning rate when it changes
 */
export function plateauStep(
  state: PlateauState,
  current: number,
  learningRate: number,
  options: ReduceLrOnPlateauOptions,
): { state: PlateauState; newLearningRate?: number } {
  const best = state.best;
  let { wait, cooldown } = state;
  const minLr = options.minLr ?? 0;
  if (cooldown > 0) {
    cooldown -= 1;
    wait = 0;
  }
  if (isImprovement(monitorMode(options.monitor), current, best, options.minDelta ?? 1e-4)) {
    return { state: { best: current, wait: 0, cooldown } };
  }
  if (cooldown > 0) return { state: { best, wait, cooldown } };
  wait += 1;
  // Keras compares the LR against float32(min_lr): avoid "reducing" to an equal value.
  if (wait >= options.patience && learningRate > Math.fround(minLr)) {
    const newLearningRate = Math.max(learningRate * options.factor, minLr);
    return { state: { best, wait: 0, cooldown: options.cooldown ?? 0 }, newLearningRate };
  }
  return { state: { best, wait, cooldown } };
}

/** Validates callback options against the availability of validation data. */
export function validateCallbackOptions(
  earlyStopping: EarlyStoppingOptions | undefined,
  plateau: ReduceLrOnPlateauOptions | undefined,
  hasValidation: boolean,
): void {
  const metrics = ['val_loss', 'val_accuracy', 'loss', 'accuracy'];
  for (const [name, opts] of [['earlyStopping', earlyStopping], ['reduceLrOnPlateau', plateau]] as const) {
    if (opts === undefined) continue;
    if (!metrics.includes(opts.monitor)) {
      throw new MlError('INVALID_ARGUMENT', `${name}.monitor must be one of ${metrics.join(', ')}; got ${String(opts.monitor)}`);
    }
    if (opts.monitor.startsWith('val_') && !hasValidation) {
      throw new MlError('INVALID_ARGUMENT', `${name}.monitor is ${opts.monitor} but no valBatches were given`);
    }
    if (!Number.isInteger(opts.patience) || opts.patience < 0) {
      throw new MlError('INVALID_ARGUMENT', `${name}.patience must be an integer >= 0; got ${opts.patience}`);
    }
  }
  if (plateau !== undefined && !(plateau.factor > 0 && plateau.factor < 1)) {
    throw new MlError('INVALID_ARGUMENT', `reduceLrOnPlateau.factor must be in (0, 1); got ${plateau.factor}`);
  }
}
