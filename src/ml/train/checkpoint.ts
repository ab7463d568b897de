/**
 * Per-epoch training checkpoints, written atomically, read back for a resume.
 *
 * Layout of a checkpoint directory:
 * ```
 * checkpoint.json          pointer {format, version, epoch, directory} - replaced by rename, so it
 *                          always names a complete checkpoint
 * epoch-0003/
 *   model.json             TensorFlow.js layers format (topology + weights manifest -> weights.bin)
 *   weights.bin            all model weights, including BN moving statistics
 *   optimizer.bin          optimizer slots (iteration count, Adam moments / momentum accumulators)
 *   best-weights.bin       weights of the best epoch, when that is not this epoch
 *   state.json             history, counters, learning rate, seed, manifests of the .bin files
 * ```
 * A new checkpoint is written into `.tmp-epoch-NNNN-*`, fsynced, renamed to `epoch-NNNN`, and only then
 * does `checkpoint.json` (written to a temp file and renamed over) point to it; older epoch directories
 * are removed afterwards. A crash at any point leaves the previous checkpoint intact and readable.
 * One trainer at a time per directory.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';
import { fsyncPath, writeFileDurable } from '../persist/atomic-dir.ts';
import type { EarlyStoppingState, PlateauState } from './callbacks.ts';
import type { EpochRecord, MonitoredMetric, OptimizerSpec } from './types.ts';
import type { EncodedWeights } from './weights.ts';

const FORMAT = 'fracture-train-checkpoint';
const VERSION = 1;
const POINTER = 'checkpoint.json';

/** Everything of a run that is not a tensor. */
export interface CheckpointState {
  /** Last completed epoch (1-based). */
  epoch: number;
  epochs: number;
  seed: number | null;
  optimizer: OptimizerSpec & {
    /** LR in effect for the next epoch (after any plateau reduction). */
    currentLearningRate: number;
    weightSpecs: tf.io.WeightsManifestEntry[];
  };
  /** Micro-batch cap in effect (after any out-of-memory fallback); null = whole batches. */
  microBatchSize: number | null;
  history: EpochRecord[];
  best: {
    monitor: MonitoredMetric;
    epoch: number;
    value: number | null;
    /** Where the best weights are: this checkpoint's weights, best-weights.bin, or nowhere yet. */
    weights: 'current' | 'file' | 'none';
    weightSpecs?: tf.io.WeightsManifestEntry[];
  };
  earlyStopping: EarlyStoppingState | null;
  plateau: PlateauState | null;
  stoppedEarly: boolean;
  /** Batches in the last completed epoch, for the ETA of the next ones. */
  batchesPerEpoch: number | null;
}

/** A checkpoint in memory. */
export interface Checkpoint {
  state: CheckpointState;
  model: EncodedWeights;
  optimizer: EncodedWeights;
  bestWeights?: EncodedWeights;
}

/** The model part of a checkpoint: tfjs artifacts as `model.save` produces them. */
export interface ModelArtifactsToSave {
  modelTopology: tf.io.ModelArtifacts['modelTopology'];
  weights: EncodedWeights;
}

/**
 * Captures the model's topology and weights through `model.save` with an in-memory handler (tfjs
 * without tfjs-node has no `file://` handler; the files are written by {@link writeCheckpoint}).
 */
export async function captureModel(model: tf.LayersModel): Promise<ModelArtifactsToSave> {
  let captured: ModelArtifactsToSave | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData === undefined ? new ArrayBuffer(0) : tf.io.CompositeArrayBuffer.join(artifacts.weightData);
      captured = { modelTopology: artifacts.modelTopology, weights: { specs: artifacts.weightSpecs ?? [], data } };
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (captured === undefined) throw new MlError('MODEL_CORRUPT', 'model.save produced no artifacts');
  return captured;
}


const bytes = (buffer: ArrayBuffer): Uint8Array => new Uint8Array(buffer);
const epochDirName = (epoch: number): string => `epoch-${String(epoch).padStart(4, '0')}`;

/**
 * Writes a checkpoint atomically into `dir` (created if missing) and removes older ones.
 * @param model from {@link captureModel}
 */
