/**
 * Synthetic X-ray-like images of five body regions, fractured or normal, for demos and tests
 * (DESIGN.md section 5, "Synthetic data").
 * @module
 */
export { SYNTH_REGIONS, SYNTH_STATES, isSynthRegion, synthClasses, type SynthClass, type SynthRegion, type SynthState } from './classes.ts';
export { MAX_SYNTH_SIZE, MIN_SYNTH_SIZE, renderSyntheticXray, type RenderedXray, type RenderXrayOptions } from './render-xray.ts';
export { generateSyntheticDataset, type GenerateSyntheticDatasetOptions, type SyntheticDatasetSummary } from './generate-dataset.ts';
