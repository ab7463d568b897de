/**
 * LocalPredictor on tiny CNNs built and saved at 32 px (real tfjs, real sharp, real X-rays): the
 * response body, agreement with the ML engine's own classifier, dynamic batching across concurrent
 * requests, Grad-CAM overlays, strict image checks before any forward pass, backpressure, readiness,
 * LRU of models and no tensor leaks.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../../src/infra/errors.ts';
import type { ImageOptions } from '../../../src/ml/data/index.ts';
import { classifyImages } from '../../../src/ml/inference/index.ts';
import { loadModel } from '../../../src/ml/persist/index.ts';
import type { EngineModel, InferenceEngine } from '../../../src/serving/inference-engine.ts';
import { LocalPredictor, PREDICTION_NOTICE, type LocalPredictorOptions, type ResolvedModel } from '../../../src/serving/predictor.ts';
import { TfjsEngine } from '../../../src/serving/tfjs-engine.ts';
import { useTestBackend } from '../../helpers/backend.ts';
import {
  CLASS_NAMES,
  POSITIVE_CLASSES,
  SKIP_WITHOUT_XRAYS,
  hostileImages,
  legitimateImages,
  readXrays,
  registryOf,
  saveTinyModel,
  tensorCount,
} from './fixtures.ts';

let root: string;
let models: ResolvedModel[];
let xrays: Buffer[];

before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'predictor-test-'));
  models = [
    await saveTinyModel(root, { id: 'cnn-a', seed: 1 }),
    await saveTinyModel(root, { id: 'cnn-b', seed: 2, channels: 3 }),
    await saveTinyModel(root, { id: 'no-positive', seed: 3, classNames: ['left', 'right'], positiveClasses: [] }),
  ];
  if (!SKIP_WITHOUT_XRAYS) xrays = await readXrays(32);
  else {
    // Without the shared radiographs, synthetic PNGs stand in (the real-image test itself skips).
    const legit = await legitimateImages();
    xrays = Array.from({ length: 32 }, (_, i) => Object.values(legit)[i % 5] as Buffer);
  }
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A predictor over the saved models that counts forward passes. */
function predictorWith(overrides: Partial<LocalPredictorOptions> = {}) {
  const batches: number[] = [];
  const predictor = new LocalPredictor({
    resolveModel: registryOf(models),
    engine: new TfjsEngine(),
    maxBatchSize: 32,
    maxDelayMs: 25,
    maxQueue: 256,
    maxModels: 2,
    maxPixels: 50_000_000,
    onBatch: (size) => batches.push(size),
    ...overrides,
  });
  return { predictor, batches };
}

const images = (list: readonly Buffer[]) => list.map((data, i) => ({ id: `images[${i}]`, data }));

