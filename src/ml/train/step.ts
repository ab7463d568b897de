/**
 * One optimisation step on one batch, split into micro-batches whose gradients are accumulated and
 * applied once, with an automatic fallback to smaller micro-batches when a step runs out of memory.
 *
 * Equivalence: micro-batch j (size m_j) of a batch of size B contributes the objective
 * `sum_i(w_i * l_i) / B + R * m_j / B` (R = regularisation penalties), so the SUM of the micro-batch
 * gradients is exactly the gradient of the full-batch Keras loss `sum_i(w_i * l_i) / B + R`, and one
 * `applyGradients` with it is one full-batch step. Exception: BatchNormalization in training mode
 * normalises with the statistics of each micro-batch and updates its moving mean/variance once per
 * micro-batch (with its momentum), so models with BN train slightly differently with smaller
 * micro-batches - the usual price of gradient accumulation.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError, isMlError } from '../errors.ts';
import { correctCount, crossEntropyPerSample, sampleWeights } from './loss.ts';
import type { TrainOptimizer } from './optimizer.ts';
import { releaseAbandonedTape } from '../backend/wasm-memory.ts';
import { disposeSnapshot, restoreSnapshot, takeSnapshot } from './weights.ts';
import type { ModelVariable } from './weights.ts';

/** What a step needs; built once per run. */
export interface StepContext {
  model: tf.LayersModel;
  optimizer: TrainOptimizer;
  /** `[numClasses]` class weights, or undefined for unweighted. */
  classWeights?: tf.Tensor1D;
  signal?: AbortSignal;
  isOutOfMemory: (error: unknown) => boolean;
}

/** Sums over the samples of one batch, as numbers. */
export interface StepTotals {
  /** `sum_i(w_i * l_i) + R * B`: divide by the sample count for the Keras running loss. */
  lossSum: number;
  correct: number;
  count: number;
}

/** Throws `MlError('TRAINING_CANCELLED')` when the signal has fired. */
export function throwIfCancelled(signal: AbortSignal | undefined): void {
  if (signal?.aborted === true) {
    throw new MlError('TRAINING_CANCELLED', 'training was cancelled', { cause: signal.reason });
  }
}

/** Lets timers, I/O and abort handlers run between micro-batches (each one blocks the thread). */
const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function disposeAll(tensors: readonly (tf.Tensor | undefined)[]): void {
  for (const t of tensors) if (t !== undefined && !t.isDisposed) t.dispose();
}

/** An error from applying the accumulated gradients: not retryable, the update may be half done. */
class ApplyFailure extends Error {}

/**
 * Computes and applies one step on `xs`/`ys` with micro-batches of at most `microBatchSize` samples.
 * Does not dispose `xs`/`ys`. On failure nothing has been applied (unless the failure is in the final
 * `applyGradients`, reported as {@link ApplyFailure}), but BN moving statistics may have moved.
 */
async function stepOnce(ctx: StepContext, xs: tf.Tensor4D, ys: tf.Tensor2D, microBatchSize: number): Promise<StepTotals> {
  const { model, optimizer, classWeights, signal } = ctx;
  const batchSize = xs.shape[0];
  const size = Math.max(1, Math.min(microBatchSize, batchSize));
  // The same variable objects every step: LayerVariable.write assigns into its tf.Variable in place.
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  let accumulated: (tf.Tensor | undefined)[] | undefined;
  let lossSum: tf.Scalar | undefined;
  let correct: tf.Scalar | undefined;
  let keptCorrect: tf.Scalar | undefined;
  try {
    for (let start = 0; start < batchSize; start += size) {
      if (start > 0) await yieldToEventLoop();
      throwIfCancelled(signal);
      const count = Math.min(size, batchSize - start);
      const next = tf.tidy(() => {
        const x = count === batchSize ? xs : tf.slice(xs, [start, 0, 0, 0], [count, -1, -1, -1]);
        const y = count === batchSize ? ys : tf.slice(ys, [start, 0], [count, -1]);
        const { value, grads } = tf.variableGrads(() => {
          // training: true makes BN use batch statistics and update its moving averages, and Dropout drop.
          const probs = model.apply(x, { training: true }) as tf.Tensor;
          // Metrics are computed here to reuse the forward pass; kept, since the tape's scope ends here.
          keptCorrect = tf.keep(correctCount(y, probs));
          const perSample = crossEntropyPerSample(y, probs);
          const weighted = classWeights === undefined ? perSample : tf.mul(perSample, sampleWeights(y, classWeights));
          let objective: tf.Tensor = tf.div(tf.sum(weighted), batchSize);
          const penalties = model.calculateLosses();
          if (penalties.length > 0) objective = tf.add(objective, tf.mul(tf.addN(penalties), count / batchSize));
          return objective as tf.Scalar;
        }, variables);
        const micro = keptCorrect as tf.Scalar;
        const nextAccumulated = variables.map((v, i) => {
          const g = grads[v.name];
          const previous = accumulated?.[i];
          if (g === undefined) return previous === undefined ? undefined : tf.clone(previous);
          return previous === undefined ? g : tf.add(previous, g);
        });
        return {
          accumulated: nextAccumulated,
          // value * B is this micro-batch's share of sum(w*l) + R*B.
          lossSum: lossSum === undefined ? tf.mul(value, batchSize) : tf.add(lossSum, tf.mul(value, batchSize)),
          correct: correct === undefined ? tf.clone(micro) : tf.add(correct, micro),
        };
      });
      disposeAll([...(accumulated ?? []), lossSum, correct, keptCorrect]);
      keptCorrect = undefined;
      accumulated = next.accumulated;
      lossSum = next.lossSum as tf.Scalar;
      correct = next.correct as tf.Scalar;
    }
    throwIfCancelled(signal);
    // Gradients are passed for every trainable variable in a fixed order (undefined = no gradient):
    // tfjs's Adam and Momentum index their slots by position in this list, not by name.
    const gradients = variables.map((v, i) => ({ name: v.name, tensor: accumulated?.[i] as tf.Tensor }));
    try {
      optimizer.applyGradients(gradients);
    } catch (error) {
      throw new ApplyFailure('applying gradients failed', { cause: error });
    }
    const [lossValue, correctValue] = await Promise.all([(lossSum as tf.Scalar).data(), (correct as tf.Scalar).data()]);
    return { lossSum: lossValue[0] as number, correct: correctValue[0] as number, count: batchSize };
  } finally {
    disposeAll([...(accumulated ?? []), lossSum, correct, keptCorrect]);
  }
}

