/**
 * `fracture-service evaluate`: prints the classification report of a predictions file
 * (`--predictions FILE`), or of a saved model on a dataset (`--model DIR --data DIR`, provided through
 * `deps.evaluateModel` once model persistence exists).
 *
 * Exit codes: 0 on success; 2 when the input is unusable (missing or invalid predictions, bad option
 * combination, evaluation of a model not available). The failure is printed to stderr as
 * `CODE: message` and signalled by throwing a `CommanderError` with `exitCode` 2, which `main` returns.
 * @module
 */
import { readFile } from 'node:fs/promises';
import { type Command, CommanderError, InvalidArgumentError } from 'commander';
import { isMlError } from '../../ml/errors.ts';
import { classificationReport } from '../../ml/metrics/report.ts';
import { formatClassificationReport } from '../../ml/metrics/format.ts';
import { predictionsFromJson } from '../../ml/metrics/predictions-json.ts';
import type { PredictionsInput } from '../../ml/metrics/types.ts';

/** Exit code for unusable input. */
export const EVALUATE_INPUT_ERROR_EXIT_CODE = 2;

/** Services the command needs beyond the metrics; all optional so the command registers anywhere. */
export interface EvaluateCommandDeps {
  /**
   * Runs the model saved in `modelDir` over the dataset folder `dataDir` and returns its predictions.
   * Extension point for `--model/--data`; without it those options exit with code 2 "not available".
   * Throw an `MlError` (e.g. MODEL_NOT_FOUND, DATASET_NOT_FOUND) for exit code 2 with its message.
   */
  evaluateModel?: (modelDir: string, dataDir: string) => Promise<PredictionsInput>;
}

interface EvaluateOptions {
  predictions?: string;
  model?: string;
  data?: string;
  positiveClasses?: string[];
  json?: boolean;
  digits: number;
}

function parseDigits(value: string): number {
  const digits = Number(value);
  if (!Number.isInteger(digits) || digits < 0 || digits > 20) {
    throw new InvalidArgumentError('expected an integer from 0 to 20');
  }
  return digits;
}

function parseNameList(value: string): string[] {
  return value
    .split(',')
    .map((name) => name.trim())
    .filter((name) => name.length > 0);
}

/** Prints `message` to the command's stderr and ends the command with exit code 2. */
function fail(command: Command, message: string): never {
  const output = command.configureOutput();
  const writeErr = output.writeErr ?? ((text: string) => process.stderr.write(text));
  writeErr(`${message}\n`);
  throw new CommanderError(EVALUATE_INPUT_ERROR_EXIT_CODE, 'fracture-service.evaluate', message);
}

/** A file-level problem, reported with the PREDICTIONS_INVALID code like content errors. */
class PredictionsFileError extends Error {}

async function readPredictionsFile(file: string): Promise<PredictionsInput> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new PredictionsFileError(`cannot read predictions file "${file}" (${reason})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new PredictionsFileError(`predictions file "${file}" is not valid JSON: ${(error as Error).message}`);
  }
  return predictionsFromJson(parsed);
}

async function loadPredictions(options: EvaluateOptions, deps: EvaluateCommandDeps, command: Command) {
  const usesModel = options.model !== undefined || options.data !== undefined;
  if (options.predictions !== undefined && usesModel) {
    fail(command, 'INVALID_ARGUMENT: give either --predictions FILE or --model DIR --data DIR, not both');
  }
  if (options.predictions !== undefined) return readPredictionsFile(options.predictions);
  if (!usesModel) fail(command, 'INVALID_ARGUMENT: give --predictions FILE (or --model DIR --data DIR)');
  if (options.model === undefined || options.data === undefined) {
    fail(command, 'INVALID_ARGUMENT: --model DIR and --data DIR go together');
  }
  if (!deps.evaluateModel) {
    fail(command, 'INVALID_ARGUMENT: evaluating a saved model (--model/--data) is not available yet; use --predictions FILE');
  }
  return deps.evaluateModel(options.model, options.data);
}

/**
 * Adds the `evaluate` command to `program`.
 * @param deps optional services; `evaluateModel` enables `--model DIR --data DIR`
 * @returns the registered subcommand
 * @example
 * registerEvaluateCommand(program);
 * // fracture-service evaluate --predictions preds.json --json
 */
export function registerEvaluateCommand(program: Command, deps: EvaluateCommandDeps = {}): Command {
  return program
    .command('evaluate')
    .description('print precision/recall/F1, kappa, MCC, log loss, ROC AUC, ECE and the binary fracture view of predictions')
    .option('--predictions <file>', 'JSON {class_names, y_true, y_pred, y_prob?, positive_classes?} (camelCase keys accepted)')
    .option('--model <dir>', 'saved model directory (with --data)')
    .option('--data <dir>', 'dataset folder to evaluate the model on (with --model)')
    .option('--positive-classes <names>', 'comma-separated fracture-positive classes, overriding the name rule', parseNameList)
    .option('--json', 'print the report as JSON (camelCase) instead of text')
    .option('--digits <n>', 'decimals in the text report', parseDigits, 2)
    .action(async (options: EvaluateOptions, command: Command) => {
      let report;
      let classNames: readonly string[];
      try {
        const predictions = await loadPredictions(options, deps, command);
        classNames = predictions.classNames;
        report = classificationReport({
          ...predictions,
          positiveClasses: options.positiveClasses ?? predictions.positiveClasses,
        });
      } catch (error) {
        if (error instanceof PredictionsFileError) fail(command, `PREDICTIONS_INVALID: ${error.message}`);
        if (isMlError(error)) fail(command, `${error.code}: ${error.message}`);
        throw error;
      }
      const output = command.configureOutput();
      const writeOut = output.writeOut ?? ((text: string) => process.stdout.write(text));
      writeOut(
        options.json
          ? `${JSON.stringify(report, null, 2)}\n`
          : formatClassificationReport(report, classNames, { digits: options.digits }),
      );
    });
}
