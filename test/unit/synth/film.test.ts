import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addGrain, gaussianBlur, quantise } from '../../../src/ml/synth/film.ts';
import { createRandom } from '../../../src/ml/util/random.ts';

test('gaussianBlur keeps a flat image flat and spreads a point over its neighbours', () => {
  const flat = new Float32Array(16 * 16).fill(0.5);
  gaussianBlur(flat, 16, 1.5);
  for (const v of flat) assert.ok(Math.abs(v - 0.5) < 1e-6);
  const dot = new Float32Array(16 * 16);
  dot[8 * 16 + 8] = 1;
  gaussianBlur(dot, 16, 1);
  const total = dot.reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 1) < 1e-5, `mass ${total} preserved`);
  assert.ok((dot[8 * 16 + 8] ?? 0) < 0.5 && (dot[8 * 16 + 9] ?? 0) > 0.05);
});

test('addGrain adds zero-mean noise of the requested standard deviation', () => {
  const raster = new Float32Array(20000);
  addGrain(raster, createRandom(3), 0.05);
  const mean = raster.reduce((a, b) => a + b, 0) / raster.length;
  const sd = Math.sqrt(raster.reduce((a, b) => a + (b - mean) ** 2, 0) / raster.length);
  assert.ok(Math.abs(mean) < 0.002, `mean ${mean}`);
  assert.ok(Math.abs(sd - 0.05) < 0.002, `sd ${sd}`);
});

test('quantise clamps to [0, 1], applies gamma and rounds to 8 bits', () => {
  const out = quantise(Float32Array.from([-0.2, 0, 0.25, 0.5, 1, 1.7]), 2);
  assert.deepEqual(Array.from(out), [0, 0, 16, 64, 255, 255]);
});
