import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isMlError } from '../../../src/ml/errors.ts';
import { SYNTH_REGIONS, synthClasses } from '../../../src/ml/synth/classes.ts';

test('synthClasses lists region x {fractured, normal} as sorted folder names', () => {
  const names = synthClasses().map((c) => c.name);
  assert.equal(names.length, 2 * SYNTH_REGIONS.length);
  assert.deepEqual(names, [...names].sort());
  for (const region of ['elbow', 'finger', 'forearm', 'hand', 'shoulder']) {
    assert.ok(names.includes(`${region}_fractured`), `${region}_fractured missing`);
    assert.ok(names.includes(`${region}_normal`), `${region}_normal missing`);
  }
});

test('synthClasses keeps region and state alongside each name', () => {
  for (const c of synthClasses(['shoulder', 'finger'])) {
    assert.equal(c.name, `${c.region}_${c.state}`);
  }
  assert.deepEqual(synthClasses(['shoulder', 'finger']).map((c) => c.name), [
    'finger_fractured',
    'finger_normal',
    'shoulder_fractured',
    'shoulder_normal',
  ]);
});

test('synthClasses rejects unknown, repeated and empty region lists with INVALID_ARGUMENT', () => {
  assert.throws(() => synthClasses(['knee']), (e) => isMlError(e, 'INVALID_ARGUMENT') && /valid regions: elbow/.test(e.message));
  assert.throws(() => synthClasses(['hand', 'hand']), (e) => isMlError(e, 'INVALID_ARGUMENT'));
  assert.throws(() => synthClasses([]), (e) => isMlError(e, 'INVALID_ARGUMENT'));
});
