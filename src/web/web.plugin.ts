/**
 * The web page at `/` (issue 4): static files from `src/web/public/`, served by the API.
 * @module
 */
import type { FastifyInstance } from 'fastify';

/** Registers the page's routes on `app` (placeholder until the page lands). */
export async function registerWebPage(app: FastifyInstance): Promise<void> {
  void app;
}
