import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { isMlError } from '../../../src/ml/errors.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/generate-dataset.ts';

let root = '';
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'fracture-synth-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** sha256 of every file in the class folders under `dir`, keyed by relative path. */
async function hashTree(dir: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const folder of await readdir(dir)) {
    for (const name of await readdir(path.join(dir, folder))) {
      const file = path.join(folder, name);
      hashes.set(file, createHash('sha256').update(await readFile(path.join(dir, file))).digest('hex'));
    }
  }
  return hashes;
}

test('writes perClass grayscale PNGs of size x size into one folder per class', async () => {
  const outDir = path.join(root, 'counts');
  const summary = await generateSyntheticDataset({ outDir, perClass: 3, size: 40, seed: 1 });
  assert.equal(summary.outDir, path.resolve(outDir));
  assert.equal(summary.files, 30);
  assert.deepEqual(summary.classNames, [
    'elbow_fractured', 'elbow_normal', 'finger_fractured', 'finger_normal', 'forearm_fractured',
    'forearm_normal', 'hand_fractured', 'hand_normal', 'shoulder_fractured', 'shoulder_normal',
  ]);
  assert.deepEqual((await readdir(outDir)).sort(), summary.classNames);
  for (const name of summary.classNames) {
    const files = (await readdir(path.join(outDir, name))).sort();
    assert.deepEqual(files, [0, 1, 2].map((i) => `${name}_000${i}.png`));
    const meta = await sharp(path.join(outDir, name, files[0] ?? '')).metadata();
    assert.equal(meta.format, 'png');
    assert.equal(meta.width, 40);
    assert.equal(meta.height, 40);
    assert.equal(meta.channels, 1);
    assert.equal(meta.depth, 'uchar');
  }
  // No staging folder is left next to the data set.
  assert.deepEqual((await readdir(root)).filter((n) => n.includes('synth-')), []);
});

test('the same seed gives byte-identical files and another seed different ones', async () => {
  const options = { perClass: 2, size: 32, regions: ['hand', 'elbow'] as const };
  const a = await generateSyntheticDataset({ ...options, outDir: path.join(root, 'seed-a'), seed: 99 });
  const b = await generateSyntheticDataset({ ...options, outDir: path.join(root, 'seed-b'), seed: 99 });
  const c = await generateSyntheticDataset({ ...options, outDir: path.join(root, 'seed-c'), seed: 100 });
  const ha = await hashTree(a.outDir);
  const hc = await hashTree(c.outDir);
  assert.equal(ha.size, 8);
  assert.deepEqual(await hashTree(b.outDir), ha);
  assert.deepEqual([...hc.keys()].sort(), [...ha.keys()].sort());
  for (const [file, hash] of ha) assert.notEqual(hc.get(file), hash, `${file} should change with the seed`);
});

test('a larger perClass extends a smaller set instead of reshuffling it', async () => {
  const small = await generateSyntheticDataset({ outDir: path.join(root, 'small'), perClass: 1, size: 24, seed: 5, regions: ['finger'] });
  const large = await generateSyntheticDataset({ outDir: path.join(root, 'large'), perClass: 3, size: 24, seed: 5, regions: ['finger'] });
  const hs = await hashTree(small.outDir);
  const hl = await hashTree(large.outDir);
  assert.equal(hl.size, 6);
  for (const [file, hash] of hs) assert.equal(hl.get(file), hash);
});

test('regions restricts the classes to those regions', async () => {
  const summary = await generateSyntheticDataset({ outDir: path.join(root, 'regions'), perClass: 1, size: 24, seed: 3, regions: ['shoulder'] });
  assert.deepEqual(summary.classNames, ['shoulder_fractured', 'shoulder_normal']);
  assert.equal(summary.files, 2);
  assert.deepEqual((await readdir(summary.outDir)).sort(), summary.classNames);
});

test('refuses a non-empty outDir without force and leaves it untouched', async () => {
  const outDir = path.join(root, 'occupied');
  await mkdir(outDir);
  await writeFile(path.join(outDir, 'keep.txt'), 'mine');
  await assert.rejects(
    generateSyntheticDataset({ outDir, perClass: 1, size: 24, seed: 1 }),
    (e) => isMlError(e, 'INVALID_ARGUMENT') && /not empty/.test(e.message),
  );
  assert.deepEqual(await readdir(outDir), ['keep.txt']);
  assert.deepEqual((await readdir(root)).filter((n) => n.includes('occupied.synth-')), []);
});

test('force replaces a non-empty outDir, and an empty outDir needs no force', async () => {
  const outDir = path.join(root, 'replaced');
  await mkdir(outDir);
  await generateSyntheticDataset({ outDir, perClass: 1, size: 24, seed: 1, regions: ['hand'] });
  await writeFile(path.join(outDir, 'stale.txt'), 'old');
  const summary = await generateSyntheticDataset({ outDir, perClass: 1, size: 24, seed: 2, regions: ['finger'], force: true });
  assert.deepEqual((await readdir(outDir)).sort(), summary.classNames);
  assert.deepEqual((await readdir(root)).filter((n) => n.includes('replaced.synth-')), []);
});

test('rejects invalid options with INVALID_ARGUMENT before writing anything', async () => {
  const outDir = path.join(root, 'invalid');
  const cases = [
    { perClass: 0, size: 32, seed: 1 },
    { perClass: 1.5, size: 32, seed: 1 },
    { perClass: 1, size: 8, seed: 1 },
    { perClass: 1, size: 32, seed: -1 },
    { perClass: 1, size: 32, seed: 1, regions: ['knee'] },
  ];
  for (const options of cases) {
    await assert.rejects(
      generateSyntheticDataset({ outDir, ...options } as Parameters<typeof generateSyntheticDataset>[0]),
      (e) => isMlError(e, 'INVALID_ARGUMENT'),
      JSON.stringify(options),
    );
  }
  await assert.rejects(readdir(outDir), { code: 'ENOENT' });
});

test('reports progress once per image, ending at the total', async () => {
  const seen: number[] = [];
  await generateSyntheticDataset({
    outDir: path.join(root, 'progress'), perClass: 2, size: 24, seed: 4, regions: ['elbow'],
    onProgress: (done, total) => {
      assert.equal(total, 4);
      seen.push(done);
    },
  });
  assert.deepEqual(seen, [1, 2, 3, 4]);
});

test('generates 10 classes x 20 images at 128 px in well under 5 s of CPU time', async (t) => {
  // CPU time, not wall time: the test machine is shared, and CPU time is what the generator costs.
  const cpu = process.cpuUsage();
  const started = performance.now();
  const summary = await generateSyntheticDataset({ outDir: path.join(root, 'speed'), perClass: 20, size: 128, seed: 42 });
  const used = process.cpuUsage(cpu);
  const cpuSeconds = (used.user + used.system) / 1e6;
  const wallSeconds = (performance.now() - started) / 1000;
  assert.equal(summary.files, 200);
  assert.ok(cpuSeconds < 5, `used ${cpuSeconds.toFixed(2)} s CPU`);
  t.diagnostic(`synth rate: ${(200 / wallSeconds).toFixed(0)} images/s wall (${wallSeconds.toFixed(2)} s), ${cpuSeconds.toFixed(2)} s CPU`);
});
