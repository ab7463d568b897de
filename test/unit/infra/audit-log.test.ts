import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AuditLog, type AuditRecord } from '../../../src/infra/audit-log.ts';

const sha = (text: string) => createHash('sha256').update(text).digest('hex');

function record(i: number): AuditRecord {
  return {
    time: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)),
    keyId: i % 2 === 0 ? 'pacs' : 'lab.ci',
    route: 'POST /v1/predict',
    inputSha256: Array.from({ length: (i % 3) + 1 }, (_, j) => sha(`image-${i}-${j}`)),
    model: { id: 'exp1-cnn', version: 3 },
    status: i % 5 === 0 ? 503 : 200,
    ...(i % 5 === 0 ? { code: 'QUEUE_FULL' as const } : {}),
    durationMs: 10 + i / 7,
  };
}

async function readLines(file: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(file, 'utf8');
  assert.ok(text.endsWith('\n'));
  return text
    .slice(0, -1)
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('AuditLog', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'audit-log-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes 200 concurrent appends as 200 whole, parseable lines (folder created on first use, mode 0600)', async () => {
    const file = path.join(dir, 'audit', 'predictions.jsonl');
    const log = new AuditLog(file);
    await Promise.all(Array.from({ length: 200 }, (_, i) => log.append(record(i))));
    await log.close();
    const lines = await readLines(file);
    assert.equal(lines.length, 200);
    assert.deepEqual(
      lines.map((line) => line.time),
      Array.from({ length: 200 }, (_, i) => new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i)).toISOString()),
      'appends keep their call order',
    );
    assert.deepEqual(lines[5], {
      time: '2026-01-01T00:00:00.005Z',
      keyId: 'lab.ci',
      route: 'POST /v1/predict',
      inputSha256: [sha('image-5-0'), sha('image-5-1'), sha('image-5-2')],
      model: { id: 'exp1-cnn', version: 3 },
      status: 503,
      code: 'QUEUE_FULL',
      durationMs: 10.714,
    });
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  it('appends to an existing file and never truncates it', async () => {
    const file = path.join(dir, 'append.jsonl');
    const first = new AuditLog(file);
    await first.append(record(1));
    await first.close();
    const second = new AuditLog(file);
    await second.append({ ...record(2), keyId: null, model: null, status: 401, code: 'UNAUTHENTICATED' });
    await second.close();
    const lines = await readLines(file);
    assert.deepEqual(lines.map((l) => [l.keyId, l.status]), [['lab.ci', 200], [null, 401]]);
    assert.equal(lines[1]?.model, null);
  });

  it('refuses free-form data in any field and writes nothing for such a record', async () => {
    const file = path.join(dir, 'strict.jsonl');
    const log = new AuditLog(file);
    const bad: Array<[string, AuditRecord]> = [
      ['route', { ...record(0), route: 'POST /v1/predict?name=Jane Doe' }],
      ['route', { ...record(0), route: 'jane_doe_wrist.png' }],
      ['keyId', { ...record(0), keyId: 'Jane Doe' }],
      ['inputSha256', { ...record(0), inputSha256: ['jane_doe_wrist.png'] }],
      ['model.id', { ...record(0), model: { id: '../Jane Doe', version: 1 } }],
      ['model.version', { ...record(0), model: { id: 'm1', version: 'Jane Doe' } }],
      ['status', { ...record(0), status: 42 }],
      ['code', { ...record(0), code: 'Jane Doe' as never }],
      ['durationMs', { ...record(0), durationMs: Number.NaN }],
      ['time', { ...record(0), time: 'yesterday' }],
    ];
    for (const [field, value] of bad) {
      await assert.rejects(log.append(value), (error: Error) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, new RegExp(`^audit record: ${field.replace('.', '\\.')} must be`));
        assert.ok(!error.message.includes('Jane'), 'the bad value is not echoed');
        return true;
      });
    }
    // extra properties smuggled past the type are dropped, not written
    await log.append({ ...record(0), patientName: 'Jane Doe', fileName: 'jane.png' } as AuditRecord);
    await log.close();
    const text = await readFile(file, 'utf8');
    assert.equal(text.split('\n').length - 1, 1);
    assert.ok(!text.includes('Jane') && !text.includes('jane'));
  });

  it('keeps a reserve file of the configured size beside the log once prepared, and none with 0', async () => {
    const log = new AuditLog(path.join(dir, 'reserve', 'predictions.jsonl'), { reserveBytes: 64 * 1024 });
    await log.prepare();
    assert.equal((await stat(log.reserveFile)).size, 64 * 1024);
    await log.append(record(1));
    assert.equal((await stat(log.reserveFile)).size, 64 * 1024, 'appends with room leave the reserve alone');
    await log.close();
    const none = new AuditLog(path.join(dir, 'no-reserve', 'predictions.jsonl'), { reserveBytes: 0 });
    await none.prepare();
    await assert.rejects(stat(none.reserveFile), { code: 'ENOENT' });
    await none.close();
  });

  it('rejects appends after close', async () => {
    const log = new AuditLog(path.join(dir, 'closed.jsonl'));
    await log.close();
    await assert.rejects(log.append(record(0)), /closed/);
  });
});
