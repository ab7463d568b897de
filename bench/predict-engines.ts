/**
 * `/v1/predict` throughput per inference engine (`INFERENCE_ENGINE=tfjs` and `=onnx`) at 32 concurrent
 * requests, beside the same engine's raw images/s at the batcher's batch size, over real HTTP on the
 * in-process runtime (the API and its dynamic batcher in one process, as `fracture-service start` runs
 * them) with real radiographs. Never part of the tests.
 *
 * For each case (an architecture at an input size) one throw-away model is trained for one epoch on
 * a tiny synthetic set and registered (training saves `model.onnx` beside the tfjs files); its
 * weights do not matter for speed. Then, for each engine, one after the other:
 *
 * - **raw engine**: the model directory loaded by the service's own `EngineSelector` in that mode,
 *   one batch of `--max-batch` (16) real radiographs decoded and preprocessed as the service does,
 *   `model.predict(batch, 16)` once to warm up, then repeated for `--raw-seconds` (at least 3 calls):
 *   images/s of the forward pass alone (no HTTP, decoding or batching);
 * - **`/v1/predict`**: a runtime started with `INFERENCE_ENGINE` set to the engine, the model warmed up,
 *   then `--concurrency` (32) clients each sending single-image multipart requests back to back (a
 *   closed loop: 32 requests always in flight) for `--warmup-seconds` untimed and `--seconds` timed;
 *   images/s = 200 answers completed inside the timed window / its length. Every answer must name the
 *   engine (`model.engine`). From `/metrics`: forward passes, mean batch and the seconds the engine
 *   was busy (`predict_batch_duration_seconds_sum`) during the window;
 * - **% of raw** = /v1/predict images/s / raw images/s (issue 6's target: at least 80%).
 *
 * Decoding with sharp, HTTP and JSON share the machine's cores with the engine (ONNX Runtime uses all
 * of them for one forward pass), which is what the ratio measures. Run it on a quiet machine: the
 * load average is recorded at the start, per measurement and at the end.
 *
 * It needs Redis (as `start` does: `--redis-url`, else 127.0.0.1:6379, else a `redis-server` from
 * PATH started for the run) and the radiographs of ../shared/datasets/xray-binary (`--xrays DIR`). Its
 * keys use a prefix of their own and are deleted at the end, with the temporary data directory.
 *
 * Output: a Markdown table on stdout and JSON in `bench/results/predict-engines-<date>.json`
 * (git-ignored; `--out FILE` to choose).
 * @example
 * node --no-liftoff --import tsx bench/predict-engines.ts
 * node --no-liftoff --import tsx bench/predict-engines.ts --cases cnn:128,resnet50:224 --seconds 20
 * node --no-liftoff --import tsx bench/predict-engines.ts --engines onnx
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { parseApiKeys } from '../src/infra/api-keys.ts';
import { loadConfig, type Config } from '../src/infra/config.ts';
import { createLogger } from '../src/infra/logger.ts';
import { findOrStartRedis } from '../src/infra/redis-launcher.ts';
import { createApiRuntime, createServiceContext, type ApiRuntime, type ServiceContext } from '../src/runtime/service-context.ts';
import { EngineSelector } from '../src/serving/engine-selector.ts';
import { decodeUpload } from '../src/serving/image-input.ts';
import { deleteKeys, parseCases, percentile, positiveInteger, readXrays, sampleValue, trainModels, type BenchCase } from './http-bench.ts';
import { machineInfo } from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const ENGINES = ['tfjs', 'onnx'] as const;
type Engine = (typeof ENGINES)[number];

/** Issue 6: /v1/predict at 32 concurrent requests reaches at least this share of the raw engine. */
const TARGET_SHARE = 0.8;

