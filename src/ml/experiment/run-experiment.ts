/**
 * An experiment: scan and split one dataset, train each requested architecture on it, evaluate each
 * on the test split, save each model, and write `report.json` with the ranking and the winner.
 *
 * Layout of `outDir`:
 * - `report.json` — the comparison ({@link ExperimentReport});
 * - `models/<arch>/` — each trained model (TensorFlow.js layers format + `metadata.json`);
 * - `results/<arch>.json` — each finished architecture's result, so a rerun after a crash skips it;
 * - `checkpoints/<arch>/` — per-epoch checkpoints while an architecture trains (removed once saved).
 * @module
 */
import { readFile, rm, rmdir } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../backend/select-backend.ts';
import { isOutOfMemoryError, requiresBackendReset } from '../backend/wasm-memory.ts';
import {
  assertMinImageSize,
  classWeights as balancedClassWeights,
  createBatchStream,
  findDuplicates,
  preprocessingRecord,
  scanDataset,
  splitDataset,
  splitMembership,
  type DatasetIndex,
  type DatasetItem,
  type ImageOptions,
} from '../data/index.ts';
import { MlError } from '../errors.ts';
import { classificationReport, rocCurves } from '../metrics/index.ts';
import { ARCHITECTURES, buildModel, isArchitecture, MIN_INPUT_SIZE, PREPROCESS_MODE, summarizeModel, type Architecture } from '../models/index.ts';
import { saveModel } from '../persist/index.ts';
import { predictBatches, trainModel } from '../train/index.ts';
import { writeJsonAtomic } from '../util/atomic-file.ts';
import { deriveSeed } from '../util/random.ts';
import { measureLatencyMs } from './latency.ts';
import { DEFAULT_RANK_METRIC, rankResults } from './ranking.ts';
import { DEFAULT_LEARNING_RATE, type ArchitectureResult, type ExperimentOptions, type ExperimentReport, type TrainingRecord } from './types.ts';

/**
 * Version of the training code's behaviour, part of the result-cache key: bump it when a change makes
 * earlier results incomparable (e.g. the batch-norm momentum default), so reruns retrain.
 */
const ENGINE_VERSION = 2;

/** {@link ExperimentOptions} with every default filled in. */
export type ExperimentConfig = ExperimentReport['config'];

/** Fills in defaults and checks ranges, listing every problem at once. */
export function resolveExperimentConfig(options: ExperimentOptions): ExperimentConfig {
  const { config, problems } = checkExperimentConfig(options);
  if (problems.length > 0) throw new MlError('INVALID_ARGUMENT', `invalid experiment options: ${problems.join('; ')}`);
  return config;
}

/**
 * {@link resolveExperimentConfig} without the throw: the config with defaults filled in and every
 * problem found, one sentence each (empty when the options are valid). Unknown architecture names
 * are problems too, since callers outside TypeScript (the HTTP API) can send any string.
 */
