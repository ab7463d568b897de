/**
 * The shapes every predictor shares: the request, the response body of `POST /v1/predict` (as
 * `openapi.yaml` defines `PredictResponse`), the model a reference resolves to, and the
 * {@link Predictor} interface the API depends on, whichever way predictions are run (in-process or
 * through the `inference` queue).
 * @module
 */
import { DEFAULT_ALIAS } from '../services/models/model.types.ts';

/** Carried by every prediction response (DESIGN section 7). */
export const PREDICTION_NOTICE = 'For research use only. Not for use in diagnostic procedures.' as const;

/** The model alias `/v1/predict` uses when the request names none. */
export const DEFAULT_MODEL_REF = DEFAULT_ALIAS;

/** A model reference resolved by the model registry. */
export interface ResolvedModel {
  /** Model id (a folder name under `DATA_DIR/models/`). */
  id: string;
  architecture: string;
  /** Shown in responses so a caller can tell which weights answered. */
  version: string;
  /** Absolute directory of the saved model. */
  dir: string;
}

/**
 * Resolves a model id or alias (e.g. `production`) to a concrete model.
 * @throws AppError `MODEL_NOT_FOUND` when no model has that id or alias
 */
export type ModelResolver = (ref: string) => Promise<ResolvedModel>;

/** One image of a request. */
export interface PredictImage {
  /** Echoed back in the prediction and used in error details: `images[i]` unless the client gave one. */
  id: string;
  /** The encoded image (JPEG or PNG), as uploaded. */
  data: Uint8Array;
}

export interface PredictRequest {
  /** Model id or alias; default {@link DEFAULT_MODEL_REF}. */
  model?: string;
  /** At least one image; the answer keeps their order. */
  images: readonly PredictImage[];
  /** Add a Grad-CAM overlay to each prediction. */
  explain: boolean;
}

/** The prediction for one image. */
export interface Prediction {
  id: string;
  /** The most probable class. */
  label: string;
  /** Probability of every class, keyed by class name, in the model's class order. */
  probabilities: Record<string, number>;
  /** Summed probability of the fracture-positive classes; `null` when the model has none. */
  fractureProbability: number | null;
  /** `data:image/png;base64,...` Grad-CAM overlay, with `explain` only. */
  heatmap?: string;
}

/** The response body of `POST /v1/predict`. */
export interface PredictResponse {
  /** The model that answered, and the engine that ran it (`onnx` or `tfjs`). */
  model: { id: string; architecture: string; version: string; engine: string };
  predictions: Prediction[];
  notice: typeof PREDICTION_NOTICE;
}

/** Runs predictions; the API holds one of these. */
export interface Predictor {
  /**
   * Classifies the request's images with one model.
   * @throws AppError `MODEL_NOT_FOUND`, `IMAGE_TYPE_UNSUPPORTED`, `IMAGE_TOO_LARGE`,
   *   `IMAGE_UNDECODABLE`, `QUEUE_FULL` (with `Retry-After`), `PREDICTION_TIMEOUT`, `SHUTTING_DOWN`, ...
   */
  predict(request: PredictRequest): Promise<PredictResponse>;
  /** Finishes in-flight predictions, then frees what the predictor holds. */
  close(): Promise<void>;
}
