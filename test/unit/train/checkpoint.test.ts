import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { useTestBackend } from '../../helpers/backend.ts';
import { isMlError } from '../../../src/ml/errors.ts';
import { captureModel, readCheckpoint, writeCheckpoint } from '../../../src/ml/train/checkpoint.ts';
import type { CheckpointState } from '../../../src/ml/train/checkpoint.ts';
import { decodeTensors, encodeTensors } from '../../../src/ml/train/weights.ts';
import { buildBnModel } from './fixtures/tiny.ts';

let scratch: string;
before(async () => {
  await useTestBackend();
  scratch = await mkdtemp(path.join(tmpdir(), 'fracture-ckpt-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

function state(epoch: number): CheckpointState {
  return {
    epoch,
    epochs: 5,
    seed: 1,
    optimizer: { name: 'adam', learningRate: 0.01, currentLearningRate: 0.01, weightSpecs: [] },
    microBatchSize: null,
    history: [],
    best: { monitor: 'val_loss', epoch: 0, value: null, weights: 'none' },
    earlyStopping: null,
    plateau: null,
    stoppedEarly: false,
    batchesPerEpoch: 3,
  };
}

describe('checkpoints', () => {
  test('an empty or missing directory has no checkpoint', async () => {
    assert.equal(await readCheckpoint(path.join(scratch, 'nothing-here')), undefined);
  });

  test('a new checkpoint replaces the old one and clears leftovers of a crashed writer', async () => {
    const dir = path.join(scratch, 'replace');
    const model = buildBnModel(1);
    const artifacts = await captureModel(model);
    const empty = { specs: [], data: new ArrayBuffer(0) };
    await writeCheckpoint(dir, { state: state(1), model: artifacts, optimizer: empty });
    // A writer that died mid-way leaves a temp directory and a finished-but-unreferenced epoch.
    await mkdir(path.join(dir, '.tmp-epoch-0002-999-abcd'));
    await mkdir(path.join(dir, 'epoch-0007'));
    assert.equal((await readCheckpoint(dir))?.state.epoch, 1, 'the pointer still names the complete one');
    await writeCheckpoint(dir, { state: state(2), model: artifacts, optimizer: empty });
    assert.deepEqual((await readdir(dir)).sort(), ['checkpoint.json', 'epoch-0002']);
    const read = await readCheckpoint(dir);
    assert.equal(read?.state.epoch, 2);
    // The weights round-trip exactly, BN moving statistics included.
    const restored = decodeTensors(read?.model ?? empty);
    const original = model.getWeights();
    assert.equal(restored.length, original.length);
    restored.forEach((t, i) => assert.deepEqual(Array.from(t.dataSync()), Array.from(original[i]?.dataSync() ?? [])));
    tf.dispose(restored);
    model.dispose();
  });

  test('unreadable pointers and truncated weight files are CHECKPOINT_INVALID', async () => {
    const dir = path.join(scratch, 'broken');
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'checkpoint.json'), '{"format":"something-else"}');
    await assert.rejects(readCheckpoint(dir), (e: unknown) => isMlError(e, 'CHECKPOINT_INVALID'));
    await writeFile(path.join(dir, 'checkpoint.json'), '{"format":"fracture-train-checkpoint","version":1,"epoch":3,"directory":"epoch-0003"}');
    await assert.rejects(readCheckpoint(dir), (e: unknown) => isMlError(e, 'CHECKPOINT_INVALID'));
  });

  test('weights encode and decode positionally, so equal names cannot collide', async () => {
    const tensors = [tf.tensor1d([1, 2]), tf.tensor2d([[3, 4, 5]]), tf.scalar(6)];
    const encoded = await encodeTensors(tensors, ['w', 'w', 'w']);
    const decoded = decodeTensors(encoded);
    assert.deepEqual(decoded.map((t) => t.shape), [[2], [1, 3], []]);
    assert.deepEqual(decoded.map((t) => Array.from(t.dataSync())), [[1, 2], [3, 4, 5], [6]]);
    assert.throws(() => decodeTensors({ specs: encoded.specs, data: encoded.data.slice(0, 8) }), (e: unknown) => isMlError(e, 'CHECKPOINT_INVALID'));
    tf.dispose([...tensors, ...decoded]);
  });
});
