/**
 * Graceful shutdown of a process (DESIGN section 7): on SIGTERM or SIGINT stop accepting, finish
 * in-flight work, close workers and connections, and exit within the grace period whatever happens.
 * A second signal exits at once.
 * @module
 */
import type { Logger } from 'pino';

export interface ShutdownOptions {
  logger: Logger;
  /** Longest the closing steps may take before the process exits anyway (`SHUTDOWN_TIMEOUT_MS`). */
  timeoutMs: number;
  /** Closing steps, run in order; each one's failure is logged and the next still runs. */
  steps: readonly { name: string; close: () => Promise<void> }[];
  /** Exit function (tests replace it). Default `process.exit`. */
  exit?: (code: number) => void;
}

/**
 * Installs the signal handlers. Returns `shutdown(reason)` for callers that decide to stop
 * themselves (e.g. a fatal start-up error after some parts were running).
 */
export function installGracefulShutdown(options: ShutdownOptions): (reason: string) => Promise<void> {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let shuttingDown: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      options.logger.info({ reason, timeoutMs: options.timeoutMs }, 'shutting down');
      const deadline = setTimeout(() => {
        options.logger.error({ timeoutMs: options.timeoutMs }, 'graceful shutdown took too long; exiting');
        exit(1);
      }, options.timeoutMs);
      deadline.unref();
      let failed = false;
      for (const step of options.steps) {
        try {
          await step.close();
        } catch (error) {
          failed = true;
          options.logger.error({ err: error, step: step.name }, 'a shutdown step failed');
        }
      }
      clearTimeout(deadline);
      options.logger.info('stopped');
      exit(failed ? 1 : 0);
    })();
    return shuttingDown;
  };

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (shuttingDown) {
        options.logger.warn({ signal }, 'second signal: exiting now');
        exit(1);
        return;
      }
      void shutdown(signal);
    });
  }
  return shutdown;
}
