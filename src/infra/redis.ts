/**
 * Redis connections for BullMQ (DESIGN section 4), made from a `redis://` or `rediss://` URL.
 *
 * - **Producers** (the API adding jobs, reading queue state): fail fast when Redis is down, so a
 *   request answers 503 `REDIS_UNAVAILABLE` at once instead of hanging. Commands are not queued
 *   while disconnected (`enableOfflineQueue: false`), each is retried at most once, and the client
 *   keeps reconnecting in the background so the API recovers by itself when Redis is back.
 * - **Workers**: `maxRetriesPerRequest: null` (BullMQ requires it for its blocking commands) and
 *   reconnect forever with capped exponential backoff: a worker rides out a Redis restart.
 *
 * BullMQ takes these ioredis instances as its `connection` option and leaves them open when it
 * closes (it duplicates a worker's connection for its blocking reads and closes the duplicate):
 * close them yourself with {@link closeConnection}. The key prefix is BullMQ's `prefix` option,
 * never ioredis's `keyPrefix` (BullMQ refuses that).
 * @module
 */
import { Redis, type RedisOptions } from 'ioredis';
import { AppError } from './errors.ts';

/** A connection as BullMQ accepts it. */
export type RedisConnection = Redis;

/** Options shared by every connection of the service. */
export interface ConnectionSettings {
  /** Shown by `CLIENT LIST`, to tell the service's connections apart. */
  connectionName?: string;
}

/** Tuning of {@link createProducerConnection}. */
export interface ProducerConnectionSettings extends ConnectionSettings {
  /** Longest wait for the TCP connection and handshake, ms. Default 1000. */
  connectTimeoutMs?: number;
  /** Longest wait for one command's reply, ms. Default 5000. */
  commandTimeoutMs?: number;
}

/**
 * How long a closing connection waits for the socket to close before destroying it, ms. ioredis's
 * 2 s default keeps a process alive that long after closing a connection whose socket already died.
 */
const DISCONNECT_TIMEOUT_MS = 200;

/** Reconnection delay after `attempt` failed attempts: 100 ms doubling, capped, with jitter. */
export function reconnectDelayMs(attempt: number, capMs: number): number {
  const base = Math.min(capMs, 100 * 2 ** Math.min(attempt, 16));
  // Jitter spreads the reconnects of many workers after a Redis restart.
  return Math.round(base * (0.75 + Math.random() * 0.25));
}

/**
 * A connection for code that must not wait for Redis: the API's queue producers and getters.
 * Pair it with {@link withRedis}, which turns "Redis is down" into `AppError('REDIS_UNAVAILABLE')`.
 * Not for blocking readers (`QueueEvents`, workers): BullMQ requires `maxRetriesPerRequest: null`
 * there, and a command timeout would cut their blocking reads; use {@link createWorkerConnection}.
 * @example
 * const connection = createProducerConnection(config.REDIS_URL ?? DEFAULT_REDIS_URL);
 * const queue = new Queue('training', { connection, prefix: config.QUEUE_PREFIX });
 * await withRedis(connection, () => queue.getJobCounts());
 */
export function createProducerConnection(url: string, settings: ProducerConnectionSettings = {}): RedisConnection {
  const options: RedisOptions = {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    connectTimeout: settings.connectTimeoutMs ?? 1_000,
    commandTimeout: settings.commandTimeoutMs ?? 5_000,
    // Keep trying in the background (the API answers 503 meanwhile), but not in a tight loop.
    retryStrategy: (attempt) => reconnectDelayMs(attempt, 5_000),
    ...(settings.connectionName === undefined ? {} : { connectionName: settings.connectionName }),
  };
  return silenceErrors(new Redis(url, options));
}

/**
 * A connection for BullMQ workers (and the queues, flow producers and events they use): commands
 * wait for Redis however long it is away, and the client reconnects forever (at most 20 s apart).
 */
export function createWorkerConnection(url: string, settings: ConnectionSettings = {}): RedisConnection {
  const options: RedisOptions = {
    maxRetriesPerRequest: null,
    connectTimeout: 10_000,
    disconnectTimeout: DISCONNECT_TIMEOUT_MS,
    retryStrategy: (attempt) => reconnectDelayMs(attempt, 20_000),
    ...(settings.connectionName === undefined ? {} : { connectionName: settings.connectionName }),
  };
  return silenceErrors(new Redis(url, options));
}

/**
 * ioredis prints "Unhandled error event" for every failed reconnect when nobody listens; callers
 * see the errors through their commands instead (and BullMQ through its own listeners).
 */
function silenceErrors(connection: Redis): Redis {
  connection.on('error', () => {});
  return connection;
}

