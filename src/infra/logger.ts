/**
 * The service's pino logger: JSON lines with redaction, so secrets, request bodies, client file names
 * and patient identifiers never reach a log (DESIGN section 7), even when a handler logs a whole
 * object carelessly. Fastify 5 takes the instance as `loggerInstance` ({@link fastifyLoggerOptions}).
 *
 * Three layers keep data out:
 * 1. Serializers log only what we chose: a request is its id, method, path (no query string) and
 *    route template; a reply its status code; an error its type, code, message, stack and cause
 *    (not its other properties: an fs error's `path`, a validation error's quoted input).
 * 2. A scrubber (pino's `formatters.log`) censors sensitive keys at any depth of the plain objects
 *    and arrays of a log call, including every key starting with `patient`: pino's redaction paths
 *    cannot express a key prefix (`*.patient*`) or "any depth", and each wildcard path it checks
 *    costs every line (86 paths tripled the cost of a line; the scrubber is a cheap key lookup).
 * 3. pino's redaction, on the paths named in issue 3, censors what the serializers output.
 * @module
 */
import type { FastifyBaseLogger } from 'fastify';
import { pino, type DestinationStream, type Level, type Logger, type LoggerOptions } from 'pino';

/** Keys whose values never reach a log, at any depth (besides every key starting with `patient`). */
export const SENSITIVE_KEYS: ReadonlySet<string> = new Set([
  // credentials
  'authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'secret',
  'apikey',
  'password',
  'token',
  // bodies: what a client sent or got may be an image or a record about a person
  'body',
  'payload',
  // client file names often carry the patient's name
  'filename',
  'originalname',
]);

/** Keys about a patient (`patientName`, DICOM's `PatientID`, ...). */
const PATIENT_KEY = /^patient/i;

/** What a censored value is replaced with. */
export const REDACTED = '[Redacted]';

/** True when the value of `key` must not be logged (case-insensitive). */
export function isSensitiveKey(key: string): boolean {
  return SENSITIVE_KEYS.has(key.toLowerCase()) || PATIENT_KEY.test(key);
}

/** How deep the scrubber walks; deeper values are replaced (a log call this deep is a mistake). */
const MAX_SCRUB_DEPTH = 8;

function isPlainObject(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * `value` with every sensitive key censored, copying only the objects that change. Walks plain
 * objects and arrays only: class instances (a Fastify request, an Error) go to their serializers.
 */
export function scrub(value: unknown, depth = 0): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    if (depth >= MAX_SCRUB_DEPTH) return '[Too deep]';
    let copy: unknown[] | null = null;
    value.forEach((item, i) => {
      const clean = scrub(item, depth + 1);
      if (clean !== item) (copy ??= [...value])[i] = clean;
    });
    return copy ?? value;
  }
  if (!isPlainObject(value)) return value;
  if (depth >= MAX_SCRUB_DEPTH) return '[Too deep]';
  let copy: Record<string, unknown> | null = null;
  for (const [key, item] of Object.entries(value)) {
    const clean = isSensitiveKey(key) ? REDACTED : scrub(item, depth + 1);
    if (clean !== item) (copy ??= { ...value })[key] = clean;
  }
  return copy ?? value;
}

/** pino redaction paths (issue 3's list); they apply to what the serializers produced. */
export const REDACT_PATHS: readonly string[] = Object.freeze([
  'req.headers.authorization',
  'req.headers.cookie',
  'req.body',
  'res.body',
  ...['secret', 'apiKey', 'password', 'filename', 'fileName', 'originalName'].flatMap((key) => [key, `*.${key}`]),
]);

/** The shape of a request as logged. */
export interface LoggedRequest {
  id?: string;
  method?: string;
  /** Path only: the query string may carry anything a client typed. */
  url?: string;
  /** Route template, e.g. `/v1/models/:id` (absent for unmatched routes). */
  route?: string;
}

