/**
 * Safe extraction of an uploaded dataset zip (DESIGN section 7: path, link, count, size and ratio
 * checks). yauzl reads the archive; this module decides what may come out of it.
 *
 * Two passes over the central directory. The first only reads metadata and rejects the archive
 * before a byte is inflated: unsafe names, links and other non-regular files, encryption, too many
 * entries, declared sizes and ratios over the limits, overlapping entries (the "better zip bomb"
 * trick). The second inflates the kept entries into a fresh temp dir beside the destination while
 * counting the bytes that actually come out: an entry may not yield more than its header declares
 * (so the first pass's size and ratio checks bind the real data too), the total may not pass
 * `maxBytes`, and the CRC-32 must match. Only at the end is the temp dir renamed into place; on any
 * failure it is deleted, so a rejected archive leaves nothing behind.
 *
 * Errors never repeat entry names (they come from the client): an `ARCHIVE_UNSAFE` error names the
 * rule and the entry's position in the central directory, also as `rule` and `entryIndex` members
 * of the problem document.
 * @module
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32 } from 'node:zlib';
import yauzl from 'yauzl';
import type { Entry, ZipFile } from 'yauzl';
import { AppError } from '../../infra/errors.ts';
import { pathExists } from '../../infra/fs.ts';
import { hasImageExtension } from '../../ml/data/image-format.ts';
import { DATASET_CONFIG_FILE, SPLIT_FOLDER_ALIASES } from '../../ml/data/scan.ts';

/** Limits of one archive; the service takes them from `DATASET_MAX_*` settings. */
export interface ZipLimits {
  /** Most entries (files, folders and ignored entries alike) the central directory may list. */
  readonly maxEntries: number;
  /** Most bytes the extracted files may hold together, declared and as actually inflated. */
  readonly maxBytes: number;
  /**
   * Largest uncompressed:compressed ratio, per extracted entry and for the extracted total against
   * the archive's file size. Applies only above {@link RATIO_MIN_BYTES}, since tiny files compress
   * by large ratios innocently; JPEG and PNG data hardly compresses at all.
   */
  readonly maxRatio: number;
}

/** Optional steps of {@link extractZipSafely}. */
export interface ExtractOptions {
  /**
   * Runs on the temp dir after every file is written and before it is renamed into place; a throw
   * rejects the archive like a broken rule (the temp dir is deleted). The service checks for class
   * folders with images here, so an unusable dataset is never visible, not even briefly.
   */
  readonly verify?: (tempDir: string) => Promise<void>;
}

/** What an extraction did. */
export interface ExtractResult {
  /** Entries the central directory lists. */
  readonly entries: number;
  /** Files written (images and `dataset.json`). */
  readonly files: number;
  /** Bytes written, counted as they were inflated. */
  readonly bytes: number;
  /** Entries not written: folders, `__MACOSX/`, dot-files, files that are not images. */
  readonly ignored: number;
  /** True when every image sat in one top folder (`xrays/<class>/...`) that was removed. */
  readonly unwrapped: boolean;
}

/** The rules an archive can break; `rule` in an `ARCHIVE_UNSAFE` problem document is one of these. */
export const ARCHIVE_RULES = [
  'empty-name',
  'control-character',
  'backslash',
  'drive-letter',
  'absolute-path',
  'path-traversal',
  'name-too-long',
  'not-a-regular-file',
  'encrypted',
  'too-many-entries',
  'too-large',
  'compression-ratio',
  'overlapping-entries',
  'size-mismatch',
  'duplicate-entry',
  'path-conflict',
] as const;
export type ArchiveRule = (typeof ARCHIVE_RULES)[number];

