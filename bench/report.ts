/**
 * The bench's outputs: machine facts, one row per (architecture, size, backend) with both modes, the
 * PyTorch reference and the ratios against the issue's target, and the Markdown table.
 * @module
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type { Architecture } from '../src/ml/models/index.ts';
import type { BenchMode, MeasurementBackend } from './plan.ts';
import type { PytorchResult } from './pytorch.ts';

/** Target of the issue: WASM images/s at least this fraction of PyTorch's, at 128 and 224 px. */
export const TARGET = { infer: 0.3, train: 0.2, sizes: [128, 224] as readonly number[] } as const;

/**
 * Target of issue 6: ONNX Runtime inference at least this many times PyTorch's images/s, at each
 * architecture's reference size (InceptionV3 at its native 299 px, the others at 224 px).
 */
export const ONNX_TARGET = {
  ratio: 1.5,
  points: { resnet50: [224], inceptionv3: [299], vgg16: [224] } as Readonly<Partial<Record<Architecture, readonly number[]>>>,
} as const;

/** One of our measurements as recorded in the JSON report. */
export interface MeasurementRecord {
  arch: Architecture;
  size: number;
  backend: MeasurementBackend;
  mode: BenchMode;
  batch: number;
  /** Concurrent identical processes; `imagesPerSecond` is their combined rate. */
  processes: number;
  status: 'ok' | 'error' | 'timeout';
  imagesPerSecond?: number;
  medianStepSeconds?: number;
  steps?: number;
  /** Peak resident set of the measurement process (the largest one with --processes), MiB. */
  peakRssMb?: number;
  /** Final (= peak) size of the wasm heap, MiB. */
  wasmHeapMb?: number;
  /** Training: samples per forward/backward pass (less than the batch when memory forced a split). */
  microBatchSize?: number;
  wallSeconds: number;
  error?: string;
  /** Processes stopped by out-of-memory before this measurement ran at a smaller micro-batch. */
  outOfMemoryAttempts?: MeasurementRecord[];
  /** Everything the measurement process printed. */
  detail?: Record<string, unknown>;
  /** With --processes > 1: each process's own record. */
  perProcess?: MeasurementRecord[];
  /** With --repeat > 1: every run of this measurement (the record is the fastest). */
  runs?: RunSummary[];
}

/** One run of a repeated measurement. */
export interface RunSummary {
  status: string;
  imagesPerSecond?: number;
  trainImagesPerSecond?: number;
  /** 1-minute load average at the end of the run, when known. */
  load?: number;
}

/** One line of the table. */
export interface TableRow {
  arch: Architecture;
  size: number;
  backend: MeasurementBackend;
  processes: number;
  infer?: MeasurementRecord;
  train?: MeasurementRecord;
  pytorch?: PytorchResult;
  inferRatio?: number;
  trainRatio?: number;
  /** `yes`/`no` for wasm at the target sizes, `n/a` elsewhere, `?` when a number is missing. */
  targetMet: 'yes' | 'no' | 'n/a' | '?';
  peakRssMb?: number;
}

/** Facts about the machine and software that the numbers depend on. */
export function machineInfo(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model,
    cpuCount: cpus.length,
    cpuSpeedMHz: cpus[0]?.speed,
    totalMemoryMb: Math.round(os.totalmem() / 2 ** 20),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    v8: process.versions.v8,
    tfjs: tf.version.tfjs,
    onnxruntimeNode: onnxRuntimeVersion(),
    loadAverageAtStart: os.loadavg(),
  };
}

/** The installed onnxruntime-node version (read from its package, without loading the runtime). */
function onnxRuntimeVersion(): string | undefined {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version?: string }).version;
  } catch {
    return undefined;
  }
}

function ratio(ours: MeasurementRecord | undefined, reference: number | undefined): number | undefined {
  if (ours?.status !== 'ok' || ours.imagesPerSecond === undefined || reference === undefined || reference <= 0) {
    return undefined;
  }
  return ours.imagesPerSecond / reference;
}

/**
 * Groups the tfjs measurements into rows (in first-seen order) and computes the ratios to PyTorch.
 * ONNX Runtime measurements have their own table ({@link buildOnnxRows}).
 */