describe('LocalPredictor', () => {
  it('answers with the API response body: model, one prediction per image in order, notice', async () => {
    const { predictor } = predictorWith();
    try {
      const body = await predictor.predict({ images: [{ id: 'left-wrist', data: xrays[0]! }, { id: 'images[1]', data: xrays[1]! }], explain: false });
      assert.deepEqual(body.model, { id: 'cnn-a', architecture: 'cnn', version: 'cnn-a@1', engine: 'tfjs' }, 'default model is production; TfjsEngine answers');
      assert.equal(body.notice, PREDICTION_NOTICE);
      assert.equal(body.notice, 'For research use only. Not for use in diagnostic procedures.');
      assert.deepEqual(body.predictions.map((p) => p.id), ['left-wrist', 'images[1]']);
      for (const prediction of body.predictions) {
        assert.deepEqual(Object.keys(prediction.probabilities), [...CLASS_NAMES]);
        const values = Object.values(prediction.probabilities);
        assert.ok(Math.abs(values.reduce((s, p) => s + p, 0) - 1) < 1e-4);
        const best = CLASS_NAMES[values.indexOf(Math.max(...values))];
        assert.equal(prediction.label, best);
        const positive = POSITIVE_CLASSES.reduce((s, name) => s + prediction.probabilities[name]!, 0);
        assert.ok(Math.abs(prediction.fractureProbability! - positive) < 1e-6);
        assert.equal(prediction.heatmap, undefined);
      }
    } finally {
      await predictor.close();
    }
  });

  it('agrees with the ML engine\'s classifyImages on real X-rays (same preprocessing, same model)', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const { predictor } = predictorWith();
    const loaded = await loadModel(models[1]!.dir);
    try {
      const sample = xrays.slice(0, 6);
      const body = await predictor.predict({ model: 'cnn-b', images: images(sample), explain: false });
      const expected = await classifyImages(loaded, sample);
      body.predictions.forEach((prediction, i) => {
        const reference = expected[i]!;
        assert.equal(prediction.label, reference.label);
        for (const name of CLASS_NAMES) assert.ok(Math.abs(prediction.probabilities[name]! - reference.probabilities[name]!) < 1e-5);
      });
      // The model differs by seed, so the answer depends on the model asked for.
      const other = await predictor.predict({ model: 'cnn-a', images: images(sample), explain: false });
      assert.notDeepEqual(other.predictions.map((p) => p.probabilities), body.predictions.map((p) => p.probabilities));
    } finally {
      loaded.model.dispose();
      await predictor.close();
    }
  });

  it('serves 32 concurrent single-image requests in far fewer than 32 forward passes', async (t) => {
    const { predictor, batches } = predictorWith({ maxBatchSize: 16, maxDelayMs: 50 });
    try {
      await predictor.warmUp('cnn-a');
      assert.deepEqual(batches, [], 'warm-up runs outside the batcher');
      const answers = await Promise.all(
        xrays.slice(0, 32).map((data, i) => predictor.predict({ model: 'cnn-a', images: [{ id: `r${i}`, data }], explain: false })),
      );
      assert.deepEqual(answers.map((a) => a.predictions[0]!.id), Array.from({ length: 32 }, (_, i) => `r${i}`));
      assert.equal(batches.reduce((s, n) => s + n, 0), 32, 'every image went through the batcher once');
      assert.ok(batches.length < 32, `32 requests took ${batches.length} forward passes`);
      t.diagnostic(`32 concurrent requests: ${batches.length} forward passes of ${batches.join(', ')} images`);
      assert.ok(batches.every((n) => n <= 16));
      assert.ok(Math.max(...batches) > 1);
    } finally {
      await predictor.close();
    }
  });

  it('gives the same answer for an image alone and inside a batch', async () => {
    const { predictor } = predictorWith();
    try {
      const alone = await predictor.predict({ images: [{ id: 'x', data: xrays[5]! }], explain: false });
      const batched = await predictor.predict({ images: images(xrays.slice(0, 8)), explain: false });
      for (const name of CLASS_NAMES) {
        assert.ok(Math.abs(alone.predictions[0]!.probabilities[name]! - batched.predictions[5]!.probabilities[name]!) < 1e-5);
      }
    } finally {
      await predictor.close();
    }
  });

  it('adds a Grad-CAM PNG overlay per image with explain', async () => {
    const { predictor, batches } = predictorWith();
    try {
      const body = await predictor.predict({ images: images(xrays.slice(0, 2)), explain: true });
      assert.deepEqual(batches, [2], 'the overlays need no extra batched pass');
      const before = tensorCount();
      for (const prediction of body.predictions) {
        assert.match(prediction.heatmap!, /^data:image\/png;base64,/);
        const png = Buffer.from(prediction.heatmap!.slice('data:image/png;base64,'.length), 'base64');
        const meta = await sharp(png).metadata();
        assert.equal(meta.format, 'png');
        assert.ok(meta.width >= 256 && meta.height >= 256, `overlay is ${meta.width}x${meta.height}`);
      }
      await predictor.predict({ images: images(xrays.slice(0, 2)), explain: true });
      assert.equal(tensorCount(), before, 'Grad-CAM leaks no tensors');
    } finally {
      await predictor.close();
    }
  });

  it('answers fractureProbability null for a model without a positive class', async () => {
    const { predictor } = predictorWith();
    try {
      const body = await predictor.predict({ model: 'no-positive', images: images(xrays.slice(0, 1)), explain: false });
      assert.equal(body.predictions[0]!.fractureProbability, null);
      assert.deepEqual(Object.keys(body.predictions[0]!.probabilities), ['left', 'right']);
    } finally {
      await predictor.close();
    }
  });

  it('decodes legitimate encodings (16-bit, grey, RGBA, EXIF-rotated)', async () => {
    const { predictor } = predictorWith();
    try {
      const legit = Object.values(await legitimateImages());
      const body = await predictor.predict({ images: images(legit), explain: false });
      assert.equal(body.predictions.length, legit.length);
    } finally {
      await predictor.close();
    }
  });

  it('refuses hostile images with 4xx codes before any forward pass, naming the image by its position', async () => {
    const { predictor, batches } = predictorWith();
    try {
      for (const [name, { data, code }] of Object.entries(await hostileImages())) {
        const request = { images: [{ id: 'ok-0', data: xrays[0]! }, { id: 'ok-1', data: xrays[1]! }, { id: `bad-${name}`, data }], explain: false };
        const error = await predictor.predict(request).then(() => assert.fail(`${name} accepted`), (e: unknown) => e);
        assert.ok(error instanceof AppError, name);
        assert.equal(error.code, code, name);
        assert.ok(error.status >= 400 && error.status < 500);
        assert.match(error.message, /^images\[2\] /, name);
        assert.doesNotMatch(error.message, /bad-/, 'the caller\'s id is not repeated');
      }
      assert.deepEqual(batches, [], 'no forward pass for a request with a bad image');
    } finally {
      await predictor.close();
    }
    const strict = predictorWith({ maxPixels: 100 });
    try {
      const tooLarge = await strict.predictor.predict({ images: images(xrays.slice(0, 1)), explain: false }).then(
        () => assert.fail('accepted'),
        (e: unknown) => e,
      );
      assert.ok(tooLarge instanceof AppError && tooLarge.code === 'IMAGE_TOO_LARGE');
      assert.equal(tooLarge.status, 422);
      assert.deepEqual(strict.batches, []);
    } finally {
      await strict.predictor.close();
    }
  });

  it('answers MODEL_NOT_FOUND for an unknown model and VALIDATION_FAILED for no images', async () => {
    const { predictor } = predictorWith();
    try {
      await assert.rejects(predictor.predict({ model: 'nope', images: images(xrays.slice(0, 1)), explain: false }), { code: 'MODEL_NOT_FOUND', status: 404 });
      await assert.rejects(predictor.predict({ images: [], explain: false }), { code: 'VALIDATION_FAILED' });
    } finally {
      await predictor.close();
    }
  });

  it('answers MODEL_NOT_FOUND for a missing model directory and MODEL_CORRUPT for a damaged one', async () => {
    const corrupt = await saveTinyModel(root, { id: 'corrupt', seed: 4 });
    const shard = (await readdir(corrupt.dir)).find((name) => name.endsWith('.bin'))!;
    await writeFile(path.join(corrupt.dir, shard), Buffer.alloc((await stat(path.join(corrupt.dir, shard))).size, 1));
    const missing: ResolvedModel = { id: 'missing', architecture: 'cnn', version: '1', dir: path.join(root, 'no-such-dir') };
    const { predictor } = predictorWith({ resolveModel: registryOf([missing, corrupt]) });
    try {
      await assert.rejects(predictor.predict({ images: images(xrays.slice(0, 1)), explain: false }), { code: 'MODEL_NOT_FOUND' });
      await assert.rejects(predictor.predict({ model: 'corrupt', images: images(xrays.slice(0, 1)), explain: false }), (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'MODEL_CORRUPT');
        return true;
      });
      assert.equal(predictor.loadedModels, 0, 'a failed load is not kept');
    } finally {
      await predictor.close();
    }
  });

  it('reports readiness: not ready before warm-up or when the model is missing, ready after', async () => {
    const { predictor } = predictorWith();
    assert.equal(predictor.status().ready, false);
    assert.equal(predictor.status().engine, 'tfjs');
    await assert.rejects(predictor.warmUp('missing-alias'), { code: 'MODEL_NOT_FOUND' });
    assert.equal(predictor.status().ready, false);
    assert.equal(predictor.status().code, 'MODEL_NOT_FOUND');
    const status = await predictor.warmUp();
    assert.deepEqual(status, { ready: true, engine: 'tfjs', model: { id: 'cnn-a', architecture: 'cnn', version: 'cnn-a@1' } });
    assert.equal(predictor.loadedModels, 1);
    await predictor.close();
    assert.equal(predictor.status().ready, false);
    await assert.rejects(predictor.predict({ images: images(xrays.slice(0, 1)), explain: false }), { code: 'SHUTTING_DOWN' });
  });

  it('keeps at most maxModels loaded and gives all tensors back on close', async () => {
    const baseline = tensorCount();
    const { predictor } = predictorWith({ maxModels: 1 });
    await predictor.predict({ model: 'cnn-a', images: images(xrays.slice(0, 2)), explain: false });
    const oneModel = tensorCount();
    for (const model of ['cnn-b', 'no-positive', 'cnn-a', 'cnn-b']) {
      await predictor.predict({ model, images: images(xrays.slice(0, 2)), explain: true });
      assert.equal(predictor.loadedModels, 1);
    }
    await predictor.predict({ model: 'cnn-a', images: images(xrays.slice(0, 2)), explain: false });
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(tensorCount(), oneModel, 'evicted models were disposed');
    await predictor.close();
    assert.equal(tensorCount(), baseline);
  });
});

