/**
 * Saves a tfjs LayersModel as a TensorFlow.js layers-format directory (`model.json` + 4 MiB weight
 * shards, loadable by `tf.loadLayersModel(url)` when served over HTTP) plus `metadata.json`, atomically.
 * @module
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { writeDirAtomically, writeFileDurable } from './atomic-dir.ts';
import {
  METADATA_FILE,
  MODEL_JSON_FILE,
  buildMetadata,
  validateMetadataInput,
  type ModelMetadata,
  type ModelMetadataInput,
} from './model-metadata.ts';
import { exportToOnnx, ONNX_MODEL_FILE } from '../export/index.ts';
import { toPortableTopology } from './portable-topology.ts';
import { DEFAULT_SHARD_BYTES, buildModelJson, buildWeightsManifest, splitIntoShards } from './weight-shards.ts';

export interface SaveModelOptions {
  /** Maximum bytes per weight shard. Default {@link DEFAULT_SHARD_BYTES} (4 MiB, as the tfjs converter). */
  shardBytes?: number;
  /**
   * Also save the optimizer state and training config (to resume training from the saved model).
   * Default `false`: a served model needs neither, and Adam's state triples the weight bytes.
   */
  includeOptimizer?: boolean;
  /**
   * Also write `model.onnx` (the same network exported to ONNX, see `src/ml/export`), listed and
   * hashed in `metadata.json` like every other file. Default `false`; training sets it so ONNX Runtime
   * can serve the model and MLOps teams can take the file to Triton or KServe.
   * @throws MlError `EXPORT_UNSUPPORTED` (nothing written) for a layer with no ONNX converter.
   */
  onnx?: boolean;
}

/** What {@link saveModel} wrote. */
export interface SavedModelInfo {
  /** Absolute path of the model directory. */
  dir: string;
  /** The record written to `metadata.json` (its `files` hold the sha256 of every other file). */
  metadata: ModelMetadata;
  /** Number of weight shard files. */
  shardCount: number;
  /** Bytes of weights (all shards). */
  weightBytes: number;
  /** Bytes of all files written, `metadata.json` included. */
  totalBytes: number;
}

/**
 * Saves `model` to `dir` in the TensorFlow.js layers format with its metadata.
 *
 * The write is atomic: a failure or crash at any point leaves the previous contents of `dir` (or no
 * `dir`), never a partial model. tfjs-node is not a dependency, so there is no `file://` handler:
 * the artifacts are captured with `tf.io.withSaveHandler` and written here.
 *
 * @param model Any LayersModel; custom layers must be registered with `tf.serialization.registerClass`
 *   so that loading can rebuild them.
 * @param dir Model directory, e.g. `${DATA_DIR}/models/<id>`; replaced if it exists.
 * @param metadata Described in {@link ModelMetadataInput}; validated against the model.
 * @throws MlError `INPUT_SHAPE_INVALID` / `INVALID_ARGUMENT` for metadata that does not fit the model.
 * @example
 * const info = await saveModel(model, 'data/models/m1', {
 *   architecture: 'cnn', classNames: ['normal', 'fractured'], positiveClasses: ['fractured'],
 *   inputShape: [64, 64, 1], preprocessing: { mode: 'unit', fit: 'letterbox' },
 * });
 * info.metadata.files['group1-shard1of1.bin']; // sha256 hex
 */
export async function saveModel(
  model: tf.LayersModel,
  dir: string,
  metadata: ModelMetadataInput,
  options: SaveModelOptions = {},
): Promise<SavedModelInfo> {
  validateMetadataInput(model, metadata);
  const artifacts = await captureArtifacts(model, options.includeOptimizer ?? false);
  if (artifacts.weightData === undefined || artifacts.weightSpecs === undefined) {
    throw new MlError('INVALID_ARGUMENT', 'The model produced no weight data to save.');
  }
  const shards = splitIntoShards(artifacts.weightData, options.shardBytes ?? DEFAULT_SHARD_BYTES);
  // The project's BN layer is written as the stock BatchNormalization (same weights, same order), so
  // plain `tf.loadLayersModel(url)` loads the files anywhere; loadModel maps it back.
  const portable: tf.io.ModelArtifacts = { ...artifacts, modelTopology: toPortableTopology(artifacts.modelTopology) };
  const modelJson = buildModelJson(portable, buildWeightsManifest(shards, artifacts.weightSpecs));
  // Exported before anything is written, so an unsupported layer leaves the directory untouched.
  const onnxBytes = options.onnx === true ? exportToOnnx(model, metadata) : undefined;

  const target = path.resolve(dir);
  let totalBytes = 0;
  const written = await writeDirAtomically(target, async (tempDir): Promise<ModelMetadata> => {
    const files: Record<string, string> = {};
    for (const shard of shards) {
      await writeFileDurable(path.join(tempDir, shard.name), shard.bytes);
      files[shard.name] = sha256(shard.bytes);
      totalBytes += shard.bytes.byteLength;
    }
    const modelText = JSON.stringify(modelJson);
    await writeFileDurable(path.join(tempDir, MODEL_JSON_FILE), modelText);
    files[MODEL_JSON_FILE] = sha256(modelText);
    totalBytes += Buffer.byteLength(modelText);
    if (onnxBytes !== undefined) {
      await writeFileDurable(path.join(tempDir, ONNX_MODEL_FILE), onnxBytes);
      files[ONNX_MODEL_FILE] = sha256(onnxBytes);
      totalBytes += onnxBytes.byteLength;
    }

    // Last, because it carries the hashes of everything above.
    const record = buildMetadata(metadata, files);
    const metadataText = `${JSON.stringify(record, null, 2)}\n`;
    await writeFileDurable(path.join(tempDir, METADATA_FILE), metadataText);
    totalBytes += Buffer.byteLength(metadataText);
    // Re-read through JSON so the returned record is exactly what a later load sees.
    return JSON.parse(metadataText) as ModelMetadata;
  });

  return {
    dir: target,
    metadata: written,
    shardCount: shards.length,
    weightBytes: shards.reduce((sum, shard) => sum + shard.bytes.byteLength, 0),
    totalBytes,
  };
}

/** Lower-case hex sha256 of `data` (strings are hashed as UTF-8). */
export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Runs `model.save` against an in-memory handler and returns the artifacts it produced. */
async function captureArtifacts(model: tf.LayersModel, includeOptimizer: boolean): Promise<tf.io.ModelArtifacts> {
  let captured: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      captured = artifacts;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
    { includeOptimizer },
  );
  if (captured === undefined) throw new MlError('INVALID_ARGUMENT', 'model.save produced no artifacts.');
  return captured;
}
