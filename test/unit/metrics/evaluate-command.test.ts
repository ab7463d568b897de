/**
 * The `evaluate` command, run in-process through a commander program (no subprocess: the lead wires
 * the command into src/cli/main.ts).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Command, CommanderError } from 'commander';
import {
  EVALUATE_INPUT_ERROR_EXIT_CODE,
  registerEvaluateCommand,
  type EvaluateCommandDeps,
} from '../../../src/cli/commands/evaluate.command.ts';
import { MlError } from '../../../src/ml/errors.ts';
import type { ClassificationReport } from '../../../src/ml/metrics/types.ts';

const classNames = ['fractured', 'not_fractured', 'elbow_fractured'];
const predictions = {
  class_names: classNames,
  y_true: [0, 0, 1, 1, 2, 2],
  y_pred: [0, 1, 1, 1, 2, 0],
  y_prob: [
    [0.8, 0.1, 0.1],
    [0.3, 0.6, 0.1],
    [0.1, 0.8, 0.1],
    [0.2, 0.7, 0.1],
    [0.1, 0.1, 0.8],
    [0.5, 0.2, 0.3],
  ],
};

interface RunResult {
  stdout: string;
  stderr: string;
  exitCode: number;
}

async function run(args: string[], deps?: EvaluateCommandDeps): Promise<RunResult> {
  let stdout = '';
  let stderr = '';
  const program = new Command('fracture-service')
    .exitOverride()
    .configureOutput({ writeOut: (s) => (stdout += s), writeErr: (s) => (stderr += s) });
  registerEvaluateCommand(program, deps);
  try {
    await program.parseAsync(['evaluate', ...args], { from: 'user' });
    return { stdout, stderr, exitCode: 0 };
  } catch (error) {
    if (error instanceof CommanderError) return { stdout, stderr, exitCode: error.exitCode };
    throw error;
  }
}

describe('fracture-service evaluate', () => {
  let dir = '';
  const file = (name: string) => path.join(dir, name);

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'evaluate-command-'));
    await writeFile(file('snake.json'), JSON.stringify(predictions));
    await writeFile(
      file('camel.json'),
      JSON.stringify({ classNames, yTrue: predictions.y_true, yPred: predictions.y_pred, yProb: predictions.y_prob }),
    );
    await writeFile(file('no-prob.json'), JSON.stringify({ ...predictions, y_prob: undefined }));
    await writeFile(file('not-json.json'), '{"class_names": [');
    await writeFile(file('out-of-range.json'), JSON.stringify({ ...predictions, y_true: [0, 0, 1, 1, 2, 3] }));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('prints the report as camelCase JSON with --json', async () => {
    const result = await run(['--predictions', file('snake.json'), '--json']);
    assert.equal(result.exitCode, 0);
    assert.equal(result.stderr, '');
    const report = JSON.parse(result.stdout) as ClassificationReport;
    assert.equal(report.accuracy, 4 / 6);
    assert.deepEqual(Object.keys(report.perClass), classNames);
    assert.deepEqual(report.confusionMatrix, [
      [1, 1, 0],
      [0, 2, 0],
      [1, 0, 1],
    ]);
    assert.equal(typeof report.logLoss, 'number');
    assert.deepEqual(report.binary?.positiveClasses, ['fractured', 'elbow_fractured']);
    // Fracture truth: samples 0,1,4,5; predicted fracture: 0,4,5 → tp 3, fn 1, tn 2, fp 0.
    assert.deepEqual([report.binary?.tp, report.binary?.fn, report.binary?.tn, report.binary?.fp], [3, 1, 2, 0]);
  });

  it('reads camelCase keys to the same report', async () => {
    const snake = await run(['--predictions', file('snake.json'), '--json']);
    const camel = await run(['--predictions', file('camel.json'), '--json']);
    assert.equal(camel.exitCode, 0);
    assert.equal(camel.stdout, snake.stdout);
  });

  it('prints the text report without --json, honouring --digits', async () => {
    const result = await run(['--predictions', file('snake.json'), '--digits', '3']);
    assert.equal(result.exitCode, 0);
    assert.match(result.stdout, /precision +recall +f1-score +support/);
    assert.match(result.stdout, /accuracy +0\.667 +6\n/);
    assert.match(result.stdout, /binary fracture view \(positive: fractured, elbow_fractured\)/);
  });

  it('leaves probability metrics null when y_prob is absent', async () => {
    const result = await run(['--predictions', file('no-prob.json'), '--json']);
    assert.equal(result.exitCode, 0);
    const report = JSON.parse(result.stdout) as ClassificationReport;
    assert.equal(report.logLoss, null);
    assert.equal(report.ece, null);
    assert.equal(report.binary?.rocAuc, null);
  });

  it('applies --positive-classes over the name rule', async () => {
    const result = await run(['--predictions', file('snake.json'), '--json', '--positive-classes', 'elbow_fractured']);
    const report = JSON.parse(result.stdout) as ClassificationReport;
    assert.deepEqual(report.binary?.positiveClasses, ['elbow_fractured']);
  });

  it('exits 2 with PREDICTIONS_INVALID on stderr when the file is missing', async () => {
    const result = await run(['--predictions', file('missing.json'), '--json']);
    assert.equal(result.exitCode, EVALUATE_INPUT_ERROR_EXIT_CODE);
    assert.equal(result.exitCode, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^PREDICTIONS_INVALID: cannot read predictions file ".*missing\.json" \(ENOENT\)/);
  });

  it('exits 2 when the file is not JSON', async () => {
    const result = await run(['--predictions', file('not-json.json')]);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /^PREDICTIONS_INVALID: predictions file .* is not valid JSON/);
  });

  it('exits 2 naming the bad label when the content is invalid', async () => {
    const result = await run(['--predictions', file('out-of-range.json'), '--json']);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /^PREDICTIONS_INVALID: y_true\[5\] = 3 is out of range: there are 3 classes/);
  });

  it('exits 2 when neither --predictions nor --model/--data is given', async () => {
    const result = await run([]);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /give --predictions FILE/);
  });

  it('exits 2 "not available" for --model/--data without an evaluateModel service', async () => {
    const result = await run(['--model', 'models/x', '--data', 'datasets/y']);
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /not available/);
  });

  it('evaluates --model/--data through the injected evaluateModel', async () => {
    const calls: string[][] = [];
    const deps: EvaluateCommandDeps = {
      evaluateModel: async (modelDir, dataDir) => {
        calls.push([modelDir, dataDir]);
        return { classNames, yTrue: predictions.y_true, yPred: predictions.y_pred, yProb: predictions.y_prob };
      },
    };
    const result = await run(['--model', 'models/x', '--data', 'datasets/y', '--json'], deps);
    assert.equal(result.exitCode, 0);
    assert.deepEqual(calls, [['models/x', 'datasets/y']]);
    assert.equal((JSON.parse(result.stdout) as ClassificationReport).accuracy, 4 / 6);
  });

  it('exits 2 with the code of an MlError thrown by evaluateModel', async () => {
    const deps: EvaluateCommandDeps = {
      evaluateModel: async () => {
        throw new MlError('MODEL_NOT_FOUND', 'no model in models/x');
      },
    };
    const result = await run(['--model', 'models/x', '--data', 'datasets/y'], deps);
    assert.equal(result.exitCode, 2);
    assert.equal(result.stderr, 'MODEL_NOT_FOUND: no model in models/x\n');
  });

  it('exits 2 when --model is given without --data', async () => {
    const result = await run(['--model', 'models/x'], { evaluateModel: async () => assert.fail('must not run') });
    assert.equal(result.exitCode, 2);
    assert.match(result.stderr, /--model DIR and --data DIR go together/);
  });
});
