/**
 * Out-of-memory handling for the wasm backend.
 *
 * The wasm heap is a 32-bit address space (at most 4 GiB - 64 KiB, and one growth step may fail
 * well before that). Without help, a failed allocation is silent: emscripten's `malloc` returns 0,
 * tfjs registers the tensor at address 0 and the next kernel writes over the module's own data, so
 * later results are wrong or the module aborts ("memory access out of bounds", "Aborted()"). A
 * request of 4 GiB or more is worse: it wraps around to a tiny size.
 *
 * What this module offers (measured facts in src/ml/backend/README.md):
 * - {@link guardWasmAllocations}: every tensor allocation that fails throws `MlError('OUT_OF_MEMORY')`
 *   before anything is written, so the backend stays usable;
 * - {@link releaseAbandonedTape}: frees what a failed `tf.grads`/`minimize` left on the gradient tape;
 * - {@link isOutOfMemoryError} / {@link requiresBackendReset}: classify an error;
 * - {@link resetWasmBackend}: a fresh wasm module when an allocation inside C++ failed anyway.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import { MlError, isMlError } from '../errors.ts';

/** The largest wasm heap this build of tfjs-backend-wasm can grow to (emscripten's getHeapMax). */
export const WASM_MAX_HEAP_BYTES = 4294901760;

/** The parts of the emscripten module this file touches. */
interface WasmModule {
  HEAPU8: Uint8Array;
  _malloc(bytes: number): number;
  _free(pointer: number): void;
  /** Set once {@link guardWasmAllocations} has wrapped `_malloc`. */
  fractureMallocGuard?: true;
}

interface WasmBackendLike {
  wasm: WasmModule | null;
  disposeData(dataId: object, force?: boolean): boolean;
}

/** The emscripten module of the active backend, when that backend is wasm. */
function activeWasmModule(): WasmModule | undefined {
  if (tf.getBackend() !== 'wasm') return undefined;
  return (tf.backend() as unknown as WasmBackendLike).wasm ?? undefined;
}

/**
 * Bytes currently reserved by the active wasm backend's heap (it grows on demand and never shrinks),
 * or `undefined` when the active backend is not wasm. Compare with {@link WASM_MAX_HEAP_BYTES};
 * `tf.memory().numBytes` tells how much of it live tensors use.
 */
export function wasmMemoryBytes(): number | undefined {
  return activeWasmModule()?.HEAPU8.buffer.byteLength;
}

/**
 * Makes every allocation of the active wasm backend fail loudly: a request the heap cannot satisfy
 * (or one of 4 GiB or more, which would wrap around) throws `MlError('OUT_OF_MEMORY')` instead of
 * handing out address 0. Idempotent; a no-op when the active backend is not wasm.
 * Allocations made inside the C++ kernels (XNNPACK buffers) cannot be guarded this way.
 * @returns true when the active backend is wasm and is now guarded.
 */
export function guardWasmAllocations(): boolean {
  const module = activeWasmModule();
  if (module === undefined) return false;
  if (module.fractureMallocGuard === true) return true;
  // Emscripten's `_malloc` export is a stub that replaces itself with the raw wasm function on its
  // first call; call it once so that we wrap the final function, not the stub.
  module._free(module._malloc(8));
  const malloc = module._malloc;
  module._malloc = (bytes: number): number => {
    if (bytes >= WASM_MAX_HEAP_BYTES) {
      throw new MlError('OUT_OF_MEMORY', `wasm allocation of ${formatBytes(bytes)} exceeds the 4 GiB wasm address space.`);
    }
    const pointer = malloc(bytes);
    if (pointer === 0 && bytes > 0) {
      throw new MlError(
        'OUT_OF_MEMORY',
        `wasm allocation of ${formatBytes(bytes)} failed (heap ${formatBytes(module.HEAPU8.buffer.byteLength)} of at most ${formatBytes(WASM_MAX_HEAP_BYTES)}).`,
      );
    }
    return pointer;
  };
  module.fractureMallocGuard = true;
  watchXnnFailures();
  return true;
}

