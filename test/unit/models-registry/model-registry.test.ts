/**
 * ModelRegistry on real files: a real (tiny) experiment is trained with runExperiment on a synthetic
 * dataset, then registered, listed, described, aliased, resolved, served and verified.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { AppError, type ErrorCode } from '../../../src/infra/errors.ts';
import { runExperiment, type ExperimentReport } from '../../../src/ml/experiment/index.ts';
import type { ModelMetadata } from '../../../src/ml/persist/index.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';
import { ModelRegistry, linkOrCopy, versionOf, type ModelView } from '../../../src/services/models/index.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const run = promisify(execFile);

let root: string;
let store: ArtifactStore;
let registry: ModelRegistry;
let report: ExperimentReport;
let experimentDir: string;

before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'model-registry-'));
  store = new ArtifactStore(path.join(root, 'data'));
  registry = new ModelRegistry(store);
  await generateSyntheticDataset({ outDir: store.datasetDir('synth'), perClass: 6, size: 40, seed: 5, regions: ['hand', 'forearm'] });
  experimentDir = store.experimentDir('exp1');
  report = await runExperiment({
    dataDir: store.datasetDir('synth'),
    outDir: experimentDir,
    architectures: ['cnn'],
    imageSize: 32,
    epochs: 1,
    batchSize: 8,
    seed: 3,
    // The WASM backend, as in production: on the pure-JS cpu backend this one epoch takes 40 s.
    backend: process.env.FRACTURE_TEST_BACKEND ?? 'wasm',
  });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, detail?: RegExp): Promise<AppError> {
  let caught: unknown;
  await assert.rejects(promise, (error: unknown) => {
    caught = error;
    return error instanceof AppError && error.code === code && (detail === undefined || detail.test(error.message));
  });
  return caught as AppError;
}

async function readMetadata(dir: string): Promise<ModelMetadata> {
  return JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as ModelMetadata;
}

/** A copy of the experiment with its own inodes, so damaging it leaves exp1's files intact. */
async function copyExperiment(id: string): Promise<string> {
  const dir = store.experimentDir(id);
  await cp(experimentDir, dir, { recursive: true });
  return dir;
}

