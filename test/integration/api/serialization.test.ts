/**
 * Fastify serialises responses with the schemas of openapi.yaml and silently drops members a
 * schema does not declare. These tests compare what the services return with what the API sends,
 * so a field added to a service but not to the contract fails here instead of vanishing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApiFixture, type ApiFixture } from './api-fixture.ts';

/** `value` as JSON would carry it (undefined members gone, dates as strings). */
const asJson = (value: unknown): unknown => JSON.parse(JSON.stringify(value));

describe('responses carry every member the services produce', () => {
  let fx: ApiFixture;
  before(async () => {
    fx = await startApiFixture();
  });
  after(() => fx?.close());

  const get = async (url: string, key: 'train' | 'predict' | 'admin'): Promise<unknown> => {
    const response = await fx.app.inject({ method: 'GET', url, headers: fx.auth(key) });
    assert.equal(response.statusCode, 200, `${url}: ${response.body.slice(0, 300)}`);
    return response.json();
  };

  it('datasets', async () => {
    const { datasets } = fx.context;
    assert.deepEqual(await get('/v1/datasets', 'train'), asJson({ datasets: await datasets.list() }));
    assert.deepEqual(await get(`/v1/datasets/${fx.datasetId}`, 'train'), asJson(await datasets.get(fx.datasetId)));
  });

  it('experiments', async () => {
    const id = fx.experiment!.id;
    const { experiments } = fx.context;
    assert.deepEqual(await get(`/v1/experiments/${id}`, 'train'), asJson(await experiments.get(id)));
    assert.deepEqual(await get('/v1/experiments', 'train'), asJson({ experiments: await experiments.list() }));
  });

  it('reports', async () => {
    const id = fx.experiment!.id;
    assert.deepEqual(await get(`/v1/reports/${id}`, 'train'), asJson(await fx.context.reports.get(id)));
  });

  it('models', async () => {
    const { models } = fx.context;
    const [first] = await models.list();
    assert.ok(first, 'the fixture registered a model');
    assert.deepEqual(await get(`/v1/models/${first.id}`, 'predict'), asJson(await models.get(first.id)));
    assert.deepEqual(await get('/v1/models', 'predict'), asJson({ models: await models.list(), aliases: await models.aliases() }));
  });
});
