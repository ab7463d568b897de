/**
 * One benchmark measurement, in a process of its own so that each point starts with a fresh wasm
 * heap and its peak RSS is its own: builds one model, runs untimed warm-up steps, then timed steps
 * until `--seconds` have passed and at least `--min-steps` steps ran, and prints ONE JSON line on
 * stdout (also on failure, with `status: "error"`). Progress goes to stderr.
 *
 * - inference step: `model.predict(x)` + `dataSync()` of the `[batch, classes]` probabilities;
 * - training step: the trainer's `trainStep` (src/ml/train/step.ts): forward with `training: true`
 *   (BN batch statistics, dropout), categorical cross-entropy, backward, one Adam update (lr 1e-3),
 *   loss and accuracy read back — the same work as PyTorch's `zero_grad/forward/backward/step`.
 *   When the batch does not fit in the wasm heap (4 GiB), the step splits it into accumulated
 *   micro-batches as the service does. The process then stops at once with `status: "reduced"` and
 *   the micro-batch size that worked, and bench/run.ts measures again from `--micro-batch N`, so that
 *   neither the speed nor the peak RSS is that of a process that first filled its heap.
 * - ONNX Runtime inference (`--backend onnx`): the model is built on the tfjs `cpu` backend (its
 *   weights live in JS memory, freed after the export), exported in-process with `exportToOnnx`
 *   (src/ml/export), and run by an `ort.InferenceSession` of onnxruntime-node (intra-op threads =
 *   cores or `--threads`, inter-op 1, graph optimisation `all`, sequential execution); a step is
 *   `session.run` on the same batch, with the `[batch, classes]` probabilities read back.
 * Inputs are a fixed random batch (pixel values in [0, 1)) and random one-hot labels: the speed of
 * these kernels does not depend on the values.
 *
 * Time budget: a warm-up step longer than `--seconds` ends the warm-up (one-time costs are then
 * small beside a step), as does one after which `--budget` seconds (since process start) would not
 * allow another plus the timed steps; when the budget would not allow `--min-steps` timed steps, one
 * timed step is taken (reported as `budgetLimited`).
 *
 * Run by bench/run.ts; by hand:
 *   node --no-liftoff --import tsx bench/measure.ts --arch resnet50 --size 128 --backend wasm --mode infer
 *   node --no-liftoff --expose-gc --import tsx bench/measure.ts --arch resnet50 --size 224 --backend onnx --mode infer
 * @module
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { describeBackend, initBackend } from '../src/ml/backend/select-backend.ts';
import { isOutOfMemoryError, requiresBackendReset, wasmMemoryBytes } from '../src/ml/backend/wasm-memory.ts';
import { WASM_TRAINING_KERNEL_NAMES, wasmTrainingKernelsRegistered } from '../src/ml/backend/wasm-training-kernels.ts';
import { exportToOnnx, ONNX_INPUT_NAME, ONNX_OUTPUT_NAME } from '../src/ml/export/index.ts';
import { buildModel, parseArchitecture, type Architecture } from '../src/ml/models/index.ts';
import { trainStep, type MicroBatchState, type StepContext } from '../src/ml/train/step.ts';

const { values } = parseArgs({
  options: {
    arch: { type: 'string' },
    size: { type: 'string' },
    backend: { type: 'string', default: 'wasm' },
    mode: { type: 'string', default: 'infer' },
    seconds: { type: 'string', default: '8' },
    batch: { type: 'string', default: '16' },
    classes: { type: 'string', default: '10' },
    warmup: { type: 'string' },
    'min-steps': { type: 'string', default: '2' },
    'micro-batch': { type: 'string' },
    budget: { type: 'string' },
    threads: { type: 'string' },
  },
});

const started = performance.now();
const elapsed = (since: number): number => (performance.now() - since) / 1000;
const log = (message: string): void => {
  process.stderr.write(`[measure ${elapsed(started).toFixed(1)}s] ${message}\n`);
};

function nonNegativeInt(name: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer, got "${value}".`);
  return n;
}

function nonNegativeNumber(name: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a number >= 0, got "${value}".`);
  return n;
}

function peakRssMb(): number {
  // maxRSS is in kilobytes (getrusage's ru_maxrss on Linux).
  return process.resourceUsage().maxRSS / 1024;
}

/** The timing fields every measurement line carries (images/s over the timed steps, step times). */
function timingRecord(timing: Awaited<ReturnType<typeof time>>, batch: number) {
  const steps = timing.stepSeconds.length;
  const sorted = [...timing.stepSeconds].sort((a, b) => a - b);
  return {
    imagesPerSecond: (steps * batch) / timing.timedSeconds,
    steps,
    timedSeconds: timing.timedSeconds,
    timedWindowMs: timing.timedWindowMs,
    medianStepSeconds: sorted[Math.floor((sorted.length - 1) / 2)],
    stepSeconds: timing.stepSeconds,
    warmupSeconds: timing.warmupSeconds,
    budgetLimited: timing.budgetLimited,
  };
}