describe('registerFromExperiment', () => {
  it('hard-links every file of the saved model into models/{experimentId}-{architecture}/ with a registry.json', async () => {
    const ids = await registry.registerFromExperiment('exp1', report, experimentDir);
    assert.deepEqual(ids, ['exp1-cnn']);
    const modelDir = store.modelDir('exp1-cnn');
    const source = path.join(experimentDir, report.results[0]!.modelDir);
    const metadata = await readMetadata(modelDir);
    const expected = [...Object.keys(metadata.files), 'metadata.json', 'registry.json'].sort();
    assert.deepEqual((await readdir(modelDir)).sort(), expected);
    for (const name of [...Object.keys(metadata.files), 'metadata.json']) {
      const [linked, original] = await Promise.all([stat(path.join(modelDir, name)), stat(path.join(source, name))]);
      assert.equal(linked.ino, original.ino, `${name} is a hard link, not a copy`);
    }
    const record = JSON.parse(await readFile(path.join(modelDir, 'registry.json'), 'utf8')) as Record<string, unknown>;
    const result = report.results[0]!;
    assert.equal(record.experimentId, 'exp1');
    assert.equal(record.datasetId, 'synth', 'derived from the dataset folder under DATA_DIR/datasets');
    assert.equal(record.architecture, 'cnn');
    assert.ok(Math.abs(Date.parse(record.createdAt as string) - Date.now()) < 60_000);
    const metrics = record.metrics as Record<string, unknown>;
    assert.equal(metrics.accuracy, result.metrics.accuracy);
    assert.equal(metrics.macroF1, result.metrics.macroAvg.f1);
    assert.equal(metrics.weightedF1, result.metrics.weightedAvg.f1);
    assert.equal(metrics.testSamples, result.metrics.macroAvg.support);
  });

  it('is idempotent: a second call returns the same ids and changes nothing on disk', async () => {
    const modelDir = store.modelDir('exp1-cnn');
    const before = await readFile(path.join(modelDir, 'registry.json'), 'utf8');
    const beforeStat = await stat(path.join(modelDir, 'registry.json'));
    assert.deepEqual(await registry.registerFromExperiment('exp1', report, experimentDir), ['exp1-cnn']);
    assert.equal(await readFile(path.join(modelDir, 'registry.json'), 'utf8'), before);
    assert.equal((await stat(path.join(modelDir, 'registry.json'))).ino, beforeStat.ino);
    assert.deepEqual((await readdir(store.modelsDir)).filter((name) => name.includes('.tmp-')), []);
  });

  it('publishes one complete model when several registrations of the same experiment race', async () => {
    const others = [new ModelRegistry(store), new ModelRegistry(store), new ModelRegistry(store)];
    const results = await Promise.all([registry, ...others].map((r) => r.registerFromExperiment('exp2', report, experimentDir, { datasetId: 'synth' })));
    for (const ids of results) assert.deepEqual(ids, ['exp2-cnn']);
    const names = await readdir(store.modelsDir);
    assert.deepEqual(names.filter((name) => name.startsWith('exp2-cnn')), ['exp2-cnn'], 'no temp directory left behind');
    await registry.verify('exp2-cnn');
  });

  it('refuses unsafe experiment ids and model directories outside the experiment', async () => {
    await rejectsWith(registry.registerFromExperiment('../evil', report, experimentDir), 'VALIDATION_FAILED');
    const escaping = { ...report, results: [{ ...report.results[0]!, modelDir: '../exp2' }] };
    await rejectsWith(registry.registerFromExperiment('exp9', escaping, experimentDir), 'VALIDATION_FAILED', /outside the experiment/);
    await assert.rejects(stat(store.modelDir('exp9-cnn')), { code: 'ENOENT' });
  });

  it('refuses to register a saved model whose files fail their sha256 check, leaving no model behind', async () => {
    const dir = await copyExperiment('bad');
    const modelDir = path.join(dir, report.results[0]!.modelDir);
    const metadata = await readMetadata(modelDir);
    const shard = Object.keys(metadata.files).find((name) => name.endsWith('.bin'))!;
    const bytes = await readFile(path.join(modelDir, shard));
    bytes[7] = bytes[7]! ^ 0xff;
    await writeFile(path.join(modelDir, shard), bytes);
    const error = await rejectsWith(registry.registerFromExperiment('bad', report, dir), 'MODEL_CORRUPT', new RegExp(shard.replace(/\./g, '\\.')));
    assert.ok(!error.message.includes(root), 'the detail names no absolute path');
    assert.deepEqual((await readdir(store.modelsDir)).filter((name) => name.startsWith('bad-')), []);
  });
});

