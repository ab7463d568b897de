/**
 * Training-time augmentation: random horizontal flip, small rotation, zoom, brightness and contrast.
 * It runs on the resized 8-bit-range pixels (after `decodeImagePixels`, before `normalisePixels`), in
 * plain JavaScript, so it is identical on every tfjs backend, needs no second sharp pass, and a given
 * (seed, epoch, item index) always yields the same image. Geometry is one inverse-mapped affine
 * transform with bilinear sampling; pixels mapped from outside the image are black, matching the
 * letterbox padding and an X-ray's background. Validation and test data are never augmented.
 * @module
 */
import { MlError } from '../errors.ts';
import { createRandom, deriveSeed, uniform } from '../util/random.ts';

/** What augmentation may do. Every field has a default; `false` for a field switches it off. */
export interface AugmentOptions {
  /** Mirror left-right with probability 0.5. Default true. (Radiographs of left and right limbs mirror each other.) */
  readonly flip?: boolean;
  /** Rotate by a uniform angle in ±this many degrees. Default 10; 0 = off. */
  readonly rotationDegrees?: number;
  /** Scale by a uniform factor in [min, max] (> 1 zooms in). Default [0.9, 1.1]; [1, 1] = off. */
  readonly zoom?: readonly [number, number];
  /** Add a uniform offset in ±this fraction of full scale (255). Default 0.1; 0 = off. */
  readonly brightness?: number;
  /** Scale the deviation from the image mean by a uniform factor in 1 ± this. Default 0.1; 0 = off. */
  readonly contrast?: number;
}

/** Options with every default filled in. */
export type ResolvedAugmentOptions = Required<AugmentOptions>;

export const DEFAULT_AUGMENT: ResolvedAugmentOptions = Object.freeze({
  flip: true,
  rotationDegrees: 10,
  zoom: [0.9, 1.1] as const,
  brightness: 0.1,
  contrast: 0.1,
});

/** One draw of the random parameters for one image. */
export interface AugmentParams {
  readonly flip: boolean;
  /** Radians; positive turns clockwise as displayed (image y axis points down). */
  readonly angle: number;
  readonly zoom: number;
  /** Offset in grey levels (0–255 scale). */
  readonly brightness: number;
  /** Multiplier of the deviation from the image mean. */
  readonly contrast: number;
}

/**
 * Fills defaults and checks ranges.
 * @param options `true` or `{}` for the defaults, a partial object to override some
 * @throws MlError INVALID_ARGUMENT for out-of-range values
 */
export function resolveAugmentOptions(options: AugmentOptions | true): ResolvedAugmentOptions {
  const o = options === true ? {} : options;
  const resolved: ResolvedAugmentOptions = {
    flip: o.flip ?? DEFAULT_AUGMENT.flip,
    rotationDegrees: o.rotationDegrees ?? DEFAULT_AUGMENT.rotationDegrees,
    zoom: o.zoom ?? DEFAULT_AUGMENT.zoom,
    brightness: o.brightness ?? DEFAULT_AUGMENT.brightness,
    contrast: o.contrast ?? DEFAULT_AUGMENT.contrast,
  };
  const problems: string[] = [];
  if (!(resolved.rotationDegrees >= 0 && resolved.rotationDegrees <= 180)) problems.push('rotationDegrees must be in [0, 180]');
  const [zMin, zMax] = resolved.zoom;
  if (!(zMin > 0 && zMax >= zMin && zMax <= 10)) problems.push('zoom must be [min, max] with 0 < min <= max <= 10');
  if (!(resolved.brightness >= 0 && resolved.brightness <= 1)) problems.push('brightness must be in [0, 1]');
  if (!(resolved.contrast >= 0 && resolved.contrast < 1)) problems.push('contrast must be in [0, 1)');
  if (problems.length > 0) throw new MlError('INVALID_ARGUMENT', `invalid augmentation options: ${problems.join('; ')}`);
  return Object.freeze(resolved);
}

/**
 * Draws the parameters for one image. Deterministic in (seed, epoch, index) and independent of the
 * order in which images are processed, so concurrent decoding does not change the result.
 * @param index the item's index in the dataset split (stable across epochs)
 */
