/**
 * The one image preprocessing path, shared by training, evaluation and serving: decode with sharp,
 * apply EXIF orientation, flatten alpha on black, resize (letterbox or centre crop), convert to 8-bit
 * RGB or luma, then apply the Keras `preprocess_input` of the architecture. `preprocessingRecord`
 * describes the path as JSON for model metadata, and `imageOptionsFromRecord` turns that JSON back
 * into options, so a served model preprocesses exactly as it was trained.
 *
 * Pixel layout everywhere is HWC (row-major, channels last), matching tfjs `[N, H, W, C]` tensors.
 * @module
 */
import sharp from 'sharp';
import type { OutputInfo } from 'sharp';
import { MlError } from '../errors.ts';

/**
 * Keras `preprocess_input` modes: `caffe` (VGG16, ResNet50) = RGB→BGR then subtract the ImageNet
 * means; `tf` (InceptionV3) = x / 127.5 − 1, range [−1, 1]; `unit` (the custom CNN) = x / 255.
 */
export type NormalisationMode = 'caffe' | 'tf' | 'unit';
export const NORMALISATION_MODES: readonly NormalisationMode[] = ['caffe', 'tf', 'unit'];

/**
 * `letterbox`: scale to fit inside the target, pad the rest with black (keeps every pixel and the
 * aspect ratio); `crop`: scale to cover the target, cut the overflow around the centre.
 */
export type ResizeMode = 'letterbox' | 'crop';
export const RESIZE_MODES: readonly ResizeMode[] = ['letterbox', 'crop'];

/** Everything that decides the pixel values a model sees. Recorded in model metadata. */
export interface ImageOptions {
  /** Target height in pixels. */
  readonly height: number;
  /** Target width in pixels. */
  readonly width: number;
  /** 3 = RGB (BGR after `caffe`), 1 = luma. */
  readonly channels: 1 | 3;
  readonly mode: NormalisationMode;
  readonly resize: ResizeMode;
}

/** Safety limits for untrusted input. They never change pixel values, so they are not recorded. */
export interface DecodeLimits {
  /** Refuse images with more pixels than this (width × height). Default `DEFAULT_LIMIT_INPUT_PIXELS`. */
  readonly limitInputPixels?: number;
  /** Abort a decode that takes longer than this many seconds. Default `DEFAULT_DECODE_TIMEOUT_SECONDS`. */
  readonly timeoutSeconds?: number;
  /**
   * How strict the decoder is (sharp `failOn`): `truncated` fails only on cut-short data, `error`
   * also on corrupt data, `warning` also on recoverable oddities. Default `error`: real datasets hold
   * JPEGs with harmless warnings (extraneous bytes), while uploads may ask for `warning`.
   */
  readonly failOn?: 'truncated' | 'error' | 'warning';
}

/** 50 megapixels: above any radiograph detector (43 cm at 0.1 mm is 4300², 18.5 MP). */
export const DEFAULT_LIMIT_INPUT_PIXELS = 50_000_000;
export const DEFAULT_DECODE_TIMEOUT_SECONDS = 20;

/** ImageNet channel means in BGR order, as Keras `imagenet_utils.preprocess_input(mode='caffe')`. */
export const CAFFE_MEAN_BGR: readonly [number, number, number] = [103.939, 116.779, 123.68];
/**
 * The `caffe` mean for one-channel input: the mean of the three channel means (114.799). A grey pixel
 * replicated into RGB would be centred by a different amount in each channel; no single scalar is
 * exact, and the plain average keeps a grey level's offset symmetric across the channels a
 * 3-channel model would have seen.
 */
export const CAFFE_MEAN_GRAY = (CAFFE_MEAN_BGR[0] + CAFFE_MEAN_BGR[1] + CAFFE_MEAN_BGR[2]) / 3;

/** Resampling kernel for every resize (sharp's default; anti-aliased when shrinking). */
const RESIZE_KERNEL = 'lanczos3';
/** Largest target side accepted: larger inputs are a configuration mistake, not a model. */
const MAX_TARGET_SIDE = 4096;

/**
 * Checks options once and returns them frozen.
 * @throws MlError INVALID_ARGUMENT naming the bad field and the valid values
 */
