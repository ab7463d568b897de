/**
 * Small file-system questions asked in several services.
 * @module
 */
import { lstat } from 'node:fs/promises';

/**
 * True when something (file, folder or link, not followed) exists at `file`.
 * @throws the file system's error for anything but "does not exist" (e.g. EACCES).
 */
export async function pathExists(file: string): Promise<boolean> {
  try {
    await lstat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
