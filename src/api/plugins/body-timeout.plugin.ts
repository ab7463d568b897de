/**
 * Time limits on receiving a request body (DESIGN section 7, issue 5): a client that sends nothing
 * for `idleMs`, or has not sent its whole body by its route's deadline, gets 408 `REQUEST_TIMEOUT`
 * and the connection is closed. Without them a stalled or trickling upload (slowloris) holds a
 * connection, a multipart parser and its buffers for ever: Fastify turns off Node's own
 * `requestTimeout`, and a size limit bounds bytes, not time.
 *
 * The idle limit is the socket's inactivity timeout while the body is incomplete (a slow but steady
 * upload is fine, as with nginx's `client_body_timeout`); the deadline bounds the whole body per route
 * (a 2 GiB dataset needs longer than a radiograph). Both stop once the body is complete or the
 * response is sent: processing time is not theirs to limit. Headers are limited by Node's
 * `headersTimeout`.
 *
 * The 408 is sent while the route's handler may still be waiting for the body; the answer says
 * `Connection: close`, so Node closes the socket after it, and the waiting body read ends with an
 * error that nobody answers again (the reply is sent).
 * @module
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { AppError } from '../../infra/errors.ts';

/** Options of {@link bodyTimeoutPlugin}. */
export interface BodyTimeoutPluginOptions {
  /** Longest pause between two pieces of a body, ms (`UPLOAD_IDLE_TIMEOUT_MS`). */
  idleMs: number;
  /** Longest time to receive the whole body of a request to the operation `operationId`, ms. */
  deadlineMs(operationId: string | undefined): number;
}

/** True when the request announces a body (a length above zero, or chunked transfer). */
function announcesBody(request: FastifyRequest): boolean {
  const { headers } = request.raw;
  if (headers['transfer-encoding'] !== undefined) return true;
  const length = headers['content-length'];
  return length !== undefined && length !== '0';
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/** Starts both limits for one request; they end when the body is complete or a response is sent. */
function watchBody(request: FastifyRequest, reply: FastifyReply, options: BodyTimeoutPluginOptions): void {
  const raw = request.raw;
  const deadlineMs = options.deadlineMs(request.routeOptions.config.operationId);
  // `inject` requests have no real socket: only the deadline applies to them.
  const socket = typeof raw.socket?.setTimeout === 'function' ? raw.socket : null;
  const stop = (): void => {
    clearTimeout(deadline);
    raw.off('timeout', onIdle);
    raw.off('end', onBodyEnd);
    reply.raw.off('finish', stop);
    reply.raw.off('close', stop);
  };
  // The socket's timeout is reset only here: once the response finishes, Node sets its own
  // keep-alive timeout on the socket, which must not be undone.
  const onBodyEnd = (): void => {
    stop();
    socket?.setTimeout(0);
  };
  const expire = (detail: string): void => {
    stop();
    if (reply.sent || raw.complete) return;
    reply.header('Connection', 'close');
    void reply.send(new AppError('REQUEST_TIMEOUT', detail, { headers: { Connection: 'close' } }));
  };
  const onIdle = (): void => expire(`no part of the request body arrived for ${seconds(options.idleMs)}; send it faster or in smaller requests`);
  const deadline = setTimeout(() => expire(`the request body did not arrive within ${seconds(deadlineMs)}`), deadlineMs);
  if (socket) {
    // Node emits the socket's `timeout` on the incomplete request when it has a listener (and then
    // leaves the socket open for the answer).
    raw.on('timeout', onIdle);
    socket.setTimeout(options.idleMs);
  }
  raw.once('end', onBodyEnd);
  reply.raw.once('finish', stop);
  reply.raw.once('close', stop);
}

const plugin: FastifyPluginAsync<BodyTimeoutPluginOptions> = async (app, options) => {
  if (!(options.idleMs > 0)) throw new TypeError('body timeout: idleMs must be > 0');
  app.addHook('onRequest', async (request, reply) => {
    if (announcesBody(request) && !request.raw.complete) watchBody(request, reply, options);
  });
};

/** Registers the body time limits on every route with a body. */
export const bodyTimeoutPlugin = fp(plugin, { name: 'fracture-body-timeout', fastify: '5.x' });
