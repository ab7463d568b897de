/**
 * Inference with saved models: classify images and explain predictions.
 * @module
 */
export { classifyImages, describeProbabilities, explainImage, modelImageOptions, type ImagePrediction } from './classify.ts';
export { evaluateModelOnFolder } from './evaluate-folder.ts';
