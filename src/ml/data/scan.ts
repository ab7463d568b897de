/**
 * Scans a dataset folder into a `DatasetIndex` without decoding pixels: finds the class folders
 * (or `train/ val/ test/` folders holding them), checks every image's signature, completeness and
 * header, hashes its bytes, and counts what it skips and why. A bad file is never fatal; a dataset
 * that cannot train (missing, empty, one class) is a clear `MlError`.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { MlError } from '../errors.ts';
import { fracturePositiveClasses } from '../metrics/fracture-classes.ts';
import { mapWithConcurrency } from './concurrency.ts';
import { hasImageExtension, looksComplete, sniffImageFormat } from './image-format.ts';
import { DEFAULT_LIMIT_INPUT_PIXELS } from './preprocess.ts';
import type { DatasetIndex, DatasetItem, DatasetLayout, SkippedFile, SkipReason, SplitName } from './types.ts';

/** Folder names (compared lower-cased) that mark a split in a `splits` layout. */
export const SPLIT_FOLDER_ALIASES: Readonly<Record<SplitName, readonly string[]>> = {
  train: ['train', 'training'],
  val: ['val', 'valid', 'validation'],
  test: ['test', 'testing'],
};

/** The optional file at the dataset root that overrides the fracture-positive classes. */
export const DATASET_CONFIG_FILE = 'dataset.json';
/** How many skipped files are listed by name in `skipped.files`. */
export const SKIPPED_FILES_LISTED = 50;

/** A required minimum image size: a number for a square input, or width and height. */
export type MinImageSize = number | { readonly width: number; readonly height: number };

export interface ScanOptions {
  /**
   * Fail with IMAGE_TOO_SMALL when any image is smaller than this (the model input), see
   * `assertMinImageSize`. Default: no check.
   */
  readonly minSize?: MinImageSize;
  /** Images with more pixels are skipped (`too-many-pixels`). Default `DEFAULT_LIMIT_INPUT_PIXELS`. */
  readonly limitInputPixels?: number;
  /** Files larger than this many bytes are skipped (`unreadable`) without being read. Default 256 MiB. */
  readonly maxFileBytes?: number;
  /**
   * `header` (default): signature, end marker and sharp header; fast (no pixel decode).
   * `decode`: also decode every image (at reduced scale) so corrupt entropy data is caught at scan time.
   */
  readonly verify?: 'header' | 'decode';
  /** Files inspected at once. Default 4. */
  readonly concurrency?: number;
}

interface Candidate {
  readonly abs: string;
  readonly rel: string;
  readonly className: string;
  readonly split?: SplitName;
}

type Inspection =
  | { readonly ok: true; readonly width: number; readonly height: number; readonly bytes: number; readonly sha256: string }
  | { readonly ok: false; readonly reason: SkipReason; readonly detail?: string };

/**
 * Scans `dir` into a `DatasetIndex`.
 *
 * Layout: when the root's folders are split names (`train`, and optionally `val`/`valid`/`validation`
 * and `test`), each holds class folders and items get `presetSplit`; otherwise every folder is a
 * class. Files inside a class folder's subfolders belong to that class. Hidden entries (`.name`) are
 * ignored; symbolic links are skipped and never followed.
 * @param dir dataset folder
 * @throws MlError DATASET_NOT_FOUND (missing or not a folder), DATASET_EMPTY (no usable image),
 *   DATASET_SINGLE_CLASS (fewer than two classes with images), INVALID_ARGUMENT (mixed layout, bad
 *   `dataset.json`), IMAGE_TOO_SMALL (with `minSize`)
 * @example
 * const index = await scanDataset('data/datasets/xray', { minSize: 224 });
 * console.log(index.classNames, index.counts, index.skipped.byReason, index.hash);
 */
