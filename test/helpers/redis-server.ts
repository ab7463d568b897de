/**
 * A `redis-server` of a test's own (not the shared one on 6379), for fault tests: it can be killed
 * and started again on the same port and data directory, with its append-only file replayed.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { freePort } from '../../src/infra/redis-launcher.ts';
import { pingRedis } from '../../src/infra/redis.ts';

export interface OwnRedisOptions {
  /** Where the append-only file lives (created when missing). */
  dir: string;
  /** Port to listen on. Default: a free one. */
  port?: number;
  /**
   * `appendfsync`: `always` puts every acknowledged write on disk before the reply, so a SIGKILL
   * loses nothing; `everysec` (Redis's default) may lose the last second. Default `always`.
   */
  appendfsync?: 'always' | 'everysec' | 'no';
  /** How long to wait for the first PONG, ms. Default 10000. */
  timeoutMs?: number;
}

export interface OwnRedis {
  url: string;
  port: number;
  dir: string;
  process: ChildProcess;
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `redis-server` with AOF in `dir`; resolves once it answers PING. */
export async function startOwnRedis(options: OwnRedisOptions): Promise<OwnRedis> {
  await mkdir(options.dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const child = spawn(
    'redis-server',
    [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', options.dir,
      '--appendonly', 'yes',
      '--appendfsync', options.appendfsync ?? 'always',
      '--save', '',
      '--maxmemory-policy', 'noeviction',
    ],
    { stdio: 'ignore' },
  );
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('error', resolve);
    child.once('spawn', () => resolve(null));
  });
  if (spawned) throw spawned;
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
  const url = `redis://127.0.0.1:${port}`;
  const kill = async (signal: NodeJS.Signals = 'SIGKILL'): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await pingRedis(url, 500)) return { url, port, dir: options.dir, process: child, kill };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await kill();
  throw new Error(`redis-server did not answer on port ${port}`);
}
