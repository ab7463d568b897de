import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildWeightsManifest, shardFileName, splitIntoShards } from '../../../src/ml/persist/weight-shards.ts';

const bytes = (n: number): ArrayBuffer => Uint8Array.from({ length: n }, (_, i) => i % 251).buffer;

describe('splitIntoShards', () => {
  it('cuts the weight bytes into full shards plus a shorter last one, named like the tfjs converter', () => {
    const shards = splitIntoShards(bytes(10), 4);
    assert.deepEqual(shards.map((s) => s.name), ['group1-shard1of3.bin', 'group1-shard2of3.bin', 'group1-shard3of3.bin']);
    assert.deepEqual(shards.map((s) => s.bytes.byteLength), [4, 4, 2]);
    const joined = Uint8Array.from(shards.flatMap((s) => [...s.bytes]));
    assert.deepEqual(joined, new Uint8Array(bytes(10)));
  });

  it('makes exactly n shards when the size is a multiple of the shard size', () => {
    assert.equal(splitIntoShards(bytes(8), 4).length, 2);
  });

  it('accepts weight data given as a list of buffers and preserves byte order across them', () => {
    const parts = [bytes(3), Uint8Array.from([200, 201, 202, 203, 204]).buffer];
    const shards = splitIntoShards(parts, 4);
    assert.deepEqual(shards.map((s) => [...s.bytes]), [[0, 1, 2, 200], [201, 202, 203, 204]]);
  });

  it('writes one empty shard for a model without weights', () => {
    const shards = splitIntoShards(new ArrayBuffer(0));
    assert.deepEqual(shards.map((s) => [s.name, s.bytes.byteLength]), [['group1-shard1of1.bin', 0]]);
  });

  it('rejects shard sizes that are not positive multiples of 4', () => {
    assert.throws(() => splitIntoShards(bytes(8), 0), RangeError);
    assert.throws(() => splitIntoShards(bytes(8), 6), RangeError);
  });
});

describe('buildWeightsManifest', () => {
  it('lists every shard path and every weight spec in one group', () => {
    const specs = [{ name: 'dense/kernel', shape: [2, 2], dtype: 'float32' as const }];
    const manifest = buildWeightsManifest(splitIntoShards(bytes(12), 8), specs);
    assert.deepEqual(manifest, [{ paths: [shardFileName(0, 2), shardFileName(1, 2)], weights: specs }]);
  });
});
