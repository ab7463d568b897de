/**
 * Experiments: train several architectures on one dataset, evaluate, rank and report.
 * @module
 */
export { runExperiment, resolveExperimentConfig, checkExperimentConfig, type ExperimentConfig } from './run-experiment.ts';
export { formatComparisonTable } from './comparison-table.ts';
export { rankResults, metricValue, RANK_METRICS, DEFAULT_RANK_METRIC, type Ranking, type RankingEntry, type RankMetric } from './ranking.ts';
export { measureLatencyMs } from './latency.ts';
export { DEFAULT_LEARNING_RATE } from './types.ts';
export type { ArchitectureResult, DatasetSummary, ExperimentEvent, ExperimentOptions, ExperimentReport, Timings } from './types.ts';
