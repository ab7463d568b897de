/**
 * Upload time limits over real TCP (issue 5, "Uploads ... and timeouts"): a body that stalls for
 * `UPLOAD_IDLE_TIMEOUT_MS`, or trickles past its route's deadline, is answered 408 `REQUEST_TIMEOUT`
 * (a problem document with `Connection: close`) soon after the limit, the socket is closed, the
 * prediction is audited once, a refused dataset leaves nothing behind, and the API goes on serving.
 * A slow but steady body within the limits, and keep-alive after it, still work.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { multipartBody, startApiFixture, waitFor, type ApiFixture } from './api-fixture.ts';

const IDLE_MS = 400;
const PREDICT_DEADLINE_MS = 1_500;
const DATASET_DEADLINE_MS = 2_000;
/** How late after its limit an answer may come on a loaded 2-core machine. */
const SLACK_MS = 1_500;

/** What one raw HTTP exchange gave: the response text, when it ended, and whether the server closed. */
interface RawExchange {
  response: string;
  /** Milliseconds from the first byte sent to the socket's end. */
  endedAfterMs: number;
}

/**
 * Sends `head` and then `pieces` of the body, each after its delay, on a fresh socket, and resolves
 * once the server closes the connection (or `giveUpMs` passes, which rejects).
 */
