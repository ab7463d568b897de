/**
 * `fracture-service synth`: writes a synthetic X-ray data set (5 regions x fractured/normal) so the
 * demo and the tests run without real radiographs. Parses and prints; the drawing lives in src/ml/synth.
 * @module
 */
import { InvalidArgumentError, type Command } from 'commander';
import { integer } from '../parsers.ts';
import { SYNTH_REGIONS, generateSyntheticDataset, isSynthRegion, type SynthRegion } from '../../ml/synth/index.ts';

interface SynthCommandOptions {
  out: string;
  perClass: number;
  size: number;
  seed: number;
  regions?: SynthRegion[];
  force?: boolean;
}

function regionList(value: string): SynthRegion[] {
  const regions = value.split(',').map((r) => r.trim()).filter((r) => r.length > 0);
  for (const region of regions) {
    if (!isSynthRegion(region)) throw new InvalidArgumentError(`unknown region "${region}"; valid: ${SYNTH_REGIONS.join(', ')}.`);
  }
  return regions as SynthRegion[];
}

/**
 * Registers `synth` on `program`. Prints one line on success, e.g.
 * `synth: 10 classes, 200 files, 128x128 px, seed 42 -> /abs/data/synth (1.4 s, 143 images/s)`.
 * Errors from the generator (`MlError`, e.g. a non-empty `--out` without `--force`) propagate to the caller.
 * @example
 * fracture-service synth --out data/synth --per-class 20 --size 128 --seed 42
 */
export function registerSynthCommand(program: Command): void {
  program
    .command('synth')
    .description('Generate a synthetic X-ray data set: one folder per class (e.g. elbow_fractured), grayscale PNGs.')
    .requiredOption('--out <dir>', 'destination folder (refused when not empty, unless --force)')
    .option('--per-class <n>', 'images per class', integer, 20)
    .option('--size <px>', 'image side in pixels (16-2048)', integer, 128)
    .option('--seed <k>', 'random seed; the same seed gives byte-identical files', integer, 42)
    .option('--regions <list>', `comma-separated subset of ${SYNTH_REGIONS.join(',')}`, regionList)
    .option('--force', 'replace a non-empty --out folder')
    .action(async (options: SynthCommandOptions) => {
      const started = performance.now();
      const summary = await generateSyntheticDataset({
        outDir: options.out,
        perClass: options.perClass,
        size: options.size,
        seed: options.seed,
        force: options.force === true,
        ...(options.regions ? { regions: options.regions } : {}),
      });
      const seconds = (performance.now() - started) / 1000;
      const rate = summary.files / Math.max(seconds, 1e-3);
      console.log(
        `synth: ${summary.classNames.length} classes, ${summary.files} files, ${options.size}x${options.size} px, ` +
          `seed ${options.seed} -> ${summary.outDir} (${seconds.toFixed(1)} s, ${rate.toFixed(0)} images/s)`,
      );
    });
}
