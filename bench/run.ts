/**
 * `npm run bench`: training and inference images/s per architecture, size and backend (tfjs wasm/cpu,
 * and ONNX Runtime inference), peak RSS, and the PyTorch CPU reference measured in the same run, then
 * optionally `/v1/predict` throughput per inference engine (bench/predict-engines.ts), written as JSON
 * and Markdown tables (bench/README.md explains how to read them). Never part of the tests.
 *
 * Every measurement runs in its own process (fresh wasm heap, its own peak RSS) and strictly one at a
 * time, PyTorch included: the machine has 2 cores, and overlapping runs would measure each other.
 * @example
 * npm run bench -- --quick
 * npm run bench -- --arch resnet50 --size 128 --backend wasm --mode infer
 * @module
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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
import {
  type RunSummary,
  buildOnnxRows,
  buildRows,
  machineInfo,
  markdownOnnxTable,
  markdownTable,
  onnxTargetSummary,
  targetSummary,
  type MeasurementRecord,
} from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const measureScript = path.join(repoRoot, 'bench', 'measure.ts');
const predictScript = path.join(repoRoot, 'bench', 'predict-engines.ts');

/** Hard limit of the /v1/predict comparison (it trains its models first), seconds. */
const PREDICT_TIMEOUT_SECONDS = 1800;

/** The /v1/predict engine comparison of the run (bench/predict-engines.ts). */
interface PredictOutcome {
  status: 'ok' | 'error' | 'timeout';
  /** Its own JSON report. */
  out: string;
  heading?: string;
  table?: string;
  error?: string;
  wallSeconds: number;
}

/** Rough duration of the /v1/predict comparison: training each model, then per engine ~25 s. */
function estimatePredictSeconds(config: BenchConfig): number {
  const cases = config.predictCases ?? [];
  return cases.reduce((sum, c) => sum + (c.arch === 'cnn' ? 10 : 40) * (c.size / 128) ** 2 + 25 * config.engines.length, 10);
}

/**
 * Runs bench/predict-engines.ts for `config.predictCases` in its own process (never beside a
 * measurement) and reads its table back from the JSON it writes.
 */
