/**
 * ResNet50 (v1) with the topology and layer names of Keras's `keras.applications.resnet.ResNet50`.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { FastBatchNormalization } from './fast-batch-norm.ts';
import { apply, classificationHead, Initializers, predictions } from './layer-factory.ts';
import type { ResolvedModelSpec } from './spec.ts';

/** Keras ResNet's BN epsilon (not the 1e-3 default). */
const BN_EPSILON = 1.001e-5;

/** Stages conv2..conv5: bottleneck width, block count and the stride of the first block. */
const STAGES: readonly (readonly [name: string, filters: number, blocks: number, stride: number])[] = [
  ['conv2', 64, 3, 1],
  ['conv3', 128, 4, 2],
  ['conv4', 256, 6, 2],
  ['conv5', 512, 3, 2],
];

/**
 * Builds ResNet50: stem `conv1_pad`, `conv1_conv` (7x7/2), `conv1_bn`, `conv1_relu`, `pool1_pad`,
 * `pool1_pool` (3x3/2), then 16 bottleneck blocks `conv{s}_block{b}_*` ending in `conv{s}_block{b}_out`,
 * then the Keras top (`avg_pool`, `predictions`) or the default head.
 * @param spec Validated spec; input `[batch, H, W, C]`, output `[batch, numClasses]` probabilities.
 */
export function buildResnet50(spec: ResolvedModelSpec): tf.LayersModel {
  const init = new Initializers(spec.seed);
  const input = tf.input({ shape: [...spec.inputShape], name: 'input_1' });
  let x = apply(tf.layers.zeroPadding2d({ padding: [[3, 3], [3, 3]], name: 'conv1_pad' }), input);
  x = conv(x, 64, 7, 2, 'valid', 'conv1_conv', init);
  x = batchNorm(x, 'conv1_bn', spec.bnMomentum);
  x = apply(tf.layers.activation({ activation: 'relu', name: 'conv1_relu' }), x);
  x = apply(tf.layers.zeroPadding2d({ padding: [[1, 1], [1, 1]], name: 'pool1_pad' }), x);
  x = apply(tf.layers.maxPooling2d({ poolSize: 3, strides: 2, name: 'pool1_pool' }), x);

  for (const [stage, filters, blocks, stride] of STAGES) {
    x = bottleneck(x, filters, stride, true, `${stage}_block1`, init, spec.bnMomentum);
    for (let b = 2; b <= blocks; b++) x = bottleneck(x, filters, 1, false, `${stage}_block${b}`, init, spec.bnMomentum);
  }

  const output = spec.includeTop
    ? predictions(apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), x), spec.numClasses, init)
    : classificationHead(x, spec.numClasses, spec.dropout, init);
  return tf.model({ inputs: input, outputs: output, name: 'resnet50' });
}

/**
 * Keras `residual_block_v1`: 1x1 (carries the stride) -> 3x3 -> 1x1 (4x filters), added to the
 * shortcut (a strided 1x1 projection `_0_conv`/`_0_bn` in each stage's first block).
 */
function bottleneck(
  x: tf.SymbolicTensor,
  filters: number,
  stride: number,
  projectShortcut: boolean,
  name: string,
  init: Initializers,
  bnMomentum: number,
): tf.SymbolicTensor {
  const shortcut = projectShortcut
    ? batchNorm(conv(x, 4 * filters, 1, stride, 'valid', `${name}_0_conv`, init), `${name}_0_bn`, bnMomentum)
    : x;
  let y = conv(x, filters, 1, stride, 'valid', `${name}_1_conv`, init);
  y = batchNorm(y, `${name}_1_bn`, bnMomentum);
  y = apply(tf.layers.activation({ activation: 'relu', name: `${name}_1_relu` }), y);
  y = conv(y, filters, 3, 1, 'same', `${name}_2_conv`, init);
  y = batchNorm(y, `${name}_2_bn`, bnMomentum);
  y = apply(tf.layers.activation({ activation: 'relu', name: `${name}_2_relu` }), y);
  y = conv(y, 4 * filters, 1, 1, 'valid', `${name}_3_conv`, init);
  y = batchNorm(y, `${name}_3_bn`, bnMomentum);
  y = apply(tf.layers.add({ name: `${name}_add` }), [shortcut, y]);
  return apply(tf.layers.activation({ activation: 'relu', name: `${name}_out` }), y);
}

/** Keras ResNet convolutions keep their bias (use_bias=True) even before BN. */
function conv(
  x: tf.SymbolicTensor,
  filters: number,
  kernelSize: number,
  strides: number,
  padding: 'same' | 'valid',
  name: string,
  init: Initializers,
): tf.SymbolicTensor {
  return apply(
    tf.layers.conv2d({ filters, kernelSize, strides, padding, kernelInitializer: init.glorotUniform(name), name }),
    x,
  );
}

/** Keras `BatchNormalization(axis=3, epsilon=1.001e-5)` (axis 3 is the channel axis, as in ours). */
function batchNorm(x: tf.SymbolicTensor, name: string, momentum: number): tf.SymbolicTensor {
  return apply(new FastBatchNormalization({ epsilon: BN_EPSILON, momentum, name }), x);
}
