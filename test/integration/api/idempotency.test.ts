/**
 * `Idempotency-Key` on `POST /v1/experiments` (issue 5 item 4) over HTTP on the real Redis, no
 * workers: 20 concurrent identical requests create one experiment and one BullMQ flow and all get
 * its id; a repeat later gets it too; another key, another caller or no key creates anew; the key
 * with another body and malformed keys are refused. Then {@link IdempotencyKeys} itself: a failing
 * winner frees its key, a forgotten experiment frees it, a winner that hangs makes waiters give up
 * with a retryable 503, and the client's key is never stored in Redis.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { AppError } from '../../../src/infra/errors.ts';
import { QUEUE_NAMES } from '../../../src/infra/queues.ts';
import { canonicalHash, IdempotencyKeys } from '../../../src/services/idempotency.ts';
import { assertResponseMatchesSpec, deleteKeys, REDIS_URL, startApiFixture, type ApiFixture, type KeyName } from './api-fixture.ts';

interface Accepted {
  id: string;
  status: string;
}

describe('Idempotency-Key on POST /v1/experiments', () => {
  let fx: ApiFixture;
  let queue: Queue;
  let redis: Redis;

  before(async () => {
    fx = await startApiFixture({ seedExperiment: false });
    queue = new Queue(QUEUE_NAMES.training, { connection: { url: REDIS_URL }, prefix: fx.config.QUEUE_PREFIX });
    redis = new Redis(REDIS_URL);
  });
  after(async () => {
    await queue?.close();
    redis?.disconnect();
    await fx?.close();
  });

  const body = (epochs = 1): Record<string, unknown> => ({ datasetId: fx.datasetId, architectures: ['cnn'], imageSize: 32, epochs, batchSize: 4, seed: 5 });
  const post = (payload: Record<string, unknown>, key?: string, caller: KeyName = 'train') =>
    fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: { ...fx.auth(caller), ...(key === undefined ? {} : { 'idempotency-key': key }) },
      payload,
    });
  const experimentIds = async (): Promise<string[]> => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/experiments', headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    return (response.json<{ experiments: { id: string }[] }>().experiments).map((experiment) => experiment.id).sort();
  };
  /** Every job of the training queue, by name. */
  const jobNames = async (): Promise<string[]> => (await queue.getJobs()).map((job) => job.name).sort();

  const key = `retry-${randomBytes(6).toString('hex')}~!"#$%&'()*+,-./:;<=>?@[\\]^_\`{|}`;
  let firstId = '';

  it('answers 20 concurrent identical requests with one experiment, one flow and the same id', async () => {
    const responses = await Promise.all(Array.from({ length: 20 }, () => post(body(), key)));
    for (const response of responses) {
      assert.equal(response.statusCode, 202, response.body);
      assertResponseMatchesSpec('createExperiment', response);
    }
    const accepted = responses.map((response) => response.json<Accepted>());
    const ids = new Set(accepted.map((item) => item.id));
    assert.equal(ids.size, 1, `expected one id, got ${[...ids].join(', ')}`);
    firstId = accepted[0]?.id ?? '';
    assert.ok(accepted.every((item) => item.status === 'queued'));
    assert.ok(responses.every((response) => response.headers.location === `/v1/experiments/${firstId}`));
    assert.deepEqual(await experimentIds(), [firstId]);
    // One flow: one compare parent and one train child (cnn).
    assert.deepEqual(await jobNames(), ['compare', 'train']);
  });

  it('answers a later repeat with the same experiment and creates nothing', async () => {
    const response = await post(body(), key);
    assert.equal(response.statusCode, 202);
    assert.deepEqual(response.json<Accepted>(), { id: firstId, status: 'queued' });
    assert.deepEqual(await experimentIds(), [firstId]);
    assert.deepEqual(await jobNames(), ['compare', 'train']);
  });

  it('treats a body equal after defaults and key order as the same request', async () => {
    const reordered = { seed: 5, batchSize: 4, epochs: 1, imageSize: 32, architectures: ['cnn'], datasetId: fx.datasetId, optimizer: 'adam' };
    const response = await post(reordered, key);
    assert.equal(response.statusCode, 202, response.body);
    assert.equal(response.json<Accepted>().id, firstId);
    assert.deepEqual(await experimentIds(), [firstId]);
  });

  it('refuses the key with a different body (422 IDEMPOTENCY_KEY_REUSED) and creates nothing', async () => {
    const response = await post(body(2), key);
    assert.equal(response.statusCode, 422);
    assertResponseMatchesSpec('createExperiment', response);
    const problem = response.json<{ code: string; detail: string }>();
    assert.equal(problem.code, 'IDEMPOTENCY_KEY_REUSED');
    assert.match(problem.detail, /Idempotency-Key was already used with a different request body/);
    assert.ok(!response.body.includes(key.slice(0, 18)), 'the problem document repeats the key');
    assert.deepEqual(await experimentIds(), [firstId]);
  });

  it('creates a new experiment for another key, and for the same key from another caller', async () => {
    const other = await post(body(), `${key}-2`);
    assert.equal(other.statusCode, 202);
    const otherId = other.json<Accepted>().id;
    assert.notEqual(otherId, firstId);
    const otherCaller = await post(body(), key, 'admin');
    assert.equal(otherCaller.statusCode, 202);
    const otherCallerId = otherCaller.json<Accepted>().id;
    assert.ok(otherCallerId !== firstId && otherCallerId !== otherId);
    assert.deepEqual(await experimentIds(), [firstId, otherId, otherCallerId].sort());
    assert.deepEqual(await jobNames(), ['compare', 'compare', 'compare', 'train', 'train', 'train']);
  });

  it('refuses malformed keys with 400 VALIDATION_FAILED before creating anything', async () => {
    const before = await experimentIds();
    for (const bad of ['', 'a'.repeat(129), 'has space', 'tab\tinside']) {
      const response = await post(body(), bad);
      assert.equal(response.statusCode, 400, `key ${JSON.stringify(bad)}: ${response.body}`);
      assertResponseMatchesSpec('createExperiment', response);
      assert.equal(response.json<{ code: string }>().code, 'VALIDATION_FAILED');
    }
    const longest = await post(body(), 'k'.repeat(128));
    assert.equal(longest.statusCode, 202, 'a 128-character key is valid');
    assert.equal((await experimentIds()).length, before.length + 1);
  });

  it('creates one experiment per request without a key, as before', async () => {
    const before = await experimentIds();
    const responses = await Promise.all([post(body()), post(body()), post(body())]);
    assert.ok(responses.every((response) => response.statusCode === 202));
    const ids = new Set(responses.map((response) => response.json<Accepted>().id));
    assert.equal(ids.size, 3);
    assert.equal((await experimentIds()).length, before.length + 3);
  });

  it('stores only a hash of the key in Redis, with a 24 h expiry', async () => {
    const keys = await redis.keys(`${fx.config.QUEUE_PREFIX}:idempotency:*`);
    assert.ok(keys.length >= 4, `expected the idempotency keys, found ${keys.length}`);
    for (const stored of keys) {
      assert.match(stored, /:idempotency:[0-9a-f]{64}$/);
      const value = (await redis.get(stored)) ?? '';
      assert.ok(!value.includes('retry-'), 'a stored value holds the client key');
      const ttl = await redis.pttl(stored);
      assert.ok(ttl > 86_000_000 && ttl <= 86_400_000, `ttl ${ttl}`);
    }
  });
});

