import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES, ConfigError, ENV_SCHEMA, loadConfig } from '../../../src/infra/config.ts';

const ENV_EXAMPLE = path.join(import.meta.dirname, '../../../.env.example');

/** `NAME=value` lines of .env.example. */
function exampleEntries(): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of readFileSync(ENV_EXAMPLE, 'utf8').split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) entries.set(match[1] as string, match[2] as string);
  }
  return entries;
}

describe('configuration', () => {
  it('fills every default from an empty environment', () => {
    const config = loadConfig({});
    assert.equal(config.PORT, 8080);
    assert.equal(config.QUEUE_PREFIX, 'fracture');
    assert.equal(config.FRACTURE_BACKEND, 'auto');
    assert.ok(path.isAbsolute(config.DATA_DIR));
    assert.ok(Object.isFrozen(config));
  });

  it('lists every bad variable at once', () => {
    assert.throws(
      () => loadConfig({ PORT: 'eighty', REDIS_URL: 'http://x', QUEUE_PREFIX: 'a:b', LOG_LEVEL: 'loud', PREDICT_MAX_BATCH_SIZE: '0' }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        const names = error.problems.map((problem) => problem.split(':')[0]);
        assert.deepEqual(names.sort(), ['LOG_LEVEL', 'PORT', 'PREDICT_MAX_BATCH_SIZE', 'QUEUE_PREFIX', 'REDIS_URL']);
        return true;
      },
    );
  });

  it('treats empty values as unset', () => {
    assert.equal(loadConfig({ PORT: '', API_KEYS: '' }).PORT, 8080);
    assert.equal(loadConfig({ API_KEYS: '' }).API_KEYS, undefined);
  });

  it('.env.example documents every variable with its default, and nothing else', () => {
    const entries = exampleEntries();
    assert.deepEqual([...entries.keys()].sort(), [...CONFIG_VARIABLES].sort());
    const defaults = ENV_SCHEMA.parse({});
    for (const [name, value] of entries) {
      const expected = (defaults as Record<string, unknown>)[name];
      if (value === '') assert.equal(expected, undefined, `${name}: .env.example leaves it empty but the default is ${String(expected)}`);
      else assert.equal(String(expected), value, `${name}: .env.example says ${value}, the default is ${String(expected)}`);
    }
  });

  it('parses the sample file itself without errors', () => {
    assert.doesNotThrow(() => loadConfig(Object.fromEntries(exampleEntries())));
  });
});
