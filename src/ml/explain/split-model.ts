/**
 * Cuts a LayersModel at one layer into a backbone (input -> that layer's activations) and a head
 * (activations -> class scores), both run over the original graph and weights. Grad-CAM needs the
 * head as a function of the activations to differentiate it: tfjs cannot take gradients with respect
 * to an intermediate tensor of one forward pass.
 *
 * The halves are execution plans over the model's own nodes, not new models: re-applying layers to
 * new symbolic inputs would add nodes to them, after which `layer.output` of every head layer throws
 * ("multiple inbound nodes") for any other code using the model.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';

/** A graph node (one application of a layer); tfjs does not export the class itself. */
type LayerNode = tf.layers.Layer['inboundNodes'][number];

/** One layer application of a plan; tensors are identified by their symbolic tensor's id. */
interface Step {
  layer: tf.layers.Layer;
  inputs: readonly tf.SymbolicTensor[];
  outputs: readonly tf.SymbolicTensor[];
  /** Ids of tensors whose last consumer is this step (freed after it when the plan allows). */
  lastUseOf: number[];
}

/** The two halves of a model, see {@link runBackbone} and {@link runHead}. */
export interface SplitModel {
  layerName: string;
  /** The target layer's output. */
  activation: tf.SymbolicTensor;
  /** Tensors the head needs that do not depend on the target (e.g. a shortcut bypassing it); held
   * constant when differentiating, which is the partial derivative Grad-CAM wants. */
  context: tf.SymbolicTensor[];
  backbone: Step[];
  head: Step[];
  /** The last tensor the head computes. */
  headOutput: tf.SymbolicTensor;
  /**
   * `logit`: the head stops before the model's final activation (the input of a final softmax /
   * sigmoid `Activation` layer, or a final `Dense`'s pre-activation via {@link SplitModel.dense}).
   * `output`: the model's output as is, for heads of any other shape.
   */
  score: 'logit' | 'output';
  /** Set when the final layer is a `Dense`: `headOutput` is that layer's input, and logits are
   * `input · kernel + bias` with that layer's current weights (see {@link denseLogits}). */
  dense?: tf.layers.Layer;
}

const cache = new WeakMap<tf.LayersModel, Map<string, SplitModel>>();

/**
 * Splits `model` at the layer named `layerName` (cached per model and layer). The model itself is
 * not modified.
 *
 * Works for any DAG in which the target layer is applied once; nested models count as one layer.
 *
 * @throws MlError `INVALID_ARGUMENT` when the layer is missing, is not a 4-D feature map
 *   `[batch, h, w, channels]`, is applied more than once, or does not influence the output.
 */
export function splitModelAt(model: tf.LayersModel, layerName: string): SplitModel {
  let perModel = cache.get(model);
  if (!perModel) {
    perModel = new Map();
    cache.set(model, perModel);
  }
  const cached = perModel.get(layerName);
  if (cached) return cached;
  const split = buildSplit(model, layerName);
  perModel.set(layerName, split);
  return split;
}

/**
 * Runs the backbone in inference mode. Call inside `tf.tidy` or dispose the results.
 * @param input `[batch, h, w, c]` model input.
 * @returns `[activations [batch, h', w', k], ...context]`.
 */
export function runBackbone(split: SplitModel, model: tf.LayersModel, input: tf.Tensor): tf.Tensor[] {
  return tf.tidy(() => {
    const values = new Map<number, tf.Tensor>([[(model.inputs[0] as tf.SymbolicTensor).id, input]]);
    const keep = new Set([split.activation.id, ...split.context.map((t) => t.id), ...model.inputs.map((t) => t.id)]);
    runSteps(split.backbone, values, keep);
    return [split.activation, ...split.context].map((t) => values.get(t.id) as tf.Tensor);
  });
}

/**
 * Runs the head in inference mode, differentiably: `[batch, units]` class scores (logits when
 * `split.score` is `logit`).
 */
export function runHead(split: SplitModel, activations: tf.Tensor, context: readonly tf.Tensor[]): tf.Tensor2D {
  return tf.tidy(() => {
    const values = new Map<number, tf.Tensor>([[split.activation.id, activations]]);
    split.context.forEach((t, i) => values.set(t.id, context[i] as tf.Tensor));
    // No early frees under a gradient tape; the head is a few small layers anyway.
    runSteps(split.head, values, null);
    const out = values.get(split.headOutput.id) as tf.Tensor;
    return split.dense ? denseLogits(split.dense, out) : (out as tf.Tensor2D);
  });
}

