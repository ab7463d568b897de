import assert from 'node:assert/strict';
import { readFile, mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { isMlError } from '../../../src/ml/errors.ts';
import { assertMinImageSize, scanDataset } from '../../../src/ml/data/scan.ts';
import { SKIP_WITHOUT_XRAYS, copyXrays, makeTempDir, removeDir, writeBytes, writeSolid, xray } from './fixtures.ts';

const dirs: string[] = [];
async function tempDir(label: string): Promise<string> {
  const dir = await makeTempDir(label);
  dirs.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(dirs.map(removeDir));
});

describe('scanDataset with one folder per class', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let root: string;
  before(async () => {
    root = await tempDir('classes');
    await copyXrays(root, 'fractured', [0, 1, 2]);
    await copyXrays(root, 'not_fractured', [0, 1]);
    // A PNG written with an upper-case extension in a nested folder still belongs to its class.
    await writeSolid(path.join(root, 'not_fractured', 'nested', 'extra.PNG'), 240, 230, { r: 90, g: 90, b: 90 });
    // Files that must be skipped and counted.
    await writeBytes(path.join(root, 'fractured', 'x.jpg'), 'this is text, not a JPEG\n');
    const real = await readFile(xray('fractured', 3));
    await writeBytes(path.join(root, 'fractured', 'truncated.jpg'), real.subarray(0, Math.floor(real.length / 2)));
    await writeBytes(path.join(root, 'fractured', 'notes.txt'), 'notes');
    await writeBytes(path.join(root, 'not_fractured', 'empty.png'), new Uint8Array(0));
    await writeBytes(path.join(root, 'stray.jpg'), real);
    await writeBytes(path.join(root, 'fractured', '.hidden.jpg'), real);
    await symlink(xray('fractured', 4), path.join(root, 'fractured', 'link.jpg'));
  });

  test('finds sorted classes, relative paths, labels, sizes and per-class counts', async () => {
    const index = await scanDataset(root);
    assert.equal(index.layout, 'classes');
    assert.deepEqual(index.classNames, ['fractured', 'not_fractured']);
    assert.deepEqual(index.counts, [3, 3]);
    assert.deepEqual(index.items.map((i) => i.path), [
      'fractured/fractured-0000.jpg',
      'fractured/fractured-0001.jpg',
      'fractured/fractured-0002.jpg',
      'not_fractured/nested/extra.PNG',
      'not_fractured/not_fractured-0000.jpg',
      'not_fractured/not_fractured-0001.jpg',
    ]);
    assert.deepEqual(index.items.map((i) => i.label), [0, 0, 0, 1, 1, 1]);
    const extra = index.items[3]!;
    assert.equal(extra.width, 240);
    assert.equal(extra.height, 230);
    assert.equal(extra.presetSplit, undefined);
    const first = index.items[0]!;
    const bytes = await readFile(path.join(root, first.path));
    assert.equal(first.bytes, bytes.length);
    assert.match(first.sha256, /^[0-9a-f]{64}$/);
    assert.equal(index.root, path.resolve(root));
  });

  test('skips unreadable and foreign files, counting each by reason', async () => {
    const index = await scanDataset(root);
    assert.deepEqual(index.skipped.byReason, {
      'signature-mismatch': 1,
      truncated: 1,
      'unsupported-extension': 1,
      'empty-file': 1,
      'not-in-class-folder': 1,
      'not-a-regular-file': 1,
    });
    assert.equal(index.skipped.count, 6);
    const reasonOf = new Map(index.skipped.files.map((f) => [f.path, f.reason]));
    assert.equal(reasonOf.get('fractured/x.jpg'), 'signature-mismatch');
    assert.equal(reasonOf.get('fractured/truncated.jpg'), 'truncated');
    assert.equal(reasonOf.get('fractured/link.jpg'), 'not-a-regular-file');
    assert.equal(reasonOf.has('fractured/.hidden.jpg'), false, 'hidden files are ignored, not counted');
  });

  test('takes fracture-positive classes from the name rule', async () => {
    const index = await scanDataset(root);
    assert.deepEqual(index.positiveClasses, ['fractured']);
    assert.equal(index.positiveClassesSource, 'name-rule');
  });

  test('gives the same hash for the same content and a different one after any edit', async () => {
    const a = await scanDataset(root);
    const b = await scanDataset(root);
    assert.equal(a.hash, b.hash);
    assert.match(a.hash, /^[0-9a-f]{64}$/);
    const other = await tempDir('hash');
    await copyXrays(other, 'fractured', [0, 1, 2]);
    await copyXrays(other, 'not_fractured', [0, 1]);
    await writeSolid(path.join(other, 'not_fractured', 'nested', 'extra.PNG'), 240, 230, { r: 90, g: 90, b: 90 });
    assert.equal((await scanDataset(other)).hash, a.hash, 'hash depends on relative paths and bytes only');
    await writeSolid(path.join(other, 'not_fractured', 'nested', 'extra.PNG'), 240, 230, { r: 91, g: 90, b: 90 });
    assert.notEqual((await scanDataset(other)).hash, a.hash);
  });

  test('with verify: decode still accepts every good image', async () => {
    const index = await scanDataset(root, { verify: 'decode' });
    assert.equal(index.items.length, 6);
  });
});

