/**
 * Which engine runs a model (`INFERENCE_ENGINE`): `auto` runs ONNX Runtime when the model directory
 * has `model.onnx` and `onnxruntime-node` loads, and tfjs otherwise (models trained before ONNX export,
 * machines without the runtime); `onnx` requires ONNX Runtime; `tfjs` never uses it. The choice is
 * made per model, so one process can serve an old model on tfjs beside a new one on ONNX Runtime.
 * @module
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathExists } from '../infra/fs.ts';
import { isMlError } from '../ml/errors.ts';
import { ONNX_MODEL_FILE } from '../ml/export/index.ts';
import { METADATA_FILE, parseMetadata, resolveModelDir } from '../ml/persist/index.ts';
import type { EngineModel, InferenceEngine } from './inference-engine.ts';
import { OnnxEngine, type OnnxEngineOptions } from './onnx-engine.ts';
import { loadOnnxRuntime, type OnnxRuntimeLoader } from './onnx-runtime.ts';
import { TfjsEngine } from './tfjs-engine.ts';

/** The values of `INFERENCE_ENGINE`. */
export const INFERENCE_ENGINE_MODES = ['auto', 'onnx', 'tfjs'] as const;
export type InferenceEngineMode = (typeof INFERENCE_ENGINE_MODES)[number];

/** The engine a model runs on, and under `auto` why it is tfjs. */
export interface EngineChoice {
  engine: 'onnx' | 'tfjs';
  /** Why tfjs was chosen under `auto` (e.g. the model has no `model.onnx`); absent otherwise. */
  reason?: string;
}

export interface EngineSelectorOptions {
  /** `INFERENCE_ENGINE`; default `auto`. */
  mode?: InferenceEngineMode;
  /** Check model files against `metadata.json` before loading (both engines). Default `true`. */
  verify?: boolean;
  /** ONNX Runtime threads per forward pass; default the machine's cores. */
  intraOpNumThreads?: number;
  /** How `onnxruntime-node` is loaded; default {@link loadOnnxRuntime} (tests inject a failing one). */
  loadRuntime?: OnnxRuntimeLoader;
}

/**
 * An {@link InferenceEngine} that loads each model with the engine `mode` picks for it; the models
 * it returns name their engine (`EngineModel.engine`) and, under `auto` on tfjs, why (`engineReason`).
 * @example
 * const engine = new EngineSelector({ mode: config.INFERENCE_ENGINE });
 * const model = await engine.load('data/models/m1');
 * model.engine; // 'onnx' when data/models/m1/model.onnx exists and onnxruntime-node loads
 */
export class EngineSelector implements InferenceEngine {
  /** The mode (`auto`, `onnx`, `tfjs`): what `/readyz` shows before a model is loaded. */
  readonly name: InferenceEngineMode;
  readonly #loadRuntime: OnnxRuntimeLoader;
  readonly #tfjs: TfjsEngine;
  readonly #onnx: OnnxEngine;

  constructor(options: EngineSelectorOptions = {}) {
    this.name = options.mode ?? 'auto';
    if (!INFERENCE_ENGINE_MODES.includes(this.name)) {
      throw new RangeError(`mode must be one of ${INFERENCE_ENGINE_MODES.join(', ')}, got ${String(this.name)}`);
    }
    this.#loadRuntime = options.loadRuntime ?? loadOnnxRuntime;
    const verify = options.verify ?? true;
    this.#tfjs = new TfjsEngine({ verify });
    const onnxOptions: OnnxEngineOptions = { verify, loadRuntime: this.#loadRuntime };
    if (options.intraOpNumThreads !== undefined) onnxOptions.intraOpNumThreads = options.intraOpNumThreads;
    this.#onnx = new OnnxEngine(onnxOptions);
  }

  /** Threads per ONNX Runtime forward pass of the models it loads on ONNX Runtime. */
  get intraOpNumThreads(): number {
    return this.#onnx.intraOpNumThreads;
  }

  /**
   * The engine `mode` picks for the model in `modelDir`, without loading it (cheap: a file check and,
   * once per process, importing the runtime). Under `onnx` it is always ONNX Runtime; `load` then
   * fails when the file or the runtime is missing.
   */
  async choose(modelDir: string): Promise<EngineChoice> {
    if (this.name === 'tfjs') return { engine: 'tfjs' };
    if (this.name === 'onnx') return { engine: 'onnx' };
    if (!(await listsOnnxFile(modelDir))) {
      return { engine: 'tfjs', reason: `the model has no ${ONNX_MODEL_FILE} listed in its ${METADATA_FILE} (saved before ONNX export)` };
    }
    const probe = await this.#loadRuntime();
    return probe.ok ? { engine: 'onnx' } : { engine: 'tfjs', reason: probe.reason };
  }

  /**
   * Loads the model with the chosen engine. Under `auto`, a `model.onnx` that ONNX Runtime refuses
   * (an operator it lacks, a damaged file) falls back to tfjs, which checks every file again; the
   * model's `engineReason` says why.
   * @throws MlError as the engine's `load`; under `onnx`, `MODEL_NOT_FOUND` without `model.onnx` and
   *   `BACKEND_UNAVAILABLE` without the runtime
   */
  async load(modelDir: string): Promise<EngineModel> {
    const choice = await this.choose(modelDir);
    if (choice.engine === 'tfjs') return tagged(await this.#tfjs.load(modelDir), 'tfjs', choice.reason);
    if (this.name === 'onnx') return this.#onnx.load(modelDir);
    try {
      return await this.#onnx.load(modelDir);
    } catch (error) {
      // A missing directory is missing for tfjs too: say so directly rather than loading twice.
      if (isMlError(error, 'MODEL_NOT_FOUND') && !(await pathExists(modelDir))) throw error;
      const reason = `ONNX Runtime could not load the model: ${error instanceof Error ? error.message : String(error)}`;
      return tagged(await this.#tfjs.load(modelDir), 'tfjs', reason);
    }
  }
}

/** `model` naming the engine that runs it (and why), without changing what it does. */
function tagged(model: EngineModel, engine: string, note: string | undefined): EngineModel {
  const explain = model.explain?.bind(model);
  return {
    info: model.info,
    engine,
    ...(note === undefined ? {} : { engineReason: note }),
    predict: (batch, count) => model.predict(batch, count),
    ...(explain ? { explain } : {}),
    dispose: () => model.dispose(),
  };
}

/**
 * True when the model directory has `model.onnx` and its `metadata.json` lists it (with a hash): an
 * unlisted file is one nobody evaluated, which OnnxEngine refuses anyway. A directory that cannot be
 * read answers false; loading then says what is wrong.
 */
async function listsOnnxFile(modelDir: string): Promise<boolean> {
  try {
    const dir = await resolveModelDir(modelDir);
    if (!(await pathExists(path.join(dir, ONNX_MODEL_FILE)))) return false;
    const metadata = parseMetadata(await readFile(path.join(dir, METADATA_FILE), 'utf8'), dir);
    return ONNX_MODEL_FILE in metadata.files;
  } catch {
    return false;
  }
}
