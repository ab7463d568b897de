import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalJson } from '../../../src/infra/canonical-json.ts';

test('canonicalJson sorts keys at every level, drops undefined members, keeps array order', () => {
  assert.equal(canonicalJson({ b: 1, a: { d: [3, 2], c: 'x' } }), '{"a":{"c":"x","d":[3,2]},"b":1}');
  assert.equal(canonicalJson({ a: undefined, b: [undefined, null] }), '{"b":[null,null]}');
  assert.equal(canonicalJson({ x: 1, y: 2 }), canonicalJson({ y: 2, x: 1 }));
  assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
  assert.equal(canonicalJson(undefined), 'null');
  assert.equal(canonicalJson('a"b'), '"a\\"b"');
});
