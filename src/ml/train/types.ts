/**
 * Types of the training loop: the batches it consumes, its options, the progress events it emits and
 * the result it returns. Kept apart from the loop so callers (workers, the CLI, tests) can import them
 * without pulling in tfjs code.
 * @module
 */
import type * as tf from '@tensorflow/tfjs';

/**
 * One batch as the data pipeline yields it. The trainer OWNS the tensors of every batch it receives:
 * it disposes `xs` and `ys` after use (also when it stops early, is cancelled or fails), so a batch
 * source must not reuse or dispose them itself.
 */
export interface TrainBatch {
  /** Images, `[N, H, W, C]`, float32, already preprocessed. */
  xs: tf.Tensor4D;
  /** One-hot labels, `[N, numClasses]`, float32. */
  ys: tf.Tensor2D;
  /** Dataset indices of the N samples, if the source tracks them (not used by the trainer). */
  indices?: readonly number[];
}

/** A metric a callback can watch. `loss`/`accuracy` are the running training values of the epoch. */
export type MonitoredMetric = 'val_loss' | 'val_accuracy' | 'loss' | 'accuracy';

/** The optimizer the trainer creates (and owns, and disposes). */
export interface OptimizerSpec {
  name: 'adam' | 'sgd';
  /** Initial learning rate. */
  learningRate: number;
  /** SGD only: classic (non-Nesterov) momentum in [0, 1). Omitted or 0 means plain SGD. */
  momentum?: number;
}

/** Keras `EarlyStopping` semantics (mode inferred from the metric: `min` for losses, `max` for accuracies). */
export interface EarlyStoppingOptions {
  monitor: MonitoredMetric;
  /** Epochs without improvement after which training stops. */
  patience: number;
  /** Smallest change that counts as an improvement (absolute). Default 0. */
  minDelta?: number;
}

/** Keras `ReduceLROnPlateau` semantics. */
export interface ReduceLrOnPlateauOptions {
  monitor: MonitoredMetric;
  /** New LR = old LR x factor; in (0, 1). */
  factor: number;
  /** Epochs without improvement after which the LR is reduced. */
  patience: number;
  /** Lower bound of the learning rate. Default 0. */
  minLr?: number;
  /** Smallest change that counts as an improvement (absolute). Default 1e-4, as in Keras. */
  minDelta?: number;
  /** Epochs to wait after a reduction before counting again. Default 0. */
  cooldown?: number;
}

/** Options of {@link trainModel}. */
export interface TrainOptions {
  /** The model to train in place. Its trainable weights (`model.trainableWeights`) are optimised. */
  model: tf.LayersModel;
  /**
   * The training batches of one epoch. Called once per epoch with the 1-based epoch number (the same
   * number as in the history), so a source can derive a deterministic order from (seed, epoch).
   */
  trainBatches: (epoch: number) => AsyncIterable<TrainBatch>;
  /** The validation batches; one full pass per epoch in inference mode. */
  valBatches?: () => AsyncIterable<TrainBatch>;
  /** Total number of epochs of the run (a resumed run continues up to this number). */
  epochs: number;
  optimizer: OptimizerSpec;
  /**
   * Per-class loss weights, indexed by class (argmax of the one-hot label). Applied to the training loss
   * only, like Keras's `class_weight` (validation loss is unweighted).
   */
  classWeights?: readonly number[];
  earlyStopping?: EarlyStoppingOptions;
  reduceLrOnPlateau?: ReduceLrOnPlateauOptions;
  /**
   * At the end, put back the weights of the best epoch (by `earlyStopping.monitor`, else `val_loss`,
   * else `loss`). Default: true when `valBatches` is given.
   */
  restoreBestWeights?: boolean;
  /** Directory for per-epoch checkpoints; when it holds one, training resumes after its epoch. */
  checkpointDir?: string;
  /** Cancels training between micro-batches with `MlError('TRAINING_CANCELLED')`. */
  signal?: AbortSignal;
  onProgress?: (event: TrainProgressEvent) => void;
  /**
   * Largest number of samples per forward/backward pass. A batch larger than this is split and its
   * gradients accumulated, so the update equals one full-batch step. Default: the whole batch.
   */
  microBatchSize?: number;
  /** Batches per epoch, when known, for `batches` and the ETA in progress events. */
  stepsPerEpoch?: number;
  /** Seed of the run; recorded in checkpoints, and a checkpoint with another seed is refused. */
  seed?: number;
  /**
   * Decides whether an error thrown by a training step is an out-of-memory condition (then the
   * micro-batch size is halved and the batch retried). Default: {@link isOutOfMemoryMessage}.
   */
  isOutOfMemory?: (error: unknown) => boolean;
}

/** What a progress event reports. */
export type TrainProgressType =
  | 'start'
  | 'batch'
  | 'epoch'
  | 'checkpoint'
  | 'micro-batch-reduced'
  | 'learning-rate-reduced'
  | 'early-stopped';

/** One progress event; flat so workers can forward it as JSON. */
export interface TrainProgressEvent {
  type: TrainProgressType;
  /** 1-based epoch the event belongs to (for `start`: the first epoch that will run). */
  epoch: number;
  epochs: number;
  /** Batches completed in this epoch. */
  batch: number;
  /** Batches per epoch, when known (from `stepsPerEpoch` or the previous epoch). */
  batches?: number;
  /** Running mean training loss of the epoch so far (class-weighted, Keras semantics). */
  loss: number;
  /** Running training accuracy of the epoch so far, in [0, 1]. */
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Training throughput of the epoch so far (validation excluded). */
  imagesPerSecond: number;
  /** Estimated seconds until the last epoch ends, from the measured rate (early stopping may cut it). */
  etaSeconds?: number;
  /** Learning rate in effect. */
  learningRate: number;
  /** Samples per forward/backward pass in effect. */
  microBatchSize: number;
  /** Human-readable detail for the non-periodic events. */
  message?: string;
}

/** One epoch of the history. */
export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean training loss over the epoch's samples (class-weighted, plus regularisation). */
  loss: number;
  accuracy: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Learning rate used during this epoch (a reduction at its end shows in the next one). */
  learningRate: number;
  /** Wall time of the epoch including validation, in seconds. */
  seconds: number;
  /** Training images per second (validation excluded). */
  imagesPerSecond: number;
}

/** Result of {@link trainModel}. */
export interface TrainResult {
  /** Every completed epoch of the run, including those done before a resume, in order. */
  history: EpochRecord[];
  /** 1-based epoch with the best monitored value (0 when no epoch ran). */
  bestEpoch: number;
  /** True when early stopping ended the run. */
  stoppedEarly: boolean;
  /** Epochs trained by this call (excludes epochs restored from a checkpoint). */
  epochsRun: number;
  /** The checkpoint epoch this call resumed after, if it resumed. */
  resumedFromEpoch?: number;
  /** Wall time of this call, in seconds. */
  trainSeconds: number;
  /** Effective micro-batch size at the end (after any out-of-memory fallback). */
  microBatchSize: number;
  /** True when the weights of `bestEpoch` were put back at the end. */
  restoredBestWeights: boolean;
}
