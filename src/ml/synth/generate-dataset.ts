/**
 * Writes a synthetic X-ray data set to disk: one folder per class (`elbow_fractured`, `elbow_normal`,
 * ...), grayscale 8-bit PNGs, byte-identical for the same options. The set is built in a staging
 * directory next to `outDir` and renamed into place, so readers never see a half-written set.
 * @module
 */
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { SYNTH_REGIONS, synthClasses, type SynthRegion } from './classes.ts';
import { MAX_SYNTH_SIZE, MIN_SYNTH_SIZE, renderSyntheticXray } from './render-xray.ts';
import { MlError } from '../errors.ts';
import { deriveSeed } from '../util/random.ts';

/** Options of {@link generateSyntheticDataset}. */
export interface GenerateSyntheticDatasetOptions {
  /** Destination folder; created with its parents. */
  readonly outDir: string;
  /** Images per class, an integer in [1, 100000]. */
  readonly perClass: number;
  /** Side of the square images, pixels, an integer in [16, 2048]. */
  readonly size: number;
  /** Integer in [0, 2^32 - 1]; the same seed and options give byte-identical files. */
  readonly seed: number;
  /** Regions to draw; default all five (`elbow`, `finger`, `forearm`, `hand`, `shoulder`). */
  readonly regions?: readonly SynthRegion[];
  /** Replace a non-empty `outDir`. Default false: a non-empty `outDir` is an error. */
  readonly force?: boolean;
  /** Called after each image is written, with the number written so far and the total. */
  readonly onProgress?: (done: number, total: number) => void;
}

/** What {@link generateSyntheticDataset} wrote. */
export interface SyntheticDatasetSummary {
  /** Class folder names, sorted. */
  readonly classNames: string[];
  /** Number of image files written. */
  readonly files: number;
  /** Absolute path of the data set. */
  readonly outDir: string;
}

const MAX_PER_CLASS = 100_000;
/** Images rendered ahead while earlier ones are PNG-encoded on sharp's thread pool. */
const IN_FLIGHT = 4;

function requireInteger(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new MlError('INVALID_ARGUMENT', `${name} must be an integer in [${min}, ${max}], got ${value}`);
  }
}

/** 'missing', 'empty' or 'full' for a directory; anything else at the path is an error. */
async function inspectTarget(target: string): Promise<'missing' | 'empty' | 'full'> {
  let info;
  try {
    info = await stat(target);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw error;
  }
  if (!info.isDirectory()) throw new MlError('INVALID_ARGUMENT', `outDir ${target} exists and is not a directory`);
  return (await readdir(target)).length === 0 ? 'empty' : 'full';
}

/** Encodes `size` x `size` 8-bit grey levels as a one-channel PNG (no timestamps, so bytes are stable). */
async function encodePng(pixels: Uint8Array, size: number): Promise<Buffer> {
  return sharp(Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength), { raw: { width: size, height: size, channels: 1 } })
    .toColourspace('b-w')
    .png({ compressionLevel: 6 })
    .toBuffer();
}

/**
 * Generates the synthetic data set: `perClass` images for each of the region x {fractured, normal}
 * classes. Image `i` of class `c` depends only on (`seed`, `c`, `i`, `size`), so a larger `perClass`
 * extends a smaller set instead of reshuffling it.
 * @throws MlError `INVALID_ARGUMENT` for invalid options, or when `outDir` is not empty and `force` is not set.
 * @example
 * const { classNames, files } = await generateSyntheticDataset({ outDir: 'data/synth', perClass: 20, size: 128, seed: 42 });
 * // classNames: ['elbow_fractured', 'elbow_normal', ..., 'shoulder_normal'], files: 200
 */
export async function generateSyntheticDataset(options: GenerateSyntheticDatasetOptions): Promise<SyntheticDatasetSummary> {
  const { perClass, size, seed, force = false, onProgress } = options;
  requireInteger('perClass', perClass, 1, MAX_PER_CLASS);
  requireInteger('size', size, MIN_SYNTH_SIZE, MAX_SYNTH_SIZE);
  requireInteger('seed', seed, 0, 0xffffffff);
  const classes = synthClasses(options.regions ?? SYNTH_REGIONS);
  const target = path.resolve(options.outDir);
  const state = await inspectTarget(target);
  if (state === 'full' && !force) {
    throw new MlError('INVALID_ARGUMENT', `outDir ${target} is not empty; pass force to replace it`);
  }

  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });
  const staging = await mkdtemp(path.join(parent, `.${path.basename(target)}.synth-`));
  const total = classes.length * perClass;
  const digits = Math.max(4, String(perClass - 1).length);
  const pending = new Set<Promise<void>>();
  try {
    let done = 0;
    for (const cls of classes) {
      await mkdir(path.join(staging, cls.name));
      for (let i = 0; i < perClass; i++) {
        const { pixels } = renderSyntheticXray({
          region: cls.region,
          fractured: cls.state === 'fractured',
          size,
          seed: deriveSeed(seed, `${cls.name}/${i}`),
        });
        const file = path.join(staging, cls.name, `${cls.name}_${String(i).padStart(digits, '0')}.png`);
        const job: Promise<void> = encodePng(pixels, size)
          .then((png) => writeFile(file, png))
          .then(() => {
            done += 1;
            onProgress?.(done, total);
          })
          .finally(() => pending.delete(job));
        pending.add(job);
        if (pending.size >= IN_FLIGHT) await Promise.race(pending);
      }
    }
    await Promise.all(pending);
  } catch (error) {
    // Let in-flight writes settle so none lands after the clean-up or rejects unobserved.
    await Promise.allSettled(pending);
    await rm(staging, { recursive: true, force: true });
    throw error;
  }

  if (state === 'missing') {
    await rename(staging, target);
  } else {
    // Move the old folder aside first: rename cannot replace a non-empty directory.
    const retired = `${staging}.old`;
    await rename(target, retired);
    await rename(staging, target);
    await rm(retired, { recursive: true, force: true });
  }
  return { classNames: classes.map((c) => c.name), files: total, outDir: target };
}
