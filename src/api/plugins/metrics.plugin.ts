/**
 * HTTP metrics and the `/metrics` exposition (issue 3 item 8). An `onResponse` hook records every
 * request's latency in `http_request_duration_seconds` labelled with the ROUTE TEMPLATE
 * (`/v1/models/:id`), never the raw URL: ids in URLs would make one series per id. Requests that
 * match no route are labelled {@link UNMATCHED_ROUTE}, so scanners cannot create series either.
 * The plugin does not add the `/metrics` route (routes come from the API contract); it gives the
 * handler: `app.get('/metrics', metricsHandler(metrics))`.
 * @module
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Metrics } from '../../infra/metrics.ts';

/** Options of {@link metricsPlugin}. */
export interface MetricsPluginOptions {
  metrics: Metrics;
}

/** The `route` label of requests that matched no route (404s of unknown paths). */
export const UNMATCHED_ROUTE = 'unmatched';

/** The route label of a request: its template, or {@link UNMATCHED_ROUTE}. */
export function routeLabel(request: FastifyRequest): string {
  // a 404 runs in the not-found context, whose url is the catch-all `*` or absent
  const template = request.is404 ? undefined : request.routeOptions.url;
  return template ?? UNMATCHED_ROUTE;
}

const plugin: FastifyPluginAsync<MetricsPluginOptions> = async (app, { metrics }) => {
  app.addHook('onResponse', async (request, reply) => {
    metrics.httpRequestDuration.observe(
      { method: request.method, route: routeLabel(request), status: String(reply.statusCode) },
      reply.elapsedTime / 1000,
    );
  });
};

/**
 * The metrics plugin (wrapped by fastify-plugin, so it sees every route of the app).
 * @example
 * await app.register(metricsPlugin, { metrics });
 */
export const metricsPlugin = fp(plugin, { fastify: '5.x', name: 'fracture-metrics' });
export default metricsPlugin;

/**
 * The `GET /metrics` handler: the registry's exposition in Prometheus text format.
 * @example
 * app.get('/metrics', metricsHandler(metrics));
 */
export function metricsHandler(metrics: Metrics): (request: FastifyRequest, reply: FastifyReply) => Promise<string> {
  return async (_request, reply) => {
    const body = await metrics.exposition();
    reply.type(metrics.contentType);
    return body;
  };
}
