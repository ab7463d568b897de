/**
 * The contract holds: every operation of openapi.yaml has a route and every route an operation,
 * error codes match the spec, scopes are enforced, and errors are problem documents. The services
 * behind the routes are stubs here (this isolates the HTTP layer); the integration tests use real ones.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppDependencies } from '../../../src/api/app.ts';
import { registerOperations } from '../../../src/api/openapi/register-operations.ts';
import { operationRoutes, specProblemCodes } from '../../../src/api/openapi/spec.ts';
import type { ExperimentBody } from '../../../src/api/ports.ts';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { loadConfig } from '../../../src/infra/config.ts';
import { AppError, ERROR_CODES } from '../../../src/infra/errors.ts';
import { createLogger } from '../../../src/infra/logger.ts';
import { createMetrics } from '../../../src/infra/metrics.ts';
import { assertMatchesSpec } from '../../helpers/openapi-validator.ts';

const KEYS = 'ml:ml-secret-0123456789abcdef:train,pacs:pacs-secret-0123456789abcdef:predict,root:root-secret-0123456789abcdef:admin';
const auth = (secret: string) => ({ authorization: `Bearer ${secret}-0123456789abcdef` });

const notUsed = (name: string) => async (): Promise<never> => {
  throw new Error(`${name} is not used by this test`);
};

const experiment: ExperimentBody = {
  id: 'exp-1',
  status: 'queued',
  datasetId: 'ds-1',
  settings: {
    architectures: ['cnn'],
    imageSize: 64,
    channels: 3,
    epochs: 2,
    batchSize: 16,
    learningRate: null,
    optimizer: 'adam',
    seed: 42,
    valFraction: 0.15,
    testFraction: 0.15,
    augment: true,
    classWeights: true,
    earlyStoppingPatience: 5,
    reduceLrPatience: 2,
    rankBy: 'macroF1',
  },
  createdAt: '2026-12-04T00:00:00.000Z',
  architectures: [{ architecture: 'cnn', status: 'queued', epoch: 0, epochs: 2, progress: 0, etaSeconds: null, history: [], attempts: 0 }],
};

function stubDependencies(): AppDependencies {
  return {
    config: loadConfig({ API_KEYS: KEYS, RATE_LIMIT_PER_MINUTE: '1000' }),
    logger: createLogger({ level: 'silent' }),
    keys: parseApiKeys(KEYS),
    metrics: createMetrics(),
    audit: { append: async () => {} },
    readiness: { check: async () => ({ ready: false, checks: { redis: { ok: true }, backend: { ok: true }, model: { ok: false, detail: 'no model' } } }) },
    datasets: { list: async () => [], get: notUsed('datasets.get'), createFromZip: notUsed('datasets.createFromZip') },
    experiments: {
      create: async () => experiment,
      get: async (id) => {
        if (id !== experiment.id) throw new AppError('EXPERIMENT_NOT_FOUND', `no experiment ${id}`);
        return experiment;
      },
      list: async () => [experiment],
      cancel: notUsed('experiments.cancel'),
      watch: async () => () => {},
    },
    reports: { get: notUsed('reports.get'), render: notUsed('reports.render'), chart: notUsed('reports.chart') },
    models: { list: async () => [], aliases: async () => ({}), get: notUsed('models.get'), setAlias: notUsed('models.setAlias'), filePath: notUsed('models.filePath') },
    predictions: { create: notUsed('predictions.create'), get: notUsed('predictions.get') },
    predictor: {
      predict: async () => {
        throw new Error('boom: /data/patients/Jane Doe.png');
      },
    },
  };
}

describe('API contract', () => {
  let app: FastifyInstance;
  before(async () => {
    app = await buildApp(stubDependencies());
    await app.ready();
  });
  after(() => app.close());

  it('registers one route per operation of openapi.yaml and no other route outside /docs', () => {
    const specOperations = operationRoutes().map((route) => `${route.method} ${route.url} ${route.operationId}`).sort();
    const routes = app.routeTable
      .filter((route) => route.method !== 'HEAD' && !route.url.startsWith('/docs'))
      .map((route) => `${route.method} ${route.url} ${route.operationId ?? '(no operation)'}`)
      .sort();
    assert.deepEqual(routes, specOperations);
    assert.ok(specOperations.length >= 18, `expected the 18 operations of DESIGN section 3, found ${specOperations.length}`);
  });

  it('refuses to start when an operation has no handler or a handler has no operation', () => {
    const routes = operationRoutes().slice(0, 2);
    const fake = { route: () => {} } as unknown as FastifyInstance;
    assert.throws(() => registerOperations(fake, { getHealth: async () => ({}) }, routes), /operations without a handler: getReadiness/);
    assert.throws(
      () => registerOperations(fake, { getHealth: async () => ({}), getReadiness: async () => ({}), notInSpec: async () => ({}) } as never, routes),
      /handlers without an operation: notInSpec/,
    );
  });

  it('lists exactly the catalogue error codes in the spec', () => {
    assert.deepEqual([...specProblemCodes()].sort(), [...ERROR_CODES].sort());
  });

  it('serves the spec at /docs', async () => {
    const page = await app.inject({ method: 'GET', url: '/docs/json' });
    assert.equal(page.statusCode, 200);
    assert.equal(page.json().info.title, 'fracture-service');
    assert.ok(page.json().paths['/v1/predict']);
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    assert.equal(ui.statusCode, 200);
    assert.match(ui.body, /swagger-ui/i);
    // The UI's scripts come from the package, not a CDN (hospital networks are often closed).
    const scripts = [...ui.body.matchAll(/<script[^>]+src="([^"]+)"/g)].map((match) => match[1] as string);
    assert.ok(scripts.length > 0);
    for (const src of scripts) {
      assert.doesNotMatch(src, /^https?:/);
      const asset = await app.inject({ method: 'GET', url: new URL(src, 'http://x/docs/').pathname });
      assert.equal(asset.statusCode, 200, src);
    }
  });

  it('keeps health, readiness and metrics open, and answers readiness 503 when the model is not warm', async () => {
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    assertMatchesSpec('getHealth', 200, health.json());
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 503);
    assertMatchesSpec('getReadiness', 503, ready.json(), 'application/json');
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(metrics.statusCode, 200);
    assert.match(metrics.body, /http_request_duration_seconds_bucket\{[^}]*route="\/healthz"/);
  });

  it('answers 401 without a key and 403 with a key that lacks the scope, as problem documents', async () => {
    const missing = await app.inject({ method: 'GET', url: '/v1/experiments' });
    assert.equal(missing.statusCode, 401);
    assert.match(String(missing.headers['content-type']), /^application\/problem\+json/);
    assert.match(String(missing.headers['www-authenticate']), /^Bearer/);
    assertMatchesSpec('listExperiments', 401, missing.json());
    assert.equal(missing.json().code, 'UNAUTHENTICATED');

    const wrongScope = await app.inject({ method: 'GET', url: '/v1/experiments', headers: auth('pacs-secret') });
    assert.equal(wrongScope.statusCode, 403);
    assert.equal(wrongScope.json().code, 'FORBIDDEN');

    const admin = await app.inject({ method: 'GET', url: '/v1/experiments', headers: auth('root-secret') });
    assert.equal(admin.statusCode, 200);
    assertMatchesSpec('listExperiments', 200, admin.json());
  });

  it('validates request bodies against the spec and lists every problem', async () => {
    const response = await app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: auth('ml-secret'),
      payload: { datasetId: '../etc', architectures: ['cnn', 'alexnet'], epochs: 0, unknownField: 1 },
    });
    assert.equal(response.statusCode, 400);
    const problem = response.json();
    assertMatchesSpec('createExperiment', 400, problem);
    assert.equal(problem.code, 'VALIDATION_FAILED');
    const paths = problem.errors.map((error: { path: string }) => error.path).join(' ');
    assert.match(paths, /datasetId/);
    assert.match(paths, /architectures/);
    assert.match(paths, /epochs/);
  });

  it('does not coerce JSON body members to the schema types', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/experiments', headers: auth('ml-secret'), payload: { datasetId: 'ds-1', epochs: '3' } });
    assert.equal(response.statusCode, 400);
    assert.match(response.json().errors.map((error: { path: string }) => error.path).join(' '), /epochs/);
  });

  it('accepts a valid experiment with 202, a Location and the contract body', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/experiments', headers: auth('ml-secret'), payload: { datasetId: 'ds-1', architectures: ['cnn'], epochs: 2 } });
    assert.equal(response.statusCode, 202);
    assert.equal(response.headers.location, '/v1/experiments/exp-1');
    assertMatchesSpec('createExperiment', 202, response.json());
  });

  it('maps malformed JSON, unknown routes and unsupported media types to stable codes', async () => {
    const malformed = await app.inject({ method: 'POST', url: '/v1/experiments', headers: { ...auth('ml-secret'), 'content-type': 'application/json' }, payload: '{"datasetId": ' });
    assert.equal(malformed.statusCode, 400);
    assert.equal(malformed.json().code, 'BODY_INVALID');

    const unknown = await app.inject({ method: 'GET', url: '/v1/nothing-here' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().code, 'NOT_FOUND');

    const text = await app.inject({ method: 'POST', url: '/v1/experiments', headers: { ...auth('ml-secret'), 'content-type': 'text/plain' }, payload: 'hello' });
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().code, 'UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers an unexpected failure with a generic 500 that does not repeat the error message', async () => {
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64');
    const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: auth('pacs-secret'), payload: { images: [{ data: png.toString('base64') }] } });
    assert.equal(response.statusCode, 500);
    assert.equal(response.json().code, 'INTERNAL');
    assert.doesNotMatch(response.body, /Jane|patients|boom/);
  });

  it('refuses more JSON images than PREDICT_MAX_FILES with 413 TOO_MANY_FILES', async () => {
    const images = Array.from({ length: 33 }, (_, i) => ({ id: `x${i}`, data: 'iVBORw0KGgo=' }));
    const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: auth('pacs-secret'), payload: { images } });
    assert.equal(response.statusCode, 413);
    assert.equal(response.json().code, 'TOO_MANY_FILES');
  });

  it('refuses bad base64 in a JSON prediction with VALIDATION_FAILED', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: auth('pacs-secret'), payload: { images: [{ data: '!!!not base64!!!' }] } });
    assert.equal(response.statusCode, 400);
    assert.equal(response.json().code, 'VALIDATION_FAILED');
  });

  it('answers an unknown experiment id with 404 before opening an event stream', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/experiments/exp-404/events', headers: { ...auth('ml-secret'), accept: 'text/event-stream' } });
    assert.equal(response.statusCode, 404);
    assert.equal(response.json().code, 'EXPERIMENT_NOT_FOUND');
  });
});

