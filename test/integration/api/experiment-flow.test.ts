/**
 * The acceptance path of issue 3 over real HTTP on the real Redis: a tiny synthetic dataset is
 * uploaded as a zip (`POST /v1/datasets`), an experiment with all four architectures is started
 * (`POST /v1/experiments`) and trained by BullMQ training workers in this process (worker threads),
 * followed live through its server-sent events until `completed`; then the report has four results,
 * a ranking and a winner, the four models are registered with the winner as `production`, and
 * `/v1/predict` answers with the winner. Every response and every event validates against
 * openapi.yaml. The wall time from the POST to the `completed` event is printed as a diagnostic.
 */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';
import { startWorkers, type RunningWorkers } from '../../../src/workers/run-workers.ts';
import { assertMatchesSpec } from '../../helpers/openapi-validator.ts';
import { assertResponseMatchesSpec, startApiFixture, zipBuffer, type ApiFixture, type KeyName } from './api-fixture.ts';

const ARCHITECTURES = ['cnn', 'vgg16', 'resnet50', 'inceptionv3'] as const;
const DATASET_ID = 'flow-xrays';
const CLASSES = ['hand_fractured', 'hand_normal'];
/** Longest the experiment may take before the event stream is abandoned (the target is well under a minute). */
const EXPERIMENT_TIMEOUT_MS = 240_000;

/** One server-sent event and when it arrived (ms since the experiment was posted). */
interface ReceivedEvent {
  event: string | undefined;
  id: string | undefined;
  data: string;
  atMs: number;
}

/** The parts of an experiment (as `GET /v1/experiments/{id}` answers it) the assertions read. */
interface ExperimentBody {
  id: string;
  status: string;
  settings: { architectures: string[]; imageSize: number; epochs: number; batchSize: number };
  architectures: { architecture: string; status: string; epoch: number; epochs: number; progress: number; history: unknown[]; result?: { params: number; accuracy: number } }[];
  winner?: { architecture: string; modelId: string; metric: string; score: number | null; reason: string; promoted: boolean } | null;
  reportUrl?: string;
}

/**
 * Reads a `text/event-stream` body as it arrives (WHATWG SSE parsing: `field: value` lines, a blank
 * line dispatches, `:` comments such as heart-beats are skipped) until the server ends the stream.
 */
async function* readEvents(body: ReadableStream<Uint8Array>, startedAt: number): AsyncGenerator<ReceivedEvent> {
  const decoder = new TextDecoder();
  let buffer = '';
  let fields: { event?: string; id?: string; data: string[] } = { data: [] };
  for await (const chunk of body) {
    buffer += decoder.decode(chunk, { stream: true });
    let newline: number;
    while ((newline = buffer.search(/\r\n|\n|\r/)) >= 0) {
      const line = buffer.slice(0, newline);
      buffer = buffer.slice(newline + (buffer.startsWith('\r\n', newline) ? 2 : 1));
      if (line === '') {
        if (fields.data.length > 0 || fields.event !== undefined) {
          yield { event: fields.event, id: fields.id, data: fields.data.join('\n'), atMs: performance.now() - startedAt };
        }
        fields = { data: [] };
      } else if (!line.startsWith(':')) {
        const colon = line.indexOf(':');
        const name = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (name === 'data') fields.data.push(value);
        else if (name === 'event') fields.event = value;
        else if (name === 'id') fields.id = value;
      }
    }
  }
}

