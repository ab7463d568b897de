/**
 * The `fracture-service` command line: parses arguments and dispatches to one command module each.
 * @module
 */
import { Command, CommanderError } from 'commander';
import { isMlError } from '../ml/errors.ts';
import { registerEvaluateCommand } from './commands/evaluate.command.ts';
import { registerSynthCommand } from './commands/synth.command.ts';
import { registerTrainCommand } from './commands/train.command.ts';
import { registerPredictCommand } from './commands/predict.command.ts';
import { registerDemoCommand } from './commands/demo.command.ts';
import { registerSummaryCommand } from './commands/summary.command.ts';
import { registerExportCommand } from './commands/export.command.ts';
import { registerServeCommands } from './commands/serve.command.ts';
import { backendFromEnvironment, ConfigError } from '../infra/config.ts';
import { AppError } from '../infra/errors.ts';
import { evaluateModelOnFolder, type EvaluatedSubset } from '../ml/inference/index.ts';
import { initBackend } from '../ml/backend/select-backend.ts';

const SUBSET_LABEL: Record<EvaluatedSubset, string> = {
  'preset-test-split': "the folder's test/ split",
  'training-test-split': "the model's own test split (same dataset and split settings as in training)",
  'whole-folder': 'every image of the folder',
};

/** Exit code for bad input (an `MlError`): distinct from 1, which means an unexpected failure. */
const INPUT_ERROR_EXIT_CODE = 2;

/** Builds the command tree; exported so tests can run commands in-process. */
export function createProgram(): Command {
  const program = new Command('fracture-service')
    .description('Train, compare and serve bone X-ray fracture classifiers (cnn, vgg16, resnet50, inceptionv3).')
    .showHelpAfterError()
    .exitOverride();
  registerDemoCommand(program);
  registerSynthCommand(program);
  registerTrainCommand(program);
  registerPredictCommand(program);
  registerEvaluateCommand(program, {
    evaluateModel: async (modelDir, dataDir) => {
      await initBackend(backendFromEnvironment());
      const evaluation = await evaluateModelOnFolder(modelDir, dataDir);
      process.stderr.write(`scored ${evaluation.yTrue.length} images: ${SUBSET_LABEL[evaluation.subset]}\n`);
      return evaluation;
    },
  });
  registerSummaryCommand(program);
  registerExportCommand(program);
  registerServeCommands(program);
  return program;
}

/** Runs the CLI with `argv` (as `process.argv`) and resolves to the process exit code. */
export async function main(argv: string[]): Promise<number> {
  try {
    await createProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    if (isMlError(error) || error instanceof AppError) {
      process.stderr.write(`${error.code}: ${error.message}\n`);
      return INPUT_ERROR_EXIT_CODE;
    }
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      return INPUT_ERROR_EXIT_CODE;
    }
    throw error;
  }
}
