/**
 * ROC charts: `roc` overlays each architecture's curve of the binary fracture view (the summed
 * fracture probability as score); `roc-<architecture>` shows one architecture's one-vs-rest curve per
 * class. Both need curves the engine stored with the results (`ResultView.roc`).
 * @module
 */
import type { TopLevelSpec } from 'vega-lite';
import { auc } from '../../../ml/metrics/index.ts';
import type { ReportView, ResultView, RocCurveView } from '../report-view.ts';
import { architectureColorScale, categoryColorScale, CHART_CONFIG, formatMetric } from './chart-theme.ts';

interface RocPoint {
  series: string;
  /** Position along the curve, so tied false-positive rates keep their order. */
  order: number;
  fpr: number;
  tpr: number;
}

/** True when some result has a binary-view ROC curve. */
export function hasBinaryRoc(view: ReportView): boolean {
  return view.results.some((result) => result.roc?.binary);
}

/** True when `result` has at least one per-class ROC curve. */
export function hasPerClassRoc(result: ResultView): boolean {
  return (result.roc?.perClass.length ?? 0) > 0;
}

function curvePoints(series: string, curve: RocCurveView): RocPoint[] {
  return curve.fpr.map((fpr, order) => ({ series, order, fpr, tpr: curve.tpr[order] ?? 0 }));
}

/** Legend label of a curve: its name and its area (trapezoidal, the same as the report's AUC). */
function seriesLabel(name: string, curve: RocCurveView): string {
  return `${name} (AUC ${formatMetric(auc(curve.fpr, curve.tpr))})`;
}

function rocSpec(title: string, description: string, legendTitle: string, series: { label: string; curve: RocCurveView }[], color: { domain: string[]; range: string[] }): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    description,
    config: CHART_CONFIG,
    width: 320,
    height: 320,
    layer: [
      {
        // The chance diagonal, for reference.
        data: { values: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] },
        mark: { type: 'line', color: '#9aa5b1', strokeDash: [4, 4], strokeWidth: 1 },
        encoding: {
          x: { field: 'fpr', type: 'quantitative' },
          y: { field: 'tpr', type: 'quantitative' },
        },
      },
      {
        data: { values: series.flatMap(({ label, curve }) => curvePoints(label, curve)) },
        mark: { type: 'line', strokeWidth: 2, interpolate: 'linear' },
        encoding: {
          x: { field: 'fpr', type: 'quantitative', title: 'False-positive rate (1 - specificity)', scale: { domain: [0, 1] } },
          y: { field: 'tpr', type: 'quantitative', title: 'True-positive rate (sensitivity)', scale: { domain: [0, 1] } },
          color: { field: 'series', type: 'nominal', title: legendTitle, scale: color },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  };
}

/** Vega-Lite spec of the binary-view ROC curves of every architecture that has one. */
export function binaryRocSpec(view: ReportView): TopLevelSpec {
  const series = view.results.flatMap((result) =>
    result.roc?.binary ? [{ architecture: result.architecture, label: seriesLabel(result.architecture, result.roc.binary), curve: result.roc.binary }] : [],
  );
  const colors = architectureColorScale(series.map((s) => s.architecture));
  return rocSpec(
    'ROC curves: fracture vs no fracture (test split)',
    `ROC curves of the binary fracture view for ${series.map((s) => s.architecture).join(', ')}, scored by the summed probability of the fracture-positive classes.`,
    'Architecture',
    series,
    { domain: series.map((s) => s.label), range: colors.range },
  );
}

/** Vega-Lite spec of one architecture's one-vs-rest ROC curves, one per class. */
export function perClassRocSpec(result: ResultView): TopLevelSpec {
  const series = (result.roc?.perClass ?? []).map(({ className, curve }) => ({ label: seriesLabel(className, curve), curve }));
  return rocSpec(
    `ROC curves per class: ${result.architecture} (test split)`,
    `One-vs-rest ROC curve of each class for ${result.architecture}.`,
    'Class',
    series,
    categoryColorScale(series.map((s) => s.label)),
  );
}
