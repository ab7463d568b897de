/**
 * The `fracture-service` command as a user runs it: a real process per command, on a tiny synthetic
 * dataset (synth -> train -> predict with Grad-CAM -> evaluate a saved model), and its error exits.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const bin = path.join(repoRoot, 'bin/fracture-service.js');

interface Run { code: number; stdout: string; stderr: string }

function run(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [bin, ...args], { cwd: repoRoot, maxBuffer: 32 * 2 ** 20, env: { ...process.env, FRACTURE_BACKEND: 'wasm' } }, (error, stdout, stderr) => {
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('fracture-service CLI', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'cli-test-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('--help lists every command', async () => {
    const { code, stdout } = await run(['--help']);
    assert.equal(code, 0);
    for (const command of ['demo', 'synth', 'train', 'predict', 'evaluate', 'summary']) {
      assert.match(stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `${command} is listed`);
    }
  });

  it('synthesises, trains, predicts with an overlay and evaluates the saved model', async () => {
    const data = path.join(root, 'data');
    const out = path.join(root, 'run');
    const synth = await run(['synth', '--out', data, '--per-class', '5', '--size', '40', '--seed', '3', '--regions', 'elbow,finger']);
    assert.equal(synth.code, 0, synth.stderr);
    assert.match(synth.stdout, /4 classes, 20 files/);

    const train = await run(['train', '--data', data, '--out', out, '--arch', 'cnn', '--image-size', '32', '--epochs', '1', '--batch-size', '4', '--seed', '1']);
    assert.equal(train.code, 0, train.stderr);
    assert.match(train.stdout, /precision\s+recall\s+f1-score\s+support/);
    assert.match(train.stdout, /winner: cnn\./);
    assert.match(train.stderr, /cnn epoch 1\/1 loss/, 'epoch progress is shown');
    const report = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as { winner: { architecture: string } };
    assert.equal(report.winner.architecture, 'cnn');

    const image = path.join(data, 'elbow_fractured', 'elbow_fractured_0000.png');
    const overlay = path.join(root, 'overlay.png');
    const predict = await run(['predict', '--model', path.join(out, 'models/cnn'), '--explain', overlay, '--json', image]);
    assert.equal(predict.code, 0, predict.stderr);
    const body = JSON.parse(predict.stdout) as { predictions: { label: string; probabilities: Record<string, number>; fractureProbability: number }[]; notice: string };
    assert.equal(Object.keys(body.predictions[0]?.probabilities ?? {}).length, 4);
    assert.ok((body.predictions[0]?.fractureProbability ?? -1) >= 0);
    assert.match(body.notice, /research use only/i);
    const meta = await sharp(overlay).metadata();
    assert.equal(meta.format, 'png');
    assert.ok((meta.width ?? 0) >= 256);

    // On its own dataset, evaluate scores exactly the test split of training: the same numbers as report.json.
    const evaluate = await run(['evaluate', '--model', path.join(out, 'models/cnn'), '--data', data, '--json']);
    assert.equal(evaluate.code, 0, evaluate.stderr);
    assert.match(evaluate.stderr, /the model's own test split/);
    const metrics = JSON.parse(evaluate.stdout) as { confusionMatrix: number[][] };
    const trained = JSON.parse(await readFile(path.join(out, 'report.json'), 'utf8')) as { results: { metrics: { confusionMatrix: number[][] } }[] };
    assert.deepEqual(metrics.confusionMatrix, trained.results[0]?.metrics.confusionMatrix);
  });

  it('evaluate --predictions prints the scikit-learn report of a fixture case', async (t) => {
    const fixture = path.resolve(repoRoot, '../shared/fixtures/sklearn-metrics.json');
    const cases = await readFile(fixture, 'utf8').then((text) => (JSON.parse(text) as { cases: Record<string, unknown>[] }).cases).catch(() => null);
    if (cases === null) return t.skip(`no fixture at ${fixture}`);
    const sample = cases[0] as { class_names: string[]; y_true: number[]; y_pred: number[]; y_prob: number[][]; expected: { accuracy: number; macro_avg: { 'f1-score': number } } };
    const file = path.join(root, 'predictions.json');
    await writeFile(file, JSON.stringify({ class_names: sample.class_names, y_true: sample.y_true, y_pred: sample.y_pred, y_prob: sample.y_prob }));
    const result = await run(['evaluate', '--predictions', file, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const report = JSON.parse(result.stdout) as { accuracy: number; macroAvg: { f1: number } };
    assert.ok(Math.abs(report.accuracy - sample.expected.accuracy) <= 1e-9);
    assert.ok(Math.abs(report.macroAvg.f1 - sample.expected.macro_avg['f1-score']) <= 1e-9);
    const text = await run(['evaluate', '--predictions', file]);
    assert.match(text.stdout, /^\s+accuracy\s+0\.93\s+254$/m);
  });

  it('exits 2 with a stable code for an empty dataset', async () => {
    const empty = path.join(root, 'empty');
    await mkdir(path.join(empty, 'a'), { recursive: true });
    const result = await run(['train', '--data', empty, '--out', path.join(root, 'x'), '--arch', 'cnn']);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^DATASET_EMPTY: /m);
    await assert.rejects(stat(path.join(root, 'x', 'report.json')));
  });

  it('exits non-zero with usage help for an unknown architecture', async () => {
    const result = await run(['train', '--data', root, '--out', root, '--arch', 'alexnet']);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /unknown value "alexnet"; valid: cnn, vgg16, resnet50, inceptionv3/);
  });
});
