/**
 * The report's charts: Vega-Lite specs rendered to SVG by Vega and to PNG by sharp.
 * @module
 */
export {
  CHART_CONTENT_TYPES,
  CHART_FORMATS,
  listCharts,
  renderAllChartsSvg,
  renderChart,
  renderChartSvg,
  type ChartFormat,
  type ChartSource,
  type ChartSvg,
  type RenderChartOptions,
  type RenderedChart,
} from './render-chart.ts';
export { HEADLINE_METRICS } from './metric-bars.ts';
