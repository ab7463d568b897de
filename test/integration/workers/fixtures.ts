/**
 * Shared set-up of the worker integration tests: a configuration with its own data directory and
 * BullMQ prefix on the real Redis, the prefix's keys deleted afterwards, a tiny synthetic dataset,
 * and polling helpers.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, type Config } from '../../../src/infra/config.ts';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { generateSyntheticDataset, type SynthRegion } from '../../../src/ml/synth/index.ts';
export { deleteKeys, REDIS_URL } from '../../helpers/redis.ts';
import { Redis } from 'ioredis';
import { deleteKeys, REDIS_URL } from '../../helpers/redis.ts';
export { waitFor } from '../../helpers/wait.ts';


/** The tfjs backend the workers train on: wasm unless FRACTURE_TEST_BACKEND says otherwise. */
export const TEST_BACKEND = process.env.FRACTURE_TEST_BACKEND ?? 'wasm';

export interface TestEnv {
  root: string;
  config: Config;
  store: ArtifactStore;
  /** The environment a worker process needs to load the same configuration. */
  env: Record<string, string>;
  /** Deletes the data directory and every Redis key under the prefix. */
  cleanup(): Promise<void>;
}

/** A fresh data directory and queue prefix; `settings` are extra environment variables. */
export async function createTestEnv(settings: Record<string, string> = {}): Promise<TestEnv> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'workers-test-'));
  const env: Record<string, string> = {
    DATA_DIR: path.join(root, 'data'),
    QUEUE_PREFIX: `test-${randomBytes(4).toString('hex')}`,
    REDIS_URL,
    FRACTURE_BACKEND: TEST_BACKEND,
    LOG_LEVEL: 'silent',
    ...settings,
  };
  const config = loadConfig(env);
  return {
    root,
    config,
    store: new ArtifactStore(config.DATA_DIR),
    env,
    async cleanup() {
      await deleteKeys(config.QUEUE_PREFIX);
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** Number of Redis keys under a prefix. */
export async function countKeys(prefix: string): Promise<number> {
  const redis = new Redis(REDIS_URL);
  try {
    let cursor = '0';
    let count = 0;
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      count += keys.length;
    } while (cursor !== '0');
    return count;
  } finally {
    redis.disconnect();
  }
}

/** Writes a synthetic dataset as `datasets/{id}`. */
export async function createDataset(
  store: ArtifactStore,
  id: string,
  options: { perClass: number; size: number; regions?: SynthRegion[]; seed?: number },
): Promise<string> {
  const outDir = store.datasetDir(id);
  await generateSyntheticDataset({ outDir, perClass: options.perClass, size: options.size, seed: options.seed ?? 7, regions: options.regions ?? ['hand'] });
  return outDir;
}

