/**
 * The API's one error handler (STYLE rule 5): every error becomes an RFC 9457 problem document with
 * a stable `code` from the catalogue in src/infra/errors.ts. Fastify's own errors (validation, body
 * parsing, limits) are mapped to our codes; anything unknown is a 500 whose body says nothing about
 * the cause, while the log gets the whole error (never the request body).
 * @module
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, ERROR_CATALOG, toAppError, type ErrorCode } from '../infra/errors.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** The problem document's `type`: a URN per code, stable and not a dead link. */
export function problemType(code: ErrorCode): string {
  return `urn:fracture-service:problem:${code.toLowerCase().replaceAll('_', '-')}`;
}

/** Fastify and plugin error codes and the catalogue code each one becomes. */
const FASTIFY_CODE_MAP: Readonly<Record<string, ErrorCode>> = Object.freeze({
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BODY_INVALID',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BODY_INVALID',
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_REQ_FILE_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_PARTS_LIMIT: 'TOO_MANY_FILES',
  FST_FILES_LIMIT: 'TOO_MANY_FILES',
  FST_FIELDS_LIMIT: 'TOO_MANY_FILES',
  FST_PROTO_VIOLATION: 'BODY_INVALID',
  FST_INVALID_MULTIPART_CONTENT_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_VALIDATION: 'VALIDATION_FAILED',
});

/** Safe details for mapped Fastify errors: their own messages may quote the request. */
const FASTIFY_DETAIL: Partial<Record<ErrorCode, string>> = {
  BODY_INVALID: 'the body is not valid for its Content-Type (malformed JSON, wrong length, or an empty body)',
  PAYLOAD_TOO_LARGE: 'the request or one of its files is larger than this route accepts',
  TOO_MANY_FILES: 'the request has more files, parts or fields than this route accepts',
  UNSUPPORTED_MEDIA_TYPE: 'this route does not accept the request\'s Content-Type',
};

/** Errors of the multipart parser (busboy) that carry no code: a malformed body, not a bug. */
const MALFORMED_MULTIPART = /^(Unexpected end of (multipart data|form)|Malformed part header)/;
const MULTIPART_WITHOUT_BOUNDARY = /^Multipart: Boundary not found/;

/** Node.js errors that mean something other than a bug. */
function systemErrorCode(error: NodeJS.ErrnoException): ErrorCode | undefined {
  if (error.name === 'MaxRetriesPerRequestError' || error.message === 'Connection is closed.' || /enableOfflineQueue/.test(error.message)) {
    return 'REDIS_UNAVAILABLE';
  }
  return undefined;
}

/** Turns any thrown value into an {@link AppError}. */
export function classifyError(error: unknown): AppError {
  if (error instanceof AppError) return error;
  const fastifyError = error as Partial<FastifyError> & NodeJS.ErrnoException;
  if (fastifyError?.validation) {
    const errors = fastifyError.validation.map((issue) => ({
      path: `${fastifyError.validationContext ?? 'request'}${issue.instancePath ?? ''}`,
      message: issue.message ?? 'is invalid',
    }));
    return new AppError('VALIDATION_FAILED', errors.map((issue) => `${issue.path} ${issue.message}`).join('; '), { cause: error, extensions: { errors } });
  }
  if (typeof fastifyError?.statusCode === 'number' && fastifyError.statusCode === 429) {
    return new AppError('RATE_LIMITED', 'too many requests for this API key; retry later', { cause: error });
  }
  const mapped = typeof fastifyError?.code === 'string' ? FASTIFY_CODE_MAP[fastifyError.code] : undefined;
  if (mapped) return new AppError(mapped, FASTIFY_DETAIL[mapped] ?? ERROR_CATALOG[mapped].title, { cause: error });
  if (error instanceof Error && fastifyError.code === undefined && MULTIPART_WITHOUT_BOUNDARY.test(error.message)) {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', 'multipart/form-data needs a boundary parameter', { cause: error });
  }
  if (error instanceof Error && fastifyError.code === undefined && MALFORMED_MULTIPART.test(error.message)) {
    return new AppError('BODY_INVALID', FASTIFY_DETAIL.BODY_INVALID ?? ERROR_CATALOG.BODY_INVALID.title, { cause: error });
  }
  if (error instanceof Error) {
    const system = systemErrorCode(error as NodeJS.ErrnoException);
    if (system) return new AppError(system, ERROR_CATALOG[system].title, { cause: error });
  }
  return toAppError(error);
}

/** Writes the problem document for `error` (with its extra headers) to `reply`. */
export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: AppError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  return reply
    .code(error.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send(
      JSON.stringify({
        type: problemType(error.code),
        title: ERROR_CATALOG[error.code].title,
        status: error.status,
        detail: error.message,
        instance: request.id,
        code: error.code,
        ...error.extensions,
      }),
    );
}

/** Installs the error handler and the not-found handler on `app`. */
export function installProblemHandler(app: FastifyInstance): void {
  app.setErrorHandler((error, request, reply) => {
    const problem = classifyError(error);
    if (problem.status >= 500) {
      request.log.error({ err: error, code: problem.code }, 'request failed');
    } else {
      request.log.info({ code: problem.code, status: problem.status }, 'request refused');
    }
    return sendProblem(request, reply, problem);
  });
  app.setNotFoundHandler((request, reply) => sendProblem(request, reply, new AppError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`)));
}
