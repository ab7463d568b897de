/**
 * `npm run bench`: training and inference images/s per architecture, size and backend, peak RSS, and
 * the PyTorch CPU reference measured in the same run, written as JSON and a Markdown table
 * (bench/README.md explains how to read them). Never part of the tests.
 *
 * Every measurement runs in its own process (fresh wasm heap, its own peak RSS) and strictly one at a
 * time, PyTorch included: the machine has 2 cores, and overlapping runs would measure each other.
 * @example
 * npm run bench -- --quick
 * npm run bench -- --arch resnet50 --size 128 --backend wasm --mode infer
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killActiveChildren, runJsonChild } from './child-process.ts';
import {
  USAGE,
  buildPlan,
  describeItem,
  estimateSeconds,
  parseBenchArgs,
  type BenchConfig,
  type MeasurementPoint,
  type PlanItem,
} from './plan.ts';
import { detectPytorch, runPytorch, type PytorchAvailability, type PytorchResult } from './pytorch.ts';
import { buildRows, machineInfo, markdownTable, targetSummary, type MeasurementRecord } from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const measureScript = path.join(repoRoot, 'bench', 'measure.ts');

function formatDuration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  const minutes = Math.round(seconds / 60);
  return minutes < 90 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

function timestamp(date: Date): string {
  return date.toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
}

/**
 * Runs one of our measurements in a fresh Node process (or `--processes` identical ones at once).
 * When training does not fit in memory at the full batch, the process stops with the micro-batch
 * size that worked (`status: "reduced"`) and the point is measured again from that size, so that
 * neither its speed nor its peak RSS is that of a process that first filled its heap.
 */
async function measure(point: MeasurementPoint, config: BenchConfig): Promise<MeasurementRecord> {
  let microBatch: number | undefined;
  const attempts: MeasurementRecord[] = [];
  for (;;) {
    const runs = await Promise.all(Array.from({ length: config.processes }, () => measureOnce(point, config, microBatch)));
    const record = runs.length === 1 ? (runs[0] as MeasurementRecord) : combine(runs);
    const reduced = runs
      .filter((r) => r.detail?.status === 'reduced' && r.microBatchSize !== undefined)
      .map((r) => r.microBatchSize as number);
    const reducedTo = reduced.length > 0 ? Math.min(...reduced) : undefined;
    if (reducedTo === undefined || reducedTo >= (microBatch ?? config.batch)) {
      if (attempts.length > 0) record.outOfMemoryAttempts = attempts;
      return record;
    }
    process.stdout.write(`  out of memory at ${microBatch ?? config.batch} samples per pass: measuring again with micro-batches of ${reducedTo}\n`);
    attempts.push({ ...record, detail: undefined, perProcess: undefined });
    microBatch = reducedTo;
  }
}

/**
 * One record from concurrent identical processes: images/s = all timed images over the span from
 * the first timed step's start to the last one's end (conservative: the windows nearly coincide).
 */
function combine(runs: MeasurementRecord[]): MeasurementRecord {
  const first = runs[0] as MeasurementRecord;
  const record: MeasurementRecord = {
    ...first,
    status: runs.every((r) => r.status === 'ok') ? 'ok' : runs.some((r) => r.status === 'timeout') ? 'timeout' : 'error',
    wallSeconds: Math.max(...runs.map((r) => r.wallSeconds)),
    perProcess: runs,
  };
  delete record.detail;
  const rss = runs.map((r) => r.peakRssMb).filter((v): v is number => v !== undefined);
  if (rss.length > 0) record.peakRssMb = Math.max(...rss);
  const failed = runs.find((r) => r.status !== 'ok');
  if (failed !== undefined) {
    record.error = failed.error ?? failed.status;
    delete record.imagesPerSecond;
    return record;
  }
  const windows = runs.map((r) => r.detail?.timedWindowMs as [number, number]);
  const span = (Math.max(...windows.map((w) => w[1])) - Math.min(...windows.map((w) => w[0]))) / 1000;
  const images = runs.reduce((sum, r) => sum + (r.steps ?? 0) * r.batch, 0);
  record.imagesPerSecond = images / span;
  record.steps = Math.min(...runs.map((r) => r.steps ?? 0));
  record.medianStepSeconds = Math.max(...runs.map((r) => r.medianStepSeconds ?? 0));
  return record;
}