describe('LocalPredictor backpressure and shutdown', () => {
  /** An engine whose forward passes wait for `release()`, to hold a batch open. */
  function gatedEngine() {
    let open: () => void = () => undefined;
    let gate = new Promise<void>((r) => (open = r));
    let passes = 0;
    const imageOptions: ImageOptions = { height: 8, width: 8, channels: 1, mode: 'unit', resize: 'letterbox' };
    const engine: InferenceEngine = {
      name: 'fake',
      load: async (): Promise<EngineModel> => ({
        info: { architecture: 'cnn', classNames: ['a_fractured', 'b'], positiveClasses: ['a_fractured'], imageOptions },
        predict: async (_batch, count) => {
          passes++;
          if (passes > 1) await gate; // the warm-up pass is free
          return new Float32Array(count * 2).fill(0.5);
        },
        dispose: () => undefined,
      }),
    };
    return {
      engine,
      release: () => {
        open();
        gate = new Promise<void>((r) => (open = r));
      },
    };
  }

  it('answers QUEUE_FULL with Retry-After when the model\'s backlog is full, and serves the rest', async () => {
    const { engine, release } = gatedEngine();
    const predictor = new LocalPredictor({
      resolveModel: registryOf(models),
      engine,
      maxBatchSize: 2,
      maxDelayMs: 0,
      maxQueue: 4,
      maxModels: 1,
      maxPixels: 50_000_000,
    });
    await predictor.warmUp();
    const one = (id: string) => predictor.predict({ images: [{ id, data: xrays[0]! }], explain: false });
    const first = one('first'); // runs, held by the gate
    await new Promise((r) => setTimeout(r, 200));
    const queued = [one('q1'), one('q2'), one('q3'), one('q4')];
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(predictor.backlog, 4);
    const refused = await one('over').then(() => assert.fail('accepted'), (e: unknown) => e);
    assert.ok(refused instanceof AppError);
    assert.equal(refused.code, 'QUEUE_FULL');
    assert.ok(Number(refused.headers['Retry-After']) >= 1);
    release();
    await new Promise((r) => setTimeout(r, 50));
    release();
    await new Promise((r) => setTimeout(r, 50));
    release();
    const done = await Promise.all([first, ...queued]);
    assert.equal(predictor.backlog, 0);
    assert.deepEqual(done.map((b) => b.predictions[0]!.id), ['first', 'q1', 'q2', 'q3', 'q4']);
    await predictor.close();
  });

  it('counts images still being decoded in the backlog: requests cannot pile up in front of a slow decoder', async () => {
    const { engine, release } = gatedEngine();
    const predictor = new LocalPredictor({
      resolveModel: registryOf(models),
      engine,
      maxBatchSize: 1,
      maxDelayMs: 0,
      maxQueue: 2,
      maxModels: 1,
      maxPixels: 50_000_000,
      // One decode at a time: the batcher's own queue stays short while requests wait to be decoded.
      decodeConcurrency: 1,
    });
    await predictor.warmUp();
    const requests = Array.from({ length: 8 }, (_, i) => predictor.predict({ images: [{ id: `r${i}`, data: xrays[i % xrays.length]! }], explain: false }));
    const settled = Promise.allSettled(requests);
    let ended = false;
    void settled.then(() => (ended = true));
    // Open the gate for each forward pass until every request has ended.
    while (!ended) {
      release();
      await new Promise((r) => setTimeout(r, 20));
    }
    const outcomes = await settled;
    const refused = outcomes.filter((outcome) => outcome.status === 'rejected').map((outcome) => (outcome as PromiseRejectedResult).reason as AppError);
    // The running batch (1) plus the backlog (2) are accepted; the other five are refused at once.
    assert.equal(outcomes.filter((outcome) => outcome.status === 'fulfilled').length, 3);
    assert.equal(refused.length, 5);
    for (const error of refused) {
      assert.equal(error.code, 'QUEUE_FULL');
      assert.ok(Number(error.headers['Retry-After']) >= 1);
    }
    assert.equal(predictor.backlog, 0);
    await predictor.close();
  });

  it('close() lets in-flight predictions finish', async () => {
    const { engine, release } = gatedEngine();
    const predictor = new LocalPredictor({ resolveModel: registryOf(models), engine, maxBatchSize: 4, maxDelayMs: 0, maxQueue: 10, maxModels: 1, maxPixels: 50_000_000 });
    await predictor.warmUp();
    const inFlight = predictor.predict({ images: [{ id: 'x', data: xrays[0]! }], explain: false });
    await new Promise((r) => setTimeout(r, 200));
    let closed = false;
    const closing = predictor.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(closed, false, 'close waits for the running prediction');
    release();
    assert.equal((await inFlight).predictions[0]!.id, 'x');
    await closing;
    assert.equal(closed, true);
  });
});