export async function scanDataset(dir: string, options: ScanOptions = {}): Promise<DatasetIndex> {
  const root = path.resolve(dir);
  const rootStat = await stat(root).catch(() => undefined);
  if (!rootStat?.isDirectory()) {
    throw new MlError('DATASET_NOT_FOUND', `dataset folder not found: ${root}`);
  }

  const skipped: SkippedFile[] = [];
  const candidates: Candidate[] = [];
  const classFolders = new Set<string>();
  const layout = await collectCandidates(root, candidates, skipped, classFolders);

  const limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;
  const maxFileBytes = options.maxFileBytes ?? 256 * 1024 * 1024;
  const verify = options.verify ?? 'header';
  const inspections = await mapWithConcurrency(candidates, options.concurrency ?? 4, (c) =>
    inspectImage(c.abs, { limitInputPixels, maxFileBytes, verify }),
  );

  const usable: Array<{ candidate: Candidate; info: Extract<Inspection, { ok: true }> }> = [];
  candidates.forEach((candidate, i) => {
    const info = inspections[i] as Inspection;
    if (info.ok) usable.push({ candidate, info });
    else skipped.push({ path: candidate.rel, reason: info.reason, ...(info.detail ? { detail: info.detail } : {}) });
  });

  const classNames = [...new Set(usable.map((u) => u.candidate.className))].sort(compareCodePoints);
  const emptyClasses = [...classFolders].filter((name) => !classNames.includes(name)).sort(compareCodePoints);
  const skippedSummary = summariseSkipped(skipped);

  if (usable.length === 0) {
    throw new MlError('DATASET_EMPTY', `no usable JPEG or PNG images in ${root}${describeSkipped(skippedSummary)}`);
  }
  if (classNames.length < 2) {
    throw new MlError(
      'DATASET_SINGLE_CLASS',
      `a classifier needs at least two classes with images; ${root} has only ${JSON.stringify(classNames[0])}` +
        (emptyClasses.length > 0 ? ` (no usable images in ${emptyClasses.map((c) => JSON.stringify(c)).join(', ')})` : ''),
    );
  }

  const labelOf = new Map(classNames.map((name, i) => [name, i]));
  const items: DatasetItem[] = usable
    .map(({ candidate, info }) => ({
      path: candidate.rel,
      label: labelOf.get(candidate.className) as number,
      ...(candidate.split ? { presetSplit: candidate.split } : {}),
      width: info.width,
      height: info.height,
      bytes: info.bytes,
      sha256: info.sha256,
    }))
    .sort((a, b) => compareCodePoints(a.path, b.path));

  const counts = classNames.map(() => 0);
  for (const item of items) counts[item.label] = (counts[item.label] as number) + 1;

  const override = await readPositiveClassOverride(root);
  const index: DatasetIndex = {
    root,
    layout,
    classNames,
    positiveClasses: fracturePositiveClasses(classNames, override),
    positiveClassesSource: override === undefined ? 'name-rule' : 'dataset.json',
    emptyClasses,
    items,
    counts,
    skipped: skippedSummary,
    hash: datasetHash(items),
  };
  if (options.minSize !== undefined) assertMinImageSize(index, options.minSize);
  return index;
}

/**
 * Fails when any image is smaller than the model input in either dimension (after EXIF orientation),
 * because upscaling a small radiograph invents detail the model would learn from.
 * @param minSize the input size: a number for a square input, or `{ width, height }` in pixels
 * @throws MlError IMAGE_TOO_SMALL naming how many images, the smallest size and a few paths
 */
export function assertMinImageSize(index: Pick<DatasetIndex, 'items'>, minSize: MinImageSize): void {
  const { width: minWidth, height: minHeight } = typeof minSize === 'number' ? { width: minSize, height: minSize } : minSize;
  const small = index.items.filter((item) => item.width < minWidth || item.height < minHeight);
  if (small.length === 0) return;
  const smallest = small.reduce((a, b) => (b.width * b.height < a.width * a.height ? b : a));
  const examples = small.slice(0, 5).map((item) => `${item.path} (${item.width}x${item.height})`);
  throw new MlError(
    'IMAGE_TOO_SMALL',
    `${small.length} of ${index.items.length} images are smaller than the ${minWidth}x${minHeight} input; ` +
      `the smallest is ${smallest.width}x${smallest.height} (${smallest.path}); e.g. ${examples.join(', ')}` +
      (small.length > examples.length ? `, and ${small.length - examples.length} more` : ''),
  );
}

/** sha256 over each item's relative path and content hash, in path order. */
export function datasetHash(items: readonly Pick<DatasetItem, 'path' | 'sha256'>[]): string {
  const hash = createHash('sha256');
  const sorted = [...items].sort((a, b) => compareCodePoints(a.path, b.path));
  for (const item of sorted) hash.update(`${item.path}\0${item.sha256}\n`);
  return hash.digest('hex');
}

