/* global window, document */
/**
 * Report: one finished experiment's comparison from `GET /v1/reports/{id}` (JSON): the winner and
 * why, the metric table, and the charts. Charts are fetched with the key as blobs and shown through
 * object URLs (an `<img src>` cannot send an Authorization header). The full HTML report opens in
 * `report.html`, a tab that fetches it with the same key.
 * @module
 */
import { byId, clear, duration, h, integer, metric, showProblem, timeElement } from './dom.js';

/** Human names of the ranking metrics (`rankBy`). */
const METRIC_NAMES = {
  macroF1: 'macro F1',
  weightedF1: 'weighted F1',
  accuracy: 'accuracy',
  balancedAccuracy: 'balanced accuracy',
  mcc: 'Matthews correlation',
  rocAucOvrMacro: 'ROC AUC (one-vs-rest, macro)',
  binarySensitivity: 'fracture sensitivity',
  binaryRocAuc: 'fracture ROC AUC',
};

/**
 * Columns of the metric table after the architecture: key (`data-column` of the cells), header, the
 * header group (the fracture view's columns share one), and the value of a result. Rows come in
 * ranking order, so the rank needs no column of its own.
 */
const FRACTURE = 'Fracture vs no fracture';
const COLUMNS = [
  ['accuracy', 'Accuracy', null, (r) => metric(r.metrics.accuracy)],
  ['balancedAccuracy', 'Balanced accuracy', null, (r) => metric(r.metrics.balancedAccuracy)],
  ['macroF1', 'Macro F1', null, (r) => metric(r.metrics.macroAvg.f1)],
  ['mcc', 'MCC', null, (r) => metric(r.metrics.mcc)],
  ['rocAuc', 'ROC AUC (macro)', null, (r) => metric(r.metrics.rocAucOvrMacro)],
  ['sensitivity', 'Sensitivity', FRACTURE, (r) => metric(r.metrics.binary?.sensitivity)],
  ['specificity', 'Specificity', FRACTURE, (r) => metric(r.metrics.binary?.specificity)],
  ['fractureRocAuc', 'ROC AUC', FRACTURE, (r) => metric(r.metrics.binary?.rocAuc)],
  ['trainTime', 'Training time', null, (r) => duration(r.timings.trainSeconds)],
  ['inference', 'ms per image', null, (r) => metric(r.timings.inferenceMsPerImage, 1)],
  ['params', 'Parameters', null, (r) => integer(r.params)],
];

/** The two header rows: ungrouped headers span both, a group's name spans its columns. */
function metricHeader() {
  const top = [h('th', { scope: 'col', rowspan: '2', text: 'Architecture' })];
  const bottom = [];
  for (const [i, [, label, group]] of COLUMNS.entries()) {
    if (group === null) top.push(h('th', { scope: 'col', rowspan: '2', text: label }));
    else {
      if (COLUMNS[i - 1]?.[2] !== group) top.push(h('th', { scope: 'colgroup', class: 'group', colspan: String(COLUMNS.filter((c) => c[2] === group).length), text: group }));
      bottom.push(h('th', { scope: 'col', text: label }));
    }
  }
  return [h('tr', {}, ...top), h('tr', {}, ...bottom)];
}

/** The chart groups of the page, in order, and what each chart shows (its alternative text). */
function describeChart(name) {
  if (name === 'learning-curves') return { group: 'Learning curves', alt: 'Learning curves: training and validation loss and accuracy per epoch for each architecture' };
  if (name === 'metrics') return { group: 'Metrics', alt: 'Bar chart of the headline test metrics of each architecture' };
  if (name.startsWith('confusion-matrix-')) {
    const architecture = name.slice('confusion-matrix-'.length);
    return { group: 'Confusion matrices', alt: `Confusion matrix of ${architecture}: test images by true class (rows) and predicted class (columns)` };
  }
  if (name === 'roc') return { group: 'ROC curves', alt: 'ROC curves of the fracture view (fracture against no fracture) for each architecture' };
  if (name.startsWith('roc-')) return { group: 'ROC curves', alt: `One-vs-rest ROC curves of every class for ${name.slice(4)}` };
  return { group: 'Other charts', alt: `Chart ${name}` };
}
const GROUP_ORDER = ['Learning curves', 'Metrics', 'Confusion matrices', 'ROC curves', 'Other charts'];
/** Groups whose charts get the full width (several panels, or a bar per metric). */
const WIDE_GROUPS = new Set(['Learning curves', 'Metrics']);

