/**
 * Shared by the serving tests: tiny CNNs built and saved to a temporary model directory, a model
 * registry over them, real radiographs from `../shared`, and images in every form a PACS exports
 * (16-bit PNG, grey, RGBA, EXIF-rotated JPEG) plus hostile bytes.
 * @module
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { AppError } from '../../../src/infra/errors.ts';
import { preprocessingRecord, type ImageOptions } from '../../../src/ml/data/index.ts';
import { buildModel } from '../../../src/ml/models/index.ts';
import { saveModel } from '../../../src/ml/persist/index.ts';
import type { ResolvedModel } from '../../../src/serving/types.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const XRAY_DIR = path.resolve(repoRoot, '../shared/datasets/xray-binary');
/** `false` (run) when the real radiographs are there, else the reason tests that need them skip. */
export const SKIP_WITHOUT_XRAYS: false | string = existsSync(XRAY_DIR) ? false : `real X-rays not found at ${XRAY_DIR}`;

/** Input size of the test models, in pixels. */
export const SIZE = 32;

export const CLASS_NAMES = ['elbow_fractured', 'elbow_normal', 'hand_fractured'] as const;
export const POSITIVE_CLASSES = ['elbow_fractured', 'hand_fractured'] as const;

export interface TinyModelSpec {
  id: string;
  seed: number;
  channels?: 1 | 3;
  classNames?: readonly string[];
  positiveClasses?: readonly string[];
  /** Also write `model.onnx` (as training does), so the ONNX engine can serve it. */
  onnx?: boolean;
}

/**
 * Builds a two-block CNN (`SIZE` px, random seeded weights) and saves it under `root/<id>`.
 * @returns the registry record of the saved model
 */
export async function saveTinyModel(root: string, spec: TinyModelSpec): Promise<ResolvedModel> {
  const channels = spec.channels ?? 1;
  const classNames = spec.classNames ?? CLASS_NAMES;
  const imageOptions: ImageOptions = { height: SIZE, width: SIZE, channels, mode: 'unit', resize: 'letterbox' };
  const model = buildModel({
    architecture: 'cnn',
    inputShape: [SIZE, SIZE, channels],
    numClasses: classNames.length,
    seed: spec.seed,
    cnnFilters: [4, 8],
    dropout: 0,
  });
  const dir = path.join(root, spec.id);
  try {
    await saveModel(model, dir, {
      architecture: 'cnn',
      classNames,
      positiveClasses: spec.positiveClasses ?? POSITIVE_CLASSES,
      inputShape: [SIZE, SIZE, channels],
      preprocessing: preprocessingRecord(imageOptions),
    }, { onnx: spec.onnx ?? false });
  } finally {
    model.dispose();
  }
  return { id: spec.id, architecture: 'cnn', version: `${spec.id}@1`, dir };
}

/** A model registry over fixed records, with the alias `production` for the first. */
export function registryOf(models: readonly ResolvedModel[]): (ref: string) => Promise<ResolvedModel> {
  return async (ref) => {
    const found = ref === 'production' ? models[0] : models.find((m) => m.id === ref);
    if (!found) throw new AppError('MODEL_NOT_FOUND', `no model has the id or alias ${JSON.stringify(ref)}`);
    return found;
  };
}

/** The bytes of `count` real radiographs (JPEG), alternating fractured and not fractured. */
export async function readXrays(count: number): Promise<Buffer[]> {
  const files: string[] = [];
  for (let i = 0; files.length < count; i++) {
    const n = String(i).padStart(4, '0');
    files.push(path.join(XRAY_DIR, 'fractured', `fractured-${n}.jpg`));
    if (files.length < count) files.push(path.join(XRAY_DIR, 'not_fractured', `not_fractured-${n}.jpg`));
  }
  return Promise.all(files.map((file) => readFile(file)));
}

/** A grey gradient with a bright bar, `width x height`, as raw 8-bit pixels. */
export function grayPattern(width: number, height: number): Buffer {
  const out = Buffer.alloc(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) out[y * width + x] = x < width / 4 ? 230 : (x * 7 + y * 3) % 200;
  }
  return out;
}

/** Legitimate radiograph encodings that must decode. */
export async function legitimateImages(): Promise<Record<string, Buffer>> {
  const w = 48;
  const h = 24;
  const gray = grayPattern(w, h);
  const raw = { raw: { width: w, height: h, channels: 1 as const } };
  return {
    png16: await sharp(gray, raw).toColourspace('grey16').png().toBuffer(),
    grayPng: await sharp(gray, raw).png().toBuffer(),
    grayJpeg: await sharp(gray, raw).jpeg({ quality: 95 }).toBuffer(),
    rgba: await sharp(gray, raw).toColourspace('srgb').ensureAlpha(0.8).png().toBuffer(),
    exifRotated: await sharp(gray, raw).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toBuffer(),
  };
}

/** Bytes that must be refused, with the code each must be refused with. */
export async function hostileImages(): Promise<Record<string, { data: Buffer; code: string }>> {
  // Large enough that half of it holds whole scans of compressed data, not just headers.
  const jpeg = await sharp(grayPattern(256, 256), { raw: { width: 256, height: 256, channels: 1 } }).jpeg({ quality: 90 }).toBuffer();
  return {
    empty: { data: Buffer.alloc(0), code: 'IMAGE_TYPE_UNSUPPORTED' },
    text: { data: Buffer.from('patient: Jane Doe\nthis is not an image\n'), code: 'IMAGE_TYPE_UNSUPPORTED' },
    svg: {
      data: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64"><rect width="64" height="64"/></svg>'),
      code: 'IMAGE_TYPE_UNSUPPORTED',
    },
    truncatedJpeg: { data: jpeg.subarray(0, Math.floor(jpeg.length / 2)), code: 'IMAGE_UNDECODABLE' },
    pngSignatureJunk: {
      data: Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('junk that is not a chunk')]),
      code: 'IMAGE_UNDECODABLE',
    },
    jpegSignatureJunk: { data: Buffer.concat([Buffer.from([0xff, 0xd8, 0xff]), Buffer.alloc(200, 7)]), code: 'IMAGE_UNDECODABLE' },
  };
}

/** Live tensors now. */
export function tensorCount(): number {
  return tf.memory().numTensors;
}