function rawExchange(port: number, head: string, pieces: readonly { afterMs: number; data: Buffer | string }[], giveUpMs = 15_000): Promise<RawExchange> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    const started = performance.now();
    const timers: NodeJS.Timeout[] = [];
    const giveUp = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the server did not close the connection within ${giveUpMs} ms; got ${Buffer.concat(chunks).toString('latin1').slice(0, 300)}`));
    }, giveUpMs);
    socket.on('data', (chunk) => chunks.push(chunk));
    // A write after the server closed fails with EPIPE/ECONNRESET: that is the point of the test.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(giveUp);
      for (const timer of timers) clearTimeout(timer);
      resolve({ response: Buffer.concat(chunks).toString('latin1'), endedAfterMs: performance.now() - started });
    });
    socket.on('connect', () => {
      socket.write(head);
      let at = 0;
      for (const piece of pieces) {
        at += piece.afterMs;
        timers.push(setTimeout(() => socket.writable && socket.write(piece.data), at));
      }
    });
  });
}

/** The status line's code and the JSON body of a raw response. */
function parseResponse(text: string): { status: number; headers: string; body: Record<string, unknown> } {
  const [headers = '', body = ''] = text.split('\r\n\r\n', 2);
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(headers)?.[1] ?? 0);
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(body) as Record<string, unknown>;
  } catch {
    // left empty: the assertions name what was received
  }
  return { status, headers: headers.toLowerCase(), body: parsed };
}

describe('upload time limits', () => {
  let fx: ApiFixture;
  let port: number;
  let multipart: { body: Buffer; contentType: string };

  before(async () => {
    fx = await startApiFixture({
      settings: {
        UPLOAD_IDLE_TIMEOUT_MS: String(IDLE_MS),
        PREDICT_UPLOAD_TIMEOUT_MS: String(PREDICT_DEADLINE_MS),
        DATASET_UPLOAD_TIMEOUT_MS: String(DATASET_DEADLINE_MS),
        RATE_LIMIT_PER_MINUTE: '100000',
      },
    });
    port = Number(new URL(await fx.listen()).port);
    const image = await readFirstImage(fx);
    multipart = await multipartBody([{ name: 'image', value: image, filename: 'x.png', type: 'image/png' }]);
  });

  after(async () => {
    await fx?.close();
  });

  const predictHead = (length: number): string =>
    `POST /v1/predict HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${fx.auth('predict').authorization}\r\n` +
    `Content-Type: ${multipart.contentType}\r\nContent-Length: ${length}\r\n\r\n`;

  const assertTimedOut = (exchange: RawExchange, limitMs: number): void => {
    const { status, headers, body } = parseResponse(exchange.response);
    assert.equal(status, 408, exchange.response.slice(0, 400));
    assert.match(headers, /content-type: application\/problem\+json/);
    assert.match(headers, /connection: close/);
    assert.equal(body.code, 'REQUEST_TIMEOUT');
    assert.equal(body.status, 408);
    assert.ok(exchange.endedAfterMs >= limitMs - 50, `closed after ${exchange.endedAfterMs.toFixed(0)} ms, before the ${limitMs} ms limit`);
    assert.ok(exchange.endedAfterMs < limitMs + SLACK_MS, `closed after ${exchange.endedAfterMs.toFixed(0)} ms, limit ${limitMs} ms`);
  };

  it('answers a prediction whose body stalls with 408 after the idle limit, closes the connection and audits it once', async (t) => {
    const auditBefore = (await fx.auditRecords()).length;
    const half = multipart.body.subarray(0, Math.floor(multipart.body.length / 2));
    const exchange = await rawExchange(port, predictHead(multipart.body.length), [{ afterMs: 10, data: half }]);
    assertTimedOut(exchange, IDLE_MS);
    t.diagnostic(`stalled body: 408 and closed ${exchange.endedAfterMs.toFixed(0)} ms after the request began (idle limit ${IDLE_MS} ms)`);
    const records = await waitFor('the audit record', async () => {
      const all = await fx.auditRecords();
      return all.length > auditBefore ? all.slice(auditBefore) : undefined;
    });
    assert.equal(records.length, 1);
    assert.equal(records[0]?.status, 408);
    assert.equal(records[0]?.code, 'REQUEST_TIMEOUT');
  });

  it('answers a prediction body that trickles past the route deadline with 408', async (t) => {
    // A few bytes every 100 ms: never idle for 400 ms, but far from done after 1.5 s.
    const pieces = Array.from({ length: 40 }, (_, i) => ({ afterMs: 100, data: multipart.body.subarray(i * 8, i * 8 + 8) }));
    const exchange = await rawExchange(port, predictHead(multipart.body.length), pieces);
    assertTimedOut(exchange, PREDICT_DEADLINE_MS);
    t.diagnostic(`trickled body: 408 after ${exchange.endedAfterMs.toFixed(0)} ms (deadline ${PREDICT_DEADLINE_MS} ms)`);
  });

  it('answers a dataset upload that stalls with 408 and keeps nothing of it', async () => {
    const datasetsBefore = await readdir(fx.context.store.datasetsDir);
    const head =
      `POST /v1/datasets?id=stalled HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${fx.auth('train').authorization}\r\n` +
      'Content-Type: application/zip\r\nContent-Length: 100000\r\n\r\n';
    const exchange = await rawExchange(port, head, [{ afterMs: 10, data: Buffer.from('PK\u0003\u0004partial zip') }]);
    assertTimedOut(exchange, IDLE_MS);
    // The extraction's temporary folder is removed once the aborted body ends it.
    await waitFor('the dataset folder to be as before', async () => {
      const now = await readdir(fx.context.store.datasetsDir);
      return now.length === datasetsBefore.length ? now : undefined;
    });
    assert.deepEqual((await readdir(fx.context.store.datasetsDir)).sort(), [...datasetsBefore].sort());
  });

  it('answers a small JSON body that stalls with 408 after the idle limit', async () => {
    const head =
      `POST /v1/experiments HTTP/1.1\r\nHost: localhost\r\nAuthorization: ${fx.auth('train').authorization}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 200\r\n\r\n';
    const exchange = await rawExchange(port, head, [{ afterMs: 10, data: '{"datasetId": "' }]);
    assertTimedOut(exchange, IDLE_MS);
  });

  it('accepts a slow but steady body within the limits, and serves the next request on the same connection', async () => {
    // Eight pieces 150 ms apart: under the idle limit each time, about 1.2 s in all, under the deadline.
    const size = Math.ceil(multipart.body.length / 8);
    const pieces = Array.from({ length: 8 }, (_, i) => ({ afterMs: 150, data: multipart.body.subarray(i * size, (i + 1) * size) }));
    const healthRequest = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
    // The health check goes out after the body, on the same (kept-alive) socket; the server closes after it.
    const exchange = await rawExchange(port, predictHead(multipart.body.length), [...pieces, { afterMs: 600, data: healthRequest }]);
    const responses = exchange.response.split(/(?=HTTP\/1\.1 )/);
    assert.equal(responses.length, 2, exchange.response.slice(0, 600));
    assert.equal(parseResponse(responses[0] ?? '').status, 200, responses[0]?.slice(0, 400));
    assert.equal((parseResponse(responses[0] ?? '').body.predictions as unknown[]).length, 1);
    assert.equal(parseResponse(responses[1] ?? '').status, 200, responses[1]);
  });

  it('keeps serving other clients while uploads stall', async () => {
    const stalled = rawExchange(port, predictHead(multipart.body.length), [{ afterMs: 10, data: multipart.body.subarray(0, 100) }]);
    const response = await fetch(`http://127.0.0.1:${port}/v1/predict`, {
      method: 'POST',
      headers: { ...fx.auth('predict'), 'content-type': multipart.contentType },
      body: multipart.body,
    });
    assert.equal(response.status, 200, await response.clone().text());
    assertTimedOut(await stalled, IDLE_MS);
  });
});

/** One PNG of the fixture's synthetic dataset. */
async function readFirstImage(fx: ApiFixture): Promise<Buffer> {
  const dir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_fractured');
  const [name] = (await readdir(dir)).filter((file) => file.endsWith('.png')).sort();
  assert.ok(name, 'the synthetic dataset has a PNG');
  return readFile(path.join(dir, name));
}
