/**
 * Redis faults (issue 5, "Faults"), each on a `redis-server` of this file's own with AOF
 * (`appendfsync always`), never the shared one: the fixture's data directory and trained
 * `production` model are served by a second service context pointed at that server.
 *
 * 1. Redis down: `POST /v1/experiments` answers 503 `REDIS_UNAVAILABLE` with `Retry-After` in under
 *    a second and leaves no experiment behind, `/healthz` stays 200, `/readyz` answers 503 with
 *    `checks.redis.ok === false`, and in-process `POST /v1/predict` keeps working (the model is
 *    local). Redis started again on the same port and directory: the same API (not restarted) is
 *    ready again and creates experiments.
 * 2. Redis hung (SIGSTOP: connections accepted, no answers): the create answers 503 in about a
 *    second and in-process predictions are not slowed down; after SIGCONT the same API creates again.
 * 3. Redis SIGKILLed right after a 202 and restarted on the same port and directory: the AOF replays
 *    the acknowledged flow, the in-process training workers reconnect by themselves, and the
 *    experiment completes with its report.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Queue } from 'bullmq';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { createLogger } from '../../../src/infra/logger.ts';
import { compareJobId, QUEUE_NAMES, trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import { createApiRuntime, createServiceContext, type ApiRuntime, type ServiceContext } from '../../../src/runtime/service-context.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { startOwnRedis, type OwnRedis } from '../../helpers/redis-server.ts';
import { multipartBody, startApiFixture, waitFor, type ApiFixture } from './api-fixture.ts';

/** The tiny experiment both scenarios create on the fixture's synthetic dataset. */
const EXPERIMENT = { architectures: ['cnn'], imageSize: 32, epochs: 1, batchSize: 8, seed: 7, augment: false } as const;

/** A service context and in-process API on the fixture's data directory, but on another Redis. */
interface OwnApi {
  context: ServiceContext;
  runtime: ApiRuntime;
  close(): Promise<void>;
}

async function apiOn(fx: ApiFixture, redisUrl: string): Promise<OwnApi> {
  const context = createServiceContext(fx.config, { logger: createLogger({ level: 'silent' }), redisUrl });
  const runtime = await createApiRuntime(context, { keys: parseApiKeys(fx.config.API_KEYS ?? ''), mode: 'in-process' });
  return {
    context,
    runtime,
    close: async () => {
      await runtime.close();
      await context.close();
    },
  };
}

/** The train job's state and the workers Redis knows, for a failure message. */
async function queueDiagnosis(redisUrl: string, prefix: string, experimentId: string): Promise<string> {
  const connection = createProducerConnection(redisUrl);
  const queue = new Queue(QUEUE_NAMES.training, { connection, prefix });
  try {
    const job = await queue.getJob(trainJobId(experimentId, 'cnn'));
    const workers = await queue.getWorkers();
    const lock = job ? await connection.pttl(`${prefix}:${QUEUE_NAMES.training}:${job.id}:lock`) : null;
    return `train job ${job ? await job.getState() : 'missing'} (attempts started ${job?.attemptsStarted}, stalled ${job?.stalledCounter}, lock ttl ${lock} ms), ${workers.length} worker connection(s), counts ${JSON.stringify(await queue.getJobCounts())}`;
  } catch (error) {
    return `unavailable (${(error as Error).message})`;
  } finally {
    await queue.close();
    await closeConnection(connection);
  }
}

