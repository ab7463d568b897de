/**
 * The first model of a fresh installation (`fracture-service start --bootstrap`, which `npm start`
 * runs). When no model holds the alias `production`, it picks a dataset — the first trainable one
 * under `DATA_DIR/datasets/`, else a synthetic one it generates there — and runs an experiment
 * through the {@link ExperimentService}: the same queue, workers and `compare` job as any API
 * client's, so the winner is registered and promoted by the service itself and the page shows the
 * run live. It shows the progress, prints the comparison from the report, and warms the predictor.
 *
 * It never throws for a failed training: the service keeps serving (the page, the API) and the
 * outcome says what went wrong. An experiment left unfinished by an earlier start (stopped with
 * Ctrl+C) is followed again instead of starting another: its jobs resume from their checkpoints.
 * @module
 */
import type { ArtifactStore } from '../infra/artifact-store.ts';
import { AppError, toAppError } from '../infra/errors.ts';
import { compareJobId } from '../infra/queues.ts';
import { formatComparisonTable, type ExperimentReport } from '../ml/experiment/index.ts';
import { ARCHITECTURES, type Architecture } from '../ml/models/index.ts';
import { generateSyntheticDataset, SYNTH_REGIONS, type SynthRegion } from '../ml/synth/index.ts';
import type { DatasetService } from '../services/datasets/index.ts';
import type { ExperimentQueues } from '../services/experiments/experiment-queues.ts';
import { resolveExperimentSettings } from '../services/experiments/experiment-settings.ts';
import type { ExperimentService } from '../services/experiments/experiment.service.ts';
import { isFinalStatus, type ExperimentError, type ExperimentRequest, type ExperimentView, type ExperimentWinner } from '../services/experiments/experiment.types.ts';
import type { ModelRegistry } from '../services/models/model-registry.ts';
import { DEFAULT_ALIAS, type ResolvedModel } from '../services/models/model.types.ts';
import type { PredictorStatus } from '../serving/predictor.ts';

/** Folders the bootstrap generated itself start with this; a user's datasets are preferred to them. */
export const SYNTHETIC_DATASET_PREFIX = 'synthetic-';

/** Seed of the synthetic dataset: the same settings give the same images on every machine. */
const SYNTHETIC_SEED = 42;

/** Side of the synthetic images at least, pixels: smaller renderings lose the thin fracture lines. */
const MIN_SYNTHETIC_SIZE = 96;

/** How the first model is trained. */
export interface BootstrapSettings {
  /** Square input side, pixels (InceptionV3 needs at least 75). */
  imageSize: number;
  /** Epochs per architecture. */
  epochs: number;
  /** Synthetic images per class, when a synthetic dataset has to be generated. */
  perClass: number;
  architectures: Architecture[];
  /** Body regions of the synthetic dataset: two classes each (fractured, normal). */
  regions: SynthRegion[];
}

/**
 * The defaults of `npm start`: the four architectures on 75 px inputs (the smallest InceptionV3
 * takes) for 2 epochs, and a synthetic set of 10 classes x 20 images when there is no dataset. The
 * whole first start took 4 to 4.5 minutes on 2 cores (WASM backend), half of it VGG16: short enough
 * for a first look with room for a slower machine. It shows every part working; it does not make a
 * good model (on real X-rays, train longer: the page or `POST /v1/experiments`).
 */
export const DEFAULT_BOOTSTRAP_SETTINGS: Readonly<BootstrapSettings> = Object.freeze({
  imageSize: 75,
  epochs: 2,
  perClass: 20,
  architectures: [...ARCHITECTURES],
  regions: [...SYNTH_REGIONS],
});

/** Flag of each setting, for messages. */
const FLAG_OF: Readonly<Record<string, string>> = {
  imageSize: '--bootstrap-image-size',
  epochs: '--bootstrap-epochs',
  architectures: '--bootstrap-architectures',
  perClass: '--bootstrap-per-class',
  regions: '--bootstrap-regions',
};

