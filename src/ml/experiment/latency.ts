/**
 * Single-image inference latency of a model, the figure a hospital integration sees per request
 * when batching does not help.
 * @module
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Median wall time of a forward pass on one random image, in milliseconds, after `warmup` passes
 * (the first passes compile kernels and allocate memory).
 * @param inputShape `[height, width, channels]`
 */
export function measureLatencyMs(model: tf.LayersModel, inputShape: readonly [number, number, number], runs = 5, warmup = 2): number {
  const input = tf.randomUniform([1, ...inputShape], -1, 1, 'float32', 7);
  try {
    const times: number[] = [];
    for (let i = 0; i < warmup + runs; i++) {
      const start = performance.now();
      const output = model.predict(input) as tf.Tensor;
      output.dataSync();
      output.dispose();
      if (i >= warmup) times.push(performance.now() - start);
    }
    times.sort((a, b) => a - b);
    return times[Math.floor(times.length / 2)] ?? 0;
  } finally {
    input.dispose();
  }
}
