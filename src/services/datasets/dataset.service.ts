/**
 * Datasets under `DATA_DIR/datasets/`: list them cheaply, show one with its duplicate and leak
 * findings (cached by a fingerprint of the folder), and create one from an uploaded zip.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import type { Config } from '../../infra/config.ts';
import { AppError } from '../../infra/errors.ts';
import { pathExists } from '../../infra/fs.ts';
import { scanDataset } from '../../ml/data/scan.ts';
import { isMlError } from '../../ml/errors.ts';
import { computeFindings, scanProblem } from './dataset-findings.ts';
import {
  compareCodePoints,
  folderFingerprint,
  readConfigOverride,
  summariseDataset,
  summariseListing,
  walkDatasetFolder,
} from './dataset-summary.ts';
import type { DatasetLimits, DatasetSummaryView, DatasetView } from './dataset.types.ts';
import type { RoomCheck } from '../../infra/storage.ts';
import { receiveUpload } from './upload-file.ts';
import { extractZipSafely } from './zip-extract.ts';

/** Bumped whenever the cached view's shape or the scan's rules change, so old entries miss. */
const CACHE_FORMAT = 1;
/** Datasets summarised at once by `list()`. */
const LIST_CONCURRENCY = 4;

/** A cache file: the view and the fingerprint of the folder it was computed from. */
interface CacheRecord {
  readonly format: number;
  readonly fingerprint: string;
  readonly view: DatasetView;
}

/**
 * The dataset limits from the configuration.
 * @example
 * const datasets = new DatasetService(store, datasetLimitsFromConfig(config));
 */
export function datasetLimitsFromConfig(
  config: Pick<
    Config,
    'DATASET_MAX_UPLOAD_BYTES' | 'DATASET_MAX_ENTRIES' | 'DATASET_MAX_UNCOMPRESSED_BYTES' | 'DATASET_MAX_RATIO' | 'IMAGE_MAX_PIXELS'
  >,
): DatasetLimits {
  return Object.freeze({
    maxUploadBytes: config.DATASET_MAX_UPLOAD_BYTES,
    maxEntries: config.DATASET_MAX_ENTRIES,
    maxBytes: config.DATASET_MAX_UNCOMPRESSED_BYTES,
    maxRatio: config.DATASET_MAX_RATIO,
    maxImagePixels: config.IMAGE_MAX_PIXELS,
  });
}

/** A new dataset id: `ds-` and 10 random hex digits. */
export function newDatasetId(): string {
  return `ds-${randomBytes(5).toString('hex')}`;
}

/** Datasets of one data directory. Safe to share between requests. */
export class DatasetService {
  readonly #store: ArtifactStore;
  readonly #limits: DatasetLimits;
  /** Refuses uploads while the data directory is short of space (`DATA_DIR_MIN_FREE_BYTES`). */
  readonly #storage: RoomCheck | null;
  /** Findings being computed, by id and fingerprint, so concurrent requests share one scan. */
  readonly #pending = new Map<string, Promise<DatasetView>>();

  /**
   * @param store the artifact store (its `datasetsDir`, `cacheDir` and `uploadsDir` are used)
   * @param limits upload, archive and image limits ({@link datasetLimitsFromConfig})
   * @param options.storage refuses uploads (507) while the data directory is short of space
   */
  constructor(store: ArtifactStore, limits: DatasetLimits, options: { storage?: RoomCheck } = {}) {
    for (const key of ['maxUploadBytes', 'maxEntries', 'maxBytes', 'maxRatio'] as const) {
      if (!(Number.isFinite(limits[key]) && limits[key] > 0)) throw new RangeError(`dataset limit ${key} must be a positive number`);
    }
    this.#store = store;
    this.#limits = Object.freeze({ ...limits });
    this.#storage = options.storage ?? null;
  }

