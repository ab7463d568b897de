/**
 * The `training` queue's processor, run by BullMQ in the training sandbox (see
 * `training.sandbox.js`). Both of the queue's jobs come here and are dispatched by name; the
 * handler modules (and the ML engine behind them) are loaded on first use, so the worker process's
 * main thread can list the handled job names (to refuse to start with a job that has none) without
 * loading tfjs itself.
 * @module
 */
import { UnrecoverableError, type SandboxedJob } from 'bullmq';
import type { CompareJob, JobName, TrainJob } from '../infra/queues.ts';
import type { TrainingContext } from './training-context.ts';

/** Job names of the training queue. */
export type TrainingJobName = 'train' | 'compare';

type Handler = (job: SandboxedJob, token: string | undefined, signal: AbortSignal | undefined, context: TrainingContext) => Promise<unknown>;

/** One handler per job of the training queue (TypeScript makes the table complete). */
export const TRAINING_JOB_HANDLERS: Readonly<{ [N in TrainingJobName]: () => Promise<Handler> }> = Object.freeze({
  train: async () => {
    const { processTrainJob } = await import('./train.processor.ts');
    return (job, token, signal, context) => processTrainJob(job as SandboxedJob<TrainJob['data']>, token, signal, context);
  },
  compare: async () => {
    const { processCompareJob } = await import('./compare.processor.ts');
    return (job, token, _signal, context) => processCompareJob(job as SandboxedJob<CompareJob['data']>, token, context);
  },
});

/** Names of the jobs {@link TRAINING_JOB_HANDLERS} handles. */
export const TRAINING_JOB_NAMES: readonly JobName[] = Object.freeze(Object.keys(TRAINING_JOB_HANDLERS) as JobName[]);

function isTrainingJobName(name: string): name is TrainingJobName {
  return Object.hasOwn(TRAINING_JOB_HANDLERS, name);
}

/**
 * BullMQ's entry point in the sandbox: `(job, token, signal)`.
 * @throws UnrecoverableError for a job name this queue does not know.
 */
export default async function processTrainingJob(job: SandboxedJob, token?: string, signal?: AbortSignal): Promise<unknown> {
  if (!isTrainingJobName(job.name)) throw new UnrecoverableError(`the training queue has no job named ${JSON.stringify(job.name)}`);
  const handler = await TRAINING_JOB_HANDLERS[job.name]();
  const { trainingContext } = await import('./training-context.ts');
  return handler(job, token, signal, trainingContext());
}
