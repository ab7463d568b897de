/**
 * Models over HTTP on real services: the registry holds the `cnn` model the fixture really trained,
 * promoted to `production`. Listing, lookup by id and alias, alias changes (admin only), the 307 from
 * an alias to the id URL, files that match their sha256, and no way out of the model folder. The
 * acceptance point of issue 3: a plain `node` process that imports nothing but `@tensorflow/tfjs`
 * loads the model with `tf.loadLayersModel(url)` over HTTP and predicts what the project's own
 * `loadModel` predicts.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { loadModel } from '../../../src/ml/persist/index.ts';
import { REPO_ROOT, assertResponseMatchesSpec, sha256, startApiFixture, type ApiFixture, type SeededExperiment, type SpecCheckedResponse } from './api-fixture.ts';

const run = promisify(execFile);

/** Two 32x32x3 inputs, fixed and varied enough that the two rows of output differ. */
const INPUT_SHAPE = [2, 32, 32, 3] as const;
const INPUT_SCRIPT = `Float32Array.from({ length: ${INPUT_SHAPE.reduce((a, b) => a * b, 1)} }, (_, i) => ((i * 37) % 101) / 100)`;

/**
 * Run by a plain `node` with nothing but `@tensorflow/tfjs` (no project code, so no custom layer is
 * registered): loads the model over HTTP from each URL and prints the predictions.
 */
const CHILD_SCRIPT = `
import * as tf from '@tensorflow/tfjs';
const headers = { Authorization: 'Bearer ' + process.env.API_SECRET };
const input = tf.tensor4d(${INPUT_SCRIPT}, ${JSON.stringify(INPUT_SHAPE)});
const out = {};
for (const [name, url] of Object.entries(JSON.parse(process.env.MODEL_URLS))) {
  const model = await tf.loadLayersModel(url, { requestInit: { headers } });
  out[name] = { predictions: Array.from(await model.predict(input).data()), layers: model.layers.map((l) => l.getClassName()) };
}
out.backend = tf.getBackend();
console.log('RESULT ' + JSON.stringify(out));
`;

/** GET over a raw socket, with the path sent exactly as given (fetch would normalise `..`). */
function rawGet(base: string, rawPath: string, headers: Record<string, string>): Promise<SpecCheckedResponse> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, path: rawPath, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

