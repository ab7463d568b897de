/**
 * SIGTERM under load (issue 5, "Faults"): `fracture-service start` serves real radiographs to
 * clients on kept-alive connections and to clients that open a connection per request, and gets
 * SIGTERM in the middle. Every request must end as one of: 200 with its predictions (it was in
 * flight, and finished), 503 `SHUTTING_DOWN` with `Retry-After` (it came while the process drained),
 * or a refused connection once the listener closed. No request is reset, cut off or left hanging;
 * each answered prediction request has exactly one audit record; the process exits 0 within its
 * grace period.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Agent, request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/infra/redis-launcher.ts';
import { deleteKeys, readXrays, seedProductionModel, SKIP_WITHOUT_XRAYS, testPrefix } from './helpers/service-fixtures.ts';
import { http, killAllServices, spawnService, waitFor } from './helpers/service-process.ts';

const SHUTDOWN_TIMEOUT_MS = 10_000;
/** Clients on kept-alive connections, and clients that open a new connection for every request. */
const KEPT_ALIVE_CLIENTS = 8;
const NEW_CONNECTION_CLIENTS = 2;
/** Load before the signal, ms. */
const LOAD_BEFORE_SIGTERM_MS = 1_500;
/** How long the API answers 503 at least after SIGTERM. */
const DRAIN_MS = 1_500;
/** A request without an answer after this long has hung. */
const REQUEST_TIMEOUT_MS = 8_000;

/** How one request ended. */
interface Outcome {
  sentAt: number;
  endedAt: number;
  /** HTTP status, or the network error's code. */
  result: number | string;
  code?: string;
  retryAfter?: string;
  connection?: string;
  predictions?: number;
}

/** A multipart body with one `image` part. */
function multipart(image: Buffer): { body: Buffer; contentType: string } {
  const boundary = `----load${randomBytes(8).toString('hex')}`;
  const head = `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="x.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`;
  const body = Buffer.concat([Buffer.from(head), image, Buffer.from(`\r\n--${boundary}--\r\n`)]);
  return { body, contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Sends one prediction request and reports how it ended; never rejects. */
function predictOnce(url: URL, agent: Agent | false, auth: string, form: { body: Buffer; contentType: string }): Promise<Outcome> {
  const sentAt = performance.now();
  return new Promise((resolve) => {
    const done = (rest: Omit<Outcome, 'sentAt' | 'endedAt'>): void => resolve({ sentAt, endedAt: performance.now(), ...rest });
    const req = httpRequest(url, {
      method: 'POST',
      agent,
      headers: { authorization: auth, 'content-type': form.contentType, 'content-length': String(form.body.length) },
      timeout: REQUEST_TIMEOUT_MS,
    });
    req.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('error', (error: NodeJS.ErrnoException) => done({ result: `response ${error.code ?? error.message}` }));
      response.on('end', () => {
        let body: { code?: string; predictions?: unknown[] } = {};
        try {
          body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
        } catch {
          // an unparsable body is reported by the assertions on the status and code
        }
        done({
          result: response.statusCode ?? 0,
          ...(body.code === undefined ? {} : { code: body.code }),
          ...(response.headers['retry-after'] === undefined ? {} : { retryAfter: String(response.headers['retry-after']) }),
          ...(response.headers.connection === undefined ? {} : { connection: String(response.headers.connection) }),
          ...(Array.isArray(body.predictions) ? { predictions: body.predictions.length } : {}),
        });
      });
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('hung'), { code: 'HUNG' })));
    req.on('error', (error: NodeJS.ErrnoException) => done({ result: error.code ?? error.message }));
    req.end(form.body);
  });
}

