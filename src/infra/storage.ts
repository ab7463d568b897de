/**
 * Free space of the data directory, and what a full one means (issue 5, "a full disk").
 *
 * New work that fills `DATA_DIR` (dataset uploads, experiments, training) is refused, or held back,
 * while its file system has less than `DATA_DIR_MIN_FREE_BYTES` free: the rest is headroom for the
 * small writes that must go on — audit records, experiment records, temporary prediction uploads —
 * so the serving model keeps answering and its answers stay audited. Like a disk watermark in a
 * database, this stops the disk from filling to the last byte; `toAppError` turns the ENOSPC of a
 * disk that something else filled anyway into the same 507.
 * @module
 */
import { statfs } from 'node:fs/promises';
import { AppError } from './errors.ts';

export { isOutOfSpace } from './errors.ts';

/** Bytes the file system holding `dir` has free for this (unprivileged) process. */
export async function freeBytes(dir: string): Promise<number> {
  const stats = await statfs(dir);
  return stats.bavail * stats.bsize;
}

function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** What a service needs of a {@link StorageGuard}: refuse work when the disk is short of space. */
export type RoomCheck = Pick<StorageGuard, 'assertRoom'>;

/**
 * Refuses new work that writes to the data directory when its free space is below the watermark.
 * @example
 * const room = new StorageGuard(config.DATA_DIR, config.DATA_DIR_MIN_FREE_BYTES);
 * await room.assertRoom('a dataset upload'); // AppError INSUFFICIENT_STORAGE when short of space
 */
export class StorageGuard {
  readonly dir: string;
  readonly minFreeBytes: number;

  constructor(dir: string, minFreeBytes: number) {
    this.dir = dir;
    this.minFreeBytes = minFreeBytes;
  }

  /** Free bytes now (see {@link freeBytes}). */
  freeBytes(): Promise<number> {
    return freeBytes(this.dir);
  }

  /**
   * Resolves when the data directory has at least the watermark free.
   * @param what the work that would be refused, for the message (e.g. `a dataset upload`)
   * @throws AppError INSUFFICIENT_STORAGE (507) below the watermark
   */
  async assertRoom(what: string): Promise<void> {
    if (this.minFreeBytes <= 0) return;
    let free: number;
    try {
      free = await this.freeBytes();
    } catch {
      // The folder is not there yet (a first start): the write that creates it will tell.
      return;
    }
    if (free < this.minFreeBytes) {
      throw new AppError(
        'INSUFFICIENT_STORAGE',
        `${what} needs room the data directory does not have: ${mebibytes(free)} free, ` +
          `DATA_DIR_MIN_FREE_BYTES keeps ${mebibytes(this.minFreeBytes)} for records and audit; free space and retry`,
      );
    }
  }
}