const RULE_TEXT: Readonly<Record<ArchiveRule, string>> = {
  'empty-name': 'an empty name',
  'control-character': 'a NUL or other control character in its name',
  backslash: 'a backslash in its name',
  'drive-letter': 'a drive letter in its name',
  'absolute-path': 'an absolute path',
  'path-traversal': 'a ".." path segment',
  'name-too-long': 'a name longer than 1024 bytes, a segment longer than 255 bytes or more than 32 levels',
  'not-a-regular-file': 'a symbolic link or other file that is neither a regular file nor a folder',
  encrypted: 'encryption, which is not supported',
  'too-many-entries': 'more entries than allowed',
  'too-large': 'more uncompressed bytes than allowed',
  'compression-ratio': 'a compression ratio above the limit (a zip bomb)',
  'overlapping-entries': 'data that overlaps another entry (a zip bomb)',
  'size-mismatch': 'more data than its header declares',
  'duplicate-entry': 'the same path as an earlier entry',
  'path-conflict': 'a path that clashes with another entry (a file where a folder must be)',
};

/** Ratios are only checked above this many uncompressed bytes (1 MiB). */
export const RATIO_MIN_BYTES = 1024 * 1024;
/** `dataset.json` holds a few class names; a larger one is refused rather than read into memory. */
export const MAX_CONFIG_BYTES = 64 * 1024;
const MAX_NAME_BYTES = 1024;
const MAX_SEGMENT_BYTES = 255;
const MAX_DEPTH = 32;
/** Prefix of the temp dir beside the destination; the dot keeps it out of dataset listings. */
export const EXTRACT_TEMP_PREFIX = '.extract-';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const DOS_DIRECTORY = 0x10;
const DOS_REPARSE_POINT = 0x400;
/** Fixed part of a local file header: the least that precedes an entry's data. */
const LOCAL_HEADER_FIXED_BYTES = 30;

/** A kept entry and where it goes. */
interface Planned {
  readonly entry: Entry;
  readonly index: number;
  /** Path segments as archived (top folder not yet removed). */
  readonly segments: readonly string[];
  readonly isConfig: boolean;
}

/**
 * Extracts the images (`.jpg`, `.jpeg`, `.png`) and the root `dataset.json` of `zipFile` into
 * `destDir`, which must not exist yet. Folders, `__MACOSX/`, dot-files and other files are checked
 * like every entry but not written. When every image sits in one top folder that is not a split
 * folder (`xrays/<class>/<file>`), that folder is removed, so `destDir` holds the class folders.
 * @param zipFile path of the archive (a regular file: the zip format needs random access)
 * @param destDir folder to create; its parent is created when missing
 * @param limits entry count, byte and ratio limits
 * @throws AppError ARCHIVE_INVALID (not a zip, truncated, damaged data, unsupported compression),
 *   ARCHIVE_UNSAFE (a rule of {@link ARCHIVE_RULES}), DATASET_EXISTS (`destDir` exists),
 *   INSUFFICIENT_STORAGE (disk full); whatever `options.verify` throws
 * @example
 * await extractZipSafely('/data/uploads/u1.zip', '/data/datasets/xray',
 *   { maxEntries: 200_000, maxBytes: 8 * 2 ** 30, maxRatio: 100 });
 */
export async function extractZipSafely(
  zipFile: string,
  destDir: string,
  limits: ZipLimits,
  options: ExtractOptions = {},
): Promise<ExtractResult> {
  assertLimits(limits);
  const dest = path.resolve(destDir);
  const parent = path.dirname(dest);
  await mkdir(parent, { recursive: true });
  if (await pathExists(dest)) throw new AppError('DATASET_EXISTS', 'the destination folder already exists');

  const archiveBytes = (await stat(zipFile)).size;
  const zip = await openZip(zipFile);
  let tempDir: string | undefined;
  try {
    if (zip.entryCount > limits.maxEntries) {
      throw new AppError(
        'ARCHIVE_UNSAFE',
        `the archive lists ${zip.entryCount} entries; at most ${limits.maxEntries} are allowed (rule too-many-entries)`,
        { extensions: { rule: 'too-many-entries' } },
      );
    }
    const plan = await planExtraction(zip, limits, archiveBytes);

    tempDir = await mkdtemp(path.join(parent, EXTRACT_TEMP_PREFIX));
    const bytes = await writeEntries(zip, plan.files, tempDir, limits);
    await options.verify?.(tempDir);
    try {
      await rename(tempDir, dest);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') throw new AppError('DATASET_EXISTS', 'the destination folder already exists', { cause: error });
      throw error;
    }
    tempDir = undefined;
    return { entries: zip.entryCount, files: plan.files.length, bytes, ignored: plan.ignored, unwrapped: plan.unwrapped };
  } catch (error) {
    throw asStorageError(error);
  } finally {
    zip.close();
    if (tempDir !== undefined) await rm(tempDir, { recursive: true, force: true });
  }
}

