/**
 * The ONNX Runtime engine on real onnxruntime-node and tiny saved CNNs: the same probabilities as the
 * tfjs engine (batch 1 and 32), the same model info, sha256 checks, refusals, Grad-CAM through tfjs,
 * and disposal.
 */
import assert from 'node:assert/strict';
import { appendFile, cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { inputSize, type EngineModel } from '../../../src/serving/inference-engine.ts';
import { OnnxEngine } from '../../../src/serving/onnx-engine.ts';
import { TfjsEngine } from '../../../src/serving/tfjs-engine.ts';
import { useTestBackend } from '../../helpers/backend.ts';
import { saveTinyModel, tensorCount } from './fixtures.ts';

const TOLERANCE = 1e-5;

let root: string;
let onnxDir: string;
let plainDir: string;

before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'onnx-engine-'));
  onnxDir = (await saveTinyModel(root, { id: 'with-onnx', seed: 11, channels: 3, onnx: true })).dir;
  plainDir = (await saveTinyModel(root, { id: 'without-onnx', seed: 12 })).dir;
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** `count` inputs of `model` with values in [0, 1) from a seeded generator. */
function randomInputs(model: EngineModel, count: number, seed: number): Float32Array {
  const out = new Float32Array(count * inputSize(model.info));
  let state = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    out[i] = state / 2 ** 32;
  }
  return out;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs((a[i] as number) - (b[i] as number)));
  return max;
}

