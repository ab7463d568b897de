/**
 * Renders a Grad-CAM heat-map over its X-ray as a PNG: the map is upsampled bilinearly to the image
 * size, coloured with jet and alpha-blended over the grayscale image.
 * @module
 */
import sharp, { type OutputInfo } from 'sharp';
import { MlError } from '../errors.ts';
import { jetLut } from './colormap.ts';
import type { GradCamResult } from './grad-cam.ts';

export interface OverlayOptions {
  /** Opacity of the colour layer in [0, 1]. Default 0.45: the bone stays readable beneath. */
  alpha?: number;
  /**
   * Longest side of the output in pixels; larger images are scaled down first (never up). Default:
   * the image's own size. Large radiographs (3000 px) make PNGs of several megabytes.
   */
  maxSide?: number;
}

const JET = jetLut();

/**
 * Blends `cam` over `image` and encodes the result as an 8-bit RGB PNG of the image's size (after
 * EXIF orientation, or `maxSide`).
 *
 * The heat-map is stretched over the whole image: pass the image the model saw (after letterbox or
 * crop) when preprocessing changed the framing, or the overlay will be offset accordingly.
 *
 * @param image Encoded image bytes (JPEG, PNG, 8 or 16 bit, gray or colour) or a file path.
 * @param cam `heatmap` is row-major `height x width` in [0, 1] (a {@link GradCamResult} fits).
 * @throws MlError `IMAGE_UNDECODABLE` when sharp cannot read `image`; `INVALID_ARGUMENT` for a
 *   heat-map whose length is not `width * height` or an alpha outside [0, 1].
 * @example
 * const cam = await gradCam(model, x, { layerName: GRAD_CAM_LAYER.resnet50 });
 * const png = await renderHeatmapOverlay('xray.jpg', cam, { alpha: 0.45, maxSide: 1024 });
 */
export async function renderHeatmapOverlay(
  image: Buffer | string,
  cam: Pick<GradCamResult, 'heatmap' | 'width' | 'height'>,
  options: OverlayOptions = {},
): Promise<Buffer> {
  const alpha = options.alpha ?? 0.45;
  if (!(alpha >= 0 && alpha <= 1)) throw new MlError('INVALID_ARGUMENT', `alpha must be in [0, 1], got ${alpha}.`);
  if (!(Number.isInteger(cam.width) && Number.isInteger(cam.height) && cam.width > 0 && cam.height > 0) || cam.heatmap.length !== cam.width * cam.height) {
    throw new MlError('INVALID_ARGUMENT', `Heat-map of ${cam.heatmap.length} values does not match ${cam.width}x${cam.height}.`);
  }

  const gray = await decodeGray(image, options.maxSide);
  const { width, height } = gray.info;

  // 8-bit quantisation before resizing loses nothing visible: the colour table has 256 entries.
  const small = Buffer.alloc(cam.heatmap.length);
  for (let i = 0; i < small.length; i++) small[i] = Math.round(255 * Math.min(1, Math.max(0, cam.heatmap[i] ?? 0)));
  const heat = await sharp(small, { raw: { width: cam.width, height: cam.height, channels: 1 } })
    .resize(width, height, { fit: 'fill', kernel: 'linear' })
    // Without it sharp writes one-channel raw input back out as 3-channel sRGB.
    .toColourspace('b-w')
    .raw()
    .toBuffer();
  if (heat.length !== width * height) throw new Error(`heat-map upsampling returned ${heat.length} bytes for ${width}x${height}`);

  const rgb = Buffer.alloc(width * height * 3);
  for (let i = 0; i < width * height; i++) {
    const level = heat[i] as number;
    const base = (1 - alpha) * (gray.data[i] as number);
    for (let c = 0; c < 3; c++) rgb[3 * i + c] = Math.round(base + alpha * (JET[3 * level + c] as number));
  }
  return sharp(rgb, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** One 8-bit gray channel of `image`, upright (EXIF), optionally downscaled to `maxSide`. */
async function decodeGray(image: Buffer | string, maxSide: number | undefined): Promise<{ data: Buffer; info: OutputInfo }> {
  try {
    let pipeline = sharp(image, { failOn: 'error' }).rotate();
    if (maxSide !== undefined) {
      pipeline = pipeline.resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true });
    }
    const result = await pipeline.removeAlpha().grayscale().raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    if (result.info.channels !== 1) throw new Error(`expected 1 channel after grayscale, got ${result.info.channels}`);
    return result;
  } catch (cause) {
    const what = typeof image === 'string' ? 'The image file' : 'The image';
    throw new MlError('IMAGE_UNDECODABLE', `${what} could not be decoded: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}
