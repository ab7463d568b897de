/**
 * The abort signal a `train` job hands to the ML engine. It fires for one of three reasons:
 * - `cancelled`: the API wrote the experiment's cancel marker (checked every `intervalMs`);
 * - `experiment-ended`: the experiment failed or was cancelled meanwhile (another architecture's
 *   final failure), so finishing this one would be wasted work;
 * - `shutdown`: BullMQ aborted the job because the worker is shutting down (its signal).
 * The engine checks the signal between micro-batches, so training stops within about a second.
 * @module
 */

export type StopReason = 'cancelled' | 'experiment-ended' | 'shutdown';

/** Reason string the worker passes to BullMQ's `cancelAllJobs` on shutdown. */
export const SHUTDOWN_REASON = 'worker-shutdown';

export interface StopSignal {
  readonly signal: AbortSignal;
  /** Why the signal fired; null while it has not. */
  reason(): StopReason | null;
  /** Stops polling. */
  stop(): void;
}

/**
 * Polls `check` every `intervalMs` and follows `external` (BullMQ's job signal).
 * @param check resolves to a reason to stop, or null to go on; a failing check counts as null.
 */
export function watchStopSignal(check: () => Promise<StopReason | null>, intervalMs: number, external?: AbortSignal): StopSignal {
  const controller = new AbortController();
  let reason: StopReason | null = null;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const fire = (why: StopReason): void => {
    if (controller.signal.aborted) return;
    reason = why;
    controller.abort(new Error(`training stopped: ${why}`));
  };
  const onExternal = (): void => fire('shutdown');
  if (external?.aborted === true) onExternal();
  else external?.addEventListener('abort', onExternal, { once: true });

  const poll = async (): Promise<void> => {
    if (stopped || controller.signal.aborted) return;
    const why = await check().catch(() => null);
    if (why !== null) fire(why);
    if (!stopped && !controller.signal.aborted) {
      timer = setTimeout(() => void poll(), intervalMs);
    }
  };
  timer = setTimeout(() => void poll(), intervalMs);

  return {
    signal: controller.signal,
    reason: () => reason,
    stop() {
      stopped = true;
      clearTimeout(timer);
      external?.removeEventListener('abort', onExternal);
    },
  };
}
