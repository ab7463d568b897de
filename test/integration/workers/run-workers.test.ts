/**
 * startWorkers on the real Redis: it refuses to serve a queue with a job nobody handles, runs the
 * inference processor it is given, and the training sandbox fails a job name it does not know
 * without retrying it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { compareJobId, QUEUE_NAMES, trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import { createExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import { startWorkers, unhandledJobNames } from '../../../src/workers/run-workers.ts';
import { TRAINING_JOB_NAMES } from '../../../src/workers/training.processor.ts';
import { createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';

describe('startWorkers', () => {
  let env: TestEnv;
  let connection: Redis;

  before(async () => {
    env = await createTestEnv();
    connection = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
  });

  after(async () => {
    await connection.quit();
    await env.cleanup();
  });

  it('lists the jobs of a queue that no handler takes', () => {
    assert.deepEqual(unhandledJobNames('training', TRAINING_JOB_NAMES), []);
    assert.deepEqual(unhandledJobNames('training', ['train']), ['compare']);
    assert.deepEqual(unhandledJobNames('inference', []), ['predict']);
  });

  it('refuses to serve the inference queue without an inference processor', () => {
    assert.throws(() => startWorkers({ config: env.config, queues: ['training', 'inference'] }), /no handler for job "predict" of queue inference/);
  });

  it('runs predict jobs through the given in-process processor', async () => {
    const seen: string[] = [];
    const running = startWorkers({
      config: env.config,
      queues: ['inference'],
      inferenceProcessor: async (job) => {
        seen.push(job.data.modelId);
        return { ok: true, images: job.data.imagePaths.length };
      },
    });
    const queue = new Queue(QUEUE_NAMES.inference, { connection, prefix: env.config.QUEUE_PREFIX });
    const eventsConnection = connection.duplicate();
    const events = new QueueEvents(QUEUE_NAMES.inference, { connection: eventsConnection, prefix: env.config.QUEUE_PREFIX });
    try {
      await running.ready();
      await events.waitUntilReady();
      const job = await queue.add('predict', { modelId: 'm1', imagePaths: ['/a', '/b'], explain: false });
      assert.deepEqual(await job.waitUntilFinished(events, 10_000), { ok: true, images: 2 });
      assert.deepEqual(seen, ['m1']);
    } finally {
      await running.close();
      await events.close();
      await queue.close();
      await eventsConnection.quit();
    }
  });

  it('fails an experiment whose training job stalled too often, saying why', async () => {
    await import('node:fs/promises').then((fs) => fs.mkdir(env.store.datasetDir('xr'), { recursive: true }));
    const queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
    const service = new ExperimentService({ store: env.store, queues });
    const { id } = await service.create({ datasetId: 'xr', architectures: ['cnn'] });
    // What BullMQ's stalled-job check does to a job that stalled more than maxStalledCount times.
    await connection.hset(`${env.config.QUEUE_PREFIX}:training:${trainJobId(id, 'cnn')}`, 'defa', 'job stalled more than allowable limit');
    const running = startWorkers({ config: env.config, queues: ['training'] });
    try {
      const failed = await waitFor('the experiment to fail', async () => {
        const view = await service.get(id);
        return view.status === 'failed' ? view : undefined;
      }, 30_000);
      assert.equal(failed.error?.code, 'INTERNAL');
      assert.match(failed.error?.detail ?? '', /cnn stopped: its worker died or stopped responding too many times/);
      assert.equal(await (await queues.trainingQueue.getJob(compareJobId(id)))?.getState(), 'failed');
    } finally {
      await running.close();
      await queues.close();
      await closeConnection(queues.connection);
    }
  });

  it('fails an experiment whose compare job failed without running (it stalled too often)', async () => {
    const records = new ExperimentRecords(env.store);
    const id = 'exp-20261204-120000-0001';
    await records.create({
      schemaVersion: 1, id, datasetId: 'xr', status: 'running', createdAt: new Date().toISOString(), compareRuns: 0,
      settings: (await import('../../../src/services/experiments/experiment-settings.ts')).resolveExperimentSettings({ datasetId: 'xr', architectures: ['cnn'] }).settings,
    });
    const queue = new Queue(QUEUE_NAMES.training, { connection, prefix: env.config.QUEUE_PREFIX });
    const running = startWorkers({ config: env.config, queues: ['training'] });
    try {
      await running.ready();
      const job = await queue.add('compare', { experimentId: id }, { jobId: compareJobId(id), delay: 60_000 });
      await connection.hset(`${env.config.QUEUE_PREFIX}:training:${job.id}`, 'defa', 'job stalled more than allowable limit');
      await job.promote();
      const failed = await waitFor('the experiment to fail', async () => {
        const record = await records.read(id);
        return record?.status === 'failed' ? record : undefined;
      }, 30_000);
      assert.equal(failed.error?.code, 'INTERNAL');
      assert.match(failed.error?.detail ?? '', /building the report stopped/);
      assert.equal(failed.compareRuns, 0, 'the processor never ran');
    } finally {
      await running.close();
      await queue.close();
    }
  });

  it('fails a job name the training queue does not know, at once and without retry', async () => {
    const running = startWorkers({ config: env.config, queues: ['training'] });
    const queue = new Queue(QUEUE_NAMES.training, { connection, prefix: env.config.QUEUE_PREFIX });
    try {
      const job = await queue.add('bogus', {}, { attempts: 3 });
      const failed = await waitFor('the job to fail', async () => {
        const current = await queue.getJob(job.id as string);
        return (await current?.getState()) === 'failed' ? current : undefined;
      }, 30_000);
      assert.equal(failed.attemptsMade, 1);
      assert.match(failed.failedReason, /no job named "bogus"/);
    } finally {
      await running.close();
      await queue.close();
    }
  });
});
