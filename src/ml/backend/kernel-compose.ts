/**
 * Building a kernel out of other kernels of the same backend, below the engine.
 *
 * A kernel must not create engine tensors (`tf.*` ops): the engine is in the middle of recording the
 * outer kernel, and a prototype that did so corrupted its tensor bookkeeping. Instead we call the
 * registered `kernelFunc`s directly with `TensorInfo`s and free every intermediate ourselves with
 * `backend.disposeData`, which is exactly what tfjs's own composite wasm kernels do.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import type { DataId, KernelBackend, KernelFunc, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';
import { throwIfXnnFailed } from './wasm-memory.ts';

/**
 * Runs kernels of one backend and remembers their outputs so they can be freed together.
 * Outputs handed to {@link KernelScope.keep} survive {@link KernelScope.dispose}.
 */
export class KernelScope {
  private readonly owned: TensorInfo[] = [];

  constructor(
    readonly backend: KernelBackend,
    readonly backendName: string,
  ) {}

  /**
   * Calls the kernel `name` registered for this scope's backend and tracks its output.
   * @throws Error when the kernel is not registered or returns several outputs.
   */
  run(name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: NamedAttrMap = {}): TensorInfo {
    const config = tf.getKernel(name, this.backendName);
    if (config === undefined) {
      throw new Error(`Kernel '${name}' is not registered for backend '${this.backendName}'.`);
    }
    // Variadic kernels (Concat) take their inputs as an array, as the engine passes them.
    const out = config.kernelFunc({ inputs: inputs as NamedTensorInfoMap, backend: this.backend, attrs });
    const outputs = Array.isArray(out) ? out : [out];
    this.owned.push(...outputs);
    throwIfXnnFailed(name);
    if (Array.isArray(out)) {
      throw new Error(`Kernel '${name}' returned ${out.length} outputs where one was expected.`);
    }
    return out;
  }

  /** Tracks `info` (e.g. the output of a nested scope) so that {@link KernelScope.dispose} frees it. */
  adopt(info: TensorInfo): TensorInfo {
    this.owned.push(info);
    return info;
  }

  /** Frees `info` now (it must be tracked by this scope), e.g. a partial sum that was replaced. */
  release(info: TensorInfo): void {
    const index = this.owned.indexOf(info);
    if (index < 0) return;
    this.owned.splice(index, 1);
    disposeData(this.backend, info.dataId);
  }

  /** Excludes `info` from {@link KernelScope.dispose}: it becomes the caller's output. */
  keep(info: TensorInfo): TensorInfo {
    const index = this.owned.indexOf(info);
    if (index >= 0) this.owned.splice(index, 1);
    return info;
  }

  /** Frees every tracked intermediate (one reference each, as reshape outputs share data). */
  dispose(): void {
    for (const info of this.owned.splice(0)) disposeData(this.backend, info.dataId);
  }
}

function disposeData(backend: KernelBackend, dataId: DataId): void {
  backend.disposeData(dataId);
}

/**
 * Wraps a shipped wasm kernel so that an XNNPACK failure it only printed becomes an exception
 * (and its invalid output is freed) instead of a tensor of garbage.
 */
export function createCheckedKernel(kernelName: string, shipped: KernelFunc): KernelFunc {
  const checked: KernelFunc = (args) => {
    const out = shipped(args);
    try {
      throwIfXnnFailed(kernelName);
    } catch (error) {
      for (const info of Array.isArray(out) ? out : [out]) disposeData(args.backend as KernelBackend, info.dataId);
      throw error;
    }
    return out;
  };
  return checked;
}
