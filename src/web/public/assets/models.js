/**
 * Models: the registered models (`GET /v1/models`), which one holds `production`, and promotion
 * (`PUT /v1/models/{id}/aliases/production`, an admin key's right: a 403 is shown as its problem).
 * @module
 */
import { byId, clear, h, metric, showProblem, timeElement } from './dom.js';

const ALIAS = 'production';

/**
 * @param {{api: import('./api.js').ApiClient, onChangeKey: () => void}} context
 */
export function createModelsSection({ api, onChangeKey }) {
  const tableBody = byId('models-table').querySelector('tbody');
  const status = byId('models-status');
  const errorSlot = byId('models-error');
  const empty = byId('models-empty');

  const promote = async (id, button) => {
    clear(errorSlot);
    button.disabled = true;
    status.textContent = `Promoting ${id} to ${ALIAS}…`;
    try {
      await api.json(`/v1/models/${encodeURIComponent(id)}/aliases/${ALIAS}`, { method: 'PUT' });
      await load();
      status.textContent = `${id} is now the ${ALIAS} model.`;
    } catch (error) {
      status.textContent = `${id} was not promoted.`;
      showProblem(errorSlot, error, { onChangeKey });
    } finally {
      button.disabled = false;
    }
  };

  const load = async () => {
    try {
      const { models, aliases } = await api.json('/v1/models');
      const production = aliases[ALIAS] ?? null;
      tableBody.replaceChildren(
        ...models.map((model) => {
          const isProduction = model.id === production;
          // The production model can be promoted again (a no-op that re-checks the admin right).
          const button = h('button', { type: 'button', class: isProduction ? undefined : 'primary', 'aria-label': `Promote ${model.id} to ${ALIAS}` }, 'Promote');
          button.addEventListener('click', () => void promote(model.id, button));
          return h(
            'tr',
            { 'data-model': model.id, class: isProduction ? 'production-row' : undefined },
            h('th', { scope: 'row' }, h('code', { text: model.id })),
            h('td', { 'data-label': 'Architecture', text: model.architecture }),
            h('td', { 'data-label': 'Input', text: `${model.input.width} × ${model.input.height} px${model.input.channels === 1 ? ', grey' : ''}` }),
            h('td', { class: 'num', 'data-label': 'Macro F1', text: metric(model.metrics?.macroF1) }),
            h('td', { 'data-label': 'Created' }, model.createdAt ? timeElement(model.createdAt) : ''),
            h('td', { 'data-label': 'Version' }, h('code', { text: model.version })),
            h('td', { 'data-label': 'Aliases' }, ...model.aliases.map((alias) => h('span', { class: alias === ALIAS ? 'badge production' : 'badge', text: alias }))),
            h('td', { class: 'actions-cell' }, button),
          );
        }),
      );
      empty.hidden = models.length > 0;
      status.textContent = production ? `${models.length} model${models.length === 1 ? '' : 's'}; ${ALIAS}: ${production}.` : `${models.length} model${models.length === 1 ? '' : 's'}; none is ${ALIAS} yet.`;
    } catch (error) {
      showProblem(errorSlot, error, { onChangeKey });
    }
  };

  byId('models-refresh').addEventListener('click', () => {
    clear(errorSlot);
    void load();
  });

  return { show: () => load() };
}
