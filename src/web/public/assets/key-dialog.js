/**
 * The API-key form: a modal `<dialog>` (focus stays in it, Escape cancels) that resolves to the key
 * typed, or null when cancelled.
 * @module
 */
import { byId } from './dom.js';

/**
 * Wires the dialog of index.html and returns the `askKey` function of the API client.
 * @returns {(problem: {detail?: string, refused?: boolean} | null) => Promise<string | null>}
 */
export function keyDialog() {
  const dialog = byId('key-dialog');
  const form = byId('key-form');
  const input = byId('key-input');
  const problemLine = byId('key-dialog-problem');
  let resolveAnswer = null;

  const finish = (value) => {
    const resolve = resolveAnswer;
    resolveAnswer = null;
    input.value = '';
    resolve?.(value);
  };

  form.addEventListener('submit', (event) => {
    const cancelled = event.submitter?.value === 'cancel';
    if (!cancelled && !input.value.trim()) {
      event.preventDefault();
      problemLine.textContent = 'Enter the key, or cancel.';
      input.focus();
      return;
    }
    // method="dialog" closes the dialog after this handler.
    finish(cancelled ? null : input.value.trim());
  });
  // Escape, or anything else that closes it.
  dialog.addEventListener('close', () => finish(null));

  return (problem) =>
    new Promise((resolve) => {
      resolveAnswer = resolve;
      problemLine.textContent = problem?.refused ? `The key was not accepted: ${problem.detail ?? 'it is not valid'}.` : '';
      if (!dialog.open) dialog.showModal();
      input.focus();
    });
}
