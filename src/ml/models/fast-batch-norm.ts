/**
 * Keras `BatchNormalization(axis=-1)` as a layer of ours, used by every architecture: the same
 * weights, names and semantics as Keras, but training through {@link batchNormTraining}, whose
 * hand-written gradient is 10x cheaper than tfjs's on wasm (see README.md for the measurements).
 *
 * It also covers Keras's `scale=False` (InceptionV3), which tfjs's own layer cannot train
 * (tensorflow/tfjs#2868: it reads its absent `gamma` and throws). Weights, in Keras's creation
 * order: `gamma` (when `scale`), `beta` (when `center`), `moving_mean`, `moving_variance`, so weights
 * converted from Keras load by name and by position.
 *
 * Behaviour (channels last):
 * - training: normalise with the batch mean and biased variance over every axis but the last, and
 *   move `moving = momentum * moving + (1 - momentum) * batch`;
 * - inference, or training with the layer frozen (`trainable = false`, as Keras since TF 2):
 *   normalise with the moving statistics and leave them unchanged.
 * The variance fed into the moving average is the biased batch variance, as in tfjs's own layer and
 * Keras 3 (TF 2's fused kernel applied Bessel's correction there; the difference is M/(M-1)).
 *
 * Registered with tfjs serialisation as {@link FastBatchNormalization.className}, distinct from
 * tfjs's `BatchNormalization`: import this module (any import of `src/ml/models` does) before
 * `tf.loadLayersModel` of a topology naming it. Saved model files do not: `saveModel` writes this
 * layer as the stock `BatchNormalization` (its config is a subset of the stock one, and the weights
 * match by name and order) so any TensorFlow.js loads them, and `loadModel` maps it back here
 * (src/ml/persist/portable-topology.ts). Training checkpoints keep this class name.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { batchNormTraining } from './batch-norm-op.ts';

type LayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

/** Options of {@link FastBatchNormalization}; defaults are Keras's. */
export interface FastBatchNormalizationArgs extends LayerArgs {
  /** Weight of the old value in the moving averages. Default 0.99. */
  momentum?: number;
  /** Added to the variance before the square root. Default 0.001 (ResNet50 uses 1.001e-5). */
  epsilon?: number;
  /** Learn the offset `beta`. Default true. */
  center?: boolean;
  /** Learn the scale `gamma`. Default true (InceptionV3 uses false). */
  scale?: boolean;
}

/** Keras `BatchNormalization(axis=-1)` with a cheap training gradient. */
export class FastBatchNormalization extends tf.layers.Layer {
  /** Serialisation name; deliberately not `BatchNormalization`, which tfjs already registers. */
  static readonly className: string = 'FastBatchNormalization';

  readonly momentum: number;
  readonly epsilon: number;
  readonly center: boolean;
  readonly scale: boolean;
  private gamma: tf.LayerVariable | null = null;
  private beta: tf.LayerVariable | null = null;
  private movingMean!: tf.LayerVariable;
  private movingVariance!: tf.LayerVariable;

  constructor(args: FastBatchNormalizationArgs = {}) {
    super(args);
    this.momentum = args.momentum ?? 0.99;
    this.epsilon = args.epsilon ?? 1e-3;
    this.center = args.center ?? true;
    this.scale = args.scale ?? true;
    if (!(this.momentum >= 0 && this.momentum <= 1) || !(this.epsilon > 0)) {
      throw new MlError('INVALID_ARGUMENT', `${this.name}: momentum must be in [0, 1] and epsilon > 0, got ${this.momentum} and ${this.epsilon}.`);
    }
    this.supportsMasking = true;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length < 2 || channels == null) {
      throw new MlError('INPUT_SHAPE_INVALID', `${this.name}: needs an input of rank >= 2 with a defined channel (last) axis, got ${JSON.stringify(shape)}.`);
    }
    // Keras's creation order, so weight lists line up with Keras's too.
    if (this.scale) {
      this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones(), undefined, true);
    }
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
      const gamma = this.gamma?.read();
      const beta = this.beta?.read();
      // Keras semantics: a frozen (non-trainable) BN layer runs in inference mode even while the model
      // trains, so fine-tuning a pretrained backbone keeps its statistics.
      if (kwargs['training'] !== true || !this.trainable) {
        return normalizeInference(x, this.movingMean.read(), this.movingVariance.read(), gamma, beta, this.epsilon);
      }
      const { y, mean, variance } = batchNormTraining(x, gamma, beta, this.epsilon);
      this.updateMovingAverage(this.movingMean, mean);
      this.updateMovingAverage(this.movingVariance, variance);
      return y;
    });
  }

  private updateMovingAverage(variable: tf.LayerVariable, batchValue: tf.Tensor): void {
    tf.tidy(() => {
      // Written imperatively, like tfjs's own BatchNormalization: the loss never reads the new value
      // in this step, and the batch statistics are constants for the gradient, so the tape drops
      // this update.
      const old = variable.read();
      variable.write(tf.sub(old, tf.mul(tf.sub(old, batchValue), 1 - this.momentum)));
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), momentum: this.momentum, epsilon: this.epsilon, center: this.center, scale: this.scale };
  }
}

/**
 * `(x - mean) / sqrt(variance + epsilon) * gamma + beta` per channel, as `x * s + t` with `[C]`
 * vectors `s` and `t`: two broadcasting XNNPACK passes on wasm, faster there than the scalar
 * FusedBatchNorm kernel, and differentiable with plain ops (a frozen layer passes `dy * s` back,
 * where tfjs's FusedBatchNorm gradient would tile `1/sqrt(variance)` to the input's size).
 */
function normalizeInference(
  x: tf.Tensor,
  mean: tf.Tensor,
  variance: tf.Tensor,
  gamma: tf.Tensor | undefined,
  beta: tf.Tensor | undefined,
  epsilon: number,
): tf.Tensor {
  const inv = tf.rsqrt(tf.add(variance, epsilon));
  const s = gamma === undefined ? inv : tf.mul(gamma, inv);
  const shift = tf.neg(tf.mul(mean, s));
  return tf.add(tf.mul(x, s), beta === undefined ? shift : tf.add(beta, shift));
}

tf.serialization.registerClass(FastBatchNormalization);
