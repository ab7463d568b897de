import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { describeBackend, initBackend, parseBackendRequest } from '../../../src/ml/backend/select-backend.ts';
import type { BackendInfo } from '../../../src/ml/backend/select-backend.ts';
import { wasmTrainingKernelsRegistered } from '../../../src/ml/backend/wasm-training-kernels.ts';

test('an unknown backend is rejected with INVALID_ARGUMENT listing the valid values', async () => {
  await assert.rejects(initBackend('gpu'), (error: unknown) => {
    assert.ok(isMlError(error, 'INVALID_ARGUMENT'));
    assert.match(error.message, /'gpu'/);
    assert.match(error.message, /auto, tensorflow, wasm, cpu/);
    return true;
  });
});

test('backend requests are trimmed and case-insensitive', () => {
  assert.equal(parseBackendRequest(' WASM '), 'wasm');
  assert.equal(parseBackendRequest('Auto'), 'auto');
});

test("explicit 'cpu' activates the pure-JS backend", async () => {
  const info = await initBackend('cpu');
  assert.equal(info.name, 'cpu');
  assert.equal(info.requested, 'cpu');
  assert.equal(tf.getBackend(), 'cpu');
  assert.deepEqual(info.fallbacks, []);
  assert.equal(info.simd, false);
  assert.equal(info.versions['tfjs-core'], tf.version_core);
});

test("'auto' resolves to wasm here, with the training kernels, after trying both native packages", async (t) => {
  const info = await initBackend('auto');
  if (info.name === 'tensorflow') {
    t.skip('a native tfjs-node package is installed on this machine');
    return;
  }
  assert.equal(info.name, 'wasm');
  assert.equal(tf.getBackend(), 'wasm');
  assert.ok(wasmTrainingKernelsRegistered());
  assert.deepEqual(
    info.fallbacks.map((f) => f.candidate),
    ['tfjs-node-gpu', 'tfjs-node'],
  );
  for (const fallback of info.fallbacks) assert.equal(fallback.reason, 'not installed');
  assert.equal(info.gpu, false);
  assert.equal(info.package, undefined);
  assert.ok(info.threads >= 1);
  assert.equal(info.versions['tfjs-backend-wasm'], '4.22.0');
});

test('initBackend is idempotent and re-activates its backend after a switch', async () => {
  const first = await initBackend('auto');
  await tf.setBackend('cpu');
  const second = await initBackend('auto');
  assert.equal(second, first);
  assert.equal(tf.getBackend(), first.name);
});

test("an explicit 'tensorflow' that cannot load fails with BACKEND_UNAVAILABLE naming what was tried", async (t) => {
  const auto = await initBackend('auto');
  if (auto.name === 'tensorflow') {
    t.skip('a native tfjs-node package is installed on this machine');
    return;
  }
  await assert.rejects(initBackend('tensorflow'), (error: unknown) => {
    assert.ok(isMlError(error, 'BACKEND_UNAVAILABLE'));
    assert.match(error.message, /tfjs-node-gpu: not installed/);
    assert.match(error.message, /tfjs-node: not installed/);
    return true;
  });
});

test('describeBackend gives one line with the backend, its features and the skipped candidates', () => {
  const wasm: BackendInfo = {
    name: 'wasm',
    requested: 'auto',
    gpu: false,
    threads: 1,
    simd: true,
    versions: {},
    fallbacks: [
      { candidate: 'tfjs-node-gpu', reason: 'not installed' },
      { candidate: 'tfjs-node', reason: 'not installed' },
    ],
  };
  assert.equal(describeBackend(wasm), 'wasm (XNNPACK, SIMD, 1 thread); tried: tfjs-node-gpu (not installed), tfjs-node (not installed)');
  const gpu: BackendInfo = { ...wasm, name: 'tensorflow', package: '@tensorflow/tfjs-node-gpu', gpu: true, threads: 2, fallbacks: [] };
  assert.equal(describeBackend(gpu), 'tensorflow (tfjs-node-gpu, GPU, 2 threads)');
  assert.doesNotMatch(describeBackend(gpu), /\n/);
});
