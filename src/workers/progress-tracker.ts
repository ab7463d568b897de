/**
 * Turns one architecture's training events into its progress file (`progress/{arch}.json`) and the
 * job's BullMQ progress. Batch events arrive many times a second: they update the state in memory
 * and are written at most once per `throttleMs`; start, epoch and end events are written at once.
 * Writes are serialised, so the file always holds the latest state written, never an older one.
 *
 * The live history is built from `epoch` events (the epoch's wall time measured between events, to
 * the millisecond); when the architecture finishes it is replaced by the engine's exact history.
 * After a crash, the file keeps the epochs from before, and the resumed run continues after the
 * epoch of its checkpoint: a history entry beyond that checkpoint (possible only if the process
 * died between writing the checkpoint and this file) is dropped and retrained.
 * @module
 */
import type { ArchitectureResult, ExperimentEvent } from '../ml/experiment/index.ts';
import type { Architecture } from '../ml/models/index.ts';
import type { TrainProgressEvent } from '../ml/train/index.ts';
import type {
  ArchitectureProgressRecord,
  ArchitectureResultSummary,
  ArchitectureStatus,
  EpochView,
  ExperimentError,
} from '../services/experiments/experiment.types.ts';

/** The compact progress a `train` job reports to BullMQ (`job.progress`). */
export interface TrainJobProgress {
  architecture: Architecture;
  status: ArchitectureStatus;
  epoch: number;
  epochs: number;
  progress: number;
  etaSeconds: number | null;
}

export interface ProgressTrackerOptions {
  architecture: Architecture;
  /** Epochs the run is configured for (until the trainer says otherwise). */
  epochs: number;
  /** The file as an earlier attempt left it, if any: its history and runs are kept. */
  previous: ArchitectureProgressRecord | null;
  /** Persists the record (atomically). */
  write: (record: ArchitectureProgressRecord) => Promise<void>;
  /** Reports to the queue; failures are ignored (the file is the source of truth). */
  report?: (progress: TrainJobProgress) => Promise<void>;
  /** Least time between two throttled writes, ms. Default 1000. */
  throttleMs?: number;
  now?: () => number;
}

/** Headline metrics of a finished architecture. */
export function summarizeResult(result: ArchitectureResult): ArchitectureResultSummary {
  const { metrics } = result;
  return {
    accuracy: metrics.accuracy,
    macroF1: metrics.macroAvg.f1,
    balancedAccuracy: metrics.balancedAccuracy,
    mcc: metrics.mcc,
    rocAucOvrMacro: metrics.rocAucOvrMacro,
    fractureSensitivity: metrics.binary?.sensitivity ?? null,
    fractureSpecificity: metrics.binary?.specificity ?? null,
    fractureRocAuc: metrics.binary?.rocAuc ?? null,
    bestEpoch: result.bestEpoch,
    stoppedEarly: result.stoppedEarly,
    trainSeconds: result.timings.trainSeconds,
    inferenceMsPerImage: result.timings.inferenceMsPerImage,
    params: result.params,
    modelBytes: result.modelBytes,
  };
}

/** Tracks one run (one attempt) of one architecture's training. */
export class ProgressTracker {
  readonly #options: ProgressTrackerOptions;
  readonly #now: () => number;
  readonly #throttleMs: number;
  #state: ArchitectureProgressRecord;
  #writing: Promise<void> = Promise.resolve();
  #lastWrite = 0;
  #pending: NodeJS.Timeout | undefined;
  #epochStartedAt: number;
  /** Learning rate of the last batch: an `epoch` event already shows a reduction made at its end. */
  #epochLearningRate: number | undefined;
  #closed = false;

