/**
 * Writes a whole directory so readers see either the old contents or the new, never a mix: everything
 * goes into a temp directory beside the target, is flushed to disk, and only then renamed into place.
 * Used for saved models; checkpoints can use it too.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';

/** Suffixes of the sibling directories a write creates (`${dir}.tmp-<hex>`, `${dir}.old-<hex>`). */
export const TEMP_INFIX = '.tmp-';
export const OLD_INFIX = '.old-';

/** Temp directories older than this are leftovers of a crashed writer and are removed (ms). */
export const STALE_TEMP_AGE_MS = 60 * 60 * 1000;

/**
 * Creates `dir` atomically from what `write` puts into the temp directory it is given.
 *
 * Order: write into `${dir}.tmp-<random>` (same parent, so the renames never cross file systems),
 * fsync, then, if `dir` exists, rename it aside to `${dir}.old-<random>`, rename the temp directory
 * to `dir`, fsync the parent, and delete the old copy. If `write` throws, the temp directory is
 * removed and `dir` is untouched. A crash before the swap leaves only a temp directory; a crash
 * between the two renames leaves the complete old copy at `${dir}.old-*` (see {@link findOldCopy})
 * and no half-written `dir`. The next successful write removes both kinds of leftovers (temp
 * directories only once stale).
 *
 * @param dir Target directory; its parent is created if missing.
 * @param write Fills the temp directory (absolute path). Files it writes should be flushed
 *   ({@link writeFileDurable} does so).
 * @returns What `write` returned.
 * @example
 * await writeDirAtomically('data/models/m1', async (tmp) => {
 *   await writeFileDurable(path.join(tmp, 'model.json'), json);
 * });
 */
export async function writeDirAtomically<T>(dir: string, write: (tempDir: string) => Promise<T>): Promise<T> {
  const target = path.resolve(dir);
  const parent = path.dirname(target);
  await mkdir(parent, { recursive: true });

  const tempDir = `${target}${TEMP_INFIX}${randomSuffix()}`;
  await mkdir(tempDir);
  let result: T;
  try {
    result = await write(tempDir);
    await fsyncPath(tempDir);
  } catch (error) {
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  }

  const oldDir = `${target}${OLD_INFIX}${randomSuffix()}`;
  let movedAside = false;
  try {
    await rename(target, oldDir);
    movedAside = true;
  } catch (error) {
    if (!isErrnoCode(error, 'ENOENT')) {
      await rm(tempDir, { recursive: true, force: true });
      throw error;
    }
  }
  try {
    await rename(tempDir, target);
  } catch (error) {
    // Put the previous version back so a failed save never loses the model that was there.
    if (movedAside) await rename(oldDir, target).catch(() => undefined);
    await rm(tempDir, { recursive: true, force: true });
    throw error;
  }
  await fsyncPath(parent);
  if (movedAside) await rm(oldDir, { recursive: true, force: true });
  await removeStaleSiblings(target);
  return result;
}

/**
 * Writes `data` to a new file (fails if it exists) and flushes it to disk before returning, so a
 * rename that follows never publishes a file whose bytes are still only in the page cache.
 */
export async function writeFileDurable(file: string, data: string | Uint8Array): Promise<void> {
  const handle = await open(file, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The newest complete previous version left at `${dir}.old-*` by a writer that crashed between its
 * two renames, or `null`. Only meaningful when `dir` itself is missing.
 */
export async function findOldCopy(dir: string): Promise<string | null> {
  const target = path.resolve(dir);
  const prefix = `${path.basename(target)}${OLD_INFIX}`;
  let best: { dir: string; mtimeMs: number } | null = null;
  for (const name of await listSiblings(target)) {
    if (!name.startsWith(prefix)) continue;
    const candidate = path.join(path.dirname(target), name);
    const info = await stat(candidate).catch(() => null);
    if (info?.isDirectory() && (best === null || info.mtimeMs > best.mtimeMs)) {
      best = { dir: candidate, mtimeMs: info.mtimeMs };
    }
  }
  return best?.dir ?? null;
}

/**
 * Removes leftovers of crashed writers once a new `target` is in place: every old copy (superseded)
 * and temp directories older than {@link STALE_TEMP_AGE_MS} (a younger one may belong to a writer
 * still running).
 */
async function removeStaleSiblings(target: string): Promise<void> {
  const base = path.basename(target);
  const now = Date.now();
  for (const name of await listSiblings(target)) {
    const sibling = path.join(path.dirname(target), name);
    if (name.startsWith(`${base}${TEMP_INFIX}`)) {
      const info = await stat(sibling).catch(() => null);
      if (info && now - info.mtimeMs > STALE_TEMP_AGE_MS) await rm(sibling, { recursive: true, force: true });
    } else if (name.startsWith(`${base}${OLD_INFIX}`)) {
      await rm(sibling, { recursive: true, force: true });
    }
  }
}

async function listSiblings(target: string): Promise<string[]> {
  try {
    return await readdir(path.dirname(target));
  } catch (error) {
    if (isErrnoCode(error, 'ENOENT')) return [];
    throw error;
  }
}

/** fsync of a directory makes its entries (new files, renames) durable; unsupported on some platforms. */
export async function fsyncPath(target: string): Promise<void> {
  let handle;
  try {
    handle = await open(target, 'r');
    await handle.sync();
  } catch {
    // Windows cannot open or fsync a directory; the rename is still atomic there, only less durable.
  } finally {
    await handle?.close();
  }
}

function randomSuffix(): string {
  // Uniqueness for concurrent writers, not reproducibility: crypto, not the seeded generator.
  return randomBytes(6).toString('hex');
}

/** True when `error` is a Node system error with the given `code` (e.g. `ENOENT`). */
export function isErrnoCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