export function buildRows(measurements: readonly MeasurementRecord[], pytorch: readonly PytorchResult[]): TableRow[] {
  const rows = new Map<string, TableRow>();
  for (const m of measurements) {
    if (m.backend === 'onnx') continue;
    const key = `${m.arch}/${m.size}/${m.backend}/${m.processes}`;
    let row = rows.get(key);
    if (row === undefined) {
      row = { arch: m.arch, size: m.size, backend: m.backend, processes: m.processes, targetMet: 'n/a' };
      rows.set(key, row);
    }
    row[m.mode] = m;
  }
  for (const row of rows.values()) {
    const reference = pytorch.find((p) => p.arch === row.arch && p.size === row.size);
    if (reference !== undefined) row.pytorch = reference;
    const inferRatio = ratio(row.infer, reference?.inferImagesPerSecond);
    const trainRatio = ratio(row.train, reference?.trainImagesPerSecond);
    if (inferRatio !== undefined) row.inferRatio = inferRatio;
    if (trainRatio !== undefined) row.trainRatio = trainRatio;
    const rss = [row.infer?.peakRssMb, row.train?.peakRssMb].filter((v): v is number => v !== undefined);
    if (rss.length > 0) row.peakRssMb = Math.max(...rss);
    if (row.backend === 'wasm' && TARGET.sizes.includes(row.size)) {
      // A mode that was not measured (--mode) does not count against the target.
      const checks = [
        row.infer === undefined ? true : inferRatio === undefined ? undefined : inferRatio >= TARGET.infer,
        row.train === undefined ? true : trainRatio === undefined ? undefined : trainRatio >= TARGET.train,
      ];
      row.targetMet = checks.includes(false) ? 'no' : checks.includes(undefined) ? '?' : 'yes';
    }
  }
  return [...rows.values()];
}

/** Images/s with 3 significant digits, or the failure (`timeout`, `error`), or `-` when not run. */
function rate(m: MeasurementRecord | undefined): string {
  if (m === undefined) return '-';
  if (m.status !== 'ok' || m.imagesPerSecond === undefined) return m.status === 'timeout' ? 'timeout' : 'error';
  const split = m.microBatchSize !== undefined && m.microBatchSize < m.batch;
  return split ? `${significant(m.imagesPerSecond)} (mb ${m.microBatchSize})` : significant(m.imagesPerSecond);
}

function significant(value: number | undefined): string {
  if (value === undefined) return '-';
  if (value >= 100) return value.toFixed(0);
  return value.toPrecision(3);
}

function pytorchRate(p: PytorchResult | undefined, key: 'inferImagesPerSecond' | 'trainImagesPerSecond'): string {
  if (p === undefined) return '-';
  const value = p[key];
  if (value === undefined) return p.status === 'ok' ? '-' : p.status;
  return significant(value);
}

function ratioText(value: number | undefined): string {
  return value === undefined ? '-' : `${value.toFixed(2)}x`;
}

