/**
 * Training-mode batch normalisation as one op with a hand-written gradient, cheap on every backend.
 *
 * Why not tfjs's ops: the tfjs-layers BatchNormalization computes the batch statistics with
 * `tf.moments` and normalises with `tf.batchNorm`, so a training step backpropagates through Mean,
 * Sub, Square and Sum over the leading axes (wasm transposes the whole tensor before each such
 * reduction) and through tfjs-core's FusedBatchNorm gradient, which tiles `1/sqrt(var)` to the full
 * input shape. On wasm that Tile alone took over a third of a CNN training step.
 *
 * Here, with `X = reshape(x, [M, C])` (M = every position of every sample, C = channels):
 * - per-channel means are one average pooling of `[1, M, 1, C]` with an `M x 1` window (XNNPACK on
 *   wasm, channels last, no transpose), in the forward pass and in the gradient;
 * - the forward pass keeps only its output and what the gradient needs (the input, the `[C]` mean and
 *   `1/sqrt(var + epsilon)`): its temporaries are freed before the op returns, even while a gradient
 *   tape records;
 * - the gradient is the closed form of the batch-norm derivative,
 *   `dx = (gamma * inv / M) * (M * dy - sum(dy) - xhat * sum(dy * xhat))`, with
 *   `xhat = (x - mean) * inv`, `inv = 1 / sqrt(var + epsilon)`, `dgamma = sum(dy * xhat)` and
 *   `dbeta = sum(dy)`.
 * The variance is the biased batch variance (divided by M), as in tfjs and Keras 3.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';

/** What {@link batchNormTraining} returns; the caller owns (and disposes) all three tensors. */
export interface BatchNormTrainingResult {
  /** Normalised output, same shape as the input. Differentiable w.r.t. x, gamma and beta. */
  y: tf.Tensor;
  /** `[C]` batch mean per channel. Not differentiable (a constant for gradients). */
  mean: tf.Tensor1D;
  /** `[C]` biased batch variance per channel. Not differentiable. */
  variance: tf.Tensor1D;
}

/**
 * Normalises `x` with the statistics of its own batch, over every axis but the last:
 * `y = (x - mean) / sqrt(variance + epsilon) * gamma + beta`.
 *
 * @param x `[..., C]` float32, rank 2 or more (`[N, H, W, C]` after a convolution, `[N, C]` after a
 *   dense layer).
 * @param gamma `[C]` scale, or undefined for Keras `scale=False` (then no gradient is returned for it).
 * @param beta `[C]` offset, or undefined for Keras `center=False`.
 * @param epsilon added to the variance before the square root (Keras default 1e-3).
 * @returns the output and the batch statistics (new tensors in the caller's scope).
 * @throws MlError('INPUT_SHAPE_INVALID') for rank < 2, an empty tensor, or `[C]` mismatches.
 * @example
 * const { y, mean, variance } = batchNormTraining(x, gamma, beta, 1e-3);
 */
export function batchNormTraining(
  x: tf.Tensor,
  gamma: tf.Tensor | undefined,
  beta: tf.Tensor | undefined,
  epsilon: number,
): BatchNormTrainingResult {
  return namedOp(x, gamma, beta, epsilon);
}

