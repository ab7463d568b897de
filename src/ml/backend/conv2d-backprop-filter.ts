/**
 * `Conv2DBackpropFilter` for the wasm backend, which tfjs-backend-wasm 4.22 lacks (so no conv layer
 * could train there). Built from wasm's own XNNPACK-backed kernels, never from engine ops.
 * @module
 */
import type {
  Conv2DBackpropFilterAttrs,
  KernelBackend,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs';
import { convGeometry, explicitPad, isUnpaddedPointwise } from './conv2d-geometry.ts';
import type { ConvGeometry } from './conv2d-geometry.ts';
import { KernelScope } from './kernel-compose.ts';
import { ensureWasmHeapRoom } from './wasm-memory.ts';

/** Tuning of {@link conv2DBackpropFilterWasm}; the defaults are what the registered kernel uses. */
export interface FilterGradOptions {
  /** Largest dy slice, in bytes, handed to one convolution (default {@link FILTER_GRAD_CHUNK_BYTES}). */
  chunkBytes?: number;
}

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: KernelBackend;
  attrs?: NamedAttrMap;
}

/**
 * dW `[KH,KW,Ci,Co]` of an NHWC conv2d (dilation 1) from x `[N,H,W,Ci]` and dy `[N,OH,OW,Co]`.
 *
 * The filter gradient is itself a convolution in which the batch and channel axes swap roles, with dy
 * as the filter dilated by the forward stride (DESIGN.md §5):
 * `dW = transpose(conv2d(pad(transpose(x,[3,1,2,0])), transpose(dy,[1,2,0,3]), dilations s)[:, :KH, :KW, :], [1,2,0,3])`.
 * A 1x1 filter without padding is instead one GEMM, `dW = xₛᵀ · dy` with xₛ the pixels the stride
 * visits: for 1x1 the dilated convolution above degenerates into a full-image kernel and is several
 * times slower (bench/backend-kernels.ts).
 */
export function conv2DBackpropFilterWasm(args: KernelArgs, options: FilterGradOptions = {}): TensorInfo {
  const { x, dy } = args.inputs as unknown as { x: TensorInfo; dy: TensorInfo };
  const attrs = args.attrs as unknown as Conv2DBackpropFilterAttrs;
  const geo = convGeometry(
    'Conv2DBackpropFilter',
    x.shape,
    attrs.filterShape,
    attrs.strides,
    attrs.pad,
    attrs.dataFormat,
    attrs.dimRoundingMode,
  );
  const scope = new KernelScope(args.backend, 'wasm');
  try {
    const out = isUnpaddedPointwise(geo)
      ? pointwiseFilterGrad(scope, x, dy, geo)
      : convFilterGrad(scope, x, dy, geo, options.chunkBytes ?? FILTER_GRAD_CHUNK_BYTES);
    return scope.keep(out);
  } finally {
    scope.dispose();
  }
}

/** 1x1, no padding: dW = xₛᵀ · dy, one GEMM on XNNPACK. */
function pointwiseFilterGrad(scope: KernelScope, x: TensorInfo, dy: TensorInfo, geo: ConvGeometry): TensorInfo {
  const rows = geo.batch * geo.outHeight * geo.outWidth;
  const visited = subsampleByStride(scope, x, geo); // [N,OH,OW,Ci]
  const x2 = scope.run('Reshape', { x: visited }, { shape: [rows, geo.inChannels] });
  // wasm's BatchMatMul runs XNNPACK only without transposes; an explicit transpose is far cheaper.
  const xT = scope.run('Transpose', { x: x2 }, { perm: [1, 0] });
  const dy2 = scope.run('Reshape', { x: dy }, { shape: [rows, geo.outChannels] });
  const dw = scope.run('BatchMatMul', { a: xT, b: dy2 }, { transposeA: false, transposeB: false });
  return scope.run('Reshape', { x: dw }, { shape: [1, 1, geo.inChannels, geo.outChannels] });
}

/**
 * The pixels `(oh*sh, ow*sw)` of x `[N,H,W,C]` as `[N,OH,OW,C]`. Uses a rank-4 Slice of a reshaped
 * view, which copies whole channel vectors; wasm's StridedSlice is an order of magnitude slower.
 */
function subsampleByStride(scope: KernelScope, x: TensorInfo, geo: ConvGeometry): TensorInfo {
  const { batch: n, outHeight: oh, outWidth: ow, strideHeight: sh, strideWidth: sw, inChannels: c } = geo;
  if (sh === 1 && sw === 1 && oh === geo.inHeight && ow === geo.inWidth) return x;
  // Make the image exactly OH*sh x OW*sw: crop rows no window reads, or pad rows past the end that
  // the reshape needs but the slice then drops.
  let fitted = x;
  const cropH = Math.min(geo.inHeight, oh * sh);
  const cropW = Math.min(geo.inWidth, ow * sw);
  if (cropH < geo.inHeight || cropW < geo.inWidth) {
    fitted = scope.run('Slice', { x: fitted }, { begin: [0, 0, 0, 0], size: [n, cropH, cropW, c] });
  }
  if (cropH < oh * sh || cropW < ow * sw) {
    fitted = scope.run('PadV2', { x: fitted }, { paddings: explicitPad(0, oh * sh - cropH, 0, ow * sw - cropW), constantValue: 0 });
  }
  const view = scope.run('Reshape', { x: fitted }, { shape: [n * oh, sh, ow, sw * c] });
  const picked = scope.run('Slice', { x: view }, { begin: [0, 0, 0, 0], size: [n * oh, 1, ow, c] });
  return scope.run('Reshape', { x: picked }, { shape: [n, oh, ow, c] });
}

