/**
 * VGG16 with the topology and layer names of Keras's `keras.applications.vgg16.VGG16`.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { apply, classificationHead, Initializers, predictions } from './layer-factory.ts';
import type { ResolvedModelSpec } from './spec.ts';

/** Filters and convolutions per block: block1..block5. */
const BLOCKS: readonly (readonly [filters: number, convs: number])[] = [
  [64, 2],
  [128, 2],
  [256, 3],
  [512, 3],
  [512, 3],
];

/**
 * Builds VGG16: `block{b}_conv{i}` (3x3, same, ReLU) and `block{b}_pool` (2x2, stride 2), then either the
 * Keras top (`flatten`, `fc1`, `fc2` with 4096 units, `predictions`) or the default head.
 * With the Keras top, fc1 has `(H/32)*(W/32)*512*4096 + 4096` parameters, so it depends on the input size.
 * @param spec Validated spec; input `[batch, H, W, C]`, output `[batch, numClasses]` probabilities.
 */
export function buildVgg16(spec: ResolvedModelSpec): tf.LayersModel {
  const init = new Initializers(spec.seed);
  const input = tf.input({ shape: [...spec.inputShape], name: 'input_1' });
  let x: tf.SymbolicTensor = input;
  BLOCKS.forEach(([filters, convs], b) => {
    for (let i = 1; i <= convs; i++) {
      const name = `block${b + 1}_conv${i}`;
      x = apply(
        tf.layers.conv2d({
          filters,
          kernelSize: 3,
          padding: 'same',
          activation: 'relu',
          kernelInitializer: init.glorotUniform(name),
          name,
        }),
        x,
      );
    }
    x = apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: `block${b + 1}_pool` }), x);
  });

  let output: tf.SymbolicTensor;
  if (spec.includeTop) {
    x = apply(tf.layers.flatten({ name: 'flatten' }), x);
    for (const name of ['fc1', 'fc2']) {
      x = apply(
        tf.layers.dense({ units: 4096, activation: 'relu', kernelInitializer: init.glorotUniform(name), name }),
        x,
      );
    }
    output = predictions(x, spec.numClasses, init);
  } else {
    output = classificationHead(x, spec.numClasses, spec.dropout, init);
  }
  return tf.model({ inputs: input, outputs: output, name: 'vgg16' });
}