async function measureOnce(point: MeasurementPoint, config: BenchConfig, microBatch: number | undefined): Promise<MeasurementRecord> {
  const args = [
    // Without --no-liftoff V8's baseline wasm tier left steps up to 2x slower (DESIGN.md §5).
    '--no-liftoff', '--import', 'tsx', measureScript,
    '--arch', point.arch,
    '--size', String(point.size),
    '--backend', point.backend,
    '--mode', point.mode,
    '--seconds', String(config.seconds),
    '--batch', String(config.batch),
    '--classes', String(config.numClasses),
    '--warmup', String(point.mode === 'train' ? config.warmupTrain : config.warmupInfer),
    '--min-steps', String(config.minSteps),
    ...(microBatch === undefined ? [] : ['--micro-batch', String(microBatch)]),
    // Leave the child time to finish its last step and report before the hard kill.
    '--budget', String(Math.round(config.timeoutSeconds * 0.85)),
  ];
  const outcome = await runJsonChild(process.execPath, args, { cwd: repoRoot, timeoutSeconds: config.timeoutSeconds });
  const detail = outcome.json;
  const record: MeasurementRecord = {
    ...point,
    batch: config.batch,
    processes: 1,
    status: outcome.status,
    wallSeconds: outcome.wallSeconds,
  };
  if (detail !== undefined) record.detail = detail;
  const num = (key: string): number | undefined => (typeof detail?.[key] === 'number' ? detail[key] : undefined);
  const assign = <K extends 'imagesPerSecond' | 'medianStepSeconds' | 'steps' | 'peakRssMb' | 'wasmHeapMb' | 'microBatchSize'>(key: K): void => {
    const value = num(key);
    if (value !== undefined) record[key] = value;
  };
  if (outcome.status === 'ok' && detail?.status === 'reduced') {
    assign('microBatchSize');
    record.status = 'error';
    record.error = `out of memory: training needs micro-batches of ${String(detail.microBatchSize)}`;
  } else if (outcome.status === 'ok') {
    assign('imagesPerSecond');
    assign('medianStepSeconds');
    assign('steps');
    assign('wasmHeapMb');
    if (point.mode === 'train') assign('microBatchSize');
  }
  assign('peakRssMb');
  if (outcome.status === 'timeout') {
    record.error = `killed after the ${config.timeoutSeconds} s limit (--timeout)`;
  } else if (outcome.status === 'error') {
    const reported = typeof detail?.error === 'string' ? detail.error : undefined;
    record.error = reported ?? (outcome.stderrTail.split('\n').slice(-3).join(' | ') || `exit code ${outcome.exitCode}`);
  }
  return record;
}

function progressLine(record: MeasurementRecord | PytorchResult): string {
  if ('backend' in record) {
    if (record.status !== 'ok') return `${record.status}: ${record.error ?? ''}`;
    const rss = record.peakRssMb === undefined ? '' : `, peak RSS ${record.peakRssMb.toFixed(0)} MB`;
    const micro = record.microBatchSize !== undefined && record.microBatchSize < record.batch
      ? `, micro-batches of ${record.microBatchSize}`
      : '';
    return `${record.imagesPerSecond?.toFixed(2)} images/s (${record.steps} steps, median ${record.medianStepSeconds?.toFixed(2)} s/step${rss}${micro})`;
  }
  if (record.status !== 'ok') return `${record.status}: ${record.error ?? ''}`;
  const train = record.trainImagesPerSecond === undefined ? '' : `, train ${record.trainImagesPerSecond.toFixed(2)}`;
  return `infer ${record.inferImagesPerSecond?.toFixed(2)}${train} images/s`;
}

