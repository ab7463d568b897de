/**
 * The comparison report as the API serves it (`GET /v1/reports/{id}`): the ML engine's `report.json`
 * ({@link ExperimentReport}) reshaped into camelCase JSON whose keys are all fixed names. Data never
 * becomes a key (class names, package names and skip reasons are values in arrays), so the shape can be
 * written down as one OpenAPI schema, and server paths (`dataDir`, `outDir`, `dataset.root`,
 * `modelDir`) are left out.
 *
 * The HTML page, the CSV tables and the charts are all rendered from this view, so they show the same
 * numbers.
 * @module
 */
import type { BackendInfo } from '../../ml/backend/select-backend.ts';
import type { ArchitectureResult, ExperimentReport, RankMetric } from '../../ml/experiment/index.ts';
import type { BinaryFractureMetrics, ClassificationReport, ClassMetrics, RocCurve } from '../../ml/metrics/index.ts';
import type { Architecture } from '../../ml/models/index.ts';
import type { EpochRecord } from '../../ml/train/index.ts';

/** Precision, recall, F1 (each in [0, 1], `zero_division=0`) and support (samples) of a class or an average. */
export interface ClassMetricsView {
  precision: number;
  recall: number;
  f1: number;
  /** Test samples whose true class is this one; for the averages, all test samples. */
  support: number;
}

/** One class's row of the per-class table. */
export interface PerClassMetricsView extends ClassMetricsView {
  className: string;
  /** True when the class counts as fracture-positive in the binary view. */
  positive: boolean;
}

/** The binary fracture view: fracture-positive classes merged into "fracture", the rest into "no fracture". */
export interface BinaryMetricsView {
  /** Class names counted as fracture-positive, in class order. */
  positiveClasses: string[];
  /** Counts of test images. */
  tp: number;
  fp: number;
  tn: number;
  fn: number;
  /** tp / (tp + fn); 0 when undefined. */
  sensitivity: number;
  /** tn / (tn + fp); 0 when undefined. */
  specificity: number;
  /** Positive predictive value tp / (tp + fp); 0 when undefined. */
  precision: number;
  /** Negative predictive value tn / (tn + fn); 0 when undefined. */
  npv: number;
  f1: number;
  accuracy: number;
  /** ROC AUC of the summed fracture probability; null without probabilities or with one-sided truth. */
  rocAuc: number | null;
}

/**
 * Every metric of one architecture on the test split (DESIGN.md section 5; scikit-learn 1.2.1
 * semantics). A metric that is undefined for the data is null, never NaN.
 */
export interface MetricsView {
  accuracy: number;
  balancedAccuracy: number;
  /** Per class, in `dataset.classNames` order. */
  perClass: PerClassMetricsView[];
  macroAvg: ClassMetricsView;
  weightedAvg: ClassMetricsView;
  /** `[true class][predicted class]` counts, both indexed in `dataset.classNames` order. */
  confusionMatrix: number[][];
  /** Cohen's kappa; null when undefined (expected agreement 1). */
  cohenKappa: number | null;
  /** Matthews correlation coefficient, in [-1, 1]. */
  mcc: number;
  /** Cross-entropy of the predicted probabilities (nats); null without probabilities. */
  logLoss: number | null;
  /** Mean squared error of the probabilities against one-hot labels; null without probabilities. */
  mse: number | null;
  /** R² of the probabilities against one-hot labels; null without probabilities. */
  r2: number | null;
  /** One-vs-rest macro ROC AUC; null when a class lacks positives or negatives in the test split. */
  rocAucOvrMacro: number | null;
  /** Expected calibration error over 15 equal-width confidence bins; null without probabilities. */
  ece: number | null;
  /** Null when no class, or every class, is fracture-positive. */
  binary: BinaryMetricsView | null;
}

/** One epoch of training. */
export interface EpochView {
  /** 1-based. */
  epoch: number;
  /** Mean training loss (class-weighted). */
  loss: number;
  /** Training accuracy in [0, 1]. */
  accuracy: number;
  /** Null when the experiment had no validation split. */
  valLoss: number | null;
  valAccuracy: number | null;
  /** Learning rate in effect during the epoch. */
  learningRate: number;
  /** Wall time of the epoch including validation, seconds. */
  seconds: number;
  /** Training images per second. */
  imagesPerSecond: number;
}

