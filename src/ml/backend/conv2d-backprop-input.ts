/**
 * `Conv2DBackpropInput` for the wasm backend as a transposed convolution on XNNPACK. The kernel that
 * ships with tfjs-backend-wasm 4.22 is a naive C++ loop, many times slower than the forward Conv2D.
 * @module
 */
import type {
  Conv2DBackpropInputAttrs,
  KernelBackend,
  NamedAttrMap,
  NamedTensorInfoMap,
  TensorInfo,
} from '@tensorflow/tfjs';
import { convGeometry, explicitPad, isUnpaddedPointwise } from './conv2d-geometry.ts';
import type { ConvGeometry } from './conv2d-geometry.ts';
import { KernelScope } from './kernel-compose.ts';

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: KernelBackend;
  attrs?: NamedAttrMap;
}

/**
 * dx `[N,H,W,Ci]` of an NHWC conv2d (dilation 1) from dy `[N,OH,OW,Co]` and the filter `[KH,KW,Ci,Co]`.
 *
 * Stride 1: correlate dy, padded by `K-1-pad`, with the filter flipped in space and with its channel
 * axes swapped. Strides > 1 use the polyphase split of the same transposed convolution (see
 * {@link polyphaseInputGrad}), which does s² less work than correlating a zero-inserted dy.
 *
 * {@link transposedConv} (general case, kept for reference and stride 1): insert `s-1` zeros between the rows and columns of dy, pad by `K-1-pad`, and correlate
 * (stride 1, on wasm's Conv2D) with the filter flipped in space and with its channel axes swapped.
 * A 1x1 filter with no padding skips the zeros: it multiplies dy by the filter first (s² less work)
 * and then spreads the result onto every s-th pixel.
 */
export function conv2DBackpropInputWasm(args: KernelArgs): TensorInfo {
  const { dy, filter } = args.inputs as unknown as { dy: TensorInfo; filter: TensorInfo };
  const attrs = args.attrs as unknown as Conv2DBackpropInputAttrs;
  const geo = convGeometry(
    'Conv2DBackpropInput',
    attrs.inputShape,
    filter.shape,
    attrs.strides,
    attrs.pad,
    attrs.dataFormat,
    attrs.dimRoundingMode,
  );
  const scope = new KernelScope(args.backend, 'wasm');
  try {
    let out: TensorInfo;
    if (isUnpaddedPointwise(geo)) out = pointwiseInputGrad(scope, dy, filter, geo);
    else if (geo.strideHeight > 1 || geo.strideWidth > 1) out = polyphaseInputGrad(scope, dy, filter, geo);
    else out = transposedConv(scope, dy, filter, geo);
    return scope.keep(out);
  } finally {
    scope.dispose();
  }
}

/**
 * Transposed convolution for strides > 1, split by output phase. The dx rows `i` with
 * `(i + padTop) mod sh = r` only receive the filter rows `k ≡ r (mod sh)`: with `i + padTop = q·sh + r`,
 * `dx[i] = Σ_m dy[q - m] · W[r + m·sh]`, a stride-1 correlation of dy with the sub-filter `W[r::sh]`
 * (flipped). So one stride-1 Conv2D per phase `(rh, rw)` (s² in all, each 1/s² of the work of the
 * zero-inserted version) computes every dx pixel exactly once; a JS pass on the heap interleaves them.
 * Phases with no filter taps (a filter smaller than the stride) contribute zeros.
 */
