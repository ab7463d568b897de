import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { splitDataset, splitMembership, stratumSizes } from '../../../src/ml/data/split.ts';
import type { DatasetItem, SplitName } from '../../../src/ml/data/types.ts';

/** An in-memory index: `perClass[c]` items of class c (splitting never opens files). */
function fakeIndex(perClass: number[], presets?: (c: number, i: number) => SplitName | undefined) {
  const classNames = perClass.map((_, c) => `class_${c}`);
  const items: DatasetItem[] = [];
  perClass.forEach((n, c) => {
    for (let i = 0; i < n; i++) {
      const presetSplit = presets?.(c, i);
      items.push({
        path: `class_${c}/${String(i).padStart(4, '0')}.png`,
        label: c,
        ...(presetSplit ? { presetSplit } : {}),
        width: 32,
        height: 32,
        bytes: 100,
        sha256: `${c}-${i}`,
      });
    }
  });
  return { classNames, items };
}

describe('splitDataset (random, stratified)', () => {
  test('splits every class in proportion', () => {
    const index = fakeIndex([100, 40, 20]);
    const { train, val, test: testSplit, record } = splitDataset(index, { seed: 7 });
    assert.deepEqual(record.counts.test, [15, 6, 3]);
    assert.deepEqual(record.counts.val, [15, 6, 3]);
    assert.deepEqual(record.counts.train, [70, 28, 14]);
    assert.equal(train.length + val.length + testSplit.length, 160);
    assert.equal(record.preset, false);
    assert.deepEqual(record.fractions, { val: 0.15, test: 0.15 });
    const all = new Set([...train, ...val, ...testSplit].map((i) => i.path));
    assert.equal(all.size, 160, 'every item lands in exactly one split');
  });

  test('honours custom fractions', () => {
    const { record } = splitDataset(fakeIndex([50, 50]), { seed: 1, valFraction: 0.2, testFraction: 0.1 });
    assert.deepEqual(record.counts, { train: [35, 35], val: [10, 10], test: [5, 5] });
  });

  test('gives each split at least one image of a class with three or more', () => {
    const { record } = splitDataset(fakeIndex([3, 4, 2, 1]), { seed: 3 });
    assert.deepEqual(record.counts.train, [1, 2, 2, 1]);
    assert.deepEqual(record.counts.val, [1, 1, 0, 0]);
    assert.deepEqual(record.counts.test, [1, 1, 0, 0]);
  });

  test('is deterministic for a seed and differs between seeds', () => {
    const index = fakeIndex([60, 60]);
    const a = splitDataset(index, { seed: 11 });
    const b = splitDataset(index, { seed: 11 });
    const c = splitDataset(index, { seed: 12 });
    assert.deepEqual(a.test.map((i) => i.path), b.test.map((i) => i.path));
    assert.deepEqual(a.val.map((i) => i.path), b.val.map((i) => i.path));
    assert.notDeepEqual(a.test.map((i) => i.path), c.test.map((i) => i.path));
    assert.deepEqual(a.record.counts, c.record.counts, 'counts depend on sizes, not on the seed');
  });

  test('returns each split in dataset order', () => {
    const index = fakeIndex([30, 30]);
    const { train } = splitDataset(index, { seed: 5 });
    const positions = train.map((item) => index.items.indexOf(item));
    assert.deepEqual(positions, [...positions].sort((x, y) => x - y));
  });

  test('rejects fractions that leave nothing to train on', () => {
    const index = fakeIndex([10, 10]);
    assert.throws(() => splitDataset(index, { seed: 1, valFraction: 0.5, testFraction: 0.5 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => splitDataset(index, { seed: 1, valFraction: -0.1 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  });
});

describe('splitDataset (preset folders)', () => {
  test('keeps the preset train, val and test splits', () => {
    const index = fakeIndex([10, 10], (_c, i) => (i < 6 ? 'train' : i < 8 ? 'val' : 'test'));
    const { train, val, test: testSplit, record } = splitDataset(index, { seed: 1 });
    assert.equal(record.preset, true);
    assert.deepEqual(record.carved, []);
    assert.ok(train.every((i) => i.presetSplit === 'train'));
    assert.ok(val.every((i) => i.presetSplit === 'val'));
    assert.ok(testSplit.every((i) => i.presetSplit === 'test'));
    assert.deepEqual(record.counts, { train: [6, 6], val: [2, 2], test: [2, 2] });
  });

  test('carves a stratified val split from train when the dataset has none', () => {
    const index = fakeIndex([40, 20], (_c, i) => (i % 5 === 0 ? 'test' : 'train'));
    const { train, val, test: testSplit, record } = splitDataset(index, { seed: 9, valFraction: 0.25 });
    assert.deepEqual(record.carved, ['val']);
    assert.deepEqual(record.counts.test, [8, 4], 'preset test untouched');
    assert.deepEqual(record.counts.val, [8, 4], '25% of each class of the preset train split');
    assert.deepEqual(record.counts.train, [24, 12]);
    assert.ok(val.every((i) => i.presetSplit === 'train'));
    assert.ok(testSplit.every((i) => i.presetSplit === 'test'));
    assert.equal(new Set([...train, ...val].map((i) => i.path)).size, 48);
  });
});

describe('split helpers', () => {
  test('stratumSizes keeps one training image even for tiny classes', () => {
    assert.deepEqual(stratumSizes(1, 0.15, 0.15), { val: 0, test: 0 });
    assert.deepEqual(stratumSizes(2, 0.4, 0.4), { val: 0, test: 1 });
    assert.deepEqual(stratumSizes(3, 0.15, 0.15), { val: 1, test: 1 });
    assert.deepEqual(stratumSizes(10, 0, 0.3), { val: 0, test: 3 });
  });

  test('splitMembership maps each path to its split', () => {
    const index = fakeIndex([10, 10]);
    const splits = splitDataset(index, { seed: 2 });
    const membership = splitMembership(splits);
    assert.equal(membership.size, 20);
    for (const name of ['train', 'val', 'test'] as const) {
      for (const item of splits[name]) assert.equal(membership.get(item.path), name);
    }
  });
});
