import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ArtifactStore } from '../../../src/infra/artifact-store.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import type { ExperimentRecord } from '../../../src/services/experiments/experiment.types.ts';
import { resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';

describe('ExperimentRecords', () => {
  let root: string;
  let records: ExperimentRecords;
  const record = (id: string): ExperimentRecord => ({
    schemaVersion: 1,
    id,
    datasetId: 'xr',
    settings: resolveExperimentSettings({ datasetId: 'xr', architectures: ['cnn'] }).settings,
    status: 'queued',
    createdAt: '2026-12-04T10:00:00.000Z',
    compareRuns: 0,
  });

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'experiment-records-'));
    records = new ExperimentRecords(new ArtifactStore(root));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('leaves no folder behind when the record cannot be written (a full disk)', async () => {
    const store = new ArtifactStore(root);
    const full = Object.assign(Object.create(store) as ArtifactStore, {
      writeJson: async () => {
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      },
    });
    await assert.rejects(new ExperimentRecords(full).create(record('exp-full')), { code: 'ENOSPC' });
    await assert.rejects(stat(store.experimentDir('exp-full')), { code: 'ENOENT' });
  });

  it('creates a record once per id and reads it back; unknown and unsafe ids read as null', async () => {
    assert.equal(await records.create(record('exp-a')), true);
    assert.equal(await records.create(record('exp-a')), false, 'a taken id is refused');
    assert.equal((await records.read('exp-a'))?.status, 'queued');
    assert.equal(await records.read('exp-missing'), null);
    assert.equal(await records.read('../exp-a'), null);
    assert.deepEqual(await records.listIds(), ['exp-a']);
  });

  it('serialises concurrent read-modify-write updates so none is lost', async () => {
    await records.create(record('exp-count'));
    await Promise.all(Array.from({ length: 25 }, () => records.update('exp-count', (current) => ({ ...current, compareRuns: current.compareRuns + 1 }))));
    assert.equal((await records.read('exp-count'))?.compareRuns, 25);
  });

  it('leaves the record unchanged when the update returns null', async () => {
    await records.create(record('exp-final'));
    await records.update('exp-final', (current) => ({ ...current, status: 'completed' }));
    const after = await records.update('exp-final', (current) => (current.status === 'completed' ? null : { ...current, status: 'cancelled' }));
    assert.equal(after?.status, 'completed');
    assert.equal((await records.read('exp-final'))?.status, 'completed');
  });

  it('keeps the cancel marker apart from the record', async () => {
    await records.create(record('exp-cancel'));
    assert.equal(await records.cancelRequested('exp-cancel'), false);
    await records.requestCancel('exp-cancel');
    assert.equal(await records.cancelRequested('exp-cancel'), true);
    await records.remove('exp-cancel');
    assert.equal(await records.read('exp-cancel'), null);
  });
});
