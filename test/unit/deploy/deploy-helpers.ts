/**
 * Shared by the deployment tests: the repository's deployment files, compose-style variable
 * interpolation and durations, the CLI's commands, and a runner for health-check commands against a
 * real local HTTP server.
 * @module
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** A file of the repository, as text. */
export function readRepoFile(relativePath: string): string {
  return readFileSync(path.join(REPO_ROOT, relativePath), 'utf8');
}

/**
 * Compose-file interpolation (`$$`, `$NAME`, `${NAME}`, `${NAME:-default}`, `${NAME-default}`,
 * `${NAME:?error}`, `${NAME?error}`, `${NAME:+alt}`, `${NAME+alt}`), applied to every string in `value`.
 * @throws Error with the file's own message when a required variable is missing, as compose fails.
 */
export function interpolate<T>(value: T, variables: Record<string, string | undefined>): T {
  if (typeof value === 'string') return interpolateString(value, variables) as T;
  if (Array.isArray(value)) return value.map((item: unknown) => interpolate(item, variables)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, variables)])) as T;
  }
  return value;
}

function interpolateString(text: string, variables: Record<string, string | undefined>): string {
  return text.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (match, name: string | undefined, colon: string | undefined, operator: string | undefined, word: string | undefined, bare: string | undefined) => {
      if (match === '$$') return '$';
      const key = name ?? bare ?? '';
      const value = variables[key];
      const missing = value === undefined || (colon === ':' && value === '');
      switch (operator) {
        case '-':
          return missing ? (word ?? '') : (value ?? '');
        case '?':
          if (missing) throw new Error(`required variable ${key} is missing a value: ${word ?? ''}`);
          return value ?? '';
        case '+':
          return missing ? '' : (word ?? '');
        default:
          return value ?? '';
      }
    },
  );
}

/** A compose duration (`30s`, `1m30s`, `500ms`, `1h`) in milliseconds. */
export function durationMs(duration: string): number {
  const unit: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, ns: 0.000001 };
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|us|ns|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== duration) throw new Error(`not a duration: ${duration}`);
  return parts.reduce((total, part) => total + Number(part[1]) * (unit[part[2] ?? ''] ?? Number.NaN), 0);
}

/** The CLI's commands and each one's long options, from `createProgram()` in src/cli/main.ts. */
export async function cliCommands(): Promise<Map<string, string[]>> {
  const { createProgram } = await import('../../../src/cli/main.ts');
  return new Map(createProgram().commands.map((command) => [command.name(), command.options.map((option) => option.long ?? '')]));
}

/**
 * Checks `argv` (a service's `command`, or an image's `CMD`) against the CLI: its first word is a
 * command and every `--option` is one of that command's options.
 * @returns a problem description, or null when the CLI accepts it.
 */
export function cliProblem(commands: Map<string, string[]>, argv: readonly string[]): string | null {
  const [name, ...rest] = argv;
  const options = commands.get(name ?? '');
  if (!options) return `'${name ?? ''}' is not a fracture-service command (${[...commands.keys()].join(', ')})`;
  const unknown = rest.filter((word) => word.startsWith('--')).map((word) => word.split('=')[0] ?? word).filter((word) => !options.includes(word));
  return unknown.length > 0 ? `'${name ?? ''}' has no option ${unknown.join(', ')}` : null;
}

/** A local HTTP server answering `routes` (path to status); 404 for anything else. */
export async function startStubServer(routes: Record<string, number>): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((request, response) => {
    const status = routes[request.url?.split('?')[0] ?? ''] ?? 404;
    response.writeHead(status, { 'content-type': 'text/plain', connection: 'close' }).end(`${status}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port nothing listens on (bound, read, released). */
export async function freePort(): Promise<number> {
  const probe = await startStubServer({});
  await probe.close();
  return probe.port;
}

/**
 * Runs a health-check command the way the container would, with this Node for its `node` and
 * `env` as its environment. Only `node -e <script>` commands can run here (no shell tools).
 * @returns the exit code.
 */
export async function runNodeHealthcheck(argv: readonly string[], env: Record<string, string>): Promise<number> {
  const [node, flag, script, ...extra] = argv;
  if (node !== 'node' || flag !== '-e' || script === undefined || extra.length > 0) throw new Error(`not a 'node -e <script>' command: ${argv.join(' ')}`);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 }, (error) => {
      if (error === null) resolve(0);
      else if (typeof error.code === 'number') resolve(error.code);
      else reject(error);
    });
  });
}
