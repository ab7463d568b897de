/**
 * What the training sandbox's processors share: the worker process's configuration, the artifact
 * store, the experiment records and the model registry. The sandbox is a worker thread; its
 * configuration comes from the worker process as `workerData` (so a process started with a Config
 * object, as tests and `start` do, trains with exactly that), and from the environment through
 * `loadConfig` only when it runs elsewhere.
 * @module
 */
import { isMainThread, workerData } from 'node:worker_threads';
import { ArtifactStore } from '../infra/artifact-store.ts';
import { loadConfig, type Config } from '../infra/config.ts';
import { StorageGuard, type RoomCheck } from '../infra/storage.ts';
import type { ExperimentReport } from '../ml/experiment/index.ts';
import { ExperimentRecords } from '../services/experiments/experiment-records.ts';
import { ModelRegistry } from '../services/models/model-registry.ts';

/** `workerData` of a training sandbox thread. */
export interface TrainingSandboxData {
  config: Config;
}

/** What `compare` needs of the model registry. */
export interface ExperimentModelRegistry {
  /** Registers each architecture's model of a finished experiment; resolves to the model ids. */
  registerFromExperiment(experimentId: string, report: ExperimentReport, experimentDir: string, options?: { datasetId?: string }): Promise<string[]>;
  /** Gives `alias` to `modelId` when no model holds it; true when it did. */
  promoteIfUnset(alias: string, modelId: string): Promise<boolean>;
  /** Every alias and the model it names. */
  aliases(): Promise<Readonly<Record<string, string>>>;
}

export interface TrainingContext {
  config: Config;
  store: ArtifactStore;
  records: ExperimentRecords;
  registry: ExperimentModelRegistry;
  /** How often a running `train` job looks for the cancel marker, ms. */
  cancelPollMs: number;
  /** Holds training back while the data directory is below `DATA_DIR_MIN_FREE_BYTES`. */
  storage: RoomCheck;
}

/** Builds a context from a configuration. */
export function createTrainingContext(config: Config, overrides: Partial<Omit<TrainingContext, 'config'>> = {}): TrainingContext {
  const store = overrides.store ?? new ArtifactStore(config.DATA_DIR);
  return {
    config,
    store,
    records: overrides.records ?? new ExperimentRecords(store),
    registry: overrides.registry ?? new ModelRegistry(store),
    cancelPollMs: overrides.cancelPollMs ?? 1_000,
    storage: overrides.storage ?? new StorageGuard(store.root, config.DATA_DIR_MIN_FREE_BYTES),
  };
}

let current: TrainingContext | undefined;

/** The sandbox's context, made once per thread. */
export function trainingContext(): TrainingContext {
  if (current === undefined) {
    const data = workerData as Partial<TrainingSandboxData> | null | undefined;
    const config = !isMainThread && data?.config !== undefined ? Object.freeze(data.config) : loadConfig();
    current = createTrainingContext(config);
  }
  return current;
}
