/**
 * The JSON views of datasets that `GET /v1/datasets[/{id}]` and `POST /v1/datasets` answer with, and
 * the service's limits. Every field is camelCase and listed explicitly so `openapi.yaml` can mirror
 * these shapes one to one. Times are ISO 8601 strings (UTC); paths are relative to the dataset
 * folder with `/` separators.
 * @module
 */

/** How a dataset folder is organised: one folder per class, or `train/ val/ test/` of class folders. */
export type DatasetLayoutView = 'classes' | 'splits';

/** A split of the dataset. */
export type SplitNameView = 'train' | 'val' | 'test';

/** One class: its folder name, its image count and whether it means "fracture". */
export interface DatasetClassView {
  name: string;
  /**
   * Images of the class. In a summary: files with a `.jpg`, `.jpeg` or `.png` name; in the full
   * view: images whose bytes and header were checked (unusable files are in `skipped`).
   */
  count: number;
  /** Fracture-positive, by the name rule or by `dataset.json`. */
  positive: boolean;
}

/** Why a dataset cannot be used for training as it stands. */
export interface DatasetProblemView {
  /**
   * `empty`: no image in any class folder; `single-class`: images in only one class;
   * `invalid-layout`: split folders mixed with class folders, a split named twice, or no `train/`;
   * `invalid-config`: `dataset.json` is not a JSON object whose `positiveClasses` names classes.
   */
  code: 'empty' | 'single-class' | 'invalid-layout' | 'invalid-config';
  /** A sentence for people; never contains file or folder names. */
  detail: string;
}

/** Image counts of the preset split folders. */
export interface DatasetSplitCountsView {
  train: number;
  val: number;
  test: number;
}

/** A dataset as `GET /v1/datasets` lists it: cheap to compute (files are counted, not decoded). */
export interface DatasetSummaryView {
  /** Folder name under `DATA_DIR/datasets/`. */
  id: string;
  layout: DatasetLayoutView;
  /** Classes with at least one image, sorted by code point (the order models use). */
  classes: DatasetClassView[];
  /** Sum of the class counts. */
  imageCount: number;
  /** Names of the fracture-positive classes, in class order. */
  positiveClasses: string[];
  /** Where `positiveClasses` comes from: the class-name rule or the dataset's `dataset.json`. */
  positiveClassesSource: 'name-rule' | 'dataset.json';
  /** Images per preset split folder; `null` for the `classes` layout. */
  splits: DatasetSplitCountsView | null;
  /** `null` when the dataset can be trained on. */
  problem: DatasetProblemView | null;
  /** When the dataset folder was created. */
  createdAt: string;
  /** Latest change to the dataset's folders (a file added, removed or renamed). */
  modifiedAt: string;
}

/** One group of duplicate images (a few members, not necessarily all). */
export interface DuplicateGroupView {
  /** `exact`: identical bytes; `near`: perceptually equal (re-encoded, resized, slightly edited). */
  kind: 'exact' | 'near';
  /** Images in the group. */
  size: number;
  /** Up to 10 members, relative to the dataset folder. */
  paths: string[];
  /** Class of each listed member. */
  classes: string[];
  /** Split of each listed member under the default split (`null`: not in any split). */
  splits: (SplitNameView | null)[];
  /** Distinct splits the whole group spans, in train/val/test order; more than one is a leak. */
  splitsInvolved: SplitNameView[];
  /** The same image under different classes: a labelling error. */
  conflictingLabels: boolean;
  /** Largest Hamming distance (bits of 64) between matched members; 0 for exact groups. */
  maxDistance: number;
}

/** A kind of duplicate finding: how many, and a few examples. */
export interface DuplicateFindingView {
  groups: number;
  /**
   * For `exact` and `near`: copies beyond the first of each group (what deduplication would drop);
   * for `crossSplitLeaks`: distinct images that take part in a leak.
   */
  images: number;
  /** The first groups (at most 5), in dataset path order. */
  examples: DuplicateGroupView[];
}

/** The split the leak check assumed: the default an experiment gets. */
export interface DatasetDefaultSplitView {
  seed: number;
  valFraction: number;
  testFraction: number;
  /** True when the dataset's own `train/ val/ test/` folders decided the split. */
  preset: boolean;
}

/** Duplicate and leak findings of a dataset. */
export interface DatasetDuplicatesView {
  split: DatasetDefaultSplitView;
  exact: DuplicateFindingView;
  near: DuplicateFindingView;
  /** Duplicate groups (exact or near) whose members fall in more than one split. */
  crossSplitLeaks: DuplicateFindingView;
  /** Groups whose members carry different classes. */
  conflictingLabelGroups: number;
  /** Images that could not be hashed (they take part in no group). */
  unhashable: number;
  /** Near-duplicate threshold used (Hamming distance, bits of 64). */
  threshold: number;
}

/** Files in the dataset folder that are not used for training. */
export interface DatasetSkippedView {
  count: number;
  /**
   * Counts by reason: `unsupported-extension`, `signature-mismatch`, `empty-file`, `unreadable`,
   * `truncated`, `undecodable`, `too-many-pixels`, `not-in-class-folder`, `not-a-regular-file`.
   */
  byReason: Record<string, number>;
}

/**
 * A dataset as `GET /v1/datasets/{id}` shows it: the summary (with checked image counts) plus the
 * findings that need every image decoded. When `problem` is set the findings are `null`.
 */
export interface DatasetView extends DatasetSummaryView {
  /** sha256 (hex) over the image paths and contents: the dataset hash models record. */
  hash: string | null;
  skipped: DatasetSkippedView | null;
  duplicates: DatasetDuplicatesView | null;
}

/** Limits of dataset uploads and scans (from the `DATASET_MAX_*` and `IMAGE_MAX_PIXELS` settings). */
export interface DatasetLimits {
  /** Largest upload accepted, in bytes, counted while it streams in. */
  readonly maxUploadBytes: number;
  /** Most entries the zip may list. */
  readonly maxEntries: number;
  /** Most bytes the extracted images may hold together. */
  readonly maxBytes: number;
  /** Largest compression ratio (uncompressed:compressed) of an entry or of the whole archive. */
  readonly maxRatio: number;
  /** Images with more pixels are skipped when scanning. Default: the ML engine's limit. */
  readonly maxImagePixels?: number;
}
