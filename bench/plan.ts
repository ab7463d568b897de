/**
 * What `npm run bench` measures: the default matrix, the command-line flags that narrow it, and an
 * up-front estimate of how long the run takes.
 *
 * Default matrix (batch 16, 3 channels, 10 classes):
 * - architectures `cnn`, `vgg16`, `resnet50` at 64, 128 and 224 px; `inceptionv3` at 75 (its
 *   smallest input, instead of 64), 128, 224 and 299 px (the reference size);
 * - backend `wasm`: inference and training everywhere;
 * - backend `cpu` (pure JS, ~100x slower): only where it finishes in reasonable time — inference
 *   of `cnn` at every size and of `resnet50` at 64 px, no training (`--cpu-all` lifts the limit);
 * - engine `onnx`: ONNX Runtime inference (onnxruntime-node, the architecture exported in-process by
 *   `exportToOnnx`) at every point, right after the tfjs measurements of that point;
 * - the PyTorch CPU reference (bench/pytorch-reference.py) once per architecture and size.
 * @module
 */
import { parseArgs } from 'node:util';
import { ARCHITECTURES, MIN_INPUT_SIZE, parseArchitecture, type Architecture } from '../src/ml/models/index.ts';

export const BENCH_BACKENDS = ['wasm', 'cpu'] as const;
export type BenchBackend = (typeof BENCH_BACKENDS)[number];

/**
 * What runs the network: `tfjs` (on the `--backend` list) or `onnx` (ONNX Runtime, inference only:
 * training stays on tfjs).
 */
export const BENCH_ENGINES = ['tfjs', 'onnx'] as const;
export type BenchEngine = (typeof BENCH_ENGINES)[number];

/** The backend of one measurement: a tfjs backend, or `onnx` for ONNX Runtime. */
export type MeasurementBackend = BenchBackend | 'onnx';

export const BENCH_MODES = ['infer', 'train'] as const;
export type BenchMode = (typeof BENCH_MODES)[number];

/** Image sizes (pixels, square) measured by default per architecture. */
export const DEFAULT_SIZES: Readonly<Record<Architecture, readonly number[]>> = {
  cnn: [64, 128, 224],
  vgg16: [64, 128, 224],
  resnet50: [64, 128, 224],
  // 75 is the smallest input InceptionV3 accepts; 299 is its native size and the reference.
  inceptionv3: [75, 128, 224, 299],
};

/** One of our measurements: one process, one model, one mode. */
export interface MeasurementPoint {
  arch: Architecture;
  size: number;
  backend: MeasurementBackend;
  mode: BenchMode;
}

/** One run of the PyTorch reference script (inference and, unless `skipTrain`, training). */
export interface PytorchPoint {
  arch: Architecture;
  size: number;
  skipTrain: boolean;
}

/** Everything the run needs, from the command line. */
export interface BenchConfig {
  archs: Architecture[];
  /** Explicit sizes from `--size`, or undefined for {@link DEFAULT_SIZES}. */
  sizes: number[] | undefined;
  /** Explicit (arch, size) pairs from `--points`; when given, `archs` and `sizes` are not used. */
  points: { arch: Architecture; size: number }[] | undefined;
  /** Engines measured: `tfjs` runs {@link backends}; `onnx` runs ONNX Runtime inference. */
  engines: BenchEngine[];
  backends: BenchBackend[];
  modes: BenchMode[];
  /** Minimum timed seconds per measurement (ours and PyTorch's). */
  seconds: number;
  batch: number;
  numClasses: number;
  /** Untimed steps before timing: inference, training (the first training steps compile and allocate). */
  warmupInfer: number;
  warmupTrain: number;
  /** Minimum timed steps per measurement, however long they take. */
  minSteps: number;
  /** Hard limit per measurement process, seconds; the point is recorded as `timeout`. */
  timeoutSeconds: number;
  pytorch: boolean;
  pytorchThreads: number;
  cpuAll: boolean;
  /**
   * Identical measurement processes run at once per point (default 1). With 2 on 2 cores this is
   * the machine's throughput when the service runs one worker process per core (DESIGN.md §5).
   */
  processes: number;
  /**
   * Times each (arch, size) group of measurements is run, interleaved (default 1); the report keeps
   * each measurement's fastest run, as interference from other processes only ever slows one down.
   */
  repeat: number;
  /**
   * Models for the `/v1/predict` engine comparison (bench/predict-engines.ts) after the matrix, or
   * undefined to skip it. Default: cnn 128 and resnet50 128 px for the full default matrix, none when
   * the run is narrowed (`--arch`, `--size`, `--points`, `--quick`) unless `--predict` asks.
   */
  predictCases: { arch: Architecture; size: number }[] | undefined;
  /** Output JSON path, or undefined for bench/results/bench-<date>.json. */
  out: string | undefined;
  dryRun: boolean;
  quick: boolean;
}

