/**
 * The comparison report as one self-contained HTML page (`GET /v1/reports/{id}` with
 * `Accept: text/html`): the winner and why, the ranking table, the binary fracture view, the charts
 * inline as SVG, per-class tables and confusion matrices, training history, dataset, settings and
 * provenance. No scripts and no external resources (small inline CSS), so it works offline, under a
 * strict Content-Security-Policy (`default-src 'none'; style-src 'unsafe-inline'`)
 * and saved to disk.
 *
 * Every interpolated string is escaped by the {@link html} template tag: class names are folder names,
 * which are user data.
 * @module
 */
import type { ChartSvg } from './charts/index.ts';
import { html, trustedHtml, type SafeHtml } from './html-template.ts';
import { RANK_METRIC_LABELS } from './metric-labels.ts';
import type { ClassMetricsView, ReportView, ResultView } from './report-view.ts';

/** The intended-use notice every report page carries (DESIGN.md section 7). */
export const INTENDED_USE_NOTICE = 'For research use only. Not for use in diagnostic procedures.';

/** The chart parts the page needs (a {@link ChartSvg} fits). */
export type PageChart = Pick<ChartSvg, 'name' | 'title' | 'description' | 'svg'>;

const STYLE = `
:root{color-scheme:light;--fg:#1f2933;--muted:#52606d;--line:#d9e2ec;--head:#f0f4f8;--accent:#1f5f99;--warn-bg:#fff4e5;--warn:#8a4b00}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--fg);background:#fff}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 1.25rem}
h1{font-size:1.7rem;margin:1.2rem 0 .3rem}h2{font-size:1.3rem;margin:2rem 0 .6rem;border-bottom:2px solid var(--line);padding-bottom:.2rem}h3{font-size:1.1rem;margin:1.4rem 0 .4rem}
a{color:var(--accent)}a:focus-visible,[tabindex]:focus-visible,summary:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
.meta{color:var(--muted);margin:.2rem 0}
.notice{background:var(--warn-bg);color:var(--warn);border-left:4px solid var(--warn);padding:.6rem .9rem;font-weight:600}
.winner{border:1px solid var(--line);border-left:4px solid var(--accent);padding:.6rem .9rem;background:#f7fbff}
nav ul{display:flex;flex-wrap:wrap;gap:.3rem 1rem;padding:0;list-style:none;margin:.6rem 0}
.table-wrap{overflow-x:auto;margin:.4rem 0 1rem}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.92rem}
caption{text-align:left;font-weight:600;padding:.3rem 0;caption-side:top}
th,td{border:1px solid var(--line);padding:.3rem .55rem;vertical-align:top}
thead th{background:var(--head);text-align:left}
tbody th{text-align:left}
td.num,th.num{text-align:right}
tbody tr:nth-child(even){background:#fafcfe}
tr.average th,tr.average td{background:var(--head)}
td.hit{font-weight:700}
figure{margin:1rem 0;overflow-x:auto}figure svg{max-width:100%;height:auto}
figcaption{color:var(--muted);font-size:.9rem}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
code{font-size:.9em;word-break:break-all}
footer{margin:2rem auto;color:var(--muted)}
`.trim();

/** 4 decimals; `n/a` (with an explanation) for an undefined metric. */
function metric(value: number | null | undefined, digits = 4): SafeHtml {
  if (value === null || value === undefined || !Number.isFinite(value)) return html`<abbr title="not defined for this data">n/a</abbr>`;
  return html`${value.toFixed(digits)}`;
}

