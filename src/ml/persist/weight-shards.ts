/**
 * Splits a model's weight bytes into shard files named and sized the way the TensorFlow.js converter
 * does (`group1-shard1of3.bin`, 4 MiB each), and builds the matching `weightsManifest`. Small shards
 * let browsers and HTTP caches fetch a large model (VGG16: 528 MB) piecewise and in parallel.
 * @module
 */
import * as tf from '@tensorflow/tfjs';

/** The converter's default shard size: 4 MiB. */
export const DEFAULT_SHARD_BYTES = 4 * 1024 * 1024;

/** One shard file to write: its name in the model directory and a view of its bytes. */
export interface WeightShard {
  name: string;
  bytes: Uint8Array;
}

/** Name of shard `index` (0-based) of `count` in weight group 1, as tfjs names them. */
export function shardFileName(index: number, count: number): string {
  return `group1-shard${index + 1}of${count}.bin`;
}

/**
 * Cuts `weightData` into consecutive shards of `shardBytes` (the last may be shorter). A weight may
 * straddle two shards: tfjs loaders concatenate a group's shards before slicing weights out, exactly
 * as with converter output. Views share memory with `weightData` when it is a single buffer.
 * @param weightData The concatenated weight bytes from `model.save` (an ArrayBuffer or a list of them).
 * @param shardBytes Maximum shard size in bytes, a positive multiple of 4 (float32 alignment is not
 *   required by the loader, but keeps shards readable on their own).
 */
export function splitIntoShards(weightData: tf.io.WeightData, shardBytes = DEFAULT_SHARD_BYTES): WeightShard[] {
  if (!Number.isInteger(shardBytes) || shardBytes <= 0 || shardBytes % 4 !== 0) {
    throw new RangeError(`shardBytes must be a positive multiple of 4, got ${shardBytes}`);
  }
  const composite = Array.isArray(weightData) ? new tf.io.CompositeArrayBuffer(weightData) : null;
  const total = composite ? composite.byteLength : (weightData as ArrayBuffer).byteLength;
  // A model without weights still gets one (empty) shard so the manifest has the usual shape.
  const count = Math.max(1, Math.ceil(total / shardBytes));
  const shards: WeightShard[] = [];
  for (let i = 0; i < count; i++) {
    const start = i * shardBytes;
    const end = Math.min(total, start + shardBytes);
    const bytes = composite
      ? new Uint8Array(composite.slice(start, end))
      : new Uint8Array(weightData as ArrayBuffer, start, end - start);
    shards.push({ name: shardFileName(i, count), bytes });
  }
  return shards;
}

/** The `weightsManifest` of `model.json`: one group listing every shard and every weight spec. */
export function buildWeightsManifest(
  shards: readonly WeightShard[],
  weightSpecs: readonly tf.io.WeightsManifestEntry[],
): tf.io.WeightsManifestConfig {
  return [{ paths: shards.map((shard) => shard.name), weights: [...weightSpecs] }];
}

/**
 * The `model.json` object for `artifacts`, field for field what tfjs's own handlers write
 * (tfjs-core `getModelJSONForModelArtifacts`, which the package does not export).
 */
export function buildModelJson(
  artifacts: tf.io.ModelArtifacts,
  weightsManifest: tf.io.WeightsManifestConfig,
): tf.io.ModelJSON {
  const json: tf.io.ModelJSON = {
    modelTopology: artifacts.modelTopology as object,
    format: artifacts.format,
    generatedBy: artifacts.generatedBy,
    convertedBy: artifacts.convertedBy,
    weightsManifest,
  };
  if (artifacts.signature != null) json.signature = artifacts.signature;
  if (artifacts.userDefinedMetadata != null) json.userDefinedMetadata = artifacts.userDefinedMetadata;
  if (artifacts.modelInitializer != null) json.modelInitializer = artifacts.modelInitializer;
  if (artifacts.initializerSignature != null) json.initializerSignature = artifacts.initializerSignature;
  if (artifacts.trainingConfig != null) json.trainingConfig = artifacts.trainingConfig;
  return json;
}
