import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArchitectureResult, ExperimentEvent } from '../../../src/ml/experiment/index.ts';
import { classificationReport } from '../../../src/ml/metrics/index.ts';
import type { TrainProgressEvent } from '../../../src/ml/train/index.ts';
import type { ArchitectureProgressRecord } from '../../../src/services/experiments/experiment.types.ts';
import { ProgressTracker, type TrainJobProgress } from '../../../src/workers/progress-tracker.ts';

/** A clock the test moves by hand. */
function manualClock(start = Date.parse('2026-12-04T10:00:00Z')) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function train(progress: Partial<TrainProgressEvent> & Pick<TrainProgressEvent, 'type' | 'epoch'>): ExperimentEvent {
  return {
    type: 'train',
    architecture: 'cnn',
    progress: { epochs: 4, batch: 0, loss: 1, accuracy: 0.5, imagesPerSecond: 10, learningRate: 1e-3, microBatchSize: 4, ...progress },
  };
}

function tracked(previous: ArchitectureProgressRecord | null = null, throttleMs = 1000) {
  const clock = manualClock();
  const writes: ArchitectureProgressRecord[] = [];
  const reports: TrainJobProgress[] = [];
  const tracker = new ProgressTracker({
    architecture: 'cnn',
    epochs: 4,
    previous,
    write: async (record) => {
      writes.push(structuredClone(record));
    },
    report: async (progress) => {
      reports.push(progress);
    },
    throttleMs,
    now: clock.now,
  });
  return { tracker, writes, reports, clock };
}

function fakeResult(epochs: number): ArchitectureResult {
  return {
    architecture: 'cnn',
    metrics: classificationReport({ classNames: ['hand_fractured', 'hand_normal'], yTrue: [0, 0, 1, 1], yPred: [0, 1, 1, 1], positiveClasses: ['hand_fractured'] }),
    history: Array.from({ length: epochs }, (_, i) => ({ epoch: i + 1, loss: 1 / (i + 1), accuracy: 0.5, learningRate: 1e-3, seconds: 2, imagesPerSecond: 50 })),
    bestEpoch: epochs,
    stoppedEarly: false,
    timings: { trainSeconds: 2 * epochs, trainImagesPerSecond: 50, evaluateSeconds: 0.1, inferenceMsPerImage: 3 },
    params: 1000,
    trainableParams: 1000,
    modelBytes: 4000,
    modelDir: 'models/cnn',
    microBatchSize: 4,
  };
}

