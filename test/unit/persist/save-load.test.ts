import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { loadModel, saveModel, type ModelMetadataInput } from '../../../src/ml/persist/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

let root: string;
let dirCounter = 0;
const freshDir = (): string => path.join(root, `model-${++dirCounter}`);

before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'persist-test-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function metadataFor(model: tf.LayersModel, overrides: Partial<ModelMetadataInput> = {}): ModelMetadataInput {
  const [, h, w, c] = model.inputs[0]!.shape as number[];
  const units = model.outputs[0]!.shape.at(-1) as number;
  const classNames = Array.from({ length: units }, (_, i) => (i === 0 ? 'normal' : `class_${i}_fractured`));
  return {
    architecture: 'cnn',
    classNames,
    positiveClasses: classNames.slice(1),
    inputShape: [h!, w!, c!],
    preprocessing: { mode: 'unit', fit: 'letterbox', size: [h, w] },
    ...overrides,
  };
}

/** conv-relu-pool-flatten-dense: the smallest model with every weight kind a CNN has. */
function convModel(seed: number, inputShape: [number, number, number] = [8, 8, 1]): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape, filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 1 }), name: 'conv' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }), name: 'predictions' }),
    ],
  });
}

/** conv-BN-relu-GAP-dense with non-trivial BN statistics, so a lost moving mean/variance shows. */
function bnModel(seed: number): tf.LayersModel {
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [8, 8, 2], filters: 5, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: tf.initializers.glorotUniform({ seed }), name: 'block1_conv' }),
      tf.layers.batchNormalization({ name: 'block1_bn' }),
      tf.layers.activation({ activation: 'relu', name: 'block1_relu' }),
      tf.layers.globalAveragePooling2d({}),
      tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), name: 'predictions' }),
    ],
  });
  const bn = model.getLayer('block1_bn');
  const values = tf.tidy(() =>
    bn.getWeights().map((w, i) => tf.randomUniform(w.shape, i === 3 ? 0.5 : -1, i === 3 ? 2 : 1, 'float32', seed + 10 + i)),
  );
  bn.setWeights(values);
  tf.dispose(values);
  return model;
}

function randomBatch(model: tf.LayersModel, n: number, seed: number): tf.Tensor {
  const shape = model.inputs[0]!.shape.slice(1) as number[];
  return tf.randomUniform([n, ...shape], 0, 1, 'float32', seed);
}

async function predictArray(model: tf.LayersModel, x: tf.Tensor): Promise<number[][]> {
  const y = model.predict(x) as tf.Tensor;
  const values = (await y.array()) as number[][];
  y.dispose();
  return values;
}

function assertClose(actual: number[][], expected: number[][], tolerance: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.equal(a.length, e.length);
    for (let j = 0; j < e.length; j++) {
      assert.ok(Math.abs(a[j]! - e[j]!) <= tolerance, `row ${i} col ${j}: ${a[j]} vs ${e[j]}`);
    }
  }
}

/** Saves, reloads and compares predictions on random inputs; returns the loaded metadata. */
async function roundTrip(model: tf.LayersModel, dir: string, metadata = metadataFor(model)) {
  const x = randomBatch(model, 4, 7);
  const expected = await predictArray(model, x);
  const info = await saveModel(model, dir, metadata);
  const loaded = await loadModel(dir);
  const actual = await predictArray(loaded.model, x);
  x.dispose();
  loaded.model.dispose();
  assertClose(actual, expected, 1e-6);
  return { info, loaded };
}

async function assertRejectsWithCode(promise: Promise<unknown>, code: string, messagePart?: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isMlError(error), `expected MlError, got ${String(error)}`);
    assert.equal(error.code, code);
    if (messagePart !== undefined) assert.match(error.message, new RegExp(messagePart.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
    return true;
  });
}

