/**
 * A small file system of a test's own (tmpfs), to fill up: the real ENOSPC of a full disk, without
 * touching the machine's disks. Mounting needs root (as on these machines and in CI); where it is
 * not allowed, {@link tmpfsUnavailable} says why and the tests that need one skip.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { open, readdir, rm, statfs } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/** Why a tmpfs cannot be mounted here, or false when it can (probed once, with a 1 MiB mount). */
export const tmpfsUnavailable: false | string = probe();

function probe(): false | string {
  if (process.platform !== 'linux') return 'tmpfs mounts need Linux';
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root';
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return false;
  } catch (error) {
    return `mount -t tmpfs is not allowed here (${(error as Error).message.split('\n')[0]})`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface Tmpfs {
  dir: string;
  /** Free bytes for an unprivileged writer. */
  freeBytes(): Promise<number>;
  /**
   * Writes filler files until at most `leaveBytes` are free (0: until the disk is full); resolves to
   * the free bytes left.
   */
  fill(leaveBytes?: number): Promise<number>;
  /** Deletes every filler file. */
  drain(): Promise<void>;
  unmount(): Promise<void>;
}

const FILLER_PREFIX = '.filler-';
const CHUNK = 1024 * 1024;

/** Mounts a tmpfs of `sizeBytes` at a fresh folder. */
export function mountTmpfs(sizeBytes: number): Tmpfs {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tmpfs-'));
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
  const freeBytes = async (): Promise<number> => {
    const stats = await statfs(dir);
    return stats.bavail * stats.bsize;
  };
  let fillers = 0;
  return {
    dir,
    freeBytes,
    async fill(leaveBytes = 0) {
      const handle = await open(path.join(dir, `${FILLER_PREFIX}${fillers++}`), 'w');
      const zeros = Buffer.alloc(CHUNK);
      try {
        for (;;) {
          const free = await freeBytes();
          const want = Math.min(CHUNK, free - leaveBytes);
          if (want <= 0) return free;
          try {
            await handle.write(zeros, 0, want);
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code === 'ENOSPC') return freeBytes();
            throw error;
          }
        }
      } finally {
        await handle.close();
      }
    },
    async drain() {
      for (const name of await readdir(dir)) if (name.startsWith(FILLER_PREFIX)) await rm(path.join(dir, name), { force: true });
    },
    async unmount() {
      try {
        execFileSync('umount', [dir], { stdio: 'pipe' });
      } catch {
        // busy: a lazy unmount detaches it now and frees it when the last user lets go
        execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
