/**
 * Every chart a report lists renders to well-formed SVG (Vega) and to PNG (sharp), names what it
 * shows, escapes user data, and renders to the same bytes every time.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { AppError } from '../../../src/infra/errors.ts';
import { listCharts, renderAllChartsSvg, renderChart, renderChartSvg, toReportView, type ReportView } from '../../../src/services/reports/index.ts';
import {
  assertWellFormedXml,
  fourArchitectureVariant,
  makeRealReport,
  removeRealReport,
  SCRIPT_CLASS,
  withoutRocCurves,
  withRocCurves,
  type RealReport,
} from './fixtures.ts';

/** Axis and legend titles each kind of chart must show. */
function expectedTexts(name: string): string[] {
  if (name === 'metrics') return ['Metric', 'Score', 'Architecture', 'Macro F1'];
  if (name === 'learning-curves') return ['Epoch', 'Loss', 'Accuracy', 'training'];
  if (name.startsWith('confusion-matrix-')) return ['Predicted class', 'True class'];
  if (name.startsWith('roc')) return ['False-positive rate', 'True-positive rate', 'AUC'];
  throw new Error(`unexpected chart ${name}`);
}

/** The architectures a chart must name. */
function expectedArchitectures(view: ReportView, name: string): string[] {
  const own = name.replace(/^(confusion-matrix|roc)-/, '');
  if (own !== name) return [own];
  if (name === 'roc') return view.results.filter((r) => r.roc?.binary).map((r) => r.architecture);
  return view.results.map((r) => r.architecture);
}

async function assertChartRenders(view: ReportView, name: string): Promise<void> {
  const svg = await renderChart(view, name, 'svg');
  assert.match(svg.contentType, /^image\/svg\+xml/);
  const text = svg.body.toString('utf8');
  assert.ok(text.startsWith('<svg'), `${name} is an SVG document`);
  assertWellFormedXml(text);
  for (const expected of [...expectedTexts(name), ...expectedArchitectures(view, name)]) {
    assert.ok(text.includes(expected), `${name} shows "${expected}"`);
  }
  assert.match(text, new RegExp(`<title id="${name}-title">[^<]+</title>`), `${name} has an accessible title`);
  // librsvg parses the SVG as XML too: it fails on malformed markup.
  const svgMeta = await sharp(svg.body).metadata();
  assert.equal(svgMeta.format, 'svg');

  const png = await renderChart(view, name, 'png');
  assert.equal(png.contentType, 'image/png');
  const meta = await sharp(png.body).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 0 && (meta.height ?? 0) > 0);
  assert.equal(meta.width, 2 * (svgMeta.width ?? 0), `${name}: PNG at twice the SVG size by default`);
  // Something was drawn: the image is not one flat colour.
  const stats = await sharp(png.body).stats();
  assert.ok(stats.channels.some((channel) => channel.stdev > 10), `${name} PNG has content`);
}

