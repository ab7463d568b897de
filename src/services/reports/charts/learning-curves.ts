/**
 * The `learning-curves` chart: training and validation loss and accuracy per epoch, one colour per
 * architecture, solid for training and dashed for validation.
 * @module
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ReportView } from '../report-view.ts';
import { architectureColorScale, CHART_CONFIG } from './chart-theme.ts';

interface CurvePoint {
  architecture: string;
  epoch: number;
  split: 'training' | 'validation';
  metric: 'loss' | 'accuracy';
  value: number;
}

/** True when some architecture recorded at least one epoch. */
export function hasLearningCurves(view: ReportView): boolean {
  return view.results.some((result) => result.history.length > 0);
}

function points(view: ReportView): CurvePoint[] {
  return view.results.flatMap((result) =>
    result.history.flatMap((epoch) => {
      const base = { architecture: result.architecture, epoch: epoch.epoch };
      const rows: CurvePoint[] = [
        { ...base, split: 'training', metric: 'loss', value: epoch.loss },
        { ...base, split: 'training', metric: 'accuracy', value: epoch.accuracy },
      ];
      if (epoch.valLoss !== null) rows.push({ ...base, split: 'validation', metric: 'loss', value: epoch.valLoss });
      if (epoch.valAccuracy !== null) rows.push({ ...base, split: 'validation', metric: 'accuracy', value: epoch.valAccuracy });
      return rows.filter((row) => Number.isFinite(row.value));
    }),
  );
}

/** Vega-Lite spec of the learning curves: a loss panel and an accuracy panel side by side. */
export function learningCurvesSpec(view: ReportView): TopLevelSpec {
  const architectures = view.results.map((result) => result.architecture);
  const maxEpoch = Math.max(1, ...view.results.flatMap((result) => result.history.map((epoch) => epoch.epoch)));
  const color = { field: 'architecture', type: 'nominal' as const, title: 'Architecture', scale: architectureColorScale(architectures) };
  const tooltip = [
    { field: 'architecture', type: 'nominal' as const },
    { field: 'split', type: 'nominal' as const },
    { field: 'epoch', type: 'quantitative' as const },
    { field: 'value', type: 'quantitative' as const, format: '.4f' },
  ];
  const panel = (metric: CurvePoint['metric'], title: string, yScale: { domain?: [number, number]; zero: boolean }) => ({
    title,
    width: 300,
    height: 220,
    transform: [{ filter: { field: 'metric', equal: metric } }],
    encoding: {
      x: {
        field: 'epoch',
        type: 'quantitative' as const,
        title: 'Epoch',
        scale: { domain: [1, maxEpoch] },
        axis: { tickMinStep: 1, format: 'd' },
      },
      y: { field: 'value', type: 'quantitative' as const, title, scale: yScale },
      color,
    },
    // Lines and points are separate layers: a line mark with `point: true` draws its dash legend as
    // filled dots, which hides the dash pattern that tells training from validation.
    layer: [
      {
        mark: { type: 'line' as const, strokeWidth: 2 },
        encoding: {
          strokeDash: {
            field: 'split',
            type: 'nominal' as const,
            title: 'Split',
            scale: { domain: ['training', 'validation'], range: [[1, 0], [6, 4]] },
            legend: { symbolType: 'stroke', symbolStrokeWidth: 2, symbolSize: 400, symbolStrokeColor: '#52606d' },
          },
        },
      },
      { mark: { type: 'point' as const, filled: true, size: 30, opacity: 1 }, encoding: { tooltip } },
    ],
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Learning curves',
    description: `Training and validation loss and accuracy per epoch for ${architectures.join(', ')}.`,
    config: CHART_CONFIG,
    data: { values: points(view) },
    hconcat: [panel('loss', 'Loss', { zero: false }), panel('accuracy', 'Accuracy', { domain: [0, 1], zero: true })],
  };
}
