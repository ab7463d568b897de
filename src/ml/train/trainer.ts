/**
 * The training loop: a custom loop rather than `model.fit`, for gradient accumulation over
 * micro-batches (with an out-of-memory fallback), per-epoch atomic checkpoints with resume,
 * cancellation, and progress events. See `step.ts` for the step, `callbacks.ts` for the epoch-end
 * decisions and `checkpoint.ts` for the on-disk format.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import {
  earlyStoppingStep,
  initialEarlyStopping,
  initialPlateau,
  isImprovement,
  monitorMode,
  monitoredValue,
  plateauStep,
  validateCallbackOptions,
} from './callbacks.ts';
import type { EarlyStoppingState, PlateauState } from './callbacks.ts';
import { captureModel, readCheckpoint, writeCheckpoint } from './checkpoint.ts';
import type { Checkpoint, CheckpointState } from './checkpoint.ts';
import { evaluateBatches } from './evaluate.ts';
import {
  createOptimizer,
  disposeOptimizer,
  getLearningRate,
  restoreOptimizerState,
  saveOptimizerState,
  setLearningRate,
} from './optimizer.ts';
import type { TrainOptimizer } from './optimizer.ts';
import { isOutOfMemoryMessage } from './out-of-memory.ts';
import { throwIfCancelled, trainStep } from './step.ts';
import type { MicroBatchState, StepContext } from './step.ts';
import type {
  EpochRecord,
  MonitoredMetric,
  TrainBatch,
  TrainOptions,
  TrainProgressEvent,
  TrainResult,
} from './types.ts';
import {
  assertShapesMatch,
  decodeTensors,
  disposeSnapshot,
  encodeTensors,
  restoreSnapshot,
  takeSnapshot,
} from './weights.ts';
import type { EncodedWeights } from './weights.ts';

/** Mutable state of a run; everything here goes into the checkpoint. */
interface RunState {
  completedEpochs: number;
  history: EpochRecord[];
  best: { epoch: number; value: number | null };
  earlyStopping: EarlyStoppingState | null;
  plateau: PlateauState | null;
  stoppedEarly: boolean;
  batchesPerEpoch: number | undefined;
  micro: MicroBatchState;
}

const isPositiveInteger = (n: unknown): boolean => Number.isInteger(n) && (n as number) > 0;

function validateOptions(options: TrainOptions): void {
  if (!isPositiveInteger(options.epochs)) {
    throw new MlError('INVALID_ARGUMENT', `epochs must be a positive integer; got ${options.epochs}`);
  }
  if (options.microBatchSize !== undefined && !isPositiveInteger(options.microBatchSize)) {
    throw new MlError('INVALID_ARGUMENT', `microBatchSize must be a positive integer; got ${options.microBatchSize}`);
  }
  if (options.stepsPerEpoch !== undefined && !isPositiveInteger(options.stepsPerEpoch)) {
    throw new MlError('INVALID_ARGUMENT', `stepsPerEpoch must be a positive integer; got ${options.stepsPerEpoch}`);
  }
  if (options.classWeights !== undefined && !options.classWeights.every((w) => Number.isFinite(w) && w >= 0)) {
    throw new MlError('INVALID_ARGUMENT', 'classWeights must be finite numbers >= 0');
  }
  validateCallbackOptions(options.earlyStopping, options.reduceLrOnPlateau, options.valBatches !== undefined);
}

function validateBatch(batch: TrainBatch, numClassWeights: number | undefined): void {
  const { xs, ys } = batch;
  if (xs.rank !== 4 || ys.rank !== 2 || xs.shape[0] !== ys.shape[0]) {
    throw new MlError('INVALID_ARGUMENT', `a batch needs xs [N,H,W,C] and ys [N,classes]; got [${xs.shape.join(',')}] and [${ys.shape.join(',')}]`);
  }
  if (numClassWeights !== undefined && numClassWeights !== ys.shape[1]) {
    throw new MlError('INVALID_ARGUMENT', `classWeights has ${numClassWeights} entries for ${ys.shape[1]} classes`);
  }
}

