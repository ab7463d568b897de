/**
 * Loads a model directory written by `saveModel`: validates `metadata.json`, checks the sha256 of
 * every file it lists, and rebuilds the LayersModel from `model.json` and its weight shards on disk,
 * with the stock `BatchNormalization` layers of the file as the project's faster layer.
 * @module
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import { MlError, isMlError } from '../errors.ts';
import { findOldCopy, isErrnoCode } from './atomic-dir.ts';
import { isPlainFileName, parseModelJson } from './model-files.ts';
import { METADATA_FILE, MODEL_JSON_FILE, parseMetadata, type ModelMetadata } from './model-metadata.ts';
import { PROJECT_BN_CLASS, toProjectTopology } from './portable-topology.ts';

export interface LoadModelOptions {
  /**
   * Check every file against the sha256 in `metadata.json` before building the model. Default `true`;
   * turn off only for files just written by this process (hashing VGG16's 528 MB takes about a second).
   */
  verify?: boolean;
}

export interface LoadedModel {
  model: tf.LayersModel;
  metadata: ModelMetadata;
  /** Directory actually read: `dir`, or the intact previous copy a crashed save left beside it. */
  dir: string;
}

/**
 * Where the module that registers the project's custom layers (e.g. the BatchNormalization variant
 * of `src/ml/models`) lives. `tf.loadLayersModel` can only rebuild classes registered with
 * `tf.serialization.registerClass`, so {@link loadModel} imports it first when it exists. Callers that
 * load models with custom layers from elsewhere must import their registering module themselves.
 */
const MODEL_LAYERS_MODULE = new URL('../models/index.ts', import.meta.url);

/**
 * Loads the model saved in `dir`.
 *
 * @param dir Model directory written by `saveModel`. If it is missing but a complete previous copy
 *   (`${dir}.old-*`) exists, because a save crashed between its two renames, that copy is read.
 * @returns The model (caller disposes it) and its metadata.
 * @throws MlError `MODEL_NOT_FOUND` when there is no such directory; `MODEL_CORRUPT` naming the file
 *   when a file is missing, its sha256 differs, `metadata.json` or `model.json` is invalid, or tfjs
 *   cannot rebuild the model (including an unregistered custom layer class).
 * @example
 * const { model, metadata } = await loadModel('data/models/m1');
 * const probs = model.predict(batch) as tf.Tensor2D; // [n, metadata.classNames.length]
 */
export async function loadModel(dir: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const source = await resolveModelDir(dir);
  const metadataText = await readModelFile(source, METADATA_FILE);
  const metadata = parseMetadata(metadataText.toString('utf8'), source);

  const hashes = (options.verify ?? true) ? metadata.files : null;
  for (const name of Object.keys(metadata.files)) {
    if (!isPlainFileName(name)) throw new MlError('MODEL_CORRUPT', `${source}: bad file name "${name}" in ${METADATA_FILE}.`);
  }

  const modelJson = parseModelJson((await readChecked(source, MODEL_JSON_FILE, hashes)).toString('utf8'), source);
  await importModelLayers();
  if (isRegisteredClass(PROJECT_BN_CLASS)) {
    // Files name the stock BatchNormalization so any tfjs can load them; here it becomes our faster
    // layer again, so a loaded model trains and predicts exactly like the one that was saved.
    modelJson.modelTopology = toProjectTopology(modelJson.modelTopology);
  }
  const shards = new Map<string, ArrayBuffer>();
  for (const name of modelJson.weightsManifest.flatMap((group) => group.paths)) {
    if (!isPlainFileName(name)) throw new MlError('MODEL_CORRUPT', `${source}: bad weight path "${name}" in ${MODEL_JSON_FILE}.`);
    if (!shards.has(name)) shards.set(name, toArrayBuffer(await readChecked(source, name, hashes)));
  }
  if (hashes) {
    // Every listed file is checked, used or not: the listing in metadata.json is the contract.
    for (const name of Object.keys(hashes)) {
      if (name !== MODEL_JSON_FILE && !shards.has(name)) await readChecked(source, name, hashes);
    }
  }

  const handler: tf.io.IOHandler = {
    load: () =>
      tf.io.getModelArtifactsForJSON(modelJson, async (manifest) => {
        // A list of 4 MiB buffers, not one concatenation: tfjs slices weights across them itself.
        const buffers = manifest.flatMap((group) => group.paths.map((name) => shards.get(name) as ArrayBuffer));
        return [tf.io.getWeightSpecs(manifest), buffers];
      }),
  };

  let model: tf.LayersModel;
  try {
    model = await tf.loadLayersModel(handler);
  } catch (cause) {
    throw new MlError('MODEL_CORRUPT', `${source}: tfjs could not rebuild the model: ${describeLoadError(cause)}`, { cause });
  }
  checkAgainstMetadata(model, metadata, source);
  return { model, metadata, dir: source };
}

