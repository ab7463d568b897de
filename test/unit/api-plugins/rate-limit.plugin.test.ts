import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { authPlugin } from '../../../src/api/plugins/auth.plugin.ts';
import { rateLimitPlugin, type RateLimitPluginOptions } from '../../../src/api/plugins/rate-limit.plugin.ts';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { testApp } from './test-app.ts';

const A = 'key-a-secret-0000000001';
const B = 'key-b-secret-0000000002';
const keys = parseApiKeys(`a:${A}:predict,b:${B}:predict`);
const MAX = 3;

async function buildApp(options: RateLimitPluginOptions): Promise<FastifyInstance> {
  const app = testApp();
  await app.register(authPlugin, { keys });
  await app.register(rateLimitPlugin, options);
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/metrics', async () => 'up 1\n');
  app.post('/v1/predict', { config: { scope: 'predict' } }, async (request) => ({ caller: request.apiKey?.id }));
  await app.ready();
  return app;
}

const predict = (app: FastifyInstance, secret?: string, ip = '127.0.0.1') =>
  app.inject({ method: 'POST', url: '/v1/predict', remoteAddress: ip, payload: {}, ...(secret ? { headers: { authorization: `Bearer ${secret}` } } : {}) });

/** Spends `key`'s budget, then shows the next request is refused as RATE_LIMITED with Retry-After. */
async function assertBudget(app: FastifyInstance, secret: string, expectedCaller: string): Promise<void> {
  for (let i = 0; i < MAX; i += 1) {
    const ok = await predict(app, secret);
    assert.equal(ok.statusCode, 200, `request ${i + 1} of ${expectedCaller}`);
    assert.equal(ok.json().caller, expectedCaller);
    assert.equal(ok.headers['x-ratelimit-remaining'], String(MAX - i - 1));
  }
  const limited = await predict(app, secret);
  assert.equal(limited.statusCode, 429);
  assert.deepEqual(limited.json(), { code: 'RATE_LIMITED' });
  const retryAfter = Number(limited.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${String(limited.headers['retry-after'])}`);
}

describe('rateLimitPlugin', () => {
  const apps: FastifyInstance[] = [];
  after(async () => {
    await Promise.all(apps.map((app) => app.close()));
  });

  it('gives each API key its own budget per window', async () => {
    const app = await buildApp({ max: MAX });
    apps.push(app);
    await assertBudget(app, A, 'a');
    // a is spent; b (same IP) still has its whole budget
    await assertBudget(app, B, 'b');
    assert.equal((await predict(app, A)).statusCode, 429, 'a stays limited');
  });

  it('counts requests without a valid key per IP address, before refusing them', async () => {
    const app = await buildApp({ max: MAX });
    apps.push(app);
    for (let i = 0; i < MAX; i += 1) assert.equal((await predict(app, 'wrong-key-guess-000000', '127.0.0.7')).statusCode, 401);
    assert.equal((await predict(app, undefined, '127.0.0.7')).statusCode, 429, 'the fourth guess from this address is limited');
    assert.equal((await predict(app, undefined, '127.0.0.8')).statusCode, 401, 'another address has its own budget');
    assert.equal((await predict(app, A, '127.0.0.7')).statusCode, 200, 'a valid key from that address counts against the key');
  });

  it('never limits routes without a scope (health, metrics)', async () => {
    const app = await buildApp({ max: MAX });
    apps.push(app);
    for (let i = 0; i < MAX * 4; i += 1) {
      assert.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
      assert.equal((await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${A}` } })).statusCode, 200);
    }
    await assertBudget(app, A, 'a');
  });

  it('refuses to register before the auth plugin', async () => {
    const app = testApp();
    apps.push(app);
    await assert.rejects(
      (async () => {
        await app.register(rateLimitPlugin, { max: MAX });
        await app.ready();
      })(),
      /fracture-auth/,
    );
  });

  it('shares budgets through Redis between two API processes', async () => {
    const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1, lazyConnect: true });
    await redis.connect();
    const nameSpace = `test-rate-limit-${randomBytes(6).toString('hex')}:`;
    try {
      const first = await buildApp({ max: MAX, redis, nameSpace });
      const second = await buildApp({ max: MAX, redis, nameSpace });
      apps.push(first, second);
      assert.equal((await predict(first, A)).statusCode, 200);
      assert.equal((await predict(second, A)).statusCode, 200);
      assert.equal((await predict(first, A)).statusCode, 200);
      assert.equal((await predict(second, A)).statusCode, 429, 'the two apps spent one budget');
      assert.equal((await predict(second, B)).statusCode, 200);
      assert.ok((await redis.keys(`${nameSpace}*`)).length > 0, 'counters live in Redis under the namespace');
    } finally {
      const leftover = await redis.keys(`${nameSpace}*`);
      if (leftover.length > 0) await redis.del(...leftover);
      await redis.quit();
    }
  });
});
