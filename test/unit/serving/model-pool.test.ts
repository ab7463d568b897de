/**
 * ModelPool: one load per model under concurrency, warm-up before hand-out, failures not cached, LRU
 * eviction that disposes only once no lease holds the model; and with real tfjs models, that
 * eviction gives every tensor back.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { warmUpModel, type EngineModel } from '../../../src/serving/inference-engine.ts';
import { ModelPool } from '../../../src/serving/model-pool.ts';
import { TfjsEngine } from '../../../src/serving/tfjs-engine.ts';
import { useTestBackend } from '../../helpers/backend.ts';
import { saveTinyModel, tensorCount } from './fixtures.ts';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface FakeModel {
  key: string;
  warm: boolean;
  disposed: boolean;
}

/** A pool of fake models that records loads, warm-ups and disposals. */
function fakePool(options: { maxModels: number; failLoads?: Set<string>; failWarmUps?: Set<string>; loadMs?: number }) {
  const loads: string[] = [];
  const disposed: string[] = [];
  const pool = new ModelPool<FakeModel, string>({
    maxModels: options.maxModels,
    load: async (key, source) => {
      loads.push(key);
      assert.equal(source, `/models/${key}`);
      await sleep(options.loadMs ?? 5);
      if (options.failLoads?.has(key)) throw new Error(`cannot load ${key}`);
      return { key, warm: false, disposed: false };
    },
    warmUp: async (model) => {
      await sleep(1);
      if (options.failWarmUps?.has(model.key)) throw new Error(`warm-up of ${model.key} failed`);
      model.warm = true;
    },
    dispose: (model) => {
      model.disposed = true;
      disposed.push(model.key);
    },
  });
  const acquire = (key: string) => pool.acquire(key, `/models/${key}`);
  return { pool, loads, disposed, acquire };
}

describe('ModelPool', () => {
  it('loads a model once for many concurrent requests and hands it out warmed up', async () => {
    const { pool, loads, acquire } = fakePool({ maxModels: 2, loadMs: 30 });
    const leases = await Promise.all(Array.from({ length: 20 }, () => acquire('m1')));
    assert.deepEqual(loads, ['m1']);
    assert.equal(pool.loadCount, 1);
    assert.ok(leases.every((lease) => lease.value === leases[0]!.value && lease.value.warm));
    for (const lease of leases) lease.release();
    const again = await acquire('m1');
    assert.deepEqual(loads, ['m1'], 'a loaded model is not loaded again');
    again.release();
  });

  it('does not keep a failed load: the next request tries again', async () => {
    const failLoads = new Set(['bad']);
    const { pool, loads, acquire } = fakePool({ maxModels: 2, failLoads });
    const results = await Promise.allSettled([acquire('bad'), acquire('bad')]);
    assert.ok(results.every((r) => r.status === 'rejected' && /cannot load bad/.test(String(r.reason))));
    assert.deepEqual(loads, ['bad'], 'concurrent requests shared the failing load');
    assert.equal(pool.has('bad'), false);
    failLoads.delete('bad');
    const lease = await acquire('bad');
    assert.deepEqual(loads, ['bad', 'bad']);
    lease.release();
  });

  it('disposes a model whose warm-up fails and does not keep it', async () => {
    const { pool, disposed, acquire } = fakePool({ maxModels: 2, failWarmUps: new Set(['cold']) });
    await assert.rejects(acquire('cold'), /warm-up of cold failed/);
    assert.deepEqual(disposed, ['cold']);
    assert.equal(pool.size, 0);
  });

  it('evicts the least recently used model beyond maxModels and disposes it', async () => {
    const { pool, disposed, acquire } = fakePool({ maxModels: 2 });
    for (const key of ['a', 'b']) (await acquire(key)).release();
    (await acquire('a')).release(); // a is now the most recent
    (await acquire('c')).release();
    await sleep(0);
    assert.deepEqual(disposed, ['b']);
    assert.deepEqual(pool.keys().sort(), ['a', 'c']);
  });

  it('waits for the last lease before disposing an evicted model', async () => {
    const { disposed, acquire } = fakePool({ maxModels: 1 });
    const held = await acquire('a');
    (await acquire('b')).release(); // evicts a while it is in use
    await sleep(0);
    assert.deepEqual(disposed, [], 'a is still leased');
    assert.equal(held.value.disposed, false);
    held.release();
    held.release(); // idempotent
    await sleep(0);
    assert.deepEqual(disposed, ['a']);
  });

  it('close() disposes every model once', async () => {
    const { pool, disposed, acquire } = fakePool({ maxModels: 3 });
    for (const key of ['a', 'b', 'c']) (await acquire(key)).release();
    await pool.close();
    assert.deepEqual(disposed.sort(), ['a', 'b', 'c']);
    assert.equal(pool.size, 0);
  });

  it('rejects a maxModels below 1', () => {
    assert.throws(
      () => new ModelPool({ maxModels: 0, load: async () => 1, dispose: () => undefined }),
      RangeError,
    );
  });
});

describe('ModelPool with tfjs models', () => {
  let root: string;
  const dirs = new Map<string, string>();

  before(async () => {
    await useTestBackend();
    root = await mkdtemp(path.join(os.tmpdir(), 'model-pool-test-'));
    for (const [i, id] of ['m1', 'm2', 'm3'].entries()) dirs.set(id, (await saveTinyModel(root, { id, seed: 10 + i })).dir);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  function tfjsPool(maxModels: number) {
    const engine = new TfjsEngine();
    let warmUps = 0;
    const pool = new ModelPool<EngineModel, string>({
      maxModels,
      load: (_id, dir) => engine.load(dir),
      warmUp: async (model) => {
        warmUps++;
        await warmUpModel(model);
      },
      dispose: (model) => model.dispose(),
    });
    return { pool, warmUps: () => warmUps };
  }

  it('gives every tensor back when models are evicted, and leaks nothing over many cycles', async () => {
    const baseline = tensorCount();
    const { pool, warmUps } = tfjsPool(1);
    const first = await pool.acquire('m1', dirs.get('m1')!);
    const perModel = tensorCount() - baseline;
    assert.ok(perModel > 0, 'a loaded model holds its weights as tensors');
    first.release();
    for (let round = 0; round < 3; round++) {
      for (const id of ['m2', 'm3', 'm1']) {
        const lease = await pool.acquire(id, dirs.get(id)!);
        const out = await lease.value.predict(new Float32Array(32 * 32), 1);
        assert.equal(out.length, 3);
        lease.release();
        await sleep(0);
        assert.equal(tensorCount() - baseline, perModel, `one model loaded at a time (round ${round}, ${id})`);
      }
    }
    assert.equal(pool.loadCount, 10);
    assert.equal(warmUps(), 10);
    await pool.close();
    assert.equal(tensorCount(), baseline);
  });

  it('loads a real model once under 16 concurrent requests', async () => {
    const baseline = tensorCount();
    const { pool } = tfjsPool(2);
    const leases = await Promise.all(Array.from({ length: 16 }, () => pool.acquire('m2', dirs.get('m2')!)));
    assert.equal(pool.loadCount, 1);
    assert.ok(leases.every((l) => l.value === leases[0]!.value));
    for (const lease of leases) lease.release();
    await pool.close();
    assert.equal(tensorCount(), baseline);
  });
});