/**
 * Upper bound on the dy slice one dilated convolution takes as its filter. XNNPACK copies its filter
 * twice inside C++ (transposed, then packed), where a failed allocation cannot be recovered from, so
 * large batches are split and their partial gradients summed. 64 MiB leaves typical 64-128 px steps
 * in one piece (a [16,64,64,64] dy is 16 MiB) and splits a VGG16 224 px block-1 dy (196 MiB) in four.
 */
export const FILTER_GRAD_CHUNK_BYTES = 64 * 2 ** 20;

/** The DESIGN.md identity, over batch chunks small enough for XNNPACK's hidden filter copies. */
function convFilterGrad(scope: KernelScope, x: TensorInfo, dy: TensorInfo, geo: ConvGeometry, chunkBytes: number): TensorInfo {
  const bytesPerImage = 4 * geo.outHeight * geo.outWidth * geo.outChannels;
  const chunk = Math.max(1, Math.min(geo.batch, Math.floor(chunkBytes / bytesPerImage)));
  if (chunk === geo.batch) return convFilterGradChunk(scope, x, dy, geo);
  let total: TensorInfo | undefined;
  for (let start = 0; start < geo.batch; start += chunk) {
    const size = Math.min(chunk, geo.batch - start);
    const part = scope.adopt(inNestedScope(scope, (inner) => {
      const xPart = inner.run('Slice', { x }, { begin: [start, 0, 0, 0], size: [size, geo.inHeight, geo.inWidth, geo.inChannels] });
      const dyPart = inner.run('Slice', { x: dy }, { begin: [start, 0, 0, 0], size: [size, geo.outHeight, geo.outWidth, geo.outChannels] });
      return convFilterGradChunk(inner, xPart, dyPart, { ...geo, batch: size });
    }));
    if (total === undefined) {
      total = part;
    } else {
      const sum = scope.run('Add', { a: total, b: part });
      scope.release(total);
      scope.release(part);
      total = sum;
    }
  }
  return total as TensorInfo;
}

/** Runs `body` in a scope of its own whose intermediates are freed as soon as it returns. */
function inNestedScope(parent: KernelScope, body: (scope: KernelScope) => TensorInfo): TensorInfo {
  const inner = new KernelScope(parent.backend, parent.backendName);
  try {
    return inner.keep(body(inner));
  } finally {
    inner.dispose();
  }
}

/** One dilated convolution with batch and channels swapped. */
function convFilterGradChunk(scope: KernelScope, x: TensorInfo, dy: TensorInfo, geo: ConvGeometry): TensorInfo {
  // Padded rows the dilated dy spans: taps 0..KH-1 each see rows kh, kh+s, ..., kh+(OH-1)s.
  const spanH = (geo.outHeight - 1) * geo.strideHeight + geo.filterHeight;
  const spanW = (geo.outWidth - 1) * geo.strideWidth + geo.filterWidth;
  // Rows past the span are never read by the forward pass; when the input has such rows the
  // convolution yields extra taps, cut off below, instead of a (negative) crop of x.
  const padBottom = Math.max(0, spanH - geo.inHeight - geo.padTop);
  const padRight = Math.max(0, spanW - geo.inWidth - geo.padLeft);
  const tapsH = geo.inHeight + geo.padTop + padBottom - (geo.outHeight - 1) * geo.strideHeight;
  const tapsW = geo.inWidth + geo.padLeft + padRight - (geo.outWidth - 1) * geo.strideWidth;

  const xT = scope.run('Transpose', { x }, { perm: [3, 1, 2, 0] }); // [Ci,H,W,N]
  const dyT = scope.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] }); // [OH,OW,N,Co]
  // dyT is the Conv2D's filter: inside C++ it is copied once transposed and once packed by XNNPACK,
  // and a failed allocation there is fatal to the module. Make sure the heap has room first so an
  // oversized step fails with a clean, recoverable OUT_OF_MEMORY instead.
  const dyBytes = 4 * dy.shape.reduce((size, dim) => size * dim, 1);
  const indirectionBytes = 4 * geo.inChannels * geo.filterHeight * geo.filterWidth * geo.outHeight * geo.outWidth;
  ensureWasmHeapRoom(scope.backend, 2 * dyBytes + indirectionBytes + 2 ** 20);
  let grad = scope.run(
    'Conv2D',
    { x: xT, filter: dyT },
    {
      strides: 1,
      pad: explicitPad(geo.padTop, padBottom, geo.padLeft, padRight),
      dataFormat: 'NHWC',
      dilations: [geo.strideHeight, geo.strideWidth],
    },
  ); // [Ci,tapsH,tapsW,Co]
  if (tapsH !== geo.filterHeight || tapsW !== geo.filterWidth) {
    grad = scope.run(
      'Slice',
      { x: grad },
      { begin: [0, 0, 0, 0], size: [geo.inChannels, geo.filterHeight, geo.filterWidth, geo.outChannels] },
    );
  }
  return scope.run('Transpose', { x: grad }, { perm: [1, 2, 0, 3] }); // [KH,KW,Ci,Co]
}
