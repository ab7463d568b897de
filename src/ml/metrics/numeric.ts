/**
 * Summation that reproduces NumPy's floating-point results, so our metrics agree with scikit-learn to
 * the last bits rather than merely to 1e-12.
 *
 * NumPy's `add.reduce` over a contiguous run (`a.sum()`, `a.mean()`, `a.sum(axis=-1)` of a C-ordered
 * array) uses pairwise summation with an 8-way unrolled base case; a reduction over axis 0 adds row by
 * row instead, which is {@link sequentialSum}.
 * @module
 */

/** Block size below which NumPy stops splitting (numpy/_core/src/umath/loops_utils.h, `PW_BLOCKSIZE`). */
const PAIRWISE_BLOCK = 128;

function pairwise(values: ArrayLike<number>, start: number, n: number): number {
  if (n < 8) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += values[start + i] as number;
    return sum;
  }
  if (n <= PAIRWISE_BLOCK) {
    const r = new Float64Array(8);
    for (let j = 0; j < 8; j++) r[j] = values[start + j] as number;
    let i = 8;
    for (; i < n - (n % 8); i += 8) {
      for (let j = 0; j < 8; j++) r[j] = (r[j] as number) + (values[start + i + j] as number);
    }
    let sum =
      ((r[0]! + r[1]!) + (r[2]! + r[3]!)) + ((r[4]! + r[5]!) + (r[6]! + r[7]!));
    for (; i < n; i++) sum += values[start + i] as number;
    return sum;
  }
  let half = Math.floor(n / 2);
  half -= half % 8;
  return pairwise(values, start, half) + pairwise(values, start + half, n - half);
}

/**
 * Sum with NumPy's pairwise algorithm (`np.sum` of a contiguous 1-D float64 array).
 * @example
 * numpySum([0.1, 0.2, 0.3]); // 0.6000000000000001, as numpy
 */
export function numpySum(values: ArrayLike<number>): number {
  return 0 + pairwise(values, 0, values.length);
}

/** `np.mean` of a contiguous 1-D float64 array; NaN for an empty array (as NumPy, with its warning). */
export function numpyMean(values: ArrayLike<number>): number {
  return numpySum(values) / values.length;
}

/** Left-to-right sum, as NumPy reduces a C-ordered matrix over axis 0 (one column at a time, row by row). */
export function sequentialSum(values: ArrayLike<number>): number {
  let sum = 0;
  for (let i = 0; i < values.length; i++) sum += values[i] as number;
  return sum;
}

/** `numerator / denominator`, or 0 when the denominator is 0: scikit-learn's `zero_division=0`. */
export function divideOrZero(numerator: number, denominator: number): number {
  return denominator === 0 ? 0 : numerator / denominator;
}
