/**
 * `/v1/experiments`: start, follow (JSON or server-sent events) and cancel training experiments.
 * @module
 */
import type {} from '@fastify/sse';
import type { SSEMessage } from '@fastify/sse';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { ExperimentBody, ExperimentRequestBody, ExperimentsPort } from '../ports.ts';

const FINAL_STATUSES = new Set(['completed', 'failed', 'cancelled']);

/**
 * The experiment's states as SSE messages: the current one at once, then each change, ending after a
 * final status or when the client leaves.
 */
async function* experimentEvents(experiments: ExperimentsPort, first: ExperimentBody, signal: AbortSignal): AsyncGenerator<SSEMessage> {
  const pending: ExperimentBody[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = await experiments.watch(first.id, (experiment) => {
    pending.push(experiment);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    let sequence = 0;
    yield { id: String(sequence++), event: 'experiment', data: first };
    if (FINAL_STATUSES.has(first.status)) return;
    while (!signal.aborted) {
      const next = pending.shift();
      if (!next) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      yield { id: String(sequence++), event: 'experiment', data: next };
      if (FINAL_STATUSES.has(next.status)) return;
    }
  } finally {
    signal.removeEventListener('abort', onAbort);
    unsubscribe();
  }
}

export function experimentHandlers(deps: { experiments: ExperimentsPort }): Pick<
  OperationHandlers,
  'listExperiments' | 'createExperiment' | 'getExperiment' | 'cancelExperiment' | 'streamExperimentEvents'
> {
  const idOf = (params: unknown): string => (params as { experimentId: string }).experimentId;
  return {
    listExperiments: async () => ({ experiments: await deps.experiments.list() }),
    createExperiment: async (request, reply) => {
      const experiment = await deps.experiments.create(request.body as ExperimentRequestBody);
      return reply.code(202).header('Location', `/v1/experiments/${experiment.id}`).send({ id: experiment.id, status: experiment.status });
    },
    getExperiment: async (request) => deps.experiments.get(idOf(request.params)),
    cancelExperiment: async (request, reply) => reply.code(202).send(await deps.experiments.cancel(idOf(request.params))),
    streamExperimentEvents: {
      options: { sse: { kind: 'only', heartbeat: true } },
      handler: async (request, reply) => {
        // Looked up before the stream opens, so an unknown id is a plain 404 problem document.
        const first = await deps.experiments.get(idOf(request.params));
        const left = new AbortController();
        reply.sse.onClose(() => left.abort());
        await reply.sse.send(experimentEvents(deps.experiments, first, left.signal));
      },
    },
  };
}
