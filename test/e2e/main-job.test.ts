/**
 * The main job (`npm start`, which runs `fracture-service start --bootstrap`) as a newcomer runs it,
 * on a fresh data directory, a queue prefix and a port of its own, the real Redis, real training
 * and real HTTP — made small with the `--bootstrap-*` flags (4 synthetic classes of 6 images, 75 px,
 * 1 epoch, all four architectures: about 30 s on 2 cores). The first start generates a synthetic
 * dataset, trains and compares through the queue with a line per epoch, prints the comparison and
 * the winner, the page's URL and the admin key, and serves the winner; a second start on the same
 * data trains nothing and serves the same model. A training that fails is printed and the service
 * keeps serving.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { freePort } from '../../src/infra/redis-launcher.ts';
import { deleteKeys, imageForm, readXrays, SKIP_WITHOUT_XRAYS, testPrefix } from './helpers/service-fixtures.ts';
import { http, killAllServices, spawnService, type ServiceProcess } from './helpers/service-process.ts';

const ARCHITECTURES = ['cnn', 'vgg16', 'resnet50', 'inceptionv3'] as const;
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** The first start trains four architectures: allow for a slow machine. */
const TRAINING_TIMEOUT_MS = 150_000;
const TINY_FLAGS = ['--bootstrap-regions', 'hand,elbow', '--bootstrap-per-class', '6', '--bootstrap-image-size', '75', '--bootstrap-epochs', '1'];

interface Readiness {
  ready: boolean;
  checks: Record<'redis' | 'backend' | 'model', { ok: boolean; detail?: string }>;
}

interface PredictBody {
  model: { id: string; architecture: string; version: string };
  predictions: { label: string; probabilities: Record<string, number> }[];
}

