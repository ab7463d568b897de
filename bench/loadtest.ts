/**
 * `npm run loadtest`: drives `POST /v1/predict` of a real `fracture-service` process with real
 * radiographs at fixed request rates (autocannon), with dynamic batching on and off, and reports per
 * rate the latency of answered requests (p50/p95/p99), the throughput, and the mix of answers and
 * errors. At twice the measured capacity the service must shed load only with 503 + `Retry-After`
 * (no timeouts, no resets, no other errors); the report says whether it did. A benchmark, never a
 * test.
 *
 * How it runs:
 * 1. trains a throw-away model (`--model`, default cnn:128; one epoch on a tiny synthetic set) into a
 *    temporary data directory and gives it the alias `production`;
 * 2. per batching setting (`on`: the service's defaults, `PREDICT_MAX_BATCH_SIZE` 16 and
 *    `PREDICT_MAX_DELAY_MS` 10; `off`: 1 and 0), starts `fracture-service start` (or, with
 *    `--mode queue`, `api` plus one `worker --queues inference`) as its own process on a free port;
 * 3. warms it up, then measures its **capacity**: `--capacity-connections` (32) connections sending
 *    as fast as answers come, for `--seconds` (10): answered requests per second over the last three
 *    quarters of the run (after the ramp-up); before each run the backlog of the last one drains;
 * 4. runs each **fixed rate** for `--seconds`: `--rates` (0.5,0.9,2) times the capacity measured with
 *    batching on — the same absolute rates for both settings, so the rows compare.
 *
 * autocannon's fixed rate: each connection sends at most its share of requests per second, one at a
 * time, and a run opens no more connections than its rate. So at most `rate` requests are in flight,
 * and the runs are staggered ({@link RATE_SLICES}) so that a second's requests do not arrive as one
 * burst. A backlog of the service's default `PREDICT_MAX_QUEUE` (256 images) would only fill with more
 * than 256 requests in flight, which these rates (about 100 per second at twice the capacity) cannot
 * send: the service under test runs with `PREDICT_MAX_QUEUE` 32 (`--max-queue`), so that overload
 * shows as what it is, 503s with `Retry-After`, within the run.
 *
 * Latency is client-side (autocannon's response time: from sending the request to its last byte) of
 * the 200 answers; throughput is 200 answers per second over the steady part of a run (above). The
 * load generator and the service share this machine's cores: read the numbers as this machine's, on
 * a quiet machine. The service's per-key rate limit is raised out of the way; the other settings are
 * the service's defaults.
 *
 * Output: a Markdown table on stdout and JSON in `bench/results/loadtest-<date>.json` (git-ignored).
 * @example
 * npm run loadtest
 * npm run loadtest -- --seconds 5 --rates 1,2 --batching on
 * npm run loadtest -- --mode queue --model resnet50:128
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { ArtifactStore } from '../src/infra/artifact-store.ts';
import { CONFIG_VARIABLES } from '../src/infra/config.ts';
import { findOrStartRedis, freePort } from '../src/infra/redis-launcher.ts';
import { initBackend } from '../src/ml/backend/select-backend.ts';
import { ModelRegistry } from '../src/services/models/model-registry.ts';
import { deleteKeys, parseCases, percentile, positiveInteger, readXrays, trainModels, type BenchCase } from './http-bench.ts';
import { machineInfo } from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const BIN = path.join(repoRoot, 'bin', 'fracture-service.js');

const USAGE = `Usage: npm run loadtest -- [options]

  --model ARCH:SIZE           the model served (default cnn:128)
  --mode start|queue          start (API and batcher in one process, default) or queue (api + one inference worker)
  --batching LIST             on, off or on,off (default on,off)
  --seconds N                 seconds per measurement (default 10)
  --rates LIST                fixed rates as multiples of the capacity with batching on (default 0.5,0.9,2)
  --connections N             most connections of the fixed-rate runs (default 512)
  --max-queue N               PREDICT_MAX_QUEUE of the service under test (default 32, see below)
  --capacity-connections N    connections of the capacity run (default 32)
  --redis-url URL             Redis to use (default: 127.0.0.1:6379, else start redis-server)
  --xrays DIR                 folder of class folders of JPEG radiographs (default ../shared/datasets/xray-binary)
  --out FILE                  JSON output (default bench/results/loadtest-<date>.json)
  --help`;

interface Options {
  model: BenchCase;
  mode: 'start' | 'queue';
  batching: ('on' | 'off')[];
  seconds: number;
  rates: number[];
  connections: number;
  capacityConnections: number;
  maxQueue: number;
  redisUrl: string | undefined;
  xrays: string;
  out: string;
}

/** The batcher settings of each batching mode. */
const BATCHING: Readonly<Record<'on' | 'off', { PREDICT_MAX_BATCH_SIZE: string; PREDICT_MAX_DELAY_MS: string }>> = {
  on: { PREDICT_MAX_BATCH_SIZE: '16', PREDICT_MAX_DELAY_MS: '10' },
  off: { PREDICT_MAX_BATCH_SIZE: '1', PREDICT_MAX_DELAY_MS: '0' },
};

