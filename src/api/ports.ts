/**
 * What the HTTP layer needs of the services, as small interfaces typed by the contract
 * (`openapi.yaml` → src/api/generated/openapi.ts). Services satisfy them structurally; tests can
 * hand in their own. Keeping the API on these ports is STYLE rule 2.
 * @module
 */
import type { Readable } from 'node:stream';
import type { components } from './generated/openapi.ts';
import type { Readiness } from '../services/readiness/readiness.service.ts';

type Schemas = components['schemas'];

export type DatasetSummaryBody = Schemas['DatasetSummary'];
export type DatasetBody = Schemas['Dataset'];
export type ExperimentBody = Schemas['Experiment'];
export type ExperimentRequestBody = Schemas['ExperimentRequest'];
export type ReportBody = Schemas['Report'];
export type ModelBody = Schemas['Model'];
export type PredictResponseBody = Schemas['PredictResponse'];
export type AsyncPredictionBody = Schemas['AsyncPrediction'];

export interface DatasetsPort {
  list(): Promise<DatasetSummaryBody[]>;
  get(id: string): Promise<DatasetBody>;
  /** Streams the zip to disk, extracts it safely and returns the new dataset. */
  createFromZip(zip: Readable, requestedId?: string): Promise<DatasetBody>;
}

export interface ExperimentsPort {
  /** With an idempotency key, a repeat (same caller, key and body) answers the first experiment. */
  create(request: ExperimentRequestBody, options?: { idempotencyKey?: string; callerId?: string | null }): Promise<ExperimentBody>;
  get(id: string): Promise<ExperimentBody>;
  list(): Promise<ExperimentBody[]>;
  cancel(id: string): Promise<ExperimentBody>;
  /** Calls `onChange` with the experiment whenever it changes; returns the unsubscribe function. */
  watch(id: string, onChange: (experiment: ExperimentBody) => void): Promise<() => void>;
}

/** A rendered document: the report as HTML or CSV, or a chart. */
export interface Rendered {
  contentType: string;
  body: string | Uint8Array;
}

export interface ReportsPort {
  get(experimentId: string): Promise<ReportBody>;
  render(experimentId: string, format: 'html' | 'csv', table?: 'summary' | 'perClass'): Promise<Rendered>;
  chart(experimentId: string, name: string, format: 'svg' | 'png'): Promise<Rendered>;
}

export interface ModelsPort {
  list(): Promise<ModelBody[]>;
  aliases(): Promise<Record<string, string>>;
  /** By id or alias. */
  get(ref: string): Promise<ModelBody>;
  setAlias(alias: string, modelId: string): Promise<void>;
  /** Absolute path of a servable file of the model (whitelisted names only). */
  filePath(ref: string, file: string): Promise<string>;
}

export interface PredictRequest {
  model?: string | undefined;
  images: { id: string; data: Uint8Array }[];
  explain: boolean;
}

export interface PredictorPort {
  predict(request: PredictRequest): Promise<PredictResponseBody>;
}

export interface PredictionsPort {
  /** Queues a prediction; with an idempotency key, a repeat (same caller, key and request) answers the first one. */
  create(request: PredictRequest, options: { callerId: string | null; idempotencyKey?: string }): Promise<AsyncPredictionBody>;
  /** The prediction, if `reader` may see it (its creator, or an admin). */
  get(id: string, reader: { callerId: string | null; admin: boolean }): Promise<AsyncPredictionBody>;
}

export interface ReadinessPort {
  check(): Promise<Readiness>;
}
