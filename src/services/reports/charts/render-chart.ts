/**
 * Renders the report's charts: Vega-Lite compiles each spec to Vega, Vega renders it to an SVG string
 * in Node (headless, no canvas: text widths are estimated from the font size), and sharp (librsvg)
 * rasterises that SVG for PNG.
 *
 * Output is deterministic: the same view gives the same SVG and PNG bytes. Vega numbers the ids of
 * clip paths and gradients from process-wide counters; they are renamed here to `<chart>-<n>`, which
 * also keeps ids unique when several charts are inlined in one HTML page.
 * @module
 */
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { AppError } from '../../../infra/errors.ts';
import type { ExperimentReport } from '../../../ml/experiment/index.ts';
import { toReportView, type ReportView } from '../report-view.ts';
import { chartCatalog } from './chart-catalog.ts';

/** Formats a chart is served in. */
export const CHART_FORMATS = ['svg', 'png'] as const;
export type ChartFormat = (typeof CHART_FORMATS)[number];

/** Media type of each format. */
export const CHART_CONTENT_TYPES: Readonly<Record<ChartFormat, string>> = Object.freeze({
  svg: 'image/svg+xml; charset=utf-8',
  png: 'image/png',
});

/** A report view, or an engine report (converted with {@link toReportView}; the id is not used by charts). */
export type ChartSource = ReportView | ExperimentReport;

/** One chart as SVG text, with what a page needs to label it. */
export interface ChartSvg {
  name: string;
  /** The chart's title (also in the SVG's `<title>`). */
  title: string;
  /** One sentence describing what the chart shows (also in the SVG's `<desc>`). */
  description: string;
  /** A standalone SVG document (`<svg xmlns=...>`), ids prefixed with the chart name. */
  svg: string;
  /** Warnings of Vega-Lite or Vega while compiling and rendering (none expected). */
  warnings: string[];
}

/** A chart ready to send. */
export interface RenderedChart {
  name: string;
  contentType: string;
  body: Buffer;
}

/** Options of {@link renderChart}. */
export interface RenderChartOptions {
  /**
   * PNG only: pixels per SVG pixel, in [1, 4]. Default 2 (sharp on screens with a device pixel ratio
   * of 2; density = 72 x scale).
   */
  scale?: number;
}

function asView(source: ChartSource): ReportView {
  return 'experimentId' in source ? source : toReportView('', source);
}

/**
 * Names of the charts this report has: `metrics`, `learning-curves` (when some epoch ran), `roc`
 * (when ROC curves were stored), and `confusion-matrix-<architecture>` and `roc-<architecture>` for
 * each architecture.
 */
export function listCharts(source: ChartSource): string[] {
  return [...chartCatalog(asView(source)).keys()];
}

function specOf(view: ReportView, name: string): TopLevelSpec {
  const build = chartCatalog(view).get(name);
  if (build === undefined) {
    // The requested name is not echoed: it comes from the URL.
    throw new AppError('CHART_NOT_FOUND', `this report has no such chart; it has: ${listCharts(view).join(', ')}`);
  }
  return build();
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Renames every id of the SVG (and each `url(#id)` / `href="#id"` reference to it) to
 * `<prefix>-<n>` in order of first appearance, so output does not depend on Vega's global counters.
 */
function canonicalIds(svg: string, prefix: string): string {
  const renamed = new Map<string, string>();
  for (const match of svg.matchAll(/\bid="([^"]+)"/g)) {
    const id = match[1]!;
    if (!renamed.has(id)) renamed.set(id, `${prefix}-${renamed.size + 1}`);
  }
  if (renamed.size === 0) return svg;
  return svg.replace(/(\bid="|url\(#|href="#)([^")]+)/g, (whole, lead: string, id: string) => {
    const to = renamed.get(id);
    return to === undefined ? whole : `${lead}${to}`;
  });
}

/** Gives the root `<svg>` an accessible name and description (`role="img"`, `<title>`, `<desc>`). */
function labelSvg(svg: string, name: string, title: string, description: string): string {
  const open = svg.indexOf('>', svg.indexOf('<svg')) + 1;
  if (open <= 0) return svg;
  const root = svg.slice(0, open - 1);
  const labelled = `${root} role="img" aria-labelledby="${name}-title ${name}-desc">`;
  const header = `<title id="${name}-title">${escapeXml(title)}</title><desc id="${name}-desc">${escapeXml(description)}</desc>`;
  return labelled + header + svg.slice(open);
}

async function renderSpec(name: string, spec: TopLevelSpec): Promise<ChartSvg> {
  const warnings: string[] = [];
  const logger = vega.logger(vega.Warn, undefined, (method, _level, args) => {
    if (method !== 'log') warnings.push(args.map(String).join(' '));
  });
  const compiled = compile(spec, { logger });
  const view = new vega.View(vega.parse(compiled.spec), { renderer: 'none', logger });
  try {
    const raw = await view.toSVG();
    const title = typeof spec.title === 'string' ? spec.title : name;
    const description = spec.description ?? title;
    return { name, title, description, svg: labelSvg(canonicalIds(raw, name), name, title, description), warnings };
  } finally {
    view.finalize();
  }
}

/**
 * One chart as SVG text.
 * @throws AppError `CHART_NOT_FOUND` when the report has no chart of that name
 */
export async function renderChartSvg(source: ChartSource, name: string): Promise<ChartSvg> {
  const view = asView(source);
  return renderSpec(name, specOf(view, name));
}

/** Every chart of the report as SVG, in {@link listCharts} order (for the HTML page). */
export async function renderAllChartsSvg(source: ChartSource): Promise<ChartSvg[]> {
  const view = asView(source);
  const charts: ChartSvg[] = [];
  // One at a time: rendering is CPU-bound, so running them together would only interleave.
  for (const [name, build] of chartCatalog(view)) charts.push(await renderSpec(name, build()));
  return charts;
}

/**
 * One chart as an HTTP body: SVG, or PNG rasterised from the same SVG by sharp.
 * @throws AppError `CHART_NOT_FOUND` for an unknown chart name, `NOT_ACCEPTABLE` for an unknown format
 * @example
 * const { contentType, body } = await renderChart(view, 'confusion-matrix-cnn', 'png');
 * reply.type(contentType).send(body);
 */
export async function renderChart(source: ChartSource, name: string, format: ChartFormat, options: RenderChartOptions = {}): Promise<RenderedChart> {
  if (!(CHART_FORMATS as readonly string[]).includes(format)) {
    throw new AppError('NOT_ACCEPTABLE', `charts are available as ${CHART_FORMATS.join(' or ')}`);
  }
  const { svg } = await renderChartSvg(source, name);
  if (format === 'svg') return { name, contentType: CHART_CONTENT_TYPES.svg, body: Buffer.from(svg, 'utf8') };
  const scale = options.scale ?? 2;
  if (!(scale >= 1 && scale <= 4)) throw new AppError('VALIDATION_FAILED', 'scale must be between 1 and 4');
  const body = await sharp(Buffer.from(svg, 'utf8'), { density: 72 * scale }).png().toBuffer();
  return { name, contentType: CHART_CONTENT_TYPES.png, body };
}
