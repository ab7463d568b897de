// Entry file of the training sandbox: BullMQ runs it in a worker thread (useWorkerThreads) and calls
// its default export for every job of the training queue. It is JavaScript because the thread starts
// without the TypeScript loader: tsx hooks registered in the main thread (or given as `--import tsx`
// in the thread's execArgv) do not apply to worker threads on Node 20, so it registers tsx itself and
// then loads the TypeScript processor. V8 flags are per process, not per thread: `--no-liftoff` (see
// bin/fracture-service.js) is set here too, so the thread holds it even when its process was started
// without it (setting a flag already set is a no-op).
import v8 from 'node:v8';
import { register } from 'tsx/esm/api';

v8.setFlagsFromString('--no-liftoff');
register();
const { default: processTrainingJob } = await import('./training.processor.ts');

export default processTrainingJob;
