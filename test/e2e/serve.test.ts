/**
 * `fracture-service start | api | worker` as operators run them: real processes on a temporary
 * `DATA_DIR`, a queue prefix and a port of their own, the real Redis, real HTTP. `start` creates and
 * prints an admin key once, serves and reports readiness, predicts on real radiographs, and shuts
 * down gracefully (an in-flight prediction finishes, new requests are refused, exit 0 in time);
 * `api` and `worker` refuse bad configuration and arguments with the right exit code and message.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../../src/infra/redis-launcher.ts';
import { deleteKeys, imageForm, readXrays, seedProductionModel, SKIP_WITHOUT_XRAYS, testPrefix } from './helpers/service-fixtures.ts';
import { holdRequest, http, killAllServices, runService, spawnService, waitFor, type ServiceProcess } from './helpers/service-process.ts';

/** Grace period given to the processes; a graceful stop must end well within it. */
const SHUTDOWN_TIMEOUT_MS = 10_000;
const NOTICE = /For research use only\. Not for use in diagnostic procedures\./;

interface Readiness {
  ready: boolean;
  checks: Record<'redis' | 'backend' | 'model', { ok: boolean; detail?: string }>;
}

interface PredictBody {
  model: { id: string; architecture: string; version: string; engine?: string };
  predictions: { id: string; label: string; probabilities: Record<string, number>; fractureProbability: number }[];
  notice: string;
}

/**
 * What a new client gets from a stopping server: an HTTP status, or the network error's code
 * (connection refused or reset). A request still unanswered after 3 s fails the test: it hung.
 */
async function answerOrRefusal(url: string): Promise<string> {
  try {
    return String((await http(url, { timeoutMs: 3_000 })).status);
  } catch (error) {
    if (error instanceof DOMException && error.name === 'TimeoutError') throw new Error(`${url} hung during shutdown`, { cause: error });
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? String(error);
  }
}

