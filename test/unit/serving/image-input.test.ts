/**
 * Strict decoding of uploads: every legitimate radiograph encoding decodes (real X-rays, 16-bit and
 * grey PNG, RGBA, EXIF-rotated JPEG, with orientation applied), and hostile bytes are refused with the
 * right 4xx code and a detail that names the image by its position in the request only.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../../src/infra/errors.ts';
import type { ImageOptions } from '../../../src/ml/data/index.ts';
import { ImageRejectedError, decodeUpload } from '../../../src/serving/image-input.ts';
import { SKIP_WITHOUT_XRAYS, grayPattern, hostileImages, legitimateImages, readXrays } from './fixtures.ts';

const GRAY: ImageOptions = { height: 32, width: 32, channels: 1, mode: 'unit', resize: 'letterbox' };
const RGB: ImageOptions = { height: 40, width: 40, channels: 3, mode: 'caffe', resize: 'crop' };
const LIMITS = { maxPixels: 50_000_000 };

function meanAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs((a[i] as number) - (b[i] as number));
  return sum / a.length;
}

async function refusal(promise: Promise<unknown>): Promise<ImageRejectedError> {
  const error = await promise.then(
    () => assert.fail('the image should be refused'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ImageRejectedError, `expected ImageRejectedError, got ${String(error)}`);
  assert.ok(error instanceof AppError);
  return error;
}

describe('decodeUpload', () => {
  it('decodes real radiographs for grey and colour models', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const xrays = await readXrays(12);
    for (const [index, data] of xrays.entries()) {
      for (const options of [GRAY, RGB]) {
        const decoded = await decodeUpload({ id: `images[${index}]`, index, data }, options, LIMITS);
        const n = options.height * options.width * options.channels;
        assert.equal(decoded.id, `images[${index}]`);
        assert.equal(decoded.pixels.length, n);
        assert.equal(decoded.input.length, n);
        assert.ok(decoded.input.every(Number.isFinite));
      }
    }
  });

  it('decodes 16-bit PNG, grey PNG and JPEG, and RGBA PNG', async () => {
    const images = await legitimateImages();
    const reference = await decodeUpload({ id: 'ref', index: 0, data: images.grayPng! }, GRAY, LIMITS);
    for (const name of ['png16', 'grayJpeg', 'rgba'] as const) {
      const decoded = await decodeUpload({ id: name, index: 0, data: images[name]! }, GRAY, LIMITS);
      assert.equal(decoded.input.length, 32 * 32);
      // The same picture in another encoding: 16-bit scaled to 8 bits, JPEG's small loss, alpha flattened.
      const tolerance = name === 'rgba' ? 60 : name === 'grayJpeg' ? 4 : 1;
      assert.ok(meanAbsDiff(decoded.pixels, reference.pixels) <= tolerance, `${name} differs from the 8-bit PNG`);
    }
  });

  it('applies EXIF orientation before resizing', async () => {
    const { exifRotated } = await legitimateImages();
    const raw = { raw: { width: 48, height: 24, channels: 1 as const } };
    const upright = await sharp(grayPattern(48, 24), raw).rotate(90).png().toBuffer();
    const unrotated = await sharp(grayPattern(48, 24), raw).png().toBuffer();
    const decoded = await decodeUpload({ id: 'exif', index: 0, data: exifRotated! }, GRAY, LIMITS);
    const expected = await decodeUpload({ id: 'upright', index: 0, data: upright }, GRAY, LIMITS);
    const wrong = await decodeUpload({ id: 'unrotated', index: 0, data: unrotated }, GRAY, LIMITS);
    const toUpright = meanAbsDiff(decoded.pixels, expected.pixels);
    assert.ok(toUpright < 6, `EXIF-rotated JPEG differs from the upright image by ${toUpright}`);
    assert.ok(meanAbsDiff(decoded.pixels, wrong.pixels) > 5 * toUpright + 10, 'orientation was ignored');
  });

  it('refuses hostile bytes with a 4xx code naming the image by its position only', async () => {
    for (const [name, { data, code }] of Object.entries(await hostileImages())) {
      const error = await refusal(decodeUpload({ id: 'PATIENT-4711', index: 3, data }, GRAY, LIMITS));
      assert.equal(error.code, code, name);
      assert.ok(error.status >= 400 && error.status < 500, `${name}: status ${error.status}`);
      assert.equal(error.imageIndex, 3);
      assert.match(error.message, /^images\[3\] /, name);
      assert.doesNotMatch(error.message, /PATIENT-4711/, 'the caller\'s id is not repeated');
      assert.doesNotMatch(error.message, /Jane Doe/);
    }
  });

  it('refuses an image with more pixels than maxPixels from its header, before decoding', async () => {
    const big = await sharp({ create: { width: 3000, height: 2000, channels: 3, background: '#000' } }).grayscale().png().toBuffer();
    const error = await refusal(decodeUpload({ id: 'big', index: 0, data: big }, GRAY, { maxPixels: 1_000_000 }));
    assert.equal(error.code, 'IMAGE_TOO_LARGE');
    assert.match(error.message, /3000x2000/);
    // Within the limit the same file decodes.
    const decoded = await decodeUpload({ id: 'big', index: 0, data: big }, GRAY, { maxPixels: 6_000_000 });
    assert.equal(decoded.pixels.length, 32 * 32);
  });

  it('refuses a JPEG with trailing damage under the default failOn but not when relaxed', async () => {
    // A JPEG whose entropy-coded data is corrupted in the middle: libjpeg warns and carries on.
    const good = await sharp(grayPattern(128, 128), { raw: { width: 128, height: 128, channels: 1 } }).jpeg({ quality: 90 }).toBuffer();
    const damaged = Buffer.from(good);
    for (let i = Math.floor(damaged.length * 0.6); i < Math.floor(damaged.length * 0.6) + 40; i++) damaged[i] = 0xff;
    const strict = await decodeUpload({ id: 'd', index: 0, data: damaged }, GRAY, LIMITS).then(() => null, (e: unknown) => e);
    assert.ok(strict instanceof ImageRejectedError && strict.code === 'IMAGE_UNDECODABLE', `strict decode gave ${String(strict)}`);
    const relaxed = await decodeUpload({ id: 'd', index: 0, data: damaged }, GRAY, { ...LIMITS, failOn: 'truncated' });
    assert.equal(relaxed.pixels.length, 32 * 32);
  });
});
