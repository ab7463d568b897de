/**
 * A worker's own `/metrics` endpoint: inference batches run in worker processes when the API sends
 * predictions through the queue, so their batch-size histogram can only be scraped there. A bare
 * `node:http` server: a worker has no other HTTP surface.
 * @module
 */
import http from 'node:http';
import type { Metrics } from '../infra/metrics.ts';

/**
 * Serves `GET /metrics` on `host:port` (404 for anything else).
 * @returns the bound port and `close()`.
 */
export async function startMetricsServer(metrics: Metrics, port: number, host: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    if (request.method !== 'GET' || request.url?.split('?')[0] !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.exposition().then(
      (body) => response.writeHead(200, { 'content-type': metrics.contentType }).end(body),
      () => response.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
