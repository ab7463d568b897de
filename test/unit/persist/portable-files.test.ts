/**
 * Saved models load with nothing but `@tensorflow/tfjs`: for each architecture, `saveModel` writes
 * files that a child process with no project code (so no custom layer registered) loads over HTTP
 * with plain `tf.loadLayersModel(url)` and predicts with as we do; our `loadModel` still rebuilds
 * the fast project layer, and models saved by the previous version (custom class names) still load.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { buildModel, FastBatchNormalization, ScalelessBatchNormalization, type Architecture } from '../../../src/ml/models/index.ts';
import {
  loadModel,
  saveModel,
  sha256,
  toPortableTopology,
  toProjectTopology,
  verifyModelFiles,
  type ModelMetadata,
} from '../../../src/ml/persist/index.ts';
import { buildMetadata } from '../../../src/ml/persist/model-metadata.ts';
import { buildModelJson, buildWeightsManifest, splitIntoShards } from '../../../src/ml/persist/weight-shards.ts';
import { useTestBackend } from '../../helpers/backend.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const run = promisify(execFile);
const TOLERANCE = 1e-4;
const CLASSES = ['normal', 'hand_fractured', 'elbow_fractured'];

let root: string;
let server: Server;
let baseUrl: string;

before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'persist-portable-'));
  // A static file server for `root`, as GET /v1/models/{id}/files/{file} will be.
  server = createServer((request, response) => {
    const file = path.join(root, decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname));
    if (!file.startsWith(`${root}${path.sep}`)) {
      response.writeHead(403).end();
      return;
    }
    stat(file).then(
      (info) => {
        response.writeHead(200, { 'content-type': file.endsWith('.json') ? 'application/json' : 'application/octet-stream', 'content-length': info.size });
        createReadStream(file).pipe(response);
      },
      () => response.writeHead(404).end(),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await rm(root, { recursive: true, force: true });
});

/** What the child process reports. */
interface ChildResult {
  registeredBefore: string[];
  layerClasses: Record<string, number>;
  bnScales: boolean[];
  probs: number[][];
}

/**
 * Loads `url` in a fresh Node process that imports only `@tensorflow/tfjs` (plain JavaScript, no tsx,
 * no project module) and predicts on the float32 batch stored in `inputFile`.
 */
async function loadInPlainTfjs(url: string, inputFile: string, shape: number[]): Promise<ChildResult> {
  const script = `
    import { readFile } from 'node:fs/promises';
    import * as tf from '@tensorflow/tfjs';
    await tf.setBackend('cpu');
    const known = tf.serialization.SerializationMap.getMap().classNameMap;
    const registeredBefore = ['FastBatchNormalization', 'ScalelessBatchNormalization'].filter((name) => known[name] !== undefined);
    const model = await tf.loadLayersModel(${JSON.stringify(url)});
    const layerClasses = {};
    for (const layer of model.layers) layerClasses[layer.getClassName()] = (layerClasses[layer.getClassName()] ?? 0) + 1;
    const bnScales = model.layers.filter((layer) => layer.getClassName() === 'BatchNormalization').map((layer) => layer.scale);
    const bytes = await readFile(${JSON.stringify(inputFile)});
    const x = tf.tensor(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4), ${JSON.stringify(shape)});
    const probs = await model.predict(x).array();
    console.log(JSON.stringify({ registeredBefore, layerClasses, bnScales, probs }));
  `;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { cwd: repoRoot, maxBuffer: 16 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as ChildResult;
}

/** Gives every BN layer seeded, non-trivial statistics, so a lost or misplaced BN weight changes predictions. */
function randomiseBatchNorm(model: tf.LayersModel, seed: number): void {
  model.layers.forEach((layer, index) => {
    if (!(layer instanceof FastBatchNormalization)) return;
    const values = tf.tidy(() =>
      layer.weights.map((weight, i) => {
        const isScaleLike = weight.name.endsWith('gamma') || weight.name.endsWith('moving_variance');
        return tf.randomUniform(weight.shape as number[], isScaleLike ? 0.6 : -0.3, isScaleLike ? 1.4 : 0.3, 'float32', seed + index * 7 + i);
      }),
    );
    layer.setWeights(values);
    tf.dispose(values);
  });
}

function assertClose(actual: number[][], expected: number[][], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, what);
  for (let i = 0; i < expected.length; i++) {
    const row = expected[i]!;
    assert.equal(actual[i]!.length, row.length, what);
    for (let j = 0; j < row.length; j++) {
      const diff = Math.abs(actual[i]![j]! - row[j]!);
      assert.ok(diff <= tolerance, `${what}: [${i}][${j}] differs by ${diff} (${actual[i]![j]} vs ${row[j]})`);
    }
  }
}

