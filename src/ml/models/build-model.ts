/**
 * The model factory: one validated spec in, a fresh (randomly initialised) `tf.LayersModel` out.
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { buildCnn } from './cnn.ts';
import { buildInceptionV3 } from './inceptionv3.ts';
import { buildResnet50 } from './resnet50.ts';
import { resolveModelSpec, type ResolvedModelSpec } from './spec.ts';
import type { Architecture, ModelSpec } from './types.ts';
import { buildVgg16 } from './vgg16.ts';

const BUILDERS: Readonly<Record<Architecture, (spec: ResolvedModelSpec) => tf.LayersModel>> = {
  cnn: buildCnn,
  vgg16: buildVgg16,
  resnet50: buildResnet50,
  inceptionv3: buildInceptionV3,
};

/**
 * Builds the architecture `spec` names, uncompiled, with Keras layer names (so Keras-converted weights
 * load by name). The model's `name` is the architecture. The caller owns the model: `model.dispose()`.
 * Input `[batch, height, width, channels]` (preprocessed per `PREPROCESS_MODE`), output
 * `[batch, numClasses]` softmax probabilities.
 * @throws MlError `ARCHITECTURE_UNKNOWN`, `INPUT_SHAPE_INVALID`, `INVALID_ARGUMENT` (see `resolveModelSpec`).
 * @example
 * const model = buildModel({ architecture: 'resnet50', inputShape: [224, 224, 3], numClasses: 2, seed: 42 });
 */
export function buildModel(spec: ModelSpec): tf.LayersModel {
  const resolved = resolveModelSpec(spec);
  return BUILDERS[resolved.architecture](resolved);
}
