/**
 * Untrusted image bytes to model inputs, strictly (DESIGN section 7): the type is decided from the
 * bytes (JPEG and PNG signatures only), the header's pixel count is checked before any pixel is
 * decoded, and sharp decodes with a pixel limit, a timeout and `failOn: 'warning'` by default. The
 * pixels then take the one preprocessing path of `src/ml/data`, exactly as in training.
 *
 * Errors name an image by its position in the request (`images[2]`), never by a file name or the
 * client's own id, and say which rule it broke.
 * @module
 */
import sharp from 'sharp';
import {
  DEFAULT_DECODE_TIMEOUT_SECONDS,
  decodeImagePixels,
  normalisePixels,
  sniffImageFormat,
  type DecodeLimits,
  type ImageOptions,
} from '../ml/data/index.ts';
import { AppError, type ErrorCode } from '../infra/errors.ts';

/** The codes an image can be refused with. */
export type ImageErrorCode = Extract<ErrorCode, 'IMAGE_TYPE_UNSUPPORTED' | 'IMAGE_TOO_LARGE' | 'IMAGE_UNDECODABLE'>;

/** How strictly uploads are decoded. */
export interface UploadDecodeLimits {
  /** Largest image accepted, in pixels (width x height), e.g. `IMAGE_MAX_PIXELS`. */
  maxPixels: number;
  /**
   * sharp `failOn`. Default `warning`, the strictest: every radiograph of the reference dataset,
   * 16-bit and grey PNGs, RGBA and EXIF-rotated JPEGs decode with it, while truncated or corrupt
   * files are refused instead of half-decoded.
   */
  failOn?: NonNullable<DecodeLimits['failOn']>;
  /** Longest decode, in seconds. Default `DEFAULT_DECODE_TIMEOUT_SECONDS` (20). */
  timeoutSeconds?: number;
}

/** One image of a request, decoded for one model. */
export interface DecodedImage {
  /** The request's id of the image. */
  readonly id: string;
  /** 8-bit HWC pixels as the model sees them (after orientation, resize, letterbox or crop). */
  readonly pixels: Uint8Array;
  /** The normalised model input: `height * width * channels` float32 values, HWC. */
  readonly input: Float32Array;
}

/**
 * `detail` of an error about one image: it names the image by its position in the request
 * (`images[2]`), never by the caller's own id, which may be a patient identifier (error bodies end up
 * in the logs of gateways and clients). The caller maps the position back to its id.
 */
export function imageDetail(index: number, reason: string): string {
  return `images[${index}] ${reason}`;
}

/**
 * An image of the request was refused. Carries the image's position and the bare reason, so a
 * queue worker can report it across the queue and the API answer the same problem.
 */
export class ImageRejectedError extends AppError {
  readonly imageIndex: number;
  readonly reason: string;

  constructor(code: ImageErrorCode, image: { index: number }, reason: string, cause?: unknown) {
    super(code, imageDetail(image.index, reason), cause === undefined ? {} : { cause });
    this.imageIndex = image.index;
    this.reason = reason;
  }
}

/** The first line of a decoder message, bounded: libvips messages carry no data from the image. */
function decoderMessage(error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error;
  const text = cause instanceof Error ? cause.message : String(cause);
  return (text.split('\n')[0] ?? '').trim().slice(0, 120);
}

/**
 * The image's type, decided from its bytes (JPEG and PNG signatures): a cheap first check, e.g. before
 * an asynchronous prediction is queued.
 * @throws ImageRejectedError `IMAGE_TYPE_UNSUPPORTED` for anything else
 */
export function imageTypeOf(image: { index: number; data: Uint8Array }): NonNullable<ReturnType<typeof sniffImageFormat>> {
  const format = sniffImageFormat(image.data);
  if (format === undefined) throw new ImageRejectedError('IMAGE_TYPE_UNSUPPORTED', image, 'is not a JPEG or PNG (decided from its bytes)');
  return format;
}

/**
 * Checks and decodes one uploaded image for a model with `options`.
 * @param image its bytes, request id and position in the request
 * @throws ImageRejectedError `IMAGE_TYPE_UNSUPPORTED` (not a JPEG or PNG signature),
 *   `IMAGE_TOO_LARGE` (more than `maxPixels`), `IMAGE_UNDECODABLE` (corrupt, truncated, timed out)
 */
export async function decodeUpload(
  image: { id: string; index: number; data: Uint8Array },
  options: ImageOptions,
  limits: UploadDecodeLimits,
): Promise<DecodedImage> {
  const format = imageTypeOf(image);
  const failOn = limits.failOn ?? 'warning';

  // The header alone gives the size: refuse a decompression bomb before decoding a single pixel.
  let width: number;
  let height: number;
  try {
    const meta = await sharp(image.data, { failOn, limitInputPixels: false }).metadata();
    if (meta.format !== format) throw new Error(`signature says ${format}, decoder found ${String(meta.format)}`);
    ({ width, height } = meta);
  } catch (error) {
    const message = decoderMessage(error);
    // libjpeg refuses a header beyond 65500 px per side before we can compare it with the limit.
    if (/maximum supported image dimension/i.test(message)) {
      throw new ImageRejectedError('IMAGE_TOO_LARGE', image, `declares more pixels than the limit of ${limits.maxPixels}`, error);
    }
    throw new ImageRejectedError('IMAGE_UNDECODABLE', image, `could not be decoded as ${format.toUpperCase()} (${message})`, error);
  }
  if (width * height > limits.maxPixels) {
    throw new ImageRejectedError('IMAGE_TOO_LARGE', image, `has ${width}x${height} pixels, more than the limit of ${limits.maxPixels}`);
  }

  let pixels: Uint8Array;
  try {
    pixels = await decodeImagePixels(image.data, {
      ...options,
      limitInputPixels: limits.maxPixels,
      failOn,
      timeoutSeconds: limits.timeoutSeconds ?? DEFAULT_DECODE_TIMEOUT_SECONDS,
    });
  } catch (error) {
    const message = decoderMessage(error);
    if (/pixel limit/i.test(message)) {
      throw new ImageRejectedError('IMAGE_TOO_LARGE', image, `has more pixels than the limit of ${limits.maxPixels}`, error);
    }
    throw new ImageRejectedError('IMAGE_UNDECODABLE', image, `could not be decoded as ${format.toUpperCase()} (${message})`, error);
  }
  return { id: image.id, pixels, input: normalisePixels(pixels, options.channels, options.mode) };
}