/** Wall times and speeds of one architecture. */
export interface TimingsView {
  /** Training wall time (all epochs, validation included), seconds. */
  trainSeconds: number;
  /** Mean training throughput, images per second. */
  trainImagesPerSecond: number;
  /** Test-split evaluation wall time, seconds. */
  evaluateSeconds: number;
  /** Median latency of one single-image forward pass, milliseconds. */
  inferenceMsPerImage: number;
}

/** Points of one ROC curve, from (0, 0) to (1, 1), ordered by decreasing threshold. */
export interface RocCurveView {
  /** False-positive rate at each threshold, in [0, 1]. */
  fpr: number[];
  /** True-positive rate at each threshold, in [0, 1]. */
  tpr: number[];
  /** Score thresholds, decreasing; the first is `max score + 1` (scikit-learn 1.2.1). */
  thresholds: number[];
}

/** ROC curves of one architecture on the test split, when the engine stored them. */
export interface RocView {
  /** The binary fracture view, scored by the summed fracture probability; null when undefined. */
  binary: RocCurveView | null;
  /** One-vs-rest curve of each class that has positives and negatives in the test split, in class order. */
  perClass: { className: string; curve: RocCurveView }[];
}

/** Everything measured for one architecture. */
export interface ResultView {
  architecture: Architecture;
  /** Place in `ranking` (1 = winner); null when the ranking does not list it. */
  rank: number | null;
  /** Id of the published model under `/v1/models`, when the caller knows it; else null. */
  modelId: string | null;
  metrics: MetricsView;
  history: EpochView[];
  /** 1-based epoch whose weights were kept (0 when no epoch ran). */
  bestEpoch: number;
  /** True when early stopping ended training before `config.epochs`. */
  stoppedEarly: boolean;
  timings: TimingsView;
  /** All weights, trainable or not. */
  params: number;
  trainableParams: number;
  /** Bytes of the saved model's files. */
  modelBytes: number;
  /** Samples per forward/backward pass actually used. */
  microBatchSize: number;
  /** Null when the engine did not store curves for this result (see the README). */
  roc: RocView | null;
}

/** Images of one class in each split. */
export interface ClassCountsView {
  className: string;
  positive: boolean;
  total: number;
  train: number;
  val: number;
  test: number;
}

/** Duplicate findings of the dataset scan (counts of images and groups). */
export interface DuplicatesView {
  exactGroups: number;
  /** Copies beyond the first in each exact group. */
  exactDuplicateImages: number;
  nearGroups: number;
  nearDuplicateImages: number;
  /** Duplicate groups whose members sit in more than one split (test images seen in training). */
  crossSplitLeaks: number;
  leakedImages: number;
  /** The same image under different labels. */
  conflictingLabelGroups: number;
}

/** The dataset as the experiment saw it. */
export interface DatasetView {
  /** Dataset id under `/v1/datasets`, when the caller knows it; else null. */
  id: string | null;
  /** sha256 (hex) over the dataset's relative paths and file contents. */
  hash: string;
  /** `classes`: one folder per class; `splits`: preset `train/ val/ test/` folders. */
  layout: 'classes' | 'splits';
  classNames: string[];
  positiveClasses: string[];
  /** Images in each split. */
  counts: { train: number; val: number; test: number; total: number };
  /** Per class, in `classNames` order. */
  classCounts: ClassCountsView[];
  /** Files that were not used, by reason (e.g. `undecodable`). */
  skipped: { count: number; byReason: { reason: string; count: number }[] };
  /** Null when the report holds no duplicate findings. */
  duplicates: DuplicatesView | null;
}