function integer(value: number): string {
  return value.toLocaleString('en-US');
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(2)} MB`;
}

function percentage(value: number): string {
  return `${(value * 100).toFixed(1)} %`;
}

/** Results in ranking order; unranked ones after, in training order. */
function ranked(view: ReportView): ResultView[] {
  return [...view.results].sort((a, b) => (a.rank ?? Number.POSITIVE_INFINITY) - (b.rank ?? Number.POSITIVE_INFINITY));
}

/** A captioned table in a scrollable, keyboard-focusable region named by its caption. */
function table(id: string, caption: SafeHtml | string, head: readonly (string | SafeHtml)[], body: SafeHtml[], numericFrom = 1): SafeHtml {
  return html`<div class="table-wrap" role="region" aria-labelledby="${id}-caption" tabindex="0"><table id="${id}">
<caption id="${id}-caption">${caption}</caption>
<thead><tr>${head.map((cell, i) => html`<th scope="col"${i >= numericFrom ? html` class="num"` : ''}>${cell}</th>`)}</tr></thead>
<tbody>
${body}
</tbody></table></div>
`;
}

function winnerSection(view: ReportView): SafeHtml {
  const { winner } = view;
  if (winner === null) {
    return html`<section aria-labelledby="winner-heading"><h2 id="winner-heading">Winner</h2>
<p class="winner">No architecture finished training, so there is no winner.</p></section>`;
  }
  return html`<section aria-labelledby="winner-heading"><h2 id="winner-heading">Winner</h2>
<div class="winner"><p><strong id="winner-architecture">${winner.architecture}</strong> ranks first by ${RANK_METRIC_LABELS[winner.metric]}${
    winner.score === null ? '' : html` (${metric(winner.score)})`
  } on the test split.</p>
<p id="winner-reason">${winner.reason}</p></div></section>`;
}

function rankingSection(view: ReportView): SafeHtml {
  const head = ['Rank', 'Architecture', 'Accuracy', 'Balanced accuracy', 'Macro F1', 'Weighted F1', 'MCC', "Cohen's kappa", 'ROC AUC (OvR macro)', 'Log loss', 'ECE', 'Parameters', 'Model size', 'Train time', 'Train images/s', 'Inference ms/image', 'Epochs (best)'];
  const rows = ranked(view).map((r) => {
    const m = r.metrics;
    return html`<tr><td class="num">${r.rank ?? '-'}</td><th scope="row">${r.architecture}</th><td class="num">${metric(m.accuracy)}</td><td class="num">${metric(m.balancedAccuracy)}</td><td class="num">${metric(m.macroAvg.f1)}</td><td class="num">${metric(m.weightedAvg.f1)}</td><td class="num">${metric(m.mcc)}</td><td class="num">${metric(m.cohenKappa)}</td><td class="num">${metric(m.rocAucOvrMacro)}</td><td class="num">${metric(m.logLoss)}</td><td class="num">${metric(m.ece)}</td><td class="num">${integer(r.params)}</td><td class="num">${megabytes(r.modelBytes)}</td><td class="num">${r.timings.trainSeconds.toFixed(1)} s</td><td class="num">${r.timings.trainImagesPerSecond.toFixed(1)}</td><td class="num">${r.timings.inferenceMsPerImage.toFixed(2)}</td><td class="num">${r.history.length} (${r.bestEpoch})${r.stoppedEarly ? ', stopped early' : ''}</td></tr>`;
  });
  const caption = `Architectures ranked by ${RANK_METRIC_LABELS[view.ranking.metric]} on the test split (${integer(view.dataset.counts.test)} images)`;
  return html`<section aria-labelledby="ranking-heading"><h2 id="ranking-heading">Ranking</h2>
${table('ranking-table', caption, head, rows, 2)}</section>`;
}

function binarySection(view: ReportView): SafeHtml {
  const withBinary = ranked(view).filter((r) => r.metrics.binary !== null);
  if (withBinary.length === 0) {
    return html`<section aria-labelledby="binary-heading"><h2 id="binary-heading">Fracture vs no fracture</h2>