function rssMb(): number {
  return process.memoryUsage().rss / 2 ** 20;
}

/** Thrown out of the timing loop when training had to split the batch: the caller measures again. */
class MicroBatchReduced extends Error {
  constructor(readonly microBatchSize: number) {
    super(`out of memory: training needs micro-batches of ${microBatchSize}`);
  }
}

interface TimingPlan {
  warmup: number;
  seconds: number;
  minSteps: number;
  /** Seconds since process start by which the measurement should be done. */
  budget: number;
}

/** Warm-up, then timed steps; see the module comment for the rules. */
async function time(step: () => Promise<void>, plan: TimingPlan) {
  const warmupSeconds: number[] = [];
  for (let i = 0; i < plan.warmup; i++) {
    const t = performance.now();
    await step();
    warmupSeconds.push(elapsed(t));
    const last = warmupSeconds.at(-1) as number;
    log(`warm-up step ${i + 1}/${plan.warmup}: ${last.toFixed(2)} s`);
    if (last > plan.seconds) break;
    // Keep room in the budget for the timed steps, which are what the measurement is for.
    if (elapsed(started) + (plan.minSteps + 1) * last > plan.budget) break;
  }
  // The slowest step seen so far predicts the next one, for the budget check.
  let longest = Math.max(0, ...warmupSeconds);
  let minSteps = plan.minSteps;
  let budgetLimited = false;
  if (minSteps > 1 && elapsed(started) + minSteps * longest > plan.budget) {
    minSteps = 1;
    budgetLimited = true;
    log(`the budget of ${plan.budget} s leaves room for one timed step only`);
  }
  // Counted after warm-up: the first training step creates the optimizer's slots, which is no leak.
  const tensorsBefore = tf.memory().numTensors;
  const stepSeconds: number[] = [];
  const t0 = performance.now();
  while (stepSeconds.length < minSteps || elapsed(t0) < plan.seconds) {
    // Stop early rather than be killed: a measurement past its budget would be lost entirely.
    if (stepSeconds.length >= minSteps && elapsed(started) + longest > plan.budget) {
      budgetLimited = true;
      break;
    }
    const t = performance.now();
    await step();
    stepSeconds.push(elapsed(t));
    longest = Math.max(longest, elapsed(t));
  }
  const timedSeconds = elapsed(t0);
  // Wall-clock window of the timed steps, to combine concurrent processes (bench/run.ts --processes).
  const timedWindowMs = [performance.timeOrigin + t0, performance.timeOrigin + performance.now()];
  const leakedTensorsPerStep = (tf.memory().numTensors - tensorsBefore) / stepSeconds.length;
  log(`${stepSeconds.length} timed steps in ${timedSeconds.toFixed(2)} s`);
  return { warmupSeconds, stepSeconds, timedSeconds, timedWindowMs, leakedTensorsPerStep, budgetLimited };
}

/**
 * ONNX Runtime inference: build on tfjs, export, free the tfjs model, time `session.run`.
 * `peakRssMb` is the process's peak, which includes the export (tfjs weights, the ONNX bytes and the
 * session's copy at once); `rssAtEndMb`, after the timed steps with the tfjs model freed, is closer to
 * what serving the model costs.
 */