describe('get and list', () => {
  it('describes a model for the API: classes, input, preprocessing, headline metrics, dataset hash, version, files', async () => {
    const view: ModelView = await registry.get('exp1-cnn');
    const metadata = await readMetadata(store.modelDir('exp1-cnn'));
    const modelJson = JSON.parse(await readFile(path.join(store.modelDir('exp1-cnn'), 'model.json'), 'utf8')) as { weightsManifest: { paths: string[] }[] };
    const result = report.results[0]!;
    assert.equal(view.id, 'exp1-cnn');
    assert.equal(view.architecture, 'cnn');
    assert.deepEqual(view.classes, report.dataset.classNames);
    assert.deepEqual(view.positiveClasses, report.dataset.positiveClasses);
    assert.deepEqual(view.input, { height: 32, width: 32, channels: 3 });
    assert.deepEqual(view.preprocessing, metadata.preprocessing);
    assert.equal(view.metrics.accuracy, result.metrics.accuracy);
    assert.equal(view.metrics.macroF1, result.metrics.macroAvg.f1);
    assert.equal(view.metrics.weightedF1, result.metrics.weightedAvg.f1);
    assert.equal(view.metrics.balancedAccuracy, result.metrics.balancedAccuracy);
    assert.equal(view.metrics.mcc, result.metrics.mcc);
    assert.equal(view.metrics.binary?.sensitivity, result.metrics.binary?.sensitivity);
    assert.equal(view.datasetHash, report.dataset.hash);
    assert.equal(view.experimentId, 'exp1');
    assert.equal(view.createdAt, metadata.createdAt);
    assert.match(view.version, /^[0-9a-f]{12}$/);
    assert.equal(view.version, versionOf(metadata));
    // Trained models carry model.onnx (listed and hashed in metadata.json), served beside the tfjs files.
    assert.deepEqual(view.files, ['model.json', ...modelJson.weightsManifest.flatMap((group) => group.paths), 'model.onnx', 'metadata.json']);
    assert.deepEqual(view.aliases, []);
  });

  it('gives the same version to the same bytes and another version to other weights or classes', async () => {
    const [one, two] = await Promise.all([registry.get('exp1-cnn'), registry.get('exp2-cnn')]);
    assert.equal(one.version, two.version, 'exp2-cnn was registered from the same files');
    const metadata = await readMetadata(store.modelDir('exp1-cnn'));
    const shard = Object.keys(metadata.files).find((name) => name.endsWith('.bin'))!;
    assert.notEqual(versionOf({ ...metadata, files: { ...metadata.files, [shard]: '0'.repeat(64) } }), one.version);
    assert.notEqual(versionOf({ ...metadata, classNames: [...metadata.classNames].reverse() }), one.version);
    assert.equal(versionOf({ ...metadata, createdAt: '2000-01-01T00:00:00Z' } as ModelMetadata), one.version);
  });

  it('answers MODEL_NOT_FOUND for unknown, unsafe and work-directory ids', async () => {
    await rejectsWith(registry.get('nope-cnn'), 'MODEL_NOT_FOUND', /no model has the id "nope-cnn"/);
    const unsafe = await rejectsWith(registry.get('../../etc/passwd'), 'MODEL_NOT_FOUND');
    assert.ok(!unsafe.message.includes('passwd'), 'an unsafe ref is not echoed');
    await mkdir(path.join(store.modelsDir, 'exp1-cnn.tmp-abcdef'), { recursive: true });
    await cp(path.join(store.modelDir('exp1-cnn'), 'metadata.json'), path.join(store.modelsDir, 'exp1-cnn.tmp-abcdef', 'metadata.json'));
    await rejectsWith(registry.get('exp1-cnn.tmp-abcdef'), 'MODEL_NOT_FOUND');
    await rejectsWith(registry.get('aliases.json'), 'MODEL_NOT_FOUND');
  });

  it('lists valid models newest first and leaves out damaged directories and files', async () => {
    await mkdir(path.join(store.modelsDir, 'broken'), { recursive: true });
    await writeFile(path.join(store.modelsDir, 'broken', 'metadata.json'), '{not json');
    await writeFile(path.join(store.modelsDir, 'stray-file'), 'x');
    const views = await registry.list();
    assert.deepEqual(views.map((view) => view.id).sort(), ['exp1-cnn', 'exp2-cnn']);
    for (let i = 1; i < views.length; i++) assert.ok(views[i - 1]!.createdAt >= views[i]!.createdAt);
    await rejectsWith(registry.get('broken'), 'MODEL_CORRUPT', /metadata\.json/);
  });

  it('lists nothing when no model was ever registered', async () => {
    const empty = new ModelRegistry(new ArtifactStore(path.join(root, 'empty-data')));
    assert.deepEqual(await empty.list(), []);
    assert.deepEqual(await empty.aliases(), {});
  });
});

