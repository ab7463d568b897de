/**
 * Stratified, seeded train/val/test splits. Each class is split on its own, so every split keeps the
 * class proportions of the whole; the same seed and dataset always give the same split. Preset
 * `train/ val/ test/` folders win over random splitting.
 * @module
 */
import { MlError } from '../errors.ts';
import { createRandom, deriveSeed, shuffleInPlace } from '../util/random.ts';
import type { DatasetIndex, DatasetItem, SplitName } from './types.ts';

export interface SplitOptions {
  /** Seed of the split; recorded with the model. */
  readonly seed: number;
  /** Fraction of each class for validation. Default 0.15. */
  readonly valFraction?: number;
  /** Fraction of each class for test. Default 0.15. */
  readonly testFraction?: number;
}

/** What a split did, for reports and model metadata. */
export interface SplitRecord {
  readonly seed: number;
  readonly fractions: { readonly val: number; readonly test: number };
  /** Images per class in each split, aligned with the class names. */
  readonly counts: Readonly<Record<SplitName, readonly number[]>>;
  /** True when the dataset's own split folders were used. */
  readonly preset: boolean;
  /** Splits that had no preset folder and were carved from the preset train split (stratified). */
  readonly carved: readonly SplitName[];
}

export interface DatasetSplits {
  /** Items in dataset (path) order; shuffling is the batch stream's job. */
  readonly train: readonly DatasetItem[];
  readonly val: readonly DatasetItem[];
  readonly test: readonly DatasetItem[];
  readonly record: SplitRecord;
}

/**
 * Splits a scanned dataset.
 *
 * Random splitting (no preset folders): for a class of n images, `round(n * testFraction)` go to test
 * and `round(n * valFraction)` to val, at least 1 each when n >= 3 and the fraction is above 0, and
 * train always keeps at least one; which images go where is a seeded shuffle per class.
 *
 * Preset splitting: items keep their `presetSplit`; when the dataset has no val (or test) folder, that
 * split is carved from train with the same per-class rule.
 * @throws MlError INVALID_ARGUMENT for fractions outside [0, 1) or summing to 1 or more
 * @example
 * const { train, val, test, record } = splitDataset(index, { seed: 42 });
 */
export function splitDataset(index: Pick<DatasetIndex, 'items' | 'classNames'>, options: SplitOptions): DatasetSplits {
  const valFraction = options.valFraction ?? 0.15;
  const testFraction = options.testFraction ?? 0.15;
  if (!Number.isFinite(options.seed)) throw new MlError('INVALID_ARGUMENT', `split seed must be a number, got ${String(options.seed)}`);
  if (!(valFraction >= 0 && testFraction >= 0 && valFraction + testFraction < 1)) {
    throw new MlError('INVALID_ARGUMENT', `split fractions must be >= 0 and sum to less than 1, got val ${valFraction} and test ${testFraction}`);
  }

  const order = new Map(index.items.map((item, i) => [item, i]));
  const preset = index.items.some((item) => item.presetSplit !== undefined);
  const assigned: Record<SplitName, DatasetItem[]> = { train: [], val: [], test: [] };
  const carved: SplitName[] = [];

  if (preset) {
    for (const item of index.items) assigned[item.presetSplit ?? 'train'].push(item);
    const carve = {
      val: assigned.val.length === 0 ? valFraction : 0,
      test: assigned.test.length === 0 ? testFraction : 0,
    };
    if (carve.val > 0) carved.push('val');
    if (carve.test > 0) carved.push('test');
    if (carved.length > 0) {
      const fromTrain = assigned.train;
      assigned.train = [];
      stratify(fromTrain, index.classNames, options.seed, carve.val, carve.test, assigned);
    }
  } else {
    stratify(index.items, index.classNames, options.seed, valFraction, testFraction, assigned);
  }

  const byDatasetOrder = (a: DatasetItem, b: DatasetItem): number => (order.get(a) as number) - (order.get(b) as number);
  const countPerClass = (items: readonly DatasetItem[]): number[] => {
    const counts = index.classNames.map(() => 0);
    for (const item of items) counts[item.label] = (counts[item.label] ?? 0) + 1;
    return counts;
  };
  const train = assigned.train.sort(byDatasetOrder);
  const val = assigned.val.sort(byDatasetOrder);
  const test = assigned.test.sort(byDatasetOrder);
  return {
    train,
    val,
    test,
    record: {
      seed: options.seed,
      fractions: { val: valFraction, test: testFraction },
      counts: { train: countPerClass(train), val: countPerClass(val), test: countPerClass(test) },
      preset,
      carved,
    },
  };
}

/** Sizes of the val and test parts of one class of `n` images (the rule in `splitDataset`). */
export function stratumSizes(n: number, valFraction: number, testFraction: number): { val: number; test: number } {
  let test = Math.round(n * testFraction);
  let val = Math.round(n * valFraction);
  if (n >= 3) {
    if (testFraction > 0) test = Math.max(1, test);
    if (valFraction > 0) val = Math.max(1, val);
  }
  // Train keeps at least one image of every class: a class absent from training cannot be learned.
  while (n > 0 && val + test > n - 1) {
    if (val >= test && val > 0) val--;
    else test--;
  }
  return { val, test };
}

function stratify(
  items: readonly DatasetItem[],
  classNames: readonly string[],
  seed: number,
  valFraction: number,
  testFraction: number,
  into: Record<SplitName, DatasetItem[]>,
): void {
  const byClass = new Map<number, DatasetItem[]>();
  for (const item of items) {
    const list = byClass.get(item.label);
    if (list) list.push(item);
    else byClass.set(item.label, [item]);
  }
  for (const [label, members] of byClass) {
    // The class name (not its index) seeds the shuffle, so adding a class leaves the others' splits alone.
    const rand = createRandom(deriveSeed(seed, `split:${classNames[label] ?? label}`));
    const shuffled = shuffleInPlace([...members], rand);
    const { val, test } = stratumSizes(shuffled.length, valFraction, testFraction);
    into.test.push(...shuffled.slice(0, test));
    into.val.push(...shuffled.slice(test, test + val));
    into.train.push(...shuffled.slice(test + val));
  }
}

/** Which split each item (by relative path) is in: the input `findDuplicates` uses to report leaks. */
export function splitMembership(splits: Pick<DatasetSplits, 'train' | 'val' | 'test'>): Map<string, SplitName> {
  const membership = new Map<string, SplitName>();
  for (const name of ['train', 'val', 'test'] as const) {
    for (const item of splits[name]) membership.set(item.path, name);
  }
  return membership;
}
