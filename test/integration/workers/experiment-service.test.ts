/**
 * ExperimentService against the real Redis, without workers: what `create` writes and queues, how
 * it refuses bad requests and an absent Redis, cancelling queued work, listing and watching.
 */
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';
import { AppError } from '../../../src/infra/errors.ts';
import { compareJobId, trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection, createWorkerConnection, pingRedis, withRedis } from '../../../src/infra/redis.ts';
import { createExperimentQueues, type ExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import type { ArchitectureProgressRecord, ExperimentRecord, ExperimentView } from '../../../src/services/experiments/experiment.types.ts';
import { countKeys, createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';

/** A TCP port nobody listens on. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function isAppError(code: string) {
  return (error: unknown): boolean => error instanceof AppError && error.code === code;
}

describe('ExperimentService (Redis, no workers)', () => {
  let env: TestEnv;
  let queues: ExperimentQueues;
  let service: ExperimentService;

  before(async () => {
    env = await createTestEnv();
    // A dataset folder is all `create` checks; no images are needed when nothing trains.
    await import('node:fs/promises').then((fs) => fs.mkdir(env.store.datasetDir('xr'), { recursive: true }));
    queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
    service = new ExperimentService({ store: env.store, queues, watchIntervalMs: 50 });
  });

  after(async () => {
    await queues.close();
    await closeConnection(queues.connection);
    await env.cleanup();
    assert.equal(await countKeys(env.config.QUEUE_PREFIX), 0, 'the test left no keys behind');
  });

  it('writes the record and queues a compare parent with one train child per architecture', async () => {
    const view = await service.create({ datasetId: 'xr', architectures: ['cnn', 'resnet50'], imageSize: 64, epochs: 2 });
    assert.match(view.id, /^exp-\d{8}-\d{6}-[0-9a-f]{4}$/);
    assert.equal(view.status, 'queued');
    assert.deepEqual(view.architectures.map((a) => [a.architecture, a.status]), [['cnn', 'queued'], ['resnet50', 'queued']]);

    const record = JSON.parse(await readFile(env.store.experimentRecord(view.id), 'utf8')) as ExperimentRecord;
    assert.equal(record.status, 'queued');
    assert.equal(record.datasetId, 'xr');
    assert.deepEqual(record.settings.architectures, ['cnn', 'resnet50']);
    assert.equal(record.settings.learningRate, null);

    const parent = await queues.trainingQueue.getJob(compareJobId(view.id));
    assert.equal(parent?.name, 'compare');
    assert.deepEqual(parent?.data, { experimentId: view.id });
    assert.equal(await parent?.getState(), 'waiting-children');
    for (const architecture of ['cnn', 'resnet50'] as const) {
      const child = await queues.trainingQueue.getJob(trainJobId(view.id, architecture));
      assert.equal(child?.name, 'train');
      assert.deepEqual(child?.data, { experimentId: view.id, architecture });
      assert.equal(child?.opts.attempts, 3);
      assert.equal(child?.parentKey, `${env.config.QUEUE_PREFIX}:training:${view.id}`);
      assert.equal(await child?.getState(), 'waiting');
    }
  });

  it('refuses invalid settings with EXPERIMENT_INVALID listing every problem, and writes nothing', async () => {
    const before = (await new ExperimentRecords(env.store).listIds()).length;
    await assert.rejects(
      service.create({ datasetId: 'xr', architectures: ['inceptionv3'], imageSize: 40, epochs: 0, batchSize: -1 }),
      (error: unknown) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'EXPERIMENT_INVALID');
        assert.equal(error.status, 422);
        const errors = error.extensions.errors as { path?: string; message: string }[];
        assert.deepEqual(errors.map((e) => e.path).sort(), ['body/batchSize', 'body/epochs', 'body/imageSize']);
        assert.match(error.message, /inceptionv3 needs imageSize >= 75/);
        assert.match(error.message, /epochs must be a positive integer/);
        assert.match(error.message, /batchSize must be a positive integer/);
        return true;
      },
    );
    assert.equal((await new ExperimentRecords(env.store).listIds()).length, before);
  });

  it('refuses an unknown or unsafe dataset with DATASET_NOT_FOUND', async () => {
    await assert.rejects(service.create({ datasetId: 'nope', architectures: ['cnn'] }), isAppError('DATASET_NOT_FOUND'));
    await assert.rejects(service.create({ datasetId: '../xr', architectures: ['cnn'] }), isAppError('DATASET_NOT_FOUND'));
  });

  it('fails fast with REDIS_UNAVAILABLE when Redis is down, leaving no record behind', async () => {
    const down = createExperimentQueues(createProducerConnection(`redis://127.0.0.1:${await closedPort()}`), env.config.QUEUE_PREFIX);
    const downService = new ExperimentService({ store: env.store, queues: down });
    const records = new ExperimentRecords(env.store);
    const before = await records.listIds();
    try {
      for (const attempt of ['while connecting', 'after the first failure']) {
        const started = performance.now();
        await assert.rejects(downService.create({ datasetId: 'xr', architectures: ['cnn'] }), (error: unknown) => {
          assert.ok(error instanceof AppError, attempt);
          assert.equal(error.code, 'REDIS_UNAVAILABLE');
          assert.equal(error.status, 503);
          assert.equal(error.headers['Retry-After'], '5');
          return true;
        });
        const elapsed = performance.now() - started;
        assert.ok(elapsed < 1000, `${attempt}: failed after ${elapsed.toFixed(0)} ms`);
      }
      assert.deepEqual(await records.listIds(), before);
      // Reads come from the files and do not need Redis.
      const [some] = await service.list();
      assert.ok(some);
      assert.equal((await downService.get(some.id)).id, some.id);
    } finally {
      await down.close();
      await closeConnection(down.connection);
    }
  });

  it('answers EXPERIMENT_NOT_FOUND for an unknown id', async () => {
    await assert.rejects(service.get('exp-20000101-000000-0000'), isAppError('EXPERIMENT_NOT_FOUND'));
    await assert.rejects(service.get('../../etc'), isAppError('EXPERIMENT_NOT_FOUND'));
    await assert.rejects(service.cancel('exp-20000101-000000-0000'), isAppError('EXPERIMENT_NOT_FOUND'));
    await assert.rejects(service.watch('exp-20000101-000000-0000', () => {}), isAppError('EXPERIMENT_NOT_FOUND'));
  });

  it('lists experiments newest first', async () => {
    let clock = Date.parse('2030-01-01T00:00:00Z');
    const timed = new ExperimentService({ store: env.store, queues, now: () => new Date((clock += 1000)) });
    const first = await timed.create({ datasetId: 'xr', architectures: ['cnn'] });
    const second = await timed.create({ datasetId: 'xr', architectures: ['cnn'] });
    const ids = (await service.list()).map((view) => view.id);
    assert.deepEqual(ids.slice(0, 2), [second.id, first.id]);
  });

  it('cancels a queued experiment: marker, record and every job removed from the queue; twice is harmless', async () => {
    const view = await service.create({ datasetId: 'xr', architectures: ['cnn', 'vgg16'] });
    const cancelled = await service.cancel(view.id);
    assert.equal(cancelled.status, 'cancelled');
    assert.deepEqual(cancelled.architectures.map((a) => a.status), ['cancelled', 'cancelled']);
    assert.ok(cancelled.finishedAt);
    assert.equal((await new ExperimentRecords(env.store).read(view.id))?.status, 'cancelled');
    assert.equal(await new ExperimentRecords(env.store).cancelRequested(view.id), true);
    assert.equal(await queues.trainingQueue.getJob(compareJobId(view.id)), undefined);
    assert.equal(await queues.trainingQueue.getJob(trainJobId(view.id, 'cnn')), undefined);
    assert.equal(await queues.trainingQueue.getJob(trainJobId(view.id, 'vgg16')), undefined);
    assert.equal((await service.cancel(view.id)).status, 'cancelled');
  });

  it('refuses to cancel a finished experiment with EXPERIMENT_FINISHED', async () => {
    const view = await service.create({ datasetId: 'xr', architectures: ['cnn'] });
    await new ExperimentRecords(env.store).update(view.id, (record) => ({ ...record, status: 'completed' }));
    await assert.rejects(service.cancel(view.id), isAppError('EXPERIMENT_FINISHED'));
    await new ExperimentRecords(env.store).update(view.id, (record) => ({ ...record, status: 'failed' }));
    await assert.rejects(service.cancel(view.id), isAppError('EXPERIMENT_FINISHED'));
  });

  it('watches an experiment: the current view first, then each change, until unsubscribed', async () => {
    const created = await service.create({ datasetId: 'xr', architectures: ['cnn'], epochs: 4 });
    const seen: ExperimentView[] = [];
    const stop = await service.watch(created.id, (view) => seen.push(view));
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.status, 'queued');
    const progress: ArchitectureProgressRecord = {
      architecture: 'cnn', status: 'running', epoch: 1, epochs: 4, batch: 0, batches: 3, progress: 0.25, etaSeconds: 9,
      history: [{ epoch: 1, loss: 1, accuracy: 0.5, learningRate: 1e-3, seconds: 3, imagesPerSecond: 4 }],
      runs: [{ startedAt: new Date().toISOString(), fromEpoch: 1 }], updatedAt: new Date().toISOString(),
    };
    await new ExperimentRecords(env.store).writeProgress(created.id, progress);
    const running = await waitFor('the running view', async () => seen.find((view) => view.status === 'running'), 2000, 20);
    assert.equal(running.architectures[0]?.progress, 0.25);
    const count = seen.length;
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(seen.length, count, 'an unchanged experiment sends nothing');
    stop();
    await writeFile(env.store.cancelMarker(created.id), '');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(seen.length, count, 'nothing after unsubscribing');
  });
});

describe('Redis connections', () => {
  it('pingRedis finds the real Redis and answers false, quickly, for a closed port', async () => {
    assert.equal(await pingRedis(REDIS_URL, 1000), true);
    const started = performance.now();
    assert.equal(await pingRedis(`redis://127.0.0.1:${await closedPort()}`, 1000), false);
    assert.ok(performance.now() - started < 1000);
  });

  it('producers fail fast and recover by themselves; workers wait for Redis', async () => {
    const port = await closedPort();
    const producer = createProducerConnection(`redis://127.0.0.1:${port}`);
    const worker = createWorkerConnection(`redis://127.0.0.1:${port}`);
    try {
      await assert.rejects(withRedis(producer, () => producer.ping()), isAppError('REDIS_UNAVAILABLE'));
      assert.equal(worker.options.maxRetriesPerRequest, null);
      assert.equal(producer.options.enableOfflineQueue, false);
      // A worker's command waits instead of failing.
      let settled = false;
      void worker.ping().then(() => (settled = true), () => (settled = true));
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(settled, false);
    } finally {
      producer.disconnect();
      worker.disconnect();
    }
    const live = createProducerConnection(REDIS_URL);
    try {
      assert.equal(await withRedis(live, () => live.ping()), 'PONG');
    } finally {
      await closeConnection(live);
    }
  });
});