/** Where each kept entry goes, after every metadata check. */
interface Plan {
  readonly files: ReadonlyArray<{ readonly entry: Entry; readonly index: number; readonly target: readonly string[] }>;
  readonly ignored: number;
  readonly unwrapped: boolean;
}

/** First pass: metadata only; throws on the first broken rule. */
async function planExtraction(zip: ZipFile, limits: ZipLimits, archiveBytes: number): Promise<Plan> {
  const kept: Planned[] = [];
  let ignored = 0;
  let declaredBytes = 0;
  let index = 0;
  try {
    for await (const entry of zip.eachEntry()) {
      const segments = checkEntry(entry, index);
      const isDirectory = entryName(entry).endsWith('/');
      const last = segments[segments.length - 1];
      const hidden = segments.some((s) => s.startsWith('.')) || segments[0] === '__MACOSX';
      const isConfig = last === DATASET_CONFIG_FILE && segments.length <= 2;
      if (isDirectory || hidden || last === undefined || !(isConfig || hasImageExtension(last))) {
        ignored++;
      } else {
        if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
          throw new AppError(
            'ARCHIVE_INVALID',
            `archive entry ${index} uses compression method ${entry.compressionMethod}; only stored (0) and deflate (8) entries can be extracted`,
          );
        }
        declaredBytes += entry.uncompressedSize;
        if (declaredBytes > limits.maxBytes || (isConfig && entry.uncompressedSize > MAX_CONFIG_BYTES)) throw unsafe('too-large', index);
        if (ratioExceeded(entry.uncompressedSize, entry.compressedSize, limits.maxRatio)) throw unsafe('compression-ratio', index);
        kept.push({ entry, index, segments, isConfig });
      }
      index++;
    }
  } catch (error) {
    if (error instanceof AppError) throw error;
    // yauzl refuses "strong encryption" (general purpose bit 6) before it hands out the entry.
    if (/strong encryption/i.test((error as Error).message)) throw unsafe('encrypted', index);
    throw new AppError('ARCHIVE_INVALID', `the archive's central directory is damaged at entry ${index}`, { cause: error });
  }
  if (ratioExceeded(declaredBytes, archiveBytes, limits.maxRatio)) throw unsafe('compression-ratio');
  checkOverlaps(kept);

  // One top folder above the class folders (`xrays/<class>/<file>`) is removed; a split folder is not.
  const images = kept.filter((p) => !p.isConfig);
  const tops = new Set(images.map((p) => p.segments[0]));
  const top = tops.size === 1 ? [...tops][0] : undefined;
  const unwrapped = top !== undefined && !isSplitFolder(top) && images.every((p) => p.segments.length >= 3);

  const files: Array<Plan['files'][number]> = [];
  const targets = new Set<string>();
  for (const p of kept) {
    const target = unwrapped && p.segments[0] === top && p.segments.length > 1 ? p.segments.slice(1) : p.segments;
    if (p.isConfig && target.length !== 1) {
      ignored++;
      continue;
    }
    const key = target.join('/');
    if (targets.has(key)) throw unsafe('duplicate-entry', p.index);
    targets.add(key);
    files.push({ entry: p.entry, index: p.index, target });
  }
  return { files, ignored, unwrapped };
}

