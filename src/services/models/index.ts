/**
 * The model registry: registered models, their aliases and their servable files.
 * @module
 */
export { ModelRegistry, versionOf, type ModelRegistryOptions, type RegisterOptions } from './model-registry.ts';
export { AliasStore, type AliasMap } from './alias-store.ts';
export { linkOrCopy } from './link-files.ts';
export {
  ALIAS_PATTERN,
  DEFAULT_ALIAS,
  REGISTRY_FILE,
  REGISTRY_SCHEMA_VERSION,
  modelIdFor,
  summariseMetrics,
  type ModelMetricsSummary,
  type ModelView,
  type RegistryRecord,
  type ResolvedModel,
} from './model.types.ts';
