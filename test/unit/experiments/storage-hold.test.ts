import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { SandboxedJob } from 'bullmq';
import { holdForStorage } from '../../../src/workers/storage-hold.ts';

describe('holdForStorage', () => {
  it('moves the job to the delayed set for the retry interval and returns the error that keeps it there', async () => {
    const calls: { timestamp: number; token: string | undefined }[] = [];
    const job = { moveToDelayed: async (timestamp: number, token?: string) => void calls.push({ timestamp, token }) } as unknown as SandboxedJob;
    const before = Date.now();
    const error = await holdForStorage(job, 'lock-token', 30_000);
    assert.equal(error.name, 'DelayedError', 'BullMQ recognises the error by its name, also from a sandbox thread');
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.token, 'lock-token');
    assert.ok((calls[0]?.timestamp ?? 0) >= before + 30_000 && (calls[0]?.timestamp ?? 0) <= Date.now() + 30_000);
  });

  it('returns a plain error, and moves nothing, for a job without a lock token', async () => {
    const job = { moveToDelayed: async () => assert.fail('not moved') } as unknown as SandboxedJob;
    const error = await holdForStorage(job, undefined, 1_000);
    assert.notEqual(error.name, 'DelayedError');
    assert.match(error.message, /INSUFFICIENT_STORAGE/);
  });
});
