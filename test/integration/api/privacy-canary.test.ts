/**
 * Patient data never leaks (issue 5, "Privacy and audit"): a canary — a patient-like name with a
 * token no code of ours writes — goes into every place a client can put one: file names of image
 * and dataset uploads, zip entry names, unknown multipart fields (names and values), JSON members,
 * the caller's own image ids (of `/v1/predict` and the asynchronous `/v1/predictions`), query
 * strings, headers, a wrong API key and `Idempotency-Key`s. The
 * requests go to the in-process API (`start`) and to the queue-mode API (`api`) with a real
 * inference worker on the real Redis, and succeed or fail as they should. Afterwards the canary is
 * in no log line (every level, API and worker), no error body, no Redis key or value under the
 * deployment's prefix, no audit record and no upload file name; and each prediction request, of
 * either API and whatever its outcome, has exactly one audit record.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { createLogger } from '../../../src/infra/logger.ts';
import { createApiRuntime, createLocalPredictor, type ApiRuntime } from '../../../src/runtime/service-context.ts';
import { createInferenceProcessor } from '../../../src/workers/inference.processor.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { multipartBody, REDIS_URL, renameZipEntry, startApiFixture, waitFor, zipBuffer, type ApiFixture } from './api-fixture.ts';
import { rawMultipart } from './hostile-inputs.ts';

/** A token that no code of ours would ever write. */
const TOKEN = 'CANARY7f3a';
/** A name as a PACS export might put it into a file name or a field. */
const PATIENT = `DOE^JANE ${TOKEN} 1961-03-04 MRN-4711`;
/** The same as an id, a file name stem or a header value (no spaces or carets). */
const PATIENT_ID = `DOE-JANE-${TOKEN}-MRN-4711`;
const LEAK = /CANARY7f3a|DOE\^JANE|DOE-JANE|MRN-4711/;

interface Sent {
  what: string;
  status: number;
  body: string;
  /** A prediction request: it must have one audit record. */
  predict: boolean;
}

/** Every value under every key of `prefix`, as text (strings, hashes, lists, sets, sorted sets, streams). */
async function redisDump(prefix: string): Promise<{ keys: string[]; values: string }> {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  const keys: string[] = [];
  const values: string[] = [];
  try {
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    for (const key of keys) {
      const type = await redis.type(key);
      if (type === 'string') values.push((await redis.get(key)) ?? '');
      else if (type === 'hash') values.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') values.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') values.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') values.push(JSON.stringify(await redis.zrange(key, 0, -1)));
      else if (type === 'stream') values.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } finally {
    redis.disconnect();
  }
  return { keys, values: values.join('\n') };
}

