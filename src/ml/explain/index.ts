/**
 * Explanations: Grad-CAM heat-maps and their PNG overlays.
 * @module
 */
export { gradCam, type GradCamOptions, type GradCamResult } from './grad-cam.ts';
export { renderHeatmapOverlay, type OverlayOptions } from './heatmap-overlay.ts';
export { defaultGradCamLayer, splitModelAt, type SplitModel } from './split-model.ts';
export { jet, jetLut } from './colormap.ts';
