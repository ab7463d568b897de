/**
 * Layer constructors shared by the architecture builders: seeded initialisers (one derived seed per
 * layer name) and the default classification head.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { deriveSeed } from '../util/random.ts';

type Initializer = ReturnType<typeof tf.initializers.glorotUniform>;

/** Applies `layer` to a symbolic tensor (functional API) and narrows the result type. */
export function apply(layer: tf.layers.Layer, x: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor {
  return layer.apply(x) as tf.SymbolicTensor;
}

/**
 * Makes initialisers for one model. With a seed each layer gets `deriveSeed(seed, layerName)`, so a
 * layer's initial weights depend only on the seed and its name, not on build order.
 */
export class Initializers {
  constructor(private readonly seed: number | undefined) {}

  /** Keras's default kernel initialiser (every Keras-applications layer uses it). */
  glorotUniform(layerName: string): Initializer {
    return tf.initializers.glorotUniform(this.args(layerName));
  }

  /** He normal, for the CNN's ReLU convolutions trained from scratch. */
  heNormal(layerName: string): Initializer {
    return tf.initializers.heNormal(this.args(layerName));
  }

  private args(layerName: string): { seed?: number } {
    return this.seed === undefined ? {} : { seed: deriveSeed(this.seed, layerName) };
  }
}

/**
 * The default head: `avg_pool` (global average pooling), `head_dropout` (omitted when `dropout` is 0)
 * and `predictions` (dense softmax).
 * @param features Backbone output `[batch, h, w, c]`.
 * @returns Class probabilities `[batch, numClasses]`.
 */
export function classificationHead(
  features: tf.SymbolicTensor,
  numClasses: number,
  dropout: number,
  init: Initializers,
): tf.SymbolicTensor {
  let x = apply(tf.layers.globalAveragePooling2d({ name: 'avg_pool' }), features);
  // No seed on dropout: tfjs reuses a given seed for every call, which would freeze the mask.
  if (dropout > 0) x = apply(tf.layers.dropout({ rate: dropout, name: 'head_dropout' }), x);
  return predictions(x, numClasses, init);
}

/** The final dense softmax layer, named `predictions` as in Keras. */
export function predictions(x: tf.SymbolicTensor, numClasses: number, init: Initializers): tf.SymbolicTensor {
  return apply(
    tf.layers.dense({
      units: numClasses,
      activation: 'softmax',
      kernelInitializer: init.glorotUniform('predictions'),
      name: 'predictions',
    }),
    x,
  );
}
