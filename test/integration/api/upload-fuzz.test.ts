/**
 * Property-based fuzzing of `POST /v1/predict` with fast-check (fixed seed, so every run sends the
 * same inputs): real radiographs (two JPEGs, two PNGs made from them) mutated by byte flips at random
 * offsets, truncations, insertions, chunk duplications and header corruptions, sent as a multipart
 * image or as JSON base64. Property: every answer is 200 with one prediction, or a 4xx problem
 * document whose code is in the catalogue with its status; never a 5xx. Afterwards the API still
 * predicts, and the process's RSS grew by less than 300 MB.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import sharp from 'sharp';
import { ERROR_CATALOG } from '../../../src/infra/errors.ts';
import { SKIP_WITHOUT_XRAYS, multipartBody, readXrays, startApiFixture, type ApiFixture } from './api-fixture.ts';
import { rssMb } from './hostile-inputs.ts';

const SEED = 20_261_204;
const RUNS = 300;
const RSS_GROWTH_LIMIT_MB = 300;

/** One change to the bytes; positions are fractions of the current length, so they fit any file. */
type Mutation =
  | { kind: 'flip'; at: number; xor: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'header'; offset: number; value: number };

// Unbiased: fast-check otherwise favours 0, i.e. the signature, and most mutants would never reach the decoder.
const fraction = fc.noBias(fc.double({ min: 0, max: 1, noNaN: true, maxExcluded: true }));
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fraction, xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fraction }),
  fc.record({ kind: fc.constant('insert' as const), at: fraction, bytes: fc.uint8Array({ minLength: 1, maxLength: 256 }) }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fraction, length: fc.integer({ min: 1, max: 4096 }) }),
  // The first 64 bytes hold the signatures, IHDR / APP0 / the first segment lengths.
  fc.record({ kind: fc.constant('header' as const), offset: fc.integer({ min: 0, max: 63 }), value: fc.integer({ min: 0, max: 255 }) }),
);

function mutate(source: Buffer, mutations: readonly Mutation[]): Buffer {
  let data = Buffer.from(source);
  for (const m of mutations) {
    // Positions past the 8 signature bytes: `header` is the mutation that corrupts those.
    const at = 'at' in m ? Math.min(data.length, 8 + Math.floor(m.at * Math.max(0, data.length - 8))) : 0;
    switch (m.kind) {
      case 'flip':
        if (data.length > 0) data[at] = (data[at] ?? 0) ^ m.xor;
        break;
      case 'truncate':
        data = data.subarray(0, at);
        break;
      case 'insert':
        data = Buffer.concat([data.subarray(0, at), m.bytes, data.subarray(at)]);
        break;
      case 'duplicate':
        data = Buffer.concat([data.subarray(0, at + m.length), data.subarray(at)]);
        break;
      case 'header':
        if (m.offset < data.length) data[m.offset] = m.value;
        break;
    }
  }
  return data;
}

describe('fuzzed uploads to /v1/predict', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let fx: ApiFixture;
  let sources: Buffer[];

  before(async () => {
    fx = await startApiFixture({
      settings: {
        RATE_LIMIT_PER_MINUTE: '100000',
        // A corrupted header may declare a large image: keep what a mutant may ask sharp to decode small.
        IMAGE_MAX_PIXELS: String(16_000_000),
        PREDICT_MAX_FILE_BYTES: String(4 * 1024 * 1024),
      },
    });
    const jpegs = await readXrays(2, 7);
    const pngs = await Promise.all(jpegs.map((jpeg) => sharp(jpeg).resize(256).png().toBuffer()));
    sources = [...jpegs, ...pngs];
  });

  after(async () => {
    await fx?.close();
  });

  const send = async (data: Buffer, asJson: boolean) => {
    if (asJson) {
      return fx.app.inject({
        method: 'POST',
        url: '/v1/predict',
        payload: JSON.stringify({ images: [{ data: data.toString('base64') }] }),
        headers: { ...fx.auth('predict'), 'content-type': 'application/json' },
      });
    }
    const { body, contentType } = await multipartBody([{ name: 'image', value: data, filename: 'fuzz.bin', type: 'application/octet-stream' }]);
    return fx.app.inject({ method: 'POST', url: '/v1/predict', payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } });
  };

  it(`answers ${RUNS} mutated radiographs with 200 or a 4xx problem document (seed ${SEED})`, async (t) => {
    // Warm-up: the first prediction loads the model; RSS is measured from here.
    assert.equal((await send(sources[0] as Buffer, false)).statusCode, 200);
    const rssBefore = rssMb();
    const statuses = new Map<string, number>();
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: sources.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 3 }),
        async (which, mutations, transport) => {
          const data = mutate(sources[which] as Buffer, mutations);
          const response = await send(data, transport === 0);
          if (response.statusCode === 200) {
            const body = response.json<{ predictions: unknown[] }>();
            assert.equal(body.predictions.length, 1);
            statuses.set('200', (statuses.get('200') ?? 0) + 1);
            return;
          }
          assert.ok(response.statusCode >= 400 && response.statusCode < 500, `status ${response.statusCode}: ${response.body}`);
          assert.match(String(response.headers['content-type']), /^application\/problem\+json/);
          const problem = response.json<{ code: keyof typeof ERROR_CATALOG; status: number }>();
          assert.ok(problem.code in ERROR_CATALOG, `code ${problem.code} is not in the catalogue`);
          assert.equal(ERROR_CATALOG[problem.code].status, response.statusCode);
          assert.equal(problem.status, response.statusCode);
          statuses.set(problem.code, (statuses.get(problem.code) ?? 0) + 1);
        },
      ),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );
    const elapsed = performance.now() - started;
    const grown = rssMb() - rssBefore;
    t.diagnostic(`runs ${RUNS} in ${(elapsed / 1000).toFixed(1)} s; outcomes ${JSON.stringify(Object.fromEntries(statuses))}`);
    t.diagnostic(`RSS growth ${grown.toFixed(0)} MB`);
    // The fuzzing really reached the decoder: both outcomes occur.
    assert.ok((statuses.get('200') ?? 0) > 0, 'no mutant was accepted');
    assert.ok([...statuses.keys()].some((key) => key.startsWith('IMAGE_')), 'no mutant was refused by the decoder');
    assert.ok(grown < RSS_GROWTH_LIMIT_MB, `RSS grew by ${grown.toFixed(0)} MB`);
    // The service is still alive and predicting.
    assert.equal((await send(sources[3] as Buffer, true)).statusCode, 200);
    assert.equal((await fx.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200);
  });
});
