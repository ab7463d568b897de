/**
 * The API on real services for the HTTP integration tests: a temporary `DATA_DIR`, a BullMQ prefix
 * of its own on the real Redis (127.0.0.1:6379), the real service context and the in-process API
 * runtime, and — seeded once per test file, without workers — one really trained experiment: a tiny
 * synthetic dataset, `runExperiment` on `cnn` into the experiment's folder (its progress written by
 * the workers' own ProgressTracker), an `experiment.json` marked completed, its model registered and
 * promoted to `production`. `close()` closes everything and deletes the Redis keys and the folder.
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import yazl from 'yazl';
import { parseApiKeys } from '../../../src/infra/api-keys.ts';
import { loadConfig, type Config } from '../../../src/infra/config.ts';
import { createLogger } from '../../../src/infra/logger.ts';
import { runExperiment, type ExperimentReport } from '../../../src/ml/experiment/index.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';
import { createApiRuntime, createServiceContext, type ApiRuntime, type ServiceContext } from '../../../src/runtime/service-context.ts';
import { newExperimentId } from '../../../src/services/experiments/experiment-id.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { engineOptions, resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';
import type { ExperimentRecord, ExperimentWinner } from '../../../src/services/experiments/experiment.types.ts';
import { ProgressTracker } from '../../../src/workers/progress-tracker.ts';
import { assertMatchesSpec } from '../../helpers/openapi-validator.ts';
export { deleteKeys, REDIS_URL } from '../../helpers/redis.ts';
import { deleteKeys, REDIS_URL } from '../../helpers/redis.ts';
export { waitFor } from '../../helpers/wait.ts';


/** The tfjs backend of the API and the seeding run: wasm (fast, as in production) unless overridden. */
export const TEST_BACKEND = process.env.FRACTURE_TEST_BACKEND ?? 'wasm';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The project's root (where `node_modules/@tensorflow/tfjs` is), for child processes. */
export const REPO_ROOT = repoRoot;
/** Real radiographs shared by the project's tests (never copied into the repository). */
export const XRAY_DIR = path.resolve(repoRoot, '../shared/datasets/xray-binary');
/** `false` (run) when the real radiographs are there, else why the tests that need them skip. */
export const SKIP_WITHOUT_XRAYS: false | string = existsSync(XRAY_DIR) ? false : `real X-rays not found at ${XRAY_DIR}`;

/** The three keys of the fixture, one per scope. */
export type KeyName = 'train' | 'predict' | 'admin';

/** The experiment the fixture trained and registered. */
export interface SeededExperiment {
  id: string;
  datasetId: string;
  /** The registered `cnn` model, holder of the alias `production`. */
  modelId: string;
  report: ExperimentReport;
}

export interface ApiFixture {
  root: string;
  config: Config;
  context: ServiceContext;
  runtime: ApiRuntime;
  app: FastifyInstance;
  /** The plain secrets of the keys (`ml` train, `pacs` predict, `root` admin). */
  secrets: Readonly<Record<KeyName, string>>;
  /** The synthetic dataset (always created). */
  datasetId: string;
  /** The trained experiment; null when the fixture was started with `seedExperiment: false`. */
  experiment: SeededExperiment | null;
  /** `{ authorization: 'Bearer …' }` for a key. */
  auth(key: KeyName): { authorization: string };
  /** Listens on an ephemeral port of 127.0.0.1 (once) and returns the base URL. */
  listen(): Promise<string>;
  /** `DATA_DIR/audit/predictions.jsonl`, one parsed record per line (empty before the first). */
  auditRecords(): Promise<Record<string, unknown>[]>;
  close(): Promise<void>;
}

export interface ApiFixtureOptions {
  /** Extra environment variables for `loadConfig`. */
  settings?: Record<string, string>;
  /** Train and register an experiment (a few seconds). Default true. */
  seedExperiment?: boolean;
  /** The services' logger. Default: silent. */
  logger?: Logger;
}

const secret = (): string => randomBytes(18).toString('base64url');