/**
 * True when a Redis answers `PING` at `url` within `timeoutMs` (connecting included). Never throws;
 * the probe connection is closed before it returns. Used by `start` to find a Redis.
 * @example
 * if (!(await pingRedis('redis://127.0.0.1:6379', 500))) startRedisServer();
 */
export async function pingRedis(url: string, timeoutMs: number): Promise<boolean> {
  let probe: Redis;
  try {
    probe = new Redis(url, {
      lazyConnect: true,
      connectTimeout: timeoutMs,
      commandTimeout: timeoutMs,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      disconnectTimeout: DISCONNECT_TIMEOUT_MS,
      retryStrategy: () => null,
    });
  } catch {
    return false;
  }
  silenceErrors(probe);
  let timer: NodeJS.Timeout | undefined;
  try {
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('ping timed out')), timeoutMs);
    });
    const answer = await Promise.race([probe.connect().then(() => probe.ping()), deadline]);
    return answer === 'PONG';
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    await closeConnection(probe);
  }
}

/**
 * Closes a connection: politely (`QUIT`) when it is up, at once when it is not, so shutting down
 * never waits for an absent Redis.
 */
export async function closeConnection(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') {
    try {
      await connection.quit();
      return;
    } catch {
      // fall through to a hard disconnect
    }
  }
  connection.disconnect();
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH']);
const CONNECTION_ERROR_MESSAGE = /Stream isn't writeable|Connection is closed|Command timed out|Reached the max retries per request|connect ETIMEDOUT|ECONNREFUSED|Redis is unreachable/;

/**
 * True when `error` says Redis could not be reached or did not answer (as opposed to Redis answering
 * with an error, or a bug): the caller may retry later.
 */
export function isRedisConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  if (error.name === 'MaxRetriesPerRequestError') return true;
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== undefined && CONNECTION_ERROR_CODES.has(code)) return true;
  return CONNECTION_ERROR_MESSAGE.test(error.message);
}

/**
 * Default bound of {@link withRedis}, ms. A Redis that accepts connections but stops answering (hung,
 * paused, partitioned) must still get the caller its 503 in about a second (issue 5); a healthy Redis
 * answers the API's commands in milliseconds, and a job added after the deadline does no harm.
 */
export const REDIS_ANSWER_TIMEOUT_MS = 1_000;

/** What {@link withRedis} answers when Redis is away: clients may retry after this many seconds. */
export const REDIS_RETRY_AFTER_SECONDS = 5;

/**
 * Resolves when `connection` is up. A connection still making its first attempt is waited for (it
 * succeeds or fails within its connect timeout; a closed port fails in milliseconds); one that lost
 * Redis and is retrying fails at once.
 */
async function whenConnected(connection: RedisConnection): Promise<void> {
  if (connection.status === 'ready') return;
  if (connection.status !== 'connecting' && connection.status !== 'connect') {
    throw new Error(`Redis is unreachable (connection ${connection.status})`);
  }
  await new Promise<void>((resolve, reject) => {
    const settle = (error?: Error): void => {
      connection.off('ready', onReady);
      connection.off('close', onClose);
      if (error) reject(error);
      else resolve();
    };
    const onReady = (): void => settle();
    const onClose = (): void => settle(new Error('Redis is unreachable (connection closed)'));
    connection.once('ready', onReady);
    connection.once('close', onClose);
  });
}

/** The error of an unreachable Redis, as the API answers it. */
export function redisUnavailable(cause?: unknown): AppError {
  return new AppError('REDIS_UNAVAILABLE', 'the job store (Redis) is unreachable; retry later', {
    ...(cause === undefined ? {} : { cause }),
    headers: { 'Retry-After': String(REDIS_RETRY_AFTER_SECONDS) },
  });
}

/**
 * Runs `fn` (which talks to Redis through `connection`) so that an unreachable Redis fails fast with
 * `AppError('REDIS_UNAVAILABLE')` (503 + `Retry-After`): at once when the connection is not up, and
 * after `timeoutMs` at most when Redis stops answering. Other errors pass through unchanged.
 *
 * A timed-out `fn` is not cancelled: a job it was adding may still be added later. Job ids are
 * deterministic and processors check the experiment record, so such a late job does no harm.
 * @example
 * const counts = await withRedis(connection, () => queue.getJobCounts());
 */
export async function withRedis<T>(connection: RedisConnection, fn: () => Promise<T>, timeoutMs = REDIS_ANSWER_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis is unreachable: no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([whenConnected(connection), deadline]);
    return await Promise.race([fn(), deadline]);
  } catch (error) {
    if (isRedisConnectionError(error)) throw redisUnavailable(error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
