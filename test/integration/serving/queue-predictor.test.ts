/**
 * Queue mode of prediction on the real Redis (127.0.0.1:6379, a prefix of its own, deleted at the
 * end): QueuePredictor -> `inference` queue -> a BullMQ Worker in this process running
 * createInferenceProcessor around a LocalPredictor. Answers equal the in-process predictor's, errors
 * come back as the same AppError codes, files never outlive a request, and a queue without workers
 * answers PREDICTION_TIMEOUT and then QUEUE_FULL.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { AppError } from '../../../src/infra/errors.ts';
import { DEFAULT_JOB_OPTIONS, QUEUE_NAMES } from '../../../src/infra/queues.ts';
import { LocalPredictor, type PredictResponse, type ResolvedModel } from '../../../src/serving/predictor.ts';
import { QueuePredictor } from '../../../src/serving/queue-predictor.ts';
import { EngineSelector } from '../../../src/serving/engine-selector.ts';
import type { InferenceEngine } from '../../../src/serving/inference-engine.ts';
import { TfjsEngine } from '../../../src/serving/tfjs-engine.ts';
import { createInferenceProcessor } from '../../../src/workers/inference.processor.ts';
import { useTestBackend } from '../../helpers/backend.ts';
import { CLASS_NAMES, SKIP_WITHOUT_XRAYS, hostileImages, legitimateImages, readXrays, registryOf, saveTinyModel } from '../../unit/serving/fixtures.ts';

const REDIS = { host: '127.0.0.1', port: 6379 };

describe('QueuePredictor through the inference queue', () => {
  const prefix = `test-serving-${randomUUID().slice(0, 8)}`;
  const idlePrefix = `${prefix}-idle`;
  let root: string;
  let store: ArtifactStore;
  let models: ResolvedModel[];
  let xrays: Buffer[];
  let redis: Redis;
  let local: LocalPredictor;
  let direct: LocalPredictor;
  let worker: Worker;
  let predictor: QueuePredictor;
  const workerBatches: number[] = [];

  const predictorOn = (keyPrefix: string, overrides: Partial<ConstructorParameters<typeof QueuePredictor>[0]> = {}) =>
    new QueuePredictor({
      connection: redis,
      prefix: keyPrefix,
      uploadsDir: store.uploadsDir,
      resolveModel: registryOf(models),
      timeoutMs: 20_000,
      maxQueue: 100,
      ...overrides,
    });

  const localPredictor = (engine: InferenceEngine, onBatch?: (size: number) => void) =>
    new LocalPredictor({
      resolveModel: registryOf(models),
      engine,
      maxBatchSize: 16,
      maxDelayMs: 30,
      maxQueue: 256,
      maxModels: 2,
      maxPixels: 50_000_000,
      ...(onBatch ? { onBatch } : {}),
    });

  const uploads = async (): Promise<string[]> => readdir(store.uploadsDir).catch(() => []);

  before(async () => {
    await useTestBackend();
    root = await mkdtemp(path.join(os.tmpdir(), 'queue-predictor-test-'));
    store = new ArtifactStore(path.join(root, 'data'));
    models = [await saveTinyModel(store.modelsDir, { id: 'cnn-q', seed: 7, onnx: true })];
    xrays = SKIP_WITHOUT_XRAYS ? Object.values(await legitimateImages()) : await readXrays(32);
    redis = new Redis({ ...REDIS, maxRetriesPerRequest: 1 });
    // The worker serves as production does (auto: ONNX Runtime on model.onnx); the reference is tfjs.
    local = localPredictor(new EngineSelector({ mode: 'auto' }), (size) => workerBatches.push(size));
    direct = localPredictor(new TfjsEngine());
    worker = new Worker(QUEUE_NAMES.inference, createInferenceProcessor(local, { uploadsDir: store.uploadsDir }), {
      connection: { ...REDIS, maxRetriesPerRequest: null },
      prefix,
      concurrency: 32,
    });
    predictor = predictorOn(prefix);
    await Promise.all([worker.waitUntilReady(), predictor.waitUntilReady()]);
  });

  after(async () => {
    await predictor?.close();
    await worker?.close();
    await local?.close();
    await direct?.close();
    if (redis) {
      for (const p of [prefix, idlePrefix]) {
        const keys = await redis.keys(`${p}:*`);
        if (keys.length > 0) await redis.del(...keys);
      }
      assert.deepEqual(await redis.keys(`${prefix}*`), [], 'the test left no Redis keys');
      await redis.quit();
    }
    await rm(root, { recursive: true, force: true });
  });

  const request = (ids: string[], explain = false) => ({
    images: ids.map((id, i) => ({ id, data: xrays[i % xrays.length]! })),
    explain,
  });

  /** `actual` came through the queue from the ONNX engine, `expected` from tfjs in-process. */
  function assertSameAnswer(actual: PredictResponse, expected: PredictResponse): void {
    assert.equal(actual.model.engine, 'onnx', 'the worker\'s engine travels back with the answer');
    assert.equal(expected.model.engine, 'tfjs');
    assert.deepEqual({ ...actual.model, engine: 'tfjs' }, expected.model);
    assert.equal(actual.notice, expected.notice);
    assert.deepEqual(actual.predictions.map((p) => [p.id, p.label, p.fractureProbability === null]), expected.predictions.map((p) => [p.id, p.label, p.fractureProbability === null]));
    actual.predictions.forEach((prediction, i) => {
      for (const name of CLASS_NAMES) {
        assert.ok(Math.abs(prediction.probabilities[name]! - expected.predictions[i]!.probabilities[name]!) < 1e-5);
      }
    });
  }

  it('answers exactly as the in-process predictor, with the request\'s image ids', async () => {
    const ids = ['left-wrist', 'images[1]', 'right-elbow'];
    const viaQueue = await predictor.predict(request(ids));
    const inProcess = await direct.predict(request(ids));
    assertSameAnswer(viaQueue, inProcess);
    assert.deepEqual(viaQueue.predictions.map((p) => p.id), ids);
    assert.deepEqual(await uploads(), [], 'the request\'s files are deleted');
  });

  it('carries Grad-CAM overlays back', async () => {
    const body = await predictor.predict(request(['a', 'b'], true));
    assert.ok(body.predictions.every((p) => p.heatmap?.startsWith('data:image/png;base64,')));
  });

  it('brings an undecodable image back as IMAGE_UNDECODABLE naming its position, never the caller\'s id', async () => {
    const hostile = await hostileImages();
    const images = [
      { id: 'ok', data: xrays[0]! },
      { id: 'knee-2', data: hostile.truncatedJpeg!.data },
    ];
    const error = await predictor.predict({ images, explain: false }).then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(error instanceof AppError);
    assert.equal(error.code, 'IMAGE_UNDECODABLE');
    assert.equal(error.status, 422);
    assert.match(error.message, /^images\[1\] could not be decoded/);
    assert.doesNotMatch(error.message, /knee-2/, 'the caller\'s id (maybe a patient identifier) is not repeated');
    const typeError = await predictor.predict({ images: [{ id: 'x', data: hostile.svg!.data }], explain: false }).then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(typeError instanceof AppError && typeError.code === 'IMAGE_TYPE_UNSUPPORTED');
    assert.deepEqual(await uploads(), []);
  });

  it('brings the worker\'s other refusals back with their codes (a model only the API knows)', async () => {
    const ghost: ResolvedModel = { id: 'ghost', architecture: 'cnn', version: '1', dir: path.join(root, 'ghost') };
    const apiSide = predictorOn(prefix, { resolveModel: registryOf([ghost]) });
    try {
      await assert.rejects(apiSide.predict(request(['a'])), (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'MODEL_NOT_FOUND');
        return true;
      });
    } finally {
      await apiSide.close();
    }
  });

  it('answers MODEL_NOT_FOUND without queueing a job when the API cannot resolve the model', async () => {
    const queue = new Queue(QUEUE_NAMES.inference, { connection: { ...REDIS }, prefix });
    try {
      const before = (await queue.getJobCounts('completed', 'failed', 'waiting', 'active'));
      await assert.rejects(predictor.predict({ ...request(['a']), model: 'nope' }), { code: 'MODEL_NOT_FOUND' });
      assert.deepEqual(await queue.getJobCounts('completed', 'failed', 'waiting', 'active'), before);
    } finally {
      await queue.close();
    }
  });

  it('batches concurrent queued requests together in the worker', async (t) => {
    workerBatches.length = 0;
    const bodies = await Promise.all(Array.from({ length: 32 }, (_, i) => predictor.predict({ images: [{ id: `r${i}`, data: xrays[i % xrays.length]! }], explain: false })));
    assert.deepEqual(bodies.map((b) => b.predictions[0]!.id), Array.from({ length: 32 }, (_, i) => `r${i}`));
    assert.equal(workerBatches.reduce((s, n) => s + n, 0), 32);
    assert.ok(workerBatches.length < 32, `32 jobs took ${workerBatches.length} forward passes`);
    t.diagnostic(`32 concurrent queued requests: ${workerBatches.length} forward passes (${workerBatches.join(', ')})`);
    assert.deepEqual(await uploads(), []);
  });

  it('refuses a job naming a file outside the uploads directory', async () => {
    const queue = new Queue(QUEUE_NAMES.inference, { connection: { ...REDIS }, prefix });
    const events = new QueueEvents(QUEUE_NAMES.inference, { connection: { ...REDIS }, prefix });
    try {
      await events.waitUntilReady();
      const job = await queue.add('predict', { modelId: 'cnn-q', imagePaths: ['/etc/passwd'], explain: false }, DEFAULT_JOB_OPTIONS.predict);
      await assert.rejects(job.waitUntilFinished(events, 10_000), /invalid predict job: imagePaths must be files directly under the uploads directory/);
    } finally {
      await events.close();
      await queue.close();
    }
  });

  it('answers PREDICTION_TIMEOUT when no worker takes the job, then QUEUE_FULL while it waits', async () => {
    const idle = predictorOn(idlePrefix, { timeoutMs: 1_500, maxQueue: 1 });
    const queue = new Queue(QUEUE_NAMES.inference, { connection: { ...REDIS }, prefix: idlePrefix });
    try {
      await idle.waitUntilReady();
      const waiting = idle.predict(request(['a']));
      // The first job now waits in a queue no worker serves.
      for (let i = 0; i < 100 && (await queue.count()) === 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(await queue.count(), 1);
      const full = await idle.predict(request(['b'])).then(() => assert.fail('accepted'), (e: unknown) => e);
      assert.ok(full instanceof AppError);
      assert.equal(full.code, 'QUEUE_FULL');
      assert.equal(full.status, 503);
      assert.ok(Number(full.headers['Retry-After']) >= 1);

      const timedOut = await waiting.then(() => assert.fail('answered'), (e: unknown) => e);
      assert.ok(timedOut instanceof AppError);
      assert.equal(timedOut.code, 'PREDICTION_TIMEOUT');
      assert.equal(timedOut.status, 503);
      assert.equal(await queue.count(), 0, 'the abandoned job was taken back');
      assert.deepEqual(await uploads(), []);
    } finally {
      await queue.close();
      await idle.close();
    }
  });
});
