/**
 * `POST /v1/predict` (classify X-rays now) and the asynchronous `POST /v1/predictions` /
 * `GET /v1/predictions/{id}`: with the production model (or another by id or alias), and exactly one
 * audit record per prediction request, whatever its outcome (DESIGN section 7).
 * @module
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AuditRecord } from '../../infra/audit-log.ts';
import type { ErrorCode } from '../../infra/errors.ts';
import type { OperationDefinition, OperationHandlers } from '../openapi/register-operations.ts';
import type { PredictionsPort, PredictorPort } from '../ports.ts';
import { classifyError } from '../problem-handler.ts';
import { idempotencyKeyOf } from './idempotency-key.ts';
import { readPredictInput } from './predict-input.ts';

export interface AuditPort {
  append(record: AuditRecord): Promise<void>;
}

export interface PredictDeps {
  predictor: PredictorPort;
  predictions: PredictionsPort;
  audit: AuditPort;
  /** The authenticated key's id, if any. */
  keyIdOf(request: FastifyRequest): string | null;
  /** True when the request's key has the admin scope (it may read every prediction). */
  isAdmin(request: FastifyRequest): boolean;
  maxFiles: number;
  /** Largest JSON body (base64 images), bytes. */
  jsonBodyLimit: number;
  /** Called when an audit record could not be written (counted in `/metrics`). */
  onAuditFailure?: () => void;
}

/** What one audited request has gathered by the time it is answered. */
interface AuditState {
  started: number;
  inputSha256: string[];
  model: { id: string; version: string } | null;
  code?: ErrorCode;
}

/** A handler that reads the request's images and records what the audit needs on the way. */
type AuditedHandler = (request: FastifyRequest, reply: FastifyReply, state: AuditState) => Promise<unknown>;

/**
 * A route whose every request appends one audit record (route template `route`), for successes and
 * failures alike: the state is made when the request arrives, errors leave their code in it, and
 * the record is appended once the answer is sent.
 */
function audited(deps: PredictDeps, route: AuditRecord['route'], handler: AuditedHandler): OperationDefinition {
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
            route,
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
    handler: (request, reply) => handler(request, reply, stateOf(request)),
  };
}

/** sha256 (hex) of each image, for the audit record. */
function digests(images: readonly { data: Uint8Array }[]): string[] {
  return images.map((image) => createHash('sha256').update(image.data).digest('hex'));
}

export function predictHandlers(deps: PredictDeps): Pick<OperationHandlers, 'predict' | 'createPrediction' | 'getPrediction'> {
  return {
    predict: audited(deps, 'POST /v1/predict', async (request, _reply, state) => {
      const input = await readPredictInput(request, { maxFiles: deps.maxFiles });
      state.inputSha256 = digests(input.images);
      const response = await deps.predictor.predict(input);
      state.model = { id: response.model.id, version: response.model.version };
      return response;
    }),
    createPrediction: audited(deps, 'POST /v1/predictions', async (request, reply, state) => {
      const idempotencyKey = idempotencyKeyOf(request.headers);
      const input = await readPredictInput(request, { maxFiles: deps.maxFiles });
      state.inputSha256 = digests(input.images);
      const prediction = await deps.predictions.create(input, {
        callerId: deps.keyIdOf(request),
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
      });
      state.model = { id: prediction.model.id, version: prediction.model.version };
      return reply.code(202).header('Location', `/v1/predictions/${prediction.id}`).send(prediction);
    }),
    getPrediction: async (request) => {
      const { predictionId } = request.params as { predictionId: string };
      return deps.predictions.get(predictionId, { callerId: deps.keyIdOf(request), admin: deps.isAdmin(request) });
    },
  };
}
