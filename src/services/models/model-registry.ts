/**
 * The model registry: trained models under `DATA_DIR/models/{modelId}/` (TensorFlow.js files and
 * `metadata.json`, hard links into the experiment that trained them, plus `registry.json`), their
 * aliases in `DATA_DIR/models/aliases.json`, and which of their files may be served.
 *
 * The files on disk are the source of truth: nothing is cached but the servable-file list of each
 * model, keyed by `model.json`'s identity on disk. Registered models are never rewritten: a model id
 * names one set of bytes, which {@link ModelView.version} fingerprints.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { LRUCache } from 'lru-cache';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import { AppError } from '../../infra/errors.ts';
import { isMlError } from '../../ml/errors.ts';
import type { ExperimentReport } from '../../ml/experiment/index.ts';
import { isArchitecture, type Architecture } from '../../ml/models/index.ts';
import { ONNX_MODEL_FILE } from '../../ml/export/index.ts';
import {
  METADATA_FILE,
  MODEL_JSON_FILE,
  fsyncPath,
  isPlainFileName,
  parseMetadata,
  parseModelJson,
  verifyModelFiles,
  weightFileNames,
  writeFileDurable,
  type ModelMetadata,
} from '../../ml/persist/index.ts';
import { AliasStore, type AliasMap } from './alias-store.ts';
import type { FileLockOptions } from '../../infra/file-lock.ts';
import { linkOrCopy } from './link-files.ts';
import {
  ALIAS_PATTERN,
  DEFAULT_ALIAS,
  REGISTRY_FILE,
  REGISTRY_SCHEMA_VERSION,
  modelIdFor,
  summariseMetrics,
  type ModelView,
  type RegistryRecord,
  type ResolvedModel,
} from './model.types.ts';
import { canonicalJson } from '../../infra/canonical-json.ts';

/** Options of {@link ModelRegistry}. */
export interface ModelRegistryOptions {
  /** Lock timeouts for alias changes (defaults of `withFileLock`: 30 s stale, 10 s wait). */
  lockOptions?: FileLockOptions;
}

/** Options of {@link ModelRegistry.registerFromExperiment}. */
export interface RegisterOptions {
  /**
   * Id of the dataset the experiment trained on, recorded in `registry.json`. Default: the name of
   * the report's dataset folder when it lies directly in `DATA_DIR/datasets/`, else none.
   */
  datasetId?: string;
}

/** Infixes of sibling directories that writers create and readers must never take for models. */
const WORK_DIR_INFIX = /\.(tmp|old)-/;

/** A model found on disk. */
interface FoundModel {
  id: string;
  dir: string;
  metadata: ModelMetadata;
  architecture: Architecture;
}

/** Models and aliases of one data directory. */
export class ModelRegistry {
  readonly #store: ArtifactStore;
  readonly #aliases: AliasStore;
  /** Servable files per model, keyed by model id; valid while `model.json` is the same file. */
  readonly #files = new LRUCache<string, { key: string; files: string[] }>({ max: 1_000 });

  constructor(store: ArtifactStore, options: ModelRegistryOptions = {}) {
    this.#store = store;
    this.#aliases = new AliasStore(store, options.lockOptions);
  }

