/**
 * Shows experiment progress on stderr: one progress bar per architecture on a terminal, one line per
 * epoch otherwise (CI logs, pipes), so the output is readable in both.
 * @module
 */
import cliProgress from 'cli-progress';
import type { ExperimentEvent } from '../../ml/experiment/index.ts';

/** Receives experiment events; `stop()` must be called once the run ends (also on failure). */
export interface ProgressView {
  onEvent(event: ExperimentEvent): void;
  stop(): void;
}

const formatEta = (seconds: number | undefined): string => {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${pad(m)}:${pad(s % 60)}`;
};

/** Creates the view for `stream` (default `process.stderr`). */
export function createProgressView(stream: NodeJS.WriteStream = process.stderr): ProgressView {
  const write = (line: string) => stream.write(`${line}\n`);
  if (!stream.isTTY) {
    return {
      onEvent(event) {
        if (event.type === 'dataset') {
          write(describeDataset(event));
        } else if (event.type === 'architecture-start') {
          write(`[${event.index + 1}/${event.total}] ${event.architecture}: ${event.params.toLocaleString('en-US')} params`);
        } else if (event.type === 'train' && event.progress.type === 'epoch') {
          const p = event.progress;
          const val = p.valLoss === undefined ? '' : ` val_loss ${p.valLoss.toFixed(4)} val_acc ${(p.valAccuracy ?? 0).toFixed(4)}`;
          write(`  ${event.architecture} epoch ${p.epoch}/${p.epochs} loss ${p.loss.toFixed(4)} acc ${p.accuracy.toFixed(4)}${val} ${p.imagesPerSecond.toFixed(1)} img/s eta ${formatEta(p.etaSeconds)}`);
        } else if (event.type === 'train' && isNotable(event)) {
          write(`  ${event.architecture}: ${event.progress.message ?? event.progress.type}`);
        }
      },
      stop() {},
    };
  }

  const multibar = new cliProgress.MultiBar(
    {
      stream,
      clearOnComplete: false,
      hideCursor: true,
      format: ' {arch} |{bar}| {percentage}% | epoch {epoch}/{epochs} | loss {loss} acc {acc} | {rate} img/s | ETA {remaining}',
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    onEvent(event) {
      if (event.type === 'dataset') {
        multibar.log(`${describeDataset(event)}\n`);
      } else if (event.type === 'train') {
        const progress = event.progress;
        const batches = progress.batches ?? 1;
        let bar = bars.get(event.architecture);
        const payload = {
          arch: event.architecture.padEnd(11),
          epoch: progress.epoch,
          epochs: progress.epochs,
          loss: progress.loss.toFixed(3),
          acc: progress.accuracy.toFixed(3),
          rate: progress.imagesPerSecond.toFixed(1),
          remaining: formatEta(progress.etaSeconds),
        };
        if (bar === undefined) {
          bar = multibar.create(progress.epochs * batches, 0, payload);
          bars.set(event.architecture, bar);
        }
        bar.setTotal(progress.epochs * batches);
        bar.update((progress.epoch - 1) * batches + progress.batch, payload);
        if (isNotable(event)) multibar.log(`${event.architecture}: ${progress.message ?? progress.type}\n`);
      } else if (event.type === 'architecture-done') {
        const bar = bars.get(event.architecture);
        if (bar) bar.update(bar.getTotal());
      }
    },
    stop() {
      multibar.stop();
    },
  };
}

/** The one-line summary of the dataset event. */
function describeDataset(event: Extract<ExperimentEvent, { type: 'dataset' }>): string {
  return `dataset: ${event.classNames.length} classes; train ${event.counts.train}, val ${event.counts.val}, test ${event.counts.test}; skipped ${event.skipped}; cross-split duplicate leaks ${event.leaks}`;
}

/** Events worth a line of their own: learning-rate cuts, early stops, micro-batch fallbacks. */
function isNotable(event: Extract<ExperimentEvent, { type: 'train' }>): boolean {
  const type = event.progress.type;
  return type === 'learning-rate-reduced' || type === 'early-stopped' || type === 'micro-batch-reduced';
}
