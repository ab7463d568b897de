/**
 * The `fracture-service` command as a child process, for the end-to-end tests of the long-running
 * entry points (`start`, `api`, `worker`): spawn with a clean environment, read its output as it
 * comes, wait for a line or an exit, signal it, and kill whatever is still running when a test ends
 * (also when it failed half-way).
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../../../src/infra/config.ts';
export { waitFor } from '../../helpers/wait.ts';

/** The repository's root. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
/** The command users run. */
export const BIN = path.join(REPO_ROOT, 'bin/fracture-service.js');

/** How a process ended. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A running (or finished) `fracture-service` process. */
export interface ServiceProcess {
  readonly child: ChildProcess;
  /** Everything written to stdout / stderr so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<Exit>;
  /** True while the process runs. */
  running(): boolean;
  /** Resolves with the first match of `pattern` on stdout; rejects when the process exits first or after `timeoutMs`. */
  waitForStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` and resolves with the exit, or rejects after `timeoutMs` (the process is then killed). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

const spawned = new Set<ServiceProcess>();

/**
 * The environment of a child: the test runner's own, without any variable the service reads (so a
 * developer's `API_KEYS` or `REDIS_URL` cannot change a test) and without node:test's marker, plus `env`.
 */
export function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const clean: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIG_VARIABLES) delete clean[name];
  delete clean.NODE_TEST_CONTEXT;
  delete clean.NODE_OPTIONS;
  return { ...clean, ...env };
}

/** Spawns `node bin/fracture-service.js ...args` with `env` on top of a clean environment. */
export function spawnService(args: readonly string[], env: Record<string, string>): ServiceProcess {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: REPO_ROOT, env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  let exit: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal };
      resolve(exit);
    });
  });
  const describe = (): string => `fracture-service ${args.join(' ')}`;
  const service: ServiceProcess = {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    running: () => exit === undefined,
    waitForStdout: async (pattern, timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = out.match(pattern);
        if (match) return match;
        if (exit) throw new Error(`${describe()} exited (${JSON.stringify(exit)}) before printing ${pattern}; stderr:\n${err.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`${describe()} printed no ${pattern} within ${timeoutMs} ms; stdout:\n${out}\nstderr:\n${err.slice(-4000)}`);
        await sleep(25);
      }
    },
    stop: async (signal = 'SIGTERM', timeoutMs = 15_000) => {
      if (exit) return exit;
      child.kill(signal);
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill('SIGKILL');
          reject(new Error(`${describe()} did not exit within ${timeoutMs} ms of ${signal}`));
        }, timeoutMs);
      });
      try {
        return await Promise.race([exited, late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
  spawned.add(service);
  void exited.then(() => spawned.delete(service));
  return service;
}

/** Runs a command to its end (killed after `timeoutMs`) and returns its exit and output. */
export async function runService(args: readonly string[], env: Record<string, string>, timeoutMs = 30_000): Promise<Exit & { stdout: string; stderr: string }> {
  const service = spawnService(args, env);
  const timer = setTimeout(() => service.child.kill('SIGKILL'), timeoutMs);
  try {
    const exit = await service.exited;
    return { ...exit, stdout: service.stdout(), stderr: service.stderr() };
  } finally {
    clearTimeout(timer);
  }
}

/** SIGKILLs every process spawned here that still runs, and waits for them: for `after` hooks. */
export async function killAllServices(): Promise<void> {
  const running = [...spawned];
  for (const service of running) service.child.kill('SIGKILL');
  await Promise.all(running.map((service) => service.exited));
}


/** A response read to its end: status, headers and the body as text and (when it is JSON) parsed. */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/**
 * `fetch` with a deadline (a hanging server fails the test instead of hanging it) and the body read.
 * Each call opens its own connection (`Connection: close`), as a new client would.
 */
export async function http(url: string, init: RequestInit & { timeoutMs?: number } = {}): Promise<HttpAnswer> {
  const { timeoutMs = 10_000, ...rest } = init;
  const headers = new Headers(rest.headers);
  headers.set('connection', 'close');
  const response = await fetch(url, { ...rest, headers, signal: AbortSignal.timeout(timeoutMs) });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, headers: response.headers, text, json };
}

/** A request whose body is held back: in flight on the server until {@link HeldRequest.release}. */
export interface HeldRequest {
  /** Sends the rest of the body and resolves with the answer. */
  release(): Promise<{ status: number; text: string }>;
}

/**
 * Starts a POST with `form` as its multipart body but sends only the headers and the body's first
 * half, so the server holds a request in flight (e.g. across a graceful shutdown) until `release()`.
 * Resolves once the server has taken the request: it sends `Expect: 100-continue` and waits for the
 * server's `100 Continue`, which Node's HTTP server sends when it hands the request to the app.
 */
export async function holdRequest(url: string, form: FormData, headers: Record<string, string>): Promise<HeldRequest> {
  const encoded = new Response(form);
  const contentType = encoded.headers.get('content-type') ?? '';
  const body = Buffer.from(await encoded.arrayBuffer());
  const req = httpRequest(url, {
    method: 'POST',
    headers: { ...headers, 'content-type': contentType, 'content-length': String(body.length), expect: '100-continue', connection: 'close' },
    timeout: 30_000,
  });
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text }));
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('the held request got no answer within 30 s')));
    req.on('error', reject);
  });
  // Unobserved until release(): a failure before then must not be an unhandled rejection.
  answer.catch(() => undefined);
  const accepted = new Promise<void>((resolve) => req.once('continue', resolve));
  req.flushHeaders();
  await Promise.race([accepted, answer.then(() => Promise.reject(new Error('the server answered before the body was sent')))]);
  req.write(body.subarray(0, body.length >> 1));
  return {
    release: () => {
      req.end(body.subarray(body.length >> 1));
      return answer;
    },
  };
}