describe('no patient data in logs, error bodies, Redis or the audit log', () => {
  const logLines: string[] = [];
  const logger = createLogger({ level: 'trace', destination: { write: (line: string) => void logLines.push(line) } });
  let fx: ApiFixture;
  let queueApi: ApiRuntime;
  let workers: RunningWorkers;
  let image: Buffer;
  const sent: Sent[] = [];

  before(async () => {
    fx = await startApiFixture({ logger, settings: { RATE_LIMIT_PER_MINUTE: '100000' } });
    const classDir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_fractured');
    const [name] = (await readdir(classDir)).filter((file) => file.endsWith('.png')).sort();
    image = await readFile(path.join(classDir, name as string));
    // The compose deployment in one process: the queue-mode API and a real inference worker.
    queueApi = await createApiRuntime(fx.context, { keys: parseApiKeys(fx.config.API_KEYS ?? ''), mode: 'queue' });
    const predictor = createLocalPredictor(fx.config, (ref) => fx.context.models.resolve(ref), fx.context.metrics);
    workers = startWorkers({
      config: fx.config,
      queues: ['inference'],
      inferenceProcessor: createInferenceProcessor(predictor, { uploadsDir: fx.context.store.uploadsDir }),
      redisUrl: REDIS_URL,
      logger,
    });
    await workers.ready();
  });

  after(async () => {
    await workers?.close({ handBackAfterMs: 0 });
    await queueApi?.close();
    await fx?.close();
  });

  async function send(app: FastifyInstance, what: string, request: { method?: 'GET' | 'POST' | 'PUT'; url: string; headers?: Record<string, string>; payload?: string | Buffer | object }, expected: number): Promise<void> {
    const response = await app.inject({ method: request.method ?? 'POST', url: request.url, headers: request.headers ?? {}, ...(request.payload === undefined ? {} : { payload: request.payload }) });
    sent.push({ what, status: response.statusCode, body: response.body, predict: request.url.startsWith('/v1/predict') });
    assert.equal(response.statusCode, expected, `${what}: ${response.body.slice(0, 300)}`);
  }

  /** The prediction requests of one API, each carrying the canary somewhere. */
  async function predictRequests(app: FastifyInstance, api: string): Promise<void> {
    const auth = fx.auth('predict');
    const multipart = async (parts: Parameters<typeof multipartBody>[0], query = '') => {
      const { body, contentType } = await multipartBody(parts);
      return { url: `/v1/predict${query}`, headers: { ...auth, 'content-type': contentType }, payload: body };
    };
    const json = (body: unknown, extra: Record<string, string> = {}) => ({ url: '/v1/predict', headers: { ...auth, 'content-type': 'application/json', ...extra }, payload: JSON.stringify(body) });
    const base64 = image.toString('base64');

    await send(app, `${api}: image named after the patient`, await multipart([{ name: 'image', value: image, filename: `${PATIENT}.png`, type: 'image/png' }]), 200);
    await send(app, `${api}: undecodable image named after the patient`, await multipart([{ name: 'image', value: Buffer.from(`${PATIENT} is not an image`), filename: `${PATIENT}.jpg`, type: 'image/jpeg' }]), 415);
    await send(app, `${api}: truncated image named after the patient`, await multipart([{ name: 'image', value: image.subarray(0, 200), filename: `${PATIENT}.png`, type: 'image/png' }]), 422);
    await send(app, `${api}: a patient field beside the image`, await multipart([{ name: 'image', value: image, filename: 'x.png', type: 'image/png' }, { name: 'patientName', value: PATIENT }]), 400);
    await send(app, `${api}: a field named after the patient`, await multipart([{ name: 'image', value: image, filename: 'x.png', type: 'image/png' }, { name: PATIENT_ID, value: PATIENT }]), 400);
    {
      const { body, contentType } = rawMultipart([{ name: PATIENT_ID, value: image, filename: `../../${PATIENT}\0.png`, type: 'image/png' }]);
      await send(app, `${api}: a file field named after the patient, a path and NUL in its file name`, { url: '/v1/predict', headers: { ...auth, 'content-type': contentType }, payload: body }, 400);
    }
    await send(app, `${api}: the caller's id is the patient's`, json({ images: [{ id: PATIENT_ID, data: base64 }] }), 200);
    await send(app, `${api}: undecodable image with the patient's id`, json({ images: [{ id: 'ok', data: base64 }, { id: PATIENT_ID, data: Buffer.from(PATIENT).toString('base64') }] }), 415);
    await send(app, `${api}: bad base64 with the patient's id`, json({ images: [{ id: PATIENT_ID, data: `${PATIENT}!!` }] }), 400);
    await send(app, `${api}: a repeated patient id`, json({ images: [{ id: PATIENT_ID, data: base64 }, { id: PATIENT_ID, data: base64 }] }), 400);
    await send(app, `${api}: a patient member in the JSON`, json({ images: [{ data: base64 }], patient: { name: PATIENT } }), 400);
    await send(app, `${api}: a patient member in an image`, json({ images: [{ data: base64, patientName: PATIENT }] }), 400);
    await send(app, `${api}: the patient in the query string`, { ...json({ images: [{ data: base64 }] }), url: `/v1/predict?patient=${encodeURIComponent(PATIENT)}` }, 400);
    await send(app, `${api}: the patient in headers`, json({ images: [{ data: base64 }] }, { 'x-patient-name': PATIENT_ID, 'x-request-id': PATIENT_ID, 'user-agent': `PACS ${PATIENT_ID}` }), 200);
    await send(app, `${api}: an asynchronous prediction with the patient's id and file name`, { ...(await multipart([{ name: 'image', value: image, filename: `${PATIENT}.png`, type: 'image/png' }])), url: '/v1/predictions' }, 202);
    await send(app, `${api}: an asynchronous prediction with the patient's id as the caller's id and the Idempotency-Key`, { ...json({ images: [{ id: PATIENT_ID, data: base64 }] }, { 'idempotency-key': `${PATIENT_ID}-${api}` }), url: '/v1/predictions' }, 202);
    await send(app, `${api}: an asynchronous prediction of a non-image with the patient's id`, { ...json({ images: [{ id: PATIENT_ID, data: Buffer.from(PATIENT).toString('base64') }] }), url: '/v1/predictions' }, 415);
    await send(app, `${api}: the patient as the API key`, { ...json({ images: [{ data: base64 }] }), headers: { authorization: `Bearer ${PATIENT_ID}`, 'content-type': 'application/json' } }, 401);
  }

  it('answers every canary request as it should, on the in-process API and the queue-mode API with a worker', async () => {
    await predictRequests(fx.app, 'in-process');
    await predictRequests(queueApi.app, 'queue');

    const train = fx.auth('train');
    const entries = (names: readonly string[]) =>
      zipBuffer((zip) => {
        for (const name of names) zip.addBuffer(image, name);
      });
    await send(fx.app, 'dataset: zip entries named after the patient', { url: '/v1/datasets?id=canary-set', headers: { ...train, 'content-type': 'application/zip' }, payload: await entries([`fractured/${PATIENT}-1.png`, `fractured/${PATIENT}-2.png`, `normal/${PATIENT}-3.png`, `normal/${PATIENT}-4.png`]) }, 201);
    await send(fx.app, 'dataset: a zip entry climbing out, named after the patient', { url: '/v1/datasets?id=canary-unsafe', headers: { ...train, 'content-type': 'application/zip' }, payload: renameZipEntry(await entries([`fractured/${PATIENT}.png`, `up/${PATIENT}.png`]), `up/${PATIENT}.png`, `../${PATIENT}.png`) }, 422);
    {
      const { body, contentType } = await multipartBody([{ name: 'file', value: await entries([`a/${PATIENT}.png`, `b/${PATIENT}.png`]), filename: `${PATIENT}.zip`, type: 'application/zip' }]);
      await send(fx.app, 'dataset: a multipart zip named after the patient', { url: '/v1/datasets?id=canary-multipart', headers: { ...train, 'content-type': contentType }, payload: body }, 201);
    }
    await send(fx.app, 'dataset: a single class, named after the patient', { url: '/v1/datasets?id=canary-one', headers: { ...train, 'content-type': 'application/zip' }, payload: await entries([`fractured/${PATIENT}-1.png`]) }, 422);
    await send(fx.app, 'experiment: the patient as the Idempotency-Key', {
      url: '/v1/experiments',
      headers: { ...train, 'content-type': 'application/json', 'idempotency-key': PATIENT_ID },
      payload: { datasetId: fx.datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1 },
    }, 202);
    await send(fx.app, 'experiment: a patient member', { url: '/v1/experiments', headers: { ...train, 'content-type': 'application/json' }, payload: { datasetId: fx.datasetId, patientName: PATIENT } }, 400);
    await send(fx.app, 'dataset view: the canary dataset', { method: 'GET', url: '/v1/datasets/canary-set', headers: train }, 200);
  });

  it('leaves the canary in no error body, log line, Redis key or value, audit record or upload name', async (t) => {
    const errorBodies = sent.filter((request) => request.status >= 400);
    assert.ok(errorBodies.length >= 20, `${errorBodies.length} refusals`);
    const leakedBodies = errorBodies.filter((request) => LEAK.test(request.body)).map((request) => `${request.what}: ${request.body.slice(0, 200)}`);
    assert.deepEqual(leakedBodies, [], 'error bodies');

    // The audit records are appended as answers go out: wait for the last of them.
    const predictRequests = sent.filter((request) => request.predict).length;
    const audit = await waitFor('every audit record', async () => {
      const records = await fx.auditRecords();
      return records.length >= predictRequests ? records : undefined;
    }, 10_000, 50);
    assert.equal(audit.length, predictRequests, 'exactly one audit record per prediction request');
    const statuses = (list: readonly { status: number }[]) => list.map((item) => item.status).sort((a, b) => a - b);
    assert.deepEqual(statuses(audit as { status: number }[]), statuses(sent.filter((request) => request.predict)), 'one record per outcome, successes and failures alike');
    const auditText = await readFile(path.join(fx.config.DATA_DIR, 'audit', 'predictions.jsonl'), 'utf8');
    assert.doesNotMatch(auditText, LEAK, 'audit records');

    assert.ok(logLines.length > 50, `${logLines.length} log lines were captured`);
    const leakedLines = logLines.filter((line) => LEAK.test(line)).map((line) => line.slice(0, 300));
    assert.deepEqual(leakedLines, [], 'log lines');

    const { keys, values } = await redisDump(fx.config.QUEUE_PREFIX);
    assert.ok(keys.length > 10, `${keys.length} Redis keys under the prefix`);
    assert.deepEqual(keys.filter((key) => LEAK.test(key)), [], 'Redis keys');
    assert.doesNotMatch(values, LEAK, 'Redis values');

    const uploads = await readdir(fx.context.store.uploadsDir).catch(() => [] as string[]);
    assert.deepEqual(uploads.filter((name) => LEAK.test(name)), [], 'upload file names');
    t.diagnostic(`${sent.length} canary requests (${predictRequests} predictions, ${errorBodies.length} refused); checked ${logLines.length} log lines, ${keys.length} Redis keys and their values, ${audit.length} audit records: no canary`);
  });
});
