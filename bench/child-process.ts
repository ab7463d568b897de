/**
 * Runs one measurement process and reads the single JSON line it prints, with a hard time limit so
 * that a point that is far slower than expected is recorded as `timeout` instead of stalling the run.
 * @module
 */
import { spawn } from 'node:child_process';

/** What became of one child process. */
export interface ChildOutcome {
  /** `ok`: exited 0 and printed a JSON object; `error`: anything else; `timeout`: killed at the limit. */
  status: 'ok' | 'error' | 'timeout';
  /** The last JSON object line of stdout, if any (also on `error`: the child reports its failure there). */
  json: Record<string, unknown> | undefined;
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** Wall-clock seconds from spawn to exit. */
  wallSeconds: number;
  /** The end of stderr, for the report when something failed. */
  stderrTail: string;
}

const STDERR_TAIL_CHARS = 2000;

/** Running children, each in its own process group (see `detached` below). */
const active = new Set<number>();

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Kills every running child's process group. A child in its own group does not get the terminal's
 * Ctrl-C, so the parent must call this when it is interrupted.
 */
export function killActiveChildren(): void {
  for (const pid of active) killGroup(pid);
  active.clear();
}

function lastJsonLine(stdout: string): Record<string, unknown> | undefined {
  const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{') && l.endsWith('}'));
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const parsed: unknown = JSON.parse(lines[i] as string);
      if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
    } catch {
      // Not JSON after all (a log line that happens to look like an object): keep looking.
    }
  }
  return undefined;
}

/**
 * Spawns `command args`, waits for it (at most `timeoutSeconds`, then SIGKILL of its process group),
 * and returns its last JSON line.
 */
export function runJsonChild(
  command: string,
  args: readonly string[],
  options: { timeoutSeconds: number; cwd: string; env?: NodeJS.ProcessEnv },
): Promise<ChildOutcome> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(command, [...args], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so that the time limit also ends what it started (tsx's esbuild).
      detached: true,
    });
    const pid = child.pid;
    if (pid !== undefined) active.add(pid);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-STDERR_TAIL_CHARS);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      if (pid !== undefined) killGroup(pid);
    }, options.timeoutSeconds * 1000);
    let settled = false;
    const finish = (exitCode: number | null, signal: NodeJS.Signals | null, extra = ''): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (pid !== undefined) active.delete(pid);
      const json = lastJsonLine(stdout);
      const status = timedOut ? 'timeout' : exitCode === 0 && json !== undefined ? 'ok' : 'error';
      resolve({
        status,
        json,
        exitCode,
        signal,
        wallSeconds: (performance.now() - started) / 1000,
        stderrTail: (stderr + extra).trim(),
      });
    };
    child.on('error', (error) => finish(null, null, `\n${error.message}`));
    child.on('close', (code, signal) => finish(code, signal));
  });
}
