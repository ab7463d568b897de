import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { STALE_TEMP_AGE_MS, findOldCopy, writeDirAtomically, writeFileDurable } from '../../../src/ml/persist/atomic-dir.ts';

let root: string;
before(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'atomic-dir-test-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

const siblingsOf = async (dir: string): Promise<string[]> =>
  (await readdir(path.dirname(dir))).filter((name) => name.startsWith(`${path.basename(dir)}.`)).sort();

describe('writeDirAtomically', () => {
  it('creates the directory (and missing parents) with what the writer put in the temp dir', async () => {
    const dir = path.join(root, 'a', 'b', 'target');
    const seen: string[] = [];
    const result = await writeDirAtomically(dir, async (tempDir) => {
      seen.push(tempDir);
      await writeFileDurable(path.join(tempDir, 'x.txt'), 'hello');
      return 42;
    });
    assert.equal(result, 42);
    assert.equal(await readFile(path.join(dir, 'x.txt'), 'utf8'), 'hello');
    assert.match(path.basename(seen[0]!), /^target\.tmp-[0-9a-f]{12}$/);
    assert.equal(path.dirname(seen[0]!), path.dirname(dir), 'temp dir is a sibling, so rename stays on one file system');
    assert.deepEqual(await siblingsOf(dir), []);
  });

  it('replaces an existing directory as a whole: no file of the old version survives', async () => {
    const dir = path.join(root, 'replace');
    await writeDirAtomically(dir, async (t) => {
      await writeFileDurable(path.join(t, 'old-only.txt'), '1');
      await writeFileDurable(path.join(t, 'shared.txt'), 'old');
    });
    await writeDirAtomically(dir, async (t) => {
      await writeFileDurable(path.join(t, 'shared.txt'), 'new');
    });
    assert.deepEqual(await readdir(dir), ['shared.txt']);
    assert.equal(await readFile(path.join(dir, 'shared.txt'), 'utf8'), 'new');
    assert.deepEqual(await siblingsOf(dir), []);
  });

  it('leaves the existing directory untouched and removes the temp dir when the writer throws', async () => {
    const dir = path.join(root, 'fail');
    await writeDirAtomically(dir, (t) => writeFileDurable(path.join(t, 'keep.txt'), 'v1'));
    await assert.rejects(
      writeDirAtomically(dir, async (t) => {
        await writeFileDurable(path.join(t, 'keep.txt'), 'v2');
        throw new Error('disk full (simulated)');
      }),
      /disk full/,
    );
    assert.equal(await readFile(path.join(dir, 'keep.txt'), 'utf8'), 'v1');
    assert.deepEqual(await siblingsOf(dir), []);
  });

  it('removes stale temp dirs and old copies after a successful write but keeps a young temp dir', async () => {
    const dir = path.join(root, 'stale');
    const staleTemp = `${dir}.tmp-aaaaaaaaaaaa`;
    const youngTemp = `${dir}.tmp-bbbbbbbbbbbb`;
    const oldCopy = `${dir}.old-cccccccccccc`;
    for (const d of [staleTemp, youngTemp, oldCopy]) await mkdir(d);
    const past = new Date(Date.now() - 2 * STALE_TEMP_AGE_MS);
    await utimes(staleTemp, past, past);
    await writeDirAtomically(dir, (t) => writeFileDurable(path.join(t, 'f'), 'x'));
    assert.deepEqual(await siblingsOf(dir), [path.basename(youngTemp)]);
    await rm(youngTemp, { recursive: true });
  });
});

describe('writeFileDurable', () => {
  it('refuses to overwrite an existing file', async () => {
    const file = path.join(root, 'exists.txt');
    await writeFile(file, 'x');
    await assert.rejects(writeFileDurable(file, 'y'), { code: 'EEXIST' });
  });
});

describe('findOldCopy', () => {
  it('returns the newest old copy of a directory, or null when there is none', async () => {
    const dir = path.join(root, 'recover');
    assert.equal(await findOldCopy(dir), null);
    const older = `${dir}.old-000000000001`;
    const newer = `${dir}.old-000000000002`;
    await mkdir(older);
    await mkdir(newer);
    const past = new Date(Date.now() - 60_000);
    await utimes(older, past, past);
    assert.equal(await findOldCopy(dir), newer);
    // A sibling of another directory whose name merely starts the same is not a copy.
    assert.equal(await findOldCopy(path.join(root, 'recov')), null);
  });
});