const USAGE = `Usage: node --no-liftoff --import tsx bench/predict-engines.ts [options]

  --cases LIST          architecture:size pairs (default cnn:128,resnet50:128)
  --engines LIST        tfjs,onnx (default both), the INFERENCE_ENGINE values compared
  --concurrency N       requests in flight at once (default 32)
  --seconds S           timed seconds of /v1/predict per engine (default 10)
  --warmup-seconds S    untimed seconds of /v1/predict at full concurrency first (default 3)
  --raw-seconds S       timed seconds of the raw engine at the batch size (default 5)
  --max-batch N         PREDICT_MAX_BATCH_SIZE and the raw engine's batch (default: the service's, 16)
  --max-delay-ms N      PREDICT_MAX_DELAY_MS (default: the service's, 10)
  --backend NAME        tfjs backend: auto, wasm, cpu or tensorflow (default auto, as start)
  --redis-url URL       Redis to use (default: 127.0.0.1:6379, else start redis-server)
  --xrays DIR           folder of class folders of JPEG radiographs (default ../shared/datasets/xray-binary)
  --out FILE            JSON output (default bench/results/predict-engines-<date>.json)
  --help`;

interface Options {
  cases: BenchCase[];
  engines: Engine[];
  concurrency: number;
  seconds: number;
  warmupSeconds: number;
  rawSeconds: number;
  maxBatch: number | undefined;
  maxDelayMs: number | undefined;
  backend: string;
  redisUrl: string | undefined;
  xrays: string;
  out: string;
}

/** The engine alone: one batch of preprocessed radiographs, forward passes back to back. */
interface RawResult {
  batch: number;
  calls: number;
  seconds: number;
  imagesPerSecond: number;
  /** Each timed call, ms. */
  callMs: number[];
  /** Decoding and preprocessing one radiograph with sharp (the batch's images, sequentially), ms. */
  decodeMsPerImage: number;
}

/** `/v1/predict` with `concurrency` requests always in flight. */
interface HttpResult {
  concurrency: number;
  seconds: number;
  answers: number;
  imagesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  forwardPasses: number;
  meanBatchSize: number;
  /** Seconds the engine spent in forward passes during the window (from `/metrics`). */
  engineBusySeconds: number;
  /** `model.engine` of the answers (all must be the engine under test). */
  answeredBy: Record<string, number>;
}

interface EngineResult {
  architecture: string;
  size: number;
  engine: Engine;
  modelId: string;
  raw: RawResult;
  http: HttpResult;
  /** http / raw images/s. */
  shareOfRaw: number;
  loadAverage: number[];
}

