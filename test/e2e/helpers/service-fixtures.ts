/**
 * What the end-to-end tests of the service put around its processes: a data directory holding a
 * really trained `production` model (trained in the test process, with no workers), real
 * radiographs, and clean-up of a test's Redis keys.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { runExperiment } from '../../../src/ml/experiment/index.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';
import { newExperimentId } from '../../../src/services/experiments/experiment-id.ts';
import { engineOptions, resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';
import { ModelRegistry } from '../../../src/services/models/model-registry.ts';
import { REPO_ROOT } from './service-process.ts';
export { deleteKeys, REDIS_URL } from '../../helpers/redis.ts';

/** The shared Redis of the tests. */

/** Real radiographs shared by the project's tests (never copied into the repository). */
export const XRAY_DIR = path.resolve(REPO_ROOT, '../shared/datasets/xray-binary');
/** `false` (run) when the real radiographs are there, else why the tests that need them skip. */
export const SKIP_WITHOUT_XRAYS: false | string = existsSync(XRAY_DIR) ? false : `real X-rays not found at ${XRAY_DIR}`;

/** A BullMQ prefix of its own for one test: `e2e-<what>-<random>`. */
export function testPrefix(what: string): string {
  return `e2e-${what}-${randomBytes(4).toString('hex')}`;
}


/** `count` real radiographs (JPEG), alternating fractured and not fractured, with their file names. */
export async function readXrays(count: number): Promise<{ name: string; data: Buffer }[]> {
  const files: string[] = [];
  for (let i = 0; files.length < count; i++) {
    const n = String(i).padStart(4, '0');
    files.push(path.join(XRAY_DIR, 'fractured', `fractured-${n}.jpg`));
    if (files.length < count) files.push(path.join(XRAY_DIR, 'not_fractured', `not_fractured-${n}.jpg`));
  }
  return Promise.all(files.map(async (file) => ({ name: path.basename(file), data: await readFile(file) })));
}

/** A multipart form with each image as a repeated `image` part. */
export function imageForm(images: readonly { name: string; data: Buffer }[]): FormData {
  const form = new FormData();
  for (const image of images) form.append('image', new Blob([image.data], { type: 'image/jpeg' }), image.name);
  return form;
}

/** The model a seeded data directory serves. */
export interface SeededModel {
  modelId: string;
  architecture: string;
  /** As `GET /v1/models/{id}` shows it (12 hex digits of the files). */
  version: string;
  /** Class names in output order. */
  classes: string[];
}

/**
 * Makes `dataDir` a data directory whose alias `production` names a really trained model, as the
 * `compare` job would leave it: a tiny synthetic dataset (2 regions x fractured/normal, 48 px), `cnn`
 * trained for one epoch on 32 px inputs with the wasm backend, registered and promoted. A few seconds.
 */
export async function seedProductionModel(dataDir: string): Promise<SeededModel> {
  const store = new ArtifactStore(dataDir);
  const datasetId = 'synth-xrays';
  await generateSyntheticDataset({ outDir: store.datasetDir(datasetId), perClass: 6, size: 48, seed: 11, regions: ['hand', 'elbow'] });
  const { settings, problems } = resolveExperimentSettings({ datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1, batchSize: 8, seed: 3 });
  if (problems.length > 0) throw new Error(`seed settings are invalid: ${problems.join('; ')}`);
  const experimentId = newExperimentId();
  const experimentDir = store.experimentDir(experimentId);
  const report = await runExperiment({
    dataDir: store.datasetDir(datasetId),
    outDir: experimentDir,
    architectures: settings.architectures,
    ...engineOptions(settings),
    backend: 'wasm',
  });
  const registry = new ModelRegistry(store);
  const [modelId] = await registry.registerFromExperiment(experimentId, report, experimentDir, { datasetId });
  if (modelId === undefined) throw new Error('the seeding experiment registered no model');
  if (!(await registry.promoteIfUnset('production', modelId))) throw new Error('another model already holds the alias production');
  const view = await registry.get('production');
  return { modelId: view.id, architecture: view.architecture, version: view.version, classes: view.classes };
}
