/**
 * The experiment files under `DATA_DIR/experiments/{id}/` (the source of truth, DESIGN section 6):
 * `experiment.json` (the request and lifecycle; updated by the API and the workers under a lock
 * file), `progress/{architecture}.json` (one writer: that architecture's `train` job) and the
 * `cancel` marker (written by the API; the marker, not the record's status, is what makes running
 * jobs stop, so a cancel can never be lost to a concurrent record update).
 * @module
 */
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import type { Architecture } from '../../ml/models/index.ts';
import { isFinalStatus, type ArchitectureProgressRecord, type ExperimentError, type ExperimentRecord } from './experiment.types.ts';
import { pathExists } from '../../infra/fs.ts';

/** Reads and writes one data directory's experiment files. */
export class ExperimentRecords {
  readonly store: ArtifactStore;

  constructor(store: ArtifactStore) {
    this.store = store;
  }

  /**
   * Creates the experiment's folder and writes its first record.
   * @returns false when an experiment with this id exists (the caller picks another id).
   */
  async create(record: ExperimentRecord): Promise<boolean> {
    await mkdir(this.store.experimentsDir, { recursive: true });
    try {
      await mkdir(this.store.experimentDir(record.id));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    }
    try {
      await this.store.writeJson(this.store.experimentRecord(record.id), record);
    } catch (error) {
      // A full disk must not leave a folder without a record behind.
      await rm(this.store.experimentDir(record.id), { recursive: true, force: true });
      throw error;
    }
    return true;
  }

  /** The record, or null when there is none (unknown or unsafe id). */
  async read(id: string): Promise<ExperimentRecord | null> {
    if (!isSafeId(id)) return null;
    return this.store.readJson<ExperimentRecord>(this.store.experimentRecord(id));
  }

  /**
   * Read-modify-write of the record under its lock file. `mutate` returns the new record, or null to
   * leave it unchanged. Resolves to the record as it is afterwards (null when there is none).
   */
  async update(id: string, mutate: (record: ExperimentRecord) => ExperimentRecord | null): Promise<ExperimentRecord | null> {
    if (!isSafeId(id)) return null;
    return this.store.updateJson<ExperimentRecord>(this.store.experimentRecord(id), mutate);
  }

  /** Marks the experiment failed with `error`, unless it already ended (completed, failed, cancelled). */
  async markFailed(id: string, error: ExperimentError): Promise<ExperimentRecord | null> {
    const finishedAt = new Date().toISOString();
    return this.update(id, (current) => (isFinalStatus(current.status) ? null : { ...current, status: 'failed', error, finishedAt }));
  }

  /** Deletes the experiment's folder and everything in it. */
  async remove(id: string): Promise<void> {
    await rm(this.store.experimentDir(id), { recursive: true, force: true });
  }

  /** Ids of every experiment folder that has a record. */
  async listIds(): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(this.store.experimentsDir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
    const ids: string[] = [];
    for (const name of names.filter(isSafeId)) {
      if (await pathExists(this.store.experimentRecord(name))) ids.push(name);
    }
    return ids;
  }

  /** An architecture's progress file, or null before its training started. */
  async readProgress(id: string, architecture: Architecture): Promise<ArchitectureProgressRecord | null> {
    return this.store.readJson<ArchitectureProgressRecord>(this.store.progressFile(id, architecture));
  }

  /** Replaces an architecture's progress file (atomically). */
  async writeProgress(id: string, progress: ArchitectureProgressRecord): Promise<void> {
    await this.store.writeJson(this.store.progressFile(id, progress.architecture), progress);
  }

  /** Writes the cancel marker that running `train` jobs watch for. */
  async requestCancel(id: string): Promise<void> {
    await writeFile(this.store.cancelMarker(id), `${new Date().toISOString()}\n`);
  }

  /** True when a cancel was requested. */
  async cancelRequested(id: string): Promise<boolean> {
    return pathExists(this.store.cancelMarker(id));
  }
}