describe('aliases and resolve', () => {
  it('resolve() without a production model says so and how to get one', async () => {
    await rejectsWith(registry.resolve(), 'MODEL_NOT_FOUND', /alias "production".*train one first/);
  });

  it('setAlias names a model; resolve and get follow the alias; aliases.json holds { alias: modelId }', async () => {
    await registry.setAlias('production', 'exp1-cnn');
    const resolved = await registry.resolve();
    const view = await registry.get('exp1-cnn');
    assert.deepEqual(resolved, { id: 'exp1-cnn', architecture: 'cnn', version: view.version, dir: store.modelDir('exp1-cnn') });
    assert.deepEqual((await registry.get('production')).id, 'exp1-cnn');
    assert.deepEqual(view.aliases, ['production']);
    assert.deepEqual(JSON.parse(await readFile(store.aliasesFile, 'utf8')), { production: 'exp1-cnn' });
    assert.equal((await registry.resolve('exp2-cnn')).id, 'exp2-cnn', 'a model id resolves too');
  });

  it('moves an alias from one model to another', async () => {
    await registry.setAlias('staging', 'exp1-cnn');
    await registry.setAlias('staging', 'exp2-cnn');
    assert.deepEqual(await registry.aliases(), { production: 'exp1-cnn', staging: 'exp2-cnn' });
    assert.deepEqual((await registry.get('exp1-cnn')).aliases, ['production']);
    assert.deepEqual((await registry.get('exp2-cnn')).aliases, ['staging']);
  });

  it('rejects malformed aliases, aliases equal to a model id, and unknown models', async () => {
    for (const bad of ['Production', '1st', 'a'.repeat(41), 'has_underscore', '', '../x']) {
      await rejectsWith(registry.setAlias(bad, 'exp1-cnn'), 'VALIDATION_FAILED');
    }
    await rejectsWith(registry.setAlias('exp2-cnn', 'exp1-cnn'), 'VALIDATION_FAILED', /id of a model/);
    await rejectsWith(registry.setAlias('canary', 'missing-cnn'), 'MODEL_NOT_FOUND');
    await rejectsWith(registry.promoteIfUnset('canary', 'missing-cnn'), 'MODEL_NOT_FOUND');
    assert.equal((await registry.aliases()).canary, undefined);
  });

  it('loses no update when many processes-worth of registries set different aliases at once', async () => {
    const names = Array.from({ length: 10 }, (_, i) => `bulk-${i}`);
    await Promise.all(names.map((alias, i) => new ModelRegistry(store).setAlias(alias, i % 2 === 0 ? 'exp1-cnn' : 'exp2-cnn')));
    const aliases = await registry.aliases();
    for (const [i, alias] of names.entries()) assert.equal(aliases[alias], i % 2 === 0 ? 'exp1-cnn' : 'exp2-cnn');
    assert.equal(aliases.production, 'exp1-cnn');
  });

  it('promoteIfUnset leaves a set alias alone', async () => {
    assert.equal(await registry.promoteIfUnset('production', 'exp2-cnn'), false);
    assert.equal((await registry.aliases()).production, 'exp1-cnn');
  });

  it('promoteIfUnset: of 12 concurrent calls from separate registries exactly one wins', async () => {
    const calls = Array.from({ length: 12 }, (_, i) => ({ id: i % 2 === 0 ? 'exp1-cnn' : 'exp2-cnn', registry: new ModelRegistry(store) }));
    const outcomes = await Promise.all(calls.map((call) => call.registry.promoteIfUnset('winner', call.id)));
    assert.equal(outcomes.filter(Boolean).length, 1);
    assert.equal((await registry.aliases()).winner, calls[outcomes.indexOf(true)]!.id);
  });

  it('promoteIfUnset: of 4 processes finishing at the same moment exactly one wins', async () => {
    const startAt = Date.now() + 2_500;
    const child = (modelId: string) => `
      import { ArtifactStore } from './src/infra/artifact-store.ts';
      import { ModelRegistry } from './src/services/models/index.ts';
      const registry = new ModelRegistry(new ArtifactStore(${JSON.stringify(store.root)}));
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, ${startAt} - Date.now())));
      console.log(JSON.stringify(await registry.promoteIfUnset('race', ${JSON.stringify(modelId)})));
    `;
    const ids = ['exp1-cnn', 'exp2-cnn', 'exp1-cnn', 'exp2-cnn'];
    const outputs = await Promise.all(ids.map((id) => run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child(id)], { cwd: repoRoot })));
    const outcomes = outputs.map(({ stdout }) => JSON.parse(stdout.trim()) as boolean);
    assert.equal(outcomes.filter(Boolean).length, 1, `outcomes ${JSON.stringify(outcomes)}`);
    assert.equal((await registry.aliases()).race, ids[outcomes.indexOf(true)]);
  });

  it('treats an alias naming a deleted model as unset', async () => {
    await registry.setAlias('old', 'exp2-cnn');
    const aliases = JSON.parse(await readFile(store.aliasesFile, 'utf8')) as Record<string, string>;
    await writeFile(store.aliasesFile, JSON.stringify({ ...aliases, old: 'gone-cnn' }));
    await rejectsWith(registry.resolve('old'), 'MODEL_NOT_FOUND', /"old" names model "gone-cnn", which no longer exists/);
    assert.equal(await registry.promoteIfUnset('old', 'exp1-cnn'), true);
    assert.equal((await registry.resolve('old')).id, 'exp1-cnn');
  });
});