/**
 * Checks that the wasm heap can provide `bytes` now, by allocating and freeing them, so that a
 * kernel about to make large allocations inside C++ (where failure is fatal) fails cleanly instead.
 * @throws MlError('OUT_OF_MEMORY') when the guarded allocation fails.
 */
export function ensureWasmHeapRoom(backend: unknown, bytes: number): void {
  const module = (backend as WasmBackendLike).wasm;
  if (module === null || module.fractureMallocGuard !== true || bytes <= 0) return;
  module._free(module._malloc(bytes));
}

/** The warning tfjs-backend-wasm prints (to stderr, and nothing else) when an XNNPACK call fails. */
const XNN_FAILURE = /XNN status for (xnn_\w+) is not successful\. Got status (\d+)/;
let pendingXnnFailure: string | undefined;
let xnnWatchInstalled = false;

/**
 * Watches stderr for tfjs-backend-wasm's "XNN status ... is not successful" warning. The shipped
 * kernels only print it and carry on with an operator that never ran, so the output tensor holds
 * whatever the heap held before (measured: a step "succeeded" with garbage gradients when XNNPACK
 * could not allocate its packed weights). {@link throwIfXnnFailed} turns it into an error.
 */
export function watchXnnFailures(): void {
  if (xnnWatchInstalled) return;
  xnnWatchInstalled = true;
  const write = process.stderr.write.bind(process.stderr) as (...args: unknown[]) => boolean;
  process.stderr.write = ((chunk: unknown, ...rest: unknown[]): boolean => {
    const text = typeof chunk === 'string' ? chunk : chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : '';
    const match = XNN_FAILURE.exec(text);
    // Status 6 is xnn_status_out_of_memory; keep the first failure of a kernel, it is the cause.
    if (match !== null && pendingXnnFailure === undefined) pendingXnnFailure = `${match[1]} failed with XNNPACK status ${match[2]}`;
    return write(chunk, ...rest);
  }) as typeof process.stderr.write;
}

/**
 * Throws when an XNNPACK call failed since the last check (see {@link watchXnnFailures}).
 * @throws MlError('OUT_OF_MEMORY') for XNNPACK's out-of-memory status 6, MlError('BACKEND_UNAVAILABLE') otherwise.
 */
export function throwIfXnnFailed(kernelName: string): void {
  const failure = pendingXnnFailure;
  if (failure === undefined) return;
  pendingXnnFailure = undefined;
  const outOfMemory = failure.endsWith('status 6');
  throw new MlError(
    outOfMemory ? 'OUT_OF_MEMORY' : 'BACKEND_UNAVAILABLE',
    `wasm kernel ${kernelName}: ${failure}${outOfMemory ? ' (out of memory)' : ''}; its output is invalid.`,
  );
}

