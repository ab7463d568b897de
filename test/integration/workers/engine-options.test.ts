/**
 * The two engine options the workers rely on: `writeReport: false` (each `train` job shares the
 * experiment folder and must not write the report) and `onlyCached` (the `compare` job reports on
 * what the children trained, whichever backend trained it, and never trains itself).
 */
import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { runExperiment, type ExperimentEvent } from '../../../src/ml/experiment/index.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';

describe('runExperiment options for the workers', () => {
  let root: string;
  let dataDir: string;
  let outDir: string;
  const settings = { imageSize: 32, epochs: 1, batchSize: 4, seed: 3 } as const;

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'engine-options-'));
    dataDir = path.join(root, 'data');
    outDir = path.join(root, 'run');
    await generateSyntheticDataset({ outDir: dataDir, perClass: 6, size: 40, seed: 5, regions: ['hand'] });
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('trains without writing report.json when writeReport is false', async () => {
    const report = await runExperiment({ dataDir, outDir, architectures: ['cnn'], ...settings, backend: 'wasm', writeReport: false });
    assert.equal(report.results.length, 1);
    await assert.rejects(access(path.join(outDir, 'report.json')), { code: 'ENOENT' });
  });

  it('reports on cached results only, accepting another backend, and trains nothing', async () => {
    const events: ExperimentEvent['type'][] = [];
    const report = await runExperiment({ dataDir, outDir, architectures: ['cnn'], ...settings, backend: 'cpu', onlyCached: true, onEvent: (event) => events.push(event.type) });
    assert.equal(report.backend.name, 'cpu');
    assert.equal(report.results[0]?.architecture, 'cnn');
    assert.ok(!events.includes('architecture-start'), 'nothing was trained');
    await access(path.join(outDir, 'report.json'));
  });

  it('fails with MODEL_NOT_FOUND for an architecture without a result, before training anything', async () => {
    const events: ExperimentEvent['type'][] = [];
    await assert.rejects(
      runExperiment({ dataDir, outDir, architectures: ['cnn', 'resnet50'], ...settings, backend: 'wasm', onlyCached: true, onEvent: (event) => events.push(event.type) }),
      (error: unknown) => isMlError(error, 'MODEL_NOT_FOUND') && /resnet50/.test(error.message),
    );
    assert.ok(!events.includes('architecture-start'));
    // Other settings make the cached cnn result stale: it does not count.
    await assert.rejects(
      runExperiment({ dataDir, outDir, architectures: ['cnn'], ...settings, epochs: 2, backend: 'wasm', onlyCached: true }),
      (error: unknown) => isMlError(error, 'MODEL_NOT_FOUND'),
    );
  });
});
