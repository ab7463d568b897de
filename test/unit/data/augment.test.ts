import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { applyAugmentation, resolveAugmentOptions, sampleAugmentParams, DEFAULT_AUGMENT } from '../../../src/ml/data/augment.ts';
import type { AugmentParams } from '../../../src/ml/data/augment.ts';

const IDENTITY: AugmentParams = { flip: false, angle: 0, zoom: 1, brightness: 0, contrast: 1 };

/** A 6x5 two-channel image whose values encode their position. */
function ramp(height = 5, width = 6, channels = 2): Uint8Array {
  const px = new Uint8Array(height * width * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < channels; c++) px[(y * width + x) * channels + c] = 10 * x + 3 * y + 100 * c;
  return px;
}

describe('augmentation parameters', () => {
  test('are the same for the same (seed, epoch, index) and change with each of them', () => {
    const options = resolveAugmentOptions(true);
    const a = sampleAugmentParams(options, 42, 3, 17);
    assert.deepEqual(sampleAugmentParams(options, 42, 3, 17), a);
    assert.notDeepEqual(sampleAugmentParams(options, 42, 4, 17), a);
    assert.notDeepEqual(sampleAugmentParams(options, 42, 3, 18), a);
    assert.notDeepEqual(sampleAugmentParams(options, 43, 3, 17), a);
  });

  test('stay within the configured ranges and flip about half the time', () => {
    const options = resolveAugmentOptions({ rotationDegrees: 10, zoom: [0.9, 1.1], brightness: 0.1, contrast: 0.1 });
    let flips = 0;
    for (let i = 0; i < 400; i++) {
      const p = sampleAugmentParams(options, 1, 0, i);
      assert.ok(Math.abs(p.angle) <= (10 * Math.PI) / 180);
      assert.ok(p.zoom >= 0.9 && p.zoom <= 1.1);
      assert.ok(Math.abs(p.brightness) <= 25.5);
      assert.ok(p.contrast >= 0.9 && p.contrast <= 1.1);
      if (p.flip) flips++;
    }
    assert.ok(flips > 150 && flips < 250, `flips ${flips}/400`);
  });

  test('switched-off transforms draw identity values without shifting the others', () => {
    const all = sampleAugmentParams(resolveAugmentOptions(true), 5, 0, 9);
    const noFlip = sampleAugmentParams(resolveAugmentOptions({ flip: false, rotationDegrees: 0 }), 5, 0, 9);
    assert.equal(noFlip.flip, false);
    assert.equal(noFlip.angle, 0);
    assert.equal(noFlip.zoom, all.zoom);
    assert.equal(noFlip.brightness, all.brightness);
  });

  test('fills defaults and rejects out-of-range options', () => {
    assert.deepEqual(resolveAugmentOptions({}), DEFAULT_AUGMENT);
    assert.throws(() => resolveAugmentOptions({ zoom: [1.2, 1.1] }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => resolveAugmentOptions({ contrast: 1 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  });
});

describe('applyAugmentation', () => {
  test('identity parameters return the pixels unchanged', () => {
    const px = ramp();
    assert.deepEqual([...applyAugmentation(px, 5, 6, 2, IDENTITY)], [...px]);
  });

  test('a flip mirrors each row exactly', () => {
    const px = ramp();
    const out = applyAugmentation(px, 5, 6, 2, { ...IDENTITY, flip: true });
    for (let y = 0; y < 5; y++) {
      for (let x = 0; x < 6; x++) {
        for (let c = 0; c < 2; c++) assert.equal(out[(y * 6 + x) * 2 + c], px[(y * 6 + (5 - x)) * 2 + c]);
      }
    }
  });

  test('a 90° rotation turns rows into columns and leaves the centre in place', () => {
    // 5x5, one channel; a positive angle turns clockwise as displayed: the top row becomes the right column.
    const px = new Uint8Array(25);
    for (let x = 0; x < 5; x++) px[x] = 200;
    px[12] = 77;
    const out = applyAugmentation(px, 5, 5, 1, { ...IDENTITY, angle: Math.PI / 2 });
    assert.ok(Math.abs(out[12]! - 77) < 1e-3, 'centre unchanged');
    const rightColumn = [0, 1, 2, 3, 4].map((y) => out[y * 5 + 4]!);
    const topRow = [...out.subarray(0, 5)];
    assert.ok(rightColumn.every((v) => Math.abs(v - 200) < 1e-3), `right column ${rightColumn}`);
    assert.ok(topRow.slice(0, 4).every((v) => v < 1e-3), `top row ${topRow}`);
  });

  test('zooming in magnifies around the centre and zooming out pads with black', () => {
    const px = new Uint8Array(9 * 9).fill(100);
    const zoomedOut = applyAugmentation(px, 9, 9, 1, { ...IDENTITY, zoom: 0.5 });
    assert.equal(zoomedOut[0], 0, 'corner comes from outside the image');
    assert.equal(zoomedOut[40], 100, 'centre stays');
    const grad = new Uint8Array(9).map((_, x) => x * 20);
    const zoomedIn = applyAugmentation(grad, 1, 9, 1, { ...IDENTITY, zoom: 2 });
    assert.ok(Math.abs(zoomedIn[0]! - 40) < 1e-3 && Math.abs(zoomedIn[8]! - 120) < 1e-3, `edges ${zoomedIn[0]}, ${zoomedIn[8]}`);
  });

  test('contrast scales around the image mean, brightness adds, and the result is clamped to [0, 255]', () => {
    const px = new Uint8Array([50, 150, 250, 150]);
    const out = applyAugmentation(px, 2, 2, 1, { ...IDENTITY, contrast: 1.5, brightness: 10 });
    // mean 150: 50 → 0 + 10, 150 → 160, 250 → 300 → clamped 255.
    assert.deepEqual([...out], [10, 160, 255, 160]);
  });

  test('is deterministic: same parameters, same output', () => {
    const px = ramp(16, 16, 3);
    const params = sampleAugmentParams(resolveAugmentOptions(true), 7, 2, 3);
    assert.deepEqual(applyAugmentation(px, 16, 16, 3, params), applyAugmentation(px, 16, 16, 3, params));
    const other = sampleAugmentParams(resolveAugmentOptions(true), 7, 2, 4);
    assert.notDeepEqual(applyAugmentation(px, 16, 16, 3, other), applyAugmentation(px, 16, 16, 3, params));
  });
});
