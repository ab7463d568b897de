/**
 * Chooses and starts the TensorFlow.js backend (DESIGN.md §5): `auto` tries native TensorFlow with a
 * GPU, native TensorFlow on the CPU, then WASM (XNNPACK + SIMD, with the project's training kernels),
 * then the pure-JS `cpu` backend, and records why each skipped candidate was skipped.
 * @module
 */
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type * as WasmBackend from '@tensorflow/tfjs-backend-wasm';
import { MlError } from '../errors.ts';
import { registerWasmTrainingKernels } from './wasm-training-kernels.ts';
import { guardWasmAllocations } from './wasm-memory.ts';

/** The backends the project can run on. `tensorflow` is the native binding of tfjs-node(-gpu). */
export type BackendName = 'tensorflow' | 'wasm' | 'cpu';
/** What a user may ask for (`FRACTURE_BACKEND`). */
export type BackendRequest = 'auto' | BackendName;

/** Valid values of `FRACTURE_BACKEND` / {@link initBackend}'s argument, in `auto`'s order of preference. */
export const BACKEND_REQUESTS: readonly BackendRequest[] = ['auto', 'tensorflow', 'wasm', 'cpu'];

/** The native packages `auto` and `tensorflow` try, GPU first. */
export const NATIVE_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
export type NativePackage = (typeof NATIVE_PACKAGES)[number];

/** A candidate that was skipped, and why (shown in logs, `/readyz` and reports). */
export interface BackendFallback {
  candidate: string;
  reason: string;
}

/** What runs the tensors, for logs, `/readyz` and the provenance of every report. */
export interface BackendInfo {
  name: BackendName;
  requested: BackendRequest;
  /** The native package that provides `tensorflow`; absent for `wasm` and `cpu`. */
  package?: NativePackage;
  /** True when native TensorFlow runs on a GPU. */
  gpu: boolean;
  /** Threads one process computes with (the WASM build runs one in Node; see README). */
  threads: number;
  /** True for vectorised kernels: WASM SIMD, or native TensorFlow. False for the pure-JS backend. */
  simd: boolean;
  /** Package versions, e.g. `tfjs-core`, `tfjs-backend-wasm`, `node`. */
  versions: Record<string, string>;
  fallbacks: BackendFallback[];
}

const cache = new Map<BackendRequest, Promise<BackendInfo>>();

/**
 * Starts the requested backend and makes it tfjs's active backend. Idempotent per request: a second
 * call returns the same info object (re-activating that backend if something switched away since).
 * @param requested `auto` (the default), or one backend by name. Callers pass `FRACTURE_BACKEND`
 *   from the configuration (src/infra/config.ts): the engine reads no environment itself.
 * @throws MlError('INVALID_ARGUMENT') for an unknown value, listing the valid ones.
 * @throws MlError('BACKEND_UNAVAILABLE') when an explicitly requested backend cannot start.
 * @example
 * const info = await initBackend();
 * logger.info(describeBackend(info)); // "wasm (XNNPACK, SIMD, 1 thread); tried: tfjs-node-gpu (not installed), ..."
 */
export async function initBackend(requested = 'auto'): Promise<BackendInfo> {
  const request = parseBackendRequest(requested);
  let pending = cache.get(request);
  if (pending === undefined) {
    pending = selectBackend(request);
    cache.set(request, pending);
    // A failed start may succeed later (e.g. after installing a package): do not cache failures.
    pending.catch(() => cache.delete(request));
  }
  const info = await pending;
  if (tf.getBackend() !== info.name) {
    await activate(info.name);
  }
  return info;
}

/** Validates a backend request (case-insensitive, trimmed). */
export function parseBackendRequest(value: string): BackendRequest {
  const normalised = value.trim().toLowerCase();
  const match = BACKEND_REQUESTS.find((candidate) => candidate === normalised);
  if (match === undefined) {
    throw new MlError(
      'INVALID_ARGUMENT',
      `Unknown backend '${value}'. Valid values: ${BACKEND_REQUESTS.join(', ')}.`,
    );
  }
  return match;
}

/**
 * One line for logs: `wasm (XNNPACK, SIMD, 1 thread); tried: tfjs-node-gpu (not installed), tfjs-node (not installed)`.
 */
export function describeBackend(info: BackendInfo): string {
  const threads = `${info.threads} thread${info.threads === 1 ? '' : 's'}`;
  let head: string;
  if (info.name === 'tensorflow') {
    head = `tensorflow (${shortName(info.package ?? 'tfjs-node')}, ${info.gpu ? 'GPU' : 'CPU'}, ${threads})`;
  } else if (info.name === 'wasm') {
    head = `wasm (XNNPACK, ${info.simd ? 'SIMD' : 'no SIMD'}, ${threads})`;
  } else {
    head = `cpu (pure JS, ${threads})`;
  }
  if (info.fallbacks.length === 0) return head;
  return `${head}; tried: ${info.fallbacks.map((f) => `${f.candidate} (${f.reason})`).join(', ')}`;
}

