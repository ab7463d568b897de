/**
 * A full disk under `DATA_DIR` (issue 5, "Faults"): the data directory is a 48 MiB tmpfs of this
 * file's own, with a trained `production` model, an in-process training worker and the real API.
 *
 * 1. Below `DATA_DIR_MIN_FREE_BYTES`: dataset uploads and experiments get 507 `INSUFFICIENT_STORAGE`
 *    at once and leave nothing behind (no folder, no job); predictions go on, audited.
 * 2. Full to the last byte: predictions still answer and are still audited (the audit log's reserve);
 *    alias changes and experiments get 507 and change nothing.
 * 3. Training that finds the disk full mid-run is held back (delayed, no attempt used), the previous
 *    model serves meanwhile, and once space is freed the training resumes from its last checkpoint
 *    and completes, without a restart; uploads and experiments are accepted again.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { createLogger } from '../../../src/infra/logger.ts';
import { trainJobId } from '../../../src/infra/queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { mountTmpfs, tmpfsUnavailable, type Tmpfs } from '../../helpers/tmpfs.ts';
import { multipartBody, REDIS_URL, sampleValue, startApiFixture, waitFor, zipBuffer, type ApiFixture } from './api-fixture.ts';

const MiB = 1024 * 1024;
const WATERMARK_BYTES = 8 * MiB;
/** The held-back training tries again this often. */
const STORAGE_RETRY_MS = 300;
/** What a refusal for lack of space may take, generously for a loaded machine. */
const REFUSAL_LIMIT_MS = 1_000;
/** Predictions made on the full disk. */
const AUDITED_WHEN_FULL = 40;

interface View {
  status: string;
  architectures: { architecture: string; status: string; epoch: number; epochs: number; error?: { code: string } }[];
}

