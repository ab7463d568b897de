/**
 * In-process prediction: the API calls it directly in `start` mode, and the inference worker calls it
 * for each `predict` job. Per request it resolves the model reference, takes the model from the
 * {@link ModelPool} (loading and warming it up once), decodes every image strictly BEFORE batching
 * (so a bad image costs no forward pass and names itself), sends the inputs through the model's one
 * {@link DynamicBatcher} (shared by all concurrent requests for that model), turns probabilities into
 * labels and fracture probabilities, and draws Grad-CAM overlays one image at a time outside the
 * batcher when asked.
 * @module
 */
import sharp from 'sharp';
import { AppError, toAppError, withoutServerPaths } from '../infra/errors.ts';
import { createLimiter, type Limiter } from '../ml/data/concurrency.ts';
import { renderHeatmapOverlay } from '../ml/explain/index.ts';
import { describeProbabilities } from '../ml/inference/index.ts';
import { DynamicBatcher } from './dynamic-batcher.ts';
import { decodeUpload, type DecodedImage, type UploadDecodeLimits } from './image-input.ts';
import { engineOf, inputSize, warmUpModel, type EngineModel, type InferenceEngine } from './inference-engine.ts';
import { ModelPool } from './model-pool.ts';
import {
  DEFAULT_MODEL_REF,
  PREDICTION_NOTICE,
  type ModelResolver,
  type Prediction,
  type PredictRequest,
  type PredictResponse,
  type Predictor,
  type ResolvedModel,
} from './types.ts';

export {
  DEFAULT_MODEL_REF,
  PREDICTION_NOTICE,
  type ModelResolver,
  type Prediction,
  type PredictImage,
  type PredictRequest,
  type PredictResponse,
  type Predictor,
  type ResolvedModel,
} from './types.ts';

export interface LocalPredictorOptions {
  /** The model registry: model id or alias to a concrete model (`MODEL_NOT_FOUND` otherwise). */
  resolveModel: ModelResolver;
  /** Runs the models, e.g. `new EngineSelector({ mode: 'auto' })` or `new TfjsEngine()`. */
  engine: InferenceEngine;
  /** Largest forward pass, in images (`PREDICT_MAX_BATCH_SIZE`). */
  maxBatchSize: number;
  /** Longest wait after a batch's first image, in ms (`PREDICT_MAX_DELAY_MS`). */
  maxDelayMs: number;
  /** Images waiting per model before `QUEUE_FULL` (`PREDICT_MAX_QUEUE`). */
  maxQueue: number;
  /** Models kept loaded (`MODEL_CACHE_SIZE`). */
  maxModels: number;
  /** Largest image accepted, width x height (`IMAGE_MAX_PIXELS`). */
  maxPixels: number;
  /** Called after every forward pass with its size and duration in seconds (the batch-size metric). */
  onBatch?(size: number, seconds: number, modelId: string): void;
  /** sharp `failOn` for uploads; default `warning` (see `UploadDecodeLimits`). */
  failOn?: UploadDecodeLimits['failOn'];
  /** Longest decode of one image, in seconds; default 20. */
  decodeTimeoutSeconds?: number;
  /** Images decoded at once across all requests; default 4 (libuv's thread pool size). */
  decodeConcurrency?: number;
  /** Opacity of the Grad-CAM colours in [0, 1]; default 0.45. */
  heatmapAlpha?: number;
  /** Overlays are the model's view scaled up to at least this many pixels a side; default 256. */
  heatmapMinSide?: number;
}

/** What `/readyz` shows about serving. */
export interface PredictorStatus {
  /** True once the serving model has loaded and answered a warm-up pass. */
  ready: boolean;
  /**
   * The engine running the serving model once it is warm (`onnx`, `tfjs`); before, the predictor's
   * engine name (e.g. the mode `auto`).
   */
  engine: string;
  /** Why `engine` serves the model when another was preferred (e.g. `auto` without `model.onnx`). */
  engineReason?: string;
  /** The model warmed up by the last successful `warmUp`. */
  model?: { id: string; architecture: string; version: string };
  /** Why serving is not ready. */
  detail?: string;
  /** The error code behind `detail`, e.g. `MODEL_NOT_FOUND` when no model holds the alias. */
  code?: string;
}

/** A loaded model and the batcher that feeds it. */
interface ServedModel {
  readonly resolved: ResolvedModel;
  readonly model: EngineModel;
  readonly batcher: DynamicBatcher<Float32Array, Float32Array>;
  /** Images accepted for this model and not answered yet: decoding, waiting for a batch, or in one. */
  admitted: number;
}

/**
 * Predicts in this process with dynamically batched forward passes.
 * @example
 * const predictor = new LocalPredictor({ resolveModel: registry.resolve, engine: new TfjsEngine(),
 *   maxBatchSize: 16, maxDelayMs: 10, maxQueue: 256, maxModels: 3, maxPixels: 100_000_000 });
 * await predictor.warmUp();
 * const body = await predictor.predict({ images: [{ id: 'images[0]', data: jpegBytes }], explain: false });
 */
