/**
 * The TensorFlow.js {@link InferenceEngine}: models saved by `src/ml/persist`, run on whichever tfjs
 * backend the process started (`initBackend`), with Grad-CAM from `src/ml/explain`.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { gradCam } from '../ml/explain/index.ts';
import { modelImageOptions } from '../ml/inference/index.ts';
import { GRAD_CAM_LAYER, isArchitecture } from '../ml/models/index.ts';
import { loadModel, type LoadedModel } from '../ml/persist/index.ts';
import type { ClassActivationMap, EngineModel, EngineModelInfo, InferenceEngine } from './inference-engine.ts';

export interface TfjsEngineOptions {
  /**
   * Check every model file against the sha256 in `metadata.json` before loading. Default `true`:
   * a served model must be the one that was evaluated.
   */
  verify?: boolean;
}

/**
 * Loads models with `loadModel` and runs them on the current tfjs backend.
 * @example
 * const engine = new TfjsEngine();
 * const model = await engine.load('data/models/m1');
 * const probs = await model.predict(inputs, 2); // 2 x classes
 * model.dispose();
 */
export class TfjsEngine implements InferenceEngine {
  readonly name = 'tfjs';
  readonly #verify: boolean;

  constructor(options: TfjsEngineOptions = {}) {
    this.#verify = options.verify ?? true;
  }

  async load(modelDir: string): Promise<EngineModel> {
    return new TfjsModel(await loadModel(modelDir, { verify: this.#verify }));
  }
}

class TfjsModel implements EngineModel {
  readonly info: EngineModelInfo;
  readonly #loaded: LoadedModel;
  #disposed = false;

  constructor(loaded: LoadedModel) {
    this.#loaded = loaded;
    const { architecture, classNames, positiveClasses } = loaded.metadata;
    this.info = Object.freeze({
      architecture,
      classNames: Object.freeze([...classNames]),
      positiveClasses: Object.freeze([...positiveClasses]),
      imageOptions: modelImageOptions(loaded),
    });
  }

  async predict(batch: Float32Array, count: number): Promise<Float32Array> {
    const x = this.#input(batch, count);
    const probabilities = tf.tidy(() => this.#loaded.model.predict(x) as tf.Tensor2D);
    x.dispose();
    try {
      return (await probabilities.data()) as Float32Array;
    } finally {
      probabilities.dispose();
    }
  }

  async explain(input: Float32Array, classIndex: number): Promise<ClassActivationMap> {
    const x = this.#input(input, 1);
    try {
      const { architecture } = this.info;
      const cam = await gradCam(this.#loaded.model, x, {
        classIndex,
        // The CNN's block count is configurable, so gradCam finds its last block from the graph.
        ...(isArchitecture(architecture) && architecture !== 'cnn' ? { layerName: GRAD_CAM_LAYER[architecture] } : {}),
      });
      return { heatmap: cam.heatmap, width: cam.width, height: cam.height, classIndex: cam.classIndex };
    } finally {
      x.dispose();
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#loaded.model.dispose();
  }

  #input(values: Float32Array, count: number): tf.Tensor4D {
    if (this.#disposed) throw new Error('the model has been disposed');
    const { height, width, channels } = this.info.imageOptions;
    return tf.tensor4d(values, [count, height, width, channels]);
  }
}
