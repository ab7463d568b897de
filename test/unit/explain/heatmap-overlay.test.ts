import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { isMlError } from '../../../src/ml/errors.ts';
import { gradCam, jet, renderHeatmapOverlay } from '../../../src/ml/explain/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const xrayDir = path.resolve(repoRoot, '../shared/datasets/xray-binary/fractured');

let tmp: string;
before(async () => {
  await useTestBackend();
  tmp = await mkdtemp(path.join(os.tmpdir(), 'overlay-test-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A flat gray PNG of `width x height` at `level`. */
function grayPng(width: number, height: number, level: number): Promise<Buffer> {
  return sharp(Buffer.alloc(width * height, level), { raw: { width, height, channels: 1 } }).png().toBuffer();
}

async function decodeRgb(png: Buffer): Promise<{ data: Buffer; width: number; height: number; channels: number }> {
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

const pixel = (img: { data: Buffer; width: number; channels: number }, x: number, y: number): number[] =>
  [...img.data.subarray((y * img.width + x) * img.channels, (y * img.width + x) * img.channels + 3)];

/** Hot top-left cell, cold elsewhere. */
const cornerCam = { heatmap: Float32Array.from([1, 0, 0, 0]), width: 2, height: 2 };

async function assertRejectsWithCode(promise: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => isMlError(error) && error.code === code);
}

describe('renderHeatmapOverlay', () => {
  it('returns an RGB PNG with the image dimensions', async () => {
    const png = await renderHeatmapOverlay(await grayPng(40, 30, 100), cornerCam);
    assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, 'png');
    assert.deepEqual([meta.width, meta.height, meta.channels], [40, 30, 3]);
  });

  it('blends jet colours over the gray image: red where the map is hot, blue where it is cold', async () => {
    const alpha = 0.45;
    const img = await decodeRgb(await renderHeatmapOverlay(await grayPng(40, 40, 128), cornerCam, { alpha }));
    const blend = (colour: number[]): number[] => colour.map((c) => Math.round((1 - alpha) * 128 + alpha * c));
    const near = (actual: number[], expected: number[]) =>
      actual.every((v, i) => Math.abs(v - expected[i]!) <= 3) || assert.fail(`${actual} vs ${expected}`);
    near(pixel(img, 0, 0), blend(jet(1))); // (128, 70, 70)
    near(pixel(img, 39, 39), blend(jet(0))); // (70, 70, 128)
    near(pixel(img, 39, 0), blend(jet(0)));
    // Bilinear upsampling: the heat falls off smoothly, so a pixel between the cells is in between.
    const middle = pixel(img, 12, 12);
    assert.ok(middle[1]! > 80, `green channel ${middle[1]} shows mid-range heat`);
  });

  it('reproduces the grayscale image when alpha is 0', async () => {
    const source = await sharp({ create: { width: 16, height: 12, channels: 3, background: { r: 200, g: 50, b: 10 } } }).png().toBuffer();
    const gray = (await sharp(source).grayscale().raw().toBuffer())[0]!;
    const img = await decodeRgb(await renderHeatmapOverlay(source, cornerCam, { alpha: 0 }));
    for (let i = 0; i < 16 * 12; i++) assert.deepEqual([...img.data.subarray(3 * i, 3 * i + 3)], [gray, gray, gray]);
  });

  it('reads files and 16-bit PNGs, applies EXIF orientation and honours maxSide', async () => {
    const wide16 = await sharp(Buffer.alloc(60 * 20 * 2, 0x40), { raw: { width: 60, height: 20, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    const file = path.join(tmp, 'wide16.png');
    await writeFile(file, wide16);
    const fromFile = await sharp(await renderHeatmapOverlay(file, cornerCam)).metadata();
    assert.deepEqual([fromFile.width, fromFile.height], [60, 20]);

    // EXIF orientation 6 = rotate 90 degrees clockwise for display: 60x20 stored, 20x60 shown.
    const rotated = await sharp(await grayPng(60, 20, 90)).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    const upright = await sharp(await renderHeatmapOverlay(rotated, cornerCam)).metadata();
    assert.deepEqual([upright.width, upright.height], [20, 60]);

    const capped = await sharp(await renderHeatmapOverlay(await grayPng(300, 150, 90), cornerCam, { maxSide: 100 })).metadata();
    assert.deepEqual([capped.width, capped.height], [100, 50]);
  });

  it('rejects undecodable images, mis-sized heat-maps and alphas outside [0, 1]', async () => {
    const image = await grayPng(8, 8, 50);
    await assertRejectsWithCode(renderHeatmapOverlay(Buffer.from('not an image'), cornerCam), 'IMAGE_UNDECODABLE');
    await assertRejectsWithCode(renderHeatmapOverlay(path.join(tmp, 'missing.png'), cornerCam), 'IMAGE_UNDECODABLE');
    await assertRejectsWithCode(renderHeatmapOverlay(image, { heatmap: new Float32Array(5), width: 2, height: 2 }), 'INVALID_ARGUMENT');
    await assertRejectsWithCode(renderHeatmapOverlay(image, cornerCam, { alpha: 1.5 }), 'INVALID_ARGUMENT');
  });

  it('overlays a Grad-CAM of a real X-ray end to end without leaking tensors', async (t) => {
    if (!existsSync(xrayDir)) {
      t.skip(`real X-rays not found at ${xrayDir}`);
      return;
    }
    const file = path.join(xrayDir, (await readdir(xrayDir)).filter((name) => /\.(jpe?g|png)$/i.test(name)).sort()[0]!);
    const model = tf.sequential({
      layers: [
        tf.layers.conv2d({ inputShape: [32, 32, 1], filters: 4, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'block1_relu' }),
        tf.layers.globalAveragePooling2d({}),
        tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    const pixels = await sharp(file).rotate().grayscale().resize(32, 32, { fit: 'fill' }).raw().toBuffer();
    const before = tf.memory().numTensors;
    const x = tf.tidy(() => tf.tensor4d(Float32Array.from(pixels, (v) => v / 255), [1, 32, 32, 1]));
    const cam = await gradCam(model, x, { layerName: 'block1_relu' });
    x.dispose();
    assert.equal(tf.memory().numTensors, before);
    const png = await renderHeatmapOverlay(file, cam);
    const original = await sharp(file).rotate().metadata();
    const meta = await sharp(png).metadata();
    assert.equal(meta.format, 'png');
    assert.deepEqual([meta.width, meta.height], [original.autoOrient?.width ?? original.width, original.autoOrient?.height ?? original.height]);
    model.dispose();
  });
});