async function rejectsWithCode(promise: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isMlError(error), `expected an MlError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) assert.match(error.message, message);
    return true;
  });
}

describe('OnnxEngine', () => {
  test('answers with the probabilities of the tfjs engine for batch 1 and 32', async () => {
    const onnx = await new OnnxEngine().load(onnxDir);
    const tfjs = await new TfjsEngine().load(onnxDir);
    try {
      assert.equal(onnx.engine, 'onnx');
      const timings: string[] = [];
      for (const count of [1, 32]) {
        const batch = randomInputs(onnx, count, count);
        const expected = await tfjs.predict(batch, count);
        const actual = await onnx.predict(batch, count);
        assert.equal(actual.length, count * onnx.info.classNames.length);
        const diff = maxAbsDiff(actual, expected);
        assert.ok(diff <= TOLERANCE, `batch ${count}: max |onnx - tfjs| = ${diff}`);
        // Rows are distributions, and not all the same one (the inputs differ).
        for (let row = 0; row < count; row++) {
          const sum = actual.subarray(row * 3, row * 3 + 3).reduce((s, p) => s + p, 0);
          assert.ok(Math.abs(sum - 1) < 1e-5, `row ${row} sums to ${sum}`);
        }
        const time = async (model: EngineModel): Promise<number> => {
          const start = performance.now();
          for (let i = 0; i < 5; i++) await model.predict(batch, count);
          return (performance.now() - start) / 5;
        };
        timings.push(`batch ${count}: max diff ${diff.toExponential(2)}, tfjs ${(await time(tfjs)).toFixed(2)} ms, onnx ${(await time(onnx)).toFixed(2)} ms`);
      }
      // The model does not ignore its input: two different inputs get different probabilities.
      const rows = await onnx.predict(randomInputs(onnx, 2, 5), 2);
      assert.ok(maxAbsDiff(rows.subarray(0, 3), rows.subarray(3, 6)) > 1e-6, 'two different inputs got the same probabilities');
      process.stdout.write(`# onnx-engine parity: ${timings.join('; ')}\n`);
    } finally {
      onnx.dispose();
      tfjs.dispose();
    }
  });

  test('describes the model as the tfjs engine does (same preprocessing)', async () => {
    const onnx = await new OnnxEngine().load(onnxDir);
    const tfjs = await new TfjsEngine().load(onnxDir);
    try {
      assert.deepEqual(onnx.info, tfjs.info);
      assert.equal(onnx.info.imageOptions.channels, 3);
      assert.equal(onnx.info.imageOptions.height, 32);
    } finally {
      onnx.dispose();
      tfjs.dispose();
    }
  });

  test('uses as many threads per forward pass as the machine has cores, unless told', () => {
    assert.equal(new OnnxEngine().intraOpNumThreads, os.availableParallelism());
    assert.equal(new OnnxEngine({ intraOpNumThreads: 1 }).intraOpNumThreads, 1);
    assert.throws(() => new OnnxEngine({ intraOpNumThreads: 0 }), RangeError);
  });

  test('refuses a model.onnx whose sha256 differs from metadata.json with MODEL_CORRUPT', async () => {
    const dir = path.join(root, 'tampered');
    await cp(onnxDir, dir, { recursive: true });
    await appendFile(path.join(dir, 'model.onnx'), Buffer.from([0]));
    await rejectsWithCode(new OnnxEngine().load(dir), 'MODEL_CORRUPT', /model\.onnx has sha256/);
  });

  test('refuses a tampered weight file too: every listed file is checked', async () => {
    const dir = path.join(root, 'tampered-weights');
    await cp(onnxDir, dir, { recursive: true });
    await appendFile(path.join(dir, 'group1-shard1of1.bin'), Buffer.from([0]));
    await rejectsWithCode(new OnnxEngine().load(dir), 'MODEL_CORRUPT', /group1-shard1of1\.bin/);
  });

  test('refuses a model.onnx that metadata.json does not list', async () => {
    const dir = path.join(root, 'unlisted');
    await cp(plainDir, dir, { recursive: true });
    await cp(path.join(onnxDir, 'model.onnx'), path.join(dir, 'model.onnx'));
    await rejectsWithCode(new OnnxEngine().load(dir), 'MODEL_CORRUPT', /not listed/);
  });

  test('refuses a model saved without model.onnx with BACKEND_UNAVAILABLE (503: the engine, not the model, is missing), and a missing directory with MODEL_NOT_FOUND', async () => {
    await rejectsWithCode(new OnnxEngine().load(plainDir), 'BACKEND_UNAVAILABLE', /no model\.onnx/);
    await rejectsWithCode(new OnnxEngine().load(path.join(root, 'nothing-here')), 'MODEL_NOT_FOUND', /No saved model/);
  });

  test('says BACKEND_UNAVAILABLE when onnxruntime-node does not load', async () => {
    const engine = new OnnxEngine({ loadRuntime: async () => ({ ok: false, reason: 'onnxruntime-node did not load: no binding' }) });
    await rejectsWithCode(engine.load(onnxDir), 'BACKEND_UNAVAILABLE', /no binding/);
  });

  test('explains through tfjs: the same Grad-CAM as the tfjs engine, freed on dispose', async () => {
    const baseline = tensorCount();
    const onnx = await new OnnxEngine().load(onnxDir);
    const tfjs = await new TfjsEngine().load(onnxDir);
    const afterTfjsLoad = tensorCount();
    try {
      assert.ok(onnx.explain, 'the ONNX engine offers explain');
      const input = randomInputs(onnx, 1, 3);
      const expected = await tfjs.explain?.(input, 2);
      const actual = await onnx.explain(input, 2);
      assert.ok(expected);
      assert.equal(actual.classIndex, 2);
      assert.equal(actual.width, expected.width);
      assert.equal(actual.height, expected.height);
      assert.ok(maxAbsDiff(actual.heatmap, expected.heatmap) <= 1e-6);
      assert.ok(actual.heatmap.some((v) => v > 0), 'the heat-map is not blank');
      // The tfjs copy is loaded once: a second explanation adds no weights.
      const loaded = tensorCount();
      await onnx.explain(input, 0);
      assert.equal(tensorCount(), loaded);
      assert.ok(loaded > afterTfjsLoad, 'explain loaded the tfjs weights');
    } finally {
      onnx.dispose();
      tfjs.dispose();
    }
    // Disposing the ONNX model disposes its tfjs copy (asynchronously: after the pending load settles).
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(tensorCount(), baseline);
  });

  test('refuses to predict after dispose, and disposes once', async () => {
    const onnx = await new OnnxEngine().load(onnxDir);
    onnx.dispose();
    onnx.dispose();
    await assert.rejects(onnx.predict(new Float32Array(inputSize(onnx.info)), 1), /disposed/);
    await assert.rejects(onnx.explain?.(new Float32Array(inputSize(onnx.info)), 0) ?? Promise.reject(new Error('no explain')), /disposed/);
  });

  test('refuses a batch whose length does not match its count', async () => {
    const onnx = await new OnnxEngine().load(onnxDir);
    try {
      await assert.rejects(onnx.predict(new Float32Array(inputSize(onnx.info) * 2), 1), RangeError);
    } finally {
      onnx.dispose();
    }
  });
});