/**
 * Every problem of `settings`, one sentence each naming its flag; empty when they are valid. The
 * experiment service's own rules decide (the same as for `POST /v1/experiments`).
 * @example
 * checkBootstrapSettings({ ...DEFAULT_BOOTSTRAP_SETTINGS, imageSize: 64 });
 * // ['--bootstrap-image-size: inceptionv3 needs imageSize >= 75, got 64']
 */
export function checkBootstrapSettings(settings: BootstrapSettings): string[] {
  const { problems } = resolveExperimentSettings(experimentRequest('check', settings));
  const flagged = problems.map((problem) => {
    const field = Object.keys(FLAG_OF).find((name) => problem.includes(name)) ?? (/architecture/.test(problem) ? 'architectures' : undefined);
    return field === undefined ? problem : `${FLAG_OF[field]}: ${problem}`;
  });
  if (settings.regions.length === 0) flagged.push(`${FLAG_OF.regions}: at least one region is needed`);
  if (!Number.isInteger(settings.perClass) || settings.perClass < 1) flagged.push(`${FLAG_OF.perClass}: must be a positive integer, got ${settings.perClass}`);
  return flagged;
}

/** The experiment the bootstrap asks for: the settings given, the service's defaults for the rest. */
function experimentRequest(datasetId: string, settings: BootstrapSettings): ExperimentRequest {
  return { datasetId, architectures: settings.architectures, imageSize: settings.imageSize, epochs: settings.epochs };
}

/** Folder name of the synthetic dataset for `settings`: another size or region set makes another one. */
export function syntheticDatasetId(settings: Pick<BootstrapSettings, 'imageSize' | 'perClass' | 'regions'>): string {
  const all = settings.regions.length === SYNTH_REGIONS.length && SYNTH_REGIONS.every((region) => settings.regions.includes(region));
  const regions = all ? '' : `-${[...settings.regions].sort().join('-')}`;
  return `${SYNTHETIC_DATASET_PREFIX}${syntheticImageSize(settings.imageSize)}px-${settings.perClass}${regions}`;
}

function syntheticImageSize(imageSize: number): number {
  return Math.max(imageSize, MIN_SYNTHETIC_SIZE);
}

/** Shows a running experiment (`src/cli/progress/service-progress.ts` is the terminal's). */
export interface BootstrapProgress {
  update(view: ExperimentView): void;
  /** A line without a newline, printed without breaking the display. */
  log(line: string): void;
  stop(): void;
}

/** What the bootstrap works with. */
export interface BootstrapDeps {
  /** The services of the `start` process. */
  context: {
    store: ArtifactStore;
    datasets: Pick<DatasetService, 'list'>;
    experiments: Pick<ExperimentService, 'create' | 'list' | 'watch'>;
    models: Pick<ModelRegistry, 'resolve'>;
    queues: Pick<ExperimentQueues, 'trainingQueue'>;
  };
  /** Loads and warms the `production` model in the predictor. */
  warmUp(): Promise<PredictorStatus>;
  /** Prints one line for people. */
  print(line: string): void;
  /** Creates the progress display of the experiment. */
  createProgress(): BootstrapProgress;
  /** Where the API is served, for the links printed. */
  baseUrl: string;
  /** Aborted when the process shuts down: following stops, the outcome is `stopped`. */
  signal?: AbortSignal;
}

/** How the bootstrap ended. */
export type BootstrapOutcome =
  /** A model held `production` already: nothing was trained. */
  | { status: 'existing'; model: ResolvedModel }
  /** The experiment completed; `serving` is the predictor after the warm-up. */
  | { status: 'trained'; experimentId: string; winner: ExperimentWinner | null; serving: PredictorStatus }
  /** Nothing serves: the experiment (or what came before it) failed. */
  | { status: 'failed'; experimentId?: string; error: ExperimentError }
  /** The process began shutting down while the experiment ran; it resumes on the next start. */
  | { status: 'stopped'; experimentId?: string };

/**
 * Trains and promotes a first model unless one holds `production`; see the module comment.
 * @example
 * const outcome = await bootstrapFirstModel({ context, warmUp: () => predictor.warmUp(), print, createProgress, baseUrl }, DEFAULT_BOOTSTRAP_SETTINGS);
 * if (outcome.status === 'failed') console.error(outcome.error.detail);
 */
