/**
 * The artifact store: the layout of `DATA_DIR` and atomic JSON records in it (DESIGN section 6).
 * JSON records here are the source of truth for experiments and models; Redis holds queue state only.
 *
 * ```
 * DATA_DIR/
 *   datasets/{datasetId}/            class folders, or train/ val/ test/ of class folders
 *   experiments/{experimentId}/
 *     experiment.json                the request and its lifecycle ({@link ArtifactStore.experimentRecord})
 *     progress/{architecture}.json   live progress of each architecture's training
 *     report.json, models/, results/, checkpoints/   written by the ML engine (runExperiment)
 *     cancel                         present when a cancel was requested
 *   models/{modelId}/                TensorFlow.js files + metadata.json (hard links into the experiment)
 *   models/aliases.json              { alias: modelId }
 *   cache/                           derived data that can be rebuilt (dataset scans)
 *   uploads/                         requests' temporary files (shared with inference workers)
 *   predictions/{predictionId}/      an asynchronous prediction: prediction.json and, until it ran, images/
 *   audit/predictions.jsonl          one line per prediction request
 *   redis/                           data of a Redis that `start` launched itself
 *   api-keys.json                    hashes of the admin key `start` created (API_KEYS unset)
 * ```
 * @module
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { writeJsonAtomic } from '../ml/util/atomic-file.ts';
import { withFileLock } from './file-lock.ts';

/** Ids that may become path segments: no separators, no dots at the start, bounded length. */
export const SAFE_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** True when `id` can name a folder under `DATA_DIR` without escaping it. */
export function isSafeId(id: string): boolean {
  return SAFE_ID.test(id) && !id.includes('..');
}

/** Paths and JSON records under one data directory. */
export class ArtifactStore {
  readonly root: string;

  constructor(dataDir: string) {
    this.root = path.resolve(dataDir);
  }

  get datasetsDir(): string {
    return path.join(this.root, 'datasets');
  }
  get experimentsDir(): string {
    return path.join(this.root, 'experiments');
  }
  get modelsDir(): string {
    return path.join(this.root, 'models');
  }
  get cacheDir(): string {
    return path.join(this.root, 'cache');
  }
  get uploadsDir(): string {
    return path.join(this.root, 'uploads');
  }
  get predictionsDir(): string {
    return path.join(this.root, 'predictions');
  }
  predictionDir(predictionId: string): string {
    return path.join(this.predictionsDir, checkedId(predictionId));
  }
  get auditDir(): string {
    return path.join(this.root, 'audit');
  }
  /** Hashes of the API keys `start` creates when `API_KEYS` is unset. */
  get apiKeysFile(): string {
    return path.join(this.root, 'api-keys.json');
  }
  get redisDir(): string {
    return path.join(this.root, 'redis');
  }

  datasetDir(datasetId: string): string {
    return path.join(this.datasetsDir, checkedId(datasetId));
  }
  experimentDir(experimentId: string): string {
    return path.join(this.experimentsDir, checkedId(experimentId));
  }
  experimentRecord(experimentId: string): string {
    return path.join(this.experimentDir(experimentId), 'experiment.json');
  }
  progressFile(experimentId: string, architecture: string): string {
    return path.join(this.experimentDir(experimentId), 'progress', `${checkedId(architecture)}.json`);
  }
  reportFile(experimentId: string): string {
    return path.join(this.experimentDir(experimentId), 'report.json');
  }
  cancelMarker(experimentId: string): string {
    return path.join(this.experimentDir(experimentId), 'cancel');
  }
  modelDir(modelId: string): string {
    return path.join(this.modelsDir, checkedId(modelId));
  }
  get aliasesFile(): string {
    return path.join(this.modelsDir, 'aliases.json');
  }

  /** Writes `value` as JSON atomically: readers see the old or the new file, never half of one. */
  async writeJson(file: string, value: unknown): Promise<void> {
    await writeJsonAtomic(file, value);
  }

  /**
   * Read-modify-write of a JSON record under its lock file (`${file}.lock`, across processes):
   * `mutate` returns the new value, or null to leave the file as it is. Resolves to the value as it
   * is afterwards, or null when there is no file.
   */
  async updateJson<T>(file: string, mutate: (current: T) => T | null): Promise<T | null> {
    return withFileLock(`${file}.lock`, async () => {
      const current = await this.readJson<T>(file);
      if (current === null) return null;
      const next = mutate(current);
      if (next === null) return current;
      await this.writeJson(file, next);
      return next;
    });
  }

  /** Reads a JSON record; `null` when the file does not exist. */
  async readJson<T>(file: string): Promise<T | null> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    return JSON.parse(text) as T;
  }
}

function checkedId(id: string): string {
  if (!isSafeId(id)) throw new RangeError(`unsafe id for a path segment: ${JSON.stringify(id.slice(0, 40))}`);
  return id;
}
