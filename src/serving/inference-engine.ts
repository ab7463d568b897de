/**
 * The seam between serving and whatever runs the network (DESIGN section 4): tfjs or ONNX Runtime,
 * chosen per model by `engine-selector.ts`. An engine only turns a saved model directory into something that maps a
 * batch of preprocessed inputs to class probabilities. Decoding, resizing and normalising
 * (`src/ml/data`), batching, turning probabilities into labels and drawing heat-maps all happen
 * outside it, so a second engine reuses them unchanged.
 * @module
 */
import type { ImageOptions } from '../ml/data/index.ts';

/** What serving needs to know about a loaded model, read from its `metadata.json`. */
export interface EngineModelInfo {
  /** e.g. `cnn`, `vgg16`, `resnet50`, `inceptionv3`. */
  readonly architecture: string;
  /** Class names in output order: column `i` of `predict`'s rows is `classNames[i]`. */
  readonly classNames: readonly string[];
  /** The fracture-positive subset of `classNames` (may be empty). */
  readonly positiveClasses: readonly string[];
  /** How an image becomes one input (size, channels, normalisation), as the model was trained. */
  readonly imageOptions: ImageOptions;
}

/** A Grad-CAM map: row-major `height x width` values in [0, 1] over a feature map (not the image). */
export interface ClassActivationMap {
  readonly heatmap: Float32Array;
  readonly width: number;
  readonly height: number;
  /** The class explained (an output index). */
  readonly classIndex: number;
}

/** A model loaded by an engine. Owned by whoever loaded it: call `dispose()` once done. */
export interface EngineModel {
  readonly info: EngineModelInfo;
  /**
   * The engine that runs this model, e.g. `onnx` or `tfjs`; absent means the loading engine's
   * `name` (see {@link engineOf}). A selecting engine loads each model with the engine that fits it.
   */
  readonly engine?: string;
  /** Why `engine` runs it when another was preferred, e.g. `the model has no model.onnx` under `auto`. */
  readonly engineReason?: string;
  /**
   * Runs one forward pass.
   * @param batch `count` inputs back to back, each `height * width * channels` float32 values in HWC
   *   order, preprocessed as `info.imageOptions` says (an `[N, H, W, C]` tensor's data)
   * @param count number of inputs in `batch` (at least 1)
   * @returns `count x classNames.length` probabilities, row-major
   */
  predict(batch: Float32Array, count: number): Promise<Float32Array>;
  /**
   * Grad-CAM of one preprocessed input for `classIndex`. Optional: an engine without gradients leaves
   * it out, and explanations are then refused (the ONNX engine delegates to tfjs instead).
   * @param input one input, `height * width * channels` values as for `predict`
   */
  explain?(input: Float32Array, classIndex: number): Promise<ClassActivationMap>;
  /** Frees the model's memory (tensors, sessions). Idempotent. */
  dispose(): void;
}

/** Loads models saved in a directory (`model.json` + weights + `metadata.json`, and maybe `model.onnx`). */
export interface InferenceEngine {
  /**
   * Shown by `/readyz` and logs, e.g. `tfjs`, `onnx`, or the mode of a selecting engine (`auto`) until
   * a model is loaded.
   */
  readonly name: 'tfjs' | 'onnx' | (string & {});
  /**
   * Loads the model saved in `modelDir`.
   * @throws MlError `MODEL_NOT_FOUND` / `MODEL_CORRUPT` (mapped to AppErrors by `toAppError`)
   */
  load(modelDir: string): Promise<EngineModel>;
}

/** The name of the engine running `model`, loaded by `loader`. */
export function engineOf(model: EngineModel, loader: InferenceEngine): string {
  return model.engine ?? loader.name;
}

/** Values per input of a model: `height * width * channels`. */
export function inputSize(info: EngineModelInfo): number {
  const { height, width, channels } = info.imageOptions;
  return height * width * channels;
}

/**
 * Runs one forward pass on an all-zero input, so the first real request does not pay for kernel
 * compilation, weight uploads or lazy allocations. Checks the output shape on the way.
 * @throws Error when the model answers with the wrong number of values
 */
export async function warmUpModel(model: EngineModel): Promise<void> {
  const out = await model.predict(new Float32Array(inputSize(model.info)), 1);
  if (out.length !== model.info.classNames.length) {
    throw new Error(`warm-up returned ${out.length} values for ${model.info.classNames.length} classes`);
  }
}
