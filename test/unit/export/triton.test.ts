/**
 * The Triton model repository writer: config.pbtxt content (parsed back with the same schema), labels.txt,
 * the ONNX file ONNX Runtime loads, atomic replacement (a failed export leaves nothing), and the checks
 * on names, batching settings and class names.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { preprocessingRecord } from '../../../src/ml/data/index.ts';
import { isMlError } from '../../../src/ml/errors.ts';
import { exportModelDir } from '../../../src/ml/export/export-model-dir.ts';
import { exportToOnnx } from '../../../src/ml/export/index.ts';
import {
  parseTritonModelConfig,
  sanitiseTritonModelName,
  tritonModelConfig,
  validateTritonModelName,
  writeTritonRepository,
  type TritonModelMetadata,
} from '../../../src/ml/export/triton.ts';
import { buildModel } from '../../../src/ml/models/index.ts';
import { saveModel } from '../../../src/ml/persist/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

interface ParsedConfig {
  name: string;
  platform: string;
  backend: string;
  maxBatchSize: number;
  input: { name: string; dataType: number; dims: bigint[] }[];
  output: { name: string; dataType: number; dims: bigint[]; labelFilename: string }[];
  dynamicBatching?: { preferredBatchSize: number[]; maxQueueDelayMicroseconds: bigint };
  instanceGroup: { kind: number; count: number }[];
  parameters: Record<string, { stringValue: string }>;
}

const TYPE_FP32 = 11;
const KIND_GPU = 1;
const KIND_CPU = 2;

function parse(text: string): ParsedConfig {
  return parseTritonModelConfig(text) as unknown as ParsedConfig;
}

const TWO_CLASSES: TritonModelMetadata = {
  architecture: 'cnn',
  inputShape: [32, 32, 1],
  classNames: ['not_fractured', 'fractured'],
  positiveClasses: ['fractured'],
  preprocessing: preprocessingRecord({ height: 32, width: 32, channels: 1, mode: 'unit', resize: 'letterbox' }),
};

const TEN_CLASSES: TritonModelMetadata = {
  architecture: 'resnet50',
  inputShape: [64, 48, 3],
  // Quotes, backslashes, a tab and non-ASCII text must survive the text format and JSON both.
  classNames: ['elbow "pos"', 'elbow\\neg', 'finger\tpos', 'épaule_pos', '手_neg', 'hand_pos', 'hand_neg', 'hip_pos', 'hip_neg', 'wrist'],
  positiveClasses: ['elbow "pos"', 'finger\tpos'],
  preprocessing: preprocessingRecord({ height: 64, width: 48, channels: 3, mode: 'caffe', resize: 'crop' }),
};

async function assertInvalid(promise: Promise<unknown> | (() => unknown), pattern: RegExp): Promise<void> {
  const check = (error: unknown): boolean => {
    assert.ok(isMlError(error, 'INVALID_ARGUMENT'), `expected INVALID_ARGUMENT, got ${String(error)}`);
    assert.match((error as Error).message, pattern);
    return true;
  };
  if (typeof promise === 'function') assert.throws(promise, check);
  else await assert.rejects(promise, check);
}

describe('tritonModelConfig', () => {
  it('describes a 2-class model with the defaults (batch 32, CPU, dynamic batching)', () => {
    const text = tritonModelConfig(TWO_CLASSES, { name: 'fracture_cnn' });
    // Field names exactly as Triton's model_config.proto spells them.
    assert.match(text, /^name: "fracture_cnn"$/m);
    assert.match(text, /^platform: "onnxruntime_onnx"$/m);
    assert.match(text, /^backend: "onnxruntime"$/m);
    assert.match(text, /^max_batch_size: 32$/m);
    assert.match(text, /^\s+data_type: TYPE_FP32$/m);
    assert.match(text, /^\s+label_filename: "labels.txt"$/m);
    assert.match(text, /^\s+kind: KIND_CPU$/m);
    assert.match(text, /^dynamic_batching: \{$/m);

    const config = parse(text);
    assert.equal(config.name, 'fracture_cnn');
    assert.equal(config.maxBatchSize, 32);
    assert.deepEqual(config.input.map((i) => [i.name, i.dataType, i.dims.map(Number)]), [['input', TYPE_FP32, [32, 32, 1]]]);
    assert.deepEqual(
      config.output.map((o) => [o.name, o.dataType, o.dims.map(Number), o.labelFilename]),
      [['probabilities', TYPE_FP32, [2], 'labels.txt']],
    );
    assert.deepEqual(config.dynamicBatching?.preferredBatchSize, [16, 32]);
    assert.equal(config.dynamicBatching?.maxQueueDelayMicroseconds, 10_000n);
    assert.deepEqual(config.instanceGroup.map((g) => [g.kind, g.count]), [[KIND_CPU, 1]]);
    assert.deepEqual(JSON.parse(config.parameters['fracture_service.preprocessing']?.stringValue ?? 'null'), TWO_CLASSES.preprocessing);
    assert.deepEqual(JSON.parse(config.parameters['fracture_service.class_names']?.stringValue ?? 'null'), TWO_CLASSES.classNames);
    assert.equal(config.parameters['fracture_service.architecture']?.stringValue, 'cnn');
    assert.equal(config.parameters['fracture_service.input_layout']?.stringValue, 'NHWC');
  });

  it('describes a 10-class model on GPU with its own batching, and escapes every string', () => {
    const text = tritonModelConfig(TEN_CLASSES, {
      name: 'resnet50.v2-final',
      maxBatchSize: 8,
      preferredBatchSizes: [4, 2, 4],
      maxQueueDelayMicroseconds: 250,
      device: 'gpu',
      instanceCount: 2,
    });
    assert.match(text, /^\s+kind: KIND_GPU$/m);
    // The tab and the quotes are escaped: every line of the file is one field.
    assert.doesNotMatch(text, /\t/);
    const config = parse(text);
    assert.equal(config.name, 'resnet50.v2-final');
    assert.equal(config.maxBatchSize, 8);
    assert.deepEqual(config.input[0]?.dims.map(Number), [64, 48, 3]);
    assert.deepEqual(config.output[0]?.dims.map(Number), [10]);
    assert.deepEqual(config.dynamicBatching?.preferredBatchSize, [2, 4], 'sorted and unique');
    assert.equal(config.dynamicBatching?.maxQueueDelayMicroseconds, 250n);
    assert.deepEqual(config.instanceGroup.map((g) => [g.kind, g.count]), [[KIND_GPU, 2]]);
    assert.deepEqual(JSON.parse(config.parameters['fracture_service.class_names']?.stringValue ?? 'null'), TEN_CLASSES.classNames);
    assert.deepEqual(JSON.parse(config.parameters['fracture_service.positive_classes']?.stringValue ?? 'null'), TEN_CLASSES.positiveClasses);
    assert.deepEqual(JSON.parse(config.parameters['fracture_service.preprocessing']?.stringValue ?? 'null'), TEN_CLASSES.preprocessing);
  });

  it('gives a batch size of at most 16 one preferred size, and [] leaves the choice to Triton', () => {
    assert.deepEqual(parse(tritonModelConfig(TWO_CLASSES, { name: 'm', maxBatchSize: 8 })).dynamicBatching?.preferredBatchSize, [8]);
    assert.deepEqual(parse(tritonModelConfig(TWO_CLASSES, { name: 'm', preferredBatchSizes: [] })).dynamicBatching?.preferredBatchSize, []);
  });

  it('refuses bad batching settings and class names that cannot be lines of labels.txt', async () => {
    await assertInvalid(() => tritonModelConfig(TWO_CLASSES, { name: 'm', maxBatchSize: 0 }), /maxBatchSize/);
    await assertInvalid(() => tritonModelConfig(TWO_CLASSES, { name: 'm', maxBatchSize: 2.5 }), /maxBatchSize/);
    await assertInvalid(() => tritonModelConfig(TWO_CLASSES, { name: 'm', preferredBatchSizes: [64] }), /\[1, 32\]/);
    await assertInvalid(() => tritonModelConfig(TWO_CLASSES, { name: 'm', maxQueueDelayMicroseconds: -1 }), /maxQueueDelay/);
    await assertInvalid(() => tritonModelConfig(TWO_CLASSES, { name: 'm', instanceCount: 0 }), /instanceCount/);
    await assertInvalid(() => tritonModelConfig({ ...TWO_CLASSES, classNames: ['a', 'b\nc'] }, { name: 'm' }), /line break/);
    await assertInvalid(() => tritonModelConfig({ ...TWO_CLASSES, classNames: ['a', ' '] }, { name: 'm' }), /empty/);
  });
});

describe('Triton model names', () => {
  it('accepts safe names and refuses the rest', async () => {
    for (const good of ['m', 'fracture_cnn', 'ResNet50.v2-final', '0model', 'x'.repeat(128)]) assert.equal(validateTritonModelName(good), good);
    for (const bad of ['', '.hidden', '-dash', '_under', 'a/b', '../up', 'a..b', 'a b', 'naïve', 'x'.repeat(129), 'a\\b']) {
      await assertInvalid(() => validateTritonModelName(bad), /Invalid Triton model name/);
    }
  });

  it('sanitises any text into a valid name', () => {
    assert.equal(sanitiseTritonModelName('My Model (v2)'), 'My_Model_v2_');
    assert.equal(sanitiseTritonModelName('..'), 'model');
    assert.equal(sanitiseTritonModelName('...a..b'), 'a.b');
    assert.equal(sanitiseTritonModelName('x'.repeat(300)).length, 128);
    for (const text of ['2026-12-04T10:00 resnet50', '__init__', 'é', '.tmp', 'a/b/c']) {
      assert.doesNotThrow(() => validateTritonModelName(sanitiseTritonModelName(text)), text);
    }
  });
});

describe('writeTritonRepository', () => {
  let root: string;
  let model: tf.LayersModel;
  let onnx: Uint8Array;
  let savedDir: string;

  before(async () => {
    await useTestBackend();
    root = await mkdtemp(path.join(os.tmpdir(), 'triton-test-'));
    model = buildModel({ architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2, includeTop: false, seed: 7 });
    onnx = exportToOnnx(model, { architecture: 'cnn', classNames: TWO_CLASSES.classNames, positiveClasses: ['fractured'], preprocessing: TWO_CLASSES.preprocessing ?? {} });
    savedDir = path.join(root, 'models', 'cnn-run-1');
    await saveModel(model, savedDir, {
      architecture: 'cnn',
      classNames: TWO_CLASSES.classNames,
      positiveClasses: ['fractured'],
      inputShape: [32, 32, 1],
      preprocessing: TWO_CLASSES.preprocessing ?? {},
    });
  });
  after(async () => {
    model.dispose();
    await rm(root, { recursive: true, force: true });
  });

  it('writes config.pbtxt, labels.txt and 1/model.onnx from ONNX bytes, and ONNX Runtime runs the file', async () => {
    const repo = path.join(root, 'repo-bytes');
    const info = await writeTritonRepository({ onnx, metadata: TWO_CLASSES, repoDir: repo, name: 'fracture' });
    assert.deepEqual(await readdir(repo), ['fracture']);
    assert.deepEqual((await readdir(path.join(repo, 'fracture'))).sort(), ['1', 'config.pbtxt', 'labels.txt']);
    assert.deepEqual(await readdir(path.join(repo, 'fracture', '1')), ['model.onnx']);
    assert.equal(info.onnxFile, path.join(repo, 'fracture', '1', 'model.onnx'));
    assert.equal(info.onnxBytes, onnx.byteLength);
    assert.deepEqual(info.input, { name: 'input', dims: [32, 32, 1] });
    assert.deepEqual(info.output, { name: 'probabilities', dims: [2] });

    assert.deepEqual(new Uint8Array(await readFile(info.onnxFile)), onnx);
    assert.equal(await readFile(info.labelsFile, 'utf8'), 'not_fractured\nfractured\n');
    const configText = await readFile(info.configFile, 'utf8');
    assert.equal(configText, info.config);
    assert.equal(parse(configText).name, 'fracture');

    const session = await ort.InferenceSession.create(info.onnxFile);
    try {
      assert.deepEqual(session.inputNames, ['input']);
      assert.deepEqual(session.outputNames, ['probabilities']);
      const batch = 3;
      const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(batch * 32 * 32).fill(0.5), [batch, 32, 32, 1]) });
      const probs = out.probabilities?.data as Float32Array;
      assert.equal(probs.length, batch * 2);
      assert.ok(Math.abs((probs[0] ?? 0) + (probs[1] ?? 0) - 1) < 1e-5, 'softmax rows sum to 1');
    } finally {
      await session.release();
    }
  });

  it('exports a saved model directory, disposing its tensors, and replaces an earlier version', async () => {
    const repo = path.join(root, 'repo-dir');
    await writeTritonRepository({ onnx, metadata: { ...TWO_CLASSES, classNames: ['old_a', 'old_b'] }, repoDir: repo, name: 'cnn' });
    const tensors = tf.memory().numTensors;
    const info = await writeTritonRepository({ modelDir: savedDir, repoDir: repo, name: 'cnn', maxBatchSize: 4 });
    assert.equal(tf.memory().numTensors, tensors, 'the loaded model is disposed');
    assert.deepEqual(await readdir(repo), ['cnn'], 'no staging or old copies left');
    assert.equal(await readFile(info.labelsFile, 'utf8'), 'not_fractured\nfractured\n');
    assert.equal(parse(await readFile(info.configFile, 'utf8')).maxBatchSize, 4);
    // Same weights, same exporter: the same bytes as exporting the directory directly.
    const direct = await exportModelDir(savedDir);
    assert.deepEqual(new Uint8Array(await readFile(info.onnxFile)), direct.onnx);
  });

  it('leaves no folder when the export fails, and keeps the previous version intact', async () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const dense = tf.layers.dense({ units: 4 }).apply(flat) as tf.SymbolicTensor;
    const normed = tf.layers.layerNormalization().apply(dense) as tf.SymbolicTensor;
    const output = tf.layers.dense({ units: 2, activation: 'softmax' }).apply(normed) as tf.SymbolicTensor;
    const unsupported = tf.model({ inputs: input, outputs: output });
    const unsupportedDir = path.join(root, 'models', 'layernorm');
    await saveModel(unsupported, unsupportedDir, { architecture: 'custom', classNames: ['a', 'b'], positiveClasses: [], inputShape: [8, 8, 1], preprocessing: {} });
    unsupported.dispose();

    const repo = path.join(root, 'repo-atomic');
    await mkdir(repo);
    const tensors = tf.memory().numTensors;
    await assert.rejects(writeTritonRepository({ modelDir: unsupportedDir, repoDir: repo, name: 'broken' }), (error: unknown) => {
      assert.ok(isMlError(error, 'EXPORT_UNSUPPORTED'), String(error));
      assert.match((error as Error).message, /LayerNormalization/);
      return true;
    });
    assert.deepEqual(await readdir(repo), [], 'nothing at REPO/broken, no staging folder');
    assert.equal(tf.memory().numTensors, tensors, 'the model is disposed after a failed export');
    const fresh = path.join(root, 'repo-never-made');
    await assert.rejects(writeTritonRepository({ modelDir: unsupportedDir, repoDir: fresh, name: 'broken' }), (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED'));
    await assert.rejects(readdir(fresh), { code: 'ENOENT' }, 'a repository folder made for the failed export is removed');

    const good = await writeTritonRepository({ onnx, metadata: TWO_CLASSES, repoDir: repo, name: 'kept' });
    const before = await readFile(good.configFile, 'utf8');
    await assert.rejects(writeTritonRepository({ modelDir: unsupportedDir, repoDir: repo, name: 'kept' }), (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED'));
    assert.deepEqual(await readdir(repo), ['kept']);
    assert.equal(await readFile(good.configFile, 'utf8'), before);
    assert.deepEqual(new Uint8Array(await readFile(good.onnxFile)), onnx);
  });

  it('refuses a REPO/<name> that would replace or sit in the model directory', async () => {
    const models = path.dirname(savedDir);
    for (const [repoDir, name] of [[models, path.basename(savedDir)], [root, 'models'], [savedDir, 'inside']] as const) {
      await assertInvalid(writeTritonRepository({ modelDir: savedDir, repoDir, name }), /would replace or sit inside the model directory/);
    }
    assert.ok((await readdir(savedDir)).includes('metadata.json'), 'the model directory is untouched');
  });

  it('refuses bad names and ONNX bytes that do not match the metadata, writing nothing', async () => {
    const repo = path.join(root, 'repo-refused');
    await mkdir(repo);
    for (const name of ['../escape', 'a/b', '.', '..', '']) {
      await assertInvalid(writeTritonRepository({ onnx, metadata: TWO_CLASSES, repoDir: repo, name }), /Invalid Triton model name/);
    }
    await assertInvalid(
      writeTritonRepository({ onnx, metadata: { ...TWO_CLASSES, classNames: ['a', 'b', 'c'] }, repoDir: repo, name: 'm' }),
      /"probabilities" is \[null,2\]; expected \[batch, 3\]/,
    );
    await assertInvalid(writeTritonRepository({ onnx, metadata: { ...TWO_CLASSES, inputShape: [64, 64, 1] }, repoDir: repo, name: 'm' }), /"input"/);
    await assertInvalid(writeTritonRepository({ onnx: new Uint8Array([1, 2, 3, 255]), metadata: TWO_CLASSES, repoDir: repo, name: 'm' }), /not an ONNX/);
    assert.deepEqual(await readdir(repo), []);
    assert.deepEqual(await readdir(root).then((names) => names.filter((n) => n.startsWith('..') || n === 'escape')), []);
  });

  it('writes config text that a file with extra comments still parses to', async () => {
    // Operators edit config.pbtxt by hand; comments and the list syntax of Triton's docs must parse.
    const file = path.join(root, 'edited.pbtxt');
    const text = `${tritonModelConfig(TWO_CLASSES, { name: 'm' })}# tuned by ops\ninstance_group [ { kind: KIND_CPU count: 4 } ]\n`;
    await writeFile(file, text);
    const config = parse(await readFile(file, 'utf8'));
    assert.deepEqual(config.instanceGroup.map((g) => g.count), [1, 4]);
  });
});
