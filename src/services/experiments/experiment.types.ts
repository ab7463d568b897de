/**
 * Shapes of an experiment in the service: the request (`POST /v1/experiments`), the records on disk
 * (`experiment.json`, `progress/{architecture}.json`) and the view the API answers with
 * (`GET /v1/experiments/{id}`, its server-sent events, `DELETE`). JSON is camelCase throughout.
 * @module
 */
import type { RankMetric } from '../../ml/experiment/index.ts';
import type { Architecture } from '../../ml/models/index.ts';

/** Lifecycle of an experiment and of each of its architectures. */
export type ExperimentStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** Per-architecture status; the same words as the experiment's. */
export type ArchitectureStatus = ExperimentStatus;

/** States nothing moves out of. */
export const FINAL_STATUSES: ReadonlySet<ExperimentStatus> = new Set(['completed', 'failed', 'cancelled']);

/** True when `status` is completed, failed or cancelled. */
export function isFinalStatus(status: ExperimentStatus): boolean {
  return FINAL_STATUSES.has(status);
}

/**
 * What a client asks for. Everything but `datasetId` has a default: all four architectures, the
 * engine's defaults for the rest (`learningRate` null or absent: each architecture's own default).
 */
export interface ExperimentRequest {
  datasetId: string;
  architectures?: readonly Architecture[];
  /** Square input side, pixels. Default 128 (InceptionV3 needs at least 75). */
  imageSize?: number;
  /** 3 (default) or 1. */
  channels?: 1 | 3;
  /** Default 10. */
  epochs?: number;
  /** Default 16. */
  batchSize?: number;
  learningRate?: number | null;
  optimizer?: 'adam' | 'sgd';
  /** Default 42. */
  seed?: number;
  /** Default 0.15 each, when the dataset has no preset splits. */
  valFraction?: number;
  testFraction?: number;
  /** Default true. */
  augment?: boolean;
  /** Default true. */
  classWeights?: boolean;
  /** Epochs without val_loss improvement before stopping; 0 disables. Default 5. */
  earlyStoppingPatience?: number;
  /** Epochs without val_loss improvement before halving the learning rate; 0 disables. Default 2. */
  reduceLrPatience?: number;
  /** Metric the comparison ranks by. Default macroF1. */
  rankBy?: RankMetric;
}

/** The request with every default filled in, as stored and shown. */
export interface ExperimentSettings {
  architectures: Architecture[];
  imageSize: number;
  channels: 1 | 3;
  epochs: number;
  batchSize: number;
  /** null: each architecture's default learning rate. */
  learningRate: number | null;
  optimizer: 'adam' | 'sgd';
  seed: number;
  valFraction: number;
  testFraction: number;
  augment: boolean;
  classWeights: boolean;
  earlyStoppingPatience: number;
  reduceLrPatience: number;
  rankBy: RankMetric;
}

/** Why an experiment or architecture failed: a catalogue code (src/infra/errors.ts) and a safe detail. */
export interface ExperimentError {
  code: string;
  detail: string;
}

/** The best architecture of a completed experiment. */
export interface ExperimentWinner {
  architecture: Architecture;
  /** The registered model (`GET /v1/models/{modelId}`). */
  modelId: string;
  /** Metric the ranking used. */
  metric: RankMetric;
  /** The winner's value of `metric`; null when the metric is undefined for this dataset. */
  score: number | null;
  /** One sentence a person can check against the report. */
  reason: string;
  /** True when this experiment gave the winner the `production` alias (no model held it before). */
  promoted: boolean;
}

/** `experiments/{id}/experiment.json`: the request and the experiment's lifecycle. */
export interface ExperimentRecord {
  schemaVersion: 1;
  id: string;
  datasetId: string;
  settings: ExperimentSettings;
  status: ExperimentStatus;
  /** ISO 8601 times. */
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: ExperimentError;
  winner?: ExperimentWinner | null;
  /** Models registered from this experiment, once completed. */
  modelIds?: string[];
  /** How many times the comparison report was built (1 for an experiment that completed normally). */
  compareRuns: number;
}

/** One epoch of training as shown (the engine's `EpochRecord`). */
export interface EpochView {
  /** 1-based. */
  epoch: number;
  /** Mean training loss over the epoch (class-weighted). */
  loss: number;
  /** Training accuracy, 0..1. */
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Learning rate used during the epoch. */
  learningRate: number;
  /** Wall time of the epoch, validation included, seconds. */
  seconds: number;
  /** Training throughput, images per second. */
  imagesPerSecond: number;
}

/** Headline test-split metrics of one finished architecture (the full set is in the report). */
export interface ArchitectureResultSummary {
  accuracy: number;
  macroF1: number;
  balancedAccuracy: number;
  mcc: number;
  /** One-vs-rest macro ROC AUC; null when undefined for the test split. */
  rocAucOvrMacro: number | null;
  /** Binary fracture view; null when the dataset has no fracture-positive (or only positive) classes. */
  fractureSensitivity: number | null;
  fractureSpecificity: number | null;
  fractureRocAuc: number | null;
  /** 1-based epoch whose weights were kept. */
  bestEpoch: number;
  stoppedEarly: boolean;
  /** Training wall time, all epochs, seconds. */
  trainSeconds: number;
  /** Median single-image inference latency, milliseconds. */
  inferenceMsPerImage: number;
  params: number;
  /** Bytes of the saved model files. */
  modelBytes: number;
}

/** One start of an architecture's training job (a retry or a resume after a crash adds one). */
export interface TrainingRun {
  startedAt: string;
  /** First epoch this run trained (k + 1 after resuming from the checkpoint of epoch k). */
  fromEpoch?: number;
}

/** `experiments/{id}/progress/{architecture}.json`, written by the architecture's `train` job. */
export interface ArchitectureProgressRecord {
  architecture: Architecture;
  status: ArchitectureStatus;
  /** Epochs completed. */
  epoch: number;
  epochs: number;
  /** Batches completed in the epoch under way, and batches per epoch (null until known). */
  batch: number;
  batches: number | null;
  /** 0..1 over all epochs. */
  progress: number;
  /** Estimated seconds of training left; null until measurable. */
  etaSeconds: number | null;
  history: EpochView[];
  result?: ArchitectureResultSummary;
  error?: ExperimentError;
  runs: TrainingRun[];
  updatedAt: string;
  finishedAt?: string;
}

/** One architecture in {@link ExperimentView}. */
export interface ArchitectureView {
  architecture: Architecture;
  status: ArchitectureStatus;
  /** Epochs completed. */
  epoch: number;
  epochs: number;
  /** 0..1. */
  progress: number;
  /** Estimated seconds of training left; null when unknown or finished. */
  etaSeconds: number | null;
  /** Completed epochs, in order (those before a crash included). */
  history: EpochView[];
  /** Headline metrics once trained. */
  result?: ArchitectureResultSummary;
  error?: ExperimentError;
  /** How many times training started (more than 1 after a retry or a resume). */
  attempts: number;
  /** Epoch whose checkpoint the latest run resumed from, when it resumed. */
  resumedFromEpoch?: number;
}

/** What `GET /v1/experiments/{id}` answers. */
export interface ExperimentView {
  id: string;
  status: ExperimentStatus;
  datasetId: string;
  settings: ExperimentSettings;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  error?: ExperimentError;
  architectures: ArchitectureView[];
  /** `/v1/reports/{id}`, once completed. */
  reportUrl?: string;
  /** Once completed; null when no architecture could be ranked. */
  winner?: ExperimentWinner | null;
}
