/**
 * Picks the tfjs backend for a test file: `cpu` by default (the pure-JS reference), or whatever
 * `FRACTURE_TEST_BACKEND` names. `wasm` goes through the project's `initBackend`, so it gets the
 * training kernels and the out-of-memory guard exactly as production does.
 */
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../src/ml/backend/select-backend.ts';

export async function useTestBackend(name = process.env.FRACTURE_TEST_BACKEND ?? 'cpu'): Promise<string> {
  if (name === 'wasm') {
    await initBackend('wasm');
  } else {
    await tf.setBackend(name);
    await tf.ready();
  }
  return tf.getBackend();
}