describe('scanDataset with train/ val/ test/ folders', () => {
  test('respects preset splits, accepts the validation alias and unions class names', async () => {
    const root = await tempDir('splits');
    const grey = { r: 120, g: 120, b: 120 };
    for (const [split, cls, n] of [
      ['train', 'elbow_fractured', 3],
      ['train', 'elbow_normal', 2],
      ['validation', 'elbow_fractured', 1],
      ['validation', 'elbow_normal', 1],
      ['test', 'elbow_normal', 2],
      ['test', 'hand_fractured', 1],
    ] as const) {
      for (let i = 0; i < n; i++) await writeSolid(path.join(root, split, cls, `${i}.png`), 32, 32, grey);
    }
    await writeBytes(path.join(root, 'train', 'readme.md'), 'not an image');
    const index = await scanDataset(root);
    assert.equal(index.layout, 'splits');
    assert.deepEqual(index.classNames, ['elbow_fractured', 'elbow_normal', 'hand_fractured']);
    assert.deepEqual(index.counts, [4, 5, 1]);
    const splitCounts = { train: 0, val: 0, test: 0 };
    for (const item of index.items) splitCounts[item.presetSplit!]++;
    assert.deepEqual(splitCounts, { train: 5, val: 2, test: 3 });
    const hand = index.items.find((i) => i.path === 'test/hand_fractured/0.png');
    assert.equal(hand?.label, 2);
    assert.equal(hand?.presetSplit, 'test');
    assert.deepEqual(index.skipped.byReason, { 'not-in-class-folder': 1 });
    assert.deepEqual(index.positiveClasses, ['elbow_fractured', 'hand_fractured']);
  });

  test('rejects a root that mixes split folders with class folders', async () => {
    const root = await tempDir('mixed');
    await writeSolid(path.join(root, 'train', 'a', '0.png'), 8, 8, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'b', '0.png'), 8, 8, { r: 1, g: 1, b: 1 });
    await assert.rejects(scanDataset(root), (e) => isMlError(e, 'INVALID_ARGUMENT') && /mixes split folders/.test(e.message));
  });
});

describe('scanDataset dataset.json', () => {
  test('overrides the fracture-positive classes', async () => {
    const root = await tempDir('override');
    await writeSolid(path.join(root, 'broken', '0.png'), 8, 8, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'intact', '0.png'), 8, 8, { r: 2, g: 2, b: 2 });
    const byRule = await scanDataset(root);
    assert.deepEqual(byRule.positiveClasses, [], 'neither name carries a fracture token');
    await writeFile(path.join(root, 'dataset.json'), JSON.stringify({ positiveClasses: ['broken'] }));
    const index = await scanDataset(root);
    assert.deepEqual(index.positiveClasses, ['broken']);
    assert.equal(index.positiveClassesSource, 'dataset.json');
    assert.equal(index.skipped.count, 0, 'dataset.json itself is not a skipped file');
  });

  test('rejects an override naming an unknown class or malformed JSON', async () => {
    const root = await tempDir('override-bad');
    await writeSolid(path.join(root, 'a', '0.png'), 8, 8, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'b', '0.png'), 8, 8, { r: 2, g: 2, b: 2 });
    await writeFile(path.join(root, 'dataset.json'), JSON.stringify({ positiveClasses: ['c'] }));
    await assert.rejects(scanDataset(root), (e) => isMlError(e, 'INVALID_ARGUMENT'));
    await writeFile(path.join(root, 'dataset.json'), '{ not json');
    await assert.rejects(scanDataset(root), (e) => isMlError(e, 'INVALID_ARGUMENT') && /not valid JSON/.test(e.message));
  });
});