function polyphaseInputGrad(scope: KernelScope, dy: TensorInfo, filter: TensorInfo, geo: ConvGeometry): TensorInfo {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw, padTop: ph, padLeft: pw } = geo;
  const { outChannels: co, inChannels: ci } = geo;
  const swapped = flippedSwappedFilter(scope, filter); // [KH,KW,Co,Ci], flipped
  // Phase q-rows 0..qh-1 cover i + padTop in [0, H + padTop).
  const qh = Math.ceil((geo.inHeight + ph) / sh);
  const qw = Math.ceil((geo.inWidth + pw) / sw);
  const phases: Phase[] = [];
  for (let rh = 0; rh < sh; rh++) {
    const krh = Math.ceil((kh - rh) / sh);
    if (krh <= 0) continue;
    for (let rw = 0; rw < sw; rw++) {
      const krw = Math.ceil((kw - rw) / sw);
      if (krw <= 0) continue;
      // In the flipped filter, original row r + m·sh sits at kh-1-r-m·sh: the sub-filter taps, flipped,
      // start at kh-1-r-(krh-1)·sh and go forward by sh.
      const top = kh - 1 - rh - (krh - 1) * sh;
      const left = kw - 1 - rw - (krw - 1) * sw;
      const sub = scope.run(
        'StridedSlice',
        { x: swapped },
        {
          begin: [top, left, 0, 0],
          end: [top + (krh - 1) * sh + 1, left + (krw - 1) * sw + 1, co, ci],
          strides: [sh, sw, 1, 1],
          beginMask: 0,
          endMask: 0,
          ellipsisMask: 0,
          newAxisMask: 0,
          shrinkAxisMask: 0,
        },
      ); // [krh,krw,Co,Ci]
      // Output row j is q = j: it reads dy[q-krh+1 .. q], hence krh-1 zero rows on top; at least qh rows.
      const out = scope.run(
        'Conv2D',
        { x: dy, filter: sub },
        {
          strides: 1,
          pad: explicitPad(krh - 1, Math.max(0, qh - geo.outHeight), krw - 1, Math.max(0, qw - geo.outWidth)),
          dataFormat: 'NHWC',
          dilations: 1,
        },
      );
      phases.push({ info: out, rowOffset: rh - ph, colOffset: rw - pw });
    }
  }
  return interleavePhases(scope, phases, geo);
}

interface Phase {
  /** `[N, rows, cols, Ci]`: row q holds dx row `q·sh + rowOffset` (likewise for columns). */
  info: TensorInfo;
  rowOffset: number;
  colOffset: number;
}

/**
 * The filter `[KH,KW,Ci,Co]` flipped in space with its channel axes swapped: `[KH,KW,Co,Ci]`.
 * wasm's `Reverse` takes 80-150 ms on a 3x3x512x512 filter (more than the convolution); flipping both
 * spatial axes only reverses the order of the KH·KW contiguous `[Co,Ci]` blocks, a few block copies.
 */
function flippedSwappedFilter(scope: KernelScope, filter: TensorInfo): TensorInfo {
  const swapped = scope.run('Transpose', { x: filter }, { perm: [0, 1, 3, 2] });
  const backend = scope.backend as unknown as WasmHeapBackend;
  const taps = (filter.shape[0] as number) * (filter.shape[1] as number);
  if (taps === 1) return swapped;
  const flipped = scope.adopt(backend.makeOutput([...swapped.shape], 'float32'));
  const block = (filter.shape[2] as number) * (filter.shape[3] as number);
  const from = backend.typedArrayFromHeap(swapped);
  const to = backend.typedArrayFromHeap(flipped);
  for (let t = 0; t < taps; t++) to.set(from.subarray(t * block, (t + 1) * block), (taps - 1 - t) * block);
  scope.release(swapped);
  return flipped;
}

/** The part of tfjs-backend-wasm's `BackendWasm` used to write an output from JS. */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/** Writes each phase's pixels to their places in a new dx `[N,H,W,Ci]` (zeros where no phase lands). */
function interleavePhases(scope: KernelScope, phases: readonly Phase[], geo: ConvGeometry): TensorInfo {
  const backend = scope.backend as unknown as WasmHeapBackend;
  const { batch: n, inHeight: h, inWidth: w, inChannels: c, strideHeight: sh, strideWidth: sw } = geo;
  const dxInfo = scope.adopt(backend.makeOutput([n, h, w, c], 'float32'));
  // Views after the last allocation: growing the heap detaches earlier ones.
  const dx = backend.typedArrayFromHeap(dxInfo);
  if (phases.length < sh * sw) dx.fill(0);
  for (const phase of phases) {
    const src = backend.typedArrayFromHeap(phase.info);
    const rows = phase.info.shape[1] as number;
    const cols = phase.info.shape[2] as number;
    for (let b = 0; b < n; b++) {
      for (let q = 0; q < rows; q++) {
        const i = q * sh + phase.rowOffset;
        if (i < 0 || i >= h) continue;
        for (let t = 0; t < cols; t++) {
          const j = t * sw + phase.colOffset;
          if (j < 0 || j >= w) continue;
          const from = ((b * rows + q) * cols + t) * c;
          const to = ((b * h + i) * w + j) * c;
          for (let ch = 0; ch < c; ch++) dx[to + ch] = src[from + ch] as number;
        }
      }
    }
  }
  return dxInfo;
}

