import assert from 'node:assert/strict';
import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { findDuplicates, hammingDistance64, perceptualHash } from '../../../src/ml/data/duplicates.ts';
import type { DuplicateInput } from '../../../src/ml/data/duplicates.ts';
import type { SplitName } from '../../../src/ml/data/types.ts';
import { SKIP_WITHOUT_XRAYS, copyXrays, makeTempDir, removeDir, writeBytes, xray } from './fixtures.ts';

/** Distance between the aHash (words 0–1) or dHash (words 2–3) of two hash quadruples. */
const distance = (a: Uint32Array, b: Uint32Array, which: 0 | 2): number => hammingDistance64(a[which]!, a[which + 1]!, b[which]!, b[which + 1]!);

describe('findDuplicates on real radiographs', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let root: string;
  let items: DuplicateInput[];
  const splits = new Map<string, SplitName>();

  before(async () => {
    root = await makeTempDir('dups');
    await copyXrays(root, 'fractured', [0, 1, 2]);
    await copyXrays(root, 'not_fractured', [0, 1]);
    const f = (n: number): string => path.join(root, 'fractured', `fractured-000${n}.jpg`);
    await copyFile(f(0), path.join(root, 'fractured', 'f0-copy.jpg'));
    await sharp(f(1)).jpeg({ quality: 70 }).toFile(path.join(root, 'fractured', 'f1-q70.jpg'));
    const n0 = xray('not_fractured', 0);
    const { width } = await sharp(n0).metadata();
    await sharp(n0).resize(Math.round(width / 2)).png().toFile(path.join(root, 'not_fractured', 'n0-half.png'));
    await sharp(f(2)).flop().jpeg({ quality: 90 }).toFile(path.join(root, 'fractured', 'f2-mirrored.jpg'));
    await writeBytes(path.join(root, 'fractured', 'broken.jpg'), 'not an image');
    const entries: Array<[string, number, SplitName]> = [
      ['fractured/fractured-0000.jpg', 0, 'train'], // 0
      ['fractured/fractured-0001.jpg', 0, 'train'], // 1
      ['fractured/fractured-0002.jpg', 0, 'val'], // 2
      ['not_fractured/not_fractured-0000.jpg', 1, 'train'], // 3
      ['not_fractured/not_fractured-0001.jpg', 1, 'test'], // 4
      ['fractured/f0-copy.jpg', 0, 'test'], // 5: byte copy of 0, across splits
      ['fractured/f1-q70.jpg', 0, 'train'], // 6: re-encoded 1, same split
      ['not_fractured/n0-half.png', 0, 'val'], // 7: resized 3, other split and other label
      ['fractured/broken.jpg', 0, 'train'], // 8
      ['fractured/f2-mirrored.jpg', 0, 'test'], // 9: mirror of 2
    ];
    items = entries.map(([p, label]) => ({ path: p, label }));
    for (const [p, , split] of entries) splits.set(p, split);
  });
  after(async () => {
    await removeDir(root);
  });

  test('groups byte-identical files as exact duplicates', async () => {
    const report = await findDuplicates(root, items, splits);
    assert.deepEqual(report.exactGroups.map((g) => g.indices), [[0, 5]]);
    assert.equal(report.exactGroups[0]!.maxDistance, 0);
    assert.equal(report.summary.exactDuplicateImages, 1);
  });

  test('finds re-encoded and resized copies as near duplicates, and nothing else', async () => {
    const report = await findDuplicates(root, items, splits);
    assert.deepEqual(report.nearGroups.map((g) => g.indices), [[1, 6], [3, 7]]);
    for (const g of report.nearGroups) assert.ok(g.maxDistance <= 4, `distance ${g.maxDistance}`);
    assert.equal(report.nearGroups[1]!.conflictingLabels, true, 'the resized copy carries another label');
    assert.equal(report.nearGroups[0]!.conflictingLabels, false);
    assert.equal(report.summary.conflictingLabelGroups, 1);
  });

  test('reports groups that cross splits as leaks', async () => {
    const report = await findDuplicates(root, items, splits);
    const leaks = report.crossSplitLeaks.map((l) => ({ kind: l.kind, indices: l.indices, splits: l.splitsInvolved }));
    assert.deepEqual(leaks, [
      { kind: 'exact', indices: [0, 5], splits: ['train', 'test'] },
      { kind: 'near', indices: [3, 7], splits: ['train', 'val'] },
    ]);
    assert.equal(report.summary.crossSplitLeaks, 2);
    assert.equal(report.summary.leakedImages, 4);
    assert.deepEqual(report.crossSplitLeaks[1]!.paths, ['not_fractured/not_fractured-0000.jpg', 'not_fractured/n0-half.png']);
  });

  test('uses preset splits when no split map is given, and reports no leaks without splits', async () => {
    const preset = items.map((item) => ({ ...item, presetSplit: splits.get(item.path)! }));
    const withPreset = await findDuplicates(root, preset);
    assert.equal(withPreset.crossSplitLeaks.length, 2);
    const without = await findDuplicates(root, items);
    assert.equal(without.crossSplitLeaks.length, 0);
    assert.deepEqual(without.exactGroups[0]!.splits, [null, null]);
  });

  test('lists an unreadable image as failed without stopping', async () => {
    const report = await findDuplicates(root, items, splits);
    assert.deepEqual(report.failed.map((f) => f.path), ['fractured/broken.jpg']);
    assert.equal(report.summary.failed, 1);
    assert.equal(report.summary.images, 10);
  });

  test('matches a mirrored copy only when orientation invariance is on', async () => {
    const plain = await findDuplicates(root, items, splits);
    assert.ok(!plain.nearGroups.some((g) => g.indices.includes(9)));
    const invariant = await findDuplicates(root, items, splits, { orientationInvariant: true });
    assert.ok(invariant.nearGroups.some((g) => g.indices.join() === '2,9'), JSON.stringify(invariant.nearGroups.map((g) => g.indices)));
    assert.equal(invariant.settings.orientationInvariant, true);
  });

  test('perceptual hashes stay within a bit or two for a re-encoded copy and far apart for another radiograph', async () => {
    const original = await perceptualHash(path.join(root, 'fractured', 'fractured-0001.jpg'));
    const reencoded = await perceptualHash(path.join(root, 'fractured', 'f1-q70.jpg'));
    const other = await perceptualHash(path.join(root, 'not_fractured', 'not_fractured-0001.jpg'));
    assert.ok(distance(original, reencoded, 0) <= 2 && distance(original, reencoded, 2) <= 2);
    assert.ok(distance(original, other, 0) > 10 && distance(original, other, 2) > 10);
  });
});

describe('hammingDistance64', () => {
  test('counts differing bits across both words', () => {
    assert.equal(hammingDistance64(0, 0, 0, 0), 0);
    assert.equal(hammingDistance64(0xffffffff, 0, 0, 0xffffffff), 64);
    assert.equal(hammingDistance64(0b1011, 0x80000000, 0b0001, 0), 3);
  });
});
