import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { SYNTH_REGIONS, synthClasses } from '../../../src/ml/synth/classes.ts';
import { renderSyntheticXray } from '../../../src/ml/synth/render-xray.ts';
import { deriveSeed } from '../../../src/ml/util/random.ts';

function imageMean(pixels: Uint8Array): number {
  let sum = 0;
  for (const v of pixels) sum += v;
  return sum / pixels.length;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}

function std(values: readonly number[]): number {
  const m = mean(values);
  return Math.sqrt(values.reduce((a, b) => a + (b - m) ** 2, 0) / (values.length - 1));
}

test('renderSyntheticXray is a pure function of its options', () => {
  for (const region of SYNTH_REGIONS) {
    const a = renderSyntheticXray({ region, fractured: true, size: 48, seed: 11 });
    const b = renderSyntheticXray({ region, fractured: true, size: 48, seed: 11 });
    const c = renderSyntheticXray({ region, fractured: true, size: 48, seed: 12 });
    assert.equal(a.pixels.length, 48 * 48);
    assert.deepEqual(a.pixels, b.pixels);
    assert.notDeepEqual(a.pixels, c.pixels);
  }
});

test('renderSyntheticXray draws a dark background with bright structures', () => {
  for (const region of SYNTH_REGIONS) {
    const { pixels } = renderSyntheticXray({ region, fractured: false, size: 64, seed: 5 });
    const sorted = Array.from(pixels).sort((a, b) => a - b);
    const p5 = sorted[Math.floor(0.05 * sorted.length)] ?? 0;
    const p99 = sorted[Math.floor(0.99 * sorted.length)] ?? 0;
    assert.ok(p5 < 60, `${region}: background level ${p5} should be dark`);
    assert.ok(p99 > 150, `${region}: bone level ${p99} should be bright`);
  }
});

test('renderSyntheticXray rejects sizes outside [16, 2048] with INVALID_ARGUMENT', () => {
  for (const size of [8, 15.5, 4096]) {
    assert.throws(() => renderSyntheticXray({ region: 'hand', fractured: false, size, seed: 1 }), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  }
});

test('a fractured image shows a dark break where its same-seed normal twin has bone', () => {
  for (const region of SYNTH_REGIONS) {
    for (let seed = 0; seed < 8; seed++) {
      const normal = renderSyntheticXray({ region, fractured: false, size: 64, seed });
      const broken = renderSyntheticXray({ region, fractured: true, size: 64, seed });
      assert.equal(normal.fractureAt, null);
      const at = broken.fractureAt;
      assert.ok(at, 'fractured image reports its break');
      assert.ok(at.x > 4 && at.x < 60 && at.y > 4 && at.y < 60, `${region}/${seed}: break (${at.x}, ${at.y}) inside the image`);
      // Same anatomy and film noise: any difference is the break, the darkest one near its centre.
      let darkest = 0;
      for (let dy = -3; dy <= 3; dy++) {
        for (let dx = -3; dx <= 3; dx++) {
          const x = Math.floor(at.x) + dx;
          const y = Math.floor(at.y) + dy;
          if (x < 0 || y < 0 || x >= 64 || y >= 64) continue;
          darkest = Math.min(darkest, (broken.pixels[y * 64 + x] ?? 0) - (normal.pixels[y * 64 + x] ?? 0));
        }
      }
      assert.ok(darkest <= -20, `${region}/${seed}: break darkens by ${-darkest} grey levels, expected >= 20`);
    }
  }
});

test('mean image intensity does not give away the fracture state', () => {
  const fractured: number[] = [];
  const normal: number[] = [];
  const pairedShift: number[] = [];
  for (const cls of synthClasses()) {
    for (let i = 0; i < 30; i++) {
      const seed = deriveSeed(2024, `${cls.name}/${i}`);
      const value = imageMean(renderSyntheticXray({ region: cls.region, fractured: cls.state === 'fractured', size: 48, seed }).pixels);
      if (cls.state === 'normal') {
        normal.push(value);
      } else {
        fractured.push(value);
        pairedShift.push(value - imageMean(renderSyntheticXray({ region: cls.region, fractured: false, size: 48, seed }).pixels));
      }
    }
  }
  const spread = std([...fractured, ...normal]);
  const effect = (mean(fractured) - mean(normal)) / spread;
  assert.ok(spread > 5, `image means should vary across images (std ${spread})`);
  assert.ok(Math.abs(effect) < 0.15, `class mean difference is ${effect.toFixed(3)} std`);
  // Paired: the break itself shifts the mean by a tiny fraction of the between-image spread.
  assert.ok(Math.abs(mean(pairedShift)) / spread < 0.05, `paired shift ${mean(pairedShift)} vs std ${spread}`);
});

/** Area-average downscale of a `size` x `size` image to 16 x 16 features in [0, 1]. */
function downscale16(pixels: Uint8Array, size: number): Float64Array {
  const k = size / 16;
  const out = new Float64Array(256);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const j = Math.floor(y / k) * 16 + Math.floor(x / k);
      out[j] = (out[j] ?? 0) + (pixels[y * size + x] ?? 0) / (255 * k * k);
    }
  }
  return out;
}

test('a nearest-centroid baseline on 16x16 downscales tells the classes apart far above chance', () => {
  const classes = synthClasses();
  const train: { x: Float64Array; label: number }[] = [];
  const heldOut: { x: Float64Array; label: number }[] = [];
  classes.forEach((cls, label) => {
    for (let i = 0; i < 30; i++) {
      const { pixels } = renderSyntheticXray({ region: cls.region, fractured: cls.state === 'fractured', size: 64, seed: deriveSeed(7, `${cls.name}/${i}`) });
      (i < 20 ? train : heldOut).push({ x: downscale16(pixels, 64), label });
    }
  });
  const centroids = classes.map((_, label) => {
    const members = train.filter((t) => t.label === label);
    const c = new Float64Array(256);
    for (const m of members) for (let j = 0; j < 256; j++) c[j] = (c[j] ?? 0) + (m.x[j] ?? 0) / members.length;
    return c;
  });
  const predict = (x: Float64Array): number => {
    let best = 0;
    let bestDistance = Infinity;
    centroids.forEach((c, label) => {
      let d = 0;
      for (let j = 0; j < 256; j++) d += ((x[j] ?? 0) - (c[j] ?? 0)) ** 2;
      if (d < bestDistance) {
        bestDistance = d;
        best = label;
      }
    });
    return best;
  };
  const predictions = heldOut.map((t) => predict(t.x));
  const accuracy = mean(predictions.map((p, i) => (p === heldOut[i]?.label ? 1 : 0)));
  const regionAccuracy = mean(predictions.map((p, i) => (classes[p]?.region === classes[heldOut[i]?.label ?? -1]?.region ? 1 : 0)));
  assert.ok(accuracy > 0.3, `10-class held-out accuracy ${accuracy} (chance 0.1)`);
  assert.ok(regionAccuracy > 0.6, `region accuracy ${regionAccuracy} (chance 0.2)`);
});