/**
 * The default Grad-CAM layer: the last layer whose output is a 4-D feature map and that is not a
 * pooling or dropout layer (Grad-CAM explains the last convolutional block, not its downsampling).
 * For the project's architectures this is `block5_conv3`, `conv5_block3_out`, `mixed10` and the
 * CNN's last `block<n>_relu`.
 * @throws MlError `INVALID_ARGUMENT` when the model has no such layer.
 */
export function defaultGradCamLayer(model: tf.LayersModel): string {
  for (let i = model.layers.length - 1; i >= 0; i--) {
    const layer = model.layers[i] as tf.layers.Layer;
    const className = layer.getClassName();
    if (className === 'InputLayer' || /Pooling|Dropout/.test(className)) continue;
    if (isFeatureMapShape(layer.outputShape)) return layer.name;
  }
  throw new MlError('INVALID_ARGUMENT', 'The model has no layer with a 4-D feature-map output to explain.');
}

/**
 * Pre-activation output of a `Dense` layer for `inputs` `[batch, in]`: `[batch, units]` logits.
 * Reads the layer's variables at call time, so a model trained after splitting is explained as it is now.
 */
export function denseLogits(dense: tf.layers.Layer, inputs: tf.Tensor): tf.Tensor2D {
  return tf.tidy((): tf.Tensor2D => {
    // The layer's variables themselves (`read()`), not copies: tidy keeps variables, so nothing leaks.
    const [kernel, bias] = dense.getWeights();
    const product: tf.Tensor2D = tf.matMul(inputs as tf.Tensor2D, kernel as tf.Tensor2D);
    return bias ? (tf.add(product, bias) as tf.Tensor2D) : product;
  });
}

function buildSplit(model: tf.LayersModel, layerName: string): SplitModel {
  const target = model.layers.find((layer) => layer.name === layerName);
  if (!target) {
    const candidates = model.layers.filter((l) => isFeatureMapShape(l.outputShape)).map((l) => l.name);
    throw new MlError(
      'INVALID_ARGUMENT',
      `No layer "${layerName}" in model "${model.name}"; layers with feature-map outputs: ${candidates.slice(-8).join(', ')}.`,
    );
  }
  if (!isFeatureMapShape(target.outputShape)) {
    throw new MlError(
      'INVALID_ARGUMENT',
      `Layer "${layerName}" outputs ${JSON.stringify(target.outputShape)}; Grad-CAM needs a 4-D feature map [batch, h, w, channels].`,
    );
  }
  if (model.inputs.length !== 1) {
    throw new MlError('INVALID_ARGUMENT', `Grad-CAM supports single-input models; "${model.name}" has ${model.inputs.length}.`);
  }
  const { headOutput, score, dense } = chooseScore(model.outputs[0] as tf.SymbolicTensor);

  const dependsMemo = new Map<number, boolean>();
  const dependsOnTarget = (t: tf.SymbolicTensor): boolean => {
    let result = dependsMemo.get(t.id);
    if (result === undefined) {
      result = t.sourceLayer === target || (!isSource(t) && nodeOf(t).inputTensors.some(dependsOnTarget));
      dependsMemo.set(t.id, result);
    }
    return result;
  };
  if (!dependsOnTarget(headOutput)) {
    throw new MlError('INVALID_ARGUMENT', `Layer "${layerName}" does not influence the model's output.`);
  }

  // Walk back from the head's output: stop at the target's output and at tensors that do not depend
  // on it (the context); everything in between is the head.
  let activation: tf.SymbolicTensor | null = null;
  const context: tf.SymbolicTensor[] = [];
  const contextIds = new Set<number>();
  const findBoundary = (t: tf.SymbolicTensor, seen: Set<number>): void => {
    if (seen.has(t.id)) return;
    seen.add(t.id);
    if (t.sourceLayer === target) {
      if (activation !== null && activation.id !== t.id) {
        throw new MlError('INVALID_ARGUMENT', `Layer "${layerName}" is applied more than once; Grad-CAM needs a single feature map.`);
      }
      activation = t;
    } else if (!dependsOnTarget(t)) {
      if (!contextIds.has(t.id)) {
        contextIds.add(t.id);
        context.push(t);
      }
    } else {
      for (const input of nodeOf(t).inputTensors) findBoundary(input, seen);
    }
  };
  findBoundary(headOutput, new Set());
  const found = activation as tf.SymbolicTensor | null;
  if (found === null) throw new MlError('INVALID_ARGUMENT', `Layer "${layerName}" was not reached from the model's output.`);

  const head = plan([headOutput], new Set([found.id, ...contextIds]));
  const backbone = plan([found, ...context], new Set(model.inputs.map((t) => t.id)));
  const split: SplitModel = {
    layerName,
    activation: found,
    context,
    backbone,
    head,
    headOutput,
    score,
  };
  if (dense) split.dense = dense;
  return split;
}

