/**
 * `fracture-service api | worker | start`: the long-running processes. Parses arguments and hands
 * over to src/runtime/serve.ts.
 * @module
 */
import { InvalidArgumentError, type Command } from 'commander';
import { loadConfig } from '../../infra/config.ts';
import { ALL_QUEUES, type QueueName } from '../../infra/queues.ts';
import { runApi, runStart, runWorker } from '../../runtime/serve.ts';

function parseQueues(value: string): QueueName[] {
  const queues = value.split(',').map((name) => name.trim()).filter(Boolean);
  const unknown = queues.filter((name) => !ALL_QUEUES.includes(name as QueueName));
  if (queues.length === 0 || unknown.length > 0) throw new InvalidArgumentError(`queues are ${ALL_QUEUES.join(', ')}; got ${value}`);
  return queues as QueueName[];
}

function parsePositiveInt(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError(`expected a positive integer, got ${value}`);
  return number;
}

export function registerServeCommands(program: Command): void {
  program
    .command('api')
    .description('Run the HTTP API (predictions go to inference workers through Redis). Needs API_KEYS.')
    .action(async () => runApi(loadConfig()));
  program
    .command('worker')
    .description('Run queue workers: training (sandboxed, resumable) and inference (dynamically batched).')
    .option('--queues <names>', `comma-separated queues to serve: ${ALL_QUEUES.join(', ')}`, parseQueues)
    .option('--concurrency <n>', 'jobs at once per queue (default TRAINING_CONCURRENCY / INFERENCE_CONCURRENCY)', parsePositiveInt)
    .action(async (options: { queues?: QueueName[]; concurrency?: number }) => runWorker(loadConfig(), options));
  program
    .command('start')
    .description('Run the API, the training workers and the predictor in one process, on a Redis it finds or starts.')
    .action(async () => {
      await runStart(loadConfig());
    });
}
