/**
 * The inference processor and the job-result encoding without Redis: payload validation, positional
 * ids in the worker, AppErrors carried back as results (image errors renamed to the request's ids,
 * headers kept), unexpected errors failing the job.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { UnrecoverableError, type Job } from 'bullmq';
import { AppError } from '../../../src/infra/errors.ts';
import type { PredictJob } from '../../../src/infra/queues.ts';
import { ImageRejectedError } from '../../../src/serving/image-input.ts';
import { jobErrorResult, responseFromJobResult, type InferenceJobResult } from '../../../src/serving/inference-job.ts';
import { PREDICTION_NOTICE, type PredictRequest, type PredictResponse } from '../../../src/serving/types.ts';
import { createInferenceProcessor } from '../../../src/workers/inference.processor.ts';

let uploadsDir: string;
let files: string[];

before(async () => {
  uploadsDir = await mkdtemp(path.join(os.tmpdir(), 'inference-processor-test-'));
  files = [path.join(uploadsDir, 'a.bin'), path.join(uploadsDir, 'b.bin')];
  await writeFile(files[0]!, 'first');
  await writeFile(files[1]!, 'second');
});
after(async () => {
  await rm(uploadsDir, { recursive: true, force: true });
});

const job = (data: unknown, name = 'predict') => ({ name, data }) as unknown as Job<PredictJob['data'], InferenceJobResult>;

function echoResponse(request: PredictRequest): PredictResponse {
  return {
    model: { id: request.model ?? 'production', architecture: 'cnn', version: '1', engine: 'tfjs' },
    predictions: request.images.map((image) => ({
      id: image.id,
      label: Buffer.from(image.data).toString('utf8'),
      probabilities: { a: 1 },
      fractureProbability: null,
    })),
    notice: PREDICTION_NOTICE,
  };
}

describe('createInferenceProcessor', () => {
  it('reads the job\'s files, names images by position and returns the predictor\'s answer', async () => {
    const seen: PredictRequest[] = [];
    const process = createInferenceProcessor({ predict: async (request) => (seen.push(request), echoResponse(request)) }, { uploadsDir });
    const result = await process(job({ modelId: 'm1', imagePaths: files, explain: true }));
    assert.equal(result.ok, true);
    assert.deepEqual(seen[0]!.images.map((i) => i.id), ['images[0]', 'images[1]']);
    assert.equal(seen[0]!.model, 'm1');
    assert.equal(seen[0]!.explain, true);
    assert.deepEqual(result.ok && result.response.predictions.map((p) => p.label), ['first', 'second']);
  });

  it('returns AppErrors as results and lets unexpected errors fail the job', async () => {
    const refusing = createInferenceProcessor({
      predict: async () => {
        throw new ImageRejectedError('IMAGE_UNDECODABLE', { index: 1 }, 'could not be decoded as JPEG (bad)');
      },
    });
    assert.deepEqual(await refusing(job({ modelId: 'm1', imagePaths: files, explain: false })), {
      ok: false,
      error: { code: 'IMAGE_UNDECODABLE', detail: 'images[1] could not be decoded as JPEG (bad)', imageIndex: 1, reason: 'could not be decoded as JPEG (bad)' },
    });
    const crashing = createInferenceProcessor({
      predict: async () => {
        throw new TypeError('bug');
      },
    });
    await assert.rejects(crashing(job({ modelId: 'm1', imagePaths: files, explain: false })), /bug/);
  });

  it('refuses malformed payloads and foreign job names without retry', async () => {
    const process = createInferenceProcessor({ predict: async (r) => echoResponse(r) }, { uploadsDir });
    const bad = [
      { modelId: '../etc', imagePaths: files, explain: false },
      { modelId: 'm1', imagePaths: [], explain: false },
      { modelId: 'm1', imagePaths: ['relative.bin'], explain: false },
      { modelId: 'm1', imagePaths: ['/etc/passwd'], explain: false },
      { modelId: 'm1', imagePaths: [path.join(uploadsDir, 'sub', '..', '..', 'x.bin')], explain: false },
      { modelId: 'm1', imagePaths: files, explain: 'yes' },
      null,
    ];
    for (const data of bad) await assert.rejects(process(job(data)), UnrecoverableError, JSON.stringify(data));
    await assert.rejects(process(job({ modelId: 'm1', imagePaths: files, explain: false }, 'train')), UnrecoverableError);
  });
});

describe('job results across the queue', () => {
  const images = [{ id: 'left', data: new Uint8Array([1]) }, { id: 'right', data: new Uint8Array([2]) }];

  it('puts the request\'s image ids back into a response', () => {
    const response = echoResponse({ images: [{ id: 'images[0]', data: new Uint8Array() }, { id: 'images[1]', data: new Uint8Array() }], explain: false });
    const restored = responseFromJobResult({ ok: true, response }, images);
    assert.deepEqual(restored.predictions.map((p) => p.id), ['left', 'right']);
  });

  it('rebuilds an image error naming its position (never the caller\'s id), and keeps headers of other errors', () => {
    const imageError = jobErrorResult(new ImageRejectedError('IMAGE_TOO_LARGE', { index: 1 }, 'has 9x9 pixels'))!;
    assert.throws(() => responseFromJobResult(imageError, images), (error: unknown) => {
      assert.ok(error instanceof AppError);
      assert.equal(error.code, 'IMAGE_TOO_LARGE');
      assert.equal(error.message, 'images[1] has 9x9 pixels');
      return true;
    });
    const full = jobErrorResult(new AppError('QUEUE_FULL', 'busy', { headers: { 'Retry-After': '3' } }))!;
    assert.throws(() => responseFromJobResult(full, images), (error: unknown) => {
      assert.ok(error instanceof AppError);
      assert.equal(error.code, 'QUEUE_FULL');
      assert.equal(error.headers['Retry-After'], '3');
      return true;
    });
    assert.equal(jobErrorResult(new AppError('INTERNAL', 'x')), null, 'internal errors fail the job instead');
  });

  it('answers INTERNAL for a result that is not a job result', () => {
    for (const result of [null, 42, { ok: true }, { ok: true, response: { predictions: [] } }, { ok: false, error: { code: 'MADE_UP', detail: 'x' } }, { ok: false, error: { code: 'toString', detail: 'x' } }]) {
      assert.throws(() => responseFromJobResult(result, images), { code: 'INTERNAL' }, JSON.stringify(result));
    }
  });
});
