/**
 * tfjs LayersModel -> ONNX (opset {@link ONNX_OPSET}). The graph takes the same input as the tfjs
 * model, `input` `[batch, height, width, channels]` float32 already preprocessed, and returns
 * `probabilities` `[batch, classes]`; `batch` is a symbolic dimension, so any batch size runs.
 * Preprocessing (decode, resize, normalise) stays in our TypeScript code: the file records how in its
 * metadata (`fracture_service.preprocessing`), so anyone serving it elsewhere can repeat it.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { CONVERTERS, type GraphValue } from './layer-converters.ts';
import { ONNX_OPSET, OnnxGraphBuilder } from './onnx-graph.ts';

/** Name of the model file beside the tfjs files in a model directory. */
export const ONNX_MODEL_FILE = 'model.onnx';
/** Graph input: `[batch, height, width, channels]` float32, preprocessed. */
export const ONNX_INPUT_NAME = 'input';
/** Graph output: `[batch, classes]` float32 softmax probabilities. */
export const ONNX_OUTPUT_NAME = 'probabilities';
/** Name of the symbolic batch dimension. */
export const ONNX_BATCH_DIM = 'batch';

/** What the exporter writes into the file's metadata besides the graph. */
export interface OnnxExportInfo {
  /** e.g. `resnet50`. */
  architecture: string;
  /** Output column `i` is `classNames[i]`. */
  classNames: readonly string[];
  positiveClasses: readonly string[];
  /** The model directory's `preprocessing` record (how an image becomes the input). */
  preprocessing: object;
  /** Version written as the producer version (ours). */
  producerVersion?: string;
  /** Extra `metadata_props` entries (strings), e.g. a model id. */
  extraMetadata?: Readonly<Record<string, string>>;
}

/**
 * Converts `model` to an ONNX ModelProto.
 * @param model a functional LayersModel of one NHWC image input and one `[batch, classes]` output,
 *   made of the layers in `CONVERTERS` (all four architectures, either head); each layer applied once.
 * @returns the bytes of `model.onnx`
 * @throws MlError `EXPORT_UNSUPPORTED` naming the first layer or setting with no ONNX equivalent here.
 * @example
 * const bytes = exportToOnnx(model, { architecture: 'cnn', classNames, positiveClasses: [], preprocessing });
 * await writeFile('model.onnx', bytes);
 */
export function exportToOnnx(model: tf.LayersModel, info: OnnxExportInfo): Uint8Array {
  if (model.inputs.length !== 1 || model.outputs.length !== 1) {
    throw new MlError('EXPORT_UNSUPPORTED', `ONNX export needs one input and one output; the model has ${model.inputs.length} and ${model.outputs.length}.`);
  }
  const [, height, width, channels] = model.inputs[0]!.shape;
  const classes = model.outputs[0]!.shape.at(-1);
  if (typeof height !== 'number' || typeof width !== 'number' || typeof channels !== 'number' || typeof classes !== 'number' || model.outputs[0]!.shape.length !== 2) {
    throw new MlError('EXPORT_UNSUPPORTED', `ONNX export needs a fixed [batch, H, W, C] input and a [batch, classes] output; got ${JSON.stringify(model.inputs[0]!.shape)} -> ${JSON.stringify(model.outputs[0]!.shape)}.`);
  }

  const graph = new OnnxGraphBuilder();
  graph.addInput(ONNX_INPUT_NAME, [ONNX_BATCH_DIM, height, width, channels]);
  // tfjs symbolic tensor id -> the graph value holding it.
  const values = new Map<number, GraphValue>();
  values.set(model.inputs[0]!.id, {
    name: graph.addNode('Transpose', [ONNX_INPUT_NAME], 'input_nchw', { perm: [0, 3, 1, 2] }),
    layout: 'nchw',
  });

  tf.tidy(() => {
    for (const layer of model.layers) {
      if (layer.getClassName() === 'InputLayer') continue;
      if (layer.inboundNodes.length !== 1) {
        throw new MlError('EXPORT_UNSUPPORTED', `Cannot export layer "${layer.name}": it is applied ${layer.inboundNodes.length} times (shared layers are not supported).`);
      }
      const convert = CONVERTERS[layer.getClassName()];
      if (convert === undefined) {
        throw new MlError('EXPORT_UNSUPPORTED', `Cannot export layer "${layer.name}": no ONNX converter for ${layer.getClassName()}.`);
      }
      const inputs = asArray(layer.input).map((tensor) => {
        const value = values.get(tensor.id);
        if (value === undefined) throw new MlError('EXPORT_UNSUPPORTED', `Layer "${layer.name}" reads a tensor the exporter has not produced (layers out of order?).`);
        return value;
      });
      const output = layer.output;
      if (Array.isArray(output)) throw new MlError('EXPORT_UNSUPPORTED', `Cannot export layer "${layer.name}": it has several outputs.`);
      values.set(output.id, convert({ layer, inputs, graph }));
    }
  });

  const result = values.get(model.outputs[0]!.id);
  if (result === undefined || result.layout !== 'flat') {
    throw new MlError('EXPORT_UNSUPPORTED', 'The model output was not produced as [batch, classes].');
  }
  graph.addNode('Identity', [result.name], ONNX_OUTPUT_NAME);
  graph.addOutput(ONNX_OUTPUT_NAME, [ONNX_BATCH_DIM, classes]);

  return graph.toModelBytes({
    graphName: info.architecture,
    producerVersion: info.producerVersion ?? '0.0.0',
    docString: `${info.architecture} bone X-ray classifier: input [batch, ${height}, ${width}, ${channels}] preprocessed as metadata fracture_service.preprocessing says, output softmax probabilities over fracture_service.class_names.`,
    metadata: {
      'fracture_service.architecture': info.architecture,
      'fracture_service.class_names': JSON.stringify(info.classNames),
      'fracture_service.positive_classes': JSON.stringify(info.positiveClasses),
      'fracture_service.input_shape': JSON.stringify([height, width, channels]),
      'fracture_service.input_layout': 'NHWC',
      'fracture_service.preprocessing': JSON.stringify(info.preprocessing),
      'fracture_service.opset': String(ONNX_OPSET),
      ...info.extraMetadata,
    },
  });
}

function asArray(input: tf.SymbolicTensor | tf.SymbolicTensor[]): tf.SymbolicTensor[] {
  return Array.isArray(input) ? input : [input];
}