export function checkExperimentConfig(options: ExperimentOptions): { config: ExperimentConfig; problems: string[] } {
  const config: ExperimentConfig = {
    dataDir: path.resolve(options.dataDir),
    outDir: path.resolve(options.outDir),
    architectures: [...new Set(options.architectures)],
    imageSize: options.imageSize ?? 128,
    channels: options.channels ?? 3,
    epochs: options.epochs ?? 10,
    batchSize: options.batchSize ?? 16,
    learningRate: options.learningRate ?? null,
    optimizer: options.optimizer ?? 'adam',
    seed: options.seed ?? 42,
    valFraction: options.valFraction ?? 0.15,
    testFraction: options.testFraction ?? 0.15,
    augment: options.augment ?? true,
    classWeights: options.classWeights ?? true,
    earlyStoppingPatience: options.earlyStoppingPatience ?? 5,
    reduceLrPatience: options.reduceLrPatience ?? 2,
    includeTop: options.includeTop ?? false,
    rankBy: options.rankBy ?? DEFAULT_RANK_METRIC,
    resize: options.resize ?? 'letterbox',
    allowSmallImages: options.allowSmallImages ?? false,
    ...(options.dropout === undefined ? {} : { dropout: options.dropout }),
    ...(options.microBatchSize === undefined ? {} : { microBatchSize: options.microBatchSize }),
  };
  const problems: string[] = [];
  const positiveInt = (name: string, value: number): void => {
    if (!Number.isInteger(value) || value < 1) problems.push(`${name} must be a positive integer, got ${value}`);
  };
  if (config.architectures.length === 0) problems.push('at least one architecture is required');
  for (const arch of config.architectures) {
    if (!isArchitecture(arch)) problems.push(`unknown architecture ${JSON.stringify(arch)}; valid: ${ARCHITECTURES.join(', ')}`);
  }
  positiveInt('imageSize', config.imageSize);
  positiveInt('epochs', config.epochs);
  positiveInt('batchSize', config.batchSize);
  if (config.microBatchSize !== undefined) positiveInt('microBatchSize', config.microBatchSize);
  for (const arch of config.architectures.filter(isArchitecture)) {
    if (config.imageSize < MIN_INPUT_SIZE[arch]) problems.push(`${arch} needs imageSize >= ${MIN_INPUT_SIZE[arch]}, got ${config.imageSize}`);
  }
  if (config.learningRate !== null && !(config.learningRate > 0 && Number.isFinite(config.learningRate))) problems.push(`learningRate must be > 0, got ${config.learningRate}`);
  if (config.channels !== 1 && config.channels !== 3) problems.push(`channels must be 1 or 3, got ${String(config.channels)}`);
  if (!Number.isInteger(config.seed)) problems.push(`seed must be an integer, got ${config.seed}`);
  for (const [name, value] of [['valFraction', config.valFraction], ['testFraction', config.testFraction]] as const) {
    if (!(value >= 0 && value < 1)) problems.push(`${name} must be in [0, 1), got ${value}`);
  }
  if (config.valFraction + config.testFraction >= 1) problems.push('valFraction + testFraction must be below 1');
  if (!Number.isInteger(config.earlyStoppingPatience) || config.earlyStoppingPatience < 0) problems.push('earlyStoppingPatience must be an integer >= 0');
  if (!Number.isInteger(config.reduceLrPatience) || config.reduceLrPatience < 0) problems.push('reduceLrPatience must be an integer >= 0');
  return { config, problems };
}

/**
 * Runs the experiment and writes `report.json` into `options.outDir`.
 * @throws MlError for dataset problems (`DATASET_*`, `IMAGE_TOO_SMALL`), `TRAINING_CANCELLED` when
 *   `options.signal` aborts, `OUT_OF_MEMORY` when even one image per pass does not fit.
 * @example
 * const report = await runExperiment({ dataDir: 'data/xrays', outDir: 'runs/1', architectures: ['cnn'], imageSize: 64, epochs: 3 });
 * report.winner?.architecture; // 'cnn'
 */
