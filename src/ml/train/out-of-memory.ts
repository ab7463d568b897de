/**
 * Recognising out-of-memory failures of a training step, and cleaning up after one. The backend module
 * has its own `isOutOfMemoryError`; the trainer takes a predicate so it does not depend on it, and this
 * message test is the default.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../errors.ts';

/** Message fragments of allocation failures on the backends we run on (wasm, cpu, tfjs-node, V8). */
const OOM_PATTERNS = [
  /out of memory/i,
  /\bOOM\b/,
  /memory access out of bounds/i,
  /Array buffer allocation failed/i,
];

/**
 * True when `error` (or one of its causes) is an `MlError('OUT_OF_MEMORY')` (as the backend's
 * allocation guard throws) or has an out-of-memory message.
 */
export function isOutOfMemoryMessage(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    if (isMlError(e, 'OUT_OF_MEMORY')) return true;
    const message = e instanceof Error ? e.message : typeof e === 'string' ? e : '';
    if (OOM_PATTERNS.some((re) => re.test(message))) return true;
    e = e instanceof Error ? e.cause : undefined;
  }
  return false;
}

/** The engine fields read below; `tf.engine().state` is public but its tape node type is not exported. */
interface TapeState {
  gradientDepth: number;
  activeTape: { saved?: tf.Tensor[] }[] | null | undefined;
}

/**
 * Releases the gradient tape a failed `tf.variableGrads` leaves behind. tfjs (4.22) clears the tape only
 * when the backward pass completes; when the forward or backward pass throws, the tape stays and the
 * tensors it saved for backprop (kept clones) are never disposed, so every retried step would leak
 * them. Safe to call at any time outside a gradient computation.
 */
export function releaseAbandonedTape(): void {
  const state = tf.engine().state as unknown as TapeState;
  if (state.gradientDepth !== 0 || state.activeTape == null) return;
  for (const node of state.activeTape) {
    for (const tensor of node.saved ?? []) tensor.dispose();
  }
  state.activeTape = null;
}
