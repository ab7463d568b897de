import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { isMlError } from '../../../src/ml/errors.ts';
import {
  decodeImagePixels,
  imageOptionsFromRecord,
  loadImageTensorData,
  normalisePixels,
  preprocessingRecord,
} from '../../../src/ml/data/preprocess.ts';
import type { ImageOptions } from '../../../src/ml/data/preprocess.ts';
import { SKIP_WITHOUT_XRAYS, makeTempDir, removeDir, writeRawPng, writeSolid, xray } from './fixtures.ts';

let dir: string;
before(async () => {
  dir = await makeTempDir('preprocess');
});
after(async () => {
  await removeDir(dir);
});

function assertClose(actual: ArrayLike<number>, expected: readonly number[], tolerance = 1e-4): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i] as number;
    // Relative for large values: float32 keeps about 7 significant digits.
    assert.ok(Math.abs((actual[i] as number) - e) <= tolerance * Math.max(1, Math.abs(e)), `value ${i}: ${actual[i]} vs ${e}`);
  }
}

/** The first pixel of a 2x2 decode of a solid image (all four pixels must be equal). */
async function solidPixel(file: string, options: Omit<ImageOptions, 'height' | 'width'>): Promise<number[]> {
  const data = await loadImageTensorData(file, { ...options, height: 2, width: 2 });
  const c = options.channels;
  assert.equal(data.length, 4 * c);
  for (let p = 1; p < 4; p++) assertClose(data.subarray(p * c, p * c + c), [...data.subarray(0, c)], 1e-6);
  return [...data.subarray(0, c)];
}

describe('normalisation modes on a solid rgb(200, 100, 50) image', () => {
  let file: string;
  before(async () => {
    file = path.join(dir, 'solid.png');
    await writeSolid(file, 4, 4, { r: 200, g: 100, b: 50 });
  });

  test('unit divides by 255', async () => {
    assertClose(await solidPixel(file, { channels: 3, mode: 'unit', resize: 'letterbox' }), [200 / 255, 100 / 255, 50 / 255]);
  });

  test('tf maps to [-1, 1] with x / 127.5 - 1', async () => {
    assertClose(await solidPixel(file, { channels: 3, mode: 'tf', resize: 'crop' }), [0.5686275, -0.2156863, -0.6078431]);
  });

  test('caffe swaps to BGR and subtracts the ImageNet means', async () => {
    assertClose(await solidPixel(file, { channels: 3, mode: 'caffe', resize: 'letterbox' }), [50 - 103.939, 100 - 116.779, 200 - 123.68]);
  });

  test('one channel is the PIL luma (124 here) and caffe subtracts the mean of the three means', async () => {
    assertClose(await solidPixel(file, { channels: 1, mode: 'unit', resize: 'crop' }), [124 / 255]);
    assertClose(await solidPixel(file, { channels: 1, mode: 'tf', resize: 'crop' }), [124 / 127.5 - 1]);
    assertClose(await solidPixel(file, { channels: 1, mode: 'caffe', resize: 'crop' }), [124 - 114.799]);
  });

  test('normalisePixels writes at an offset into a shared buffer', () => {
    const out = new Float32Array(8).fill(7);
    normalisePixels(new Uint8Array([255, 0, 51]), 3, 'unit', out, 4);
    assertClose(out, [7, 7, 7, 7, 1, 0, 0.2, 7]);
  });
});

