/**
 * The `compare` job, parent of an experiment's `train` jobs. BullMQ starts it when every child has
 * completed, or as soon as one has finally failed (the children have `continueParentOnFailure`).
 *
 * - All children done: build the report from their saved results (the engine's `onlyCached` mode:
 *   nothing is trained here), register each architecture's model, give the winner the `production`
 *   alias when no model holds it, and mark the experiment `completed` with the winner.
 * - A child failed: mark the experiment `failed` with that child's `{code, detail}` (its progress
 *   file has it; a job that stalled too often has none, and gets a generic one). The other children
 *   see the experiment has ended and stop within a second.
 * - Cancelled: nothing to do; the job ends unrecoverably.
 * - The data directory full: held back as delayed until there is room (`storage-hold.ts`).
 *
 * Idempotent: a rerun after a crash finds the experiment completed and returns the same outcome;
 * model registration is idempotent, and the report is rewritten identically but for its time stamp.
 * @module
 */
import { UnrecoverableError, type SandboxedJob } from 'bullmq';
import { toAppError } from '../infra/errors.ts';
import type { CompareJob } from '../infra/queues.ts';
import { runExperiment } from '../ml/experiment/index.ts';
import { isArchitecture, type Architecture } from '../ml/models/index.ts';
import { engineOptions } from '../services/experiments/experiment-settings.ts';
import { DEFAULT_ALIAS, modelIdFor } from '../services/models/model.types.ts';
import type { ExperimentError, ExperimentRecord, ExperimentWinner } from '../services/experiments/experiment.types.ts';
import { holdForStorage } from './storage-hold.ts';
import type { TrainingContext } from './training-context.ts';

/** What a `compare` job returns (stored in Redis). */
export interface CompareJobResult {
  experimentId: string;
  winner: ExperimentWinner | null;
  modelIds: string[];
}

/** Checks a `compare` job's data; bad data can never succeed, so it is unrecoverable. */
export function parseCompareJobData(data: unknown): CompareJob['data'] {
  const value = data as Partial<CompareJob['data']> | null;
  if (typeof value?.experimentId !== 'string') throw new UnrecoverableError('compare job data must be { experimentId }');
  return { experimentId: value.experimentId };
}

/** The architecture of a failed child, from its job key (`{prefix}:training:{experimentId}.{arch}`). */
export function architectureOfJobKey(jobKey: string): Architecture | null {
  const suffix = jobKey.slice(jobKey.lastIndexOf('.') + 1);
  return isArchitecture(suffix) ? suffix : null;
}

/** Runs a `compare` job. */
export async function processCompareJob(job: SandboxedJob<CompareJob['data']>, token: string | undefined, context: TrainingContext): Promise<CompareJobResult> {
  const { experimentId } = parseCompareJobData(job.data);
  const { records, store } = context;
  const record = await records.read(experimentId);
  if (record === null) throw new UnrecoverableError(`experiment ${experimentId} has no record`);
  if (record.status === 'completed') return { experimentId, winner: record.winner ?? null, modelIds: record.modelIds ?? [] };
  if (record.status === 'cancelled' || (await records.cancelRequested(experimentId))) {
    throw new UnrecoverableError('the experiment was cancelled');
  }

  const failures = await job.getIgnoredChildrenFailures();
  if (record.status === 'failed' || Object.keys(failures).length > 0) {
    const error = record.error ?? (await describeFailure(context, experimentId, failures));
    await records.markFailed(experimentId, error);
    throw new UnrecoverableError(`the experiment failed: ${error.code}: ${error.detail}`);
  }

  const experimentDir = store.experimentDir(experimentId);
  let modelIds: string[];
  let winner: ExperimentWinner | null;
  try {
    await records.update(experimentId, (current) => ({ ...current, compareRuns: current.compareRuns + 1 }));
    const report = await runExperiment({
      dataDir: store.datasetDir(record.datasetId),
      outDir: experimentDir,
      architectures: record.settings.architectures,
      ...engineOptions(record.settings),
      backend: context.config.FRACTURE_BACKEND,
      onlyCached: true,
    });
    // A cancel that came while the report was built still wins, if it came before any model is published.
    if (await records.cancelRequested(experimentId)) throw new UnrecoverableError('the experiment was cancelled');
    modelIds = await context.registry.registerFromExperiment(experimentId, report, experimentDir, { datasetId: record.datasetId });
    winner = await promoteWinner(context, record, report.winner, report.ranking.metric, modelIds);
  } catch (error) {
    if (error instanceof UnrecoverableError) throw error;
    if (toAppError(error).code === 'INSUFFICIENT_STORAGE') throw await holdForStorage(job, token, context.config.STORAGE_RETRY_INTERVAL_MS);
    if (job.attemptsMade + 1 < (job.opts.attempts ?? 1)) throw error;
    // The last attempt: the experiment fails with this error rather than staying `running` forever.
    const appError = toAppError(error);
    await records.markFailed(experimentId, { code: appError.code, detail: `building the report failed: ${appError.message}` });
    throw new UnrecoverableError(`${appError.code}: ${appError.message}`);
  }
  const finishedAt = new Date().toISOString();
  const updated = await records.update(experimentId, (current) =>
    current.status === 'cancelled' || current.status === 'failed' ? null : { ...current, status: 'completed', finishedAt, winner, modelIds },
  );
  if (updated?.status !== 'completed') throw new UnrecoverableError(`the experiment ended as ${updated?.status ?? 'deleted'} while its report was built`);
  return { experimentId, winner, modelIds };
}

async function promoteWinner(
  context: TrainingContext,
  record: ExperimentRecord,
  winner: { architecture: string; score: number | null; reason: string } | null,
  metric: ExperimentWinner['metric'],
  modelIds: readonly string[],
): Promise<ExperimentWinner | null> {
  if (winner === null || !isArchitecture(winner.architecture)) return null;
  const modelId = modelIds.find((id) => id === modelIdFor(record.id, winner.architecture));
  if (modelId === undefined) throw new Error(`the winner ${winner.architecture} of ${record.id} was not registered`);
  // A rerun after a crash finds the alias already given to this very model by the first run.
  const promoted = (await context.registry.promoteIfUnset(DEFAULT_ALIAS, modelId)) || (await context.registry.aliases())[DEFAULT_ALIAS] === modelId;
  return { architecture: winner.architecture, modelId, metric, score: winner.score, reason: winner.reason, promoted };
}

/** Why the experiment failed: the first failed child's recorded error, else a generic account. */
async function describeFailure(context: TrainingContext, experimentId: string, failures: Record<string, string>): Promise<ExperimentError> {
  for (const [jobKey, reason] of Object.entries(failures)) {
    const architecture = architectureOfJobKey(jobKey);
    if (architecture === null) continue;
    const progress = await context.records.readProgress(experimentId, architecture).catch(() => null);
    if (progress?.error !== undefined && progress.status === 'failed') return progress.error;
    if (/stalled/.test(reason)) {
      return { code: 'INTERNAL', detail: `training of ${architecture} stopped: its worker died or stopped responding too many times` };
    }
    return { code: 'INTERNAL', detail: `training of ${architecture} failed` };
  }
  return { code: 'INTERNAL', detail: 'a training job failed' };
}