describe('a full disk under DATA_DIR', { skip: tmpfsUnavailable }, () => {
  let disk: Tmpfs;
  let fx: ApiFixture;
  let workers: RunningWorkers | undefined;
  let predictRequest: { payload: Buffer; headers: Record<string, string> };
  let datasetZip: Buffer;

  before(async () => {
    disk = mountTmpfs(48 * MiB);
    fx = await startApiFixture({
      settings: {
        DATA_DIR: disk.dir,
        DATA_DIR_MIN_FREE_BYTES: String(WATERMARK_BYTES),
        STORAGE_RETRY_INTERVAL_MS: String(STORAGE_RETRY_MS),
        RATE_LIMIT_PER_MINUTE: '100000',
      },
    });
    workers = startWorkers({ config: fx.config, queues: ['training'], concurrency: 1, redisUrl: REDIS_URL, logger: createLogger({ level: 'silent' }) });
    await workers.ready();
    const classDir = path.join(fx.context.store.datasetDir(fx.datasetId), 'hand_fractured');
    const images = (await readdir(classDir)).filter((name) => name.endsWith('.png')).sort();
    const image = await readFile(path.join(classDir, images[0] as string));
    const { body, contentType } = await multipartBody([{ name: 'image', value: image, filename: 'x.png', type: 'image/png' }]);
    predictRequest = { payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } };
    // A valid two-class dataset of the fixture's own images.
    const elbow = path.join(fx.context.store.datasetDir(fx.datasetId), 'elbow_normal');
    const elbowImages = (await readdir(elbow)).filter((name) => name.endsWith('.png')).sort();
    const files = [
      ...images.slice(0, 3).map((name) => ({ from: path.join(classDir, name), to: `fractured/${name}` })),
      ...elbowImages.slice(0, 3).map((name) => ({ from: path.join(elbow, name), to: `normal/${name}` })),
    ];
    const contents = await Promise.all(files.map(async (file) => ({ ...file, data: await readFile(file.from) })));
    datasetZip = await zipBuffer((zip) => {
      for (const file of contents) zip.addBuffer(file.data, file.to);
    });
  });

  // Each test fills the disk; the next one starts with the space back.
  afterEach(async () => {
    await disk.drain();
  });

  after(async () => {
    await workers?.close({ handBackAfterMs: 0 });
    await fx?.close();
    await disk?.unmount();
  });

  const predict = () => fx.app.inject({ method: 'POST', url: '/v1/predict', ...predictRequest });
  const createExperiment = (overrides: Record<string, unknown> = {}) =>
    fx.app.inject({
      method: 'POST',
      url: '/v1/experiments',
      headers: { ...fx.auth('train'), 'content-type': 'application/json' },
      payload: { datasetId: fx.datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1, batchSize: 8, seed: 5, augment: false, ...overrides },
    });
  const uploadDataset = (id: string) =>
    fx.app.inject({ method: 'POST', url: `/v1/datasets?id=${id}`, headers: { ...fx.auth('train'), 'content-type': 'application/zip' }, payload: datasetZip });
  const experimentView = async (id: string): Promise<View> => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/experiments/${id}`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 200, response.body);
    return JSON.parse(response.body) as View;
  };
  const productionModel = async (): Promise<string | undefined> => (await fx.context.models.aliases()).production;

  /** Asserts a 507 INSUFFICIENT_STORAGE problem that came within the limit. */
  const assertOutOfSpace = async (send: () => Promise<{ statusCode: number; body: string; headers: Record<string, unknown> }>): Promise<number> => {
    const started = performance.now();
    const response = await send();
    const ms = performance.now() - started;
    assert.equal(response.statusCode, 507, response.body);
    assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
    assert.equal((JSON.parse(response.body) as { code: string }).code, 'INSUFFICIENT_STORAGE');
    assert.ok(ms < REFUSAL_LIMIT_MS, `507 after ${ms.toFixed(0)} ms`);
    return ms;
  };

  /** Asserts a prediction by the production model, and that it left exactly one audit record. */
  const assertPredictsAudited = async (): Promise<void> => {
    const auditBefore = (await fx.auditRecords()).length;
    const response = await predict();
    assert.equal(response.statusCode, 200, response.body);
    assert.equal((JSON.parse(response.body) as { model: { id: string } }).model.id, await productionModel());
    // The record is appended once the answer is sent.
    const records = await waitFor('the audit record', async () => {
      const all = await fx.auditRecords();
      return all.length > auditBefore ? all : undefined;
    }, 5_000, 10);
    assert.equal(records.length, auditBefore + 1, 'one audit record per prediction');
    assert.equal(records.at(-1)?.status, 200);
  };

  it('below the watermark: refuses uploads and experiments at once with 507, leaves nothing behind, and keeps predicting', async (t) => {
    const free = await disk.fill(4 * MiB);
    assert.ok(free < WATERMARK_BYTES && free > 0, `${free} bytes free`);
    const datasetsBefore = (await readdir(fx.context.store.datasetsDir)).sort();
    const experimentsBefore = (await readdir(fx.context.store.experimentsDir)).sort();
    const jobsBefore = await fx.context.queues.trainingQueue.getJobCounts();

    const uploadMs = await assertOutOfSpace(() => uploadDataset('refused-below-watermark'));
    const experimentMs = await assertOutOfSpace(() => createExperiment());
    assert.deepEqual((await readdir(fx.context.store.datasetsDir)).sort(), datasetsBefore);
    assert.deepEqual((await readdir(fx.context.store.experimentsDir)).sort(), experimentsBefore);
    assert.deepEqual(await readdir(fx.context.store.uploadsDir).catch(() => []), []);
    assert.deepEqual(await fx.context.queues.trainingQueue.getJobCounts(), jobsBefore, 'no job was queued');

    await assertPredictsAudited();
    const ready = await fx.app.inject({ method: 'GET', url: '/readyz' });
    assert.equal(ready.statusCode, 200, ready.body);
    const metrics = await fx.app.inject({ method: 'GET', url: '/metrics' });
    assert.ok(sampleValue(metrics.body, 'data_dir_free_bytes') < WATERMARK_BYTES, 'the free space is exported');
    t.diagnostic(`${(free / MiB).toFixed(1)} MiB free: dataset upload 507 in ${uploadMs.toFixed(0)} ms, experiment 507 in ${experimentMs.toFixed(0)} ms, prediction 200 and audited`);
  });

  it('full to the last byte: keeps predicting and auditing, and refuses alias changes and experiments without changing anything', async (t) => {
    const free = await disk.fill(0);
    assert.equal(free, 0, 'the disk is full');
    const aliasesBefore = await readFile(fx.context.store.aliasesFile, 'utf8');
    const reserve = `${path.join(fx.context.store.auditDir, 'predictions.jsonl')}.reserve`;
    const reserveBefore = (await stat(reserve)).size;
    assert.ok(reserveBefore > 0, 'the audit log keeps a reserve');

    // First the writes that must fail (the reserve, once predictions use it, frees a little space).
    const modelId = fx.experiment?.modelId as string;
    await assertOutOfSpace(() => fx.app.inject({ method: 'PUT', url: `/v1/models/${modelId}/aliases/staging`, headers: fx.auth('admin') }));
    assert.equal(await readFile(fx.context.store.aliasesFile, 'utf8'), aliasesBefore, 'the aliases are unchanged');
    await assertOutOfSpace(() => createExperiment());
    await assertOutOfSpace(() => uploadDataset('refused-when-full'));

    // Enough records to need new pages of the file system (about 16 records fit in a 4 KiB page).
    for (let i = 0; i < AUDITED_WHEN_FULL; i++) await assertPredictsAudited();
    const reserveAfter = await stat(reserve).then((info) => info.size, () => 0);
    assert.ok(reserveAfter < reserveBefore, 'the reserve made room for the records');
    const models = await fx.app.inject({ method: 'GET', url: '/v1/models', headers: fx.auth('admin') });
    assert.equal(models.statusCode, 200, models.body);
    t.diagnostic(`0 bytes free: alias change, experiment and upload 507, aliases unchanged; ${AUDITED_WHEN_FULL} predictions 200 and audited, the reserve ${reserveBefore} → ${reserveAfter} bytes`);
  });

  it('holds training back when the disk fills mid-run, serves the previous model meanwhile, and resumes from the checkpoint once space is freed', async (t) => {
    const production = await productionModel();
    const created = await createExperiment({ epochs: 12, earlyStoppingPatience: 0 });
    assert.equal(created.statusCode, 202, created.body);
    const id = (JSON.parse(created.body) as { id: string }).id;
    await waitFor('the first epoch', async () => {
      const view = await experimentView(id);
      if (view.status === 'completed' || view.status === 'failed') throw new Error(`the experiment ended (${view.status}) before the disk filled`);
      return (view.architectures[0]?.epoch ?? 0) >= 1 ? view : undefined;
    }, 30_000, 20);

    await disk.fill(0);
    const filledAt = performance.now();
    const job = await fx.context.queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    assert.ok(job, 'the train job exists');
    await waitFor('the train job to be held back (delayed)', async () => ((await job.getState()) === 'delayed' ? true : undefined), 20_000, 50);
    const heldMs = performance.now() - filledAt;
    // Still held a few retry intervals later: it waits for space, it does not fail.
    await new Promise((resolve) => setTimeout(resolve, 4 * STORAGE_RETRY_MS));
    assert.ok(['delayed', 'waiting', 'active'].includes(await job.getState()), `state ${await job.getState()}`);
    assert.notEqual((await experimentView(id)).status, 'failed');
    await assertPredictsAudited();

    await disk.drain();
    const drainedAt = performance.now();
    const done = await waitFor('the experiment to complete', async () => {
      const view = await experimentView(id);
      if (view.status === 'failed') throw new Error(`the experiment failed: ${JSON.stringify(view)}`);
      return view.status === 'completed' ? view : undefined;
    }, 60_000, 100);
    const resumedMs = performance.now() - drainedAt;
    assert.equal(done.architectures[0]?.epoch, 12);
    const finished = await fx.context.queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    // BullMQ counts the attempt that completed; the waits for space counted none, and none failed.
    assert.equal(finished?.attemptsMade, 1, `waiting for space used no attempt (${finished?.failedReason}; ${finished?.stacktrace?.join(' | ')})`);
    // Resumed, not restarted: the second run started after the epochs the first one checkpointed.
    const runs = (await new ExperimentRecords(fx.context.store).readProgress(id, 'cnn'))?.runs ?? [];
    assert.ok(runs.length >= 2 && (runs.at(-1)?.fromEpoch ?? 0) > 1, `runs ${JSON.stringify(runs)}`);
    assert.equal(await productionModel(), production, 'the previous model still holds production');

    const upload = await uploadDataset('accepted-after-drain');
    assert.equal(upload.statusCode, 201, upload.body);
    const again = await createExperiment();
    assert.equal(again.statusCode, 202, again.body);
    t.diagnostic(`held back ${heldMs.toFixed(0)} ms after the disk filled; completed ${resumedMs.toFixed(0)} ms after space was freed (runs from epochs ${runs.map((run) => run.fromEpoch).join(', ')})`);
  });
});