export const USAGE = `Usage: npm run bench -- [options]

  --arch LIST       architectures, comma-separated (default: ${ARCHITECTURES.join(',')})
  --size LIST       image sizes in px, comma-separated (default per architecture: cnn/vgg16/resnet50
                    64,128,224; inceptionv3 75,128,224,299); sizes below an architecture's minimum are skipped
  --engines LIST    tfjs,onnx (default both): tfjs runs the --backend list, onnx runs ONNX Runtime
                    inference (onnxruntime-node, the model exported in-process; no training)
  --points LIST     explicit arch:size pairs instead of --arch/--size, e.g.
                    resnet50:224,inceptionv3:299,vgg16:224 (the ONNX target's reference points)
  --backend LIST    tfjs backends wasm,cpu (default both; cpu only at the points listed in bench/README.md)
  --mode LIST       infer,train (default both)
  --seconds S       minimum timed seconds per measurement, ours and PyTorch's (default 8)
  --batch N         batch size (default 16)
  --timeout S       hard limit per measurement process in seconds (default 900)
  --no-pytorch      do not run the PyTorch reference
  --cpu-all         run the cpu backend at every point (very slow)
  --processes N     run N identical measurement processes at once per point and report their summed
                    images/s (machine throughput with one worker per core; default 1)
  --repeat N        run each (arch, size) group of measurements N times, interleaved, and keep each
                    measurement's fastest run (for a machine shared with other work; default 1)
  --predict LIST    after the matrix, /v1/predict throughput at 32 concurrent requests per engine
                    (bench/predict-engines.ts, needs Redis) for these arch:size models
                    (default cnn:128,resnet50:128 in the full default run, off when the run is narrowed)
  --no-predict      skip the /v1/predict comparison
  --out FILE        JSON output path (default bench/results/bench-<date>.json; the table goes beside it as .md)
  --quick           smoke run: cnn, 64 px, 2 s per measurement
  --dry-run         print the plan and the time estimate, measure nothing
  --help            this text
`;

function parseList(value: string | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
}

