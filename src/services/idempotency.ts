/**
 * `Idempotency-Key` for creating things (experiments, asynchronous predictions): the first request
 * with a key creates, every later one with the same key and body (within 24 h) gets what the first
 * one created, and 20 concurrent identical requests create once. The claim is one atomic `SET … NX`
 * in Redis, so it holds across API processes sharing a Redis.
 *
 * A key's Redis value is JSON: first `{ state: 'pending', bodyHash, token }` (a short lease while the
 * winner creates), then `{ state: 'done', bodyHash, id }` for 24 h. The Redis key is
 * `${prefix}:${namespace}:${sha256(callerId + ':' + idempotencyKey)}`: a client's key is never
 * stored, two callers' equal keys never meet, and each kind of thing has its own namespace. Nothing
 * here logs.
 * @module
 */
import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../infra/errors.ts';
import { withRedis, type RedisConnection } from '../infra/redis.ts';
import { canonicalJson } from '../infra/canonical-json.ts';

/** Tuning of {@link IdempotencyKeys}. */
export interface IdempotencyOptions {
  /** How long a completed key answers with its result, ms. Default 86 400 000 (24 h). */
  ttlMs?: number;
  /**
   * How long a winner may hold a key before another request may take it over, ms. Default 30 000:
   * creating is a file write and one BullMQ call bounded by a 3 s Redis timeout, so a lease this long
   * outlives any live winner, and a winner that died (process killed) blocks its key only briefly.
   */
  leaseMs?: number;
  /** How long a concurrent request waits for the winner's result, ms. Default 5 000. */
  waitMs?: number;
  /** Pause between two looks at a pending key, ms. Default 25. */
  pollMs?: number;
  /** Part of the Redis key that keeps one kind of thing's keys apart. Default `idempotency` (experiments). */
  namespace?: string;
}

/** One idempotent call: who asks, with which key, for what. */
export interface IdempotentCall {
  /** The caller's API key id (null when the API runs without keys). Keys are scoped by it. */
  callerId: string | null;
  /** The client's `Idempotency-Key` (already validated by the route). */
  key: string;
  /** A hash of the canonical request ({@link canonicalHash}): a reused key must come with the same one. */
  bodyHash: string;
}

/** What {@link IdempotencyKeys.run} answers. */
export interface IdempotentResult {
  /** The id `create` made, now or for an earlier request. */
  id: string;
  /** True when an earlier request created it (nothing was created now). */
  replayed: boolean;
}

type StoredValue = { state: 'pending'; bodyHash: string; token: string } | { state: 'done'; bodyHash: string; id: string };

/** Replaces the pending value by the result only while it is still ours (the lease may have passed). */
const COMPLETE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0`;

/** Deletes the key only while it holds the given value. */
const RELEASE_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0`;

/**
 * Idempotency keys in Redis, under a BullMQ key prefix (`QUEUE_PREFIX`).
 * @example
 * const keys = new IdempotencyKeys(connection, config.QUEUE_PREFIX);
 * const { id, replayed } = await keys.run({ callerId: 'ml', key, bodyHash: canonicalHash(settings) }, createExperiment);
 */
export class IdempotencyKeys {
  readonly #connection: RedisConnection;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #leaseMs: number;
  readonly #waitMs: number;
  readonly #pollMs: number;
  readonly #namespace: string;

  constructor(connection: RedisConnection, prefix: string, options: IdempotencyOptions = {}) {
    this.#connection = connection;
    this.#prefix = prefix;
    this.#ttlMs = options.ttlMs ?? 86_400_000;
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#waitMs = options.waitMs ?? 5_000;
    this.#pollMs = options.pollMs ?? 25;
    this.#namespace = options.namespace ?? 'idempotency';
  }