export async function bootstrapFirstModel(deps: BootstrapDeps, settings: BootstrapSettings): Promise<BootstrapOutcome> {
  const { context, print } = deps;
  let experimentId: string | undefined;
  try {
    const existing = await productionModel(context.models);
    if (existing !== null) {
      print(`${existing.id} (${existing.architecture}, version ${existing.version}) holds the alias ${DEFAULT_ALIAS}: nothing to train. Start more experiments on the page or with POST /v1/experiments.`);
      return { status: 'existing', model: existing };
    }

    const unfinished = await unfinishedExperiment(context);
    let experiment: ExperimentView;
    if (unfinished !== null) {
      experiment = unfinished;
      print(`No model holds the alias ${DEFAULT_ALIAS} yet. Resuming experiment ${experiment.id} (started ${experiment.createdAt} on dataset ${experiment.datasetId}).`);
    } else {
      print(`No model holds the alias ${DEFAULT_ALIAS} yet: training a first one.`);
      const datasetId = await chooseDataset(deps, settings);
      experiment = await context.experiments.create(experimentRequest(datasetId, settings));
      const { settings: used } = experiment;
      print(
        `Experiment ${experiment.id}: ${used.architectures.join(', ')} on ${datasetId}, ${used.imageSize}x${used.imageSize} px, ` +
          `${used.epochs} epoch${used.epochs === 1 ? '' : 's'} each, batch ${used.batchSize}, seed ${used.seed}.`,
      );
    }
    experimentId = experiment.id;
    print(`Follow it on the page (${deps.baseUrl}/) or at ${deps.baseUrl}/v1/experiments/${experiment.id}/events.`);

    const final = await follow(deps, experiment.id);
    if (final === null) return { status: 'stopped', experimentId };
    if (final.status !== 'completed') {
      const error = final.error ?? { code: 'INTERNAL', detail: `the experiment ended as ${final.status}` };
      print(`Experiment ${final.id} ${final.status === 'cancelled' ? 'was cancelled' : 'failed'}: ${error.code}: ${error.detail}`);
      print('Fix the cause and start again (a new first model is trained then), or start an experiment on the page.');
      return { status: 'failed', experimentId, error };
    }
    await printComparison(deps, final);
    const serving = await deps.warmUp();
    if (!serving.ready) print(`The predictor could not load the model: ${serving.code ?? 'INTERNAL'}: ${serving.detail ?? 'unknown reason'}`);
    return { status: 'trained', experimentId, winner: final.winner ?? null, serving };
  } catch (error) {
    if (deps.signal?.aborted) return { status: 'stopped', ...(experimentId === undefined ? {} : { experimentId }) };
    const appError = toAppError(error);
    const detail = appError.code === 'INTERNAL' && error instanceof Error ? error.message : appError.message;
    print(`Could not train a first model: ${appError.code}: ${detail}`);
    return { status: 'failed', ...(experimentId === undefined ? {} : { experimentId }), error: { code: appError.code, detail } };
  }
}

/** The model holding `production`, or null when none does. */
async function productionModel(models: Pick<ModelRegistry, 'resolve'>): Promise<ResolvedModel | null> {
  try {
    return await models.resolve(DEFAULT_ALIAS);
  } catch (error) {
    if (error instanceof AppError && error.code === 'MODEL_NOT_FOUND') return null;
    throw error;
  }
}

/**
 * The newest queued or running experiment whose jobs are still in the queue: one an earlier start
 * began and was stopped during. Its record alone is not enough: jobs lost with a Redis that did not
 * keep its data would leave it waiting forever.
 */
async function unfinishedExperiment(context: BootstrapDeps['context']): Promise<ExperimentView | null> {
  for (const view of await context.experiments.list()) {
    if (isFinalStatus(view.status)) continue;
    if ((await context.queues.trainingQueue.getJob(compareJobId(view.id))) !== undefined) return view;
  }
  return null;
}

