/**
 * `metadata.json`: what a saved model is (architecture, classes, input shape, preprocessing), where it
 * came from (dataset hash, seed, versions, backend) and the sha256 of every file beside it. Built when
 * saving, validated when loading, so a reader never trusts a half-understood file.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';

/** Version of the `metadata.json` layout; bump it when a field changes meaning. */
export const METADATA_SCHEMA_VERSION = 1;

/** File names inside a saved model directory. */
export const MODEL_JSON_FILE = 'model.json';
export const METADATA_FILE = 'metadata.json';

/** `[height, width, channels]` of one input image, in pixels (channels last). */
export type ImageInputShape = readonly [height: number, width: number, channels: number];

/** What the caller knows about a model when saving it; the rest of {@link ModelMetadata} is derived. */
export interface ModelMetadataInput {
  /** e.g. `cnn`, `vgg16`, `resnet50`, `inceptionv3`. */
  architecture: string;
  /** Class names in output order: `classNames[i]` is the label of output unit `i`. */
  classNames: readonly string[];
  /** The fracture-positive subset of `classNames` (may be empty). */
  positiveClasses: readonly string[];
  /** Must equal the model's input shape without the batch dimension. */
  inputShape: ImageInputShape;
  /**
   * How images become input tensors, exactly as the preprocessing module records it. Opaque here:
   * stored and returned as JSON, so serving repeats training's transform.
   */
  preprocessing: object;
  /** Evaluation results, any JSON object (e.g. the metrics report of the test split). */
  metrics?: object;
  /** How the model was trained (epochs, batch size, optimizer, split settings ...), any JSON object. */
  training?: object;
  /** Hash identifying the training data. */
  datasetHash?: string;
  /** Seed of the training run. */
  seed?: number;
  /** tfjs backend the model was trained on; defaults to the current backend. */
  backend?: string;
  /** ISO-8601 time; defaults to now. */
  createdAt?: string;
  /** Extra component versions, merged over the detected tfjs and Node versions. */
  versions?: Readonly<Record<string, string>>;
}

/** The parsed `metadata.json`. */
export interface ModelMetadata {
  schemaVersion: typeof METADATA_SCHEMA_VERSION;
  architecture: string;
  classNames: string[];
  positiveClasses: string[];
  inputShape: [height: number, width: number, channels: number];
  preprocessing: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  training?: Record<string, unknown>;
  datasetHash?: string;
  seed?: number;
  createdAt: string;
  /** Component versions, e.g. `{ tfjs: '4.22.0', 'tfjs-layers': '4.22.0', node: '20.19.0' }`. */
  versions: Record<string, string>;
  backend?: string;
  /** sha256 (lower-case hex) of every other file in the directory, keyed by file name. */
  files: Record<string, string>;
}

/**
 * Checks `input` against the model it describes.
 * @throws MlError `INPUT_SHAPE_INVALID` when `inputShape` differs from the model's input;
 *   `INVALID_ARGUMENT` for class lists that do not fit the output or a non-object `preprocessing`.
 */
export function validateMetadataInput(model: tf.LayersModel, input: ModelMetadataInput): void {
  if (typeof input.architecture !== 'string' || input.architecture === '') {
    throw new MlError('INVALID_ARGUMENT', 'metadata.architecture must be a non-empty string.');
  }
  const modelInput = model.inputs[0]?.shape.slice(1) ?? [];
  const shapeOk =
    input.inputShape.length === 3 &&
    modelInput.length === 3 &&
    input.inputShape.every((dim, i) => Number.isInteger(dim) && dim > 0 && (modelInput[i] === null || modelInput[i] === dim));
  if (!shapeOk) {
    throw new MlError(
      'INPUT_SHAPE_INVALID',
      `metadata.inputShape [${input.inputShape.join(', ')}] does not match the model input [${modelInput.join(', ')}].`,
    );
  }
  const units = model.outputs[0]?.shape.at(-1);
  if (input.classNames.length !== units) {
    throw new MlError(
      'INVALID_ARGUMENT',
      `metadata.classNames has ${input.classNames.length} names but the model has ${units} outputs.`,
    );
  }
  if (new Set(input.classNames).size !== input.classNames.length) {
    throw new MlError('INVALID_ARGUMENT', 'metadata.classNames contains duplicates.');
  }
  const unknown = input.positiveClasses.filter((name) => !input.classNames.includes(name));
  if (unknown.length > 0) {
    throw new MlError('INVALID_ARGUMENT', `metadata.positiveClasses not in classNames: ${unknown.join(', ')}.`);
  }
  if (!isPlainObject(input.preprocessing)) {
    throw new MlError('INVALID_ARGUMENT', 'metadata.preprocessing must be a JSON object.');
  }
  if (input.training !== undefined && !isPlainObject(input.training)) {
    throw new MlError('INVALID_ARGUMENT', 'metadata.training must be a JSON object when given.');
  }
  if (input.metrics !== undefined && !isPlainObject(input.metrics)) {
    throw new MlError('INVALID_ARGUMENT', 'metadata.metrics must be a JSON object when given.');
  }
}

