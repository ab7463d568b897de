/**
 * The cheap look at a dataset folder: walk it without opening an image, count image files per class,
 * apply the fracture-class rule (or `dataset.json`), and note what would stop training. The same
 * walk, with every file's size and mtime, is the fingerprint that keys the cache of the expensive
 * findings. Layout rules mirror `scanDataset` (src/ml/data/scan.ts): hidden entries are ignored,
 * symbolic links are never followed, files below a class folder belong to that class.
 * @module
 */
import { createHash } from 'node:crypto';
import type { Dirent, Stats } from 'node:fs';
import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { hasImageExtension } from '../../ml/data/image-format.ts';
import { DATASET_CONFIG_FILE, SPLIT_FOLDER_ALIASES } from '../../ml/data/scan.ts';
import type { SplitName } from '../../ml/data/types.ts';
import { isMlError } from '../../ml/errors.ts';
import { fracturePositiveClasses } from '../../ml/metrics/fracture-classes.ts';
import type { DatasetClassView, DatasetProblemView, DatasetSplitCountsView, DatasetSummaryView } from './dataset.types.ts';
import { compareCodePoints } from '../../ml/data/scan.ts';

/** One entry below a dataset folder. */
export interface FolderEntry {
  /** Path relative to the dataset folder, `/`-separated. */
  readonly rel: string;
  readonly kind: 'file' | 'dir' | 'other';
  /** Bytes (files, when stat'ed; otherwise -1). */
  readonly size: number;
  /** Modification time in ms (folders always; files when stat'ed; otherwise -1). */
  readonly mtimeMs: number;
}

/** A dataset folder as walked. */
export interface FolderListing {
  readonly root: string;
  readonly rootStat: Stats;
  /** Every non-hidden entry, sorted by `rel`. */
  readonly entries: readonly FolderEntry[];
}

/** The fixed problem sentences (they never name files). */
export const PROBLEM_DETAIL: Readonly<Record<DatasetProblemView['code'], string>> = {
  empty: 'the dataset has no JPEG or PNG images in class folders',
  'single-class': 'a classifier needs at least two class folders with images; this dataset has one',
  'invalid-layout':
    'use either one folder per class, or train/ val/ test/ folders (val and test optional) each holding class folders, not both',
  'invalid-config': 'dataset.json must be a JSON object whose positiveClasses lists class folder names',
};

/** A problem view with its fixed sentence. */
export function problem(code: DatasetProblemView['code']): DatasetProblemView {
  return { code, detail: PROBLEM_DETAIL[code] };
}

const LSTAT_BATCH = 64;

/**
 * Walks `root` (hidden entries skipped, links not followed).
 * @param statFiles also lstat every file for its size and mtime (one system call per file)
 * @throws the `stat` error of `root` (ENOENT when it does not exist)
 */
export async function walkDatasetFolder(root: string, options: { statFiles: boolean }): Promise<FolderListing> {
  const rootStat = await stat(root);
  const entries: FolderEntry[] = [];
  const pending: string[] = [''];
  while (pending.length > 0) {
    const relDir = pending.pop() as string;
    let children: Dirent[];
    try {
      children = await readdir(path.join(root, relDir), { withFileTypes: true });
    } catch (error) {
      // A folder removed or made unreadable mid-walk: what remains is still a fair summary.
      if (relDir !== '') continue;
      throw error;
    }
    const visible = children.filter((c) => !c.name.startsWith('.'));
    for (let i = 0; i < visible.length; i += LSTAT_BATCH) {
      const batch = visible.slice(i, i + LSTAT_BATCH);
      const described = await Promise.all(batch.map((child) => describe(root, relDir, child, options.statFiles)));
      for (const entry of described) {
        if (entry === undefined) continue;
        entries.push(entry);
        if (entry.kind === 'dir') pending.push(entry.rel);
      }
    }
  }
  entries.sort((a, b) => compareCodePoints(a.rel, b.rel));
  return { root, rootStat, entries };
}

async function describe(root: string, relDir: string, child: Dirent, statFiles: boolean): Promise<FolderEntry | undefined> {
  const rel = relDir === '' ? child.name : `${relDir}/${child.name}`;
  const kind = child.isDirectory() ? 'dir' : child.isFile() ? 'file' : 'other';
  if (kind === 'other' || (kind === 'file' && !statFiles)) return { rel, kind, size: -1, mtimeMs: -1 };
  try {
    const s = await lstat(path.join(root, rel));
    return { rel, kind, size: kind === 'file' ? s.size : -1, mtimeMs: s.mtimeMs };
  } catch {
    return undefined; // removed mid-walk
  }
}

/**
 * A fingerprint of what the expensive scan depends on: every path, kind, size and mtime, and the
 * scan settings. Adding, removing, renaming or rewriting any file changes it.
 * @param salt settings that change the scan's result (e.g. the pixel limit and a format version)
 */
export function folderFingerprint(listing: FolderListing, salt: string): string {
  const hash = createHash('sha256').update(`${salt}\n${listing.rootStat.mtimeMs}\n`);
  for (const e of listing.entries) hash.update(`${e.kind}\0${e.rel}\0${e.size}\0${e.mtimeMs}\n`);
  return hash.digest('hex');
}