export class LocalPredictor implements Predictor {
  readonly #options: Readonly<LocalPredictorOptions>;
  readonly #pool: ModelPool<ServedModel, ResolvedModel>;
  readonly #decodeLimiter: Limiter;
  /** Grad-CAM runs one image at a time: it holds a backward pass's activations and gradients. */
  readonly #explainLimiter: Limiter = createLimiter(1);
  readonly #inFlight = new Set<Promise<unknown>>();
  /** Models loaded and not yet disposed, for {@link backlog}. */
  readonly #served = new Set<ServedModel>();
  #status: PredictorStatus;
  #closed = false;

  constructor(options: LocalPredictorOptions) {
    for (const key of ['maxBatchSize', 'maxQueue', 'maxModels', 'maxPixels'] as const) {
      const value = options[key];
      if (!Number.isInteger(value) || value < 1) throw new RangeError(`${key} must be an integer >= 1, got ${value}`);
    }
    if (!(options.maxDelayMs >= 0)) throw new RangeError(`maxDelayMs must be >= 0, got ${options.maxDelayMs}`);
    this.#options = Object.freeze({ ...options });
    this.#decodeLimiter = createLimiter(options.decodeConcurrency ?? 4);
    this.#status = { ready: false, engine: options.engine.name, detail: 'no model has been warmed up yet' };
    this.#pool = new ModelPool<ServedModel, ResolvedModel>({
      maxModels: options.maxModels,
      load: (_id, resolved) => this.#loadServed(resolved),
      warmUp: (served) => warmUpModel(served.model),
      dispose: async (served) => {
        this.#served.delete(served);
        await served.batcher.close();
        served.model.dispose();
      },
    });
  }

  /** Number of models loaded (or loading) in this process. */
  get loadedModels(): number {
    return this.#pool.size;
  }

  /** Images waiting for a forward pass, over every loaded model (a gauge for `/metrics`). */
  get backlog(): number {
    let waiting = 0;
    for (const served of this.#served) waiting += served.batcher.queued;
    return waiting;
  }

  /** Classifies the request's images; see {@link Predictor.predict}. */
  predict(request: PredictRequest): Promise<PredictResponse> {
    if (this.#closed) return Promise.reject(new AppError('SHUTTING_DOWN', 'inference is shutting down; retry on another instance'));
    const work = this.#predict(request).catch((error: unknown) => {
      throw toAppError(error);
    });
    this.#inFlight.add(work);
    void work.catch(() => undefined).finally(() => this.#inFlight.delete(work));
    return work;
  }

  /**
   * Loads and warms up the model `ref` names (default `production`), so the first request does not
   * pay for it; `status()` reports the outcome.
   * @throws AppError `MODEL_NOT_FOUND`, `MODEL_CORRUPT`, ...
   */
  async warmUp(ref: string = DEFAULT_MODEL_REF): Promise<PredictorStatus> {
    try {
      const resolved = await this.#options.resolveModel(ref);
      const lease = await this.#pool.acquire(resolved.id, resolved);
      const { model } = lease.value;
      lease.release();
      this.#status = {
        ready: true,
        engine: engineOf(model, this.#options.engine),
        // An open endpoint shows it: no server paths.
        ...(model.engineReason === undefined ? {} : { engineReason: withoutServerPaths(model.engineReason) }),
        model: { id: resolved.id, architecture: resolved.architecture, version: resolved.version },
      };
    } catch (error) {
      const appError = toAppError(error);
      this.#status = { ready: false, engine: this.#options.engine.name, detail: appError.message, code: appError.code };
      throw appError;
    }
    return this.status();
  }

  /** Readiness for `/readyz`: ready after a successful `warmUp`, and until `close()`. */
  status(): PredictorStatus {
    if (this.#closed) return { ready: false, engine: this.#options.engine.name, detail: 'shutting down', code: 'SHUTTING_DOWN' };
    return { ...this.#status };
  }

  /**
   * Refuses new requests, lets the ones in flight finish (their batches drain), then disposes every
   * model. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    await this.#pool.close();
  }

  async #predict(request: PredictRequest): Promise<PredictResponse> {
    if (request.images.length === 0) throw new AppError('VALIDATION_FAILED', 'the request has no images');
    const resolved = await this.#options.resolveModel(request.model ?? DEFAULT_MODEL_REF);
    const lease = await this.#pool.acquire(resolved.id, resolved);
    const served = lease.value;
    let admitted = 0;
    try {
      const { model, batcher } = served;
      const { classNames, positiveClasses } = model.info;
      if (request.explain && !model.explain) {
        throw new AppError('VALIDATION_FAILED', `the ${engineOf(model, this.#options.engine)} engine cannot explain predictions; retry without explain`);
      }
      admitted = this.#admit(served, request.images.length);
      const decoded = await this.#decodeAll(request, model);
      const rows = await batcher.submitAll(decoded.map((image) => image.input));
      const predictions: Prediction[] = [];
      for (let i = 0; i < decoded.length; i++) {
        const image = decoded[i] as DecodedImage;
        const described = describeProbabilities(rows[i] as Float32Array, classNames, positiveClasses);
        const prediction: Prediction = {
          id: image.id,
          label: described.label,
          probabilities: described.probabilities,
          fractureProbability: described.fractureProbability,
        };
        if (request.explain) prediction.heatmap = await this.#explainLimiter.run(() => this.#heatmap(model, image, described.classIndex));
        predictions.push(prediction);
      }
      return { model: { ...describeModel(resolved), engine: engineOf(model, this.#options.engine) }, predictions, notice: PREDICTION_NOTICE };
    } finally {
      served.admitted -= admitted;
      lease.release();
    }
  }

  /**
   * Accepts `count` images for `served`, or refuses them with `QUEUE_FULL` when the backlog is full.
   * The backlog counts images from acceptance on — the ones still being decoded too, not only those
   * in the batcher's queue: when decoding is the slow stage, requests would otherwise pile up in
   * front of it without bound. As in the batcher, one batch may be running besides `maxQueue`
   * waiting images, and a request is always accepted when nothing is admitted.
   * @returns the number of images admitted (to be given back when the request ends)
   */
  #admit(served: ServedModel, count: number): number {
    const { maxQueue, maxBatchSize } = this.#options;
    if (served.admitted > 0 && served.admitted + count > maxQueue + maxBatchSize) {
      // Images ahead that the batcher has not seen yet count as queued for the estimate.
      const seconds = served.batcher.retryAfterSeconds(served.admitted - served.batcher.queued + count);
      throw new AppError('QUEUE_FULL', `the inference backlog is full (${served.admitted} images accepted and not answered yet); retry in ${seconds} s`, {
        headers: { 'Retry-After': String(seconds) },
      });
    }
    served.admitted += count;
    return count;
  }

  /** Decodes every image (a few at a time across requests); the first bad image in request order wins. */
  async #decodeAll(request: PredictRequest, model: EngineModel): Promise<DecodedImage[]> {
    const limits: UploadDecodeLimits = {
      maxPixels: this.#options.maxPixels,
      ...(this.#options.failOn === undefined ? {} : { failOn: this.#options.failOn }),
      ...(this.#options.decodeTimeoutSeconds === undefined ? {} : { timeoutSeconds: this.#options.decodeTimeoutSeconds }),
    };
    const settled = await Promise.allSettled(
      request.images.map((image, index) =>
        this.#decodeLimiter.run(() => decodeUpload({ id: image.id, index, data: image.data }, model.info.imageOptions, limits)),
      ),
    );
    const failure = settled.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    return settled.map((result) => (result as PromiseFulfilledResult<DecodedImage>).value);
  }

  /** Grad-CAM of the predicted class over the image as the model saw it, as a PNG data URL. */
  async #heatmap(model: EngineModel, image: DecodedImage, classIndex: number): Promise<string> {
    const explain = model.explain?.bind(model);
    if (!explain) throw new Error('explain() is missing: checked before decoding');
    const cam = await explain(image.input, classIndex);
    const { height, width, channels } = model.info.imageOptions;
    // Model inputs are small (32-299 px): scale them up so the overlay is legible.
    const scale = Math.max(1, Math.ceil((this.#options.heatmapMinSide ?? 256) / Math.max(height, width)));
    const framed = await sharp(image.pixels, { raw: { width, height, channels } })
      .resize(width * scale, height * scale, { kernel: 'lanczos3' })
      .png()
      .toBuffer();
    const png = await renderHeatmapOverlay(framed, cam, this.#options.heatmapAlpha === undefined ? {} : { alpha: this.#options.heatmapAlpha });
    return `data:image/png;base64,${png.toString('base64')}`;
  }

  async #loadServed(resolved: ResolvedModel): Promise<ServedModel> {
    const model = await this.#options.engine.load(resolved.dir);
    const values = inputSize(model.info);
    const classes = model.info.classNames.length;
    const { maxBatchSize, maxDelayMs, maxQueue, onBatch } = this.#options;
    const batcher = new DynamicBatcher<Float32Array, Float32Array>({
      maxBatchSize,
      maxDelayMs,
      maxQueue,
      ...(onBatch === undefined ? {} : { onBatch: (size: number, seconds: number) => onBatch(size, seconds, resolved.id) }),
      runBatch: async (inputs) => {
        const batch = new Float32Array(inputs.length * values);
        inputs.forEach((input, i) => batch.set(input, i * values));
        const out = await model.predict(batch, inputs.length);
        return inputs.map((_, i) => out.slice(i * classes, (i + 1) * classes));
      },
    });
    const served: ServedModel = { resolved, model, batcher, admitted: 0 };
    this.#served.add(served);
    return served;
  }
}

function describeModel(resolved: ResolvedModel): Omit<PredictResponse['model'], 'engine'> {
  return { id: resolved.id, architecture: resolved.architecture, version: resolved.version };
}