/** Full transposed convolution: zero-insert, pad, correlate with the flipped, channel-swapped filter. */
function transposedConv(scope: KernelScope, dy: TensorInfo, filter: TensorInfo, geo: ConvGeometry): TensorInfo {
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = geo;
  const dilated = spreadByStride(scope, dy, geo.outHeight, geo.outWidth, geo.outChannels, geo); // [N,OH*sh,OW*sw,Co]
  // Correlating the OH*sh rows of dilated dy with pads (top, bottom) gives H rows when
  // top = KH-1-padTop and bottom = H + KH-1 - top - OH*sh (the trailing sh-1 zero rows of the last
  // cell count against bottom). Either may be negative with large explicit pads or a stride that
  // leaves input rows unread: then we pad by zero there and crop the surplus rows afterwards.
  const top = kh - 1 - geo.padTop;
  const left = kw - 1 - geo.padLeft;
  const bottom = geo.inHeight + kh - 1 - top - geo.outHeight * sh;
  const right = geo.inWidth + kw - 1 - left - geo.outWidth * sw;
  const swapped = flippedSwappedFilter(scope, filter); // [KH,KW,Co,Ci], flipped
  let dx = scope.run(
    'Conv2D',
    { x: dilated, filter: swapped },
    {
      strides: 1,
      pad: explicitPad(Math.max(0, top), Math.max(0, bottom), Math.max(0, left), Math.max(0, right)),
      dataFormat: 'NHWC',
      dilations: 1,
    },
  );
  if (top < 0 || bottom < 0 || left < 0 || right < 0) {
    dx = scope.run(
      'Slice',
      { x: dx },
      { begin: [0, Math.max(0, -top), Math.max(0, -left), 0], size: [geo.batch, geo.inHeight, geo.inWidth, geo.inChannels] },
    );
  }
  return dx;
}

/** 1x1 filter, no padding: dx = spread(dy · Wᵀ) with the products on every s-th pixel. */
function pointwiseInputGrad(scope: KernelScope, dy: TensorInfo, filter: TensorInfo, geo: ConvGeometry): TensorInfo {
  // A 1x1 Conv2D with the channel-swapped filter is the GEMM dy · Wᵀ on XNNPACK; BatchMatMul with
  // transposeB would take wasm's naive loop.
  const swapped = scope.run('Transpose', { x: filter }, { perm: [0, 1, 3, 2] }); // [1,1,Co,Ci]
  const prod4 = scope.run(
    'Conv2D',
    { x: dy, filter: swapped },
    { strides: 1, pad: 'valid', dataFormat: 'NHWC', dilations: 1 },
  ); // [N,OH,OW,Ci]
  if (geo.strideHeight === 1 && geo.strideWidth === 1 && geo.outHeight === geo.inHeight && geo.outWidth === geo.inWidth) {
    return prod4;
  }
  const spread = spreadByStride(scope, prod4, geo.outHeight, geo.outWidth, geo.inChannels, geo); // [N,OH*sh,OW*sw,Ci]
  const spreadH = geo.outHeight * geo.strideHeight;
  const spreadW = geo.outWidth * geo.strideWidth;
  if (spreadH === geo.inHeight && spreadW === geo.inWidth) return spread;
  if (spreadH >= geo.inHeight && spreadW >= geo.inWidth) {
    return scope.run('Slice', { x: spread }, { begin: [0, 0, 0, 0], size: [geo.batch, geo.inHeight, geo.inWidth, geo.inChannels] });
  }
  // Input rows past the last window (e.g. 'valid' with a stride that does not divide) get no gradient.
  return scope.run(
    'PadV2',
    { x: spread },
    { paddings: explicitPad(0, Math.max(0, geo.inHeight - spreadH), 0, Math.max(0, geo.inWidth - spreadW)), constantValue: 0 },
  );
}

/**
 * Puts each pixel of `t` `[N,h,w,C]` at the top-left of an `sh x sw` cell of zeros: `[N,h*sh,w*sw,C]`.
 * One pad of a rank-6 view does it without any per-element JS.
 */
function spreadByStride(scope: KernelScope, t: TensorInfo, h: number, w: number, c: number, geo: ConvGeometry): TensorInfo {
  const { batch, strideHeight: sh, strideWidth: sw } = geo;
  if (sh === 1 && sw === 1) return t;
  const view = scope.run('Reshape', { x: t }, { shape: [batch, h, 1, w, 1, c] });
  const padded = scope.run(
    'PadV2',
    { x: view },
    {
      paddings: [
        [0, 0],
        [0, 0],
        [0, sh - 1],
        [0, 0],
        [0, sw - 1],
        [0, 0],
      ],
      constantValue: 0,
    },
  );
  return scope.run('Reshape', { x: padded }, { shape: [batch, h * sh, w * sw, c] });
}
