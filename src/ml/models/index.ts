/**
 * The four architectures (`cnn`, `vgg16`, `resnet50`, `inceptionv3`) with Keras layer names, their
 * constants, and model summaries. Importing this module also registers the custom layers with tfjs
 * serialisation, which `tf.loadLayersModel` needs.
 * @module
 */
export { buildModel } from './build-model.ts';
export { parseInputShape, resolveModelSpec, type ResolvedModelSpec } from './spec.ts';
export { batchNormTraining, type BatchNormTrainingResult } from './batch-norm-op.ts';
export { FastBatchNormalization, type FastBatchNormalizationArgs } from './fast-batch-norm.ts';
export { ScalelessBatchNormalization, type ScalelessBatchNormalizationArgs } from './scaleless-batch-norm.ts';
export { formatModelSummary, summarizeModel } from './summary.ts';
export {
  ARCHITECTURES,
  DEFAULT_BN_MOMENTUM,
  DEFAULT_CNN_FILTERS,
  DEFAULT_DROPOUT,
  DEFAULT_INPUT_SHAPE,
  GRAD_CAM_LAYER,
  MIN_INPUT_SIZE,
  PREPROCESS_MODE,
  gradCamLayerName,
  isArchitecture,
  parseArchitecture,
  type Architecture,
  type InputShape,
  type LayerSummary,
  type ModelSpec,
  type ModelSummary,
  type PreprocessMode,
} from './types.ts';
