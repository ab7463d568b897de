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
 * General case: insert `s-1` zeros between the rows and columns of dy, pad by `K-1-pad`, and correlate
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
    const out = isUnpaddedPointwise(geo) ? pointwiseInputGrad(scope, dy, filter, geo) : transposedConv(scope, dy, filter, geo);
    return scope.keep(out);
  } finally {
    scope.dispose();
  }
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
  const flipped = scope.run('Reverse', { x: filter }, { dims: [0, 1] });
  const swapped = scope.run('Transpose', { x: flipped }, { perm: [0, 1, 3, 2] }); // [KH,KW,Co,Ci]
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