<p>The binary fracture view is not defined for this dataset: no class, or every class, is fracture-positive.</p></section>`;
  }
  const positives = withBinary[0]!.metrics.binary!.positiveClasses;
  const head = ['Architecture', 'TP', 'FP', 'TN', 'FN', 'Sensitivity', 'Specificity', 'PPV', 'NPV', 'F1', 'Accuracy', 'ROC AUC'];
  const rows = withBinary.map((r) => {
    const b = r.metrics.binary!;
    return html`<tr><th scope="row">${r.architecture}</th><td class="num">${b.tp}</td><td class="num">${b.fp}</td><td class="num">${b.tn}</td><td class="num">${b.fn}</td><td class="num">${metric(b.sensitivity)}</td><td class="num">${metric(b.specificity)}</td><td class="num">${metric(b.precision)}</td><td class="num">${metric(b.npv)}</td><td class="num">${metric(b.f1)}</td><td class="num">${metric(b.accuracy)}</td><td class="num">${metric(b.rocAuc)}</td></tr>`;
  });
  return html`<section aria-labelledby="binary-heading"><h2 id="binary-heading">Fracture vs no fracture</h2>
<p>Fracture-positive classes: ${positives.map((name, i) => html`${i > 0 ? ', ' : ''}<code>${name}</code>`)}. Every other class counts as no fracture.</p>
${table('binary-table', 'Binary fracture view on the test split', head, rows)}</section>`;
}

function chartsSection(charts: readonly PageChart[]): SafeHtml {
  if (charts.length === 0) return html``;
  return html`<section aria-labelledby="charts-heading"><h2 id="charts-heading">Charts</h2>
${charts.map(
  (chart) => html`<figure id="chart-${chart.name}" aria-labelledby="chart-${chart.name}-caption">
${trustedHtml(chart.svg)}
<figcaption id="chart-${chart.name}-caption"><strong>${chart.title}.</strong> ${chart.description}</figcaption>
</figure>
`,
)}</section>`;
}

function classRow(label: SafeHtml, metrics: ClassMetricsView, positive: SafeHtml | string, className = ''): SafeHtml {
  return html`<tr${className ? html` class="${className}"` : ''}>${label}<td>${positive}</td><td class="num">${metric(metrics.precision)}</td><td class="num">${metric(metrics.recall)}</td><td class="num">${metric(metrics.f1)}</td><td class="num">${integer(metrics.support)}</td></tr>`;
}

function perClassSection(view: ReportView): SafeHtml {
  const classNames = view.dataset.classNames;
  const blocks = ranked(view).map((r) => {
    const id = `class-${r.architecture}`;
    const rows = [
      ...r.metrics.perClass.map((row) => classRow(html`<th scope="row">${row.className}</th>`, row, row.positive ? 'yes' : 'no')),
      classRow(html`<th scope="row">Macro average</th>`, r.metrics.macroAvg, '', 'average'),
      classRow(html`<th scope="row">Weighted average</th>`, r.metrics.weightedAvg, '', 'average'),
    ];
    const matrixRows = classNames.map((trueClass, t) => {
      const counts = r.metrics.confusionMatrix[t] ?? [];
      return html`<tr><th scope="row">${trueClass}</th>${classNames.map((_, p) => html`<td class="num${p === t ? ' hit' : ''}">${counts[p] ?? 0}</td>`)}</tr>`;
    });
    return html`<h3 id="${id}-heading">${r.architecture}</h3>
${table(`${id}-table`, html`Per-class metrics of ${r.architecture} on the test split`, ['Class', 'Fracture-positive', 'Precision', 'Recall', 'F1', 'Support'], rows, 2)}
${table(`${id}-confusion`, html`Confusion matrix of ${r.architecture}: rows are true classes, columns predicted classes (diagonal in bold)`, ['True \\ predicted', ...classNames], matrixRows)}`;
  });
  return html`<section aria-labelledby="per-class-heading"><h2 id="per-class-heading">Per-class results</h2>
