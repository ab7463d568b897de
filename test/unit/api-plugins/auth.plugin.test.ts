import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { authPlugin } from '../../../src/api/plugins/auth.plugin.ts';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { testApp } from './test-app.ts';

const PREDICT = 'predict-secret-000000001';
const TRAIN = 'train-secret-00000000002';
const ADMIN = 'admin-secret-00000000003';
const keys = parseApiKeys(`pacs:${PREDICT}:predict,lab:${TRAIN}:train,ops:${ADMIN}:admin`);
const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

describe('authPlugin', () => {
  let app: FastifyInstance;
  let handled = 0;

  before(async () => {
    app = testApp();
    await app.register(authPlugin, { keys });
    app.get('/healthz', async (request) => ({ ok: true, caller: request.apiKey?.id ?? null }));
    app.post('/v1/predict', { config: { scope: 'predict' } }, async (request) => {
      handled += 1;
      return { caller: request.apiKey };
    });
    app.post('/v1/experiments', { config: { scope: 'train' } }, async () => ({ ok: true }));
    app.put('/v1/models/:id/aliases/:alias', { config: { scope: 'admin' } }, async () => ({ ok: true }));
    await app.ready();
  });
  after(async () => {
    await app.close();
  });

  it('answers 401 with a Bearer challenge when the key is missing, and never runs the handler', async () => {
    const before = handled;
    const response = await app.inject({ method: 'POST', url: '/v1/predict', payload: {} });
    assert.equal(response.statusCode, 401);
    assert.deepEqual(response.json(), { code: 'UNAUTHENTICATED' });
    assert.equal(response.headers['www-authenticate'], 'Bearer realm="fracture-service"');
    assert.equal(handled, before);
  });

  it('answers 401 invalid_token for a malformed header or an unknown key', async () => {
    for (const authorization of [`Basic ${Buffer.from(`pacs:${PREDICT}`).toString('base64')}`, 'Bearer', `Bearer ${PREDICT} extra`, `Bearer ${PREDICT}x`, `Bearer ${keys[0]?.secretHash}`]) {
      const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: { authorization }, payload: {} });
      assert.equal(response.statusCode, 401, authorization);
      assert.deepEqual(response.json(), { code: 'UNAUTHENTICATED' });
      assert.equal(response.headers['www-authenticate'], 'Bearer realm="fracture-service", error="invalid_token"');
    }
  });

  it('refuses an unauthenticated request before reading its body', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: { 'content-type': 'application/json' }, payload: '{not json' });
    assert.equal(response.statusCode, 401, 'not 400: the body was never parsed');
    const authed = await app.inject({ method: 'POST', url: '/v1/predict', headers: { ...bearer(PREDICT), 'content-type': 'application/json' }, payload: '{not json' });
    assert.equal(authed.statusCode, 400, 'with a key the body is parsed (and fails)');
  });

  it('answers 403 when the key lacks the route scope', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/experiments', headers: bearer(PREDICT), payload: {} });
    assert.equal(response.statusCode, 403);
    assert.deepEqual(response.json(), { code: 'FORBIDDEN' });
    assert.match(String(response.headers['www-authenticate']), /error="insufficient_scope", scope="train"/);
    const alias = await app.inject({ method: 'PUT', url: '/v1/models/m1/aliases/production', headers: bearer(TRAIN) });
    assert.equal(alias.statusCode, 403);
  });

  it('lets a key with the scope through and shows the handler its id and scopes, not its hash', async () => {
    const response = await app.inject({ method: 'POST', url: '/v1/predict', headers: { authorization: `bearer  ${PREDICT}` }, payload: {} });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), { caller: { id: 'pacs', scopes: ['predict'] } });
    assert.equal((await app.inject({ method: 'POST', url: '/v1/experiments', headers: bearer(TRAIN), payload: {} })).statusCode, 200);
  });

  it('lets an admin key use every scope', async () => {
    assert.equal((await app.inject({ method: 'POST', url: '/v1/predict', headers: bearer(ADMIN), payload: {} })).statusCode, 200);
    assert.equal((await app.inject({ method: 'POST', url: '/v1/experiments', headers: bearer(ADMIN), payload: {} })).statusCode, 200);
    assert.equal((await app.inject({ method: 'PUT', url: '/v1/models/m1/aliases/production', headers: bearer(ADMIN) })).statusCode, 200);
  });

  it('keeps routes without a scope open, with or without a (bad) key', async () => {
    const open = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(open.statusCode, 200);
    assert.deepEqual(open.json(), { ok: true, caller: null });
    assert.equal((await app.inject({ method: 'GET', url: '/healthz', headers: bearer('not-a-key') })).statusCode, 200);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/healthz', headers: bearer(TRAIN) })).json(), { ok: true, caller: 'lab' });
  });
});
