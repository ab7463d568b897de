/**
 * One converter per Keras layer class the four architectures use, each adding the equivalent ONNX
 * nodes. Tensors inside the graph are NCHW (ONNX's Conv, pooling and BatchNormalization layout, and
 * what ONNX Runtime's CPU kernels are fastest with); the model's input stays NHWC like the tfjs
 * model's, and is transposed once at the start. Flatten transposes back to NHWC first so that a Keras
 * top's dense weights (trained on NHWC order) line up.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import type { AttributeValue, OnnxGraphBuilder } from './onnx-graph.ts';

/** A value of the ONNX graph and how its axes are laid out. */
export interface GraphValue {
  readonly name: string;
  /** `nchw` for feature maps, `flat` for `[batch, features]`. */
  readonly layout: 'nchw' | 'flat';
}

/** What a converter gets: the layer, its inputs in the graph, and the builder. */
export interface ConversionContext {
  readonly layer: tf.layers.Layer;
  readonly inputs: readonly GraphValue[];
  readonly graph: OnnxGraphBuilder;
}

type Converter = (context: ConversionContext) => GraphValue;

/** Layer class names the exporter understands (tfjs's and our own BN classes). */
export const CONVERTERS: Readonly<Record<string, Converter>> = {
  Conv2D: convertConv2d,
  Dense: convertDense,
  BatchNormalization: convertBatchNorm,
  FastBatchNormalization: convertBatchNorm,
  ScalelessBatchNormalization: convertBatchNorm,
  Activation: (context) => activation(context, String(config(context.layer)['activation'] ?? 'linear'), only(context)),
  ReLU: (context) => {
    // A capped ReLU (ReLU6) would need a Clip: refused rather than exported wrong.
    const maxValue = config(context.layer)['maxValue'];
    if (maxValue !== undefined && maxValue !== null) unsupported(context.layer, `maxValue ${String(maxValue)}`);
    return activation(context, 'relu', only(context));
  },
  Softmax: (context) => {
    const axis = config(context.layer)['axis'];
    if (axis !== undefined && axis !== -1) unsupported(context.layer, `softmax over axis ${JSON.stringify(axis)} (only the last)`);
    return activation(context, 'softmax', only(context));
  },
  MaxPooling2D: (context) => convertPooling(context, 'MaxPool'),
  AveragePooling2D: (context) => convertPooling(context, 'AveragePool'),
  GlobalAveragePooling2D: (context) => convertGlobalPooling(context, 'GlobalAveragePool'),
  GlobalMaxPooling2D: (context) => convertGlobalPooling(context, 'GlobalMaxPool'),
  ZeroPadding2D: convertZeroPadding,
  Flatten: convertFlatten,
  // Identities at inference time.
  Dropout: only,
  SpatialDropout2D: only,
  GaussianNoise: only,
  GaussianDropout: only,
  Add: (context) => convertMerge(context, 'Sum'),
  Concatenate: convertConcatenate,
};

function convertConv2d(context: ConversionContext): GraphValue {
  const { layer, graph } = context;
  const x = nchw(context);
  const cfg = config(layer);
  const [kh, kw] = pair(cfg['kernelSize'], 'kernelSize', layer);
  const strides = pair(cfg['strides'] ?? 1, 'strides', layer);
  const dilations = pair(cfg['dilationRate'] ?? 1, 'dilationRate', layer);
  if (cfg['dataFormat'] !== undefined && cfg['dataFormat'] !== 'channelsLast') unsupported(layer, `dataFormat ${String(cfg['dataFormat'])}`);
  const [, height, width] = spatialInputShape(layer);
  const pads = paddingFor(String(cfg['padding'] ?? 'valid'), [height, width], [kh, kw], strides, dilations, layer);

  const weights = namedWeights(layer);
  const kernel = required(weights, 'kernel', layer);
  // Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw].
  // Not via tf.tidy's return value: tidy walks returned arrays element by element.
  const transposed = tf.transpose(kernel, [3, 2, 0, 1]);
  const onnxKernel = transposed.dataSync() as Float32Array;
  transposed.dispose();
  const inputs = [x.name, graph.addFloatInitializer(`${layer.name}_W`, [kernel.shape[3]!, kernel.shape[2]!, kh, kw], onnxKernel)];
  const bias = weights.get('bias');
  if (bias !== undefined) inputs.push(graph.addFloatInitializer(`${layer.name}_B`, bias.shape, bias.dataSync() as Float32Array));
  const y = graph.addNode('Conv', inputs, layer.name, { kernel_shape: [kh, kw], strides, dilations, pads, group: 1 });
  return activation(context, String(cfg['activation'] ?? 'linear'), { name: y, layout: 'nchw' }, `${layer.name}_act`);
}

