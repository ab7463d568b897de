/**
 * `/v1/predict` latency over real HTTP on the in-process runtime (the API and its dynamic batcher in
 * one process, as `fracture-service start` runs them), with real radiographs. Never part of the tests.
 *
 * For each case (an architecture at an input size) a model is trained for one epoch on a tiny
 * synthetic set and registered — its weights do not matter for latency — then, after a warm-up:
 *
 * - **batch 1**: `--requests` (100) sequential single-image requests: p50, p99 and mean latency, ms;
 * - **concurrent**: `--rounds` (10) rounds of `--concurrency` (32) single-image requests sent at once:
 *   per-request p50/p99/mean latency, throughput (images / summed round wall time), and the forward
 *   passes and mean forward-pass batch size the batcher ran, read from `/metrics`
 *   (`predict_batch_size_sum / predict_batch_size_count` over the rounds).
 *
 * Latency is client-side: from `fetch` to the whole JSON body read (multipart encoding, upload,
 * decode with sharp, preprocessing, batching wait, forward pass, serialisation). The batcher runs
 * with the service's defaults (`PREDICT_MAX_BATCH_SIZE` 16, `PREDICT_MAX_DELAY_MS` 10) unless
 * `--max-batch` / `--max-delay-ms` say otherwise; the backend is `auto` (wasm on these machines).
 * Run it on a quiet machine: the load average is recorded at the start and the end.
 *
 * It needs Redis (as `start` does: `--redis-url`, else 127.0.0.1:6379, else a `redis-server` from
 * PATH started for the run) and the radiographs of ../shared/datasets/xray-binary (`--xrays DIR`). Its
 * keys use a prefix of their own and are deleted at the end, with the temporary data directory.
 *
 * Output: a Markdown table on stdout and JSON (every latency sample) in
 * `bench/results/predict-latency-<date>.json` (git-ignored; `--out FILE` to choose).
 * @example
 * node --no-liftoff --import tsx bench/predict-latency.ts
 * node --no-liftoff --import tsx bench/predict-latency.ts --cases cnn:128,resnet50:224 --rounds 5
 * node --no-liftoff --import tsx bench/predict-latency.ts --max-delay-ms 0 --max-batch 1   # no batching
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
import type { ExperimentReport } from '../src/ml/experiment/index.ts';
import type { Architecture } from '../src/ml/models/index.ts';
import { createApiRuntime, createServiceContext, type ApiRuntime, type ServiceContext } from '../src/runtime/service-context.ts';
import { deleteKeys, parseCases, percentile, positiveInteger, readXrays, sampleValue, trainModels, type BenchCase } from './http-bench.ts';
import { machineInfo } from './report.ts';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

const USAGE = `Usage: node --no-liftoff --import tsx bench/predict-latency.ts [options]

  --cases LIST        architecture:size pairs (default cnn:128,resnet50:128)
  --requests N        sequential single-image requests per case (default 100)
  --concurrency N     requests sent at once per round (default 32)
  --rounds N          concurrent rounds per case (default 10)
  --warmup N          untimed sequential requests per case before measuring (default 10)
  --max-batch N       PREDICT_MAX_BATCH_SIZE (default: the service's, 16)
  --max-delay-ms N    PREDICT_MAX_DELAY_MS (default: the service's, 10)
  --backend NAME      auto, wasm, cpu or tensorflow (default auto, as start)
  --redis-url URL     Redis to use (default: 127.0.0.1:6379, else start redis-server)
  --xrays DIR         folder of class folders of JPEG radiographs (default ../shared/datasets/xray-binary)
  --out FILE          JSON output (default bench/results/predict-latency-<date>.json)
  --help`;

interface Options {
  cases: BenchCase[];
  requests: number;
  concurrency: number;
  rounds: number;
  warmup: number;
  maxBatch: number | undefined;
  maxDelayMs: number | undefined;
  backend: string;
  redisUrl: string | undefined;
  xrays: string;
  out: string;
}

/** Latency summary of a set of requests, milliseconds. */
interface LatencyStats {
  count: number;
  p50: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

interface CaseResult {
  architecture: Architecture;
  size: number;
  modelId: string;
  params: number;
  /** The engine's own median single-image forward pass (no HTTP, no decoding), from the training run, ms. */
  engineMsPerImage: number;
  batch1: LatencyStats & { samplesMs: number[] };
  concurrent: LatencyStats & {
    concurrency: number;
    rounds: number;
    /** Wall time of each round, ms. */
    roundMs: number[];
    imagesPerSecond: number;
    forwardPasses: number;
    meanBatchSize: number;
    samplesMs: number[];
  };
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      cases: { type: 'string' },
      requests: { type: 'string' },
      concurrency: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
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
  return {
    cases: parseCases(values.cases ?? 'cnn:128,resnet50:128'),
    requests: positiveInteger('requests', values.requests, 100),
    concurrency: positiveInteger('concurrency', values.concurrency, 32),
    rounds: positiveInteger('rounds', values.rounds, 10),
    warmup: positiveInteger('warmup', values.warmup, 10),
    maxBatch: values['max-batch'] === undefined ? undefined : positiveInteger('max-batch', values['max-batch'], 16),
    maxDelayMs: maxDelay === undefined ? undefined : Number(maxDelay),
    backend: values.backend ?? 'auto',
    redisUrl: values['redis-url'],
    xrays: path.resolve(values.xrays ?? path.join(repoRoot, '..', 'shared', 'datasets', 'xray-binary')),
    out: path.resolve(values.out ?? path.join(repoRoot, 'bench', 'results', `predict-latency-${stamp}.json`)),
  };
}

function stats(samples: readonly number[]): LatencyStats {
  return {
    count: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    mean: samples.reduce((a, b) => a + b, 0) / samples.length,
    min: Math.min(...samples),
    max: Math.max(...samples),
  };
}

/** One single-image multipart request; resolves with its latency in ms once the body is read. */
async function predictOnce(base: string, secret: string, modelId: string, image: Buffer): Promise<number> {
  const form = new FormData();
  form.append('image', new Blob([image], { type: 'image/jpeg' }), 'scan.jpg');
  const started = performance.now();
  const response = await fetch(`${base}/v1/predict?model=${encodeURIComponent(modelId)}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${secret}` },
    body: form,
  });
  const text = await response.text();
  const elapsed = performance.now() - started;
  if (response.status !== 200) throw new Error(`predict answered ${response.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { model?: { id?: string } };
  if (body.model?.id !== modelId) throw new Error(`predict answered with model ${body.model?.id}, not ${modelId}`);
  return elapsed;
}

async function metricsText(base: string): Promise<string> {
  const response = await fetch(`${base}/metrics`);
  if (response.status !== 200) throw new Error(`/metrics answered ${response.status}`);
  return response.text();
}

async function measureCase(base: string, secret: string, runtime: ApiRuntime, benchCase: BenchCase, modelId: string, report: ExperimentReport, images: readonly Buffer[], options: Options): Promise<CaseResult> {
  const result = report.results.find((r) => r.architecture === benchCase.architecture);
  if (result === undefined) throw new Error(`no result for ${benchCase.architecture}`);
  const imageAt = (i: number): Buffer => images[i % images.length] as Buffer;
  // Load the model and let the kernels settle before anything is timed.
  if ('warmUp' in runtime.predictor) await runtime.predictor.warmUp(modelId);
  for (let i = 0; i < options.warmup; i++) await predictOnce(base, secret, modelId, imageAt(i));
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => predictOnce(base, secret, modelId, imageAt(i))));

  const sequential: number[] = [];
  for (let i = 0; i < options.requests; i++) sequential.push(await predictOnce(base, secret, modelId, imageAt(i)));

  const before = await metricsText(base);
  const concurrent: number[] = [];
  const roundMs: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const started = performance.now();
    const latencies = await Promise.all(
      Array.from({ length: options.concurrency }, (_, i) => predictOnce(base, secret, modelId, imageAt(round * options.concurrency + i))),
    );
    roundMs.push(performance.now() - started);
    concurrent.push(...latencies);
  }
  const after = await metricsText(base);
  const forwardPasses = sampleValue(after, 'predict_batch_size_count') - sampleValue(before, 'predict_batch_size_count');
  const batchedImages = sampleValue(after, 'predict_batch_size_sum') - sampleValue(before, 'predict_batch_size_sum');
  return {
    architecture: benchCase.architecture,
    size: benchCase.size,
    modelId,
    params: result.params,
    engineMsPerImage: result.timings.inferenceMsPerImage,
    batch1: { ...stats(sequential), samplesMs: sequential },
    concurrent: {
      ...stats(concurrent),
      concurrency: options.concurrency,
      rounds: options.rounds,
      roundMs,
      imagesPerSecond: concurrent.length / (roundMs.reduce((a, b) => a + b, 0) / 1000),
      forwardPasses,
      meanBatchSize: forwardPasses > 0 ? batchedImages / forwardPasses : NaN,
      samplesMs: concurrent,
    },
  };
}

const fixed = (value: number, digits = 1): string => (Number.isFinite(value) ? value.toFixed(digits) : '-');

function markdownTable(results: readonly CaseResult[], options: Options): string {
  const c = options.concurrency;
  const lines = [
    `| model | batch 1 p50 ms | batch 1 p99 ms | batch 1 mean ms | ${c} concurrent p50 ms | ${c} concurrent p99 ms | ${c} concurrent mean ms | images/s at ${c} | forward passes | mean batch | engine ms/image |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of results) {
    lines.push(
      `| ${r.architecture} ${r.size} px | ${fixed(r.batch1.p50)} | ${fixed(r.batch1.p99)} | ${fixed(r.batch1.mean)} | ${fixed(r.concurrent.p50)} | ${fixed(r.concurrent.p99)} | ` +
        `${fixed(r.concurrent.mean)} | ${fixed(r.concurrent.imagesPerSecond)} | ${r.concurrent.forwardPasses} for ${r.concurrent.count} | ${fixed(r.concurrent.meanBatchSize, 2)} | ${fixed(r.engineMsPerImage)} |`,
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
  const root = await mkdtemp(path.join(os.tmpdir(), 'predict-latency-'));
  const secret = randomBytes(18).toString('base64url');
  const settings: Record<string, string> = {
    DATA_DIR: path.join(root, 'data'),
    QUEUE_PREFIX: `bench-predict-${randomBytes(4).toString('hex')}`,
    API_KEYS: `bench:${secret}:predict`,
    LOG_LEVEL: 'silent',
    FRACTURE_BACKEND: options.backend,
    // The benchmark sends far more than a client's per-minute budget; the limiter itself still runs.
    RATE_LIMIT_PER_MINUTE: '1000000',
  };
  if (options.maxBatch !== undefined) settings.PREDICT_MAX_BATCH_SIZE = String(options.maxBatch);
  if (options.maxDelayMs !== undefined) settings.PREDICT_MAX_DELAY_MS = String(options.maxDelayMs);
  if (options.redisUrl !== undefined) settings.REDIS_URL = options.redisUrl;
  const config: Config = loadConfig(settings);

  const machine = machineInfo();
  const redis = await findOrStartRedis({ configuredUrl: config.REDIS_URL, dataDir: path.join(root, 'redis') });
  let context: ServiceContext | undefined;
  let runtime: ApiRuntime | undefined;
  try {
    context = createServiceContext(config, { logger: createLogger({ level: 'silent' }), redisUrl: redis.url });
    runtime = await createApiRuntime(context, { keys: parseApiKeys(config.API_KEYS ?? ''), mode: 'in-process' });
    const trained = await trainModels({ store: context.store, models: context.models, backend: config.FRACTURE_BACKEND }, options.cases);
    await runtime.app.listen({ port: 0, host: '127.0.0.1' });
    const address = runtime.app.server.address();
    if (address === null || typeof address === 'string') throw new Error('the API did not listen on a TCP port');
    const base = `http://127.0.0.1:${address.port}`;

    const results: CaseResult[] = [];
    for (const benchCase of options.cases) {
      const model = trained.get(`${benchCase.architecture}:${benchCase.size}`);
      if (model === undefined) throw new Error(`no model for ${benchCase.architecture} at ${benchCase.size} px`);
      process.stdout.write(`measuring ${benchCase.architecture} at ${benchCase.size} px...\n`);
      results.push(await measureCase(base, secret, runtime, benchCase, model.modelId, model.report, images, options));
    }

    const loadAverageAtEnd = os.loadavg();
    const table = markdownTable(results, options);
    const backend = runtime.backend?.name ?? 'unknown';
    const heading =
      `/v1/predict over HTTP, in-process batcher (max batch ${config.PREDICT_MAX_BATCH_SIZE}, max delay ${config.PREDICT_MAX_DELAY_MS} ms), ` +
      `backend ${backend}, ${images.length} real radiographs (JPEG) cycled; load average at start ${(machine.loadAverageAtStart as number[]).map((v) => v.toFixed(2)).join(' ')}, ` +
      `at end ${loadAverageAtEnd.map((v) => v.toFixed(2)).join(' ')}`;
    process.stdout.write(`\n${heading}\n\n${table}\n\n`);
    mkdirSync(path.dirname(options.out), { recursive: true });
    writeFileSync(
      options.out,
      `${JSON.stringify(
        {
          createdAt: new Date().toISOString(),
          machine: { ...machine, loadAverageAtEnd },
          backend: runtime.backend,
          settings: {
            maxBatchSize: config.PREDICT_MAX_BATCH_SIZE,
            maxDelayMs: config.PREDICT_MAX_DELAY_MS,
            requests: options.requests,
            concurrency: options.concurrency,
            rounds: options.rounds,
            warmup: options.warmup,
            images: images.length,
          },
          results,
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
    await deleteKeys(redis.url, config.QUEUE_PREFIX).catch(() => undefined);
    await redis.stop();
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`predict-latency: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
