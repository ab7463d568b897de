/**
 * Grad-CAM (Selvaraju et al., 2017): which regions of the last convolutional feature map raised the
 * score of a class. Weights each channel by the spatial mean of the score's gradient and keeps the
 * positive part of the weighted sum.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { defaultGradCamLayer, runBackbone, runHead, splitModelAt } from './split-model.ts';

export interface GradCamOptions {
  /**
   * Layer to explain, a 4-D feature map (the architectures' choices are `GRAD_CAM_LAYER` in
   * `src/ml/models/types.ts`). Default: the last feature-map layer that is not pooling or dropout.
   */
  layerName?: string;
  /** Class to explain, an output index. Default: the predicted class (arg-max). */
  classIndex?: number;
}

export interface GradCamResult {
  /** Row-major `height x width` map in [0, 1] (1 = the most important location); all zeros when
   * nothing raised the class score. */
  heatmap: Float32Array;
  /** Width of the feature map (e.g. 14 for VGG16's `block5_conv3` at 224x224), not of the image. */
  width: number;
  /** Height of the feature map. */
  height: number;
  /** The class explained. */
  classIndex: number;
  /** The layer explained. */
  layerName: string;
  /** What was differentiated: the class logit (final softmax/sigmoid removed), or the output itself. */
  score: 'logit' | 'output';
}

/**
 * Computes the Grad-CAM heat-map of one preprocessed image.
 *
 * The class score is the pre-softmax logit whenever the model ends in a `Dense` layer or a
 * softmax/sigmoid `Activation` (the architectures here all do): it is linear in the head's features
 * and does not saturate for confident predictions, as the Grad-CAM paper prescribes. Other heads
 * are differentiated at their output.
 *
 * @param model A classifier; BN and dropout run in inference mode.
 * @param input `[1, h, w, c]` float32, preprocessed exactly as for prediction.
 * @throws MlError `INPUT_SHAPE_INVALID` unless `input` is one image of the model's input shape;
 *   `INVALID_ARGUMENT` for an unknown or non-feature-map layer or a class index out of range.
 * @example
 * const cam = await gradCam(model, x, { layerName: 'block5_conv3' }); // 14x14 for VGG16 at 224x224
 * const png = await renderHeatmapOverlay(xrayBytes, cam);
 */
export async function gradCam(model: tf.LayersModel, input: tf.Tensor4D, options: GradCamOptions = {}): Promise<GradCamResult> {
  checkInput(model, input);
  const layerName = options.layerName ?? defaultGradCamLayer(model);
  const split = splitModelAt(model, layerName);
  const units = model.outputs[0]?.shape.at(-1) as number;
  if (options.classIndex !== undefined && !(Number.isInteger(options.classIndex) && options.classIndex >= 0 && options.classIndex < units)) {
    throw new MlError('INVALID_ARGUMENT', `classIndex ${options.classIndex} is not an output index in [0, ${units - 1}].`);
  }

  const [activations, ...context] = runBackbone(split, model, input) as [tf.Tensor4D, ...tf.Tensor[]];
  try {
    const classScores = (features: tf.Tensor4D): tf.Tensor2D => runHead(split, features, context);

    let classIndex = options.classIndex;
    if (classIndex === undefined) {
      const predicted = tf.tidy(() => tf.argMax(classScores(activations), 1));
      classIndex = (await predicted.data())[0] as number;
      predicted.dispose();
    }
    const target = classIndex;

    const cam = tf.tidy(() => {
      // slice, not gather: gather's gradient needs UnsortedSegmentSum, which the wasm backend lacks.
      const scoreOf = (features: tf.Tensor): tf.Scalar => tf.sum(tf.slice(classScores(features as tf.Tensor4D), [0, target], [1, 1]));
      const gradients = tf.grad(scoreOf)(activations); // [1, h', w', k]
      // Channel importance: gradients averaged over the spatial positions.
      const weights = tf.mean(gradients, [0, 1, 2]); // [k]
      // ReLU: only locations that raise the class score; negative evidence belongs to other classes.
      return tf.relu(tf.sum(tf.mul(activations.squeeze([0]), weights), -1)); // [h', w']
    });
    const values = (await cam.data()) as Float32Array;
    cam.dispose();

    let max = 0;
    for (const v of values) if (v > max) max = v;
    const heatmap = new Float32Array(values.length);
    if (max > 0 && Number.isFinite(max)) for (let i = 0; i < values.length; i++) heatmap[i] = (values[i] as number) / max;
    const [, height, width] = activations.shape;
    return { heatmap, width, height, classIndex: target, layerName, score: split.score };
  } finally {
    tf.dispose([activations, ...context]);
  }
}

function checkInput(model: tf.LayersModel, input: tf.Tensor): void {
  const expected = model.inputs[0]?.shape ?? [];
  const ok =
    input.rank === 4 &&
    input.shape[0] === 1 &&
    expected.length === 4 &&
    input.shape.every((dim, i) => i === 0 || expected[i] === null || expected[i] === dim);
  if (!ok) {
    throw new MlError(
      'INPUT_SHAPE_INVALID',
      `Grad-CAM takes one image [1, ${expected.slice(1).join(', ')}]; got [${input.shape.join(', ')}].`,
    );
  }
}