/** Python's `sorted()` order for strings (code points), which Keras uses for class names. */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const ca = [...a];
  const cb = [...b];
  for (let i = 0; i < Math.min(ca.length, cb.length); i++) {
    const d = (ca[i] as string).codePointAt(0)! - (cb[i] as string).codePointAt(0)!;
    if (d !== 0) return d;
  }
  return ca.length - cb.length;
}

function splitOfFolder(name: string): SplitName | undefined {
  const lower = name.toLowerCase();
  for (const [split, aliases] of Object.entries(SPLIT_FOLDER_ALIASES) as Array<[SplitName, readonly string[]]>) {
    if (aliases.includes(lower)) return split;
  }
  return undefined;
}

const isHidden = (entry: Dirent): boolean => entry.name.startsWith('.');

async function listDir(abs: string): Promise<Dirent[]> {
  const entries = await readdir(abs, { withFileTypes: true });
  return entries.filter((e) => !isHidden(e)).sort((a, b) => compareCodePoints(a.name, b.name));
}

/** Finds the layout and every file that might be an image; records files outside class folders. */
async function collectCandidates(
  root: string,
  candidates: Candidate[],
  skipped: SkippedFile[],
  classFolders: Set<string>,
): Promise<DatasetLayout> {
  const entries = await listDir(root);
  const dirs = entries.filter((e) => e.isDirectory());
  for (const e of entries) {
    if (e.isDirectory() || e.name === DATASET_CONFIG_FILE) continue;
    skipped.push({ path: e.name, reason: e.isFile() ? 'not-in-class-folder' : 'not-a-regular-file' });
  }

  const splitDirs = dirs.filter((d) => splitOfFolder(d.name) !== undefined);
  if (splitDirs.length === 0) {
    for (const d of dirs) {
      classFolders.add(d.name);
      await walkClassFolder(path.join(root, d.name), d.name, d.name, undefined, candidates, skipped);
    }
    return 'classes';
  }

  if (splitDirs.length !== dirs.length) {
    const others = dirs.filter((d) => splitOfFolder(d.name) === undefined).map((d) => d.name);
    throw new MlError(
      'INVALID_ARGUMENT',
      `dataset ${root} mixes split folders (${splitDirs.map((d) => d.name).join(', ')}) with other folders ` +
        `(${others.join(', ')}); use either one folder per class or train/ val/ test/ folders each holding class folders`,
    );
  }
  const seen = new Map<SplitName, string>();
  for (const d of splitDirs) {
    const split = splitOfFolder(d.name) as SplitName;
    const previous = seen.get(split);
    if (previous !== undefined) {
      throw new MlError('INVALID_ARGUMENT', `dataset ${root} has two folders for the ${split} split: ${previous}/ and ${d.name}/`);
    }
    seen.set(split, d.name);
  }
  if (!seen.has('train')) {
    throw new MlError('INVALID_ARGUMENT', `dataset ${root} has split folders (${splitDirs.map((d) => d.name).join(', ')}) but no train/ folder`);
  }
  for (const d of splitDirs) {
    const split = splitOfFolder(d.name) as SplitName;
    const splitAbs = path.join(root, d.name);
    for (const e of await listDir(splitAbs)) {
      const rel = `${d.name}/${e.name}`;
      if (e.isDirectory()) {
        classFolders.add(e.name);
        await walkClassFolder(path.join(splitAbs, e.name), rel, e.name, split, candidates, skipped);
      } else {
        skipped.push({ path: rel, reason: e.isFile() ? 'not-in-class-folder' : 'not-a-regular-file' });
      }
    }
  }
  return 'splits';
}

async function walkClassFolder(
  abs: string,
  rel: string,
  className: string,
  split: SplitName | undefined,
  candidates: Candidate[],
  skipped: SkippedFile[],
): Promise<void> {
  let entries: Dirent[];
  try {
    entries = await listDir(abs);
  } catch (error) {
    skipped.push({ path: rel, reason: 'unreadable', detail: (error as Error).message });
    return;
  }
  for (const e of entries) {
    const childAbs = path.join(abs, e.name);
    const childRel = `${rel}/${e.name}`;
    if (e.isDirectory()) await walkClassFolder(childAbs, childRel, className, split, candidates, skipped);
    else if (e.isFile()) candidates.push({ abs: childAbs, rel: childRel, className, ...(split ? { split } : {}) });
    else skipped.push({ path: childRel, reason: 'not-a-regular-file' });
  }
}