  /**
   * Registers every model an experiment saved, as `${experimentId}-${architecture}`: its files are
   * hard-linked (copied across file systems) from `experimentDir/<result.modelDir>/` into
   * `models/{modelId}/`, with a `registry.json`, and the directory appears in one rename, complete.
   * Idempotent: a model already registered from this experiment is left as it is, also when two
   * processes register the same experiment at once.
   *
   * @param experimentDir The experiment's output directory (the `outDir` of `runExperiment`).
   * @returns The model ids, in the order of `report.results`.
   * @throws AppError `VALIDATION_FAILED` for an unsafe experiment id or a model directory outside
   *   `experimentDir`; `MODEL_CORRUPT` when a saved model fails its sha256 check.
   * @example
   * const ids = await registry.registerFromExperiment('exp1', report, store.experimentDir('exp1'));
   * // ['exp1-cnn', 'exp1-resnet50']
   */
  async registerFromExperiment(
    experimentId: string,
    report: ExperimentReport,
    experimentDir: string,
    options: RegisterOptions = {},
  ): Promise<string[]> {
    if (!isSafeId(experimentId)) throw new AppError('VALIDATION_FAILED', 'the experiment id is not a valid id');
    const datasetId = options.datasetId ?? this.#datasetIdOf(report);
    const ids: string[] = [];
    for (const result of report.results) {
      const modelId = modelIdFor(experimentId, result.architecture);
      if (!isModelId(modelId)) throw new AppError('VALIDATION_FAILED', `"${modelId}" is not a valid model id`);
      const source = path.resolve(experimentDir, result.modelDir);
      const relative = path.relative(path.resolve(experimentDir), source);
      if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
        throw new AppError('VALIDATION_FAILED', `the ${result.architecture} model directory of the report lies outside the experiment`);
      }
      const record: RegistryRecord = {
        schemaVersion: REGISTRY_SCHEMA_VERSION,
        modelId,
        architecture: result.architecture,
        experimentId,
        ...(datasetId === undefined ? {} : { datasetId }),
        createdAt: new Date().toISOString(),
        metrics: summariseMetrics(result.metrics),
      };
      await this.#publish(modelId, source, record);
      ids.push(modelId);
    }
    return ids;
  }

  /** Every registered model, newest first; directories that are not valid models are left out. */
  async list(): Promise<ModelView[]> {
    let entries;
    try {
      entries = await readdir(this.#store.modelsDir, { withFileTypes: true });
    } catch (error) {
      if (errnoCode(error) === 'ENOENT') return [];
      throw error;
    }
    const aliases = await this.#aliases.read();
    const views: ModelView[] = [];
    for (const entry of entries) {
      if (!entry.isDirectory() || !isModelId(entry.name)) continue;
      try {
        const found = await this.#read(entry.name);
        if (found !== null) views.push(await this.#view(found, aliases));
      } catch (error) {
        // A damaged model stays out of the list; `get` and `verify` name what is wrong with it.
        if (error instanceof AppError && error.code === 'MODEL_CORRUPT') continue;
        throw error;
      }
    }
    return views.sort((a, b) => (a.createdAt === b.createdAt ? (a.id < b.id ? -1 : 1) : a.createdAt < b.createdAt ? 1 : -1));
  }

  /**
   * One model, by id or alias (an id wins over an alias of the same name).
   * @throws AppError `MODEL_NOT_FOUND`; `MODEL_CORRUPT` when its `metadata.json` or `model.json` is invalid.
   */
  async get(ref: string): Promise<ModelView> {
    const aliases = await this.#aliases.read();
    return this.#view(await this.#find(ref, aliases), aliases);
  }

  /**
   * The model a request names, for serving.
   * @param ref A model id or an alias. Default `production`.
   * @throws AppError `MODEL_NOT_FOUND` (e.g. no model holds the alias "production").
   */
  async resolve(ref: string = DEFAULT_ALIAS): Promise<ResolvedModel> {
    const found = await this.#find(ref, await this.#aliases.read());
    return { id: found.id, architecture: found.architecture, version: versionOf(found.metadata), dir: found.dir };
  }

  /** Every alias and the model id it names, sorted by alias. */
  async aliases(): Promise<AliasMap> {
    return this.#aliases.read();
  }

  /**
   * Points `alias` at `modelId` (moving it if it named another model).
   * @throws AppError `VALIDATION_FAILED` for an alias not matching `^[a-z][a-z0-9-]{0,39}$` or equal to
   *   a model id; `MODEL_NOT_FOUND` when there is no such model.
   */
  async setAlias(alias: string, modelId: string): Promise<void> {
    await this.#checkAliasTarget(alias, modelId);
    await this.#aliases.update((aliases) => {
      aliases[alias] = modelId;
    });
  }

  /**
   * Points `alias` at `modelId` unless it already names an existing model. Safe across processes:
   * when several experiments finish at the same moment, exactly one call returns true.
   * An alias naming a model that no longer exists counts as unset.
   * @returns true when this call set the alias.
   * @throws As {@link setAlias}.
   */
  async promoteIfUnset(alias: string, modelId: string): Promise<boolean> {
    await this.#checkAliasTarget(alias, modelId);
    return this.#aliases.update(async (aliases) => {
      const current = aliases[alias];
      if (current !== undefined && (await this.#exists(current))) return false;
      aliases[alias] = modelId;
      return true;
    });
  }

  /**
   * Absolute path of a file the API may serve: `model.json`, a weight shard its manifest lists,
   * `model.onnx` when `metadata.json` lists it, or `metadata.json`. The name is only ever compared with that list, never joined onto a path unchecked.
   * @param ref A model id or alias.
   * @throws AppError `MODEL_NOT_FOUND`; `MODEL_FILE_NOT_FOUND` for any other name; `MODEL_CORRUPT`
   *   when a listed file is missing.
   */
  async filePath(ref: string, file: string): Promise<string> {
    const found = await this.#find(ref, await this.#aliases.read());
    const files = await this.#servableFiles(found);
    if (typeof file !== 'string' || !isPlainFileName(file) || !files.includes(file)) {
      // The name came from the client: not repeated in the answer.
      throw new AppError('MODEL_FILE_NOT_FOUND', `model "${found.id}" serves only ${MODEL_JSON_FILE}, the weight shards it lists, ${ONNX_MODEL_FILE} when it has one and ${METADATA_FILE}`);
    }
    const full = path.join(found.dir, file);
    const info = await stat(full).catch(ignoreMissing);
    if (info === null || !info.isFile()) throw new AppError('MODEL_CORRUPT', `model "${found.id}": ${file} is missing`);
    return full;
  }

  /**
   * Checks every file of the model against the sha256 in its `metadata.json` (streaming; about a
   * second for VGG16 at 224 px). Used by readiness and before serving a model for the first time.
   * @param ref A model id or alias. Default `production`.
   * @throws AppError `MODEL_NOT_FOUND`; `MODEL_CORRUPT` naming the first bad file.
   */
  async verify(ref: string = DEFAULT_ALIAS): Promise<ResolvedModel> {
    const found = await this.#find(ref, await this.#aliases.read());
    try {
      await verifyModelFiles(found.dir, { label: `model "${found.id}"` });
    } catch (error) {
      throw asModelError(error);
    }
    return { id: found.id, architecture: found.architecture, version: versionOf(found.metadata), dir: found.dir };
  }

  /** Hard-links the model at `source` into `models/{modelId}/` unless it is registered already. */
  async #publish(modelId: string, source: string, record: RegistryRecord): Promise<void> {
    const target = this.#store.modelDir(modelId);
    if (await this.#alreadyRegistered(target, record)) return;
    // Never register damaged files: every later reader would trust them.
    let metadata: ModelMetadata;
    try {
      metadata = await verifyModelFiles(source, { label: `the ${record.architecture} model of experiment "${record.experimentId}"` });
    } catch (error) {
      throw asModelError(error);
    }
    await mkdir(this.#store.modelsDir, { recursive: true });
    const temp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
    await mkdir(temp);
    try {
      for (const name of [...Object.keys(metadata.files), METADATA_FILE]) {
        await linkOrCopy(path.join(source, name), path.join(temp, name));
      }
      await writeFileDurable(path.join(temp, REGISTRY_FILE), `${JSON.stringify(record, null, 2)}\n`);
      await fsyncPath(temp);
      // Not writeDirAtomically: that swaps out an existing directory, and a registered model must
      // never change under a reader. rename(2) onto a non-empty directory fails, so of two processes
      // registering the same experiment at once, the second finds the first's complete model.
      try {
        await rename(temp, target);
      } catch (error) {
        const code = errnoCode(error);
        if ((code === 'ENOTEMPTY' || code === 'EEXIST') && (await this.#alreadyRegistered(target, record))) return;
        throw error;
      }
      await fsyncPath(this.#store.modelsDir);
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  /**
   * True when `target` holds the model `record` describes; false when there is none.
   * @throws AppError `INTERNAL` when `target` holds a model from elsewhere (never overwritten).
   */
  async #alreadyRegistered(target: string, record: RegistryRecord): Promise<boolean> {
    const info = await stat(target).catch(ignoreMissing);
    if (info === null) return false;
    const existing = await readJsonFile(path.join(target, REGISTRY_FILE));
    if (existing?.experimentId === record.experimentId && existing.architecture === record.architecture) return true;
    throw new AppError('INTERNAL', `model "${record.modelId}" exists and was not registered from experiment "${record.experimentId}"`);
  }

  /** A dataset folder directly in `DATA_DIR/datasets/` is named by its folder. */
  #datasetIdOf(report: ExperimentReport): string | undefined {
    const root = path.resolve(report.dataset.root);
    const name = path.basename(root);
    return path.dirname(root) === this.#store.datasetsDir && isSafeId(name) ? name : undefined;
  }

  /** The model `ref` names: an existing model id, else an alias. */
  async #find(ref: string, aliases: AliasMap): Promise<FoundModel> {
    if (typeof ref !== 'string' || !isSafeId(ref)) throw new AppError('MODEL_NOT_FOUND', 'no model has that id or alias');
    if (isModelId(ref)) {
      const byId = await this.#read(ref);
      if (byId !== null) return byId;
    }
    const aliased = aliases[ref];
    if (aliased === undefined) {
      if (ALIAS_PATTERN.test(ref)) {
        throw new AppError('MODEL_NOT_FOUND', `no model has the id "${ref}" or holds the alias "${ref}"; train one first (POST /v1/experiments) or name one (PUT /v1/models/{id}/aliases/${ref})`);
      }
      throw new AppError('MODEL_NOT_FOUND', `no model has the id "${ref}"`);
    }
    const target = isModelId(aliased) ? await this.#read(aliased) : null;
    if (target === null) throw new AppError('MODEL_NOT_FOUND', `the alias "${ref}" names model "${aliased}", which no longer exists`);
    return target;
  }

  /**
   * The model `id` (a checked model id) with its parsed metadata; null when there is no such directory.
   * @throws AppError `MODEL_CORRUPT` when the directory exists but its `metadata.json` is missing or invalid.
   */
  async #read(id: string): Promise<FoundModel | null> {
    const dir = this.#store.modelDir(id);
    let text: string;
    try {
      text = await readFile(path.join(dir, METADATA_FILE), 'utf8');
    } catch (error) {
      const code = errnoCode(error);
      if (code === 'ENOTDIR') return null;
      if (code !== 'ENOENT') throw error;
      const info = await stat(dir).catch(ignoreMissing);
      if (info === null || !info.isDirectory()) return null;
      throw new AppError('MODEL_CORRUPT', `model "${id}": ${METADATA_FILE} is missing`, { cause: error });
    }
    let metadata: ModelMetadata;
    try {
      metadata = parseMetadata(text, `model "${id}"`);
    } catch (error) {
      throw asModelError(error);
    }
    if (!isArchitecture(metadata.architecture)) {
      throw new AppError('MODEL_CORRUPT', `model "${id}": ${METADATA_FILE} names an unknown architecture`);
    }
    return { id, dir, metadata, architecture: metadata.architecture };
  }

  async #exists(id: string): Promise<boolean> {
    if (!isModelId(id)) return false;
    try {
      return (await this.#read(id)) !== null;
    } catch (error) {
      // A damaged model still exists: an alias to it is set, not free to take.
      if (error instanceof AppError && error.code === 'MODEL_CORRUPT') return true;
      throw error;
    }
  }

  async #checkAliasTarget(alias: string, modelId: string): Promise<void> {
    if (typeof alias !== 'string' || !ALIAS_PATTERN.test(alias)) {
      throw new AppError('VALIDATION_FAILED', 'an alias is 1 to 40 lower-case letters, digits and hyphens, starting with a letter');
    }
    if (!(typeof modelId === 'string' && isModelId(modelId) && (await this.#read(modelId)) !== null)) {
      throw new AppError('MODEL_NOT_FOUND', isSafeId(modelId) ? `no model has the id "${modelId}"` : 'no model has that id');
    }
    if (isModelId(alias) && (await this.#exists(alias))) {
      throw new AppError('VALIDATION_FAILED', `"${alias}" is the id of a model and cannot be an alias`);
    }
  }

  async #view(found: FoundModel, aliases: AliasMap): Promise<ModelView> {
    const { id, metadata } = found;
    const record = await readJsonFile(path.join(found.dir, REGISTRY_FILE));
    const [height, width, channels] = metadata.inputShape;
    const view: ModelView = {
      id,
      architecture: found.architecture,
      classes: [...metadata.classNames],
      positiveClasses: [...metadata.positiveClasses],
      input: { height, width, channels },
      preprocessing: metadata.preprocessing,
      metrics: summariseMetrics(metadata.metrics),
      datasetHash: metadata.datasetHash ?? '',
      createdAt: metadata.createdAt,
      version: versionOf(metadata),
      aliases: Object.keys(aliases).filter((alias) => aliases[alias] === id),
      files: await this.#servableFiles(found),
    };
    if (typeof record?.experimentId === 'string') view.experimentId = record.experimentId;
    return view;
  }

  /**
   * `model.json`, the weight files its manifest lists, `model.onnx` when the model has one (listed
   * and hashed in its metadata, as training writes it), `metadata.json`.
   */
  async #servableFiles(found: FoundModel): Promise<string[]> {
    const file = path.join(found.dir, MODEL_JSON_FILE);
    const info = await stat(file).catch(ignoreMissing);
    if (info === null) throw new AppError('MODEL_CORRUPT', `model "${found.id}": ${MODEL_JSON_FILE} is missing`);
    const key = `${info.ino}:${info.size}:${info.mtimeMs}`;
    const cached = this.#files.get(found.id);
    if (cached?.key === key) return [...cached.files];
    let files: string[];
    try {
      const where = `model "${found.id}"`;
      const weights = weightFileNames(parseModelJson(await readFile(file, 'utf8'), where), where);
      files = [MODEL_JSON_FILE, ...weights.filter((name) => name !== MODEL_JSON_FILE && name !== METADATA_FILE)];
      if (found.metadata.files[ONNX_MODEL_FILE] !== undefined && !files.includes(ONNX_MODEL_FILE)) files.push(ONNX_MODEL_FILE);
      files.push(METADATA_FILE);
    } catch (error) {
      throw asModelError(error);
    }
    this.#files.set(found.id, { key, files });
    return [...files];
  }
}

/**
 * A short fingerprint of what a model computes: the first 12 hex digits of the sha256 over the
 * sorted `name:sha256` lines of `metadata.files` (topology and weights), followed by the class names,
 * fracture-positive classes, input shape and preprocessing, which decide what the same weights mean.
 * Equal versions: same predictions for the same image. `createdAt` and metrics are left out, so
 * re-registering identical files keeps the version.
 */
export function versionOf(metadata: Pick<ModelMetadata, 'files' | 'classNames' | 'positiveClasses' | 'inputShape' | 'preprocessing'>): string {
  const lines = Object.entries(metadata.files)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, hash]) => `${name}:${hash}\n`)
    .join('');
  const meaning = canonicalJson({
    classNames: metadata.classNames,
    positiveClasses: metadata.positiveClasses,
    inputShape: metadata.inputShape,
    preprocessing: metadata.preprocessing,
  });
  return createHash('sha256').update(lines).update(meaning).digest('hex').slice(0, 12);
}

/** A safe id that is not one of the work directories writers leave beside models. */
function isModelId(id: string): boolean {
  return isSafeId(id) && !WORK_DIR_INFIX.test(id);
}

/** ML engine `MODEL_CORRUPT` (whose messages here carry labels, not paths) as the service error. */
function asModelError(error: unknown): unknown {
  if (isMlError(error, 'MODEL_CORRUPT')) return new AppError('MODEL_CORRUPT', error.message, { cause: error });
  return error;
}

async function readJsonFile(file: string): Promise<Partial<RegistryRecord> | null> {
  try {
    const value = JSON.parse(await readFile(file, 'utf8')) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Partial<RegistryRecord>) : null;
  } catch {
    return null;
  }
}


function ignoreMissing(error: unknown): null {
  const code = errnoCode(error);
  if (code === 'ENOENT' || code === 'ENOTDIR') return null;
  throw error;
}

function errnoCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}
