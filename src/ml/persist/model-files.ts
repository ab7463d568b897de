/**
 * The files of a saved model directory: which names are legal, which files `model.json` needs, and
 * checking every file against the sha256 recorded in `metadata.json` without building the model
 * (cheap enough for a readiness probe, streaming so VGG16's 528 MB never sit in memory).
 * @module
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { isErrnoCode } from './atomic-dir.ts';
import { METADATA_FILE, MODEL_JSON_FILE, parseMetadata, type ModelMetadata } from './model-metadata.ts';

/**
 * True for a bare file name: no directories, no `..`, no backslash, so a tampered manifest or
 * metadata file cannot point outside the model directory.
 */
export function isPlainFileName(name: string): boolean {
  return name !== '' && name !== '.' && name !== '..' && path.basename(name) === name && !name.includes('\\');
}

/**
 * Parses and checks the text of a `model.json` (layers format: `modelTopology` + `weightsManifest`).
 * @param where Prefix of error messages (a directory or a model id).
 * @throws MlError `MODEL_CORRUPT`.
 */
export function parseModelJson(text: string, where: string): tf.io.ModelJSON {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new MlError('MODEL_CORRUPT', `${where}: ${MODEL_JSON_FILE} is not valid JSON.`, { cause });
  }
  const json = value as Partial<tf.io.ModelJSON> | null;
  const manifestOk =
    Array.isArray(json?.weightsManifest) &&
    json.weightsManifest.every((group) => Array.isArray(group?.paths) && Array.isArray(group?.weights));
  if (json === null || typeof json !== 'object' || typeof json.modelTopology !== 'object' || !manifestOk) {
    throw new MlError('MODEL_CORRUPT', `${where}: ${MODEL_JSON_FILE} lacks modelTopology or weightsManifest.`);
  }
  if (json.format !== undefined && json.format !== 'layers-model') {
    throw new MlError('MODEL_CORRUPT', `${where}: ${MODEL_JSON_FILE} has format "${json.format}", expected "layers-model".`);
  }
  return json as tf.io.ModelJSON;
}

/**
 * Weight file names of `modelJson`'s manifest, in manifest order, each once.
 * @throws MlError `MODEL_CORRUPT` for a path that is not a bare file name.
 */
export function weightFileNames(modelJson: tf.io.ModelJSON, where: string): string[] {
  const names = new Set<string>();
  for (const name of modelJson.weightsManifest.flatMap((group) => group.paths)) {
    if (typeof name !== 'string' || !isPlainFileName(name)) {
      throw new MlError('MODEL_CORRUPT', `${where}: bad weight path "${String(name)}" in ${MODEL_JSON_FILE}.`);
    }
    names.add(name);
  }
  return [...names];
}

/** Options of {@link verifyModelFiles}. */
export interface VerifyModelFilesOptions {
  /** Prefix of error messages instead of the directory, e.g. `model "abc-cnn"` for an API answer. */
  label?: string;
}

/**
 * Checks a saved model directory without building the model: `metadata.json` is valid, every file
 * it lists exists and has the recorded sha256, and every weight file `model.json` needs is listed.
 *
 * @param dir Model directory written by `saveModel`.
 * @returns The parsed metadata.
 * @throws MlError `MODEL_CORRUPT` naming the first bad file (a missing `metadata.json` included).
 * @example
 * const metadata = await verifyModelFiles('data/models/m1', { label: 'model "m1"' });
 */
export async function verifyModelFiles(dir: string, options: VerifyModelFilesOptions = {}): Promise<ModelMetadata> {
  const where = options.label ?? dir;
  const metadataText = await readText(dir, METADATA_FILE, where);
  const metadata = parseMetadata(metadataText, where);
  const names = Object.keys(metadata.files);
  for (const name of names) {
    if (!isPlainFileName(name) || name === METADATA_FILE) {
      throw new MlError('MODEL_CORRUPT', `${where}: bad file name "${name}" in ${METADATA_FILE}.`);
    }
  }
  if (!(MODEL_JSON_FILE in metadata.files)) {
    throw new MlError('MODEL_CORRUPT', `${where}: ${MODEL_JSON_FILE} is not listed in ${METADATA_FILE}.`);
  }
  for (const name of names) {
    const actual = await sha256File(dir, name, where);
    const expected = metadata.files[name];
    if (actual !== expected) throw new MlError('MODEL_CORRUPT', `${where}: ${name} has sha256 ${actual}, expected ${expected}.`);
  }
  // model.json's hash just matched, so what it needs is what was saved; it must all be listed.
  const modelJson = parseModelJson(await readText(dir, MODEL_JSON_FILE, where), where);
  for (const name of weightFileNames(modelJson, where)) {
    if (!(name in metadata.files)) throw new MlError('MODEL_CORRUPT', `${where}: ${name} is not listed in ${METADATA_FILE}.`);
  }
  return metadata;
}

async function readText(dir: string, name: string, where: string): Promise<string> {
  try {
    return await readFile(path.join(dir, name), 'utf8');
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) throw new MlError('MODEL_CORRUPT', `${where}: ${name} is missing.`, { cause });
    throw cause;
  }
}

async function sha256File(dir: string, name: string, where: string): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(path.join(dir, name))) hash.update(chunk as Buffer);
  } catch (cause) {
    if (isErrnoCode(cause, 'ENOENT')) throw new MlError('MODEL_CORRUPT', `${where}: ${name} is missing.`, { cause });
    throw cause;
  }
  return hash.digest('hex');
}
