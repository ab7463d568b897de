/**
 * `fracture-service export`: turns a saved model directory into an ONNX file (`--format onnx`) or a
 * Triton model repository entry (`--format triton`), and prints what it wrote. Parses and prints; the
 * export lives in src/ml/export (docs/export.md describes the files).
 *
 * Every input problem (missing `--model`, unknown format, bad number, unsupported layer) is an
 * `MlError`, so `main` prints `CODE: message` and exits 2, like the other commands' input errors.
 * @module
 */
import path from 'node:path';
import type { Command } from 'commander';
import { backendFromEnvironment } from '../../infra/config.ts';
import { initBackend } from '../../ml/backend/select-backend.ts';
import { MlError } from '../../ml/errors.ts';
import { exportModelDir } from '../../ml/export/export-model-dir.ts';
import { ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from '../../ml/export/index.ts';
import {
  DEFAULT_TRITON_MAX_BATCH_SIZE,
  DEFAULT_TRITON_MAX_QUEUE_DELAY_US,
  sanitiseTritonModelName,
  writeTritonRepository,
  type TritonRepositoryInfo,
} from '../../ml/export/triton.ts';
import { writeFileAtomic } from '../../ml/util/atomic-file.ts';
import { isPathInside } from '../../ml/util/paths.ts';

/** Formats `export` writes. */
export const EXPORT_FORMATS = ['onnx', 'triton'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

interface ExportCommandOptions {
  model?: string;
  format?: string;
  out?: string;
  name?: string;
  maxBatchSize?: number;
  preferredBatchSizes?: number[];
  maxQueueDelayUs?: number;
  gpu?: boolean;
  instances?: number;
  json?: boolean;
}

/** What `export --json` prints for `--format onnx`. */
export interface OnnxExportReport {
  format: 'onnx';
  file: string;
  bytes: number;
  architecture: string;
  input: { name: string; type: 'float32'; shape: (string | number)[]; layout: 'NHWC'; preprocessing: string };
  output: { name: string; type: 'float32'; shape: (string | number)[]; classNames: string[] };
}

/** What `export --json` prints for `--format triton`. */
export interface TritonExportReport {
  format: 'triton';
  repository: string;
  name: string;
  modelDir: string;
  files: { config: string; labels: string; onnx: string };
  bytes: number;
  maxBatchSize: number;
  input: { name: string; dataType: 'TYPE_FP32'; dims: number[] };
  output: { name: string; dataType: 'TYPE_FP32'; dims: number[]; labels: string };
}

/** Registers `export` on `program`. */
export function registerExportCommand(program: Command): void {
  program
    .command('export')
    .description('Export a saved model to ONNX, or to a Triton Inference Server model repository (docs/export.md).')
    .option('--model <dir>', 'saved model folder (model.json + metadata.json); required')
    .option('--format <format>', `${EXPORT_FORMATS.join(' or ')}; required`)
    .option('--out <path>', 'onnx: the file to write (default ./<model folder name>.onnx); triton: the repository folder (required)')
    .option('--name <name>', 'triton: model name, REPO/<name> (default: the model folder name, sanitised)')
    .option('--max-batch-size <n>', `triton: max_batch_size (default ${DEFAULT_TRITON_MAX_BATCH_SIZE})`, count('--max-batch-size', 1))
    .option('--preferred-batch-sizes <list>', 'triton: comma-separated dynamic_batching preferred sizes (default 16 and the max batch size)', countList('--preferred-batch-sizes'))
    .option('--max-queue-delay-us <n>', `triton: dynamic_batching max_queue_delay_microseconds (default ${DEFAULT_TRITON_MAX_QUEUE_DELAY_US})`, count('--max-queue-delay-us', 0))
    .option('--gpu', 'triton: instance_group KIND_GPU instead of KIND_CPU')
    .option('--instances <n>', 'triton: instance_group count (default 1)', count('--instances', 1))
    .option('--json', 'print JSON')
    .action(async (options: ExportCommandOptions) => {
      const modelDir = options.model;
      if (modelDir === undefined) throw new MlError('INVALID_ARGUMENT', '--model DIR is required (a saved model folder).');
      const format = parseFormat(options.format);
      await initBackend(backendFromEnvironment());
      const report = format === 'onnx' ? await exportOnnx(modelDir, options) : await exportTriton(modelDir, options);
      process.stdout.write(options.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
    });
}

async function exportOnnx(modelDir: string, options: ExportCommandOptions): Promise<OnnxExportReport> {
  const tritonOnly = (['name', 'maxBatchSize', 'preferredBatchSizes', 'maxQueueDelayUs', 'gpu', 'instances'] as const).filter((key) => options[key] !== undefined);
  if (tritonOnly.length > 0) throw new MlError('INVALID_ARGUMENT', `${tritonOnly.map(flagName).join(', ')} only apply to --format triton.`);
  const source = path.resolve(modelDir);
  const file = path.resolve(options.out ?? `${path.basename(source)}.onnx`);
  if (isPathInside(file, source)) {
    // The directory's own model.onnx is listed with its sha256 in metadata.json; rewriting it (or adding
    // files) belongs to saveModel.
    throw new MlError('INVALID_ARGUMENT', `--out ${file} is inside the model directory; write the ONNX file elsewhere.`);
  }
  const { onnx, metadata } = await exportModelDir(source);
  await writeFileAtomic(file, onnx);
  return {
    format: 'onnx',
    file,
    bytes: onnx.byteLength,
    architecture: metadata.architecture,
    input: { name: ONNX_INPUT_NAME, type: 'float32', shape: ['batch', ...metadata.inputShape], layout: 'NHWC', preprocessing: describePreprocessing(metadata.preprocessing) },
    output: { name: ONNX_OUTPUT_NAME, type: 'float32', shape: ['batch', metadata.classNames.length], classNames: metadata.classNames },
  };
}

async function exportTriton(modelDir: string, options: ExportCommandOptions): Promise<TritonExportReport> {
  if (options.out === undefined) throw new MlError('INVALID_ARGUMENT', '--format triton needs --out REPO (the model repository folder).');
  const repository = path.resolve(options.out);
  const info: TritonRepositoryInfo = await writeTritonRepository({
    modelDir,
    repoDir: repository,
    name: options.name ?? sanitiseTritonModelName(path.basename(path.resolve(modelDir))),
    ...(options.maxBatchSize !== undefined && { maxBatchSize: options.maxBatchSize }),
    ...(options.preferredBatchSizes !== undefined && { preferredBatchSizes: options.preferredBatchSizes }),
    ...(options.maxQueueDelayUs !== undefined && { maxQueueDelayMicroseconds: options.maxQueueDelayUs }),
    ...(options.instances !== undefined && { instanceCount: options.instances }),
    device: options.gpu === true ? 'gpu' : 'cpu',
  });
  return {
    format: 'triton',
    repository,
    name: info.name,
    modelDir: info.modelDir,
    files: { config: info.configFile, labels: info.labelsFile, onnx: info.onnxFile },
    bytes: info.onnxBytes,
    maxBatchSize: info.maxBatchSize,
    input: { name: info.input.name, dataType: 'TYPE_FP32', dims: info.input.dims },
    output: { name: info.output.name, dataType: 'TYPE_FP32', dims: info.output.dims, labels: info.labelsFile },
  };
}

function formatReport(report: OnnxExportReport | TritonExportReport): string {
  if (report.format === 'onnx') {
    return [
      `wrote ${report.file} (${report.bytes} bytes, ONNX, ${report.architecture})`,
      `  input  "${report.input.name}"  float32 [${report.input.shape.join(', ')}] (NHWC, preprocessed: ${report.input.preprocessing})`,
      `  output "${report.output.name}" float32 [${report.output.shape.join(', ')}]: ${report.output.classNames.join(', ')}`,
      '',
    ].join('\n');
  }
  return [
    `wrote Triton model "${report.name}" to ${report.modelDir}`,
    `  ${report.files.config}`,
    `  ${report.files.labels}`,
    `  ${report.files.onnx} (${report.bytes} bytes)`,
    `  input  "${report.input.name}"  TYPE_FP32 dims [${report.input.dims.join(', ')}], batches up to ${report.maxBatchSize}`,
    `  output "${report.output.name}" TYPE_FP32 dims [${report.output.dims.join(', ')}], labels.txt`,
    `serve it: tritonserver --model-repository=${report.repository}`,
    '',
  ].join('\n');
}

/**
 * `unit normalisation, letterbox resize` from a preprocessing record (src/ml/data `preprocessingRecord`);
 * anything else is summarised as recorded in the file's metadata.
 */
function describePreprocessing(record: Record<string, unknown>): string {
  const field = (key: string): unknown => {
    const value = record[key];
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['mode'] : undefined;
  };
  const normalisation = field('normalisation');
  const resize = field('resize');
  return typeof normalisation === 'string' && typeof resize === 'string'
    ? `${normalisation} normalisation, ${resize} resize`
    : 'as recorded in the metadata';
}

function parseFormat(value: string | undefined): ExportFormat {
  if (value === undefined) throw new MlError('INVALID_ARGUMENT', `--format is required: ${EXPORT_FORMATS.join(' or ')}.`);
  if (!(EXPORT_FORMATS as readonly string[]).includes(value)) {
    throw new MlError('INVALID_ARGUMENT', `unknown format "${value}"; valid: ${EXPORT_FORMATS.join(', ')}.`);
  }
  return value as ExportFormat;
}

/**
 * An integer option >= `min`. Throws `MlError` rather than commander's `InvalidArgumentError`, so a bad
 * number exits 2 with `INVALID_ARGUMENT: ...` like every other input error of this command.
 */
function count(flag: string, min: number): (value: string) => number {
  return (value) => {
    if (!/^\d+$/.test(value) || Number(value) < min || !Number.isSafeInteger(Number(value))) {
      throw new MlError('INVALID_ARGUMENT', `${flag} expects an integer >= ${min}, got "${value}".`);
    }
    return Number(value);
  };
}

function countList(flag: string): (value: string) => number[] {
  const one = count(flag, 1);
  return (value) => value.split(',').map((item) => one(item.trim()));
}

/** `maxBatchSize` -> `--max-batch-size`. */
function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}


