/**
 * Finds a Redis for `fracture-service start`: the configured `REDIS_URL`, else one on
 * 127.0.0.1:6379, else a `redis-server` from PATH started here with its data (AOF) under
 * `DATA_DIR/redis`; else it explains how to get one. A single-machine install then needs no setup.
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import { DEFAULT_REDIS_URL } from './config.ts';
import { AppError } from './errors.ts';
import { pingRedis } from './redis.ts';

export interface FoundRedis {
  url: string;
  /** How it was found, for the start-up message. */
  source: 'REDIS_URL' | 'default port' | 'started';
  /** Stops the Redis this process started (a no-op for one it found). */
  stop(): Promise<void>;
}

export interface FindRedisOptions {
  /** `REDIS_URL` when set. */
  configuredUrl: string | undefined;
  /** Where a started Redis keeps its append-only file. */
  dataDir: string;
  /** The `redis-server` executable. Default: from PATH. */
  redisServer?: string;
  /** How long to wait for each answer. Default 1000 ms. */
  timeoutMs?: number;
  /** Where to look before starting one. Default redis://127.0.0.1:6379 (tests point it elsewhere). */
  defaultUrl?: string;
}

/** A free TCP port on 127.0.0.1, chosen by the kernel. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts `redis-server` on a free port with AOF persistence in `dataDir`; resolves once it answers. */
export async function startRedisServer(dataDir: string, redisServer = 'redis-server', timeoutMs = 10_000): Promise<{ url: string; process: ChildProcess }> {
  await mkdir(dataDir, { recursive: true });
  const port = await freePort();
  const child = spawn(
    redisServer,
    ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--appendonly', 'yes', '--save', '', '--maxmemory-policy', 'noeviction'],
    { stdio: 'ignore' },
  );
  const spawned = await new Promise<Error | null>((resolve) => {
    child.once('error', resolve);
    child.once('spawn', () => resolve(null));
  });
  if (spawned) throw spawned;
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break;
    if (await pingRedis(url, 500)) return { url, process: child };
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`redis-server did not answer on port ${port} within ${timeoutMs} ms`);
}

/**
 * The Redis to use, in the order of the module comment.
 * @throws AppError REDIS_UNAVAILABLE with the ways to get one, when none works.
 */
export async function findOrStartRedis(options: FindRedisOptions): Promise<FoundRedis> {
  const timeoutMs = options.timeoutMs ?? 1_000;
  const noop = async (): Promise<void> => {};
  if (options.configuredUrl) {
    if (await pingRedis(options.configuredUrl, timeoutMs)) return { url: options.configuredUrl, source: 'REDIS_URL', stop: noop };
    throw new AppError('REDIS_UNAVAILABLE', 'REDIS_URL is set but Redis does not answer there; start it, or unset REDIS_URL to let `start` find or start one');
  }
  const defaultUrl = options.defaultUrl ?? DEFAULT_REDIS_URL;
  if (await pingRedis(defaultUrl, timeoutMs)) return { url: defaultUrl, source: 'default port', stop: noop };
  let started: { url: string; process: ChildProcess };
  try {
    started = await startRedisServer(options.dataDir, options.redisServer);
  } catch (error) {
    throw new AppError(
      'REDIS_UNAVAILABLE',
      'no Redis found: set REDIS_URL, run one on 127.0.0.1:6379, or install redis-server (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) so `start` can launch it',
      { cause: error },
    );
  }
  const child = started.process;
  return {
    url: started.url,
    source: 'started',
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      // SIGTERM makes Redis flush its append-only file before it exits.
      child.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, 5_000)))]);
      clearTimeout(timer);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
