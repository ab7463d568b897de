/**
 * Whole-file writes that readers never see half done: write a sibling temp file, flush it, rename.
 * @module
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { writeFileDurable } from '../persist/atomic-dir.ts';

/** Writes `data` to `file` atomically (same-directory rename), creating parent folders. */
export async function writeFileAtomic(file: string, data: string | Uint8Array): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFileDurable(temp, data);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Writes `value` as pretty JSON (two-space indent, trailing newline) atomically. */
export async function writeJsonAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`);
}