/**
 * The layer applications that compute `fetches` from the `fed` tensors, in topological order
 * (depth-first post-order), with the last consumer of every intermediate tensor.
 */
function plan(fetches: readonly tf.SymbolicTensor[], fed: ReadonlySet<number>): Step[] {
  const steps: Step[] = [];
  const available = new Set(fed);
  const visit = (t: tf.SymbolicTensor): void => {
    if (available.has(t.id)) return;
    if (isSource(t)) throw new MlError('INVALID_ARGUMENT', `Tensor ${t.name} is needed but not provided.`);
    const node = nodeOf(t);
    for (const input of node.inputTensors) visit(input);
    steps.push({ layer: t.sourceLayer, inputs: node.inputTensors, outputs: node.outputTensors, lastUseOf: [] });
    for (const output of node.outputTensors) available.add(output.id);
  };
  for (const t of fetches) visit(t);

  const lastConsumer = new Map<number, Step>();
  for (const step of steps) for (const input of step.inputs) lastConsumer.set(input.id, step);
  for (const [id, step] of lastConsumer) step.lastUseOf.push(id);
  return steps;
}

/**
 * Executes `steps` on concrete tensors (no graph nodes are created), as tfjs's own executor does:
 * `layer.apply` with `training: false`. With `keep`, intermediates not in it are freed after their
 * last consumer, so a VGG16 forward pass does not hold every activation at once.
 */
function runSteps(steps: readonly Step[], values: Map<number, tf.Tensor>, keep: ReadonlySet<number> | null): void {
  for (const step of steps) {
    const inputs = step.inputs.map((t) => values.get(t.id) as tf.Tensor);
    const applied = step.layer.apply(inputs.length === 1 ? (inputs[0] as tf.Tensor) : inputs, { training: false });
    const outputs = (Array.isArray(applied) ? applied : [applied]) as tf.Tensor[];
    step.outputs.forEach((t, i) => values.set(t.id, outputs[i] as tf.Tensor));
    if (keep === null) continue;
    for (const id of step.lastUseOf) {
      const value = values.get(id);
      if (keep.has(id) || value === undefined) continue;
      values.delete(id);
      // Layer.apply clones an output that is its input, but a custom layer's call may still alias a
      // tensor: free it only when no live entry refers to the same object.
      if (![...values.values()].includes(value)) value.dispose();
    }
  }
}

/**
 * What the head outputs. Grad-CAM (Selvaraju et al.) differentiates the pre-softmax score: the
 * softmax couples classes (the gradient of p_c involves every other logit) and saturates when
 * p_c is near 1, which flattens the map of a confident prediction.
 */
function chooseScore(output: tf.SymbolicTensor): Pick<SplitModel, 'score' | 'dense' | 'headOutput'> {
  const last = output.sourceLayer;
  const lastInput = isSource(output) ? undefined : nodeOf(output).inputTensors[0];
  const className = last.getClassName();
  if (className === 'Dense' && lastInput?.shape.length === 2) {
    return { headOutput: lastInput, score: 'logit', dense: last };
  }
  const activation = (last.getConfig() as { activation?: unknown }).activation;
  if (className === 'Activation' && (activation === 'softmax' || activation === 'sigmoid') && lastInput) {
    return { headOutput: lastInput, score: 'logit' };
  }
  return { headOutput: output, score: 'output' };
}

function nodeOf(t: tf.SymbolicTensor): LayerNode {
  const node = t.sourceLayer.inboundNodes[t.nodeIndex];
  if (!node) throw new MlError('INVALID_ARGUMENT', `Tensor ${t.name} has no producing node.`);
  return node;
}

/** A model input: its node lists the tensor itself as its input, so graph walks stop here. */
function isSource(t: tf.SymbolicTensor): boolean {
  return nodeOf(t).inboundLayers.length === 0;
}

function isFeatureMapShape(shape: tf.Shape | tf.Shape[]): boolean {
  return Array.isArray(shape) && shape.length === 4 && shape.every((d, i) => i === 0 || typeof d === 'number');
}
