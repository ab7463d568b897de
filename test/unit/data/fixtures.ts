/**
 * Test fixtures for the data layer: temporary folders, synthetic images written with sharp, and a few
 * real radiographs copied from `../shared/datasets/xray-binary` (tests skip when it is absent).
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');
export const XRAY_DIR = path.resolve(repoRoot, '../shared/datasets/xray-binary');
export const HAS_XRAYS = existsSync(path.join(XRAY_DIR, 'fractured')) && existsSync(path.join(XRAY_DIR, 'not_fractured'));
/** Pass as the `skip` option of tests that need real X-rays. */
export const SKIP_WITHOUT_XRAYS: string | false = HAS_XRAYS ? false : `real X-rays not found at ${XRAY_DIR}; skipping`;

/** A fresh temporary folder; remove it with `removeDir`. */
export function makeTempDir(label: string): Promise<string> {
  return mkdtemp(path.join(os.tmpdir(), `fracture-data-${label}-`));
}

export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** Path of a real X-ray, e.g. `xray('fractured', 3)` → `.../fractured/fractured-0003.jpg`. */
export function xray(className: 'fractured' | 'not_fractured', n: number): string {
  return path.join(XRAY_DIR, className, `${className}-${String(n).padStart(4, '0')}.jpg`);
}

/** Copies real X-rays into `dir/<className>/`, returning the new paths. */
export async function copyXrays(dir: string, className: 'fractured' | 'not_fractured', numbers: readonly number[], targetClass: string = className): Promise<string[]> {
  await mkdir(path.join(dir, targetClass), { recursive: true });
  const out: string[] = [];
  for (const n of numbers) {
    const dest = path.join(dir, targetClass, path.basename(xray(className, n)));
    await copyFile(xray(className, n), dest);
    out.push(dest);
  }
  return out;
}

/** Writes a solid-colour image (PNG unless the name ends in .jpg/.jpeg), creating folders. */
export async function writeSolid(
  file: string,
  width: number,
  height: number,
  colour: { r: number; g: number; b: number; alpha?: number },
): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const channels = colour.alpha === undefined ? 3 : 4;
  const img = sharp({ create: { width, height, channels, background: colour } });
  await (/\.jpe?g$/i.test(file) ? img.jpeg({ quality: 95 }) : img.png()).toFile(file);
}

/** Writes raw 8-bit HWC pixels as a PNG. */
export async function writeRawPng(file: string, pixels: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await sharp(pixels, { raw: { width, height, channels } }).png().toFile(file);
}

/** Writes arbitrary bytes, creating folders. */
export async function writeBytes(file: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
}
