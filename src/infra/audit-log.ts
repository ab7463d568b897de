/**
 * The prediction audit log: one JSON line per request in an append-only file
 * (`DATA_DIR/audit/predictions.jsonl`), DESIGN section 7. A record says who asked (key id), what
 * (route template, sha256 of each input), with which model, and the outcome; it has no free-form
 * field, and every field is checked against a narrow pattern, so neither a file name nor patient data
 * can be written into it by accident.
 *
 * Appends within a process go through one promise chain and each record is one `write` to a file
 * opened with `O_APPEND`, so lines never interleave; processes sharing the file rely on `O_APPEND`
 * writes of a short line landing whole, which local file systems provide.
 *
 * A full disk must not silence the log while the model keeps answering: beside the log lies a
 * reserve file (`predictions.jsonl.reserve`, 1 MiB of zeros by default, room for about 3,000
 * records), written when the log is opened. An append that finds the disk full shortens the reserve
 * by one step (64 KiB, about 200 records) and writes into the space that frees; small steps leave
 * little for other writers to take. The next start writes a whole reserve again when there is room.
 * @module
 */
import { mkdir, open, rm, stat, truncate, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { ERROR_CATALOG, isOutOfSpace, type ErrorCode } from './errors.ts';

/** The model that answered. */
export interface AuditModel {
  /** Model id (an artifact-store id). */
  id: string;
  /** Model version as the prediction response states it. */
  version: string | number;
}

/** One audit record. Every field is required to have a narrow, checked form (see {@link AuditLog.append}). */
export interface AuditRecord {
  /** When the request arrived. A Date or an ISO 8601 string; written as ISO 8601 UTC. */
  time: Date | string;
  /** Id of the API key, or null when none was valid. */
  keyId: string | null;
  /** Method and route template, e.g. `POST /v1/predict` (never the raw URL). */
  route: string;
  /** SHA-256 of each input image, lower-case hex, in request order. */
  inputSha256: readonly string[];
  /** The model that answered, or null when none did (e.g. the request failed first). */
  model: AuditModel | null;
  /** HTTP status of the response. */
  status: number;
  /** Problem code when the request failed. */
  code?: ErrorCode;
  /** Time from arrival to response, milliseconds. */
  durationMs: number;
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const ROUTE = /^[A-Z]{3,7} \/[A-Za-z0-9_/{}:.-]{0,200}$/;
const SHA256 = /^[0-9a-f]{64}$/;
const MODEL_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const VERSION = /^[A-Za-z0-9_.:+-]{1,64}$/;

/** Default size of the reserve file: about 3,000 records of one image each. */
const DEFAULT_RESERVE_BYTES = 1024 * 1024;
/** What one full-disk append frees of the reserve: a multiple of every usual page and block size. */
const RESERVE_STEP_BYTES = 64 * 1024;

/** Most inputs one record lists (a request has at most PREDICT_MAX_FILES; this is a sanity bound). */
const MAX_INPUTS = 10_000;

function fail(field: string, expected: string): never {
  // the bad value is not echoed: it may be the very data this check keeps out
  throw new TypeError(`audit record: ${field} must be ${expected}`);
}

/** The record as written: fields in a fixed order, checked, nothing else copied. */
function toLine(record: AuditRecord): string {
  const time = record.time instanceof Date ? record.time : new Date(record.time);
  if (Number.isNaN(time.getTime())) fail('time', 'a valid date');
  if (record.keyId !== null && (typeof record.keyId !== 'string' || !KEY_ID.test(record.keyId))) fail('keyId', 'an API key id or null');
  if (typeof record.route !== 'string' || !ROUTE.test(record.route)) fail('route', 'a method and route template like "POST /v1/predict"');
  if (!Array.isArray(record.inputSha256) || record.inputSha256.length > MAX_INPUTS) fail('inputSha256', 'an array of sha256 digests');
  for (const digest of record.inputSha256) if (typeof digest !== 'string' || !SHA256.test(digest)) fail('inputSha256', 'lower-case hex sha256 digests');
  let model: AuditModel | null = null;
  if (record.model !== null) {
    const { id, version } = record.model ?? {};
    if (typeof id !== 'string' || !MODEL_ID.test(id)) fail('model.id', 'a model id');
    if (!(typeof version === 'number' && Number.isSafeInteger(version) && version >= 0) && !(typeof version === 'string' && VERSION.test(version))) {
      fail('model.version', 'a non-negative integer or a short version string');
    }
    model = { id, version };
  }
  if (!Number.isInteger(record.status) || record.status < 100 || record.status > 599) fail('status', 'an HTTP status code');
  if (record.code !== undefined && !Object.hasOwn(ERROR_CATALOG, record.code)) fail('code', 'a code of the error catalogue');
  if (typeof record.durationMs !== 'number' || !Number.isFinite(record.durationMs) || record.durationMs < 0) fail('durationMs', 'a non-negative number');
  const line = {
    time: time.toISOString(),
    keyId: record.keyId,
    route: record.route,
    inputSha256: [...record.inputSha256],
    model,
    status: record.status,
    ...(record.code === undefined ? {} : { code: record.code }),
    durationMs: Math.round(record.durationMs * 1000) / 1000,
  };
  return `${JSON.stringify(line)}\n`;
}

/**
 * An append-only JSON-lines audit file. Opens the file (creating its folder, mode 0600) on the first
 * append; {@link close} waits for pending appends.
 * @example
 * const audit = new AuditLog(path.join(store.auditDir, 'predictions.jsonl'));
 * await audit.append({ time: new Date(), keyId: 'pacs', route: 'POST /v1/predict',
 *   inputSha256: [digest], model: { id: 'm1', version: 1 }, status: 200, durationMs: 41.7 });
 */
export class AuditLog {
  readonly file: string;
  /** The space kept aside for appends after the disk fills (see the module comment). */
  readonly reserveFile: string;
  readonly #reserveBytes: number;
  #handle: Promise<FileHandle> | null = null;
  /** Tail of the append chain; never rejects, so one failed write does not block the next. */
  #tail: Promise<unknown> = Promise.resolve();
  #closed = false;

  /**
   * @param file the JSON-lines file
   * @param options.reserveBytes size of the reserve file, bytes. Default 1 MiB; 0 keeps none.
   */
  constructor(file: string, options: { reserveBytes?: number } = {}) {
    this.file = path.resolve(file);
    this.reserveFile = `${this.file}.reserve`;
    this.#reserveBytes = options.reserveBytes ?? DEFAULT_RESERVE_BYTES;
  }

  /**
   * Appends one record as one line. Resolves once the line is written.
   * @throws TypeError (synchronously checked, rejected) when a field has the wrong form.
   * @throws Error when the log is closed or the write fails.
   */
  append(record: AuditRecord): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('audit log is closed'));
    let bytes: Buffer;
    try {
      bytes = Buffer.from(toLine(record), 'utf8');
    } catch (error) {
      return Promise.reject(error);
    }
    const written = this.#tail.then(() => this.#write(bytes));
    this.#tail = written.catch(() => undefined);
    return written;
  }

  async #write(bytes: Buffer): Promise<void> {
    const handle = await this.#open();
    let offset = 0;
    // one write call per record in practice; the loop only guards against a short write
    while (offset < bytes.length) {
      let written: number;
      try {
        written = (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
      } catch (error) {
        if (!isOutOfSpace(error) || !(await this.#releaseReserve())) throw error;
        written = (await handle.write(bytes, offset, bytes.length - offset)).bytesWritten;
      }
      offset += written;
    }
  }

  /** Shortens the reserve file by one step, freeing that much space; false when it is used up. */
  async #releaseReserve(): Promise<boolean> {
    const size = await stat(this.reserveFile).then((info) => info.size, () => 0);
    if (size === 0) return false;
    const left = Math.max(0, size - RESERVE_STEP_BYTES);
    if (left === 0) await rm(this.reserveFile, { force: true });
    else await truncate(this.reserveFile, left);
    return true;
  }

  /** Writes the reserve file when it is missing or short; a disk too full for it is no error. */
  async #ensureReserve(): Promise<void> {
    if (this.#reserveBytes <= 0) return;
    const size = await stat(this.reserveFile).then((info) => info.size, () => 0);
    if (size >= this.#reserveBytes) return;
    await writeFile(this.reserveFile, Buffer.alloc(this.#reserveBytes), { mode: 0o600 }).catch(() => undefined);
  }

  #open(): Promise<FileHandle> {
    if (this.#handle === null) {
      const opening = (async () => {
        await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 });
        const handle = await open(this.file, 'a', 0o600);
        await this.#ensureReserve();
        return handle;
      })();
      // a failed open is retried by the next append rather than cached
      opening.catch(() => {
        if (this.#handle === opening) this.#handle = null;
      });
      this.#handle = opening;
    }
    return this.#handle;
  }

  /**
   * Opens the file and writes the reserve now, rather than on the first append (which might come
   * when the disk is already full). Safe to call more than once.
   */
  async prepare(): Promise<void> {
    await this.#open();
  }

  /** Waits for pending appends and closes the file. Later appends reject. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#tail;
    const handle = this.#handle;
    this.#handle = null;
    if (handle !== null) {
      try {
        await (await handle).close();
      } catch {
        // the open failed (already reported to its append) or the handle was closed
      }
    }
  }
}
