/**
 * What a training-queue job does when the data directory is full (issue 5, "a full disk"): it goes
 * back to the queue as delayed, without using an attempt, and tries again every
 * `STORAGE_RETRY_INTERVAL_MS` until an operator frees space — then training resumes from its last
 * epoch checkpoint. A full disk is not the job's fault, and failing it after a few quick retries would
 * lose the experiment.
 * @module
 */
import { DelayedError, type SandboxedJob } from 'bullmq';

/**
 * Moves `job` to the delayed set for `retryMs` and returns the error its processor must throw so
 * BullMQ leaves it there. Without a lock token (a job not run by a worker) it returns a plain error.
 */
export async function holdForStorage(job: SandboxedJob, token: string | undefined, retryMs: number): Promise<Error> {
  if (token === undefined) return new Error('INSUFFICIENT_STORAGE: the data directory is full');
  await job.moveToDelayed(Date.now() + retryMs, token);
  return new DelayedError();
}
