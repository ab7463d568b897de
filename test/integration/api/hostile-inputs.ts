/**
 * Hostile upload material for the upload tests: hand-made multipart bodies (file names with `../`
 * and NUL bytes that the platform's FormData would escape, hundreds of parts), PNGs and JPEGs whose
 * headers declare absurd sizes (CRC fixed, so only the size is wrong), a PNG decompression bomb built
 * without ever holding its pixels, and deterministic "random" bytes (sha256 in counter mode), so a
 * failing input can be rebuilt exactly.
 * @module
 */
import { createHash } from 'node:crypto';
import { crc32, createDeflate } from 'node:zlib';

/** The status and catalogue code a refused input must get. */
export interface Refusal {
  status: number;
  code: string;
}

/** `length` bytes that look random but are the same for the same `seed`. */
export function pseudoRandomBytes(length: number, seed: string): Buffer {
  const blocks: Buffer[] = [];
  for (let i = 0, total = 0; total < length; i++, total += 32) {
    blocks.push(createHash('sha256').update(`${seed}:${i}`).digest());
  }
  return Buffer.concat(blocks).subarray(0, length);
}

/** A PNG chunk: length, type, data and the CRC over type and data. */
export function pngChunk(type: string, data: Uint8Array): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])) >>> 0, 0);
  return Buffer.concat([head, data, crc]);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * A valid 1-bit greyscale PNG of `width` x `height` all-zero pixels. Its IDAT is deflated row by row,
 * so a 20000x20000 bomb (400 million pixels) costs ~50 MB of zeros streamed through zlib and ends
 * up as a file of a few tens of KB.
 */
export async function pngBomb(width: number, height: number): Promise<Buffer> {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const row = Buffer.alloc(1 + Math.ceil(width / 8)); // filter byte 0 + packed bits
  const deflate = createDeflate({ level: 9 });
  const chunks: Buffer[] = [];
  deflate.on('data', (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve, reject) => {
    deflate.on('end', resolve);
    deflate.on('error', reject);
  });
  for (let y = 0; y < height; y++) {
    if (!deflate.write(row)) await new Promise((resolve) => deflate.once('drain', resolve));
  }
  deflate.end();
  await done;
  return Buffer.concat([PNG_SIGNATURE, pngChunk('IHDR', ihdr), pngChunk('IDAT', Buffer.concat(chunks)), pngChunk('IEND', Buffer.alloc(0))]);
}

/** A copy of `png` whose IHDR declares `width` x `height` (CRC recomputed); the pixel data is unchanged. */
export function withPngSize(png: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(png);
  if (!out.subarray(0, 8).equals(PNG_SIGNATURE) || out.toString('latin1', 12, 16) !== 'IHDR') throw new Error('not a PNG starting with IHDR');
  out.writeUInt32BE(width, 16);
  out.writeUInt32BE(height, 20);
  out.writeUInt32BE(crc32(out.subarray(12, 29)) >>> 0, 29);
  return out;
}

/** A copy of `jpeg` whose first SOF segment declares `width` x `height` (at most 65535 each). */
export function withJpegSize(jpeg: Uint8Array, width: number, height: number): Buffer {
  const out = Buffer.from(jpeg);
  let offset = 2;
  while (offset + 4 <= out.length) {
    if (out[offset] !== 0xff) throw new Error(`no JPEG marker at ${offset}`);
    const marker = out[offset + 1] ?? 0;
    const length = out.readUInt16BE(offset + 2);
    // SOF0-SOF15 except DHT (C4), JPG (C8) and DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
      out.writeUInt16BE(height, offset + 5);
      out.writeUInt16BE(width, offset + 7);
      return out;
    }
    offset += 2 + length;
  }
  throw new Error('no SOF segment');
}

/** One part of a hand-made multipart body; `filename` is written verbatim (NUL bytes included). */
export interface RawPart {
  name: string;
  value: string | Uint8Array;
  filename?: string;
  type?: string;
}

/** A multipart/form-data body written byte by byte, as a hostile client would. */
export function rawMultipart(parts: readonly RawPart[], boundary = 'hostile-boundary-7d1f'): { body: Buffer; contentType: string } {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"`;
    if (part.filename !== undefined) head += `; filename="${part.filename}"`;
    head += '\r\n';
    if (part.type !== undefined) head += `Content-Type: ${part.type}\r\n`;
    chunks.push(Buffer.from(`${head}\r\n`, 'latin1'), Buffer.from(part.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** Resident set size, MB. */
export function rssMb(): number {
  return process.memoryUsage().rss / (1024 * 1024);
}