/**
 * The complete metadata record for `input` plus the hashes of the files written beside it.
 * Optional fields stay absent (not `null`) when not given, so the JSON shows only what is known.
 */
export function buildMetadata(input: ModelMetadataInput, files: Readonly<Record<string, string>>): ModelMetadata {
  const metadata: ModelMetadata = {
    schemaVersion: METADATA_SCHEMA_VERSION,
    architecture: input.architecture,
    classNames: [...input.classNames],
    positiveClasses: [...input.positiveClasses],
    inputShape: [input.inputShape[0], input.inputShape[1], input.inputShape[2]],
    preprocessing: input.preprocessing as Record<string, unknown>,
    createdAt: input.createdAt ?? new Date().toISOString(),
    versions: { ...detectVersions(), ...input.versions },
    backend: input.backend ?? tf.getBackend(),
    files: { ...files },
  };
  if (input.metrics !== undefined) metadata.metrics = input.metrics as Record<string, unknown>;
  if (input.training !== undefined) metadata.training = input.training as Record<string, unknown>;
  if (input.datasetHash !== undefined) metadata.datasetHash = input.datasetHash;
  if (input.seed !== undefined) metadata.seed = input.seed;
  return metadata;
}

/** tfjs package versions and the Node version of this process. */
export function detectVersions(): Record<string, string> {
  const versions: Record<string, string> = {};
  for (const [name, version] of Object.entries(tf.version)) {
    if (typeof version === 'string') versions[name] = version;
  }
  versions.node = process.versions.node;
  return versions;
}

/**
 * Parses and validates the text of a `metadata.json`.
 * @throws MlError `MODEL_CORRUPT` naming the first invalid field.
 */
export function parseMetadata(text: string, where: string): ModelMetadata {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new MlError('MODEL_CORRUPT', `${where}: ${METADATA_FILE} is not valid JSON.`, { cause });
  }
  const fail = (field: string): never => {
    throw new MlError('MODEL_CORRUPT', `${where}: ${METADATA_FILE} has an invalid or missing "${field}".`);
  };
  if (!isPlainObject(value)) return fail('(root object)');
  const record = value as Record<string, unknown>;
  if (record.schemaVersion !== METADATA_SCHEMA_VERSION) {
    throw new MlError(
      'MODEL_CORRUPT',
      `${where}: ${METADATA_FILE} has schemaVersion ${JSON.stringify(record.schemaVersion)}; this build reads ${METADATA_SCHEMA_VERSION}.`,
    );
  }
  if (typeof record.architecture !== 'string') fail('architecture');
  if (!isStringArray(record.classNames)) fail('classNames');
  if (!isStringArray(record.positiveClasses)) fail('positiveClasses');
  const shape = record.inputShape;
  if (!Array.isArray(shape) || shape.length !== 3 || !shape.every((d) => Number.isInteger(d) && d > 0)) fail('inputShape');
  if (!isPlainObject(record.preprocessing)) fail('preprocessing');
  if (record.metrics !== undefined && !isPlainObject(record.metrics)) fail('metrics');
  if (record.training !== undefined && !isPlainObject(record.training)) fail('training');
  if (record.datasetHash !== undefined && typeof record.datasetHash !== 'string') fail('datasetHash');
  if (record.seed !== undefined && typeof record.seed !== 'number') fail('seed');
  if (typeof record.createdAt !== 'string') fail('createdAt');
  if (!isStringRecord(record.versions)) fail('versions');
  if (record.backend !== undefined && typeof record.backend !== 'string') fail('backend');
  if (!isStringRecord(record.files)) fail('files');
  return record as unknown as ModelMetadata;
}

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}

function isStringRecord(value: unknown): value is Record<string, string> {
  return isPlainObject(value) && Object.values(value as object).every((item) => typeof item === 'string');
}
