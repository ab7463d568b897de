/**
 * Asynchronous predictions (`POST /v1/predictions`): the record kept under
 * `DATA_DIR/predictions/{id}/prediction.json` and the view the API answers with.
 * @module
 */
import type { ErrorCode } from '../../infra/errors.ts';
import type { PredictResponse } from '../../serving/types.ts';

export type PredictionStatus = 'queued' | 'running' | 'completed' | 'failed';

/** A prediction that can no longer change. */
export function isFinalPrediction(status: PredictionStatus): boolean {
  return status === 'completed' || status === 'failed';
}

/** Why a prediction failed: a catalogue code and a detail safe to show its caller. */
export interface PredictionError {
  code: ErrorCode;
  detail: string;
}

/** The model a prediction was queued for (resolved when it was created, so an alias move does not change it). */
export interface PredictionModel {
  id: string;
  architecture: string;
  version: string;
}

/** `prediction.json`: the source of truth of one asynchronous prediction. */
export interface PredictionRecord {
  schemaVersion: 1;
  id: string;
  status: PredictionStatus;
  /** The API key that created it (null without keys): only it, or an admin key, may read it. */
  ownerKeyId: string | null;
  model: PredictionModel;
  explain: boolean;
  /**
   * The caller's id of each image (`images[i]` when it gave none), in request order. They may be
   * patient identifiers: they stay in this file (mode 0600) and in the answer, nowhere else.
   */
  imageIds: string[];
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  /** With `completed`: the predictions, with the caller's image ids. */
  result?: PredictResponse;
  /** With `failed`. */
  error?: PredictionError;
}

/** What `GET /v1/predictions/{id}` answers (and `POST` with 202). */
export interface PredictionView {
  id: string;
  status: PredictionStatus;
  model: PredictionModel;
  images: number;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  result?: PredictResponse;
  error?: PredictionError;
}

/** The view of a record. */
export function predictionView(record: PredictionRecord): PredictionView {
  return {
    id: record.id,
    status: record.status,
    model: record.model,
    images: record.imageIds.length,
    createdAt: record.createdAt,
    ...(record.startedAt === undefined ? {} : { startedAt: record.startedAt }),
    ...(record.finishedAt === undefined ? {} : { finishedAt: record.finishedAt }),
    ...(record.result === undefined ? {} : { result: record.result }),
    ...(record.error === undefined ? {} : { error: record.error }),
  };
}
