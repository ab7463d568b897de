import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createProgressView } from '../../../src/cli/progress/training-progress.ts';
import type { TrainProgressEvent } from '../../../src/ml/train/index.ts';

/** A stand-in for stderr that records what is written (a pipe, not a terminal). */
function pipe(): NodeJS.WriteStream & { text: () => string } {
  const chunks: string[] = [];
  return Object.assign(Object.create(null) as NodeJS.WriteStream, {
    isTTY: false,
    write: (chunk: string) => { chunks.push(chunk); return true; },
    text: () => chunks.join(''),
  });
}

const progress = (type: TrainProgressEvent['type'], extra: Partial<TrainProgressEvent> = {}): TrainProgressEvent => ({
  type, epoch: 2, epochs: 5, batch: 10, batches: 10, loss: 0.5, accuracy: 0.75, imagesPerSecond: 12.5, etaSeconds: 125, learningRate: 1e-3, microBatchSize: 16, ...extra,
});

describe('createProgressView without a terminal', () => {
  it('prints the dataset, each architecture and one line per epoch with the ETA, not every batch', () => {
    const stream = pipe();
    const view = createProgressView(stream);
    view.onEvent({ type: 'dataset', classNames: ['a', 'b'], counts: { train: 8, val: 2, test: 2 }, skipped: 1, leaks: 3 });
    view.onEvent({ type: 'architecture-start', architecture: 'cnn', index: 0, total: 2, params: 95210 });
    view.onEvent({ type: 'train', architecture: 'cnn', progress: progress('batch') });
    view.onEvent({ type: 'train', architecture: 'cnn', progress: progress('epoch', { valLoss: 0.6, valAccuracy: 0.5 }) });
    view.onEvent({ type: 'train', architecture: 'cnn', progress: progress('learning-rate-reduced', { message: 'learning rate 0.001 -> 0.0005' }) });
    view.stop();
    const lines = stream.text().trimEnd().split('\n');
    assert.deepEqual(lines, [
      'dataset: 2 classes; train 8, val 2, test 2; skipped 1; cross-split duplicate leaks 3',
      '[1/2] cnn: 95,210 params',
      '  cnn epoch 2/5 loss 0.5000 acc 0.7500 val_loss 0.6000 val_acc 0.5000 12.5 img/s eta 02:05',
      '  cnn: learning rate 0.001 -> 0.0005',
    ]);
  });
});
