/**
 * The ONNX file itself: what it declares (opset, names, symbolic batch, metadata), what it refuses,
 * the `same`-padding arithmetic, and `saveModel({ onnx: true })` writing it atomically and hashed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { fromBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema } from 'onnx-buf';
import * as ort from 'onnxruntime-node';
import { isMlError } from '../../../src/ml/errors.ts';
import { exportToOnnx, ONNX_MODEL_FILE, ONNX_OPSET } from '../../../src/ml/export/index.ts';
import { paddingFor } from '../../../src/ml/export/layer-converters.ts';
import { buildModel } from '../../../src/ml/models/index.ts';
import { saveModel, verifyModelFiles } from '../../../src/ml/persist/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

const INFO = {
  architecture: 'cnn',
  classNames: ['normal', 'fractured', 'unsure'],
  positiveClasses: ['fractured'],
  preprocessing: { version: 1, input: { height: 32, width: 40, channels: 1 }, normalisation: { mode: 'unit' } },
};

let tmp: string;
before(async () => {
  await useTestBackend();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'onnx-export-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function tinyCnn(): tf.LayersModel {
  return buildModel({ architecture: 'cnn', inputShape: [32, 40, 1], numClasses: 3, seed: 1, cnnFilters: [4, 8] });
}

describe('exportToOnnx', () => {
  test('declares opset 17, input [batch, H, W, C], output [batch, classes] and the preprocessing in its metadata', () => {
    const model = tinyCnn();
    const proto = fromBinary(ModelProtoSchema, exportToOnnx(model, INFO));
    model.dispose();
    assert.equal(proto.opsetImport[0]?.version, BigInt(ONNX_OPSET));
    assert.equal(proto.producerName, 'fracture-service');
    const dims = (name: 'input' | 'output'): (string | number)[] => {
      const value = proto.graph?.[name][0];
      const type = value?.type?.value;
      assert.equal(type?.case, 'tensorType');
      return type.value.shape!.dim.map((d) => (d.value.case === 'dimParam' ? d.value.value : Number(d.value.value)));
    };
    assert.equal(proto.graph?.input[0]?.name, 'input');
    assert.deepEqual(dims('input'), ['batch', 32, 40, 1]);
    assert.equal(proto.graph?.output[0]?.name, 'probabilities');
    assert.deepEqual(dims('output'), ['batch', 3]);
    const metadata = Object.fromEntries(proto.metadataProps.map((entry) => [entry.key, entry.value]));
    assert.deepEqual(JSON.parse(metadata['fracture_service.class_names']!), INFO.classNames);
    assert.deepEqual(JSON.parse(metadata['fracture_service.positive_classes']!), ['fractured']);
    assert.deepEqual(JSON.parse(metadata['fracture_service.preprocessing']!), INFO.preprocessing);
    assert.equal(metadata['fracture_service.input_layout'], 'NHWC');
    // Weights are initializers, not inputs: a caller feeds only the image.
    assert.equal(proto.graph?.input.length, 1);
  });

  test('gives ONNX Runtime the metadata and names it can read back', async () => {
    const model = tinyCnn();
    const session = await ort.InferenceSession.create(exportToOnnx(model, INFO));
    model.dispose();
    assert.deepEqual(session.inputNames, ['input']);
    assert.deepEqual(session.outputNames, ['probabilities']);
    await session.release();
  });

  test('leaves no tensor behind', () => {
    const model = tinyCnn();
    const before = tf.memory().numTensors;
    exportToOnnx(model, INFO);
    assert.equal(tf.memory().numTensors, before);
    model.dispose();
  });

  test('refuses a layer it cannot convert with EXPORT_UNSUPPORTED naming the layer', () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const x = tf.layers.depthwiseConv2d({ kernelSize: 3, name: 'odd_depthwise' }).apply(input) as tf.SymbolicTensor;
    const y = tf.layers.dense({ units: 2, activation: 'softmax' }).apply(tf.layers.flatten().apply(x)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    assert.throws(
      () => exportToOnnx(model, { ...INFO, classNames: ['a', 'b'], positiveClasses: [] }),
      (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED') && /odd_depthwise/.test(error.message) && /DepthwiseConv2D/.test(error.message),
    );
    model.dispose();
  });

  test('refuses a capped ReLU layer and a softmax over another axis than the last', () => {
    for (const layer of [tf.layers.reLU({ maxValue: 6, name: 'relu6' }), tf.layers.softmax({ axis: 0, name: 'softmax0' })]) {
      const input = tf.input({ shape: [8, 8, 1] });
      const x = tf.layers.dense({ units: 2 }).apply(tf.layers.flatten().apply(input)) as tf.SymbolicTensor;
      const model = tf.model({ inputs: input, outputs: layer.apply(x) as tf.SymbolicTensor });
      assert.throws(() => exportToOnnx(model, { ...INFO, classNames: ['a', 'b'] }), (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED') && error.message.includes(layer.name));
      model.dispose();
    }
  });

  test('refuses an activation it does not know', () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const y = tf.layers.dense({ units: 2, activation: 'softplus', name: 'soft_plus' }).apply(tf.layers.flatten().apply(input)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    assert.throws(() => exportToOnnx(model, { ...INFO, classNames: ['a', 'b'] }), (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED') && /softplus/.test(error.message));
    model.dispose();
  });
});

describe('paddingFor', () => {
  const layer = tf.layers.conv2d({ filters: 1, kernelSize: 3 });

  test('valid pads nothing', () => {
    assert.deepEqual(paddingFor('valid', [7, 8], [3, 3], [2, 2], [1, 1], layer), [0, 0, 0, 0]);
  });

  test('same puts the odd pixel at the bottom and right, as TensorFlow does', () => {
    // 7 px, 3x3, stride 2: out 4, needs (4-1)*2+3-7 = 2 -> 1 before, 1 after.
    assert.deepEqual(paddingFor('same', [7, 7], [3, 3], [2, 2], [1, 1], layer), [1, 1, 1, 1]);
    // 8 px, 3x3, stride 2: out 4, needs (4-1)*2+3-8 = 1 -> 0 before, 1 after.
    assert.deepEqual(paddingFor('same', [8, 8], [3, 3], [2, 2], [1, 1], layer), [0, 0, 1, 1]);
    // stride 1 keeps the size: a 7x1 kernel pads 3 rows each side and no columns.
    assert.deepEqual(paddingFor('same', [17, 17], [7, 1], [1, 1], [1, 1], layer), [3, 0, 3, 0]);
    // dilation 2 makes a 3x3 kernel span 5 pixels.
    assert.deepEqual(paddingFor('same', [10, 10], [3, 3], [1, 1], [2, 2], layer), [2, 2, 2, 2]);
  });

  test('refuses other paddings', () => {
    assert.throws(() => paddingFor('causal', [8, 8], [3, 3], [1, 1], [1, 1], layer), (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED'));
  });
});

describe('saveModel with onnx: true', () => {
  test('writes model.onnx beside the tfjs files with its sha256 in metadata.json, and a tampered file fails verification', async () => {
    const model = tinyCnn();
    const dir = path.join(tmp, 'with-onnx');
    const saved = await saveModel(model, dir, { ...INFO, inputShape: [32, 40, 1] }, { onnx: true });
    model.dispose();
    const bytes = await readFile(path.join(dir, ONNX_MODEL_FILE));
    assert.match(saved.metadata.files[ONNX_MODEL_FILE] ?? '', /^[0-9a-f]{64}$/);
    assert.ok(saved.totalBytes > bytes.byteLength);
    await verifyModelFiles(dir);
    const session = await ort.InferenceSession.create(bytes);
    const out = await session.run({ input: new ort.Tensor('float32', new Float32Array(2 * 32 * 40), [2, 32, 40, 1]) });
    assert.deepEqual(out['probabilities']?.dims, [2, 3]);
    await session.release();

    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(path.join(dir, ONNX_MODEL_FILE), bytes);
    await assert.rejects(verifyModelFiles(dir), (error: unknown) => isMlError(error, 'MODEL_CORRUPT') && error.message.includes(ONNX_MODEL_FILE));
  });

  test('writes no model.onnx by default', async () => {
    const model = tinyCnn();
    const dir = path.join(tmp, 'without-onnx');
    const saved = await saveModel(model, dir, { ...INFO, inputShape: [32, 40, 1] });
    model.dispose();
    assert.equal(saved.metadata.files[ONNX_MODEL_FILE], undefined);
    await assert.rejects(stat(path.join(dir, ONNX_MODEL_FILE)), { code: 'ENOENT' });
  });

  test('writes nothing at all when the model cannot be exported', async () => {
    const input = tf.input({ shape: [8, 8, 1] });
    const x = tf.layers.depthwiseConv2d({ kernelSize: 3 }).apply(input) as tf.SymbolicTensor;
    const y = tf.layers.dense({ units: 2, activation: 'softmax' }).apply(tf.layers.flatten().apply(x)) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: y });
    const dir = path.join(tmp, 'unexportable');
    await assert.rejects(
      saveModel(model, dir, { ...INFO, classNames: ['a', 'b'], positiveClasses: [], inputShape: [8, 8, 1] }, { onnx: true }),
      (error: unknown) => isMlError(error, 'EXPORT_UNSUPPORTED'),
    );
    model.dispose();
    await assert.rejects(stat(dir), { code: 'ENOENT' });
  });
});
