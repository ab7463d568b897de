/**
 * `POST /v1/predict` on real services: the production model is the `cnn` the fixture really trained,
 * served in-process by the dynamic batcher; the images are real radiographs. Multipart and JSON,
 * request order and ids, probabilities, the fracture probability, the notice, model id and version,
 * Grad-CAM heat-maps, explicit and unknown models, refused inputs, authentication, an audit record
 * for every request (failures too) without file names, and dynamic batching read from `/metrics`:
 * 32 concurrent single-image requests over real HTTP run in fewer forward passes than requests.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import * as tf from '@tensorflow/tfjs';
import { PREDICTION_NOTICE } from '../../../src/serving/types.ts';
import {
  SKIP_WITHOUT_XRAYS,
  assertResponseMatchesSpec,
  multipartBody,
  readXrays,
  sampleValue,
  sha256,
  startApiFixture,
  waitFor,
  type ApiFixture,
  type SeededExperiment,
} from './api-fixture.ts';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

interface PredictionBody {
  id: string;
  label: string;
  probabilities: Record<string, number>;
  fractureProbability: number | null;
  heatmap?: string;
}

describe('POST /v1/predict over HTTP', { skip: SKIP_WITHOUT_XRAYS }, () => {
  let fx: ApiFixture;
  let seeded: SeededExperiment;
  let xrays: Buffer[];
  let version: string;
  let classes: string[];
  let positive: string[];

  /** Multipart request with `image` parts named like a PACS export would (patient names). */
  const multipart = async (images: readonly Uint8Array[], fields: Record<string, string> = {}) => {
    const parts = [
      ...images.map((value, i) => ({ name: 'image', value, filename: `Jane Doe ${i} wrist.jpg`, type: 'image/jpeg' })),
      ...Object.entries(fields).map(([name, value]) => ({ name, value })),
    ];
    const { body, contentType } = await multipartBody(parts);
    return { payload: body, headers: { ...fx.auth('predict'), 'content-type': contentType } };
  };

  /** Sends a request and returns the response with the one audit record it appended. */
  const predictAudited = async (options: { url?: string; payload?: string | Buffer | object; headers?: Record<string, string> }) => {
    const before = (await fx.auditRecords()).length;
    const response = await fx.app.inject({ method: 'POST', url: options.url ?? '/v1/predict', ...options });
    // The record is written by the route's onResponse hook, i.e. just after the answer.
    const records = await waitFor('the audit record', async () => {
      const all = await fx.auditRecords();
      return all.length > before ? all : undefined;
    });
    assert.equal(records.length, before + 1, 'exactly one audit record per request');
    return { response, audit: records.at(-1) as Record<string, unknown> };
  };

  const checkPrediction = (prediction: PredictionBody, id: string) => {
    assert.equal(prediction.id, id);
    assert.deepEqual(Object.keys(prediction.probabilities).sort(), [...classes].sort());
    const values = Object.values(prediction.probabilities);
    assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-4, `probabilities sum to 1: ${values.join(', ')}`);
    const best = Object.entries(prediction.probabilities).reduce((a, b) => (b[1] > a[1] ? b : a));
    assert.equal(prediction.label, best[0]);
    const fracture = positive.reduce((sum, name) => sum + (prediction.probabilities[name] ?? 0), 0);
    assert.ok(prediction.fractureProbability !== null && Math.abs(prediction.fractureProbability - fracture) < 1e-5);
  };

  const checkModel = (body: { model: { id: string; architecture: string; version: string; engine?: string }; notice: string }) => {
    // Training writes model.onnx, so under the default INFERENCE_ENGINE=auto ONNX Runtime answers.
    assert.deepEqual(body.model, { id: seeded.modelId, architecture: 'cnn', version, engine: 'onnx' });
    assert.equal(body.notice, 'For research use only. Not for use in diagnostic procedures.');
    assert.equal(body.notice, PREDICTION_NOTICE);
  };

  before(async () => {
    // A longer batching window than the default, so concurrent requests reliably share passes.
    fx = await startApiFixture({ settings: { PREDICT_MAX_DELAY_MS: '40' } });
    assert.ok(fx.experiment);
    seeded = fx.experiment;
    xrays = await readXrays(6);
    const modelResponse = await fx.app.inject({ method: 'GET', url: `/v1/models/${seeded.modelId}`, headers: fx.auth('predict') });
    assertResponseMatchesSpec('getModel', modelResponse);
    const model = modelResponse.json();
    version = model.version;
    classes = model.classes;
    positive = model.positiveClasses;
    assert.ok(positive.length > 0 && positive.length < classes.length);
  });
  after(() => fx?.close());

  it('classifies one multipart image with the production model, and audits it without the file name', async () => {
    const { response, audit } = await predictAudited(await multipart([xrays[0] as Buffer]));
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('predict', response);
    const body = response.json();
    checkModel(body);
    assert.equal(body.predictions.length, 1);
    checkPrediction(body.predictions[0], 'images[0]');
    assert.equal(body.predictions[0].heatmap, undefined);

    assert.equal(audit.keyId, 'pacs');
    assert.equal(audit.route, 'POST /v1/predict');
    assert.equal(audit.status, 200);
    assert.deepEqual(audit.inputSha256, [sha256(xrays[0] as Buffer)]);
    assert.deepEqual(audit.model, { id: seeded.modelId, version });
    assert.doesNotMatch(JSON.stringify(await fx.auditRecords()), /Jane|wrist|\.jpg/);
  });

  it('classifies three multipart images in request order, each as it would be alone', async () => {
    const three = xrays.slice(0, 3);
    const { response, audit } = await predictAudited(await multipart(three));
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('predict', response);
    const body = response.json();
    checkModel(body);
    assert.deepEqual(
      body.predictions.map((p: PredictionBody) => p.id),
      ['images[0]', 'images[1]', 'images[2]'],
    );
    body.predictions.forEach((p: PredictionBody, i: number) => checkPrediction(p, `images[${i}]`));
    assert.deepEqual(audit.inputSha256, three.map(sha256));
    // Order: each answer is the one that image gets alone.
    for (let i = 0; i < 3; i++) {
      const aloneResponse = await fx.app.inject({ method: 'POST', url: '/v1/predict', ...(await multipart([three[i] as Buffer])) });
      assertResponseMatchesSpec('predict', aloneResponse);
      const alone = aloneResponse.json();
      for (const name of classes) {
        assert.ok(Math.abs(alone.predictions[0].probabilities[name] - body.predictions[i].probabilities[name]) < 1e-4, `image ${i} ${name}`);
      }
    }
    const distinct = new Set(body.predictions.map((p: PredictionBody) => JSON.stringify(p.probabilities)));
    assert.equal(distinct.size, 3, 'three different radiographs give three different answers');
  });

  it('classifies JSON with base64 images and echoes the caller ids', async () => {
    const { response, audit } = await predictAudited({
      headers: fx.auth('predict'),
      payload: { images: [{ id: 'left-wrist', data: (xrays[3] as Buffer).toString('base64') }, { id: 'right-wrist', data: (xrays[4] as Buffer).toString('base64') }] },
    });
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('predict', response);
    const body = response.json();
    checkModel(body);
    checkPrediction(body.predictions[0], 'left-wrist');
    checkPrediction(body.predictions[1], 'right-wrist');
    assert.deepEqual(audit.inputSha256, [sha256(xrays[3] as Buffer), sha256(xrays[4] as Buffer)]);
  });

  it('adds a Grad-CAM heat-map as a PNG data URL with explain=true', async () => {
    for (const request of [
      { url: '/v1/predict?explain=true', ...(await multipart([xrays[1] as Buffer])) },
      { url: '/v1/predict', ...(await multipart([xrays[1] as Buffer], { explain: 'true' })) },
      { url: '/v1/predict', headers: fx.auth('predict'), payload: { images: [{ data: (xrays[1] as Buffer).toString('base64') }], explain: true } },
    ]) {
      const response = await fx.app.inject({ method: 'POST', ...request });
      assert.equal(response.statusCode, 200);
      assertResponseMatchesSpec('predict', response);
      const body = response.json();
      const heatmap: string = body.predictions[0].heatmap;
      assert.match(heatmap, /^data:image\/png;base64,[A-Za-z0-9+/]+=*$/);
      const png = Buffer.from(heatmap.slice('data:image/png;base64,'.length), 'base64');
      assert.deepEqual(png.subarray(0, 8), PNG_SIGNATURE);
      const { format, width, height } = await sharp(png).metadata();
      assert.equal(format, 'png');
      assert.ok((width ?? 0) >= 256 && width === height, `overlay ${width}x${height}`);
    }
  });

  it('uses the model named by id (query, multipart field or JSON member) or alias', async () => {
    const requests = [
      { url: `/v1/predict?model=${seeded.modelId}`, ...(await multipart([xrays[2] as Buffer])) },
      { url: '/v1/predict', ...(await multipart([xrays[2] as Buffer], { model: seeded.modelId })) },
      { url: '/v1/predict', headers: fx.auth('predict'), payload: { images: [{ data: (xrays[2] as Buffer).toString('base64') }], model: seeded.modelId } },
      { url: '/v1/predict?model=production', ...(await multipart([xrays[2] as Buffer])) },
    ];
    for (const request of requests) {
      const response = await fx.app.inject({ method: 'POST', ...request });
      assert.equal(response.statusCode, 200, request.url);
      assertResponseMatchesSpec('predict', response);
      checkModel(response.json());
    }
  });

  it('answers an unknown model with 404 MODEL_NOT_FOUND, audited without a model', async () => {
    for (const request of [
      { url: '/v1/predict?model=no-such-model', ...(await multipart([xrays[0] as Buffer])) },
      { url: '/v1/predict', headers: fx.auth('predict'), payload: { images: [{ data: (xrays[0] as Buffer).toString('base64') }], model: 'no-such-model' } },
    ]) {
      const { response, audit } = await predictAudited(request);
      assert.equal(response.statusCode, 404);
      assertResponseMatchesSpec('predict', response);
      assert.equal(response.json().code, 'MODEL_NOT_FOUND');
      assert.equal(audit.status, 404);
      assert.equal(audit.code, 'MODEL_NOT_FOUND');
      assert.equal(audit.model, null);
    }
  });

  it('refuses a text file sent as an image with 415 IMAGE_TYPE_UNSUPPORTED', async () => {
    const text = Buffer.from('Patient: Jane Doe\nDOB 1970-01-01\nthis is not an image\n');
    const { response, audit } = await predictAudited(await multipart([text]));
    assert.equal(response.statusCode, 415);
    assertResponseMatchesSpec('predict', response);
    assert.equal(response.json().code, 'IMAGE_TYPE_UNSUPPORTED');
    assert.doesNotMatch(response.body, /Jane/);
    assert.equal(audit.status, 415);
    assert.equal(audit.code, 'IMAGE_TYPE_UNSUPPORTED');
    assert.deepEqual(audit.inputSha256, [sha256(text)]);
  });

  it('refuses a truncated JPEG with 422 IMAGE_UNDECODABLE', async () => {
    const whole = xrays[0] as Buffer;
    const truncated = whole.subarray(0, Math.floor(whole.length / 2));
    const { response, audit } = await predictAudited(await multipart([truncated]));
    assert.equal(response.statusCode, 422);
    assertResponseMatchesSpec('predict', response);
    assert.equal(response.json().code, 'IMAGE_UNDECODABLE');
    assert.equal(audit.status, 422);
    assert.equal(audit.code, 'IMAGE_UNDECODABLE');
  });

  it('answers 401 without a key and 403 with a train-only key, and audits both', async () => {
    const { payload, headers } = await multipart([xrays[0] as Buffer]);
    const anonymous = await predictAudited({ payload, headers: { 'content-type': headers['content-type'] } });
    assert.equal(anonymous.response.statusCode, 401);
    assertResponseMatchesSpec('predict', anonymous.response);
    assert.equal(anonymous.response.json().code, 'UNAUTHENTICATED');
    assert.equal(anonymous.audit.keyId, null);
    assert.equal(anonymous.audit.status, 401);

    const wrongScope = await predictAudited({ payload, headers: { ...headers, ...fx.auth('train') } });
    assert.equal(wrongScope.response.statusCode, 403);
    assertResponseMatchesSpec('predict', wrongScope.response);
    assert.equal(wrongScope.response.json().code, 'FORBIDDEN');
    assert.equal(wrongScope.audit.keyId, 'ml');
  });

  it('serves 32 concurrent single-image requests in fewer forward passes than requests (batch-size metric), leaking no tensor', async (t) => {
    const base = await fx.listen();
    const images = await readXrays(32, 10);
    const metricsBeforeResponse = await fx.app.inject({ method: 'GET', url: '/metrics' });
    assertResponseMatchesSpec('getMetrics', metricsBeforeResponse);
    const metricsBefore = metricsBeforeResponse.body;
    const auditBefore = (await fx.auditRecords()).length;
    const tensorsBefore = tf.memory().numTensors;

    const started = performance.now();
    const responses = await Promise.all(
      images.map(async (image) => {
        const form = new FormData();
        form.append('image', new Blob([image], { type: 'image/jpeg' }), 'scan.jpg');
        const response = await fetch(`${base}/v1/predict`, { method: 'POST', headers: fx.auth('predict'), body: form });
        const text = await response.text();
        assertResponseMatchesSpec('predict', { statusCode: response.status, headers: { 'content-type': response.headers.get('content-type') }, body: text });
        return { status: response.status, body: JSON.parse(text) as { predictions: PredictionBody[] } };
      }),
    );
    for (const [i, { status, body }] of responses.entries()) {
      assert.equal(status, 200, `request ${i}: ${JSON.stringify(body).slice(0, 200)}`);
      const [prediction] = body.predictions;
      assert.ok(prediction);
      checkPrediction(prediction, 'images[0]');
    }

    const metricsAfterResponse = await fx.app.inject({ method: 'GET', url: '/metrics' });
    assertResponseMatchesSpec('getMetrics', metricsAfterResponse);
    const metricsAfter = metricsAfterResponse.body;
    const passes = sampleValue(metricsAfter, 'predict_batch_size_count') - sampleValue(metricsBefore, 'predict_batch_size_count');
    const images32 = sampleValue(metricsAfter, 'predict_batch_size_sum') - sampleValue(metricsBefore, 'predict_batch_size_sum');
    assert.equal(images32, 32, 'every image went through exactly one forward pass');
    assert.ok(passes >= 2 && passes < 32, `32 requests took ${passes} forward passes`);
    t.diagnostic(`32 concurrent requests: ${passes} forward passes, ${Math.round(performance.now() - started)} ms in all`);
    assert.equal(tf.memory().numTensors, tensorsBefore, 'no tensor leaked');

    const audit = await waitFor('32 audit records', async () => {
      const all = await fx.auditRecords();
      return all.length >= auditBefore + 32 ? all : undefined;
    });
    assert.equal(audit.length, auditBefore + 32);
    assert.deepEqual(
      audit.slice(auditBefore).map((record) => (record.inputSha256 as string[])[0]).sort(),
      images.map(sha256).sort(),
    );
  });
});
