/**
 * The whole path on the real Redis and backend: an experiment with all four architectures on a tiny
 * synthetic dataset runs through the workers (sandboxed training, compare) to a report with four
 * results, four registered models and the winner promoted to `production`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import type { ExperimentReport } from '../../../src/ml/experiment/index.ts';
import { createExperimentQueues, type ExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import type { ExperimentView } from '../../../src/services/experiments/experiment.types.ts';
import { ModelRegistry } from '../../../src/services/models/model-registry.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { createDataset, createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';

const ARCHITECTURES = ['cnn', 'vgg16', 'resnet50', 'inceptionv3'] as const;

describe('an experiment with all four architectures', () => {
  let env: TestEnv;
  let queues: ExperimentQueues;
  let workers: RunningWorkers;

  before(async () => {
    env = await createTestEnv();
    // InceptionV3 needs 75 px; 6 images per class of 2 classes leave a few for validation and test.
    await createDataset(env.store, 'tiny', { perClass: 6, size: 75 });
    queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
    // Two sandbox threads: one architecture per core.
    workers = startWorkers({ config: env.config, queues: ['training'], concurrency: 2 });
    await workers.ready();
  });

  after(async () => {
    await workers.close();
    await queues.close();
    await closeConnection(queues.connection);
    await env.cleanup();
  });

  it('trains, compares, registers four models and promotes the winner', async () => {
    const service = new ExperimentService({ store: env.store, queues });
    const started = performance.now();
    const created = await service.create({ datasetId: 'tiny', imageSize: 75, epochs: 1, batchSize: 4 });
    assert.deepEqual(created.settings.architectures, ARCHITECTURES, 'all four by default');
    const statuses = new Set<string>();
    const stop = await service.watch(created.id, (view) => statuses.add(view.status));
    let done: ExperimentView;
    try {
      done = await waitFor('the experiment to finish', async () => {
        const view = await service.get(created.id);
        return view.status === 'completed' || view.status === 'failed' ? view : undefined;
      }, 280_000, 500);
    } finally {
      stop();
    }
    const seconds = (performance.now() - started) / 1000;
    assert.equal(done.status, 'completed', JSON.stringify(done.error));
    assert.ok(statuses.has('running'), 'the watcher saw it running');

    const report = JSON.parse(await readFile(env.store.reportFile(created.id), 'utf8')) as ExperimentReport;
    assert.deepEqual(report.results.map((result) => result.architecture).sort(), [...ARCHITECTURES].sort());
    assert.equal(report.ranking.entries.length, 4);
    assert.ok(report.winner);

    assert.deepEqual(done.architectures.map((a) => [a.architecture, a.status, a.progress, a.history.length]), ARCHITECTURES.map((a) => [a, 'completed', 1, 1]));
    for (const architecture of done.architectures) {
      assert.ok(architecture.result && architecture.result.params > 0 && architecture.result.accuracy >= 0);
    }

    const registry = new ModelRegistry(env.store);
    const models = await registry.list();
    assert.deepEqual(models.map((model) => model.id).sort(), ARCHITECTURES.map((a) => `${created.id}-${a}`).sort());
    const winnerId = `${created.id}-${report.winner.architecture}`;
    assert.deepEqual(done.winner, {
      architecture: report.winner.architecture,
      modelId: winnerId,
      metric: report.ranking.metric,
      score: report.winner.score,
      reason: report.winner.reason,
      promoted: true,
    });
    assert.equal((await registry.aliases()).production, winnerId);
    assert.equal(done.reportUrl, `/v1/reports/${created.id}`);
    console.log(`four architectures (75 px, 1 epoch, 12 images): ${seconds.toFixed(1)} s; ` +
      report.results.map((r) => `${r.architecture} train ${r.timings.trainSeconds.toFixed(1)} s`).join(', '));
  });
});
