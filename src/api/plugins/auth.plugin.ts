/**
 * API-key authentication and scope checks (issue 3 item 9, DESIGN section 7).
 *
 * A route states the scope it needs in its config, and routes without one stay open (health,
 * readiness, metrics, docs, the web page):
 * ```ts
 * app.post('/v1/experiments', { config: { scope: 'train' } }, handler);
 * ```
 * Two hooks, registered on the root by this plugin (so register it before any route):
 * - `onRequest` identifies the caller from `Authorization: Bearer <secret>` and sets
 *   `request.apiKey` (`{ id, scopes }` or null). It rejects nothing, so the rate limiter, whose hook
 *   is a route-level `onRequest` hook and therefore runs after every root-level one, can count per key.
 * - `preParsing` enforces the route's `config.scope`: it runs after the rate limiter and before the
 *   body is read, so an unauthenticated upload is refused without parsing it. It throws
 *   `AppError('UNAUTHENTICATED')` (401, `WWW-Authenticate: Bearer ...`) for a missing, malformed or
 *   unknown key and `AppError('FORBIDDEN')` (403) for a key without the scope; the app's error handler
 *   renders them.
 * @module
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasScope, verifyKey, type ApiKey, type Scope } from '../../infra/api-keys.ts';
import { AppError } from '../../infra/errors.ts';

/** Who made a request: what of the key later code may see (never its hash). */
export interface AuthenticatedKey {
  readonly id: string;
  readonly scopes: readonly Scope[];
}

/** Why a request carries no valid key. */
export type AuthFailure = 'missing' | 'malformed' | 'unknown';

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's key, or null when the request carries no valid one (set by the auth plugin). */
    apiKey: AuthenticatedKey | null;
    /** Why `apiKey` is null (set by the auth plugin). */
    authFailure: AuthFailure | null;
  }
  interface FastifyContextConfig {
    /** The scope a caller's key needs for this route; absent: the route is open. */
    scope?: Scope;
  }
}

/** Options of {@link authPlugin}. */
export interface AuthPluginOptions {
  /** The accepted keys (from `parseApiKeys` or `loadOrCreateStoredKeys`). */
  keys: readonly ApiKey[];
  /** Realm named in `WWW-Authenticate`. Default `fracture-service`. */
  realm?: string;
}

/** Name under which other plugins declare a dependency on this one. */
export const AUTH_PLUGIN_NAME = 'fracture-auth';

const BEARER = /^Bearer[ ]+([^\s]+)[ ]*$/i;

/** The key a request's `Authorization` header presents, or why there is none. */
export function authenticate(keys: readonly ApiKey[], header: string | undefined): { key: ApiKey } | { failure: AuthFailure } {
  if (header === undefined || header === '') return { failure: 'missing' };
  const match = BEARER.exec(header);
  if (match?.[1] === undefined) return { failure: 'malformed' };
  const key = verifyKey(keys, match[1]);
  return key === null ? { failure: 'unknown' } : { key };
}

const FAILURE_DETAIL: Readonly<Record<AuthFailure, string>> = Object.freeze({
  missing: 'send an API key as "Authorization: Bearer <key>"',
  malformed: 'the Authorization header is not "Bearer <key>"',
  unknown: 'the API key is not valid',
});

/**
 * Throws unless `request` carries a key with `scope`: the check behind `config.scope`, exported for
 * handlers whose scope depends on the request.
 * @throws AppError UNAUTHENTICATED (with `WWW-Authenticate`) or FORBIDDEN.
 */
export function assertScope(request: FastifyRequest, scope: Scope, realm = 'fracture-service'): void {
  const key = request.apiKey;
  if (key === null) {
    const failure = request.authFailure ?? 'missing';
    // RFC 6750 section 3: no error attribute when no credentials were sent
    const challenge = failure === 'missing' ? `Bearer realm="${realm}"` : `Bearer realm="${realm}", error="invalid_token"`;
    throw new AppError('UNAUTHENTICATED', FAILURE_DETAIL[failure], { headers: { 'WWW-Authenticate': challenge } });
  }
  if (!hasScope(key, scope)) {
    throw new AppError('FORBIDDEN', `this operation needs an API key with the "${scope}" scope`, {
      headers: { 'WWW-Authenticate': `Bearer realm="${realm}", error="insufficient_scope", scope="${scope}"` },
    });
  }
}

const plugin: FastifyPluginAsync<AuthPluginOptions> = async (app, options) => {
  const keys = [...options.keys];
  const realm = options.realm ?? 'fracture-service';
  app.decorateRequest('apiKey', null);
  app.decorateRequest('authFailure', null);

  app.addHook('onRequest', async (request) => {
    const result = authenticate(keys, request.headers.authorization);
    if ('key' in result) {
      request.apiKey = Object.freeze({ id: result.key.id, scopes: result.key.scopes });
      request.authFailure = null;
    } else {
      request.apiKey = null;
      request.authFailure = result.failure;
    }
  });

  app.addHook('preParsing', async (request, _reply, payload) => {
    const scope = request.routeOptions.config.scope;
    if (scope !== undefined) assertScope(request, scope, realm);
    return payload;
  });
};

/**
 * The auth plugin (wrapped by fastify-plugin, so its hooks and decorations apply app-wide).
 * @example
 * await app.register(authPlugin, { keys: parseApiKeys(config.API_KEYS) });
 */
export const authPlugin = fp(plugin, { fastify: '5.x', name: AUTH_PLUGIN_NAME });
export default authPlugin;
