/**
 * What the HTTP benchmarks (`predict-latency.ts`, `loadtest.ts`) share: reading real radiographs,
 * percentiles, Prometheus samples, Redis clean-up, and training throw-away models to serve (their
 * weights do not matter for speed).
 * @module
 */
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import type { ArtifactStore } from '../src/infra/artifact-store.ts';
import { runExperiment, type ExperimentReport } from '../src/ml/experiment/index.ts';
import { MIN_INPUT_SIZE, parseArchitecture, type Architecture } from '../src/ml/models/index.ts';
import { generateSyntheticDataset } from '../src/ml/synth/index.ts';
import { newExperimentId } from '../src/services/experiments/experiment-id.ts';
import type { ModelRegistry } from '../src/services/models/model-registry.ts';

/** A model to serve: an architecture at an input size. */
export interface BenchCase {
  architecture: Architecture;
  size: number;
}

/** `--name` as a positive integer, or `fallback` when absent. */
export function positiveInteger(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

/** `arch:size` pairs, e.g. `cnn:128,resnet50:224`. */
export function parseCases(text: string): BenchCase[] {
  return text.split(',').map((item) => {
    const [name, sizeText] = item.split(':');
    const architecture = parseArchitecture((name ?? '').trim());
    const size = positiveInteger('cases size', sizeText, 128);
    if (size < MIN_INPUT_SIZE[architecture]) throw new Error(`${architecture} needs a size >= ${MIN_INPUT_SIZE[architecture]}, got ${size}`);
    return { architecture, size };
  });
}

/** Nearest-rank percentile (`p` in 0..100) of unsorted samples; NaN for none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(rank, sorted.length) - 1] as number;
}

/** The value of an unlabelled Prometheus sample (0 when absent). */
export function sampleValue(exposition: string, name: string): number {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1).trim());
}

/** Every JPEG below `dir`'s class folders, sorted, read into memory (at most `limit`, alternating between classes). */
export async function readXrays(dir: string, limit: number): Promise<Buffer[]> {
  const classes = (await readdir(dir, { withFileTypes: true })).filter((entry) => entry.isDirectory()).map((entry) => entry.name).sort();
  const lists = await Promise.all(
    classes.map(async (name) => (await readdir(path.join(dir, name))).filter((file) => /\.jpe?g$/i.test(file)).sort().map((file) => path.join(dir, name, file))),
  );
  const files: string[] = [];
  for (let i = 0; files.length < limit && lists.some((list) => i < list.length); i++) {
    for (const list of lists) if (i < list.length && files.length < limit) files.push(list[i] as string);
  }
  if (files.length === 0) throw new Error(`no JPEG radiographs in class folders of ${dir}`);
  return Promise.all(files.map((file) => readFile(file)));
}

/** Deletes every Redis key under a BullMQ prefix. */
export async function deleteKeys(redisUrl: string, prefix: string): Promise<void> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** A trained, registered model of a {@link BenchCase}. */
export interface TrainedModel {
  modelId: string;
  report: ExperimentReport;
}

/**
 * Trains each case for one epoch on a tiny synthetic set at its size (one `runExperiment` per size)
 * and registers the models; resolves to them by `arch:size`.
 */
export async function trainModels(
  target: { store: ArtifactStore; models: ModelRegistry; backend: string },
  cases: readonly BenchCase[],
): Promise<Map<string, TrainedModel>> {
  const { store, models } = target;
  const datasetId = 'bench-synth';
  const largest = Math.max(...cases.map((c) => c.size));
  await generateSyntheticDataset({ outDir: store.datasetDir(datasetId), perClass: 5, size: largest, seed: 17, regions: ['hand'] });
  const trained = new Map<string, TrainedModel>();
  for (const size of [...new Set(cases.map((c) => c.size))]) {
    const architectures = [...new Set(cases.filter((c) => c.size === size).map((c) => c.architecture))];
    const experimentId = newExperimentId();
    const experimentDir = store.experimentDir(experimentId);
    process.stdout.write(`training ${architectures.join(', ')} at ${size} px for one epoch (weights do not matter for speed)...\n`);
    const report = await runExperiment({
      dataDir: store.datasetDir(datasetId),
      outDir: experimentDir,
      architectures,
      imageSize: size,
      epochs: 1,
      batchSize: 4,
      seed: 3,
      augment: false,
      earlyStoppingPatience: 0,
      reduceLrPatience: 0,
      backend: target.backend,
    });
    const ids = await models.registerFromExperiment(experimentId, report, experimentDir, { datasetId });
    report.results.forEach((result, i) => trained.set(`${result.architecture}:${size}`, { modelId: ids[i] as string, report }));
  }
  return trained;
}
