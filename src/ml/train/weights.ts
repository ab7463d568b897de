/**
 * Copies of model weights: cheap in-memory snapshots (best epoch, undo of a failed step) and the
 * encoded form checkpoints store. Weights are matched by POSITION in `model.weights`, never by name:
 * tfjs numbers auto-generated layer names per process, so names differ between a run and its resume
 * while the order (the model's construction order) does not. Shapes are checked instead.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError } from '../errors.ts';

/** The layer variables of a model (what `model.weights` holds). */
export type ModelVariable = tf.LayersModel['weights'][number];

/**
 * Snapshots the current values of `variables` (on `cpu` by sharing the buffers by reference count, on
 * `wasm` by copying them; either way later assignments to the variables do not affect the snapshot).
 * The caller owns the returned tensors: pass them to {@link restoreSnapshot} or {@link disposeSnapshot}.
 */
export function takeSnapshot(variables: readonly ModelVariable[]): tf.Tensor[] {
  return variables.map((v) => tf.keep(tf.clone(v.read())));
}

/** Writes a snapshot back into `variables` (same order); the snapshot stays owned by the caller. */
export function restoreSnapshot(variables: readonly ModelVariable[], snapshot: readonly tf.Tensor[]): void {
  if (snapshot.length !== variables.length) {
    throw new MlError('INVALID_ARGUMENT', `snapshot has ${snapshot.length} tensors for ${variables.length} variables`);
  }
  tf.tidy(() => {
    variables.forEach((v, i) => v.write(snapshot[i] as tf.Tensor));
  });
}

/** Disposes a snapshot. */
export function disposeSnapshot(snapshot: readonly tf.Tensor[] | undefined): void {
  if (snapshot !== undefined) tf.dispose([...snapshot]);
}

/** Encoded weights: manifest entries (in order) and the concatenated little-endian data. */
export interface EncodedWeights {
  specs: tf.io.WeightsManifestEntry[];
  data: ArrayBuffer;
}

/** Encodes tensors in order; `names` label the manifest entries (informational only). */
export async function encodeTensors(tensors: readonly tf.Tensor[], names: readonly string[]): Promise<EncodedWeights> {
  const named = tensors.map((tensor, i) => ({ name: `${i}:${names[i] ?? 'weight'}`, tensor }));
  const { data, specs } = await tf.io.encodeWeights(named);
  return { data, specs };
}

/** Bytes per element of the unquantised dtypes `encodeWeights` writes. */
function bytesPerElement(dtype: string): number {
  if (dtype === 'float32' || dtype === 'int32') return 4;
  if (dtype === 'bool') return 1;
  throw new MlError('CHECKPOINT_INVALID', `unsupported weight dtype ${dtype}`);
}

/**
 * Decodes weights positionally (one tensor per manifest entry, in order), so duplicate names cannot
 * collide. The caller owns the tensors.
 * @throws MlError('CHECKPOINT_INVALID') when the data is shorter than the manifest says
 */
export function decodeTensors(encoded: EncodedWeights): tf.Tensor[] {
  const tensors: tf.Tensor[] = [];
  let offset = 0;
  try {
    for (const spec of encoded.specs) {
      if (spec.quantization !== undefined) throw new MlError('CHECKPOINT_INVALID', 'quantised checkpoint weights are not supported');
      const size = spec.shape.reduce((a, b) => a * b, 1) * bytesPerElement(spec.dtype);
      if (offset + size > encoded.data.byteLength) {
        throw new MlError('CHECKPOINT_INVALID', `weight data ends before ${spec.name}`);
      }
      const map = tf.io.decodeWeights(encoded.data.slice(offset, offset + size), [spec]);
      tensors.push(map[spec.name] as tf.Tensor);
      offset += size;
    }
  } catch (error) {
    tf.dispose(tensors);
    throw error;
  }
  return tensors;
}

/**
 * Checks that `tensors` fit `variables` one to one (count and shapes).
 * @throws MlError('CHECKPOINT_INVALID') naming the first mismatch
 */
export function assertShapesMatch(variables: readonly ModelVariable[], tensors: readonly tf.Tensor[], what: string): void {
  if (variables.length !== tensors.length) {
    throw new MlError('CHECKPOINT_INVALID', `${what} has ${tensors.length} weights, the model has ${variables.length}`);
  }
  variables.forEach((v, i) => {
    const t = tensors[i] as tf.Tensor;
    if (!tf.util.arraysEqual(v.shape as number[], t.shape)) {
      throw new MlError('CHECKPOINT_INVALID', `${what}: weight ${i} (${v.originalName}) has shape [${t.shape.join(',')}], the model [${v.shape.join(',')}]`);
    }
  });
}
