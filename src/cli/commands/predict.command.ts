/**
 * `fracture-service predict`: classifies X-ray files with a saved model and prints, per image, the
 * class, the fracture probability and every class probability; `--explain` writes Grad-CAM overlays.
 * @module
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { initBackend } from '../../ml/backend/select-backend.ts';
import { backendFromEnvironment } from '../../infra/config.ts';
import { classifyImages, explainImage, type ImagePrediction } from '../../ml/inference/index.ts';
import { loadModel } from '../../ml/persist/index.ts';

interface PredictCommandOptions {
  model: string;
  explain?: string;
  json?: boolean;
  backend?: string;
}

/** The overlay file of the `index`-th image: `OUT.png` for one image, `OUT-<n>.png` for several. */
export function explainPath(out: string, index: number, count: number): string {
  if (count === 1) return out;
  const ext = path.extname(out) || '.png';
  return `${out.slice(0, out.length - path.extname(out).length)}-${index + 1}${ext}`;
}

function formatPrediction(file: string, prediction: ImagePrediction): string {
  const fracture = prediction.fractureProbability === null ? 'n/a' : `${(prediction.fractureProbability * 100).toFixed(1)}%`;
  const lines = [`${file}: ${prediction.label} (fracture probability ${fracture})`];
  const sorted = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of sorted) lines.push(`  ${name.padEnd(24)} ${(p * 100).toFixed(2).padStart(6)}%`);
  return lines.join('\n');
}

/** Registers `predict` on `program`. */
export function registerPredictCommand(program: Command): void {
  program
    .command('predict')
    .description('Classify X-ray images (JPEG/PNG) with a saved model. For research use only; not for diagnostic procedures.')
    .argument('<images...>', 'image files')
    .requiredOption('--model <dir>', 'saved model folder (model.json + metadata.json)')
    .option('--explain <out.png>', 'write a Grad-CAM overlay per image (OUT-1.png, OUT-2.png ... for several)')
    .option('--backend <name>', 'auto, tensorflow, wasm or cpu (default: FRACTURE_BACKEND, else auto)')
    .option('--json', 'print JSON')
    .action(async (images: string[], options: PredictCommandOptions) => {
      await initBackend(options.backend ?? backendFromEnvironment());
      const loaded = await loadModel(options.model);
      try {
        const predictions = await classifyImages(loaded, images);
        const explanations: (string | null)[] = images.map(() => null);
        if (options.explain !== undefined) {
          for (const [i, image] of images.entries()) {
            const out = explainPath(options.explain, i, images.length);
            await writeFile(out, (await explainImage(loaded, image)).png);
            explanations[i] = out;
          }
        }
        const model = { architecture: loaded.metadata.architecture, dir: path.resolve(options.model), createdAt: loaded.metadata.createdAt };
        if (options.json) {
          const rows = predictions.map((p, i) => ({ file: images[i], ...p, ...(explanations[i] ? { heatmap: explanations[i] } : {}) }));
          process.stdout.write(`${JSON.stringify({ model, predictions: rows, notice: RESEARCH_NOTICE }, null, 2)}\n`);
          return;
        }
        process.stdout.write(`model: ${model.architecture} (${model.dir})\n`);
        predictions.forEach((p, i) => {
          process.stdout.write(`${formatPrediction(images[i] as string, p)}\n`);
          if (explanations[i]) process.stdout.write(`  Grad-CAM overlay: ${explanations[i]}\n`);
        });
        process.stdout.write(`${RESEARCH_NOTICE}\n`);
      } finally {
        loaded.model.dispose();
      }
    });
}

/** The intended-use statement printed with every prediction (DESIGN.md section 7). */
export const RESEARCH_NOTICE = 'For research use only. Not for use in diagnostic procedures.';