/** The Markdown table of the rows (GitHub-flavoured). */
export function markdownTable(rows: readonly TableRow[]): string {
  const header = [
    'arch', 'size', 'backend', 'infer img/s', 'train img/s', 'peak RSS MB',
    'PyTorch infer', 'PyTorch train', 'infer ratio', 'train ratio',
    `target met (infer >= ${TARGET.infer}x, train >= ${TARGET.train}x)`,
  ];
  const lines = rows.map((r) => [
    r.arch,
    String(r.size),
    r.processes > 1 ? `${r.backend} x${r.processes}` : r.backend,
    rate(r.infer),
    rate(r.train),
    r.peakRssMb === undefined ? '-' : r.peakRssMb.toFixed(0),
    pytorchRate(r.pytorch, 'inferImagesPerSecond'),
    pytorchRate(r.pytorch, 'trainImagesPerSecond'),
    ratioText(r.inferRatio),
    ratioText(r.trainRatio),
    r.targetMet,
  ]);
  const numeric = new Set([1, 3, 4, 5, 6, 7, 8, 9]);
  const align = header.map((_, i) => (numeric.has(i) ? '---:' : '---'));
  return [header, align, ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** One-line summary of the target over the wasm rows at the target sizes. */
export function targetSummary(rows: readonly TableRow[]): string {
  const scoped = rows.filter((r) => r.backend === 'wasm' && TARGET.sizes.includes(r.size));
  if (scoped.length === 0) return `Target (wasm at ${TARGET.sizes.join('/')} px): not measured in this run.`;
  const met = scoped.filter((r) => r.targetMet === 'yes').length;
  const unknown = scoped.filter((r) => r.targetMet === '?').length;
  return `Target (wasm at ${TARGET.sizes.join('/')} px, infer >= ${TARGET.infer}x and train >= ${TARGET.train}x PyTorch): ` +
    `met at ${met} of ${scoped.length} points${unknown > 0 ? ` (${unknown} without a number)` : ''}.`;
}

/** One line of the ONNX Runtime table: ONNX inference beside tfjs wasm and PyTorch at one point. */
export interface OnnxRow {
  arch: Architecture;
  size: number;
  onnx: MeasurementRecord;
  /** tfjs wasm inference of the same point, if measured (with `--processes N`, N processes summed). */
  tfjs?: MeasurementRecord;
  pytorch?: PytorchResult;
  /** ONNX / PyTorch inference images/s. */
  pytorchRatio?: number;
  /** ONNX / tfjs wasm inference images/s. */
  tfjsRatio?: number;
  /** `yes`/`no` at the points of {@link ONNX_TARGET}, `n/a` elsewhere, `?` when a number is missing. */
  targetMet: 'yes' | 'no' | 'n/a' | '?';
}

/** The ONNX Runtime measurements with their ratios to PyTorch and to tfjs wasm, in measured order. */
export function buildOnnxRows(measurements: readonly MeasurementRecord[], pytorch: readonly PytorchResult[]): OnnxRow[] {
  return measurements
    .filter((m) => m.backend === 'onnx' && m.mode === 'infer')
    .map((onnx) => {
      const row: OnnxRow = { arch: onnx.arch, size: onnx.size, onnx, targetMet: 'n/a' };
      const tfjs = measurements.find((m) => m.backend === 'wasm' && m.mode === 'infer' && m.arch === onnx.arch && m.size === onnx.size);
      const reference = pytorch.find((p) => p.arch === onnx.arch && p.size === onnx.size);
      if (tfjs !== undefined) row.tfjs = tfjs;
      if (reference !== undefined) row.pytorch = reference;
      const pytorchRatio = ratio(onnx, reference?.inferImagesPerSecond);
      const tfjsRatio = ratio(onnx, tfjs?.status === 'ok' ? tfjs.imagesPerSecond : undefined);
      if (pytorchRatio !== undefined) row.pytorchRatio = pytorchRatio;
      if (tfjsRatio !== undefined) row.tfjsRatio = tfjsRatio;
      if (ONNX_TARGET.points[onnx.arch]?.includes(onnx.size) === true) {
        row.targetMet = pytorchRatio === undefined ? '?' : pytorchRatio >= ONNX_TARGET.ratio ? 'yes' : 'no';
      }
      return row;
    });
}

function onnxTargetPoints(): string {
  return Object.entries(ONNX_TARGET.points).map(([arch, sizes]) => `${arch} ${sizes.join('/')}`).join(', ');
}

/** The Markdown table of the ONNX Runtime rows. */
export function markdownOnnxTable(rows: readonly OnnxRow[]): string {
  const header = [
    'arch', 'size', 'ONNX infer img/s', 'tfjs wasm infer', 'PyTorch infer', 'ONNX / PyTorch', 'ONNX / tfjs',
    'peak RSS MB', 'RSS at end MB', 'load avg', `target met (ONNX >= ${ONNX_TARGET.ratio}x PyTorch)`,
  ];
  const lines = rows.map((r) => {
    const atEnd = r.onnx.detail?.rssAtEndMb;
    // The 1-minute load average when the ONNX measurement ended: the machine may be shared.
    const load = Array.isArray(r.onnx.detail?.loadAverage) ? (r.onnx.detail.loadAverage as unknown[])[0] : undefined;
    return [
      r.arch,
      String(r.size),
      rate(r.onnx),
      r.tfjs === undefined ? '-' : r.tfjs.processes > 1 ? `${rate(r.tfjs)} (x${r.tfjs.processes})` : rate(r.tfjs),
      pytorchRate(r.pytorch, 'inferImagesPerSecond'),
      ratioText(r.pytorchRatio),
      ratioText(r.tfjsRatio),
      r.onnx.peakRssMb === undefined ? '-' : r.onnx.peakRssMb.toFixed(0),
      typeof atEnd === 'number' ? atEnd.toFixed(0) : '-',
      typeof load === 'number' ? load.toFixed(2) : '-',
      r.targetMet,
    ];
  });
  const numeric = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const align = header.map((_, i) => (numeric.has(i) ? '---:' : '---'));
  return [header, align, ...lines].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

/** One-line summary of the ONNX target over its reference points. */
export function onnxTargetSummary(rows: readonly OnnxRow[]): string {
  const scoped = rows.filter((r) => r.targetMet !== 'n/a');
  const scope = `ONNX target (>= ${ONNX_TARGET.ratio}x PyTorch inference at ${onnxTargetPoints()} px)`;
  if (scoped.length === 0) return `${scope}: not measured in this run.`;
  const met = scoped.filter((r) => r.targetMet === 'yes').length;
  const unknown = scoped.filter((r) => r.targetMet === '?').length;
  return `${scope}: met at ${met} of ${scoped.length} points${unknown > 0 ? ` (${unknown} without a number)` : ''}.`;
}
