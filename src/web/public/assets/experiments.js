/* global AbortController, setTimeout */
/**
 * Experiments: the form that starts one (`POST /v1/experiments`), its live progress from
 * `GET /v1/experiments/{id}/events` (server-sent events read with fetch, so the key can be sent),
 * and the list of past experiments.
 * @module
 */
import { ApiError } from './api.js';
import { byId, clear, duration, h, percent, showProblem, timeElement } from './dom.js';
import { readServerSentEvents } from './sse.js';

const FINAL = new Set(['completed', 'failed', 'cancelled']);
/** How often a dropped event stream is reopened before the page gives up (the list still works). */
const MAX_RECONNECTS = 5;

/**
 * @param {{api: import('./api.js').ApiClient, onChangeKey: () => void}} context
 */
export function createExperimentsSection({ api, onChangeKey }) {
  const form = byId('experiment-form');
  const datasetSelect = byId('experiment-dataset');
  const formError = byId('experiment-form-error');
  const submit = byId('experiment-submit');
  const live = byId('live');
  const liveStatus = byId('live-status');
  const liveBars = byId('live-bars');
  const liveError = byId('live-error');
  const liveActions = byId('live-actions');
  const tableBody = byId('experiment-table').querySelector('tbody');
  const empty = byId('experiment-empty');
  const listError = byId('experiment-list-error');
  /** The stream being read; aborted when another experiment is watched. */
  let watching = null;

  const loadDatasets = async () => {
    try {
      const { datasets } = await api.json('/v1/datasets');
      const chosen = datasetSelect.value;
      const usable = datasets.filter((dataset) => dataset.problem === null);
      datasetSelect.replaceChildren(
        ...(usable.length === 0 ? [h('option', { value: '', text: 'No usable dataset: upload one with POST /v1/datasets' })] : []),
        ...datasets.map((dataset) =>
          h('option', {
            value: dataset.id,
            disabled: dataset.problem !== null,
            text: `${dataset.id} (${dataset.imageCount} images, ${dataset.classes.length} classes)${dataset.problem ? `: ${dataset.problem.detail}` : ''}`,
          }),
        ),
      );
      if (usable.some((dataset) => dataset.id === chosen)) datasetSelect.value = chosen;
      else if (usable[0]) datasetSelect.value = usable[0].id;
    } catch (error) {
      showProblem(formError, error, { onChangeKey });
    }
  };

  const statusText = (experiment) => {
    const parts = experiment.architectures.map((a) => `${a.architecture} ${a.status}`);
    return `Experiment ${experiment.id} is ${experiment.status}${parts.length > 0 ? ` (${parts.join(', ')})` : ''}.`;
  };

  /** Draws one state of the experiment: a labelled progress bar per architecture. */
  const renderLive = (experiment) => {
    live.hidden = false;
    // Announced only when it changes (status changes, not every batch).
    const text = statusText(experiment);
    if (liveStatus.textContent !== text) liveStatus.textContent = text;
    liveBars.replaceChildren(
      ...experiment.architectures.map((a) => {
        const id = `progress-${a.architecture}`;
        const eta = a.status === 'running' && Number.isFinite(a.etaSeconds) ? `, about ${duration(a.etaSeconds)} left` : '';
        const error = a.error ? `: ${a.error.detail}` : '';
        return h(
          'div',
          { class: `progress-row status-${a.status}`, 'data-architecture': a.architecture },
          h('label', { for: id }, h('strong', { text: a.architecture }), ` ${a.status}, epoch ${a.epoch} of ${a.epochs}, ${percent(a.progress, 0)}${eta}${error}`),
          h('progress', { id, max: '1', value: String(a.progress), text: percent(a.progress, 0) }),
        );
      }),
    );
    // Redrawn only when the status changes, so a focused button is not replaced under the user.
    const actionsKey = `${experiment.id}:${experiment.status}`;
    if (liveActions.dataset.state === actionsKey) return;
    liveActions.dataset.state = actionsKey;
    clear(liveActions);
    if (experiment.status === 'completed') {
      liveActions.append(h('a', { href: `#report/${encodeURIComponent(experiment.id)}`, text: `Open the report of ${experiment.id}` }));
    } else if (experiment.error) {
      showProblem(liveError, { problem: { title: `Experiment ${experiment.status}`, detail: experiment.error.detail, code: experiment.error.code } });
    } else if (!FINAL.has(experiment.status)) {
      liveActions.append(h('button', { type: 'button', on: { click: () => void cancel(experiment.id) } }, 'Cancel this experiment'));
    }
  };

  const cancel = async (id) => {
    try {
      renderLive(await api.json(`/v1/experiments/${encodeURIComponent(id)}`, { method: 'DELETE' }));
    } catch (error) {
      showProblem(liveError, error, { onChangeKey });
    }
  };

  /** Follows an experiment's events until it ends; reopens a dropped stream a few times. */
  const watch = async (id) => {
    watching?.abort();
    const controller = new AbortController();
    watching = controller;
    clear(liveError);
    let last = null;
    for (let attempt = 0; attempt <= MAX_RECONNECTS && !controller.signal.aborted; attempt++) {
      try {
        const response = await api.request(`/v1/experiments/${encodeURIComponent(id)}/events`, { accept: 'text/event-stream', signal: controller.signal });
        if (!response.body) throw new Error('the browser gave no stream to read');
        for await (const event of readServerSentEvents(response.body)) {
          if (event.event !== 'experiment') continue;
          last = JSON.parse(event.data);
          renderLive(last);
          attempt = 0;
        }
        if (last && FINAL.has(last.status)) break;
      } catch (error) {
        if (controller.signal.aborted) return;
        // A refused request will be refused again: say why and stop.
        if (error instanceof ApiError && error.status !== 0 && error.status < 500) {
          showProblem(liveError, error, { onChangeKey });
          return;
        }
      }
      if (!controller.signal.aborted) await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
    }
    if (watching === controller) {
      watching = null;
      await loadList();
    }
  };

  const loadList = async () => {
    try {
      const { experiments } = await api.json('/v1/experiments');
      clear(listError);
      tableBody.replaceChildren(
        ...experiments.map((experiment) => {
          const id = encodeURIComponent(experiment.id);
          const actions = [];
          if (experiment.status === 'completed') actions.push(h('a', { href: `#report/${id}`, 'aria-label': `Report of ${experiment.id}`, text: 'Report' }));
          if (!FINAL.has(experiment.status)) {
            actions.push(h('button', { type: 'button', 'aria-label': `Watch ${experiment.id}`, on: { click: () => void watch(experiment.id) } }, 'Watch'));
          }
          return h(
            'tr',
            { 'data-experiment': experiment.id },
            h('th', { scope: 'row' }, h('code', { text: experiment.id })),
            h('td', { 'data-label': 'Dataset', text: experiment.datasetId }),
            h('td', { 'data-label': 'Architectures', text: experiment.settings.architectures.join(', ') }),
            h('td', { 'data-label': 'Status' }, h('span', { class: `badge status-${experiment.status}`, text: experiment.status })),
            h('td', { 'data-label': 'Created' }, timeElement(experiment.createdAt)),
            h('td', { 'data-label': 'Winner', text: experiment.winner ? experiment.winner.architecture : '–' }),
            h('td', { class: 'actions-cell' }, ...actions),
          );
        }),
      );
      empty.hidden = experiments.length > 0;
    } catch (error) {
      showProblem(listError, error, { onChangeKey });
    }
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clear(formError);
    const architectures = [...form.querySelectorAll('input[name="architecture"]:checked')].map((input) => input.value);
    const imageSize = Number(form.elements.imageSize.value);
    const epochs = Number(form.elements.epochs.value);
    const problems = [];
    if (!datasetSelect.value) problems.push('choose a dataset');
    if (architectures.length === 0) problems.push('choose at least one architecture');
    if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize > 1024) problems.push('the image size is a whole number from 32 to 1024');
    if (!Number.isInteger(epochs) || epochs < 1 || epochs > 1000) problems.push('the epochs are a whole number from 1 to 1000');
    if (architectures.includes('inceptionv3') && imageSize < 75) problems.push('InceptionV3 needs an image size of at least 75');
    if (problems.length > 0) {
      showProblem(formError, { problem: { title: 'Check the form', detail: `${problems.join('; ')}.` } });
      return;
    }
    submit.disabled = true;
    try {
      const created = await api.json('/v1/experiments', { method: 'POST', json: { datasetId: datasetSelect.value, architectures, imageSize, epochs } });
      liveStatus.textContent = `Experiment ${created.id} is ${created.status}.`;
      live.hidden = false;
      clear(liveBars);
      void loadList();
      void watch(created.id);
      live.scrollIntoView({ block: 'nearest' });
    } catch (error) {
      showProblem(formError, error, { onChangeKey });
    } finally {
      submit.disabled = false;
    }
  });
  byId('experiment-refresh').addEventListener('click', () => void loadList());

  return {
    show: async () => {
      await Promise.all([loadDatasets(), loadList()]);
    },
  };
}
