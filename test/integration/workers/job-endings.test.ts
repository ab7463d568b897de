/**
 * How training jobs end besides completing: cancelled while running (stops within seconds, no
 * retry), and failing on a problem no retry can fix (the experiment fails with the child's code).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { compareJobId, trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import { createExperimentQueues, type ExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { createDataset, createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';

describe('training jobs that do not complete', () => {
  let env: TestEnv;
  let queues: ExperimentQueues;
  let workers: RunningWorkers;
  let service: ExperimentService;
  let records: ExperimentRecords;

  before(async () => {
    env = await createTestEnv();
    await createDataset(env.store, 'xr96', { perClass: 20, size: 96 });
    await createDataset(env.store, 'xr40', { perClass: 6, size: 40 });
    queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
    service = new ExperimentService({ store: env.store, queues });
    records = new ExperimentRecords(env.store);
    workers = startWorkers({ config: env.config, queues: ['training'] });
    await workers.ready();
  });

  after(async () => {
    await workers.close();
    await queues.close();
    await closeConnection(queues.connection);
    await env.cleanup();
  });

  it('stops a running training within seconds of a cancel, without retrying it', async () => {
    const { id } = await service.create({ datasetId: 'xr96', architectures: ['cnn'], imageSize: 96, epochs: 40, batchSize: 4, earlyStoppingPatience: 0 });
    await waitFor('the first epoch', async () => ((await records.readProgress(id, 'cnn'))?.epoch ?? 0) >= 1 || undefined, 60_000);
    const cancelledAt = performance.now();
    const view = await service.cancel(id);
    assert.equal(view.status, 'cancelled');
    const progress = await waitFor('the training to stop', async () => {
      const current = await records.readProgress(id, 'cnn');
      return current?.status === 'cancelled' ? current : undefined;
    }, 10_000, 50);
    const stopSeconds = (performance.now() - cancelledAt) / 1000;
    assert.ok(stopSeconds < 5, `stopped ${stopSeconds.toFixed(1)} s after the cancel`);
    console.log(`cancel: training stopped ${stopSeconds.toFixed(1)} s after the cancel`);
    assert.ok(progress.epoch < 40);

    const trainJob = await waitFor('the train job to fail', async () => {
      const job = await queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
      return (await job?.getState()) === 'failed' ? job : undefined;
    }, 10_000);
    assert.equal(trainJob.attemptsMade, 1, 'a cancelled job is not retried');
    assert.match(trainJob.failedReason, /cancelled/);
    await waitFor('the compare job to end', async () => {
      const parent = await queues.trainingQueue.getJob(compareJobId(id));
      const state = await parent?.getState();
      return state === undefined || state === 'failed' || state === 'unknown' ? true : undefined;
    }, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const after = await records.readProgress(id, 'cnn');
    assert.equal(after?.runs.length, 1, 'training never started again');
    assert.equal(after?.status, 'cancelled');
    assert.equal((await records.read(id))?.status, 'cancelled', 'the compare job left the cancelled record alone');
    assert.equal((await service.get(id)).status, 'cancelled');
  });

  it('fails the experiment with the child error when training cannot succeed, without retrying', async () => {
    // 40 px images for a 64 px input: the engine refuses to upscale (IMAGE_TOO_SMALL).
    const { id } = await service.create({ datasetId: 'xr40', architectures: ['cnn'], imageSize: 64, epochs: 1 });
    const failed = await waitFor('the experiment to fail', async () => {
      const view = await service.get(id);
      return view.status === 'failed' || view.status === 'completed' ? view : undefined;
    }, 30_000, 100);
    assert.equal(failed.status, 'failed');
    assert.equal(failed.error?.code, 'IMAGE_TOO_SMALL');
    assert.match(failed.error?.detail ?? '', /smaller than/i);
    assert.ok(failed.finishedAt);
    assert.equal(failed.architectures[0]?.status, 'failed');
    assert.deepEqual(failed.architectures[0]?.error, failed.error);
    const trainJob = await queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    assert.equal(await trainJob?.getState(), 'failed');
    assert.equal(trainJob?.attemptsMade, 1, 'a permanent problem is not retried');
    assert.equal(await (await queues.trainingQueue.getJob(compareJobId(id)))?.getState(), 'failed');
    await assert.rejects(service.cancel(id), (error: unknown) => (error as { code?: string }).code === 'EXPERIMENT_FINISHED');
  });
});
