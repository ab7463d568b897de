/**
 * A worker process is SIGKILLed mid-training: BullMQ's stalled-job check hands the job to another
 * worker process, which resumes from the last epoch checkpoint, and the experiment completes once.
 */
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { compareJobId, trainJobId } from '../../../src/infra/queues.ts';
import { closeConnection, createProducerConnection } from '../../../src/infra/redis.ts';
import type { ExperimentReport } from '../../../src/ml/experiment/index.ts';
import { createExperimentQueues, type ExperimentQueues } from '../../../src/services/experiments/experiment-queues.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { ExperimentService } from '../../../src/services/experiments/experiment.service.ts';
import type { ArchitectureProgressRecord } from '../../../src/services/experiments/experiment.types.ts';
import { createDataset, createTestEnv, REDIS_URL, waitFor, type TestEnv } from './fixtures.ts';
import { isAlive } from '../../helpers/wait.ts';

const WORKER_SCRIPT = fileURLToPath(new URL('./worker-process.ts', import.meta.url));
const EPOCHS = 6;

/** Starts a worker process and resolves once it says it is ready. */
async function startWorkerProcess(env: Record<string, string>): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--no-liftoff', '--import', 'tsx', WORKER_SCRIPT], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('ready')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`worker process exited early (${code})`)));
  });
  return child;
}


/** Pids of the processes whose parent is `pid`. */
function childrenOf(pid: number): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,ppid='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .filter(([, ppid]) => ppid === pid)
    .map(([child]) => child as number);
}

describe('a SIGKILLed training worker', () => {
  let env: TestEnv;
  let queues: ExperimentQueues;
  const processes: ChildProcess[] = [];

  before(async () => {
    // Short lock and stall check, so the dead worker's job is noticed in seconds.
    env = await createTestEnv({ JOB_LOCK_DURATION_MS: '3000', STALLED_INTERVAL_MS: '2000' });
    await createDataset(env.store, 'xr', { perClass: 20, size: 96 });
    queues = createExperimentQueues(createProducerConnection(REDIS_URL), env.config.QUEUE_PREFIX);
  });

  after(async () => {
    for (const child of processes) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await queues.close();
    await closeConnection(queues.connection);
    await env.cleanup();
  });

  it('resumes from the last epoch checkpoint in another worker and completes exactly once', async () => {
    const service = new ExperimentService({ store: env.store, queues });
    const records = new ExperimentRecords(env.store);
    const first = await startWorkerProcess(env.env);
    processes.push(first);
    const started = performance.now();
    const { id } = await service.create({
      datasetId: 'xr', architectures: ['cnn'], imageSize: 96, epochs: EPOCHS, batchSize: 4, earlyStoppingPatience: 0, reduceLrPatience: 0,
    });

    const beforeKill = await waitFor('epoch 2 to finish', async () => {
      const progress = await records.readProgress(id, 'cnn');
      return progress !== null && progress.epoch >= 2 ? progress : undefined;
    }, 60_000);
    first.kill('SIGKILL');
    await new Promise<void>((resolve) => (first.exitCode !== null || first.signalCode !== null ? resolve() : first.once('exit', () => resolve())));
    assert.equal(first.signalCode, 'SIGKILL');
    assert.equal(isAlive(first.pid as number), false);
    assert.deepEqual(childrenOf(first.pid as number), [], 'the killed worker left no process behind');
    const checkpoint = JSON.parse(await readFile(path.join(env.store.experimentDir(id), 'checkpoints', 'cnn', 'checkpoint.json'), 'utf8')) as { epoch: number };
    assert.ok(checkpoint.epoch >= 2 && checkpoint.epoch < EPOCHS, `checkpoint of epoch ${checkpoint.epoch}`);

    // Training died with the process (a thread, not an orphaned child): nothing writes progress any more.
    const progressFile = env.store.progressFile(id, 'cnn');
    const frozen = (await stat(progressFile)).mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await stat(progressFile)).mtimeMs, frozen, 'no training goes on after the kill');
    const killedAt = performance.now();

    const second = await startWorkerProcess(env.env);
    processes.push(second);
    const done = await waitFor('the experiment to complete', async () => {
      const view = await service.get(id);
      return view.status === 'completed' || view.status === 'failed' ? view : undefined;
    }, 90_000, 250);
    const finished = performance.now();
    assert.equal(done.status, 'completed', JSON.stringify(done.error));

    const progress = (await records.readProgress(id, 'cnn')) as ArchitectureProgressRecord;
    assert.equal(progress.runs.length, 2, 'one run before the kill, one after');
    assert.equal(progress.runs[0]?.fromEpoch, 1);
    assert.equal(progress.runs[1]?.fromEpoch, checkpoint.epoch + 1, `the resumed run started after the checkpoint (epoch ${checkpoint.epoch}), not at 1`);
    assert.deepEqual(progress.history.map((epoch) => epoch.epoch), [1, 2, 3, 4, 5, 6]);
    for (const early of beforeKill.history) {
      assert.equal(progress.history[early.epoch - 1]?.loss, early.loss, `epoch ${early.epoch} kept from before the kill`);
    }
    assert.equal(done.architectures[0]?.resumedFromEpoch, checkpoint.epoch);
    assert.equal(done.architectures[0]?.attempts, 2);

    const record = await records.read(id);
    assert.equal(record?.compareRuns, 1, 'the report was built once');
    assert.equal(record?.winner?.architecture, 'cnn');
    const report = JSON.parse(await readFile(env.store.reportFile(id), 'utf8')) as ExperimentReport;
    assert.equal(report.results.length, 1);
    assert.equal(report.results[0]?.history.length, EPOCHS);

    const trainJob = await queues.trainingQueue.getJob(trainJobId(id, 'cnn'));
    assert.equal(await trainJob?.getState(), 'completed');
    assert.equal(trainJob?.stalledCounter, 1, 'BullMQ saw the job stall once');
    assert.equal(trainJob?.attemptsMade, 1, 'no retry was used: the stall resumed the same attempt');
    assert.equal(await (await queues.trainingQueue.getJob(compareJobId(id)))?.getState(), 'completed');

    second.kill('SIGTERM');
    await new Promise<void>((resolve) => (second.exitCode !== null ? resolve() : second.once('exit', () => resolve())));
    assert.equal(second.exitCode, 0, 'the second worker shut down gracefully');
    console.log(`sigkill-resume: killed after ${((killedAt - started) / 1000).toFixed(1)} s, resumed and completed ${((finished - killedAt) / 1000).toFixed(1)} s later`);
  });
});
