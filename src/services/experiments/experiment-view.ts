/**
 * Builds the API's view of an experiment from its files alone (record, progress files, cancel
 * marker), so old experiments whose queue jobs were trimmed answer exactly like live ones, and the
 * answer does not depend on Redis being up.
 * @module
 */
import type { Architecture } from '../../ml/models/index.ts';
import type {
  ArchitectureProgressRecord,
  ArchitectureStatus,
  ArchitectureView,
  ExperimentRecord,
  ExperimentStatus,
  ExperimentView,
} from './experiment.types.ts';

/** Where a completed experiment's report is served. */
export function reportUrl(experimentId: string): string {
  return `/v1/reports/${experimentId}`;
}

/** What {@link buildExperimentView} reads. */
export interface ExperimentFiles {
  record: ExperimentRecord;
  /** Each architecture's progress file; missing or null before its training started. */
  progress: Partial<Record<Architecture, ArchitectureProgressRecord | null>>;
  cancelRequested: boolean;
}

/** The experiment's status: the record's, except that a cancel marker wins over a live status. */
export function experimentStatus(files: ExperimentFiles): ExperimentStatus {
  const { record } = files;
  if (record.status === 'completed' || record.status === 'failed') return record.status;
  if (files.cancelRequested || record.status === 'cancelled') return 'cancelled';
  if (record.status === 'queued' && Object.values(files.progress).some((p) => p !== null && p !== undefined)) return 'running';
  return record.status;
}

/**
 * An architecture's status within an experiment of status `overall`: training that had not
 * finished when the experiment was cancelled or failed counts as cancelled, whatever its file
 * last said (its worker may have died before writing again).
 */
function architectureStatus(overall: ExperimentStatus, progress: ArchitectureProgressRecord | null): ArchitectureStatus {
  const own = progress?.status ?? 'queued';
  if (own === 'completed' || own === 'failed' || own === 'cancelled') return own;
  if (overall === 'cancelled' || overall === 'failed') return 'cancelled';
  if (overall === 'completed') return 'completed';
  return own;
}

/** The view of one architecture. */
export function architectureView(overall: ExperimentStatus, architecture: Architecture, epochs: number, progress: ArchitectureProgressRecord | null): ArchitectureView {
  const status = architectureStatus(overall, progress);
  const lastRun = progress?.runs.at(-1);
  return {
    architecture,
    status,
    epoch: progress?.epoch ?? 0,
    epochs: progress?.epochs ?? epochs,
    progress: status === 'completed' ? 1 : clamp01(progress?.progress ?? 0),
    etaSeconds: status === 'running' ? (progress?.etaSeconds ?? null) : null,
    history: progress?.history ?? [],
    ...(progress?.result === undefined ? {} : { result: progress.result }),
    ...(progress?.error === undefined ? {} : { error: progress.error }),
    attempts: progress?.runs.length ?? 0,
    ...(lastRun?.fromEpoch !== undefined && lastRun.fromEpoch > 1 ? { resumedFromEpoch: lastRun.fromEpoch - 1 } : {}),
  };
}

/**
 * The view `GET /v1/experiments/{id}` answers with.
 * @example
 * const view = buildExperimentView({ record, progress: { cnn: cnnProgress }, cancelRequested: false });
 * view.architectures[0]?.progress; // 0.5
 */
export function buildExperimentView(files: ExperimentFiles): ExperimentView {
  const { record } = files;
  const status = experimentStatus(files);
  return {
    id: record.id,
    status,
    datasetId: record.datasetId,
    settings: record.settings,
    createdAt: record.createdAt,
    ...(record.startedAt === undefined ? {} : { startedAt: record.startedAt }),
    ...(record.finishedAt === undefined ? {} : { finishedAt: record.finishedAt }),
    ...(record.error === undefined ? {} : { error: record.error }),
    architectures: record.settings.architectures.map((architecture) =>
      architectureView(status, architecture, record.settings.epochs, files.progress[architecture] ?? null),
    ),
    ...(status === 'completed' ? { reportUrl: reportUrl(record.id), winner: record.winner ?? null } : {}),
  };
}

function clamp01(value: number): number {
  return Number.isFinite(value) ? Math.min(1, Math.max(0, value)) : 0;
}
