/**
 * Operations and experiments over HTTP on real services: liveness, readiness (ready once the
 * production model the fixture trained is warm), open metrics, the spec at /docs, and the
 * experiment operations on a really trained, completed experiment: list, get, its server-sent events
 * over a real socket, refusing to cancel it, and refusing bad or dangling requests. A valid request
 * is queued as a BullMQ flow on the real Redis and cancelled again (no worker runs here).
 */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { loadSpec } from '../../../src/api/openapi/spec.ts';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { createApiRuntime } from '../../../src/runtime/service-context.ts';
import { compareJobId, trainJobId } from '../../../src/infra/queues.ts';
import { assertMatchesSpec, specOperationIds } from '../../helpers/openapi-validator.ts';
import { assertResponseMatchesSpec, startApiFixture, waitFor, type ApiFixture, type SeededExperiment } from './api-fixture.ts';

/** The events of a `text/event-stream` body. */
function parseEvents(text: string): { event: string | undefined; data: string; id: string | undefined }[] {
  return text
    .split(/\n\n+/)
    .map((block) => block.split('\n').filter((line) => line.length > 0 && !line.startsWith(':')))
    .filter((lines) => lines.length > 0)
    .map((lines) => {
      const field = (name: string) => lines.filter((line) => line.startsWith(`${name}:`)).map((line) => line.slice(name.length + 1).replace(/^ /, ''));
      return { event: field('event')[0], id: field('id')[0], data: field('data').join('\n') };
    });
}

