/**
 * Exporting trained models to ONNX, so ONNX Runtime can serve them and Triton or KServe can deploy
 * them. Training stays on tfjs.
 * @module
 */
export {
  exportToOnnx,
  ONNX_BATCH_DIM,
  ONNX_INPUT_NAME,
  ONNX_MODEL_FILE,
  ONNX_OUTPUT_NAME,
  type OnnxExportInfo,
} from './onnx-export.ts';
export { ONNX_IR_VERSION, ONNX_OPSET } from './onnx-graph.ts';
export { exportModelDir, exportModelDirToOnnx, type ExportedModelDir } from './export-model-dir.ts';
export {
  DEFAULT_TRITON_MAX_BATCH_SIZE,
  DEFAULT_TRITON_MAX_QUEUE_DELAY_US,
  TRITON_CONFIG_FILE,
  TRITON_LABELS_FILE,
  TRITON_MODEL_VERSION,
  sanitiseTritonModelName,
  tritonModelConfig,
  writeTritonRepository,
  type TritonRepositoryInfo,
  type TritonRepositoryOptions,
} from './triton.ts';
