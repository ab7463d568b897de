/**
 * Test helpers: zips built with yazl, and byte patches of their central directory for the hostile
 * cases yazl refuses to write (`..`, absolute names, encryption flags, lying sizes, overlaps).
 * @module
 */
import { createWriteStream } from 'node:fs';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import yazl from 'yazl';

/** The real X-rays shared by the project's tests (absent on some machines: tests then skip). */
export const XRAY_DIR = path.resolve(import.meta.dirname, '../../../../shared/datasets/xray-binary');

/** Builds a zip in memory. */
export async function zipBuffer(build: (zip: yazl.ZipFile) => void): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  build(zip);
  zip.end();
  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Builds a zip straight into a file (for archives too large to hold in memory). */
export async function zipFile(file: string, build: (zip: yazl.ZipFile) => void): Promise<void> {
  const zip = new yazl.ZipFile();
  build(zip);
  zip.end();
  await pipeline(zip.outputStream, createWriteStream(file));
}

/** Offsets of the central directory records, in order. */
export function centralRecords(zip: Buffer): number[] {
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error('no end of central directory record');
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const records: number[] = [];
  for (let i = 0; i < count; i++) {
    if (zip.readUInt32LE(offset) !== 0x02014b50) throw new Error(`no central directory record at ${offset}`);
    records.push(offset);
    offset += 46 + zip.readUInt16LE(offset + 28) + zip.readUInt16LE(offset + 30) + zip.readUInt16LE(offset + 32);
  }
  return records;
}

/** Renames entry `from` to `to` (same byte length) in the central directory and the local header. */
export function patchName(zip: Buffer, from: string, to: string): Buffer {
  const a = Buffer.from(from, 'utf8');
  const b = Buffer.from(to, 'utf8');
  if (a.length !== b.length) throw new Error('patchName needs names of equal byte length');
  let patched = 0;
  for (const record of centralRecords(zip)) {
    const length = zip.readUInt16LE(record + 28);
    if (length !== a.length || !zip.subarray(record + 46, record + 46 + length).equals(a)) continue;
    b.copy(zip, record + 46);
    const local = zip.readUInt32LE(record + 42);
    b.copy(zip, local + 30);
    patched++;
  }
  if (patched === 0) throw new Error(`no entry named ${from}`);
  return zip;
}

/** Sets general-purpose flag bits of entry `index` (central directory and local header). */
export function setFlagBits(zip: Buffer, index: number, bits: number): Buffer {
  const record = centralRecords(zip)[index] as number;
  zip.writeUInt16LE(zip.readUInt16LE(record + 8) | bits, record + 8);
  const local = zip.readUInt32LE(record + 42);
  zip.writeUInt16LE(zip.readUInt16LE(local + 6) | bits, local + 6);
  return zip;
}

/** Overwrites the uncompressed size the central directory declares for entry `index`. */
export function setDeclaredSize(zip: Buffer, index: number, size: number): Buffer {
  zip.writeUInt32LE(size, (centralRecords(zip)[index] as number) + 24);
  return zip;
}

/** Points entry `index` at the local header of entry `target` (overlapping data). */
export function pointAt(zip: Buffer, index: number, target: number): Buffer {
  const records = centralRecords(zip);
  zip.writeUInt32LE(zip.readUInt32LE((records[target] as number) + 42), (records[index] as number) + 42);
  return zip;
}

/** Every path below `dir` (relative, sorted), to compare a folder before and after. */
export async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  return entries.map(String).sort();
}

/** Count of this process's open file descriptors (Linux), to catch leaked zip handles. */
export async function openFds(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}
