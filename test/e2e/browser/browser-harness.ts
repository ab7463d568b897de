/**
 * What the browser tests put around Debian's Chromium driven by `playwright-core`: launching it,
 * watching a page for script errors and console errors, screenshots under `test-artifacts/browser/`,
 * and small page-side probes (is an element inside the viewport, has an image loaded, does the page
 * scroll sideways).
 * @module
 */
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser, type ConsoleMessage, type Locator, type Page } from 'playwright-core';
import { REPO_ROOT } from '../helpers/service-process.ts';

/** The Chromium of Debian's `chromium` package (`apt-get install -y chromium`). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/** `false` (run) when Chromium is installed, else why the browser tests skip. */
export const SKIP_WITHOUT_CHROMIUM: false | string = existsSync(CHROMIUM_PATH)
  ? false
  : `Chromium not found at ${CHROMIUM_PATH}: install it with "apt-get install -y chromium" (.ci/run does)`;

/** Where screenshots go (gitignored; CI keeps them as artifacts). */
export const ARTIFACT_DIR = path.join(REPO_ROOT, 'test-artifacts', 'browser');

/** Headless Chromium with nothing that talks to the network on its own. */
export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless=new',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/** Console errors a test expects: the HTTP statuses the page provokes on purpose. */
export interface WatchOptions {
  /** Statuses of `/v1/...` answers whose "Failed to load resource" console line is expected (e.g. 401 before a key is entered). */
  allowStatuses?: readonly number[];
}

/** Every uncaught exception and console error of a page, except those a test expects. */
export interface PageWatch {
  readonly problems: string[];
  /** Watches another page (a tab the first one opened) with the same rules. */
  add(page: Page): void;
}

/** Chromium's console line for a fetch answered with an error status. */
const RESOURCE_STATUS = /^Failed to load resource: the server responded with a status of (\d{3})\b/;

/** Collects a page's `pageerror`s and console errors (a test asserts the list is empty at its end). */
export function watchPage(page: Page, options: WatchOptions = {}): PageWatch {
  const problems: string[] = [];
  const allowed = new Set(options.allowStatuses ?? []);
  const expected = (message: ConsoleMessage): boolean => {
    const status = RESOURCE_STATUS.exec(message.text())?.[1];
    if (status === undefined || !allowed.has(Number(status))) return false;
    // Only API answers may fail on purpose: a missing asset would be a bug of the page.
    return new URL(message.location().url).pathname.startsWith('/v1/');
  };
  const add = (target: Page): void => {
    target.on('pageerror', (error) => problems.push(`page error on ${target.url()}: ${error.message}`));
    target.on('console', (message) => {
      if (message.type() === 'error' && !expected(message)) problems.push(`console error on ${target.url()}: ${message.text()} (${message.location().url})`);
    });
  };
  add(page);
  return { problems, add };
}

/** Saves a screenshot as `test-artifacts/browser/<name>.png` and returns its path. */
export async function screenshot(page: Page, name: string, fullPage = true): Promise<string> {
  await mkdir(ARTIFACT_DIR, { recursive: true });
  const file = path.join(ARTIFACT_DIR, `${name}.png`);
  // A full-page capture draws sticky elements where the scroll position puts them: start at the top.
  if (fullPage) await scrollTo(page, 0);
  await page.screenshot({ path: file, fullPage });
  return file;
}

/**
 * The little of the browser's globals the probes below read (the project's TypeScript has no DOM
 * library: these functions run in the page, not in Node).
 */
interface PageGlobals {
  innerWidth: number;
  innerHeight: number;
  scrollTo(x: number, y: number): void;
  document: { documentElement: { scrollWidth: number; scrollHeight: number; clientWidth: number } };
  sessionStorage: { getItem(key: string): string | null };
}

/** An element's box (the part of `Element` the probes read). */
interface Boxed {
  getBoundingClientRect(): { top: number; left: number; bottom: number; right: number; width: number; height: number };
}

/** Whether the element's box lies entirely inside the viewport (not merely rendered somewhere). */
export async function isInViewport(locator: Locator): Promise<boolean> {
  return locator.evaluate((element: Boxed) => {
    const page = globalThis as unknown as PageGlobals;
    const box = element.getBoundingClientRect();
    return box.width > 0 && box.height > 0 && box.top >= 0 && box.left >= 0 && box.bottom <= page.innerHeight && box.right <= page.innerWidth;
  });
}

/** The page's widths: scrollable content, viewport, and the root's client width (CSS px). */
export async function pageWidths(page: Page): Promise<{ scrollWidth: number; innerWidth: number; clientWidth: number }> {
  return page.evaluate(() => {
    const browser = globalThis as unknown as PageGlobals;
    return {
      scrollWidth: browser.document.documentElement.scrollWidth,
      innerWidth: browser.innerWidth,
      clientWidth: browser.document.documentElement.clientWidth,
    };
  });
}

/** Scrolls to the bottom of the page (or `y`). */
export async function scrollTo(page: Page, y: 'bottom' | number): Promise<void> {
  await page.evaluate((target) => {
    const browser = globalThis as unknown as PageGlobals;
    browser.scrollTo(0, target === 'bottom' ? browser.document.documentElement.scrollHeight : target);
  }, y);
}

/** A value of the page's sessionStorage. */
export async function sessionValue(page: Page, key: string): Promise<string | null> {
  return page.evaluate((name) => (globalThis as unknown as PageGlobals).sessionStorage.getItem(name), key);
}

/** An image element's source (its scheme and start) and natural size once it has loaded (or failed). */
export interface LoadedImage {
  scheme: string;
  src: string;
  naturalWidth: number;
  naturalHeight: number;
}

/** Waits for an `<img>` to finish loading its current source and describes it. */
export async function loadedImage(locator: Locator): Promise<LoadedImage> {
  return locator.evaluate(async (img: { src: string; naturalWidth: number; naturalHeight: number; decode(): Promise<void> }) => {
    await img.decode().catch(() => undefined);
    return { scheme: img.src.slice(0, img.src.indexOf(':') + 1), src: img.src.slice(0, 40), naturalWidth: img.naturalWidth, naturalHeight: img.naturalHeight };
  });
}

/** A form control or image as the label check reads it. */
interface Labelled {
  tagName: string;
  id: string;
  alt?: string;
  labels?: ArrayLike<unknown> | null;
  textContent: string | null;
  getAttribute(name: string): string | null;
}

/**
 * Controls and images of the page without an accessible name: inputs, selects and progress bars
 * with no `<label>` or `aria-label(ledby)`, buttons and links without text or `aria-label`, images
 * without `alt` (an empty `alt` counts only for images inside a labelled figure). Empty when all
 * are named.
 */
export async function unnamedControls(page: Page): Promise<string[]> {
  return page.locator('input:not([type="hidden"]), select, textarea, progress, button, a[href], img').evaluateAll((elements: Labelled[]) =>
    elements
      .filter((element) => {
        const aria = (element.getAttribute('aria-label') ?? '').trim() !== '' || element.getAttribute('aria-labelledby') !== null;
        if (aria) return false;
        const tag = element.tagName.toLowerCase();
        if (tag === 'button' || tag === 'a') return (element.textContent ?? '').trim() === '';
        if (tag === 'img') return element.getAttribute('src') !== null && (element.alt ?? '').trim() === '';
        return (element.labels?.length ?? 0) === 0;
      })
      .map((element) => `${element.tagName.toLowerCase()}#${element.id}`),
  );
}
