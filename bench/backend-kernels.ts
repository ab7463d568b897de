/**
 * Benchmarks of the backend layer (numbers in src/ml/backend/README.md).
 *
 *   node --no-liftoff --import tsx bench/backend-kernels.ts kernels [--cpu]   # gradient kernels, old vs new
 *   node --no-liftoff --import tsx bench/backend-kernels.ts train [--steps N]  # CNN training step, cpu vs wasm
 *   node --no-liftoff --import tsx bench/backend-kernels.ts parallel [--steps N] # 1 vs 2 wasm processes
 *   node --no-liftoff --import tsx bench/backend-kernels.ts models [--arch cnn,resnet50] [--size 128]
 *        [--batch 16] [--steps 2]   # training images/s of the real architectures on wasm, top kernels
 *
 * Times are the median of several runs after a warm-up, in milliseconds.
 * @module
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import type { NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { describeBackend, initBackend } from '../src/ml/backend/select-backend.ts';
import { replacedWasmKernel } from '../src/ml/backend/wasm-training-kernels.ts';
import { buildModel } from '../src/ml/models/index.ts';
import type { Architecture } from '../src/ml/models/types.ts';
import { createRandom, gaussian } from '../src/ml/util/random.ts';

const args = process.argv.slice(2);
const mode = args[0] ?? 'kernels';
const flag = (name: string) => args.includes(`--${name}`);
const option = (name: string, fallback: number) => {
  const index = args.indexOf(`--${name}`);
  const value = index >= 0 ? Number(args[index + 1]) : NaN;
  return Number.isFinite(value) ? value : fallback;
};

function randomTensor(shape: number[], seed: number): tf.Tensor {
  const rand = createRandom(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(size);
  for (let i = 0; i < size; i++) values[i] = gaussian(rand);
  return tf.tensor(values, shape);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

/** Median wall time of `fn` in ms over `runs` runs after `warmup` runs. */
function time(fn: () => void, runs = 5, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

/** Runs a kernel function directly (as the engine would) and frees its output. */
function runKernelFunc(kernelFunc: tf.KernelFunc, inputs: Record<string, tf.Tensor>, attrs: object): void {
  const backend = tf.backend();
  const out = kernelFunc({ inputs: inputs as unknown as NamedTensorInfoMap, backend, attrs: attrs as NamedAttrMap });
  for (const info of (Array.isArray(out) ? out : [out]) as TensorInfo[]) backend.disposeData(info.dataId);
}

function registered(name: string): tf.KernelFunc {
  const config = tf.getKernel(name, tf.getBackend());
  if (config === undefined) throw new Error(`${name} is not registered for ${tf.getBackend()}`);
  return config.kernelFunc;
}

interface ConvShape {
  label: string;
  x: [number, number, number, number];
  w: [number, number, number, number];
  strides: number;
  pad: 'same' | 'valid';
}

const SHAPES: ConvShape[] = [
  { label: 'ResNet 3x3 64->64 s1', x: [16, 32, 32, 64], w: [3, 3, 64, 64], strides: 1, pad: 'same' },
  { label: 'ResNet 1x1 64->256 s1', x: [16, 32, 32, 64], w: [1, 1, 64, 256], strides: 1, pad: 'valid' },
  { label: 'ResNet 1x1 256->512 s2', x: [16, 32, 32, 256], w: [1, 1, 256, 512], strides: 2, pad: 'valid' },
  { label: 'Inception 3x3 64->96 s2 valid', x: [16, 33, 33, 64], w: [3, 3, 64, 96], strides: 2, pad: 'valid' },
  { label: 'stem 7x7 3->64 s2', x: [16, 64, 64, 3], w: [7, 7, 3, 64], strides: 2, pad: 'same' },
];

async function benchKernels(): Promise<void> {
  const info = await initBackend('wasm');
  console.log(`backend: ${describeBackend(info)}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const shippedInput = replacedWasmKernel(tf.Conv2DBackpropInput);
  if (shippedInput === undefined) throw new Error('the shipped Conv2DBackpropInput was not kept');
  const rows: string[] = ['| shape | Conv2D fwd | BackpropInput shipped | BackpropInput new | BackpropFilter new | BackpropFilter cpu |', '|---|---|---|---|---|---|'];
  for (const [index, s] of SHAPES.entries()) {
    await tf.setBackend('wasm');
    const x = randomTensor(s.x, index);
    const w = randomTensor(s.w, 100 + index);
    const y = tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, s.strides, s.pad);
    const dy = randomTensor(y.shape, 200 + index);
    const inputAttrs = { strides: s.strides, pad: s.pad, dataFormat: 'NHWC', inputShape: s.x };
    const filterAttrs = { strides: s.strides, pad: s.pad, dataFormat: 'NHWC', filterShape: s.w };
    const forward = time(() => runKernelFunc(registered(tf.Conv2D), { x, filter: w }, { strides: s.strides, pad: s.pad, dataFormat: 'NHWC', dilations: 1 }));
    const inputOld = time(() => runKernelFunc(shippedInput.kernelFunc, { dy, filter: w }, inputAttrs), 3);
    const inputNew = time(() => runKernelFunc(registered(tf.Conv2DBackpropInput), { dy, filter: w }, inputAttrs));
    const filterNew = time(() => runKernelFunc(registered(tf.Conv2DBackpropFilter), { x, dy }, filterAttrs));
    let filterCpu = '-';
    if (flag('cpu')) {
      const xValues = x.dataSync();
      const dyValues = dy.dataSync();
      await tf.setBackend('cpu');
      const xc = tf.tensor(xValues, s.x);
      const dyc = tf.tensor(dyValues, y.shape);
      filterCpu = time(() => runKernelFunc(registered(tf.Conv2DBackpropFilter), { x: xc, dy: dyc }, filterAttrs), 1, 0).toFixed(0);
      tf.dispose([xc, dyc]);
      await tf.setBackend('wasm');
    }
    rows.push(`| ${s.label}: x [${s.x}] | ${forward.toFixed(1)} | ${inputOld.toFixed(1)} | ${inputNew.toFixed(1)} | ${filterNew.toFixed(1)} | ${filterCpu} |`);
    tf.dispose([x, w, y, dy]);
  }
  console.log(rows.join('\n'));

  const shippedPoolGrad = replacedWasmKernel(tf.MaxPoolGrad);
  if (shippedPoolGrad !== undefined) {
    console.log('\n| MaxPoolGrad | shipped | new |\n|---|---|---|');
    for (const [shape, size, stride, pad] of [
      [[16, 128, 128, 32], 2, 2, 'valid'],
      [[16, 64, 64, 64], 3, 2, 'same'],
    ] as const) {
      const x = randomTensor([...shape], 7);
      const y = tf.maxPool(x as tf.Tensor4D, size, stride, pad);
      const dy = randomTensor(y.shape, 8);
      const attrs = { filterSize: size, strides: stride, pad };
      const inputs = { dy, input: x, output: y };
      const old = time(() => runKernelFunc(shippedPoolGrad.kernelFunc, inputs, attrs), 3);
      const ours = time(() => runKernelFunc(registered(tf.MaxPoolGrad), inputs, attrs));
      console.log(`| ${size}x${size} s${stride} ${pad}, x [${shape}] | ${old.toFixed(1)} | ${ours.toFixed(1)} |`);
      tf.dispose([x, y, dy]);
    }
  }

  const shippedMatMul = replacedWasmKernel(tf.BatchMatMul);
  if (shippedMatMul !== undefined) {
    const a = randomTensor([512, 2048], 1);
    const dy = randomTensor([512, 256], 2);
    const wT = randomTensor([2048, 256], 3);
    const attrsB = { transposeA: false, transposeB: true };
    const attrsA = { transposeA: true, transposeB: false };
    console.log('\n| dense backprop product | shipped | new |\n|---|---|---|');
    console.log(
      `| dy·Wᵀ [512,256]x[2048,256]ᵀ | ${time(() => runKernelFunc(shippedMatMul.kernelFunc, { a: dy, b: wT }, attrsB), 3).toFixed(1)} | ${time(() => runKernelFunc(registered(tf.BatchMatMul), { a: dy, b: wT }, attrsB)).toFixed(1)} |`,
    );
    console.log(
      `| xᵀ·dy [512,2048]ᵀx[512,256] | ${time(() => runKernelFunc(shippedMatMul.kernelFunc, { a, b: dy }, attrsA), 3).toFixed(1)} | ${time(() => runKernelFunc(registered(tf.BatchMatMul), { a, b: dy }, attrsA)).toFixed(1)} |`,
    );
    tf.dispose([a, dy, wT]);
  }
}

const IMAGE = 64;
const BATCH = 16;
const CLASSES = 10;

/** Three conv(3x3)-BN-ReLU-maxpool blocks (16, 32, 64 filters), global average pooling, dense softmax. */
function threeBlockCnn(): tf.LayersModel {
  const model = tf.sequential();
  for (const [i, filters] of [16, 32, 64].entries()) {
    model.add(
      tf.layers.conv2d({
        ...(i === 0 ? { inputShape: [IMAGE, IMAGE, 3] } : {}),
        filters,
        kernelSize: 3,
        padding: 'same',
        useBias: false,
        kernelInitializer: tf.initializers.heNormal({ seed: i }),
      }),
    );
    model.add(tf.layers.batchNormalization());
    model.add(tf.layers.activation({ activation: 'relu' }));
    model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  }
  model.add(tf.layers.globalAveragePooling2d({}));
  model.add(tf.layers.dense({ units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 9 }) }));
  model.compile({ optimizer: tf.train.adam(1e-3), loss: 'categoricalCrossentropy' });
  return model;
}

interface Throughput {
  /** Images per wall-clock second. */
  wall: number;
  /** Images per second of this process's CPU time: what the step costs, whatever else the machine runs. */
  cpu: number;
}

/** Throughput of forward + backward + Adam on the active backend. */
async function trainThroughput(steps: number, warmup: number): Promise<Throughput> {
  const model = threeBlockCnn();
  const xs = randomTensor([BATCH, IMAGE, IMAGE, 3], 1);
  const ys = tf.tidy(() => tf.oneHot(tf.tensor1d(Array.from({ length: BATCH }, (_, i) => i % CLASSES), 'int32'), CLASSES).toFloat());
  for (let i = 0; i < warmup; i++) await model.trainOnBatch(xs, ys);
  const start = performance.now();
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < steps; i++) await model.trainOnBatch(xs, ys);
  const seconds = (performance.now() - start) / 1000;
  const cpuUsed = process.cpuUsage(cpuStart);
  const cpuSeconds = (cpuUsed.user + cpuUsed.system) / 1e6;
  model.optimizer.dispose();
  model.dispose();
  tf.dispose([xs, ys]);
  return { wall: (steps * BATCH) / seconds, cpu: (steps * BATCH) / cpuSeconds };
}

async function benchTrain(): Promise<void> {
  const steps = option('steps', 20);
  const wasm = await initBackend('wasm');
  console.log(`load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const wasmRate = await trainThroughput(steps, 3);
  console.log(`${describeBackend(wasm)}: ${format(wasmRate)} (${steps} steps of ${BATCH} at ${IMAGE}x${IMAGE}x3)`);
  await initBackend('cpu');
  const cpuSteps = Math.max(2, Math.round(steps / 10));
  const cpuRate = await trainThroughput(cpuSteps, 1);
  console.log(`cpu: ${format(cpuRate)} (${cpuSteps} steps); wasm/cpu = ${(wasmRate.cpu / cpuRate.cpu).toFixed(1)}x per CPU second`);
}

function format(rate: Throughput): string {
  return `${rate.wall.toFixed(2)} images/s wall, ${rate.cpu.toFixed(2)} images per CPU second`;
}

/** Child mode of `parallel`: prints one JSON line with its throughput. */
async function trainWorker(): Promise<void> {
  await initBackend('wasm');
  const rate = await trainThroughput(option('steps', 20), 3);
  console.log(JSON.stringify(rate));
}

function runWorkers(count: number, steps: number): Promise<Throughput[]> {
  const script = fileURLToPath(import.meta.url);
  return Promise.all(
    Array.from({ length: count }, () => new Promise<Throughput>((resolve, reject) => {
      const child = spawn(process.execPath, ['--no-liftoff', '--import', 'tsx', script, 'train-worker', '--steps', String(steps)], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.on('error', reject);
      child.on('close', (code) => {
        const line = output.trim().split('\n').filter((l) => l.startsWith('{')).pop();
        if (code !== 0 || line === undefined) reject(new Error(`worker exited with ${code}: ${output}`));
        else resolve(JSON.parse(line) as Throughput);
      });
    })),
  );
}

async function benchParallel(): Promise<void> {
  const steps = option('steps', 20);
  console.log(`cores ${os.availableParallelism()}, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const [single] = await runWorkers(1, steps);
  const pair = await runWorkers(2, steps);
  if (single === undefined) throw new Error('no result from the single worker');
  const total = pair.reduce((sum, rate) => sum + rate.wall, 0);
  console.log(`1 process: ${format(single)}`);
  console.log(`2 processes: ${pair.map((rate) => rate.wall.toFixed(1)).join(' + ')} = ${total.toFixed(1)} images/s wall (${(total / single.wall).toFixed(2)}x)`);
  // Per CPU second, a pair slower than one process alone means they slow each other down (memory
  // bandwidth, caches) rather than just sharing cores with the rest of the machine.
  console.log(`   per CPU second: ${pair.map((rate) => rate.cpu.toFixed(1)).join(', ')} vs ${single.cpu.toFixed(1)} alone`);
}

/**
 * Wraps every wasm kernel to add up the time of its outermost calls (kernels our composite kernels
 * call count towards the composite), per kernel name.
 */
function installKernelTimers(): { totals: Map<string, number>; enabled: { on: boolean } } {
  const totals = new Map<string, number>();
  const enabled = { on: false };
  let depth = 0;
  for (const config of tf.getKernelsForBackend('wasm')) {
    const inner = config.kernelFunc;
    tf.unregisterKernel(config.kernelName, config.backendName);
    tf.registerKernel({
      ...config,
      kernelFunc: (kernelArgs) => {
        const outer = enabled.on && depth === 0;
        const start = performance.now();
        depth++;
        try {
          return inner(kernelArgs);
        } finally {
          depth--;
          if (outer) totals.set(config.kernelName, (totals.get(config.kernelName) ?? 0) + performance.now() - start);
        }
      },
    });
  }
  return { totals, enabled };
}

/** Training steps (forward, backward, Adam) of the project's architectures on wasm, with the top kernels. */
async function benchModels(): Promise<void> {
  const index = args.indexOf('--arch');
  const archs = (index >= 0 ? (args[index + 1] ?? '') : 'cnn,resnet50,inceptionv3,vgg16').split(',') as Architecture[];
  const size = option('size', 128);
  const batch = option('batch', 16);
  const steps = option('steps', 2);
  const info = await initBackend('wasm');
  const timers = installKernelTimers();
  console.log(`backend: ${describeBackend(info)}; load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  for (const architecture of archs) {
    const model = buildModel({ architecture, inputShape: [size, size, 3], numClasses: 2, seed: 1 });
    const optimizer = tf.train.adam(1e-3);
    const x = randomTensor([batch, size, size, 3], 1);
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 2), 'int32'), 2);
    const step = () =>
      tf.tidy(() => {
        optimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar);
      });
    step();
    timers.totals.clear();
    timers.enabled.on = true;
    const start = performance.now();
    for (let i = 0; i < steps; i++) step();
    const ms = (performance.now() - start) / steps;
    timers.enabled.on = false;
    const total = [...timers.totals.values()].reduce((a, b) => a + b, 0);
    const top = [...timers.totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, 6);
    console.log(`${architecture} ${size}px batch ${batch}: ${ms.toFixed(0)} ms/step, ${((batch * 1000) / ms).toFixed(2)} images/s`);
    console.log(`   ${top.map(([name, t]) => `${name} ${((100 * t) / total).toFixed(0)}%`).join(', ')}`);
    optimizer.dispose();
    model.dispose();
    tf.dispose([x, y]);
  }
}

const modes: Record<string, () => Promise<void>> = {
  models: benchModels,
  kernels: benchKernels,
  train: benchTrain,
  parallel: benchParallel,
  'train-worker': trainWorker,
};
const run = modes[mode];
if (run === undefined) {
  console.error(`Unknown mode '${mode}'. Modes: ${Object.keys(modes).join(', ')}.`);
  process.exitCode = 2;
} else {
  await run();
}
