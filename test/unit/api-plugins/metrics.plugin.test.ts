import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { metricsHandler, metricsPlugin, UNMATCHED_ROUTE } from '../../../src/api/plugins/metrics.plugin.ts';
import { createMetrics } from '../../../src/infra/metrics.ts';
import { testApp } from './test-app.ts';

/** The value of one series line of an exposition, or undefined. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('metricsPlugin', () => {
  let app: FastifyInstance;
  const metrics = createMetrics();

  before(async () => {
    app = testApp();
    await app.register(metricsPlugin, { metrics });
    app.get('/v1/models/:id', async (request) => ({ id: (request.params as { id: string }).id }));
    app.delete('/v1/experiments/:id', async (_request, reply) => reply.status(409).send({ code: 'EXPERIMENT_FINISHED' }));
    app.get('/metrics', metricsHandler(metrics));
    await app.ready();
  });
  after(async () => {
    await app.close();
  });

  it('records request latency by route template, method and status, never by raw URL', async () => {
    for (const id of ['m-001', 'm-002', 'm-003']) assert.equal((await app.inject({ method: 'GET', url: `/v1/models/${id}?x=1` })).statusCode, 200);
    assert.equal((await app.inject({ method: 'DELETE', url: '/v1/experiments/e-9' })).statusCode, 409);
    for (const url of ['/nope/1', '/nope/2']) assert.equal((await app.inject({ method: 'GET', url })).statusCode, 404);

    const response = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    const text = response.body;
    assert.equal(sample(text, 'http_request_duration_seconds_count{method="GET",route="/v1/models/:id",status="200"}'), 3);
    assert.equal(sample(text, 'http_request_duration_seconds_count{method="DELETE",route="/v1/experiments/:id",status="409"}'), 1);
    assert.equal(sample(text, `http_request_duration_seconds_count{method="GET",route="${UNMATCHED_ROUTE}",status="404"}`), 2);
    const sum = sample(text, 'http_request_duration_seconds_sum{method="GET",route="/v1/models/:id",status="200"}');
    assert.ok(sum !== undefined && sum > 0 && sum < 5, `latency sum ${sum} s`);
    assert.ok(!/m-00|e-9|nope/.test(text), 'no raw URL or id in any label');
    // the exposition also carries the process metrics of the same registry
    assert.match(text, /^process_resident_memory_bytes \d+/m);
  });
});