const OOM_MESSAGES = [
  /memory access out of bounds/i,
  /table index is out of bounds/i,
  /Aborted\(/,
  /out of memory/i,
  // Native TensorFlow (tfjs-node, tfjs-node-gpu): "OOM when allocating tensor with shape ...".
  /\bOOM\b/,
  /Cannot enlarge memory/i,
  /Array buffer allocation failed/i,
  /Invalid (typed )?array (buffer )?length/i,
  /Maximum memory size exceeded/i,
  /WebAssembly\.Memory.*grow/i,
];

/**
 * True when `error` (or one of its causes) is a failed allocation on any backend: the
 * `MlError('OUT_OF_MEMORY')` of {@link guardWasmAllocations}, a wasm trap that follows an unguarded
 * allocation failure ("memory access out of bounds", "table index is out of bounds", "Aborted()"),
 * or a JS `RangeError` from a typed array or heap growth that could not be allocated.
 * The trainer's answer is a smaller micro-batch; check {@link requiresBackendReset} first.
 */
export function isOutOfMemoryError(error: unknown): boolean {
  for (let current = error, depth = 0; current != null && depth < 8; depth++) {
    if (isMlError(current, 'OUT_OF_MEMORY')) return true;
    const message = current instanceof Error ? current.message : typeof current === 'string' ? current : '';
    if (OOM_MESSAGES.some((pattern) => pattern.test(message))) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}

/**
 * True when `error` is a trap of the wasm module itself (`WebAssembly.RuntimeError`, e.g. a memory
 * fault or an abort). The module's memory may then be corrupted — results computed afterwards were
 * measured to be wrong — so the only safe continuation is {@link resetWasmBackend}.
 */
export function requiresBackendReset(error: unknown): boolean {
  for (let current = error, depth = 0; current != null && depth < 8; depth++) {
    if (current instanceof Error && current.constructor === wasmRuntimeError()) return true;
    if (current instanceof Error && /^Aborted\(/.test(current.message)) return true;
    current = current instanceof Error ? current.cause : undefined;
  }
  return false;
}

/** `WebAssembly.RuntimeError`, looked up at run time (the project's TS lib has no WebAssembly types). */
function wasmRuntimeError(): unknown {
  return (globalThis as { WebAssembly?: { RuntimeError?: unknown } }).WebAssembly?.RuntimeError;
}

interface TapeNode {
  saved?: tf.Tensor[];
}
interface EngineState {
  gradientDepth: number;
  activeTape: TapeNode[] | null;
}

/**
 * Frees the tensors a gradient computation saved for its backward pass when it was aborted by an
 * exception (tfjs disposes them only on success: one failed step would otherwise leak its
 * activations). Call it after catching an error from `tf.grads`, `optimizer.minimize` or `fit`,
 * outside any gradient computation.
 * @returns the number of tensors disposed.
 */
export function releaseAbandonedTape(): number {
  const state = (tf.engine() as unknown as { state: EngineState }).state;
  if (state.gradientDepth !== 0 || state.activeTape === null) return 0;
  let disposed = 0;
  for (const node of state.activeTape) {
    for (const tensor of node.saved ?? []) {
      if (!tensor.isDisposed) {
        tensor.dispose();
        disposed++;
      }
    }
  }
  state.activeTape = null;
  return disposed;
}

interface BackendRegistry {
  registryFactory: Record<string, { factory: () => tf.KernelBackend | Promise<tf.KernelBackend>; priority: number }>;
  registry: Record<string, tf.KernelBackend>;
}

/**
 * Replaces the wasm backend by a freshly instantiated module with an empty heap, after
 * {@link requiresBackendReset}. Every tensor that lived on the old module is gone: the caller must
 * rebuild its model from weights kept outside the backend (a checkpoint). Disposing such old tensors
 * afterwards is harmless. Re-installs the allocation guard; kernels registered for wasm (including
 * the project's training kernels) carry over.
 * @throws MlError('BACKEND_UNAVAILABLE') when wasm is not registered or fails to start again.
 */
export async function resetWasmBackend(): Promise<void> {
  const engine = tf.engine() as unknown as BackendRegistry;
  const entry = engine.registryFactory.wasm;
  if (entry === undefined) {
    throw new MlError('BACKEND_UNAVAILABLE', "Cannot reset the wasm backend: it is not registered.");
  }
  const old = engine.registry.wasm as unknown as (WasmBackendLike & { dispose(): void }) | undefined;
  if (old !== undefined) {
    // The old module's memory is not to be trusted: make later disposals of its tensors bookkeeping
    // only, and drop it even if its own dispose traps.
    old.disposeData = () => true;
    const dispose = old.dispose.bind(old);
    old.dispose = () => {
      try {
        dispose();
      } catch {
        // A trapped module may abort again while shutting down; it is discarded either way.
      }
    };
  }
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', entry.factory, entry.priority);
  if (!(await tf.setBackend('wasm'))) {
    throw new MlError('BACKEND_UNAVAILABLE', 'The wasm backend failed to start again after a reset.');
  }
  guardWasmAllocations();
}

function formatBytes(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}
