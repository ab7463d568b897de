/**
 * Creating, re-tuning, disposing and (de)serialising the optimizers the trainer supports.
 *
 * tfjs has no public learning-rate setter on every optimizer: `SGDOptimizer` (and its subclass
 * `MomentumOptimizer`) caches `-lr` in a kept scalar `c` and exposes `setLearningRate`, which swaps it;
 * `AdamOptimizer` reads its protected `learningRate` field afresh in every `applyGradients`, so assigning
 * the field is the supported way (it is what Keras-style schedules in tfjs do). Tests check both.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import type { OptimizerSpec } from './types.ts';

/** The optimizer classes the trainer creates. */
export type TrainOptimizer = tf.AdamOptimizer | tf.SGDOptimizer;

/** The private fields this module touches; see the module comment for why. */
interface LearningRateField {
  learningRate: number;
}
interface SgdScalar {
  c?: tf.Scalar;
}

/**
 * Creates the optimizer of `spec` (Adam with tfjs/Keras defaults beta1 0.9, beta2 0.999; SGD, with
 * classic momentum when `spec.momentum > 0`).
 * @throws MlError('INVALID_ARGUMENT') for a non-positive learning rate or a momentum outside [0, 1)
 */
export function createOptimizer(spec: OptimizerSpec): TrainOptimizer {
  if (!(spec.learningRate > 0) || !Number.isFinite(spec.learningRate)) {
    throw new MlError('INVALID_ARGUMENT', `optimizer.learningRate must be a positive number, got ${spec.learningRate}`);
  }
  const momentum = spec.momentum ?? 0;
  if (!(momentum >= 0 && momentum < 1)) {
    throw new MlError('INVALID_ARGUMENT', `optimizer.momentum must be in [0, 1), got ${momentum}`);
  }
  switch (spec.name) {
    case 'adam':
      return tf.train.adam(spec.learningRate);
    case 'sgd':
      return momentum > 0 ? tf.train.momentum(spec.learningRate, momentum) : tf.train.sgd(spec.learningRate);
    default:
      throw new MlError('INVALID_ARGUMENT', `optimizer.name must be one of adam, sgd; got ${String((spec as { name: unknown }).name)}`);
  }
}

/** The learning rate the next `applyGradients` will use. */
export function getLearningRate(optimizer: TrainOptimizer): number {
  return (optimizer as unknown as LearningRateField).learningRate;
}

/** Changes the learning rate used from the next `applyGradients` on. */
export function setLearningRate(optimizer: TrainOptimizer, learningRate: number): void {
  // Not `instanceof tf.SGDOptimizer`: tfjs defines Optimizer[Symbol.hasInstance] as a duck-type check
  // that subclasses inherit, so every optimizer (Adam included) is "an instance of" SGDOptimizer.
  if ('setLearningRate' in optimizer && typeof optimizer.setLearningRate === 'function') {
    optimizer.setLearningRate(learningRate);
  } else {
    (optimizer as unknown as LearningRateField).learningRate = learningRate;
  }
}

/**
 * Disposes every tensor the optimizer holds. `MomentumOptimizer.dispose` in tfjs 4.22 forgets the
 * inherited `-lr` scalar `c`, which would leak one tensor per run, so it is disposed here too.
 */
export function disposeOptimizer(optimizer: TrainOptimizer): void {
  optimizer.dispose();
  const c = (optimizer as unknown as SgdScalar).c;
  if (c !== undefined && !c.isDisposed) c.dispose();
}

/** The serialisable state of an optimizer: its variables (`iter` first) as encoded weights. */
export interface OptimizerState {
  specs: tf.io.WeightsManifestEntry[];
  data: ArrayBuffer;
}

/**
 * Encodes the optimizer's state (iteration count, Adam moments or momentum accumulators), in the
 * order tfjs's `getWeights` gives, which is the order of the trainable variables it was stepped with.
 */
export async function saveOptimizerState(optimizer: TrainOptimizer): Promise<OptimizerState> {
  const named = await optimizer.getWeights();
  try {
    const { data, specs } = await tf.io.encodeWeights(named);
    return { specs, data: tf.io.CompositeArrayBuffer.join(data) };
  } finally {
    // getWeights() returns a fresh `iter` scalar (the rest are the optimizer's own variables).
    const iter = named[0];
    if (iter !== undefined && iter.name === 'iter') iter.tensor.dispose();
  }
}

/**
 * Restores state saved by {@link saveOptimizerState} into a freshly created optimizer of the same kind
 * (one that has not stepped yet, since tfjs's `setWeights` replaces its variables without disposing).
 */
export async function restoreOptimizerState(optimizer: TrainOptimizer, state: OptimizerState): Promise<void> {
  const map = tf.io.decodeWeights(state.data, state.specs);
  const named = state.specs.map((spec) => {
    const tensor = map[spec.name];
    if (tensor === undefined) throw new MlError('CHECKPOINT_INVALID', `optimizer state lacks ${spec.name}`);
    return { name: spec.name, tensor };
  });
  try {
    await optimizer.setWeights(named);
  } finally {
    // setWeights wraps each tensor in a new variable that holds its own reference to the data.
    tf.dispose(Object.values(map));
  }
}