/**
 * Trains `options.model` in place and returns its history.
 *
 * - Loss: categorical cross-entropy with optional class weights, Keras semantics (see `loss.ts`);
 *   `loss`/`accuracy` are running means over the epoch's training samples, `valLoss`/`valAccuracy`
 *   come from a full inference-mode pass over `valBatches` after each epoch.
 * - Batches: the trainer owns (disposes) every batch it receives. A batch larger than
 *   `microBatchSize` is split and its gradients accumulated: one full-batch step (BN aside, see
 *   `step.ts`). An out-of-memory step halves the micro-batch size and retries the batch.
 * - Epoch end, in Keras's order: best-epoch tracking, early stopping, LR reduction (effective from
 *   the next epoch), checkpoint, then the `epoch` and `checkpoint` events.
 * - Resume: with `checkpointDir` holding a checkpoint, model weights, optimizer slots, LR, counters
 *   and history are restored and training continues after the saved epoch (up to `options.epochs`).
 *   The model must be built the same way; `trainBatches(epoch)` must be deterministic per epoch for
 *   a resumed run to equal an uninterrupted one.
 * - Cancellation: `signal` is checked between micro-batches and batches; training then throws
 *   `MlError('TRAINING_CANCELLED')`, the current step is not applied, and the last checkpoint stays
 *   intact (the in-memory model may hold a partly trained epoch: reload or resume from the checkpoint).
 * - Memory: everything the trainer allocates (optimizer, snapshots, batches) is disposed on return or
 *   throw; the model's own variables are the only tensors that remain.
 *
 * @example
 * const result = await trainModel({
 *   model, epochs: 10, optimizer: { name: 'adam', learningRate: 1e-3 },
 *   trainBatches: (epoch) => dataset.batches('train', epoch), valBatches: () => dataset.batches('val'),
 *   earlyStopping: { monitor: 'val_loss', patience: 3 }, checkpointDir: 'runs/x/checkpoints',
 *   onProgress: (e) => console.log(e.type, e.epoch, e.batch, e.loss),
 * });
 */