async function runPredict(config: BenchConfig, out: string): Promise<PredictOutcome> {
  const cases = (config.predictCases ?? []).map((c) => `${c.arch}:${c.size}`).join(',');
  const args = ['--no-liftoff', '--import', 'tsx', predictScript, '--cases', cases, '--engines', config.engines.join(','), '--out', out];
  const outcome = await runJsonChild(process.execPath, args, { cwd: repoRoot, timeoutSeconds: PREDICT_TIMEOUT_SECONDS });
  if (outcome.exitCode === 0 && existsSync(out)) {
    const report = JSON.parse(readFileSync(out, 'utf8')) as { heading?: string; table?: string };
    return { status: 'ok', out, ...(report.heading === undefined ? {} : { heading: report.heading }), ...(report.table === undefined ? {} : { table: report.table }), wallSeconds: outcome.wallSeconds };
  }
  return {
    status: outcome.status === 'timeout' ? 'timeout' : 'error',
    out,
    error: outcome.status === 'timeout' ? `killed after ${PREDICT_TIMEOUT_SECONDS} s` : outcome.stderrTail.split('\n').slice(-3).join(' | ') || `exit code ${outcome.exitCode}`,
    wallSeconds: outcome.wallSeconds,
  };
}

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
  // ONNX Runtime already uses every core in one process (intra-op threads = cores).
  const processes = point.backend === 'onnx' ? 1 : config.processes;
  for (;;) {
    const runs = await Promise.all(Array.from({ length: processes }, () => measureOnce(point, config, microBatch)));
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
    '--no-liftoff',
    // ONNX: lets the process free the tfjs model and the exported bytes before the session's RSS counts.
    ...(point.backend === 'onnx' ? ['--expose-gc'] : []),
    '--import', 'tsx', measureScript,
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

function runSummary(record: MeasurementRecord): RunSummary {
  const summary: RunSummary = { status: record.status };
  if (record.imagesPerSecond !== undefined) summary.imagesPerSecond = record.imagesPerSecond;
  const load = record.detail?.loadAverage;
  if (Array.isArray(load) && typeof load[0] === 'number') summary.load = load[0];
  return summary;
}

/**
 * Adds a run to the measurements; with --repeat, a later run of the same measurement replaces the
 * kept one only when faster (other processes only ever slow a run down). Returns the kept record.
 */
function keepFastest(measurements: MeasurementRecord[], record: MeasurementRecord): MeasurementRecord {
  const index = measurements.findIndex(
    (m) => m.arch === record.arch && m.size === record.size && m.backend === record.backend && m.mode === record.mode && m.processes === record.processes,
  );
  const previous = index < 0 ? undefined : measurements[index];
  if (previous === undefined) {
    measurements.push(record);
    return record;
  }
  const runs = [...(previous.runs ?? [runSummary(previous)]), runSummary(record)];
  const faster = record.status === 'ok' && (previous.status !== 'ok' || (record.imagesPerSecond ?? 0) > (previous.imagesPerSecond ?? 0));
  const kept = faster ? record : previous;
  kept.runs = runs;
  measurements[index] = kept;
  return kept;
}

/** As {@link keepFastest} for PyTorch: the fastest inference and the fastest training of the runs. */
function keepFastestPytorch(references: PytorchResult[], result: PytorchResult): PytorchResult {
  const summary = (r: PytorchResult) => ({
    status: r.status,
    ...(r.inferImagesPerSecond === undefined ? {} : { imagesPerSecond: r.inferImagesPerSecond }),
    ...(r.trainImagesPerSecond === undefined ? {} : { trainImagesPerSecond: r.trainImagesPerSecond }),
  });
  const index = references.findIndex((p) => p.arch === result.arch && p.size === result.size);
  const previous = index < 0 ? undefined : references[index];
  if (previous === undefined) {
    references.push(result);
    return result;
  }
  const kept: PytorchResult = { ...previous, runs: [...(previous.runs ?? [summary(previous)]), summary(result)] };
  const best = (a: number | undefined, b: number | undefined): number | undefined => (a === undefined ? b : b === undefined ? a : Math.max(a, b));
  const infer = best(previous.inferImagesPerSecond, result.inferImagesPerSecond);
  const train = best(previous.trainImagesPerSecond, result.trainImagesPerSecond);
  if (infer !== undefined) kept.inferImagesPerSecond = infer;
  if (train !== undefined) kept.trainImagesPerSecond = train;
  if (previous.status !== 'ok' && result.status === 'ok') {
    kept.status = 'ok';
    delete kept.error;
  }
  references[index] = kept;
  return kept;
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
  onnx: { table: string; summary: string } | undefined,
  predict: PredictOutcome | undefined,
  failures: string[],
  notes: string[],
): string {
  const m = report.machine;
  const onnxSection = onnx === undefined
    ? []
    : [
      '',
      `## ONNX Runtime inference (onnxruntime-node ${String(m.onnxruntimeNode)})`,
      '',
      `The same architecture (same seed) exported in-process with exportToOnnx and run by an ort.InferenceSession ` +
        `(intra-op threads = ${os.availableParallelism()} cores, inter-op 1, graph optimisation all), batch ${config.batch}. ` +
        '"tfjs wasm infer": the wasm row above. Peak RSS includes the export; "RSS at end": after the timed steps, tfjs model freed.',
      '',
      onnx.table,
      '',
      onnx.summary,
    ];
  const predictSection = predict?.status !== 'ok'
    ? []
    : ['', '## /v1/predict per engine (bench/predict-engines.ts)', '', predict.heading ?? '', '', predict.table ?? ''];
  return [
    `# fracture-service bench, ${report.startedAt}`,
    '',
    `Machine: ${String(m.cpuCount)} x ${String(m.cpuModel)}, ${String(m.totalMemoryMb)} MB; Node ${String(m.node)}; ` +
      `tfjs ${String(m.tfjs)}; PyTorch ${report.pytorch.torch ?? 'not run'} (${config.pytorchThreads} threads). ` +
      `Load average at start: ${(m.loadAverageAtStart as number[]).map((v) => v.toFixed(2)).join(' ')}.`,
    `Batch ${config.batch}, 3 channels, ${config.numClasses} classes, >= ${config.seconds} s and >= ${config.minSteps} timed steps per measurement ` +
      `after ${config.warmupInfer} (inference) / ${config.warmupTrain} (training) warm-up steps. Our wasm runs one thread per process` +
      (config.processes > 1 ? `; "x${config.processes}" rows: ${config.processes} identical processes at once, images/s summed.` : '.'),
    ...(config.repeat > 1
      ? [`Each (arch, size) group of measurements ran ${config.repeat} times, interleaved; every number is the fastest of its runs (all runs in the JSON).`]
      : []),
    '"(mb N)": training did not fit in the 4 GiB wasm heap at the full batch and accumulated micro-batches of N (same update).',
    '',
    table,
    '',
    summary,
    ...onnxSection,
    ...predictSection,
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
  if (config.engines.includes('onnx') && !config.modes.includes('infer')) {
    notes.push('ONNX Runtime measures inference only, and --mode has no infer: no ONNX points.');
  }
  if (config.engines.includes('tfjs') && config.backends.includes('cpu') && !config.cpuAll) {
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
  const predictEstimate = config.predictCases === undefined ? 0 : estimatePredictSeconds(config);
  const total = estimates.reduce((a, b) => a + b, 0) + predictEstimate;
  process.stdout.write(`Plan: ${items.length} measurements, estimated ${formatDuration(total)} (rough; sequential, one process each).\n`);
  items.forEach((item, i) => process.stdout.write(`  ${String(i + 1).padStart(2)}. ${describeItem(item).padEnd(36)} ~${formatDuration(estimates[i] as number)}\n`));
  if (config.predictCases !== undefined) {
    const cases = config.predictCases.map((c) => `${c.arch}:${c.size}`).join(',');
    process.stdout.write(`  then /v1/predict at 32 concurrent per engine (${config.engines.join(', ')}) for ${cases} ~${formatDuration(predictEstimate)}\n`);
  }
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
    onnxRows: [] as ReturnType<typeof buildOnnxRows>,
    predict: undefined as PredictOutcome | undefined,
    notes,
  };
  const save = (): void => {
    report.rows = buildRows(measurements, references);
    report.onnxRows = buildOnnxRows(measurements, references);
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
      const kept = keepFastestPytorch(references, result);
      line = progressLine(result) + (kept.runs === undefined ? '' : ` (fastest of ${kept.runs.length}: ${progressLine(kept)})`);
    } else {
      const { kind: _kind, ...point } = item as Extract<PlanItem, { kind: 'ours' }>;
      const record = await measure(point, config);
      record.processes = point.backend === 'onnx' ? 1 : config.processes;
      const kept = keepFastest(measurements, record);
      line = progressLine(record) + (kept.runs === undefined ? '' : ` (fastest of ${kept.runs.length}: ${kept.imagesPerSecond?.toFixed(2) ?? kept.status})`);
    }
    const elapsed = (Date.now() - started.getTime()) / 1000;
    process.stdout.write(`${label}: ${line} [${formatDuration(elapsed)} elapsed]\n`);
    save();
  }

  if (config.predictCases !== undefined) {
    process.stdout.write('/v1/predict per engine (bench/predict-engines.ts) ...\n');
    report.predict = await runPredict(config, jsonPath.replace(/\.json$/i, '') + '-predict.json');
    const p = report.predict;
    process.stdout.write(p.status === 'ok' ? `/v1/predict per engine: done, ${p.out}\n` : `/v1/predict per engine: ${p.status}: ${p.error ?? ''}\n`);
    save();
  }

  report.finishedAt = new Date().toISOString();
  save();
  const rows = report.rows;
  const table = markdownTable(rows);
  const summary = targetSummary(rows);
  const onnx = report.onnxRows.length > 0
    ? { table: markdownOnnxTable(report.onnxRows), summary: onnxTargetSummary(report.onnxRows) }
    : undefined;
  const failures = [
    ...measurements.filter((m) => m.status !== 'ok').map((m) => `${m.arch} ${m.size}px ${m.backend} ${m.mode}: ${m.status}: ${m.error ?? ''}`),
    ...references.filter((p) => p.status !== 'ok').map((p) => `${p.arch} ${p.size}px pytorch: ${p.status}: ${p.error ?? ''}`),
    ...(report.predict !== undefined && report.predict.status !== 'ok' ? [`/v1/predict per engine: ${report.predict.status}: ${report.predict.error ?? ''}`] : []),
  ];
  writeFileSync(mdPath, markdownReport(report, config, table, summary, onnx, report.predict, failures, notes));
  const took = (Date.now() - started.getTime()) / 1000;
  process.stdout.write(`\n${table}\n\n${summary}\n`);
  if (onnx !== undefined) process.stdout.write(`\nONNX Runtime inference:\n\n${onnx.table}\n\n${onnx.summary}\n`);
  if (report.predict?.status === 'ok') process.stdout.write(`\n${report.predict.heading ?? ''}\n\n${report.predict.table ?? ''}\n`);
  for (const failure of failures) process.stdout.write(`Failure: ${failure}\n`);
  process.stdout.write(`\nTook ${formatDuration(took)} (estimated ${formatDuration(total)}).\nWrote ${jsonPath}\nWrote ${mdPath}\n`);
}

await main();