/** The training settings of the experiment (every default filled in). */
export interface ConfigView {
  architectures: Architecture[];
  /** Square input side, pixels. */
  imageSize: number;
  channels: 1 | 3;
  epochs: number;
  batchSize: number;
  /** Initial learning rate; null means each architecture's default. */
  learningRate: number | null;
  optimizer: 'adam' | 'sgd';
  seed: number;
  valFraction: number;
  testFraction: number;
  augment: boolean;
  classWeights: boolean;
  /** 0 disables early stopping. */
  earlyStoppingPatience: number;
  /** 0 disables learning-rate reduction. */
  reduceLrPatience: number;
  includeTop: boolean;
  rankBy: RankMetric;
  resize: 'letterbox' | 'crop';
  allowSmallImages: boolean;
  /** Null: the whole batch per pass. */
  microBatchSize: number | null;
  /** Head dropout; null: the models' default. */
  dropout: number | null;
}

/** What ran the tensors and which package versions did. */
export interface ProvenanceView {
  backend: {
    name: BackendInfo['name'];
    requested: BackendInfo['requested'];
    /** Native package providing `tensorflow`; null for `wasm` and `cpu`. */
    package: string | null;
    gpu: boolean;
    threads: number;
    simd: boolean;
    fallbacks: { candidate: string; reason: string }[];
  };
  /** Package versions (`tfjs-core`, `node`, ...), sorted by name. */
  versions: { name: string; version: string }[];
}

/** One row of the ranking. */
export interface RankingEntryView {
  rank: number;
  architecture: string;
  /** The ranking metric; null when undefined for this result (ranked last). */
  score: number | null;
}

/** The architectures ordered by `metric` on the test split (higher is better). */
export interface RankingView {
  metric: RankMetric;
  entries: RankingEntryView[];
}

/** The best architecture and why. */
export interface WinnerView {
  architecture: string;
  metric: RankMetric;
  score: number | null;
  /** One sentence a person can check against the table. */
  reason: string;
}

/** The comparison report of one experiment, as JSON. */
export interface ReportView {
  experimentId: string;
  /** Version of the engine's `report.json` it was built from. */
  schemaVersion: number;
  /** When the report was written, ISO 8601. */
  createdAt: string;
  dataset: DatasetView;
  config: ConfigView;
  provenance: ProvenanceView;
  /** In the order the architectures were trained (`config.architectures`). */
  results: ResultView[];
  ranking: RankingView;
  /** Null when no architecture finished. */
  winner: WinnerView | null;
}

/**
 * ROC curves the engine may store with each result. `ArchitectureResult` does not declare them yet;
 * when present they are read from `result.rocCurves` (see the README for the proposed engine change).
 */
export interface StoredRocCurves {
  binary: RocCurve | null;
  /** Keyed by class name; null for a class without positives or negatives in the test split. */
  perClass: Record<string, RocCurve | null>;
}

/** Extra facts the report file does not hold. */
export interface ReportViewOptions {
  /** The dataset's id under `/v1/datasets`. */
  datasetId?: string;
  /** Published model id of each architecture. */
  modelIds?: Partial<Record<Architecture, string>>;
}

/**
 * Reshapes an engine report into the API's JSON.
 * @param experimentId the experiment the report belongs to
 * @param report the parsed `report.json`
 * @example
 * const view = toReportView('exp-1', JSON.parse(await readFile(store.reportFile('exp-1'), 'utf8')));
 * view.results.map((r) => r.metrics.macroAvg.f1);
 */
export function toReportView(experimentId: string, report: ExperimentReport, options: ReportViewOptions = {}): ReportView {
  const classNames = [...report.dataset.classNames];
  const positive = new Set(report.dataset.positiveClasses);
  const rankOf = new Map(report.ranking.entries.map((entry) => [entry.architecture, entry.rank]));
  return {
    experimentId,
    schemaVersion: report.schemaVersion,
    createdAt: report.createdAt,
    dataset: datasetView(report, options.datasetId),
    config: configView(report.config),
    provenance: provenanceView(report.backend, report.versions),
    results: report.results.map((result) => ({
      architecture: result.architecture,
      rank: rankOf.get(result.architecture) ?? null,
      modelId: options.modelIds?.[result.architecture] ?? null,
      metrics: metricsView(result.metrics, classNames, positive),
      history: result.history.map(epochView),
      bestEpoch: result.bestEpoch,
      stoppedEarly: result.stoppedEarly,
      timings: {
        trainSeconds: result.timings.trainSeconds,
        trainImagesPerSecond: result.timings.trainImagesPerSecond,
        evaluateSeconds: result.timings.evaluateSeconds,
        inferenceMsPerImage: result.timings.inferenceMsPerImage,
      },
      params: result.params,
      trainableParams: result.trainableParams,
      modelBytes: result.modelBytes,
      microBatchSize: result.microBatchSize,
      roc: rocView(result, classNames),
    })),
    ranking: {
      metric: report.ranking.metric,
      entries: report.ranking.entries.map((entry) => ({ rank: entry.rank, architecture: entry.architecture, score: entry.score })),
    },
    winner: report.winner
      ? { architecture: report.winner.architecture, metric: report.ranking.metric, score: report.winner.score, reason: report.winner.reason }
      : null,
  };
}

