/**
 * Graceful shutdown of a worker in the middle of a long training: the job goes back to the queue
 * untouched (no attempt used, no stall) and another worker resumes it from the last checkpoint.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import { createExperimentQueues, type ExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { createDataset, createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';

describe('shutting a training worker down', () => {
  let env: TestEnv;
  let queues: ExperimentQueues;
  const running: RunningWorkers[] = [];

  before(async () => {
    env = await createTestEnv();
    await createDataset(env.store, 'xr', { perClass: 20, size: 96 });
    queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
  });

  after(async () => {
    await Promise.all(running.map((workers) => workers.close({ handBackAfterMs: 0 })));
    await queues.close();
    await closeConnection(queues.connection);
    await env.cleanup();
  });

  it('hands a running training job back to the queue, and the next worker resumes it from its checkpoint', async () => {
    const service = new ExperimentService({ store: env.store, queues });
    const records = new ExperimentRecords(env.store);
    const first = startWorkers({ config: env.config, queues: ['training'] });
    running.push(first);
    const { id } = await service.create({ datasetId: 'xr', architectures: ['cnn'], imageSize: 96, epochs: 5, batchSize: 4, earlyStoppingPatience: 0 });
    await waitFor('the first epoch', async () => ((await records.readProgress(id, 'cnn'))?.epoch ?? 0) >= 1 || undefined, 60_000);

    const closing = performance.now();
    await first.close({ handBackAfterMs: 0 });
    const closeSeconds = (performance.now() - closing) / 1000;
    assert.ok(closeSeconds < 5, `close took ${closeSeconds.toFixed(1)} s`);
    const job = await queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    assert.equal(await job?.getState(), 'waiting', 'the job is back in the queue');
    assert.equal(job?.attemptsMade, 0, 'no attempt was used');
    const handedBack = await records.readProgress(id, 'cnn');
    assert.equal(handedBack?.status, 'queued');
    assert.equal(handedBack?.error?.code, 'SHUTTING_DOWN');
    const checkpoint = JSON.parse(await readFile(path.join(env.store.experimentDir(id), 'checkpoints', 'cnn', 'checkpoint.json'), 'utf8')) as { epoch: number };
    assert.equal((await service.get(id)).status, 'running');

    const second = startWorkers({ config: env.config, queues: ['training'] });
    running.push(second);
    const done = await waitFor('the experiment to complete', async () => {
      const view = await service.get(id);
      return view.status === 'completed' || view.status === 'failed' ? view : undefined;
    }, 60_000, 250);
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    const progress = await records.readProgress(id, 'cnn');
    assert.equal(progress?.runs.length, 2);
    assert.equal(progress?.runs[1]?.fromEpoch, checkpoint.epoch + 1);
    assert.deepEqual(progress?.history.map((epoch) => epoch.epoch), [1, 2, 3, 4, 5]);
    assert.equal(progress?.error, undefined, 'the hand-back note is gone once training resumed');
    const finished = await queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    assert.equal(finished?.attemptsMade, 1);
    assert.equal(finished?.stalledCounter, 0, 'it never looked stalled');
    assert.equal((await records.read(id))?.compareRuns, 1);
    console.log(`shutdown: close took ${closeSeconds.toFixed(1)} s, resumed after epoch ${checkpoint.epoch}`);
  });
});
