import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { createLogger, fastifyLoggerOptions, pathOnly, REDACTED } from '../../../src/infra/logger.ts';

/** A destination that keeps every line pino writes. */
function collector(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString('utf8'));
      callback();
    },
  });
  const text = () => chunks.join('');
  const lines = () =>
    text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { stream, lines, text };
}

const SECRET = 'sk-test-9f8e7d6c5b4a39281706';
const PATIENT = 'Jane Q. Roentgen';
const FILE_NAME = 'roentgen_jane_left_wrist.png';

describe('createLogger', () => {
  it('keeps the Authorization header, body, patient name and query string of a request out of every line', async () => {
    const out = collector();
    const app = Fastify({ ...fastifyLoggerOptions(createLogger({ level: 'info', name: 'api', destination: out.stream })) });
    app.post('/v1/things/:id', async (request) => {
      // a careless handler that logs everything it has
      request.log.info({ req: request, body: request.body, headers: request.headers, upload: { filename: FILE_NAME } }, 'handling');
      request.log.info({ request: { raw: { body: request.body } }, patientName: PATIENT }, 'deeper');
      return { ok: true };
    });
    const response = await app.inject({
      method: 'POST',
      url: `/v1/things/abc123?patient=${encodeURIComponent(PATIENT)}`,
      headers: { authorization: `Bearer ${SECRET}`, cookie: `session=${SECRET}` },
      payload: { patientName: PATIENT, note: `x-ray of ${PATIENT}`, image: 'aGVsbG8=' },
    });
    assert.equal(response.statusCode, 200);
    await app.close();

    const text = out.text();
    assert.ok(!text.includes(SECRET), 'the secret leaked');
    assert.ok(!text.includes('Roentgen'), 'the patient name leaked');
    assert.ok(!text.includes(FILE_NAME), 'the file name leaked');
    assert.ok(!text.includes('aGVsbG8='), 'the body leaked');

    const lines = out.lines();
    const handling = lines.find((line) => line.msg === 'handling');
    assert.ok(handling, 'the handler line was written');
    assert.deepEqual(handling.req, { id: handling.reqId, method: 'POST', url: '/v1/things/abc123', route: '/v1/things/:id' });
    assert.equal(handling.body, REDACTED);
    assert.equal((handling.headers as Record<string, unknown>).authorization, REDACTED);
    assert.equal((handling.upload as Record<string, unknown>).filename, REDACTED);
    assert.equal(handling.name, 'api');
    assert.equal(handling.level, 'info');
    const completed = lines.find((line) => line.msg === 'request completed');
    assert.deepEqual(completed?.res, { statusCode: 200 });
    const incoming = lines.find((line) => line.msg === 'incoming request');
    assert.equal((incoming?.req as Record<string, unknown>).url, '/v1/things/abc123');
  });

  it('logs an error with its type, code, message, stack and cause, but not its other properties', () => {
    const out = collector();
    const log = createLogger({ level: 'info', destination: out.stream });
    const cause = Object.assign(new Error("ENOENT: no such file"), { code: 'ENOENT', path: `/uploads/${FILE_NAME}` });
    const error = Object.assign(new Error('model files unreadable', { cause }), { code: 'MODEL_CORRUPT', status: 500, extensions: { data: PATIENT } });
    log.error({ err: error }, 'failed');
    const [line] = out.lines();
    const err = line?.err as Record<string, unknown>;
    assert.equal(err.type, 'Error');
    assert.equal(err.code, 'MODEL_CORRUPT');
    assert.equal(err.status, 500);
    assert.equal(err.message, 'model files unreadable');
    assert.match(String(err.stack), /logger\.test\.ts/);
    assert.equal((err.cause as Record<string, unknown>).code, 'ENOENT');
    assert.ok(!out.text().includes(FILE_NAME));
    assert.ok(!out.text().includes('Roentgen'));
  });

  it('censors patient fields and credentials at any depth, in arrays too, without touching the logged object', () => {
    const out = collector();
    const log = createLogger({ level: 'info', destination: out.stream });
    const study = { series: [{ instances: [{ meta: { PatientBirthDate: '19700101', patientSex: 'F', PatientName: PATIENT, rows: 512 } }] }] };
    const job = { data: { deep: { deeper: { Authorization: `Bearer ${SECRET}`, originalName: FILE_NAME } } } };
    log.info({ study, job }, 'received');
    const text = out.text();
    for (const leaked of [PATIENT, '19700101', SECRET, FILE_NAME]) assert.ok(!text.includes(leaked), `${leaked} leaked`);
    const [line] = out.lines();
    const meta = (line as { study: typeof study }).study.series[0]?.instances[0]?.meta;
    assert.deepEqual(meta, { PatientBirthDate: REDACTED, patientSex: REDACTED, PatientName: REDACTED, rows: 512 });
    assert.equal(study.series[0]?.instances[0]?.meta.PatientName, PATIENT, 'the caller object is not modified');
  });

  it('writes nothing below its level', () => {
    const out = collector();
    const log = createLogger({ level: 'warn', destination: out.stream });
    log.info('quiet');
    log.warn('loud');
    assert.deepEqual(out.lines().map((line) => line.msg), ['loud']);
  });
});

describe('pathOnly', () => {
  it('drops the query string and fragment', () => {
    assert.equal(pathOnly('/v1/predict?model=x&name=y'), '/v1/predict');
    assert.equal(pathOnly('/docs#/default'), '/docs');
    assert.equal(pathOnly('/healthz'), '/healthz');
  });
});
