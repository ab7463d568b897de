/**
 * A minimal app for the plugin tests: a stand-in for the real error handler that maps an AppError to
 * its status, headers and `{ code }` (the real one renders problem+json).
 * @module
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { AppError } from '../../../src/infra/errors.ts';

export function testApp(): FastifyInstance {
  const app = Fastify();
  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof AppError) {
      void reply.headers(error.headers).status(error.status).send({ code: error.code });
      return;
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    void reply.status(status).send({ code: 'NOT_AN_APP_ERROR' });
  });
  return app;
}
