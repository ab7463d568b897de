import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import type { ZipFile } from 'yazl';
import { AppError } from '../../../src/infra/errors.ts';
import { extractZipSafely, nameRule, type ArchiveRule, type ZipLimits } from '../../../src/services/datasets/zip-extract.ts';
import {
  XRAY_DIR,
  openFds,
  patchName,
  pointAt,
  setDeclaredSize,
  setFlagBits,
  tree,
  zipBuffer,
  zipFile,
} from './zip-fixtures.ts';

const LIMITS: ZipLimits = { maxEntries: 1000, maxBytes: 1024 * 1024 * 1024, maxRatio: 100 };
const haveImages = existsSync(XRAY_DIR);
const skip = haveImages ? false : `real X-rays not found at ${XRAY_DIR}`;

let tmp: string;
let images: { fractured: Buffer[]; normal: Buffer[] };
let caseNo = 0;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'zip-extract-'));
  if (!haveImages) return;
  const pick = async (cls: string) =>
    Promise.all(['0000', '0001', '0002'].map((n) => readFile(path.join(XRAY_DIR, cls, `${cls}-${n}.jpg`))));
  images = { fractured: await pick('fractured'), normal: await pick('not_fractured') };
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A fresh parent folder per case, with one unrelated file in it so "nothing changed" means something. */
async function freshCase(): Promise<{ parent: string; dest: string; zip: string }> {
  const parent = path.join(tmp, `case-${++caseNo}`, 'datasets');
  await mkdir(parent, { recursive: true });
  await writeFile(path.join(parent, 'keep.txt'), 'unrelated');
  return { parent, dest: path.join(parent, 'new-set'), zip: path.join(tmp, `case-${caseNo}`, 'upload.zip') };
}

/** Adds three images per class under `prefix`. */
function addImages(zip: ZipFile, prefix = ''): void {
  images.fractured.forEach((b, i) => zip.addBuffer(b, `${prefix}fractured/f${i}.jpg`));
  images.normal.forEach((b, i) => zip.addBuffer(b, `${prefix}not_fractured/n${i}.jpg`));
}

/**
 * Extraction must fail with `code` (and `rule`), and the destination's parent and grandparent must
 * look exactly as before: no destination, no temp dir, no escaped file.
 */
