/**
 * The jet colormap (MATLAB's, as in the Keras Grad-CAM example): dark blue for 0 through cyan, green
 * and yellow to dark red for 1. Familiar to radiologists from perfusion maps, and its ends are far
 * from any gray, so it reads over an X-ray.
 * @module
 */

/** RGB of `value` in [0, 1] (clamped), each channel 0..255. */
export function jet(value: number): [r: number, g: number, b: number] {
  const x = Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
  const channel = (centre: number): number => Math.round(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * x - centre))));
  return [channel(3), channel(2), channel(1)];
}

/** 256-entry lookup table: `lut[3 * i + c]` is channel `c` of `jet(i / 255)`. */
export function jetLut(): Uint8Array {
  const lut = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) lut.set(jet(i / 255), 3 * i);
  return lut;
}