/**
 * The directory a model saved at `dir` lives in: `dir` itself, or the intact previous copy a crashed
 * save left beside it (see `writeDirAtomically`). Every engine loads through this.
 * @throws MlError `MODEL_NOT_FOUND` when there is neither.
 */
export async function resolveModelDir(dir: string): Promise<string> {
  const target = path.resolve(dir);
  const info = await stat(target).catch((error: unknown) => {
    if (isErrnoCode(error, 'ENOENT') || isErrnoCode(error, 'ENOTDIR')) return null;
    throw error;
  });
  if (info?.isDirectory()) return target;
  if (info === null) {
    const old = await findOldCopy(target);
    if (old !== null) return old;
  }
  throw new MlError('MODEL_NOT_FOUND', `No saved model at ${target}.`);
}

/**
 * Reads `name` from `dir`; with `hashes`, also requires it to be listed there with its sha256.
 * @throws MlError `MODEL_CORRUPT` naming the file.
 */
async function readChecked(dir: string, name: string, hashes: Readonly<Record<string, string>> | null): Promise<Buffer> {
  const bytes = await readModelFile(dir, name);
  if (hashes) {
    const expected = hashes[name];
    if (expected === undefined) throw new MlError('MODEL_CORRUPT', `${dir}: ${name} is not listed in ${METADATA_FILE}.`);
    const actual = createHash('sha256').update(bytes).digest('hex');
    if (actual !== expected) throw new MlError('MODEL_CORRUPT', `${dir}: ${name} has sha256 ${actual}, expected ${expected}.`);
  }
  return bytes;
}

async function readModelFile(dir: string, name: string): Promise<Buffer> {
  try {
    return await readFile(path.join(dir, name));
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) throw new MlError('MODEL_CORRUPT', `${dir}: ${name} is missing.`, { cause });
    throw cause;
  }
}

/** The metadata must describe the model it sits beside; a mismatch means files from two saves. */
function checkAgainstMetadata(model: tf.LayersModel, metadata: ModelMetadata, where: string): void {
  const input = model.inputs[0]?.shape.slice(1) ?? [];
  const units = model.outputs[0]?.shape.at(-1);
  const inputOk = input.length === 3 && metadata.inputShape.every((dim, i) => input[i] === null || input[i] === dim);
  if (!inputOk || units !== metadata.classNames.length) {
    model.dispose();
    throw new MlError(
      'MODEL_CORRUPT',
      `${where}: model input [${input.join(', ')}] with ${units} outputs does not match ${METADATA_FILE} ` +
        `(inputShape [${metadata.inputShape.join(', ')}], ${metadata.classNames.length} classes).`,
    );
  }
}

/** Imports the custom-layer registrations of `src/ml/models` when that module exists (see above). */
async function importModelLayers(): Promise<void> {
  if (existsSync(fileURLToPath(MODEL_LAYERS_MODULE))) await import(MODEL_LAYERS_MODULE.href);
}

/** True when tfjs serialisation knows `className` (registered by `tf.serialization.registerClass`). */
function isRegisteredClass(className: string): boolean {
  return tf.serialization.SerializationMap.getMap().classNameMap[className] !== undefined;
}

function describeLoadError(error: unknown): string {
  if (isMlError(error)) return error.message;
  const message = error instanceof Error ? error.message : String(error);
  const unknownClass = /Unknown layer: (\S+?)\./.exec(message);
  if (unknownClass) {
    return `layer class ${unknownClass[1]} is not registered; import the module that registers it (tf.serialization.registerClass) before loading.`;
  }
  return message;
}

/** An ArrayBuffer holding exactly `bytes` (Node may hand out views into a larger pooled buffer). */
function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}
