/**
 * A `BatchMatMul` for wasm that keeps transposed products on XNNPACK.
 *
 * tfjs-backend-wasm 4.22 runs XNNPACK's GEMM only when neither operand is transposed; otherwise it
 * falls back to a naive blocked loop, 10-20x slower. Backprop through a dense layer asks for exactly
 * those products (`dy · Wᵀ` and `xᵀ · dy`), so we transpose the operand explicitly (O(size)) and
 * hand the shipped kernel a plain product (O(size · other dim)).
 * @module
 */
import type { BatchMatMulAttrs, KernelBackend, KernelFunc, TensorInfo } from '@tensorflow/tfjs';
import { KernelScope, createCheckedKernel } from './kernel-compose.ts';

/**
 * Wraps the shipped wasm `BatchMatMul` kernel function. Products with a batch of one (every dense
 * layer) are rewritten without transposes; batched products go to the shipped kernel unchanged.
 * @param shipped the kernel function registered by tfjs-backend-wasm.
 */
export function createBatchMatMulWasm(shipped: KernelFunc): KernelFunc {
  const checkedShipped = createCheckedKernel('BatchMatMul', shipped);
  const batchMatMul: KernelFunc = (args) => {
    const { a, b } = args.inputs as unknown as { a: TensorInfo; b: TensorInfo };
    const attrs = args.attrs as unknown as BatchMatMulAttrs;
    if ((!attrs.transposeA && !attrs.transposeB) || outerSize(a) !== 1 || outerSize(b) !== 1) {
      return checkedShipped(args);
    }
    const scope = new KernelScope(args.backend as KernelBackend, 'wasm');
    try {
      const plainA = attrs.transposeA ? transposeLastTwo(scope, a) : a;
      const plainB = attrs.transposeB ? transposeLastTwo(scope, b) : b;
      return checkedShipped({
        inputs: { a: plainA, b: plainB },
        backend: args.backend,
        attrs: { ...attrs, transposeA: false, transposeB: false },
      });
    } finally {
      scope.dispose();
    }
  };
  return batchMatMul;
}

function outerSize(t: TensorInfo): number {
  return t.shape.slice(0, -2).reduce((size, dim) => size * dim, 1);
}

/** `[..., r, c]` to `[..., c, r]`; leading dims are all 1 here, so this is a 2-D transpose. */
function transposeLastTwo(scope: KernelScope, t: TensorInfo): TensorInfo {
  const rank = t.shape.length;
  const perm = [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
  return scope.run('Transpose', { x: t }, { perm });
}
