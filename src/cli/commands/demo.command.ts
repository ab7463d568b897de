/**
 * `fracture-service demo` (`npm start`): the main job on a fresh machine with no configuration. It
 * uses the first dataset under `<data-dir>/datasets/` or, when there is none, generates a synthetic
 * one; trains the four architectures briefly at a small size; prints the comparison with the winner;
 * and tries the winner on one image.
 * @module
 */
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend, describeBackend } from '../../ml/backend/select-backend.ts';
import { backendFromEnvironment } from '../../infra/config.ts';
import { runExperiment } from '../../ml/experiment/index.ts';
import { classifyImages } from '../../ml/inference/index.ts';
import { ARCHITECTURES, type Architecture } from '../../ml/models/index.ts';
import { loadModel } from '../../ml/persist/index.ts';
import { generateSyntheticDataset } from '../../ml/synth/index.ts';
import { listOf, positiveInteger } from '../parsers.ts';
import { createProgressView } from '../progress/training-progress.ts';
import { formatExperimentSummary } from './train.command.ts';
import { RESEARCH_NOTICE } from './predict.command.ts';

interface DemoOptions {
  dataDir: string;
  arch: Architecture[];
  imageSize: number;
  epochs: number;
  perClass: number;
  backend?: string;
}

/** Synthetic datasets the demo made itself are named by their size, so another size makes a new one. */
const SYNTHETIC_PREFIX = 'synthetic-';

/** The first user dataset (a folder not made by the demo) under `datasetsDir`, or null. */
async function findDataset(datasetsDir: string): Promise<string | null> {
  try {
    const entries = await readdir(datasetsDir, { withFileTypes: true });
    const folder = entries
      .filter((entry) => entry.isDirectory() && !entry.name.startsWith('.') && !entry.name.startsWith(SYNTHETIC_PREFIX))
      .map((entry) => entry.name)
      .sort()[0];
    return folder === undefined ? null : path.join(datasetsDir, folder);
  } catch {
    return null;
  }
}

/** The first image file under `dir` (depth-first, sorted), for the closing prediction. */
async function firstImage(dir: string): Promise<string | null> {
  const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name));
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isFile() && /\.(png|jpe?g)$/i.test(entry.name)) return full;
    if (entry.isDirectory()) {
      const found = await firstImage(full);
      if (found) return found;
    }
  }
  return null;
}

/** Registers `demo` on `program`. */
export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description('The main job: find or synthesise a dataset, train and compare the four architectures briefly, print the winner.')
    .option('--data-dir <dir>', 'data folder (datasets/, experiments/)', './data')
    .option('--arch <list>', `architectures (${ARCHITECTURES.join(',')})`, listOf(ARCHITECTURES), [...ARCHITECTURES])
    .option('--image-size <px>', 'square input side (>= 75 with inceptionv3)', positiveInteger, 75)
    .option('--epochs <n>', 'epochs per architecture', positiveInteger, 2)
    .option('--per-class <n>', 'images per class when a synthetic dataset is generated', positiveInteger, 20)
    .option('--backend <name>', 'auto, tensorflow, wasm or cpu (default: FRACTURE_BACKEND, else auto)')
    .action(async (options: DemoOptions) => {
      const out = (line: string) => process.stdout.write(`${line}\n`);
      const backendName = options.backend ?? backendFromEnvironment();
      const backend = await initBackend(backendName);
      out(`backend: ${describeBackend(backend)}`);
      const datasetsDir = path.resolve(options.dataDir, 'datasets');
      let dataDir = await findDataset(datasetsDir);
      if (dataDir === null) {
        const size = Math.max(options.imageSize, 96);
        dataDir = path.join(datasetsDir, `${SYNTHETIC_PREFIX}${size}px-${options.perClass}`);
        if (await firstImage(dataDir).catch(() => null)) {
          out(`no dataset of yours in ${datasetsDir}: using the synthetic one in ${dataDir}`);
        } else {
          const synth = await generateSyntheticDataset({ outDir: dataDir, perClass: options.perClass, size, seed: 42, force: true });
          out(`no dataset of yours in ${datasetsDir}: generated a synthetic one (${synth.classNames.length} classes, ${synth.files} images) in ${dataDir}`);
        }
      } else {
        out(`dataset: ${dataDir}`);
      }
      const experimentDir = path.resolve(options.dataDir, 'experiments', new Date().toISOString().replace(/[:.]/g, '-'));
      const view = createProgressView();
      const report = await runExperiment({
        dataDir,
        outDir: experimentDir,
        architectures: options.arch,
        imageSize: options.imageSize,
        epochs: options.epochs,
        batchSize: 16,
        seed: 42,
        earlyStoppingPatience: 0,
        backend: backendName,
        onEvent: (event) => view.onEvent(event),
      }).finally(() => view.stop());
      out(`\n${formatExperimentSummary(report)}\n`);
      out(`report: ${path.join(experimentDir, 'report.json')}`);
      const winner = report.results.find((result) => result.architecture === report.winner?.architecture);
      if (winner === undefined) return;
      const modelDir = path.join(experimentDir, winner.modelDir);
      out(`winner's model: ${modelDir}`);
      const image = await firstImage(dataDir);
      if (image === null) return;
      const loaded = await loadModel(modelDir);
      try {
        const [prediction] = await classifyImages(loaded, [image]);
        if (prediction) {
          const fracture = prediction.fractureProbability === null ? 'n/a' : `${(prediction.fractureProbability * 100).toFixed(1)}%`;
          out(`try it: fracture-service predict --model ${modelDir} --explain overlay.png ${image}`);
          out(`  -> ${prediction.label}, fracture probability ${fracture}`);
        }
      } finally {
        loaded.model.dispose();
      }
      out(RESEARCH_NOTICE);
    });
}
