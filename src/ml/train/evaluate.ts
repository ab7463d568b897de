/**
 * Inference-mode passes over batches: the per-epoch validation metrics of the trainer and the
 * predictions the metrics module scores. Both own (dispose) the batches they consume and run the model
 * in chunks of at most `chunkSize` samples so validation never needs more memory than training.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { correctCount, crossEntropyPerSample } from './loss.ts';
import { throwIfCancelled } from './step.ts';
import type { TrainBatch } from './types.ts';

/** Options of the inference passes. */
export interface InferenceOptions {
  /** Largest number of samples per forward pass. Default: whole batches. */
  chunkSize?: number;
  /** Checked between batches. */
  signal?: AbortSignal;
}

/** Runs `fn` on consecutive slices of `xs`/`ys` of at most `chunk` samples. */
function forEachChunk(
  xs: tf.Tensor4D,
  ys: tf.Tensor2D,
  chunk: number | undefined,
  fn: (x: tf.Tensor4D, y: tf.Tensor2D) => void,
): void {
  const n = xs.shape[0];
  const size = Math.max(1, Math.min(chunk ?? n, n));
  for (let start = 0; start < n; start += size) {
    const count = Math.min(size, n - start);
    tf.tidy(() => {
      const x = count === n ? xs : tf.slice(xs, [start, 0, 0, 0], [count, -1, -1, -1]);
      const y = count === n ? ys : tf.slice(ys, [start, 0], [count, -1]);
      fn(x, y);
    });
  }
}

/** Forward pass in inference mode (BN uses moving statistics, Dropout is off). */
function infer(model: tf.LayersModel, x: tf.Tensor4D): tf.Tensor2D {
  return model.apply(x, { training: false }) as tf.Tensor2D;
}

/** Validation metrics of one full pass. */
export interface EvaluationResult {
  /** Mean unweighted cross-entropy plus regularisation penalties (Keras's `val_loss`). */
  loss: number;
  accuracy: number;
  count: number;
}

/**
 * Evaluates the model on every batch of `batches` in inference mode. Class weights do not apply, as
 * in Keras. Disposes each batch.
 */
export async function evaluateBatches(
  model: tf.LayersModel,
  batches: AsyncIterable<TrainBatch>,
  options: InferenceOptions = {},
): Promise<EvaluationResult> {
  let lossSum = 0;
  let correct = 0;
  let count = 0;
  for await (const batch of batches) {
    try {
      throwIfCancelled(options.signal);
      let sums: tf.Tensor1D | undefined;
      forEachChunk(batch.xs, batch.ys, options.chunkSize, (x, y) => {
        const probs = infer(model, x);
        const chunkSums = tf.stack([tf.sum(crossEntropyPerSample(y, probs)), correctCount(y, probs)]) as tf.Tensor1D;
        const next: tf.Tensor1D = sums === undefined ? chunkSums : tf.add(sums, chunkSums);
        sums?.dispose();
        sums = tf.keep(next);
      });
      if (sums !== undefined) {
        const values = await (sums as tf.Tensor1D).data();
        (sums as tf.Tensor1D).dispose();
        lossSum += values[0] as number;
        correct += values[1] as number;
      }
      count += batch.xs.shape[0];
    } finally {
      tf.dispose([batch.xs, batch.ys]);
    }
  }
  const penalties = tf.tidy(() => {
    const losses = model.calculateLosses();
    return losses.length === 0 ? 0 : (tf.addN(losses).dataSync()[0] as number);
  });
  return {
    loss: count === 0 ? Number.NaN : lossSum / count + penalties,
    accuracy: count === 0 ? Number.NaN : correct / count,
    count,
  };
}

/** Predictions over a set of batches, in batch order. */
export interface Predictions {
  /** True class per sample (argmax of the one-hot label). */
  yTrue: number[];
  /** Predicted class probabilities per sample, `[N][numClasses]`. */
  yProb: number[][];
  /** Predicted class per sample (argmax of `yProb`; the first on ties). */
  yPred: number[];
  /** Dataset indices per sample, when every batch carried them. */
  indices?: number[];
}

/**
 * Runs the model in inference mode over `batches` and collects labels and probabilities for the
 * metrics. Disposes each batch; leaves no tensors behind.
 * @example
 * const { yTrue, yPred } = await predictBatches(model, testBatches());
 */
export async function predictBatches(
  model: tf.LayersModel,
  batches: AsyncIterable<TrainBatch>,
  options: InferenceOptions = {},
): Promise<Predictions> {
  const yTrue: number[] = [];
  const yProb: number[][] = [];
  const yPred: number[] = [];
  const indices: number[] = [];
  let allIndexed = true;
  for await (const batch of batches) {
    try {
      throwIfCancelled(options.signal);
      const chunks: { probs: tf.Tensor2D; labels: tf.Tensor1D }[] = [];
      try {
        forEachChunk(batch.xs, batch.ys, options.chunkSize, (x, y) => {
          chunks.push({ probs: tf.keep(infer(model, x)), labels: tf.keep(tf.argMax(y, -1) as tf.Tensor1D) });
        });
        for (const { probs, labels } of chunks) {
          const [rows, trueLabels] = await Promise.all([probs.array(), labels.data()]);
          for (let i = 0; i < rows.length; i++) {
            const row = rows[i] as number[];
            yProb.push(row);
            yTrue.push(trueLabels[i] as number);
            yPred.push(argMax(row));
          }
        }
      } finally {
        for (const { probs, labels } of chunks) tf.dispose([probs, labels]);
      }
      if (batch.indices !== undefined && batch.indices.length === batch.xs.shape[0]) indices.push(...batch.indices);
      else allIndexed = false;
    } finally {
      tf.dispose([batch.xs, batch.ys]);
    }
  }
  return allIndexed && indices.length === yTrue.length ? { yTrue, yProb, yPred, indices } : { yTrue, yProb, yPred };
}

function argMax(row: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if ((row[i] as number) > (row[best] as number)) best = i;
  return best;
}
