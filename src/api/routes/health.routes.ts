/**
 * Liveness, readiness and metrics: open routes (no API key) for orchestrators and Prometheus.
 * @module
 */
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { ReadinessPort } from '../ports.ts';

/** Prometheus exposition of the process's metrics. */
export interface MetricsPort {
  contentType: string;
  render(): Promise<string>;
}

export function healthHandlers(deps: { readiness: ReadinessPort; metrics: MetricsPort }): Pick<OperationHandlers, 'getHealth' | 'getReadiness' | 'getMetrics'> {
  return {
    getHealth: async () => ({ status: 'ok', uptimeSeconds: Math.round(process.uptime()) }),
    getReadiness: async (_request, reply) => {
      const readiness = await deps.readiness.check();
      return reply.code(readiness.ready ? 200 : 503).send(readiness);
    },
    getMetrics: async (_request, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.render()),
  };
}
