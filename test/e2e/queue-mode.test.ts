/**
 * The compose topology as processes: `fracture-service api` (HTTP only) and `fracture-service worker
 * --queues inference` on one `DATA_DIR`, `QUEUE_PREFIX` and Redis. Predictions go through the
 * `inference` queue to the worker and back; the request images the API hands over in `uploads/` are
 * deleted; and without a worker, readiness says so and a prediction answers 503 in bounded time
 * instead of hanging.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { QUEUE_NAMES } from '../../src/infra/queues.ts';
import { freePort } from '../../src/infra/redis-launcher.ts';
import { deleteKeys, imageForm, readXrays, REDIS_URL, seedProductionModel, SKIP_WITHOUT_XRAYS, testPrefix, type SeededModel } from './helpers/service-fixtures.ts';
import { http, killAllServices, spawnService, waitFor } from './helpers/service-process.ts';

/** How long the API waits for a worker's answer: short, so the no-worker case is quick. */
const PREDICT_TIMEOUT_MS = 2_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;

interface Readiness {
  ready: boolean;
  checks: Record<'redis' | 'backend' | 'model', { ok: boolean; detail?: string }>;
}

describe('api + inference worker (compose topology)', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let root: string;
  let dataDir: string;
  let seeded: SeededModel;
  const prefix = testPrefix('queue');

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'e2e-queue-'));
    dataDir = path.join(root, 'data');
    seeded = await seedProductionModel(dataDir);
  });
  after(async () => {
    await killAllServices();
    await deleteKeys(prefix);
    await rm(root, { recursive: true, force: true });
  });

  it('predicts through the inference queue, and answers 503 without a worker', async (t) => {
    const port = await freePort();
    const metricsPort = await freePort();
    const secret = 'pacs-secret-0123456789abcdef';
    const shared = {
      DATA_DIR: dataDir,
      QUEUE_PREFIX: prefix,
      REDIS_URL,
      FRACTURE_BACKEND: 'wasm',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    };
    const worker = spawnService(['worker', '--queues', 'inference'], { ...shared, HOST: '127.0.0.1', WORKER_METRICS_PORT: String(metricsPort) });
    const api = spawnService(['api'], {
      ...shared,
      PORT: String(port),
      HOST: '127.0.0.1',
      API_KEYS: `pacs:${secret}:predict`,
      PREDICT_TIMEOUT_MS: String(PREDICT_TIMEOUT_MS),
    });
    const url = `http://127.0.0.1:${port}`;
    const auth = { authorization: `Bearer ${secret}` };
    const readiness = async (status: number): Promise<Readiness | undefined> => {
      if (!api.running()) throw new Error(`api exited: ${api.stderr().slice(-2000)}`);
      if (!worker.running() && status === 200) throw new Error(`worker exited: ${worker.stderr().slice(-2000)}`);
      const answer = await http(`${url}/readyz`, { timeoutMs: 3_000 });
      return answer.status === status ? (answer.json as Readiness) : undefined;
    };

    const spawned = Date.now();
    const ready = await waitFor('/readyz 200 with an inference worker', () => readiness(200), 60_000);
    t.diagnostic(`api + worker ready ${Date.now() - spawned} ms after spawning`);
    assert.deepEqual(ready.checks.backend, { ok: true, detail: '1 inference worker(s) connected' });
    assert.match(ready.checks.model.detail ?? '', new RegExp(`^${seeded.modelId} `));
    assert.equal(ready.checks.redis.ok, true);

    const xrays = await readXrays(2);
    const answer = await http(`${url}/v1/predict`, { method: 'POST', headers: auth, body: imageForm(xrays) });
    assert.equal(answer.status, 200, answer.text);
    const body = answer.json as {
      model: { id: string; version: string };
      predictions: { id: string; label: string; probabilities: Record<string, number> }[];
      notice: string;
    };
    assert.equal(body.model.id, seeded.modelId);
    assert.equal(body.model.version, seeded.version);
    assert.match(body.notice, /For research use only/);
    assert.equal(body.predictions.length, 2);
    assert.equal(new Set(body.predictions.map((p) => p.id)).size, 2, 'each image has its own id');
    for (const prediction of body.predictions) {
      assert.deepEqual(Object.keys(prediction.probabilities).sort(), [...seeded.classes].sort());
      assert.ok(seeded.classes.includes(prediction.label));
    }
    const uploads = path.join(dataDir, 'uploads');
    assert.deepEqual(await readdir(uploads), [], 'the images handed to the worker are deleted');
    // The forward pass ran in the worker: its own /metrics counts the two images.
    const workerMetrics = await http(`http://127.0.0.1:${metricsPort}/metrics`);
    assert.equal(workerMetrics.status, 200);
    assert.match(workerMetrics.text, /^predict_batch_size_sum 2$/m);

    const stopping = Date.now();
    const workerExit = await worker.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + 5_000);
    assert.deepEqual(workerExit, { code: 0, signal: null }, worker.stderr().slice(-2000));
    const workerStopped = Date.now() - stopping;
    assert.ok(workerStopped < SHUTDOWN_TIMEOUT_MS, `the worker stopped in ${workerStopped} ms`);

    const unready = await waitFor('/readyz 503 once the worker is gone', () => readiness(503), 10_000);
    t.diagnostic(`worker exited ${workerStopped} ms after SIGTERM; /readyz 503 ${Date.now() - stopping} ms after SIGTERM`);
    assert.deepEqual(unready.checks.backend, { ok: false, detail: 'no inference worker is connected' });
    assert.equal(unready.ready, false);

    const began = Date.now();
    const orphan = await http(`${url}/v1/predict`, { method: 'POST', headers: auth, body: imageForm(xrays.slice(0, 1)), timeoutMs: PREDICT_TIMEOUT_MS + 8_000 });
    const waited = Date.now() - began;
    t.diagnostic(
      `without a worker: ${orphan.status} ${(orphan.json as { code?: string } | undefined)?.code} after ${waited} ms ` +
        `(PREDICT_TIMEOUT_MS ${PREDICT_TIMEOUT_MS}), Retry-After: ${orphan.headers.get('retry-after') ?? 'none'}`,
    );
    assert.equal(orphan.status, 503, orphan.text);
    assert.match(orphan.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal((orphan.json as { code: string }).code, 'PREDICTION_TIMEOUT');
    assert.ok(waited >= PREDICT_TIMEOUT_MS - 100 && waited < PREDICT_TIMEOUT_MS + 5_000, `answered after ${waited} ms`);
    assert.deepEqual(await readdir(uploads), [], 'the abandoned request\'s image is deleted too');
    // The abandoned job is taken back, so a worker that comes later does not run it for nobody.
    const queue = new Queue(QUEUE_NAMES.inference, { connection: { url: REDIS_URL }, prefix });
    try {
      assert.deepEqual(await queue.getJobCounts('wait', 'prioritized', 'active', 'delayed'), { wait: 0, prioritized: 0, active: 0, delayed: 0 });
    } finally {
      await queue.close();
    }

    const apiExit = await api.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + 5_000);
    assert.deepEqual(apiExit, { code: 0, signal: null }, api.stderr().slice(-2000));
  });
});