async function measureOnnx(arch: Architecture, size: number, batch: number, numClasses: number, plan: TimingPlan): Promise<Record<string, unknown>> {
  const threads = values.threads === undefined ? os.availableParallelism() : Math.max(1, nonNegativeInt('threads', values.threads));
  const tInit = performance.now();
  // Weights in JS memory rather than in the wasm heap, which never shrinks: after the export they go.
  const backendInfo = await initBackend('cpu');
  const initSeconds = elapsed(tInit);

  const tBuild = performance.now();
  const model = buildModel({ architecture: arch, inputShape: [size, size, 3], numClasses, seed: 1 });
  const params = model.countParams();
  const buildSeconds = elapsed(tBuild);
  log(`${arch} ${size}px built in ${buildSeconds.toFixed(2)} s (${params} params)`);

  const tExport = performance.now();
  const classNames = Array.from({ length: numClasses }, (_, i) => `class${i}`);
  // Held in an object so the bytes can be dropped once the session has its own copy of the weights.
  const exported: { bytes?: Uint8Array } = {
    bytes: exportToOnnx(model, { architecture: arch, classNames, positiveClasses: [], preprocessing: { bench: true } }),
  };
  const exportSeconds = elapsed(tExport);
  const onnxMb = (exported.bytes?.byteLength ?? 0) / 2 ** 20;
  log(`exported to ONNX in ${exportSeconds.toFixed(2)} s (${onnxMb.toFixed(1)} MiB)`);
  // The same fixed random batch as the tfjs measurement (same seed).
  const input = tf.tidy(() => tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 1).dataSync() as Float32Array);
  model.dispose();
  (globalThis as { gc?: () => void }).gc?.();

  const tSession = performance.now();
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
  };
  const session = await ort.InferenceSession.create(exported.bytes as Uint8Array, options);
  delete exported.bytes;
  (globalThis as { gc?: () => void }).gc?.();
  const sessionSeconds = elapsed(tSession);
  log(`onnxruntime-node session created in ${sessionSeconds.toFixed(2)} s (${threads} intra-op threads)`);

  const tensor = new ort.Tensor('float32', input, [batch, size, size, 3]);
  const step = async (): Promise<void> => {
    const out = await session.run({ [ONNX_INPUT_NAME]: tensor });
    const probabilities = out[ONNX_OUTPUT_NAME];
    if (probabilities?.data.length !== batch * numClasses) {
      throw new Error(`onnxruntime returned ${probabilities?.data.length} values, expected ${batch * numClasses}`);
    }
  };
  try {
    const timing = await time(step, plan);
    return {
      status: 'ok',
      arch,
      size,
      batch,
      numClasses,
      mode: 'infer',
      backend: 'onnx',
      backendDescription: `onnxruntime-node ${ort.env.versions.common} (CPU, ${threads} intra-op threads, graph optimisation all)`,
      onnxRuntime: { version: ort.env.versions.common, ...options },
      tfjsBuildBackend: backendInfo.name,
      params,
      onnxMb,
      ...timingRecord(timing, batch),
      microBatchSize: batch,
      initSeconds,
      buildSeconds,
      exportSeconds,
      sessionSeconds,
      peakRssMb: peakRssMb(),
      rssAtEndMb: rssMb(),
      loadAverage: os.loadavg(),
      totalSeconds: elapsed(started),
    };
  } finally {
    await session.release();
  }
}