describe('fracture-service start', () => {
  let root: string;
  const prefixes: string[] = [];

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'e2e-serve-'));
  });
  after(async () => {
    await killAllServices();
    for (const prefix of prefixes) await deleteKeys(prefix);
    await rm(root, { recursive: true, force: true });
  });

  /** Spawns `start` on `dataDir` with its own port and queue prefix; resolves once it printed everything. */
  async function start(dataDir: string, env: Record<string, string> = {}): Promise<{ service: ServiceProcess; url: string; port: number }> {
    const port = await freePort();
    const prefix = testPrefix('start');
    prefixes.push(prefix);
    const service = spawnService(['start'], {
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dataDir,
      QUEUE_PREFIX: prefix,
      FRACTURE_BACKEND: 'wasm',
      LOG_LEVEL: 'warn',
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      ...env,
    });
    const [, url] = await service.waitForStdout(/serving at (http:\/\/\S+) \(API docs/);
    // The notice is the last line `start` prints: after it, the key (if any) is out.
    await service.waitForStdout(NOTICE);
    assert.equal(url, `http://127.0.0.1:${port}`);
    return { service, url: url as string, port };
  }

  /** SIGTERMs `service` and asserts it exits 0 well within the grace period; returns how long it took. */
  async function stopGracefully(service: ServiceProcess): Promise<number> {
    const began = Date.now();
    const exit = await service.stop('SIGTERM', SHUTDOWN_TIMEOUT_MS + 5_000);
    const took = Date.now() - began;
    assert.deepEqual(exit, { code: 0, signal: null }, `exit after SIGTERM; stderr:\n${service.stderr().slice(-2000)}`);
    assert.ok(took < SHUTDOWN_TIMEOUT_MS, `stopped in ${took} ms, within SHUTDOWN_TIMEOUT_MS`);
    return took;
  }

  it('without API_KEYS creates an admin key, prints it once, and keeps it across restarts', async (t) => {
    const dataDir = path.join(root, 'keys');
    const first = await start(dataDir);
    const [, key] = first.service.stdout().match(/Admin API key \(shown once[^\n]*\n\s+(\S+)/) ?? [];
    assert.ok(key !== undefined && key.length >= 32, `an admin key is printed:\n${first.service.stdout()}`);
    assert.match(first.service.stdout(), /Redis: redis:\/\/127\.0\.0\.1:6379 \(found via default port\)/);
    // Only the hash is stored.
    const stored = await readFile(path.join(dataDir, 'api-keys.json'), 'utf8');
    assert.ok(!stored.includes(key), 'the plain key is not stored');

    const health = await http(`${first.url}/healthz`);
    assert.equal(health.status, 200);
    assert.equal((health.json as { status: string }).status, 'ok');

    const models = await http(`${first.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(models.status, 200, models.text);
    assert.deepEqual((models.json as { models: unknown[] }).models, []);
    for (const headers of [{ authorization: 'Bearer not-the-key-at-all-0123456789' }, {}] as Record<string, string>[]) {
      const refused = await http(`${first.url}/v1/models`, { headers });
      assert.equal(refused.status, 401);
      assert.match(refused.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal((refused.json as { code: string }).code, 'UNAUTHENTICATED');
    }

    const ready = await http(`${first.url}/readyz`);
    assert.equal(ready.status, 503, ready.text);
    const readiness = ready.json as Readiness;
    assert.equal(readiness.ready, false);
    assert.equal(readiness.checks.model.ok, false);
    assert.match(readiness.checks.model.detail ?? '', /production/);
    assert.equal(readiness.checks.redis.ok, true);
    assert.deepEqual(readiness.checks.backend, { ok: true, detail: 'wasm' });

    t.diagnostic(`first start stopped ${await stopGracefully(first.service)} ms after SIGTERM`);
    assert.notEqual(await answerOrRefusal(`${first.url}/healthz`), '200', 'nothing answers after the stop');

    const second = await start(dataDir);
    assert.ok(!second.service.stdout().includes(key), 'the key is not printed again');
    assert.doesNotMatch(second.service.stdout(), /Admin API key/);
    assert.match(second.service.stdout(), /the admin key created earlier/);
    const again = await http(`${second.url}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
    assert.equal(again.status, 200, 'the first run\'s key still works');
    await stopGracefully(second.service);
  });

  it('serves the production model in DATA_DIR and finishes an in-flight prediction when stopped', { skip: SKIP_WITHOUT_XRAYS }, async (t) => {
    const dataDir = path.join(root, 'model');
    const seeded = await seedProductionModel(dataDir);
    const secret = 'pacs-secret-0123456789abcdef';
    const { service, url } = await start(dataDir, { API_KEYS: `pacs:${secret}:predict` });
    assert.doesNotMatch(service.stdout(), /Admin API key/, 'no key is created when API_KEYS is set');
    await assert.rejects(stat(path.join(dataDir, 'api-keys.json')), { code: 'ENOENT' });
    const auth = { authorization: `Bearer ${secret}` };

    const readiness = await waitFor('/readyz 200', async () => {
      const ready = await http(`${url}/readyz`);
      return ready.status === 200 ? (ready.json as Readiness) : undefined;
    });
    assert.equal(readiness.ready, true);
    assert.match(readiness.checks.model.detail ?? '', new RegExp(`^${seeded.modelId} `));

    const [xray, second] = await readXrays(2);
    assert.ok(xray && second);
    const answer = await http(`${url}/v1/predict`, { method: 'POST', headers: auth, body: imageForm([xray]) });
    assert.equal(answer.status, 200, answer.text);
    const body = answer.json as PredictBody;
    // Trained models carry model.onnx, so INFERENCE_ENGINE=auto (the default) serves them with ONNX Runtime.
    assert.deepEqual(body.model, { id: seeded.modelId, architecture: seeded.architecture, version: seeded.version, engine: 'onnx' });
    assert.match(body.notice, NOTICE);
    assert.equal(body.predictions.length, 1);
    const [prediction] = body.predictions;
    assert.deepEqual(Object.keys(prediction?.probabilities ?? {}).sort(), [...seeded.classes].sort());
    const total = Object.values(prediction?.probabilities ?? {}).reduce((sum, p) => sum + p, 0);
    assert.ok(Math.abs(total - 1) < 1e-3, `probabilities sum to 1, got ${total}`);
    assert.ok(seeded.classes.includes(prediction?.label ?? ''));
    // The audit line is appended once the response is sent (onResponse): wait for it.
    const auditFile = path.join(dataDir, 'audit', 'predictions.jsonl');
    const auditLines = async (): Promise<string[]> => (await readFile(auditFile, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    await waitFor('the audit line', async () => ((await auditLines()).length > 0 ? true : undefined), 5_000, 20);
    assert.equal((await auditLines()).length, 1, 'one audit line per prediction');

    // Asynchronous predictions run in `start` too (its own predictions worker, the same predictor).
    const queued = await http(`${url}/v1/predictions`, { method: 'POST', headers: auth, body: imageForm([xray]) });
    assert.equal(queued.status, 202, queued.text);
    const predictionId = (queued.json as { id: string }).id;
    const completed = await waitFor('the asynchronous prediction', async () => {
      const view = await http(`${url}/v1/predictions/${predictionId}`, { headers: auth });
      const body = view.json as { status: string; result?: PredictBody };
      return body.status === 'completed' || body.status === 'failed' ? body : undefined;
    }, 30_000, 100);
    assert.equal(completed.status, 'completed', JSON.stringify(completed));
    assert.deepEqual(completed.result?.predictions.map((prediction) => prediction.label), body.predictions.map((prediction) => prediction.label));

    // Graceful shutdown: a prediction in flight when SIGTERM arrives still gets its answer; new
    // requests meanwhile get 503 at once; then the process exits 0 within the grace period.
    const held = await holdRequest(`${url}/v1/predict`, imageForm([second]), auth);
    const began = Date.now();
    service.child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(service.running(), 'the process waits for the request in flight');
    const duringShutdown = await answerOrRefusal(`${url}/healthz`);
    // The port stays open while the process drains (SHUTDOWN_DRAIN_MS): a new client gets a 503, not a refused connection.
    assert.equal(duringShutdown, '503', `a new request during shutdown got ${duringShutdown}`);
    assert.ok(service.running(), 'still stopping while the new request was refused');
    t.diagnostic(`a new request during shutdown got ${duringShutdown}`);
    const inFlight = await held.release();
    assert.equal(inFlight.status, 200, inFlight.text);
    assert.equal((JSON.parse(inFlight.text) as PredictBody).predictions.length, 1);
    const exit = await service.exited;
    const took = Date.now() - began;
    assert.deepEqual(exit, { code: 0, signal: null }, service.stderr().slice(-2000));
    assert.ok(took < SHUTDOWN_TIMEOUT_MS, `stopped in ${took} ms, within SHUTDOWN_TIMEOUT_MS`);
    t.diagnostic(`stopped ${took} ms after SIGTERM (request held ~200 ms + the prediction)`);
    const audit = await auditLines();
    assert.equal(audit.length, 3, 'the in-flight prediction was audited before the process exited');
    assert.deepEqual(
      audit.map((line) => JSON.parse(line) as { status: number; keyId: string; route: string }).map(({ status, keyId, route }) => ({ status, keyId, route })),
      [
        { status: 200, keyId: 'pacs', route: 'POST /v1/predict' },
        { status: 202, keyId: 'pacs', route: 'POST /v1/predictions' },
        { status: 200, keyId: 'pacs', route: 'POST /v1/predict' },
      ],
    );
    assert.ok(!audit.join('\n').includes(xray.name) && !audit.join('\n').includes(second.name), 'no client file name in the audit log');
  });
});

describe('fracture-service api, worker and start refuse what they cannot do', { concurrency: true }, () => {
  const env = { FRACTURE_BACKEND: 'wasm', LOG_LEVEL: 'warn', QUEUE_PREFIX: 'e2e-refused' };
  let root: string;
  const prefixes: string[] = [];

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'e2e-refused-'));
  });
  after(async () => {
    await killAllServices();
    for (const prefix of prefixes) await deleteKeys(prefix);
    await rm(root, { recursive: true, force: true });
  });

  it('api without API_KEYS exits 2 naming API_KEYS', async () => {
    const result = await runService(['api'], { ...env, PORT: '0' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /API_KEYS: required for `api`/);
  });

  it('api with bad variables exits 2 naming each of them', async () => {
    const result = await runService(['api'], { ...env, PORT: 'abc', LOG_LEVEL: 'loud', API_KEYS: 'ops:0123456789abcdef0123:admin' });
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^invalid configuration:/m);
    assert.match(result.stderr, /^\s+PORT: /m);
    assert.match(result.stderr, /^\s+LOG_LEVEL: /m);
  });

  it('worker --queues nonsense exits non-zero with the valid queues and usage', async () => {
    const result = await runService(['worker', '--queues', 'nonsense'], env);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /queues are training, inference, predictions; got nonsense/);
    assert.match(result.stderr, /Usage: fracture-service worker \[options\]/);
  });

  it(
    'start that cannot listen exits 2 naming PORT, without leaving an admin key nobody saw',
    async () => {
      const dataDir = path.join(root, 'port-taken');
      const taken = net.createServer();
      await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
      const port = (taken.address() as net.AddressInfo).port;
      const prefix = testPrefix('port-taken');
      prefixes.push(prefix);
      try {
        const result = await runService(['start'], { ...env, QUEUE_PREFIX: prefix, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir });
        assert.equal(result.code, 2);
        assert.match(result.stderr, /PORT: \d+ is in use/);
        // Either the operator was shown the key, or none was kept (the next start creates and prints one).
        const stored = await stat(path.join(dataDir, 'api-keys.json')).then(() => true, () => false);
        assert.ok(!stored || /Admin API key/.test(result.stdout), 'an admin key was stored but never printed');
      } finally {
        await new Promise((resolve) => taken.close(resolve));
      }
    },
  );
});