/**
 * Waits until the requests a run left in flight have been answered: autocannon stops sending at the
 * end of a run without waiting for them. One more request queues behind them (the batcher answers
 * in order), so its answer means the backlog is gone; a full backlog (503) is tried again.
 */
async function drainBacklog(base: string, secret: string, form: { bodies: Buffer[]; contentType: string }): Promise<void> {
  for (let attempt = 0; attempt < 120; attempt++) {
    const response = await fetch(`${base}/v1/predict`, {
      method: 'POST',
      headers: { authorization: `Bearer ${secret}`, 'content-type': form.contentType },
      body: form.bodies[0] as Buffer,
      signal: AbortSignal.timeout(120_000),
    });
    await response.arrayBuffer();
    if (response.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
  throw new Error('the service did not drain its backlog within two minutes');
}

/** One measurement: a load and what came back. */
interface Measurement {
  batching: 'on' | 'off';
  /** `capacity` (closed loop) or the fixed rate's multiple of the capacity. */
  load: 'capacity' | number;
  /** Requests per second asked for (fixed rates) or null (capacity). */
  targetRate: number | null;
  connections: number;
  seconds: number;
  sent: number;
  /** 200 answers per second. */
  throughput: number;
  /** Latency of the 200 answers, ms. */
  p50: number;
  p95: number;
  p99: number;
  /** Answers by status and problem code, e.g. `{ "200": 812, "503 QUEUE_FULL": 90 }`. */
  answers: Record<string, number>;
  /** 503 answers without a `Retry-After` header. */
  unavailableWithoutRetryAfter: number;
  /** Connection errors (resets, refused) and timeouts as autocannon counts them. */
  errors: number;
  timeouts: number;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      model: { type: 'string' },
      mode: { type: 'string' },
      batching: { type: 'string' },
      seconds: { type: 'string' },
      rates: { type: 'string' },
      connections: { type: 'string' },
      'capacity-connections': { type: 'string' },
      'max-queue': { type: 'string' },
      'redis-url': { type: 'string' },
      xrays: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return null;
  const [model] = parseCases(values.model ?? 'cnn:128');
  if (model === undefined) throw new Error('--model needs one arch:size');
  const mode = values.mode ?? 'start';
  if (mode !== 'start' && mode !== 'queue') throw new Error(`--mode is start or queue, got ${JSON.stringify(mode)}`);
  const batching = (values.batching ?? 'on,off').split(',').map((item) => item.trim());
  for (const item of batching) if (item !== 'on' && item !== 'off') throw new Error(`--batching takes on and/or off, got ${JSON.stringify(item)}`);
  const rates = (values.rates ?? '0.5,0.9,2').split(',').map(Number);
  for (const rate of rates) if (!(rate > 0)) throw new Error(`--rates are positive multiples of the capacity, got ${JSON.stringify(values.rates)}`);
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  return {
    model,
    mode,
    batching: batching as ('on' | 'off')[],
    seconds: positiveInteger('seconds', values.seconds, 10),
    rates,
    connections: positiveInteger('connections', values.connections, 512),
    capacityConnections: positiveInteger('capacity-connections', values['capacity-connections'], 32),
    maxQueue: positiveInteger('max-queue', values['max-queue'], 32),
    redisUrl: values['redis-url'],
    xrays: path.resolve(values.xrays ?? path.join(repoRoot, '..', 'shared', 'datasets', 'xray-binary')),
    out: path.resolve(values.out ?? path.join(repoRoot, 'bench', 'results', `loadtest-${stamp}.json`)),
  };
}

/** The processes of one service under test. */
interface Service {
  base: string;
  stop(): Promise<void>;
}

/** The environment of a service process: this one's, without any variable the service reads, plus `env`. */
function serviceEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIG_VARIABLES) delete clean[name];
  return { ...clean, ...env };
}