${blocks}</section>`;
}

function historySection(view: ReportView): SafeHtml {
  const blocks = view.results.map((r) => {
    const rows = r.history.map(
      (e) => html`<tr${e.epoch === r.bestEpoch ? html` class="average"` : ''}><th scope="row">${e.epoch}${e.epoch === r.bestEpoch ? ' (best)' : ''}</th><td class="num">${metric(e.loss)}</td><td class="num">${metric(e.accuracy)}</td><td class="num">${metric(e.valLoss)}</td><td class="num">${metric(e.valAccuracy)}</td><td class="num">${e.learningRate.toExponential(2)}</td><td class="num">${e.seconds.toFixed(1)}</td><td class="num">${e.imagesPerSecond.toFixed(1)}</td></tr>`,
    );
    return html`<details><summary>${r.architecture}: ${r.history.length} epochs${r.stoppedEarly ? ', stopped early' : ''}</summary>
${table(`history-${r.architecture}`, html`Per-epoch history of ${r.architecture}`, ['Epoch', 'Loss', 'Accuracy', 'Val loss', 'Val accuracy', 'Learning rate', 'Seconds', 'Images/s'], rows)}</details>`;
  });
  return html`<section aria-labelledby="history-heading"><h2 id="history-heading">Training history</h2>
${blocks}</section>`;
}

function datasetSection(view: ReportView): SafeHtml {
  const d = view.dataset;
  const rows = d.classCounts.map(
    (c) => html`<tr><th scope="row">${c.className}</th><td>${c.positive ? 'yes' : 'no'}</td><td class="num">${integer(c.train)}</td><td class="num">${integer(c.val)}</td><td class="num">${integer(c.test)}</td><td class="num">${integer(c.total)}</td></tr>`,
  );
  rows.push(
    html`<tr class="average"><th scope="row">All classes</th><td></td><td class="num">${integer(d.counts.train)}</td><td class="num">${integer(d.counts.val)}</td><td class="num">${integer(d.counts.test)}</td><td class="num">${integer(d.counts.total)}</td></tr>`,
  );
  const dup = d.duplicates;
  return html`<section aria-labelledby="dataset-heading"><h2 id="dataset-heading">Dataset</h2>
<dl>
${d.id === null ? '' : html`<dt>Id</dt><dd><code>${d.id}</code></dd>`}
<dt>Hash (sha256)</dt><dd><code>${d.hash}</code></dd>
<dt>Layout</dt><dd>${d.layout === 'splits' ? 'preset train/ val/ test/ folders' : 'class folders, split by the experiment'}</dd>
<dt>Skipped files</dt><dd>${integer(d.skipped.count)}${d.skipped.byReason.length > 0 ? html` (${d.skipped.byReason.map((s, i) => html`${i > 0 ? ', ' : ''}${s.reason}: ${integer(s.count)}`)})` : ''}</dd>
${dup === null ? '' : html`<dt>Duplicates</dt><dd>${integer(dup.exactDuplicateImages)} exact and ${integer(dup.nearDuplicateImages)} near-duplicate images; ${integer(dup.crossSplitLeaks)} groups cross splits (${integer(dup.leakedImages)} images)${dup.conflictingLabelGroups > 0 ? html`; ${integer(dup.conflictingLabelGroups)} groups carry conflicting labels` : ''}</dd>`}
</dl>
${table('dataset-table', 'Images per class and split', ['Class', 'Fracture-positive', 'Train', 'Validation', 'Test', 'Total'], rows, 2)}</section>`;
}

function settingsSection(view: ReportView): SafeHtml {
  const c = view.config;
  const fraction = (value: number): string => percentage(value);
  const entries: [string, string][] = [
    ['Architectures', c.architectures.join(', ')],
    ['Input', `${c.imageSize} x ${c.imageSize} x ${c.channels} (${c.resize})`],
    ['Epochs', `${c.epochs}, early stopping ${c.earlyStoppingPatience > 0 ? `after ${c.earlyStoppingPatience} epochs without improvement` : 'off'}`],
    ['Batch size', `${c.batchSize}${c.microBatchSize === null ? '' : ` (micro-batches of ${c.microBatchSize})`}`],
    ['Optimizer', `${c.optimizer}, learning rate ${c.learningRate === null ? 'per-architecture default' : String(c.learningRate)}, halved after ${c.reduceLrPatience > 0 ? `${c.reduceLrPatience} flat epochs` : 'never'}`],
    ['Seed', String(c.seed)],
    ['Splits', `validation ${fraction(c.valFraction)}, test ${fraction(c.testFraction)}`],
    ['Augmentation', c.augment ? 'on' : 'off'],
    ['Class weights', c.classWeights ? 'balanced' : 'off'],
    ['Head', `${c.includeTop ? 'original Keras top' : 'global average pooling'}${c.dropout === null ? '' : `, dropout ${c.dropout}`}`],
    ['Ranked by', RANK_METRIC_LABELS[c.rankBy]],
  ];
  const p = view.provenance;
  return html`<section aria-labelledby="settings-heading"><h2 id="settings-heading">Settings and provenance</h2>
