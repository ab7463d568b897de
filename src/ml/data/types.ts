/**
 * Shapes shared by the data layer: the scanned dataset index, its items and splits.
 * @module
 */

/** The three splits of a dataset. */
export type SplitName = 'train' | 'val' | 'test';

/** The split names in their canonical order (reports list splits in this order). */
export const SPLIT_NAMES: readonly SplitName[] = ['train', 'val', 'test'];

/** One usable image of a dataset. */
export interface DatasetItem {
  /** Path relative to the dataset root, with `/` separators on every platform. */
  readonly path: string;
  /** Index into `DatasetIndex.classNames`. */
  readonly label: number;
  /** The split its folder put it in, when the dataset has `train/ val/ test/` folders. */
  readonly presetSplit?: SplitName;
  /** Width in pixels after EXIF orientation is applied. */
  readonly width: number;
  /** Height in pixels after EXIF orientation is applied. */
  readonly height: number;
  /** File size in bytes. */
  readonly bytes: number;
  /** sha256 of the file's bytes, hex. */
  readonly sha256: string;
}

/** Why a file in the dataset folder was not used. */
export type SkipReason =
  /** Not `.jpg`, `.jpeg` or `.png` (case-insensitive). */
  | 'unsupported-extension'
  /** The bytes are not a JPEG or PNG whatever the extension says. */
  | 'signature-mismatch'
  | 'empty-file'
  /** The file system refused to read it. */
  | 'unreadable'
  /** The JPEG end-of-image marker or the PNG `IEND` chunk is missing. */
  | 'truncated'
  /** sharp could not read the header (or, with `verify: 'decode'`, the pixels). */
  | 'undecodable'
  /** More pixels than the configured `limitInputPixels`. */
  | 'too-many-pixels'
  /** A file directly in the root or in a split folder rather than in a class folder. */
  | 'not-in-class-folder'
  /** A symbolic link or special file (never followed, so a dataset cannot point outside itself). */
  | 'not-a-regular-file';

/** One skipped file. */
export interface SkippedFile {
  /** Path relative to the dataset root. */
  readonly path: string;
  readonly reason: SkipReason;
  /** The underlying error message, when there was one. */
  readonly detail?: string;
}

/** Files that were not used, counted by reason. */
export interface SkippedSummary {
  readonly count: number;
  readonly byReason: Partial<Record<SkipReason, number>>;
  /** The first skipped files (at most `SKIPPED_FILES_LISTED`), so a report can name examples. */
  readonly files: readonly SkippedFile[];
}

/** How the dataset folder is organised. */
export type DatasetLayout = 'classes' | 'splits';

/** The result of scanning a dataset folder: everything later stages need, nothing decoded. */
export interface DatasetIndex {
  /** Absolute path of the dataset folder. */
  readonly root: string;
  /** `classes`: one folder per class; `splits`: `train/ val/ test/`, each with class folders. */
  readonly layout: DatasetLayout;
  /** Class names sorted by code point (as Keras `image_dataset_from_directory` sorts them). */
  readonly classNames: readonly string[];
  /** The fracture-positive class names, from the name rule or from `dataset.json`. */
  readonly positiveClasses: readonly string[];
  /** Where `positiveClasses` came from. */
  readonly positiveClassesSource: 'name-rule' | 'dataset.json';
  /** Class folders that held no usable image; they are left out of `classNames`. */
  readonly emptyClasses: readonly string[];
  /** Usable images sorted by `path`. */
  readonly items: readonly DatasetItem[];
  /** Images per class, aligned with `classNames`. */
  readonly counts: readonly number[];
  readonly skipped: SkippedSummary;
  /**
   * sha256 (hex) over the sorted relative paths and each file's content hash: the dataset hash that
   * reports and model metadata record. Renaming, adding, removing or editing any image changes it.
   */
  readonly hash: string;
}
