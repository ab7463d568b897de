import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_VARIABLES } from '../../../src/infra/config.ts';

const root = path.join(import.meta.dirname, '../../..');

/** `NAME -> default` of `.env.example` (empty string: unset). */
function envExample(): Map<string, string> {
  const entries = new Map<string, string>();
  for (const line of readFileSync(path.join(root, '.env.example'), 'utf8').split('\n')) {
    const match = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match) entries.set(match[1] as string, match[2] as string);
  }
  return entries;
}

/** `NAME -> default` of the README's configuration table (`(unset)` as empty string). */
function readmeTable(): Map<string, string> {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const section = readme.split('\n## Configuration\n')[1]?.split('\n## ')[0] ?? '';
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const match = /^\| `([A-Z][A-Z0-9_]*)` \| (?:`([^`]*)`|\(unset\)) \|/.exec(line);
    if (match) rows.set(match[1] as string, match[2] ?? '');
  }
  return rows;
}

describe('README configuration table', () => {
  it('lists every variable of .env.example with the same default, in the same order', () => {
    assert.deepEqual([...readmeTable()], [...envExample()]);
  });

  it('lists exactly the variables the configuration schema reads', () => {
    assert.deepEqual([...readmeTable().keys()].sort(), [...CONFIG_VARIABLES].sort());
  });
});
