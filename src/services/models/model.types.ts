/**
 * The JSON views of registered models that `GET /v1/models[/{id}]` answers with (the `Model` schema
 * of `openapi.yaml`), the `registry.json` record kept beside each model's files, and the naming rules
 * of model ids and aliases.
 * @module
 */
import type { Architecture } from '../../ml/models/index.ts';

/** Aliases name models for clients (`production` is what `/v1/predict` uses by default). */
export const ALIAS_PATTERN = /^[a-z][a-z0-9-]{0,39}$/;

/** The alias `/v1/predict` and {@link ModelRegistry.resolve} use when no model is named. */
export const DEFAULT_ALIAS = 'production';

/** File written beside a registered model's files; not servable. */
export const REGISTRY_FILE = 'registry.json';

/** Version of the `registry.json` layout. */
export const REGISTRY_SCHEMA_VERSION = 1;

/**
 * The headline numbers of a model's test-split evaluation (from `metadata.json`'s `metrics`, the ML
 * engine's classification report). `null` where the report has no value (e.g. ROC AUC when a class
 * had no test sample) or the model was saved without metrics. A type alias, not an interface, so it
 * fits the contract's open `metrics` object (`{ [key: string]: unknown }`).
 */
export type ModelMetricsSummary = {
  accuracy: number | null;
  macroF1: number | null;
  weightedF1: number | null;
  balancedAccuracy: number | null;
  cohenKappa: number | null;
  mcc: number | null;
  logLoss: number | null;
  rocAucOvrMacro: number | null;
  /** Expected calibration error. */
  ece: number | null;
  /** Test images the numbers were computed on. */
  testSamples: number | null;
  /** Fracture vs no fracture; null when the model has no (or only) fracture-positive classes. */
  binary: {
    sensitivity: number | null;
    specificity: number | null;
    precision: number | null;
    npv: number | null;
    f1: number | null;
    rocAuc: number | null;
  } | null;
};

/** A registered model as the API shows it. */
export interface ModelView {
  id: string;
  architecture: Architecture;
  /** Class names in output order. */
  classes: string[];
  /** The fracture-positive subset of `classes`. */
  positiveClasses: string[];
  /** Input image size in pixels, channels last. */
  input: { height: number; width: number; channels: number };
  /** How images become input tensors (the record of the ML engine's preprocessing). */
  preprocessing: Record<string, unknown>;
  metrics: ModelMetricsSummary;
  /** sha256 of the training data; empty when the model was saved without one. */
  datasetHash: string;
  /** The experiment that trained it; absent for a model not registered from an experiment. */
  experimentId?: string;
  /** When the model was saved (ISO 8601, from `metadata.json`). */
  createdAt: string;
  /** 12 hex digits identifying the exact files: two models with the same version are the same bytes. */
  version: string;
  /** Aliases naming this model, sorted. */
  aliases: string[];
  /** Servable files: `model.json`, its weight shards in manifest order, `metadata.json`. */
  files: string[];
}

/** A model ref resolved for serving. */
export interface ResolvedModel {
  id: string;
  architecture: Architecture;
  /** As in {@link ModelView.version}. */
  version: string;
  /** Absolute path of the model directory (for `loadModel`). */
  dir: string;
}

/** `registry.json`: where a registered model came from. */
export interface RegistryRecord {
  schemaVersion: typeof REGISTRY_SCHEMA_VERSION;
  modelId: string;
  architecture: Architecture;
  experimentId: string;
  datasetId?: string;
  /** When the model was registered (ISO 8601). */
  createdAt: string;
  metrics: ModelMetricsSummary;
}

/** Id of the model an experiment trained for `architecture`. */
export function modelIdFor(experimentId: string, architecture: string): string {
  return `${experimentId}-${architecture}`;
}

/** The {@link ModelMetricsSummary} of an opaque metrics object (a classification report). */
export function summariseMetrics(metrics: unknown): ModelMetricsSummary {
  const report = asRecord(metrics);
  const macro = asRecord(report.macroAvg);
  const weighted = asRecord(report.weightedAvg);
  const binary = report.binary === null || report.binary === undefined ? null : asRecord(report.binary);
  return {
    accuracy: num(report.accuracy),
    macroF1: num(macro.f1),
    weightedF1: num(weighted.f1),
    balancedAccuracy: num(report.balancedAccuracy),
    cohenKappa: num(report.cohenKappa),
    mcc: num(report.mcc),
    logLoss: num(report.logLoss),
    rocAucOvrMacro: num(report.rocAucOvrMacro),
    ece: num(report.ece),
    testSamples: num(macro.support),
    binary:
      binary === null
        ? null
        : {
            sensitivity: num(binary.sensitivity),
            specificity: num(binary.specificity),
            precision: num(binary.precision),
            npv: num(binary.npv),
            f1: num(binary.f1),
            rocAuc: num(binary.rocAuc),
          },
  };
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
