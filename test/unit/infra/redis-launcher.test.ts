/**
 * `findOrStartRedis` with real processes: it uses a configured or default Redis that answers,
 * otherwise starts `redis-server` (from PATH) with its append-only file under the data directory,
 * whose data survives a stop and a restart; it fails fast and says how to get Redis when it cannot.
 */
import assert from 'node:assert/strict';
import { readdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AppError } from '../../../src/infra/errors.ts';
import { findOrStartRedis, freePort, type FoundRedis } from '../../../src/infra/redis-launcher.ts';
import { isAlive } from '../../helpers/wait.ts';

const REAL_REDIS = 'redis://127.0.0.1:6379';

/** Runs `fn` on a short-lived client of `url`. */
async function withClient<T>(url: string, fn: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = new Redis(url, { maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    return await fn(redis);
  } finally {
    redis.disconnect();
  }
}

/** The pid of the server answering at `url` (from INFO server). */
async function serverPid(url: string): Promise<number> {
  const info = await withClient(url, (redis) => redis.info('server'));
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  assert.ok(Number.isInteger(pid) && pid > 0, 'INFO server names the process');
  return pid;
}


/** A URL on 127.0.0.1 where nothing listens (a port the kernel just handed out and took back). */
async function closedUrl(): Promise<string> {
  return `redis://127.0.0.1:${await freePort()}`;
}

describe('findOrStartRedis', () => {
  let root: string;
  /** pids of servers started here, killed in `after` if a failed test left them running. */
  const startedPids = new Set<number>();

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'redis-launcher-'));
  });
  after(async () => {
    for (const pid of startedPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    await rm(root, { recursive: true, force: true });
  });

  it('starts redis-server with its append-only file in dataDir when none answers, and stop() ends it', async () => {
    const dataDir = path.join(root, 'redis');
    const defaultUrl = await closedUrl();
    const found = await findOrStartRedis({ configuredUrl: undefined, dataDir, defaultUrl });
    const pid = await serverPid(found.url);
    startedPids.add(pid);
    assert.equal(found.source, 'started');
    assert.match(found.url, /^redis:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(found.url, defaultUrl);
    assert.equal(await withClient(found.url, (redis) => redis.ping()), 'PONG');
    const config = await withClient(found.url, async (redis) => ({
      appendonly: (await redis.config('GET', 'appendonly'))[1],
      dir: (await redis.config('GET', 'dir'))[1],
      policy: (await redis.config('GET', 'maxmemory-policy'))[1],
    }));
    assert.deepEqual(config, { appendonly: 'yes', dir: dataDir, policy: 'noeviction' });
    await withClient(found.url, (redis) => redis.set('launcher-test', 'kept'));

    await found.stop();
    assert.equal(isAlive(pid), false, 'stop() ended the redis-server process');
    const files = await readdir(dataDir, { recursive: true });
    assert.ok(files.some((file) => String(file).includes('appendonly')), `an append-only file in ${dataDir}: ${files.join(', ')}`);

    // The data lives in dataDir: a server started again on it has the key.
    const again = await findOrStartRedis({ configuredUrl: undefined, dataDir, defaultUrl });
    startedPids.add(await serverPid(again.url));
    try {
      assert.equal(await withClient(again.url, (redis) => redis.get('launcher-test')), 'kept');
    } finally {
      await again.stop();
    }
  });

  it('uses REDIS_URL or the default Redis when it answers, and stop() leaves it running', async () => {
    const dataDir = path.join(root, 'unused');
    const configured: FoundRedis = await findOrStartRedis({ configuredUrl: REAL_REDIS, dataDir, defaultUrl: await closedUrl() });
    assert.equal(configured.source, 'REDIS_URL');
    assert.equal(configured.url, REAL_REDIS);
    const byDefault = await findOrStartRedis({ configuredUrl: undefined, dataDir, defaultUrl: REAL_REDIS });
    assert.equal(byDefault.source, 'default port');
    await configured.stop();
    await byDefault.stop();
    assert.equal(await withClient(REAL_REDIS, (redis) => redis.ping()), 'PONG');
    await assert.rejects(readdir(dataDir), { code: 'ENOENT' }, 'nothing was started, so nothing was written');
  });

  it('fails fast with REDIS_UNAVAILABLE when REDIS_URL does not answer, starting nothing', async () => {
    const dataDir = path.join(root, 'configured');
    const began = Date.now();
    await assert.rejects(
      findOrStartRedis({ configuredUrl: await closedUrl(), dataDir, defaultUrl: REAL_REDIS }),
      (error: unknown) => error instanceof AppError && error.code === 'REDIS_UNAVAILABLE' && /REDIS_URL is set/.test(error.message),
    );
    assert.ok(Date.now() - began < 2_000, `refused in ${Date.now() - began} ms`);
    await assert.rejects(readdir(dataDir), { code: 'ENOENT' });
  });

  it('says how to get Redis when none answers and redis-server cannot be run', async () => {
    const began = Date.now();
    await assert.rejects(
      findOrStartRedis({ configuredUrl: undefined, dataDir: path.join(root, 'missing'), defaultUrl: await closedUrl(), redisServer: '/nonexistent/redis-server' }),
      (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'REDIS_UNAVAILABLE');
        assert.match(error.message, /set REDIS_URL/);
        assert.match(error.message, /127\.0\.0\.1:6379/);
        assert.match(error.message, /apt-get install redis-server/);
        assert.match(error.message, /brew install redis/);
        assert.equal((error.cause as NodeJS.ErrnoException | undefined)?.code, 'ENOENT', 'the spawn failure is the cause');
        return true;
      },
    );
    assert.ok(Date.now() - began < 3_000, `refused in ${Date.now() - began} ms`);
  });
});
