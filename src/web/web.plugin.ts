/**
 * The web page at `/` (issue 4): plain HTML, CSS and ES modules from `src/web/public/`, served by the
 * API as static files with `@fastify/static`. Nothing is built or fetched from elsewhere.
 *
 * The routes carry no `config.scope`, so the auth plugin lets them through and the rate limiter
 * leaves them alone: the page itself is public, and every API call it makes sends the key.
 * Each file is a route of its own (`wildcard: false`), so an unknown path is the API's ordinary 404
 * problem document and the files are listed once at start-up.
 *
 * Every response of these routes carries a Content-Security-Policy: the page runs only its own
 * scripts and styles and shows images from itself, `data:` (the Grad-CAM overlay) and `blob:`
 * (charts fetched with the key). `report.html`, which shows the server-rendered HTML report inside
 * itself, also allows inline styles: that report is one self-contained page with a `<style>` element
 * and no scripts, and a document made from a blob or `srcdoc` would inherit the page's policy, which
 * blocks them.
 * @module
 */
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';

/** Where the page's files are, next to this module (a folder path ending in a separator). */
export const WEB_ROOT = fileURLToPath(new URL('./public/', import.meta.url));

/** The routes of the page that are documents (the rest are assets under `/assets/`). */
export const WEB_DOCUMENTS = Object.freeze({ page: '/', reportViewer: '/report.html' });

const COMMON_POLICY = ["default-src 'none'", "script-src 'self'", "img-src 'self' data: blob:", "connect-src 'self'", "base-uri 'none'", "object-src 'none'", "frame-ancestors 'none'"];

/** The page's Content-Security-Policy: its own scripts and styles only. */
export const PAGE_CSP = [...COMMON_POLICY, "style-src 'self'", "form-action 'self'"].join('; ');

/** The report viewer's policy: the page's, plus the inline `<style>` of the server-rendered report. */
export const REPORT_VIEWER_CSP = [...COMMON_POLICY, "style-src 'self' 'unsafe-inline'", "form-action 'none'"].join('; ');

/** Headers of every response of the page's routes. */
const SECURITY_HEADERS = Object.freeze({
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
});

/** Options of {@link webPagePlugin}. */
export interface WebPageOptions {
  /** Folder of the files to serve. Default {@link WEB_ROOT}. */
  root?: string;
}

/**
 * The page's routes in a scope of their own, so its `onSend` hook touches no API route: `/`
 * (index.html), `/report.html` and `/assets/*`.
 */
export const webPagePlugin: FastifyPluginAsync<WebPageOptions> = async (app, options) => {
  app.addHook('onSend', async (request, reply, payload) => {
    const policy = request.routeOptions.url === WEB_DOCUMENTS.reportViewer ? REPORT_VIEWER_CSP : PAGE_CSP;
    reply.header('Content-Security-Policy', policy).headers(SECURITY_HEADERS);
    return payload;
  });
  await app.register(fastifyStatic, {
    root: options.root ?? WEB_ROOT,
    prefix: '/',
    wildcard: false,
    index: 'index.html',
    decorateReply: false,
    // No build step means no content hashes in file names: browsers revalidate (ETag) each time,
    // so a new version of the page is seen at once.
    cacheControl: true,
    maxAge: 0,
  });
};

/**
 * Registers the page on `app` (the API's `extraRoutes`).
 * @example
 * const app = await buildApp({ ...deps, extraRoutes: registerWebPage });
 */
export async function registerWebPage(app: FastifyInstance): Promise<void> {
  await app.register(webPagePlugin);
}
