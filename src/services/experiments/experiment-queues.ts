/**
 * The BullMQ objects the experiment service produces with: a flow producer (an experiment is one
 * flow) and the `training` queue (to find and remove an experiment's jobs on cancel), on one
 * producer connection that fails fast when Redis is down.
 * @module
 */
import { FlowProducer, Queue } from 'bullmq';
import { QUEUE_NAMES } from '../../infra/queues.ts';
import type { RedisConnection } from '../../infra/redis.ts';

/** What {@link ExperimentService} needs of BullMQ. */
export interface ExperimentQueues {
  /** The producer connection: {@link withRedis} checks it before each call. */
  readonly connection: RedisConnection;
  readonly flowProducer: FlowProducer;
  readonly trainingQueue: Queue;
  /** Closes the producer and queue (not the connection, which the caller owns). */
  close(): Promise<void>;
}

/**
 * Creates the flow producer and the training queue under BullMQ key prefix `prefix`
 * (`QUEUE_PREFIX`).
 * @example
 * const connection = createProducerConnection(redisUrl);
 * const queues = createExperimentQueues(connection, config.QUEUE_PREFIX);
 */
export function createExperimentQueues(connection: RedisConnection, prefix: string): ExperimentQueues {
  const flowProducer = new FlowProducer({ connection, prefix });
  const trainingQueue = new Queue(QUEUE_NAMES.training, { connection, prefix });
  // Connection errors reach callers through their commands (as REDIS_UNAVAILABLE); without a
  // listener an emitted 'error' would be printed for every failed reconnect.
  flowProducer.on('error', () => {});
  trainingQueue.on('error', () => {});
  return {
    connection,
    flowProducer,
    trainingQueue,
    async close() {
      await Promise.allSettled([flowProducer.close(), trainingQueue.close()]);
    },
  };
}
