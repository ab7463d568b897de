/**
 * The ONNX Runtime {@link InferenceEngine}: runs the `model.onnx` that `saveModel(..., { onnx: true })`
 * writes beside the tfjs files, with `onnxruntime-node` on the CPU. The graph takes the same
 * preprocessed NHWC input as the tfjs model (`src/ml/export`), so decoding and normalising stay in
 * `src/ml/data` and the probabilities match tfjs's. ONNX Runtime has no gradients: Grad-CAM loads the
 * same directory with {@link TfjsEngine} the first time it is asked for, and delegates to it.
 * @module
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathExists } from '../infra/fs.ts';
import { imageOptionsFromRecord } from '../ml/data/index.ts';
import { MlError } from '../ml/errors.ts';
import { ONNX_INPUT_NAME, ONNX_MODEL_FILE, ONNX_OUTPUT_NAME } from '../ml/export/index.ts';
import { METADATA_FILE, parseMetadata, resolveModelDir, sha256, verifyModelFiles, type ModelMetadata } from '../ml/persist/index.ts';
import type { ClassActivationMap, EngineModel, EngineModelInfo, InferenceEngine } from './inference-engine.ts';
import { loadOnnxRuntime, type OnnxRuntime, type OnnxRuntimeLoader } from './onnx-runtime.ts';
import { TfjsEngine } from './tfjs-engine.ts';

export interface OnnxEngineOptions {
  /**
   * Check every model file against the sha256 in `metadata.json` before loading. Default `true`:
   * a served model must be the one that was evaluated.
   */
  verify?: boolean;
  /** Threads one forward pass uses. Default: the machine's cores (`os.availableParallelism()`). */
  intraOpNumThreads?: number;
  /** Operators run in parallel. Default 1: our graphs are a chain, parallelism lives inside operators. */
  interOpNumThreads?: number;
  /** How the runtime is loaded; default {@link loadOnnxRuntime} (tests inject a failing one). */
  loadRuntime?: OnnxRuntimeLoader;
}

/**
 * Loads `model.onnx` of a saved model directory into an ONNX Runtime session.
 * @example
 * const engine = new OnnxEngine();
 * const model = await engine.load('data/models/m1');
 * const probs = await model.predict(inputs, 2); // 2 x classes
 * model.dispose();
 */
export class OnnxEngine implements InferenceEngine {
  readonly name = 'onnx';
  readonly #verify: boolean;
  readonly #intraOpNumThreads: number;
  readonly #interOpNumThreads: number;
  readonly #loadRuntime: OnnxRuntimeLoader;

  constructor(options: OnnxEngineOptions = {}) {
    this.#verify = options.verify ?? true;
    this.#intraOpNumThreads = threadCount('intraOpNumThreads', options.intraOpNumThreads ?? os.availableParallelism());
    this.#interOpNumThreads = threadCount('interOpNumThreads', options.interOpNumThreads ?? 1);
    this.#loadRuntime = options.loadRuntime ?? loadOnnxRuntime;
  }

  /** Threads per forward pass the sessions get. */
  get intraOpNumThreads(): number {
    return this.#intraOpNumThreads;
  }