export async function trainModel(options: TrainOptions): Promise<TrainResult> {
  validateOptions(options);
  const started = performance.now();
  const { model, epochs, signal } = options;
  const hasValidation = options.valBatches !== undefined;
  const restoreBest = options.restoreBestWeights ?? hasValidation;
  const bestMonitor: MonitoredMetric = options.earlyStopping?.monitor ?? (hasValidation ? 'val_loss' : 'loss');
  const bestMinDelta = options.earlyStopping?.minDelta ?? 0;

  const run: RunState = {
    completedEpochs: 0,
    history: [],
    best: { epoch: 0, value: null },
    earlyStopping: options.earlyStopping === undefined ? null : initialEarlyStopping(),
    plateau: options.reduceLrOnPlateau === undefined ? null : initialPlateau(),
    stoppedEarly: false,
    batchesPerEpoch: undefined,
    micro: { size: options.microBatchSize },
  };
  const optimizer = createOptimizer(options.optimizer);
  let classWeights: tf.Tensor1D | undefined;
  let bestSnapshot: tf.Tensor[] | undefined;
  let largestBatch = 0;
  let epochsRun = 0;
  let resumedFromEpoch: number | undefined;
  // Timing of this call, for throughput and the ETA.
  const timing = { trainSeconds: 0, trainBatches: 0, valSeconds: 0, valPasses: 0 };

  const microBatchSize = (): number => run.micro.size ?? largestBatch;
  const emit = (event: Omit<TrainProgressEvent, 'epochs' | 'learningRate' | 'microBatchSize'>): void => {
    options.onProgress?.({ ...event, epochs, learningRate: getLearningRate(optimizer), microBatchSize: microBatchSize() });
  };
  /** Seconds left, from the mean seconds per batch of this call; undefined until it can be estimated. */
  const eta = (epoch: number, batchesDone: number, epochElapsed: number, validationPending: boolean): number | undefined => {
    const batches = options.stepsPerEpoch ?? run.batchesPerEpoch;
    const measured = timing.trainBatches + batchesDone;
    if (batches === undefined || measured === 0) return undefined;
    const perBatch = (timing.trainSeconds + epochElapsed) / measured;
    const perVal = hasValidation && timing.valPasses > 0 ? timing.valSeconds / timing.valPasses : 0;
    const thisEpoch = Math.max(0, batches - batchesDone) * perBatch + (validationPending ? perVal : 0);
    return thisEpoch + (epochs - epoch) * (batches * perBatch + perVal);
  };

  try {
    if (options.classWeights !== undefined) classWeights = tf.tensor1d([...options.classWeights], 'float32');
    if (options.checkpointDir !== undefined) {
      const checkpoint = await readCheckpoint(options.checkpointDir);
      if (checkpoint !== undefined) {
        bestSnapshot = await restoreRun(checkpoint, options, model, optimizer, run, restoreBest);
        resumedFromEpoch = checkpoint.state.epoch;
      }
    }
    const ctx: StepContext = {
      model,
      optimizer,
      classWeights,
      signal,
      isOutOfMemory: options.isOutOfMemory ?? isOutOfMemoryMessage,
    };
    emit({
      type: 'start',
      epoch: run.completedEpochs + 1,
      batch: 0,
      batches: options.stepsPerEpoch ?? run.batchesPerEpoch,
      loss: Number.NaN,
      accuracy: Number.NaN,
      imagesPerSecond: 0,
      message: resumedFromEpoch === undefined ? 'training started' : `resumed after epoch ${resumedFromEpoch}`,
    });

    for (let epoch = run.completedEpochs + 1; epoch <= epochs && !run.stoppedEarly; epoch++) {
      throwIfCancelled(signal);
      const epochStart = performance.now();
      let lossSum = 0;
      let correct = 0;
      let count = 0;
      let batchIndex = 0;
      for await (const batch of options.trainBatches(epoch)) {
        try {
          validateBatch(batch, options.classWeights?.length);
          if (batch.xs.shape[0] === 0) continue;
          throwIfCancelled(signal);
          largestBatch = Math.max(largestBatch, batch.xs.shape[0]);
          const totals = await trainStep(ctx, batch.xs, batch.ys, run.micro, (size, error) => {
            emit({
              type: 'micro-batch-reduced',
              epoch,
              batch: batchIndex,
              loss: count > 0 ? lossSum / count : Number.NaN,
              accuracy: count > 0 ? correct / count : Number.NaN,
              imagesPerSecond: 0,
              message: `out of memory (${error instanceof Error ? error.message : String(error)}); micro-batch size now ${size}`,
            });
          });
          lossSum += totals.lossSum;
          correct += totals.correct;
          count += totals.count;
        } finally {
          tf.dispose([batch.xs, batch.ys]);
        }
        batchIndex++;
        const elapsed = (performance.now() - epochStart) / 1000;
        emit({
          type: 'batch',
          epoch,
          batch: batchIndex,
          batches: options.stepsPerEpoch ?? run.batchesPerEpoch,
          loss: lossSum / count,
          accuracy: correct / count,
          imagesPerSecond: count / Math.max(elapsed, 1e-9),
          etaSeconds: eta(epoch, batchIndex, elapsed, hasValidation),
        });
      }
      if (count === 0) throw new MlError('DATASET_EMPTY', `epoch ${epoch} yielded no training samples`);
      const trainSeconds = (performance.now() - epochStart) / 1000;
      timing.trainSeconds += trainSeconds;
      timing.trainBatches += batchIndex;
      run.batchesPerEpoch = batchIndex;

      let validation: { loss: number; accuracy: number } | undefined;
      if (options.valBatches !== undefined) {
        throwIfCancelled(signal);
        const valStart = performance.now();
        validation = await evaluateBatches(model, options.valBatches(), { chunkSize: run.micro.size, signal });
        timing.valSeconds += (performance.now() - valStart) / 1000;
        timing.valPasses += 1;
      }
      const record: EpochRecord = {
        epoch,
        loss: lossSum / count,
        accuracy: correct / count,
        ...(validation === undefined ? {} : { valLoss: validation.loss, valAccuracy: validation.accuracy }),
        learningRate: getLearningRate(optimizer),
        seconds: (performance.now() - epochStart) / 1000,
        imagesPerSecond: count / Math.max(trainSeconds, 1e-9),
      };
      run.history.push(record);
      run.completedEpochs = epoch;
      epochsRun += 1;

      const current = monitoredValue(record, bestMonitor);
      if (isImprovement(monitorMode(bestMonitor), current, run.best.value, bestMinDelta)) {
        run.best = { epoch, value: current };
        if (restoreBest) {
          disposeSnapshot(bestSnapshot);
          bestSnapshot = takeSnapshot(model.weights);
        }
      }
      let stopMessage: string | undefined;
      if (options.earlyStopping !== undefined && run.earlyStopping !== null) {
        const value = monitoredValue(record, options.earlyStopping.monitor);
        const step = earlyStoppingStep(run.earlyStopping, value, options.earlyStopping, run.history.length - 1);
        run.earlyStopping = step.state;
        if (step.stop && epoch < epochs) {
          run.stoppedEarly = true;
          stopMessage = `no ${options.earlyStopping.monitor} improvement for ${step.state.wait} epochs`;
        }
      }
      let lrMessage: string | undefined;
      if (options.reduceLrOnPlateau !== undefined && run.plateau !== null) {
        const value = monitoredValue(record, options.reduceLrOnPlateau.monitor);
        const step = plateauStep(run.plateau, value, getLearningRate(optimizer), options.reduceLrOnPlateau);
        run.plateau = step.state;
        if (step.newLearningRate !== undefined) {
          lrMessage = `learning rate ${getLearningRate(optimizer)} -> ${step.newLearningRate}`;
          setLearningRate(optimizer, step.newLearningRate);
        }
      }
      if (options.checkpointDir !== undefined) {
        await saveCheckpoint(options.checkpointDir, options, model, optimizer, run, restoreBest ? bestSnapshot : undefined);
      }
      const summary = {
        epoch,
        batch: batchIndex,
        batches: batchIndex,
        loss: record.loss,
        accuracy: record.accuracy,
        valLoss: record.valLoss,
        valAccuracy: record.valAccuracy,
        imagesPerSecond: record.imagesPerSecond,
      };
      emit({ type: 'epoch', ...summary, etaSeconds: run.stoppedEarly ? 0 : eta(epoch, batchIndex, 0, false) });
      if (lrMessage !== undefined) emit({ type: 'learning-rate-reduced', ...summary, message: lrMessage });
      if (options.checkpointDir !== undefined) emit({ type: 'checkpoint', ...summary, message: options.checkpointDir });
      if (stopMessage !== undefined) emit({ type: 'early-stopped', ...summary, message: stopMessage });
    }

    const lastEpoch = run.history.at(-1)?.epoch ?? 0;
    let restoredBestWeights = false;
    if (restoreBest && bestSnapshot !== undefined && run.best.epoch !== lastEpoch) {
      restoreSnapshot(model.weights, bestSnapshot);
      restoredBestWeights = true;
    }
    return {
      history: run.history,
      bestEpoch: run.best.epoch,
      stoppedEarly: run.stoppedEarly,
      epochsRun,
      ...(resumedFromEpoch === undefined ? {} : { resumedFromEpoch }),
      trainSeconds: (performance.now() - started) / 1000,
      microBatchSize: microBatchSize(),
      restoredBestWeights,
    };
  } finally {
    disposeSnapshot(bestSnapshot);
    classWeights?.dispose();
    disposeOptimizer(optimizer);
  }
}

