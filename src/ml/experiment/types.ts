/**
 * Shapes of an experiment: training and comparing several architectures on one dataset, and the
 * report it writes (`report.json`). The service's `GET /v1/reports/{id}` serves the same shape.
 * @module
 */
import type { BackendInfo } from '../backend/select-backend.ts';
import type { ClassificationReport, RocCurves } from '../metrics/index.ts';
import type { Architecture } from '../models/index.ts';
import type { EpochRecord, TrainProgressEvent } from '../train/index.ts';
import type { Ranking, RankMetric } from './ranking.ts';

/** What to train and how. Every field but `dataDir`, `outDir` and `architectures` has a default. */
export interface ExperimentOptions {
  /** Dataset folder: class folders, or `train/ val/ test/` of class folders. */
  dataDir: string;
  /** Where `report.json`, `models/<arch>/` and `checkpoints/<arch>/` go. */
  outDir: string;
  architectures: readonly Architecture[];
  /** Square input side in pixels. Default 128 (InceptionV3 needs at least 75). */
  imageSize?: number;
  /** Input channels: 3 (default; the Keras applications' layout) or 1. */
  channels?: 1 | 3;
  /** Default 10. */
  epochs?: number;
  /** Default 16. */
  batchSize?: number;
  /** Initial learning rate. Default: per architecture, {@link DEFAULT_LEARNING_RATE}. */
  learningRate?: number;
  /** Default `adam`. */
  optimizer?: 'adam' | 'sgd';
  /** Seed of splits, augmentation, batch order and initial weights. Default 42. */
  seed?: number;
  /** Default 0.15 each (when the dataset has no preset splits). */
  valFraction?: number;
  testFraction?: number;
  /** Random flips, rotation, brightness/contrast and zoom on training images. Default true. */
  augment?: boolean;
  /** Weight the loss by inverse class frequency ('balanced'). Default true. */
  classWeights?: boolean;
  /** Epochs without val_loss improvement before stopping; 0 disables early stopping. Default 5. */
  earlyStoppingPatience?: number;
  /** Epochs without val_loss improvement before the learning rate is halved; 0 disables. Default 2. */
  reduceLrPatience?: number;
  /** The original Keras top instead of the GAP head. Default false. */
  includeTop?: boolean;
  /** Head dropout. Default the models' own. */
  dropout?: number;
  /** How results are ranked. Default macro F1. */
  rankBy?: RankMetric;
  /** Largest samples per forward/backward pass (gradient accumulation above it). Default: whole batch. */
  microBatchSize?: number;
  /** Letterbox (default) or centre crop to the input size. */
  resize?: 'letterbox' | 'crop';
  /**
   * Accept images smaller than the input (they are upscaled). Default false: such a dataset is
   * refused with `IMAGE_TOO_SMALL`, since upscaling invents detail the model would learn from.
   */
  allowSmallImages?: boolean;
  /** tfjs backend: `auto` (default: `FRACTURE_BACKEND`, else auto), `tensorflow`, `wasm` or `cpu`. */
  backend?: string;
  /**
   * Write `report.json` into `outDir`. Default true. The service's per-architecture jobs share one
   * `outDir` and set it false, so only the job that compares them all writes the report.
   */
  writeReport?: boolean;
  /**
   * Only report on architectures already trained into `outDir` (their `results/<arch>.json` and
   * model): one without a result fails with `MODEL_NOT_FOUND` instead of being trained. Such a
   * result is accepted whichever backend trained it. Default false.
   */
  onlyCached?: boolean;
  signal?: AbortSignal;
  onEvent?: (event: ExperimentEvent) => void;
}

/** Progress of an experiment, flat and JSON-able (the service forwards it as server-sent events). */
export type ExperimentEvent =
  | { type: 'dataset'; classNames: readonly string[]; counts: Record<'train' | 'val' | 'test', number>; skipped: number; leaks: number }
  | { type: 'architecture-start'; architecture: Architecture; index: number; total: number; params: number }
  | ({ type: 'train' ; architecture: Architecture } & { progress: TrainProgressEvent })
  | { type: 'architecture-done'; architecture: Architecture; result: ArchitectureResult };

/** Wall times and speeds of one architecture. */
export interface Timings {
  /** Training wall time (all epochs, validation included), seconds. */
  trainSeconds: number;
  /** Mean training throughput, images per second. */
  trainImagesPerSecond: number;
  /** Test-split evaluation wall time (decoding included), seconds. */
  evaluateSeconds: number;
  /** Median latency of one single-image forward pass, milliseconds. */
  inferenceMsPerImage: number;
}

/** Everything measured for one architecture. */
export interface ArchitectureResult {
  architecture: Architecture;
  /** Report on the test split. */
  metrics: ClassificationReport;
  history: EpochRecord[];
  bestEpoch: number;
  stoppedEarly: boolean;
  timings: Timings;
  params: number;
  trainableParams: number;
  /** Bytes of the saved model's files. */
  modelBytes: number;
  /** Saved model directory, relative to the experiment's `outDir`. */
  modelDir: string;
  /** Samples per forward/backward pass actually used (smaller than the batch after an out-of-memory fallback). */
  microBatchSize: number;
  /** ROC curves on the test split, for the report's charts (absent in reports written before them). */
  rocCurves?: RocCurves;
}

/** The dataset as the experiment saw it. */
export interface DatasetSummary {
  root: string;
  hash: string;
  layout: 'classes' | 'splits';
  classNames: string[];
  positiveClasses: string[];
  counts: number[];
  skipped: { count: number; byReason: Record<string, number> };
  split: unknown;
  duplicates: unknown;
}

/** `report.json`. */
export interface ExperimentReport {
  schemaVersion: 1;
  createdAt: string;
  /** `learningRate` null: each architecture's default ({@link DEFAULT_LEARNING_RATE}). */
  config: Required<Omit<ExperimentOptions, 'signal' | 'onEvent' | 'microBatchSize' | 'dropout' | 'backend' | 'learningRate' | 'writeReport' | 'onlyCached'>> & {
    learningRate: number | null;
    microBatchSize?: number;
    dropout?: number;
  };
  backend: BackendInfo;
  versions: Record<string, string>;
  dataset: DatasetSummary;
  results: ArchitectureResult[];
  ranking: Ranking;
  winner: Ranking['winner'];
}

/** The training settings saved in each model's `metadata.json` as `training`. */
export interface TrainingRecord {
  epochs: number;
  batchSize: number;
  microBatchSize: number;
  optimizer: 'adam' | 'sgd';
  learningRate: number;
  augment: boolean;
  classWeights: boolean;
  earlyStoppingPatience: number;
  reduceLrPatience: number;
  includeTop: boolean;
  /** The split of the dataset whose hash is the model's `datasetHash`. */
  split: { seed: number; valFraction: number; testFraction: number };
}

/**
 * Initial learning rate (Adam or SGD) of each architecture when none is given. VGG16 has no batch
 * normalisation and, trained from scratch with Adam at 1e-3, diverged in our runs (loss 13 after one
 * epoch on the synthetic set); 1e-4 is the usual choice for it. The others train well at 1e-3.
 */
export const DEFAULT_LEARNING_RATE: Readonly<Record<Architecture, number>> = Object.freeze({
  cnn: 1e-3,
  vgg16: 1e-4,
  resnet50: 1e-3,
  inceptionv3: 1e-3,
});
