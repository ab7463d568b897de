/**
 * Turns the spec's operations into Fastify routes, one handler per `operationId`. Start-up fails when
 * an operation has no handler or a handler has no operation, so the contract and the code cannot
 * drift apart silently.
 * @module
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { operationRoutes, type OperationId, type OperationRoute } from './spec.ts';

/** A route handler; it returns the response body (or sends through `reply` itself). */
export type OperationHandler = (request: FastifyRequest, reply: FastifyReply) => Promise<unknown>;

/** A handler with extra Fastify route options (e.g. `sse` for server-sent events, `bodyLimit`). */
export interface OperationDefinition {
  handler: OperationHandler;
  options: Record<string, unknown>;
}

export type OperationHandlers = Record<OperationId, OperationHandler | OperationDefinition>;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The spec operation a route implements (read by audit and tests). `scope` is declared by the auth plugin. */
    operationId?: OperationId;
  }
}

/**
 * Registers every operation of the spec with its handler.
 * @throws Error naming the operations without a handler and the handlers without an operation.
 */
export function registerOperations(app: FastifyInstance, handlers: Partial<OperationHandlers>, routes: readonly OperationRoute[] = operationRoutes()): void {
  const known = new Set<string>(routes.map((route) => route.operationId));
  const missing = routes.filter((route) => !handlers[route.operationId]).map((route) => route.operationId);
  const extra = Object.keys(handlers).filter((operationId) => !known.has(operationId));
  if (missing.length > 0 || extra.length > 0) {
    throw new Error(
      [missing.length > 0 ? `operations without a handler: ${missing.join(', ')}` : '', extra.length > 0 ? `handlers without an operation: ${extra.join(', ')}` : '']
        .filter(Boolean)
        .join('; '),
    );
  }
  for (const route of routes) {
    const definition = handlers[route.operationId] as OperationHandler | OperationDefinition;
    const { handler, options } = typeof definition === 'function' ? { handler: definition, options: {} } : definition;
    const config = { operationId: route.operationId, ...(route.scope ? { scope: route.scope } : {}) };
    app.route({
      ...options,
      method: route.method,
      url: route.url,
      schema: route.schema,
      config,
      handler,
    });
  }
}
