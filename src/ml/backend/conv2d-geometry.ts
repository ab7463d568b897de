/**
 * Shared geometry of the convolution gradients: validates the attributes the wasm gradient kernels
 * support and resolves TF's (possibly asymmetric) padding into explicit numbers.
 * @module
 */
import * as tf from '@tensorflow/tfjs';

/** Padding as tfjs kernels receive it: a mode, one number for all sides, or explicit NHWC pairs. */
export type ConvPad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

/** The resolved 2-D geometry of one NHWC convolution with dilation 1. */
export interface ConvGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  /** Zeros added above/left of the input (TF puts the odd one of 'same' at the bottom/right). */
  padTop: number;
  padLeft: number;
}

/**
 * Resolves the geometry of a forward convolution from its input shape `[N,H,W,Ci]`, filter shape
 * `[KH,KW,Ci,Co]` and attributes, with tfjs's own `computeConv2DInfo` so padding matches every backend.
 * @throws Error for NCHW data (the wasm Conv2D these kernels build on is NHWC only).
 */
export function convGeometry(
  kernelName: string,
  inShape: readonly number[],
  filterShape: readonly number[],
  strides: [number, number] | number,
  pad: ConvPad,
  dataFormat: 'NHWC' | 'NCHW',
  dimRoundingMode: 'floor' | 'round' | 'ceil' | undefined,
): ConvGeometry {
  if (dataFormat !== 'NHWC') {
    throw new Error(`${kernelName} on wasm supports dataFormat 'NHWC' only, got '${dataFormat}'.`);
  }
  if (inShape.length !== 4 || filterShape.length !== 4) {
    throw new Error(`${kernelName} expects rank-4 input and filter, got [${inShape}] and [${filterShape}].`);
  }
  const info = tf.backend_util.computeConv2DInfo(
    inShape as [number, number, number, number],
    filterShape as [number, number, number, number],
    strides,
    1,
    pad,
    dimRoundingMode,
    false,
    'channelsLast',
  );
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
  };
}

/** Explicit NHWC padding for the wasm Conv2D kernel (which then pads inside XNNPACK, for free). */
export function explicitPad(top: number, bottom: number, left: number, right: number): tf.backend_util.ExplicitPadding {
  return [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
}

/** 1x1 filter with no padding (any stride): the case both gradients handle as a plain GEMM. */
export function isUnpaddedPointwise(geo: ConvGeometry): boolean {
  return geo.filterHeight === 1 && geo.filterWidth === 1 && geo.padTop === 0 && geo.padLeft === 0;
}