describe('npm start: the main job on a fresh machine', { concurrency: true }, () => {
  let root: string;
  const prefixes: string[] = [];

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'e2e-main-job-'));
  });
  after(async () => {
    await killAllServices();
    for (const prefix of prefixes) await deleteKeys(prefix);
    await rm(root, { recursive: true, force: true });
  });

  /** Spawns `start --bootstrap ...args` on `dataDir` with its own port and queue prefix. */
  async function startBootstrap(dataDir: string, args: readonly string[]): Promise<{ service: ServiceProcess; port: number }> {
    const port = await freePort();
    const prefix = testPrefix('main-job');
    prefixes.push(prefix);
    const service = spawnService(['start', '--bootstrap', ...args], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      QUEUE_PREFIX: prefix,
      FRACTURE_BACKEND: 'wasm',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    });
    return { service, port };
  }

  async function stopGracefully(service: ServiceProcess): Promise<void> {
    const exit = await service.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + 5_000);
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; stderr:\n${service.stderr().slice(-2000)}`);
  }

  async function readiness(url: string): Promise<{ status: number; body: Readiness }> {
    const answer = await http(`${url}/readyz`);
    return { status: answer.status, body: answer.json as Readiness };
  }

  it('trains, compares and promotes a first model, serves it, and serves it again on the next start without training', { skip: SKIP_WITHOUT_XRAYS }, async (t) => {
    const dataDir = path.join(root, 'fresh');
    const began = Date.now();
    const first = await startBootstrap(dataDir, [...TINY_FLAGS, '--bootstrap-architectures', ARCHITECTURES.join(',')]);
    await first.service.waitForStdout(/^Ready: /m, TRAINING_TIMEOUT_MS);
    t.diagnostic(`first start: Ready after ${Date.now() - began} ms`);
    const out = first.service.stdout();
    const url = `http://127.0.0.1:${first.port}`;

    // The key is printed when the API starts (for the page during training) and again at the end.
    const [, key] = out.match(/^Admin API key \(shown once[^\n]*\n\s+(\S+)$/m) ?? [];
    assert.ok(key !== undefined && key.length >= 32, `an admin key is printed when serving starts:\n${out}`);

    // A synthetic dataset of 2 regions x {fractured, normal} x 6 images was generated in DATA_DIR/datasets.
    const [, datasetId] = out.match(/generated a synthetic one, (\S+) \(4 classes: 2 regions x fractured\/normal; 24 images/) ?? [];
    assert.ok(datasetId, `the synthetic dataset is announced:\n${out}`);
    const datasetDir = path.join(dataDir, 'datasets', datasetId);
    const classes = (await readdir(datasetDir)).sort();
    assert.deepEqual(classes, ['elbow_fractured', 'elbow_normal', 'hand_fractured', 'hand_normal']);
    for (const name of classes) assert.equal((await readdir(path.join(datasetDir, name))).filter((file) => file.endsWith('.png')).length, 6, name);

    // Progress: stdout is a pipe here, so one line when each architecture starts, one per epoch, one at its end.
    const [, experimentId] = out.match(/^Experiment (exp-\S+): cnn, vgg16, resnet50, inceptionv3 on \S+, 75x75 px, 1 epoch each/m) ?? [];
    assert.ok(experimentId, `the experiment is announced:\n${out}`);
    ARCHITECTURES.forEach((architecture, index) => {
      assert.match(out, new RegExp(`^\\[${index + 1}/4\\] ${architecture}: training$`, 'm'));
      assert.match(out, new RegExp(`^  ${architecture} epoch 1/1 loss \\d+\\.\\d{4} acc \\d\\.\\d{4} val_loss \\d+\\.\\d{4} val_acc \\d\\.\\d{4} \\d+\\.\\d img/s`, 'm'));
      assert.match(out, new RegExp(`^  ${architecture} done: test accuracy \\d\\.\\d{3}, macro F1 \\d\\.\\d{3}`, 'm'));
    });

    // The comparison table: four ranked rows, then the winner and why, from the report.
    const table = out.slice(out.indexOf('\nrank  architecture'));
    const rows = [...table.matchAll(/^(\d)\s+(cnn|vgg16|resnet50|inceptionv3)\s+\d\.\d{4}\s+(\d\.\d{4})/gm)];
    assert.deepEqual(rows.map((row) => Number(row[1])), [1, 2, 3, 4], `four ranked rows:\n${table}`);
    assert.deepEqual(rows.map((row) => row[2]).sort(), [...ARCHITECTURES].sort());
    const [, winner] = out.match(/^winner: (\w+)\. \1 has the highest macro F1 on the test split/m) ?? [];
    assert.equal(winner, rows[0]?.[2], 'the winner is the first-ranked architecture');
    const scores = rows.map((row) => Number(row[3]));
    assert.ok(scores.every((score) => score <= (scores[0] ?? 0)), `the winner has the highest macro F1: ${scores.join(', ')}`);
    const modelId = `${experimentId}-${winner}`;
    assert.match(out, new RegExp(`^The winner, ${winner}, is now the production model: ${modelId}$`, 'm'));

    // The closing lines: the page, the API docs, the same key, the model that serves, Ready.
    const closing = out.slice(out.lastIndexOf('\nPage:'));
    assert.match(closing, new RegExp(`^Page:\\s+${url}/$`, 'm'));
    assert.match(closing, new RegExp(`^API docs:\\s+${url}/docs$`, 'm'));
    assert.match(closing, new RegExp(`^Admin API key \\(created by this start[^\\n]*\\n\\s+${key}$`, 'm'));
    assert.match(closing, new RegExp(`^Model:\\s+${modelId} \\(${winner}, version [0-9a-f]{12}\\) serves as production$`, 'm'));
    assert.match(closing, /^For research use only\. Not for use in diagnostic procedures\.$/m);
    assert.match(closing, new RegExp(`^Ready: ${url}/ predicts with ${modelId}\\.`, 'm'));

    // Ready, and predicting a real radiograph with the winner; the page is served.
    const ready = await readiness(url);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.match(ready.body.checks.model.detail ?? '', new RegExp(`^${modelId} `));
    const auth = { authorization: `Bearer ${key}` };
    const [xray] = await readXrays(1);
    assert.ok(xray);
    const answer = await http(`${url}/v1/predict`, { method: 'POST', headers: auth, body: imageForm([xray]) });
    assert.equal(answer.status, 200, answer.text);
    const prediction = answer.json as PredictBody;
    assert.equal(prediction.model.id, modelId);
    assert.deepEqual(Object.keys(prediction.predictions[0]?.probabilities ?? {}).sort(), classes);
    assert.equal((await http(`${url}/`)).status, 200, 'the page is served');
    // What the API says agrees with what was printed.
    const experiment = await http(`${url}/v1/experiments/${experimentId}`, { headers: auth });
    assert.equal(experiment.status, 200, experiment.text);
    assert.deepEqual(
      (({ status, winner: w }) => ({ status, modelId: w?.modelId, promoted: w?.promoted }))(experiment.json as { status: string; winner?: { modelId: string; promoted: boolean } }),
      { status: 'completed', modelId, promoted: true },
    );
    await stopGracefully(first.service);

    // Second start on the same data: nothing is trained, the same model serves, the key is not shown again.
    const secondBegan = Date.now();
    const second = await startBootstrap(dataDir, TINY_FLAGS);
    await second.service.waitForStdout(/^Ready: /m, 60_000);
    t.diagnostic(`second start: Ready after ${Date.now() - secondBegan} ms`);
    const again = second.service.stdout();
    const secondUrl = `http://127.0.0.1:${second.port}`;
    assert.doesNotMatch(again, /training a first one|epoch|^Experiment /m);
    assert.ok(!again.includes(key), 'the admin key is not printed again');
    assert.match(again, /^API key:\s+the admin key printed by the first start \(its hash is in \S+api-keys\.json/m);
    assert.match(again, new RegExp(`^${modelId} \\(${winner}, version [0-9a-f]{12}\\) holds the alias production: nothing to train\\.`, 'm'));
    assert.match(again, new RegExp(`^Model:\\s+${modelId} \\(${winner}, version [0-9a-f]{12}\\) serves as production$`, 'm'));
    assert.match(again, new RegExp(`^Ready: ${secondUrl}/ predicts with ${modelId}\\.`, 'm'));
    assert.deepEqual(await readdir(path.join(dataDir, 'experiments')), [experimentId], 'no second experiment');
    assert.deepEqual(await readdir(path.join(dataDir, 'datasets')), [datasetId], 'no second dataset');
    assert.equal((await readiness(secondUrl)).status, 200);
    const secondAnswer = await http(`${secondUrl}/v1/predict`, { method: 'POST', headers: auth, body: imageForm([xray]) });
    assert.equal(secondAnswer.status, 200, secondAnswer.text);
    assert.equal((secondAnswer.json as PredictBody).model.id, modelId);
    await stopGracefully(second.service);
  });

  it('uses the dataset in DATA_DIR/datasets, prints why its training failed, and keeps serving the page and the API', async () => {
    // Two classes of one image each: listed as trainable, but too small to split into train, val and test.
    const dataDir = path.join(root, 'too-small');
    for (const name of ['wrist_fractured', 'wrist_normal']) {
      const dir = path.join(dataDir, 'datasets', 'my-xrays', name);
      await mkdir(dir, { recursive: true });
      const grey = name.endsWith('normal') ? 40 : 200;
      await sharp({ create: { width: 96, height: 96, channels: 3, background: { r: grey, g: grey, b: grey } } })
        .png()
        .toFile(path.join(dir, `${name}.png`));
    }
    const { service, port } = await startBootstrap(dataDir, ['--bootstrap-architectures', 'cnn', '--bootstrap-epochs', '1']);
    await service.waitForStdout(/^Ready: /m, 60_000);
    const out = service.stdout();
    const url = `http://127.0.0.1:${port}`;
    assert.match(out, /^Dataset: my-xrays \(2 classes, 2 images\), the first in /m);
    assert.doesNotMatch(out, /generated a synthetic one/);
    assert.match(out, /^Experiment exp-\S+ failed: DATASET_TOO_SMALL: \S/m);
    assert.match(out, /^Model:\s+none; the first model could not be trained \(DATASET_TOO_SMALL: [^\n]+\)\. The page and the API still work/m);
    assert.match(out, new RegExp(`^Ready: ${url}/ serves the page and the API \\(no model yet\\)\\.`, 'm'));
    assert.match(out, /^Admin API key \(created by this start/m);
    assert.ok(service.running(), 'the service keeps running');
    assert.equal((await http(`${url}/`)).status, 200, 'the page is served');
    assert.equal((await http(`${url}/healthz`)).status, 200);
    const ready = await readiness(url);
    assert.equal(ready.status, 503);
    assert.equal(ready.body.checks.model.ok, false);
    await stopGracefully(service);
  });
});
