/**
 * Loading `onnxruntime-node` on demand. Its native binding may be missing or unloadable on a given
 * machine (an unsupported platform, a broken install), and serving must then still work on tfjs: so
 * nothing imports it statically, the first caller tries once, and every later caller gets the same
 * module or the same reason it is unavailable.
 * @module
 */
import type * as Ort from 'onnxruntime-node';

/** The `onnxruntime-node` module. */
export type OnnxRuntime = typeof Ort;

/** The outcome of loading the runtime: the module, or why it could not be loaded. */
export type OnnxRuntimeProbe = { ok: true; runtime: OnnxRuntime } | { ok: false; reason: string };

/** Loads the runtime (for tests: a loader that fails or returns a stub). */
export type OnnxRuntimeLoader = () => Promise<OnnxRuntimeProbe>;

let probe: Promise<OnnxRuntimeProbe> | undefined;

/**
 * Imports `onnxruntime-node` once per process and remembers the outcome (a failed import is not
 * retried: a missing native library does not appear while the process runs).
 * @example
 * const probe = await loadOnnxRuntime();
 * if (!probe.ok) logger.warn(probe.reason);
 */
export function loadOnnxRuntime(): Promise<OnnxRuntimeProbe> {
  probe ??= import('onnxruntime-node').then(
    (module): OnnxRuntimeProbe => {
      // The package is CommonJS: depending on the loader its exports sit on the namespace or its default.
      const runtime = (typeof module.InferenceSession === 'function' ? module : (module as unknown as { default?: OnnxRuntime }).default) as OnnxRuntime | undefined;
      return runtime && typeof runtime.InferenceSession?.create === 'function'
        ? { ok: true, runtime }
        : { ok: false, reason: 'onnxruntime-node loaded without an InferenceSession' };
    },
    (error: unknown): OnnxRuntimeProbe => ({ ok: false, reason: `onnxruntime-node did not load: ${error instanceof Error ? error.message : String(error)}` }),
  );
  return probe;
}
