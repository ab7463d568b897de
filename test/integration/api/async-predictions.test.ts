/**
 * Asynchronous predictions over HTTP on real services (issue 5 item 4, "and on asynchronous
 * predictions"): `POST /v1/predictions` answers 202 + `Location` at once, a real `predictions`
 * worker on the real Redis runs it through the in-process predictor, and `GET /v1/predictions/{id}`
 * then has the same predictions `/v1/predict` gives (with the caller's ids), or the failure of a bad
 * image naming its position. What cannot run is refused at once with nothing left behind; only the
 * creator (or an admin) reads a prediction; with an `Idempotency-Key`, 20 concurrent identical
 * requests create one prediction and one job and all get its id; each request has one audit
 * record; a full backlog answers 503 with `Retry-After`; old predictions are swept away.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { createLogger } from '../../../src/infra/logger.ts';
import { QUEUE_NAMES, type PredictionJob } from '../../../src/infra/queues.ts';
import { PredictionService } from '../../../src/services/predictions/prediction.service.ts';
import { createPredictionProcessor } from '../../../src/workers/prediction.processor.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { assertResponseMatchesSpec, deleteKeys, multipartBody, REDIS_URL, startApiFixture, waitFor, type ApiFixture } from './api-fixture.ts';

interface PredictionBody {
  id: string;
  status: 'queued' | 'running' | 'completed' | 'failed';
  model: { id: string; architecture: string; version: string };
  images: number;
  result?: { model: { id: string; engine?: string }; predictions: { id: string; label: string; probabilities: Record<string, number> }[]; notice: string };
  error?: { code: string; detail: string };
}

describe('asynchronous predictions', () => {
  let fx: ApiFixture;
  let workers: RunningWorkers;
  let png: Buffer;

  before(async () => {
    fx = await startApiFixture({ settings: { RATE_LIMIT_PER_MINUTE: '100000' } });
    workers = startWorkers({
      config: fx.config,
      queues: [QUEUE_NAMES.predictions],
      predictionProcessor: createPredictionProcessor(fx.runtime.predictor, fx.config.DATA_DIR),
      redisUrl: REDIS_URL,
      logger: createLogger({ level: 'silent' }),
    });
    await workers.ready();
    const classDir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_fractured');
    const [name] = (await readdir(classDir)).filter((file) => file.endsWith('.png')).sort();
    png = await readFile(path.join(classDir, name as string));
  });
  after(async () => {
    await workers?.close({ handBackAfterMs: 0 });
    await fx?.close();
  });

  const multipart = async (image: Buffer) => {
    const { body, contentType } = await multipartBody([{ name: 'image', value: image, filename: 'x.png', type: 'image/png' }]);
    return { payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } };
  };
  const post = async (request: { payload: Buffer | string; headers: Record<string, string> }) => fx.app.inject({ method: 'POST', url: '/v1/predictions', ...request });
  const json = (body: unknown, headers: Record<string, string> = {}) => ({ payload: JSON.stringify(body), headers: { ...fx.auth('predict'), 'content-type': 'application/json', ...headers } });
  const read = async (id: string, key: 'predict' | 'admin' | 'train' = 'predict') => fx.app.inject({ method: 'GET', url: `/v1/predictions/${id}`, headers: fx.auth(key) });
  const finished = (id: string): Promise<PredictionBody> =>
    waitFor(`prediction ${id} to finish`, async () => {
      const response = await read(id);
      assert.equal(response.statusCode, 200, response.body);
      const body = JSON.parse(response.body) as PredictionBody;
      return body.status === 'completed' || body.status === 'failed' ? body : undefined;
    }, 30_000, 50);
  const predictionFolders = async (): Promise<string[]> => (await readdir(fx.context.store.predictionsDir).catch(() => [] as string[])).sort();

  it('answers 202 with Location at once, and later the predictions /v1/predict gives', async () => {
    const accepted = await post(await multipart(png));
    assert.equal(accepted.statusCode, 202, accepted.body);
    assertResponseMatchesSpec('createPrediction', accepted);
    const queued = JSON.parse(accepted.body) as PredictionBody;
    assert.equal(accepted.headers.location, `/v1/predictions/${queued.id}`);
    assert.equal(queued.status, 'queued');
    assert.equal(queued.images, 1);
    assert.equal(queued.model.id, fx.experiment?.modelId, 'the production model, resolved now');

    const done = await finished(queued.id);
    assertResponseMatchesSpec('getPrediction', await read(queued.id));
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const now = await fx.app.inject({ method: 'POST', url: '/v1/predict', ...(await multipart(png)) });
    assert.equal(now.statusCode, 200, now.body);
    const sync = JSON.parse(now.body) as NonNullable<PredictionBody['result']>;
    assert.deepEqual(done.result?.model, sync.model);
    assert.equal(done.result?.model.engine, 'onnx', 'the result names the engine that answered');
    assert.equal(done.result?.predictions[0]?.id, 'images[0]');
    assert.equal(done.result?.predictions[0]?.label, sync.predictions[0]?.label);
    for (const [label, p] of Object.entries(sync.predictions[0]?.probabilities ?? {})) {
      assert.ok(Math.abs((done.result?.predictions[0]?.probabilities[label] ?? NaN) - p) < 1e-6, label);
    }
    assert.match(done.result?.notice ?? '', /For research use only/);
    // The uploaded bytes are gone once the prediction has run; the record stays.
    assert.deepEqual(await readdir(fx.context.store.predictionDir(queued.id)), ['prediction.json']);
  });

  it('keeps the caller\'s image ids, and fails a prediction whose image does not decode, naming its position', async () => {
    const ok = await post(json({ images: [{ id: 'wrist-1', data: png.toString('base64') }, { id: 'wrist-2', data: png.toString('base64') }] }));
    assert.equal(ok.statusCode, 202, ok.body);
    const done = await finished((JSON.parse(ok.body) as PredictionBody).id);
    assert.deepEqual(done.result?.predictions.map((prediction) => prediction.id), ['wrist-1', 'wrist-2']);

    // A PNG signature with a broken body passes the check at the door and fails when decoded.
    const broken = await post(json({ images: [{ id: 'ok', data: png.toString('base64') }, { id: 'knee-2', data: png.subarray(0, 120).toString('base64') }] }));
    assert.equal(broken.statusCode, 202, broken.body);
    const failed = await finished((JSON.parse(broken.body) as PredictionBody).id);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'IMAGE_UNDECODABLE');
    assert.match(failed.error?.detail ?? '', /^images\[1\] /);
    assert.doesNotMatch(JSON.stringify(failed), /knee-2/, 'the caller\'s id is not in the error');
  });

  it('refuses at once what cannot run, and leaves nothing behind', async () => {
    const before = await predictionFolders();
    const notImage = await post(json({ images: [{ data: Buffer.from('not an image at all').toString('base64') }] }));
    assert.equal(notImage.statusCode, 415, notImage.body);
    assert.equal(JSON.parse(notImage.body).code, 'IMAGE_TYPE_UNSUPPORTED');
    const unknownModel = await post(json({ images: [{ data: png.toString('base64') }], model: 'no-such-model' }));
    assert.equal(unknownModel.statusCode, 404, unknownModel.body);
    assert.equal(JSON.parse(unknownModel.body).code, 'MODEL_NOT_FOUND');
    const noKey = await fx.app.inject({ method: 'POST', url: '/v1/predictions', payload: JSON.stringify({ images: [{ data: png.toString('base64') }] }), headers: { 'content-type': 'application/json' } });
    assert.equal(noKey.statusCode, 401);
    const wrongScope = await post({ ...json({ images: [{ data: png.toString('base64') }] }), headers: { ...fx.auth('train'), 'content-type': 'application/json' } });
    assert.equal(wrongScope.statusCode, 403);
    assert.deepEqual(await predictionFolders(), before, 'no prediction was created');
    const unknown = await read('pred-19990101-000000-deadbeef');
    assert.equal(unknown.statusCode, 404);
    assert.equal(JSON.parse(unknown.body).code, 'PREDICTION_NOT_FOUND');
  });

  it('is read by its creator and an admin only', async () => {
    const accepted = await post(await multipart(png));
    const { id } = JSON.parse(accepted.body) as PredictionBody;
    assert.equal((await read(id, 'admin')).statusCode, 200);
    assert.equal((await read(id, 'train')).statusCode, 403, 'the train scope cannot read predictions');
    await assert.rejects(fx.context.predictions.get(id, { callerId: 'another-predict-key', admin: false }), { code: 'PREDICTION_NOT_FOUND' });
    await finished(id);
  });

  it('creates one prediction and one job for 20 concurrent identical requests with an Idempotency-Key, and all get its id', async (t) => {
    const key = `study-${randomBytes(6).toString('hex')}`;
    const before = await predictionFolders();
    const auditBefore = (await fx.auditRecords()).length;
    const request = json({ images: [{ id: 'a', data: png.toString('base64') }] }, { 'idempotency-key': key });
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(request)));
    assert.deepEqual(responses.map((response) => response.statusCode), Array(20).fill(202), responses.map((response) => response.body.slice(0, 200)).join('\n'));
    const ids = new Set(responses.map((response) => (JSON.parse(response.body) as PredictionBody).id));
    assert.equal(ids.size, 1, `ids: ${[...ids].join(', ')}`);
    const [id] = [...ids] as [string];
    const created = (await predictionFolders()).filter((name) => !before.includes(name));
    assert.deepEqual(created, [id], 'one prediction folder');
    const queue = new Queue(QUEUE_NAMES.predictions, { connection: { url: REDIS_URL }, prefix: fx.config.QUEUE_PREFIX });
    try {
      const jobs = (await queue.getJobs()).filter((job) => job.data.predictionId === id);
      assert.equal(jobs.length, 1, 'one job');
    } finally {
      await queue.close();
    }
    // Later repeats get the same prediction; the same key with other images is refused.
    const later = await post(request);
    assert.equal((JSON.parse(later.body) as PredictionBody).id, id);
    const reused = await post(json({ images: [{ id: 'b', data: png.toString('base64') }] }, { 'idempotency-key': key }));
    assert.equal(reused.statusCode, 422);
    assert.equal(JSON.parse(reused.body).code, 'IDEMPOTENCY_KEY_REUSED');
    // One audit record per request, the replays and the refusal included.
    const audit = await waitFor('the audit records', async () => {
      const records = (await fx.auditRecords()).slice(auditBefore);
      return records.length >= 22 ? records : undefined;
    }, 5_000, 20);
    assert.equal(audit.length, 22);
    assert.ok(audit.every((record) => record.route === 'POST /v1/predictions'));
    assert.deepEqual(audit.map((record) => record.status).sort(), [...Array(21).fill(202), 422].sort());
    await finished(id);
    t.diagnostic(`20 concurrent requests with one Idempotency-Key: 1 prediction, 1 job, 20 × the id ${id}`);
  });

  it('answers 503 QUEUE_FULL with Retry-After when too many predictions wait, and sweeps old ones', async () => {
    const prefix = `test-predictions-${randomBytes(4).toString('hex')}`;
    const queue = new Queue<PredictionJob['data'], unknown, PredictionJob['name']>(QUEUE_NAMES.predictions, { connection: fx.context.redis, prefix });
    let clock = new Date(Date.now() - 3 * 86_400_000);
    const service = new PredictionService({
      store: fx.context.store,
      queue,
      connection: fx.context.redis,
      resolveModel: (ref) => fx.context.models.resolve(ref),
      maxPending: 1,
      retentionMs: 86_400_000,
      now: () => clock,
    });
    try {
      const request = { images: [{ id: 'x', data: new Uint8Array(png) }], explain: false };
      const first = await service.create(request, { callerId: 'pacs' });
      await assert.rejects(service.create(request, { callerId: 'pacs' }), (error: { code?: string; headers?: Record<string, string> }) => {
        assert.equal(error.code, 'QUEUE_FULL');
        assert.match(error.headers?.['Retry-After'] ?? '', /^[1-9][0-9]*$/);
        return true;
      });
      clock = new Date();
      // Created three days "ago": past the 24 h retention.
      assert.ok((await service.sweep()) >= 1);
      await assert.rejects(service.get(first.id, { callerId: 'pacs', admin: false }), { code: 'PREDICTION_NOT_FOUND' });
    } finally {
      await queue.close();
      await deleteKeys(prefix);
    }
  });
});