export async function runExperiment(options: ExperimentOptions): Promise<ExperimentReport> {
  const config = resolveExperimentConfig(options);
  const emit = options.onEvent ?? (() => {});
  const backend = await initBackend(options.backend);

  // Decode every image once up front, so a corrupt file is skipped and counted here instead of
  // stopping training mid-epoch.
  const index = await scanDataset(config.dataDir, { verify: 'decode' });
  if (!config.allowSmallImages) assertMinImageSize(index, config.imageSize);
  const splits = splitDataset(index, { seed: config.seed, valFraction: config.valFraction, testFraction: config.testFraction });
  if (splits.train.length === 0 || splits.test.length === 0) {
    throw new MlError(
      'DATASET_TOO_SMALL',
      `the dataset has too few images to train and test (train ${splits.train.length}, val ${splits.val.length}, test ${splits.test.length}); add images or change the split fractions`,
    );
  }
  const duplicates = await findDuplicates(index.root, index.items, splitMembership(splits));
  emit({
    type: 'dataset',
    classNames: index.classNames,
    counts: { train: splits.train.length, val: splits.val.length, test: splits.test.length },
    skipped: index.skipped.count,
    leaks: duplicates.summary.crossSplitLeaks,
  });

  const context: ArchitectureContext = {
    config,
    index,
    splits,
    classWeights: config.classWeights ? balancedClassWeights(splits.record.counts.train) : undefined,
    signal: options.signal,
    emit,
  };
  const results: ArchitectureResult[] = [];
  for (const [position, architecture] of config.architectures.entries()) {
    const cached = await readCachedResult(config, index, architecture, options.onlyCached === true);
    if (cached === null && options.onlyCached === true) {
      throw new MlError('MODEL_NOT_FOUND', `${architecture} has no finished result with these settings to report on (onlyCached)`);
    }
    results.push(cached ?? (await trainArchitecture(context, architecture, position)));
  }

  // Every architecture removed its own checkpoints once saved; drop the then-empty parent too.
  await rmdir(path.join(config.outDir, 'checkpoints')).catch(() => {});
  const ranking = rankResults(results, config.rankBy);
  const report: ExperimentReport = {
    schemaVersion: 1,
    createdAt: new Date().toISOString(),
    config,
    backend,
    versions: { ...backend.versions, node: process.versions.node },
    dataset: {
      root: index.root,
      hash: index.hash,
      layout: index.layout,
      classNames: [...index.classNames],
      positiveClasses: [...index.positiveClasses],
      counts: [...index.counts],
      skipped: { count: index.skipped.count, byReason: { ...index.skipped.byReason } as Record<string, number> },
      split: splits.record,
      duplicates: { summary: duplicates.summary, settings: duplicates.settings, crossSplitLeaks: duplicates.crossSplitLeaks },
    },
    results,
    ranking,
    winner: ranking.winner,
  };
  if (options.writeReport !== false) await writeJsonAtomic(path.join(config.outDir, 'report.json'), report);
  return report;
}

interface ArchitectureContext {
  config: ExperimentConfig;
  index: DatasetIndex;
  splits: { train: readonly DatasetItem[]; val: readonly DatasetItem[]; test: readonly DatasetItem[] };
  classWeights: number[] | undefined;
  signal: AbortSignal | undefined;
  emit: NonNullable<ExperimentOptions['onEvent']>;
}