/** `url` without its query string or fragment. */
export function pathOnly(url: string): string {
  const end = url.search(/[?#]/);
  return end === -1 ? url : url.slice(0, end);
}

/**
 * Serializes a Fastify request (or a raw `IncomingMessage`) to {@link LoggedRequest}: no headers,
 * no body, no query string, no client address.
 */
export function serializeRequest(req: unknown): LoggedRequest | unknown {
  if (typeof req !== 'object' || req === null) return req;
  const r = req as { id?: unknown; method?: unknown; url?: unknown; routeOptions?: { url?: unknown } };
  const logged: LoggedRequest = {};
  if (typeof r.id === 'string' || typeof r.id === 'number') logged.id = String(r.id);
  if (typeof r.method === 'string') logged.method = r.method;
  if (typeof r.url === 'string') logged.url = pathOnly(r.url);
  if (typeof r.routeOptions?.url === 'string') logged.route = r.routeOptions.url;
  return logged;
}

/** Serializes a Fastify reply (or a raw `ServerResponse`) to its status code only. */
export function serializeReply(res: unknown): { statusCode?: number } | unknown {
  if (typeof res !== 'object' || res === null) return res;
  const { statusCode } = res as { statusCode?: unknown };
  return typeof statusCode === 'number' ? { statusCode } : {};
}

/** The shape of an error as logged. */
export interface LoggedError {
  type: string;
  message: string;
  code?: string;
  status?: number;
  stack?: string;
  cause?: LoggedError | string;
}

const MAX_CAUSE_DEPTH = 5;

/**
 * Serializes an error to {@link LoggedError}. The message stays (ours are written to be safe, and
 * client file names never reach a path we format); every other own property is dropped, because
 * foreign errors carry data there (fs errors' `path`, ajv's quoted `data`, our `extensions`).
 */
export function serializeError(err: unknown, depth = 0): LoggedError | unknown {
  if (!(err instanceof Error)) return err;
  const e = err as Error & { code?: unknown; status?: unknown; statusCode?: unknown };
  const logged: LoggedError = { type: e.constructor?.name ?? e.name, message: e.message };
  if (e.name && e.name !== logged.type) logged.type = `${logged.type} (${e.name})`;
  if (typeof e.code === 'string' || typeof e.code === 'number') logged.code = String(e.code);
  const status = typeof e.status === 'number' ? e.status : e.statusCode;
  if (typeof status === 'number') logged.status = status;
  if (e.stack !== undefined) logged.stack = e.stack;
  if (e.cause !== undefined) {
    if (depth >= MAX_CAUSE_DEPTH) logged.cause = '[cause chain truncated]';
    else if (e.cause instanceof Error) logged.cause = serializeError(e.cause, depth + 1) as LoggedError;
    // a non-error cause is arbitrary data: name its type only
    else logged.cause = `[${typeof e.cause}]`;
  }
  return logged;
}

/** Settings of {@link createLogger}. */
export interface LoggerSettings {
  /** Lowest level written (`LOG_LEVEL`); `silent` writes nothing. */
  level: Level | 'silent';
  /** Written as `name` on every line, e.g. `api` or `worker`. Default: none. */
  name?: string;
  /** Where lines go. Default: standard output. Tests pass a stream that collects lines. */
  destination?: DestinationStream;
}

/** The pino options of the service's logger (redaction, serializers, ISO time, level labels). */
export function loggerOptions(settings: Pick<LoggerSettings, 'level' | 'name'>): LoggerOptions {
  return {
    level: settings.level,
    ...(settings.name === undefined ? {} : { name: settings.name }),
    redact: { paths: [...REDACT_PATHS], censor: REDACTED },
    serializers: { req: serializeRequest, request: serializeRequest, res: serializeReply, reply: serializeReply, err: serializeError, error: serializeError },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }), log: (object) => scrub(object) as Record<string, unknown> },
  };
}

/**
 * Creates the service's logger.
 * @example
 * const log = createLogger({ level: config.LOG_LEVEL, name: 'api' });
 * const app = Fastify({ ...fastifyLoggerOptions(log) });
 */
export function createLogger(settings: LoggerSettings): Logger {
  const options = loggerOptions(settings);
  return settings.destination === undefined ? pino(options) : pino(options, settings.destination);
}

/**
 * The Fastify 5 options that make an app log through `logger` (Fastify merges its own serializers
 * under ours, so ours win).
 */
export function fastifyLoggerOptions(logger: Logger): { loggerInstance: FastifyBaseLogger } {
  // typed as Fastify's logger so the app is a plain FastifyInstance (pino's Logger type is narrower)
  return { loggerInstance: logger as FastifyBaseLogger };
}