/** Second pass: inflates each planned file into `root`, counting real bytes; returns the total. */
async function writeEntries(zip: ZipFile, files: Plan['files'], root: string, limits: ZipLimits): Promise<number> {
  const budget = { bytes: 0 };
  for (const { entry, index, target } of files) {
    const file = path.join(root, ...target);
    // The names passed checkEntry, so this cannot fail; it guards against a future change that breaks that.
    if (!file.startsWith(root + path.sep)) throw unsafe('path-traversal', index);
    try {
      await mkdir(path.dirname(file), { recursive: true });
      const data = await zip.openReadStreamPromise(entry);
      await pipeline(data, new EntryGuard(entry, index, budget, limits), createWriteStream(file, { flags: 'wx', mode: 0o644 }));
    } catch (error) {
      throw entryWriteError(error, index);
    }
  }
  return budget.bytes;
}

/**
 * Passes an entry's inflated bytes through while counting them: no more than the header declares,
 * no more than the archive's byte budget, and a matching CRC-32 at the end.
 */
class EntryGuard extends Transform {
  #bytes = 0;
  #crc = 0;

  constructor(
    private readonly entry: Entry,
    private readonly index: number,
    private readonly budget: { bytes: number },
    private readonly limits: ZipLimits,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#bytes += chunk.length;
    this.budget.bytes += chunk.length;
    if (this.budget.bytes > this.limits.maxBytes) return callback(unsafe('too-large', this.index));
    if (this.#bytes > this.entry.uncompressedSize) return callback(unsafe('size-mismatch', this.index));
    this.#crc = crc32(chunk, this.#crc);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    if (this.#bytes !== this.entry.uncompressedSize) {
      return callback(new AppError('ARCHIVE_INVALID', `archive entry ${this.index} holds less data than its header declares`));
    }
    if (this.#crc >>> 0 !== this.entry.crc32 >>> 0) {
      return callback(new AppError('ARCHIVE_INVALID', `archive entry ${this.index} is damaged (CRC-32 mismatch)`));
    }
    callback();
  }
}

/** Checks one entry's name, type and encryption; returns its path segments. */
function checkEntry(entry: Entry, index: number): string[] {
  const name = entryName(entry);
  const rule = nameRule(name);
  if (rule !== undefined) throw unsafe(rule, index);
  if (!isRegularOrDirectory(entry, name.endsWith('/'))) throw unsafe('not-a-regular-file', index);
  if (entry.isEncrypted()) throw unsafe('encrypted', index);
  return name.split('/').filter((s) => s !== '' && s !== '.');
}

/** The decoded name (UTF-8 or CP437 per the spec, or the Info-ZIP Unicode path), backslashes kept. */
function entryName(entry: Entry): string {
  // With decodeStrings off yauzl skips its own name checks, so every name is judged by nameRule.
  return yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, true);
}

/** The first naming rule `name` breaks, if any. Exported for tests. */
export function nameRule(name: string): ArchiveRule | undefined {
  if (name.length === 0) return 'empty-name';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'control-character';
  if (name.includes('\\')) return 'backslash';
  if (/^[A-Za-z]:/.test(name)) return 'drive-letter';
  if (name.startsWith('/')) return 'absolute-path';
  const segments = name.split('/');
  if (segments.includes('..')) return 'path-traversal';
  if (
    Buffer.byteLength(name) > MAX_NAME_BYTES ||
    segments.length > MAX_DEPTH + 1 ||
    segments.some((s) => Buffer.byteLength(s) > MAX_SEGMENT_BYTES)
  ) {
    return 'name-too-long';
  }
  return undefined;
}

/**
 * True when the external attributes describe a regular file (or a folder for a name ending in `/`).
 * The upper 16 bits hold a Unix mode when the archiver set one (any host: some tools set it on
 * non-Unix hosts too, and refusing a stray link is safer than following one); the low byte holds
 * MS-DOS attributes, where a reparse point is how Windows archivers store links.
 */
