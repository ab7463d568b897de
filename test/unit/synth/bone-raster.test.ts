import assert from 'node:assert/strict';
import { test } from 'node:test';
import { drawBone, drawTissue, type PixelBone } from '../../../src/ml/synth/bone-raster.ts';

const SIZE = 64;
/** A vertical bone through the middle of the image, its ends outside it. */
const shaft: PixelBone = {
  points: [{ x: 32, y: -40 }, { x: 32, y: 104 }],
  radius: 10,
  flareStart: 0,
  flareEnd: 0,
  medulla: 0.66,
  density: 1,
};

function row(raster: Float32Array, y: number): number[] {
  return Array.from(raster.subarray(y * SIZE, (y + 1) * SIZE));
}

test('a bone projects a brighter cortex rim than its medulla and nothing outside it', () => {
  const raster = new Float32Array(SIZE * SIZE);
  drawBone(raster, SIZE, shaft);
  const line = row(raster, 32);
  const centre = line[32] ?? 0;
  const rim = Math.max(...line);
  assert.ok(centre > 0, 'bone centre is drawn');
  assert.ok(rim > 1.3 * centre, `rim ${rim} should clearly exceed centre ${centre}`);
  assert.equal(line[32 - 12], 0);
  assert.equal(line[32 + 12], 0);
});

test('a fracture leaves a dark gap across the bone and keeps both fragments', () => {
  const intact = new Float32Array(SIZE * SIZE);
  const broken = new Float32Array(SIZE * SIZE);
  drawBone(intact, SIZE, shaft);
  // Break 72 px along the axis (image row 32), 3 px wide, no motion of the distal fragment.
  drawBone(broken, SIZE, shaft, {
    at: 72,
    obliquity: 0,
    gap: 3,
    jagAmplitude: 0,
    jagFrequency: 0,
    jagPhase: 0,
    centre: { x: 32, y: 32 },
    angulation: 0,
    shift: { x: 0, y: 0 },
  });
  for (let x = 24; x <= 40; x++) assert.equal(broken[32 * SIZE + x], 0, `gap pixel (${x}, 32) should be empty`);
  // Away from the gap the fragments are exactly the intact bone.
  assert.deepEqual(row(broken, 20), row(intact, 20));
  assert.deepEqual(row(broken, 44), row(intact, 44));
});

test('a displaced fracture moves the distal fragment sideways', () => {
  const broken = new Float32Array(SIZE * SIZE);
  drawBone(broken, SIZE, shaft, {
    at: 72, obliquity: 0, gap: 2, jagAmplitude: 0, jagFrequency: 0, jagPhase: 0,
    centre: { x: 32, y: 32 }, angulation: 0, shift: { x: 5, y: 0 },
  });
  const proximal = row(broken, 20);
  const distal = row(broken, 50);
  const edge = (line: number[]): number => line.findIndex((v) => v > 0);
  assert.equal(edge(distal) - edge(proximal), 5);
});

test('overlapping tissue slabs merge by maximum instead of adding up', () => {
  const raster = new Float32Array(SIZE * SIZE);
  const slab = { points: [{ x: 32, y: 0 }, { x: 32, y: 64 }], radius: 20, density: 0.8 };
  drawTissue(raster, SIZE, slab);
  drawTissue(raster, SIZE, slab);
  assert.ok(Math.abs((raster[32 * SIZE + 31] ?? 0) - 0.8) < 0.01);
  assert.equal(raster[32 * SIZE + 5], 0);
});
