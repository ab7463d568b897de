import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createMetrics } from '../../../src/infra/metrics.ts';

/** The value of one series line of an exposition, or undefined. */
function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('createMetrics', () => {
  it('has its own registry with the service metrics and the default process metrics', async () => {
    const a = createMetrics();
    const b = createMetrics({ defaultMetrics: false });
    assert.notEqual(a.registry, b.registry);
    const text = await a.exposition();
    for (const name of [
      'http_request_duration_seconds',
      'predict_batch_size',
      'predict_batch_duration_seconds',
      'queue_jobs',
      'training_progress_ratio',
      'training_epoch',
      'process_cpu_user_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
    }
    assert.doesNotMatch(await b.exposition(), /process_cpu_user_seconds_total/);
    assert.match(a.contentType, /^text\/plain/);
  });

  it('buckets batch sizes by powers of two up to 64', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    for (const size of [1, 3, 3, 16, 40]) metrics.predictBatchSize.observe(size);
    const text = await metrics.exposition();
    assert.equal(sample(text, 'predict_batch_size_bucket{le="1"}'), 1);
    assert.equal(sample(text, 'predict_batch_size_bucket{le="2"}'), 1);
    assert.equal(sample(text, 'predict_batch_size_bucket{le="4"}'), 3);
    assert.equal(sample(text, 'predict_batch_size_bucket{le="16"}'), 4);
    assert.equal(sample(text, 'predict_batch_size_bucket{le="64"}'), 5);
    assert.equal(sample(text, 'predict_batch_size_count'), 5);
    assert.equal(sample(text, 'predict_batch_size_sum'), 63);
  });

  it('fills queue_jobs at scrape time from the counter, and shows no stale counts when it fails', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    let calls = 0;
    let fail = false;
    metrics.setQueueCounter(async () => {
      calls += 1;
      if (fail) throw new Error('redis down');
      return { training: { waiting: 2 + calls, active: 1 }, inference: { waiting: 0 } };
    });
    assert.equal(calls, 0, 'nothing is read before a scrape');
    let text = await metrics.exposition();
    assert.equal(sample(text, 'queue_jobs{queue="training",state="waiting"}'), 3);
    assert.equal(sample(text, 'queue_jobs{queue="training",state="active"}'), 1);
    assert.equal(sample(text, 'queue_jobs{queue="inference",state="waiting"}'), 0);
    text = await metrics.exposition();
    assert.equal(sample(text, 'queue_jobs{queue="training",state="waiting"}'), 4, 'read again at each scrape');
    fail = true;
    text = await metrics.exposition();
    assert.equal(sample(text, 'queue_jobs{queue="training",state="waiting"}'), undefined);
    assert.match(text, /^# TYPE queue_jobs gauge/m, 'the scrape itself still succeeds');
  });

  it('records and removes training progress per experiment and architecture', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const labels = { experiment: 'exp1', architecture: 'cnn' };
    metrics.setTrainingProgress(labels, 0.25, 2);
    metrics.setTrainingProgress({ experiment: 'exp1', architecture: 'vgg16' }, 1.5, 4);
    let text = await metrics.exposition();
    assert.equal(sample(text, 'training_progress_ratio{experiment="exp1",architecture="cnn"}'), 0.25);
    assert.equal(sample(text, 'training_progress_ratio{experiment="exp1",architecture="vgg16"}'), 1, 'clamped to 1');
    assert.equal(sample(text, 'training_epoch{experiment="exp1",architecture="cnn"}'), 2);
    metrics.removeTraining(labels);
    text = await metrics.exposition();
    assert.equal(sample(text, 'training_progress_ratio{experiment="exp1",architecture="cnn"}'), undefined);
    assert.equal(sample(text, 'training_epoch{experiment="exp1",architecture="vgg16"}'), 4);
  });
});
