/**
 * What every chart shares: the Vega-Lite config (fonts, sizes, white background) and one colour per
 * architecture, so an architecture has the same colour in every chart of a report.
 * @module
 */
import type { Config } from 'vega-lite';
import { ARCHITECTURES } from '../../../ml/models/index.ts';

/**
 * Generic `sans-serif`: browsers use their own, and the PNG rasteriser (librsvg in sharp) resolves it
 * through fontconfig, so any installed sans font (DejaVu in our images) draws the text.
 */
export const CHART_CONFIG: Config = {
  font: 'sans-serif',
  background: 'white',
  padding: 8,
  title: { fontSize: 14, anchor: 'start', offset: 10 },
  // Without a canvas Vega overestimates text widths, so limits are generous to avoid truncation.
  axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 220 },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 360, titleLimit: 360 },
  header: { labelFontSize: 12, titleFontSize: 12 },
};

/** Tableau 10, colour-blind friendlier than the default category scheme for the first four. */
const PALETTE = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#ff9da7', '#9c755f', '#bab0ac'];

/** A Vega-Lite scale giving each architecture in `architectures` its fixed colour. */
export function architectureColorScale(architectures: readonly string[]): { domain: string[]; range: string[] } {
  return {
    domain: [...architectures],
    range: architectures.map((architecture, i) => {
      const fixed = (ARCHITECTURES as readonly string[]).indexOf(architecture);
      return PALETTE[(fixed >= 0 ? fixed : ARCHITECTURES.length + i) % PALETTE.length]!;
    }),
  };
}

/** Colours for series that are not architectures (e.g. the classes of a per-class ROC chart). */
export function categoryColorScale(categories: readonly string[]): { domain: string[]; range: string[] } {
  return { domain: [...categories], range: categories.map((_, i) => PALETTE[i % PALETTE.length]!) };
}

/** Fixed decimals for labels in charts; `n/a` for an undefined metric. */
export function formatMetric(value: number | null, digits = 3): string {
  return value === null || !Number.isFinite(value) ? 'n/a' : value.toFixed(digits);
}