/** Writes the checkpoint of the epoch just completed. */
async function saveCheckpoint(
  dir: string,
  options: TrainOptions,
  model: tf.LayersModel,
  optimizer: TrainOptimizer,
  run: RunState,
  bestSnapshot: tf.Tensor[] | undefined,
): Promise<void> {
  const modelArtifacts = await captureModel(model);
  const optimizerState = await saveOptimizerState(optimizer);
  let bestWeights: EncodedWeights | undefined;
  let bestKind: CheckpointState['best']['weights'] = 'none';
  if (bestSnapshot !== undefined && run.best.epoch > 0) {
    if (run.best.epoch === run.completedEpochs) {
      bestKind = 'current';
    } else {
      bestKind = 'file';
      bestWeights = await encodeTensors(bestSnapshot, model.weights.map((w) => w.originalName));
    }
  }
  const state: CheckpointState = {
    epoch: run.completedEpochs,
    epochs: options.epochs,
    seed: options.seed ?? null,
    optimizer: {
      ...options.optimizer,
      currentLearningRate: getLearningRate(optimizer),
      weightSpecs: optimizerState.specs,
    },
    microBatchSize: run.micro.size ?? null,
    history: run.history,
    best: {
      monitor: options.earlyStopping?.monitor ?? (options.valBatches !== undefined ? 'val_loss' : 'loss'),
      epoch: run.best.epoch,
      value: run.best.value,
      weights: bestKind,
      ...(bestWeights === undefined ? {} : { weightSpecs: bestWeights.specs }),
    },
    earlyStopping: run.earlyStopping,
    plateau: run.plateau,
    stoppedEarly: run.stoppedEarly,
    batchesPerEpoch: run.batchesPerEpoch ?? null,
  };
  await writeCheckpoint(dir, {
    state,
    model: modelArtifacts,
    optimizer: { specs: optimizerState.specs, data: optimizerState.data },
    ...(bestWeights === undefined ? {} : { bestWeights }),
  });
}