function classMetrics(metrics: ClassMetrics): ClassMetricsView {
  return { precision: metrics.precision, recall: metrics.recall, f1: metrics.f1, support: metrics.support };
}

function metricsView(metrics: ClassificationReport, classNames: readonly string[], positive: ReadonlySet<string>): MetricsView {
  // Class order comes from the dataset, not from object key order, which JSON does not promise.
  const perClass = classNames.flatMap((className) => {
    const row = metrics.perClass[className];
    return row ? [{ className, positive: positive.has(className), ...classMetrics(row) }] : [];
  });
  return {
    accuracy: metrics.accuracy,
    balancedAccuracy: metrics.balancedAccuracy,
    perClass,
    macroAvg: classMetrics(metrics.macroAvg),
    weightedAvg: classMetrics(metrics.weightedAvg),
    confusionMatrix: metrics.confusionMatrix.map((row) => [...row]),
    cohenKappa: metrics.cohenKappa,
    mcc: metrics.mcc,
    logLoss: metrics.logLoss,
    mse: metrics.mse,
    r2: metrics.r2,
    rocAucOvrMacro: metrics.rocAucOvrMacro,
    ece: metrics.ece,
    binary: metrics.binary ? binaryView(metrics.binary) : null,
  };
}

function binaryView(binary: BinaryFractureMetrics): BinaryMetricsView {
  return {
    positiveClasses: [...binary.positiveClasses],
    tp: binary.tp,
    fp: binary.fp,
    tn: binary.tn,
    fn: binary.fn,
    sensitivity: binary.sensitivity,
    specificity: binary.specificity,
    precision: binary.precision,
    npv: binary.npv,
    f1: binary.f1,
    accuracy: binary.accuracy,
    rocAuc: binary.rocAuc,
  };
}

function epochView(epoch: EpochRecord): EpochView {
  return {
    epoch: epoch.epoch,
    loss: epoch.loss,
    accuracy: epoch.accuracy,
    valLoss: epoch.valLoss ?? null,
    valAccuracy: epoch.valAccuracy ?? null,
    learningRate: epoch.learningRate,
    seconds: epoch.seconds,
    imagesPerSecond: epoch.imagesPerSecond,
  };
}

function isRocCurve(value: unknown): value is RocCurve {
  if (typeof value !== 'object' || value === null) return false;
  const { fpr, tpr, thresholds } = value as Partial<Record<keyof RocCurve, unknown>>;
  const numbers = (array: unknown): array is number[] => Array.isArray(array) && array.every((v) => typeof v === 'number' && Number.isFinite(v));
  return numbers(fpr) && numbers(tpr) && numbers(thresholds) && fpr.length === tpr.length && fpr.length === thresholds.length && fpr.length >= 2;
}

function curveView(curve: RocCurve): RocCurveView {
  return { fpr: [...curve.fpr], tpr: [...curve.tpr], thresholds: [...curve.thresholds] };
}

