/**
 * Datasets: listing with findings, and safe zip upload. See README.md in this folder.
 * @module
 */
export { DatasetService, datasetLimitsFromConfig, newDatasetId } from './dataset.service.ts';
export type * from './dataset.types.ts';
export { extractZipSafely, nameRule, ARCHIVE_RULES, RATIO_MIN_BYTES, MAX_CONFIG_BYTES, EXTRACT_TEMP_PREFIX } from './zip-extract.ts';
export type { ZipLimits, ExtractOptions, ExtractResult, ArchiveRule } from './zip-extract.ts';
export { DEFAULT_SPLIT } from './dataset-findings.ts';