/**
 * Puts a checkpoint's state into the model, the fresh optimizer and `run`.
 * @returns the snapshot of the best weights, when the checkpoint has them and they are wanted
 * @throws MlError('CHECKPOINT_INVALID') when the checkpoint belongs to another run (seed, optimizer,
 *   model shapes)
 */
async function restoreRun(
  checkpoint: Checkpoint,
  options: TrainOptions,
  model: tf.LayersModel,
  optimizer: TrainOptimizer,
  run: RunState,
  restoreBest: boolean,
): Promise<tf.Tensor[] | undefined> {
  const { state } = checkpoint;
  const dir = options.checkpointDir ?? '';
  if (options.seed !== undefined && state.seed !== null && state.seed !== options.seed) {
    throw new MlError('CHECKPOINT_INVALID', `checkpoint in ${dir} is from a run with seed ${state.seed}, not ${options.seed}`);
  }
  const momentumOf = (m: number | undefined): boolean => (m ?? 0) > 0;
  if (state.optimizer.name !== options.optimizer.name || momentumOf(state.optimizer.momentum) !== momentumOf(options.optimizer.momentum)) {
    throw new MlError('CHECKPOINT_INVALID', `checkpoint in ${dir} was trained with another optimizer (${state.optimizer.name})`);
  }
  const weights = decodeTensors(checkpoint.model);
  try {
    assertShapesMatch(model.weights, weights, `checkpoint in ${dir}`);
    restoreSnapshot(model.weights, weights);
  } finally {
    tf.dispose(weights);
  }
  await restoreOptimizerState(optimizer, checkpoint.optimizer);
  setLearningRate(optimizer, state.optimizer.currentLearningRate);

  run.completedEpochs = state.epoch;
  run.history = state.history;
  run.best = { epoch: state.best.epoch, value: state.best.value };
  run.earlyStopping = options.earlyStopping === undefined ? null : (state.earlyStopping ?? initialEarlyStopping());
  run.plateau = options.reduceLrOnPlateau === undefined ? null : (state.plateau ?? initialPlateau());
  run.stoppedEarly = state.stoppedEarly;
  run.batchesPerEpoch = state.batchesPerEpoch ?? undefined;
  // Keep a smaller size found by an earlier out-of-memory fallback.
  if (state.microBatchSize !== null) run.micro.size = Math.min(state.microBatchSize, run.micro.size ?? Infinity);

  if (!restoreBest) return undefined;
  if (state.best.weights === 'current') return takeSnapshot(model.weights);
  if (state.best.weights === 'file' && checkpoint.bestWeights !== undefined) {
    const best = decodeTensors(checkpoint.bestWeights);
    try {
      assertShapesMatch(model.weights, best, `best weights of the checkpoint in ${dir}`);
    } catch (error) {
      tf.dispose(best);
      throw error;
    }
    return best;
  }
  return undefined;
}