/** `positiveClasses` of the dataset's `dataset.json`: absent, a list, or invalid. */
export type ConfigOverride = { readonly kind: 'none' } | { readonly kind: 'list'; readonly classes: string[] } | { readonly kind: 'invalid' };

/** Reads the optional `dataset.json` at the dataset root (same rules as the ML engine's scan). */
export async function readConfigOverride(root: string): Promise<ConfigOverride> {
  let text: string;
  try {
    text = await readFile(path.join(root, DATASET_CONFIG_FILE), 'utf8');
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ENOENT' ? { kind: 'none' } : { kind: 'invalid' };
  }
  let config: unknown;
  try {
    config = JSON.parse(text);
  } catch {
    return { kind: 'invalid' };
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) return { kind: 'invalid' };
  const positive = (config as { positiveClasses?: unknown }).positiveClasses;
  if (positive === undefined) return { kind: 'none' };
  if (!Array.isArray(positive) || !positive.every((p): p is string => typeof p === 'string')) return { kind: 'invalid' };
  return { kind: 'list', classes: positive };
}

/**
 * The summary view of a walked dataset folder. Pure: the caller walks and reads `dataset.json`.
 * @param id the dataset id (folder name)
 */
export function summariseListing(id: string, listing: FolderListing, config: ConfigOverride): DatasetSummaryView {
  const topDirs = listing.entries.filter((e) => e.kind === 'dir' && !e.rel.includes('/')).map((e) => e.rel);
  const splitDirs = topDirs.filter((name) => splitOfFolder(name) !== undefined);
  const splitNames = splitDirs.map((name) => splitOfFolder(name) as SplitName);
  const layout = splitDirs.length > 0 ? 'splits' : 'classes';
  const layoutInvalid =
    splitDirs.length > 0 && (splitDirs.length !== topDirs.length || new Set(splitNames).size !== splitNames.length || !splitNames.includes('train'));

  const counts = new Map<string, number>();
  const splitCounts: DatasetSplitCountsView = { train: 0, val: 0, test: 0 };
  if (!layoutInvalid) {
    for (const e of listing.entries) {
      if (e.kind !== 'file' || !hasImageExtension(e.rel)) continue;
      const segments = e.rel.split('/');
      const classDepth = layout === 'splits' ? 1 : 0;
      if (segments.length < classDepth + 2) continue; // not inside a class folder
      const className = segments[classDepth] as string;
      counts.set(className, (counts.get(className) ?? 0) + 1);
      if (layout === 'splits') splitCounts[splitOfFolder(segments[0] as string) as SplitName]++;
    }
  }
  const classNames = [...counts.keys()].sort(compareCodePoints);

  let positiveClasses: string[];
  let positiveClassesSource: DatasetSummaryView['positiveClassesSource'] = 'name-rule';
  let configInvalid = config.kind === 'invalid';
  if (config.kind === 'list') {
    try {
      positiveClasses = fracturePositiveClasses(classNames, config.classes);
      positiveClassesSource = 'dataset.json';
    } catch (error) {
      if (!isMlError(error, 'INVALID_ARGUMENT')) throw error;
      configInvalid = true;
      positiveClasses = fracturePositiveClasses(classNames);
    }
  } else {
    positiveClasses = fracturePositiveClasses(classNames);
  }
  // A layout error hides the classes, so the override cannot be judged against them.
  if (layoutInvalid) configInvalid = false;

  const positive = new Set(positiveClasses);
  const classes: DatasetClassView[] = classNames.map((name) => ({ name, count: counts.get(name) as number, positive: positive.has(name) }));
  const imageCount = classes.reduce((sum, c) => sum + c.count, 0);
  const found: DatasetProblemView | null = layoutInvalid
    ? problem('invalid-layout')
    : configInvalid
      ? problem('invalid-config')
      : imageCount === 0
        ? problem('empty')
        : classes.length < 2
          ? problem('single-class')
          : null;

  const folderTimes = [listing.rootStat.mtimeMs, ...listing.entries.filter((e) => e.kind === 'dir').map((e) => e.mtimeMs)];
  const birth = listing.rootStat.birthtimeMs > 0 ? listing.rootStat.birthtimeMs : listing.rootStat.ctimeMs;
  return {
    id,
    layout,
    classes,
    imageCount,
    positiveClasses,
    positiveClassesSource,
    splits: layout === 'splits' ? splitCounts : null,
    problem: found,
    createdAt: new Date(birth).toISOString(),
    modifiedAt: new Date(Math.max(...folderTimes)).toISOString(),
  };
}

/** Walks, reads `dataset.json` and summarises one dataset folder. */
export async function summariseDataset(id: string, root: string): Promise<DatasetSummaryView> {
  const [listing, config] = await Promise.all([walkDatasetFolder(root, { statFiles: false }), readConfigOverride(root)]);
  return summariseListing(id, listing, config);
}

function splitOfFolder(name: string): SplitName | undefined {
  const lower = name.toLowerCase();
  for (const [split, aliases] of Object.entries(SPLIT_FOLDER_ALIASES) as Array<[SplitName, readonly string[]]>) {
    if (aliases.includes(lower)) return split;
  }
  return undefined;
}

export { compareCodePoints };