export async function writeCheckpoint(
  dir: string,
  checkpoint: { state: CheckpointState; model: ModelArtifactsToSave; optimizer: EncodedWeights; bestWeights?: EncodedWeights },
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const finalName = epochDirName(checkpoint.state.epoch);
  const tmp = path.join(dir, `.tmp-${finalName}-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(tmp);
  try {
    const modelJson: tf.io.ModelJSON = {
      modelTopology: checkpoint.model.modelTopology as tf.io.ModelJSON['modelTopology'],
      format: 'layers-model',
      generatedBy: 'fracture-service trainer',
      convertedBy: null,
      weightsManifest: [{ paths: ['weights.bin'], weights: checkpoint.model.weights.specs }],
    };
    await writeFileDurable(path.join(tmp, 'model.json'), JSON.stringify(modelJson));
    await writeFileDurable(path.join(tmp, 'weights.bin'), bytes(checkpoint.model.weights.data));
    await writeFileDurable(path.join(tmp, 'optimizer.bin'), bytes(checkpoint.optimizer.data));
    if (checkpoint.bestWeights !== undefined) {
      await writeFileDurable(path.join(tmp, 'best-weights.bin'), bytes(checkpoint.bestWeights.data));
    }
    const state = { format: FORMAT, version: VERSION, savedAt: new Date().toISOString(), ...checkpoint.state };
    await writeFileDurable(path.join(tmp, 'state.json'), JSON.stringify(state, null, 1));
    await fsyncPath(tmp);
    // A leftover directory of the same epoch (from a crash after its rename) is never the one the
    // pointer names, since the pointer only ever moves forward past it.
    await rm(path.join(dir, finalName), { recursive: true, force: true });
    await rename(tmp, path.join(dir, finalName));
    const pointerTmp = path.join(dir, `.tmp-${POINTER}-${process.pid}-${randomBytes(4).toString('hex')}`);
    await writeFileDurable(pointerTmp, JSON.stringify({ format: FORMAT, version: VERSION, epoch: checkpoint.state.epoch, directory: finalName }));
    await rename(pointerTmp, path.join(dir, POINTER));
    await fsyncPath(dir);
  } catch (error) {
    await rm(tmp, { recursive: true, force: true });
    throw error;
  }
  // Clean-up of superseded checkpoints and of temp files of crashed writers.
  for (const entry of await readdir(dir)) {
    if (entry !== finalName && (/^epoch-\d+$/.test(entry) || entry.startsWith('.tmp-'))) {
      await rm(path.join(dir, entry), { recursive: true, force: true });
    }
  }
}

function invalid(dir: string, detail: string, cause?: unknown): MlError {
  return new MlError('CHECKPOINT_INVALID', `checkpoint in ${dir} is unusable: ${detail}`, { cause });
}

async function readBuffer(file: string): Promise<ArrayBuffer> {
  const buf = await readFile(file);
  return buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
}

function expectedBytes(specs: readonly tf.io.WeightsManifestEntry[]): number {
  return specs.reduce((sum, s) => sum + s.shape.reduce((a, b) => a * b, 1) * (s.dtype === 'bool' ? 1 : 4), 0);
}

/**
 * Reads the checkpoint `dir` points to.
 * @returns undefined when `dir` holds no checkpoint (missing directory or pointer)
 * @throws MlError('CHECKPOINT_INVALID') when the pointer exists but the checkpoint is unreadable
 */
export async function readCheckpoint(dir: string): Promise<Checkpoint | undefined> {
  let pointerText: string;
  try {
    pointerText = await readFile(path.join(dir, POINTER), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw invalid(dir, 'cannot read checkpoint.json', error);
  }
  try {
    const pointer = JSON.parse(pointerText) as { format?: string; version?: number; directory?: string };
    if (pointer.format !== FORMAT || pointer.version !== VERSION || typeof pointer.directory !== 'string' || !/^epoch-\d+$/.test(pointer.directory)) {
      throw invalid(dir, 'checkpoint.json has an unknown format');
    }
    const epochDir = path.join(dir, pointer.directory);
    const state = JSON.parse(await readFile(path.join(epochDir, 'state.json'), 'utf8')) as CheckpointState & { format?: string; version?: number };
    if (state.format !== FORMAT || state.version !== VERSION) throw invalid(dir, 'state.json has an unknown format');
    const modelJson = JSON.parse(await readFile(path.join(epochDir, 'model.json'), 'utf8')) as tf.io.ModelJSON;
    const modelSpecs = modelJson.weightsManifest?.[0]?.weights ?? [];
    const checkpoint: Checkpoint = {
      state,
      model: { specs: modelSpecs, data: await readBuffer(path.join(epochDir, 'weights.bin')) },
      optimizer: { specs: state.optimizer.weightSpecs, data: await readBuffer(path.join(epochDir, 'optimizer.bin')) },
    };
    if (state.best.weights === 'file') {
      checkpoint.bestWeights = { specs: state.best.weightSpecs ?? [], data: await readBuffer(path.join(epochDir, 'best-weights.bin')) };
    }
    for (const [name, encoded] of [['weights.bin', checkpoint.model], ['optimizer.bin', checkpoint.optimizer], ['best-weights.bin', checkpoint.bestWeights]] as const) {
      if (encoded !== undefined && encoded.data.byteLength !== expectedBytes(encoded.specs)) {
        throw invalid(dir, `${name} has ${encoded.data.byteLength} bytes, its manifest says ${expectedBytes(encoded.specs)}`);
      }
    }
    return checkpoint;
  } catch (error) {
    if (error instanceof MlError) throw error;
    throw invalid(dir, error instanceof Error ? error.message : String(error), error);
  }
}
