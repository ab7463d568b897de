/**
 * Graceful draining of the HTTP API (DESIGN section 7, issue 5 "SIGTERM under load"). `app.drain()`
 * starts it: from then on every new request — on a new connection or a kept-alive one — is answered
 * 503 `SHUTTING_DOWN` with `Retry-After` and `Connection: close`, requests already being handled run
 * to the end (their answers say `Connection: close` too), long-lived streams are told to end
 * through `app.drainSignal`, and the promise resolves once none is left and the minimum drain time
 * has passed (or the time is up). Only then does the caller close the listener: a client that
 * arrives while the process drains gets a clear 503 rather than a refused or reset connection.
 * (One that ignores `Retry-After` and connects at the very moment the listener closes may still
 * see a reset: a closing TCP listener resets the connections in its accept queue.)
 *
 * Closing without draining (`app.close()`) refuses new requests the same way from `preClose` on.
 * @module
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../infra/errors.ts';

declare module 'fastify' {
  interface FastifyInstance {
    /** Refuses new requests from now on; resolves as {@link DrainOptions} says. */
    drain(options: DrainOptions): Promise<void>;
    /** Aborted when draining (or closing) starts: long-lived responses (SSE) end on it. */
    readonly drainSignal: AbortSignal;
  }
}

/** How long {@link FastifyInstance.drain} lasts. */
export interface DrainOptions {
  /**
   * Keep refusing new requests with 503 for at least this long, ms, even when nothing is in flight:
   * load balancers need a moment to see `/readyz` fail, and a client that gets a 503 with
   * `Retry-After` knows what to do, where a closed port only tells it that something broke.
   */
  minimumMs?: number;
  /** Stop waiting for requests in flight after this long, ms. */
  timeoutMs: number;
}

/** Seconds a refused client should wait: another instance answers meanwhile, or this one restarted. */
export const SHUTDOWN_RETRY_AFTER_SECONDS = 5;

const plugin: FastifyPluginAsync = async (app) => {
  const draining = new AbortController();
  let inFlight = 0;
  let onIdle: (() => void) | null = null;

  app.decorate('drainSignal', draining.signal);
  app.decorate('drain', async ({ minimumMs = 0, timeoutMs }: DrainOptions) => {
    draining.abort();
    const minimum = new Promise((resolve) => setTimeout(resolve, Math.min(minimumMs, timeoutMs)));
    const idle =
      inFlight === 0
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, timeoutMs);
            onIdle = () => {
              clearTimeout(timer);
              resolve();
            };
          });
    await Promise.all([minimum, idle]);
  });
  app.addHook('preClose', async () => {
    draining.abort();
  });

  app.addHook('onRequest', async (_request, reply) => {
    if (draining.signal.aborted) {
      throw new AppError('SHUTTING_DOWN', 'this instance is shutting down; retry, another one will answer', {
        headers: { 'Retry-After': String(SHUTDOWN_RETRY_AFTER_SECONDS), Connection: 'close' },
      });
    }
    inFlight += 1;
    // `close` comes for every response: sent, failed, or cut off by the client.
    reply.raw.once('close', () => {
      inFlight -= 1;
      if (inFlight === 0) onIdle?.();
    });
  });
  // A client must not send another request on a connection that is about to close.
  app.addHook('onSend', async (_request, reply) => {
    if (draining.signal.aborted) reply.header('Connection', 'close');
  });
};

/** Registers draining; register it first, so its refusal comes before any other work. */
export const drainPlugin = fp(plugin, { name: 'fracture-drain', fastify: '5.x' });
