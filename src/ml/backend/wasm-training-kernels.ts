/**
 * Registers the kernels the wasm backend needs to train the project's architectures (DESIGN.md §5):
 * - `Conv2DBackpropFilter`, missing from tfjs-backend-wasm 4.22 (no conv layer could train);
 * - `Conv2DBackpropInput`, replacing the shipped naive loop with a transposed convolution on XNNPACK;
 * - `MaxPoolGrad`, replacing the shipped kernel (about 25x the forward pool) by one argmax scan in JS;
 * - `BatchMatMul`, keeping the transposed products of dense-layer backprop on XNNPACK;
 * - checked versions of the shipped XNNPACK kernels (`Conv2D`, `FusedConv2D`, `_FusedMatMul`, depthwise),
 *   which otherwise return garbage after an XNNPACK failure (see wasm-memory.ts).
 *
 * Every other gradient the four architectures use (BN, ReLU, max/avg pooling, global average
 * pooling, dense, concat, add, dropout, softmax cross-entropy) is composed by tfjs-core from kernels
 * wasm already has (`AvgPoolGrad` exists; ReLU's gradient is `Step` times dy);
 * test/unit/backend/wasm-training.test.ts trains each layer type on wasm to keep that true.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelConfig, KernelFunc } from '@tensorflow/tfjs';
import { createBatchMatMulWasm } from './batch-mat-mul.ts';
import { createCheckedKernel } from './kernel-compose.ts';
import { conv2DBackpropFilterWasm } from './conv2d-backprop-filter.ts';
import { conv2DBackpropInputWasm } from './conv2d-backprop-input.ts';
import { maxPoolGradWasm } from './max-pool-grad.ts';

const BACKEND = 'wasm';

interface TrainingKernel {
  kernelName: string;
  /** Builds the kernel function, given the one registered before it (if any). */
  create(previous: KernelConfig | undefined): KernelFunc;
  /** True when the kernel cannot work without the shipped one it wraps. */
  wrapsShipped: boolean;
}

const TRAINING_KERNELS: readonly TrainingKernel[] = [
  {
    kernelName: tf.Conv2DBackpropFilter,
    create: () => conv2DBackpropFilterWasm as unknown as KernelFunc,
    wrapsShipped: false,
  },
  {
    kernelName: tf.Conv2DBackpropInput,
    create: () => conv2DBackpropInputWasm as unknown as KernelFunc,
    wrapsShipped: false,
  },
  {
    kernelName: tf.MaxPoolGrad,
    create: () => maxPoolGradWasm as unknown as KernelFunc,
    wrapsShipped: false,
  },
  {
    kernelName: tf.BatchMatMul,
    create: (previous) => createBatchMatMulWasm((previous as KernelConfig).kernelFunc),
    wrapsShipped: true,
  },
  // The shipped XNNPACK kernels below only print a warning when XNNPACK fails (e.g. out of memory)
  // and return garbage; checked, they throw instead (see wasm-memory.ts).
  ...[tf.Conv2D, tf.FusedConv2D, tf._FusedMatMul, tf.DepthwiseConv2dNative, tf.FusedDepthwiseConv2D].map(
    (kernelName): TrainingKernel => ({
      kernelName,
      create: (previous) => createCheckedKernel(kernelName, (previous as KernelConfig).kernelFunc),
      wrapsShipped: true,
    }),
  ),
];

/** The names of the kernels {@link registerWasmTrainingKernels} installs. */
export const WASM_TRAINING_KERNEL_NAMES: readonly string[] = TRAINING_KERNELS.map((k) => k.kernelName);

/** Kernel functions installed by this module, to recognise them (idempotence). */
const ours = new Set<KernelFunc>();
/** Kernels that were registered for wasm before ours replaced them, kept for benchmarks. */
const replaced = new Map<string, KernelConfig>();

/**
 * Installs the project's training kernels for the `wasm` backend, replacing any of the same name.
 * Idempotent: a second call changes nothing. Call it after importing `@tensorflow/tfjs-backend-wasm`
 * (which registers wasm's own kernels); the backend may or may not be initialised yet.
 * @returns the names of the kernels installed by this call (empty when already installed).
 * @throws Error when `@tensorflow/tfjs-backend-wasm` has not registered its kernels yet.
 * @example
 * await import('@tensorflow/tfjs-backend-wasm');
 * registerWasmTrainingKernels();
 * await tf.setBackend('wasm');
 */
export function registerWasmTrainingKernels(): string[] {
  const installed: string[] = [];
  for (const kernel of TRAINING_KERNELS) {
    const current = tf.getKernel(kernel.kernelName, BACKEND);
    if (current !== undefined && ours.has(current.kernelFunc)) continue;
    if (current === undefined && kernel.wrapsShipped) {
      throw new Error(
        `wasm kernel '${kernel.kernelName}' is not registered: import '@tensorflow/tfjs-backend-wasm' first.`,
      );
    }
    const kernelFunc = kernel.create(current);
    const config: KernelConfig = { kernelName: kernel.kernelName, backendName: BACKEND, kernelFunc };
    if (current !== undefined) {
      // The shipped kernel's setup (binding its wasm export) still has to run when the backend
      // initialises, for wrappers that call it and for benchmarks that compare against it.
      if (current.setupFunc !== undefined) config.setupFunc = current.setupFunc;
      replaced.set(kernel.kernelName, current);
      // registerKernel refuses to overwrite, so the shipped kernel has to go first.
      tf.unregisterKernel(kernel.kernelName, BACKEND);
    }
    tf.registerKernel(config);
    ours.add(kernelFunc);
    installed.push(kernel.kernelName);
  }
  return installed;
}

/** True when every kernel of {@link WASM_TRAINING_KERNEL_NAMES} registered for wasm is ours. */
export function wasmTrainingKernelsRegistered(): boolean {
  return WASM_TRAINING_KERNEL_NAMES.every((name) => {
    const config = tf.getKernel(name, BACKEND);
    return config !== undefined && ours.has(config.kernelFunc);
  });
}

/**
 * The wasm kernel that {@link registerWasmTrainingKernels} replaced under `kernelName`, if any
 * (e.g. the shipped naive `Conv2DBackpropInput`); for benchmarks comparing old and new.
 */
export function replacedWasmKernel(kernelName: string): KernelConfig | undefined {
  return replaced.get(kernelName);
}
