/**
 * `INFERENCE_ENGINE` per model: auto with and without `model.onnx` or the runtime, tfjs and onnx
 * forced, and the engine named by the predictor's responses and status.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { isMlError } from '../../../src/ml/errors.ts';
import os from 'node:os';
import { loadConfig } from '../../../src/infra/config.ts';
import { engineSelectorFor } from '../../../src/runtime/service-context.ts';
import { EngineSelector } from '../../../src/serving/engine-selector.ts';
import { inputSize } from '../../../src/serving/inference-engine.ts';
import type { OnnxRuntimeLoader } from '../../../src/serving/onnx-runtime.ts';
import { LocalPredictor } from '../../../src/serving/predictor.ts';
import type { ResolvedModel } from '../../../src/serving/types.ts';
import { useTestBackend } from '../../helpers/backend.ts';
import { grayPattern, registryOf, saveTinyModel } from './fixtures.ts';

const noRuntime: OnnxRuntimeLoader = async () => ({ ok: false, reason: 'onnxruntime-node did not load: libonnxruntime.so.1 missing' });

let root: string;
let withOnnx: ResolvedModel;
let withoutOnnx: ResolvedModel;

before(async () => {
  await useTestBackend();
  root = await mkdtemp(path.join(os.tmpdir(), 'engine-selector-'));
  withOnnx = await saveTinyModel(root, { id: 'with-onnx', seed: 21, onnx: true });
  withoutOnnx = await saveTinyModel(root, { id: 'without-onnx', seed: 22 });
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

async function loadedEngine(selector: EngineSelector, dir: string): Promise<{ engine: string | undefined; reason: string | undefined }> {
  const model = await selector.load(dir);
  try {
    // The selected model really runs.
    const out = await model.predict(new Float32Array(inputSize(model.info)), 1);
    assert.equal(out.length, model.info.classNames.length);
    return { engine: model.engine, reason: model.engineReason };
  } finally {
    model.dispose();
  }
}

describe('EngineSelector', () => {
  test('auto serves a model with model.onnx on ONNX Runtime', async () => {
    const selector = new EngineSelector();
    assert.equal(selector.name, 'auto');
    assert.deepEqual(await selector.choose(withOnnx.dir), { engine: 'onnx' });
    assert.deepEqual(await loadedEngine(selector, withOnnx.dir), { engine: 'onnx', reason: undefined });
  });

  test('auto serves a model without model.onnx on tfjs and says why', async () => {
    const selector = new EngineSelector({ mode: 'auto' });
    const { engine, reason } = await loadedEngine(selector, withoutOnnx.dir);
    assert.equal(engine, 'tfjs');
    assert.match(reason ?? '', /no model\.onnx/);
  });

  test('auto falls back to tfjs when onnxruntime-node does not load, with the runtime\'s reason', async () => {
    const selector = new EngineSelector({ mode: 'auto', loadRuntime: noRuntime });
    const { engine, reason } = await loadedEngine(selector, withOnnx.dir);
    assert.equal(engine, 'tfjs');
    assert.match(reason ?? '', /libonnxruntime\.so\.1 missing/);
  });

  test('auto falls back to tfjs when ONNX Runtime refuses model.onnx', async () => {
    const dir = path.join(root, 'bad-onnx');
    await cp(withOnnx.dir, dir, { recursive: true });
    // A listed, correctly hashed model.onnx that is not an ONNX model.
    const garbage = Buffer.from('this is not a protobuf');
    await writeFile(path.join(dir, 'model.onnx'), garbage);
    const metadata = JSON.parse(await readFile(path.join(dir, 'metadata.json'), 'utf8')) as { files: Record<string, string> };
    metadata.files['model.onnx'] = createHash('sha256').update(garbage).digest('hex');
    await writeFile(path.join(dir, 'metadata.json'), JSON.stringify(metadata));
    const { engine, reason } = await loadedEngine(new EngineSelector({ mode: 'auto' }), dir);
    assert.equal(engine, 'tfjs');
    assert.match(reason ?? '', /ONNX Runtime could not load/);
    // Forced, the same model is refused.
    await assert.rejects(new EngineSelector({ mode: 'onnx' }).load(dir), (error: unknown) => isMlError(error, 'MODEL_CORRUPT'));
  });

  test('auto does not serve an unlisted model.onnx (one nobody evaluated): choose and load both say tfjs', async () => {
    const dir = path.join(root, 'unlisted-onnx');
    await cp(withoutOnnx.dir, dir, { recursive: true });
    await cp(path.join(withOnnx.dir, 'model.onnx'), path.join(dir, 'model.onnx'));
    const selector = new EngineSelector({ mode: 'auto' });
    const choice = await selector.choose(dir);
    assert.equal(choice.engine, 'tfjs');
    assert.match(choice.reason ?? '', /listed/);
    assert.equal((await loadedEngine(selector, dir)).engine, 'tfjs');
    await assert.rejects(new EngineSelector({ mode: 'onnx' }).load(dir), (error: unknown) => isMlError(error, 'MODEL_CORRUPT') && /not listed/.test(error.message));
  });

  test('auto refuses a tampered model.onnx with MODEL_CORRUPT instead of serving either engine', async () => {
    const dir = path.join(root, 'tampered-onnx');
    await cp(withOnnx.dir, dir, { recursive: true });
    const bytes = await readFile(path.join(dir, 'model.onnx'));
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0xff;
    await writeFile(path.join(dir, 'model.onnx'), bytes);
    await assert.rejects(new EngineSelector({ mode: 'auto' }).load(dir), (error: unknown) => isMlError(error, 'MODEL_CORRUPT'));
  });

  test('tfjs always serves on tfjs, even with model.onnx', async () => {
    const selector = new EngineSelector({ mode: 'tfjs' });
    assert.deepEqual(await selector.choose(withOnnx.dir), { engine: 'tfjs' });
    assert.deepEqual(await loadedEngine(selector, withOnnx.dir), { engine: 'tfjs', reason: undefined });
  });

  test('onnx forced refuses a model without model.onnx, and a machine without the runtime', async () => {
    await assert.rejects(new EngineSelector({ mode: 'onnx' }).load(withoutOnnx.dir), (error: unknown) => {
      assert.ok(isMlError(error, 'BACKEND_UNAVAILABLE'));
      assert.match(error.message, /no model\.onnx/);
      return true;
    });
    await assert.rejects(new EngineSelector({ mode: 'onnx', loadRuntime: noRuntime }).load(withOnnx.dir), (error: unknown) => isMlError(error, 'BACKEND_UNAVAILABLE'));
    assert.deepEqual(await loadedEngine(new EngineSelector({ mode: 'onnx' }), withOnnx.dir), { engine: 'onnx', reason: undefined });
  });

  test('refuses an unknown mode', () => {
    assert.throws(() => new EngineSelector({ mode: 'torch' as never }), /auto, onnx, tfjs/);
  });
});

describe('LocalPredictor on the selector', () => {
  test('names the engine of each model in responses and in its status', async () => {
    const predictor = new LocalPredictor({
      resolveModel: registryOf([withOnnx, withoutOnnx]),
      engine: new EngineSelector({ mode: 'auto' }),
      maxBatchSize: 4,
      maxDelayMs: 1,
      maxQueue: 16,
      maxModels: 2,
      maxPixels: 1_000_000,
    });
    try {
      assert.equal(predictor.status().engine, 'auto');
      const status = await predictor.warmUp();
      assert.equal(status.engine, 'onnx');
      assert.equal(status.engineReason, undefined);
      const png = await sharp(grayPattern(40, 40), { raw: { width: 40, height: 40, channels: 1 } }).png().toBuffer();
      const onOnnx = await predictor.predict({ images: [{ id: 'a', data: png }], explain: true });
      assert.deepEqual(onOnnx.model, { id: 'with-onnx', architecture: 'cnn', version: 'with-onnx@1', engine: 'onnx' });
      // Grad-CAM on an ONNX-served model comes from tfjs.
      assert.match(onOnnx.predictions[0]?.heatmap ?? '', /^data:image\/png;base64,/);
      const onTfjs = await predictor.predict({ model: 'without-onnx', images: [{ id: 'a', data: png }], explain: false });
      assert.equal(onTfjs.model.engine, 'tfjs');
      const fallback = await predictor.warmUp('without-onnx');
      assert.equal(fallback.engine, 'tfjs');
      assert.match(fallback.engineReason ?? '', /no model\.onnx/);
    } finally {
      await predictor.close();
    }
  });
});

describe('engineSelectorFor (configuration)', () => {
  test('follows INFERENCE_ENGINE, and ONNX_INTRA_OP_THREADS with 0 meaning the machine\'s cores', () => {
    const byDefault = engineSelectorFor(loadConfig({}));
    assert.equal(byDefault.name, 'auto');
    assert.equal(byDefault.intraOpNumThreads, os.availableParallelism());
    const pinned = engineSelectorFor(loadConfig({ INFERENCE_ENGINE: 'onnx', ONNX_INTRA_OP_THREADS: '1' }));
    assert.equal(pinned.name, 'onnx');
    assert.equal(pinned.intraOpNumThreads, 1);
    assert.throws(() => loadConfig({ ONNX_INTRA_OP_THREADS: '-1' }));
  });
});
