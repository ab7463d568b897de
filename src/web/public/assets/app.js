/* global window, document */
/**
 * The page's entry point: the API client with the key form, the four sections, and the hash router
 * (`#predict`, `#experiments`, `#report/<experiment id>`, `#models`) that shows one section at a time.
 * Links make the navigation keyboard-operable and every section addressable.
 * @module
 */
import { ApiClient } from './api.js';
import { byId } from './dom.js';
import { createExperimentsSection } from './experiments.js';
import { keyDialog } from './key-dialog.js';
import { createModelsSection } from './models.js';
import { createPredictSection } from './predict.js';
import { createReportSection } from './report.js';

const api = new ApiClient({ askKey: keyDialog() });
let current = null;

/** Asks for another key (after a 401/403), then redraws the section shown. */
const changeKey = async () => {
  if (await api.promptForKey()) void sections[current]?.show(currentParam());
};

const context = { api, onChangeKey: () => void changeKey() };
const sections = {
  predict: createPredictSection(context),
  experiments: createExperimentsSection(context),
  report: createReportSection(context),
  models: createModelsSection(context),
};

function parseHash() {
  const [name = '', param] = window.location.hash.replace(/^#/, '').split('/');
  return { name: name in sections ? name : 'predict', param };
}
function currentParam() {
  return parseHash().param;
}

/** Shows the section the URL names; `focus` moves keyboard focus to its heading (user navigation). */
function route(focus) {
  const { name, param } = parseHash();
  for (const key of Object.keys(sections)) byId(key).hidden = key !== name;
  for (const link of document.querySelectorAll('nav a[data-section]')) {
    if (link.dataset.section === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  current = name;
  document.title = `${name[0].toUpperCase()}${name.slice(1)} · fracture-service`;
  if (focus) byId(`${name}-heading`).focus({ preventScroll: false });
  void sections[name].show(param);
}

function renderKeyState(hasKey) {
  byId('key-state').textContent = hasKey ? 'An API key is kept for this tab.' : 'No API key stored (the page asks when the service needs one).';
  byId('key-change').textContent = hasKey ? 'Change the API key' : 'Enter an API key';
  byId('key-forget').hidden = !hasKey;
}

api.onKeyChange(renderKeyState);
renderKeyState(api.key !== null);
byId('key-change').addEventListener('click', () => void changeKey());
byId('key-forget').addEventListener('click', () => api.setKey(''));
window.addEventListener('hashchange', () => route(true));
route(false);
