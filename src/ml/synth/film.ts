/**
 * Film effects applied to a rendered exposure: optical blur, a smooth low-frequency field (uneven
 * tissue, heel effect), vignetting, grain and 8-bit quantisation. They make global statistics such as
 * the mean intensity vary widely between images, so a classifier has to look at structure.
 * All rasters are row-major `size` x `size` Float32Arrays.
 * @module
 */
import { gaussian, type Random } from '../util/random.ts';

/** Separable Gaussian blur in place, edges clamped. `sigma` is in pixels; below 0.05 it is a no-op. */
export function gaussianBlur(raster: Float32Array, size: number, sigma: number): void {
  if (sigma < 0.05) return;
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const taps = 2 * radius + 1;
  const kernel = new Float32Array(taps);
  let total = 0;
  for (let i = -radius; i <= radius; i++) {
    const w = Math.exp(-(i * i) / (2 * sigma * sigma));
    kernel[i + radius] = w;
    total += w;
  }
  for (let i = 0; i < taps; i++) kernel[i] = (kernel[i] ?? 0) / total;
  // One padded line buffer serves both passes, so the inner loop needs no edge tests.
  const line = new Float32Array(size + 2 * radius);
  const convolve = (start: number, stride: number): void => {
    for (let j = 0; j < size; j++) line[j + radius] = raster[start + j * stride] ?? 0;
    const first = line[radius] ?? 0;
    const last = line[radius + size - 1] ?? 0;
    for (let j = 0; j < radius; j++) {
      line[j] = first;
      line[radius + size + j] = last;
    }
    for (let j = 0; j < size; j++) {
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += (kernel[k] ?? 0) * (line[j + k] ?? 0);
      raster[start + j * stride] = acc;
    }
  };
  for (let row = 0; row < size; row++) convolve(row * size, 1);
  for (let col = 0; col < size; col++) convolve(col, size);
}

/**
 * A smooth random field in about [-1, 1]: Gaussian values on a coarse `cells` x `cells` grid,
 * bilinearly interpolated to `size` x `size`.
 */
export function smoothField(rand: Random, size: number, cells: number): Float32Array {
  const n = cells + 1;
  const grid = new Float32Array(n * n);
  for (let i = 0; i < grid.length; i++) grid[i] = gaussian(rand) * 0.5;
  const field = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    const gy = ((y + 0.5) / size) * cells;
    const iy = Math.min(cells - 1, Math.floor(gy));
    const fy = gy - iy;
    for (let x = 0; x < size; x++) {
      const gx = ((x + 0.5) / size) * cells;
      const ix = Math.min(cells - 1, Math.floor(gx));
      const fx = gx - ix;
      const g00 = grid[iy * n + ix] ?? 0;
      const g01 = grid[iy * n + ix + 1] ?? 0;
      const g10 = grid[(iy + 1) * n + ix] ?? 0;
      const g11 = grid[(iy + 1) * n + ix + 1] ?? 0;
      field[y * size + x] = (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy;
    }
  }
  return field;
}

/** Vignetting and exposure gradient parameters, in image-side units. */
export interface Shading {
  /** Centre of the vignette, as fractions of the image side. */
  readonly centreX: number;
  readonly centreY: number;
  /** Darkening at the image corners, 0..1. */
  readonly vignette: number;
  /** Linear exposure gradient: relative change across the image along (gradientX, gradientY). */
  readonly gradientX: number;
  readonly gradientY: number;
}

/** Multiplies `raster` by a radial vignette and a linear exposure gradient. */
export function applyShading(raster: Float32Array, size: number, shading: Shading): void {
  for (let y = 0; y < size; y++) {
    const ny = (y + 0.5) / size;
    const dy = ny - shading.centreY;
    for (let x = 0; x < size; x++) {
      const nx = (x + 0.5) / size;
      const dx = nx - shading.centreX;
      // Corners of a centred vignette sit at r^2 = 0.5.
      const falloff = Math.max(0, 1 - shading.vignette * ((dx * dx + dy * dy) / 0.5));
      const gradient = 1 + shading.gradientX * (nx - 0.5) + shading.gradientY * (ny - 0.5);
      const index = y * size + x;
      raster[index] = (raster[index] ?? 0) * falloff * gradient;
    }
  }
}

/**
 * Adds zero-mean grain of standard deviation `sigma` (intensity units) in place. The sum of four
 * uniforms (Irwin-Hall) is close enough to Gaussian for film grain and several times cheaper than
 * Box-Muller, which matters at one sample per pixel.
 */
export function addGrain(raster: Float32Array, rand: Random, sigma: number): void {
  const k = sigma * Math.sqrt(3);
  for (let i = 0; i < raster.length; i++) raster[i] = (raster[i] ?? 0) + k * (rand() + rand() + rand() + rand() - 2);
}

/** Resolution of the tone curve lookup table; finer than the 256 output levels. */
const TONE_STEPS = 4096;

/** Clamps to [0, 1], applies `gamma` and rounds to 8-bit grey levels (through a lookup table). */
export function quantise(raster: Float32Array, gamma: number): Uint8Array {
  const table = new Uint8Array(TONE_STEPS + 1);
  for (let i = 0; i <= TONE_STEPS; i++) table[i] = Math.round(255 * (i / TONE_STEPS) ** gamma);
  const out = new Uint8Array(raster.length);
  for (let i = 0; i < raster.length; i++) {
    const v = raster[i] ?? 0;
    out[i] = table[v <= 0 ? 0 : v >= 1 ? TONE_STEPS : Math.round(v * TONE_STEPS)] ?? 0;
  }
  return out;
}
