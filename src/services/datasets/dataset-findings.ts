/**
 * The expensive look at a dataset: the ML engine's scan (signatures, headers, content hashes), the
 * default seeded split, and exact and near duplicates with the groups that leak across that split.
 * Hashing decodes every image (about 250 images per CPU-second), which is why the service caches
 * the result.
 * @module
 */
import { findDuplicates, type DuplicateGroup, type DuplicateReport } from '../../ml/data/duplicates.ts';
import { DATASET_CONFIG_FILE, scanDataset } from '../../ml/data/scan.ts';
import { splitDataset, splitMembership } from '../../ml/data/split.ts';
import type { DatasetIndex, SplitName } from '../../ml/data/types.ts';
import { isMlError } from '../../ml/errors.ts';
import { problem } from './dataset-summary.ts';
import type { DatasetDuplicatesView, DatasetProblemView, DatasetView, DuplicateFindingView, DuplicateGroupView } from './dataset.types.ts';

/** The split the leak check assumes: what an experiment gets when it sets nothing. */
export const DEFAULT_SPLIT = Object.freeze({ seed: 42, valFraction: 0.15, testFraction: 0.15 });
/** Groups listed as examples per finding. */
export const EXAMPLE_GROUPS = 5;
/** Members listed per example group. */
export const EXAMPLE_PATHS = 10;

/** The parts of {@link DatasetView} that come from the scan. */
export type DatasetFindings = Pick<
  DatasetView,
  'layout' | 'classes' | 'imageCount' | 'positiveClasses' | 'positiveClassesSource' | 'splits' | 'hash' | 'skipped' | 'duplicates'
>;

export interface FindingsOptions {
  /** Images with more pixels are skipped. Default: the ML engine's limit. */
  readonly limitInputPixels?: number;
}

/**
 * Scans `root`, splits it with {@link DEFAULT_SPLIT} and finds duplicates.
 * @returns the findings, or the problem that keeps the dataset from training
 * @throws MlError DATASET_NOT_FOUND when `root` is gone; file-system errors
 */
export async function computeFindings(
  root: string,
  options: FindingsOptions = {},
): Promise<{ readonly findings: DatasetFindings } | { readonly problem: DatasetProblemView }> {
  const limits = options.limitInputPixels === undefined ? {} : { limitInputPixels: options.limitInputPixels };
  let index: DatasetIndex;
  try {
    index = await scanDataset(root, limits);
  } catch (error) {
    const found = scanProblem(error);
    if (found === undefined) throw error;
    return { problem: found };
  }
  const splits = splitDataset(index, DEFAULT_SPLIT);
  const report = await findDuplicates(index.root, index.items, splitMembership(splits), limits);

  const positive = new Set(index.positiveClasses);
  const splitCounts = { train: 0, val: 0, test: 0 };
  for (const item of index.items) if (item.presetSplit !== undefined) splitCounts[item.presetSplit]++;
  return {
    findings: {
      layout: index.layout,
      classes: index.classNames.map((name, i) => ({ name, count: index.counts[i] as number, positive: positive.has(name) })),
      imageCount: index.items.length,
      positiveClasses: [...index.positiveClasses],
      positiveClassesSource: index.positiveClassesSource,
      splits: index.layout === 'splits' ? splitCounts : null,
      hash: index.hash,
      skipped: { count: index.skipped.count, byReason: { ...index.skipped.byReason } as Record<string, number> },
      duplicates: duplicatesView(report, index.classNames, splits.record.preset),
    },
  };
}

/**
 * The problem an ML engine scan error stands for, or `undefined` when it is not about the dataset's
 * contents. The engine's messages name paths and classes, so only fixed sentences leave here.
 */
export function scanProblem(error: unknown): DatasetProblemView | undefined {
  if (isMlError(error, 'DATASET_EMPTY')) return problem('empty');
  if (isMlError(error, 'DATASET_SINGLE_CLASS')) return problem('single-class');
  if (isMlError(error, 'INVALID_ARGUMENT')) {
    // Layout errors talk about split folders; dataset.json errors name the file or the positive classes.
    const aboutConfig = error.message.includes(DATASET_CONFIG_FILE) || error.message.startsWith('positive classes');
    return problem(aboutConfig ? 'invalid-config' : 'invalid-layout');
  }
  return undefined;
}

function duplicatesView(report: DuplicateReport, classNames: readonly string[], preset: boolean): DatasetDuplicatesView {
  const finding = (groups: readonly DuplicateGroup[], images: number): DuplicateFindingView => ({
    groups: groups.length,
    images,
    examples: groups.slice(0, EXAMPLE_GROUPS).map((g) => groupView(g, classNames)),
  });
  return {
    split: { ...DEFAULT_SPLIT, preset },
    exact: finding(report.exactGroups, report.summary.exactDuplicateImages),
    near: finding(report.nearGroups, report.summary.nearDuplicateImages),
    crossSplitLeaks: finding(report.crossSplitLeaks, report.summary.leakedImages),
    conflictingLabelGroups: report.summary.conflictingLabelGroups,
    unhashable: report.summary.failed,
    threshold: report.settings.threshold,
  };
}

function groupView(group: DuplicateGroup, classNames: readonly string[]): DuplicateGroupView {
  const listed = group.paths.slice(0, EXAMPLE_PATHS);
  const involved = (['train', 'val', 'test'] as const).filter((s) => group.splits.includes(s));
  return {
    kind: group.kind,
    size: group.paths.length,
    paths: [...listed],
    classes: group.labels.slice(0, listed.length).map((label) => classNames[label] ?? String(label)),
    splits: group.splits.slice(0, listed.length) as (SplitName | null)[],
    splitsInvolved: involved,
    conflictingLabels: group.conflictingLabels,
    maxDistance: group.maxDistance,
  };
}
