/**
 * Exact and near duplicates in a dataset, and the ones that leak across splits. Real datasets are
 * full of them (the public multi-region fracture set has 10,580 files but 3,887 unique images, and
 * most of its test images are byte-identical to training images), and a leak inflates every metric.
 *
 * Exact: equal sha256 of the file bytes. Near: both perceptual hashes of a 72x72 grey thumbnail
 * within `threshold` bits (Hamming distance) — an 8x8 average hash (aHash) and a 9x8 difference hash
 * (dHash). Re-encoded, resized and lightly edited copies stay within a bit or two; requiring both
 * hashes keeps unrelated radiographs of the same anatomy apart. Comparison is all-pairs on two 32-bit
 * words per hash: 50 million pairs for 10,000 images took about 0.5 s on one busy core (8x that with
 * `orientationInvariant`); hashing itself is decode-bound, about 250 images per CPU-second.
 * @module
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import sharp from 'sharp';
import { mapWithConcurrency } from './concurrency.ts';
import { DEFAULT_LIMIT_INPUT_PIXELS } from './preprocess.ts';
import type { DatasetItem, SplitName } from './types.ts';

export interface DuplicateOptions {
  /**
   * Largest Hamming distance (bits of 64) at which both hashes must agree for a near duplicate.
   * Default 4: on the 480 "unique" radiographs of `xray-binary` it found 31 groups (66 images) of
   * slightly rotated or cropped copies of one radiograph, none across classes; from 5 up, unrelated
   * images of the same anatomy start to match.
   */
  readonly threshold?: number;
  /**
   * Also match copies that are mirrored or rotated by 90/180/270 degrees (the 8 symmetries of the
   * square). Off by default: radiographs of left and right limbs mirror each other, and on real data
   * this found unrelated pairs across classes at the default threshold. Costs 8x the comparisons.
   */
  readonly orientationInvariant?: boolean;
  /** Images hashed at once. Default 2. */
  readonly concurrency?: number;
  /** Images with more pixels are not hashed (listed in `failed`). Default `DEFAULT_LIMIT_INPUT_PIXELS`. */
  readonly limitInputPixels?: number;
}

export const DEFAULT_NEAR_DUPLICATE_THRESHOLD = 4;

/** An item as `findDuplicates` needs it; `sha256` is computed when absent. */
export type DuplicateInput = Pick<DatasetItem, 'path' | 'label'> & Partial<Pick<DatasetItem, 'sha256' | 'presetSplit'>>;

/** Images that are copies of each other. */
export interface DuplicateGroup {
  readonly kind: 'exact' | 'near';
  /** Positions in the `items` given to `findDuplicates`, ascending. */
  readonly indices: readonly number[];
  readonly paths: readonly string[];
  readonly labels: readonly number[];
  /** Split of each member (`null` when unknown). */
  readonly splits: readonly (SplitName | null)[];
  /** The same image under different labels: a labelling error, whatever the split. */
  readonly conflictingLabels: boolean;
  /** Largest Hamming distance among the matched pairs (0 for exact groups). */
  readonly maxDistance: number;
}

/** A duplicate group whose members sit in more than one split. */
export interface CrossSplitLeak extends DuplicateGroup {
  /** The distinct splits involved, in train/val/test order. */
  readonly splitsInvolved: readonly SplitName[];
}

export interface DuplicateReport {
  readonly exactGroups: readonly DuplicateGroup[];
  /** Groups of near duplicates that are not all byte-identical (an exact group alone is not repeated here). */
  readonly nearGroups: readonly DuplicateGroup[];
  readonly crossSplitLeaks: readonly CrossSplitLeak[];
  /** Images that could not be read or hashed (they take part in no group). */
  readonly failed: readonly { readonly path: string; readonly reason: string }[];
  readonly summary: {
    readonly images: number;
    readonly exactGroups: number;
    /** Copies beyond the first in each exact group: how many images removing duplicates would drop. */
    readonly exactDuplicateImages: number;
    readonly nearGroups: number;
    readonly nearDuplicateImages: number;
    readonly crossSplitLeaks: number;
    /** Distinct images that belong to some cross-split leak. */
    readonly leakedImages: number;
    readonly conflictingLabelGroups: number;
    readonly failed: number;
  };
  readonly settings: { readonly threshold: number; readonly orientationInvariant: boolean; readonly hashes: 'ahash-8x8+dhash-9x8 on 72x72 grey' };
}

/** Words per orientation in the hash table: aHash hi, aHash lo, dHash hi, dHash lo. */
const WORDS = 4;
const THUMB = 72;

/**
 * Finds exact and near duplicates among `items` and the groups that cross splits.
 * @param root folder the item paths are relative to
 * @param splitsByItem split of each item by relative path (see `splitMembership`); when omitted,
 *   items' `presetSplit` is used
 * @example
 * const report = await findDuplicates(index.root, index.items, splitMembership(splits));
 * if (report.crossSplitLeaks.length > 0) console.warn(report.summary);
 */
