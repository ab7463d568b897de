/**
 * Hostile uploads to `POST /v1/predict` and `POST /v1/datasets` on the real API (real sharp, a really
 * trained production model): empty, text, truncated and random-bodied JPEG/PNG, a PNG decompression
 * bomb, headers declaring 100000x100000 pixels, SVG/GIF/WebP/TIFF, a file over the size limit,
 * hundreds of parts, file names with `../`, NUL and a patient name, malformed JSON, bad base64, no
 * images, wrong content types. Each must get a 4xx `application/problem+json` with its stable
 * catalogue code in well under a second, the patient-like name must appear nowhere in the answer,
 * and the whole set must not grow the process's RSS by more than 200 MB. Legitimate radiographs
 * (16-bit, grey, RGBA, EXIF-rotated, a 4000x3000 scan, a PNG sent under a JPEG name) must answer 200.
 */
import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { ERROR_CATALOG } from '../../../src/infra/errors.ts';
import { SKIP_WITHOUT_XRAYS, multipartBody, readXrays, startApiFixture, type ApiFixture } from './api-fixture.ts';
import { pngBomb, pseudoRandomBytes, rawMultipart, rssMb, withJpegSize, withPngSize, type Refusal } from './hostile-inputs.ts';

/** Small limits, so "too large" is cheap to send. */
const MAX_FILE_BYTES = 6 * 1024 * 1024;
const MAX_DATASET_BYTES = 1024 * 1024;
const MAX_FILES = 32;
/** A name a PACS export might use: it must never come back. */
const CANARY = 'DOE^JANE 1961-03-04 MRN-4711';
const LATENCY_LIMIT_MS = 1000;
const RSS_GROWTH_LIMIT_MB = 200;

interface Request {
  url: string;
  payload: Buffer | string;
  headers: Record<string, string>;
}

interface HostileCase {
  name: string;
  build: () => Promise<Request> | Request;
  expect: Refusal;
  /**
   * A known bug outside the files of these tests, reported and awaiting its fix: the case runs as a
   * `todo` and is counted apart. Remove the flag once the fix lands.
   */
  knownIssue?: string;
}

/** The multipart parser's code-less errors become 500 outside /v1/predict (fix: src/api/problem-handler.ts). */

const refusal = (code: keyof typeof ERROR_CATALOG): Refusal => ({ code, status: ERROR_CATALOG[code].status });

