/**
 * Model summaries: parameter counts and per-layer facts, as data (JSON) or as a Keras-like table.
 * @module
 */
import type * as tf from '@tensorflow/tfjs';
import { isArchitecture, type LayerSummary, type ModelSummary } from './types.ts';

/**
 * Summarises `model`. `architecture` comes from the model's name, which `buildModel` sets (and which
 * survives save/load); `null` for other models. Reads shapes only: no tensors are created.
 * @example
 * summarizeModel(buildModel({ architecture: 'resnet50', inputShape: [224, 224, 3], numClasses: 1000, includeTop: true }));
 * // { architecture: 'resnet50', params: 25636712, trainableParams: 25583592, layers: [...177] }
 */
export function summarizeModel(model: tf.LayersModel): ModelSummary {
  const layers: LayerSummary[] = model.layers.map((layer) => ({
    name: layer.name,
    type: layer.getClassName(),
    outputShape: layer.outputShape as LayerSummary['outputShape'],
    params: layer.countParams(),
  }));
  const params = layers.reduce((sum, layer) => sum + layer.params, 0);
  const trainableParams = model.trainableWeights.reduce((sum, w) => sum + sizeOf(w.shape), 0);
  return {
    architecture: isArchitecture(model.name) ? model.name : null,
    params,
    trainableParams,
    layers,
  };
}

function sizeOf(shape: readonly (number | null)[]): number {
  return shape.reduce<number>((product, dim) => product * (dim ?? 1), 1);
}

/**
 * Renders a summary as a plain-text table (layer, type, output shape, params) followed by the totals,
 * with thousands separators. Lines are joined by `\n`, without a trailing newline.
 */
export function formatModelSummary(summary: ModelSummary): string {
  const rows = summary.layers.map((layer) => [
    `${layer.name} (${layer.type})`,
    JSON.stringify(layer.outputShape).replaceAll(',', ', '),
    layer.params.toLocaleString('en-US'),
  ]);
  const header = ['Layer (type)', 'Output shape', 'Params'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((cell, i) => (i === cells.length - 1 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0))).join('  ');
  const rule = '-'.repeat(widths.reduce((a, b) => a + b, 0) + 2 * (widths.length - 1));
  const number = (n: number): string => n.toLocaleString('en-US');
  return [
    `Model: ${summary.architecture ?? 'unknown'}`,
    rule,
    line(header),
    rule,
    ...rows.map(line),
    rule,
    `Total params: ${number(summary.params)}`,
    `Trainable params: ${number(summary.trainableParams)}`,
    `Non-trainable params: ${number(summary.params - summary.trainableParams)}`,
  ].join('\n');
}