describe('charts', () => {
  let real: RealReport | undefined;
  let view: ReportView;
  let variant: ReportView;
  let withRoc: ReportView;

  before(async () => {
    real = await makeRealReport();
    view = toReportView('exp-1', withoutRocCurves(real.report));
    variant = toReportView('exp-4', fourArchitectureVariant(real.report));
    withRoc = toReportView('exp-5', withRocCurves(real.report));
  });
  after(() => removeRealReport(real));

  it('lists the charts each report can draw', () => {
    assert.deepEqual(listCharts(view), ['metrics', 'learning-curves', 'confusion-matrix-cnn'], 'no ROC chart without stored curves');
    assert.deepEqual(listCharts(real!.report), ['metrics', 'learning-curves', 'roc', 'confusion-matrix-cnn', 'roc-cnn'], 'the engine stores curves');
    assert.deepEqual(listCharts(withRoc), ['metrics', 'learning-curves', 'roc', 'confusion-matrix-cnn', 'roc-cnn']);
    assert.deepEqual(listCharts(variant), [
      'metrics',
      'learning-curves',
      'confusion-matrix-cnn',
      'confusion-matrix-vgg16',
      'confusion-matrix-resnet50',
      'confusion-matrix-inceptionv3',
      'roc-cnn',
      'roc-vgg16',
    ]);
    assert.deepEqual(listCharts(real!.report), listCharts(toReportView('exp-1', real!.report)), 'an engine report is accepted too');
  });

  it('renders every chart of the real report as SVG and PNG', async () => {
    for (const name of listCharts(withRoc)) await assertChartRenders(withRoc, name);
  });

  it('renders every chart of the four-architecture variant as SVG and PNG', async () => {
    for (const name of listCharts(variant)) await assertChartRenders(variant, name);
  });

  it('uses an XML check that rejects malformed SVG (so the checks above can fail)', async () => {
    assertWellFormedXml('<svg xmlns="http://www.w3.org/2000/svg"><g><text>a &amp; b</text></g></svg>');
    for (const bad of ['<svg><g></svg>', '<svg a="1" a="2"/>', '<svg><text>a & b</text></svg>', '<svg><text><script></text></svg>', '<svg/><svg/>']) {
      assert.throws(() => assertWellFormedXml(bad), bad);
    }
    await assert.rejects(sharp(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><g></svg>')).png().toBuffer());
  });

  it('escapes class names in the SVG', async () => {
    assert.ok(variant.dataset.classNames.includes(SCRIPT_CLASS), 'the variant has the hostile class name');
    const { svg } = await renderChartSvg(variant, 'confusion-matrix-cnn');
    assert.ok(!svg.includes('<script'), 'no script element');
    assert.ok(svg.includes('&lt;script&gt;'), 'the class name is shown, escaped');
    const roc = await renderChartSvg(variant, 'roc-cnn');
    assert.ok(!roc.svg.includes('<script'));
  });

  it('compiles without Vega or Vega-Lite warnings', async () => {
    for (const chart of [...(await renderAllChartsSvg(withRoc)), ...(await renderAllChartsSvg(variant))]) {
      assert.deepEqual(chart.warnings, [], chart.name);
    }
  });

  it('draws the metric bars from the view numbers and leaves undefined metrics out', async () => {
    const { svg } = await renderChartSvg(variant, 'metrics');
    // Vega labels each bar for assistive technology with its data.
    assert.match(svg, /aria-label="Metric: Accuracy; Score: 0\.7; architecture: inceptionv3;/);
    assert.match(svg, /aria-label="Metric: MCC; Score: −0\.2; architecture: cnn;/, 'a negative MCC is drawn below zero');
    assert.ok(!svg.includes('Sensitivity'), 'no binary view: no sensitivity bars');
    assert.match(svg, /Metric: ROC AUC \(OvR\); Score: [^;]+; architecture: resnet50;/);
    assert.doesNotMatch(svg, /Metric: ROC AUC \(OvR\); Score: [^;]+; architecture: inceptionv3;/, 'a null ROC AUC is not drawn');
  });

  it('renders to the same bytes every time, whatever was rendered before', async () => {
    const names = listCharts(variant);
    const first = await Promise.all(names.map((name) => renderChart(variant, name, 'svg')));
    await renderAllChartsSvg(withRoc);
    const second = await Promise.all([...names].reverse().map((name) => renderChart(variant, name, 'svg')));
    second.reverse();
    names.forEach((name, i) => assert.ok(first[i]!.body.equals(second[i]!.body), `${name} SVG is deterministic`));
    const pngA = await renderChart(variant, 'learning-curves', 'png');
    const pngB = await renderChart(variant, 'learning-curves', 'png');
    assert.ok(pngA.body.equals(pngB.body), 'PNG is deterministic');
  });

  it('gives each chart its own ids, so several charts can share a page', async () => {
    const charts = await renderAllChartsSvg(variant);
    const ids = charts.flatMap((chart) => [...chart.svg.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]!));
    assert.ok(ids.some((id) => id.startsWith('metrics-')), 'clip paths and gradients are renamed');
    assert.equal(new Set(ids).size, ids.length, 'no id repeats across charts');
    for (const chart of charts) {
      for (const [, ref] of chart.svg.matchAll(/url\(#([^)]+)\)/g)) {
        assert.ok(chart.svg.includes(`id="${ref}"`), `${chart.name}: reference #${ref} resolves`);
      }
    }
  });

  it('scales PNG output on request', async () => {
    const one = await sharp((await renderChart(view, 'metrics', 'png', { scale: 1 })).body).metadata();
    const three = await sharp((await renderChart(view, 'metrics', 'png', { scale: 3 })).body).metadata();
    assert.equal(three.width, 3 * (one.width ?? 0));
    await assert.rejects(renderChart(view, 'metrics', 'png', { scale: 10 }), (error) => error instanceof AppError && error.code === 'VALIDATION_FAILED');
  });

  it('answers CHART_NOT_FOUND for a chart the report does not have, without echoing the name', async () => {
    for (const name of ['nope', 'roc', 'confusion-matrix-vgg16', '__proto__', 'confusion-matrix-<b>']) {
      await assert.rejects(renderChart(view, name, 'svg'), (error) => {
        assert.ok(error instanceof AppError);
        assert.equal(error.code, 'CHART_NOT_FOUND');
        assert.equal(error.status, 404);
        assert.ok(!error.message.includes('<b>'));
        assert.match(error.message, /metrics, learning-curves, confusion-matrix-cnn/);
        return true;
      });
    }
    await assert.rejects(renderChart(view, 'metrics', 'gif' as 'svg'), (error) => error instanceof AppError && error.code === 'NOT_ACCEPTABLE');
  });

  it('renders all charts of a four-architecture report in well under a few seconds', async (t) => {
    const started = performance.now();
    const svgs = await renderAllChartsSvg(variant);
    const svgMs = performance.now() - started;
    const pngStarted = performance.now();
    for (const chart of svgs) await renderChart(variant, chart.name, 'png');
    const pngMs = performance.now() - pngStarted;
    t.diagnostic(`${svgs.length} charts: all SVG ${svgMs.toFixed(0)} ms, all PNG (SVG + rasterise) ${pngMs.toFixed(0)} ms`);
    assert.ok(svgMs < 10_000 && pngMs < 20_000);
  });
});
