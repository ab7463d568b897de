import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError, ERROR_CATALOG, ERROR_CODES, toAppError, withoutServerPaths } from '../../../src/infra/errors.ts';
import { MlError } from '../../../src/ml/errors.ts';

describe('error catalogue', () => {
  it('gives every code a 4xx or 5xx status and a title', () => {
    for (const code of ERROR_CODES) {
      const { status, title } = ERROR_CATALOG[code];
      assert.ok(status >= 400 && status < 600, `${code}: ${status}`);
      assert.ok(title.length > 5, code);
    }
  });

  it('maps ML engine errors to service codes and keeps their message without server paths', () => {
    const error = toAppError(new MlError('DATASET_SINGLE_CLASS', 'dataset /srv/data/datasets/wrist has only the class fractured'));
    assert.equal(error.code, 'DATASET_SINGLE_CLASS');
    assert.equal(error.status, 422);
    assert.equal(error.message, 'dataset wrist has only the class fractured');
  });

  it('answers an engine that cannot run the model here with 503 ENGINE_UNAVAILABLE saying why, without server paths', () => {
    const error = toAppError(new MlError('BACKEND_UNAVAILABLE', '/srv/data/models/m1: no model.onnx (the model was saved without ONNX export); serve it with tfjs or export it.'));
    assert.equal(error.code, 'ENGINE_UNAVAILABLE');
    assert.equal(error.status, 503);
    assert.equal(error.message, 'm1: no model.onnx (the model was saved without ONNX export); serve it with tfjs or export it.');
  });

  it('answers model and internal ML errors with the generic title, not the message', () => {
    const corrupt = toAppError(new MlError('MODEL_CORRUPT', 'sha256 mismatch in /srv/data/models/m1/group1-shard1of1.bin'));
    assert.equal(corrupt.code, 'MODEL_CORRUPT');
    assert.doesNotMatch(corrupt.message, /srv|shard/);
    const checkpoint = toAppError(new MlError('CHECKPOINT_INVALID', 'bad /srv/x'));
    assert.equal(checkpoint.code, 'INTERNAL');
    assert.doesNotMatch(checkpoint.message, /srv/);
  });

  it('turns unknown errors into INTERNAL without repeating their message', () => {
    const error = toAppError(new Error('ENOENT /home/patient-jane/scan.png'));
    assert.equal(error.code, 'INTERNAL');
    assert.doesNotMatch(error.message, /jane|scan/);
  });

  it('keeps AppErrors as they are', () => {
    const original = new AppError('QUEUE_FULL', 'busy', { headers: { 'Retry-After': '2' } });
    assert.equal(toAppError(original), original);
  });

  it('keeps ratios and relative paths in messages', () => {
    assert.equal(withoutServerPaths('valFraction + testFraction 0.5/0.6 in train/val'), 'valFraction + testFraction 0.5/0.6 in train/val');
  });
});
