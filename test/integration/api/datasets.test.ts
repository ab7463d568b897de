/**
 * Datasets over HTTP on real services: listing and inspecting the synthetic dataset on disk
 * (findings computed by decoding every image), uploading zips of real radiographs as a raw
 * `application/zip` body and as the multipart field `file`, refusing archives over the upload limit
 * and an archive with a `..` entry without leaving anything behind. Scopes are enforced. The
 * configuration's upload limits are set between the sizes of the test zips, so each limit is hit.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  SKIP_WITHOUT_XRAYS,
  assertResponseMatchesSpec,
  multipartBody,
  readXrays,
  renameZipEntry,
  startApiFixture,
  tree,
  zipBuffer,
  type ApiFixture,
} from './api-fixture.ts';

describe('datasets over HTTP', () => {
  let fx: ApiFixture;
  /** A zip of real radiographs: `fractured/` and `not_fractured/`, three each. */
  let xrayZip: Buffer;
  /** 16 radiographs: larger than the predict upload limit, within the dataset upload limit. */
  let largeZip: Buffer;
  /** Larger than the dataset upload limit. */
  let hugeZip: Buffer;
  /** The limits of this test's configuration, set between the sizes of the zips above. */
  let predictMaxFileBytes: number;
  let datasetMaxUploadBytes: number;

  const zipOf = async (images: Buffer[], extra?: Buffer) =>
    zipBuffer((zip) => {
      images.forEach((image, i) => zip.addBuffer(image, `${i % 2 === 0 ? 'fractured' : 'not_fractured'}/scan-${i}.jpg`));
      if (extra) zip.addBuffer(extra, 'fractured/padding.bin', { compress: false });
    });

  before(async () => {
    if (!SKIP_WITHOUT_XRAYS) {
      xrayZip = await zipOf(await readXrays(6));
      const sixteen = await readXrays(16, 20);
      largeZip = await zipOf(sixteen);
      hugeZip = await zipOf(sixteen, randomBytes(64 * 1024));
      predictMaxFileBytes = xrayZip.length + 1024;
      datasetMaxUploadBytes = largeZip.length + 1024;
      assert.ok(largeZip.length > predictMaxFileBytes && hugeZip.length > datasetMaxUploadBytes);
    }
    fx = await startApiFixture({
      seedExperiment: false,
      settings: SKIP_WITHOUT_XRAYS ? {} : { PREDICT_MAX_FILE_BYTES: String(predictMaxFileBytes), DATASET_MAX_UPLOAD_BYTES: String(datasetMaxUploadBytes) },
    });
  });
  after(() => fx?.close());

  const list = async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/datasets', headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('listDatasets', response);
    return response.json().datasets as { id: string; classes: { name: string; count: number; positive: boolean }[] }[];
  };

  it('lists the datasets on disk with classes, counts and fracture-positive classes', async () => {
    const datasets = await list();
    assert.deepEqual(
      datasets.map((dataset) => dataset.id),
      [fx.datasetId],
    );
    const [synth] = datasets;
    assert.deepEqual(synth?.classes, [
      { name: 'elbow_fractured', count: 6, positive: true },
      { name: 'elbow_normal', count: 6, positive: false },
      { name: 'hand_fractured', count: 6, positive: true },
      { name: 'hand_normal', count: 6, positive: false },
    ]);
  });

  it('shows one dataset with its hash, skipped files and duplicate findings', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/datasets/${fx.datasetId}`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    const dataset = response.json();
    assertResponseMatchesSpec('getDataset', response);
    assert.equal(dataset.problem, null);
    assert.match(dataset.hash, /^[0-9a-f]{64}$/);
    assert.deepEqual(dataset.skipped, { count: 0, byReason: {} });
    assert.ok(dataset.duplicates, 'duplicate findings are present');
    assert.equal(typeof dataset.duplicates.crossSplitLeaks.groups, 'number');
    assert.deepEqual(dataset.positiveClasses, ['elbow_fractured', 'hand_fractured']);
    assert.equal(dataset.imageCount, 24);
  });

  it('answers an unknown dataset with 404 DATASET_NOT_FOUND', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/datasets/no-such-dataset', headers: fx.auth('train') });
    assert.equal(response.statusCode, 404);
    assertResponseMatchesSpec('getDataset', response);
    assert.equal(response.json().code, 'DATASET_NOT_FOUND');
  });

  it('creates a dataset from a raw application/zip body of real X-rays (201 + Location), then lists it', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const response = await fx.app.inject({
      method: 'POST',
      url: '/v1/datasets?id=xr-raw',
      headers: { ...fx.auth('train'), 'content-type': 'application/zip' },
      payload: xrayZip,
    });
    assert.equal(response.statusCode, 201, response.body);
    assert.equal(response.headers.location, '/v1/datasets/xr-raw');
    const dataset = response.json();
    assertResponseMatchesSpec('createDataset', response);
    assert.equal(dataset.id, 'xr-raw');
    assert.deepEqual(
      dataset.classes.map((c: { name: string; count: number }) => [c.name, c.count]),
      [['fractured', 3], ['not_fractured', 3]],
    );
    assert.deepEqual(dataset.positiveClasses, ['fractured']);
    assert.match(dataset.hash, /^[0-9a-f]{64}$/);
    assert.ok((await list()).some((listed) => listed.id === 'xr-raw'));

    const again = await fx.app.inject({
      method: 'POST',
      url: '/v1/datasets?id=xr-raw',
      headers: { ...fx.auth('train'), 'content-type': 'application/zip' },
      payload: xrayZip,
    });
    assert.equal(again.statusCode, 409);
    assertResponseMatchesSpec('createDataset', again);
    assert.equal(again.json().code, 'DATASET_EXISTS');
  });

  it('creates a dataset from the multipart field `file`, with a generated id, then lists it', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const { body, contentType } = await multipartBody([{ name: 'file', value: xrayZip, filename: 'Jane Doe study.zip', type: 'application/zip' }]);
    const response = await fx.app.inject({ method: 'POST', url: '/v1/datasets', headers: { ...fx.auth('train'), 'content-type': contentType }, payload: body });
    assert.equal(response.statusCode, 201, response.body);
    const dataset = response.json();
    assertResponseMatchesSpec('createDataset', response);
    assert.match(dataset.id, /^ds-[0-9a-f]{10}$/);
    assert.equal(response.headers.location, `/v1/datasets/${dataset.id}`);
    assert.equal(dataset.imageCount, 6);
    assert.doesNotMatch(response.body, /Jane/);
    assert.ok((await list()).some((listed) => listed.id === dataset.id));
  });

  it(
    'takes a multipart zip larger than the predict upload limit (the dataset limit applies)',
    {
      skip: SKIP_WITHOUT_XRAYS,
    },
    async () => {
      const { body, contentType } = await multipartBody([{ name: 'file', value: largeZip, filename: 'study.zip', type: 'application/zip' }]);
      const response = await fx.app.inject({ method: 'POST', url: '/v1/datasets?id=xr-large', headers: { ...fx.auth('train'), 'content-type': contentType }, payload: body });
      assert.equal(response.statusCode, 201, `${response.statusCode} ${response.json().code}`);
      assert.equal(response.json().imageCount, 16);
    },
  );

  it('refuses a raw zip over DATASET_MAX_UPLOAD_BYTES with 413 PAYLOAD_TOO_LARGE', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const response = await fx.app.inject({
      method: 'POST',
      url: '/v1/datasets?id=xr-huge',
      headers: { ...fx.auth('train'), 'content-type': 'application/zip' },
      payload: hugeZip,
    });
    assert.equal(response.statusCode, 413);
    assertResponseMatchesSpec('createDataset', response);
    assert.equal(response.json().code, 'PAYLOAD_TOO_LARGE');
    assert.ok(!(await list()).some((dataset) => dataset.id === 'xr-huge'));
  });

  it(
    'leaves no partial upload behind when the first chunk of a zip is already over the limit',
    {
      skip: SKIP_WITHOUT_XRAYS,
    },
    async () => {
      const uploads = path.join(fx.config.DATA_DIR, 'uploads');
      const before = await tree(uploads);
      const response = await fx.app.inject({
        method: 'POST',
        url: '/v1/datasets?id=xr-huge-2',
        headers: { ...fx.auth('train'), 'content-type': 'application/zip' },
        payload: hugeZip,
      });
      assert.equal(response.statusCode, 413);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.deepEqual(await tree(uploads), before);
    },
  );

  it(
    'refuses a multipart zip over DATASET_MAX_UPLOAD_BYTES with 413 PAYLOAD_TOO_LARGE',
    {
      skip: SKIP_WITHOUT_XRAYS,
    },
    async () => {
      const { body, contentType } = await multipartBody([{ name: 'file', value: hugeZip, filename: 'study.zip', type: 'application/zip' }]);
      const response = await fx.app.inject({ method: 'POST', url: '/v1/datasets?id=xr-huge-mp', headers: { ...fx.auth('train'), 'content-type': contentType }, payload: body });
      assert.equal(response.statusCode, 413, `${response.statusCode} ${response.json().code}`);
      assert.equal(response.json().code, 'PAYLOAD_TOO_LARGE');
    },
  );

  it('refuses an archive with a `../` entry with 422 ARCHIVE_UNSAFE and creates nothing', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const images = await readXrays(4);
    const unsafe = renameZipEntry(
      await zipBuffer((zip) => {
        images.forEach((image, i) => zip.addBuffer(image, `${i % 2 === 0 ? 'fractured' : 'not_fractured'}/scan-${i}.jpg`));
        zip.addBuffer(Buffer.from('pwned\n'), 'xx/evil');
      }),
      'xx/evil',
      '../evil',
    );
    const dataDir = fx.config.DATA_DIR;
    const datasetsBefore = await tree(path.join(dataDir, 'datasets'));
    const uploadsBefore = await tree(path.join(dataDir, 'uploads'));
    const listedBefore = (await list()).map((dataset) => dataset.id);

    for (const request of [
      { url: '/v1/datasets?id=evil-raw', headers: { ...fx.auth('train'), 'content-type': 'application/zip' }, payload: unsafe },
      await (async () => {
        const { body, contentType } = await multipartBody([{ name: 'file', value: unsafe, filename: 'evil.zip', type: 'application/zip' }]);
        return { url: '/v1/datasets?id=evil-multipart', headers: { ...fx.auth('train'), 'content-type': contentType }, payload: body };
      })(),
    ]) {
      const response = await fx.app.inject({ method: 'POST', ...request });
      assert.equal(response.statusCode, 422, request.url);
      const problem = response.json();
      assertResponseMatchesSpec('createDataset', response);
      assert.equal(problem.code, 'ARCHIVE_UNSAFE');
      assert.equal(typeof problem.rule, 'string');
      assert.equal(problem.entryIndex, images.length);
    }

    assert.deepEqual(await tree(path.join(dataDir, 'datasets')), datasetsBefore);
    assert.deepEqual(await tree(path.join(dataDir, 'uploads')), uploadsBefore);
    assert.deepEqual(
      (await list()).map((dataset) => dataset.id),
      listedBefore,
    );
    for (const escaped of [path.join(dataDir, 'evil'), path.join(dataDir, 'datasets', 'evil'), path.join(fx.root, 'evil')]) {
      await assert.rejects(access(escaped), { code: 'ENOENT' }, `${escaped} must not exist`);
    }
  });

  it('refuses a multipart upload without the field `file` with 400 VALIDATION_FAILED', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    const { body, contentType } = await multipartBody([{ name: 'archive', value: xrayZip, filename: 'a.zip', type: 'application/zip' }]);
    const response = await fx.app.inject({ method: 'POST', url: '/v1/datasets?id=wrong-field', headers: { ...fx.auth('train'), 'content-type': contentType }, payload: body });
    assert.equal(response.statusCode, 400);
    assertResponseMatchesSpec('createDataset', response);
    assert.equal(response.json().code, 'VALIDATION_FAILED');
    assert.ok(!(await list()).some((dataset) => dataset.id === 'wrong-field'));
  });

  it('answers a key without the train scope with 403, and no key with 401, on every dataset operation', async () => {
    const requests = [
      { operation: 'listDatasets', method: 'GET', url: '/v1/datasets' },
      { operation: 'getDataset', method: 'GET', url: `/v1/datasets/${fx.datasetId}` },
      { operation: 'createDataset', method: 'POST', url: '/v1/datasets?id=not-allowed', headers: { 'content-type': 'application/zip' }, payload: Buffer.from('PK') },
    ] as const;
    for (const { operation, ...request } of requests) {
      const forbidden = await fx.app.inject({ ...request, headers: { ...('headers' in request ? request.headers : {}), ...fx.auth('predict') } });
      assert.equal(forbidden.statusCode, 403, operation);
      assertResponseMatchesSpec(operation, forbidden);
      assert.equal(forbidden.json().code, 'FORBIDDEN');
      const anonymous = await fx.app.inject(request);
      assert.equal(anonymous.statusCode, 401, operation);
      assertResponseMatchesSpec(operation, anonymous);
    }
    assert.ok(!(await list()).some((dataset) => dataset.id === 'not-allowed'));
  });
});
