/**
 * Draining the API at shutdown (issue 5, "SIGTERM under load"; the process-level test is
 * test/e2e/shutdown-under-load.test.ts): while `runtime.close({ drainMs })` drains, new requests on
 * new and kept connections get 503 `SHUTTING_DOWN` with `Retry-After` and `Connection: close`,
 * `/readyz` says 503, an open event stream ends instead of holding the shutdown up, the port stays
 * open for the drain time and is closed after it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startApiFixture, type ApiFixture } from './api-fixture.ts';

const DRAIN_MS = 600;

describe('draining at shutdown', () => {
  let fx: ApiFixture;

  before(async () => {
    fx = await startApiFixture({ seedExperiment: false, settings: { RATE_LIMIT_PER_MINUTE: '100000' } });
  });
  after(() => fx?.close());

  it('answers 503 with Retry-After while draining, ends open event streams, and closes the port after the drain time', async (t) => {
    const base = await fx.listen();
    // An experiment no worker takes stays queued: its event stream stays open until something ends it.
    const created = await fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: { ...fx.auth('train'), 'content-type': 'application/json' },
      payload: { datasetId: fx.datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1 },
    });
    assert.equal(created.statusCode, 202, created.body);
    const { id } = JSON.parse(created.body) as { id: string };
    const stream = await fetch(`${base}/v1/experiments/${id}/events`, { headers: { ...fx.auth('train'), accept: 'text/event-stream' }, signal: AbortSignal.timeout(10_000) });
    assert.equal(stream.status, 200);
    const streamEnded = stream.text().then(() => performance.now());

    const started = performance.now();
    const closed = fx.runtime.close({ drainMs: DRAIN_MS }).then(() => performance.now());
    await new Promise((resolve) => setTimeout(resolve, 50));

    const refused = await fetch(`${base}/v1/experiments/${id}`, { headers: fx.auth('train'), signal: AbortSignal.timeout(5_000) });
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await refused.json()) as { code: string }).code, 'SHUTTING_DOWN');
    assert.match(refused.headers.get('retry-after') ?? '', /^[1-9][0-9]*$/);
    assert.equal(refused.headers.get('connection'), 'close');
    const ready = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(5_000) });
    assert.equal(ready.status, 503);

    const streamEndedMs = (await streamEnded) - started;
    assert.ok(streamEndedMs < DRAIN_MS, `the event stream ended ${streamEndedMs.toFixed(0)} ms after the drain began`);
    const closedMs = (await closed) - started;
    assert.ok(closedMs >= DRAIN_MS - 5, `closed after ${closedMs.toFixed(0)} ms, before the ${DRAIN_MS} ms drain`);
    assert.ok(closedMs < DRAIN_MS + 2_000, `closed after ${closedMs.toFixed(0)} ms`);
    await assert.rejects(fetch(`${base}/healthz`, { signal: AbortSignal.timeout(5_000) }), (error: Error) => /ECONNREFUSED/.test(String((error.cause as Error | undefined)?.message ?? error.message)));
    t.diagnostic(`event stream ended ${streamEndedMs.toFixed(0)} ms into the drain; port closed after ${closedMs.toFixed(0)} ms (drain ${DRAIN_MS} ms)`);
  });
});