export async function findDuplicates(
  root: string,
  items: readonly DuplicateInput[],
  splitsByItem?: ReadonlyMap<string, SplitName>,
  options: DuplicateOptions = {},
): Promise<DuplicateReport> {
  const threshold = options.threshold ?? DEFAULT_NEAR_DUPLICATE_THRESHOLD;
  if (!Number.isInteger(threshold) || threshold < 0 || threshold > 64) throw new RangeError(`threshold must be an integer in [0, 64], got ${threshold}`);
  const orientationInvariant = options.orientationInvariant ?? false;
  const orientations = orientationInvariant ? 8 : 1;
  const limitInputPixels = options.limitInputPixels ?? DEFAULT_LIMIT_INPUT_PIXELS;

  const n = items.length;
  const shas: (string | undefined)[] = new Array<string | undefined>(n);
  const hashes = new Uint32Array(n * orientations * WORDS);
  const ok = new Uint8Array(n);
  const failed: { path: string; reason: string }[] = [];

  await mapWithConcurrency(items, options.concurrency ?? 2, async (item, i) => {
    try {
      const bytes = await readFile(path.resolve(root, item.path));
      shas[i] = item.sha256 ?? createHash('sha256').update(bytes).digest('hex');
      const thumb = await greyThumbnail(bytes, limitInputPixels);
      for (let k = 0; k < orientations; k++) writeHashes(thumb, k, hashes, (i * orientations + k) * WORDS);
      ok[i] = 1;
    } catch (error) {
      failed.push({ path: item.path, reason: (error as Error).message });
    }
  });

  const splitOf = (i: number): SplitName | null => {
    const item = items[i] as DuplicateInput;
    return (splitsByItem ? splitsByItem.get(item.path) : item.presetSplit) ?? null;
  };
  const makeGroup = (kind: DuplicateGroup['kind'], indices: number[], maxDistance: number): DuplicateGroup => {
    const labels = indices.map((i) => (items[i] as DuplicateInput).label);
    return {
      kind,
      indices,
      paths: indices.map((i) => (items[i] as DuplicateInput).path),
      labels,
      splits: indices.map(splitOf),
      conflictingLabels: new Set(labels).size > 1,
      maxDistance,
    };
  };

  // Exact duplicates: identical bytes (hashed even when the pixels could not be).
  const bySha = new Map<string, number[]>();
  shas.forEach((sha, i) => {
    if (sha === undefined) return;
    const list = bySha.get(sha);
    if (list) list.push(i);
    else bySha.set(sha, [i]);
  });
  const exactGroups = [...bySha.values()].filter((g) => g.length > 1).map((g) => makeGroup('exact', g, 0));

  // Near duplicates: all pairs, joined into groups with union-find.
  const parent = Int32Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i] as number] as number;
      i = parent[i] as number;
    }
    return i;
  };
  const pairMax = new Map<number, number>();
  const stride = orientations * WORDS;
  for (let i = 0; i < n; i++) {
    if (!ok[i]) continue;
    const a = i * stride;
    const aHi = hashes[a] as number, aLo = hashes[a + 1] as number, dHi = hashes[a + 2] as number, dLo = hashes[a + 3] as number;
    for (let j = i + 1; j < n; j++) {
      if (!ok[j]) continue;
      let best = 65;
      for (let k = 0; k < orientations; k++) {
        const b = j * stride + k * WORDS;
        const dd = popcount32(dHi ^ (hashes[b + 2] as number)) + popcount32(dLo ^ (hashes[b + 3] as number));
        if (dd > threshold) continue;
        const da = popcount32(aHi ^ (hashes[b] as number)) + popcount32(aLo ^ (hashes[b + 1] as number));
        if (da > threshold) continue;
        best = Math.min(best, Math.max(da, dd));
      }
      if (best <= threshold) {
        const ri = find(i);
        const rj = find(j);
        const root = Math.min(ri, rj);
        const merged = Math.max(pairMax.get(ri) ?? 0, pairMax.get(rj) ?? 0, best);
        parent[ri] = root;
        parent[rj] = root;
        pairMax.set(root, merged);
      }
    }
  }
  const components = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (!ok[i]) continue;
    const r = find(i);
    const list = components.get(r);
    if (list) list.push(i);
    else components.set(r, [i]);
  }
  const nearGroups = [...components.entries()]
    .filter(([, g]) => g.length > 1 && new Set(g.map((i) => shas[i])).size > 1)
    .map(([r, g]) => makeGroup('near', g, pairMax.get(r) ?? 0))
    .sort((x, y) => (x.indices[0] as number) - (y.indices[0] as number));

  const crossSplitLeaks: CrossSplitLeak[] = [];
  for (const group of [...exactGroups, ...nearGroups]) {
    const involved = (['train', 'val', 'test'] as const).filter((s) => group.splits.includes(s));
    if (involved.length > 1) crossSplitLeaks.push({ ...group, splitsInvolved: involved });
  }
  const leaked = new Set(crossSplitLeaks.flatMap((g) => g.indices));

  return {
    exactGroups,
    nearGroups,
    crossSplitLeaks,
    failed: failed.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0)),
    summary: {
      images: n,
      exactGroups: exactGroups.length,
      exactDuplicateImages: exactGroups.reduce((s, g) => s + g.indices.length - 1, 0),
      nearGroups: nearGroups.length,
      nearDuplicateImages: nearGroups.reduce((s, g) => s + g.indices.length - 1, 0),
      crossSplitLeaks: crossSplitLeaks.length,
      leakedImages: leaked.size,
      conflictingLabelGroups: [...exactGroups, ...nearGroups].filter((g) => g.conflictingLabels).length,
      failed: failed.length,
    },
    settings: { threshold, orientationInvariant, hashes: 'ahash-8x8+dhash-9x8 on 72x72 grey' },
  };
}