async function main(): Promise<Record<string, unknown>> {
  const arch = parseArchitecture(values.arch ?? '');
  const size = nonNegativeInt('size', values.size);
  const batch = nonNegativeInt('batch', values.batch);
  const numClasses = nonNegativeInt('classes', values.classes);
  const mode = values.mode;
  if (mode !== 'infer' && mode !== 'train') throw new Error(`--mode must be infer or train, got "${mode}".`);
  const plan: TimingPlan = {
    warmup: nonNegativeInt('warmup', values.warmup ?? (mode === 'train' ? '2' : '1')),
    seconds: nonNegativeNumber('seconds', values.seconds),
    minSteps: Math.max(1, nonNegativeInt('min-steps', values['min-steps'])),
    budget: values.budget === undefined ? Infinity : nonNegativeNumber('budget', values.budget),
  };
  const initialMicroBatch = values['micro-batch'] === undefined ? undefined : nonNegativeInt('micro-batch', values['micro-batch']);
  if (values.backend === 'onnx') {
    if (mode !== 'infer') throw new Error('--backend onnx measures inference only (training stays on tfjs).');
    return measureOnnx(arch, size, batch, numClasses, plan);
  }

  const tInit = performance.now();
  // The service's own backend selection: wasm gets the project's training kernels and OOM guard.
  const backendInfo = await initBackend(values.backend ?? 'wasm');
  const initSeconds = elapsed(tInit);
  const backendDescription = describeBackend(backendInfo);
  log(`backend ${backendDescription} ready in ${initSeconds.toFixed(2)} s`);

  const tBuild = performance.now();
  const model = buildModel({ architecture: arch, inputShape: [size, size, 3], numClasses, seed: 1 });
  const buildSeconds = elapsed(tBuild);
  log(`${arch} ${size}px built in ${buildSeconds.toFixed(2)} s (${model.countParams()} params)`);

  const x = tf.randomUniform([batch, size, size, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const y = tf.tidy(
    () => tf.oneHot(tf.randomUniform([batch], 0, numClasses, 'int32', 2) as tf.Tensor1D, numClasses).toFloat() as tf.Tensor2D,
  );

  let step: () => Promise<void>;
  let optimizer: tf.Optimizer | undefined;
  const micro: MicroBatchState = { size: initialMicroBatch };
  if (mode === 'infer') {
    step = async () => {
      const probs = model.predict(x) as tf.Tensor;
      probs.dataSync();
      probs.dispose();
    };
  } else {
    const adam = tf.train.adam(1e-3);
    optimizer = adam;
    const ctx: StepContext = {
      model,
      optimizer: adam,
      // A trap of the wasm module leaves its memory untrustworthy: fail the measurement instead.
      isOutOfMemory: (error) => isOutOfMemoryError(error) && !requiresBackendReset(error),
    };
    step = async () => {
      let reducedTo: number | undefined;
      await trainStep(ctx, x, y, micro, (to, error) => {
        reducedTo = to;
        log(`out of memory, retrying with micro-batches of ${to} (${error instanceof Error ? error.message : String(error)})`);
      });
      if (reducedTo !== undefined) throw new MicroBatchReduced(reducedTo);
    };
  }

  try {
    const timing = await time(step, plan);
    const wasmHeap = wasmMemoryBytes();
    return {
      status: 'ok',
      arch,
      size,
      batch,
      numClasses,
      mode,
      backend: tf.getBackend(),
      backendInfo,
      backendDescription,
      trainingKernels: backendInfo.name === 'wasm' && wasmTrainingKernelsRegistered() ? WASM_TRAINING_KERNEL_NAMES : [],
      params: model.countParams(),
      ...timingRecord(timing, batch),
      // Samples per forward/backward pass: the batch, unless it had to be split to fit in memory.
      microBatchSize: mode === 'train' ? Math.min(micro.size ?? batch, batch) : batch,
      initSeconds,
      buildSeconds,
      peakRssMb: peakRssMb(),
      // The wasm heap only grows, so its size now is its peak.
      wasmHeapMb: wasmHeap === undefined ? undefined : wasmHeap / 2 ** 20,
      leakedTensorsPerStep: timing.leakedTensorsPerStep,
      loadAverage: os.loadavg(),
      totalSeconds: elapsed(started),
    };
  } catch (error) {
    if (!(error instanceof MicroBatchReduced)) throw error;
    return {
      status: 'reduced',
      arch,
      size,
      batch,
      mode,
      backend: tf.getBackend(),
      microBatchSize: error.microBatchSize,
      peakRssMb: peakRssMb(),
      totalSeconds: elapsed(started),
    };
  } finally {
    x.dispose();
    y.dispose();
    optimizer?.dispose();
    model.dispose();
  }
}

main().then(
  (result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
  },
  (error: unknown) => {
    const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    log(error instanceof Error && error.stack !== undefined ? error.stack : message);
    process.stdout.write(
      `${JSON.stringify({
        status: 'error',
        arch: values.arch,
        size: Number(values.size),
        mode: values.mode,
        requestedBackend: values.backend,
        error: message,
        peakRssMb: peakRssMb(),
        totalSeconds: elapsed(started),
      })}\n`,
    );
    process.exitCode = 1;
  },
);
