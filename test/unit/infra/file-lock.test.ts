/**
 * The cross-process lock behind alias changes: one holder at a time, released on errors, taken over
 * from a holder that was killed while holding it, and from an old lock of another machine, but never
 * from a live holder.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { LockTimeoutError, withFileLock } from '../../../src/infra/file-lock.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
let root: string;
let counter = 0;
const lockPath = (): string => path.join(root, `lock-${++counter}`);

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'file-lock-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('withFileLock', () => {
  it('lets one holder in at a time: 20 concurrent read-modify-writes lose no update', async () => {
    const lock = lockPath();
    const data = path.join(root, 'counter.txt');
    await writeFile(data, '0');
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        withFileLock(lock, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          const value = Number(await readFile(data, 'utf8'));
          await sleep(2);
          await writeFile(data, String(value + 1));
          inside -= 1;
        }, { retryMs: 2 }),
      ),
    );
    assert.equal(await readFile(data, 'utf8'), '20');
    assert.equal(maxInside, 1);
    await assert.rejects(stat(lock), { code: 'ENOENT' }, 'the lock file is gone after the last holder');
  });

  it('releases the lock when the critical section throws', async () => {
    const lock = lockPath();
    await assert.rejects(withFileLock(lock, async () => { throw new Error('boom'); }), /boom/);
    const started = Date.now();
    assert.equal(await withFileLock(lock, async () => 'next', { timeoutMs: 500 }), 'next');
    assert.ok(Date.now() - started < 400);
  });

  it('takes over at once from a holder of this host that was killed while holding the lock', async () => {
    const lock = lockPath();
    const script = `
      import { withFileLock } from './src/infra/file-lock.ts';
      await withFileLock(${JSON.stringify(lock)}, async () => {
        console.log('locked');
        await new Promise(() => setInterval(() => {}, 1000));
      });
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'] });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (chunk: Buffer) => { if (chunk.toString().includes('locked')) resolve(); });
      child.on('exit', (code) => reject(new Error(`child exited early with ${code}`)));
    });
    const holder = JSON.parse(await readFile(lock, 'utf8')) as { pid: number };
    assert.equal(holder.pid, child.pid);
    // A live holder keeps the lock.
    await assert.rejects(withFileLock(lock, async () => 'stolen', { timeoutMs: 150, staleMs: 60_000 }), LockTimeoutError);
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    const started = Date.now();
    assert.equal(await withFileLock(lock, async () => 'taken over', { timeoutMs: 2_000, staleMs: 60_000 }), 'taken over');
    assert.ok(Date.now() - started < 1_000, 'without waiting for staleMs');
  });

  it('breaks a lock of another machine only once it is older than staleMs', async () => {
    const lock = lockPath();
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'other-machine/pid:[1]', token: 'theirs', acquiredAt: new Date().toISOString() }));
    await assert.rejects(withFileLock(lock, async () => 'early', { timeoutMs: 150, staleMs: 30_000 }), LockTimeoutError);
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    assert.equal(await withFileLock(lock, async () => 'late', { timeoutMs: 1_000, staleMs: 30_000 }), 'late');
  });

  it('breaks an old empty lock file (a holder that died between creating and writing it)', async () => {
    const lock = lockPath();
    await writeFile(lock, '');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    assert.equal(await withFileLock(lock, async () => 'ok', { timeoutMs: 1_000, staleMs: 30_000 }), 'ok');
  });

  it('lets exactly one of several waiters break the same stale lock', async () => {
    const lock = lockPath();
    await writeFile(lock, JSON.stringify({ pid: 1, host: 'other-machine/pid:[1]', token: 'dead', acquiredAt: '2020-01-01T00:00:00Z' }));
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    let inside = 0;
    let maxInside = 0;
    await Promise.all(
      Array.from({ length: 8 }, () =>
        withFileLock(lock, async () => {
          inside += 1;
          maxInside = Math.max(maxInside, inside);
          await sleep(5);
          inside -= 1;
        }, { retryMs: 2, staleMs: 30_000 }),
      ),
    );
    assert.equal(maxInside, 1);
  });
});
