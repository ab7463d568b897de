/**
 * Batch normalisation without the learned scale (Keras `BatchNormalization(scale=False)`), which
 * InceptionV3 uses after every convolution.
 *
 * Why our own layer: tfjs's `batchNormalization({scale: false})` reads its absent `gamma` in training
 * mode and throws "Cannot read properties of undefined (reading 'read')" (tensorflow/tfjs#2868).
 * Switching to `scale: true` would add 17,216 parameters to InceptionV3 and break Keras weight parity.
 * This layer has exactly Keras's weights and names (`beta`, `moving_mean`, `moving_variance`; no
 * `gamma`), so weights converted from Keras load by name.
 *
 * Behaviour (Keras semantics, channels last):
 * - training: normalise with the batch mean and (biased) variance over every axis but the last, and
 *   move `moving_* = moving_* * momentum + batch_* * (1 - momentum)`;
 * - inference, or training with the layer frozen (`trainable = false`, as Keras since TF 2): normalise
 *   with the moving statistics and leave them unchanged.
 * The variance fed into the moving average is the biased batch variance, as in tfjs's own layer and
 * Keras 3 (TF 2's fused kernel applied Bessel's correction there; the difference is N/(N-1)).
 *
 * Registered with tfjs serialisation under {@link ScalelessBatchNormalization.className}, distinct
 * from tfjs's `BatchNormalization`, so saved models reload with this class: import this module (any
 * import of `src/ml/models` does) before `tf.loadLayersModel`.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** Options of {@link ScalelessBatchNormalization}; defaults are Keras's. */
export interface ScalelessBatchNormalizationArgs extends LayerArgs {
  /** Weight of the old value in the moving averages. Default 0.99. */
  momentum?: number;
  /** Added to the variance before the square root. Default 0.001 (Keras InceptionV3). */
  epsilon?: number;
  /** Learn the offset `beta`. Default true. */
  center?: boolean;
}

/** Keras `BatchNormalization(axis=-1, scale=False)` that also trains in tfjs. */
export class ScalelessBatchNormalization extends tf.layers.Layer {
  /** Serialisation name; deliberately not `BatchNormalization`, which tfjs already registers. */
  static readonly className = 'ScalelessBatchNormalization';

  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  private beta: tf.LayerVariable | null = null;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;

  constructor(args: ScalelessBatchNormalizationArgs = {}) {
    super(args);
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    this.center = args.center ?? true;
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (channels == null) {
      throw new MlError('INPUT_SHAPE_INVALID', `${this.name}: the channel axis of input shape ${JSON.stringify(shape)} must be defined.`);
    }
    // Same creation order as Keras (beta, moving_mean, moving_variance) so weight lists line up too.
    if (this.center) {
      this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros(), undefined, true);
    }
    this.movingMean = this.addWeight('moving_mean', [channels], 'float32', tf.initializers.zeros(), undefined, false);
    this.movingVariance = this.addWeight('moving_variance', [channels], 'float32', tf.initializers.ones(), undefined, false);
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? (inputs[0] as tf.Tensor) : inputs;
      const beta = this.beta?.read();
      // Keras semantics: a frozen (non-trainable) BN layer runs in inference mode even while the model
      // trains, so fine-tuning a pretrained backbone keeps its statistics.
      if (kwargs['training'] !== true || !this.trainable) {
        return normalize(x, this.movingMean.read(), this.movingVariance.read(), beta, this.epsilon);
      }
      const axes = [...Array(x.rank - 1).keys()];
      const { mean, variance } = tf.moments(x, axes);
      const out = normalize(x, mean, variance, beta, this.epsilon);
      this.updateMovingAverage(this.movingMean, mean);
      this.updateMovingAverage(this.movingVariance, variance);
      return out;
    });
  }

  private updateMovingAverage(variable: tf.LayerVariable, batchValue: tf.Tensor): void {
    tf.tidy(() => {
      // Written imperatively, like tfjs's own BatchNormalization: the loss never reads the new value
      // in this step, so no gradient flows through the update.
      const old = variable.read();
      variable.write(tf.sub(old, tf.mul(tf.sub(old, batchValue), 1 - this.momentum)));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon, center: this.center };
  }
}

/** `(x - mean) / sqrt(variance + epsilon) + beta`, per channel (the last axis). */
function normalize(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor, beta: tf.Tensor | undefined, epsilon: number): tf.Tensor {
  if (x.rank === 4) {
    // The fused kernel exists on every backend; its gradient (with mean/variance of rank 1) assumes
    // rank 4. A constant unit scale is passed because the kernel's gradient bookkeeping saves its
    // `scale` input and fails on an absent one (the other half of tfjs#2868).
    const scale = tf.onesLike(variance) as tf.Tensor1D;
    return tf.batchNorm(x, mean as tf.Tensor1D, variance as tf.Tensor1D, beta as tf.Tensor1D | undefined, scale, epsilon);
  }
  const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, epsilon)));
  return beta === undefined ? normed : tf.add(normed, beta);
}

tf.serialization.registerClass(ScalelessBatchNormalization);