  /**
   * Every dataset folder, by id. Cheap: folders are walked and image files counted by name; no
   * image is opened. Hidden folders (such as an extraction in progress) and names that are not
   * valid ids are left out.
   */
  async list(): Promise<DatasetSummaryView[]> {
    let names: string[];
    try {
      const entries = await readdir(this.#store.datasetsDir, { withFileTypes: true });
      names = entries.filter((e) => (e.isDirectory() || e.isSymbolicLink()) && isSafeId(e.name)).map((e) => e.name);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    names.sort(compareCodePoints);
    const views: Array<DatasetSummaryView | undefined> = new Array(names.length);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < names.length) {
        const i = next++;
        const id = names[i] as string;
        try {
          views[i] = await summariseDataset(id, this.#store.datasetDir(id));
        } catch (error) {
          // Removed since the listing, or a link to something that is not a folder.
          const code = (error as NodeJS.ErrnoException).code;
          if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(LIST_CONCURRENCY, names.length) }, worker));
    return views.filter((v): v is DatasetSummaryView => v !== undefined);
  }

  /**
   * One dataset with its checked image counts, skipped files, hash and duplicate findings. The
   * first call decodes every image; the result is cached in `DATA_DIR/cache/datasets/{id}.json`
   * under a fingerprint of the folder (paths, sizes, mtimes), so later calls cost a folder walk
   * until a file is added, removed or changed. A dataset that cannot train comes back with
   * `problem` set and `null` findings.
   * @throws AppError DATASET_NOT_FOUND
   */
  async get(id: string): Promise<DatasetView> {
    const root = await this.datasetDir(id);
    const listing = await walkDatasetFolder(root, { statFiles: true }).catch((error: unknown) => {
      throw (error as NodeJS.ErrnoException).code === 'ENOENT' ? notFound(id) : error;
    });
    const fingerprint = folderFingerprint(listing, this.#cacheSalt());
    const cached = await this.#readCache(id);
    if (cached?.fingerprint === fingerprint) return cached.view;

    const key = `${id}\0${fingerprint}`;
    let pending = this.#pending.get(key);
    if (pending === undefined) {
      pending = (async () => {
        const summary = summariseListing(id, listing, await readConfigOverride(root));
        const result = await computeFindings(root, this.#scanOptions()).catch((error: unknown) => {
          throw isMlError(error, 'DATASET_NOT_FOUND') ? notFound(id) : error;
        });
        const view: DatasetView =
          'problem' in result
            ? { ...summary, problem: result.problem, hash: null, skipped: null, duplicates: null }
            : { ...summary, ...result.findings, problem: null };
        await this.#writeCache(id, { format: CACHE_FORMAT, fingerprint, view });
        return view;
      })().finally(() => this.#pending.delete(key));
      this.#pending.set(key, pending);
    }
    return pending;
  }

  /**
   * Creates a dataset from a zip of class folders (or of `train/ val/ test/`). The upload is
   * streamed to a temp file under `DATA_DIR/uploads/` (the size limit is enforced as it arrives),
   * extracted safely ({@link extractZipSafely}), checked for at least two class folders with
   * usable images, and only then moved into place. Nothing is left behind when any step fails.
   * @param source the zip as a stream (e.g. a multipart file), or the path of a zip file
   * @param requestedId the dataset id; generated (`ds-…`) when absent
   * @returns the full view of the new dataset (its findings are computed, and cached, now)
   * @throws AppError VALIDATION_FAILED (bad id), DATASET_INVALID (folders that are not a dataset
   *   layout, or a bad `dataset.json`), DATASET_EXISTS, PAYLOAD_TOO_LARGE, ARCHIVE_INVALID, ARCHIVE_UNSAFE,
   *   DATASET_EMPTY, DATASET_SINGLE_CLASS, INSUFFICIENT_STORAGE
   * @example
   * const view = await datasets.createFromZip(fs.createReadStream('xrays.zip'), 'wrist-2024');
   */
  async createFromZip(source: Readable | string, requestedId?: string): Promise<DatasetView> {
    if (requestedId !== undefined && !isSafeId(requestedId)) {
      throw new AppError(
        'VALIDATION_FAILED',
        'a dataset id has 1-128 letters, digits, ".", "_" or "-", starts with a letter or digit and has no ".."',
      );
    }
    const id = requestedId ?? newDatasetId();
    const dest = this.#store.datasetDir(id);
    if (await pathExists(dest)) throw new AppError('DATASET_EXISTS', `a dataset with the id "${id}" exists`);
    await this.#storage?.assertRoom('a dataset upload');

    let zipFile: string;
    let upload: string | undefined;
    if (typeof source === 'string') {
      const size = (await stat(source)).size;
      if (size > this.#limits.maxUploadBytes) throw new AppError('PAYLOAD_TOO_LARGE', `the archive is larger than the ${this.#limits.maxUploadBytes}-byte limit`);
      zipFile = source;
    } else {
      await mkdir(this.#store.uploadsDir, { recursive: true });
      upload = path.join(this.#store.uploadsDir, `dataset-${randomBytes(8).toString('hex')}.zip`);
      await receiveUpload(source, upload, this.#limits.maxUploadBytes);
      zipFile = upload;
    }
    try {
      await extractZipSafely(zipFile, dest, this.#limits, { verify: (dir) => this.#verifyExtracted(dir) }).catch((error: unknown) => {
        throw error instanceof AppError && error.code === 'DATASET_EXISTS' ? new AppError('DATASET_EXISTS', `a dataset with the id "${id}" exists`) : error;
      });
    } finally {
      if (upload !== undefined) await rm(upload, { force: true });
    }
    return this.get(id);
  }

  /**
   * The folder of dataset `id`, for other services (experiments).
   * @throws AppError DATASET_NOT_FOUND when the id is not a safe id or no such folder exists
   */
  async datasetDir(id: string): Promise<string> {
    if (!isSafeId(id)) throw notFound(id);
    const dir = this.#store.datasetDir(id);
    const info = await stat(dir).catch(() => undefined);
    if (!info?.isDirectory()) throw notFound(id);
    return dir;
  }

  /** Where the findings of dataset `id` are cached. */
  cacheFile(id: string): string {
    if (!isSafeId(id)) throw notFound(id);
    return path.join(this.#store.cacheDir, 'datasets', `${id}.json`);
  }

  /** Refuses an extracted archive that is not a trainable dataset, with a sentence that names no file. */
  async #verifyExtracted(dir: string): Promise<void> {
    try {
      await scanDataset(dir, this.#scanOptions());
    } catch (error) {
      const found = scanProblem(error);
      if (found === undefined) throw error;
      const code = found.code === 'empty' ? 'DATASET_EMPTY' : found.code === 'single-class' ? 'DATASET_SINGLE_CLASS' : 'DATASET_INVALID';
      const detail = found.code === 'empty' ? 'the archive has no usable JPEG or PNG images in class folders' : found.detail;
      throw new AppError(code, detail, { cause: error });
    }
  }

  #scanOptions(): { limitInputPixels?: number } {
    return this.#limits.maxImagePixels === undefined ? {} : { limitInputPixels: this.#limits.maxImagePixels };
  }

  #cacheSalt(): string {
    return `datasets-cache-${CACHE_FORMAT};pixels=${this.#limits.maxImagePixels ?? 'default'}`;
  }

  async #readCache(id: string): Promise<CacheRecord | null> {
    try {
      const record = await this.#store.readJson<CacheRecord>(this.cacheFile(id));
      return record?.format === CACHE_FORMAT && typeof record.fingerprint === 'string' ? record : null;
    } catch {
      return null; // unreadable or not JSON: recompute and overwrite
    }
  }

  async #writeCache(id: string, record: CacheRecord): Promise<void> {
    try {
      await this.#store.writeJson(this.cacheFile(id), record);
    } catch {
      // The cache only saves time; a read-only or full cache folder must not fail the request.
    }
  }
}

function notFound(id: string): AppError {
  return new AppError('DATASET_NOT_FOUND', isSafeId(id) ? `no dataset with the id "${id}"` : 'no such dataset');
}

