/**
 * Saving and loading models: TensorFlow.js layers format plus `metadata.json`, written atomically.
 * @module
 */
export { saveModel, sha256, type SaveModelOptions, type SavedModelInfo } from './save-model.ts';
export { loadModel, resolveModelDir, type LoadModelOptions, type LoadedModel } from './load-model.ts';
export { isPlainFileName, parseModelJson, verifyModelFiles, weightFileNames, type VerifyModelFilesOptions } from './model-files.ts';
export { PROJECT_BN_CLASS, STANDARD_BN_CLASS, toPortableTopology, toProjectTopology } from './portable-topology.ts';
export {
  METADATA_FILE,
  METADATA_SCHEMA_VERSION,
  MODEL_JSON_FILE,
  detectVersions,
  parseMetadata,
  type ImageInputShape,
  type ModelMetadata,
  type ModelMetadataInput,
} from './model-metadata.ts';
export { DEFAULT_SHARD_BYTES, shardFileName } from './weight-shards.ts';
export { findOldCopy, fsyncPath, writeDirAtomically, writeFileDurable } from './atomic-dir.ts';
