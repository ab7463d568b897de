/**
 * `/v1/reports`: the comparison report as JSON, HTML or CSV, and its charts as SVG or PNG.
 * @module
 */
import type { Accepts } from 'fastify';
import type {} from '@fastify/accepts';
import { AppError } from '../../infra/errors.ts';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { ReportsPort } from '../ports.ts';

type ReportFormat = 'json' | 'html' | 'csv';

/** The format asked for: `?format=` wins, else the first of JSON, HTML, CSV the Accept header allows. */
function reportFormat(query: { format?: ReportFormat }, accepts: Accepts): ReportFormat {
  if (query.format) return query.format;
  const chosen = accepts.type(['application/json', 'text/html', 'text/csv']);
  if (chosen === 'text/html') return 'html';
  if (chosen === 'text/csv') return 'csv';
  if (chosen === 'application/json') return 'json';
  throw new AppError('NOT_ACCEPTABLE', 'the report is available as application/json, text/html or text/csv');
}

export function reportHandlers(deps: { reports: ReportsPort }): Pick<OperationHandlers, 'getReport' | 'getReportChart'> {
  return {
    getReport: async (request, reply) => {
      const { experimentId } = request.params as { experimentId: string };
      const query = request.query as { format?: ReportFormat; table?: 'summary' | 'perClass' };
      const format = reportFormat(query, request.accepts());
      if (format === 'json') return deps.reports.get(experimentId);
      const rendered = await deps.reports.render(experimentId, format, query.table);
      // The page has inline styles and SVG only: nothing else may load or run in it.
      if (format === 'html') reply.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; img-src data:");
      return reply.type(rendered.contentType).send(rendered.body);
    },
    getReportChart: async (request, reply) => {
      const { experimentId, chartName } = request.params as { experimentId: string; chartName: string };
      const query = request.query as { format?: 'svg' | 'png' };
      const format = query.format ?? (request.accepts().type(['image/svg+xml', 'image/png']) === 'image/png' ? 'png' : 'svg');
      const chart = await deps.reports.chart(experimentId, chartName, format);
      return reply.type(chart.contentType).header('Cache-Control', 'private, max-age=3600').send(chart.body);
    },
  };
}
