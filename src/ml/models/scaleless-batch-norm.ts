/**
 * `ScalelessBatchNormalization`: the class name under which InceptionV3's scale-less BN was first
 * saved. It is now {@link FastBatchNormalization} with `scale: false` (the architectures build that
 * class directly); this subclass only keeps the old name loadable and constructible. `saveModel`
 * writes it as the stock `BatchNormalization` with `scale: false`.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { FastBatchNormalization, type FastBatchNormalizationArgs } from './fast-batch-norm.ts';

/** Options of {@link ScalelessBatchNormalization}: those of the general layer, without `scale`. */
export type ScalelessBatchNormalizationArgs = Omit<FastBatchNormalizationArgs, 'scale'>;

/**
 * Keras `BatchNormalization(axis=-1, scale=False)`: weights `beta`, `moving_mean`,
 * `moving_variance`, no `gamma`.
 * @deprecated Use `new FastBatchNormalization({ scale: false })`; kept so models saved under this
 *   class name still load.
 */
export class ScalelessBatchNormalization extends FastBatchNormalization {
  static override readonly className: string = 'ScalelessBatchNormalization';

  constructor(args: ScalelessBatchNormalizationArgs = {}) {
    // A saved config of this class never has `scale`; ignore one if present.
    super({ ...args, scale: false });
  }
}

tf.serialization.registerClass(ScalelessBatchNormalization);