describe('SIGTERM under load', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let root: string;
  let prefix: string;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'e2e-shutdown-load-'));
    prefix = testPrefix('shutdown-load');
  });
  after(async () => {
    await killAllServices();
    await deleteKeys(prefix);
    await rm(root, { recursive: true, force: true });
  });

  it('finishes the requests in flight, answers new ones 503 with Retry-After, resets none, and exits 0 in time', async (t) => {
    const dataDir = path.join(root, 'data');
    await seedProductionModel(dataDir);
    const port = await freePort();
    const secret = 'pacs-secret-0123456789abcdef';
    const service = spawnService(['start'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      QUEUE_PREFIX: prefix,
      FRACTURE_BACKEND: 'wasm',
      LOG_LEVEL: 'warn',
      API_KEYS: `pacs:${secret}:predict`,
      RATE_LIMIT_PER_MINUTE: '1000000',
      // Requests wait a little in the batcher: several are in flight at any moment.
      PREDICT_MAX_DELAY_MS: '30',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
    });
    const url = new URL(`http://127.0.0.1:${port}/v1/predict`);
    await waitFor('/readyz 200', async () => ((await http(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.status === 200 ? true : undefined), 60_000, 200);

    const xrays = await readXrays(KEPT_ALIVE_CLIENTS + NEW_CONNECTION_CLIENTS);
    const auth = `Bearer ${secret}`;
    const outcomes: Outcome[] = [];
    let stopLoad = false;
    const client = async (image: Buffer, agent: Agent | false): Promise<void> => {
      const form = multipart(image);
      let refusedInARow = 0;
      while (!stopLoad && refusedInARow < 3) {
        const outcome = await predictOnce(url, agent, auth, form);
        outcomes.push(outcome);
        refusedInARow = outcome.result === 'ECONNREFUSED' ? refusedInARow + 1 : 0;
        // Well-behaved clients: after a 503 they wait as Retry-After says; a refused one tries again soon.
        const waitMs = outcome.result === 503 ? Number(outcome.retryAfter ?? 1) * 1000 : outcome.result === 'ECONNREFUSED' ? 20 : 0;
        if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      }
    };
    const agents = Array.from({ length: KEPT_ALIVE_CLIENTS }, () => new Agent({ keepAlive: true, maxSockets: 1 }));
    const clients = [
      ...agents.map((agent, i) => client((xrays[i] as { data: Buffer }).data, agent)),
      ...Array.from({ length: NEW_CONNECTION_CLIENTS }, (_, i) => client((xrays[KEPT_ALIVE_CLIENTS + i] as { data: Buffer }).data, false)),
    ];

    await new Promise((resolve) => setTimeout(resolve, LOAD_BEFORE_SIGTERM_MS));
    const answeredBefore = outcomes.filter((outcome) => outcome.result === 200).length;
    assert.ok(answeredBefore >= 10, `only ${answeredBefore} predictions before the signal: no load`);
    const sigtermAt = performance.now();
    service.child.kill('SIGTERM');
    const exit = await service.exited;
    const exitedAfterMs = performance.now() - sigtermAt;
    // The clients come back after their Retry-After, see the refused connections, and stop.
    await Promise.race([Promise.all(clients), new Promise((resolve) => setTimeout(resolve, 8_000))]);
    stopLoad = true;
    await Promise.all(clients);
    for (const agent of agents) agent.destroy();

    assert.deepEqual(exit, { code: 0, signal: null }, service.stderr().slice(-2000));
    assert.ok(exitedAfterMs < SHUTDOWN_TIMEOUT_MS, `exited ${exitedAfterMs.toFixed(0)} ms after SIGTERM, grace ${SHUTDOWN_TIMEOUT_MS} ms`);
    assert.ok(exitedAfterMs >= DRAIN_MS, `exited ${exitedAfterMs.toFixed(0)} ms after SIGTERM, before the ${DRAIN_MS} ms drain`);

    const ok = outcomes.filter((outcome) => outcome.result === 200);
    const refused503 = outcomes.filter((outcome) => outcome.result === 503);
    const refusedConnections = outcomes.filter((outcome) => outcome.result === 'ECONNREFUSED');
    const other = outcomes.filter((outcome) => outcome.result !== 200 && outcome.result !== 503 && outcome.result !== 'ECONNREFUSED');
    // For a failure message: each request around the signal, ms from SIGTERM, sent → ended, result.
    const rel = (ms: number): string => (ms - sigtermAt).toFixed(1);
    const timeline = outcomes
      .filter((outcome) => outcome.endedAt > sigtermAt - 200)
      .sort((a, b) => a.sentAt - b.sentAt)
      .map((outcome) => `[${rel(outcome.sentAt)}→${rel(outcome.endedAt)} ${outcome.result}]`)
      .join(' ');
    assert.deepEqual(other, [], `no request was reset, cut off, hung or failed otherwise; exit after ${exitedAfterMs.toFixed(0)} ms; ${timeline}`);
    for (const outcome of ok) assert.equal(outcome.predictions, 1, 'every 200 carries its prediction');
    for (const outcome of refused503) {
      assert.equal(outcome.code, 'SHUTTING_DOWN');
      assert.match(outcome.retryAfter ?? '', /^[1-9][0-9]*$/, '503 with Retry-After');
      assert.equal(outcome.connection, 'close');
    }
    const inFlight = ok.filter((outcome) => outcome.sentAt < sigtermAt && outcome.endedAt > sigtermAt);
    assert.ok(inFlight.length >= 1, 'requests were in flight when the signal came, and finished');
    assert.ok(refused503.length >= 1, 'requests that came while draining got 503');
    // A refused connection only once the listener had closed: after the last answer of any kind.
    const lastAnswer = Math.max(...[...ok, ...refused503].map((outcome) => outcome.endedAt));
    for (const outcome of refusedConnections) assert.ok(outcome.sentAt >= lastAnswer - 50, 'no connection was refused while the process still answered');

    // One audit record per answered prediction request, 200s and 503s alike.
    const audit = (await readFile(path.join(dataDir, 'audit', 'predictions.jsonl'), 'utf8')).split('\n').filter(Boolean).map((line) => JSON.parse(line) as { status: number; code?: string });
    assert.equal(audit.length, ok.length + refused503.length, 'exactly one audit record per answered request');
    assert.equal(audit.filter((record) => record.status === 200).length, ok.length);
    assert.equal(audit.filter((record) => record.status === 503 && record.code === 'SHUTTING_DOWN').length, refused503.length);
    t.diagnostic(
      `${outcomes.length} requests: ${ok.length} × 200 (${inFlight.length} in flight at SIGTERM), ${refused503.length} × 503 SHUTTING_DOWN, ` +
        `${refusedConnections.length} refused connections after the listener closed, ${other.length} other; exit 0 ${exitedAfterMs.toFixed(0)} ms after SIGTERM`,
    );
  });
});
