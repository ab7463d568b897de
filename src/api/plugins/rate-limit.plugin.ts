/**
 * Per-key rate limits with `@fastify/rate-limit` (issue 3 item 9): each API key has its own budget of
 * `max` requests per window (`RATE_LIMIT_PER_MINUTE`, one minute); requests without a valid key share
 * their IP address's budget (so guessing keys is limited too). Over budget a request fails with
 * `AppError('RATE_LIMITED')` (429) and `Retry-After` in seconds.
 *
 * Ordering: the limiter needs the caller's key, so it depends on the auth plugin (declared to
 * fastify-plugin, which refuses to register it first). Auth identifies the key in a root-level
 * `onRequest` hook; `@fastify/rate-limit` adds its `onRequest` hook to each route, and Fastify runs
 * route-level hooks after root-level ones. Auth enforces scopes later (`preParsing`), so a request
 * with a bad key is counted before it is refused.
 *
 * Routes without `config.scope` (health, readiness, metrics, docs, the web page) are not limited:
 * probes and scrapers must always get through. Register this plugin before the routes it limits.
 * @module
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import fp from 'fastify-plugin';
import { AppError } from '../../infra/errors.ts';
import { AUTH_PLUGIN_NAME } from './auth.plugin.ts';

/** Options of {@link rateLimitPlugin}. */
export interface RateLimitPluginOptions {
  /** Requests per window per key (`RATE_LIMIT_PER_MINUTE`). */
  max: number;
  /** Window length, milliseconds. Default 60,000 (one minute). */
  timeWindowMs?: number;
  /**
   * An ioredis client to keep the counters in Redis, shared by every API process. Default: in
   * process memory (right for a single API process). When Redis fails, requests pass unlimited.
   */
  redis?: unknown;
  /** Prefix of the Redis keys. Default `fracture-rate-limit:`. */
  nameSpace?: string;
}

/** The bucket a request counts against: its key id when authenticated, else its IP address. */
export function rateLimitKey(request: FastifyRequest): string {
  return request.apiKey === null ? `ip:${rateLimit.normalizeIP(request.ip)}` : `key:${request.apiKey.id}`;
}

const plugin: FastifyPluginAsync<RateLimitPluginOptions> = async (app, options) => {
  if (!Number.isInteger(options.max) || options.max < 1) throw new TypeError('rate limit: max must be a positive integer');
  await app.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    max: options.max,
    timeWindow: options.timeWindowMs ?? 60_000,
    keyGenerator: rateLimitKey,
    allowList: (request) => request.routeOptions.config.scope === undefined,
    ...(options.redis === undefined
      ? {}
      : { redis: options.redis, nameSpace: options.nameSpace ?? 'fracture-rate-limit:', skipOnError: true }),
    errorResponseBuilder: (_request, context) => {
      const seconds = Math.max(1, Math.ceil(context.ttl / 1000));
      return new AppError('RATE_LIMITED', `at most ${context.max} requests per window for this API key; retry in ${seconds} s`, {
        headers: { 'Retry-After': String(seconds) },
      });
    },
  });
};

/**
 * The rate-limit plugin (wrapped by fastify-plugin; needs the auth plugin registered first).
 * @example
 * await app.register(authPlugin, { keys });
 * await app.register(rateLimitPlugin, { max: config.RATE_LIMIT_PER_MINUTE });
 */
export const rateLimitPlugin = fp(plugin, { fastify: '5.x', name: 'fracture-rate-limit', dependencies: [AUTH_PLUGIN_NAME] });
export default rateLimitPlugin;