/** Everything about one file that can be learned without decoding its pixels (unless `verify: 'decode'`). */
async function inspectImage(
  abs: string,
  limits: { limitInputPixels: number; maxFileBytes: number; verify: 'header' | 'decode' },
): Promise<Inspection> {
  if (!hasImageExtension(abs)) return { ok: false, reason: 'unsupported-extension' };
  let bytes: Buffer;
  try {
    const { size } = await stat(abs);
    if (size > limits.maxFileBytes) return { ok: false, reason: 'unreadable', detail: `file is ${size} bytes, over the ${limits.maxFileBytes}-byte limit` };
    bytes = await readFile(abs);
  } catch (error) {
    return { ok: false, reason: 'unreadable', detail: (error as Error).message };
  }
  if (bytes.length === 0) return { ok: false, reason: 'empty-file' };
  const format = sniffImageFormat(bytes);
  if (format === undefined) return { ok: false, reason: 'signature-mismatch' };
  if (!looksComplete(bytes, format)) return { ok: false, reason: 'truncated' };

  let width: number;
  let height: number;
  try {
    const meta = await sharp(bytes, { limitInputPixels: false }).metadata();
    if (meta.format !== format) return { ok: false, reason: 'signature-mismatch', detail: `decoder reports ${meta.format}` };
    if (meta.width * meta.height > limits.limitInputPixels) {
      return { ok: false, reason: 'too-many-pixels', detail: `${meta.width}x${meta.height} exceeds ${limits.limitInputPixels} pixels` };
    }
    width = meta.autoOrient?.width ?? meta.width;
    height = meta.autoOrient?.height ?? meta.height;
    if (limits.verify === 'decode') {
      // Shrink-on-load keeps this cheap, yet every byte of entropy-coded data is still parsed.
      await sharp(bytes, { failOn: 'error', limitInputPixels: limits.limitInputPixels })
        .resize(64, 64, { fit: 'inside' })
        .raw()
        .toBuffer();
    }
  } catch (error) {
    return { ok: false, reason: 'undecodable', detail: (error as Error).message };
  }
  return { ok: true, width, height, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

function summariseSkipped(skipped: readonly SkippedFile[]): DatasetIndex['skipped'] {
  const byReason: Partial<Record<SkipReason, number>> = {};
  for (const s of skipped) byReason[s.reason] = (byReason[s.reason] ?? 0) + 1;
  const files = [...skipped].sort((a, b) => compareCodePoints(a.path, b.path)).slice(0, SKIPPED_FILES_LISTED);
  return { count: skipped.length, byReason, files };
}

function describeSkipped(summary: DatasetIndex['skipped']): string {
  if (summary.count === 0) return '';
  const reasons = Object.entries(summary.byReason).map(([reason, n]) => `${n} ${reason}`);
  return ` (${summary.count} files skipped: ${reasons.join(', ')})`;
}

/** `positiveClasses` from `dataset.json`, or undefined when the file or the field is absent. */
async function readPositiveClassOverride(root: string): Promise<string[] | undefined> {
  const file = path.join(root, DATASET_CONFIG_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MlError('INVALID_ARGUMENT', `cannot read ${DATASET_CONFIG_FILE}: ${(error as Error).message}`, { cause: error });
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch (error) {
    throw new MlError('INVALID_ARGUMENT', `${DATASET_CONFIG_FILE} is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new MlError('INVALID_ARGUMENT', `${DATASET_CONFIG_FILE} must hold a JSON object`);
  }
  const positive = (config as { positiveClasses?: unknown }).positiveClasses;
  if (positive === undefined) return undefined;
  if (!Array.isArray(positive) || !positive.every((p): p is string => typeof p === 'string')) {
    throw new MlError('INVALID_ARGUMENT', `${DATASET_CONFIG_FILE}: positiveClasses must be an array of class names`);
  }
  return positive;
}