export function sampleAugmentParams(options: ResolvedAugmentOptions, seed: number, epoch: number, index: number): AugmentParams {
  const rand = createRandom(deriveSeed(seed, `augment:${epoch}:${index}`));
  // Always draw all five numbers so switching one option off leaves the others' draws unchanged.
  const flipDraw = rand();
  const angleDraw = uniform(rand, -1, 1);
  const zoomDraw = rand();
  const brightnessDraw = uniform(rand, -1, 1);
  const contrastDraw = uniform(rand, -1, 1);
  const [zMin, zMax] = options.zoom;
  return {
    flip: options.flip && flipDraw < 0.5,
    // `+ 0` turns a switched-off draw's -0 into 0.
    angle: (angleDraw * options.rotationDegrees * Math.PI) / 180 + 0,
    zoom: zMin + (zMax - zMin) * zoomDraw,
    brightness: brightnessDraw * options.brightness * 255 + 0,
    contrast: 1 + contrastDraw * options.contrast,
  };
}

/**
 * Applies `params` to HWC pixels in the 0–255 range.
 * @param pixels length `height * width * channels`
 * @returns a new Float32Array of the same layout, values clamped to [0, 255]
 */
export function applyAugmentation(
  pixels: ArrayLike<number>,
  height: number,
  width: number,
  channels: number,
  params: AugmentParams,
): Float32Array {
  if (pixels.length !== height * width * channels) throw new RangeError(`expected ${height * width * channels} values, got ${pixels.length}`);
  const out = transformGeometry(pixels, height, width, channels, params);
  adjustPhotometry(out, params);
  return out;
}

/** Flip, rotation and zoom about the image centre as one inverse mapping (output → source). */
function transformGeometry(src: ArrayLike<number>, height: number, width: number, channels: number, p: AugmentParams): Float32Array {
  const out = new Float32Array(src.length);
  if (!p.flip && p.angle === 0 && p.zoom === 1) {
    for (let i = 0; i < src.length; i++) out[i] = src[i] as number;
    return out;
  }
  const cx = (width - 1) / 2;
  const cy = (height - 1) / 2;
  const cos = Math.cos(p.angle) / p.zoom;
  const sin = Math.sin(p.angle) / p.zoom;
  for (let y = 0; y < height; y++) {
    const dy = y - cy;
    for (let x = 0; x < width; x++) {
      // The flip is applied last in the forward direction, so it is undone first here.
      const dx = p.flip ? cx - x : x - cx;
      const sx = cx + cos * dx + sin * dy;
      const sy = cy - sin * dx + cos * dy;
      const o = (y * width + x) * channels;
      const x0 = Math.floor(sx);
      const y0 = Math.floor(sy);
      const fx = sx - x0;
      const fy = sy - y0;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < width && y0 + 1 < height) {
        // Fast path: all four neighbours inside the image (most pixels).
        const i00 = (y0 * width + x0) * channels;
        const i01 = i00 + width * channels;
        const w00 = (1 - fx) * (1 - fy), w10 = fx * (1 - fy), w01 = (1 - fx) * fy, w11 = fx * fy;
        for (let c = 0; c < channels; c++) {
          out[o + c] =
            (src[i00 + c] as number) * w00 +
            (src[i00 + channels + c] as number) * w10 +
            (src[i01 + c] as number) * w01 +
            (src[i01 + channels + c] as number) * w11;
        }
        continue;
      }
      for (let c = 0; c < channels; c++) {
        const v00 = sample(src, height, width, channels, x0, y0, c);
        const v10 = sample(src, height, width, channels, x0 + 1, y0, c);
        const v01 = sample(src, height, width, channels, x0, y0 + 1, c);
        const v11 = sample(src, height, width, channels, x0 + 1, y0 + 1, c);
        out[o + c] = (v00 * (1 - fx) + v10 * fx) * (1 - fy) + (v01 * (1 - fx) + v11 * fx) * fy;
      }
    }
  }
  return out;
}

function sample(src: ArrayLike<number>, height: number, width: number, channels: number, x: number, y: number, c: number): number {
  if (x < 0 || y < 0 || x >= width || y >= height) return 0;
  return src[(y * width + x) * channels + c] as number;
}

/** Contrast about the image mean (all channels together, so grey stays grey), then brightness. */
function adjustPhotometry(values: Float32Array, p: AugmentParams): void {
  if (p.contrast === 1 && p.brightness === 0) return;
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  const mean = values.length > 0 ? sum / values.length : 0;
  for (let i = 0; i < values.length; i++) {
    const v = ((values[i] as number) - mean) * p.contrast + mean + p.brightness;
    values[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
}