describe('IdempotencyKeys on the real Redis', () => {
  const prefix = `test-idem-${randomBytes(4).toString('hex')}`;
  let redis: Redis;
  before(() => {
    redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    redis?.disconnect();
    await deleteKeys(prefix);
  });
  const call = (key: string, bodyHash = canonicalHash({ a: 1 })) => ({ callerId: 'ml', key, bodyHash });

  it('frees the key when the winner fails, so a retry creates', async () => {
    const keys = new IdempotencyKeys(redis, prefix);
    await assert.rejects(keys.run(call('fails'), async () => { throw new AppError('REDIS_UNAVAILABLE', 'down'); }), { code: 'REDIS_UNAVAILABLE' });
    assert.equal(await redis.exists(keys.redisKey('ml', 'fails')), 0);
    let created = 0;
    const result = await keys.run(call('fails'), async () => `exp-${++created}`);
    assert.deepEqual(result, { id: 'exp-1', replayed: false });
    assert.deepEqual(await keys.run(call('fails'), async () => `exp-${++created}`), { id: 'exp-1', replayed: true });
    assert.equal(created, 1);
  });

  it('creates anew when the stored experiment no longer exists', async () => {
    const keys = new IdempotencyKeys(redis, prefix);
    await keys.run(call('gone'), async () => 'exp-old');
    const result = await keys.run(call('gone'), async () => 'exp-new', async (id) => id !== 'exp-old');
    assert.deepEqual(result, { id: 'exp-new', replayed: false });
  });

  it('lets waiters give up with a retryable 409 when the winner hangs, and they never create', async () => {
    const keys = new IdempotencyKeys(redis, prefix, { waitMs: 300, pollMs: 10 });
    let release: () => void = () => {};
    const winner = keys.run(call('slow'), () => new Promise<string>((resolve) => (release = () => resolve('exp-slow'))));
    await new Promise((resolve) => setTimeout(resolve, 20));
    let loserCreated = false;
    const startedAt = performance.now();
    await assert.rejects(
      keys.run(call('slow'), async () => {
        loserCreated = true;
        return 'exp-loser';
      }),
      (error: unknown) => error instanceof AppError && error.status === 409 && error.code === 'IDEMPOTENCY_KEY_IN_USE' && error.headers['Retry-After'] === '1',
    );
    assert.ok(performance.now() - startedAt >= 290);
    assert.equal(loserCreated, false);
    release();
    assert.deepEqual(await winner, { id: 'exp-slow', replayed: false });
    assert.deepEqual(await keys.run(call('slow'), async () => 'exp-loser'), { id: 'exp-slow', replayed: true });
  });

  it('compares bodies by canonical hash: field order does not matter, values and array order do', () => {
    assert.equal(canonicalHash({ b: 1, a: { y: [1, 2], x: null } }), canonicalHash({ a: { x: null, y: [1, 2] }, b: 1 }));
    assert.notEqual(canonicalHash({ a: [1, 2] }), canonicalHash({ a: [2, 1] }));
    assert.notEqual(canonicalHash({ a: 1 }), canonicalHash({ a: '1' }));
  });
});
