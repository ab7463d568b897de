/* global window, document, DOMParser */
/**
 * `report.html`: fetches the server-rendered HTML report of the experiment named in the URL's
 * fragment (`report.html#<id>`, never sent to the server) with the tab's API key, and puts it in
 * place of this document. The report is self-contained (inline CSS and SVG, no scripts); parsed
 * with DOMParser, nothing in it runs, and this page's policy allows its inline styles.
 * @module
 */
import { ApiClient } from './api.js';
import { byId, showProblem } from './dom.js';
import { keyDialog } from './key-dialog.js';

const api = new ApiClient({ askKey: keyDialog() });
const status = byId('viewer-status');

async function show() {
  const id = decodeURIComponent(window.location.hash.replace(/^#/, ''));
  if (!id) {
    status.textContent = 'No experiment named: open a report from the Report section of the page.';
    return;
  }
  try {
    const response = await api.request(`/v1/reports/${encodeURIComponent(id)}?format=html`, { accept: 'text/html' });
    const parsed = new DOMParser().parseFromString(await response.text(), 'text/html');
    document.replaceChild(document.adoptNode(parsed.documentElement), document.documentElement);
  } catch (error) {
    status.textContent = `The report of ${id} could not be shown.`;
    showProblem(byId('viewer-error'), error, { onChangeKey: () => void api.promptForKey().then((given) => given && show()) });
  }
}

void show();
