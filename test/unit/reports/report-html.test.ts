/**
 * The HTML report page: complete, accessible markup with tables, inline SVG charts, the winner and
 * the intended-use notice, and every user string escaped.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  escapeHtml,
  INTENDED_USE_NOTICE,
  renderAllChartsSvg,
  renderReportHtml,
  toReportView,
  type ChartSvg,
  type ReportView,
} from '../../../src/services/reports/index.ts';
import { fourArchitectureVariant, makeRealReport, removeRealReport, SCRIPT_CLASS, TRICKY_CLASSES, withRocCurves, type RealReport } from './fixtures.ts';

/** Elements whose open and close tags must balance in the page. */
const CONTAINERS = ['html', 'head', 'body', 'header', 'main', 'footer', 'section', 'table', 'thead', 'tbody', 'tr', 'figure', 'figcaption', 'details', 'svg', 'dl', 'nav', 'ul'];

function count(text: string, pattern: RegExp): number {
  return [...text.matchAll(pattern)].length;
}

function assertBalanced(page: string): void {
  for (const tag of CONTAINERS) {
    const opened = count(page, new RegExp(`<${tag}[\\s>]`, 'g'));
    const closed = count(page, new RegExp(`</${tag}>`, 'g'));
    assert.equal(opened, closed, `<${tag}> opened ${opened} times, closed ${closed} times`);
  }
}

describe('renderReportHtml', () => {
  let real: RealReport | undefined;
  let view: ReportView;
  let charts: ChartSvg[];
  let page: string;
  let variant: ReportView;
  let variantPage: string;

  before(async () => {
    real = await makeRealReport();
    view = toReportView('exp-1', withRocCurves(real.report), { datasetId: 'synthetic-1' });
    charts = await renderAllChartsSvg(view);
    page = renderReportHtml(view, charts);
    variant = toReportView('exp-<4>', fourArchitectureVariant(real.report));
    variantPage = renderReportHtml(variant, await renderAllChartsSvg(variant));
  });
  after(() => removeRealReport(real));

  it('is a complete document with a language, a title, headings and the intended-use notice', () => {
    assert.match(page, /^<!doctype html>\n<html lang="en">/);
    assert.match(page, /<meta charset="utf-8">/);
    assert.match(page, /<title>Comparison report: experiment exp-1<\/title>/);
    assert.equal(count(page, /<h1[ >]/g), 1);
    assert.ok(count(page, /<h2 id="[^"]+">/g) >= 7);
    assert.ok(page.includes(INTENDED_USE_NOTICE));
    assert.match(page, /<p class="notice" role="note">For research use only\. Not for use in diagnostic procedures\.<\/p>/);
    assertBalanced(page);
    assertBalanced(variantPage);
  });

  it('names the winner and the reason', () => {
    const winner = view.winner;
    assert.ok(winner);
    assert.ok(page.includes(`<strong id="winner-architecture">${winner.architecture}</strong>`));
    assert.ok(page.includes(`<p id="winner-reason">${escapeHtml(winner.reason)}</p>`));
    assert.ok(variantPage.includes('<strong id="winner-architecture">cnn</strong>'));
  });

  it('has captioned tables with header scopes: ranking, binary view, per class, confusion matrices, history, dataset', () => {
    const tables = count(page, /<table id="/g);
    assert.equal(count(page, /<caption id="[^"]+">/g), tables, 'every table has a caption');
    // ranking + binary + per architecture (per-class, confusion, history) + dataset
    assert.equal(tables, 3 + 3 * view.results.length);
    assert.ok(page.includes('<th scope="col"'));
    assert.ok(page.includes('<th scope="row">cnn</th>'));
    for (const className of view.dataset.classNames) assert.ok(page.includes(`<th scope="row">${className}</th>`), className);
    const f1 = view.results[0]!.metrics.macroAvg.f1.toFixed(4);
    assert.ok(page.includes(`<td class="num">${f1}</td>`), 'the macro F1 appears in the tables');
    assert.ok(page.includes('Binary fracture view on the test split'));
    // Four architectures: per-class and confusion tables for each.
    assert.equal(count(variantPage, /<table id="class-[a-z0-9]+-table"/g), 4);
    assert.equal(count(variantPage, /<table id="class-[a-z0-9]+-confusion"/g), 4);
    assert.ok(variantPage.includes('The binary fracture view is not defined for this dataset'));
  });

  it('inlines every chart as SVG with an accessible name', () => {
    assert.equal(count(page, /<svg /g), charts.length);
    assert.ok(charts.length >= 4, 'metrics, learning curves, ROC, confusion matrix');
    for (const chart of charts) {
      assert.ok(page.includes(`<figure id="chart-${chart.name}"`), chart.name);
      assert.ok(page.includes(`aria-labelledby="${chart.name}-title ${chart.name}-desc"`), chart.name);
    }
    const ids = [...page.matchAll(/\bid="([^"]+)"/g)].map((m) => m[1]);
    assert.equal(new Set(ids).size, ids.length, 'ids are unique across the page');
  });

  it('escapes user strings: class names, experiment ids, and never emits a script element', () => {
    assert.ok(!variantPage.includes('<script'), 'no script element anywhere');
    assert.ok(variantPage.includes(escapeHtml(SCRIPT_CLASS)), 'the class name is shown, escaped');
    assert.ok(variantPage.includes('<title>Comparison report: experiment exp-&lt;4&gt;</title>'));
    assert.ok(variantPage.includes(`<th scope="row">${escapeHtml(TRICKY_CLASSES[0]!)}</th>`), 'quotes escaped');
    assert.ok(!/<[a-z]+ [^>]*onerror=/i.test(variantPage));
  });

  it('loads nothing from elsewhere and runs no script', () => {
    for (const p of [page, variantPage]) {
      assert.doesNotMatch(p, /<(script|link|iframe|img|object|embed)\b/i);
      assert.doesNotMatch(p, /\b(src|href)="(https?:)?\/\//i);
      assert.doesNotMatch(p, /url\((?!#)/, 'no external url() in CSS or SVG');
    }
  });

  it('renders a four-architecture page with its charts quickly', async (t) => {
    const started = performance.now();
    const pageCharts = await renderAllChartsSvg(variant);
    const chartsMs = performance.now() - started;
    const htmlStarted = performance.now();
    const text = renderReportHtml(variant, pageCharts);
    const htmlMs = performance.now() - htmlStarted;
    t.diagnostic(`${pageCharts.length} charts as SVG ${chartsMs.toFixed(0)} ms, page ${htmlMs.toFixed(1)} ms, ${(text.length / 1024).toFixed(0)} KiB`);
    assert.equal(text, variantPage, 'the page is deterministic');
    assert.ok(htmlMs < 1000);
  });

  it('escapes with the five HTML entities', () => {
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });
});