/**
 * @param {{api: import('./api.js').ApiClient, onChangeKey: () => void}} context
 */
export function createReportSection({ api, onChangeKey }) {
  const form = byId('report-form');
  const select = byId('report-experiment');
  const status = byId('report-status');
  const errorSlot = byId('report-error');
  const body = byId('report-body');
  const chartsSlot = byId('report-charts');
  const htmlLink = byId('report-html-link');
  const csvLink = byId('report-csv-link');
  /** Object URLs of the charts shown, revoked when another report replaces them. */
  let objectUrls = [];
  let shownId = null;

  const loadChoices = async (wanted) => {
    const { experiments } = await api.json('/v1/experiments');
    const finished = experiments.filter((experiment) => experiment.status === 'completed');
    select.replaceChildren(
      ...(finished.length === 0 ? [h('option', { value: '', text: 'No finished experiment yet' })] : []),
      ...finished.map((experiment) =>
        h('option', { value: experiment.id, text: `${experiment.id} (${experiment.datasetId}; ${experiment.settings.architectures.join(', ')})` }),
      ),
    );
    if (wanted && finished.some((experiment) => experiment.id === wanted)) select.value = wanted;
    return select.value || null;
  };

  const renderCharts = async (id, names) => {
    for (const url of objectUrls) URL.revokeObjectURL(url);
    objectUrls = [];
    clear(chartsSlot);
    const groups = new Map(GROUP_ORDER.map((group) => [group, []]));
    for (const name of names) groups.get(describeChart(name).group)?.push(name);
    if (!names.some((name) => name === 'roc' || name.startsWith('roc-'))) groups.get('ROC curves')?.push(null);
    const loads = [];
    for (const [group, members] of groups) {
      if (members.length === 0) continue;
      const headingId = `charts-${group.toLowerCase().replace(/[^a-z]+/g, '-')}`;
      const section = h('section', { class: 'chart-group', 'aria-labelledby': headingId }, h('h4', { id: headingId, text: group }));
      const grid = h('div', { class: WIDE_GROUPS.has(group) ? 'chart-grid wide' : 'chart-grid' });
      section.append(grid);
      chartsSlot.append(section);
      for (const name of members) {
        if (name === null) {
          grid.append(h('p', { class: 'muted', text: 'This report stores no ROC curve points, so there is no ROC chart (the AUCs are in the table).' }));
          continue;
        }
        const { alt } = describeChart(name);
        const img = h('img', { alt, 'data-chart': name, decoding: 'async' });
        const figure = h('figure', { class: 'chart' }, img, h('figcaption', { text: alt }));
        grid.append(figure);
        loads.push(
          api
            .blob(`/v1/reports/${encodeURIComponent(id)}/charts/${encodeURIComponent(name)}`, { accept: 'image/svg+xml' })
            .then((blob) => {
              if (shownId !== id) return;
              const url = URL.createObjectURL(blob);
              objectUrls.push(url);
              img.src = url;
            })
            .catch((error) => {
              figure.replaceChildren(h('div', { class: 'error-slot' }));
              showProblem(figure.firstChild, error, { onChangeKey });
            }),
        );
      }
    }
    await Promise.all(loads);
  };

  const renderReport = async (id) => {
    clear(errorSlot);
    status.textContent = `Loading the report of ${id}…`;
    try {
      const report = await api.json(`/v1/reports/${encodeURIComponent(id)}`);
      shownId = id;
      byId('report-title').textContent = `Experiment ${report.experimentId}`;
      const meta = byId('report-meta');
      meta.replaceChildren(
        `Dataset ${report.dataset.id ?? report.dataset.hash.slice(0, 12)}: ${integer(report.dataset.counts.total)} images of ${report.dataset.classNames.length} classes ` +
          `(${report.dataset.counts.train} train, ${report.dataset.counts.val} validation, ${report.dataset.counts.test} test); ` +
          `${report.config.imageSize} px, ${report.config.epochs} epoch${report.config.epochs === 1 ? '' : 's'}; written `,
        timeElement(report.createdAt),
        '.',
      );
      const winnerSlot = byId('report-winner');
      const rankedBy = METRIC_NAMES[report.ranking.metric] ?? report.ranking.metric;
      if (report.winner) {
        const model = report.results.find((result) => result.architecture === report.winner.architecture)?.modelId;
        winnerSlot.replaceChildren(
          h('h4', {}, 'Winner: ', h('span', { class: 'winner-name', text: report.winner.architecture })),
          h('p', { text: `Ranked by ${rankedBy}: ${metric(report.winner.score, 4)}.` }),
          h('p', { class: 'winner-reason', text: report.winner.reason }),
          model ? h('p', {}, 'Registered as model ', h('code', { text: model }), '.') : null,
        );
      } else {
        winnerSlot.replaceChildren(h('h4', { text: 'No winner' }), h('p', { text: 'No architecture finished with a score.' }));
      }
      const table = byId('metric-table');
      byId('metric-caption').textContent = `Test-split metrics, best first (ranked by ${rankedBy})`;
      table.tHead.replaceChildren(...metricHeader());
      const ranked = [...report.results].sort((a, b) => (a.rank ?? Infinity) - (b.rank ?? Infinity));
      table.tBodies[0].replaceChildren(
        ...ranked.map((result) =>
          h(
            'tr',
            { class: report.winner?.architecture === result.architecture ? 'winner-row' : undefined },
            h('th', { scope: 'row', text: result.rank === null ? `${result.architecture} (not ranked)` : result.architecture }),
            ...COLUMNS.map(([key, , , value]) => h('td', { 'data-column': key, text: value(result) })),
          ),
        ),
      );
      htmlLink.href = `/report.html#${encodeURIComponent(id)}`;
      csvLink.dataset.experiment = id;
      body.hidden = false;
      status.textContent = `Report of ${id}: ${report.results.length} architecture${report.results.length === 1 ? '' : 's'}; loading ${report.charts.length} chart${report.charts.length === 1 ? '' : 's'}…`;
      await renderCharts(id, report.charts);
      if (shownId === id) status.textContent = `Report of ${id} with ${report.charts.length} chart${report.charts.length === 1 ? '' : 's'}.`;
    } catch (error) {
      status.textContent = '';
      body.hidden = true;
      showProblem(errorSlot, error, { onChangeKey });
    }
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!select.value) return;
    const hash = `#report/${encodeURIComponent(select.value)}`;
    // The same URL fires no hashchange: reload the report in place.
    if (window.location.hash === hash) void renderReport(select.value);
    else window.location.hash = hash;
  });

  // A tab opened by script keeps this tab's sessionStorage (and so the key); a plain link would not.
  htmlLink.addEventListener('click', (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    window.open(htmlLink.href, '_blank');
  });

  csvLink.addEventListener('click', async (event) => {
    event.preventDefault();
    const id = csvLink.dataset.experiment;
    if (!id) return;
    try {
      const blob = await api.blob(`/v1/reports/${encodeURIComponent(id)}?format=csv`, { accept: 'text/csv' });
      const url = URL.createObjectURL(blob);
      const anchor = h('a', { href: url, download: `report-${id}.csv`, hidden: true });
      document.body.append(anchor);
      anchor.click();
      anchor.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (error) {
      showProblem(errorSlot, error, { onChangeKey });
    }
  });

  return {
    /** @param {string | undefined} id the experiment in the URL (`#report/<id>`) */
    show: async (id) => {
      try {
        const chosen = await loadChoices(id ? decodeURIComponent(id) : shownId);
        if (chosen && chosen !== shownId) await renderReport(chosen);
        else if (!chosen) {
          body.hidden = true;
          status.textContent = 'No finished experiment to report on yet.';
        }
      } catch (error) {
        showProblem(errorSlot, error, { onChangeKey });
      }
    },
  };
}