describe('hostile uploads', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let fx: ApiFixture;
  let jpeg: Buffer;
  let png: Buffer;
  let rssBefore = 0;
  const tried: string[] = [];
  const mishandled: string[] = [];
  const known: string[] = [];
  const latencies: number[] = [];
  /** RSS growth (MB) across each case, to name the costly ones when the bound is approached. */
  const rssSteps: { name: string; mb: number }[] = [];

  before(async () => {
    fx = await startApiFixture({
      settings: {
        PREDICT_MAX_FILE_BYTES: String(MAX_FILE_BYTES),
        PREDICT_MAX_FILES: String(MAX_FILES),
        DATASET_MAX_UPLOAD_BYTES: String(MAX_DATASET_BYTES),
        RATE_LIMIT_PER_MINUTE: '100000',
      },
    });
    const [xray] = await readXrays(1);
    assert.ok(xray);
    jpeg = xray;
    png = await sharp(xray).png().toBuffer();
    // Warm the predictor and sharp once, so the RSS baseline is not the first model load.
    const warm = await multipart([{ name: 'image', value: jpeg, filename: 'warm.jpg', type: 'image/jpeg' }]);
    assert.equal((await fx.app.inject({ method: 'POST', ...warm })).statusCode, 200);
    rssBefore = rssMb();
  });

  after(async () => {
    await fx?.close();
  });

  const predictAuth = (): Record<string, string> => fx.auth('predict');
  const multipart = async (parts: Parameters<typeof multipartBody>[0]): Promise<Request> => {
    const { body, contentType } = await multipartBody(parts);
    return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
  };
  const imagePart = async (value: Uint8Array, filename = 'upload.jpg', type = 'image/jpeg'): Promise<Request> =>
    multipart([{ name: 'image', value, filename, type }]);
  const json = (body: string): Request => ({ url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': 'application/json' } });
  const dataset = (payload: Buffer | string, contentType: string, id = 'hostile'): Request => ({
    url: `/v1/datasets?id=${id}`,
    payload,
    headers: { ...fx.auth('train'), 'content-type': contentType },
  });

  /** Sends one hostile request; every broken rule is collected, so the summary can count them. */
  const check = async (hostile: HostileCase): Promise<void> => {
    tried.push(hostile.name);
    const rssAtStart = rssMb();
    const request = await hostile.build();
    const started = performance.now();
    const response = await fx.app.inject({ method: 'POST', ...request });
    const elapsed = performance.now() - started;
    latencies.push(elapsed);
    rssSteps.push({ name: hostile.name, mb: rssMb() - rssAtStart });
    const problems: string[] = [];
    const contentType = String(response.headers['content-type'] ?? '');
    let body: { code?: unknown; status?: unknown; detail?: unknown } = {};
    try {
      body = JSON.parse(response.body) as typeof body;
    } catch {
      problems.push('the body is not JSON');
    }
    if (response.statusCode !== hostile.expect.status) problems.push(`status ${response.statusCode}, expected ${hostile.expect.status}`);
    if (!contentType.startsWith('application/problem+json')) problems.push(`content type ${contentType}`);
    if (body.code !== hostile.expect.code) problems.push(`code ${String(body.code)}, expected ${hostile.expect.code}`);
    if (body.status !== response.statusCode) problems.push('the document\'s status differs from the HTTP status');
    if (typeof body.code === 'string' && !(body.code in ERROR_CATALOG)) problems.push(`code ${body.code} is not in the catalogue`);
    if (elapsed >= LATENCY_LIMIT_MS) problems.push(`answered in ${elapsed.toFixed(0)} ms`);
    const everything = JSON.stringify(response.headers) + response.body;
    if (everything.includes('DOE^JANE') || everything.includes('MRN-4711') || everything.includes('etc/passwd')) {
      problems.push('the response repeats the client file name');
    }
    if (problems.length > 0) (hostile.knownIssue === undefined ? mishandled : known).push(`${hostile.name}: ${problems.join('; ')}`);
    assert.deepEqual(problems, [], `${hostile.name} (detail: ${String(body.detail)})`);
  };

  const predictCases = (): HostileCase[] => [
    { name: 'empty file', build: () => imagePart(Buffer.alloc(0)), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    { name: 'text file named .png', build: () => imagePart(Buffer.from('hello, I am not an image\n'.repeat(40)), 'x.png', 'image/png'), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    { name: 'truncated JPEG (first half)', build: () => imagePart(jpeg.subarray(0, jpeg.length >> 1)), expect: refusal('IMAGE_UNDECODABLE') },
    { name: 'truncated JPEG (header only)', build: () => imagePart(jpeg.subarray(0, 700)), expect: refusal('IMAGE_UNDECODABLE') },
    { name: 'truncated PNG (first half)', build: () => imagePart(png.subarray(0, png.length >> 1), 'x.png', 'image/png'), expect: refusal('IMAGE_UNDECODABLE') },
    { name: 'truncated PNG (signature and IHDR)', build: () => imagePart(png.subarray(0, 33), 'x.png', 'image/png'), expect: refusal('IMAGE_UNDECODABLE') },
    {
      name: 'random bytes behind a JPEG signature',
      build: () => imagePart(Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0]), pseudoRandomBytes(64 * 1024, 'jpeg')])),
      expect: refusal('IMAGE_UNDECODABLE'),
    },
    {
      name: 'random bytes behind a PNG signature',
      build: () => imagePart(Buffer.concat([png.subarray(0, 8), pseudoRandomBytes(64 * 1024, 'png')]), 'x.png', 'image/png'),
      expect: refusal('IMAGE_UNDECODABLE'),
    },
    {
      name: 'random bytes behind a PNG signature and a valid IHDR',
      build: () => imagePart(Buffer.concat([png.subarray(0, 33), pseudoRandomBytes(64 * 1024, 'png-ihdr')]), 'x.png', 'image/png'),
      expect: refusal('IMAGE_UNDECODABLE'),
    },
    { name: 'PNG decompression bomb 20000x20000', build: async () => imagePart(await pngBomb(20_000, 20_000), 'x.png', 'image/png'), expect: refusal('IMAGE_TOO_LARGE') },
    { name: 'PNG header declaring 100000x100000', build: () => imagePart(withPngSize(png, 100_000, 100_000), 'x.png', 'image/png'), expect: refusal('IMAGE_TOO_LARGE') },
    { name: 'JPEG SOF declaring 60000x60000', build: () => imagePart(withJpegSize(jpeg, 60_000, 60_000)), expect: refusal('IMAGE_TOO_LARGE') },
    { name: 'JPEG SOF declaring 65535x65535 (beyond libjpeg)', build: () => imagePart(withJpegSize(jpeg, 65_535, 65_535)), expect: refusal('IMAGE_TOO_LARGE') },
    {
      name: 'SVG named .png',
      build: () =>
        imagePart(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"><rect width="100%" height="100%"/></svg>'), 'x.png', 'image/png'),
      expect: refusal('IMAGE_TYPE_UNSUPPORTED'),
    },
    { name: 'GIF', build: async () => imagePart(await sharp(jpeg).resize(64).gif().toBuffer(), 'x.jpg'), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    { name: 'WebP', build: async () => imagePart(await sharp(jpeg).resize(64).webp().toBuffer(), 'x.jpg'), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    { name: 'TIFF', build: async () => imagePart(await sharp(jpeg).resize(64).tiff().toBuffer(), 'x.jpg'), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    {
      name: 'file over PREDICT_MAX_FILE_BYTES',
      // Content does not matter past the limit; filler keeps the test's own allocations small.
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'image', value: Buffer.concat([jpeg, Buffer.alloc(MAX_FILE_BYTES, 0x5a)]), filename: 'big.jpg', type: 'image/jpeg' }]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('PAYLOAD_TOO_LARGE'),
    },
    {
      name: '500 tiny image parts',
      build: () => {
        const { body, contentType } = rawMultipart(Array.from({ length: 500 }, (_, i) => ({ name: 'image', value: Buffer.from([0xff, 0xd8, 0xff]), filename: `${i}.jpg` })));
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('TOO_MANY_FILES'),
    },
    {
      name: '500 tiny fields',
      build: () => {
        const { body, contentType } = rawMultipart([
          { name: 'image', value: jpeg, filename: 'a.jpg', type: 'image/jpeg' },
          ...Array.from({ length: 500 }, () => ({ name: 'model', value: 'production' })),
        ]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('TOO_MANY_FILES'),
    },
    {
      name: 'file name with ../, NUL and a patient name, text content',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'image', value: Buffer.from('not an image'), filename: `../../etc/passwd\0${CANARY}.jpg`, type: 'image/jpeg' }]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('IMAGE_TYPE_UNSUPPORTED'),
    },
    {
      name: 'file name with ../, NUL and a patient name, truncated JPEG',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'image', value: jpeg.subarray(0, 2000), filename: `..\\..\\${CANARY}\0.jpg`, type: 'image/jpeg' }]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('IMAGE_UNDECODABLE'),
    },
    {
      name: 'patient name in a file field other than image',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: CANARY, value: jpeg, filename: `${CANARY}.jpg`, type: 'image/jpeg' }]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('VALIDATION_FAILED'),
    },
    {
      name: 'multipart without its closing boundary',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'image', value: jpeg, filename: 'a.jpg', type: 'image/jpeg' }]);
        return { url: '/v1/predict', payload: body.subarray(0, body.length - 40), headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('BODY_INVALID'),
    },
    {
      name: 'multipart without a boundary',
      build: () => ({ url: '/v1/predict', payload: 'whatever', headers: { ...predictAuth(), 'content-type': 'multipart/form-data' } }),
      expect: refusal('UNSUPPORTED_MEDIA_TYPE'),
    },
    {
      name: 'multipart with no part',
      build: () => {
        const { body, contentType } = rawMultipart([]);
        return { url: '/v1/predict', payload: body, headers: { ...predictAuth(), 'content-type': contentType } };
      },
      expect: refusal('VALIDATION_FAILED'),
    },
    { name: 'malformed JSON', build: () => json('{"images": [{"data": "abc"'), expect: refusal('BODY_INVALID') },
    { name: 'empty JSON body', build: () => json(''), expect: refusal('BODY_INVALID') },
    { name: 'JSON with bad base64', build: () => json(JSON.stringify({ images: [{ data: '!!!not*base64$$$' }] })), expect: refusal('VALIDATION_FAILED') },
    { name: 'JSON with base64 of impossible length', build: () => json(JSON.stringify({ images: [{ data: 'QUJDR' }] })), expect: refusal('VALIDATION_FAILED') },
    { name: 'JSON with base64 of text', build: () => json(JSON.stringify({ images: [{ data: Buffer.from('plain text').toString('base64') }] })), expect: refusal('IMAGE_TYPE_UNSUPPORTED') },
    {
      name: 'JSON with base64 of a truncated JPEG',
      build: () => json(JSON.stringify({ images: [{ id: 'x', data: jpeg.subarray(0, 3000).toString('base64') }] })),
      expect: refusal('IMAGE_UNDECODABLE'),
    },
    {
      name: 'JSON with base64 of a 100000x100000 PNG header',
      build: () => json(JSON.stringify({ images: [{ data: withPngSize(png, 100_000, 100_000).toString('base64') }] })),
      expect: refusal('IMAGE_TOO_LARGE'),
    },
    { name: 'JSON with 0 images', build: () => json(JSON.stringify({ images: [] })), expect: refusal('VALIDATION_FAILED') },
    { name: 'JSON with images not an array', build: () => json(JSON.stringify({ images: { data: 'AAAA' } })), expect: refusal('VALIDATION_FAILED') },
    { name: 'JSON with a patient name as unknown member', build: () => json(JSON.stringify({ images: [{ data: 'AAAA' }], [CANARY]: 1 })), expect: refusal('VALIDATION_FAILED') },
    {
      name: `JSON with ${MAX_FILES + 1} images`,
      build: () => json(JSON.stringify({ images: Array.from({ length: MAX_FILES + 1 }, () => ({ data: 'AAAA' })) })),
      expect: refusal('TOO_MANY_FILES'),
    },
    {
      name: 'JSON body over the limit',
      build: () => json(JSON.stringify({ images: [{ data: Buffer.alloc(MAX_FILE_BYTES + 512 * 1024, 0x5a).toString('base64') }] })),
      expect: refusal('PAYLOAD_TOO_LARGE'),
    },
    { name: 'text/plain body', build: () => ({ url: '/v1/predict', payload: 'image=abc', headers: { ...predictAuth(), 'content-type': 'text/plain' } }), expect: refusal('UNSUPPORTED_MEDIA_TYPE') },
    {
      name: 'application/xml body',
      build: () => ({ url: '/v1/predict', payload: '<images><image>AAAA</image></images>', headers: { ...predictAuth(), 'content-type': 'application/xml' } }),
      expect: refusal('UNSUPPORTED_MEDIA_TYPE'),
    },
    { name: 'image/jpeg body', build: () => ({ url: '/v1/predict', payload: jpeg, headers: { ...predictAuth(), 'content-type': 'image/jpeg' } }), expect: refusal('UNSUPPORTED_MEDIA_TYPE') },
  ];

  const datasetCases = (): HostileCase[] => [
    { name: 'dataset: text/plain body', build: () => dataset('PK not really', 'text/plain'), expect: refusal('UNSUPPORTED_MEDIA_TYPE') },
    { name: 'dataset: application/xml body', build: () => dataset('<zip/>', 'application/xml'), expect: refusal('UNSUPPORTED_MEDIA_TYPE') },
    { name: 'dataset: text as application/zip', build: () => dataset('this is not a zip archive\n'.repeat(20), 'application/zip'), expect: refusal('ARCHIVE_INVALID') },
    { name: 'dataset: empty application/zip', build: () => dataset(Buffer.alloc(0), 'application/zip'), expect: refusal('ARCHIVE_INVALID') },
    {
      name: 'dataset: random bytes behind a zip signature',
      build: () => dataset(Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), pseudoRandomBytes(32 * 1024, 'zip')]), 'application/zip'),
      expect: refusal('ARCHIVE_INVALID'),
    },
    {
      name: 'dataset: zip over DATASET_MAX_UPLOAD_BYTES',
      build: () => dataset(Buffer.concat([Buffer.from([0x50, 0x4b, 0x03, 0x04]), pseudoRandomBytes(MAX_DATASET_BYTES + 1024, 'zip-big')]), 'application/zip'),
      expect: refusal('PAYLOAD_TOO_LARGE'),
    },
    {
      name: 'dataset: multipart file over DATASET_MAX_UPLOAD_BYTES',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'file', value: pseudoRandomBytes(MAX_DATASET_BYTES + 1024, 'zip-mp'), filename: 'd.zip', type: 'application/zip' }]);
        return dataset(body, contentType);
      },
      expect: refusal('PAYLOAD_TOO_LARGE'),
    },
    {
      name: 'dataset: multipart in the wrong field',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'image', value: Buffer.from('PK'), filename: 'd.zip', type: 'application/zip' }]);
        return dataset(body, contentType);
      },
      expect: refusal('VALIDATION_FAILED'),
    },
    {
      name: 'dataset: multipart file named ../ with NUL and a patient name',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'file', value: Buffer.from('not a zip'), filename: `../../etc/passwd\0${CANARY}.zip`, type: 'application/zip' }]);
        return dataset(body, contentType);
      },
      expect: refusal('ARCHIVE_INVALID'),
    },
    {
      name: 'dataset: multipart without its closing boundary',
      build: () => {
        const { body, contentType } = rawMultipart([{ name: 'file', value: pseudoRandomBytes(4096, 'cut'), filename: 'd.zip', type: 'application/zip' }]);
        return dataset(body.subarray(0, body.length - 40), contentType);
      },
      expect: refusal('BODY_INVALID'),
    },
    {
      name: 'dataset: multipart without a boundary',
      build: () => dataset('whatever', 'multipart/form-data'),
      expect: refusal('UNSUPPORTED_MEDIA_TYPE'),
    },
    { name: 'dataset: id with ../', build: () => dataset('PK', 'application/zip', '..%2F..%2Fetc'), expect: refusal('VALIDATION_FAILED') },
  ];

  // The cases are built once here (names only); their bodies are built when each test runs.
  for (const hostile of [...predictCases(), ...datasetCases()]) {
    it(`refuses ${hostile.name}`, hostile.knownIssue === undefined ? {} : { todo: hostile.knownIssue }, () => check(hostile));
  }

  it('mishandled none of the hostile inputs, and RSS stayed bounded', async (t) => {
    const grown = rssMb() - rssBefore;
    const slowest = Math.max(...latencies);
    t.diagnostic(`hostile inputs tried: ${tried.length}, mishandled: ${mishandled.length}, known issues awaiting a fix elsewhere: ${known.length}`);
    t.diagnostic(`slowest answer ${slowest.toFixed(0)} ms; RSS growth ${grown.toFixed(0)} MB`);
    const costly = [...rssSteps].sort((a, b) => b.mb - a.mb).slice(0, 3);
    t.diagnostic(`largest RSS steps (building the input included): ${costly.map((step) => `${step.name} +${step.mb.toFixed(0)} MB`).join(', ')}`);
    for (const line of mishandled) t.diagnostic(`mishandled: ${line}`);
    for (const line of known) t.diagnostic(`known issue (todo, reported): ${line}`);
    assert.ok(tried.length >= 40, `only ${tried.length} inputs were tried`);
    assert.deepEqual(mishandled, []);
    assert.ok(grown < RSS_GROWTH_LIMIT_MB, `RSS grew by ${grown.toFixed(0)} MB`);
    // No refused dataset upload left anything behind: only the fixture's dataset is there.
    assert.deepEqual(await readdir(path.dirname(fx.context.store.datasetDir(fx.datasetId))), [fx.datasetId]);
  });

  /** Sends one legitimate radiograph and expects one prediction. */
  const accepts = async (value: Buffer, filename: string, type: string): Promise<void> => {
    const request = await imagePart(value, filename, type);
    const response = await fx.app.inject({ method: 'POST', ...request });
    assert.equal(response.statusCode, 200, response.body);
    const body = response.json<{ predictions: { id: string; probabilities: Record<string, number> }[] }>();
    assert.equal(body.predictions.length, 1);
    assert.equal(body.predictions[0]?.id, 'images[0]');
    const sum = Object.values(body.predictions[0]?.probabilities ?? {}).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to ${sum}`);
  };

  it('accepts a 16-bit greyscale PNG', async () => {
    const data = await sharp(jpeg).resize(512).toColourspace('grey16').png().toBuffer();
    assert.equal((await sharp(data).metadata()).depth, 'ushort', 'the fixture image is really 16-bit');
    await accepts(data, 'a.png', 'image/png');
  });

  it('accepts an 8-bit greyscale PNG', async () => {
    const data = await sharp(jpeg).resize(512).toColourspace('b-w').png().toBuffer();
    assert.equal((await sharp(data).metadata()).channels, 1);
    await accepts(data, 'a.png', 'image/png');
  });

  it('accepts an RGBA PNG', async () => {
    const data = await sharp(jpeg).resize(512).ensureAlpha(0.8).png().toBuffer();
    assert.equal((await sharp(data).metadata()).channels, 4);
    await accepts(data, 'a.png', 'image/png');
  });

  it('accepts an EXIF-rotated JPEG', async () => {
    const data = await sharp(jpeg).resize(512).withExif({ IFD0: { Copyright: 'test' } }).withMetadata({ orientation: 6 }).jpeg().toBuffer();
    assert.equal((await sharp(data).metadata()).orientation, 6);
    await accepts(data, 'a.jpg', 'image/jpeg');
  });

  it('accepts a 4000x3000 scan', async () => {
    const data = await sharp(jpeg).resize(4000, 3000, { fit: 'fill' }).jpeg({ quality: 85 }).toBuffer();
    assert.ok(data.length < MAX_FILE_BYTES, `the scan is ${data.length} bytes`);
    await accepts(data, 'scan.jpg', 'image/jpeg');
  });

  it('decides the type from the bytes: a PNG sent as image/jpeg named .jpg', async () => {
    await accepts(png, 'looks-like.jpg', 'image/jpeg');
  });
});