describe('operations and experiments over HTTP', () => {
  let fx: ApiFixture;
  let seeded: SeededExperiment;

  before(async () => {
    fx = await startApiFixture();
    assert.ok(fx.experiment);
    seeded = fx.experiment;
  });
  after(() => fx?.close());

  it('answers /healthz without a key', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('getHealth', response);
    assert.equal(response.json().status, 'ok');
  });

  it('answers /readyz 200 once the production model is warm, naming the model, the backend and the engine', async () => {
    const ready = await waitFor(
      'readiness',
      async () => {
        const response = await fx.app.inject({ method: 'GET', url: '/readyz' });
        // Not ready yet (the first check loads the model) is a 503 with the same body shape.
        assertResponseMatchesSpec('getReadiness', response);
        return response.statusCode === 200 ? response : undefined;
      },
      30_000,
      200,
    );
    const body = ready.json();
    assert.equal(body.ready, true);
    assert.equal(body.checks.redis.ok, true);
    assert.equal(body.checks.backend.detail, fx.runtime.backend?.name);
    assert.match(body.checks.model.detail, new RegExp(`^${seeded.modelId} \\(cnn, version `));
    // The trained model has model.onnx and onnxruntime-node loads here: auto picks ONNX Runtime.
    assert.equal(body.checks.model.engine, 'onnx');
    assert.equal(body.checks.model.engineReason, undefined);
  });

  it('serves /metrics without a key, with request latency by route template', async () => {
    assertResponseMatchesSpec('getExperiment', await fx.app.inject({ method: 'GET', url: `/v1/experiments/${seeded.id}`, headers: fx.auth('train') }));
    const response = await fx.app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('getMetrics', response);
    assert.match(String(response.headers['content-type']), /^text\/plain/);
    assert.match(response.body, /http_request_duration_seconds_count\{[^}]*route="\/v1\/experiments\/:experimentId"[^}]*\} [1-9]/);
    assert.match(response.body, /^# TYPE predict_batch_size histogram$/m);
  });

  it('serves the spec at /docs (JSON with every path of openapi.yaml, and the UI page)', async () => {
    const json = await fx.app.inject({ method: 'GET', url: '/docs/json' });
    assert.equal(json.statusCode, 200);
    assert.deepEqual(Object.keys(json.json().paths).sort(), Object.keys(loadSpec().paths).sort());
    const page = await fx.app.inject({ method: 'GET', url: '/docs/' });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
  });

  it('lists the completed experiment and shows it with its trained architecture, winner and report URL', async () => {
    const list = await fx.app.inject({ method: 'GET', url: '/v1/experiments', headers: fx.auth('train') });
    assert.equal(list.statusCode, 200);
    assertResponseMatchesSpec('listExperiments', list);
    assert.deepEqual(
      list.json().experiments.map((experiment: { id: string }) => experiment.id),
      [seeded.id],
    );

    const one = await fx.app.inject({ method: 'GET', url: `/v1/experiments/${seeded.id}`, headers: fx.auth('train') });
    assert.equal(one.statusCode, 200);
    const body = one.json();
    assertResponseMatchesSpec('getExperiment', one);
    assert.equal(body.status, 'completed');
    assert.equal(body.datasetId, seeded.datasetId);
    assert.equal(body.reportUrl, `/v1/reports/${seeded.id}`);
    assert.equal(body.winner.modelId, seeded.modelId);
    assert.equal(body.winner.promoted, true);
    const [cnn] = body.architectures;
    assert.equal(cnn.status, 'completed');
    assert.equal(cnn.progress, 1);
    assert.equal(cnn.history.length, 1);
    assert.equal(cnn.result.params, seeded.report.results[0]?.params);
    assert.equal(cnn.attempts, 1);
  });

  it('answers an unknown experiment with 404 EXPERIMENT_NOT_FOUND', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/experiments/exp-19990101-000000-dead', headers: fx.auth('train') });
    assert.equal(response.statusCode, 404);
    assertResponseMatchesSpec('getExperiment', response);
    assert.equal(response.json().code, 'EXPERIMENT_NOT_FOUND');
  });

  it('streams the completed experiment as one `experiment` event over a real connection, then ends the stream', async () => {
    const base = await fx.listen();
    const response = await fetch(`${base}/v1/experiments/${seeded.id}/events`, {
      headers: { ...fx.auth('train'), accept: 'text/event-stream' },
      signal: AbortSignal.timeout(10_000),
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
    // text() resolves only when the server ends the stream.
    const text = await response.text();
    assertResponseMatchesSpec('streamExperimentEvents', { statusCode: response.status, headers: { 'content-type': response.headers.get('content-type') }, body: text });
    const events = parseEvents(text).filter((event) => event.event !== undefined || event.data !== '');
    assert.equal(events.length, 1, `one event, got ${JSON.stringify(events).slice(0, 300)}`);
    const [event] = events;
    assert.equal(event?.event, 'experiment');
    const data = JSON.parse(event?.data ?? 'null');
    assertMatchesSpec('getExperiment', 200, data);
    assert.equal(data.id, seeded.id);
    assert.equal(data.status, 'completed');
  });

  it('answers the event stream of an unknown experiment with a 404 problem document, not a stream', async () => {
    const response = await fx.app.inject({
      method: 'GET',
      url: '/v1/experiments/exp-19990101-000000-dead/events',
      headers: { ...fx.auth('train'), accept: 'text/event-stream' },
    });
    assert.equal(response.statusCode, 404);
    assertResponseMatchesSpec('streamExperimentEvents', response);
    assert.equal(response.json().code, 'EXPERIMENT_NOT_FOUND');
  });

  it('refuses to cancel a completed experiment with 409 EXPERIMENT_FINISHED and leaves it completed', async () => {
    const response = await fx.app.inject({ method: 'DELETE', url: `/v1/experiments/${seeded.id}`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 409);
    assertResponseMatchesSpec('cancelExperiment', response);
    assert.equal(response.json().code, 'EXPERIMENT_FINISHED');
    const after = await fx.app.inject({ method: 'GET', url: `/v1/experiments/${seeded.id}`, headers: fx.auth('train') });
    assertResponseMatchesSpec('getExperiment', after);
    assert.equal(after.json().status, 'completed');
  });

  it('refuses invalid settings: schema violations with 400 VALIDATION_FAILED, engine rules with 422 EXPERIMENT_INVALID', async () => {
    const schema = await fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: fx.auth('train'),
      payload: { datasetId: seeded.datasetId, architectures: ['alexnet'], epochs: 0 },
    });
    assert.equal(schema.statusCode, 400);
    assertResponseMatchesSpec('createExperiment', schema);
    assert.equal(schema.json().code, 'VALIDATION_FAILED');
    const paths = schema.json().errors.map((error: { path: string }) => error.path).join(' ');
    assert.match(paths, /architectures/);
    assert.match(paths, /epochs/);

    const rules = await fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: fx.auth('train'),
      payload: { datasetId: seeded.datasetId, architectures: ['inceptionv3'], imageSize: 64, epochs: 1 },
    });
    assert.equal(rules.statusCode, 422);
    assertResponseMatchesSpec('createExperiment', rules);
    assert.equal(rules.json().code, 'EXPERIMENT_INVALID');
    assert.ok(rules.json().errors.some((error: { path?: string }) => error.path === 'body/imageSize'), JSON.stringify(rules.json().errors));
    // Nothing was created by either.
    const list = await fx.app.inject({ method: 'GET', url: '/v1/experiments', headers: fx.auth('train') });
    assertResponseMatchesSpec('listExperiments', list);
    assert.equal(list.json().experiments.length, 1);
  });

  it('refuses an experiment on an unknown dataset with 404 DATASET_NOT_FOUND', async () => {
    const response = await fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: fx.auth('train'),
      payload: { datasetId: 'no-such-dataset', architectures: ['cnn'], imageSize: 32, epochs: 1 },
    });
    assert.equal(response.statusCode, 404);
    assertResponseMatchesSpec('createExperiment', response);
    assert.equal(response.json().code, 'DATASET_NOT_FOUND');
  });

  it('refuses experiment operations to a predict-only key with 403 FORBIDDEN', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/experiments', headers: fx.auth('predict') });
    assert.equal(response.statusCode, 403);
    assertResponseMatchesSpec('listExperiments', response);
    assert.equal(response.json().code, 'FORBIDDEN');
  });

  it('queues a valid experiment as a BullMQ flow on Redis (202 + Location) and cancels it (202, jobs removed)', async () => {
    const created = await fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: fx.auth('train'),
      payload: { datasetId: seeded.datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1 },
    });
    assert.equal(created.statusCode, 202);
    assertResponseMatchesSpec('createExperiment', created);
    const { id, status } = created.json();
    assert.equal(status, 'queued');
    assert.equal(created.headers.location, `/v1/experiments/${id}`);
    const queue = fx.context.queues.trainingQueue;
    assert.equal(await (await queue.getJob(trainJobId(id, 'cnn')))?.getState(), 'waiting');
    assert.equal(await (await queue.getJob(compareJobId(id)))?.getState(), 'waiting-children');

    const cancelled = await fx.app.inject({ method: 'DELETE', url: `/v1/experiments/${id}`, headers: fx.auth('train') });
    assert.equal(cancelled.statusCode, 202);
    assertResponseMatchesSpec('cancelExperiment', cancelled);
    assert.equal(cancelled.json().status, 'cancelled');
    assert.equal(await queue.getJob(trainJobId(id, 'cnn')), undefined);
    assert.equal(await queue.getJob(compareJobId(id)), undefined);

    // A cancelled experiment's stream, too, is one final event and the end.
    const stream = await fx.app.inject({ method: 'GET', url: `/v1/experiments/${id}/events`, headers: { ...fx.auth('train'), accept: 'text/event-stream' } });
    assert.equal(stream.statusCode, 200);
    assertResponseMatchesSpec('streamExperimentEvents', stream);
    const events = parseEvents(stream.body).filter((event) => event.event === 'experiment');
    assert.equal(events.length, 1);
    assert.equal(JSON.parse(events[0]?.data ?? 'null').status, 'cancelled');
  });

  it('checks a response of every operation of openapi.yaml against the spec somewhere in this folder', async () => {
    const folder = import.meta.dirname;
    const names = (await readdir(folder)).filter((name) => name.endsWith('.test.ts'));
    const sources = (await Promise.all(names.map((name) => readFile(`${folder}/${name}`, 'utf8')))).join('\n');
    const unchecked = specOperationIds().filter((id) => !new RegExp(`assert(?:Response)?MatchesSpec\\(\\s*'${id}'`).test(sources));
    assert.deepEqual(unchecked, [], 'operations no test here checks against openapi.yaml');
    assert.equal(specOperationIds().length, 20);
  });
  // Last: a second runtime on the same services replaces the context's queue counter for /metrics.
  it('names the engine in /readyz in queue mode too: the one the inference workers choose with the same settings', async () => {
    const queueMode = await createApiRuntime(fx.context, { keys: parseApiKeys(fx.config.API_KEYS ?? ''), mode: 'queue' });
    try {
      const response = await queueMode.app.inject({ method: 'GET', url: '/readyz' });
      assertResponseMatchesSpec('getReadiness', response);
      const body = response.json();
      // No inference worker runs here, so not ready; the model check still names the engine.
      assert.equal(response.statusCode, 503);
      assert.equal(body.checks.backend.ok, false);
      assert.equal(body.checks.model.ok, true);
      assert.equal(body.checks.model.engine, 'onnx');
    } finally {
      await queueMode.close();
    }
  });
});