function spawnCommand(args: readonly string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: repoRoot, env: serviceEnv(env), stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  child.once('exit', (code, signal) => {
    if (code !== 0 && signal !== 'SIGTERM') process.stderr.write(`fracture-service ${args.join(' ')} exited (${code ?? signal}):\n${stderr}\n`);
  });
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** Starts the service in `mode` and resolves once `/readyz` answers 200. */
async function startService(mode: Options['mode'], env: Record<string, string>): Promise<Service> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const children: ChildProcess[] = [];
  if (mode === 'start') {
    children.push(spawnCommand(['start'], { ...env, PORT: String(port) }));
  } else {
    children.push(spawnCommand(['worker', '--queues', 'inference'], { ...env, WORKER_METRICS_PORT: '0' }));
    children.push(spawnCommand(['api'], { ...env, PORT: String(port) }));
  }
  const stop = async (): Promise<void> => {
    for (const child of [...children].reverse()) await stopProcess(child);
  };
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) }).then((response) => response.status, () => 0);
    if (status === 200) return { base, stop };
    if (children.some((child) => child.exitCode !== null) || Date.now() > deadline) {
      await stop();
      throw new Error(`the service did not get ready (last /readyz: ${status})`);
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** Single-image multipart bodies of the radiographs, all with one boundary. */
function multipartBodies(images: readonly Buffer[]): { bodies: Buffer[]; contentType: string } {
  const boundary = `----loadtest${randomBytes(8).toString('hex')}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="scan.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  return { bodies: images.map((image) => Buffer.concat([head, image, tail])), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** What one or more autocannon runs saw. */
interface Seen {
  latencies: number[];
  /** `performance.now()` of each 200 answer, ms. */
  answeredAt: number[];
  /** When the first run began, ms (`performance.now()`). */
  startedAt: number;
  answers: Record<string, number>;
  unavailableWithoutRetryAfter: number;
  sent: number;
  errors: number;
  timeouts: number;
  seconds: number;
}

/** One autocannon run against `/v1/predict`, adding to `seen`; `rate` null sends as fast as answers come. */
async function cannon(base: string, secret: string, form: { bodies: Buffer[]; contentType: string }, load: { connections: number; seconds: number; rate: number | null }, seen: Seen): Promise<void> {
  let next = Math.floor(Math.random() * form.bodies.length);
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: base,
        connections: load.connections,
        duration: load.seconds,
        // Slow answers are measured, not cut off: a timeout would hide how long a queue makes them wait.
        timeout: 120,
        ...(load.rate === null ? {} : { overallRate: load.rate }),
        requests: [
          {
            method: 'POST',
            path: '/v1/predict',
            headers: { authorization: `Bearer ${secret}`, 'content-type': form.contentType },
            setupRequest: (request) => ({ ...request, body: form.bodies[next++ % form.bodies.length] as Buffer }),
            onResponse: (status, body, _context, headers) => {
              let key = String(status);
              if (status !== 200) {
                try {
                  key += ` ${(JSON.parse(body) as { code?: string }).code ?? ''}`.trimEnd();
                } catch {
                  key += ' (not JSON)';
                }
                if (status === 503 && headers?.['retry-after'] === undefined) seen.unavailableWithoutRetryAfter += 1;
              }
              seen.answers[key] = (seen.answers[key] ?? 0) + 1;
            },
          },
        ],
      },
      (error: Error | null, done: autocannon.Result) => (error ? reject(error) : resolve(done)),
    );
    instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      if (statusCode === 200) {
        seen.latencies.push(responseTime);
        seen.answeredAt.push(performance.now());
      }
    });
  });
  seen.sent += result.requests.sent;
  seen.errors += result.errors;
  seen.timeouts += result.timeouts;
  seen.seconds = Math.max(seen.seconds, result.duration);
}

/**
 * 200 answers per second over the last three quarters of a run: the first quarter is the ramp-up
 * (a closed loop's first round of requests all wait together), not the steady state.
 */
function steadyThroughput(seen: Seen, seconds: number): number {
  const from = seen.startedAt + (seconds * 1000) / 4;
  const until = seen.startedAt + seconds * 1000;
  return seen.answeredAt.filter((at) => at >= from && at <= until).length / ((until - from) / 1000);
}

/**
 * Slices a fixed rate is sent in. autocannon's fixed rate gives each connection a budget of requests
 * per second, renewed on the second: all connections of one run send together, so the requests of a
 * second would arrive as one burst. Runs started a tenth of a second apart spread them out.
 */
const RATE_SLICES = 10;

/**
 * Drives `/v1/predict`: as fast as answers come on `connections` (rate null), or at `rate` requests
 * per second split over {@link RATE_SLICES} staggered autocannon runs.
 */
async function drive(
  base: string,
  secret: string,
  form: { bodies: Buffer[]; contentType: string },
  load: { connections: number; seconds: number; rate: number | null },
): Promise<Omit<Measurement, 'batching' | 'load'>> {
  const seen: Seen = { latencies: [], answeredAt: [], startedAt: performance.now(), answers: {}, unavailableWithoutRetryAfter: 0, sent: 0, errors: 0, timeouts: 0, seconds: 0 };
  if (load.rate === null) {
    await cannon(base, secret, form, load, seen);
  } else {
    const slices = Math.min(RATE_SLICES, load.rate);
    const runs = Array.from({ length: slices }, async (_, i) => {
      const rate = Math.floor(load.rate as number / slices) + (i < (load.rate as number) % slices ? 1 : 0);
      await new Promise((resolve) => setTimeout(resolve, (i * 1000) / slices));
      await cannon(base, secret, form, { connections: Math.max(1, Math.floor(load.connections / slices)), seconds: load.seconds, rate }, seen);
    });
    await Promise.all(runs);
  }
  return {
    targetRate: load.rate,
    connections: load.rate === null ? load.connections : Math.min(load.connections, load.rate),
    seconds: seen.seconds,
    sent: seen.sent,
    throughput: steadyThroughput(seen, load.seconds),
    p50: percentile(seen.latencies, 50),
    p95: percentile(seen.latencies, 95),
    p99: percentile(seen.latencies, 99),
    answers: seen.answers,
    unavailableWithoutRetryAfter: seen.unavailableWithoutRetryAfter,
    errors: seen.errors,
    timeouts: seen.timeouts,
  };
}

const fixed = (value: number, digits = 0): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function mix(m: Measurement): string {
  const parts = Object.entries(m.answers)
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([key, count]) => `${key}: ${count}`);
  if (m.errors > 0) parts.push(`connection errors: ${m.errors - m.timeouts}`);
  if (m.timeouts > 0) parts.push(`timeouts: ${m.timeouts}`);
  return parts.join(', ');
}

function markdownTable(measurements: readonly Measurement[]): string {
  const lines = [
    '| batching | load | target req/s | sent | 200/s | p50 ms | p95 ms | p99 ms | answers and errors |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const m of measurements) {
    const load = m.load === 'capacity' ? `capacity (${m.connections} conn., closed loop)` : `${m.load}x capacity`;
    lines.push(`| ${m.batching} | ${load} | ${m.targetRate === null ? '-' : m.targetRate} | ${m.sent} | ${fixed(m.throughput, 1)} | ${fixed(m.p50)} | ${fixed(m.p95)} | ${fixed(m.p99)} | ${mix(m)} |`);
  }
  return lines.join('\n');
}

/** True when every answer that is not a 200 is a 503 with Retry-After, and nothing failed on the wire. */
function shedsCleanly(m: Measurement): boolean {
  const others = Object.entries(m.answers).filter(([key]) => key !== '200' && !key.startsWith('503 '));
  return others.length === 0 && m.unavailableWithoutRetryAfter === 0 && m.errors === 0 && m.timeouts === 0;
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === null) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const images = await readXrays(options.xrays, 64);
  const form = multipartBodies(images);
  const root = await mkdtemp(path.join(os.tmpdir(), 'loadtest-'));
  const dataDir = path.join(root, 'data');
  const secret = randomBytes(18).toString('base64url');
  const prefix = `bench-load-${randomBytes(4).toString('hex')}`;
  const machine = machineInfo();
  const redis = await findOrStartRedis({ configuredUrl: options.redisUrl, dataDir: path.join(root, 'redis') });
  const measurements: Measurement[] = [];
  let service: Service | undefined;
  try {
    const backend = await initBackend('auto');
    const store = new ArtifactStore(dataDir);
    const models = new ModelRegistry(store);
    const trained = await trainModels({ store, models, backend: backend.name }, [options.model]);
    const model = trained.get(`${options.model.architecture}:${options.model.size}`);
    if (model === undefined) throw new Error('the model was not trained');
    await models.setAlias('production', model.modelId);

    let capacityWithBatching: number | undefined;
    for (const batching of options.batching) {
      process.stdout.write(`batching ${batching}: starting fracture-service ${options.mode === 'start' ? 'start' : 'api + worker'}...\n`);
      service = await startService(options.mode, {
        DATA_DIR: dataDir,
        REDIS_URL: redis.url,
        QUEUE_PREFIX: prefix,
        API_KEYS: `loadtest:${secret}:predict`,
        RATE_LIMIT_PER_MINUTE: '100000000',
        LOG_LEVEL: 'warn',
        HOST: '127.0.0.1',
        PREDICT_MAX_QUEUE: String(options.maxQueue),
        ...BATCHING[batching],
      });
      // Warm-up: the model loads, the kernels settle, the connections open.
      await drive(service.base, secret, form, { connections: options.capacityConnections, seconds: 3, rate: null });
      await drainBacklog(service.base, secret, form);
      process.stdout.write(`batching ${batching}: capacity (${options.seconds} s, ${options.capacityConnections} connections)...\n`);
      const capacity = await drive(service.base, secret, form, { connections: options.capacityConnections, seconds: options.seconds, rate: null });
      measurements.push({ batching, load: 'capacity', ...capacity });
      capacityWithBatching ??= capacity.throughput;
      await drainBacklog(service.base, secret, form);
      for (const multiple of options.rates) {
        const rate = Math.max(1, Math.round(multiple * capacityWithBatching));
        process.stdout.write(`batching ${batching}: ${multiple}x capacity = ${rate} req/s for ${options.seconds} s...\n`);
        const measured = await drive(service.base, secret, form, { connections: options.connections, seconds: options.seconds, rate });
        measurements.push({ batching, load: multiple, ...measured });
        await drainBacklog(service.base, secret, form);
      }
      await service.stop();
      service = undefined;
    }

    const loadAverageAtEnd = os.loadavg();
    const table = markdownTable(measurements);
    const overload = measurements.filter((m) => typeof m.load === 'number' && m.load >= 2);
    const verdict = overload.map((m) => `batching ${m.batching} at ${m.load}x: ${shedsCleanly(m) ? 'only 200 and 503 with Retry-After' : 'OTHER ANSWERS OR ERRORS'}`).join('; ');
    const heading =
      `POST /v1/predict, ${options.model.architecture} ${options.model.size} px, fracture-service ${options.mode === 'start' ? 'start' : 'api + 1 inference worker'}, ` +
      `backend ${backend.name}, PREDICT_MAX_QUEUE ${options.maxQueue}, ${images.length} real radiographs (JPEG) cycled, ${options.seconds} s per row; ` +
      `load average at start ${(machine.loadAverageAtStart as number[]).map((v) => v.toFixed(2)).join(' ')}, at end ${loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')}`;
    process.stdout.write(`\n${heading}\n\n${table}\n\n${verdict}\n\n`);
    mkdirSync(path.dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify({ createdAt: new Date().toISOString(), machine: { ...machine, loadAverageAtEnd }, options, backend, measurements, table, verdict }, null, 2)}\n`);
    process.stdout.write(`JSON: ${path.relative(process.cwd(), options.out)}\n`);
    if (overload.some((m) => !shedsCleanly(m))) process.exitCode = 1;
  } finally {
    await service?.stop();
    await deleteKeys(redis.url, prefix).catch(() => undefined);
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`loadtest: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