<dl>
${entries.map(([term, value]) => html`<dt>${term}</dt><dd>${value}</dd>`)}
<dt>Backend</dt><dd>${p.backend.name}${p.backend.package === null ? '' : html` (${p.backend.package})`}, ${p.backend.gpu ? 'GPU' : 'CPU'}, ${p.backend.threads} thread${p.backend.threads === 1 ? '' : 's'}${p.backend.simd ? ', SIMD' : ''}</dd>
<dt>Versions</dt><dd>${p.versions.map((v, i) => html`${i > 0 ? ', ' : ''}<code>${v.name} ${v.version}</code>`)}</dd>
</dl></section>`;
}

/**
 * Renders the report page.
 * @param view the report view
 * @param charts the charts to inline, in page order (usually `await renderAllChartsSvg(view)`); their
 *   SVG is inserted as is, everything else is escaped
 * @returns a complete HTML document (UTF-8)
 * @example
 * reply.type('text/html; charset=utf-8').send(renderReportHtml(view, await renderAllChartsSvg(view)));
 */
export function renderReportHtml(view: ReportView, charts: readonly PageChart[]): string {
  const created = new Date(view.createdAt);
  const createdText = Number.isNaN(created.getTime()) ? view.createdAt : created.toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  const sections: [string, string][] = [
    ['winner-heading', 'Winner'],
    ['ranking-heading', 'Ranking'],
    ['binary-heading', 'Fracture vs no fracture'],
    ...(charts.length > 0 ? ([['charts-heading', 'Charts']] as [string, string][]) : []),
    ['per-class-heading', 'Per-class results'],
    ['history-heading', 'Training history'],
    ['dataset-heading', 'Dataset'],
    ['settings-heading', 'Settings and provenance'],
  ];
  const page = html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Comparison report: experiment ${view.experimentId}</title>
<style>${trustedHtml(STYLE)}</style>
</head>
<body>
<header>
<h1>Comparison report</h1>
<p class="meta">Experiment <code>${view.experimentId}</code>, written <time datetime="${view.createdAt}">${createdText}</time>; ${view.results.length} architecture${view.results.length === 1 ? '' : 's'} on ${integer(view.dataset.counts.total)} images of ${view.dataset.classNames.length} classes.</p>
<p class="notice" role="note">${INTENDED_USE_NOTICE}</p>
<nav aria-label="Sections"><ul>${sections.map(([id, label]) => html`<li><a href="#${id}">${label}</a></li>`)}</ul></nav>
</header>
<main>
${winnerSection(view)}
${rankingSection(view)}
${binarySection(view)}
${chartsSection(charts)}
${perClassSection(view)}
${historySection(view)}
${datasetSection(view)}
${settingsSection(view)}
</main>
<footer><p>${INTENDED_USE_NOTICE}</p></footer>
</body>
</html>
`;
  return page.value;
}
