/**
 * Readiness (`GET /readyz`): the process is ready when Redis answers, the tfjs backend is loaded and
 * the serving model is warm; the model check also names the engine that runs it (`onnx`, `tfjs`). Each check is a small function given by the entry point, so the same
 * service works with an in-process predictor (`start`) or a queue-backed one (`api`).
 * @module
 */
import { AppError } from '../../infra/errors.ts';

export interface CheckResult {
  ok: boolean;
  /** Why not ok, or what was found (e.g. the backend name); never secrets or patient data. */
  detail?: string;
}

/** The serving model's check, with the engine that runs (or will run) it. */
export interface ModelCheckResult extends CheckResult {
  /** `onnx` or `tfjs` (`INFERENCE_ENGINE` applied to the serving model). */
  engine?: string;
  /** Why tfjs runs it under `INFERENCE_ENGINE=auto`, e.g. the model has no `model.onnx`. */
  engineReason?: string;
}

export type ReadinessCheck<R extends CheckResult = CheckResult> = () => Promise<R>;

export interface Readiness {
  ready: boolean;
  checks: { redis: CheckResult; backend: CheckResult; model: ModelCheckResult };
}

export interface ReadinessChecks {
  redis: ReadinessCheck;
  backend: ReadinessCheck;
  model: ReadinessCheck<ModelCheckResult>;
}

/** Longest a single check may take before it counts as failed: `/readyz` must answer quickly. */
export const CHECK_TIMEOUT_MS = 1_000;

async function runCheck<R extends CheckResult>(check: ReadinessCheck<R>, timeoutMs: number): Promise<R | CheckResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: `no answer within ${timeoutMs} ms` }), timeoutMs);
  });
  try {
    return await Promise.race([
      // Our own errors say what is missing; anything else may carry internals (paths, hosts) that an
      // open endpoint must not show.
      check().catch((error: unknown) => ({ ok: false, detail: error instanceof AppError ? error.message : 'check failed (see the log)' })),
      timeout,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs the checks in parallel, each bounded by `timeoutMs`. */
export class ReadinessService {
  readonly #checks: ReadinessChecks;
  readonly #timeoutMs: number;
  #draining = false;

  constructor(checks: ReadinessChecks, timeoutMs = CHECK_TIMEOUT_MS) {
    this.#checks = checks;
    this.#timeoutMs = timeoutMs;
  }

  /** Marks the process as shutting down: readiness fails from now on, so balancers stop sending. */
  startDraining(): void {
    this.#draining = true;
  }

  get draining(): boolean {
    return this.#draining;
  }

  async check(): Promise<Readiness> {
    const [redis, backend, model] = await Promise.all([
      runCheck(this.#checks.redis, this.#timeoutMs),
      runCheck(this.#checks.backend, this.#timeoutMs),
      runCheck(this.#checks.model, this.#timeoutMs),
    ]);
    if (this.#draining) {
      return { ready: false, checks: { redis, backend, model: { ok: false, detail: 'shutting down' } } };
    }
    return { ready: redis.ok && backend.ok && model.ok, checks: { redis, backend, model } };
  }
}
