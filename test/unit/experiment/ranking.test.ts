import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatComparisonTable, rankResults } from '../../../src/ml/experiment/index.ts';
import type { ArchitectureResult } from '../../../src/ml/experiment/index.ts';
import { classificationReport } from '../../../src/ml/metrics/index.ts';

const classNames = ['elbow_fractured', 'elbow_normal', 'hand_fractured', 'hand_normal'];
const yTrue = [0, 0, 1, 1, 2, 2, 3, 3];

/** A result whose predictions get `wrong` of the 8 samples wrong (each moved to the next class). */
function result(architecture: string, wrong: number, params: number): ArchitectureResult {
  const yPred = yTrue.map((label, i) => (i < wrong ? (label + 1) % 4 : label));
  return {
    architecture: architecture as ArchitectureResult['architecture'],
    metrics: classificationReport({ classNames, yTrue, yPred }),
    history: [],
    bestEpoch: 1,
    stoppedEarly: false,
    timings: { trainSeconds: 1, trainImagesPerSecond: 10, evaluateSeconds: 0.1, inferenceMsPerImage: 2 },
    params,
    trainableParams: params,
    modelBytes: params * 4,
    modelDir: `models/${architecture}`,
    microBatchSize: 16,
  };
}

describe('rankResults', () => {
  it('orders architectures by macro F1, best first, and names the winner with its margin', () => {
    const ranking = rankResults([result('cnn', 3, 100), result('vgg16', 0, 1000), result('resnet50', 1, 500)]);
    assert.deepEqual(ranking.entries.map((e) => e.architecture), ['vgg16', 'resnet50', 'cnn']);
    assert.deepEqual(ranking.entries.map((e) => e.rank), [1, 2, 3]);
    assert.equal(ranking.winner?.architecture, 'vgg16');
    assert.equal(ranking.winner?.score, 1);
    assert.match(ranking.winner?.reason ?? '', /vgg16 has the highest macro F1 .*ahead of resnet50/);
  });

  it('breaks an exact tie by fewer parameters', () => {
    const ranking = rankResults([result('vgg16', 1, 1000), result('cnn', 1, 100)]);
    assert.equal(ranking.winner?.architecture, 'cnn');
    assert.match(ranking.winner?.reason ?? '', /tied with vgg16.*fewer parameters/);
  });

  it('ranks by another metric on request', () => {
    const ranking = rankResults([result('cnn', 2, 100), result('vgg16', 1, 1000)], 'accuracy');
    assert.equal(ranking.metric, 'accuracy');
    assert.equal(ranking.entries[0]?.score, 7 / 8);
  });

  it('has no winner without results', () => {
    assert.equal(rankResults([]).winner, null);
  });
});

describe('formatComparisonTable', () => {
  it('prints one row per architecture in ranking order and the winner line', () => {
    const results = [result('cnn', 3, 95_210), result('vgg16', 0, 14_719_818)];
    const ranking = rankResults(results);
    const text = formatComparisonTable({ results, ranking, winner: ranking.winner });
    const lines = text.split('\n');
    assert.match(lines[0] ?? '', /^rank\s+architecture\s+accuracy\s+macro F1/);
    assert.match(lines[1] ?? '', /^1\s+vgg16\s+1\.0000\s+1\.0000/);
    assert.match(lines[2] ?? '', /^2\s+cnn\s+0\.6250/);
    assert.match(lines[2] ?? '', /95,210/);
    assert.match(text, /winner: vgg16\./);
  });
});
