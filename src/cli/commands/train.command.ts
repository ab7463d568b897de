/**
 * `fracture-service train`: trains and compares architectures on a dataset folder, shows progress,
 * prints a classification report per architecture and the comparison table, and writes
 * `OUT/report.json` plus one saved model per architecture.
 * @module
 */
import type { Command } from 'commander';
import {
  formatComparisonTable,
  RANK_METRICS,
  runExperiment,
  type ExperimentReport,
  type RankMetric,
} from '../../ml/experiment/index.ts';
import { formatClassificationReport } from '../../ml/metrics/index.ts';
import { ARCHITECTURES, type Architecture } from '../../ml/models/index.ts';
import { finiteNumber, integer, listOf, oneOf, positiveInteger } from '../parsers.ts';
import { createProgressView } from '../progress/training-progress.ts';
import { backendFromEnvironment } from '../../infra/config.ts';

interface TrainCommandOptions {
  data: string;
  out: string;
  arch: Architecture[];
  imageSize: number;
  channels: number;
  epochs: number;
  batchSize: number;
  learningRate?: number;
  optimizer: 'adam' | 'sgd';
  seed: number;
  valFraction: number;
  testFraction: number;
  augment: boolean;
  classWeights: boolean;
  patience: number;
  reduceLrPatience: number;
  includeTop?: boolean;
  rankBy: RankMetric;
  microBatchSize?: number;
  resize: 'letterbox' | 'crop';
  allowSmallImages?: boolean;
  backend?: string;
  json?: boolean;
}

/** Formats the per-architecture reports and the comparison, as printed at the end of a run. */
export function formatExperimentSummary(report: ExperimentReport): string {
  const parts: string[] = [];
  for (const result of report.results) {
    parts.push(`== ${result.architecture}: test split (${result.metrics.macroAvg.support} images), best epoch ${result.bestEpoch} ==`);
    parts.push(formatClassificationReport(result.metrics, report.dataset.classNames), '');
  }
  parts.push('== comparison ==', formatComparisonTable(report));
  const leaks = (report.dataset.duplicates as { summary?: { crossSplitLeaks?: number; leakedImages?: number } }).summary;
  if (leaks?.crossSplitLeaks) {
    parts.push(
      '',
      `warning: ${leaks.crossSplitLeaks} duplicate or near-duplicate groups (${leaks.leakedImages ?? '?'} images) cross the train/val/test splits; test metrics may be optimistic (details: report.json dataset.duplicates)`,
    );
  }
  return parts.join('\n');
}

/** Registers `train` on `program`. */
export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description('Train and compare architectures on a dataset folder (class folders, or train/ val/ test/ of class folders).')
    .requiredOption('--data <dir>', 'dataset folder')
    .requiredOption('--out <dir>', 'output folder: report.json, models/<arch>/, checkpoints while training (a rerun resumes)')
    .option('--arch <list>', `comma-separated architectures (${ARCHITECTURES.join(',')})`, listOf(ARCHITECTURES), [...ARCHITECTURES])
    .option('--image-size <px>', 'square input side in pixels (>= 32; >= 75 with inceptionv3)', positiveInteger, 128)
    .option('--channels <n>', 'input channels: 1 or 3', positiveInteger, 3)
    .option('--epochs <n>', 'epochs', positiveInteger, 10)
    .option('--batch-size <n>', 'images per optimisation step', positiveInteger, 16)
    .option('--learning-rate <lr>', 'initial learning rate (default per architecture: 1e-4 for vgg16, 1e-3 for the others)', finiteNumber)
    .option('--optimizer <name>', 'adam or sgd (momentum 0.9)', oneOf(['adam', 'sgd'] as const), 'adam')
    .option('--seed <n>', 'seed of splits, augmentation, batch order and initial weights', integer, 42)
    .option('--val-fraction <f>', 'validation fraction per class (without preset splits)', finiteNumber, 0.15)
    .option('--test-fraction <f>', 'test fraction per class (without preset splits)', finiteNumber, 0.15)
    .option('--no-augment', 'no random flips, rotation, brightness/contrast or zoom')
    .option('--no-class-weights', 'do not weight the loss by inverse class frequency')
    .option('--patience <n>', 'early-stopping patience in epochs on val_loss (0: off)', integer, 5)
    .option('--reduce-lr-patience <n>', 'epochs without val_loss improvement before halving the learning rate (0: off)', integer, 2)
    .option('--include-top', 'the original Keras top instead of global-average-pooling head')
    .option('--rank-by <metric>', `ranking metric (${RANK_METRICS.join(', ')})`, oneOf(RANK_METRICS), 'macroF1')
    .option('--micro-batch-size <n>', 'largest images per forward/backward pass (gradients are accumulated)', positiveInteger)
    .option('--resize <mode>', 'letterbox or crop', oneOf(['letterbox', 'crop'] as const), 'letterbox')
    .option('--allow-small-images', 'accept images smaller than the input (upscaled)')
    .option('--backend <name>', 'auto, tensorflow, wasm or cpu (default: FRACTURE_BACKEND, else auto)')
    .option('--json', 'print report.json instead of the text reports')
    .action(async (options: TrainCommandOptions) => {
      const view = createProgressView();
      let report: ExperimentReport;
      try {
        report = await runExperiment({
          dataDir: options.data,
          outDir: options.out,
          architectures: options.arch,
          imageSize: options.imageSize,
          channels: options.channels as 1 | 3,
          epochs: options.epochs,
          batchSize: options.batchSize,
          ...(options.learningRate === undefined ? {} : { learningRate: options.learningRate }),
          optimizer: options.optimizer,
          seed: options.seed,
          valFraction: options.valFraction,
          testFraction: options.testFraction,
          augment: options.augment,
          classWeights: options.classWeights,
          earlyStoppingPatience: options.patience,
          reduceLrPatience: options.reduceLrPatience,
          includeTop: options.includeTop === true,
          rankBy: options.rankBy,
          resize: options.resize,
          allowSmallImages: options.allowSmallImages === true,
          ...(options.microBatchSize === undefined ? {} : { microBatchSize: options.microBatchSize }),
          backend: options.backend ?? backendFromEnvironment(),
          onEvent: (event) => view.onEvent(event),
        });
      } finally {
        view.stop();
      }
      if (options.json) {
        process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      } else {
        process.stdout.write(`\nbackend: ${report.backend.name}; dataset ${report.dataset.hash.slice(0, 12)}\n\n${formatExperimentSummary(report)}\nreport: ${options.out}/report.json\n`);
      }
    });
}