function markdownReport(
  report: { startedAt: string; finishedAt?: string; machine: Record<string, unknown>; pytorch: PytorchAvailability },
  config: BenchConfig,
  table: string,
  summary: string,
  failures: string[],
  notes: string[],
): string {
  const m = report.machine;
  return [
    `# fracture-service bench, ${report.startedAt}`,
    '',
    `Machine: ${String(m.cpuCount)} x ${String(m.cpuModel)}, ${String(m.totalMemoryMb)} MB; Node ${String(m.node)}; ` +
      `tfjs ${String(m.tfjs)}; PyTorch ${report.pytorch.torch ?? 'not run'} (${config.pytorchThreads} threads). ` +
      `Load average at start: ${(m.loadAverageAtStart as number[]).map((v) => v.toFixed(2)).join(' ')}.`,
    `Batch ${config.batch}, 3 channels, ${config.numClasses} classes, >= ${config.seconds} s and >= ${config.minSteps} timed steps per measurement ` +
      `after ${config.warmupInfer} (inference) / ${config.warmupTrain} (training) warm-up steps. Our wasm runs one thread per process` +
      (config.processes > 1 ? `; "x${config.processes}" rows: ${config.processes} identical processes at once, images/s summed.` : '.'),
    '"(mb N)": training did not fit in the 4 GiB wasm heap at the full batch and accumulated micro-batches of N (same update).',
    '',
    table,
    '',
    summary,
    ...(failures.length > 0 ? ['', 'Failures:', ...failures.map((f) => `- ${f}`)] : []),
    ...(notes.length > 0 ? ['', 'Notes:', ...notes.map((n) => `- ${n}`)] : []),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  let parsed: BenchConfig | 'help';
  try {
    parsed = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (parsed === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const config = parsed;
  const notes: string[] = [];
  let pytorch: PytorchAvailability = { available: false, note: 'PyTorch reference not requested (--no-pytorch).' };
  if (config.pytorch) {
    pytorch = detectPytorch();
    if (!pytorch.available) config.pytorch = false;
  }
  if (pytorch.note !== undefined) notes.push(pytorch.note);
  const { items, skipped } = buildPlan(config);
  if (skipped.length > 0) notes.push(`Skipped sizes: ${skipped.join('; ')}.`);
  if (config.backends.includes('cpu') && !config.cpuAll) {
    notes.push('cpu backend only where it finishes in reasonable time: inference of cnn (all sizes) and resnet50 (<= 64 px); ' +
      'no training (one cnn 64 px step took ~330 s). --cpu-all runs it everywhere.');
  }
  const [load] = os.loadavg();
  const cpuCount = os.availableParallelism();
  if (load !== undefined && load > 0.5 * cpuCount) {
    notes.push(`Load average ${load.toFixed(2)} on ${cpuCount} cores at start: other processes are running, so every ` +
      "number is lower than on a quiet machine, and PyTorch's 2 threads suffer more than our 1 (ratios look better than they are).");
  }
  if (items.length === 0) {
    process.stderr.write(`Nothing to measure with these flags.\n${notes.map((n) => `Note: ${n}\n`).join('')}`);
    process.exitCode = 2;
    return;
  }

  const estimates = items.map((item) => estimateSeconds(item, config));
  const total = estimates.reduce((a, b) => a + b, 0);
  process.stdout.write(`Plan: ${items.length} measurements, estimated ${formatDuration(total)} (rough; sequential, one process each).\n`);
  items.forEach((item, i) => process.stdout.write(`  ${String(i + 1).padStart(2)}. ${describeItem(item).padEnd(36)} ~${formatDuration(estimates[i] as number)}\n`));
  for (const note of notes) process.stdout.write(`Note: ${note}\n`);
  if (config.dryRun) return;

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killActiveChildren();
      process.stderr.write(`\nInterrupted (${signal}); the JSON written so far is kept.\n`);
      process.exit(130);
    });
  }
  const started = new Date();
  const jsonPath = path.resolve(config.out ?? path.join(repoRoot, 'bench', 'results', `bench-${timestamp(started)}.json`));
  const mdPath = jsonPath.replace(/\.json$/i, '') + '.md';
  mkdirSync(path.dirname(jsonPath), { recursive: true });

  const measurements: MeasurementRecord[] = [];
  const references: PytorchResult[] = [];
  const report = {
    startedAt: started.toISOString(),
    finishedAt: undefined as string | undefined,
    machine: machineInfo(),
    pytorch,
    config,
    estimatedSeconds: total,
    measurements,
    pytorchResults: references,
    rows: [] as ReturnType<typeof buildRows>,
    notes,
  };
  const save = (): void => {
    report.rows = buildRows(measurements, references);
    writeFileSync(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  };

  for (const [i, item] of items.entries()) {
    const label = `[${i + 1}/${items.length}] ${describeItem(item)}`;
    process.stdout.write(`${label} ...\n`);
    let line: string;
    if (item.kind === 'pytorch') {
      const result = await runPytorch(item, {
        repoRoot,
        batch: config.batch,
        threads: config.pytorchThreads,
        seconds: config.seconds,
        numClasses: config.numClasses,
        timeoutSeconds: config.timeoutSeconds,
      });
      references.push(result);
      line = progressLine(result);
    } else {
      const { kind: _kind, ...point } = item as Extract<PlanItem, { kind: 'ours' }>;
      const record = await measure(point, config);
      record.processes = config.processes;
      measurements.push(record);
      line = progressLine(record);
    }
    const elapsed = (Date.now() - started.getTime()) / 1000;
    process.stdout.write(`${label}: ${line} [${formatDuration(elapsed)} elapsed]\n`);
    save();
  }

  report.finishedAt = new Date().toISOString();
  save();
  const rows = report.rows;
  const table = markdownTable(rows);
  const summary = targetSummary(rows);
  const failures = [
    ...measurements.filter((m) => m.status !== 'ok').map((m) => `${m.arch} ${m.size}px ${m.backend} ${m.mode}: ${m.status}: ${m.error ?? ''}`),
    ...references.filter((p) => p.status !== 'ok').map((p) => `${p.arch} ${p.size}px pytorch: ${p.status}: ${p.error ?? ''}`),
  ];
  writeFileSync(mdPath, markdownReport(report, config, table, summary, failures, notes));
  const took = (Date.now() - started.getTime()) / 1000;
  process.stdout.write(`\n${table}\n\n${summary}\n`);
  for (const failure of failures) process.stdout.write(`Failure: ${failure}\n`);
  process.stdout.write(`\nTook ${formatDuration(took)} (estimated ${formatDuration(total)}).\nWrote ${jsonPath}\nWrote ${mdPath}\n`);
}

await main();
