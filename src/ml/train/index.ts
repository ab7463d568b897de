/**
 * Public API of the training loop. Import from here, not from the files behind it.
 * @module
 */
export { trainModel } from './trainer.ts';
export { predictBatches, evaluateBatches } from './evaluate.ts';
export type { Predictions, EvaluationResult, InferenceOptions } from './evaluate.ts';
export { isOutOfMemoryMessage } from './out-of-memory.ts';
export type {
  TrainBatch,
  TrainOptions,
  TrainResult,
  TrainProgressEvent,
  TrainProgressType,
  EpochRecord,
  OptimizerSpec,
  EarlyStoppingOptions,
  ReduceLrOnPlateauOptions,
  MonitoredMetric,
} from './types.ts';