describe('filePath', () => {
  it('returns the absolute path of model.json, each weight shard and metadata.json, by id or alias', async () => {
    const view = await registry.get('exp1-cnn');
    for (const file of view.files) {
      const full = await registry.filePath('exp1-cnn', file);
      assert.equal(full, path.join(store.modelDir('exp1-cnn'), file));
      assert.ok((await stat(full)).isFile());
      assert.equal(await registry.filePath('production', file), full);
    }
  });

  it('answers MODEL_FILE_NOT_FOUND for anything else, without repeating the requested name', async () => {
    for (const file of ['registry.json', '../aliases.json', '..', '.', '', 'model.json/../metadata.json', '%2e%2e', 'group1-shard9of9.bin', 'MODEL.JSON']) {
      const error = await rejectsWith(registry.filePath('exp1-cnn', file), 'MODEL_FILE_NOT_FOUND');
      if (file.length > 2) assert.ok(!error.message.includes(file), `detail repeats ${file}`);
    }
    await rejectsWith(registry.filePath('missing-cnn', 'model.json'), 'MODEL_NOT_FOUND');
  });
});

describe('verify', () => {
  it('passes for intact files and names the damaged file with MODEL_CORRUPT', async () => {
    assert.equal((await registry.verify('production')).id, 'exp1-cnn');
    const dir = await copyExperiment('exp3');
    assert.deepEqual(await registry.registerFromExperiment('exp3', report, dir), ['exp3-cnn']);
    const modelDir = store.modelDir('exp3-cnn');
    const metadata = await readMetadata(modelDir);
    const shard = Object.keys(metadata.files).find((name) => name.endsWith('.bin'))!;
    const bytes = await readFile(path.join(modelDir, shard));
    bytes[0] = bytes[0]! ^ 0x01;
    await writeFile(path.join(modelDir, shard), bytes);
    const error = await rejectsWith(registry.verify('exp3-cnn'), 'MODEL_CORRUPT', new RegExp(`model "exp3-cnn": ${shard.replace(/\./g, '\\.')} has sha256`));
    assert.ok(!error.message.includes(root), 'the detail names no absolute path');
    await rm(path.join(modelDir, shard));
    await rejectsWith(registry.verify('exp3-cnn'), 'MODEL_CORRUPT', /is missing/);
    await rejectsWith(registry.filePath('exp3-cnn', shard), 'MODEL_CORRUPT', /is missing/);
    await registry.verify('exp1-cnn');
  });
});

describe('linkOrCopy', () => {
  it('copies when the target is on another file system (EXDEV)', async (t) => {
    const shm = '/dev/shm';
    const shmInfo = await stat(shm).catch(() => null);
    if (shmInfo === null || shmInfo.dev === (await stat(os.tmpdir())).dev) {
      t.skip('no second file system available');
      return;
    }
    const other = await mkdtemp(path.join(shm, 'link-or-copy-'));
    try {
      const source = path.join(root, 'link-source.bin');
      await writeFile(source, 'weights');
      assert.equal(await linkOrCopy(source, path.join(root, 'same-fs.bin')), 'link');
      assert.equal(await linkOrCopy(source, path.join(other, 'other-fs.bin')), 'copy');
      assert.equal(await readFile(path.join(other, 'other-fs.bin'), 'utf8'), 'weights');
      await assert.rejects(linkOrCopy(source, path.join(other, 'other-fs.bin')), { code: 'EEXIST' });
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });
});
