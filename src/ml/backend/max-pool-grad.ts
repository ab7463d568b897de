/**
 * `MaxPoolGrad` for the wasm backend, computed in JavaScript directly on the wasm heap.
 *
 * The kernel shipped with tfjs-backend-wasm 4.22 takes 100-250 ms for one 2x2 pool of a batch of 16
 * (about 25x the forward `MaxPool`): it walks every input pixel and re-scans every window covering
 * it. Here each window is scanned once, channels innermost (contiguous in NHWC), and its gradient is
 * added at its argmax: N·OH·OW·KH·KW·C comparisons and N·OH·OW·C additions.
 *
 * Semantics are those of the tfjs `cpu` kernel (`maxPoolPositions` + `maxPoolGrad`): windows are
 * scanned row-major, the first strictly greater value wins (so ties go to the first position), taps
 * in the padding are skipped, and a window whose values are all -Infinity or NaN passes no gradient.
 * @module
 */
import * as tf from '@tensorflow/tfjs';
import type { KernelBackend, MaxPoolGradAttrs, NamedAttrMap, NamedTensorInfoMap, TensorInfo } from '@tensorflow/tfjs';

interface KernelArgs {
  inputs: NamedTensorInfoMap;
  backend: KernelBackend;
  attrs?: NamedAttrMap;
}

/** The part of tfjs-backend-wasm's `BackendWasm` this kernel uses (not exported as a type we can import). */
interface WasmHeapBackend {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(info: TensorInfo): Float32Array;
}

/**
 * dx `[N,H,W,C]` of a 2-D max pool (dilation 1) from dy `[N,OH,OW,C]` and the pool's input `[N,H,W,C]`
 * (the pool's `output` is not needed: the argmax is recomputed from the input, as tfjs-cpu does).
 */
export function maxPoolGradWasm(args: KernelArgs): TensorInfo {
  const { dy, input } = args.inputs as unknown as { dy: TensorInfo; input: TensorInfo };
  const attrs = args.attrs as unknown as MaxPoolGradAttrs;
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad,
    attrs.dimRoundingMode,
  );
  if (input.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`MaxPoolGrad on wasm supports float32 only, got ${input.dtype} and ${dy.dtype}.`);
  }
  const backend = args.backend as unknown as WasmHeapBackend;
  const dxInfo = backend.makeOutput([...input.shape], 'float32');
  // Views are taken after the allocation: growing the heap detaches earlier views.
  const x = backend.typedArrayFromHeap(input);
  const dyValues = backend.typedArrayFromHeap(dy);
  const dx = backend.typedArrayFromHeap(dxInfo);
  scatterToArgmax(x, dyValues, dx, info);
  return dxInfo;
}

/** Zeroes dx, then adds each window's dy at the window's first maximum, per channel. */
function scatterToArgmax(x: Float32Array, dy: Float32Array, dx: Float32Array, info: tf.backend_util.Conv2DInfo): void {
  const { batchSize: n, inHeight: h, inWidth: w, inChannels: c, outHeight: oh, outWidth: ow } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw } = info;
  const top = info.padInfo.top;
  const left = info.padInfo.left;
  dx.fill(0);
  const best = new Float32Array(c);
  const where = new Int32Array(c);
  for (let b = 0; b < n; b++) {
    for (let oy = 0; oy < oh; oy++) {
      const yCorner = oy * sh - top;
      const yStart = Math.max(0, yCorner);
      const yEnd = Math.min(h, yCorner + kh);
      for (let ox = 0; ox < ow; ox++) {
        const xCorner = ox * sw - left;
        const xStart = Math.max(0, xCorner);
        const xEnd = Math.min(w, xCorner + kw);
        // The window's first tap initialises the running maximum (NaN and -Infinity as "none yet"),
        // which saves filling the scratch arrays for every window.
        const first = ((b * h + yStart) * w + xStart) * c;
        for (let ch = 0; ch < c; ch++) {
          const v = x[first + ch] as number;
          const none = !(v > Number.NEGATIVE_INFINITY);
          best[ch] = none ? Number.NEGATIVE_INFINITY : v;
          where[ch] = none ? -1 : first + ch;
        }
        for (let y = yStart; y < yEnd; y++) {
          for (let xx = y === yStart ? xStart + 1 : xStart; xx < xEnd; xx++) {
            const base = ((b * h + y) * w + xx) * c;
            for (let ch = 0; ch < c; ch++) {
              const v = x[base + ch] as number;
              // Strictly greater: the first of equal maxima keeps the gradient, NaN never wins.
              if (v > (best[ch] as number)) {
                best[ch] = v;
                where[ch] = base + ch;
              }
            }
          }
        }
        const outBase = ((b * oh + oy) * ow + ox) * c;
        for (let ch = 0; ch < c; ch++) {
          const at = where[ch] as number;
          if (at >= 0) dx[at] = (dx[at] as number) + (dy[outBase + ch] as number);
        }
      }
    }
  }
}