async function selectBackend(request: BackendRequest): Promise<BackendInfo> {
  const fallbacks: BackendFallback[] = [];
  if (request === 'auto' || request === 'tensorflow') {
    for (const pkg of NATIVE_PACKAGES) {
      const outcome = await tryNative(pkg);
      if (typeof outcome !== 'string') return { ...outcome, requested: request, fallbacks };
      fallbacks.push({ candidate: shortName(pkg), reason: outcome });
    }
    if (request === 'tensorflow') throw unavailable('tensorflow', fallbacks);
  }
  if (request === 'auto' || request === 'wasm') {
    const outcome = await tryWasm();
    if (typeof outcome !== 'string') return { ...outcome, requested: request, fallbacks };
    fallbacks.push({ candidate: 'wasm', reason: outcome });
    if (request === 'wasm') throw unavailable('wasm', fallbacks);
  }
  const outcome = await tryCpu();
  if (typeof outcome !== 'string') return { ...outcome, requested: request, fallbacks };
  fallbacks.push({ candidate: 'cpu', reason: outcome });
  throw unavailable(request, fallbacks);
}

type Started = Omit<BackendInfo, 'requested' | 'fallbacks'>;

/** Loads a native package; returns why not when it cannot. */
async function tryNative(pkg: NativePackage): Promise<Started | string> {
  let module: Record<string, unknown>;
  try {
    // A variable specifier: the packages are optional and TypeScript must not require their types.
    const specifier: string = pkg;
    module = (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    return isModuleNotFound(error, pkg) ? 'not installed' : `failed to load: ${firstLine(error)}`;
  }
  try {
    await activate('tensorflow');
  } catch (error) {
    return `failed to start: ${firstLine(error)}`;
  }
  const backend = tf.backend() as unknown as { isUsingGpuDevice?: boolean };
  const nativeVersion = (module.version as Record<string, string> | undefined)?.['tfjs-node'];
  return {
    name: 'tensorflow',
    package: pkg,
    gpu: backend.isUsingGpuDevice === true,
    threads: os.availableParallelism(),
    simd: true,
    versions: { ...baseVersions(), ...(nativeVersion === undefined ? {} : { [shortName(pkg)]: nativeVersion }) },
  };
}

async function tryWasm(): Promise<Started | string> {
  let wasmModule: typeof WasmBackend;
  try {
    wasmModule = await import('@tensorflow/tfjs-backend-wasm');
    registerWasmTrainingKernels();
    await activate('wasm');
  } catch (error) {
    return isModuleNotFound(error, '@tensorflow/tfjs-backend-wasm') ? 'not installed' : `failed to start: ${firstLine(error)}`;
  }
  guardWasmAllocations();
  return {
    name: 'wasm',
    gpu: false,
    threads: wasmModule.getThreadsCount(),
    simd: (await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) === true,
    versions: { ...baseVersions(), 'tfjs-backend-wasm': wasmModule.version_wasm },
  };
}

async function tryCpu(): Promise<Started | string> {
  try {
    await activate('cpu');
  } catch (error) {
    return `failed to start: ${firstLine(error)}`;
  }
  return { name: 'cpu', gpu: false, threads: 1, simd: false, versions: baseVersions() };
}

/** Makes `name` the active backend; throws when tfjs reports that it could not initialise it. */
async function activate(name: BackendName): Promise<void> {
  if (!(await tf.setBackend(name))) {
    throw new Error(`tf.setBackend('${name}') reported failure`);
  }
  await tf.ready();
}

function baseVersions(): Record<string, string> {
  const versions: Record<string, string> = { node: process.versions.node };
  for (const [name, version] of Object.entries(tf.version)) {
    if (typeof version === 'string') versions[name] = version;
  }
  return versions;
}

function unavailable(request: BackendRequest, fallbacks: BackendFallback[]): MlError {
  const tried = fallbacks.map((f) => `${f.candidate}: ${f.reason}`).join('; ');
  const hint =
    request === 'tensorflow'
      ? ' Install @tensorflow/tfjs-node or @tensorflow/tfjs-node-gpu, or use FRACTURE_BACKEND=auto.'
      : ' Use FRACTURE_BACKEND=auto to fall back to another backend.';
  return new MlError('BACKEND_UNAVAILABLE', `Backend '${request}' is unavailable (${tried}).${hint}`);
}

function isModuleNotFound(error: unknown, specifier: string): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : '';
  // Only a missing *package itself* means "not installed"; a missing dependency inside it is a broken install.
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(`'${specifier}'`);
}

function shortName(pkg: string): string {
  return pkg.replace('@tensorflow/', '');
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
