/**
 * Inference with saved models: classify images and explain predictions.
 * @module
 */
export { classifyImages, describeProbabilities, explainImage, modelImageOptions, type ImagePrediction } from './classify.ts';
export { evaluateModelOnFolder, type EvaluatedSubset, type FolderEvaluation } from './evaluate-folder.ts';
