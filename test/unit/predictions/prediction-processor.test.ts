/**
 * The `predictions` queue's processor with a stand-in predictor: a full backlog holds the job back
 * (delayed, no attempt used) and leaves the prediction pending; a bad image fails it for good with
 * its code; an unexpected error is retried and recorded as INTERNAL on the last attempt; a finished
 * prediction is not run again; the images are deleted once it has run.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Job } from 'bullmq';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { AppError } from '../../../src/infra/errors.ts';
import type { PredictionJob } from '../../../src/infra/queues.ts';
import { PredictionRecords, newPredictionId } from '../../../src/services/predictions/prediction-records.ts';
import type { PredictionRecord } from '../../../src/services/predictions/prediction.types.ts';
import { ImageRejectedError } from '../../../src/serving/image-input.ts';
import type { PredictRequest, PredictResponse } from '../../../src/serving/types.ts';
import { createPredictionProcessor } from '../../../src/workers/prediction.processor.ts';

describe('the prediction processor', () => {
  let root: string;
  let records: PredictionRecords;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'prediction-processor-'));
    records = new PredictionRecords(new ArtifactStore(root));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function queued(ids = ['left', 'right']): Promise<PredictionRecord> {
    const record: PredictionRecord = {
      schemaVersion: 1,
      id: newPredictionId(),
      status: 'queued',
      ownerKeyId: 'pacs',
      model: { id: 'm1', architecture: 'cnn', version: 'v1' },
      explain: false,
      imageIds: ids,
      createdAt: new Date().toISOString(),
    };
    await records.create(record, ids.map((_, i) => new Uint8Array([0x89, 0x50, 0x4e, 0x47, i])));
    return record;
  }

  function jobFor(record: PredictionRecord, attemptsMade = 0) {
    const delayed: number[] = [];
    const job = {
      name: 'prediction',
      data: { predictionId: record.id },
      opts: { attempts: 3 },
      attemptsMade,
      moveToDelayed: async (timestamp: number) => void delayed.push(timestamp),
    } as unknown as Job<PredictionJob['data'], void, PredictionJob['name']>;
    return { job, delayed };
  }

  const answer = (request: PredictRequest): PredictResponse => ({
    model: { id: 'm1', architecture: 'cnn', version: 'v1', engine: 'tfjs' },
    predictions: request.images.map((image) => ({ id: image.id, label: 'a', probabilities: { a: 1 }, fractureProbability: null })),
    notice: 'For research use only. Not for use in diagnostic procedures.',
  });

  it('writes the result with the caller\'s ids, deletes the images, and does not run a finished prediction again', async () => {
    const record = await queued();
    let calls = 0;
    const seen: string[][] = [];
    const process = createPredictionProcessor({ predict: async (request) => (calls++, seen.push(request.images.map((image) => image.id)), answer(request)) }, root);
    await process(jobFor(record).job, 'token');
    const done = await records.read(record.id);
    assert.equal(done?.status, 'completed');
    assert.deepEqual(done?.result?.predictions.map((prediction) => prediction.id), ['left', 'right']);
    assert.deepEqual(seen, [['images[0]', 'images[1]']], 'the predictor sees positions, not the caller\'s ids');
    assert.deepEqual(await readdir(path.dirname(records.recordFile(record.id))), ['prediction.json']);
    await process(jobFor(record).job, 'token');
    assert.equal(calls, 1);
  });

  it('holds the job back, without an attempt and without failing it, while the backlog is full', async () => {
    const record = await queued();
    const { job, delayed } = jobFor(record);
    const full = new AppError('QUEUE_FULL', 'busy', { headers: { 'Retry-After': '3' } });
    const process = createPredictionProcessor({ predict: async () => Promise.reject(full) }, root);
    const before = Date.now();
    await assert.rejects(process(job, 'token'), { name: 'DelayedError' });
    assert.equal(delayed.length, 1);
    assert.ok((delayed[0] ?? 0) >= before + 3_000, 'it waits as long as Retry-After says');
    const pending = await records.read(record.id);
    assert.ok(pending?.status === 'running' || pending?.status === 'queued');
    assert.equal(pending?.error, undefined);
  });

  it('fails a prediction with a bad image for good, with the code and the image\'s position', async () => {
    const record = await queued();
    const process = createPredictionProcessor({ predict: async () => Promise.reject(new ImageRejectedError('IMAGE_UNDECODABLE', { index: 1 }, 'could not be decoded as PNG (bad)')) }, root);
    await assert.rejects(process(jobFor(record).job, 'token'), { name: 'UnrecoverableError' });
    const failed = await records.read(record.id);
    assert.equal(failed?.status, 'failed');
    assert.deepEqual(failed?.error, { code: 'IMAGE_UNDECODABLE', detail: 'images[1] could not be decoded as PNG (bad)' });
  });

  it('retries an unexpected error, and records INTERNAL on the last attempt', async () => {
    const record = await queued();
    const process = createPredictionProcessor({ predict: async () => Promise.reject(new Error('wasm trap at /srv/secret/path')) }, root);
    await assert.rejects(process(jobFor(record, 0).job, 'token'), /wasm trap/);
    assert.notEqual((await records.read(record.id))?.status, 'failed', 'attempts remain');
    await assert.rejects(process(jobFor(record, 2).job, 'token'), { name: 'UnrecoverableError' });
    const failed = await records.read(record.id);
    assert.equal(failed?.status, 'failed');
    assert.equal(failed?.error?.code, 'INTERNAL');
    assert.doesNotMatch(failed?.error?.detail ?? '', /secret/, 'the message of an unexpected error is not shown');
  });
});
