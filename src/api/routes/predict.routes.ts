/**
 * `POST /v1/predict`: classify X-rays with the production model (or another by id or alias), and
 * append exactly one audit record per request, whatever its outcome (DESIGN section 7).
 * @module
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditRecord } from '../../infra/audit-log.ts';
import type { ErrorCode } from '../../infra/errors.ts';
import type { OperationHandlers } from '../openapi/register-operations.ts';
import type { PredictorPort } from '../ports.ts';
import { classifyError } from '../problem-handler.ts';
import { readPredictInput } from './predict-input.ts';

export interface AuditPort {
  append(record: AuditRecord): Promise<void>;
}

export interface PredictDeps {
  predictor: PredictorPort;
  audit: AuditPort;
  /** The authenticated key's id, if any. */
  keyIdOf(request: FastifyRequest): string | null;
  maxFiles: number;
  /** Largest JSON body (base64 images), bytes. */
  jsonBodyLimit: number;
  /** Called when an audit record could not be written (counted in `/metrics`). */
  onAuditFailure?: () => void;
}

interface AuditState {
  started: number;
  inputSha256: string[];
  model: { id: string; version: string } | null;
  code?: ErrorCode;
}

export function predictHandlers(deps: PredictDeps): Pick<OperationHandlers, 'predict'> {
  const audits = new WeakMap<FastifyRequest, AuditState>();
  const stateOf = (request: FastifyRequest): AuditState => {
    let state = audits.get(request);
    if (!state) {
      state = { started: performance.now(), inputSha256: [], model: null };
      audits.set(request, state);
    }
    return state;
  };
  return {
    predict: {
      options: {
        bodyLimit: deps.jsonBodyLimit,
        onRequest: async (request: FastifyRequest) => void stateOf(request),
        onError: async (request: FastifyRequest, _reply: FastifyReply, error: Error) => {
          stateOf(request).code = classifyError(error).code;
        },
        onResponse: async (request: FastifyRequest, reply: FastifyReply) => {
          const state = stateOf(request);
          await deps.audit
            .append({
              time: new Date().toISOString(),
              keyId: deps.keyIdOf(request),
              route: 'POST /v1/predict',
              inputSha256: state.inputSha256,
              model: state.model,
              status: reply.statusCode,
              ...(state.code ? { code: state.code } : {}),
              durationMs: Math.round((performance.now() - state.started) * 10) / 10,
            })
            .catch((error: unknown) => {
              deps.onAuditFailure?.();
              request.log.error({ err: error }, 'audit record could not be written');
            });
        },
      },
      handler: async (request) => {
        const state = stateOf(request);
        const input = await readPredictInput(request, { maxFiles: deps.maxFiles });
        state.inputSha256 = input.images.map((image) => createHash('sha256').update(image.data).digest('hex'));
        const response = await deps.predictor.predict(input);
        state.model = { id: response.model.id, version: response.model.version };
        return response;
      },
    },
  };
}