/** A 72x72 grey thumbnail, stretched to the square (so aspect-preserving resizes hash alike). */
async function greyThumbnail(bytes: Uint8Array, limitInputPixels: number): Promise<Uint8Array> {
  const data = await sharp(bytes, { autoOrient: true, failOn: 'error', limitInputPixels })
    .timeout({ seconds: 20 })
    .flatten({ background: { r: 0, g: 0, b: 0 } })
    .grayscale()
    .resize(THUMB, THUMB, { fit: 'fill' })
    .raw()
    .toBuffer();
  if (data.length !== THUMB * THUMB) throw new Error(`thumbnail has ${data.length} values, expected ${THUMB * THUMB}`);
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * Perceptual hashes of one image as four 32-bit words `[aHi, aLo, dHi, dLo]`: the 8x8 average hash
 * (bit set where a cell is brighter than the mean) and the 9x8 difference hash (bit set where a cell
 * is brighter than its left neighbour), both from the thumbnail under one of the 8 square symmetries.
 * @param orientation 0 = as is; bit 2 transposes, bit 0 mirrors left-right, bit 1 flips top-bottom
 */
export async function perceptualHash(input: Uint8Array | string, orientation = 0): Promise<Uint32Array> {
  const bytes = typeof input === 'string' ? await readFile(input) : input;
  const out = new Uint32Array(WORDS);
  writeHashes(await greyThumbnail(bytes, DEFAULT_LIMIT_INPUT_PIXELS), orientation, out, 0);
  return out;
}

/** Hamming distance between two 64-bit hashes held as `[hi, lo]` word pairs. */
export function hammingDistance64(aHi: number, aLo: number, bHi: number, bLo: number): number {
  return popcount32(aHi ^ bHi) + popcount32(aLo ^ bLo);
}

function writeHashes(thumb: Uint8Array, orientation: number, out: Uint32Array, offset: number): void {
  const at = (x: number, y: number): number => {
    let sx = x;
    let sy = y;
    if (orientation & 4) [sx, sy] = [sy, sx];
    if (orientation & 1) sx = THUMB - 1 - sx;
    if (orientation & 2) sy = THUMB - 1 - sy;
    return thumb[sy * THUMB + sx] as number;
  };
  const average = boxGrid(at, 8, 8);
  let mean = 0;
  for (const v of average) mean += v;
  mean /= 64;
  const diff = boxGrid(at, 9, 8);
  let aHi = 0, aLo = 0, dHi = 0, dLo = 0;
  for (let bit = 0; bit < 64; bit++) {
    const row = bit >> 3;
    const col = bit & 7;
    const aSet = (average[bit] as number) > mean;
    const dSet = (diff[row * 9 + col + 1] as number) > (diff[row * 9 + col] as number);
    if (bit < 32) {
      if (aSet) aLo |= 1 << bit;
      if (dSet) dLo |= 1 << bit;
    } else {
      if (aSet) aHi |= 1 << (bit - 32);
      if (dSet) dHi |= 1 << (bit - 32);
    }
  }
  out[offset] = aHi >>> 0;
  out[offset + 1] = aLo >>> 0;
  out[offset + 2] = dHi >>> 0;
  out[offset + 3] = dLo >>> 0;
}

/** Sums of the thumbnail over a `cols` x `rows` grid of equal boxes (72 divides by 8 and 9). */
function boxGrid(at: (x: number, y: number) => number, cols: number, rows: number): Float64Array {
  const grid = new Float64Array(cols * rows);
  const bw = THUMB / cols;
  const bh = THUMB / rows;
  for (let y = 0; y < THUMB; y++) {
    const r = Math.floor(y / bh) * cols;
    for (let x = 0; x < THUMB; x++) grid[r + Math.floor(x / bw)] = (grid[r + Math.floor(x / bw)] as number) + at(x, y);
  }
  return grid;
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}