async function assertRejected(
  c: { parent: string; dest: string; zip: string },
  code: 'ARCHIVE_UNSAFE' | 'ARCHIVE_INVALID',
  rule?: ArchiveRule,
  limits: ZipLimits = LIMITS,
  forbiddenInDetail: readonly string[] = [],
): Promise<AppError> {
  const grandparent = path.dirname(c.parent);
  const beforeParent = await tree(c.parent);
  const beforeGrand = await readdir(grandparent);
  const fds = await openFds();
  let caught: unknown;
  await assert.rejects(extractZipSafely(c.zip, c.dest, limits), (error: unknown) => {
    caught = error;
    return true;
  });
  assert.ok(caught instanceof AppError, `expected an AppError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (rule !== undefined) assert.equal(caught.extensions.rule, rule, caught.message);
  for (const text of forbiddenInDetail) assert.ok(!caught.message.includes(text), `detail repeats an entry name: ${caught.message}`);
  assert.deepEqual(await tree(c.parent), beforeParent, 'the parent folder changed');
  assert.deepEqual(await readdir(grandparent), beforeGrand, 'the grandparent folder changed');
  assert.equal(existsSync(c.dest), false);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok((await openFds()) <= fds, 'a file descriptor leaked');
  return caught;
}

describe('nameRule', () => {
  it('accepts ordinary relative names and names each unsafe pattern', () => {
    const cases: Array<[string, ArchiveRule | undefined]> = [
      ['xrays/fractured/a.jpg', undefined],
      ['a/./b.png', undefined],
      ['dir/', undefined],
      ['', 'empty-name'],
      ['a\u0000b.jpg', 'control-character'],
      ['a\nb.jpg', 'control-character'],
      ['a\\b.jpg', 'backslash'],
      ['..\\evil', 'backslash'],
      ['C:/evil.jpg', 'drive-letter'],
      ['c:evil.jpg', 'drive-letter'],
      ['/tmp/x', 'absolute-path'],
      ['../evil', 'path-traversal'],
      ['a/../../evil', 'path-traversal'],
      ['a/..', 'path-traversal'],
      ['a/..b/c..', undefined],
      [`${'x'.repeat(256)}/a.jpg`, 'name-too-long'],
      [`${'a/'.repeat(40)}a.jpg`, 'name-too-long'],
    ];
    for (const [name, rule] of cases) assert.equal(nameRule(name), rule, JSON.stringify(name));
  });
});

describe('extractZipSafely', { skip }, () => {
  it('extracts the images and dataset.json, unwraps the single top folder and drops the junk', async () => {
    const c = await freshCase();
    await writeFile(
      c.zip,
      await zipBuffer((zip) => {
        addImages(zip, 'xrays/');
        zip.addEmptyDirectory('xrays/');
        zip.addBuffer(Buffer.from('{"positiveClasses":["fractured"]}'), 'xrays/dataset.json');
        zip.addBuffer(Buffer.from('resource fork'), '__MACOSX/xrays/fractured/._f0.jpg');
        zip.addBuffer(Buffer.from('finder'), 'xrays/.DS_Store');
        zip.addBuffer(Buffer.from('hidden'), 'xrays/fractured/.hidden.jpg');
        zip.addBuffer(Buffer.from('notes'), 'xrays/fractured/notes.txt');
      }),
    );
    const result = await extractZipSafely(c.zip, c.dest, LIMITS);
    assert.deepEqual(await tree(c.dest), [
      'dataset.json',
      'fractured',
      'fractured/f0.jpg',
      'fractured/f1.jpg',
      'fractured/f2.jpg',
      'not_fractured',
      'not_fractured/n0.jpg',
      'not_fractured/n1.jpg',
      'not_fractured/n2.jpg',
    ]);
    assert.deepEqual(await readFile(path.join(c.dest, 'fractured/f1.jpg')), images.fractured[1]);
    assert.deepEqual(await readFile(path.join(c.dest, 'not_fractured/n2.jpg')), images.normal[2]);
    const expectedBytes = [...images.fractured, ...images.normal].reduce((s, b) => s + b.length, 0) + 33;
    assert.deepEqual(result, { entries: 12, files: 7, bytes: expectedBytes, ignored: 5, unwrapped: true });
    // Only the destination was added next to the unrelated file: no temp dir left.
    assert.deepEqual(await readdir(c.parent), ['keep.txt', 'new-set']);
  });

  it('keeps two top folders, and a lone train/ folder, as they are', async () => {
    const c = await freshCase();
    await writeFile(c.zip, await zipBuffer((zip) => addImages(zip)));
    assert.equal((await extractZipSafely(c.zip, c.dest, LIMITS)).unwrapped, false);
    assert.deepEqual(await readdir(c.dest), ['fractured', 'not_fractured']);

    const d = await freshCase();
    await writeFile(d.zip, await zipBuffer((zip) => addImages(zip, 'train/')));
    assert.equal((await extractZipSafely(d.zip, d.dest, LIMITS)).unwrapped, false);
    assert.deepEqual(await readdir(d.dest), ['train']);
  });

  it('refuses a destination that exists', async () => {
    const c = await freshCase();
    await writeFile(c.zip, await zipBuffer((zip) => addImages(zip)));
    await mkdir(c.dest);
    await assert.rejects(extractZipSafely(c.zip, c.dest, LIMITS), (e: unknown) => e instanceof AppError && e.code === 'DATASET_EXISTS');
    assert.deepEqual(await readdir(c.parent), ['keep.txt', 'new-set']);
  });

  it('rejects a ../ entry without writing above the destination', async () => {
    const c = await freshCase();
    const zip = await zipBuffer((z) => {
      addImages(z);
      z.addBuffer(Buffer.from('pwned'), 'XX/evil.jpg');
    });
    await writeFile(c.zip, patchName(zip, 'XX/evil.jpg', '../evil.jpg'));
    const error = await assertRejected(c, 'ARCHIVE_UNSAFE', 'path-traversal', LIMITS, ['evil']);
    assert.equal(error.extensions.entryIndex, 6);
    assert.equal(existsSync(path.join(path.dirname(c.parent), 'evil.jpg')), false);
  });

  it('rejects an absolute path', async () => {
    const c = await freshCase();
    const target = `/tmp/fs-evil-${randomBytes(4).toString('hex')}.jpg`;
    const placeholder = `_${target.slice(1)}`;
    const zip = await zipBuffer((z) => {
      addImages(z);
      z.addBuffer(Buffer.from('pwned'), placeholder);
    });
    await writeFile(c.zip, patchName(zip, placeholder, target));
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'absolute-path', LIMITS, ['fs-evil']);
    assert.equal(existsSync(target), false);
  });

  it('rejects drive letters, backslashes and NUL characters in names', async () => {
    const cases: Array<[string, ArchiveRule]> = [
      ['C:/evil.jpg', 'drive-letter'],
      ['a\\evil.jpg', 'backslash'],
      ['a\u0000evil.jpg', 'control-character'],
    ];
    for (const [name, rule] of cases) {
      const c = await freshCase();
      const placeholder = 'x'.repeat(Buffer.byteLength(name));
      const zip = await zipBuffer((z) => {
        addImages(z);
        z.addBuffer(Buffer.from('pwned'), placeholder);
      });
      await writeFile(c.zip, patchName(zip, placeholder, name));
      await assertRejected(c, 'ARCHIVE_UNSAFE', rule, LIMITS, ['evil']);
    }
  });

  it('rejects a symbolic link entry (Unix file type in the external attributes)', async () => {
    const c = await freshCase();
    await writeFile(
      c.zip,
      await zipBuffer((z) => {
        addImages(z);
        z.addBuffer(Buffer.from('/etc/passwd'), 'fractured/link.jpg', { mode: 0o120777 });
      }),
    );
    const error = await assertRejected(c, 'ARCHIVE_UNSAFE', 'not-a-regular-file');
    assert.equal(error.extensions.entryIndex, 6);
  });

  it('rejects a folder or device posing as a file, even under ignored names', async () => {
    const c = await freshCase();
    await writeFile(
      c.zip,
      await zipBuffer((z) => {
        addImages(z);
        z.addBuffer(Buffer.from(''), '__MACOSX/dev.jpg', { mode: 0o020666 }); // character device
      }),
    );
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'not-a-regular-file');
  });

  it('rejects 10,000 tiny entries over a limit of 1,000 before extracting any', async () => {
    const c = await freshCase();
    await zipFile(c.zip, (z) => {
      for (let i = 0; i < 10_000; i++) z.addBuffer(Buffer.from([i & 0xff]), `fractured/${i}.png`, { compress: false });
    });
    const error = await assertRejected(c, 'ARCHIVE_UNSAFE', 'too-many-entries');
    assert.match(error.message, /10000 entries; at most 1000/);
  });

  it('rejects a ratio bomb (200 MB of zeros) from its metadata, without inflating it', async () => {
    const c = await freshCase();
    const chunk = Buffer.alloc(1024 * 1024);
    const zeros = Readable.from(
      (function* () {
        for (let i = 0; i < 200; i++) yield chunk;
      })(),
    );
    await zipFile(c.zip, (z) => {
      addImages(z);
      z.addReadStream(zeros, 'fractured/zeros.png');
    });
    assert.ok((await stat(c.zip)).size < 2 * 1024 * 1024, 'the bomb should be small');
    const started = performance.now();
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'compression-ratio');
    assert.ok(performance.now() - started < 2000, 'rejection should not inflate 200 MB');
  });

  it('counts actual bytes: an entry that inflates past its declared size stops at once', async () => {
    const c = await freshCase();
    const zip = await zipBuffer((z) => {
      addImages(z);
      z.addBuffer(Buffer.alloc(20 * 1024 * 1024), 'fractured/liar.png');
    });
    await writeFile(c.zip, setDeclaredSize(zip, 6, 1000));
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'size-mismatch');
  });

  it('rejects archives whose declared total is over maxBytes', async () => {
    const c = await freshCase();
    await writeFile(c.zip, await zipBuffer((z) => addImages(z)));
    const total = [...images.fractured, ...images.normal].reduce((s, b) => s + b.length, 0);
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'too-large', { ...LIMITS, maxBytes: total - 1 });
  });

  it('rejects entries whose data overlaps another entry', async () => {
    const c = await freshCase();
    const zip = await zipBuffer((z) => addImages(z));
    await writeFile(c.zip, pointAt(zip, 1, 0));
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'overlapping-entries');
  });

  it('rejects an entry with the encryption flag', async () => {
    const c = await freshCase();
    const zip = await zipBuffer((z) => addImages(z));
    await writeFile(c.zip, setFlagBits(zip, 2, 0x1));
    const error = await assertRejected(c, 'ARCHIVE_UNSAFE', 'encrypted');
    assert.equal(error.extensions.entryIndex, 2);
  });

  it('rejects strong encryption, which yauzl refuses before handing out the entry', async () => {
    const c = await freshCase();
    const zip = await zipBuffer((z) => addImages(z));
    await writeFile(c.zip, setFlagBits(zip, 3, 0x41));
    const error = await assertRejected(c, 'ARCHIVE_UNSAFE', 'encrypted');
    assert.equal(error.extensions.entryIndex, 3);
  });

  it('rejects two entries with the same path, and a file where a folder must be', async () => {
    const c = await freshCase();
    await writeFile(
      c.zip,
      await zipBuffer((z) => {
        addImages(z);
        z.addBuffer(images.fractured[0] as Buffer, 'fractured/f0.jpg');
      }),
    );
    await assertRejected(c, 'ARCHIVE_UNSAFE', 'duplicate-entry');

    const d = await freshCase();
    await writeFile(
      d.zip,
      await zipBuffer((z) => {
        addImages(z);
        z.addBuffer(images.fractured[0] as Buffer, 'fractured/f0.jpg/inner.jpg');
      }),
    );
    await assertRejected(d, 'ARCHIVE_UNSAFE', 'path-conflict');
  });

  it('says ARCHIVE_INVALID for a file that is not a zip, a truncated zip and an empty file', async () => {
    const notZip = await freshCase();
    await writeFile(notZip.zip, images.fractured[0] as Buffer);
    await assertRejected(notZip, 'ARCHIVE_INVALID');

    const truncated = await freshCase();
    const whole = await zipBuffer((z) => addImages(z));
    await writeFile(truncated.zip, whole.subarray(0, Math.floor(whole.length / 2)));
    await assertRejected(truncated, 'ARCHIVE_INVALID');

    const cutTail = await freshCase();
    await writeFile(cutTail.zip, whole.subarray(0, whole.length - 10));
    await assertRejected(cutTail, 'ARCHIVE_INVALID');

    const empty = await freshCase();
    await writeFile(empty.zip, Buffer.alloc(0));
    await assertRejected(empty, 'ARCHIVE_INVALID');
  });

  it('says ARCHIVE_INVALID when compressed data is damaged, after removing what it wrote', async () => {
    const c = await freshCase();
    const text = Buffer.from('fracture '.repeat(20_000));
    const zip = await zipBuffer((z) => {
      addImages(z);
      z.addBuffer(text, 'not_fractured/zz.png');
    });
    // Damage the middle of the last entry's deflate stream (the central directory follows it).
    const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
    const cdStart = zip.readUInt32LE(eocd + 16);
    for (let i = cdStart - 200; i < cdStart - 100; i++) zip[i] = (zip[i] as number) ^ 0x5a;
    await writeFile(c.zip, zip);
    await assertRejected(c, 'ARCHIVE_INVALID');
  });

  it('removes everything when the verify step refuses the result', async () => {
    const c = await freshCase();
    await writeFile(c.zip, await zipBuffer((z) => addImages(z)));
    let seen: string[] = [];
    await assert.rejects(
      extractZipSafely(c.zip, c.dest, LIMITS, {
        verify: async (dir) => {
          assert.equal(path.dirname(dir), c.parent, 'the temp dir must sit beside the destination');
          seen = await tree(dir);
          throw new AppError('DATASET_SINGLE_CLASS', 'nope');
        },
      }),
      (e: unknown) => e instanceof AppError && e.code === 'DATASET_SINGLE_CLASS',
    );
    assert.equal(seen.length, 8);
    assert.deepEqual(await readdir(c.parent), ['keep.txt']);
  });
});
