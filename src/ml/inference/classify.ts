/**
 * Classifying images with a saved model: the same preprocessing as training (read from the model's
 * metadata), every class probability, the fracture probability (the summed probability of the
 * fracture-positive classes) and, on request, a Grad-CAM overlay.
 * @module
 */
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { decodeImagePixels, imageOptionsFromRecord, normalisePixels, type DecodeLimits, type ImageOptions } from '../data/index.ts';
import { gradCam, renderHeatmapOverlay } from '../explain/index.ts';
import { GRAD_CAM_LAYER, isArchitecture } from '../models/index.ts';
import type { LoadedModel } from '../persist/index.ts';

/** The prediction for one image. */
export interface ImagePrediction {
  /** Name of the most probable class. */
  label: string;
  classIndex: number;
  /** Probability of every class, keyed by class name, in class order. */
  probabilities: Record<string, number>;
  /** Summed probability of the fracture-positive classes; null when the model has none. */
  fractureProbability: number | null;
}

/** An image decoded and framed for one model: its 8-bit pixels and the normalised input. */
interface PreparedImage {
  pixels: Uint8Array;
  input: Float32Array;
}

/** The image options a saved model was trained with. */
export function modelImageOptions(loaded: LoadedModel): ImageOptions {
  return imageOptionsFromRecord(loaded.metadata.preprocessing);
}

async function prepare(image: string | Uint8Array, options: ImageOptions, limits: DecodeLimits): Promise<PreparedImage> {
  const pixels = await decodeImagePixels(image, { ...options, ...limits });
  return { pixels, input: normalisePixels(pixels, options.channels, options.mode) };
}

/** Turns one row of probabilities into an {@link ImagePrediction}. */
export function describeProbabilities(row: ArrayLike<number>, classNames: readonly string[], positiveClasses: readonly string[]): ImagePrediction {
  let classIndex = 0;
  const probabilities: Record<string, number> = {};
  for (let i = 0; i < classNames.length; i++) {
    const p = row[i] ?? 0;
    probabilities[classNames[i] as string] = p;
    if (p > (row[classIndex] ?? 0)) classIndex = i;
  }
  const positive = new Set(positiveClasses);
  const fractureProbability = positive.size === 0
    ? null
    : classNames.reduce((sum, name, i) => (positive.has(name) ? sum + (row[i] ?? 0) : sum), 0);
  return { label: classNames[classIndex] as string, classIndex, probabilities, fractureProbability };
}

/** Images per forward pass and decodes in flight: bounds memory whatever the number of images. */
const CLASSIFY_CHUNK = 16;

/**
 * Classifies `images` (paths or encoded bytes), in forward passes of at most 16 images.
 * @throws MlError `IMAGE_UNDECODABLE` naming the first image that cannot be decoded
 */
export async function classifyImages(loaded: LoadedModel, images: readonly (string | Uint8Array)[], limits: DecodeLimits = {}): Promise<ImagePrediction[]> {
  const options = modelImageOptions(loaded);
  const { height, width, channels } = options;
  const results: ImagePrediction[] = [];
  for (let start = 0; start < images.length; start += CLASSIFY_CHUNK) {
    const chunk = images.slice(start, start + CLASSIFY_CHUNK);
    const prepared = await Promise.all(chunk.map((image) => prepare(image, options, limits)));
    const batch = new Float32Array(prepared.length * height * width * channels);
    prepared.forEach((image, i) => batch.set(image.input, i * image.input.length));
    const probabilities = tf.tidy(() => loaded.model.predict(tf.tensor4d(batch, [prepared.length, height, width, channels])) as tf.Tensor2D);
    try {
      const rows = (await probabilities.array()) as number[][];
      for (const row of rows) results.push(describeProbabilities(row, loaded.metadata.classNames, loaded.metadata.positiveClasses));
    } finally {
      probabilities.dispose();
    }
  }
  return results;
}

/**
 * A Grad-CAM overlay (PNG) of the model's explanation of `image` for `classIndex` (default: the
 * predicted class), drawn over the image as the model saw it (after letterbox or crop), at the
 * model's input size scaled up to at least `minSide` pixels for legibility.
 */
export async function explainImage(
  loaded: LoadedModel,
  image: string | Uint8Array,
  options: { classIndex?: number; alpha?: number; minSide?: number } & DecodeLimits = {},
): Promise<{ png: Buffer; classIndex: number; layerName: string }> {
  const imageOptions = modelImageOptions(loaded);
  const { pixels, input } = await prepare(image, imageOptions, options);
  const { height, width, channels } = imageOptions;
  const architecture = loaded.metadata.architecture;
  const x = tf.tensor4d(input, [1, height, width, channels]);
  try {
    const cam = await gradCam(loaded.model, x, {
      // The CNN's block count is configurable, so its last block is found from the graph instead.
      ...(isArchitecture(architecture) && architecture !== 'cnn' ? { layerName: GRAD_CAM_LAYER[architecture] } : {}),
      ...(options.classIndex === undefined ? {} : { classIndex: options.classIndex }),
    });
    const scale = Math.max(1, Math.ceil((options.minSide ?? 256) / Math.max(height, width)));
    const framed = await sharp(pixels, { raw: { width, height, channels } })
      .resize(width * scale, height * scale, { kernel: 'lanczos3' })
      .png()
      .toBuffer();
    const png = await renderHeatmapOverlay(framed, cam, options.alpha === undefined ? {} : { alpha: options.alpha });
    return { png, classIndex: cam.classIndex, layerName: cam.layerName };
  } finally {
    x.dispose();
  }
}
