/**
 * The files of asynchronous predictions under `DATA_DIR/predictions/{id}/`: `prediction.json` (the
 * record: status, model, the caller's image ids, then the result or the error; changed under a lock
 * file by the API and the inference worker) and `images/{i}.bin` (the uploaded bytes, under random
 * names, deleted once the prediction has run). A prediction's folder appears whole (written beside
 * and renamed into place) or not at all. Files are readable by the service's user only.
 * @module
 */
import { readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import { writeDirAtomically, writeFileDurable } from '../../ml/persist/atomic-dir.ts';
import type { PredictionRecord } from './prediction.types.ts';

const RECORD_FILE = 'prediction.json';
const IMAGES_DIR = 'images';

/** Shape of an id made by {@link newPredictionId}. */
export const PREDICTION_ID_PATTERN = /^pred-\d{8}-\d{6}-[0-9a-f]{8}$/;

/**
 * A new prediction id: `pred-YYYYMMDD-HHMMSS-xxxxxxxx` (UTC time, 8 random hex digits). Ids sort by
 * creation time, are safe as folder names and BullMQ job ids, and do not collide at any request rate.
 */
export function newPredictionId(now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, '').replace(/[-:]/g, '').replace('T', '-');
  return `pred-${stamp}-${randomBytes(4).toString('hex')}`;
}

/** Reads and writes one data directory's prediction files. */
export class PredictionRecords {
  readonly store: ArtifactStore;

  constructor(store: ArtifactStore) {
    this.store = store;
  }

  recordFile(id: string): string {
    return path.join(this.store.predictionDir(id), RECORD_FILE);
  }

  /** Where image `index` of prediction `id` is kept until it has run. */
  imageFile(id: string, index: number): string {
    return path.join(this.store.predictionDir(id), IMAGES_DIR, `${index}.bin`);
  }

  /** Creates the prediction's folder with its record and images, all at once. */
  async create(record: PredictionRecord, images: readonly Uint8Array[]): Promise<void> {
    await writeDirAtomically(this.store.predictionDir(record.id), async (temp) => {
      await mkdir(path.join(temp, IMAGES_DIR), { mode: 0o700 });
      await Promise.all(images.map((data, i) => writeFile(path.join(temp, IMAGES_DIR, `${i}.bin`), data, { mode: 0o600, flag: 'wx' })));
      await writeFileDurable(path.join(temp, RECORD_FILE), `${JSON.stringify(record, null, 2)}\n`);
    });
  }

  /** The record, or null when there is none (unknown, expired or unsafe id). */
  async read(id: string): Promise<PredictionRecord | null> {
    if (!isSafeId(id)) return null;
    return this.store.readJson<PredictionRecord>(this.recordFile(id));
  }

  /**
   * Read-modify-write under the record's lock. `mutate` returns the new record, or null to leave it.
   * Resolves to the record as it is afterwards (null when there is none).
   */
  async update(id: string, mutate: (record: PredictionRecord) => PredictionRecord | null): Promise<PredictionRecord | null> {
    if (!isSafeId(id)) return null;
    return this.store.updateJson<PredictionRecord>(this.recordFile(id), mutate);
  }

  /** The images of prediction `id`, in request order. */
  async readImages(id: string, count: number): Promise<Uint8Array[]> {
    return Promise.all(Array.from({ length: count }, async (_, i) => new Uint8Array(await readFile(this.imageFile(id, i)))));
  }

  /** Deletes the uploaded images of a prediction that has run (the record stays). */
  async removeImages(id: string): Promise<void> {
    await rm(path.join(this.store.predictionDir(id), IMAGES_DIR), { recursive: true, force: true });
  }

  /** Deletes the prediction's folder. */
  async remove(id: string): Promise<void> {
    await rm(this.store.predictionDir(id), { recursive: true, force: true });
  }

  /** Ids of every prediction on disk (not the folders of writes in progress), oldest first. */
  async listIds(): Promise<string[]> {
    const names = await readdir(this.store.predictionsDir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [] as string[];
      throw error;
    });
    // The pattern leaves out the `.tmp-` and `.old-` siblings of writes in progress.
    return names.filter((name) => PREDICTION_ID_PATTERN.test(name)).sort();
  }
}
