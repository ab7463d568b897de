/**
 * The comparison report of an experiment as the API serves it: JSON view, CSV tables, charts (SVG and
 * PNG) and an HTML page, all built from the ML engine's `report.json`.
 * @module
 */
export {
  toReportView,
  type BinaryMetricsView,
  type ClassCountsView,
  type ClassMetricsView,
  type ConfigView,
  type DatasetView,
  type DuplicatesView,
  type EpochView,
  type MetricsView,
  type PerClassMetricsView,
  type ProvenanceView,
  type RankingEntryView,
  type RankingView,
  type ReportView,
  type ReportViewOptions,
  type ResultView,
  type RocCurveView,
  type RocView,
  type StoredRocCurves,
  type TimingsView,
  type WinnerView,
} from './report-view.ts';
export { CSV_TABLES, PER_CLASS_CSV_HEADER, SUMMARY_CSV_HEADER, isCsvTable, reportCsv, type CsvTable } from './report-csv.ts';
export { INTENDED_USE_NOTICE, renderReportHtml, type PageChart } from './report-html.ts';
export { RANK_METRIC_LABELS } from './metric-labels.ts';
export { escapeHtml } from './html-template.ts';
export * from './charts/index.ts';
