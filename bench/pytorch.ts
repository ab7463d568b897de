/**
 * The PyTorch CPU reference, measured in the same run as ours so the ratio is measured, not
 * remembered: runs bench/pytorch-reference.py with Debian's /usr/bin/python3 (PyTorch 1.13 CPU,
 * 2 threads), one process per architecture and size, never alongside one of our measurements.
 * @module
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { runJsonChild, type ChildOutcome } from './child-process.ts';
import type { PytorchPoint } from './plan.ts';

/** Debian's interpreter, where `apt-get install python3-torch python3-torchvision` puts PyTorch. */
export const PYTHON = '/usr/bin/python3';

/** Whether PyTorch can run, and its versions (or why not). */
export interface PytorchAvailability {
  available: boolean;
  torch?: string;
  torchvision?: string;
  /** Why the reference is skipped, when it is. */
  note?: string;
}

/** Checks that {@link PYTHON} imports torch and torchvision. */
export function detectPytorch(): PytorchAvailability {
  const probe = spawnSync(
    PYTHON,
    ['-c', 'import json, torch, torchvision; print(json.dumps([torch.__version__, torchvision.__version__]))'],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (probe.error !== undefined || probe.status !== 0) {
    const reason = probe.error?.message ?? probe.stderr.trim().split('\n').at(-1) ?? `exit code ${probe.status}`;
    return {
      available: false,
      note: `PyTorch reference skipped: ${PYTHON} cannot import torch/torchvision (${reason}). ` +
        'Install with: apt-get install -y python3-torch python3-torchvision',
    };
  }
  const [torch, torchvision] = JSON.parse(probe.stdout.trim()) as [string, string];
  return { available: true, torch, torchvision };
}

/** One PyTorch measurement: images/s of inference and training at one (arch, size). */
export interface PytorchResult {
  arch: string;
  size: number;
  status: ChildOutcome['status'];
  inferImagesPerSecond?: number;
  trainImagesPerSecond?: number;
  wallSeconds: number;
  error?: string;
  /** With --repeat > 1: every run (the record holds the fastest inference and training of them). */
  runs?: { status: string; imagesPerSecond?: number; trainImagesPerSecond?: number }[];
}

/** Runs the reference script for one point. */
export async function runPytorch(
  point: PytorchPoint,
  options: { repoRoot: string; batch: number; threads: number; seconds: number; numClasses: number; timeoutSeconds: number },
): Promise<PytorchResult> {
  const args = [
    path.join(options.repoRoot, 'bench', 'pytorch-reference.py'),
    '--arch', point.arch,
    '--size', String(point.size),
    '--batch', String(options.batch),
    '--threads', String(options.threads),
    '--seconds', String(options.seconds),
    '--classes', String(options.numClasses),
    ...(point.skipTrain ? ['--skip-train'] : []),
  ];
  const outcome = await runJsonChild(PYTHON, args, { cwd: options.repoRoot, timeoutSeconds: options.timeoutSeconds });
  const json = outcome.json ?? {};
  const number = (key: string): number | undefined => (typeof json[key] === 'number' ? json[key] : undefined);
  const result: PytorchResult = {
    arch: point.arch,
    size: point.size,
    status: outcome.status,
    wallSeconds: outcome.wallSeconds,
  };
  const infer = number('inferenceImagesPerSecond');
  const train = number('trainImagesPerSecond');
  if (infer !== undefined) result.inferImagesPerSecond = infer;
  if (train !== undefined) result.trainImagesPerSecond = train;
  if (outcome.status !== 'ok') {
    result.error = outcome.status === 'timeout'
      ? `timed out after ${options.timeoutSeconds} s`
      : outcome.stderrTail.split('\n').slice(-3).join(' | ');
  }
  return result;
}
