import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { jet, jetLut } from '../../../src/ml/explain/colormap.ts';

describe('jet colormap', () => {
  it('runs from dark blue through green to dark red', () => {
    assert.deepEqual(jet(0), [0, 0, 128]);
    assert.deepEqual(jet(0.5), [128, 255, 128]);
    assert.deepEqual(jet(1), [128, 0, 0]);
    assert.deepEqual(jet(0.25), [0, 128, 255]);
    assert.deepEqual(jet(0.75), [255, 128, 0]);
  });

  it('clamps values outside [0, 1] and maps NaN to the cold end', () => {
    assert.deepEqual(jet(-3), jet(0));
    assert.deepEqual(jet(7), jet(1));
    assert.deepEqual(jet(Number.NaN), jet(0));
  });

  it('makes red rise up to its peak and blue fall after its peak, monotonically', () => {
    for (let i = 1; i <= 100; i++) {
      const [r0, , b0] = jet((i - 1) / 100);
      const [r1, , b1] = jet(i / 100);
      if (i / 100 <= 0.875) assert.ok(r1 >= r0, `red at ${i / 100}`);
      if ((i - 1) / 100 >= 0.375) assert.ok(b1 <= b0, `blue at ${i / 100}`);
    }
  });

  it('builds a 256-entry lookup table equal to jet(i / 255)', () => {
    const lut = jetLut();
    assert.equal(lut.length, 768);
    for (const i of [0, 1, 64, 128, 200, 255]) assert.deepEqual([...lut.subarray(3 * i, 3 * i + 3)], jet(i / 255));
  });
});
