import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { isPathInside } from '../../../src/ml/util/paths.ts';

test('isPathInside: the folder itself and anything below it, nothing beside or above it', () => {
  assert.equal(isPathInside('/models/cnn', '/models/cnn'), true);
  assert.equal(isPathInside('/models/cnn/1/model.onnx', '/models/cnn'), true);
  assert.equal(isPathInside('/models/cnn/../cnn/x', '/models/cnn'), true);
  assert.equal(isPathInside('/models/cnn-old', '/models/cnn'), false);
  assert.equal(isPathInside('/models', '/models/cnn'), false);
  assert.equal(isPathInside('/models/cnn/../vgg16', '/models/cnn'), false);
  // A folder whose name starts with two dots is still inside.
  assert.equal(isPathInside('/models/cnn/..hidden', '/models/cnn'), true);
  // Relative paths resolve against the working directory.
  assert.equal(isPathInside('out.onnx', process.cwd()), true);
  assert.equal(isPathInside(path.join('..', 'elsewhere'), process.cwd()), false);
});