export function validateImageOptions(options: ImageOptions): Readonly<ImageOptions> {
  const problems: string[] = [];
  for (const key of ['height', 'width'] as const) {
    const v = options[key];
    if (!Number.isInteger(v) || v < 1 || v > MAX_TARGET_SIDE) problems.push(`${key} must be an integer in [1, ${MAX_TARGET_SIDE}], got ${String(v)}`);
  }
  if (options.channels !== 1 && options.channels !== 3) problems.push(`channels must be 1 or 3, got ${String(options.channels)}`);
  if (!NORMALISATION_MODES.includes(options.mode)) problems.push(`mode must be one of ${NORMALISATION_MODES.join(', ')}, got ${String(options.mode)}`);
  if (!RESIZE_MODES.includes(options.resize)) problems.push(`resize must be one of ${RESIZE_MODES.join(', ')}, got ${String(options.resize)}`);
  if (problems.length > 0) throw new MlError('INVALID_ARGUMENT', `invalid image options: ${problems.join('; ')}`);
  const { height, width, channels, mode, resize } = options;
  return Object.freeze({ height, width, channels, mode, resize });
}

/** The geometry part of `ImageOptions`: what `decodeImagePixels` needs. */
export type ImageGeometry = Pick<ImageOptions, 'height' | 'width' | 'channels' | 'resize'>;

/**
 * Decodes, orients, flattens and resizes one image to 8-bit pixels.
 * 16-bit PNGs are scaled to 8 bits; grey, grey+alpha, RGB, RGBA and CMYK inputs all work.
 * With `channels: 1` the luma is ITU-R 601-2, computed exactly as PIL's `convert('L')` (which Keras's
 * `color_mode='grayscale'` uses), so a grey image keeps its values and a colour one matches Keras.
 * @param input a file path or the file's bytes
 * @returns HWC bytes, length `height * width * channels`
 * @throws MlError IMAGE_UNDECODABLE when sharp cannot decode it, the pixel limit is exceeded or the
 *   timeout expires
 */
export async function decodeImagePixels(input: string | Uint8Array, options: ImageGeometry & DecodeLimits): Promise<Uint8Array> {
  const { height, width, channels, resize } = options;
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await sharp(input, {
      autoOrient: true,
      failOn: options.failOn ?? 'error',
      limitInputPixels: options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS,
    })
      .timeout({ seconds: options.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS })
      // Transparent regions become black, the same as letterbox padding and an X-ray's background.
      .flatten({ background: { r: 0, g: 0, b: 0 } })
      .resize({
        width,
        height,
        fit: resize === 'letterbox' ? 'contain' : 'cover',
        position: 'centre',
        background: { r: 0, g: 0, b: 0, alpha: 1 },
        kernel: RESIZE_KERNEL,
      })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new MlError('IMAGE_UNDECODABLE', `image could not be decoded: ${(error as Error).message}`, { cause: error });
  }
  const { info, data } = raw;
  if (info.width !== width || info.height !== height || info.channels !== 3 || data.length !== width * height * 3) {
    throw new MlError(
      'IMAGE_UNDECODABLE',
      `decoder returned ${info.width}x${info.height}x${info.channels}, expected ${width}x${height}x3`,
    );
  }
  const rgb = new Uint8Array(data.buffer, data.byteOffset, data.length);
  return channels === 3 ? rgb : rgbToLuma(rgb);
}

/** PIL's `L = R*299/1000 + G*587/1000 + B*114/1000` in its 16-bit fixed-point form, rounded. */
function rgbToLuma(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array(rgb.length / 3);
  for (let i = 0, j = 0; i < out.length; i++, j += 3) {
    out[i] = ((rgb[j] as number) * 19595 + (rgb[j + 1] as number) * 38470 + (rgb[j + 2] as number) * 7471 + 0x8000) >> 16;
  }
  return out;
}

/**
 * Applies the Keras `preprocess_input` of `mode` to 8-bit-range HWC pixels (values in [0, 255], RGB
 * order for 3 channels). Values may be fractional (augmentation output).
 * @param out written from `offset`; allocated when omitted (length `pixels.length`)
 * @returns `out`
 */
export function normalisePixels(
  pixels: ArrayLike<number>,
  channels: 1 | 3,
  mode: NormalisationMode,
  out: Float32Array = new Float32Array(pixels.length),
  offset = 0,
): Float32Array {
  const n = pixels.length;
  if (offset + n > out.length) throw new RangeError(`output too small: need ${offset + n}, have ${out.length}`);
  if (mode === 'unit') {
    for (let i = 0; i < n; i++) out[offset + i] = (pixels[i] as number) / 255;
  } else if (mode === 'tf') {
    for (let i = 0; i < n; i++) out[offset + i] = (pixels[i] as number) / 127.5 - 1;
  } else if (channels === 1) {
    for (let i = 0; i < n; i++) out[offset + i] = (pixels[i] as number) - CAFFE_MEAN_GRAY;
  } else {
    const [mb, mg, mr] = CAFFE_MEAN_BGR;
    for (let i = 0; i < n; i += 3) {
      // RGB in, BGR out: the channel order the original Caffe-trained weights expect.
      out[offset + i] = (pixels[i + 2] as number) - mb;
      out[offset + i + 1] = (pixels[i + 1] as number) - mg;
      out[offset + i + 2] = (pixels[i] as number) - mr;
    }
  }
  return out;
}

