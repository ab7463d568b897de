/**
 * Hard-linking files into a new directory, copying where a link is impossible. A registered model
 * shares its (immutable) files with the experiment that trained it: no second 528 MB copy of VGG16.
 * @module
 */
import { constants } from 'node:fs';
import { copyFile, link } from 'node:fs/promises';

/**
 * Errors after which a copy replaces the link: another file system (`EXDEV`), a file system without
 * hard links (`ENOTSUP`, `EPERM` on some network and FUSE mounts), a file at its link limit (`EMLINK`).
 */
const COPY_INSTEAD = new Set(['EXDEV', 'ENOTSUP', 'EPERM', 'EMLINK']);

/**
 * Makes `target` a hard link to `source`, or a copy of it when the file system cannot link.
 * @returns `'link'` or `'copy'`: what was done.
 * @throws Whatever else `link` or `copyFile` throws (`EEXIST` when `target` exists: never overwrites).
 */
export async function linkOrCopy(source: string, target: string): Promise<'link' | 'copy'> {
  try {
    await link(source, target);
    return 'link';
  } catch (error) {
    const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
    if (typeof code !== 'string' || !COPY_INSTEAD.has(code)) throw error;
  }
  await copyFile(source, target, constants.COPYFILE_EXCL);
  return 'copy';
}