function convertDense(context: ConversionContext): GraphValue {
  const { layer, graph } = context;
  const x = only(context);
  if (x.layout !== 'flat') unsupported(layer, 'a Dense layer on a feature map (Flatten or pool first)');
  const weights = namedWeights(layer);
  const kernel = required(weights, 'kernel', layer);
  const w = graph.addFloatInitializer(`${layer.name}_W`, kernel.shape, kernel.dataSync() as Float32Array);
  const bias = weights.get('bias');
  const y =
    bias === undefined
      ? graph.addNode('MatMul', [x.name, w], layer.name)
      : graph.addNode('Gemm', [x.name, w, graph.addFloatInitializer(`${layer.name}_B`, bias.shape, bias.dataSync() as Float32Array)], layer.name);
  return activation(context, String(config(layer)['activation'] ?? 'linear'), { name: y, layout: 'flat' }, `${layer.name}_act`);
}

/**
 * Inference-mode batch normalisation with the moving statistics. A layer without `scale` (InceptionV3)
 * or `center` gets ones or zeros, as Keras would use. ONNX Runtime folds it into the preceding Conv.
 */
function convertBatchNorm(context: ConversionContext): GraphValue {
  const { layer, graph } = context;
  const x = only(context);
  const cfg = config(layer);
  const axis = cfg['axis'];
  if (axis !== undefined && axis !== -1 && !(Array.isArray(axis) && axis.length === 1 && (axis[0] === -1 || axis[0] === 3))) {
    if (!(x.layout === 'nchw' && axis === 3) && !(x.layout === 'flat' && axis === 1)) unsupported(layer, `axis ${JSON.stringify(axis)}`);
  }
  const weights = namedWeights(layer);
  const mean = required(weights, 'moving_mean', layer);
  const variance = required(weights, 'moving_variance', layer);
  const channels = mean.shape[0]!;
  const gamma = weights.get('gamma')?.dataSync() as Float32Array | undefined;
  const beta = weights.get('beta')?.dataSync() as Float32Array | undefined;
  const inputs = [
    x.name,
    graph.addFloatInitializer(`${layer.name}_gamma`, [channels], gamma ?? new Float32Array(channels).fill(1)),
    graph.addFloatInitializer(`${layer.name}_beta`, [channels], beta ?? new Float32Array(channels)),
    graph.addFloatInitializer(`${layer.name}_mean`, [channels], mean.dataSync() as Float32Array),
    graph.addFloatInitializer(`${layer.name}_var`, [channels], variance.dataSync() as Float32Array),
  ];
  const epsilon = Number(cfg['epsilon'] ?? 1e-3);
  return { name: graph.addNode('BatchNormalization', inputs, layer.name, { epsilon: { float: epsilon } }), layout: x.layout };
}

/**
 * Max or average pooling. Keras's average pooling with `same` padding divides by the number of
 * pixels inside the image, which is ONNX's `count_include_pad = 0`.
 */
function convertPooling(context: ConversionContext, opType: 'MaxPool' | 'AveragePool'): GraphValue {
  const { layer, graph } = context;
  const x = nchw(context);
  const cfg = config(layer);
  const kernel = pair(cfg['poolSize'] ?? 2, 'poolSize', layer);
  const strides = pair(cfg['strides'] ?? cfg['poolSize'] ?? 2, 'strides', layer);
  const [, height, width] = spatialInputShape(layer);
  const pads = paddingFor(String(cfg['padding'] ?? 'valid'), [height, width], kernel, strides, [1, 1], layer);
  const attributes: Record<string, AttributeValue> = { kernel_shape: kernel, strides, pads };
  if (opType === 'AveragePool') attributes['count_include_pad'] = 0;
  return { name: graph.addNode(opType, [x.name], layer.name, attributes), layout: 'nchw' };
}

