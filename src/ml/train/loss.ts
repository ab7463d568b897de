/**
 * The training objective: categorical cross-entropy on softmax probabilities with optional class
 * weights, written out (rather than tf.losses) so the Keras semantics are explicit and the loop can
 * get sums instead of means, which is what gradient accumulation over micro-batches needs.
 *
 * Keras semantics, as in `tf.keras` and tfjs-layers `model.fit(..., {classWeight})`:
 * per-sample loss `l_i = -sum_c y_ic * log(clip(p_ic / sum_c p_ic, eps, 1 - eps))` with eps = 1e-7,
 * sample weight `w_i = classWeights[argmax(y_i)]`, batch loss `sum_i(w_i * l_i) / N` (the mean over
 * the batch of the weighted losses, NOT `sum(w*l) / sum(w)`). Accuracy is unweighted.
 * @module
 */
import * as tf from '@tensorflow/tfjs';

/** Keras's fuzz factor for clipping probabilities. */
const EPSILON = 1e-7;

/**
 * Per-sample cross-entropy of predicted probabilities.
 * @param yTrue one-hot (or soft) labels, `[N, C]`
 * @param yProb predicted probabilities, `[N, C]` (renormalised to sum 1, as Keras does)
 * @returns `[N]`
 */
export function crossEntropyPerSample(yTrue: tf.Tensor, yProb: tf.Tensor): tf.Tensor1D {
  return tf.tidy(() => {
    const normalised = tf.div(yProb, tf.sum(yProb, -1, true));
    const clipped = tf.clipByValue(normalised, EPSILON, 1 - EPSILON);
    return tf.neg(tf.sum(tf.mul(yTrue, tf.log(clipped)), -1)) as tf.Tensor1D;
  });
}

/**
 * Per-sample weights from class weights: `classWeights[argmax(yTrue_i)]`.
 * @param yTrue `[N, C]`
 * @param classWeights `[C]` float32
 * @returns `[N]`
 */
export function sampleWeights(yTrue: tf.Tensor, classWeights: tf.Tensor1D): tf.Tensor1D {
  return tf.tidy(() => tf.gather(classWeights, tf.argMax(yTrue, -1)) as tf.Tensor1D);
}

/**
 * Number of samples whose predicted class (argmax) equals the label's (argmax), as a float32 scalar.
 * @param yTrue `[N, C]`
 * @param yProb `[N, C]`
 */
export function correctCount(yTrue: tf.Tensor, yProb: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.cast(tf.equal(tf.argMax(yTrue, -1), tf.argMax(yProb, -1)), 'float32')));
}
