/**
 * Shows the progress of an experiment that runs in the service (queue workers), from the views the
 * experiment service produces (`ExperimentService.watch`): one progress bar per architecture on a
 * terminal, and on anything else (CI logs, pipes, files) one line when an architecture starts, one
 * per finished epoch and one when it ends, so a log reads as a record of the run.
 *
 * It is the service's counterpart of `training-progress.ts`, which follows the engine's events in
 * the same process; here the training runs in a worker thread (or on another machine) and all we see
 * are the files it writes, about once a second.
 * @module
 */
import cliProgress from 'cli-progress';
import type { ArchitectureView, ExperimentView } from '../../services/experiments/experiment.types.ts';

/** Receives experiment views; `stop()` must be called once the experiment ends (also on failure). */
export interface ExperimentProgressView {
  /** Takes the latest view of the experiment (any number of times, changed or not). */
  update(view: ExperimentView): void;
  /** Prints a line without breaking the bars (above them on a terminal). `line` has no newline. */
  log(line: string): void;
  /** Draws the final state and releases the terminal (shows the cursor again). Idempotent. */
  stop(): void;
}

/** Options of {@link createExperimentProgressView}. */
export interface ExperimentProgressOptions {
  /** Where to draw. Default `process.stdout`. */
  stream?: NodeJS.WriteStream;
  /** Bars (true) or lines (false). Default: bars when `stream` is a terminal. */
  bars?: boolean;
}

/** `mm:ss` (or `h:mm:ss`) of `seconds`; `--:--` when unknown. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
}

const fixed = (value: number | null | undefined, digits = 3): string =>
  value === null || value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);

/** The line printed for an epoch that finished. */
export function formatEpochLine(architecture: ArchitectureView, index: number): string {
  const epoch = architecture.history[index];
  if (epoch === undefined) return '';
  const val = epoch.valLoss === undefined ? '' : ` val_loss ${fixed(epoch.valLoss, 4)} val_acc ${fixed(epoch.valAccuracy, 4)}`;
  return `  ${architecture.architecture} epoch ${epoch.epoch}/${architecture.epochs} loss ${fixed(epoch.loss, 4)} acc ${fixed(epoch.accuracy, 4)}${val} ${fixed(epoch.imagesPerSecond, 1)} img/s ${fixed(epoch.seconds, 1)} s`;
}

/** The line printed when an architecture ends (completed, failed or cancelled). */
export function formatArchitectureEnd(architecture: ArchitectureView): string {
  const name = architecture.architecture;
  if (architecture.status === 'completed') {
    const result = architecture.result;
    if (result === undefined) return `  ${name} done`;
    return `  ${name} done: test accuracy ${fixed(result.accuracy)}, macro F1 ${fixed(result.macroF1)} (best epoch ${result.bestEpoch}, trained in ${fixed(result.trainSeconds, 1)} s)`;
  }
  if (architecture.status === 'failed') {
    return `  ${name} failed${architecture.error ? `: ${architecture.error.code}: ${architecture.error.detail}` : ''}`;
  }
  return `  ${name} ${architecture.status}`;
}

/** What the line view has printed of one architecture so far. */
interface Printed {
  started: boolean;
  epochs: number;
  ended: boolean;
}

/** The line view: appends, never redraws. */
function createLineView(stream: NodeJS.WriteStream): ExperimentProgressView {
  const write = (line: string) => stream.write(`${line}\n`);
  const printed = new Map<string, Printed>();
  return {
    update(view) {
      const total = view.architectures.length;
      view.architectures.forEach((architecture, index) => {
        const seen = printed.get(architecture.architecture) ?? { started: false, epochs: 0, ended: false };
        printed.set(architecture.architecture, seen);
        const ended = architecture.status === 'completed' || architecture.status === 'failed' || architecture.status === 'cancelled';
        if (!seen.started && (architecture.status === 'running' || architecture.history.length > 0 || (ended && architecture.status !== 'cancelled'))) {
          seen.started = true;
          const resumed = architecture.resumedFromEpoch === undefined ? '' : ` (resumed after epoch ${architecture.resumedFromEpoch})`;
          write(`[${index + 1}/${total}] ${architecture.architecture}: training${resumed}`);
        }
        // An epoch listed before this view first saw the architecture (a resumed run) is printed too.
        for (; seen.epochs < architecture.history.length; seen.epochs++) write(formatEpochLine(architecture, seen.epochs));
        if (ended && !seen.ended) {
          seen.ended = true;
          if (seen.started || architecture.status !== 'cancelled') write(formatArchitectureEnd(architecture));
        }
      });
    },
    log: write,
    stop() {},
  };
}

/** The payload of one bar. */
function barPayload(architecture: ArchitectureView): Record<string, string> {
  const last = architecture.history.at(-1);
  const running = architecture.status === 'running';
  let state: string;
  if (architecture.status === 'completed') {
    state = architecture.result ? `done, macro F1 ${fixed(architecture.result.macroF1)}` : 'done';
  } else if (running) {
    state = `epoch ${Math.min(architecture.epoch + 1, architecture.epochs)}/${architecture.epochs}`;
  } else {
    state = architecture.status;
  }
  return {
    arch: architecture.architecture.padEnd(11),
    state: state.padEnd(20),
    loss: last ? fixed(last.loss) : '-',
    acc: last ? fixed(last.accuracy) : '-',
    // Not `eta`: cli-progress fills that name with its own estimate (from the bar's value over time).
    remaining: running ? formatDuration(architecture.etaSeconds) : '     ',
  };
}

/** Bar resolution: the progress fraction in thousandths. */
const BAR_TOTAL = 1000;

/** The terminal view: one bar per architecture, redrawn in place. */
function createBarView(stream: NodeJS.WriteStream): ExperimentProgressView {
  const multibar = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: ' {arch} |{bar}| {percentage}% | {state} | loss {loss} acc {acc} | ETA {remaining}',
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  const ended = new Set<string>();
  let stopped = false;
  return {
    update(view) {
      if (stopped) return;
      for (const architecture of view.architectures) {
        const payload = barPayload(architecture);
        const value = Math.round(architecture.progress * BAR_TOTAL);
        let bar = bars.get(architecture.architecture);
        if (bar === undefined) {
          bar = multibar.create(BAR_TOTAL, value, payload);
          bars.set(architecture.architecture, bar);
        } else {
          bar.update(value, payload);
        }
        if (architecture.status === 'failed' && !ended.has(architecture.architecture)) {
          ended.add(architecture.architecture);
          multibar.log(`${formatArchitectureEnd(architecture).trim()}\n`);
        }
      }
    },
    log(line) {
      if (stopped) stream.write(`${line}\n`);
      else multibar.log(`${line}\n`);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      multibar.stop();
    },
  };
}

/**
 * Creates the view on `options.stream` (default stdout).
 * @example
 * const view = createExperimentProgressView();
 * const unsubscribe = await experiments.watch(id, (v) => view.update(v));
 * // ... once v.status is final:
 * unsubscribe();
 * view.stop();
 */
export function createExperimentProgressView(options: ExperimentProgressOptions = {}): ExperimentProgressView {
  const stream = options.stream ?? process.stdout;
  return (options.bars ?? stream.isTTY === true) ? createBarView(stream) : createLineView(stream);
}
