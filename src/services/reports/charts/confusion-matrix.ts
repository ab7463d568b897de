/**
 * The `confusion-matrix-<architecture>` charts: a heat map of test-split counts, true class down,
 * predicted class across, shaded by the share of the true class (row-normalised recall), so a small
 * class's errors show as clearly as a large one's.
 * @module
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ResultView } from '../report-view.ts';
import { CHART_CONFIG } from './chart-theme.ts';

interface Cell {
  trueClass: string;
  predictedClass: string;
  count: number;
  /** count / samples of the true class; 0 for a class without samples. */
  share: number;
}

function cells(result: ResultView, classNames: readonly string[]): Cell[] {
  return classNames.flatMap((trueClass, t) => {
    const row = result.metrics.confusionMatrix[t] ?? [];
    const total = row.reduce((a, b) => a + b, 0);
    return classNames.map((predictedClass, p) => {
      const count = row[p] ?? 0;
      return { trueClass, predictedClass, count, share: total > 0 ? count / total : 0 };
    });
  });
}

/** Vega-Lite spec of one architecture's confusion matrix. */
export function confusionMatrixSpec(result: ResultView, classNames: readonly string[]): TopLevelSpec {
  const step = classNames.length > 8 ? 34 : 44;
  const encodingX = { field: 'predictedClass', type: 'nominal' as const, title: 'Predicted class', sort: [...classNames], axis: { labelAngle: -40 } };
  const encodingY = { field: 'trueClass', type: 'nominal' as const, title: 'True class', sort: [...classNames] };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Confusion matrix: ${result.architecture} (test split)`,
    description: `Counts of test images of each true class (rows) by predicted class (columns) for ${result.architecture}.`,
    config: CHART_CONFIG,
    data: { values: cells(result, classNames) },
    width: { step },
    height: { step },
    encoding: { x: encodingX, y: encodingY },
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 1 },
        encoding: {
          color: {
            field: 'share',
            type: 'quantitative',
            title: 'Row share',
            scale: { scheme: 'blues', domain: [0, 1] },
            legend: { format: '.0%', direction: 'vertical', gradientLength: 120 },
          },
          tooltip: [
            { field: 'trueClass', type: 'nominal', title: 'True' },
            { field: 'predictedClass', type: 'nominal', title: 'Predicted' },
            { field: 'count', type: 'quantitative', title: 'Images' },
            { field: 'share', type: 'quantitative', title: 'Share', format: '.1%' },
          ],
        },
      },
      {
        mark: { type: 'text', fontSize: 11 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: 'datum.share > 0.55', value: 'white' }, value: '#1f2933' },
        },
      },
    ],
  };
}
