/**
 * Streams an upload into a temp file while counting its bytes, because a zip needs random access
 * (its directory is at the end) and a limit checked only afterwards would let a client fill the disk.
 * @module
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AppError } from '../../infra/errors.ts';

/**
 * Writes `source` to `file` (which must not exist), failing as soon as more than `maxBytes` arrive.
 * On any failure the partial file is removed.
 * @param maxBytes largest accepted upload in bytes
 * @returns bytes written
 * @throws AppError PAYLOAD_TOO_LARGE (over `maxBytes`), INSUFFICIENT_STORAGE (disk full); the
 *   source's own error when the client goes away
 * @example
 * await receiveUpload(request.file.file, '/data/uploads/dataset-1a2b.zip', 2 * 2 ** 30);
 */
export async function receiveUpload(source: Readable, file: string, maxBytes: number): Promise<number> {
  let bytes = 0;
  const limiter = new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      bytes += chunk.length;
      if (bytes > maxBytes) callback(new AppError('PAYLOAD_TOO_LARGE', `the archive is larger than the ${maxBytes}-byte limit`));
      else callback(null, chunk);
    },
  });
  const out = createWriteStream(file, { flags: 'wx', mode: 0o600 });
  try {
    await pipeline(source, limiter, out);
    return bytes;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // Only a file this call created is removed: with 'wx', an existing one (EEXIST) is someone
    // else's. The stream may still be opening when the limit trips: wait for it to close first,
    // or the file would appear after the removal.
    if (code !== 'EEXIST') {
      if (!out.closed) await once(out, 'close').catch(() => undefined);
      await rm(file, { force: true });
    }
    if (code === 'ENOSPC' || code === 'EDQUOT') throw new AppError('INSUFFICIENT_STORAGE', 'not enough disk space for the upload', { cause: error });
    throw error;
  }
}
