/**
 * The data layer: scan a dataset folder, split it, preprocess and augment images, stream batches,
 * weigh classes and find duplicates. See README.md in this folder.
 * @module
 */
export * from './types.ts';
export { scanDataset, assertMinImageSize, datasetHash, SPLIT_FOLDER_ALIASES, DATASET_CONFIG_FILE, SKIPPED_FILES_LISTED } from './scan.ts';
export type { ScanOptions, MinImageSize } from './scan.ts';
export { splitDataset, splitMembership, stratumSizes } from './split.ts';
export type { SplitOptions, SplitRecord, DatasetSplits } from './split.ts';
export {
  loadImageTensorData,
  decodeImagePixels,
  normalisePixels,
  preprocessingRecord,
  imageOptionsFromRecord,
  validateImageOptions,
  CAFFE_MEAN_BGR,
  CAFFE_MEAN_GRAY,
  DEFAULT_LIMIT_INPUT_PIXELS,
  DEFAULT_DECODE_TIMEOUT_SECONDS,
  NORMALISATION_MODES,
  RESIZE_MODES,
} from './preprocess.ts';
export type { ImageOptions, DecodeLimits, ImageGeometry, NormalisationMode, ResizeMode, PreprocessingRecord } from './preprocess.ts';
export { resolveAugmentOptions, sampleAugmentParams, applyAugmentation, DEFAULT_AUGMENT } from './augment.ts';
export type { AugmentOptions, ResolvedAugmentOptions, AugmentParams } from './augment.ts';
export { classWeights } from './class-weights.ts';
export { createBatchStream, epochBatches } from './batches.ts';
export type { Batch, BatchStream, BatchStreamOptions, BatchStreamStats } from './batches.ts';
export { findDuplicates, perceptualHash, hammingDistance64, DEFAULT_NEAR_DUPLICATE_THRESHOLD } from './duplicates.ts';
export type { DuplicateOptions, DuplicateInput, DuplicateGroup, CrossSplitLeak, DuplicateReport } from './duplicates.ts';
export { hasImageExtension, sniffImageFormat, looksComplete, IMAGE_EXTENSIONS } from './image-format.ts';
export type { ImageFormat } from './image-format.ts';