/**
 * Decodes one image and returns the model-ready values: decode, orient, resize, normalise.
 * @param input a file path or the file's bytes
 * @returns Float32Array of length `height * width * channels`, HWC: one `[H, W, C]` slice of a
 *   `[N, H, W, C]` input tensor
 * @throws MlError IMAGE_UNDECODABLE, INVALID_ARGUMENT
 * @example
 * const x = await loadImageTensorData('xray.jpg', { height: 224, width: 224, channels: 3, mode: 'caffe', resize: 'letterbox' });
 * const t = tf.tensor4d(x, [1, 224, 224, 3]);
 */
export async function loadImageTensorData(input: string | Uint8Array, options: ImageOptions & DecodeLimits): Promise<Float32Array> {
  const valid = validateImageOptions(options);
  const pixels = await decodeImagePixels(input, { ...options, ...valid });
  return normalisePixels(pixels, valid.channels, valid.mode);
}

/** JSON description of the preprocessing, stored in model metadata. */
export interface PreprocessingRecord {
  readonly version: 1;
  readonly input: { readonly height: number; readonly width: number; readonly channels: 1 | 3 };
  readonly decoder: { readonly library: 'sharp'; readonly sharp: string; readonly libvips: string };
  readonly orientation: 'exif';
  readonly alpha: 'flatten-on-black';
  readonly bitDepth: 'uint8 (16-bit inputs scaled)';
  readonly colour: 'srgb' | 'luma-itu-r-601';
  readonly resize: {
    readonly mode: ResizeMode;
    readonly fit: 'contain' | 'cover';
    readonly position: 'centre';
    readonly kernel: typeof RESIZE_KERNEL;
    /** Value of letterbox padding before normalisation. */
    readonly padValue: 0;
  };
  readonly normalisation: {
    readonly mode: NormalisationMode;
    /** Channel order of the tensor. */
    readonly channelOrder: 'RGB' | 'BGR' | 'L';
    /** Subtracted per channel (in `channelOrder`) before dividing by `scale`. */
    readonly mean: readonly number[];
    readonly scale: number;
    /** Added after scaling: `y = (x - mean) / scale + offset`. */
    readonly offset: number;
  };
}

/**
 * A JSON-able description of what `loadImageTensorData` does with these options, including the
 * decoder versions (a libvips upgrade can move resized pixels by a grey level).
 */
export function preprocessingRecord(options: ImageOptions): PreprocessingRecord {
  const { height, width, channels, mode, resize } = validateImageOptions(options);
  let normalisation: PreprocessingRecord['normalisation'];
  if (mode === 'caffe') {
    normalisation = channels === 3
      ? { mode, channelOrder: 'BGR', mean: [...CAFFE_MEAN_BGR], scale: 1, offset: 0 }
      : { mode, channelOrder: 'L', mean: [CAFFE_MEAN_GRAY], scale: 1, offset: 0 };
  } else {
    const order = channels === 3 ? 'RGB' : 'L';
    normalisation = mode === 'tf'
      ? { mode, channelOrder: order, mean: [0], scale: 127.5, offset: -1 }
      : { mode, channelOrder: order, mean: [0], scale: 255, offset: 0 };
  }
  return {
    version: 1,
    input: { height, width, channels },
    decoder: { library: 'sharp', sharp: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips },
    orientation: 'exif',
    alpha: 'flatten-on-black',
    bitDepth: 'uint8 (16-bit inputs scaled)',
    colour: channels === 3 ? 'srgb' : 'luma-itu-r-601',
    resize: { mode: resize, fit: resize === 'letterbox' ? 'contain' : 'cover', position: 'centre', kernel: RESIZE_KERNEL, padValue: 0 },
    normalisation,
  };
}

/**
 * The options a stored `preprocessingRecord` was made from, for serving a saved model.
 * @throws MlError INVALID_ARGUMENT when the record is not a version-1 preprocessing record
 */
export function imageOptionsFromRecord(record: unknown): ImageOptions {
  const r = record as Partial<PreprocessingRecord> | null;
  if (r === null || typeof r !== 'object' || r.version !== 1 || typeof r.input !== 'object' || typeof r.normalisation !== 'object' || typeof r.resize !== 'object') {
    throw new MlError('INVALID_ARGUMENT', 'not a version-1 preprocessing record');
  }
  return validateImageOptions({
    height: r.input.height,
    width: r.input.width,
    channels: r.input.channels,
    mode: r.normalisation.mode,
    resize: r.resize.mode,
  });
}
