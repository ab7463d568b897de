/**
 * From a client's request to stored settings (defaults filled in by the ML engine's own rules), and
 * from stored settings to the engine's options. The engine's `checkExperimentConfig` is the one
 * authority on valid values, so the API and the CLI accept and refuse the same things.
 * @module
 */
import { checkExperimentConfig, RANK_METRICS, type ExperimentOptions } from '../../ml/experiment/index.ts';
import { ARCHITECTURES, type Architecture } from '../../ml/models/index.ts';
import type { ExperimentRequest, ExperimentSettings } from './experiment.types.ts';

/** Settings with defaults, and every problem found (one sentence each; empty when valid). */
export interface ResolvedSettings {
  settings: ExperimentSettings;
  problems: string[];
}

/**
 * Fills in defaults and lists every problem of `request` (the dataset is checked elsewhere).
 * @example
 * resolveExperimentSettings({ datasetId: 'xr', architectures: ['inceptionv3'], imageSize: 64 }).problems;
 * // ['inceptionv3 needs imageSize >= 75, got 64']
 */
export function resolveExperimentSettings(request: ExperimentRequest): ResolvedSettings {
  const { config, problems } = checkExperimentConfig({
    dataDir: '.',
    outDir: '.',
    architectures: request.architectures ?? ARCHITECTURES,
    ...definedOnly({
      imageSize: request.imageSize,
      channels: request.channels,
      epochs: request.epochs,
      batchSize: request.batchSize,
      learningRate: request.learningRate ?? undefined,
      optimizer: request.optimizer,
      seed: request.seed,
      valFraction: request.valFraction,
      testFraction: request.testFraction,
      augment: request.augment,
      classWeights: request.classWeights,
      earlyStoppingPatience: request.earlyStoppingPatience,
      reduceLrPatience: request.reduceLrPatience,
      rankBy: request.rankBy,
    }),
  });
  // The engine trusts TypeScript for these; the API's clients are not TypeScript.
  if (config.optimizer !== 'adam' && config.optimizer !== 'sgd') problems.push(`optimizer must be adam or sgd, got ${JSON.stringify(config.optimizer)}`);
  if (!(RANK_METRICS as readonly string[]).includes(config.rankBy)) problems.push(`rankBy must be one of ${RANK_METRICS.join(', ')}, got ${JSON.stringify(config.rankBy)}`);
  for (const name of ['augment', 'classWeights'] as const) {
    if (typeof config[name] !== 'boolean') problems.push(`${name} must be true or false`);
  }
  const settings: ExperimentSettings = {
    architectures: config.architectures as Architecture[],
    imageSize: config.imageSize,
    channels: config.channels,
    epochs: config.epochs,
    batchSize: config.batchSize,
    learningRate: config.learningRate,
    optimizer: config.optimizer,
    seed: config.seed,
    valFraction: config.valFraction,
    testFraction: config.testFraction,
    augment: config.augment,
    classWeights: config.classWeights,
    earlyStoppingPatience: config.earlyStoppingPatience,
    reduceLrPatience: config.reduceLrPatience,
    rankBy: config.rankBy,
  };
  return { settings, problems };
}

/** The engine options of stored settings (everything but paths, architectures and callbacks). */
export function engineOptions(settings: ExperimentSettings): Omit<ExperimentOptions, 'dataDir' | 'outDir' | 'architectures'> {
  return {
    imageSize: settings.imageSize,
    channels: settings.channels,
    epochs: settings.epochs,
    batchSize: settings.batchSize,
    ...(settings.learningRate === null ? {} : { learningRate: settings.learningRate }),
    optimizer: settings.optimizer,
    seed: settings.seed,
    valFraction: settings.valFraction,
    testFraction: settings.testFraction,
    augment: settings.augment,
    classWeights: settings.classWeights,
    earlyStoppingPatience: settings.earlyStoppingPatience,
    reduceLrPatience: settings.reduceLrPatience,
    rankBy: settings.rankBy,
  };
}

function definedOnly<T extends Record<string, unknown>>(values: T): Partial<T> {
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value !== undefined)) as Partial<T>;
}