describe('Redis faults', () => {
  let fx: ApiFixture;
  const servers: OwnRedis[] = [];
  const apis: OwnApi[] = [];
  let workers: RunningWorkers | undefined;
  /** One synthetic radiograph (PNG) of the fixture's dataset, as a predict request. */
  let predictRequest: { payload: Buffer; headers: Record<string, string> };

  const createExperiment = (api: OwnApi, overrides: Record<string, unknown> = {}) =>
    api.runtime.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: { ...fx.auth('train'), 'content-type': 'application/json' },
      payload: { datasetId: fx.datasetId, ...EXPERIMENT, ...overrides },
    });

  before(async () => {
    // The tests poll experiments quickly: no rate limit in the way.
    fx = await startApiFixture({ settings: { RATE_LIMIT_PER_MINUTE: '100000' } });
    const classDir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_fractured');
    const [image] = (await readdir(classDir)).filter((name) => name.endsWith('.png')).sort();
    assert.ok(image, 'the synthetic dataset has a PNG');
    const { body, contentType } = await multipartBody([{ name: 'image', value: await readFile(path.join(classDir, image)), filename: 'x.png', type: 'image/png' }]);
    predictRequest = { payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } };
  });

  after(async () => {
    await workers?.close({ handBackAfterMs: 0 });
    for (const api of apis) await api.close();
    for (const server of servers) await server.kill();
    // The fixture removes its Redis keys (on the shared Redis) and the whole temporary folder,
    // including the AOF directories of the servers above.
    await fx?.close();
  });

  it('answers 503 fast while Redis is down, keeps serving predictions, and recovers without a restart', async () => {
    const dir = path.join(fx.root, 'redis-down');
    let server = await startOwnRedis({ dir });
    servers.push(server);
    const api = await apiOn(fx, server.url);
    apis.push(api);
    const { app } = api.runtime;

    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    const experimentsBefore = (await readdir(fx.context.store.experimentsDir)).length;

    await server.kill('SIGKILL');

    let started = performance.now();
    const refused = await createExperiment(api);
    const refusedMs = performance.now() - started;
    assert.equal(refused.statusCode, 503, refused.body);
    assert.equal(JSON.parse(refused.body).code, 'REDIS_UNAVAILABLE');
    assert.match(String(refused.headers['retry-after']), /^[1-9][0-9]*$/);
    assert.ok(refusedMs < 1_000, `503 after ${refusedMs.toFixed(0)} ms`);
    assert.equal((await readdir(fx.context.store.experimentsDir)).length, experimentsBefore, 'a refused experiment leaves no folder');

    const health = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);

    started = performance.now();
    const notReady = await app.inject({ method: 'GET', url: '/readyz' });
    const readyzMs = performance.now() - started;
    assert.equal(notReady.statusCode, 503, notReady.body);
    const readiness = JSON.parse(notReady.body) as { ready: boolean; checks: Record<string, { ok: boolean; detail?: string }> };
    assert.equal(readiness.ready, false);
    assert.equal(readiness.checks.redis?.ok, false);
    assert.equal(readiness.checks.model?.ok, true, 'the local model is still fine');
    assert.ok(readyzMs < 1_500, `/readyz after ${readyzMs.toFixed(0)} ms`);

    started = performance.now();
    const predicted = await app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
    const predictMs = performance.now() - started;
    assert.equal(predicted.statusCode, 200, predicted.body);
    const predictions = (JSON.parse(predicted.body) as { predictions: { label: string }[] }).predictions;
    assert.equal(predictions.length, 1);

    // Same port, same directory: the API's connections find it again by themselves.
    server = await startOwnRedis({ dir, port: server.port });
    servers.push(server);
    started = performance.now();
    await waitFor('/readyz to answer 200 again', async () => ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200 ? true : undefined), 15_000, 100);
    const recoveredMs = performance.now() - started;
    const created = await createExperiment(api);
    assert.equal(created.statusCode, 202, created.body);
    const id = (JSON.parse(created.body) as { id: string }).id;
    const fetched = await app.inject({ method: 'GET', url: `/v1/experiments/${id}`, headers: fx.auth('train') });
    assert.equal(fetched.statusCode, 200);
    console.log(`# redis down: 503 in ${refusedMs.toFixed(0)} ms, /readyz 503 in ${readyzMs.toFixed(0)} ms, predict 200 in ${predictMs.toFixed(0)} ms, ready again ${recoveredMs.toFixed(0)} ms after the restart`);
  });

  it('answers 503 in about a second while Redis hangs (SIGSTOP), without slowing other requests', async () => {
    const server = await startOwnRedis({ dir: path.join(fx.root, 'redis-hung') });
    servers.push(server);
    const api = await apiOn(fx, server.url);
    apis.push(api);
    const { app } = api.runtime;
    assert.equal((await app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);

    // A paused Redis still accepts TCP connections but never answers: only timeouts help.
    server.process.kill('SIGSTOP');
    try {
      let started = performance.now();
      const refused = await createExperiment(api);
      const refusedMs = performance.now() - started;
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal(JSON.parse(refused.body).code, 'REDIS_UNAVAILABLE');
      assert.ok(refused.headers['retry-after']);
      // withRedis's 1 s bound plus the rate limiter's 250 ms, with slack for a loaded machine.
      assert.ok(refusedMs < 2_000, `503 after ${refusedMs.toFixed(0)} ms`);

      started = performance.now();
      const notReady = await app.inject({ method: 'GET', url: '/readyz' });
      const readyzMs = performance.now() - started;
      assert.equal(notReady.statusCode, 503);
      assert.equal((JSON.parse(notReady.body) as { checks: { redis: { ok: boolean } } }).checks.redis.ok, false);

      started = performance.now();
      const predicted = await app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
      const predictMs = performance.now() - started;
      assert.equal(predicted.statusCode, 200, predicted.body);
      assert.ok(predictMs < 1_000, `predict took ${predictMs.toFixed(0)} ms`);
      console.log(`# redis hung: 503 in ${refusedMs.toFixed(0)} ms, /readyz 503 in ${readyzMs.toFixed(0)} ms, predict 200 in ${predictMs.toFixed(0)} ms`);
    } finally {
      server.process.kill('SIGCONT');
    }
    await waitFor('/readyz to answer 200 again', async () => ((await app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200 ? true : undefined), 15_000, 100);
    const created = await createExperiment(api);
    assert.equal(created.statusCode, 202, created.body);
  });

  // Workers fetch again a second after a fetch hit the outage (FETCH_RETRY_DELAY_MS); with BullMQ's
  // default of 15 s the job sometimes waited past the 20 s below under CI load.
  //
  // One race cannot be avoided by any client: when the kill lands while a worker's fetch runs, Redis
  // may have moved the job to active (and written that to the AOF) without the worker ever getting the
  // reply. The job is then active with nobody working on it, and only BullMQ's stalled-job check
  // gives it back, after its lock expires (JOB_LOCK_DURATION_MS) and the next check runs
  // (STALLED_INTERVAL_MS). Seen in about 1 run in 10 on a loaded machine. The workers here use short
  // values so that path finishes within the test, and the test accepts it, once, and says which path
  // was taken.
  const LOCK_MS = 10_000;
  const STALLED_CHECK_MS = 2_000;
  it('keeps an acknowledged experiment through SIGKILLs of Redis (after the 202, then mid-training), and the workers finish it', async () => {
    const dir = path.join(fx.root, 'redis-killed');
    let server = await startOwnRedis({ dir, appendfsync: 'always' });
    servers.push(server);
    const api = await apiOn(fx, server.url);
    apis.push(api);
    const { app } = api.runtime;
    const workerConfig = { ...fx.config, JOB_LOCK_DURATION_MS: LOCK_MS, STALLED_INTERVAL_MS: STALLED_CHECK_MS };
    workers = startWorkers({ config: workerConfig, queues: ['training'], concurrency: 1, redisUrl: server.url, logger: createLogger({ level: 'silent' }) });
    await workers.ready();

    const created = await createExperiment(api, { epochs: 6 });
    assert.equal(created.statusCode, 202, created.body);
    const id = (JSON.parse(created.body) as { id: string }).id;
    await server.kill('SIGKILL');
    const killedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 1_000));

    server = await startOwnRedis({ dir, port: server.port });
    servers.push(server);
    // The AOF replayed the flow: its compare job (the parent, alive until training ends) is there.
    const probe = createProducerConnection(server.url);
    const queue = new Queue(QUEUE_NAMES.training, { connection: probe, prefix: fx.config.QUEUE_PREFIX });
    try {
      const parent = await queue.getJob(compareJobId(id));
      assert.ok(parent, 'the acknowledged flow survived the SIGKILL');
    } finally {
      await queue.close();
      await closeConnection(probe);
    }

    // Second kill, while the architecture trains (an epoch done, more to go).
    let lastView = '';
    const restartedAt = performance.now();
    const training = await waitFor(
      'the first epoch',
      async () => {
        const response = await app.inject({ method: 'GET', url: `/v1/experiments/${id}`, headers: fx.auth('train') });
        assert.equal(response.statusCode, 200, response.body);
        const body = JSON.parse(response.body) as { status: string; architectures: { status: string; epoch: number; epochs: number }[] };
        lastView = response.body;
        const [arch] = body.architectures;
        if (body.status === 'completed' || body.status === 'failed') throw new Error(`the experiment ended (${body.status}) before the kill during training`);
        return arch && arch.epoch >= 1 && arch.epoch < arch.epochs ? arch : undefined;
      },
      // 20 s, plus the lost-reply path: the lock expires, then up to two stalled checks.
      20_000 + LOCK_MS + 2 * STALLED_CHECK_MS,
      25,
    ).catch(async (error: unknown) => {
      throw new Error(`${(error as Error).message}; last view ${lastView}; queue: ${await queueDiagnosis(server.url, fx.config.QUEUE_PREFIX, id)}`);
    });
    const firstEpochMs = performance.now() - restartedAt;
    await server.kill('SIGKILL');
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    server = await startOwnRedis({ dir, port: server.port });
    servers.push(server);

    const done = await waitFor(
      'the experiment to finish',
      async () => {
        const response = await app.inject({ method: 'GET', url: `/v1/experiments/${id}`, headers: fx.auth('train') });
        const body = JSON.parse(response.body) as { status: string };
        return body.status === 'completed' || body.status === 'failed' ? body : undefined;
      },
      45_000,
      250,
    );
    assert.equal(done.status, 'completed', JSON.stringify(done));
    const completedMs = performance.now() - killedAt;
    let recoveredByStalledCheck: boolean;
    const check = createProducerConnection(server.url);
    const trainingQueue = new Queue(QUEUE_NAMES.training, { connection: check, prefix: fx.config.QUEUE_PREFIX });
    try {
      const job = await trainingQueue.getJob(trainJobId(id, 'cnn'));
      assert.ok(job, 'the train job is kept after completion');
      assert.equal(await job.getState(), 'completed');
      // Once, or twice when the first fetch's reply was lost in the kill (then it stalled once).
      recoveredByStalledCheck = job.stalledCounter === 1 && job.attemptsStarted === 2;
      assert.ok(
        (job.attemptsStarted === 1 && job.stalledCounter === 0) || recoveredByStalledCheck,
        `the train job started ${job.attemptsStarted} times and stalled ${job.stalledCounter} times`,
      );
    } finally {
      await trainingQueue.close();
      await closeConnection(check);
    }
    const report = await app.inject({ method: 'GET', url: `/v1/reports/${id}`, headers: { ...fx.auth('train'), accept: 'application/json' } });
    assert.equal(report.statusCode, 200, report.body.slice(0, 500));
    const how = recoveredByStalledCheck ? 'the first fetch lost its reply in the kill, the stalled check gave the job back' : 'the worker kept its job through both outages';
    console.log(`# redis SIGKILL after 202 and at epoch ${training.epoch}/${training.epochs}: completed ${completedMs.toFixed(0)} ms after the first kill (first epoch ${firstEpochMs.toFixed(0)} ms after the first restart); ${how}`);
  });
});
