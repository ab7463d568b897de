/**
 * Streams a split from disk as tensor batches with bounded memory: images decode a few at a time on
 * sharp's thread pool into per-batch Float32 buffers, at most `prefetch` batches are loaded ahead of
 * the consumer, and tensors are created only when a batch is handed over. A full 8,000-image set at
 * 224x224 therefore never sits in memory as float32; training and evaluation both use this.
 *
 * Ownership: each yielded batch's `xs` and `ys` belong to the consumer, who must dispose them (or
 * create them inside a `tf.tidy` scope that ends). The stream itself holds no tensors.
 * @module
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MlError, isMlError } from '../errors.ts';
import { createRandom, deriveSeed, shuffleInPlace } from '../util/random.ts';
import { resolveAugmentOptions, sampleAugmentParams, applyAugmentation } from './augment.ts';
import type { AugmentOptions, ResolvedAugmentOptions } from './augment.ts';
import { createLimiter } from './concurrency.ts';
import { decodeImagePixels, normalisePixels, validateImageOptions } from './preprocess.ts';
import type { DecodeLimits, ImageOptions } from './preprocess.ts';
import type { DatasetItem } from './types.ts';

/** One batch: `xs` `[n, H, W, C]` float32 preprocessed images, `ys` `[n, numClasses]` one-hot. */
export interface Batch {
  readonly xs: tf.Tensor4D;
  readonly ys: tf.Tensor2D;
  /** Positions in the `items` array given to `createBatchStream`, in batch row order. */
  readonly indices: readonly number[];
}

export interface BatchStreamOptions {
  /** Folder that item paths are relative to (`DatasetIndex.root`). Default: the working directory. */
  readonly root?: string;
  /** Images per batch; the last batch of an epoch may be smaller. */
  readonly batchSize: number;
  /** Shuffle the order each epoch (training). Default false (evaluation order = items order). */
  readonly shuffle?: boolean;
  /** Seed of shuffling and augmentation. Default 0. */
  readonly seed?: number;
  /** Epoch number: a different order and augmentation each epoch, reproducible per (seed, epoch). Default 0. */
  readonly epoch?: number;
  readonly imageOptions: ImageOptions & DecodeLimits;
  /** Augmentation for training; omit or `false` for validation and test. `true` = defaults. */
  readonly augment?: AugmentOptions | boolean;
  /** Batches loaded ahead of the consumer. Default 2; 0 loads each batch only when asked for. */
  readonly prefetch?: number;
  /** Images decoded at once. Default 2 (one per core on the target machine). */
  readonly concurrency?: number;
  /** Width of the one-hot labels. */
  readonly numClasses: number;
}

/** Counters that show the stream's memory bound holds. */
export interface BatchStreamStats {
  /** Batches whose buffers the stream holds now (loading or loaded, not yet handed over). */
  readonly buffered: number;
  /** The most batches ever held at once; never above `prefetch + 1`. */
  readonly peakBuffered: number;
  readonly batchesYielded: number;
  readonly imagesDecoded: number;
}

/** An async iterable of batches; each `for await` runs one pass (epoch) over the items. */
export interface BatchStream extends AsyncIterable<Batch> {
  /** Batches per pass: `ceil(items / batchSize)`. */
  readonly numBatches: number;
  /** Live counters (cumulative over passes, except `buffered`). */
  readonly stats: BatchStreamStats;
}

interface LoadedBatch {
  readonly xs: Float32Array;
  readonly ys: Float32Array;
  readonly indices: readonly number[];
}

/**
 * The order of item positions for one epoch, cut into batches. Without shuffling it is the items
 * order; with shuffling it is a seeded permutation that differs per epoch.
 */
export function epochBatches(count: number, batchSize: number, shuffle: boolean, seed: number, epoch: number): number[][] {
  const order = Array.from({ length: count }, (_, i) => i);
  if (shuffle) shuffleInPlace(order, createRandom(deriveSeed(seed, `shuffle:${epoch}`)));
  const batches: number[][] = [];
  for (let start = 0; start < count; start += batchSize) batches.push(order.slice(start, start + batchSize));
  return batches;
}

/**
 * Creates a batch stream over `items`.
 * @throws MlError INVALID_ARGUMENT for bad options (immediately); iteration throws
 *   MlError IMAGE_UNDECODABLE naming the item's relative path when an image fails to decode
 * @example
 * const stream = createBatchStream(splits.train, { root: index.root, batchSize: 32, shuffle: true, seed,
 *   epoch, imageOptions, augment: true, numClasses: index.classNames.length });
 * for await (const { xs, ys } of stream) {
 *   await model.trainOnBatch(xs, ys);
 *   tf.dispose([xs, ys]);
 * }
 */