describe('decoding', () => {
  test('scales a 16-bit greyscale PNG to 8 bits', async () => {
    const file = path.join(dir, 'grey16.png');
    await sharp(new Uint16Array([0, 25700, 32896, 65535]), { raw: { width: 2, height: 2, channels: 1 } }).toColourspace('grey16').png().toFile(file);
    const meta = await sharp(file).metadata();
    assert.equal(meta.depth, 'ushort', 'fixture really is 16-bit');
    const grey = await decodeImagePixels(file, { height: 2, width: 2, channels: 1, resize: 'crop' });
    assertClose(grey, [0, 100, 128, 255], 1);
    const rgb = await decodeImagePixels(file, { height: 2, width: 2, channels: 3, resize: 'crop' });
    assertClose(rgb, [0, 0, 0, 100, 100, 100, 128, 128, 128, 255, 255, 255], 1);
  });

  test('flattens RGBA on black', async () => {
    const file = path.join(dir, 'rgba.png');
    await writeSolid(file, 4, 4, { r: 200, g: 100, b: 50, alpha: 128 / 255 });
    assert.equal((await sharp(file).metadata()).channels, 4);
    const rgb = await decodeImagePixels(file, { height: 2, width: 2, channels: 3, resize: 'letterbox' });
    assertClose(rgb.subarray(0, 3), [100, 50, 25], 1);
  });

  test('applies EXIF orientation', async () => {
    // Stored 32x16 with the left half white; orientation 6 displays it rotated 90° clockwise,
    // so the white half must end up on top of a 16x32 image.
    const pixels = new Uint8Array(32 * 16);
    for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) pixels[y * 32 + x] = 255;
    const input = await sharp(pixels, { raw: { width: 32, height: 16, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
    const oriented = await sharp(input).withMetadata({ orientation: 6 }).jpeg({ quality: 95 }).toBuffer();
    assert.equal((await sharp(oriented).metadata()).orientation, 6);
    const out = await decodeImagePixels(oriented, { height: 32, width: 16, channels: 1, resize: 'crop' });
    const mean = (y0: number, y1: number): number => {
      let s = 0;
      for (let y = y0; y < y1; y++) for (let x = 0; x < 16; x++) s += out[y * 16 + x] as number;
      return s / ((y1 - y0) * 16);
    };
    assert.ok(mean(0, 12) > 240, `top is white (${mean(0, 12)})`);
    assert.ok(mean(20, 32) < 15, `bottom is black (${mean(20, 32)})`);
    const control = await decodeImagePixels(input, { height: 16, width: 32, channels: 1, resize: 'crop' });
    assert.ok((control[0] as number) > 240 && (control[31] as number) < 15, 'without the tag the white half stays left');
  });

  test('letterbox pads with black while crop fills the frame from the centre', async () => {
    // 8x4: two red columns, four green, two blue.
    const pixels = new Uint8Array(8 * 4 * 3);
    for (let y = 0; y < 4; y++) {
      for (let x = 0; x < 8; x++) pixels[(y * 8 + x) * 3 + (x < 2 ? 0 : x < 6 ? 1 : 2)] = 255;
    }
    const file = path.join(dir, 'bands.png');
    await writeRawPng(file, pixels, 8, 4, 3);
    const crop = await decodeImagePixels(file, { height: 4, width: 4, channels: 3, resize: 'crop' });
    assert.equal(crop.length, 4 * 4 * 3);
    for (let p = 0; p < 16; p++) assert.deepEqual([...crop.subarray(p * 3, p * 3 + 3)], [0, 255, 0], `crop pixel ${p} is the green centre`);

    const box = await decodeImagePixels(file, { height: 4, width: 4, channels: 3, resize: 'letterbox' });
    assert.equal(box.length, 4 * 4 * 3);
    const row = (y: number): number[] => [...box.subarray(y * 12, y * 12 + 12)];
    assert.deepEqual(row(0), new Array(12).fill(0), 'top padding is black');
    assert.deepEqual(row(3), new Array(12).fill(0), 'bottom padding is black');
    assert.ok(row(1)[0]! > 200 && row(1)[11]! > 200, 'content keeps red on the left and blue on the right');
    assert.ok(row(2)[4]! > 200, 'and green in the middle');

    const wide = await loadImageTensorData(file, { height: 3, width: 5, channels: 1, mode: 'unit', resize: 'letterbox' });
    assert.equal(wide.length, 3 * 5);
  });

  test('rejects what it cannot decode with IMAGE_UNDECODABLE', async () => {
    const opts = { height: 4, width: 4, channels: 3, mode: 'unit', resize: 'crop' } as const;
    await assert.rejects(loadImageTensorData(Buffer.from('not an image'), opts), (e) => isMlError(e, 'IMAGE_UNDECODABLE'));
    const big = path.join(dir, 'big.png');
    await writeSolid(big, 100, 100, { r: 1, g: 2, b: 3 });
    await assert.rejects(loadImageTensorData(big, { ...opts, limitInputPixels: 9999 }), (e) => isMlError(e, 'IMAGE_UNDECODABLE') && /pixel limit/i.test(e.message));
  });

  test('rejects invalid options, listing the valid values', async () => {
    await assert.rejects(
      loadImageTensorData(Buffer.alloc(1), { height: 0, width: 4, channels: 2 as 3, mode: 'torch' as 'tf', resize: 'crop' }),
      (e) => isMlError(e, 'INVALID_ARGUMENT') && /height/.test(e.message) && /channels must be 1 or 3/.test(e.message) && /caffe, tf, unit/.test(e.message),
    );
  });
});

describe('real radiographs', { skip: SKIP_WITHOUT_XRAYS }, () => {
  test('a 224x224 caffe tensor from a path equals the one from the bytes and stays in range', async () => {
    const options = { height: 224, width: 224, channels: 3, mode: 'caffe', resize: 'letterbox' } as const;
    const fromPath = await loadImageTensorData(xray('fractured', 0), options);
    const fromBytes = await loadImageTensorData(await readFile(xray('fractured', 0)), options);
    assert.equal(fromPath.length, 224 * 224 * 3);
    assert.deepEqual(fromPath, fromBytes);
    let min = Infinity;
    let max = -Infinity;
    for (const v of fromPath) {
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    assert.ok(min >= -123.68 - 1e-4 && max <= 255 - 103.939 + 1e-4, `range [${min}, ${max}]`);
    assert.ok(max - min > 100, 'a radiograph has contrast');
  });

  test('a truncated JPEG fails to decode', async () => {
    const bytes = await readFile(xray('fractured', 1));
    await assert.rejects(
      loadImageTensorData(bytes.subarray(0, bytes.length >> 1), { height: 32, width: 32, channels: 1, mode: 'unit', resize: 'crop' }),
      (e) => isMlError(e, 'IMAGE_UNDECODABLE'),
    );
  });
});

describe('preprocessingRecord', () => {
  test('describes caffe as BGR with the ImageNet means and round-trips through JSON', () => {
    const options: ImageOptions = { height: 224, width: 224, channels: 3, mode: 'caffe', resize: 'letterbox' };
    const record = preprocessingRecord(options);
    assert.equal(record.normalisation.channelOrder, 'BGR');
    assert.deepEqual(record.normalisation.mean, [103.939, 116.779, 123.68]);
    assert.equal(record.resize.mode, 'letterbox');
    assert.equal(record.resize.fit, 'contain');
    assert.match(record.decoder.sharp, /^\d+\.\d+/);
    const stored = JSON.parse(JSON.stringify(record)) as unknown;
    assert.deepEqual(stored, record);
    assert.deepEqual(imageOptionsFromRecord(stored), options);
  });

  test('describes tf and unit scaling for one channel', () => {
    const tfRecord = preprocessingRecord({ height: 299, width: 299, channels: 1, mode: 'tf', resize: 'crop' });
    assert.deepEqual(tfRecord.normalisation, { mode: 'tf', channelOrder: 'L', mean: [0], scale: 127.5, offset: -1 });
    assert.equal(tfRecord.colour, 'luma-itu-r-601');
    const unit = preprocessingRecord({ height: 64, width: 64, channels: 3, mode: 'unit', resize: 'crop' });
    assert.deepEqual(unit.normalisation, { mode: 'unit', channelOrder: 'RGB', mean: [0], scale: 255, offset: 0 });
  });

  test('refuses something that is not a preprocessing record', () => {
    assert.throws(() => imageOptionsFromRecord({ version: 2 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => imageOptionsFromRecord(null), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  });
});
