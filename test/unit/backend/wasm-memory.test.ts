import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { MlError, isMlError } from '../../../src/ml/errors.ts';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import {
  WASM_MAX_HEAP_BYTES,
  isOutOfMemoryError,
  releaseAbandonedTape,
  requiresBackendReset,
  resetWasmBackend,
  wasmMemoryBytes,
} from '../../../src/ml/backend/wasm-memory.ts';
import { wasmTrainingKernelsRegistered } from '../../../src/ml/backend/wasm-training-kernels.ts';

/** The wasm RuntimeError class (the project's TS lib has no WebAssembly types). */
const RuntimeError = (globalThis as unknown as { WebAssembly: { RuntimeError: new (message: string) => Error } }).WebAssembly.RuntimeError;

describe('isOutOfMemoryError', () => {
  test('recognises the failures measured on wasm and in JS', () => {
    const failures: unknown[] = [
      new MlError('OUT_OF_MEMORY', 'wasm allocation of 768.0 MiB failed'),
      new RuntimeError('memory access out of bounds'),
      new RuntimeError('table index is out of bounds'),
      new RuntimeError('Aborted(). Build with -sASSERTIONS for more info.'),
      new RuntimeError('Aborted(OOM)'),
      new RangeError('Array buffer allocation failed'),
      new RangeError('Invalid typed array length: 4294967296'),
      new RangeError('WebAssembly.Memory.grow(): Maximum memory size exceeded'),
      new Error('training step failed', { cause: new RuntimeError('memory access out of bounds') }),
    ];
    for (const error of failures) assert.equal(isOutOfMemoryError(error), true, String(error));
  });

  test('does not mistake other errors for memory failures', () => {
    const others: unknown[] = [
      new Error('Kernel Conv2DBackpropFilter not registered'),
      new MlError('INVALID_ARGUMENT', 'bad shape'),
      new RangeError('Maximum call stack size exceeded'),
      undefined,
      null,
      'boom',
    ];
    for (const error of others) assert.equal(isOutOfMemoryError(error), false, String(error));
  });
});

describe('requiresBackendReset', () => {
  test('is true for wasm traps (the module may be corrupted) and false for a guarded allocation failure', () => {
    assert.equal(requiresBackendReset(new RuntimeError('memory access out of bounds')), true);
    assert.equal(requiresBackendReset(new Error('step', { cause: new RuntimeError('Aborted()') })), true);
    assert.equal(requiresBackendReset(new MlError('OUT_OF_MEMORY', 'wasm allocation failed')), false);
    assert.equal(requiresBackendReset(new RangeError('Array buffer allocation failed')), false);
  });
});

describe('on the wasm backend', () => {
  test('wasmMemoryBytes reports the wasm heap, and nothing on another backend', async () => {
    await initBackend('cpu');
    assert.equal(wasmMemoryBytes(), undefined);
    await initBackend('wasm');
    const bytes = wasmMemoryBytes();
    assert.ok(bytes !== undefined && bytes >= 16 * 2 ** 20 && bytes <= WASM_MAX_HEAP_BYTES, `heap ${bytes}`);
  });

  test('an allocation beyond the wasm address space throws OUT_OF_MEMORY and the backend keeps computing correctly', async () => {
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    // 2^30 floats = 4 GiB: unguarded, this wraps to a 0-byte malloc and the fill overwrites the heap.
    assert.throws(() => tf.zeros([2 ** 30]), (error: unknown) => isMlError(error, 'OUT_OF_MEMORY') && isOutOfMemoryError(error));
    assert.throws(
      () => tf.tidy(() => tf.conv2d(tf.ones([1, 2 ** 12, 2 ** 12, 1]) as tf.Tensor4D, tf.ones([1, 1, 1, 64]) as tf.Tensor4D, 1, 'same')),
      (error: unknown) => isOutOfMemoryError(error) && !requiresBackendReset(error),
    );
    assert.equal(tf.memory().numTensors, before);
    const values = tf.tidy(() => Array.from(tf.tensor1d([1, 2, 3]).mul(2).dataSync()));
    assert.deepEqual(values, [2, 4, 6]);
    const conv = tf.tidy(() => tf.conv2d(tf.ones([1, 5, 5, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 1, 'same').dataSync()[12]);
    assert.equal(conv, 18);
  });

  test('an XNNPACK failure that wasm only prints becomes an OUT_OF_MEMORY error instead of a garbage tensor', async () => {
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    // The exact line tfjs-backend-wasm prints when XNNPACK cannot allocate an operator.
    process.stderr.write('XNN status for xnn_create_convolution2d_nhwc_f32 is not successful. Got status 6. Use -c dbg to see XNN logs.\n');
    assert.throws(
      () => tf.tidy(() => tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 1, 'same')),
      (error: unknown) => isMlError(error, 'OUT_OF_MEMORY') && /Conv2D/.test(error.message),
    );
    assert.equal(tf.memory().numTensors, before);
    const ok = tf.tidy(() => tf.conv2d(tf.ones([1, 4, 4, 1]) as tf.Tensor4D, tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 1, 'same').dataSync()[5]);
    assert.equal(ok, 9, 'the next convolution runs normally');
  });

  test('releaseAbandonedTape frees the tensors a failed backward pass left behind', async () => {
    await initBackend('wasm');
    const x = tf.tensor2d([[1, 2], [3, 4]]);
    const before = tf.memory().numTensors;
    const failing = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
      const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
      save([input]);
      return {
        value: tf.square(input),
        gradFunc: (): tf.Tensor => {
          throw new Error('simulated failure in the backward pass');
        },
      };
    });
    assert.throws(() => tf.grad((input: tf.Tensor) => tf.sum(tf.exp(failing(input))))(x), /simulated failure/);
    assert.ok(tf.memory().numTensors > before, 'tfjs leaves the saved tensors behind');
    assert.ok(releaseAbandonedTape() > 0);
    assert.equal(tf.memory().numTensors, before);
    assert.equal(releaseAbandonedTape(), 0, 'nothing left the second time');
    x.dispose();
  });

  test('resetWasmBackend gives a fresh, guarded module with the training kernels, and old tensors dispose harmlessly', async () => {
    await initBackend('wasm');
    const before = tf.memory().numTensors;
    const stale = tf.tensor1d([1, 2, 3]);
    await resetWasmBackend();
    assert.equal(tf.getBackend(), 'wasm');
    assert.ok(wasmTrainingKernelsRegistered());
    stale.dispose();
    assert.equal(tf.memory().numTensors, before);
    assert.throws(() => tf.zeros([2 ** 30]), (error: unknown) => isMlError(error, 'OUT_OF_MEMORY'));
    const grad = tf.tidy(() => {
      const w = tf.ones([3, 3, 1, 1]) as tf.Tensor4D;
      return tf.grad((x: tf.Tensor) => tf.sum(tf.conv2d(x as tf.Tensor4D, w, 1, 'same')))(tf.ones([1, 4, 4, 1])).dataSync()[5];
    });
    assert.equal(grad, 9);
    assert.equal(tf.memory().numTensors, before);
  });
});
