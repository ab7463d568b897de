/**
 * The seed project's custom CNN, trained from scratch: a few conv-BN-ReLU-maxpool blocks and a head.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { FastBatchNormalization } from './fast-batch-norm.ts';
import { apply, classificationHead, Initializers, predictions } from './layer-factory.ts';
import type { ResolvedModelSpec } from './spec.ts';

/** Units of the CNN's original (`includeTop`) hidden dense layer. */
const TOP_UNITS = 128;

/**
 * Builds the CNN: per block `b` (1-based) `block{b}_conv` (3x3, same, no bias), `block{b}_bn`,
 * `block{b}_relu` (the Grad-CAM target of the last block) and `block{b}_pool` (2x2, stride 2).
 * Head: the default one, or with `includeTop` the seed's top `flatten`, `fc1` (128, ReLU),
 * `fc1_dropout`, `predictions`.
 * @param spec Validated spec; input `[batch, H, W, C]`, output `[batch, numClasses]` probabilities.
 */
export function buildCnn(spec: ResolvedModelSpec): tf.LayersModel {
  const init = new Initializers(spec.seed);
  const input = tf.input({ shape: [...spec.inputShape], name: 'input_1' });
  let x: tf.SymbolicTensor = input;
  spec.cnnFilters.forEach((filters, i) => {
    const block = `block${i + 1}`;
    x = apply(
      tf.layers.conv2d({
        filters,
        kernelSize: 3,
        padding: 'same',
        // BN right after makes a conv bias redundant (its beta plays that role).
        useBias: false,
        kernelInitializer: init.heNormal(`${block}_conv`),
        name: `${block}_conv`,
      }),
      x,
    );
    // Keras epsilon (1e-3); momentum from the spec (see DEFAULT_BN_MOMENTUM).
    x = apply(new FastBatchNormalization({ momentum: spec.bnMomentum, name: `${block}_bn` }), x);
    x = apply(tf.layers.activation({ activation: 'relu', name: `${block}_relu` }), x);
    x = apply(tf.layers.maxPooling2d({ poolSize: 2, strides: 2, name: `${block}_pool` }), x);
  });

  let output: tf.SymbolicTensor;
  if (spec.includeTop) {
    x = apply(tf.layers.flatten({ name: 'flatten' }), x);
    x = apply(
      tf.layers.dense({ units: TOP_UNITS, activation: 'relu', kernelInitializer: init.heNormal('fc1'), name: 'fc1' }),
      x,
    );
    if (spec.dropout > 0) x = apply(tf.layers.dropout({ rate: spec.dropout, name: 'fc1_dropout' }), x);
    output = predictions(x, spec.numClasses, init);
  } else {
    output = classificationHead(x, spec.numClasses, spec.dropout, init);
  }
  return tf.model({ inputs: input, outputs: output, name: 'cnn' });
}