describe('ProgressTracker', () => {
  it('turns batch and epoch events into progress, ETA and history with the epoch wall time and learning rate', async () => {
    const { tracker, writes, clock } = tracked(null, 0);
    await tracker.begin();
    tracker.onEvent(train({ type: 'start', epoch: 1, batches: 2 }));
    clock.advance(500);
    tracker.onEvent(train({ type: 'batch', epoch: 1, batch: 1, batches: 2, etaSeconds: 7 }));
    let state = tracker.state;
    assert.equal(state.progress, (0 + 1 / 2) / 4);
    assert.equal(state.etaSeconds, 7);
    assert.equal(state.epoch, 0);
    clock.advance(1500);
    tracker.onEvent(train({ type: 'batch', epoch: 1, batch: 2, batches: 2, learningRate: 1e-3 }));
    // The epoch event shows the learning rate reduced at the epoch's end; the history keeps the one used.
    tracker.onEvent(train({ type: 'epoch', epoch: 1, batch: 2, batches: 2, loss: 0.9, accuracy: 0.6, valLoss: 0.8, valAccuracy: 0.7, learningRate: 5e-4, etaSeconds: 6 }));
    await tracker.flush();
    state = tracker.state;
    assert.equal(state.epoch, 1);
    assert.equal(state.progress, 1 / 4);
    assert.deepEqual(state.history, [{ epoch: 1, loss: 0.9, accuracy: 0.6, valLoss: 0.8, valAccuracy: 0.7, learningRate: 1e-3, seconds: 2, imagesPerSecond: 10 }]);
    assert.equal(writes.at(-1)?.history.length, 1);
    assert.equal(writes.at(-1)?.runs.length, 1);
    assert.equal(writes.at(-1)?.runs[0]?.fromEpoch, 1);
  });

  it('writes batch progress at most once per throttle interval but start, epoch and end events at once', async () => {
    const { tracker, writes, reports, clock } = tracked(null, 1000);
    await tracker.begin();
    const afterBegin = writes.length;
    tracker.onEvent(train({ type: 'start', epoch: 1, batches: 100 }));
    await sleep(5);
    assert.equal(writes.length, afterBegin + 1, 'the start event is written at once');
    for (let batch = 1; batch <= 50; batch++) {
      clock.advance(10);
      tracker.onEvent(train({ type: 'batch', epoch: 1, batch, batches: 100 }));
    }
    await sleep(5);
    assert.ok(writes.length <= afterBegin + 2, `50 batch events within 500 ms made ${writes.length - afterBegin - 1} writes`);
    tracker.onEvent(train({ type: 'epoch', epoch: 1, batch: 100, batches: 100 }));
    await tracker.flush();
    const last = writes.at(-1);
    assert.equal(last?.epoch, 1, 'the epoch event is not held back by the throttle');
    assert.equal(reports.at(-1)?.epoch, 1, 'BullMQ progress follows the file');
    assert.equal(reports.at(-1)?.architecture, 'cnn');
  });

  it('keeps the history of an earlier run and counts the resumed run, dropping epochs past its checkpoint', async () => {
    const previous: ArchitectureProgressRecord = {
      architecture: 'cnn',
      status: 'running',
      epoch: 3,
      epochs: 4,
      batch: 1,
      batches: 2,
      progress: 0.8,
      etaSeconds: 3,
      history: [1, 2, 3].map((epoch) => ({ epoch, loss: 1, accuracy: 0.5, learningRate: 1e-3, seconds: 1, imagesPerSecond: 5 })),
      runs: [{ startedAt: '2026-12-04T09:00:00.000Z', fromEpoch: 1 }],
      updatedAt: '2026-12-04T09:01:00.000Z',
    };
    const { tracker } = tracked(previous, 0);
    await tracker.begin();
    // The checkpoint holds epoch 2 (the process died after writing epoch 3 here but before its checkpoint).
    tracker.onEvent(train({ type: 'start', epoch: 3, batches: 2 }));
    await tracker.flush();
    const state = tracker.state;
    assert.deepEqual(state.history.map((entry) => entry.epoch), [1, 2]);
    assert.equal(state.epoch, 2);
    assert.equal(state.runs.length, 2);
    assert.equal(state.runs[1]?.fromEpoch, 3);
    assert.equal(state.status, 'running');
  });

  it('replaces the live history with the engine result and summarises its metrics when done', async () => {
    const { tracker, writes } = tracked(null, 0);
    await tracker.begin();
    tracker.onEvent(train({ type: 'start', epoch: 1 }));
    tracker.onEvent({ type: 'architecture-done', architecture: 'cnn', result: fakeResult(4) });
    await tracker.finish('completed', { result: fakeResult(4) });
    const last = writes.at(-1);
    assert.equal(last?.status, 'completed');
    assert.equal(last?.progress, 1);
    assert.deepEqual(last?.history.map((entry) => entry.seconds), [2, 2, 2, 2]);
    assert.equal(last?.result?.accuracy, 0.75);
    assert.equal(last?.result?.fractureSensitivity, 0.5);
    assert.equal(last?.result?.params, 1000);
    assert.ok(last?.finishedAt);
    tracker.onEvent(train({ type: 'batch', epoch: 1, batch: 1 }));
    await sleep(5);
    assert.equal(writes.at(-1)?.status, 'completed', 'events after the end are ignored');
  });

  it('marks a failed attempt that will be retried as queued with its error', async () => {
    const { tracker, writes } = tracked(null, 0);
    await tracker.begin();
    await tracker.retryLater({ code: 'OUT_OF_MEMORY', detail: 'not enough memory' });
    assert.equal(writes.at(-1)?.status, 'queued');
    assert.deepEqual(writes.at(-1)?.error, { code: 'OUT_OF_MEMORY', detail: 'not enough memory' });
  });

  it('keeps writing after a failed write, in order', async () => {
    const written: number[] = [];
    let fail = true;
    const tracker = new ProgressTracker({
      architecture: 'cnn',
      epochs: 2,
      previous: null,
      throttleMs: 0,
      write: async (record) => {
        if (fail) {
          fail = false;
          throw new Error('disk full');
        }
        written.push(record.epoch);
      },
    });
    await assert.rejects(tracker.begin(), /disk full/);
    tracker.onEvent(train({ type: 'epoch', epoch: 1, epochs: 2 }));
    tracker.onEvent(train({ type: 'epoch', epoch: 2, epochs: 2 }));
    await tracker.flush();
    assert.deepEqual(written, [1, 2, 2]);
  });
});
