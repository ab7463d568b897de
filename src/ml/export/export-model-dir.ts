/**
 * ONNX export of a saved model directory: load it (hashes checked), convert it, dispose it. The one
 * place the CLI and the Triton writer get ONNX bytes from a folder written by `saveModel`.
 * @module
 */
// The files, not persist's index: persist's save-model imports this folder's index, and naming its
// index here would close a cycle once this module is re-exported from there.
import { loadModel } from '../persist/load-model.ts';
import type { ModelMetadata } from '../persist/model-metadata.ts';
import { exportToOnnx } from './onnx-export.ts';

/** The ONNX bytes of a model directory and the metadata they were made from. */
export interface ExportedModelDir {
  /** The bytes of a `model.onnx`: input `[batch, H, W, C]` float32, output `[batch, classes]`. */
  onnx: Uint8Array;
  /** The directory's `metadata.json` (class names, input shape, preprocessing ...). */
  metadata: ModelMetadata;
  /** Directory actually read (an intact previous copy when a save crashed, see `loadModel`). */
  dir: string;
}

/**
 * Loads the model saved in `modelDir` (every file checked against its sha256 in `metadata.json`) and
 * exports it with that metadata recorded in the file (architecture, class names, positive classes,
 * preprocessing). The tfjs model is disposed before returning, on success or failure.
 *
 * The export is made from the tfjs weights even when the directory already holds a `model.onnx`, so
 * the result always reflects this build's exporter.
 *
 * @param modelDir a directory written by `saveModel`
 * @returns the bytes of the ONNX file (also see {@link exportModelDir} for the metadata)
 * @throws MlError `MODEL_NOT_FOUND` / `MODEL_CORRUPT` from loading; `EXPORT_UNSUPPORTED` naming the
 *   first layer with no ONNX converter.
 * @example
 * await writeFile('cnn.onnx', await exportModelDirToOnnx('data/models/m1'));
 */
export async function exportModelDirToOnnx(modelDir: string): Promise<Uint8Array> {
  return (await exportModelDir(modelDir)).onnx;
}

/**
 * {@link exportModelDirToOnnx}, also returning the metadata read, for callers that describe the
 * result (shapes, class names) without opening the directory a second time.
 */
export async function exportModelDir(modelDir: string): Promise<ExportedModelDir> {
  const { model, metadata, dir } = await loadModel(modelDir);
  try {
    const onnx = exportToOnnx(model, {
      architecture: metadata.architecture,
      classNames: metadata.classNames,
      positiveClasses: metadata.positiveClasses,
      preprocessing: metadata.preprocessing,
    });
    return { onnx, metadata, dir };
  } finally {
    model.dispose();
  }
}
