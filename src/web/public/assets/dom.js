/* global document, Node */
/**
 * Small DOM helpers: elements are built with {@link h} (text is always set as text, never parsed as
 * HTML: class names and ids are user data), problems are shown with {@link showProblem}, numbers are
 * formatted the same way everywhere.
 * @module
 */

/**
 * Creates an element. `attributes`: `class`, `text`, and any attribute or boolean property
 * (`hidden`, `disabled`, `checked`); `on` maps event names to listeners. Children are nodes or text.
 * @returns {HTMLElement}
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') element.className = value;
    else if (name === 'text') element.textContent = String(value);
    else if (name === 'on') for (const [event, listener] of Object.entries(value)) element.addEventListener(event, listener);
    else if (value === true) element.setAttribute(name, '');
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

/** `document.getElementById` that fails loudly when the page and the script disagree. */
export function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`the page has no element #${id}`);
  return element;
}

/** A probability (0..1) as a percentage with one decimal: `73.2 %`. */
export function percent(value, digits = 1) {
  return Number.isFinite(value) ? `${(value * 100).toFixed(digits)} %` : 'n/a';
}

/** A metric with `digits` decimals, or `n/a` when it is undefined for the data. */
export function metric(value, digits = 3) {
  return Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
}

/** An integer with thousands separators. */
export function integer(value) {
  return Number.isFinite(value) ? Math.round(value).toLocaleString('en-US') : 'n/a';
}

/** Seconds as `0.3 s`, `42 s`, `3 min 5 s` or `1 h 2 min`. */
export function duration(seconds) {
  if (!Number.isFinite(seconds)) return 'n/a';
  if (seconds < 9.95) return `${Math.max(0, seconds).toFixed(1)} s`;
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** An ISO time as local date and time (`2026-12-04 18:54`), in a `<time>` element. */
export function timeElement(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return document.createTextNode(iso ?? '');
  const pad = (n) => String(n).padStart(2, '0');
  const text = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  return h('time', { datetime: iso, text });
}

/** Empties an element. */
export function clear(element) {
  element.replaceChildren();
}

/**
 * Shows an error in `slot` as an alert: the problem's title, detail and code (and, for 401/403, a
 * button that asks for another key when `onChangeKey` is given).
 * @param {HTMLElement} slot
 * @param {unknown} error an ApiError (with `problem`) or any Error
 * @param {{onChangeKey?: () => void}} [options]
 */
export function showProblem(slot, error, options = {}) {
  const problem = error?.problem ?? { title: 'Something went wrong', detail: error instanceof Error ? error.message : String(error) };
  const code = problem.code ? h('span', { class: 'problem-code' }, 'Code ', h('code', { text: problem.code }), problem.status ? ` (HTTP ${problem.status})` : '') : null;
  const keyHint =
    (problem.status === 401 || problem.status === 403) && options.onChangeKey
      ? h('p', {}, h('button', { type: 'button', class: 'link-button', on: { click: options.onChangeKey } }, problem.status === 403 ? 'Use a key with more rights' : 'Enter an API key'))
      : null;
  slot.replaceChildren(
    h('div', { class: 'problem', role: 'alert' }, h('p', { class: 'problem-title' }, h('strong', { text: problem.title })), problem.detail ? h('p', { text: problem.detail }) : null, code, keyHint),
  );
}
