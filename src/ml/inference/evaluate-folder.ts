/**
 * Evaluates a saved model on a dataset folder: every usable image (or, for `train/ val/ test/`
 * layouts, the `test` split only), streamed in batches with the model's own preprocessing.
 * @module
 */
import { createBatchStream, scanDataset } from '../data/index.ts';
import { MlError } from '../errors.ts';
import type { PredictionsInput } from '../metrics/index.ts';
import { loadModel } from '../persist/index.ts';
import { predictBatches } from '../train/index.ts';
import { modelImageOptions } from './classify.ts';

/**
 * Runs the model in `modelDir` over the images of `dataDir` and returns what the metrics need.
 * Dataset classes are matched to the model's classes by name.
 * @throws MlError `INVALID_ARGUMENT` when the folder has a class the model does not know
 */
export async function evaluateModelOnFolder(modelDir: string, dataDir: string, options: { batchSize?: number } = {}): Promise<PredictionsInput> {
  const index = await scanDataset(dataDir);
  const loaded = await loadModel(modelDir);
  try {
    const modelClasses = loaded.metadata.classNames;
    const unknown = index.classNames.filter((name) => !modelClasses.includes(name));
    if (unknown.length > 0) {
      throw new MlError('INVALID_ARGUMENT', `the dataset has classes the model does not know: ${unknown.join(', ')}; the model's classes: ${modelClasses.join(', ')}`);
    }
    const hasTestSplit = index.items.some((item) => item.presetSplit === 'test');
    const items = index.items
      .filter((item) => !hasTestSplit || item.presetSplit === 'test')
      .map((item) => ({ path: item.path, label: modelClasses.indexOf(index.classNames[item.label] as string) }));
    const predictions = await predictBatches(
      loaded.model,
      createBatchStream(items, {
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
    };
  } finally {
    loaded.model.dispose();
  }
}
