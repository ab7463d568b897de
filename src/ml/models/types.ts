/**
 * Names, specs and per-architecture constants of the four classifiers. Everything another module needs
 * to know about an architecture without building it lives here (Grad-CAM target layer, Keras
 * `preprocess_input` mode, smallest input size, default input shape).
 * @module
 */
import { MlError } from '../errors.ts';

/** The architectures the service trains and compares, in report order. */
export const ARCHITECTURES = ['cnn', 'vgg16', 'resnet50', 'inceptionv3'] as const;

/** One of {@link ARCHITECTURES}. */
export type Architecture = (typeof ARCHITECTURES)[number];

/** Image height, width and channel count (channels last), in pixels. */
export type InputShape = readonly [height: number, width: number, channels: number];

/** What to build. Validated by `buildModel`; optional fields have the defaults documented here. */
export interface ModelSpec {
  architecture: Architecture;
  /** `[height, width, channels]`; height and width at least `MIN_INPUT_SIZE[architecture]`. */
  inputShape: InputShape;
  /** Number of output classes, at least 2 (softmax output). */
  numClasses: number;
  /**
   * `true`: the original Keras-applications top (VGG16: flatten, fc1, fc2, predictions; ResNet50 and
   * InceptionV3: avg_pool, predictions; CNN: flatten, fc1 (128, ReLU), dropout, predictions).
   * Default `false`: global average pooling, dropout and a dense softmax named `predictions`.
   */
  includeTop?: boolean;
  /** Dropout rate of the head in [0, 1); 0 leaves the dropout layer out. Default {@link DEFAULT_DROPOUT}. */
  dropout?: number;
  /**
   * Seed of the weight initialisers (each layer derives its own from this and its name), so two
   * builds with the same seed have identical weights. Default: unseeded (tfjs's own randomness).
   */
  seed?: number;
  /**
   * Momentum of every batch-normalisation layer's moving statistics. Default
   * {@link DEFAULT_BN_MOMENTUM} (0.9), not Keras's 0.99: see there.
   */
  bnMomentum?: number;
  /** CNN only: filters of each conv-BN-ReLU-pool block. Default {@link DEFAULT_CNN_FILTERS}. */
  cnnFilters?: readonly number[];
}

/** Parameter counts and per-layer facts of a built model (what `fracture-service summary` prints). */
export interface ModelSummary {
  /** The architecture the model was built as, or `null` for a model not built by `buildModel`. */
  architecture: Architecture | null;
  /** All weights, trainable or not (Keras's "Total params"). */
  params: number;
  /** Weights the optimiser updates (BN moving statistics and frozen layers excluded). */
  trainableParams: number;
  layers: LayerSummary[];
}

export interface LayerSummary {
  name: string;
  /** tfjs class name, e.g. `Conv2D`. */
  type: string;
  /** With `null` for the batch dimension, e.g. `[null, 7, 7, 2048]`. */
  outputShape: (number | null)[] | (number | null)[][];
  params: number;
}

/** Keras `preprocess_input` mode: `caffe` = BGR minus ImageNet means, `tf` = [-1, 1], `unit` = [0, 1]. */
export type PreprocessMode = 'caffe' | 'tf' | 'unit';

/**
 * Head dropout when the spec gives none. 0.5 is the usual rate for a small-data classifier head on a
 * pooled feature vector (the seed CNN used it too); lower it when fine-tuning a pretrained backbone.
 */
export const DEFAULT_DROPOUT = 0.5;

/** The seed project's CNN: three conv-BN-ReLU-maxpool blocks. */
export const DEFAULT_CNN_FILTERS: readonly number[] = [32, 64, 128];

/**
 * Layer whose output Grad-CAM explains: the last convolutional block of each backbone. For the CNN
 * with a non-default `cnnFilters` use `gradCamLayerName(spec)`.
 */
export const GRAD_CAM_LAYER: Readonly<Record<Architecture, string>> = {
  cnn: `block${DEFAULT_CNN_FILTERS.length}_relu`,
  vgg16: 'block5_conv3',
  resnet50: 'conv5_block3_out',
  inceptionv3: 'mixed10',
};

/** Keras `preprocess_input` of each architecture (the CNN takes pixels scaled to [0, 1]). */
export const PREPROCESS_MODE: Readonly<Record<Architecture, PreprocessMode>> = {
  cnn: 'unit',
  vgg16: 'caffe',
  resnet50: 'caffe',
  inceptionv3: 'tf',
};

/**
 * Smallest height and width (pixels) each topology accepts: below it a stride or valid-padding stage
 * would produce an empty feature map. Same limits as Keras applications.
 */
export const MIN_INPUT_SIZE: Readonly<Record<Architecture, number>> = {
  cnn: 32,
  vgg16: 32,
  resnet50: 32,
  inceptionv3: 75,
};

/** The input shape each architecture was designed for (ImageNet weights expect it). */
export const DEFAULT_INPUT_SHAPE: Readonly<Record<Architecture, InputShape>> = {
  cnn: [224, 224, 3],
  vgg16: [224, 224, 3],
  resnet50: [224, 224, 3],
  inceptionv3: [299, 299, 3],
};

/** True when `value` names an architecture. */
export function isArchitecture(value: unknown): value is Architecture {
  return typeof value === 'string' && (ARCHITECTURES as readonly string[]).includes(value);
}

/**
 * Parses an architecture name (case-insensitive, surrounding blanks ignored).
 * @throws MlError `ARCHITECTURE_UNKNOWN` listing the valid names.
 * @example
 * parseArchitecture('ResNet50'); // 'resnet50'
 */
export function parseArchitecture(value: string): Architecture {
  const name = value.trim().toLowerCase();
  if (isArchitecture(name)) return name;
  throw new MlError(
    'ARCHITECTURE_UNKNOWN',
    `Unknown architecture "${value}"; expected one of: ${ARCHITECTURES.join(', ')}.`,
  );
}

/** Name of the Grad-CAM target layer of the model `spec` describes. */
export function gradCamLayerName(spec: Pick<ModelSpec, 'architecture' | 'cnnFilters'>): string {
  if (spec.architecture === 'cnn') {
    return `block${(spec.cnnFilters ?? DEFAULT_CNN_FILTERS).length}_relu`;
  }
  return GRAD_CAM_LAYER[spec.architecture];
}

/**
 * Batch-norm momentum of the moving statistics (PyTorch's 0.1 in its convention). Keras uses 0.99,
 * which needs several hundred steps to forget the initial statistics (0.99^300 = 0.05): on the small
 * hospital datasets and short runs this tool is for (a few hundred images, tens of steps), inference
 * with 0.99 used stale statistics and a CNN that reached 71% training accuracy on xray-binary scored
 * chance (50%) on validation. 0.9 forgets them within ~30 steps. It changes no weight or name, so
 * Keras weights still load; pass `bnMomentum: 0.99` for Keras's exact training behaviour.
 */
export const DEFAULT_BN_MOMENTUM = 0.9;
