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
