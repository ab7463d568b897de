/**
 * A Triton Inference Server model repository entry for an exported model:
 *
 * ```text
 * REPO/<name>/config.pbtxt    model configuration (protobuf text format, ModelConfig of Triton)
 * REPO/<name>/labels.txt      class names, one per line, in output order (classification extension)
 * REPO/<name>/1/model.onnx    the ONNX file (version 1)
 * ```
 *
 * `config.pbtxt` is printed by `@bufbuild/protobuf` from a descriptor of the subset of Triton's
 * `model_config.proto` used here (same message, field and enum names and numbers), so strings are
 * escaped by the protobuf library and the file parses back with the same schema. The entry is written
 * atomically: a failed export leaves no `REPO/<name>` (or the previous one intact).
 * @module
 */
import { mkdir, rmdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { create, createFileRegistry, fromBinary, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { fromText, toText } from '@bufbuild/protobuf/txtpb';
import {
  FieldDescriptorProto_Label as Label,
  FieldDescriptorProto_Type as FieldType,
  FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';
import { ModelProtoSchema, type ValueInfoProto } from 'onnx-buf';
import { MlError } from '../errors.ts';
import { isPathInside } from '../util/paths.ts';
// Files, not persist's index: persist's save-model imports this folder's index (see export-model-dir).
import { fsyncPath, writeDirAtomically, writeFileDurable } from '../persist/atomic-dir.ts';
import { exportModelDir } from './export-model-dir.ts';
import { ONNX_INPUT_NAME, ONNX_MODEL_FILE, ONNX_OUTPUT_NAME } from './onnx-export.ts';

/** File names inside `REPO/<name>`. */
export const TRITON_CONFIG_FILE = 'config.pbtxt';
export const TRITON_LABELS_FILE = 'labels.txt';
/** The one model version written (Triton serves the highest numbered version folder by default). */
export const TRITON_MODEL_VERSION = '1';
/** Default `max_batch_size`. */
export const DEFAULT_TRITON_MAX_BATCH_SIZE = 32;
/**
 * Default `max_queue_delay_microseconds`: 10 ms, the service's own `PREDICT_MAX_DELAY_MS` default, small
 * beside a CPU forward pass of a batch (about 140 ms for ResNet50 at 224 px, batch 16).
 */
export const DEFAULT_TRITON_MAX_QUEUE_DELAY_US = 10_000;
/** Batch size the service itself prefers (`PREDICT_MAX_BATCH_SIZE` default); see {@link defaultPreferredBatchSizes}. */
const SERVICE_BATCH_SIZE = 16;
/** `parameters` keys; the ONNX Runtime backend reads only its own keys and ignores these. */
export const TRITON_PARAMETER_PREFIX = 'fracture_service.';
/** Model names: a folder name that is safe on every file system and in URLs (`/v2/models/<name>`). */
const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const INT32_MAX = 2 ** 31 - 1;

/** What the configuration needs to know about the model besides the ONNX bytes. */
export interface TritonModelMetadata {
  /** `[height, width, channels]` of one image, as in `metadata.json`. */
  inputShape: readonly [number, number, number];
  /** Output column `i` is `classNames[i]`; written to `labels.txt`. */
  classNames: readonly string[];
  /** Recorded in `parameters` for readers of the configuration. */
  architecture?: string;
  positiveClasses?: readonly string[];
  /** The `preprocessing` record of `metadata.json`, recorded as JSON in `parameters`. */
  preprocessing?: object;
}

/** Where the ONNX model comes from: a saved model directory (exported while writing) or bytes. */
export type TritonModelSource =
  | { modelDir: string }
  | { onnx: Uint8Array; metadata: TritonModelMetadata };

/** Serving settings of `config.pbtxt`. */
export interface TritonConfigOptions {
  /** Model name: `REPO/<name>` and the `name` field. `[A-Za-z0-9][A-Za-z0-9_.-]*`, at most 128 characters. */
  name: string;
  /** Largest batch Triton forms (`max_batch_size`, >= 1). Default {@link DEFAULT_TRITON_MAX_BATCH_SIZE}. */
  maxBatchSize?: number;
  /**
   * `dynamic_batching.preferred_batch_size`: batch sizes run as soon as they can be formed, each in
   * `[1, maxBatchSize]`. Default {@link defaultPreferredBatchSizes}; `[]` leaves the choice to Triton.
   */
  preferredBatchSizes?: readonly number[];
  /** `dynamic_batching.max_queue_delay_microseconds`. Default {@link DEFAULT_TRITON_MAX_QUEUE_DELAY_US}. */
  maxQueueDelayMicroseconds?: number;
  /** `instance_group.kind`: `cpu` (KIND_CPU, default) or `gpu` (KIND_GPU, needs a CUDA build of Triton). */
  device?: 'cpu' | 'gpu';
  /** `instance_group.count`: model instances (per GPU for `gpu`). Default 1. */
  instanceCount?: number;
}

export type TritonRepositoryOptions = TritonModelSource &
  TritonConfigOptions & {
    /** The model repository (`tritonserver --model-repository=REPO`); created if missing. */
    repoDir: string;
  };

/** One tensor of the configuration: name and dims without the batch dimension. */
export interface TritonTensorInfo {
  name: string;
  dims: number[];
}

/** What {@link writeTritonRepository} wrote. */
export interface TritonRepositoryInfo {
  name: string;
  /** Absolute path of `REPO/<name>`. */
  modelDir: string;
  configFile: string;
  labelsFile: string;
  onnxFile: string;
  onnxBytes: number;
  maxBatchSize: number;
  input: TritonTensorInfo;
  output: TritonTensorInfo;
  /** The text written to `config.pbtxt`. */
  config: string;
}

/**
 * Writes `REPO/<name>/{config.pbtxt, labels.txt, 1/model.onnx}` atomically (staging folder beside it,
 * then a rename; see `writeDirAtomically`). An existing `REPO/<name>` is replaced only once the new one
 * is complete; on any failure (including the export of `modelDir`, which runs while staging) neither a
 * partial folder nor the staging folder remains, nor `REPO` itself when this call created it.
 *
 * Note that Triton polling the repository (`--model-control-mode=poll`) may notice the staging folder
 * (`<name>.tmp-<hex>`) for the moment it exists; export elsewhere and move the folder in that case.
 *
 * @throws MlError `INVALID_ARGUMENT` for a bad name or batching setting, a `REPO/<name>` that is, holds
 *   or sits in `modelDir`, a class name that cannot be a line of `labels.txt`, or ONNX bytes whose graph
 *   does not take `input` `[batch, H, W, C]` and give `probabilities` `[batch, classes]` as the metadata
 *   says; loading and export errors of `modelDir` (`MODEL_NOT_FOUND`, `MODEL_CORRUPT`,
 *   `EXPORT_UNSUPPORTED`).
 * @example
 * const info = await writeTritonRepository({ modelDir: 'data/models/m1', repoDir: 'triton', name: 'fracture' });
 * // tritonserver --model-repository=triton
 */
export async function writeTritonRepository(options: TritonRepositoryOptions): Promise<TritonRepositoryInfo> {
  const settings = resolveConfigOptions(options);
  if ('onnx' in options) checkOnnxMatchesMetadata(options.onnx, options.metadata);
  const target = path.resolve(options.repoDir, settings.name);
  if ('modelDir' in options && overlaps(target, path.resolve(options.modelDir))) {
    // Replacing REPO/<name> atomically would delete the model being exported (or a folder holding it).
    throw new MlError('INVALID_ARGUMENT', `The Triton model folder ${target} would replace or sit inside the model directory ${path.resolve(options.modelDir)}; choose another repository or name.`);
  }

  const repoExisted = await stat(options.repoDir).then(() => true, () => false);
  try {
    return await writeRepositoryEntry(options, settings, target);
  } catch (error) {
    // A repository folder made only for this export goes too (rmdir: only if still empty).
    if (!repoExisted) await rmdir(options.repoDir).catch(() => undefined);
    throw error;
  }
}

async function writeRepositoryEntry(options: TritonRepositoryOptions, settings: ResolvedTritonConfigOptions, target: string): Promise<TritonRepositoryInfo> {
  return writeDirAtomically(target, async (staging): Promise<TritonRepositoryInfo> => {
    const { onnx, metadata } = 'onnx' in options ? options : await exportModelDir(options.modelDir);
    const config = tritonModelConfig(metadata, settings);
    const versionDir = path.join(staging, TRITON_MODEL_VERSION);
    await mkdir(versionDir);
    await writeFileDurable(path.join(versionDir, ONNX_MODEL_FILE), onnx);
    await fsyncPath(versionDir);
    await writeFileDurable(path.join(staging, TRITON_LABELS_FILE), tritonLabels(metadata.classNames));
    await writeFileDurable(path.join(staging, TRITON_CONFIG_FILE), config);
    const [height, width, channels] = metadata.inputShape;
    return {
      name: settings.name,
      modelDir: target,
      configFile: path.join(target, TRITON_CONFIG_FILE),
      labelsFile: path.join(target, TRITON_LABELS_FILE),
      onnxFile: path.join(target, TRITON_MODEL_VERSION, ONNX_MODEL_FILE),
      onnxBytes: onnx.byteLength,
      maxBatchSize: settings.maxBatchSize,
      input: { name: ONNX_INPUT_NAME, dims: [height, width, channels] },
      output: { name: ONNX_OUTPUT_NAME, dims: [metadata.classNames.length] },
      config,
    };
  });
}

/** {@link TritonConfigOptions} with every default filled in and checked. */
export type ResolvedTritonConfigOptions = Required<TritonConfigOptions>;

/**
 * The text of `config.pbtxt` for a model of `metadata`: ONNX Runtime backend, the batch dimension left
 * to Triton (`max_batch_size`, so `dims` are `[H, W, C]` and `[classes]`), dynamic batching, one
 * instance group and the metadata in `parameters`.
 * @throws MlError `INVALID_ARGUMENT` for the same reasons as {@link writeTritonRepository}.
 */
export function tritonModelConfig(metadata: TritonModelMetadata, options: TritonConfigOptions): string {
  const settings = resolveConfigOptions(options);
  checkMetadata(metadata);
  const parameters: Record<string, { stringValue: string }> = {};
  const record = (key: string, value: string | undefined): void => {
    if (value !== undefined) parameters[`${TRITON_PARAMETER_PREFIX}${key}`] = { stringValue: value };
  };
  record('architecture', metadata.architecture);
  record('class_names', JSON.stringify(metadata.classNames));
  if (metadata.positiveClasses !== undefined) record('positive_classes', JSON.stringify(metadata.positiveClasses));
  record('input_layout', 'NHWC');
  if (metadata.preprocessing !== undefined) record('preprocessing', JSON.stringify(metadata.preprocessing));

  const schema = modelConfigSchema();
  const message = create(schema, {
    name: settings.name,
    platform: 'onnxruntime_onnx',
    backend: 'onnxruntime',
    maxBatchSize: settings.maxBatchSize,
    input: [{ name: ONNX_INPUT_NAME, dataType: TYPE_FP32, dims: metadata.inputShape.map(BigInt) }],
    output: [{ name: ONNX_OUTPUT_NAME, dataType: TYPE_FP32, dims: [BigInt(metadata.classNames.length)], labelFilename: TRITON_LABELS_FILE }],
    dynamicBatching: {
      preferredBatchSize: [...settings.preferredBatchSizes],
      maxQueueDelayMicroseconds: BigInt(settings.maxQueueDelayMicroseconds),
    },
    instanceGroup: [{ kind: settings.device === 'gpu' ? KIND_GPU : KIND_CPU, count: settings.instanceCount }],
    parameters,
  } as MessageInitShape<DescMessage>);
  const header = [
    '# Triton model configuration written by fracture-service (docs/export.md).',
    `# Input "${ONNX_INPUT_NAME}": [batch, ${metadata.inputShape.join(', ')}] float32 NHWC, already preprocessed as`,
    `# parameters "${TRITON_PARAMETER_PREFIX}preprocessing" says; output "${ONNX_OUTPUT_NAME}": softmax over ${TRITON_LABELS_FILE}.`,
  ];
  return `${header.join('\n')}\n${toText(schema, message)}`;
}

/**
 * Parses a `config.pbtxt` with the same schema subset (fields outside it are an error). For tests and
 * tools that check what was written; values come back in protobuf-es form (`maxBatchSize`, `dims` as
 * bigint ...).
 */
export function parseTritonModelConfig(text: string): Record<string, unknown> {
  return fromText(modelConfigSchema(), text) as unknown as Record<string, unknown>;
}

/** `labels.txt`: one class name per line, in output order, newline-terminated. */
export function tritonLabels(classNames: readonly string[]): string {
  return `${classNames.join('\n')}\n`;
}

/**
 * Checks a Triton model name.
 * @throws MlError `INVALID_ARGUMENT` listing the allowed characters.
 */
export function validateTritonModelName(name: string): string {
  if (!MODEL_NAME_PATTERN.test(name) || name.includes('..')) {
    throw new MlError(
      'INVALID_ARGUMENT',
      `Invalid Triton model name ${JSON.stringify(name)}: use 1-128 of A-Z a-z 0-9 _ . - starting with a letter or digit (no "..").`,
    );
  }
  return name;
}

/**
 * A valid model name made from any text (e.g. a model directory's base name): runs of other characters
 * become `_`, leading separators are dropped, the result is cut to 128 characters; `model` if nothing
 * is left.
 */
export function sanitiseTritonModelName(text: string): string {
  const cleaned = text
    .replace(/[^A-Za-z0-9_.-]+/g, '_')
    .replace(/\.{2,}/g, '.')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 128);
  return cleaned === '' ? 'model' : cleaned;
}

/**
 * Preferred batch sizes when none are given: the service's batch size (16) when it is below
 * `maxBatchSize`, and `maxBatchSize` itself; e.g. `[16, 32]` for 32, `[8]` for 8.
 */
export function defaultPreferredBatchSizes(maxBatchSize: number): number[] {
  return maxBatchSize > SERVICE_BATCH_SIZE ? [SERVICE_BATCH_SIZE, maxBatchSize] : [maxBatchSize];
}

function resolveConfigOptions(options: TritonConfigOptions): ResolvedTritonConfigOptions {
  const name = validateTritonModelName(options.name);
  const maxBatchSize = options.maxBatchSize ?? DEFAULT_TRITON_MAX_BATCH_SIZE;
  if (!Number.isInteger(maxBatchSize) || maxBatchSize < 1 || maxBatchSize > INT32_MAX) {
    throw new MlError('INVALID_ARGUMENT', `maxBatchSize must be an integer >= 1, got ${String(maxBatchSize)}.`);
  }
  const preferred = [...(options.preferredBatchSizes ?? defaultPreferredBatchSizes(maxBatchSize))];
  for (const size of preferred) {
    if (!Number.isInteger(size) || size < 1 || size > maxBatchSize) {
      throw new MlError('INVALID_ARGUMENT', `Preferred batch sizes must be integers in [1, ${maxBatchSize}] (maxBatchSize), got ${String(size)}.`);
    }
  }
  const maxQueueDelayMicroseconds = options.maxQueueDelayMicroseconds ?? DEFAULT_TRITON_MAX_QUEUE_DELAY_US;
  if (!Number.isSafeInteger(maxQueueDelayMicroseconds) || maxQueueDelayMicroseconds < 0) {
    throw new MlError('INVALID_ARGUMENT', `maxQueueDelayMicroseconds must be an integer >= 0, got ${String(maxQueueDelayMicroseconds)}.`);
  }
  const device = options.device ?? 'cpu';
  if (device !== 'cpu' && device !== 'gpu') throw new MlError('INVALID_ARGUMENT', `device must be cpu or gpu, got ${String(device)}.`);
  const instanceCount = options.instanceCount ?? 1;
  if (!Number.isInteger(instanceCount) || instanceCount < 1 || instanceCount > INT32_MAX) {
    throw new MlError('INVALID_ARGUMENT', `instanceCount must be an integer >= 1, got ${String(instanceCount)}.`);
  }
  return {
    name,
    maxBatchSize,
    // Sorted and unique: Triton takes them as a set, readers expect ascending order.
    preferredBatchSizes: [...new Set(preferred)].sort((a, b) => a - b),
    maxQueueDelayMicroseconds,
    device,
    instanceCount,
  };
}

/** True when one path is the other or inside it. */
function overlaps(a: string, b: string): boolean {
  return isPathInside(a, b) || isPathInside(b, a);
}

function checkMetadata(metadata: TritonModelMetadata): void {
  if (metadata.inputShape.length !== 3 || !metadata.inputShape.every((d) => Number.isInteger(d) && d > 0)) {
    throw new MlError('INVALID_ARGUMENT', `inputShape must be [height, width, channels] of positive integers, got ${JSON.stringify(metadata.inputShape)}.`);
  }
  if (metadata.classNames.length < 1) throw new MlError('INVALID_ARGUMENT', 'classNames must not be empty.');
  for (const name of metadata.classNames) {
    // labels.txt holds one name per line; an empty line or a line break would shift every label after it.
    if (name.trim() === '' || /[\r\n]/.test(name)) {
      throw new MlError('INVALID_ARGUMENT', `Class name ${JSON.stringify(name)} cannot be a line of ${TRITON_LABELS_FILE} (empty or has a line break).`);
    }
  }
}

/**
 * The graph must take what the configuration declares: Triton's ONNX Runtime backend refuses to load a
 * model whose tensors differ from `config.pbtxt`, and it needs a variable first dimension for batching.
 */
function checkOnnxMatchesMetadata(onnx: Uint8Array, metadata: TritonModelMetadata): void {
  checkMetadata(metadata);
  let graph;
  try {
    graph = fromBinary(ModelProtoSchema, onnx).graph;
  } catch (cause) {
    throw new MlError('INVALID_ARGUMENT', 'The ONNX bytes are not an ONNX ModelProto.', { cause });
  }
  const expect = (values: ValueInfoProto[] | undefined, name: string, dims: readonly number[]): void => {
    const value = values?.find((v) => v.name === name);
    const shape = value?.type?.value.case === 'tensorType' ? value.type.value.value.shape?.dim : undefined;
    const actual = shape?.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : null));
    const ok = actual !== undefined && actual.length === dims.length + 1 && actual[0] === null && dims.every((d, i) => actual[i + 1] === d);
    if (!ok) {
      throw new MlError(
        'INVALID_ARGUMENT',
        `The ONNX graph's "${name}" is ${actual ? JSON.stringify(actual) : 'missing'}; expected [batch, ${dims.join(', ')}] with a symbolic batch dimension.`,
      );
    }
  };
  const inputs = graph?.input.filter((v) => !graph.initializer.some((t) => t.name === v.name));
  expect(inputs, ONNX_INPUT_NAME, metadata.inputShape);
  expect(graph?.output, ONNX_OUTPUT_NAME, [metadata.classNames.length]);
}