async function predictArray(model: tf.LayersModel, x: tf.Tensor): Promise<number[][]> {
  const y = model.predict(x) as tf.Tensor;
  try {
    return (await y.array()) as number[][];
  } finally {
    y.dispose();
  }
}

async function fileSha256(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

const CASES: readonly { architecture: Architecture; size: number }[] = [
  { architecture: 'cnn', size: 32 },
  { architecture: 'vgg16', size: 32 },
  { architecture: 'resnet50', size: 32 },
  { architecture: 'inceptionv3', size: 75 },
];

describe('saved model files load in plain TensorFlow.js', () => {
  for (const [caseIndex, { architecture, size }] of CASES.entries()) {
    it(`${architecture} (${size} px): a process without project code loads model.json over HTTP and predicts the same to 1e-4`, async () => {
      const tensorsBefore = tf.memory().numTensors;
      const shape = [2, size, size, 3];
      const model = buildModel({ architecture, inputShape: [size, size, 3], numClasses: CLASSES.length, seed: 11 + caseIndex });
      randomiseBatchNorm(model, 100 * caseIndex);
      const projectBn = model.layers.filter((layer) => layer instanceof FastBatchNormalization) as FastBatchNormalization[];
      // VGG16 has no BN: only inputs on its caffe pixel scale move its freshly initialised outputs apart
      // (in [-1, 1] every probability is 1/3 to 1e-3, too flat for a 1e-4 comparison to mean much).
      const range = architecture === 'vgg16' ? 100 : 1;
      const x = tf.randomUniform(shape, -range, range, 'float32', 50 + caseIndex);
      const expected = await predictArray(model, x);
      const inputFile = path.join(root, `${architecture}-input.bin`);
      const inputData = await x.data();
      await writeFile(inputFile, new Uint8Array(inputData.buffer, inputData.byteOffset, inputData.byteLength));

      const dir = path.join(root, architecture);
      const info = await saveModel(model, dir, {
        architecture,
        classNames: CLASSES,
        positiveClasses: CLASSES.slice(1),
        inputShape: [size, size, 3],
        preprocessing: { mode: 'test' },
      });
      const params = model.countParams();
      model.dispose();

      // The files name no project class, so nothing custom is needed to read them.
      const modelJsonText = await readFile(path.join(dir, 'model.json'), 'utf8');
      assert.doesNotMatch(modelJsonText, /FastBatchNormalization|ScalelessBatchNormalization/);

      const child = await loadInPlainTfjs(`${baseUrl}/${architecture}/model.json`, inputFile, shape);
      assert.deepEqual(child.registeredBefore, [], 'the child process had no project layer registered');
      assert.equal(child.layerClasses.BatchNormalization ?? 0, projectBn.length, 'every project BN layer became a stock BatchNormalization');
      assert.deepEqual(child.bnScales, projectBn.map((layer) => layer.scale), 'scale (false for InceptionV3) is kept');
      assertClose(child.probs, expected, TOLERANCE, `${architecture} in plain tfjs`);

      // Our loader maps the stock class back to the fast layer and predicts the same.
      const loaded = await loadModel(dir);
      const loadedBn = loaded.model.layers.filter((layer) => layer.getClassName() === 'BatchNormalization');
      assert.equal(loadedBn.length, 0, 'loadModel leaves no stock BatchNormalization');
      assert.equal(loaded.model.layers.filter((layer) => layer instanceof FastBatchNormalization).length, projectBn.length);
      assert.equal(loaded.model.countParams(), params);
      const ours = await predictArray(loaded.model, x);
      assertClose(ours, expected, 1e-6, `${architecture} through loadModel`);
      loaded.model.dispose();
      x.dispose();

      // metadata.json's hashes describe the files on disk, model.json (rewritten at save) included.
      const metadata = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as ModelMetadata;
      assert.deepEqual(metadata, info.metadata);
      for (const [name, hash] of Object.entries(metadata.files)) assert.equal(await fileSha256(path.join(dir, name)), hash, name);
      assert.equal(metadata.files['model.json'], sha256(modelJsonText));
      await verifyModelFiles(dir);
      assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaked');
    });
  }

  it('keeps the InceptionV3 parameter count: scale-less layers get no gamma in the weights manifest', async () => {
    const modelJson = JSON.parse(await readFile(path.join(root, 'inceptionv3', 'model.json'), 'utf8')) as tf.io.ModelJSON;
    const names = modelJson.weightsManifest.flatMap((group) => group.weights.map((weight) => weight.name));
    assert.ok(names.some((name) => name.endsWith('/moving_mean')));
    assert.equal(names.filter((name) => name.endsWith('/gamma')).length, 0);
  });
});

describe('loading files written by the previous version', () => {
  it('loads a model.json naming FastBatchNormalization and ScalelessBatchNormalization, as the fast layer', async () => {
    const tensorsBefore = tf.memory().numTensors;
    const input = tf.input({ shape: [6, 6, 2] });
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), name: 'conv' }).apply(input) as tf.SymbolicTensor;
    const bn1 = new FastBatchNormalization({ name: 'bn_fast', momentum: 0.9 }).apply(conv) as tf.SymbolicTensor;
    const bn2 = new ScalelessBatchNormalization({ name: 'bn_scaleless' }).apply(bn1) as tf.SymbolicTensor;
    const pooled = tf.layers.globalAveragePooling2d({}).apply(bn2) as tf.SymbolicTensor;
    const out = tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }), name: 'predictions' }).apply(pooled) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: out });
    randomiseBatchNorm(model, 7);
    const x = tf.randomUniform([3, 6, 6, 2], 0, 1, 'float32', 8);
    const expected = await predictArray(model, x);

    // The previous saveModel: the topology exactly as model.save produced it.
    let artifacts: tf.io.ModelArtifacts | undefined;
    await model.save(tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }));
    const shards = splitIntoShards(artifacts!.weightData!);
    const modelJsonText = JSON.stringify(buildModelJson(artifacts!, buildWeightsManifest(shards, artifacts!.weightSpecs!)));
    assert.match(modelJsonText, /"class_name":"FastBatchNormalization"/);
    assert.match(modelJsonText, /"class_name":"ScalelessBatchNormalization"/);
    const dir = path.join(root, 'legacy');
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    const files: Record<string, string> = { 'model.json': sha256(modelJsonText) };
    await writeFile(path.join(dir, 'model.json'), modelJsonText);
    for (const shard of shards) {
      await writeFile(path.join(dir, shard.name), shard.bytes);
      files[shard.name] = sha256(shard.bytes);
    }
    const metadata = buildMetadata({ architecture: 'cnn', classNames: ['a', 'b_fractured'], positiveClasses: ['b_fractured'], inputShape: [6, 6, 2], preprocessing: {} }, files);
    await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata));
    model.dispose();

    const loaded = await loadModel(dir);
    assert.ok(loaded.model.getLayer('bn_fast') instanceof FastBatchNormalization);
    assert.ok(loaded.model.getLayer('bn_scaleless') instanceof ScalelessBatchNormalization);
    assert.equal((loaded.model.getLayer('bn_fast') as FastBatchNormalization).momentum, 0.9);
    const probs = await predictArray(loaded.model, x);
    assertClose(probs, expected, 1e-6, 'legacy model');
    loaded.model.dispose();
    x.dispose();
    assert.equal(tf.memory().numTensors, tensorsBefore);
  });
});

