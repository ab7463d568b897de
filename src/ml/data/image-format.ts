/**
 * Image type from the bytes, not the file name: JPEG and PNG signatures, and a cheap completeness
 * check (the JPEG end-of-image marker, the PNG `IEND` chunk) that catches truncated files without
 * decoding their pixels.
 * @module
 */

/** The image formats the service accepts. */
export type ImageFormat = 'jpeg' | 'png';

/** File name extensions accepted for dataset images (compared lower-cased). */
export const IMAGE_EXTENSIONS: readonly string[] = ['.jpg', '.jpeg', '.png'];

const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
/** Bytes searched from the end for the JPEG EOI marker; some writers pad or append a little data. */
const JPEG_TAIL_SEARCH = 4096;
/** `IEND` chunk: length 0, type `IEND`, CRC 0xAE426082. */
const PNG_IEND = [0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82];
const PNG_TAIL_SEARCH = 4096;

/** True when the file name ends with an accepted extension (case-insensitive). */
export function hasImageExtension(fileName: string): boolean {
  const lower = fileName.toLowerCase();
  return IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

/** The format the leading bytes announce, or `undefined` for anything else. */
export function sniffImageFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  if (bytes.length >= PNG_SIGNATURE.length && PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return 'png';
  return undefined;
}

/**
 * True when the file ends the way a complete file of `format` must: a JPEG has an EOI marker (FF D9)
 * near its end, a PNG has its `IEND` chunk. A file cut short by a failed copy has neither.
 */
export function looksComplete(bytes: Uint8Array, format: ImageFormat): boolean {
  if (format === 'jpeg') {
    const from = Math.max(2, bytes.length - JPEG_TAIL_SEARCH);
    for (let i = bytes.length - 2; i >= from; i--) {
      if (bytes[i] === 0xff && bytes[i + 1] === 0xd9) return true;
    }
    return false;
  }
  const from = Math.max(PNG_SIGNATURE.length, bytes.length - PNG_TAIL_SEARCH);
  for (let i = bytes.length - PNG_IEND.length; i >= from; i--) {
    if (PNG_IEND.every((b, k) => bytes[i + k] === b)) return true;
  }
  return false;
}
