/**
 * Evaluates a saved model on a dataset folder, streamed in batches with the model's own preprocessing.
 * Which images are scored:
 * - a `train/ val/ test/` layout: its `test/` images;
 * - the very dataset the model was trained on (same dataset hash, split settings in the metadata):
 *   the same test split as in training, so no training image is scored;
 * - any other folder: every image.
 * @module
 */
import { createBatchStream, scanDataset, splitDataset, type DatasetIndex, type DatasetItem } from '../data/index.ts';
import { MlError } from '../errors.ts';
import type { PredictionsInput } from '../metrics/index.ts';
import { loadModel, type ModelMetadata } from '../persist/index.ts';
import { predictBatches } from '../train/index.ts';
import { modelImageOptions } from './classify.ts';

/** Which images of the folder were scored. */
export type EvaluatedSubset = 'preset-test-split' | 'training-test-split' | 'whole-folder';

/** The predictions and which subset they cover. */
export interface FolderEvaluation extends PredictionsInput {
  subset: EvaluatedSubset;
}

function recordedSplit(metadata: ModelMetadata): { seed: number; valFraction: number; testFraction: number } | undefined {
  const split = (metadata.training as { split?: unknown } | undefined)?.split as Record<string, unknown> | undefined;
  if (split && typeof split.seed === 'number' && typeof split.valFraction === 'number' && typeof split.testFraction === 'number') {
    return { seed: split.seed, valFraction: split.valFraction, testFraction: split.testFraction };
  }
  return undefined;
}

function itemsToScore(index: DatasetIndex, metadata: ModelMetadata): { items: readonly DatasetItem[]; subset: EvaluatedSubset } {
  if (index.items.some((item) => item.presetSplit === 'test')) {
    return { items: index.items.filter((item) => item.presetSplit === 'test'), subset: 'preset-test-split' };
  }
  const split = recordedSplit(metadata);
  if (split && metadata.datasetHash === index.hash) {
    return { items: splitDataset(index, split).test, subset: 'training-test-split' };
  }
  return { items: index.items, subset: 'whole-folder' };
}

/**
 * Runs the model in `modelDir` over the images of `dataDir` and returns what the metrics need.
 * Dataset classes are matched to the model's classes by name.
 * @throws MlError `INVALID_ARGUMENT` when the folder has a class the model does not know
 */
export async function evaluateModelOnFolder(modelDir: string, dataDir: string, options: { batchSize?: number } = {}): Promise<FolderEvaluation> {
  const index = await scanDataset(dataDir);
  const loaded = await loadModel(modelDir);
  try {
    const modelClasses = loaded.metadata.classNames;
    const unknown = index.classNames.filter((name) => !modelClasses.includes(name));
    if (unknown.length > 0) {
      throw new MlError('INVALID_ARGUMENT', `the dataset has classes the model does not know: ${unknown.join(', ')}; the model's classes: ${modelClasses.join(', ')}`);
    }
    const { items, subset } = itemsToScore(index, loaded.metadata);
    const relabelled = items.map((item) => ({ path: item.path, label: modelClasses.indexOf(index.classNames[item.label] as string) }));
    const predictions = await predictBatches(
      loaded.model,
      createBatchStream(relabelled, {
        root: index.root,
        batchSize: options.batchSize ?? 16,
        shuffle: false,
        imageOptions: modelImageOptions(loaded),
        numClasses: modelClasses.length,
      }),
    );
    return {
      classNames: modelClasses,
      yTrue: predictions.yTrue,
      yPred: predictions.yPred,
      yProb: predictions.yProb,
      positiveClasses: loaded.metadata.positiveClasses,
      subset,
    };
  } finally {
    loaded.model.dispose();
  }
}
