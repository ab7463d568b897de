/**
 * Reports over HTTP on real services: the report of the experiment the fixture really trained, as
 * JSON (checked against the Report schema), as the HTML page (tables, inline SVG charts, a strict
 * CSP), as both CSV tables, and each chart it lists as SVG and as PNG; and the problem documents for
 * an unknown chart, an unknown experiment and an experiment that has not finished.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { newExperimentId } from '../../../src/services/experiments/experiment-id.ts';
import { ExperimentRecords } from '../../../src/services/experiments/experiment-records.ts';
import { resolveExperimentSettings } from '../../../src/services/experiments/experiment-settings.ts';
import { assertResponseMatchesSpec, startApiFixture, type ApiFixture, type SeededExperiment } from './api-fixture.ts';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** Rows of an RFC 4180 CSV without quoted line breaks (enough for these tables). */
function csvRows(text: string): string[][] {
  return text
    .split('\r\n')
    .filter((line) => line.length > 0)
    .map((line) => line.split(','));
}

describe('reports over HTTP', () => {
  let fx: ApiFixture;
  let seeded: SeededExperiment;
  let charts: string[];

  before(async () => {
    fx = await startApiFixture();
    assert.ok(fx.experiment);
    seeded = fx.experiment;
  });
  after(() => fx?.close());

  it('answers JSON by default, valid against the Report schema, with the trained result and its charts', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^application\/json/);
    assertResponseMatchesSpec('getReport', response);
    const report = response.json();
    assert.equal(report.experimentId, seeded.id);
    assert.equal(report.dataset.id, seeded.datasetId);
    assert.equal(report.dataset.hash, seeded.report.dataset.hash);
    assert.deepEqual(
      report.results.map((result: { architecture: string; modelId: string }) => [result.architecture, result.modelId]),
      [['cnn', seeded.modelId]],
    );
    assert.equal(report.results[0].metrics.accuracy, seeded.report.results[0]?.metrics.accuracy);
    assert.equal(report.winner.architecture, 'cnn');
    assert.equal(report.provenance.backend.name, seeded.report.backend.name);
    charts = report.charts;
    for (const name of ['metrics', 'learning-curves', 'confusion-matrix-cnn']) assert.ok(charts.includes(name), `charts lists ${name}: ${charts.join(', ')}`);
  });

  it('answers Accept: text/html with a page of tables and inline SVG charts under a strict CSP', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}`, headers: { ...fx.auth('train'), accept: 'text/html' } });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/html/);
    assertResponseMatchesSpec('getReport', response);
    const csp = String(response.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.doesNotMatch(csp, /script-src/);
    assert.match(response.body, /<table/);
    assert.match(response.body, /<svg/);
    assert.doesNotMatch(response.body, /<script/i);
    assert.match(response.body, new RegExp(seeded.id));
  });

  it('answers ?format=csv with the summary table, one row per architecture', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}?format=csv`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/csv/);
    assertResponseMatchesSpec('getReport', response);
    const [header, ...rows] = csvRows(response.body);
    assert.ok(header);
    const column = header.indexOf('architecture');
    assert.ok(column >= 0 && column <= 1, `architecture is a leading column: ${header.slice(0, 3).join(',')}`);
    assert.deepEqual(
      rows.map((row) => row[column]),
      ['cnn'],
    );
    assert.equal(Number(rows[0]?.[header.indexOf('accuracy')]), seeded.report.results[0]?.metrics.accuracy);
  });

  it('answers ?format=csv&table=perClass with one row per architecture and class, architecture first', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}?format=csv&table=perClass`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 200);
    assert.match(String(response.headers['content-type']), /^text\/csv/);
    assertResponseMatchesSpec('getReport', response);
    const [header, ...rows] = csvRows(response.body);
    assert.equal(header?.[0], 'architecture');
    const classes = seeded.report.dataset.classNames;
    assert.deepEqual(
      rows.map((row) => row[0]),
      classes.map(() => 'cnn'),
    );
    assert.deepEqual(
      rows.map((row) => row[1]),
      classes,
    );
  });

  it('serves every chart the report lists as SVG and as PNG', async () => {
    assert.ok(charts.length >= 3);
    for (const name of charts) {
      const svg = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}/charts/${name}`, headers: fx.auth('train') });
      assert.equal(svg.statusCode, 200, name);
      assert.match(String(svg.headers['content-type']), /^image\/svg\+xml/, name);
      assertResponseMatchesSpec('getReportChart', svg);
      assert.match(svg.body, /<svg[\s>]/, name);
      assert.match(svg.body, /<\/svg>\s*$/, name);

      const png = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}/charts/${name}?format=png`, headers: fx.auth('train') });
      assert.equal(png.statusCode, 200, name);
      assert.match(String(png.headers['content-type']), /^image\/png/, name);
      assertResponseMatchesSpec('getReportChart', png);
      assert.deepEqual(png.rawPayload.subarray(0, 8), PNG_SIGNATURE, name);
      assert.ok(png.rawPayload.length > 1000, `${name}: a real picture, ${png.rawPayload.length} bytes`);
    }
    // The Accept header chooses too.
    const negotiated = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}/charts/metrics`, headers: { ...fx.auth('train'), accept: 'image/png' } });
    assertResponseMatchesSpec('getReportChart', negotiated);
    assert.deepEqual(negotiated.rawPayload.subarray(0, 8), PNG_SIGNATURE);
  });

  it('answers an unknown chart with 404 CHART_NOT_FOUND', async () => {
    const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}/charts/confusion-matrix-vgg16`, headers: fx.auth('train') });
    assert.equal(response.statusCode, 404);
    assertResponseMatchesSpec('getReportChart', response);
    assert.equal(response.json().code, 'CHART_NOT_FOUND');
  });

  it('answers the report of an unknown experiment with 404 REPORT_NOT_FOUND, in every format', async () => {
    for (const query of ['', '?format=html', '?format=csv']) {
      const response = await fx.app.inject({ method: 'GET', url: `/v1/reports/exp-19990101-000000-dead${query}`, headers: fx.auth('train') });
      assert.equal(response.statusCode, 404, query);
      assertResponseMatchesSpec('getReport', response);
      assert.equal(response.json().code, 'REPORT_NOT_FOUND');
    }
    const chart = await fx.app.inject({ method: 'GET', url: '/v1/reports/exp-19990101-000000-dead/charts/metrics', headers: fx.auth('train') });
    assert.equal(chart.statusCode, 404);
    assertResponseMatchesSpec('getReportChart', chart);
    assert.equal(chart.json().code, 'REPORT_NOT_FOUND');
  });

  it(
    'answers a report id the contract allows but no folder can have (`a..b`) with 404, not 500',
    {
    },
    async () => {
      for (const url of ['/v1/reports/a..b', '/v1/reports/a..b/charts/metrics']) {
        const response = await fx.app.inject({ method: 'GET', url, headers: fx.auth('train') });
        assert.equal(response.statusCode, 404, `${url} answered ${response.statusCode} ${response.json().code}`);
        assert.equal(response.json().code, 'REPORT_NOT_FOUND');
      }
    },
  );

  it('answers the report of a queued experiment with 409 REPORT_NOT_READY', async () => {
    const records = new ExperimentRecords(fx.context.store);
    const { settings } = resolveExperimentSettings({ datasetId: seeded.datasetId, architectures: ['cnn'], imageSize: 32, epochs: 1 });
    const id = newExperimentId();
    assert.ok(await records.create({ schemaVersion: 1, id, datasetId: seeded.datasetId, settings, status: 'queued', createdAt: new Date().toISOString(), compareRuns: 0 }));
    for (const url of [`/v1/reports/${id}`, `/v1/reports/${id}?format=html`, `/v1/reports/${id}/charts/metrics`]) {
      const response = await fx.app.inject({ method: 'GET', url, headers: fx.auth('train') });
      assert.equal(response.statusCode, 409, url);
      assertResponseMatchesSpec(url.includes('/charts/') ? 'getReportChart' : 'getReport', response);
      assert.equal(response.json().code, 'REPORT_NOT_READY');
      assert.match(response.json().detail, /queued/);
    }
  });

  it('answers an Accept header it cannot satisfy with 406 NOT_ACCEPTABLE, and a predict-only key with 403', async () => {
    const unacceptable = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}`, headers: { ...fx.auth('train'), accept: 'image/gif' } });
    assert.equal(unacceptable.statusCode, 406);
    assertResponseMatchesSpec('getReport', unacceptable);
    assert.equal(unacceptable.json().code, 'NOT_ACCEPTABLE');
    const forbidden = await fx.app.inject({ method: 'GET', url: `/v1/reports/${seeded.id}`, headers: fx.auth('predict') });
    assert.equal(forbidden.statusCode, 403);
    assertResponseMatchesSpec('getReport', forbidden);
  });
});