function convertGlobalPooling(context: ConversionContext, opType: 'GlobalAveragePool' | 'GlobalMaxPool'): GraphValue {
  const { layer, graph } = context;
  if (config(layer)['keepDims'] === true) unsupported(layer, 'keepDims');
  const pooled = graph.addNode(opType, [nchw(context).name], `${layer.name}_pool`);
  // [N, C, 1, 1] -> [N, C]
  return { name: graph.addNode('Flatten', [pooled], layer.name, { axis: 1 }), layout: 'flat' };
}

function convertZeroPadding(context: ConversionContext): GraphValue {
  const { layer, graph } = context;
  const x = nchw(context);
  const padding = config(layer)['padding'];
  let top: number, bottom: number, left: number, right: number;
  if (typeof padding === 'number') [top, bottom, left, right] = [padding, padding, padding, padding];
  else if (Array.isArray(padding) && padding.length === 2 && padding.every((p) => typeof p === 'number')) {
    const [rows, cols] = padding as [number, number];
    [top, bottom, left, right] = [rows, rows, cols, cols];
  }
  else if (Array.isArray(padding) && padding.every((p) => Array.isArray(p) && p.length === 2)) {
    const [[t, b], [l, r]] = padding as [[number, number], [number, number]];
    [top, bottom, left, right] = [t, b, l, r];
  } else return unsupported(layer, `padding ${JSON.stringify(padding)}`);
  const pads = graph.addInt64Initializer(`${layer.name}_pads`, [0, 0, top, left, 0, 0, bottom, right]);
  return { name: graph.addNode('Pad', [x.name, pads], layer.name, { mode: 'constant' }), layout: 'nchw' };
}

function convertFlatten(context: ConversionContext): GraphValue {
  const { layer, graph } = context;
  const x = only(context);
  if (x.layout === 'flat') return x;
  // Keras flattens NHWC; the dense weights after it expect that order.
  const nhwc = graph.addNode('Transpose', [x.name], `${layer.name}_nhwc`, { perm: [0, 2, 3, 1] });
  return { name: graph.addNode('Flatten', [nhwc], layer.name, { axis: 1 }), layout: 'flat' };
}

function convertMerge(context: ConversionContext, opType: 'Sum'): GraphValue {
  const { layer, graph, inputs } = context;
  const layout = sameLayout(context);
  return { name: graph.addNode(opType, inputs.map((input) => input.name), layer.name), layout };
}

function convertConcatenate(context: ConversionContext): GraphValue {
  const { layer, graph, inputs } = context;
  const layout = sameLayout(context);
  const axis = Number(config(layer)['axis'] ?? -1);
  const lastAxis = layout === 'nchw' ? 3 : 1;
  if (axis !== -1 && axis !== lastAxis) unsupported(layer, `concatenation on axis ${axis} (only the channel axis)`);
  // The channel axis is 1 in both NCHW and [N, features].
  return { name: graph.addNode('Concat', inputs.map((input) => input.name), layer.name, { axis: 1 }), layout };
}

/** Appends the activation `name` (Keras's names) after `x`; `linear` adds nothing. */
function activation(context: ConversionContext, name: string, x: GraphValue, outputBase = context.layer.name): GraphValue {
  const { graph, layer } = context;
  switch (name) {
    case 'linear':
      return x;
    case 'relu':
      return { name: graph.addNode('Relu', [x.name], outputBase), layout: x.layout };
    case 'sigmoid':
      return { name: graph.addNode('Sigmoid', [x.name], outputBase), layout: x.layout };
    case 'tanh':
      return { name: graph.addNode('Tanh', [x.name], outputBase), layout: x.layout };
    case 'softmax':
      // Keras normalises over the last axis: the channel axis, which is axis 1 in both layouts.
      return { name: graph.addNode('Softmax', [x.name], outputBase, { axis: 1 }), layout: x.layout };
    default:
      return unsupported(layer, `activation "${name}"`);
  }
}