/** Trains, evaluates and saves one architecture; disposes its model whatever happens. */
async function trainArchitecture(context: ArchitectureContext, architecture: Architecture, position: number): Promise<ArchitectureResult> {
  const { config, index, splits, emit } = context;
  const imageOptions: ImageOptions = {
    height: config.imageSize,
    width: config.imageSize,
    channels: config.channels,
    mode: PREPROCESS_MODE[architecture],
    resize: config.resize,
  };
  const numClasses = index.classNames.length;
  const batches = (items: readonly DatasetItem[], training: boolean, epoch = 0) =>
    createBatchStream(items, {
      root: index.root,
      batchSize: config.batchSize,
      shuffle: training,
      seed: deriveSeed(config.seed, 'batches'),
      epoch,
      imageOptions,
      augment: training && config.augment,
      numClasses,
    });

  const model = buildModel({
    architecture,
    inputShape: [config.imageSize, config.imageSize, config.channels],
    numClasses,
    includeTop: config.includeTop,
    seed: deriveSeed(config.seed, architecture),
    ...(config.dropout === undefined ? {} : { dropout: config.dropout }),
  });
  try {
    const summary = summarizeModel(model);
    emit({ type: 'architecture-start', architecture, index: position, total: config.architectures.length, params: summary.params });
    const checkpointDir = path.join(config.outDir, 'checkpoints', architecture);
    await prepareCheckpointDir(checkpointDir, cacheKey(config, index, architecture));
    const training = await withCrashAdvice(architecture, config, () =>
      trainModel({
        model,
        trainBatches: (epoch) => batches(splits.train, true, epoch),
        ...(splits.val.length > 0 ? { valBatches: () => batches(splits.val, false) } : {}),
        epochs: config.epochs,
        optimizer: { name: config.optimizer, learningRate: learningRateOf(config, architecture), ...(config.optimizer === 'sgd' ? { momentum: 0.9 } : {}) },
        ...(context.classWeights ? { classWeights: context.classWeights } : {}),
        ...(config.earlyStoppingPatience > 0 && splits.val.length > 0
          ? { earlyStopping: { monitor: 'val_loss' as const, patience: config.earlyStoppingPatience } }
          : {}),
        ...(config.reduceLrPatience > 0 && splits.val.length > 0
          ? { reduceLrOnPlateau: { monitor: 'val_loss' as const, factor: 0.5, patience: config.reduceLrPatience, minLr: 1e-6 } }
          : {}),
        checkpointDir,
        ...(context.signal ? { signal: context.signal } : {}),
        onProgress: (progress) => emit({ type: 'train', architecture, progress }),
        ...(config.microBatchSize === undefined ? {} : { microBatchSize: config.microBatchSize }),
        stepsPerEpoch: Math.ceil(splits.train.length / config.batchSize),
        seed: config.seed,
        // After a WASM trap the module's memory may be inconsistent: only a clean allocation failure is
        // worth retrying with smaller micro-batches; a trap must fail the run (its checkpoint survives).
        isOutOfMemory: (error) => isOutOfMemoryError(error) && !requiresBackendReset(error),
      }),
    );

    const evaluateStart = performance.now();
    const predictions = await predictBatches(model, batches(splits.test, false), {
      chunkSize: training.microBatchSize,
      ...(context.signal ? { signal: context.signal } : {}),
    });
    const evaluateSeconds = (performance.now() - evaluateStart) / 1000;
    const metrics = classificationReport({
      classNames: index.classNames,
      yTrue: predictions.yTrue,
      yPred: predictions.yPred,
      yProb: predictions.yProb,
      positiveClasses: index.positiveClasses,
    });
    const curves = rocCurves(index.classNames, predictions.yTrue, predictions.yProb, index.positiveClasses);
    const inferenceMsPerImage = measureLatencyMs(model, [config.imageSize, config.imageSize, config.channels]);

    const modelDir = path.join('models', architecture);
    const saved = await saveModel(model, path.join(config.outDir, modelDir), {
      architecture,
      classNames: index.classNames,
      positiveClasses: index.positiveClasses,
      inputShape: [config.imageSize, config.imageSize, config.channels],
      preprocessing: preprocessingRecord(imageOptions),
      metrics,
      datasetHash: index.hash,
      seed: config.seed,
      training: trainingRecord(config, architecture, training.microBatchSize),
    }, { onnx: true });
    const trainImagesPerSecond = mean(training.history.map((epoch) => epoch.imagesPerSecond));
    const result: ArchitectureResult = {
      architecture,
      metrics,
      history: training.history,
      bestEpoch: training.bestEpoch,
      stoppedEarly: training.stoppedEarly,
      timings: { trainSeconds: training.history.reduce((sum, epoch) => sum + epoch.seconds, 0), trainImagesPerSecond, evaluateSeconds, inferenceMsPerImage },
      params: summary.params,
      trainableParams: summary.trainableParams,
      modelBytes: saved.totalBytes,
      modelDir,
      microBatchSize: training.microBatchSize,
      rocCurves: curves,
    };
    await writeJsonAtomic(resultFile(config, architecture), { key: cacheKey(config, index, architecture), result });
    await rm(checkpointDir, { recursive: true, force: true });
    emit({ type: 'architecture-done', architecture, result });
    return result;
  } finally {
    model.dispose();
  }
}

/**
 * What `metadata.json` records of the training run (STYLE rule 8). The split settings let
 * `evaluate --model --data` score the same test split later.
 */