function rocView(result: ArchitectureResult, classNames: readonly string[]): RocView | null {
  // Read defensively: a report.json written before the engine stored curves has none, and the file
  // is data from disk, not a value this process made.
  const stored: unknown = result.rocCurves;
  if (typeof stored !== 'object' || stored === null) return null;
  const { binary, perClass } = stored as { binary?: unknown; perClass?: unknown };
  const byClass = typeof perClass === 'object' && perClass !== null ? (perClass as Record<string, unknown>) : {};
  return {
    binary: isRocCurve(binary) ? curveView(binary) : null,
    perClass: classNames.flatMap((className) => {
      const curve = Object.hasOwn(byClass, className) ? byClass[className] : undefined;
      return isRocCurve(curve) ? [{ className, curve: curveView(curve) }] : [];
    }),
  };
}

/** A non-negative integer from an open (`unknown`) part of the engine's report, else 0. */
function count(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 ? value : 0;
}

function datasetView(report: ExperimentReport, id: string | undefined): DatasetView {
  const { dataset } = report;
  const positive = new Set(dataset.positiveClasses);
  // `split` and `duplicates` are typed `unknown` by the engine (they are the data layer's records):
  // read the fields we show and default what is missing rather than trust the shape.
  const splitCounts = ((dataset.split as { counts?: unknown } | null)?.counts ?? {}) as Partial<Record<'train' | 'val' | 'test', unknown>>;
  const perSplit = (name: 'train' | 'val' | 'test'): number[] => {
    const values = splitCounts[name];
    return dataset.classNames.map((_, c) => (Array.isArray(values) ? count(values[c]) : 0));
  };
  const train = perSplit('train');
  const val = perSplit('val');
  const test = perSplit('test');
  const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
  const summary = (dataset.duplicates as { summary?: Record<string, unknown> } | null)?.summary;
  return {
    id: id ?? null,
    hash: dataset.hash,
    layout: dataset.layout,
    classNames: [...dataset.classNames],
    positiveClasses: [...dataset.positiveClasses],
    counts: { train: sum(train), val: sum(val), test: sum(test), total: sum(dataset.counts) },
    classCounts: dataset.classNames.map((className, c) => ({
      className,
      positive: positive.has(className),
      total: dataset.counts[c] ?? 0,
      train: train[c] ?? 0,
      val: val[c] ?? 0,
      test: test[c] ?? 0,
    })),
    skipped: {
      count: dataset.skipped.count,
      byReason: Object.entries(dataset.skipped.byReason)
        .map(([reason, n]) => ({ reason, count: n }))
        .sort((a, b) => a.reason.localeCompare(b.reason, 'en')),
    },
    duplicates:
      typeof summary === 'object' && summary !== null
        ? {
            exactGroups: count(summary.exactGroups),
            exactDuplicateImages: count(summary.exactDuplicateImages),
            nearGroups: count(summary.nearGroups),
            nearDuplicateImages: count(summary.nearDuplicateImages),
            crossSplitLeaks: count(summary.crossSplitLeaks),
            leakedImages: count(summary.leakedImages),
            conflictingLabelGroups: count(summary.conflictingLabelGroups),
          }
        : null,
  };
}

function configView(config: ExperimentReport['config']): ConfigView {
  return {
    architectures: [...config.architectures],
    imageSize: config.imageSize,
    channels: config.channels,
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    optimizer: config.optimizer,
    seed: config.seed,
    valFraction: config.valFraction,
    testFraction: config.testFraction,
    augment: config.augment,
    classWeights: config.classWeights,
    earlyStoppingPatience: config.earlyStoppingPatience,
    reduceLrPatience: config.reduceLrPatience,
    includeTop: config.includeTop,
    rankBy: config.rankBy,
    resize: config.resize,
    allowSmallImages: config.allowSmallImages,
    microBatchSize: config.microBatchSize ?? null,
    dropout: config.dropout ?? null,
  };
}

function provenanceView(backend: BackendInfo, versions: Record<string, string>): ProvenanceView {
  return {
    backend: {
      name: backend.name,
      requested: backend.requested,
      package: backend.package ?? null,
      gpu: backend.gpu,
      threads: backend.threads,
      simd: backend.simd,
      fallbacks: backend.fallbacks.map((fallback) => ({ candidate: fallback.candidate, reason: fallback.reason })),
    },
    versions: Object.entries({ ...backend.versions, ...versions })
      .map(([name, version]) => ({ name, version }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)),
  };
}