describe('models over HTTP', () => {
  let fx: ApiFixture;
  let seeded: SeededExperiment;

  before(async () => {
    fx = await startApiFixture();
    assert.ok(fx.experiment);
    seeded = fx.experiment;
  });
  after(() => fx?.close());

  it('lists the trained model with its aliases', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/models', headers: fx.auth('predict') });
    assert.equal(response.statusCode, 200);
    const body = response.json();
    assertResponseMatchesSpec('listModels', response);
    assert.deepEqual(body.aliases, { production: seeded.modelId });
    assert.equal(body.models.length, 1);
    const [model] = body.models;
    assert.equal(model.id, seeded.modelId);
    assert.equal(model.architecture, 'cnn');
    assert.deepEqual(model.classes, seeded.report.dataset.classNames);
    assert.deepEqual(model.input, { height: 32, width: 32, channels: 3 });
    assert.equal(model.datasetHash, seeded.report.dataset.hash);
    assert.equal(model.experimentId, seeded.id);
    assert.deepEqual(model.aliases, ['production']);
    assert.equal(model.metrics.accuracy, seeded.report.results[0]?.metrics.accuracy);
  });

  it('shows one model by id and by alias, and 404 MODEL_NOT_FOUND for neither', async () => {
    const byId = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}`, headers: fx.auth('predict') });
    assert.equal(byId.statusCode, 200);
    assertResponseMatchesSpec('getModel', byId);
    const byAlias = await fx.app.inject({ method: 'GET', url: '/v1/models/production', headers: fx.auth('predict') });
    assert.equal(byAlias.statusCode, 200);
    assert.deepEqual(byAlias.json(), byId.json());
    assert.deepEqual(byId.json().files.slice(0, 1), ['model.json']);
    assert.ok(byId.json().files.includes('metadata.json'));

    const unknown = await fx.app.inject({ method: 'GET', url: '/v1/models/no-such-model', headers: fx.auth('predict') });
    assert.equal(unknown.statusCode, 404);
    assertResponseMatchesSpec('getModel', unknown);
    assert.equal(unknown.json().code, 'MODEL_NOT_FOUND');
  });

  it('lets only an admin key set an alias', async () => {
    for (const key of ['train', 'predict'] as const) {
      const refused = await fx.app.inject({ method: 'PUT', url: `/v1/models/${seeded.modelId}/aliases/staging`, headers: fx.auth(key) });
      assert.equal(refused.statusCode, 403, key);
      assertResponseMatchesSpec('setModelAlias', refused);
      assert.equal(refused.json().code, 'FORBIDDEN');
    }
    const anonymous = await fx.app.inject({ method: 'PUT', url: `/v1/models/${seeded.modelId}/aliases/staging` });
    assert.equal(anonymous.statusCode, 401);
    assertResponseMatchesSpec('setModelAlias', anonymous);
    assert.deepEqual((await fx.context.models.aliases()).staging, undefined);

    const set = await fx.app.inject({ method: 'PUT', url: `/v1/models/${seeded.modelId}/aliases/staging`, headers: fx.auth('admin') });
    assert.equal(set.statusCode, 200);
    assertResponseMatchesSpec('setModelAlias', set);
    assert.deepEqual(set.json().aliases, ['production', 'staging']);
    const viaAlias = await fx.app.inject({ method: 'GET', url: '/v1/models/staging', headers: fx.auth('predict') });
    assertResponseMatchesSpec('getModel', viaAlias);
    assert.equal(viaAlias.json().id, seeded.modelId);
    const list = await fx.app.inject({ method: 'GET', url: '/v1/models', headers: fx.auth('predict') });
    assertResponseMatchesSpec('listModels', list);
    assert.deepEqual(list.json().aliases, { production: seeded.modelId, staging: seeded.modelId });
  });

  it('refuses an alias for an unknown model (404) and a malformed alias (400)', async () => {
    const unknown = await fx.app.inject({ method: 'PUT', url: '/v1/models/no-such-model/aliases/canary', headers: fx.auth('admin') });
    assert.equal(unknown.statusCode, 404);
    assertResponseMatchesSpec('setModelAlias', unknown);
    assert.equal(unknown.json().code, 'MODEL_NOT_FOUND');
    const malformed = await fx.app.inject({ method: 'PUT', url: `/v1/models/${seeded.modelId}/aliases/Not_An_Alias`, headers: fx.auth('admin') });
    assert.equal(malformed.statusCode, 400);
    assertResponseMatchesSpec('setModelAlias', malformed);
    assert.equal(malformed.json().code, 'VALIDATION_FAILED');
  });

  it('redirects a file under an alias with 307 to the same file under the model id', async () => {
    const response = await fx.app.inject({ method: 'GET', url: '/v1/models/production/files/model.json', headers: fx.auth('predict') });
    assert.equal(response.statusCode, 307);
    assert.equal(response.headers.location, `/v1/models/${seeded.modelId}/files/model.json`);
  });

  it('serves every listed file with the bytes metadata.json fingerprints', async () => {
    const modelResponse = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}`, headers: fx.auth('predict') });
    assertResponseMatchesSpec('getModel', modelResponse);
    const model = modelResponse.json();
    const metadataResponse = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}/files/metadata.json`, headers: fx.auth('predict') });
    assert.equal(metadataResponse.statusCode, 200);
    assert.match(String(metadataResponse.headers['content-type']), /^application\/json/);
    assertResponseMatchesSpec('getModelFile', metadataResponse);
    const hashes = metadataResponse.json().files as Record<string, string>;
    const served = (model.files as string[]).filter((file) => file !== 'metadata.json');
    assert.deepEqual([...served].sort(), Object.keys(hashes).sort());
    for (const file of served) {
      const response = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}/files/${file}`, headers: fx.auth('predict') });
      assert.equal(response.statusCode, 200, file);
      assertResponseMatchesSpec('getModelFile', response);
      assert.equal(sha256(response.rawPayload), hashes[file], `${file} matches its sha256`);
    }
    const modelJson = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}/files/model.json`, headers: fx.auth('predict') });
    assertResponseMatchesSpec('getModelFile', modelJson);
    assert.ok(modelJson.json().weightsManifest.length > 0);
  });

  it('serves model.onnx, which ONNX Runtime runs to the same probabilities as the tfjs files', async () => {
    const model = (await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}`, headers: fx.auth('predict') })).json();
    assert.ok((model.files as string[]).includes('model.onnx'), 'a trained model lists model.onnx');
    const response = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}/files/model.onnx`, headers: fx.auth('predict') });
    assert.equal(response.statusCode, 200);
    assert.equal(response.headers['content-type'], 'application/octet-stream');
    const session = await ort.InferenceSession.create(response.rawPayload);
    const loaded = await loadModel((await fx.context.models.resolve(seeded.modelId)).dir);
    try {
      const [height, width, channels] = loaded.metadata.inputShape;
      const x = tf.randomUniform([3, height, width, channels], 0, 1, 'float32', 5);
      const expected = tf.tidy(() => (loaded.model.predict(x) as tf.Tensor).dataSync() as Float32Array);
      const out = await session.run({ input: new ort.Tensor('float32', x.dataSync() as Float32Array, [3, height, width, channels]) });
      x.dispose();
      const actual = out['probabilities']!.data as Float32Array;
      assert.equal(actual.length, expected.length);
      expected.forEach((p, i) => assert.ok(Math.abs(p - actual[i]!) < 1e-4, `probability ${i}: tfjs ${p}, onnx ${actual[i]}`));
    } finally {
      loaded.model.dispose();
      await session.release();
    }
  });

  it('answers 404 MODEL_FILE_NOT_FOUND for a file the model does not serve, even one in its folder', async () => {
    for (const file of ['weights.bin', 'registry.json']) {
      const response = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}/files/${file}`, headers: fx.auth('predict') });
      assert.equal(response.statusCode, 404, file);
      assertResponseMatchesSpec('getModelFile', response);
      assert.equal(response.json().code, 'MODEL_FILE_NOT_FOUND');
    }
  });

  it('never serves a file outside the model folder, however the path is spelled', async () => {
    const base = await fx.listen();
    const aliasesJson = await readFile(fx.context.store.aliasesFile, 'utf8');
    const registryJson = await readFile(path.join(fx.context.store.modelDir(seeded.modelId), 'registry.json'), 'utf8');
    const attempts = [
      `/v1/models/${seeded.modelId}/files/..%2Faliases.json`,
      `/v1/models/${seeded.modelId}/files/%2E%2E%2Faliases.json`,
      `/v1/models/${seeded.modelId}/files/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd`,
      `/v1/models/${seeded.modelId}/files/..`,
      `/v1/models/${seeded.modelId}/files/../aliases.json`,
      `/v1/models/${seeded.modelId}/files/../../aliases.json`,
      `/v1/models/${seeded.modelId}/files/%2Fetc%2Fpasswd`,
      `/v1/models/..%2F${seeded.modelId}/files/registry.json`,
      `/v1/models/..%2Fmodels%2F${seeded.modelId}/files/model.json`,
      `/v1/models/${seeded.modelId}%2F..%2F/files/aliases.json`,
      `/v1/models/production/files/..%2Faliases.json`,
    ];
    for (const attempt of attempts) {
      const response = await rawGet(base, attempt, fx.auth('predict'));
      assert.ok(response.statusCode >= 400 && response.statusCode < 500, `${attempt} answered ${response.statusCode}`);
      assert.notEqual(response.body, aliasesJson, attempt);
      assert.notEqual(response.body, registryJson, attempt);
      assert.doesNotMatch(response.body, /root:x:0:0/, attempt);
      assertResponseMatchesSpec('getModelFile', response);
    }
  });

  it('downloads over HTTP into tf.loadLayersModel in a plain node process, predicting what loadModel predicts', async () => {
    const base = await fx.listen();
    const urls = {
      byId: `${base}/v1/models/${seeded.modelId}/files/model.json`,
      // Through the alias: model.json and every shard are 307s that fetch follows.
      byAlias: `${base}/v1/models/production/files/model.json`,
    };
    const child = run(process.execPath, ['--input-type=module', '-e', CHILD_SCRIPT], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH ?? '', API_SECRET: fx.secrets.predict, MODEL_URLS: JSON.stringify(urls) },
      timeout: 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });

    // Meanwhile the project's own loader, on the same files and input.
    const before = tf.memory().numTensors;
    const loaded = await loadModel(fx.context.store.modelDir(seeded.modelId));
    const expected = tf.tidy(() => {
      const input = tf.tensor4d(new Function(`return ${INPUT_SCRIPT}`)() as Float32Array, [...INPUT_SHAPE]);
      return (loaded.model.predict(input) as tf.Tensor).dataSync();
    });
    loaded.model.dispose();
    assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
    const classes = seeded.report.dataset.classNames.length;
    assert.equal(expected.length, INPUT_SHAPE[0] * classes);

    const { stdout } = await child;
    const line = stdout.split('\n').find((candidate) => candidate.startsWith('RESULT '));
    assert.ok(line, `the child printed no result: ${stdout.slice(0, 500)}`);
    const result = JSON.parse(line.slice('RESULT '.length)) as Record<string, { predictions: number[]; layers: string[] }> & { backend: string };
    for (const name of ['byId', 'byAlias'] as const) {
      const got = result[name];
      assert.ok(got, name);
      assert.ok(got.layers.includes('BatchNormalization'), `${name}: stock layers only (${got.layers.join(', ')})`);
      assert.equal(got.predictions.length, expected.length, name);
      got.predictions.forEach((value, i) => assert.ok(Math.abs(value - (expected[i] as number)) < 1e-4, `${name}[${i}]: ${value} vs ${expected[i]}`));
    }
    // The two inputs give different outputs, so equal outputs are not a constant model's.
    assert.ok(expected.slice(0, classes).some((value, i) => Math.abs(value - (expected[classes + i] as number)) > 1e-6));
  });
});