function parsePositive(name: string, value: string | undefined, fallback: number, integer: boolean): number {
  if (value === undefined) return fallback;
  const parsed = Number(value);
  if (!Number.isFinite(parsed) || parsed <= 0 || (integer && !Number.isInteger(parsed))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, got "${value}".`);
  }
  return parsed;
}

function parseEnum<T extends string>(name: string, values: string[] | undefined, valid: readonly T[]): T[] {
  if (values === undefined) return [...valid];
  return values.map((value) => {
    const lower = value.toLowerCase();
    if (!(valid as readonly string[]).includes(lower)) {
      throw new Error(`--${name}: unknown value "${value}"; expected one of: ${valid.join(', ')}.`);
    }
    return lower as T;
  });
}

/** `arch:size,...` pairs of `--name`, without duplicates, or undefined when the flag is absent. */
function parsePairs(name: string, value: string | undefined): { arch: Architecture; size: number }[] | undefined {
  const pairs = parseList(value)?.map((item) => {
    const [arch, sizeText, ...rest] = item.split(':');
    if (rest.length > 0 || sizeText === undefined) throw new Error(`--${name}: expected arch:size, got "${item}".`);
    return { arch: parseArchitecture(arch ?? ''), size: parsePositive(`${name} size`, sizeText, 0, true) };
  });
  return pairs?.filter((p, i) => pairs.findIndex((q) => q.arch === p.arch && q.size === p.size) === i);
}

/**
 * Parses the command line of bench/run.ts.
 * @returns the config, or `'help'` when `--help` was given.
 * @throws Error with a message naming the bad flag.
 */
export function parseBenchArgs(argv: readonly string[]): BenchConfig | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      arch: { type: 'string' },
      size: { type: 'string' },
      points: { type: 'string' },
      engines: { type: 'string' },
      backend: { type: 'string' },
      mode: { type: 'string' },
      seconds: { type: 'string' },
      batch: { type: 'string' },
      timeout: { type: 'string' },
      'no-pytorch': { type: 'boolean', default: false },
      'cpu-all': { type: 'boolean', default: false },
      processes: { type: 'string' },
      repeat: { type: 'string' },
      predict: { type: 'string' },
      'no-predict': { type: 'boolean', default: false },
      out: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help === true) return 'help';
  const quick = values.quick === true;
  const archs = parseList(values.arch)?.map(parseArchitecture) ?? (quick ? (['cnn'] as Architecture[]) : [...ARCHITECTURES]);
  const sizes = parseList(values.size)?.map((s) => parsePositive('size', s, 0, true)) ?? (quick ? [64] : undefined);
  const points = parsePairs('points', values.points);
  const narrowed = quick || values.arch !== undefined || values.size !== undefined || points !== undefined;
  const predictCases = values['no-predict'] === true
    ? undefined
    : parsePairs('predict', values.predict) ?? (narrowed ? undefined : parsePairs('predict', 'cnn:128,resnet50:128'));
  for (const { arch, size } of predictCases ?? []) {
    if (size < MIN_INPUT_SIZE[arch]) throw new Error(`--predict: ${arch} needs at least ${MIN_INPUT_SIZE[arch]} px, got ${size}.`);
  }
  return {
    archs: [...new Set(archs)],
    sizes: sizes === undefined ? undefined : [...new Set(sizes)],
    points,
    engines: [...new Set(parseEnum('engines', parseList(values.engines), BENCH_ENGINES))],
    backends: [...new Set(parseEnum('backend', parseList(values.backend), BENCH_BACKENDS))],
    modes: [...new Set(parseEnum('mode', parseList(values.mode), BENCH_MODES))],
    seconds: parsePositive('seconds', values.seconds, quick ? 2 : 8, false),
    batch: parsePositive('batch', values.batch, 16, true),
    numClasses: 10,
    warmupInfer: 1,
    warmupTrain: 2,
    minSteps: 2,
    timeoutSeconds: parsePositive('timeout', values.timeout, 900, false),
    pytorch: values['no-pytorch'] !== true,
    pytorchThreads: 2,
    cpuAll: values['cpu-all'] === true,
    processes: parsePositive('processes', values.processes, 1, true),
    repeat: parsePositive('repeat', values.repeat, 1, true),
    predictCases,
    out: values.out,
    dryRun: values['dry-run'] === true,
    quick,
  };
}

/**
 * Whether the pure-JS `cpu` backend runs this point by default: only inference at the small points
 * where it finishes in about a minute (ResNet50 224 px inference runs at 0.11 images/s). Training is
 * far slower still — one cnn 64 px step (batch 16) took ~330 s, as its backprop kernels are naive
 * loops — so no cpu training by default.
 */
export function cpuRunsByDefault(arch: Architecture, size: number, mode: BenchMode): boolean {
  if (mode === 'train') return false;
  return arch === 'cnn' || (arch === 'resnet50' && size <= 64);
}

/** The (arch, size) pairs of the run, in order, with sizes below an architecture's minimum dropped. */
export function sizePairs(config: BenchConfig): { pairs: { arch: Architecture; size: number }[]; skipped: string[] } {
  const pairs: { arch: Architecture; size: number }[] = [];
  const skipped: string[] = [];
  const requested = config.points ?? config.archs.flatMap((arch) => (config.sizes ?? DEFAULT_SIZES[arch]).map((size) => ({ arch, size })));
  for (const { arch, size } of requested) {
    if (size < MIN_INPUT_SIZE[arch]) {
      skipped.push(`${arch} ${size} px (needs at least ${MIN_INPUT_SIZE[arch]} px)`);
      continue;
    }
    pairs.push({ arch, size });
  }
  return { pairs, skipped };
}

/** One unit of work of the run: ours, or the PyTorch reference. Executed strictly one after another. */
export type PlanItem = ({ kind: 'ours' } & MeasurementPoint) | ({ kind: 'pytorch' } & PytorchPoint);

/**
 * The ordered work list: for each (arch, size), our wasm measurements, then cpu ones, then ONNX
 * Runtime inference, then PyTorch, the whole group `repeat` times. Grouping by (arch, size) puts each
 * ratio's sides close in time (similar machine load).
 */
export function buildPlan(config: BenchConfig): { items: PlanItem[]; skipped: string[] } {
  const { pairs, skipped } = sizePairs(config);
  const items: PlanItem[] = [];
  for (const { arch, size } of pairs) {
    const group = groupItems(config, arch, size);
    for (let r = 0; r < config.repeat; r++) items.push(...group);
  }
  return { items, skipped };
}

/** The measurements of one (arch, size), in order. */
function groupItems(config: BenchConfig, arch: Architecture, size: number): PlanItem[] {
  const items: PlanItem[] = [];
  if (config.engines.includes('tfjs')) {
    for (const backend of config.backends) {
      for (const mode of config.modes) {
        if (backend === 'cpu' && !config.cpuAll && !cpuRunsByDefault(arch, size, mode)) continue;
        items.push({ kind: 'ours', arch, size, backend, mode });
      }
    }
  }
  // ONNX Runtime serves, it does not train: inference only.
  if (config.engines.includes('onnx') && config.modes.includes('infer')) {
    items.push({ kind: 'ours', arch, size, backend: 'onnx', mode: 'infer' });
  }
  if (config.pytorch) items.push({ kind: 'pytorch', arch, size, skipTrain: !config.modes.includes('train') });
  return items;
}

/**
 * Forward multiply-accumulates per image, in GMAC, at `size` px: the reference value at the
 * reference size scaled by area (close enough for an estimate; valid-padding stages make it rough
 * at small sizes).
 */
function forwardGmac(arch: Architecture, size: number): number {
  const area = (ref: number): number => (size * size) / (ref * ref);
  switch (arch) {
    // Three 3x3 conv blocks (32, 64, 128 filters), each followed by 2x2 pooling: 10,080 MAC per pixel.
    case 'cnn':
      return (10080 * size * size) / 1e9;
    case 'vgg16':
      return 15.4 * area(224);
    case 'resnet50':
      return 4.1 * area(224);
    case 'inceptionv3':
      return 5.7 * area(299);
  }
}

/**
 * Assumed throughput in forward GMAC/s (training counts the forward MACs of the batch; backward
 * costs about twice the forward, plus tfjs overheads). wasm: one thread, from resnet50 128 px
 * (inference 6.9 images/s, training 0.84 images/s at micro-batch 8) on the loaded development
 * machine; cpu: tfjs's pure-JS kernels (ResNet50 224 px inference at 0.11 images/s); PyTorch: the
 * issue's reference numbers on 2 threads.
 */
const RATE_GMAC_PER_S: Readonly<Record<MeasurementBackend | 'pytorch', Readonly<Record<BenchMode, number>>>> = {
  wasm: { infer: 10, train: 1.1 },
  cpu: { infer: 0.45, train: 0.01 },
  // ONNX Runtime on all cores: ResNet50 128 px at ~115 images/s (issue 6); no training.
  onnx: { infer: 120, train: 120 },
  pytorch: { infer: 60, train: 20 },
};

/**
 * Rough wasm heap per training sample at 128 px, MiB (scaled by area): resnet50 at 128 px did not
 * fit 16 samples in the 4 GiB heap and used 3 GiB for 8. Only used to predict out-of-memory reruns.
 */
const TRAIN_MB_PER_SAMPLE_128: Readonly<Record<Architecture, number>> = { cnn: 90, vgg16: 500, resnet50: 350, inceptionv3: 300 };

/** What fits in the wasm heap with room for the optimizer and fragmentation, MiB. */
const USABLE_HEAP_MB = 3500;

/** Seconds to start a process, initialise the backend and build the model (rough). */
const BUILD_SECONDS: Readonly<Record<Architecture, number>> = { cnn: 3, vgg16: 4, resnet50: 5, inceptionv3: 6 };

/** Extra seconds of an ONNX point: export to ONNX and session creation (graph optimisation). */
const ONNX_SETUP_SECONDS: Readonly<Record<Architecture, number>> = { cnn: 1, vgg16: 15, resnet50: 5, inceptionv3: 6 };

function stepSeconds(arch: Architecture, size: number, batch: number, engine: MeasurementBackend | 'pytorch', mode: BenchMode): number {
  return Math.max(0.02, (forwardGmac(arch, size) * batch) / RATE_GMAC_PER_S[engine][mode]);
}

/** Out-of-memory attempts expected before training fits (wasm only; halving, as the trainer does). */
function expectedOomAttempts(arch: Architecture, size: number, batch: number): number {
  const perSample = TRAIN_MB_PER_SAMPLE_128[arch] * (size * size) / (128 * 128);
  let attempts = 0;
  for (let micro = batch; micro > 1 && micro * perSample > USABLE_HEAP_MB; micro = Math.floor(micro / 2)) attempts = 1;
  return attempts;
}

/** Estimated wall-clock seconds of one plan item (used for the up-front estimate only). */
export function estimateSeconds(item: PlanItem, config: BenchConfig): number {
  const timed = (step: number): number => Math.max(config.seconds, config.minSteps * step);
  if (item.kind === 'pytorch') {
    const infer = stepSeconds(item.arch, item.size, config.batch, 'pytorch', 'infer');
    const train = stepSeconds(item.arch, item.size, config.batch, 'pytorch', 'train');
    return 3 + infer + timed(infer) + (item.skipTrain ? 0 : train + timed(train));
  }
  const step = stepSeconds(item.arch, item.size, config.batch, item.backend, item.mode);
  // bench/measure.ts ends the warm-up after one step longer than --seconds.
  const warmup = step > config.seconds ? 1 : item.mode === 'train' ? config.warmupTrain : config.warmupInfer;
  const build = BUILD_SECONDS[item.arch] + (item.backend === 'onnx' ? ONNX_SETUP_SECONDS[item.arch] : 0);
  // A process that runs out of memory stops after the step that split the batch (~2 steps of work).
  const oom = item.backend === 'wasm' && item.mode === 'train' ? expectedOomAttempts(item.arch, item.size, config.batch) * (build + 2 * step) : 0;
  return Math.min(config.timeoutSeconds, build + warmup * step + timed(step)) + oom;
}

/** Short label of a plan item for progress lines. */
export function describeItem(item: PlanItem): string {
  return item.kind === 'pytorch'
    ? `${item.arch} ${item.size}px pytorch${item.skipTrain ? ' infer' : ' infer+train'}`
    : `${item.arch} ${item.size}px ${item.backend} ${item.mode}`;
}
