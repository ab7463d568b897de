import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildExperimentView } from '../../../src/services/experiments/experiment-view.ts';
import type { ArchitectureProgressRecord, ExperimentRecord } from '../../../src/services/experiments/experiment.types.ts';

const settings: ExperimentRecord['settings'] = {
  architectures: ['cnn', 'resnet50'],
  imageSize: 64,
  channels: 3,
  epochs: 4,
  batchSize: 8,
  learningRate: null,
  optimizer: 'adam',
  seed: 42,
  valFraction: 0.15,
  testFraction: 0.15,
  augment: true,
  classWeights: true,
  earlyStoppingPatience: 5,
  reduceLrPatience: 2,
  rankBy: 'macroF1',
};

function record(overrides: Partial<ExperimentRecord> = {}): ExperimentRecord {
  return { schemaVersion: 1, id: 'exp-20261204-100000-abcd', datasetId: 'xr', settings, status: 'queued', createdAt: '2026-12-04T10:00:00.000Z', compareRuns: 0, ...overrides };
}

function progress(overrides: Partial<ArchitectureProgressRecord> = {}): ArchitectureProgressRecord {
  return {
    architecture: 'cnn',
    status: 'running',
    epoch: 2,
    epochs: 4,
    batch: 3,
    batches: 6,
    progress: 0.625,
    etaSeconds: 12,
    history: [1, 2].map((epoch) => ({ epoch, loss: 1, accuracy: 0.5, learningRate: 1e-3, seconds: 3, imagesPerSecond: 9 })),
    runs: [{ startedAt: '2026-12-04T10:00:01.000Z', fromEpoch: 1 }],
    updatedAt: '2026-12-04T10:00:09.000Z',
    ...overrides,
  };
}

describe('buildExperimentView', () => {
  it('shows a new experiment as queued with every architecture queued at zero', () => {
    const view = buildExperimentView({ record: record(), progress: {}, cancelRequested: false });
    assert.equal(view.status, 'queued');
    assert.deepEqual(view.architectures.map((a) => [a.architecture, a.status, a.epoch, a.epochs, a.progress, a.etaSeconds, a.attempts]), [
      ['cnn', 'queued', 0, 4, 0, null, 0],
      ['resnet50', 'queued', 0, 4, 0, null, 0],
    ]);
    assert.equal(view.reportUrl, undefined);
    assert.equal('winner' in view, false);
  });

  it('shows live progress, ETA and history of a running architecture, and running overall even before the record says so', () => {
    const view = buildExperimentView({ record: record(), progress: { cnn: progress() }, cancelRequested: false });
    assert.equal(view.status, 'running');
    const [cnn, resnet] = view.architectures;
    assert.equal(cnn?.status, 'running');
    assert.equal(cnn?.progress, 0.625);
    assert.equal(cnn?.etaSeconds, 12);
    assert.equal(cnn?.history.length, 2);
    assert.equal(resnet?.status, 'queued');
  });

  it('names the checkpoint a resumed run started from', () => {
    const runs = [{ startedAt: 'a', fromEpoch: 1 }, { startedAt: 'b', fromEpoch: 3 }];
    const view = buildExperimentView({ record: record({ status: 'running' }), progress: { cnn: progress({ runs }) }, cancelRequested: false });
    assert.equal(view.architectures[0]?.attempts, 2);
    assert.equal(view.architectures[0]?.resumedFromEpoch, 2);
  });

  it('lets the cancel marker win over a live status, and shows unfinished architectures as cancelled', () => {
    const view = buildExperimentView({
      record: record({ status: 'running' }),
      progress: { cnn: progress({ status: 'completed', progress: 1 }), resnet50: progress({ architecture: 'resnet50' }) },
      cancelRequested: true,
    });
    assert.equal(view.status, 'cancelled');
    assert.deepEqual(view.architectures.map((a) => a.status), ['completed', 'cancelled']);
    assert.equal(view.architectures[1]?.etaSeconds, null);
  });

  it('keeps a completed or failed outcome even when a cancel marker came too late', () => {
    for (const status of ['completed', 'failed'] as const) {
      const view = buildExperimentView({ record: record({ status }), progress: {}, cancelRequested: true });
      assert.equal(view.status, status);
    }
  });

  it('gives a completed experiment its report link and winner', () => {
    const winner = { architecture: 'cnn' as const, modelId: 'exp-20261204-100000-abcd-cnn', metric: 'macroF1' as const, score: 0.9, reason: 'best', promoted: true };
    const view = buildExperimentView({
      record: record({ status: 'completed', finishedAt: '2026-12-04T10:05:00.000Z', winner }),
      progress: { cnn: progress({ status: 'completed', progress: 1 }), resnet50: progress({ architecture: 'resnet50', status: 'completed', progress: 1 }) },
      cancelRequested: false,
    });
    assert.equal(view.reportUrl, '/v1/reports/exp-20261204-100000-abcd');
    assert.deepEqual(view.winner, winner);
    assert.ok(view.architectures.every((a) => a.progress === 1 && a.status === 'completed'));
  });

  it('shows the error of a failed experiment and its failed architecture', () => {
    const error = { code: 'IMAGE_TOO_SMALL', detail: 'images are 40 px, the input is 64 px' };
    const view = buildExperimentView({
      record: record({ status: 'failed', error }),
      progress: { cnn: progress({ status: 'failed', error }) },
      cancelRequested: false,
    });
    assert.equal(view.status, 'failed');
    assert.deepEqual(view.error, error);
    assert.deepEqual(view.architectures.map((a) => a.status), ['failed', 'cancelled']);
    assert.deepEqual(view.architectures[0]?.error, error);
  });
});