  /**
   * Runs `create` once per (caller, key): the first call claims the key and stores the id `create`
   * returns; calls made meanwhile wait for that id; later calls get it at once. When `create` throws,
   * the claim is removed (a retry may create) and the error passes through.
   *
   * `isLive(id)` lets a stored id whose object has since vanished be forgotten (the key is then
   * claimed afresh). Default: every id is live.
   * @throws AppError `IDEMPOTENCY_KEY_REUSED` (the key was used with another body), `IDEMPOTENCY_KEY_IN_USE` (the
   *   winner did not finish within `waitMs`; retry), `REDIS_UNAVAILABLE`, or whatever `create` throws.
   */
  async run(call: IdempotentCall, create: () => Promise<string>, isLive: (id: string) => Promise<boolean> = async () => true): Promise<IdempotentResult> {
    const redisKey = this.redisKey(call.callerId, call.key);
    const deadline = performance.now() + this.#waitMs;
    for (;;) {
      const pending = JSON.stringify({ state: 'pending', bodyHash: call.bodyHash, token: randomUUID() } satisfies StoredValue);
      const claimed = await withRedis(this.#connection, () => this.#connection.set(redisKey, pending, 'PX', this.#leaseMs, 'NX'));
      if (claimed === 'OK') return { id: await this.#createAsWinner(redisKey, pending, create), replayed: false };

      const text = await withRedis(this.#connection, () => this.#connection.get(redisKey));
      if (text !== null) {
        const stored = parseStored(text);
        if (stored === null) {
          // Not a value this module wrote (a foreign or older format): start over rather than wait for nothing.
          await this.#release(redisKey, text);
          continue;
        }
        if (stored.bodyHash !== call.bodyHash) {
          throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was already used with a different request body; use a new key for a different request', {
            extensions: { errors: [{ path: 'headers/idempotency-key', message: 'reused with a different request body' }] },
          });
        }
        if (stored.state === 'done') {
          if (await isLive(stored.id)) return { id: stored.id, replayed: true };
          await this.#release(redisKey, text);
          continue;
        }
      }
      // Pending (or just expired): wait for the winner, then look again.
      if (performance.now() >= deadline) {
        throw new AppError('IDEMPOTENCY_KEY_IN_USE', 'a request with the same Idempotency-Key is still being processed; retry later', {
          headers: { 'Retry-After': '1' },
        });
      }
      await sleep(this.#pollMs);
    }
  }

  /** The Redis key of a (caller, key) pair: a hash, so the client's key is never stored. */
  redisKey(callerId: string | null, key: string): string {
    return `${this.#prefix}:${this.#namespace}:${createHash('sha256').update(`${callerId ?? ''}:${key}`).digest('hex')}`;
  }

  async #createAsWinner(redisKey: string, pending: string, create: () => Promise<string>): Promise<string> {
    let id: string;
    try {
      id = await create();
    } catch (error) {
      // Best effort: when Redis is away the lease ends by itself within `leaseMs`.
      await this.#release(redisKey, pending).catch(() => {});
      throw error;
    }
    const done = JSON.stringify({ state: 'done', bodyHash: (JSON.parse(pending) as StoredValue).bodyHash, id } satisfies StoredValue);
    // The thing exists and its 202 is due: a failure to record it only means a retry after the
    // lease may create another, which is better than answering an error for work that was done.
    await withRedis(this.#connection, () => this.#connection.eval(COMPLETE_SCRIPT, 1, redisKey, pending, done, String(this.#ttlMs))).catch(() => {});
    return id;
  }

  async #release(redisKey: string, value: string): Promise<void> {
    await withRedis(this.#connection, () => this.#connection.eval(RELEASE_SCRIPT, 1, redisKey, value));
  }
}

/**
 * sha256 (hex) of `value` as canonical JSON: object keys sorted at every level, so equal requests
 * hash equally whatever order their fields came in. Array order counts.
 * @example
 * canonicalHash({ b: 1, a: [2, 3] }) === canonicalHash({ a: [2, 3], b: 1 }); // true
 */
export function canonicalHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

function parseStored(text: string): StoredValue | null {
  try {
    const value = JSON.parse(text) as Partial<Record<string, unknown>>;
    if (typeof value.bodyHash !== 'string') return null;
    if (value.state === 'pending' && typeof value.token === 'string') return { state: 'pending', bodyHash: value.bodyHash, token: value.token };
    if (value.state === 'done' && typeof value.id === 'string') return { state: 'done', bodyHash: value.bodyHash, id: value.id };
    return null;
  } catch {
    return null;
  }
}
