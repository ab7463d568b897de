/**
 * Which charts a report has and the Vega-Lite spec of each, by name:
 * `metrics`, `learning-curves`, `confusion-matrix-<architecture>`, `roc` and `roc-<architecture>`
 * (the ROC charts only when the report holds ROC curves).
 * @module
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ReportView } from '../report-view.ts';
import { confusionMatrixSpec } from './confusion-matrix.ts';
import { hasLearningCurves, learningCurvesSpec } from './learning-curves.ts';
import { metricBarsSpec } from './metric-bars.ts';
import { binaryRocSpec, hasBinaryRoc, hasPerClassRoc, perClassRocSpec } from './roc-curves.ts';

/** Builds the spec of one chart on demand (specs carry the data, so they are not built up front). */
type SpecBuilder = () => TopLevelSpec;

/** Every chart `view` has, in the order a page shows them. */
export function chartCatalog(view: ReportView): Map<string, SpecBuilder> {
  const catalog = new Map<string, SpecBuilder>();
  if (view.results.length > 0) catalog.set('metrics', () => metricBarsSpec(view));
  if (hasLearningCurves(view)) catalog.set('learning-curves', () => learningCurvesSpec(view));
  if (hasBinaryRoc(view)) catalog.set('roc', () => binaryRocSpec(view));
  for (const result of view.results) {
    catalog.set(`confusion-matrix-${result.architecture}`, () => confusionMatrixSpec(result, view.dataset.classNames));
  }
  for (const result of view.results) {
    if (hasPerClassRoc(result)) catalog.set(`roc-${result.architecture}`, () => perClassRocSpec(result));
  }
  return catalog;
}