// ---- The subset of Triton's model_config.proto (package `inference`) written here. ----------------
// Names and numbers as in triton-inference-server/common protobuf/model_config.proto; the field order
// below is the order they are printed in.

const TYPE_FP32 = 11;
const KIND_GPU = 1;
const KIND_CPU = 2;

let cachedSchema: DescMessage | undefined;

function modelConfigSchema(): DescMessage {
  if (cachedSchema !== undefined) return cachedSchema;
  const field = (name: string, number: number, type: FieldType, extra: { typeName?: string; repeated?: boolean } = {}) => {
    const { repeated, ...rest } = extra;
    return { name, number, type, label: repeated === true ? Label.REPEATED : Label.OPTIONAL, jsonName: camel(name), ...rest };
  };
  const messageField = (name: string, number: number, typeName: string, repeated = false) =>
    field(name, number, FieldType.MESSAGE, { typeName: `.inference.${typeName}`, repeated });
  const file = create(FileDescriptorProtoSchema, {
    name: 'model_config.proto',
    package: 'inference',
    syntax: 'proto3',
    enumType: [
      {
        name: 'DataType',
        value: ['INVALID', 'BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'STRING', 'BF16']
          .map((type, number) => ({ name: `TYPE_${type}`, number })),
      },
    ],
    messageType: [
      {
        name: 'ModelInstanceGroup',
        field: [
          field('name', 1, FieldType.STRING),
          field('kind', 4, FieldType.ENUM, { typeName: '.inference.ModelInstanceGroup.Kind' }),
          field('count', 2, FieldType.INT32),
          field('gpus', 3, FieldType.INT32, { repeated: true }),
        ],
        enumType: [{ name: 'Kind', value: ['KIND_AUTO', 'KIND_GPU', 'KIND_CPU', 'KIND_MODEL'].map((name, number) => ({ name, number })) }],
      },
      {
        name: 'ModelInput',
        field: [
          field('name', 1, FieldType.STRING),
          field('data_type', 2, FieldType.ENUM, { typeName: '.inference.DataType' }),
          field('dims', 4, FieldType.INT64, { repeated: true }),
        ],
      },
      {
        name: 'ModelOutput',
        field: [
          field('name', 1, FieldType.STRING),
          field('data_type', 2, FieldType.ENUM, { typeName: '.inference.DataType' }),
          field('dims', 3, FieldType.INT64, { repeated: true }),
          field('label_filename', 4, FieldType.STRING),
        ],
      },
      {
        name: 'ModelDynamicBatching',
        field: [
          field('preferred_batch_size', 1, FieldType.INT32, { repeated: true }),
          field('max_queue_delay_microseconds', 2, FieldType.UINT64),
        ],
      },
      { name: 'ModelParameter', field: [field('string_value', 1, FieldType.STRING)] },
      {
        name: 'ModelConfig',
        field: [
          field('name', 1, FieldType.STRING),
          field('platform', 2, FieldType.STRING),
          field('backend', 17, FieldType.STRING),
          field('max_batch_size', 4, FieldType.INT32),
          messageField('input', 5, 'ModelInput', true),
          messageField('output', 6, 'ModelOutput', true),
          messageField('dynamic_batching', 11, 'ModelDynamicBatching'),
          messageField('instance_group', 7, 'ModelInstanceGroup', true),
          messageField('parameters', 14, 'ModelConfig.ParametersEntry', true),
        ],
        nestedType: [
          {
            name: 'ParametersEntry',
            field: [field('key', 1, FieldType.STRING), field('value', 2, FieldType.MESSAGE, { typeName: '.inference.ModelParameter' })],
            options: { mapEntry: true },
          },
        ],
      },
    ],
  });
  const schema = createFileRegistry(file, () => undefined).getMessage('inference.ModelConfig');
  if (schema === undefined) throw new Error('inference.ModelConfig missing from its own descriptor');
  cachedSchema = schema;
  return schema;
}

function camel(name: string): string {
  return name.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}
