import assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { AppError, type ErrorCode } from '../../../src/infra/errors.ts';
import { DatasetService, type DatasetLimits } from '../../../src/services/datasets/index.ts';
import { XRAY_DIR, patchName, tree, zipBuffer } from './zip-fixtures.ts';

const haveImages = existsSync(XRAY_DIR);
const skip = haveImages ? false : `real X-rays not found at ${XRAY_DIR}`;
const LIMITS: DatasetLimits = { maxUploadBytes: 50 * 1024 * 1024, maxEntries: 1000, maxBytes: 200 * 1024 * 1024, maxRatio: 100 };

let tmp: string;
let store: ArtifactStore;
let service: DatasetService;
const xray = (cls: 'fractured' | 'not_fractured', n: number) => path.join(XRAY_DIR, cls, `${cls}-${String(n).padStart(4, '0')}.jpg`);

async function copyInto(dir: string, files: Array<[string, string]>): Promise<void> {
  for (const [from, to] of files) {
    await mkdir(path.dirname(path.join(dir, to)), { recursive: true });
    await copyFile(from, path.join(dir, to));
  }
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<AppError> {
  let caught: unknown;
  await assert.rejects(promise, (e: unknown) => {
    caught = e;
    return true;
  });
  assert.ok(caught instanceof AppError, `expected an AppError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  return caught;
}

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dataset-service-'));
  store = new ArtifactStore(path.join(tmp, 'data'));
  service = new DatasetService(store, LIMITS);
  if (!haveImages) return;
  const ds = store.datasetsDir;

  // flat: 4 + 4 images, one exact copy, one re-encoded (near) copy, one stray text file.
  await copyInto(path.join(ds, 'flat'), [
    ...[0, 1, 2, 3].map((n): [string, string] => [xray('fractured', n), `fractured/f${n}.jpg`]),
    ...[0, 1, 2, 3].map((n): [string, string] => [xray('not_fractured', n), `not_fractured/n${n}.jpg`]),
    [xray('fractured', 0), 'fractured/copy-of-f0.jpg'],
  ]);
  await sharp(xray('not_fractured', 1)).jpeg({ quality: 60 }).toFile(path.join(ds, 'flat/not_fractured/n1-reencoded.jpg'));
  await writeFile(path.join(ds, 'flat/fractured/notes.txt'), 'not an image');

  // preset: train/ and test/ folders, with a training image copied into test (a leak).
  await copyInto(path.join(ds, 'preset'), [
    ...[4, 5, 6].map((n): [string, string] => [xray('fractured', n), `train/fractured/f${n}.jpg`]),
    ...[4, 5, 6].map((n): [string, string] => [xray('not_fractured', n), `train/not_fractured/n${n}.jpg`]),
    [xray('fractured', 4), 'test/fractured/leaked.jpg'],
    [xray('not_fractured', 7), 'test/not_fractured/n7.jpg'],
  ]);

  // Problems, and things that are not datasets.
  await copyInto(path.join(ds, 'single'), [[xray('fractured', 8), 'fractured/a.jpg']]);
  await copyInto(path.join(ds, 'mixed'), [
    [xray('fractured', 9), 'train/fractured/a.jpg'],
    [xray('not_fractured', 9), 'not_fractured/b.jpg'],
  ]);
  await copyInto(path.join(ds, 'override'), [
    [xray('fractured', 10), 'elbow/a.jpg'],
    [xray('not_fractured', 10), 'wrist/b.jpg'],
  ]);
  await writeFile(path.join(ds, 'override/dataset.json'), JSON.stringify({ positiveClasses: ['wrist'] }));
  await copyInto(path.join(ds, 'badconfig'), [
    [xray('fractured', 11), 'fractured/a.jpg'],
    [xray('not_fractured', 11), 'not_fractured/b.jpg'],
  ]);
  await writeFile(path.join(ds, 'badconfig/dataset.json'), JSON.stringify({ positiveClasses: ['no-such-class'] }));
  await mkdir(path.join(ds, '.extract-leftover/fractured'), { recursive: true });
  await mkdir(path.join(ds, 'not a valid id'), { recursive: true });
  await writeFile(path.join(ds, 'stray-file.zip'), 'x');
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe('DatasetService.list', { skip }, () => {
  it('lists dataset folders with classes, counts, fracture classes and problems, and nothing else', async () => {
    const views = await service.list();
    assert.deepEqual(
      views.map((v) => v.id),
      ['badconfig', 'flat', 'mixed', 'override', 'preset', 'single'],
    );
    const byId = new Map(views.map((v) => [v.id, v]));
    const flat = byId.get('flat')!;
    assert.equal(flat.layout, 'classes');
    assert.deepEqual(flat.classes, [
      { name: 'fractured', count: 5, positive: true },
      { name: 'not_fractured', count: 5, positive: false },
    ]);
    assert.equal(flat.imageCount, 10);
    assert.deepEqual(flat.positiveClasses, ['fractured']);
    assert.equal(flat.positiveClassesSource, 'name-rule');
    assert.equal(flat.splits, null);
    assert.equal(flat.problem, null);
    assert.ok(Date.parse(flat.createdAt) <= Date.parse(flat.modifiedAt) + 1000);
    assert.ok(Math.abs(Date.parse(flat.modifiedAt) - Date.now()) < 10 * 60_000);

    const preset = byId.get('preset')!;
    assert.equal(preset.layout, 'splits');
    assert.deepEqual(preset.splits, { train: 6, val: 0, test: 2 });
    assert.deepEqual(preset.classes.map((c) => [c.name, c.count]), [['fractured', 4], ['not_fractured', 4]]);

    assert.equal(byId.get('single')!.problem?.code, 'single-class');
    assert.equal(byId.get('mixed')!.problem?.code, 'invalid-layout');
    assert.equal(byId.get('badconfig')!.problem?.code, 'invalid-config');
    const override = byId.get('override')!;
    assert.deepEqual(override.positiveClasses, ['wrist']);
    assert.equal(override.positiveClassesSource, 'dataset.json');
    assert.deepEqual(override.classes.map((c) => c.positive), [false, true]);
  });

  it('answers an empty list when there is no datasets folder', async () => {
    const empty = new DatasetService(new ArtifactStore(path.join(tmp, 'nothing-here')), LIMITS);
    assert.deepEqual(await empty.list(), []);
  });
});

describe('DatasetService.get', { skip }, () => {
  it('adds checked counts, skipped files, the hash and duplicate findings', async () => {
    const view = await service.get('flat');
    assert.equal(view.problem, null);
    assert.deepEqual(view.classes.map((c) => [c.name, c.count]), [['fractured', 5], ['not_fractured', 5]]);
    assert.deepEqual(view.skipped, { count: 1, byReason: { 'unsupported-extension': 1 } });
    assert.match(view.hash ?? '', /^[0-9a-f]{64}$/);
    const dup = view.duplicates!;
    assert.deepEqual(dup.split, { seed: 42, valFraction: 0.15, testFraction: 0.15, preset: false });
    assert.equal(dup.exact.groups, 1);
    assert.equal(dup.exact.images, 1);
    assert.deepEqual(dup.exact.examples[0]?.paths, ['fractured/copy-of-f0.jpg', 'fractured/f0.jpg']);
    assert.deepEqual(dup.exact.examples[0]?.classes, ['fractured', 'fractured']);
    assert.equal(dup.near.groups, 1);
    assert.deepEqual(dup.near.examples[0]?.paths, ['not_fractured/n1-reencoded.jpg', 'not_fractured/n1.jpg']);
    assert.equal(dup.near.examples[0]?.conflictingLabels, false);
    // Whether these copies leak depends on the seeded split; the count must agree with the examples.
    const leakingExamples = [...dup.exact.examples, ...dup.near.examples].filter((g) => g.splitsInvolved.length > 1).length;
    assert.equal(dup.crossSplitLeaks.groups, leakingExamples);
  });

  it('reports a leak across preset split folders', async () => {
    const view = await service.get('preset');
    const dup = view.duplicates!;
    assert.equal(dup.split.preset, true);
    assert.equal(dup.crossSplitLeaks.groups, 1);
    assert.equal(dup.crossSplitLeaks.images, 2);
    const leak = dup.crossSplitLeaks.examples[0]!;
    assert.deepEqual(leak.paths, ['test/fractured/leaked.jpg', 'train/fractured/f4.jpg']);
    assert.deepEqual(leak.splits, ['test', 'train']);
    assert.deepEqual(leak.splitsInvolved, ['train', 'test']);
  });

  it('serves the second call from the cache, and recomputes when a file is added', async (t) => {
    const cacheFile = service.cacheFile('preset');
    await rm(cacheFile, { force: true });
    const t0 = performance.now();
    const first = await service.get('preset');
    const cold = performance.now() - t0;
    assert.ok(existsSync(cacheFile), 'the findings were not cached');

    const t1 = performance.now();
    const second = await service.get('preset');
    const warm = performance.now() - t1;
    assert.deepEqual(second, first);
    t.diagnostic(`get: scan ${cold.toFixed(1)} ms, cache hit ${warm.toFixed(1)} ms`);
    assert.ok(warm < cold / 3, `cache hit took ${warm.toFixed(1)} ms, the scan ${cold.toFixed(1)} ms`);

    // The answer really comes from the file: a planted value is served while the folder is unchanged.
    const record = JSON.parse(await readFile(cacheFile, 'utf8'));
    record.view.hash = 'planted';
    await writeFile(cacheFile, JSON.stringify(record));
    assert.equal((await service.get('preset')).hash, 'planted');

    await copyFile(xray('not_fractured', 12), path.join(store.datasetDir('preset'), 'test/not_fractured/n12.jpg'));
    const third = await service.get('preset');
    assert.notEqual(third.hash, 'planted');
    assert.notEqual(third.hash, first.hash);
    assert.deepEqual(third.splits, { train: 6, val: 0, test: 3 });
    assert.equal(JSON.parse(await readFile(cacheFile, 'utf8')).view.hash, third.hash);
  });

  it('shares one scan between concurrent calls', async () => {
    await rm(service.cacheFile('flat'), { force: true });
    const [a, b] = await Promise.all([service.get('flat'), service.get('flat')]);
    assert.equal(a, b);
  });

  it('shows why a dataset cannot train instead of failing', async () => {
    const single = await service.get('single');
    assert.equal(single.problem?.code, 'single-class');
    assert.equal(single.hash, null);
    assert.equal(single.duplicates, null);
    assert.equal((await service.get('mixed')).problem?.code, 'invalid-layout');
    const bad = await service.get('badconfig');
    assert.equal(bad.problem?.code, 'invalid-config');
    assert.ok(!bad.problem.detail.includes('no-such-class'), 'problem details never repeat names');
  });

  it('answers DATASET_NOT_FOUND for unknown, hidden and unsafe ids', async () => {
    for (const id of ['nope', '.extract-leftover', '../data', 'a/b', '']) {
      await expectCode(service.get(id), 'DATASET_NOT_FOUND');
    }
    await expectCode(service.datasetDir('stray-file.zip'), 'DATASET_NOT_FOUND');
    assert.equal(await service.datasetDir('flat'), path.join(store.datasetsDir, 'flat'));
  });
});

describe('DatasetService.createFromZip', { skip }, () => {
  let goodZip: Buffer;
  const zipPath = () => path.join(tmp, 'upload.zip');

  before(async () => {
    goodZip = await zipBuffer((z) => {
      for (const n of [20, 21, 22]) z.addFile(xray('fractured', n), `my xrays/fractured/${n}.jpg`);
      for (const n of [20, 21, 22]) z.addFile(xray('not_fractured', n), `my xrays/not_fractured/${n}.jpg`);
      z.addBuffer(Buffer.from('x'), '__MACOSX/my xrays/fractured/._20.jpg');
      z.addBuffer(Buffer.from('x'), 'my xrays/.DS_Store');
      z.addBuffer(Buffer.from('readme'), 'my xrays/README.txt');
    });
    await writeFile(zipPath(), goodZip);
  });

  /** The datasets and uploads folders, to check that a failure leaves nothing behind. */
  const snapshot = async () => ({ datasets: await readdir(store.datasetsDir), uploads: await tree(store.uploadsDir) });

  it('creates a dataset from a stream under the requested id, without the junk', async () => {
    const view = await service.createFromZip(createReadStream(zipPath()), 'uploaded');
    assert.equal(view.id, 'uploaded');
    assert.deepEqual(view.classes, [
      { name: 'fractured', count: 3, positive: true },
      { name: 'not_fractured', count: 3, positive: false },
    ]);
    assert.equal(view.problem, null);
    assert.deepEqual(view.skipped, { count: 0, byReason: {} });
    assert.deepEqual(await tree(store.datasetDir('uploaded')), [
      'fractured',
      'fractured/20.jpg',
      'fractured/21.jpg',
      'fractured/22.jpg',
      'not_fractured',
      'not_fractured/20.jpg',
      'not_fractured/21.jpg',
      'not_fractured/22.jpg',
    ]);
    assert.deepEqual(await tree(store.uploadsDir), [], 'the upload temp file was left behind');
    assert.ok(existsSync(service.cacheFile('uploaded')));
    assert.ok((await service.list()).some((v) => v.id === 'uploaded'));
  });

  it('generates an id when none is given, and takes a file path too', async () => {
    const view = await service.createFromZip(zipPath());
    assert.match(view.id, /^ds-[0-9a-f]{10}$/);
    assert.equal(view.imageCount, 6);
    assert.ok(existsSync(zipPath()), "a caller's own file is not deleted");
  });

  it('refuses an existing or invalid id before reading the upload', async () => {
    const before = await snapshot();
    const cases: Array<[string, ErrorCode]> = [
      ['flat', 'DATASET_EXISTS'],
      ['../escape', 'VALIDATION_FAILED'],
      ['.hidden', 'VALIDATION_FAILED'],
    ];
    for (const [id, code] of cases) {
      const upload = createReadStream(zipPath());
      await expectCode(service.createFromZip(upload, id), code);
      assert.equal(upload.bytesRead, 0, 'the upload was read');
      upload.destroy();
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('stops an upload over maxUploadBytes while it streams, and keeps nothing', async () => {
    const small = new DatasetService(store, { ...LIMITS, maxUploadBytes: 10_000 });
    const before = await snapshot();
    const error = await expectCode(small.createFromZip(createReadStream(zipPath()), 'too-big'), 'PAYLOAD_TOO_LARGE');
    assert.match(error.message, /10000-byte limit/);
    await expectCode(small.createFromZip(zipPath(), 'too-big'), 'PAYLOAD_TOO_LARGE');
    assert.deepEqual(await snapshot(), before);
  });

  it('refuses archives with one class or no images, and removes what it extracted', async () => {
    const before = await snapshot();
    const oneClass = await zipBuffer((z) => {
      for (const n of [30, 31]) z.addFile(xray('fractured', n), `fractured/${n}.jpg`);
    });
    await writeFile(path.join(tmp, 'one.zip'), oneClass);
    await expectCode(service.createFromZip(createReadStream(path.join(tmp, 'one.zip')), 'one'), 'DATASET_SINGLE_CLASS');

    const noImages = await zipBuffer((z) => {
      z.addBuffer(Buffer.from('a'), 'fractured/a.txt');
      z.addBuffer(Buffer.from('b'), 'normal/b.txt');
    });
    await writeFile(path.join(tmp, 'none.zip'), noImages);
    await expectCode(service.createFromZip(path.join(tmp, 'none.zip'), 'none'), 'DATASET_EMPTY');

    // Files named .jpg that are not images are extracted, then found unusable by the scan.
    const fakes = await zipBuffer((z) => {
      z.addBuffer(Buffer.from('not a jpeg'), 'fractured/a.jpg');
      z.addBuffer(Buffer.from('not a jpeg'), 'normal/b.jpg');
    });
    await writeFile(path.join(tmp, 'fakes.zip'), fakes);
    await expectCode(service.createFromZip(path.join(tmp, 'fakes.zip'), 'fakes'), 'DATASET_EMPTY');
    assert.deepEqual(await snapshot(), before);
  });

  it('passes archive errors through and keeps nothing', async () => {
    const before = await snapshot();
    const evil = await zipBuffer((z) => {
      z.addFile(xray('fractured', 40), 'fractured/a.jpg');
      z.addFile(xray('not_fractured', 40), 'normal/b.jpg');
      z.addBuffer(Buffer.from('pwned'), 'XX/evil.jpg');
    });
    await writeFile(path.join(tmp, 'evil.zip'), patchName(evil, 'XX/evil.jpg', '../evil.jpg'));
    const error = await expectCode(service.createFromZip(createReadStream(path.join(tmp, 'evil.zip')), 'evil'), 'ARCHIVE_UNSAFE');
    assert.equal(error.extensions.rule, 'path-traversal');
    await writeFile(path.join(tmp, 'junk.zip'), 'this is not a zip');
    await expectCode(service.createFromZip(createReadStream(path.join(tmp, 'junk.zip')), 'junk'), 'ARCHIVE_INVALID');
    assert.deepEqual(await snapshot(), before);
    assert.equal(existsSync(path.join(store.root, 'evil.jpg')), false);
  });
});
