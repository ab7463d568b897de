/**
 * `fracture-service export` as a user runs it: a real process exports a tiny saved CNN to ONNX (which
 * onnxruntime-node runs to the tfjs model's probabilities within 1e-5) and to a Triton repository, and
 * every input error exits 2 with `CODE: message`.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { preprocessingRecord } from '../../src/ml/data/index.ts';
import { parseTritonModelConfig } from '../../src/ml/export/triton.ts';
import { buildModel } from '../../src/ml/models/index.ts';
import { saveModel } from '../../src/ml/persist/index.ts';
import { useTestBackend } from '../helpers/backend.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/fracture-service.js');

interface Run { code: number; stdout: string; stderr: string }

function run(args: string[], cwd = repoRoot): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd, maxBuffer: 32 * 2 ** 20, env: { ...process.env, FRACTURE_BACKEND: 'cpu' } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const SIZE = 32;
const CLASS_NAMES = ['not_fractured', 'fractured'];
const BATCH = 3;

/** Deterministic inputs in [0, 1] (the `unit` preprocessing range) without the seeded RNG module. */
function inputs(): Float32Array {
  const data = new Float32Array(BATCH * SIZE * SIZE);
  let state = 12345;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    data[i] = state / 2 ** 31;
  }
  return data;
}

