/**
 * Recognising out-of-memory failures of a training step. The backend module
 * has its own `isOutOfMemoryError`; the trainer takes a predicate so it does not depend on it, and this
 * message test is the default.
 * @module
 */
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