/** The layer's one input. */
function only(context: ConversionContext): GraphValue {
  if (context.inputs.length !== 1) unsupported(context.layer, `${context.inputs.length} inputs`);
  return context.inputs[0]!;
}

function nchw(context: ConversionContext): GraphValue {
  const x = only(context);
  if (x.layout !== 'nchw') unsupported(context.layer, 'a flat input where a feature map is expected');
  return x;
}

function sameLayout(context: ConversionContext): GraphValue['layout'] {
  const layouts = new Set(context.inputs.map((input) => input.layout));
  if (layouts.size !== 1 || context.inputs.length < 2) unsupported(context.layer, 'inputs of different ranks');
  return context.inputs[0]!.layout;
}

function config(layer: tf.layers.Layer): Record<string, unknown> {
  return layer.getConfig() as Record<string, unknown>;
}

/** `[batch, height, width, channels]` of the layer's (single) input, every size known. */
function spatialInputShape(layer: tf.layers.Layer): [null, number, number, number] {
  const shape = layer.inputSpec?.[0]?.shape ?? (layer.input as tf.SymbolicTensor).shape;
  const [, height, width, channels] = shape;
  if (shape.length !== 4 || typeof height !== 'number' || typeof width !== 'number' || typeof channels !== 'number') {
    return unsupported(layer, `an input of shape ${JSON.stringify(shape)} (height, width and channels must be fixed)`);
  }
  return [null, height, width, channels];
}

/** A Keras size argument (one number or two) as `[rows, cols]`. */
function pair(value: unknown, what: string, layer: tf.layers.Layer): [number, number] {
  if (typeof value === 'number') return [value, value];
  if (Array.isArray(value) && value.length === 2 && value.every((v) => typeof v === 'number')) return value as [number, number];
  return unsupported(layer, `${what} ${JSON.stringify(value)}`);
}

/**
 * Explicit ONNX pads `[top, left, bottom, right]` for Keras's `valid` or `same` on a known input:
 * TensorFlow's `same` puts the odd pixel at the bottom and right (ONNX's SAME_UPPER), written out so
 * the file does not rely on the deprecated `auto_pad`.
 */
export function paddingFor(
  padding: string,
  input: readonly [number, number],
  kernel: readonly [number, number],
  strides: readonly [number, number],
  dilations: readonly [number, number],
  layer: tf.layers.Layer,
): number[] {
  if (padding === 'valid') return [0, 0, 0, 0];
  if (padding !== 'same') return unsupported(layer, `padding "${padding}"`);
  const before: number[] = [];
  const after: number[] = [];
  for (let axis = 0; axis < 2; axis++) {
    const size = input[axis]!;
    const stride = strides[axis]!;
    const extent = (kernel[axis]! - 1) * dilations[axis]! + 1;
    const out = Math.ceil(size / stride);
    const total = Math.max((out - 1) * stride + extent - size, 0);
    before.push(Math.floor(total / 2));
    after.push(total - Math.floor(total / 2));
  }
  return [...before, ...after];
}

/** The layer's weights by short name (`kernel`, `bias`, `gamma`, `moving_mean` ...). */
function namedWeights(layer: tf.layers.Layer): Map<string, tf.Tensor> {
  const weights = new Map<string, tf.Tensor>();
  for (const variable of layer.weights) {
    const short = variable.originalName.split('/').at(-1)!.replace(/_\d+$/, '');
    weights.set(short, variable.read());
  }
  return weights;
}

function required(weights: Map<string, tf.Tensor>, name: string, layer: tf.layers.Layer): tf.Tensor {
  const weight = weights.get(name);
  if (weight === undefined) unsupported(layer, `missing weight "${name}"`);
  return weight;
}

function unsupported(layer: tf.layers.Layer, what: string): never {
  throw new MlError('EXPORT_UNSUPPORTED', `Cannot export layer "${layer.name}" (${layer.getClassName()}) to ONNX: ${what}.`);
}