describe('a four-architecture experiment through the HTTP API', () => {
  let fx: ApiFixture;
  let workers: RunningWorkers | undefined;
  let base: string;
  /** The synthetic images that were zipped, by class (PNG files). */
  let sourceDir: string;
  let experimentId: string | undefined;
  let final: ExperimentBody | undefined;
  /** The uploaded dataset's content hash, as `POST /v1/datasets` answered it. */
  let datasetHash: string | undefined;

  /** A request over real HTTP, with the response's status, headers and text (the shape the spec check reads). */
  const call = async (method: string, url: string, key: KeyName, init: { body?: RequestInit['body']; headers?: Record<string, string> } = {}) => {
    const response = await fetch(`${base}${url}`, {
      method,
      headers: { ...fx.auth(key), ...init.headers },
      ...(init.body === undefined ? {} : { body: init.body }),
      signal: AbortSignal.timeout(60_000),
    });
    const body = await response.text();
    return { statusCode: response.status, headers: { 'content-type': response.headers.get('content-type'), location: response.headers.get('location') }, body };
  };

  before(async () => {
    fx = await startApiFixture({ seedExperiment: false });
    // Two training threads: one architecture per core of the 2-core machines.
    workers = startWorkers({ config: fx.config, queues: ['training'], concurrency: 2 });
    await workers.ready();
    base = await fx.listen();
    sourceDir = path.join(fx.root, 'upload-source');
    // InceptionV3 needs 75 px; 6 images per class of 2 classes leave a few for validation and test.
    await generateSyntheticDataset({ outDir: sourceDir, perClass: 6, size: 75, seed: 23, regions: ['hand'] });
  });

  after(async () => {
    // Workers first: they hold Redis connections under the prefix whose keys the fixture deletes.
    await workers?.close();
    await fx?.close();
  });

  it('uploads the synthetic dataset as a zip', async () => {
    const files = (await readdir(sourceDir, { recursive: true })).map(String).filter((file) => file.endsWith('.png')).sort();
    assert.equal(files.length, 12);
    const contents = await Promise.all(files.map((file) => readFile(path.join(sourceDir, file))));
    const archive = await zipBuffer((builder) => files.forEach((file, i) => builder.addBuffer(contents[i] as Buffer, file.split(path.sep).join('/'))));

    const response = await call('POST', `/v1/datasets?id=${DATASET_ID}`, 'train', { body: archive, headers: { 'content-type': 'application/zip' } });
    assert.equal(response.statusCode, 201, response.body);
    assertResponseMatchesSpec('createDataset', response);
    assert.equal(response.headers.location, `/v1/datasets/${DATASET_ID}`);
    const dataset = JSON.parse(response.body) as { id: string; hash: string | null; classes: { name: string; count: number; positive: boolean }[] };
    assert.equal(dataset.id, DATASET_ID);
    assert.match(dataset.hash ?? '', /^[0-9a-f]{64}$/);
    datasetHash = dataset.hash ?? undefined;
    assert.deepEqual(dataset.classes, [
      { name: 'hand_fractured', count: 6, positive: true },
      { name: 'hand_normal', count: 6, positive: false },
    ]);
  });

  it('trains all four architectures, streaming live progress until the experiment completes', async (t) => {
    const started = performance.now();
    const created = await call('POST', '/v1/experiments', 'train', {
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        // No `architectures`: all four is the default.
        datasetId: DATASET_ID,
        imageSize: 75,
        epochs: 1,
        batchSize: 4,
        seed: 5,
        augment: false,
        earlyStoppingPatience: 0,
        reduceLrPatience: 0,
      }),
    });
    assert.equal(created.statusCode, 202, created.body);
    assertResponseMatchesSpec('createExperiment', created);
    const { id, status } = JSON.parse(created.body) as { id: string; status: string };
    assert.equal(created.headers.location, `/v1/experiments/${id}`);
    assert.ok(status === 'queued' || status === 'running', status);
    experimentId = id;

    const stream = await fetch(`${base}/v1/experiments/${id}/events`, {
      headers: { ...fx.auth('train'), accept: 'text/event-stream' },
      signal: AbortSignal.timeout(EXPERIMENT_TIMEOUT_MS),
    });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.ok(stream.body);
    const events: ReceivedEvent[] = [];
    for await (const event of readEvents(stream.body, started)) events.push(event);
    const seconds = (performance.now() - started) / 1000;

    assert.ok(events.length >= 2, `more than the first state: got ${events.length} event(s)`);
    const states = events.map((event, i) => {
      assert.equal(event.event, 'experiment', `event ${i} is an experiment event`);
      assert.equal(event.id, String(i), 'events are numbered from 0');
      const data = JSON.parse(event.data) as ExperimentBody;
      assertMatchesSpec('getExperiment', 200, data);
      assert.equal(data.id, id);
      return data;
    });
    const last = states.at(-1) as ExperimentBody;
    assert.deepEqual(last.settings.architectures, ARCHITECTURES, 'all four architectures by default');
    assert.deepEqual([last.settings.imageSize, last.settings.epochs, last.settings.batchSize], [75, 1, 4]);
    assert.equal(last.status, 'completed', `the stream ends with the final state: ${events.at(-1)?.data.slice(0, 400)}`);
    assert.ok(states.slice(0, -1).every((state) => state.status === 'queued' || state.status === 'running'), 'no final state before the last event');

    // Progress moves: each architecture's progress never goes back, and some event shows the
    // experiment part-way (an architecture mid-epoch, or some finished while others are not).
    const seen = new Map<string, number>();
    for (const state of states) {
      for (const architecture of state.architectures) {
        const before = seen.get(architecture.architecture) ?? 0;
        assert.ok(architecture.progress >= before, `${architecture.architecture} progress went back from ${before} to ${architecture.progress}`);
        seen.set(architecture.architecture, architecture.progress);
      }
    }
    const midEpoch = states.filter((state) => state.architectures.some((a) => a.status === 'running' && a.progress > 0 && a.progress < 1));
    const partlyDone = states.filter((state) => state.status === 'running' && state.architectures.some((a) => a.status === 'completed') && state.architectures.some((a) => a.status !== 'completed'));
    assert.ok(midEpoch.length + partlyDone.length > 0, `an event shows the experiment part-way: ${JSON.stringify(states.map((s) => s.architectures.map((a) => [a.status, a.progress])))}`);

    assert.deepEqual(
      last.architectures.map((a) => [a.architecture, a.status, a.epoch, a.epochs, a.progress, a.history.length]),
      ARCHITECTURES.map((a) => [a, 'completed', 1, 1, 1, 1]),
    );
    for (const architecture of last.architectures) assert.ok(architecture.result && architecture.result.params > 0, `${architecture.architecture} has a result`);
    assert.ok(last.winner, 'a winner is named');
    assert.equal(last.winner.modelId, `${id}-${last.winner.architecture}`);
    assert.equal(last.winner.promoted, true, 'no model held production, so the winner got it');
    assert.equal(last.reportUrl, `/v1/reports/${id}`);
    final = last;

    const message =
      `four architectures through the API (75 px, 1 epoch, 12 images, 2 training threads): ${seconds.toFixed(1)} s from POST to completed; ` +
      `${events.length} events, ${midEpoch.length} mid-epoch, ${partlyDone.length} part-done; winner ${last.winner.architecture}; ` +
      last.architectures.map((a) => `${a.architecture} ${(a.result as unknown as { trainSeconds: number }).trainSeconds.toFixed(1)} s`).join(', ');
    t.diagnostic(message);

    const get = await call('GET', `/v1/experiments/${id}`, 'train');
    assert.equal(get.statusCode, 200);
    assertResponseMatchesSpec('getExperiment', get);
    const current = JSON.parse(get.body) as ExperimentBody;
    assert.equal(current.status, 'completed');
    assert.deepEqual(current.winner, last.winner);
  });

  it('reports four results with a ranking and the winner', async () => {
    assert.ok(experimentId && final?.winner, 'the experiment completed');
    const response = await call('GET', `/v1/reports/${experimentId}`, 'train', { headers: { accept: 'application/json' } });
    assert.equal(response.statusCode, 200, response.body.slice(0, 300));
    assertResponseMatchesSpec('getReport', response);
    const report = JSON.parse(response.body) as {
      experimentId: string;
      dataset: { hash: string; classNames: string[] };
      results: { architecture: string; history: unknown[] }[];
      ranking: { metric: string; entries: { rank: number; architecture: string }[] };
      winner: { architecture: string; metric: string; score: number | null; reason: string } | null;
    };
    assert.equal(report.experimentId, experimentId);
    assert.equal(report.dataset.hash, datasetHash, 'the report names the uploaded dataset by its hash');
    assert.deepEqual(report.dataset.classNames, CLASSES);
    assert.deepEqual(report.results.map((result) => result.architecture).sort(), [...ARCHITECTURES].sort());
    for (const result of report.results) assert.equal(result.history.length, 1, `${result.architecture}: one epoch`);
    assert.deepEqual(report.ranking.entries.map((entry) => entry.rank), [1, 2, 3, 4]);
    assert.deepEqual(report.ranking.entries.map((entry) => entry.architecture).sort(), [...ARCHITECTURES].sort());
    assert.ok(report.winner);
    assert.equal(report.winner.architecture, report.ranking.entries[0]?.architecture, 'the winner ranks first');
    assert.deepEqual(
      { architecture: report.winner.architecture, metric: report.winner.metric, score: report.winner.score, reason: report.winner.reason },
      { architecture: final.winner.architecture, metric: final.winner.metric, score: final.winner.score, reason: final.winner.reason },
    );
  });

  it('registers the four models and gives the winner the production alias', async () => {
    assert.ok(experimentId && final?.winner, 'the experiment completed');
    const response = await call('GET', '/v1/models', 'predict');
    assert.equal(response.statusCode, 200);
    assertResponseMatchesSpec('listModels', response);
    const { models, aliases } = JSON.parse(response.body) as {
      models: { id: string; architecture: string; experimentId?: string; datasetHash: string; classes: string[]; input: { height: number; width: number; channels: number }; aliases: string[] }[];
      aliases: Record<string, string>;
    };
    const ours = models.filter((model) => model.experimentId === experimentId);
    assert.deepEqual(ours.map((model) => model.architecture).sort(), [...ARCHITECTURES].sort());
    assert.deepEqual(ours.map((model) => model.id).sort(), ARCHITECTURES.map((a) => `${experimentId}-${a}`).sort());
    for (const model of ours) {
      assert.deepEqual(model.classes, CLASSES);
      assert.deepEqual(model.input, { height: 75, width: 75, channels: 3 });
      assert.equal(model.datasetHash, datasetHash, `${model.id} records the uploaded dataset's hash`);
    }
    assert.equal(aliases.production, final.winner.modelId);
    assert.deepEqual(ours.find((model) => model.id === final?.winner?.modelId)?.aliases, ['production']);
  });

  it('answers /v1/predict with the winner for an image of the dataset, leaking no tensor', async () => {
    assert.ok(final?.winner, 'the experiment completed');
    const winner = final.winner;
    const image = await readFile(path.join(sourceDir, 'hand_fractured', (await readdir(path.join(sourceDir, 'hand_fractured')))[0] as string));
    const predict = async () => {
      const form = new FormData();
      form.append('image', new Blob([image], { type: 'image/png' }), 'scan.png');
      const response = await call('POST', '/v1/predict', 'predict', { body: form });
      assert.equal(response.statusCode, 200, response.body.slice(0, 300));
      assertResponseMatchesSpec('predict', response);
      return JSON.parse(response.body) as { model: { id: string; architecture: string }; predictions: { label: string; probabilities: Record<string, number>; fractureProbability: number | null }[] };
    };
    // The first request loads the model (its weights stay); a second must not leave tensors behind.
    const first = await predict();
    const tensors = tf.memory().numTensors;
    const second = await predict();
    assert.equal(tf.memory().numTensors, tensors, 'no tensor leaked by a prediction');

    assert.equal(first.model.id, winner.modelId);
    assert.equal(first.model.architecture, winner.architecture);
    const [prediction] = first.predictions;
    assert.ok(prediction);
    assert.deepEqual(Object.keys(prediction.probabilities).sort(), CLASSES);
    const sum = Object.values(prediction.probabilities).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-4, `probabilities sum to 1: ${sum}`);
    assert.ok(CLASSES.includes(prediction.label));
    assert.ok(prediction.fractureProbability !== null && Math.abs(prediction.fractureProbability - (prediction.probabilities.hand_fractured ?? NaN)) < 1e-5);
    assert.deepEqual(second.predictions, first.predictions, 'the same image gets the same answer');
  });
});
