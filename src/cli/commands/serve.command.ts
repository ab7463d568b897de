/**
 * `fracture-service api | worker | start`: the long-running processes. Parses arguments and hands
 * over to src/runtime/serve.ts.
 * @module
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { loadConfig } from '../../infra/config.ts';
import { ALL_QUEUES, type QueueName } from '../../infra/queues.ts';
import { ARCHITECTURES, type Architecture } from '../../ml/models/index.ts';
import { SYNTH_REGIONS, type SynthRegion } from '../../ml/synth/index.ts';
import { checkBootstrapSettings, DEFAULT_BOOTSTRAP_SETTINGS, type BootstrapSettings } from '../../runtime/bootstrap.ts';
import { runApi, runStart, runWorker } from '../../runtime/serve.ts';
import { listOf, positiveInteger } from '../parsers.ts';
import { createExperimentProgressView } from '../progress/service-progress.ts';

function parseQueues(value: string): QueueName[] {
  const queues = value.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = queues.filter((name) => !ALL_QUEUES.includes(name as QueueName));
  if (queues.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`queues are ${ALL_QUEUES.join(', ')}; got ${value}`);
  return queues as QueueName[];
}

function parsePositiveInt(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError(`expected a positive integer, got ${value}`);
  return number;
}

export function registerServeCommands(program: Command): void {
  program
    .command('api')
    .description('Run the HTTP API (predictions go to inference workers through Redis). Needs API_KEYS.')
    .action(async () => runApi(loadConfig()));
  program
    .command('worker')
    .description('Run queue workers: training (sandboxed, resumable) and inference (dynamically batched).')
    .option('--queues <names>', `comma-separated queues to serve: ${ALL_QUEUES.join(', ')}`, parseQueues)
    .option('--concurrency <n>', 'jobs at once per queue (default TRAINING_CONCURRENCY / INFERENCE_CONCURRENCY)', parsePositiveInt)
    .action(async (options: { queues?: QueueName[]; concurrency?: number }) => runWorker(loadConfig(), options));
  const start = program
    .command('start')
    .description('Run the API, the training workers and the predictor in one process, on a Redis it finds or starts.')
    .option('--bootstrap', 'train a first model when no model holds the alias production (what `npm start` does; see below)')
    .option('--bootstrap-image-size <px>', 'input side of the first models, pixels (inceptionv3 needs >= 75)', positiveInteger, DEFAULT_BOOTSTRAP_SETTINGS.imageSize)
    .option('--bootstrap-epochs <n>', 'epochs per architecture', positiveInteger, DEFAULT_BOOTSTRAP_SETTINGS.epochs)
    .option('--bootstrap-per-class <n>', 'images per class of a generated synthetic dataset', positiveInteger, DEFAULT_BOOTSTRAP_SETTINGS.perClass)
    .addOption(
      new Option('--bootstrap-architectures <list>', `architectures to compare (${ARCHITECTURES.join(',')})`)
        .argParser(listOf(ARCHITECTURES))
        .default([...DEFAULT_BOOTSTRAP_SETTINGS.architectures], 'all four'),
    )
    .addOption(
      new Option('--bootstrap-regions <list>', `body regions of a generated synthetic dataset, 2 classes each (${SYNTH_REGIONS.join(',')})`)
        .argParser(listOf(SYNTH_REGIONS))
        .default([...DEFAULT_BOOTSTRAP_SETTINGS.regions], 'all five'),
    )
    .addHelpText(
      'after',
      `
With --bootstrap (\`npm start\` runs \`start --bootstrap\`), when no model holds the alias production:
uses the first trainable dataset folder under DATA_DIR/datasets/ (else generates a synthetic one there,
synthetic-*: 5 body regions x {fractured, normal}), trains and compares the architectures through the training queue with
progress bars (one line per epoch when stdout is not a terminal), prints the comparison table, serves
the winner, and ends with the page's URL, the admin key (when this start created it) and a Ready line.
When a model holds production already, it trains nothing and serves it. A failed training is printed
and the service keeps serving. Stopped during training (Ctrl+C), the next start resumes it.
Defaults: ${DEFAULT_BOOTSTRAP_SETTINGS.imageSize} px, ${DEFAULT_BOOTSTRAP_SETTINGS.epochs} epochs, ${DEFAULT_BOOTSTRAP_SETTINGS.perClass} synthetic images per class, all four architectures:
4 to 5 minutes on 2 CPU cores. Configuration is read from the environment (.env.example).`,
    )
    .action(async (options: StartCommandOptions) => {
      const bootstrap = bootstrapSettings(start, options);
      await runStart(loadConfig(), {
        ...(bootstrap === undefined ? {} : { bootstrap }),
        createProgress: () => createExperimentProgressView(),
      });
    });
}

interface StartCommandOptions {
  bootstrap?: boolean;
  bootstrapImageSize: number;
  bootstrapEpochs: number;
  bootstrapPerClass: number;
  bootstrapArchitectures: Architecture[];
  bootstrapRegions: SynthRegion[];
}

/**
 * The bootstrap settings of `start`'s options, or undefined without `--bootstrap`. A `--bootstrap-*`
 * option without `--bootstrap`, or settings the service would refuse, end the command with usage
 * (exit code 2) before anything starts.
 */
function bootstrapSettings(command: Command, options: StartCommandOptions): BootstrapSettings | undefined {
  if (!options.bootstrap) {
    const given = command.options
      .filter((option) => option.long?.startsWith('--bootstrap-') && command.getOptionValueSource(option.attributeName()) === 'cli')
      .map((option) => option.long);
    if (given.length > 0) command.error(`error: ${given.join(', ')} need${given.length === 1 ? 's' : ''} --bootstrap`, { exitCode: 2 });
    return undefined;
  }
  const settings: BootstrapSettings = {
    imageSize: options.bootstrapImageSize,
    epochs: options.bootstrapEpochs,
    perClass: options.bootstrapPerClass,
    architectures: options.bootstrapArchitectures,
    regions: options.bootstrapRegions,
  };
  const problems = checkBootstrapSettings(settings);
  if (problems.length > 0) command.error(`error: ${problems.join('; ')}`, { exitCode: 2 });
  return settings;
}
