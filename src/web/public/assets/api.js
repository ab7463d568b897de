/* global fetch, sessionStorage, Headers */
/**
 * The API client of the page: every call goes through {@link ApiClient#request}, which sends
 * `Authorization: Bearer <key>` when a key is stored for this tab, and otherwise sends nothing (a proxy
 * may add the header itself). Only when an answer is 401 does it ask for a key, then retries.
 * Errors are {@link ApiError}s carrying the server's problem document (RFC 9457).
 * @module
 */

/** Where the key lives: sessionStorage is per tab and is gone when the tab closes. */
const STORAGE_KEY = 'fracture-service.api-key';

/** An answer that is not 2xx, or no answer at all; `problem` is what the page shows. */
export class ApiError extends Error {
  /**
   * @param {{title: string, status?: number, detail?: string, code?: string}} problem
   */
  constructor(problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = 'ApiError';
    this.problem = problem;
  }

  /** HTTP status (0 when the service did not answer). */
  get status() {
    return this.problem.status ?? 0;
  }
}

/** Reads a failed response as a problem document (or makes one from the status line). */
async function problemOf(response) {
  const type = response.headers.get('content-type') ?? '';
  if (type.includes('json')) {
    try {
      const body = await response.json();
      if (body && typeof body.title === 'string') return body;
    } catch {
      // not JSON after all: fall through to the status line
    }
  }
  return { title: response.statusText || 'Request failed', status: response.status, detail: `the service answered HTTP ${response.status}` };
}

/**
 * Fetch with the stored key. `askKey(problem)` is called when an answer is 401: it resolves to a key
 * (stored, then the request is retried) or null (the user declined: the 401 is thrown).
 */
export class ApiClient {
  #askKey;
  #storage;
  /** One prompt at a time: requests that get 401 together wait for the same answer. */
  #pending = null;
  #listeners = new Set();

  /**
   * @param {{askKey: (problem: object) => Promise<string | null>, storage?: Storage}} options
   */
  constructor({ askKey, storage = sessionStorage }) {
    this.#askKey = askKey;
    this.#storage = storage;
  }

  /** The stored key, or null. */
  get key() {
    return this.#storage.getItem(STORAGE_KEY);
  }

  /** Stores a key for this tab (an empty one forgets it). */
  setKey(key) {
    const trimmed = (key ?? '').trim();
    if (trimmed) this.#storage.setItem(STORAGE_KEY, trimmed);
    else this.#storage.removeItem(STORAGE_KEY);
    for (const listener of this.#listeners) listener(this.key !== null);
  }

  /** Calls `listener(hasKey)` whenever the key changes. */
  onKeyChange(listener) {
    this.#listeners.add(listener);
  }

  /** Asks for a key now (e.g. from a button); resolves to whether one was given. */
  async promptForKey(problem = null) {
    this.#pending ??= this.#askKey(problem).finally(() => {
      this.#pending = null;
    });
    const key = await this.#pending;
    if (key) this.setKey(key);
    return Boolean(key);
  }

  /**
   * A request; resolves to the (2xx) Response, throws {@link ApiError} otherwise.
   * @param {string} path e.g. `/v1/models`
   * @param {{method?: string, body?: BodyInit, json?: unknown, accept?: string, signal?: AbortSignal}} [options]
   */
  async request(path, options = {}) {
    for (;;) {
      const key = this.key;
      const headers = new Headers();
      if (key) headers.set('Authorization', `Bearer ${key}`);
      if (options.accept) headers.set('Accept', options.accept);
      let body = options.body;
      if (options.json !== undefined) {
        headers.set('Content-Type', 'application/json');
        body = JSON.stringify(options.json);
      }
      let response;
      try {
        response = await fetch(path, { method: options.method ?? 'GET', headers, body, signal: options.signal, cache: 'no-store' });
      } catch (error) {
        if (error?.name === 'AbortError') throw error;
        throw new ApiError({ title: 'The service did not answer', status: 0, detail: 'check the connection and try again' });
      }
      if (response.ok) return response;
      const problem = await problemOf(response);
      if (response.status === 401) {
        // Another request's prompt has stored a new key since this one was sent: use it.
        if (this.key !== key && this.key !== null) continue;
        // A key that was sent and refused is wrong: forget it before asking again.
        if (key) this.setKey('');
        if (await this.promptForKey({ ...problem, refused: Boolean(key) })) continue;
      }
      throw new ApiError(problem);
    }
  }

  /** A request whose answer is JSON. */
  async json(path, options = {}) {
    const response = await this.request(path, { accept: 'application/json', ...options });
    return response.json();
  }

  /** A request whose answer is a file (a chart, a CSV, a page). */
  async blob(path, options = {}) {
    const response = await this.request(path, options);
    return response.blob();
  }
}