  constructor(options: ProgressTrackerOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#throttleMs = options.throttleMs ?? 1_000;
    this.#epochStartedAt = this.#now();
    const previous = options.previous;
    this.#state = {
      architecture: options.architecture,
      status: 'running',
      epoch: previous?.epoch ?? 0,
      epochs: previous?.epochs ?? options.epochs,
      batch: 0,
      batches: previous?.batches ?? null,
      progress: previous?.progress ?? 0,
      etaSeconds: null,
      history: previous?.history ?? [],
      runs: [...(previous?.runs ?? []), { startedAt: this.#iso() }],
      updatedAt: this.#iso(),
    };
  }

  /** The current record (a copy). */
  get state(): ArchitectureProgressRecord {
    return structuredClone(this.#state);
  }

  /** Writes the initial state of this run. */
  async begin(): Promise<void> {
    await this.#writeNow();
  }

  /** Takes one engine event (the experiment's `onEvent`). Never throws. */
  onEvent = (event: ExperimentEvent): void => {
    if (this.#closed) return;
    if (event.type === 'architecture-done') {
      this.#state = { ...this.#state, ...this.#doneFields(event.result) };
      this.#writeSoon(true);
    } else if (event.type === 'train' && event.architecture === this.#options.architecture) {
      this.#onTrain(event.progress);
    }
  };

  /** Marks the architecture finished (completed, failed or cancelled) and writes it. */
  async finish(status: ArchitectureStatus, extra: { result?: ArchitectureResult; error?: ExperimentError } = {}): Promise<void> {
    this.#state = {
      ...this.#state,
      ...(extra.result === undefined ? {} : this.#doneFields(extra.result)),
      status,
      etaSeconds: null,
      ...(extra.error === undefined ? {} : { error: extra.error }),
      finishedAt: this.#iso(),
    };
    this.#closed = true;
    await this.#writeNow();
  }

  /** Records a failed attempt that will be retried: the architecture waits for its next run. */
  async retryLater(error: ExperimentError): Promise<void> {
    this.#state = { ...this.#state, status: 'queued', etaSeconds: null, error };
    this.#closed = true;
    await this.#writeNow();
  }

  /** Writes whatever is pending (e.g. before handing the job back on shutdown) and stops tracking. */
  async flush(): Promise<void> {
    this.#closed = true;
    await this.#writeNow();
  }

  #onTrain(progress: TrainProgressEvent): void {
    const state = this.#state;
    switch (progress.type) {
      case 'start': {
        const completed = progress.epoch - 1;
        const runs = state.runs.slice();
        const current = runs.at(-1);
        if (current !== undefined) runs[runs.length - 1] = { ...current, fromEpoch: progress.epoch };
        this.#state = {
          ...state,
          epoch: completed,
          epochs: progress.epochs,
          batch: 0,
          batches: progress.batches ?? state.batches,
          history: state.history.filter((record) => record.epoch <= completed),
          progress: completed / progress.epochs,
          runs,
        };
        this.#epochStartedAt = this.#now();
        this.#epochLearningRate = progress.learningRate;
        this.#writeSoon(true);
        return;
      }
      case 'batch': {
        const batches = progress.batches ?? state.batches;
        const within = batches !== null && batches > 0 ? Math.min(1, progress.batch / batches) : 0;
        this.#state = {
          ...state,
          batch: progress.batch,
          batches,
          progress: (progress.epoch - 1 + within) / progress.epochs,
          etaSeconds: progress.etaSeconds ?? state.etaSeconds,
        };
        this.#epochLearningRate = progress.learningRate;
        this.#writeSoon(false);
        return;
      }
      case 'epoch': {
        const now = this.#now();
        const record: EpochView = {
          epoch: progress.epoch,
          loss: progress.loss,
          accuracy: progress.accuracy,
          ...(progress.valLoss === undefined ? {} : { valLoss: progress.valLoss }),
          ...(progress.valAccuracy === undefined ? {} : { valAccuracy: progress.valAccuracy }),
          learningRate: this.#epochLearningRate ?? progress.learningRate,
          seconds: (now - this.#epochStartedAt) / 1000,
          imagesPerSecond: progress.imagesPerSecond,
        };
        this.#epochStartedAt = now;
        this.#epochLearningRate = progress.learningRate;
        this.#state = {
          ...state,
          epoch: progress.epoch,
          epochs: progress.epochs,
          batch: 0,
          batches: progress.batches ?? state.batches,
          history: [...state.history.filter((entry) => entry.epoch < progress.epoch), record],
          progress: progress.epoch / progress.epochs,
          etaSeconds: progress.etaSeconds ?? state.etaSeconds,
        };
        this.#writeSoon(true);
        return;
      }
      case 'early-stopped':
        this.#state = { ...state, progress: 1, etaSeconds: 0 };
        this.#writeSoon(true);
        return;
      default:
        return;
    }
  }

  #doneFields(result: ArchitectureResult): Partial<ArchitectureProgressRecord> {
    return {
      status: 'completed',
      epoch: result.history.length,
      history: result.history.map((epoch) => ({ ...epoch })),
      progress: 1,
      etaSeconds: 0,
      result: summarizeResult(result),
    };
  }

  /** Schedules a write: now when `important` or the throttle allows, else when it will. */
  #writeSoon(important: boolean): void {
    const wait = important ? 0 : Math.max(0, this.#lastWrite + this.#throttleMs - this.#now());
    if (this.#pending !== undefined) {
      if (!important) return;
      clearTimeout(this.#pending);
      this.#pending = undefined;
    }
    if (wait === 0) {
      void this.#writeNow().catch(() => {});
      return;
    }
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      void this.#writeNow().catch(() => {});
    }, wait);
  }

  /** Queues a write of the current state after the previous one. */
  #writeNow(): Promise<void> {
    if (this.#pending !== undefined) {
      clearTimeout(this.#pending);
      this.#pending = undefined;
    }
    this.#lastWrite = this.#now();
    const snapshot: ArchitectureProgressRecord = { ...this.#state, updatedAt: this.#iso() };
    const write = this.#writing.then(async () => {
      await this.#options.write(snapshot);
      await this.#options.report?.(toJobProgress(snapshot)).catch(() => {});
    });
    // A failed write must not block the next one; the caller of writeNow still sees the failure.
    this.#writing = write.catch(() => {});
    return write;
  }

  #iso(): string {
    return new Date(this.#now()).toISOString();
  }
}

function toJobProgress(record: ArchitectureProgressRecord): TrainJobProgress {
  return {
    architecture: record.architecture,
    status: record.status,
    epoch: record.epoch,
    epochs: record.epochs,
    progress: record.progress,
    etaSeconds: record.etaSeconds,
  };
}
