import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Command } from 'commander';
import { registerSynthCommand } from '../../../src/cli/commands/synth.command.ts';

let root = '';
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'fracture-synth-cli-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

function program(): Command {
  const p = new Command('fracture-service').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  registerSynthCommand(p);
  return p;
}

test('synth writes the data set and prints a one-line summary', async (t) => {
  const log = t.mock.method(console, 'log', () => {});
  const out = path.join(root, 'set');
  await program().parseAsync(['synth', '--out', out, '--per-class', '2', '--size', '24', '--seed', '7'], { from: 'user' });
  assert.equal(log.mock.callCount(), 1);
  const line = String(log.mock.calls[0]?.arguments[0]);
  assert.match(line, /^synth: 10 classes, 20 files, 24x24 px, seed 7 -> /);
  assert.ok(line.includes(path.resolve(out)), line);
  assert.ok(!line.includes('\n'));
  assert.equal((await readdir(out)).length, 10);
});

test('synth --regions limits the classes', async (t) => {
  t.mock.method(console, 'log', () => {});
  const out = path.join(root, 'regions');
  await program().parseAsync(['synth', '--out', out, '--per-class', '1', '--size', '24', '--regions', 'hand,finger'], { from: 'user' });
  assert.deepEqual((await readdir(out)).sort(), ['finger_fractured', 'finger_normal', 'hand_fractured', 'hand_normal']);
});

test('synth rejects malformed numbers and unknown regions as usage errors', async () => {
  const out = path.join(root, 'bad');
  for (const args of [['--size', 'abc'], ['--per-class', '-3'], ['--regions', 'knee']]) {
    await assert.rejects(
      program().parseAsync(['synth', '--out', out, ...args], { from: 'user' }),
      (e: { code?: string; exitCode?: number }) => e.code === 'commander.invalidArgument' && e.exitCode === 1,
      args.join(' '),
    );
  }
  await assert.rejects(program().parseAsync(['synth'], { from: 'user' }), { code: 'commander.missingMandatoryOptionValue' });
  await assert.rejects(readdir(out), { code: 'ENOENT' });
});

test('synth refuses a non-empty --out unless --force', async (t) => {
  t.mock.method(console, 'log', () => {});
  const out = path.join(root, 'twice');
  const args = ['synth', '--out', out, '--per-class', '1', '--size', '24', '--regions', 'elbow'];
  await program().parseAsync(args, { from: 'user' });
  await assert.rejects(program().parseAsync(args, { from: 'user' }), { name: 'MlError', code: 'INVALID_ARGUMENT' });
  await program().parseAsync([...args, '--force'], { from: 'user' });
  assert.equal((await readdir(out)).length, 2);
});