describe('fracture-service export', () => {
  let root: string;
  let modelDir: string;
  let unsupportedDir: string;
  let expected: Float32Array;

  before(async () => {
    await useTestBackend();
    root = await mkdtemp(path.join(os.tmpdir(), 'export-cli-'));
    // A folder name a Triton model name cannot take as is: the default name is its sanitised form.
    modelDir = path.join(root, 'models', 'cnn run@1');
    const model = buildModel({ architecture: 'cnn', inputShape: [SIZE, SIZE, 1], numClasses: 2, includeTop: false, seed: 11 });
    try {
      await saveModel(model, modelDir, {
        architecture: 'cnn',
        classNames: CLASS_NAMES,
        positiveClasses: ['fractured'],
        inputShape: [SIZE, SIZE, 1],
        preprocessing: preprocessingRecord({ height: SIZE, width: SIZE, channels: 1, mode: 'unit', resize: 'letterbox' }),
      });
      expected = tf.tidy(() => (model.predict(tf.tensor4d(inputs(), [BATCH, SIZE, SIZE, 1])) as tf.Tensor).dataSync() as Float32Array);
    } finally {
      model.dispose();
    }

    const input = tf.input({ shape: [8, 8, 1] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const normed = tf.layers.layerNormalization().apply(tf.layers.dense({ units: 4 }).apply(flat)) as tf.SymbolicTensor;
    const unsupported = tf.model({ inputs: input, outputs: tf.layers.dense({ units: 2, activation: 'softmax' }).apply(normed) as tf.SymbolicTensor });
    unsupportedDir = path.join(root, 'models', 'layernorm');
    await saveModel(unsupported, unsupportedDir, { architecture: 'custom', classNames: ['a', 'b'], positiveClasses: [], inputShape: [8, 8, 1], preprocessing: {} });
    unsupported.dispose();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is listed in --help', async () => {
    const { code, stdout } = await run(['--help']);
    assert.equal(code, 0);
    assert.match(stdout, /^\s+export\b/m);
  });

  it('writes an ONNX file that onnxruntime-node runs to the tfjs probabilities within 1e-5', async () => {
    const out = path.join(root, 'out', 'cnn.onnx');
    const result = await run(['export', '--model', modelDir, '--format', 'onnx', '--out', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { file: string; bytes: number; input: { name: string; shape: unknown[] }; output: { name: string; shape: unknown[]; classNames: string[] } };
    assert.equal(report.file, out);
    assert.equal(report.bytes, (await stat(out)).size);
    assert.deepEqual(report.input, { name: 'input', type: 'float32', shape: ['batch', SIZE, SIZE, 1], layout: 'NHWC', preprocessing: 'unit normalisation, letterbox resize' });
    assert.deepEqual(report.output.shape, ['batch', 2]);
    assert.deepEqual(report.output.classNames, CLASS_NAMES);

    const session = await ort.InferenceSession.create(out);
    try {
      assert.deepEqual(session.inputNames, ['input']);
      assert.deepEqual(session.outputNames, ['probabilities']);
      const outputs = await session.run({ input: new ort.Tensor('float32', inputs(), [BATCH, SIZE, SIZE, 1]) });
      const actual = outputs.probabilities?.data as Float32Array;
      assert.equal(actual.length, expected.length);
      const worst = Math.max(...Array.from(actual, (value, i) => Math.abs(value - (expected[i] ?? Number.NaN))));
      assert.ok(worst <= 1e-5, `max |onnx - tfjs| = ${worst}`);
    } finally {
      await session.release();
    }
  });

  it('writes ./<model folder>.onnx by default and prints names and shapes', async () => {
    const cwd = path.join(root, 'cwd');
    await mkdir(cwd);
    const result = await run(['export', '--model', modelDir, '--format', 'onnx'], cwd);
    assert.equal(result.code, 0, result.stderr);
    const file = path.join(cwd, 'cnn run@1.onnx');
    const { size } = await stat(file);
    assert.match(result.stdout, new RegExp(`^wrote ${escape(file)} \\(${size} bytes`, 'm'));
    assert.match(result.stdout, /input\s+"input"\s+float32 \[batch, 32, 32, 1\] \(NHWC, preprocessed: unit normalisation, letterbox resize\)/);
    assert.match(result.stdout, /output "probabilities" float32 \[batch, 2\]: not_fractured, fractured/);
    assert.deepEqual(await readdir(cwd), ['cnn run@1.onnx'], 'no temp file left');
  });

  it('writes a Triton repository with a sanitised default name', async () => {
    const repo = path.join(root, 'triton');
    const result = await run(['export', '--model', modelDir, '--format', 'triton', '--out', repo, '--max-batch-size', '8', '--preferred-batch-sizes', '4,8']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readdir(repo), ['cnn_run_1']);
    const dir = path.join(repo, 'cnn_run_1');
    assert.deepEqual((await readdir(dir)).sort(), ['1', 'config.pbtxt', 'labels.txt']);
    assert.deepEqual(await readdir(path.join(dir, '1')), ['model.onnx']);
    assert.equal(await readFile(path.join(dir, 'labels.txt'), 'utf8'), 'not_fractured\nfractured\n');
    const config = parseTritonModelConfig(await readFile(path.join(dir, 'config.pbtxt'), 'utf8')) as unknown as {
      name: string; maxBatchSize: number; input: { name: string; dims: bigint[] }[]; output: { name: string; dims: bigint[] }[];
      dynamicBatching: { preferredBatchSize: number[] };
    };
    assert.equal(config.name, 'cnn_run_1');
    assert.equal(config.maxBatchSize, 8);
    assert.deepEqual(config.input.map((i) => [i.name, i.dims.map(Number)]), [['input', [SIZE, SIZE, 1]]]);
    assert.deepEqual(config.output.map((o) => [o.name, o.dims.map(Number)]), [['probabilities', [2]]]);
    assert.deepEqual(config.dynamicBatching.preferredBatchSize, [4, 8]);
    assert.match(result.stdout, /^wrote Triton model "cnn_run_1"/m);
    assert.match(result.stdout, new RegExp(`tritonserver --model-repository=${escape(repo)}`));

    const session = await ort.InferenceSession.create(path.join(dir, '1', 'model.onnx'));
    try {
      const outputs = await session.run({ input: new ort.Tensor('float32', inputs(), [BATCH, SIZE, SIZE, 1]) });
      const actual = outputs.probabilities?.data as Float32Array;
      assert.ok(Array.from(actual).every((value, i) => Math.abs(value - (expected[i] ?? Number.NaN)) <= 1e-5));
    } finally {
      await session.release();
    }
  });

  it('exits 2 with CODE: message for bad arguments and models it cannot export', async () => {
    const repo = path.join(root, 'refused');
    const cases: [string[], RegExp][] = [
      [['export', '--format', 'onnx'], /^INVALID_ARGUMENT: --model DIR is required/m],
      [['export', '--model', modelDir], /^INVALID_ARGUMENT: --format is required/m],
      [['export', '--model', modelDir, '--format', 'tflite'], /^INVALID_ARGUMENT: unknown format "tflite"; valid: onnx, triton/m],
      [['export', '--model', modelDir, '--format', 'triton'], /^INVALID_ARGUMENT: --format triton needs --out REPO/m],
      [['export', '--model', modelDir, '--format', 'onnx', '--out', path.join(modelDir, 'model.onnx')], /^INVALID_ARGUMENT: --out .* is inside the model directory/m],
      [['export', '--model', modelDir, '--format', 'onnx', '--max-batch-size', '4'], /^INVALID_ARGUMENT: --max-batch-size only apply to --format triton/m],
      [['export', '--model', modelDir, '--format', 'triton', '--out', repo, '--max-batch-size', '0'], /^INVALID_ARGUMENT: --max-batch-size expects an integer >= 1/m],
      [['export', '--model', modelDir, '--format', 'triton', '--out', repo, '--name', '../up'], /^INVALID_ARGUMENT: Invalid Triton model name/m],
      [['export', '--model', modelDir, '--format', 'triton', '--out', path.dirname(modelDir), '--name', 'cnn_x', '--preferred-batch-sizes', '64'], /^INVALID_ARGUMENT: Preferred batch sizes/m],
      [['export', '--model', modelDir, '--format', 'triton', '--out', path.dirname(modelDir), '--name', 'cnn run@1'], /^INVALID_ARGUMENT: Invalid Triton model name/m],
      [['export', '--model', path.join(root, 'models'), '--format', 'triton', '--out', root, '--name', 'models'], /^INVALID_ARGUMENT: The Triton model folder .* would replace/m],
      [['export', '--model', path.join(root, 'missing'), '--format', 'onnx'], /^MODEL_NOT_FOUND: /m],
      [['export', '--model', unsupportedDir, '--format', 'triton', '--out', repo], /^EXPORT_UNSUPPORTED: Cannot export layer .*LayerNormalization/m],
    ];
    for (const [args, message] of cases) {
      const result = await run(args);
      assert.equal(result.code, 2, `${args.join(' ')}: exit ${result.code}\n${result.stderr}`);
      assert.match(result.stderr, message, args.join(' '));
    }
    // Nothing was written by any refused export, and the model directory is untouched.
    await assert.rejects(stat(repo), { code: 'ENOENT' }, 'no repository folder was made');
    assert.ok((await readdir(modelDir)).every((name) => name !== 'model.onnx.tmp' && !name.includes('.tmp-')));
    assert.deepEqual((await readdir(path.dirname(modelDir))).sort(), ['cnn run@1', 'layernorm']);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
