/* global FormData, URLSearchParams */
/**
 * Predict: one radiograph in (file input or drop), `POST /v1/predict?explain=true` as multipart,
 * and the answer shown: the predicted class, the fracture probability, every class as a bar with its
 * value in text, the Grad-CAM overlay with a switch to the original, and the model that answered.
 * @module
 */
import { byId, clear, h, percent, showProblem } from './dom.js';

/** What the service decodes (it decides from the bytes; this only catches obvious mistakes early). */
const ACCEPTED_TYPES = new Set(['image/jpeg', 'image/png']);

/**
 * @param {{api: import('./api.js').ApiClient, onChangeKey: () => void}} context
 */
export function createPredictSection({ api, onChangeKey }) {
  const fileInput = byId('xray-file');
  const dropzone = byId('dropzone');
  const modelSelect = byId('predict-model');
  const status = byId('predict-status');
  const errorSlot = byId('predict-error');
  const result = byId('predict-result');
  const image = byId('result-image');
  const caption = byId('result-image-caption');
  const overlayRadio = byId('view-overlay');
  const originalRadio = byId('view-original');
  const toggle = byId('view-toggle');
  let originalUrl = null;
  let heatmapUrl = null;
  let busy = false;

  const showView = () => {
    const overlay = overlayRadio.checked && heatmapUrl !== null;
    image.src = overlay ? heatmapUrl : (originalUrl ?? '');
    image.alt = overlay
      ? 'Grad-CAM overlay: the model input with the regions that drove the prediction in warm colours'
      : 'The uploaded X-ray';
    caption.textContent = overlay ? 'Grad-CAM overlay (the image as the model saw it)' : 'Original image';
  };
  overlayRadio.addEventListener('change', showView);
  originalRadio.addEventListener('change', showView);

  const renderPrediction = (answer) => {
    const [prediction] = answer.predictions;
    if (!prediction) throw new Error('the service answered without a prediction');
    byId('result-label').textContent = prediction.label;
    byId('result-fracture').textContent =
      prediction.fractureProbability === null ? 'n/a (the model has no fracture class)' : percent(prediction.fractureProbability);
    const bars = byId('class-bars');
    clear(bars);
    const entries = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    for (const [name, probability] of entries) {
      const fill = h('span', { class: 'bar-fill' });
      // CSSOM, not a style attribute: the page's CSP allows no inline style attributes.
      fill.style.width = `${Math.max(0, Math.min(1, probability)) * 100}%`;
      bars.append(
        h(
          'li',
          { class: name === prediction.label ? 'bar-row top' : 'bar-row' },
          h('span', { class: 'bar-name', text: name }),
          h('span', { class: 'bar-track', 'aria-hidden': 'true' }, fill),
          h('span', { class: 'bar-value', text: percent(probability) }),
        ),
      );
    }
    const { id, architecture, version, engine } = answer.model;
    const modelLine = byId('result-model');
    // The engine that computed the answer (ONNX Runtime or tfjs), when the service says.
    const ranOn = engine ? `, ${engine === 'onnx' ? 'ONNX Runtime' : engine}` : '';
    modelLine.replaceChildren(h('code', { class: 'model-id', text: id }), ` (${architecture}, version `, h('code', { text: version }), `${ranOn})`);
    heatmapUrl = prediction.heatmap ?? null;
    toggle.hidden = heatmapUrl === null;
    overlayRadio.checked = heatmapUrl !== null;
    originalRadio.checked = heatmapUrl === null;
    showView();
    result.hidden = false;
  };

  const predict = async (file) => {
    if (busy) return;
    clear(errorSlot);
    if (!ACCEPTED_TYPES.has(file.type)) {
      showProblem(errorSlot, { problem: { title: 'Not a JPEG or PNG image', detail: `"${file.name}" is ${file.type || 'of an unknown type'}; choose a JPEG or PNG X-ray.` } });
      return;
    }
    busy = true;
    result.setAttribute('aria-busy', 'true');
    status.textContent = `Analysing ${file.name}…`;
    if (originalUrl) URL.revokeObjectURL(originalUrl);
    originalUrl = URL.createObjectURL(file);
    try {
      const form = new FormData();
      form.append('image', file, file.name);
      const query = new URLSearchParams({ explain: 'true' });
      if (modelSelect.value) query.set('model', modelSelect.value);
      const answer = await api.json(`/v1/predict?${query}`, { method: 'POST', body: form });
      renderPrediction(answer);
      status.textContent = `Done: ${answer.predictions[0]?.label ?? ''}.`;
    } catch (error) {
      result.hidden = true;
      status.textContent = '';
      showProblem(errorSlot, error, { onChangeKey });
    } finally {
      busy = false;
      result.removeAttribute('aria-busy');
    }
  };

  fileInput.addEventListener('change', () => {
    const [file] = fileInput.files ?? [];
    if (file) void predict(file);
    // The same file chosen again should predict again.
    fileInput.value = '';
  });
  for (const type of ['dragenter', 'dragover']) {
    dropzone.addEventListener(type, (event) => {
      event.preventDefault();
      dropzone.classList.add('dragging');
    });
  }
  for (const type of ['dragleave', 'dragend']) dropzone.addEventListener(type, () => dropzone.classList.remove('dragging'));
  dropzone.addEventListener('drop', (event) => {
    event.preventDefault();
    dropzone.classList.remove('dragging');
    const [file] = event.dataTransfer?.files ?? [];
    if (file) void predict(file);
  });

  /** Fills the model choice from `GET /v1/models` (production first). */
  const loadModels = async () => {
    try {
      const { models, aliases } = await api.json('/v1/models');
      const chosen = modelSelect.value;
      const production = aliases.production;
      modelSelect.replaceChildren(
        h('option', { value: '', text: production ? `production (${production})` : 'production (none yet)' }),
        ...models.map((model) => h('option', { value: model.id, text: `${model.id} (${model.architecture})` })),
      );
      if (models.some((model) => model.id === chosen)) modelSelect.value = chosen;
    } catch (error) {
      showProblem(errorSlot, error, { onChangeKey });
    }
  };

  return {
    show: () => loadModels(),
  };
}
