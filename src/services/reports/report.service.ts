/**
 * Reports of experiments as the API serves them: finds an experiment's `report.json`, turns it into
 * the JSON view, the HTML page, CSV tables and charts, and keeps recent renderings in memory (a report
 * never changes once written, and rendering every chart for the page takes up to a second).
 * @module
 */
import { stat } from 'node:fs/promises';
import { LRUCache } from 'lru-cache';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import { AppError } from '../../infra/errors.ts';
import type { ExperimentReport } from '../../ml/experiment/index.ts';
import { modelIdFor } from '../models/model.types.ts';
import { listCharts, renderAllChartsSvg, renderChart } from './charts/index.ts';
import { reportCsv, type CsvTable } from './report-csv.ts';
import { renderReportHtml } from './report-html.ts';
import { toReportView, type ReportView } from './report-view.ts';

/** The report as `GET /v1/reports/{id}` answers: the view and the names of its charts. */
export type ReportBody = ReportView & { charts: string[] };

/** A rendered document. */
export interface RenderedDocument {
  contentType: string;
  body: string | Uint8Array;
}

/** What the service needs to know about an experiment besides its report. */
export interface ExperimentLookup {
  /** null when there is no such experiment. */
  (experimentId: string): Promise<{ datasetId: string; status: string } | null>;
}

/** Renderings kept in memory. */
const CACHE_ENTRIES = 64;

export class ReportService {
  readonly #store: ArtifactStore;
  readonly #lookup: ExperimentLookup;
  readonly #cache = new LRUCache<string, Promise<unknown>>({ max: CACHE_ENTRIES });

  /**
   * @param store where `experiments/{id}/report.json` lives
   * @param lookup the experiment's dataset and status (the experiment service's records)
   */
  constructor(store: ArtifactStore, lookup: ExperimentLookup) {
    this.#store = store;
    this.#lookup = lookup;
  }

  /**
   * The report's JSON view with the names of its charts.
   * @throws AppError REPORT_NOT_FOUND (no such experiment), REPORT_NOT_READY (not finished)
   */
  async get(experimentId: string): Promise<ReportBody> {
    return this.#cached(experimentId, 'json', async (view) => ({ ...view, charts: listCharts(view) }));
  }

  /** The report as an HTML page (tables and inline SVG charts) or a CSV table. */
  async render(experimentId: string, format: 'html' | 'csv', table: CsvTable = 'summary'): Promise<RenderedDocument> {
    if (format === 'csv') {
      return this.#cached(experimentId, `csv:${table}`, async (view) => ({ contentType: 'text/csv; charset=utf-8', body: reportCsv(view, table) }));
    }
    return this.#cached(experimentId, 'html', async (view) => ({
      contentType: 'text/html; charset=utf-8',
      body: renderReportHtml(view, await renderAllChartsSvg(view)),
    }));
  }

  /**
   * One chart as SVG or PNG.
   * @throws AppError CHART_NOT_FOUND for a name the report has no chart for
   */
  async chart(experimentId: string, name: string, format: 'svg' | 'png'): Promise<RenderedDocument> {
    return this.#cached(experimentId, `chart:${name}:${format}`, async (view) => {
      const chart = await renderChart(view, name, format);
      return { contentType: chart.contentType, body: chart.body };
    });
  }

  /** Builds (or reuses) a rendering of the current report file. */
  async #cached<T>(experimentId: string, kind: string, build: (view: ReportView) => Promise<T>): Promise<T> {
    // The spec's id pattern allows `a..b`, which can never name a folder: no such experiment.
    if (!isSafeId(experimentId)) throw new AppError('REPORT_NOT_FOUND', 'no such experiment');
    const file = this.#store.reportFile(experimentId);
    const version = await stat(file).then(
      (info) => `${info.mtimeMs}:${info.size}`,
      () => null,
    );
    if (version === null) throw await this.#missingReport(experimentId);
    const key = `${experimentId}:${version}:${kind}`;
    let rendering = this.#cache.get(key) as Promise<T> | undefined;
    if (!rendering) {
      rendering = this.#view(experimentId).then(build);
      this.#cache.set(key, rendering);
      // A failed rendering must not stay cached.
      rendering.catch(() => this.#cache.delete(key));
    }
    return rendering;
  }

  async #view(experimentId: string): Promise<ReportView> {
    const report = await this.#store.readJson<ExperimentReport>(this.#store.reportFile(experimentId));
    if (!report) throw await this.#missingReport(experimentId);
    const experiment = await this.#lookup(experimentId);
    const modelIds = Object.fromEntries(report.results.map((result) => [result.architecture, modelIdFor(experimentId, result.architecture)]));
    return toReportView(experimentId, report, { ...(experiment ? { datasetId: experiment.datasetId } : {}), modelIds });
  }

  async #missingReport(experimentId: string): Promise<AppError> {
    const experiment = await this.#lookup(experimentId);
    if (!experiment) return new AppError('REPORT_NOT_FOUND', `no experiment "${experimentId}"`);
    return new AppError('REPORT_NOT_READY', `the experiment is ${experiment.status}; its report is written when it completes`);
  }
}