describe('toPortableTopology / toProjectTopology', () => {
  it('round-trips the project layer config and turns a compatible stock layer into the fast one', () => {
    const model = buildModel({ architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2, seed: 1, bnMomentum: 0.8 });
    const topology = model.toJSON(null, false) as Record<string, unknown>;
    model.dispose();
    const portable = toPortableTopology(topology);
    const text = JSON.stringify(portable);
    assert.doesNotMatch(text, /FastBatchNormalization/);
    assert.match(text, /"class_name":"BatchNormalization","config":\{"axis":-1,"momentum":0.8,/);
    assert.deepEqual(toProjectTopology(portable), topology);
    assert.doesNotMatch(JSON.stringify(topology), /"class_name":"BatchNormalization"/, 'the input was not modified');
  });

  it('leaves a stock BN layer the fast one cannot reproduce (another axis, a regulariser) stock', () => {
    const layer = (config: Record<string, unknown>) => ({ class_name: 'Sequential', config: { layers: [{ class_name: 'BatchNormalization', config: { name: 'bn', ...config } }] } });
    const classOf = (topology: ReturnType<typeof layer>) => topology.config.layers[0]!.class_name;
    assert.equal(classOf(toProjectTopology(layer({ axis: 1 }))), 'BatchNormalization');
    assert.equal(classOf(toProjectTopology(layer({ axis: -1, gamma_regularizer: { class_name: 'L1L2', config: { l1: 0.1, l2: 0 } } }))), 'BatchNormalization');
    assert.equal(classOf(toProjectTopology(layer({ axis: -1, beta_constraint: { class_name: 'NonNeg', config: {} } }))), 'BatchNormalization');
    assert.equal(classOf(toProjectTopology(layer({ axis: -1, gamma_regularizer: null }))), 'FastBatchNormalization');
    assert.equal(classOf(toProjectTopology(layer({}))), 'FastBatchNormalization');
  });
});