/**
 * The variables a training-mode forward pass changes: BatchNormalization moving statistics (Keras
 * names them `moving_mean`/`moving_variance`; so do tfjs and our own BN layer). Other non-trainable
 * weights (a frozen backbone) do not change, so they are not snapshotted - on wasm that would copy
 * them every step.
 */
function forwardUpdatedVariables(model: tf.LayersModel): ModelVariable[] {
  return model.nonTrainableWeights.filter((w) => /moving_(mean|variance)/.test(w.originalName));
}

/** Mutable micro-batch setting of a run, shared by all steps. */
export interface MicroBatchState {
  /** Current cap; undefined means whole batches. */
  size: number | undefined;
}

/**
 * Trains one step on a batch; on an out-of-memory error (per `ctx.isOutOfMemory`) undoes the side
 * effects of the failed attempt (BN moving statistics, the abandoned gradient tape), halves the
 * micro-batch size and retries the same batch, down to 1.
 * @param onReduced called after each reduction with the new size and the error
 * @throws MlError('OUT_OF_MEMORY') when a step fails at micro-batch size 1, or while applying gradients
 * @throws MlError('TRAINING_CANCELLED') when the signal fires (the step is then not applied)
 */
export async function trainStep(
  ctx: StepContext,
  xs: tf.Tensor4D,
  ys: tf.Tensor2D,
  micro: MicroBatchState,
  onReduced: (newSize: number, error: unknown) => void,
): Promise<StepTotals> {
  const batchSize = xs.shape[0];
  const sideEffected = forwardUpdatedVariables(ctx.model);
  for (;;) {
    const current = Math.min(micro.size ?? batchSize, batchSize);
    const snapshot = takeSnapshot(sideEffected);
    try {
      return await stepOnce(ctx, xs, ys, current);
    } catch (error) {
      releaseAbandonedTape();
      if (error instanceof ApplyFailure) {
        const cause = error.cause;
        if (ctx.isOutOfMemory(cause)) {
          throw new MlError('OUT_OF_MEMORY', `out of memory while applying gradients: ${String(cause)}`, { cause });
        }
        throw cause;
      }
      // Put BN statistics back so a retried (or cancelled) batch leaves no trace.
      restoreSnapshot(sideEffected, snapshot);
      // Cancellation is final; anything else the predicate calls out-of-memory (including an
      // MlError('OUT_OF_MEMORY') from the backend's allocation guard) is retried smaller.
      if (isMlError(error, 'TRAINING_CANCELLED') || !ctx.isOutOfMemory(error)) throw error;
      if (current <= 1) {
        throw new MlError('OUT_OF_MEMORY', `out of memory even with micro-batches of 1 sample: ${errorMessage(error)}`, { cause: error });
      }
      micro.size = Math.max(1, Math.floor(current / 2));
      onReduced(micro.size, error);
    } finally {
      disposeSnapshot(snapshot);
    }
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
