/**
 * `fracture-service summary`: builds an architecture (randomly initialised, nothing trained or
 * downloaded) and prints its layers and parameter counts, as a table or as JSON. Parses and prints;
 * the models live in src/ml/models.
 * @module
 */
import { InvalidArgumentError, type Command } from 'commander';
import { isMlError } from '../../ml/errors.ts';
import {
  ARCHITECTURES,
  DEFAULT_INPUT_SHAPE,
  buildModel,
  formatModelSummary,
  parseArchitecture,
  parseInputShape,
  summarizeModel,
  type Architecture,
  type InputShape,
} from '../../ml/models/index.ts';
import { initBackend } from '../../ml/backend/select-backend.ts';
import { backendFromEnvironment } from '../../infra/config.ts';

interface SummaryCommandOptions {
  arch: Architecture;
  input?: InputShape;
  classes: number;
  includeTop?: boolean;
  json?: boolean;
}

/** Turns a parser's `MlError` into a commander usage error (exit code 1, message shown with the usage). */
function usage<T>(parse: (value: string) => T): (value: string) => T {
  return (value) => {
    try {
      return parse(value);
    } catch (error) {
      if (isMlError(error)) throw new InvalidArgumentError(error.message);
      throw error;
    }
  };
}

function classCount(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 2) throw new InvalidArgumentError('expected an integer >= 2.');
  return Number(value);
}

/**
 * Registers `summary` on `program`. Prints the summary JSON
 * (`{architecture, params, trainableParams, layers: [{name, type, outputShape, params}]}`) with
 * `--json`, else a Keras-like table. Sizes the architecture cannot take (e.g. InceptionV3 below 75x75)
 * throw `MlError('INPUT_SHAPE_INVALID')` to the caller.
 * @example
 * fracture-service summary --arch resnet50 --input 224x224x3 --classes 1000 --include-top --json
 */
export function registerSummaryCommand(program: Command): void {
  program
    .command('summary')
    .description('Print the layers, output shapes and parameter counts of an architecture.')
    .requiredOption('--arch <name>', `architecture: ${ARCHITECTURES.join(', ')}`, usage(parseArchitecture))
    .option('--input <HxWxC>', 'input height x width x channels (default: 224x224x3, 299x299x3 for inceptionv3)', usage(parseInputShape))
    .option('--classes <n>', 'number of output classes', classCount, 2)
    .option('--include-top', 'the original Keras top instead of pooling + dropout + softmax')
    .option('--json', 'print JSON instead of a table')
    .action(async (options: SummaryCommandOptions) => {
      await initBackend(backendFromEnvironment());
      const model = buildModel({
        architecture: options.arch,
        inputShape: options.input ?? DEFAULT_INPUT_SHAPE[options.arch],
        numClasses: options.classes,
        includeTop: options.includeTop === true,
        // Weights are never looked at here; a fixed seed keeps the command deterministic.
        seed: 0,
      });
      try {
        const summary = summarizeModel(model);
        console.log(options.json === true ? JSON.stringify(summary, null, 2) : formatModelSummary(summary));
      } finally {
        model.dispose();
      }
    });
}
