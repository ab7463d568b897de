/**
 * InceptionV3 with the topology and layer names of Keras's `keras.applications.inception_v3`.
 *
 * Keras builds it with unnamed conv/BN/activation/pooling layers, so their names are Keras's
 * automatic ones in creation order (`conv2d`, `conv2d_1`, ..., `batch_normalization_93`,
 * `activation_93`, `max_pooling2d_3`, `average_pooling2d_8`, `concatenate_1`), as a fresh Keras session
 * gives them; the blocks are `mixed0`..`mixed10` (with `mixed9_0`, `mixed9_1` inside). Every BN has
 * `scale=False`: {@link FastBatchNormalization} with `scale: false` (tfjs's own layer throws in training
 * mode without a scale, tfjs#2868).
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { FastBatchNormalization } from './fast-batch-norm.ts';
import { apply, classificationHead, Initializers, predictions } from './layer-factory.ts';
import type { ResolvedModelSpec } from './spec.ts';

/** Keras's automatic layer names: the first of a kind is `prefix`, then `prefix_1`, `prefix_2`, ... */
class AutoNamer {
  private readonly counts = new Map<string, number>();

  next(prefix: string): string {
    const n = this.counts.get(prefix) ?? 0;
    this.counts.set(prefix, n + 1);
    return n === 0 ? prefix : `${prefix}_${n}`;
  }
}

type Tensor = tf.SymbolicTensor;

/**
 * Builds InceptionV3: stem, mixed0..mixed10, then the Keras top (`avg_pool`, `predictions`) or the
 * default head. Feature map of `mixed10` is 8x8x2048 at 299x299, 1x1x2048 at the 75x75 minimum.
 * @param spec Validated spec; input `[batch, H, W, C]`, output `[batch, numClasses]` probabilities.
 */
export function buildInceptionV3(spec: ResolvedModelSpec): tf.LayersModel {
  const init = new Initializers(spec.seed);
  const names = new AutoNamer();

  /** Keras `conv2d_bn`: conv without bias, BN without scale, ReLU. */
  const convBn = (x: Tensor, filters: number, rows: number, cols: number, strides = 1, padding: 'same' | 'valid' = 'same'): Tensor => {
    const convName = names.next('conv2d');
    let y = apply(
      tf.layers.conv2d({
        filters,
        kernelSize: [rows, cols],
        strides,
        padding,
        useBias: false,
        kernelInitializer: init.glorotUniform(convName),
        name: convName,
      }),
      x,
    );
    y = apply(new FastBatchNormalization({ scale: false, epsilon: 1e-3, momentum: spec.bnMomentum, name: names.next('batch_normalization') }), y);
    return apply(tf.layers.activation({ activation: 'relu', name: names.next('activation') }), y);
  };
  const maxPool = (x: Tensor): Tensor =>
    apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: names.next('max_pooling2d') }), x);
  const avgPool = (x: Tensor): Tensor =>
    apply(tf.layers.averagePooling2d({ poolSize: 3, strides: 1, padding: 'same', name: names.next('average_pooling2d') }), x);
  const concat = (inputs: Tensor[], name?: string): Tensor =>
    apply(tf.layers.concatenate({ axis: -1, name: name ?? names.next('concatenate') }), inputs);

  const input = tf.input({ shape: [...spec.inputShape], name: 'input_1' });
  let x = convBn(input, 32, 3, 3, 2, 'valid');
  x = convBn(x, 32, 3, 3, 1, 'valid');
  x = convBn(x, 64, 3, 3);
  x = maxPool(x);
  x = convBn(x, 80, 1, 1, 1, 'valid');
  x = convBn(x, 192, 3, 3, 1, 'valid');
  x = maxPool(x);

  // mixed0, mixed1, mixed2: 35x35 at 299 input; the pool branch has 32 then 64 filters.
  for (const [i, poolFilters] of [32, 64, 64].entries()) {
    const branch1x1 = convBn(x, 64, 1, 1);
    let branch5x5 = convBn(x, 48, 1, 1);
    branch5x5 = convBn(branch5x5, 64, 5, 5);
    let branch3x3dbl = convBn(x, 64, 1, 1);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
    const branchPool = convBn(avgPool(x), poolFilters, 1, 1);
    x = concat([branch1x1, branch5x5, branch3x3dbl, branchPool], `mixed${i}`);
  }

  // mixed3: grid reduction to 17x17.
  {
    const branch3x3 = convBn(x, 384, 3, 3, 2, 'valid');
    let branch3x3dbl = convBn(x, 64, 1, 1);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3);
    branch3x3dbl = convBn(branch3x3dbl, 96, 3, 3, 2, 'valid');
    const branchPool = maxPool(x);
    x = concat([branch3x3, branch3x3dbl, branchPool], 'mixed3');
  }

  // mixed4..mixed7: factorised 7x7 convolutions with 128, 160, 160, 192 inner filters.
  for (const [i, inner] of [128, 160, 160, 192].entries()) {
    const branch1x1 = convBn(x, 192, 1, 1);
    let branch7x7 = convBn(x, inner, 1, 1);
    branch7x7 = convBn(branch7x7, inner, 1, 7);
    branch7x7 = convBn(branch7x7, 192, 7, 1);
    let branch7x7dbl = convBn(x, inner, 1, 1);
    branch7x7dbl = convBn(branch7x7dbl, inner, 7, 1);
    branch7x7dbl = convBn(branch7x7dbl, inner, 1, 7);
    branch7x7dbl = convBn(branch7x7dbl, inner, 7, 1);
    branch7x7dbl = convBn(branch7x7dbl, 192, 1, 7);
    const branchPool = convBn(avgPool(x), 192, 1, 1);
    x = concat([branch1x1, branch7x7, branch7x7dbl, branchPool], `mixed${4 + i}`);
  }

  // mixed8: grid reduction to 8x8.
  {
    let branch3x3 = convBn(x, 192, 1, 1);
    branch3x3 = convBn(branch3x3, 320, 3, 3, 2, 'valid');
    let branch7x7x3 = convBn(x, 192, 1, 1);
    branch7x7x3 = convBn(branch7x7x3, 192, 1, 7);
    branch7x7x3 = convBn(branch7x7x3, 192, 7, 1);
    branch7x7x3 = convBn(branch7x7x3, 192, 3, 3, 2, 'valid');
    const branchPool = maxPool(x);
    x = concat([branch3x3, branch7x7x3, branchPool], 'mixed8');
  }

  // mixed9, mixed10: expanded filter banks, 2048 channels.
  for (let i = 0; i < 2; i++) {
    const branch1x1 = convBn(x, 320, 1, 1);
    const branch3x3In = convBn(x, 384, 1, 1);
    const branch3x3 = concat([convBn(branch3x3In, 384, 1, 3), convBn(branch3x3In, 384, 3, 1)], `mixed9_${i}`);
    let branch3x3dblIn = convBn(x, 448, 1, 1);
    branch3x3dblIn = convBn(branch3x3dblIn, 384, 3, 3);
    const branch3x3dbl = concat([convBn(branch3x3dblIn, 384, 1, 3), convBn(branch3x3dblIn, 384, 3, 1)]);
    const branchPool = convBn(avgPool(x), 192, 1, 1);
    x = concat([branch1x1, branch3x3, branch3x3dbl, branchPool], `mixed${9 + i}`);
  }

  const output = spec.includeTop
    ? predictions(apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x), spec.numClasses, init)
    : classificationHead(x, spec.numClasses, spec.dropout, init);
  return tf.model({ inputs: input, outputs: output, name: 'inceptionv3' });
}