function positiveNumber(name: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number, got ${JSON.stringify(text)}`);
  return value;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      cases: { type: 'string' },
      engines: { type: 'string' },
      concurrency: { type: 'string' },
      seconds: { type: 'string' },
      'warmup-seconds': { type: 'string' },
      'raw-seconds': { type: 'string' },
      'max-batch': { type: 'string' },
      'max-delay-ms': { type: 'string' },
      backend: { type: 'string' },
      'redis-url': { type: 'string' },
      xrays: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return null;
  const stamp = new Date().toISOString().replace(/\.\d+Z$/, '').replace(/:/g, '-');
  const maxDelay = values['max-delay-ms'];
  if (maxDelay !== undefined && !(Number.isInteger(Number(maxDelay)) && Number(maxDelay) >= 0)) throw new Error(`--max-delay-ms must be an integer >= 0, got ${JSON.stringify(maxDelay)}`);
  const engines = (values.engines ?? ENGINES.join(',')).split(',').map((e) => e.trim().toLowerCase()).filter((e) => e.length > 0);
  for (const engine of engines) {
    if (!(ENGINES as readonly string[]).includes(engine)) throw new Error(`--engines: unknown engine ${JSON.stringify(engine)}; expected ${ENGINES.join(', ')}`);
  }
  return {
    cases: parseCases(values.cases ?? 'cnn:128,resnet50:128'),
    engines: [...new Set(engines as Engine[])],
    concurrency: positiveInteger('concurrency', values.concurrency, 32),
    seconds: positiveNumber('seconds', values.seconds, 10),
    warmupSeconds: positiveNumber('warmup-seconds', values['warmup-seconds'], 3),
    rawSeconds: positiveNumber('raw-seconds', values['raw-seconds'], 5),
    maxBatch: values['max-batch'] === undefined ? undefined : positiveInteger('max-batch', values['max-batch'], 16),
    maxDelayMs: maxDelay === undefined ? undefined : Number(maxDelay),
    backend: values.backend ?? 'auto',
    redisUrl: values['redis-url'],
    xrays: path.resolve(values.xrays ?? path.join(repoRoot, '..', 'shared', 'datasets', 'xray-binary')),
    out: path.resolve(values.out ?? path.join(repoRoot, 'bench', 'results', `predict-engines-${stamp}.json`)),
  };
}

/**
 * The raw engine at `batch`: the model loaded as the service loads it (`EngineSelector` in the
 * engine's mode), real radiographs preprocessed as the service does.
 */
async function measureRaw(engine: Engine, dir: string, images: readonly Buffer[], batch: number, seconds: number, maxPixels: number): Promise<RawResult> {
  const model = await new EngineSelector({ mode: engine }).load(dir);
  try {
    if (model.engine !== engine) throw new Error(`the ${engine} engine loaded the model on ${String(model.engine)}: ${String(model.engineReason)}`);
    const perImage = model.info.imageOptions.height * model.info.imageOptions.width * model.info.imageOptions.channels;
    const input = new Float32Array(batch * perImage);
    const decodeStarted = performance.now();
    for (let i = 0; i < batch; i++) {
      const data = images[i % images.length] as Buffer;
      const decoded = await decodeUpload({ id: `raw-${i}`, index: i, data }, model.info.imageOptions, { maxPixels });
      input.set(decoded.input, i * perImage);
    }
    const decodeMsPerImage = (performance.now() - decodeStarted) / batch;
    const classes = model.info.classNames.length;
    const call = async (): Promise<void> => {
      const out = await model.predict(input, batch);
      if (out.length !== batch * classes) throw new Error(`${engine} answered ${out.length} values for ${batch} x ${classes}`);
    };
    await call();
    const callMs: number[] = [];
    const started = performance.now();
    while (callMs.length < 3 || performance.now() - started < seconds * 1000) {
      const t = performance.now();
      await call();
      callMs.push(performance.now() - t);
    }
    const elapsed = (performance.now() - started) / 1000;
    return { batch, calls: callMs.length, seconds: elapsed, imagesPerSecond: (callMs.length * batch) / elapsed, callMs, decodeMsPerImage };
  } finally {
    model.dispose();
  }
}

/** One single-image multipart request; resolves with its latency (ms) and the engine that answered. */
async function predictOnce(base: string, secret: string, modelId: string, image: Buffer): Promise<{ ms: number; engine: string }> {
  const form = new FormData();
  form.append('image', new Blob([image], { type: 'image/jpeg' }), 'scan.jpg');
  const started = performance.now();
  const response = await fetch(`${base}/v1/predict?model=${encodeURIComponent(modelId)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}` },
    body: form,
  });
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) throw new Error(`predict answered ${response.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { model?: { id?: string; engine?: string } };
  if (body.model?.id !== modelId) throw new Error(`predict answered with model ${body.model?.id}, not ${modelId}`);
  return { ms, engine: body.model.engine ?? 'unnamed' };
}

async function metricsText(base: string): Promise<string> {
  const response = await fetch(`${base}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text();
}

/**
 * `concurrency` clients sending back to back until `until` (performance.now() ms); calls `onAnswer`
 * with each answer's completion time. Resolves when every client has had its last answer.
 */
async function closedLoop(
  concurrency: number,
  until: number,
  send: (n: number) => Promise<{ ms: number; engine: string }>,
  onAnswer: (at: number, answer: { ms: number; engine: string }) => void,
): Promise<void> {
  let sent = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        const answer = await send(sent++);
        onAnswer(performance.now(), answer);
      }
    }),
  );
}

async function measureHttp(base: string, secret: string, runtime: ApiRuntime, modelId: string, images: readonly Buffer[], options: Options): Promise<HttpResult> {
  const imageAt = (i: number): Buffer => images[i % images.length] as Buffer;
  const send = (n: number) => predictOnce(base, secret, modelId, imageAt(n));
  if ('warmUp' in runtime.predictor) await runtime.predictor.warmUp(modelId);
  await closedLoop(options.concurrency, performance.now() + options.warmupSeconds * 1000, send, () => undefined);

  const before = await metricsText(base);
  const latencies: number[] = [];
  const answeredBy: Record<string, number> = {};
  const start = performance.now();
  const end = start + options.seconds * 1000;
  // Answers completed after `end` came from requests sent before it: the window counts only its own.
  let metricsAtEnd: Promise<string> | undefined;
  await closedLoop(options.concurrency, end, send, (at, answer) => {
    if (at > end) {
      metricsAtEnd ??= metricsText(base);
      return;
    }
    latencies.push(answer.ms);
    answeredBy[answer.engine] = (answeredBy[answer.engine] ?? 0) + 1;
  });
  const after = await (metricsAtEnd ?? metricsText(base));
  const forwardPasses = sampleValue(after, 'predict_batch_size_count') - sampleValue(before, 'predict_batch_size_count');
  const batchedImages = sampleValue(after, 'predict_batch_size_sum') - sampleValue(before, 'predict_batch_size_sum');
  return {
    concurrency: options.concurrency,
    seconds: (end - start) / 1000,
    answers: latencies.length,
    imagesPerSecond: latencies.length / ((end - start) / 1000),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    meanMs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
    forwardPasses,
    meanBatchSize: forwardPasses > 0 ? batchedImages / forwardPasses : NaN,
    engineBusySeconds: sampleValue(after, 'predict_batch_duration_seconds_sum') - sampleValue(before, 'predict_batch_duration_seconds_sum'),
    answeredBy,
  };
}

const fixed = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function markdownTable(results: readonly EngineResult[], options: Options, maxBatch: number): string {
  const c = options.concurrency;
  const lines = [
    `| model | engine | raw img/s at batch ${maxBatch} | /v1/predict img/s at ${c} concurrent | % of raw | target (>= ${TARGET_SHARE * 100}%) | p50 ms | p99 ms | mean batch | engine busy | decode ms/image | load avg |`,
    '| --- | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.architecture} ${r.size} px | ${r.engine} | ${fixed(r.raw.imagesPerSecond)} | ${fixed(r.http.imagesPerSecond)} | ${fixed(100 * r.shareOfRaw, 1)}% | ` +
        `${r.shareOfRaw >= TARGET_SHARE ? 'yes' : 'no'} | ${fixed(r.http.p50Ms, 0)} | ${fixed(r.http.p99Ms, 0)} | ${fixed(r.http.meanBatchSize, 2)} | ` +
        `${fixed((100 * r.http.engineBusySeconds) / r.http.seconds, 0)}% | ${fixed(r.raw.decodeMsPerImage, 1)} | ${fixed(r.loadAverage[0] ?? NaN, 2)} |`,
    );
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options === null) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const images = await readXrays(options.xrays, 64);
  const root = await mkdtemp(path.join(os.tmpdir(), 'predict-engines-'));
  const secret = randomBytes(18).toString('base64url');
  const settings: Record<string, string> = {
    DATA_DIR: path.join(root, 'data'),
    QUEUE_PREFIX: `bench-engines-${randomBytes(4).toString('hex')}`,
    API_KEYS: `bench:${secret}:predict`,
    LOG_LEVEL: 'silent',
    FRACTURE_BACKEND: options.backend,
    // The benchmark sends far more than a client's per-minute budget; the limiter itself still runs.
    RATE_LIMIT_PER_MINUTE: '1000000',
  };
  if (options.maxBatch !== undefined) settings.PREDICT_MAX_BATCH_SIZE = String(options.maxBatch);
  if (options.maxDelayMs !== undefined) settings.PREDICT_MAX_DELAY_MS = String(options.maxDelayMs);
  if (options.redisUrl !== undefined) settings.REDIS_URL = options.redisUrl;
  const configFor = (engine: Engine): Config => loadConfig({ ...settings, INFERENCE_ENGINE: engine });
  const baseConfig = configFor('tfjs');

  const machine = machineInfo();
  const redis = await findOrStartRedis({ configuredUrl: baseConfig.REDIS_URL, dataDir: path.join(root, 'redis') });
  const logger = createLogger({ level: 'silent' });
  const keys = parseApiKeys(baseConfig.API_KEYS ?? '');
  let context: ServiceContext | undefined;
  let runtime: ApiRuntime | undefined;
  try {
    context = createServiceContext(baseConfig, { logger, redisUrl: redis.url });
    const trained = await trainModels({ store: context.store, models: context.models, backend: baseConfig.FRACTURE_BACKEND }, options.cases);
    await context.close();
    context = undefined;

    const results: EngineResult[] = [];
    for (const benchCase of options.cases) {
      const model = trained.get(`${benchCase.architecture}:${benchCase.size}`);
      if (model === undefined) throw new Error(`no model for ${benchCase.architecture} at ${benchCase.size} px`);
      for (const engine of options.engines) {
        const config = configFor(engine);
        context = createServiceContext(config, { logger, redisUrl: redis.url });
        const dir = (await context.models.resolve(model.modelId)).dir;
        process.stdout.write(`${benchCase.architecture} ${benchCase.size} px, ${engine}: raw engine at batch ${config.PREDICT_MAX_BATCH_SIZE}...\n`);
        const raw = await measureRaw(engine, dir, images, config.PREDICT_MAX_BATCH_SIZE, options.rawSeconds, config.IMAGE_MAX_PIXELS);
        process.stdout.write(`  raw ${fixed(raw.imagesPerSecond)} images/s; /v1/predict at ${options.concurrency} concurrent...\n`);
        runtime = await createApiRuntime(context, { keys, mode: 'in-process' });
        await runtime.app.listen({ port: 0, host: '127.0.0.1' });
        const address = runtime.app.server.address();
        if (address === null || typeof address === 'string') throw new Error('the API did not listen on a TCP port');
        const http = await measureHttp(`http://127.0.0.1:${address.port}`, secret, runtime, model.modelId, images, options);
        const others = Object.keys(http.answeredBy).filter((name) => name !== engine);
        if (others.length > 0) throw new Error(`INFERENCE_ENGINE=${engine} but answers came from ${JSON.stringify(http.answeredBy)}`);
        const result: EngineResult = {
          architecture: benchCase.architecture,
          size: benchCase.size,
          engine,
          modelId: model.modelId,
          raw,
          http,
          shareOfRaw: http.imagesPerSecond / raw.imagesPerSecond,
          loadAverage: os.loadavg(),
        };
        results.push(result);
        process.stdout.write(`  /v1/predict ${fixed(http.imagesPerSecond)} images/s (${fixed(100 * result.shareOfRaw, 1)}% of raw), mean batch ${fixed(http.meanBatchSize, 2)}\n`);
        await runtime.close();
        runtime = undefined;
        await context.close();
        context = undefined;
      }
    }

    const loadAverageAtEnd = os.loadavg();
    const maxBatch = baseConfig.PREDICT_MAX_BATCH_SIZE;
    const table = markdownTable(results, options, maxBatch);
    const heading =
      `/v1/predict over HTTP per INFERENCE_ENGINE, in-process batcher (max batch ${maxBatch}, max delay ${baseConfig.PREDICT_MAX_DELAY_MS} ms), ` +
      `${options.concurrency} requests in flight for ${options.seconds} s after ${options.warmupSeconds} s warm-up, ${images.length} real radiographs (JPEG) cycled; ` +
      `raw engine: batch ${maxBatch} of preprocessed radiographs for ${options.rawSeconds} s; ${os.availableParallelism()} cores; ` +
      `load average at start ${(machine.loadAverageAtStart as number[]).map((v) => v.toFixed(2)).join(' ')}, at end ${loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')}`;
    process.stdout.write(`\n${heading}\n\n${table}\n\n`);
    mkdirSync(path.dirname(options.out), { recursive: true });
    writeFileSync(
      options.out,
      `${JSON.stringify(
        {
          createdAt: new Date().toISOString(),
          machine: { ...machine, loadAverageAtEnd },
          settings: {
            maxBatchSize: maxBatch,
            maxDelayMs: baseConfig.PREDICT_MAX_DELAY_MS,
            concurrency: options.concurrency,
            seconds: options.seconds,
            warmupSeconds: options.warmupSeconds,
            rawSeconds: options.rawSeconds,
            backend: options.backend,
            images: images.length,
          },
          results,
          heading,
          table,
        },
        null,
        2,
      )}\n`,
    );
    process.stdout.write(`JSON: ${path.relative(process.cwd(), options.out)}\n`);
  } finally {
    await runtime?.close();
    await context?.close();
    await deleteKeys(redis.url, baseConfig.QUEUE_PREFIX).catch(() => undefined);
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`predict-engines: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