describe('scanDataset errors', () => {
  test('a missing folder is DATASET_NOT_FOUND', async () => {
    const root = await tempDir('missing');
    await assert.rejects(scanDataset(path.join(root, 'nope')), (e) => isMlError(e, 'DATASET_NOT_FOUND'));
    await writeBytes(path.join(root, 'file'), 'x');
    await assert.rejects(scanDataset(path.join(root, 'file')), (e) => isMlError(e, 'DATASET_NOT_FOUND'));
  });

  test('a folder without usable images is DATASET_EMPTY and says what was skipped', async () => {
    const root = await tempDir('empty');
    await assert.rejects(scanDataset(root), (e) => isMlError(e, 'DATASET_EMPTY'));
    await writeBytes(path.join(root, 'a', 'x.jpg'), 'text');
    await writeBytes(path.join(root, 'b', 'y.png'), 'text');
    await assert.rejects(scanDataset(root), (e) => isMlError(e, 'DATASET_EMPTY') && /2 files skipped: 2 signature-mismatch/.test(e.message));
  });

  test('one class with images is DATASET_SINGLE_CLASS naming the empty ones', async () => {
    const root = await tempDir('single');
    await writeSolid(path.join(root, 'fractured', '0.png'), 8, 8, { r: 1, g: 1, b: 1 });
    await writeBytes(path.join(root, 'normal', 'bad.jpg'), 'text');
    await assert.rejects(
      scanDataset(root),
      (e) => isMlError(e, 'DATASET_SINGLE_CLASS') && /"fractured"/.test(e.message) && /"normal"/.test(e.message),
    );
  });
});

describe('image size checks', () => {
  test('records sizes after EXIF orientation', async () => {
    const root = await tempDir('exif');
    await mkdir(path.join(root, 'a'), { recursive: true });
    await sharp({ create: { width: 40, height: 20, channels: 3, background: '#808080' } })
      .jpeg()
      .withMetadata({ orientation: 6 })
      .toFile(path.join(root, 'a', 'rotated.jpg'));
    await writeSolid(path.join(root, 'b', '0.png'), 40, 20, { r: 1, g: 1, b: 1 });
    const index = await scanDataset(root);
    const rotated = index.items.find((i) => i.path === 'a/rotated.jpg')!;
    assert.deepEqual([rotated.width, rotated.height], [20, 40]);
  });

  test('fails when any image is smaller than the input, naming count, smallest size and paths', async () => {
    const root = await tempDir('small');
    await writeSolid(path.join(root, 'a', 'big.png'), 64, 64, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'a', 'narrow.png'), 20, 64, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'b', 'big.png'), 80, 70, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'b', 'tiny.png'), 10, 12, { r: 1, g: 1, b: 1 });
    const index = await scanDataset(root);
    assert.doesNotThrow(() => assertMinImageSize(index, { width: 10, height: 12 }));
    assert.throws(
      () => assertMinImageSize(index, 32),
      (e) =>
        isMlError(e, 'IMAGE_TOO_SMALL') &&
        e.message.startsWith('2 of 4 images are smaller than the 32x32 input') &&
        e.message.includes('the smallest is 10x12 (b/tiny.png)') &&
        e.message.includes('a/narrow.png (20x64)'),
    );
    assert.throws(() => assertMinImageSize(index, { width: 64, height: 60 }), (e) => isMlError(e, 'IMAGE_TOO_SMALL') && /^2 of 4/.test(e.message));
    await assert.rejects(scanDataset(root, { minSize: 64 }), (e) => isMlError(e, 'IMAGE_TOO_SMALL') && /^2 of 4 images/.test(e.message));
    const ok = await scanDataset(root, { minSize: 10 });
    assert.equal(ok.items.length, 4);
  });

  test('skips images above the pixel limit', async () => {
    const root = await tempDir('limit');
    await writeSolid(path.join(root, 'a', 'big.png'), 100, 100, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'a', 'ok.png'), 50, 50, { r: 1, g: 1, b: 1 });
    await writeSolid(path.join(root, 'b', 'ok.png'), 50, 50, { r: 1, g: 1, b: 1 });
    const index = await scanDataset(root, { limitInputPixels: 5000 });
    assert.deepEqual(index.skipped.byReason, { 'too-many-pixels': 1 });
    assert.deepEqual(index.items.map((i) => i.path), ['a/ok.png', 'b/ok.png']);
  });
});