/** The first trainable dataset of the user, else the synthetic one (generated when missing). */
async function chooseDataset(deps: BootstrapDeps, settings: BootstrapSettings): Promise<string> {
  const { context, print } = deps;
  const datasetsDir = context.store.datasetsDir;
  const datasets = await context.datasets.list();
  for (const dataset of datasets) {
    if (dataset.id.startsWith(SYNTHETIC_DATASET_PREFIX)) continue;
    if (dataset.problem === null) {
      print(`Dataset: ${dataset.id} (${dataset.classes.length} classes, ${dataset.imageCount} images), the first in ${datasetsDir}.`);
      return dataset.id;
    }
    print(`Skipping dataset ${dataset.id}: ${dataset.problem.detail}`);
  }
  const id = syntheticDatasetId(settings);
  const existing = datasets.find((dataset) => dataset.id === id && dataset.problem === null);
  if (existing !== undefined) {
    print(`No dataset of yours in ${datasetsDir}: using the synthetic one generated earlier, ${id} (${existing.imageCount} images).`);
    return id;
  }
  const size = syntheticImageSize(settings.imageSize);
  const synth = await generateSyntheticDataset({
    outDir: context.store.datasetDir(id),
    perClass: settings.perClass,
    size,
    seed: SYNTHETIC_SEED,
    regions: settings.regions,
    force: true,
  });
  print(
    `No dataset of yours in ${datasetsDir}: generated a synthetic one, ${id} ` +
      `(${synth.classNames.length} classes: ${settings.regions.length} regions x fractured/normal; ${synth.files} images of ${size}x${size} px). ` +
      `Put a folder of class folders there to train on your own X-rays.`,
  );
  return id;
}

/**
 * Shows the experiment until it ends. Resolves with its final view, or null when `deps.signal`
 * aborts first (shutdown).
 */
async function follow(deps: BootstrapDeps, experimentId: string): Promise<ExperimentView | null> {
  if (deps.signal?.aborted) return null;
  const view = deps.createProgress();
  try {
    return await new Promise<ExperimentView | null>((resolve, reject) => {
      let unsubscribe: (() => void) | undefined;
      let settled = false;
      const finish = (result: ExperimentView | null): void => {
        if (settled) return;
        settled = true;
        unsubscribe?.();
        deps.signal?.removeEventListener('abort', onAbort);
        resolve(result);
      };
      const onAbort = (): void => finish(null);
      deps.signal?.addEventListener('abort', onAbort, { once: true });
      deps.context.experiments
        .watch(experimentId, (current) => {
          if (settled) return;
          view.update(current);
          if (isFinalStatus(current.status)) finish(current);
        })
        .then((stop) => {
          unsubscribe = stop;
          if (settled) stop();
        }, (error: unknown) => {
          deps.signal?.removeEventListener('abort', onAbort);
          reject(error);
        });
    });
  } finally {
    view.stop();
  }
}

/** Prints the comparison table of the report, the winner and what it serves as. */
async function printComparison(deps: BootstrapDeps, experiment: ExperimentView): Promise<void> {
  const { context, print, baseUrl } = deps;
  const reportFile = context.store.reportFile(experiment.id);
  const report = await context.store.readJson<ExperimentReport>(reportFile);
  print('');
  if (report === null) {
    print(`Experiment ${experiment.id} completed, but its report is missing (${reportFile}).`);
  } else {
    const testImages = report.results[0]?.metrics.macroAvg.support;
    print(`Comparison on the test split of ${experiment.datasetId}${testImages === undefined ? '' : ` (${testImages} images)`}, backend ${report.backend.name}:`);
    print('');
    for (const line of formatComparisonTable(report).split('\n')) print(line);
  }
  print('');
  const winner = experiment.winner ?? null;
  if (winner === null) {
    print('No architecture could be ranked: no model was promoted.');
  } else if (winner.promoted) {
    print(`The winner, ${winner.architecture}, is now the ${DEFAULT_ALIAS} model: ${winner.modelId}`);
  } else {
    print(`The winner, ${winner.architecture}, is registered as ${winner.modelId}; another model already held the alias ${DEFAULT_ALIAS}, so that one still serves.`);
  }
  print(`Report (tables, learning curves, confusion matrices, ROC): ${baseUrl}/v1/reports/${experiment.id}; files in ${context.store.experimentDir(experiment.id)}`);
}
