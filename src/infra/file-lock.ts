/**
 * A cross-process lock on a shared directory: an exclusive lock file (`open(path, 'wx')`), with
 * recovery from a holder that died. Read-modify-write of a small JSON record (the model aliases)
 * by any number of API and worker processes, possibly on several machines sharing `DATA_DIR`.
 *
 * Why hand-written: no lock library is installed (proper-lockfile would do); this covers the one
 * case needed, with a critical section of milliseconds.
 * @module
 */
import { randomBytes, randomInt } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { open, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

/** Options of {@link withFileLock}. */
export interface FileLockOptions {
  /**
   * A lock file older than this (by mtime) is a dead holder's and is broken, ms. Default 30 000:
   * holders keep it for milliseconds, and a holder on another machine cannot be checked otherwise.
   */
  staleMs?: number;
  /** Give up waiting after this long, ms. Default 10 000. */
  timeoutMs?: number;
  /** Mean pause between attempts, ms (jittered by +-50 %). Default 15. */
  retryMs?: number;
}

/** What the lock file holds: who took it. */
interface LockOwner {
  pid: number;
  /** Host name and, on Linux, the pid namespace: where `pid` means this process. */
  host: string;
  token: string;
  acquiredAt: string;
}

/**
 * This process's host, qualified by its pid namespace: containers sharing the host's name (host
 * networking) still have their own pids, so a pid is only checked when both match.
 */
const HOST = `${os.hostname()}/${pidNamespace()}`;

function pidNamespace(): string {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return 'unknown';
  }
}

/** Thrown by {@link withFileLock} when the lock stays held for `timeoutMs`. */
export class LockTimeoutError extends Error {
  override readonly name = 'LockTimeoutError';
}

/**
 * Runs `fn` while holding the lock `lockFile`; at most one holder at a time across every process
 * that uses the same path. A lock left by a dead process is taken over: at once when it was held by
 * a process of this host that no longer exists, else once its file is older than `staleMs`.
 *
 * @param lockFile Path of the lock file (its directory must exist).
 * @throws LockTimeoutError after `timeoutMs` of waiting; whatever `fn` throws.
 * @example
 * await withFileLock(`${file}.lock`, async () => { const v = await read(); await write(change(v)); });
 */
export async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, options: FileLockOptions = {}): Promise<T> {
  const token = await acquire(lockFile, options);
  try {
    return await fn();
  } finally {
    await release(lockFile, token);
  }
}

async function acquire(lockFile: string, options: FileLockOptions): Promise<string> {
  const staleMs = options.staleMs ?? 30_000;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const retryMs = options.retryMs ?? 15;
  const owner: LockOwner = { pid: process.pid, host: HOST, token: randomBytes(12).toString('hex'), acquiredAt: '' };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    owner.acquiredAt = new Date().toISOString();
    if (await tryCreate(lockFile, owner)) return owner.token;
    if (await breakIfStale(lockFile, staleMs)) continue;
    if (Date.now() >= deadline) throw new LockTimeoutError(`lock ${lockFile} still held after ${timeoutMs} ms`);
    // Jitter so that waiters woken together do not retry in lockstep.
    await sleep(Math.max(1, Math.round(retryMs * (0.5 + randomInt(1000) / 1000))));
  }
}

/** Creates the lock file holding `owner`; false when it exists. */
async function tryCreate(lockFile: string, owner: LockOwner): Promise<boolean> {
  let handle;
  try {
    handle = await open(lockFile, 'wx');
  } catch (error) {
    if (errnoCode(error) === 'EEXIST') return false;
    throw error;
  }
  try {
    await handle.writeFile(JSON.stringify(owner));
  } catch (error) {
    // E.g. a full disk: leave no empty lock for others to wait out.
    await handle.close();
    await rm(lockFile, { force: true });
    throw error;
  }
  await handle.close();
  return true;
}

/**
 * Removes the lock file when its holder is dead; true when the caller should retry at once (the
 * lock was broken, or had already gone).
 *
 * Breaking is itself serialised by a second lock file (`${lockFile}.break`, held for a moment), and
 * the verdict is re-checked under it: otherwise two waiters could both judge the same dead lock
 * stale, and the slower one would delete the lock the faster one had just taken. A breaker that
 * died holding `.break` is cleared the same way, by a plain delete (its window is a few system calls).
 */
async function breakIfStale(lockFile: string, staleMs: number): Promise<boolean> {
  const first = await judge(lockFile, staleMs);
  if (first !== 'stale') return first === 'missing';
  const breaker = `${lockFile}.break`;
  const token = randomBytes(12).toString('hex');
  if (!(await tryCreate(breaker, { pid: process.pid, host: HOST, token, acquiredAt: new Date().toISOString() }))) {
    if ((await judge(breaker, staleMs)) === 'stale') await rm(breaker, { force: true });
    return false;
  }
  try {
    // Under `.break` only a holder can change the lock file; a dead holder cannot, a live one
    // releasing it after staleMs would be the one case left (holders keep it for milliseconds).
    const verdict = await judge(lockFile, staleMs);
    if (verdict === 'stale') await rm(lockFile, { force: true });
    return verdict !== 'live';
  } finally {
    await release(breaker, token);
  }
}

/**
 * `missing`, `stale` (its holder is a dead process of this host, or the file is older than
 * `staleMs`) or `live`. A file still empty (its holder is between creating and writing it) is
 * judged by its age only.
 */
async function judge(file: string, staleMs: number): Promise<'missing' | 'stale' | 'live'> {
  const info = await stat(file).catch(ignoreMissing);
  if (info === null) return 'missing';
  const owner = await readOwner(file);
  if (owner !== null && owner.host === HOST && !isProcessAlive(owner.pid)) return 'stale';
  return Date.now() - info.mtimeMs > staleMs ? 'stale' : 'live';
}

/** Deletes the lock file if it is still ours (it is not if a waiter broke it as stale). */
async function release(lockFile: string, token: string): Promise<void> {
  const owner = await readOwner(lockFile);
  if (owner?.token === token) await rm(lockFile, { force: true });
}

async function readOwner(file: string): Promise<LockOwner | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if (errnoCode(error) === 'ENOENT') return null;
    throw error;
  }
  try {
    const value = JSON.parse(text) as Partial<LockOwner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.token === 'string') return value as LockOwner;
  } catch {
    // Empty or partly written: the holder is between open and write.
  }
  return null;
}

function isProcessAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return errnoCode(error) === 'EPERM';
  }
}

function ignoreMissing(error: unknown): null {
  if (errnoCode(error) === 'ENOENT') return null;
  throw error;
}

function errnoCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
}
