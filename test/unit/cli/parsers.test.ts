import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError } from 'commander';
import { finiteNumber, integer, listOf, oneOf, positiveInteger } from '../../../src/cli/parsers.ts';

describe('CLI option parsers', () => {
  it('integer accepts digits only', () => {
    assert.equal(integer('42'), 42);
    assert.equal(integer('0'), 0);
    for (const bad of ['-1', '1.5', 'x', '']) assert.throws(() => integer(bad), InvalidArgumentError, bad);
  });

  it('positiveInteger rejects 0', () => {
    assert.equal(positiveInteger('16'), 16);
    assert.throws(() => positiveInteger('0'), /positive integer/);
  });

  it('finiteNumber accepts decimals and exponents but not blanks or infinities', () => {
    assert.equal(finiteNumber('1e-3'), 0.001);
    assert.equal(finiteNumber('0.15'), 0.15);
    for (const bad of ['', ' ', 'Infinity', 'abc']) assert.throws(() => finiteNumber(bad), InvalidArgumentError, bad);
  });

  it('listOf keeps order, drops duplicates and names the valid values on error', () => {
    const parse = listOf(['cnn', 'vgg16', 'resnet50'] as const);
    assert.deepEqual(parse('resnet50, cnn,resnet50'), ['resnet50', 'cnn']);
    assert.throws(() => parse('cnn,alexnet'), /unknown value "alexnet"; valid: cnn, vgg16, resnet50/);
    assert.throws(() => parse(' , '), /at least one/);
  });

  it('oneOf accepts exactly the listed values', () => {
    const parse = oneOf(['adam', 'sgd'] as const);
    assert.equal(parse('sgd'), 'sgd');
    assert.throws(() => parse('Adam'), /valid: adam, sgd/);
  });
});
