/**
 * `/v1/experiments`: start, follow (JSON or server-sent events) and cancel training experiments.
 * @module
 */
import type {} from '@fastify/accepts';
import type {} from '@fastify/sse';
import type { SSEMessage } from '@fastify/sse';
import { AppError } from '../../infra/errors.ts';
import { isFinalStatus } from '../../services/experiments/experiment.types.ts';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { ExperimentBody, ExperimentRequestBody, ExperimentsPort } from '../ports.ts';
import { idempotencyKeyOf } from './idempotency-key.ts';

/** What `create` takes besides the body (the experiment service's `CreateExperimentOptions`). */
interface CreateOptions {
  idempotencyKey?: string | undefined;
  callerId?: string | null | undefined;
}

/**
 * The experiment's states as SSE messages: the current one at once, then each change, ending after a
 * final status or when the client leaves.
 */
async function* experimentEvents(experiments: ExperimentsPort, first: ExperimentBody, signal: AbortSignal): AsyncGenerator<SSEMessage> {
  const pending: ExperimentBody[] = [];
  let wake: (() => void) | undefined;
  // The watch reports the state it starts from, which is usually `first` again: send changes only.
  let last = JSON.stringify(first);
  const unsubscribe = await experiments.watch(first.id, (experiment) => {
    const text = JSON.stringify(experiment);
    if (text === last) return;
    last = text;
    pending.push(experiment);
    wake?.();
  });
  const onAbort = (): void => wake?.();
  signal.addEventListener('abort', onAbort);
  try {
    let sequence = 0;
    yield { id: String(sequence++), event: 'experiment', data: first };
    if (isFinalStatus(first.status)) return;
    while (!signal.aborted) {
      const next = pending.shift();
      if (!next) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      yield { id: String(sequence++), event: 'experiment', data: next };
      if (isFinalStatus(next.status)) return;
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
  // ExperimentsPort declares `create(body)` only; the service also takes these options. Binding it
  // to the wider type passes them on (a port with a one-parameter `create` simply ignores them).
  const create: (body: ExperimentRequestBody, options: CreateOptions) => Promise<ExperimentBody> = deps.experiments.create.bind(deps.experiments);
  return {
    listExperiments: async () => ({ experiments: await deps.experiments.list() }),
    createExperiment: async (request, reply) => {
      const idempotencyKey = idempotencyKeyOf(request.headers);
      const experiment = await create(request.body as ExperimentRequestBody, {
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        callerId: request.apiKey?.id ?? null,
      });
      return reply.code(202).header('Location', `/v1/experiments/${experiment.id}`).send({ id: experiment.id, status: experiment.status });
    },
    getExperiment: async (request) => deps.experiments.get(idOf(request.params)),
    cancelExperiment: async (request, reply) => reply.code(202).send(await deps.experiments.cancel(idOf(request.params))),
    streamExperimentEvents: {
      // `manual`: the plugin's own Accept gate answers a non-problem 406; ours below does not.
      options: { sse: { kind: 'manual', heartbeat: true } },
      handler: async (request, reply) => {
        if (request.accepts().type(['text/event-stream']) === false) {
          throw new AppError('NOT_ACCEPTABLE', 'this route streams text/event-stream; GET /v1/experiments/{id} answers JSON');
        }
        // Looked up before the stream opens, so an unknown id is a plain 404 problem document.
        const first = await deps.experiments.get(idOf(request.params));
        const left = new AbortController();
        reply.sse.onClose(() => left.abort());
        // A draining API ends its streams; the client reconnects (to another instance, or later).
        await reply.sse.send(experimentEvents(deps.experiments, first, AbortSignal.any([left.signal, request.server.drainSignal])));
      },
    },
  };
}
