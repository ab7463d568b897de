/**
 * A tampered model (issue 5, "Faults"): one byte of the `production` model's weight shard under
 * `DATA_DIR/models/{id}/` is flipped, so its sha256 no longer matches `metadata.json`. A runtime that
 * has not loaded the model yet refuses predictions with 500 `MODEL_CORRUPT` (leaking no tensor) and
 * its `/readyz` answers 503 with the model check failing, in in-process mode (load-time verification)
 * and in queue mode (`models.verify`). With the byte restored, a fresh runtime serves and is ready
 * again: the refusal came from the tampering and nothing else.
 */
import assert from 'node:assert/strict';
import { open, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { createApiRuntime, type ApiRuntime, type PredictionMode } from '../../../src/runtime/service-context.ts';
import { multipartBody, startApiFixture, type ApiFixture } from './api-fixture.ts';

interface ReadinessBody {
  ready: boolean;
  checks: Record<'redis' | 'backend' | 'model', { ok: boolean; detail?: string }>;
}

describe('a tampered model file', () => {
  let fx: ApiFixture;
  let shard: string;
  let modelId: string;
  let predictRequest: { payload: Buffer; headers: Record<string, string> };
  const runtimes: ApiRuntime[] = [];

  /** A new API runtime on the fixture's context: its model cache is empty. */
  const freshRuntime = async (mode: PredictionMode): Promise<ApiRuntime> => {
    const runtime = await createApiRuntime(fx.context, { keys: parseApiKeys(fx.config.API_KEYS ?? ''), mode });
    runtimes.push(runtime);
    return runtime;
  };

  /** XORs one byte in the middle of the shard (twice restores it). */
  const flipByte = async (): Promise<void> => {
    const handle = await open(shard, 'r+');
    try {
      const { size } = await handle.stat();
      const position = Math.floor(size / 2);
      const byte = Buffer.alloc(1);
      await handle.read(byte, 0, 1, position);
      byte[0] = (byte[0] ?? 0) ^ 0x01;
      await handle.write(byte, 0, 1, position);
    } finally {
      await handle.close();
    }
  };

  const readiness = async (runtime: ApiRuntime) => {
    const response = await runtime.app.inject({ method: 'GET', url: '/readyz' });
    return { statusCode: response.statusCode, body: JSON.parse(response.body) as ReadinessBody };
  };

  before(async () => {
    fx = await startApiFixture();
    assert.ok(fx.experiment);
    modelId = fx.experiment.modelId;
    const modelDir = fx.context.store.modelDir(modelId);
    const shards = (await readdir(modelDir)).filter((name) => name.endsWith('.bin'));
    assert.equal(shards.length, 1, `one weight shard expected, found ${shards.join(', ')}`);
    shard = path.join(modelDir, shards[0] as string);
    const classDir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_normal');
    const [image] = (await readdir(classDir)).filter((name) => name.endsWith('.png')).sort();
    assert.ok(image);
    const { body, contentType } = await multipartBody([{ name: 'image', value: await readFile(path.join(classDir, image)), filename: 'x.png', type: 'image/png' }]);
    predictRequest = { payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } };
  });

  after(async () => {
    for (const runtime of runtimes) await runtime.close();
    await fx?.close();
  });

  it('is refused with 500 MODEL_CORRUPT and reported by /readyz (in-process), and serves again once restored', async () => {
    // The fixture's runtime loads the intact model first: a process that already serves it keeps
    // its verified copy in memory.
    const loaded = await fx.app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
    assert.equal(loaded.statusCode, 200, loaded.body);

    await flipByte();
    const runtime = await freshRuntime('in-process');
    const tensorsBefore = tf.memory().numTensors;
    const refused = await runtime.app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
    assert.equal(refused.statusCode, 500, refused.body);
    const problem = JSON.parse(refused.body) as { code: string; detail?: string };
    assert.equal(problem.code, 'MODEL_CORRUPT');
    assert.ok(!String(problem.detail).includes(fx.root), 'no server path in the problem');
    assert.equal(tf.memory().numTensors, tensorsBefore, 'a refused load leaks no tensor');

    const notReady = await readiness(runtime);
    assert.equal(notReady.statusCode, 503);
    assert.equal(notReady.body.ready, false);
    assert.equal(notReady.body.checks.model.ok, false);
    assert.ok(notReady.body.checks.model.detail, 'the failing model check says why');
    assert.equal(notReady.body.checks.redis.ok, true);

    const stillServing = await fx.app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
    const oldReadiness = await readiness(fx.runtime);
    console.log(`# tampered: fresh runtime ${refused.statusCode} ${problem.code} (${problem.detail}); /readyz model: ${notReady.body.checks.model.detail}; ` +
      `the runtime that loaded it before: predict ${stillServing.statusCode}, /readyz ${oldReadiness.statusCode}`);

    await flipByte();
    const restored = await freshRuntime('in-process');
    const served = await restored.app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
    assert.equal(served.statusCode, 200, served.body);
    const ready = await readiness(restored);
    assert.equal(ready.statusCode, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.checks.model.ok, true);
  });

  it('fails the queue-mode model check (models.verify) while the shard is tampered', async () => {
    await flipByte();
    try {
      const tampered = await readiness(await freshRuntime('queue'));
      assert.equal(tampered.statusCode, 503);
      assert.equal(tampered.body.checks.model.ok, false);
      assert.match(tampered.body.checks.model.detail ?? '', new RegExp(modelId));
      console.log(`# queue mode /readyz model: ${tampered.body.checks.model.detail}`);
    } finally {
      await flipByte();
    }
    const intact = await readiness(await freshRuntime('queue'));
    // No inference worker runs here, so the API is not ready, but the model check passes.
    assert.equal(intact.body.checks.model.ok, true, JSON.stringify(intact.body));
  });
});
