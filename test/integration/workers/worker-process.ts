/**
 * A worker process for the tests that kill one: `node --no-liftoff --import tsx worker-process.ts`
 * with the configuration in its environment (like `fracture-service worker`). Prints `ready` once
 * its workers are connected; closes gracefully on SIGTERM.
 */
import { loadConfig } from '../../../src/infra/config.ts';
import { startWorkers } from '../../../src/workers/run-workers.ts';

const running = startWorkers({ config: loadConfig(process.env), queues: ['training'] });
await running.ready();
process.stdout.write('ready\n');
process.once('SIGTERM', () => {
  void running.close().then(() => process.exit(0));
});