/** Starts the API on a fresh data directory and queue prefix. */
export async function startApiFixture(options: ApiFixtureOptions = {}): Promise<ApiFixture> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'api-integration-'));
  const secrets = { train: secret(), predict: secret(), admin: secret() };
  const config = loadConfig({
    DATA_DIR: path.join(root, 'data'),
    QUEUE_PREFIX: `test-api-${randomBytes(4).toString('hex')}`,
    REDIS_URL,
    API_KEYS: `ml:${secrets.train}:train,pacs:${secrets.predict}:predict,root:${secrets.admin}:admin`,
    LOG_LEVEL: 'silent',
    FRACTURE_BACKEND: TEST_BACKEND,
    ...options.settings,
  });
  let context: ServiceContext | undefined;
  let runtime: ApiRuntime | undefined;
  let baseUrl: string | undefined;
  const close = async (): Promise<void> => {
    await runtime?.close();
    await context?.close();
    await deleteKeys(config.QUEUE_PREFIX);
    await rm(root, { recursive: true, force: true });
  };
  try {
    context = createServiceContext(config, { logger: options.logger ?? createLogger({ level: 'silent' }), redisUrl: REDIS_URL });
    runtime = await createApiRuntime(context, { keys: parseApiKeys(config.API_KEYS ?? ''), mode: 'in-process' });
    const datasetId = 'synth-xrays';
    await generateSyntheticDataset({ outDir: context.store.datasetDir(datasetId), perClass: 6, size: 48, seed: 11, regions: ['hand', 'elbow'] });
    const experiment = options.seedExperiment === false ? null : await seedExperiment(context, datasetId);
    const app = runtime.app;
    return {
      root,
      config,
      context,
      runtime,
      app,
      secrets,
      datasetId,
      experiment,
      auth: (key) => ({ authorization: `Bearer ${secrets[key]}` }),
      listen: async () => {
        if (baseUrl === undefined) {
          await app.listen({ port: 0, host: '127.0.0.1' });
          const address = app.server.address();
          if (address === null || typeof address === 'string') throw new Error('the app did not listen on a TCP port');
          baseUrl = `http://127.0.0.1:${address.port}`;
        }
        return baseUrl;
      },
      auditRecords: async () => {
        const text = await readFile(path.join(config.DATA_DIR, 'audit', 'predictions.jsonl'), 'utf8').catch(() => '');
        return text
          .split('\n')
          .filter((line) => line.length > 0)
          .map((line) => JSON.parse(line) as Record<string, unknown>);
      },
      close,
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

/**
 * Trains `cnn` for one epoch on 32 px inputs into `experiments/{id}/` as the workers would, then
 * does what the `compare` job does: registers the model, promotes it, and marks the record completed.
 */
async function seedExperiment(context: ServiceContext, datasetId: string): Promise<SeededExperiment> {
  const { store, models, config } = context;
  const records = new ExperimentRecords(store);
  const { settings, problems } = resolveExperimentSettings({ datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1, batchSize: 8, seed: 3 });
  if (problems.length > 0) throw new Error(`fixture settings are invalid: ${problems.join('; ')}`);
  const id = newExperimentId();
  const record: ExperimentRecord = {
    schemaVersion: 1,
    id,
    datasetId,
    settings,
    status: 'running',
    createdAt: new Date().toISOString(),
    startedAt: new Date().toISOString(),
    compareRuns: 0,
  };
  if (!(await records.create(record))) throw new Error(`experiment ${id} exists`);
  const tracker = new ProgressTracker({
    architecture: 'cnn',
    epochs: settings.epochs,
    previous: null,
    write: (progress) => records.writeProgress(id, progress),
  });
  await tracker.begin();
  const experimentDir = store.experimentDir(id);
  const report = await runExperiment({
    dataDir: store.datasetDir(datasetId),
    outDir: experimentDir,
    architectures: settings.architectures,
    ...engineOptions(settings),
    backend: config.FRACTURE_BACKEND,
    onEvent: tracker.onEvent,
  });
  const [result] = report.results;
  if (result === undefined || report.winner === null) throw new Error('the seeding experiment produced no result');
  await tracker.finish('completed', { result });
  const modelIds = await models.registerFromExperiment(id, report, experimentDir, { datasetId });
  const modelId = modelIds[0];
  if (modelId === undefined) throw new Error('no model was registered');
  const promoted = await models.promoteIfUnset('production', modelId);
  const winner: ExperimentWinner = {
    architecture: result.architecture,
    modelId,
    metric: report.ranking.metric,
    score: report.winner.score,
    reason: report.winner.reason,
    promoted,
  };
  await records.update(id, (current) => ({ ...current, status: 'completed', finishedAt: new Date().toISOString(), winner, modelIds, compareRuns: 1 }));
  return { id, datasetId, modelId, report };
}


/** The bytes of `count` real radiographs (JPEG), alternating fractured and not fractured, from `start`. */
export async function readXrays(count: number, start = 0): Promise<Buffer[]> {
  const files: string[] = [];
  for (let i = start; files.length < count; i++) {
    const n = String(i).padStart(4, '0');
    files.push(path.join(XRAY_DIR, 'fractured', `fractured-${n}.jpg`));
    if (files.length < count) files.push(path.join(XRAY_DIR, 'not_fractured', `not_fractured-${n}.jpg`));
  }
  return Promise.all(files.map((file) => readFile(file)));
}

/** A multipart body built by the platform's own FormData encoder: bytes and the Content-Type with its boundary. */
export async function multipartBody(
  parts: readonly { name: string; value: string | Uint8Array; filename?: string; type?: string }[],
): Promise<{ body: Buffer; contentType: string }> {
  const form = new FormData();
  for (const part of parts) {
    if (typeof part.value === 'string') form.append(part.name, part.value);
    else form.append(part.name, new Blob([part.value], { type: part.type ?? 'application/octet-stream' }), part.filename ?? 'upload.bin');
  }
  const encoded = new Response(form);
  const contentType = encoded.headers.get('content-type');
  if (contentType === null) throw new Error('FormData produced no content type');
  return { body: Buffer.from(await encoded.arrayBuffer()), contentType };
}

/** Builds a zip in memory with yazl. */
export async function zipBuffer(build: (zip: yazl.ZipFile) => void): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  build(zip);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/**
 * Renames entry `from` to `to` (same byte length) in the local header and the central directory:
 * yazl refuses to write `..` names, and a hostile client does not use yazl.
 */
export function renameZipEntry(zip: Buffer, from: string, to: string): Buffer {
  const a = Buffer.from(from, 'utf8');
  const b = Buffer.from(to, 'utf8');
  if (a.length !== b.length) throw new Error('renameZipEntry needs names of equal byte length');
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('no end of central directory record');
  let offset = zip.readUInt32LE(eocd + 16);
  let patched = 0;
  for (let i = 0; i < zip.readUInt16LE(eocd + 10); i++) {
    const nameLength = zip.readUInt16LE(offset + 28);
    if (nameLength === a.length && zip.subarray(offset + 46, offset + 46 + nameLength).equals(a)) {
      b.copy(zip, offset + 46);
      b.copy(zip, zip.readUInt32LE(offset + 42) + 30);
      patched++;
    }
    offset += 46 + nameLength + zip.readUInt16LE(offset + 30) + zip.readUInt16LE(offset + 32);
  }
  if (patched === 0) throw new Error(`no entry named ${from}`);
  return zip;
}

/** Every path below `dir`, relative and sorted (empty when it does not exist). */
export async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  return entries.map(String).sort();
}

/** Lower-case hex sha256 of bytes. */
export function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

/**
 * The value of an unlabelled sample (e.g. `predict_batch_size_count`) in a Prometheus exposition;
 * 0 when the metric has no sample yet.
 */
export function sampleValue(exposition: string, name: string): number {
  const line = exposition.split('\n').find((candidate) => candidate.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.slice(name.length + 1).trim());
}

/** What {@link assertResponseMatchesSpec} reads of a response (light-my-request's shape). */
export interface SpecCheckedResponse {
  statusCode: number;
  headers: Record<string, unknown>;
  body: string;
}

/**
 * Asserts that a response is one openapi.yaml declares for the operation: its status, its
 * Content-Type (a media type the spec lists for that status, e.g. `application/problem+json` for an
 * error) and its body against that media type's schema (parsed for JSON types, the text otherwise).
 */
export function assertResponseMatchesSpec(operationId: string, response: SpecCheckedResponse): void {
  const mediaType = String(response.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  const json = mediaType === 'application/json' || mediaType.endsWith('+json');
  assertMatchesSpec(operationId, response.statusCode, json ? (JSON.parse(response.body) as unknown) : response.body, mediaType);
}

