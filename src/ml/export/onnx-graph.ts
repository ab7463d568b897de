/**
 * A small builder for ONNX graphs on the official schema (`onnx.proto`, compiled for
 * `@bufbuild/protobuf` by the `onnx-buf` package): nodes with typed attributes, float32 and int64
 * initializers, graph inputs and outputs with a symbolic batch dimension, and serialisation to the
 * ModelProto bytes that ONNX Runtime, Triton and the `onnx` Python package read.
 * @module
 */
import { create, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType,
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataType,
  TensorProtoSchema,
  TensorShapeProto_DimensionSchema,
  TensorShapeProtoSchema,
  TypeProto_TensorSchema,
  TypeProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type NodeProto,
  type TensorProto,
  type ValueInfoProto,
} from 'onnx-buf';

/**
 * Operator set of the default domain the exporter targets. 17 is supported by every ONNX Runtime
 * since 1.13, by Triton's ONNX Runtime backend and by TensorRT 8.5+, and covers every op we emit
 * (Pad and Softmax took their current form in 13, BatchNormalization in 15).
 */
export const ONNX_OPSET = 17;

/** IR version 8: the file format of ONNX 1.12, the release that introduced opset 17. */
export const ONNX_IR_VERSION = 8n;

/** An attribute value: a number is an INT unless given as `{ float }`. */
export type AttributeValue = number | { float: number } | string | readonly number[];

/** One dimension of a graph input or output: a fixed size or a symbolic name (e.g. `batch`). */
export type Dimension = number | string;

/** Builds one GraphProto node by node; {@link toModelBytes} wraps it in a ModelProto. */
export class OnnxGraphBuilder {
  readonly #nodes: NodeProto[] = [];
  readonly #initializers: TensorProto[] = [];
  readonly #inputs: ValueInfoProto[] = [];
  readonly #outputs: ValueInfoProto[] = [];
  readonly #usedNames = new Set<string>();

  /**
   * A value name not used before, derived from `base` (the Keras layer name, so a graph viewer shows
   * the layers the model was built with).
   */
  uniqueName(base: string): string {
    let name = base;
    for (let i = 1; this.#usedNames.has(name); i++) name = `${base}_${i}`;
    this.#usedNames.add(name);
    return name;
  }

  /** Declares a float32 graph input. */
  addInput(name: string, shape: readonly Dimension[]): void {
    this.#usedNames.add(name);
    this.#inputs.push(valueInfo(name, shape));
  }

  /** Declares a float32 graph output (a value some node produces). */
  addOutput(name: string, shape: readonly Dimension[]): void {
    this.#outputs.push(valueInfo(name, shape));
  }

  /**
   * Adds a float32 constant (weights).
   * @param values row-major data of `dims`
   * @returns its name
   */
  addFloatInitializer(base: string, dims: readonly number[], values: Float32Array): string {
    const expected = dims.reduce((product, dim) => product * dim, 1);
    if (values.length !== expected) {
      throw new Error(`initializer ${base}: ${values.length} values for shape [${dims.join(', ')}]`);
    }
    const name = this.uniqueName(base);
    // raw_data is little-endian; copy so a later change to `values` cannot alter the graph.
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice();
    this.#initializers.push(
      create(TensorProtoSchema, { name, dims: dims.map(BigInt), dataType: TensorProto_DataType.FLOAT, rawData: bytes }),
    );
    return name;
  }

  /** Adds an int64 constant (shapes, pads). */
  addInt64Initializer(base: string, values: readonly number[]): string {
    const name = this.uniqueName(base);
    this.#initializers.push(
      create(TensorProtoSchema, {
        name,
        dims: [BigInt(values.length)],
        dataType: TensorProto_DataType.INT64,
        int64Data: values.map(BigInt),
      }),
    );
    return name;
  }

  /**
   * Adds a node of the default domain.
   * @param outputBase name (made unique) of its single output
   * @returns the output's name
   */
  addNode(
    opType: string,
    inputs: readonly string[],
    outputBase: string,
    attributes: Readonly<Record<string, AttributeValue>> = {},
  ): string {
    const output = this.uniqueName(outputBase);
    this.#nodes.push(
      create(NodeProtoSchema, {
        opType,
        name: output,
        input: [...inputs],
        output: [output],
        attribute: Object.entries(attributes).map(([name, value]) => attribute(name, value)),
      }),
    );
    return output;
  }

  /**
   * The complete model file.
   * @param metadata free-form `metadata_props` (ONNX Runtime exposes them as custom metadata)
   */
  toModelBytes(options: { graphName: string; producerVersion: string; docString: string; metadata: Readonly<Record<string, string>> }): Uint8Array {
    const graph = create(GraphProtoSchema, {
      name: options.graphName,
      node: this.#nodes,
      initializer: this.#initializers,
      input: this.#inputs,
      output: this.#outputs,
    });
    const model = create(ModelProtoSchema, {
      irVersion: ONNX_IR_VERSION,
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(ONNX_OPSET) })],
      producerName: 'fracture-service',
      producerVersion: options.producerVersion,
      docString: options.docString,
      graph,
      metadataProps: Object.entries(options.metadata).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
    });
    return toBinary(ModelProtoSchema, model);
  }
}

function valueInfo(name: string, shape: readonly Dimension[]): ValueInfoProto {
  const dim = shape.map((size) =>
    create(
      TensorShapeProto_DimensionSchema,
      typeof size === 'number' ? { value: { case: 'dimValue', value: BigInt(size) } } : { value: { case: 'dimParam', value: size } },
    ),
  );
  const tensorType = create(TypeProto_TensorSchema, { elemType: TensorProto_DataType.FLOAT, shape: create(TensorShapeProtoSchema, { dim }) });
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensorType } }) });
}

function attribute(name: string, value: AttributeValue): AttributeProto {
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer; pass { float } for a float`);
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INT, i: BigInt(value) });
  }
  if (typeof value === 'string') {
    return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.STRING, s: new TextEncoder().encode(value) });
  }
  if ('float' in value) return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.FLOAT, f: value.float });
  return create(AttributeProtoSchema, { name, type: AttributeProto_AttributeType.INTS, ints: value.map(BigInt) });
}
