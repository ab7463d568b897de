/**
 * Picks the tfjs backend for a test file. Defaults to `wasm` once the project's WASM training kernels
 * are registered; `FRACTURE_TEST_BACKEND=cpu` forces the pure-JS backend.
 */
import * as tf from '@tensorflow/tfjs';

export async function useTestBackend(name = process.env.FRACTURE_TEST_BACKEND ?? 'cpu'): Promise<string> {
  if (name === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
  await tf.setBackend(name);
  await tf.ready();
  return tf.getBackend();
}