describe('saveModel / loadModel', () => {
  it('reloads a conv model that predicts the same probabilities to 1e-6 and leaks no tensors', async () => {
    const before = tf.memory().numTensors;
    const model = convModel(1);
    const { info } = await roundTrip(model, freshDir());
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
    assert.equal(info.shardCount, 1);
    assert.deepEqual(Object.keys(info.metadata.files).sort(), ['group1-shard1of1.bin', 'model.json']);
  });

  it('reloads a batch-normalised model with its moving statistics', async () => {
    const before = tf.memory().numTensors;
    const model = bnModel(3);
    const dir = freshDir();
    await roundTrip(model, dir);
    // The BN statistics are non-default, so a reload that dropped them would differ by far more than 1e-6.
    const loaded = await loadModel(dir);
    const original = model.getLayer('block1_bn').getWeights();
    const reloaded = loaded.model.getLayer('block1_bn').getWeights();
    assert.equal(reloaded.length, 4);
    for (let i = 0; i < original.length; i++) {
      assert.deepEqual(await reloaded[i]!.data(), await original[i]!.data());
    }
    loaded.model.dispose();
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('writes the tfjs layers format: model.json with topology and a manifest naming the shards', async () => {
    const model = convModel(5);
    const dir = freshDir();
    const info = await saveModel(model, dir, metadataFor(model));
    model.dispose();
    const json = JSON.parse(await readFile(path.join(dir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    assert.equal(json.format, 'layers-model');
    assert.match(json.generatedBy ?? '', /TensorFlow\.js tfjs-layers/);
    assert.equal((json.modelTopology as { class_name?: string }).class_name, 'Sequential');
    assert.equal(json.weightsManifest.length, 1);
    assert.deepEqual(json.weightsManifest[0]!.paths, ['group1-shard1of1.bin']);
    assert.deepEqual(
      json.weightsManifest[0]!.weights.map((w) => w.name),
      ['conv/kernel', 'conv/bias', 'predictions/kernel', 'predictions/bias'],
    );
    const shard = await stat(path.join(dir, 'group1-shard1of1.bin'));
    // 4*(3*3*1*4 + 4 + 36*3 + 3) bytes of float32.
    assert.equal(shard.size, 4 * (36 + 4 + 108 + 3));
    assert.equal(info.weightBytes, shard.size);
    assert.deepEqual((await readdir(dir)).sort(), ['group1-shard1of1.bin', 'metadata.json', 'model.json']);
  });

  it('round-trips every metadata field and records versions, backend and file hashes', async () => {
    const model = convModel(7);
    const dir = freshDir();
    const metadata = metadataFor(model, {
      architecture: 'vgg16',
      metrics: { accuracy: 0.93, perClass: [{ f1: 0.5 }] },
      datasetHash: 'sha256:abc',
      seed: 1234,
      createdAt: '2025-01-02T03:04:05.000Z',
      versions: { sharp: '0.35.6' },
    });
    const info = await saveModel(model, dir, metadata);
    model.dispose();
    const loaded = await loadModel(dir);
    loaded.model.dispose();
    assert.deepEqual(loaded.metadata, info.metadata);
    const onDisk = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as Record<string, unknown>;
    assert.deepEqual(onDisk, info.metadata);
    const m = loaded.metadata;
    assert.equal(m.schemaVersion, 1);
    assert.equal(m.architecture, 'vgg16');
    assert.deepEqual(m.classNames, metadata.classNames);
    assert.deepEqual(m.positiveClasses, metadata.positiveClasses);
    assert.deepEqual(m.inputShape, [8, 8, 1]);
    assert.deepEqual(m.preprocessing, metadata.preprocessing);
    assert.deepEqual(m.metrics, metadata.metrics);
    assert.equal(m.datasetHash, 'sha256:abc');
    assert.equal(m.seed, 1234);
    assert.equal(m.createdAt, '2025-01-02T03:04:05.000Z');
    assert.equal(m.versions.tfjs, tf.version.tfjs);
    assert.equal(m.versions.node, process.versions.node);
    assert.equal(m.versions.sharp, '0.35.6');
    assert.equal(m.backend, tf.getBackend());
    for (const [name, hash] of Object.entries(m.files)) {
      const bytes = await readFile(path.join(dir, name));
      const { createHash } = await import('node:crypto');
      assert.equal(createHash('sha256').update(bytes).digest('hex'), hash, name);
    }
  });

  it('omits optional metadata fields that were not given', async () => {
    const model = convModel(8);
    const info = await saveModel(model, freshDir(), metadataFor(model));
    model.dispose();
    assert.equal('metrics' in info.metadata, false);
    assert.equal('datasetHash' in info.metadata, false);
    assert.equal('seed' in info.metadata, false);
    assert.ok(!Number.isNaN(Date.parse(info.metadata.createdAt)));
  });

  it('rejects a tampered weight shard with MODEL_CORRUPT naming the file', async () => {
    const model = convModel(9);
    const dir = freshDir();
    await saveModel(model, dir, metadataFor(model));
    model.dispose();
    const shardPath = path.join(dir, 'group1-shard1of1.bin');
    const bytes = await readFile(shardPath);
    bytes[10] = bytes[10]! ^ 0x01;
    await writeFile(shardPath, bytes);
    const before = tf.memory().numTensors;
    await assertRejectsWithCode(loadModel(dir), 'MODEL_CORRUPT', 'group1-shard1of1.bin');
    assert.equal(tf.memory().numTensors, before);
    // Without verification the flipped bit goes unnoticed: that is what the hashes are for.
    const unverified = await loadModel(dir, { verify: false });
    unverified.model.dispose();
  });

  it('rejects a tampered model.json and a missing shard with MODEL_CORRUPT', async () => {
    const model = convModel(10);
    const dir = freshDir();
    await saveModel(model, dir, metadataFor(model));
    model.dispose();
    const jsonPath = path.join(dir, 'model.json');
    await writeFile(jsonPath, (await readFile(jsonPath, 'utf8')).replace('"relu"', '"tanh"'));
    await assertRejectsWithCode(loadModel(dir), 'MODEL_CORRUPT', 'model.json');
    await rm(path.join(dir, 'group1-shard1of1.bin'));
    await assertRejectsWithCode(loadModel(dir, { verify: false }), 'MODEL_CORRUPT', 'group1-shard1of1.bin is missing');
  });

  it('rejects metadata.json of an unknown schema version or with missing fields', async () => {
    const model = convModel(11);
    const dir = freshDir();
    await saveModel(model, dir, metadataFor(model));
    model.dispose();
    const metaPath = path.join(dir, 'metadata.json');
    const original = JSON.parse(await readFile(metaPath, 'utf8')) as Record<string, unknown>;
    await writeFile(metaPath, JSON.stringify({ ...original, schemaVersion: 2 }));
    await assertRejectsWithCode(loadModel(dir), 'MODEL_CORRUPT', 'schemaVersion');
    const { classNames: _dropped, ...withoutClasses } = original;
    await writeFile(metaPath, JSON.stringify(withoutClasses));
    await assertRejectsWithCode(loadModel(dir), 'MODEL_CORRUPT', 'classNames');
    await writeFile(metaPath, '{ not json');
    await assertRejectsWithCode(loadModel(dir), 'MODEL_CORRUPT', 'not valid JSON');
  });

  it('refuses weight paths that leave the model directory', async () => {
    const model = convModel(12);
    const dir = freshDir();
    await saveModel(model, dir, metadataFor(model));
    model.dispose();
    const jsonPath = path.join(dir, 'model.json');
    await writeFile(jsonPath, (await readFile(jsonPath, 'utf8')).replace('"group1-shard1of1.bin"', '"../secret.bin"'));
    await assertRejectsWithCode(loadModel(dir, { verify: false }), 'MODEL_CORRUPT', '../secret.bin');
  });

  it('reports MODEL_NOT_FOUND for a directory that does not exist', async () => {
    await assertRejectsWithCode(loadModel(path.join(root, 'no-such-model')), 'MODEL_NOT_FOUND');
  });

  it('refuses metadata that does not fit the model and writes nothing', async () => {
    const model = convModel(13);
    const dir = freshDir();
    await assertRejectsWithCode(saveModel(model, dir, metadataFor(model, { inputShape: [9, 8, 1] })), 'INPUT_SHAPE_INVALID');
    await assertRejectsWithCode(saveModel(model, dir, metadataFor(model, { classNames: ['a', 'b'], positiveClasses: [] })), 'INVALID_ARGUMENT', '2 names');
    await assertRejectsWithCode(saveModel(model, dir, metadataFor(model, { positiveClasses: ['elbow_fractured'] })), 'INVALID_ARGUMENT', 'elbow_fractured');
    model.dispose();
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });

  it('replaces an existing model atomically and leaves no temp or old directories', async () => {
    const dir = freshDir();
    const first = convModel(20);
    await saveModel(first, dir, metadataFor(first, { seed: 1 }));
    first.dispose();
    const second = convModel(21);
    await roundTrip(second, dir, metadataFor(second, { seed: 2 }));
    second.dispose();
    const loaded = await loadModel(dir);
    loaded.model.dispose();
    assert.equal(loaded.metadata.seed, 2);
    const siblings = (await readdir(root)).filter((name) => name.startsWith(`${path.basename(dir)}.`));
    assert.deepEqual(siblings, []);
  });

  it('keeps the old model intact and removes the temp dir when a save fails midway', async () => {
    const dir = freshDir();
    const original = convModel(30);
    const x = randomBatch(original, 3, 31);
    const expected = await predictArray(original, x);
    await saveModel(original, dir, metadataFor(original, { seed: 1 }));
    original.dispose();

    // The fault fires while metadata.json is serialised, after the shards and model.json are in the
    // temp directory: the latest point a save can fail before the swap.
    const replacement = convModel(32);
    const poisoned = metadataFor(replacement, {
      seed: 2,
      preprocessing: { mode: 'unit', toJSON: () => { throw new Error('injected fault'); } },
    });
    await assert.rejects(saveModel(replacement, dir, poisoned), /injected fault/);
    replacement.dispose();

    const siblings = (await readdir(root)).filter((name) => name.startsWith(`${path.basename(dir)}.`));
    assert.deepEqual(siblings, [], 'no temp directory left behind');
    const loaded = await loadModel(dir);
    assert.equal(loaded.metadata.seed, 1);
    assertClose(await predictArray(loaded.model, x), expected, 1e-6);
    loaded.model.dispose();
    x.dispose();
  });

  it('loads the intact previous copy when a save crashed between its two renames, and the next save cleans it', async () => {
    const dir = freshDir();
    const model = convModel(40);
    await saveModel(model, dir, metadataFor(model, { seed: 40 }));
    // Crash state: the old model renamed aside, the new one not yet renamed in.
    const aside = `${dir}.old-deadbeef0001`;
    await rename(dir, aside);
    const recovered = await loadModel(dir);
    recovered.model.dispose();
    assert.equal(recovered.metadata.seed, 40);
    assert.equal(recovered.dir, aside);

    await saveModel(model, dir, metadataFor(model, { seed: 41 }));
    model.dispose();
    const after = await loadModel(dir);
    after.model.dispose();
    assert.equal(after.metadata.seed, 41);
    const siblings = (await readdir(root)).filter((name) => name.startsWith(`${path.basename(dir)}.`));
    assert.deepEqual(siblings, []);
  });

  it('splits weights over 4 MiB into several shards and reloads them identically', async () => {
    const before = tf.memory().numTensors;
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [4, 4, 1], filters: 2, kernelSize: 1, name: 'conv' }),
        tf.layers.flatten(),
        tf.layers.dense({ units: 1100, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 50 }), name: 'wide' }),
        tf.layers.dense({ units: 1000, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 51 }), name: 'predictions' }),
      ],
    });
    const dir = freshDir();
    const { info } = await roundTrip(model, dir, metadataFor(model));
    // 4 bytes * (1*2+2 + 32*1100+1100 + 1100*1000+1000) = 4,549,616 bytes: one full 4 MiB shard and a rest.
    const expectedBytes = 4 * (2 + 2 + 32 * 1100 + 1100 + 1100 * 1000 + 1000);
    assert.equal(info.weightBytes, expectedBytes);
    assert.equal(info.shardCount, 2);
    const first = await stat(path.join(dir, 'group1-shard1of2.bin'));
    const second = await stat(path.join(dir, 'group1-shard2of2.bin'));
    assert.equal(first.size, 4 * 1024 * 1024);
    assert.equal(second.size, expectedBytes - 4 * 1024 * 1024);

    const loaded = await loadModel(dir);
    const originalWeights = model.getWeights();
    const reloadedWeights = loaded.model.getWeights();
    assert.equal(reloadedWeights.length, originalWeights.length);
    for (let i = 0; i < originalWeights.length; i++) {
      assert.deepEqual(await reloadedWeights[i]!.data(), await originalWeights[i]!.data(), `weight ${i}`);
    }
    loaded.model.dispose();
    model.dispose();
    assert.equal(tf.memory().numTensors, before);
  });

  it('is loadable by tf.loadLayersModel from an HTTP URL, as a browser would', async () => {
    const model = bnModel(60);
    const dir = freshDir();
    await saveModel(model, dir, metadataFor(model));
    const server: Server = createServer((request, response) => {
      const name = path.basename(new URL(request.url ?? '/', 'http://localhost').pathname);
      readFile(path.join(dir, name)).then(
        (body) => response.writeHead(200, { 'content-type': name.endsWith('.json') ? 'application/json' : 'application/octet-stream' }).end(body),
        () => response.writeHead(404).end(),
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      const remote = await tf.loadLayersModel(`http://127.0.0.1:${port}/model.json`);
      const x = randomBatch(model, 2, 61);
      assertClose(await predictArray(remote, x), await predictArray(model, x), 1e-6);
      x.dispose();
      remote.dispose();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      model.dispose();
    }
  });

  it('round-trips a custom layer registered with tf.serialization.registerClass', async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [6, 6, 1], filters: 2, kernelSize: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 70 }) }),
        new ChannelScale({ name: 'scale' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 71 }) }),
      ],
    });
    model.getLayer('scale').setWeights([tf.tensor1d([3, -2])]);
    const dir = freshDir();
    await roundTrip(model, dir);
    model.dispose();
    const json = await readFile(path.join(dir, 'model.json'), 'utf8');
    assert.match(json, /"class_name":"PersistTestChannelScale"/);

    // An unregistered class name cannot be rebuilt; the error says so instead of tfjs's generic text.
    await writeFile(path.join(dir, 'model.json'), json.replace('PersistTestChannelScale', 'NeverRegisteredLayer'));
    await assertRejectsWithCode(loadModel(dir, { verify: false }), 'MODEL_CORRUPT', 'NeverRegisteredLayer is not registered');
  });

  it('saves and restores the optimizer state when asked to', async () => {
    // Dense only, so one training step runs on every backend.
    const model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: [4, 4, 1] }),
        tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 80 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy' });
    const x = randomBatch(model, 4, 81);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0], 'int32'), 3);
    await model.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0 });
    const dir = freshDir();
    const withOptimizer = await saveModel(model, dir, metadataFor(model), { includeOptimizer: true });
    const plain = await saveModel(model, freshDir(), metadataFor(model));
    assert.ok(withOptimizer.weightBytes > 2 * plain.weightBytes, 'Adam moments are saved as well');
    const loaded = await loadModel(dir);
    assert.ok(loaded.model.optimizer instanceof tf.AdamOptimizer);
    const restored = await loaded.model.optimizer.getWeights();
    const original = await model.optimizer.getWeights();
    assert.equal(restored.length, original.length);
    assert.deepEqual(await restored[1]!.tensor.data(), await original[1]!.tensor.data());
    loaded.model.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });
});

/** A per-channel multiplier: a minimal custom layer with one weight, like the project's own BN. */
class ChannelScale extends tf.layers.Layer {
  static className = 'PersistTestChannelScale';
  private scale: tf.LayerVariable | null = null;

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = inputShape as tf.Shape;
    this.scale = this.addWeight('scale', [shape.at(-1) as number], 'float32', tf.initializers.ones());
    this.built = true;
  }

  override call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0]! : inputs;
      return tf.mul(x, this.scale!.read());
    });
  }
}
tf.serialization.registerClass(ChannelScale);