export function createBatchStream(items: readonly Pick<DatasetItem, 'path' | 'label'>[], options: BatchStreamOptions): BatchStream {
  const imageOptions = { ...options.imageOptions, ...validateImageOptions(options.imageOptions) };
  const batchSize = options.batchSize;
  const prefetch = options.prefetch ?? 2;
  const concurrency = options.concurrency ?? 2;
  const numClasses = options.numClasses;
  const problems: string[] = [];
  if (!Number.isInteger(batchSize) || batchSize < 1) problems.push(`batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(prefetch) || prefetch < 0) problems.push(`prefetch must be a non-negative integer, got ${prefetch}`);
  if (!Number.isInteger(concurrency) || concurrency < 1) problems.push(`concurrency must be a positive integer, got ${concurrency}`);
  if (!Number.isInteger(numClasses) || numClasses < 1) problems.push(`numClasses must be a positive integer, got ${numClasses}`);
  const badLabel = items.find((item) => !Number.isInteger(item.label) || item.label < 0 || item.label >= numClasses);
  if (badLabel) problems.push(`item ${badLabel.path} has label ${badLabel.label}, outside [0, ${numClasses})`);
  if (problems.length > 0) throw new MlError('INVALID_ARGUMENT', `invalid batch stream options: ${problems.join('; ')}`);

  const augment: ResolvedAugmentOptions | undefined =
    options.augment === undefined || options.augment === false ? undefined : resolveAugmentOptions(options.augment);
  const seed = options.seed ?? 0;
  const epoch = options.epoch ?? 0;
  const root = path.resolve(options.root ?? '.');
  const { height, width, channels } = imageOptions;
  const imageSize = height * width * channels;
  const stats = { buffered: 0, peakBuffered: 0, batchesYielded: 0, imagesDecoded: 0 };

  const loadBatch = async (indices: readonly number[], limiter: ReturnType<typeof createLimiter>): Promise<LoadedBatch> => {
    const xs = new Float32Array(indices.length * imageSize);
    const ys = new Float32Array(indices.length * numClasses);
    await Promise.all(
      indices.map((itemIndex, row) =>
        limiter.run(async () => {
          const item = items[itemIndex] as Pick<DatasetItem, 'path' | 'label'>;
          let pixels: ArrayLike<number>;
          try {
            pixels = await decodeImagePixels(path.resolve(root, item.path), imageOptions);
          } catch (error) {
            const reason = isMlError(error) ? error.message : String(error);
            throw new MlError('IMAGE_UNDECODABLE', `${item.path}: ${reason}`, { cause: error });
          }
          if (augment) pixels = applyAugmentation(pixels, height, width, channels, sampleAugmentParams(augment, seed, epoch, itemIndex));
          normalisePixels(pixels, channels, imageOptions.mode, xs, row * imageSize);
          ys[row * numClasses + item.label] = 1;
          stats.imagesDecoded++;
        }),
      ),
    );
    return { xs, ys, indices };
  };

  async function* iterate(): AsyncGenerator<Batch> {
    const plan = epochBatches(items.length, batchSize, options.shuffle ?? false, seed, epoch);
    const limiter = createLimiter(concurrency);
    const pending: Array<Promise<LoadedBatch>> = [];
    let next = 0;
    const startLoad = (): void => {
      const load = loadBatch(plan[next] as number[], limiter);
      // A load that fails while an earlier batch is being consumed must not crash the process as an
      // unhandled rejection; its error surfaces when the consumer reaches it.
      load.catch(() => undefined);
      pending.push(load);
      next++;
      stats.buffered++;
      stats.peakBuffered = Math.max(stats.peakBuffered, stats.buffered);
    };
    try {
      while (next < plan.length && pending.length < prefetch) startLoad();
      for (;;) {
        if (pending.length === 0) {
          if (next >= plan.length) break;
          startLoad();
        }
        const loaded = await (pending.shift() as Promise<LoadedBatch>);
        stats.buffered--;
        const n = loaded.indices.length;
        const xs = tf.tensor4d(loaded.xs, [n, height, width, channels], 'float32');
        const ys = tf.tensor2d(loaded.ys, [n, numClasses], 'float32');
        // Refill only after handing this batch's buffer to a tensor: the stream then holds at most
        // `prefetch` batches while the consumer works on one.
        while (next < plan.length && pending.length < prefetch) startLoad();
        stats.batchesYielded++;
        yield { xs, ys, indices: loaded.indices };
      }
    } finally {
      // On early exit or error, let in-flight decodes finish so no file is read after the stream ends.
      const left = pending.splice(0);
      stats.buffered -= left.length;
      await Promise.allSettled(left);
    }
  }

  return {
    numBatches: Math.ceil(items.length / batchSize),
    get stats(): BatchStreamStats {
      return { ...stats };
    },
    [Symbol.asyncIterator]: iterate,
  };
}
