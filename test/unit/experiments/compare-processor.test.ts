import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SandboxedJob } from 'bullmq';
import { loadConfig } from '../../../src/infra/config.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';
import type { ExperimentRecord } from '../../../src/services/experiments/experiment.types.ts';
import { architectureOfJobKey, processCompareJob } from '../../../src/workers/compare.processor.ts';
import { createTrainingContext, type ExperimentModelRegistry, type TrainingContext } from '../../../src/workers/training-context.ts';

/** A registry that must not be used: these paths never reach registration. */
const untouchedRegistry: ExperimentModelRegistry = {
  registerFromExperiment: async () => assert.fail('no model is registered'),
  promoteIfUnset: async () => assert.fail('no alias is set'),
  aliases: async () => ({}),
};

function compareJob(experimentId: string, failures: Record<string, string> = {}): SandboxedJob {
  return { name: 'compare', data: { experimentId }, opts: { attempts: 3 }, attemptsMade: 0, getIgnoredChildrenFailures: async () => failures } as unknown as SandboxedJob;
}

describe('processCompareJob', () => {
  let root: string;
  let context: TrainingContext;
  const record = (id: string, overrides: Partial<ExperimentRecord> = {}): ExperimentRecord => ({
    schemaVersion: 1, id, datasetId: 'xr', status: 'running', createdAt: '2026-12-04T10:00:00.000Z', compareRuns: 0,
    settings: resolveExperimentSettings({ datasetId: 'xr', architectures: ['cnn', 'vgg16'] }).settings,
    ...overrides,
  });

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'compare-processor-'));
    context = createTrainingContext(loadConfig({ DATA_DIR: root }), { registry: untouchedRegistry });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('returns the recorded outcome again when rerun after the experiment completed', async () => {
    const winner = { architecture: 'cnn' as const, modelId: 'exp-done-cnn', metric: 'macroF1' as const, score: 0.8, reason: 'r', promoted: true };
    await context.records.create(record('exp-done', { status: 'completed', winner, modelIds: ['exp-done-cnn', 'exp-done-vgg16'] }));
    assert.deepEqual(await processCompareJob(compareJob('exp-done'), undefined, context), { experimentId: 'exp-done', winner, modelIds: ['exp-done-cnn', 'exp-done-vgg16'] });
    assert.equal((await context.records.read('exp-done'))?.compareRuns, 0, 'no report was rebuilt');
  });

  it('fails the experiment with the failed child recorded error, and does nothing for a cancelled one', async () => {
    await context.records.create(record('exp-fail'));
    await context.records.writeProgress('exp-fail', {
      architecture: 'vgg16', status: 'failed', epoch: 0, epochs: 10, batch: 0, batches: null, progress: 0, etaSeconds: null, history: [],
      error: { code: 'OUT_OF_MEMORY', detail: 'not enough memory for vgg16' }, runs: [], updatedAt: new Date().toISOString(),
    });
    await assert.rejects(processCompareJob(compareJob('exp-fail', { 'p:training:exp-fail.vgg16': 'OUT_OF_MEMORY: ...' }), undefined, context), { name: 'UnrecoverableError' });
    const failed = await new ExperimentRecords(context.store).read('exp-fail');
    assert.equal(failed?.status, 'failed');
    assert.deepEqual(failed?.error, { code: 'OUT_OF_MEMORY', detail: 'not enough memory for vgg16' });

    await context.records.create(record('exp-cancel'));
    await context.records.requestCancel('exp-cancel');
    await assert.rejects(processCompareJob(compareJob('exp-cancel', { 'p:training:exp-cancel.cnn': 'training cancelled' }), undefined, context), /cancelled/);
    assert.equal((await context.records.read('exp-cancel'))?.status, 'running', 'the cancel owns the record; compare leaves it');
  });

  it('reads the architecture of a failed child from its job key', () => {
    assert.equal(architectureOfJobKey('fracture:training:exp-20261204-174512-3fa9.resnet50'), 'resnet50');
    assert.equal(architectureOfJobKey('fracture:training:exp-20261204-174512-3fa9'), null);
  });
});