function batchNormTrainingImpl(
  x: tf.Tensor,
  gamma: tf.Tensor | undefined,
  beta: tf.Tensor | undefined,
  epsilon: number,
): BatchNormTrainingResult {
  const channels = checkShapes(x, gamma, beta);
  const rows = x.size / channels;
  const inputs = [x, ...(gamma === undefined ? [] : [gamma]), ...(beta === undefined ? [] : [beta])];
  let stats: [tf.Tensor1D, tf.Tensor1D] | undefined;

  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const xIn = args[0] as tf.Tensor;
    const gammaIn = gamma === undefined ? undefined : (args[1] as tf.Tensor1D);
    const betaIn = beta === undefined ? undefined : (args[gamma === undefined ? 1 : 2] as tf.Tensor1D);
    // Runs inside tfjs's own tidy with the tape paused: everything but the output and the saved and
    // kept tensors is freed when this returns, so the op adds one full-size tensor (y) to a step's
    // peak memory (two on wasm, whose tf.clone copies the saved input).
    const mean = channelMean(xIn, rows, channels);
    // Centred first, not x * scale + (beta - mean * scale): one more pass, but no cancellation when
    // |mean| is large next to the spread.
    const centred = tf.sub(xIn, mean);
    const variance = channelMean(tf.square(centred), rows, channels);
    const inv = tf.rsqrt(tf.add(variance, epsilon));
    const normed = tf.mul(centred, gammaIn === undefined ? inv : tf.mul(gammaIn, inv));
    const y = betaIn === undefined ? normed : tf.add(normed, betaIn);
    save(gammaIn === undefined ? [xIn, mean, inv] : [xIn, mean, inv, gammaIn]);
    stats = [tf.keep(mean), tf.keep(variance)];
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        // customGrad runs this outside any per-node tidy: without one, every temporary of every BN
        // layer would live until the whole backward pass ends.
        tf.tidy(() => gradients(dy, saved, rows, channels, gamma !== undefined, beta !== undefined)),
    };
  });

  const y = op(...inputs);
  const [keptMean, keptVariance] = stats as [tf.Tensor1D, tf.Tensor1D];
  // Kept tensors escape every tidy; clones (sharing the data) are ordinary tensors of this scope.
  const mean = tf.clone(keptMean);
  const variance = tf.clone(keptVariance);
  keptMean.dispose();
  keptVariance.dispose();
  return { y, mean, variance };
}

/** Named scope, so tf.profile reports the forward pass as `batchNormTraining__op`. */
const namedOp = tf.op({ batchNormTraining: batchNormTrainingImpl });

/**
 * Gradients for the inputs of the op, in input order: x, then gamma and beta when present.
 * With `xc = x - mean`: `dbeta = sum(dy)`, `dgamma = inv * sum(dy * xc)` and
 * `dx = g * dy - xc * (g * inv * dgamma / M) - g * dbeta / M`, `g = gamma * inv`.
 */
function gradients(dy: tf.Tensor, saved: tf.Tensor[], rows: number, channels: number, hasGamma: boolean, hasBeta: boolean): tf.Tensor[] {
  const [x, mean, inv, gamma] = saved as [tf.Tensor, tf.Tensor1D, tf.Tensor1D, tf.Tensor1D | undefined];
  const centred = tf.sub(x, mean);
  const dBeta = tf.mul(channelMean(dy, rows, channels), rows);
  const dGamma = tf.mul(channelMean(tf.mul(dy, centred), rows, channels), tf.mul(inv, rows));
  const g = gamma === undefined ? inv : tf.mul(gamma, inv);
  const k = tf.div(g, rows);
  const dx = tf.sub(tf.sub(tf.mul(dy, g), tf.mul(centred, tf.mul(tf.mul(k, dGamma), inv))), tf.mul(k, dBeta));
  return [dx, ...(hasGamma ? [dGamma] : []), ...(hasBeta ? [dBeta] : [])];
}

/**
 * `[C]` mean of `t` (`[..., C]`, `rows` = size / C) over every axis but the last, as one average
 * pooling of `[1, rows, 1, C]` with a `rows x 1` window: channels-last and SIMD on wasm (XNNPACK),
 * where Sum and Mean over leading axes first transpose the whole tensor, and a matrix product with a
 * ones row repacks the whole tensor as GEMM weights on every call (both measured 20-100x slower).
 */
function channelMean(t: tf.Tensor, rows: number, channels: number): tf.Tensor1D {
  const pooled = tf.avgPool(tf.reshape(t, [1, rows, 1, channels]) as tf.Tensor4D, [rows, 1], [rows, 1], 'valid');
  return tf.reshape(pooled, [channels]);
}

/** Validates shapes; returns the channel count C. */
function checkShapes(x: tf.Tensor, gamma: tf.Tensor | undefined, beta: tf.Tensor | undefined): number {
  const channels = x.shape[x.rank - 1];
  if (x.rank < 2 || channels === undefined || x.size === 0) {
    throw new MlError('INPUT_SHAPE_INVALID', `batch normalisation needs a non-empty input of rank >= 2 (channels last), got shape ${JSON.stringify(x.shape)}.`);
  }
  for (const [name, t] of [['gamma', gamma], ['beta', beta]] as const) {
    if (t !== undefined && (t.rank !== 1 || t.shape[0] !== channels)) {
      throw new MlError('INPUT_SHAPE_INVALID', `batch normalisation: ${name} must have shape [${channels}], got ${JSON.stringify(t.shape)}.`);
    }
  }
  return channels;
}