  /**
   * Loads the model saved in `modelDir` (or the intact previous copy a crashed save left beside it).
   * @throws MlError `MODEL_NOT_FOUND` when there is no such directory; `BACKEND_UNAVAILABLE` when it
   *   has no `model.onnx` (a model saved before ONNX export: this engine cannot serve it) or
   *   `onnxruntime-node` does not load; `MODEL_CORRUPT` when a file's sha256 differs from
   *   `metadata.json`, `model.onnx` is not listed there, its preprocessing record is invalid, or ONNX
   *   Runtime cannot load it
   */
  async load(modelDir: string): Promise<EngineModel> {
    const dir = await resolveModelDir(modelDir);
    const onnxPath = path.join(dir, ONNX_MODEL_FILE);
    if (!(await pathExists(onnxPath))) {
      // The model exists (tfjs serves it); this engine cannot: a server setting, not the caller's error.
      throw new MlError('BACKEND_UNAVAILABLE', `${dir}: no ${ONNX_MODEL_FILE} (the model was saved without ONNX export); serve it with tfjs or export it.`);
    }
    const probe = await this.#loadRuntime();
    if (!probe.ok) throw new MlError('BACKEND_UNAVAILABLE', probe.reason);

    let metadata: ModelMetadata;
    if (this.#verify) {
      metadata = await verifyModelFiles(dir);
      // verifyModelFiles checks what is listed; an unlisted model.onnx is one nobody evaluated.
      if (!(ONNX_MODEL_FILE in metadata.files)) {
        throw new MlError('MODEL_CORRUPT', `${dir}: ${ONNX_MODEL_FILE} is not listed in ${METADATA_FILE}.`);
      }
    } else {
      metadata = parseMetadata(await readFile(path.join(dir, METADATA_FILE), 'utf8').catch((cause: unknown) => {
        throw new MlError('MODEL_CORRUPT', `${dir}: ${METADATA_FILE} is unreadable.`, { cause });
      }), dir);
    }

    // Everything that can fail without a session first, so a failure never leaves one behind.
    const info = modelInfo(metadata, dir);
    // The bytes are hashed again and handed to the runtime as they are, so the file checked is the
    // file run (a swap after verifyModelFiles is caught).
    const bytes = await readFile(onnxPath);
    const expected = metadata.files[ONNX_MODEL_FILE];
    if (this.#verify && sha256(bytes) !== expected) {
      throw new MlError('MODEL_CORRUPT', `${dir}: ${ONNX_MODEL_FILE} has sha256 ${sha256(bytes)}, expected ${String(expected)}.`);
    }
    const session = await createSession(probe.runtime, bytes, {
      intraOpNumThreads: this.#intraOpNumThreads,
      interOpNumThreads: this.#interOpNumThreads,
    }).catch((cause: unknown) => {
      throw new MlError('MODEL_CORRUPT', `${dir}: ONNX Runtime could not load ${ONNX_MODEL_FILE}: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    });
    if (!session.inputNames.includes(ONNX_INPUT_NAME) || !session.outputNames.includes(ONNX_OUTPUT_NAME)) {
      void session.release().catch(() => undefined);
      throw new MlError(
        'MODEL_CORRUPT',
        `${dir}: ${ONNX_MODEL_FILE} has inputs [${session.inputNames.join(', ')}] and outputs [${session.outputNames.join(', ')}], ` +
          `expected "${ONNX_INPUT_NAME}" and "${ONNX_OUTPUT_NAME}".`,
      );
    }
    return new OnnxModel(probe.runtime, session, info, dir, () => new TfjsEngine({ verify: this.#verify }));
  }
}

/**
 * What serving needs to know, built as TfjsEngine builds it (modelImageOptions reads the same record),
 * so both engines preprocess alike.
 * @throws MlError `MODEL_CORRUPT` for a preprocessing record that does not describe an input
 */
function modelInfo(metadata: ModelMetadata, dir: string): EngineModelInfo {
  const { architecture, classNames, positiveClasses } = metadata;
  let imageOptions: EngineModelInfo['imageOptions'];
  try {
    imageOptions = imageOptionsFromRecord(metadata.preprocessing);
  } catch (cause) {
    throw new MlError('MODEL_CORRUPT', `${dir}: the preprocessing record of ${METADATA_FILE} is invalid.`, { cause });
  }
  return Object.freeze({
    architecture,
    classNames: Object.freeze([...classNames]),
    positiveClasses: Object.freeze([...positiveClasses]),
    imageOptions,
  });
}

type Session = Awaited<ReturnType<OnnxRuntime['InferenceSession']['create']>>;

function createSession(runtime: OnnxRuntime, file: Uint8Array, threads: { intraOpNumThreads: number; interOpNumThreads: number }): Promise<Session> {
  return runtime.InferenceSession.create(file, {
    ...threads,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  });
}

class OnnxModel implements EngineModel {
  readonly engine = 'onnx';
  readonly info: EngineModelInfo;
  readonly #runtime: OnnxRuntime;
  readonly #session: Session;
  readonly #dir: string;
  readonly #createTfjsEngine: () => InferenceEngine;
  /** The same directory loaded with tfjs, for Grad-CAM only; loaded on the first `explain`. */
  #tfjs: Promise<EngineModel> | undefined;
  #disposed = false;

  constructor(runtime: OnnxRuntime, session: Session, info: EngineModelInfo, dir: string, createTfjsEngine: () => InferenceEngine) {
    this.#runtime = runtime;
    this.#session = session;
    this.info = info;
    this.#dir = dir;
    this.#createTfjsEngine = createTfjsEngine;
  }

  async predict(batch: Float32Array, count: number): Promise<Float32Array> {
    if (this.#disposed) throw new Error('the model has been disposed');
    const { height, width, channels } = this.info.imageOptions;
    if (!Number.isInteger(count) || count < 1 || batch.length !== count * height * width * channels) {
      throw new RangeError(`expected ${count} inputs of ${height}x${width}x${channels} values, got ${batch.length} values`);
    }
    const input = new this.#runtime.Tensor('float32', batch, [count, height, width, channels]);
    const outputs = await this.#session.run({ [ONNX_INPUT_NAME]: input });
    const probabilities = outputs[ONNX_OUTPUT_NAME];
    const classes = this.info.classNames.length;
    if (probabilities?.type !== 'float32' || probabilities.data.length !== count * classes) {
      throw new Error(`${ONNX_MODEL_FILE} answered ${probabilities?.type ?? 'nothing'} [${probabilities?.dims.join(', ') ?? ''}] for ${count} x ${classes} probabilities`);
    }
    return probabilities.data as Float32Array;
  }

  async explain(input: Float32Array, classIndex: number): Promise<ClassActivationMap> {
    if (this.#disposed) throw new Error('the model has been disposed');
    const tfjs = await this.#tfjsModel();
    if (!tfjs.explain) throw new Error('the tfjs engine cannot explain predictions');
    return tfjs.explain(input, classIndex);
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    // ModelPool disposes a model only once no lease holds it, so no run is in flight here.
    void this.#session.release().catch(() => undefined);
    void this.#tfjs?.then((model) => model.dispose(), () => undefined);
  }

  #tfjsModel(): Promise<EngineModel> {
    if (this.#tfjs === undefined) {
      const loading = this.#createTfjsEngine().load(this.#dir);
      this.#tfjs = loading;
      // A failed load is not kept: the next explanation tries again.
      loading.catch(() => {
        if (this.#tfjs === loading) this.#tfjs = undefined;
      });
    }
    return this.#tfjs.then((model) => {
      // Disposed while tfjs was loading: dispose() saw the promise, so it frees the model.
      if (this.#disposed) throw new Error('the model has been disposed');
      return model;
    });
  }
}


function threadCount(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  return value;
}