function isRegularOrDirectory(entry: Entry, isDirectory: boolean): boolean {
  const attributes = entry.externalFileAttributes >>> 0;
  const type = (attributes >>> 16) & S_IFMT;
  if (type !== 0 && type !== (isDirectory ? S_IFDIR : S_IFREG)) return false;
  if (attributes & DOS_REPARSE_POINT) return false;
  if (!isDirectory && attributes & DOS_DIRECTORY) return false;
  return true;
}

function ratioExceeded(uncompressed: number, compressed: number, maxRatio: number): boolean {
  return uncompressed > RATIO_MIN_BYTES && uncompressed > maxRatio * Math.max(compressed, 1);
}

/**
 * Entries whose data regions overlap are how a small archive inflates to petabytes while each entry
 * looks modest: an entry's data (which follows a local header of at least 30 bytes) must end before
 * the next entry's header begins.
 */
function checkOverlaps(kept: readonly Planned[]): void {
  const byOffset = [...kept].sort((a, b) => a.entry.relativeOffsetOfLocalHeader - b.entry.relativeOffsetOfLocalHeader);
  for (let i = 1; i < byOffset.length; i++) {
    const previous = byOffset[i - 1] as Planned;
    const current = byOffset[i] as Planned;
    const previousEnd = previous.entry.relativeOffsetOfLocalHeader + LOCAL_HEADER_FIXED_BYTES + previous.entry.compressedSize;
    if (previousEnd > current.entry.relativeOffsetOfLocalHeader) throw unsafe('overlapping-entries', Math.max(previous.index, current.index));
  }
}

function isSplitFolder(name: string): boolean {
  const lower = name.toLowerCase();
  return Object.values(SPLIT_FOLDER_ALIASES).some((aliases) => aliases.includes(lower));
}

function unsafe(rule: ArchiveRule, index?: number): AppError {
  const where = index === undefined ? 'the archive has' : `archive entry ${index} has`;
  return new AppError('ARCHIVE_UNSAFE', `${where} ${RULE_TEXT[rule]} (rule ${rule})`, {
    extensions: index === undefined ? { rule } : { rule, entryIndex: index },
  });
}

async function openZip(zipFile: string): Promise<ZipFile> {
  try {
    return await yauzl.openPromise(zipFile, {
      lazyEntries: true,
      autoClose: false,
      decodeStrings: false,
      // EntryGuard counts the real bytes itself, so a lie yields a clear size-mismatch error.
      validateEntrySizes: false,
    });
  } catch (error) {
    if (isErrno(error)) throw error;
    throw new AppError('ARCHIVE_INVALID', 'the upload is not a zip archive, or it is truncated or damaged', { cause: error });
  }
}

/** Maps a failure while writing one entry: ours as is, file clashes to path-conflict, data errors to ARCHIVE_INVALID. */
function entryWriteError(error: unknown, index: number): unknown {
  if (error instanceof AppError) return error;
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'EEXIST' || code === 'ENOTDIR' || code === 'EISDIR') return unsafe('path-conflict', index);
  if (isErrno(error)) return error;
  // zlib errors (Z_DATA_ERROR ...) and yauzl's complaints about the local header.
  return new AppError('ARCHIVE_INVALID', `archive entry ${index} could not be inflated; the archive is damaged`, { cause: error });
}

function asStorageError(error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') return new AppError('INSUFFICIENT_STORAGE', 'not enough disk space to extract the archive', { cause: error });
  return error;
}

/** An operating-system error (has an errno and a syscall), as opposed to a data error. */
function isErrno(error: unknown): boolean {
  return typeof (error as NodeJS.ErrnoException | undefined)?.syscall === 'string';
}


function assertLimits(limits: ZipLimits): void {
  for (const key of ['maxEntries', 'maxBytes', 'maxRatio'] as const) {
    const value = limits[key];
    if (!(Number.isFinite(value) && value > 0)) throw new RangeError(`zip limit ${key} must be a positive number, got ${String(value)}`);
  }
}