function trainingRecord(config: ExperimentConfig, architecture: Architecture, microBatchSize: number): TrainingRecord {
  return {
    epochs: config.epochs,
    batchSize: config.batchSize,
    microBatchSize,
    optimizer: config.optimizer,
    learningRate: learningRateOf(config, architecture),
    augment: config.augment,
    classWeights: config.classWeights,
    earlyStoppingPatience: config.earlyStoppingPatience,
    reduceLrPatience: config.reduceLrPatience,
    includeTop: config.includeTop,
    split: { seed: config.seed, valFraction: config.valFraction, testFraction: config.testFraction },
  };
}

/**
 * Turns a crash of the WASM module (a trap: its memory may be corrupt, so the process cannot go on
 * computing) into an `OUT_OF_MEMORY` error that says how to resume: the last epoch's checkpoint is
 * intact, and smaller passes need less memory.
 */
async function withCrashAdvice<T>(architecture: Architecture, config: ExperimentConfig, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    if (!requiresBackendReset(error)) throw error;
    const smaller = Math.max(1, Math.floor((config.microBatchSize ?? config.batchSize) / 2));
    throw new MlError(
      'OUT_OF_MEMORY',
      `${architecture}: the WASM backend crashed (${(error as Error).message}); the last epoch's checkpoint is kept: rerun the same command with --micro-batch-size ${smaller} to resume with smaller passes`,
      { cause: error },
    );
  }
}

/** The initial learning rate of `architecture`: the configured one, else its default. */
function learningRateOf(config: ExperimentConfig, architecture: Architecture): number {
  return config.learningRate ?? DEFAULT_LEARNING_RATE[architecture];
}

function resultFile(config: ExperimentConfig, architecture: Architecture): string {
  return path.join(config.outDir, 'results', `${architecture}.json`);
}

/** What must be equal for a saved result to stand for a new run: everything that changes training. */
function cacheKey(config: ExperimentConfig, index: DatasetIndex, architecture: Architecture): string {
  // The micro-batch size is left out: it changes memory use, not the update (gradients are
  // accumulated), and a rerun with a smaller one is how a crashed run resumes.
  const { architectures: _a, outDir: _o, rankBy: _r, dataDir: _d, microBatchSize: _m, ...training } = config;
  return JSON.stringify({
    engine: ENGINE_VERSION,
    architecture,
    datasetHash: index.hash,
    positiveClasses: index.positiveClasses,
    backend: tf.getBackend(),
    ...training,
  });
}

/**
 * Drops the checkpoints of `architecture` when they were made with other settings (another image
 * size, learning rate, dataset ...): resuming them would silently mix two runs. Then records the
 * current settings beside the checkpoints.
 */
async function prepareCheckpointDir(checkpointDir: string, key: string): Promise<void> {
  const keyFile = path.join(checkpointDir, 'settings.json');
  const previous = await readFile(keyFile, 'utf8').then((text) => (JSON.parse(text) as { key?: string }).key).catch(() => undefined);
  if (previous !== key) {
    await rm(checkpointDir, { recursive: true, force: true });
    await writeJsonAtomic(keyFile, { key });
  }
}

/**
 * The result of an earlier run with the same settings, when its model is still there. With
 * `anyBackend`, a result trained on another backend counts too (a GPU worker may train what a CPU
 * worker reports on).
 */
async function readCachedResult(config: ExperimentConfig, index: DatasetIndex, architecture: Architecture, anyBackend: boolean): Promise<ArchitectureResult | null> {
  try {
    const saved = JSON.parse(await readFile(resultFile(config, architecture), 'utf8')) as { key: string; result: ArchitectureResult };
    const expected = cacheKey(config, index, architecture);
    const matches = anyBackend ? withoutBackend(saved.key) === withoutBackend(expected) : saved.key === expected;
    if (!matches) return null;
    await readFile(path.join(config.outDir, saved.result.modelDir, 'metadata.json'));
    return saved.result;
  } catch {
    return null;
  }
}

/** A cache key with its `backend` member dropped. */
function withoutBackend(key: string): string {
  const { backend: _backend, ...rest } = JSON.parse(key) as Record<string, unknown>;
  return JSON.stringify(rest);
}

function mean(values: readonly number[]): number {
  return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
}
