/**
 * The `metrics` chart: grouped bars of the headline test-split metrics, one bar per architecture in
 * each group. Undefined metrics (null) are left out rather than drawn as zero.
 * @module
 */
import type { TopLevelSpec } from 'vega-lite';
import { RANK_METRIC_LABELS } from '../metric-labels.ts';
import type { MetricsView, ReportView } from '../report-view.ts';
import { architectureColorScale, CHART_CONFIG } from './chart-theme.ts';

/** The metrics the chart shows, in order, with their axis labels. */
export const HEADLINE_METRICS: readonly (readonly [label: string, read: (metrics: MetricsView) => number | null])[] = [
  ['Accuracy', (m) => m.accuracy],
  ['Balanced accuracy', (m) => m.balancedAccuracy],
  ['Macro F1', (m) => m.macroAvg.f1],
  ['Weighted F1', (m) => m.weightedAvg.f1],
  ['MCC', (m) => m.mcc],
  ['ROC AUC (OvR)', (m) => m.rocAucOvrMacro],
  ['Sensitivity', (m) => m.binary?.sensitivity ?? null],
  ['Specificity', (m) => m.binary?.specificity ?? null],
  ['Fracture ROC AUC', (m) => m.binary?.rocAuc ?? null],
];

/** Vega-Lite spec of the grouped metric bars. */
export function metricBarsSpec(view: ReportView): TopLevelSpec {
  const architectures = view.results.map((result) => result.architecture);
  const values = view.results.flatMap((result) =>
    HEADLINE_METRICS.flatMap(([metric, read]) => {
      const value = read(result.metrics);
      return value === null || !Number.isFinite(value) ? [] : [{ architecture: result.architecture, metric, value }];
    }),
  );
  const shown = HEADLINE_METRICS.map(([label]) => label).filter((label) => values.some((v) => v.metric === label));
  // MCC can be negative; every other metric lies in [0, 1].
  const low = Math.min(0, ...values.map((v) => v.value));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Test-split metrics by architecture (ranked by ${RANK_METRIC_LABELS[view.ranking.metric]})`,
    description: `Grouped bars of ${shown.join(', ')} for ${architectures.join(', ')}.`,
    config: CHART_CONFIG,
    data: { values },
    // With an xOffset channel the step is the width of one bar, not of one group.
    width: { step: architectures.length > 2 ? 16 : 22 },
    height: 260,
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'metric', type: 'nominal', title: 'Metric', sort: shown, axis: { labelAngle: -30 } },
      xOffset: { field: 'architecture', type: 'nominal', sort: architectures },
      y: { field: 'value', type: 'quantitative', title: 'Score', scale: { domain: [low, 1] } },
      color: { field: 'architecture', type: 'nominal', title: 'Architecture', scale: architectureColorScale(architectures) },
      tooltip: [
        { field: 'architecture', type: 'nominal' },
        { field: 'metric', type: 'nominal' },
        { field: 'value', type: 'quantitative', format: '.4f' },
      ],
    },
  };
}
