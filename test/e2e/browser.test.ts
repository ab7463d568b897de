/**
 * The web page at `/` in a real browser (Debian's Chromium, headless, driven by playwright-core)
 * against the real API: `startApiFixture` (a temporary DATA_DIR with a really trained `production`
 * model, the real Redis) listening on 127.0.0.1, and BullMQ training workers in this process.
 *
 * 0. The page's files are served without a key, with the CSP, nosniff and no-referrer headers and
 *    no rate-limit headers; unknown files are the API's 404 problem.
 * 1. Predict: the page asks for the key once (on the first 401), a real radiograph chosen through
 *    the file input is classified; the class, fracture percentage, class bars, model and overlay
 *    toggle are those of the API's own answer for the same bytes, and the audit log names the key
 *    and the file's hash. A file the API refuses shows its problem (title, detail, code, status).
 * 2. Experiments: a one-epoch `cnn` experiment started from the form is followed to 100 % through
 *    the event stream (fetched with the key), is listed, and its report shows the metric table and
 *    loaded chart images; the full HTML report opens in a tab of its own, with its own styles.
 * 3. Models: keyboard navigation to the section; the list marks `production`; promoting with a
 *    predict-only key shows the 403 problem, and with the admin key moves the alias.
 * 4. At 375 px, with the Authorization header added by a "proxy" (the browser context) and no key
 *    stored: no key form, an X-ray dropped on the drop zone is classified, every section fits the
 *    width with every control named, and the notice stays in view.
 *
 * Each test fails on any page error or console error (except the 401/403 answers it provokes) and
 * saves screenshots to `test-artifacts/browser/`.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, BrowserContextOptions, Page, Response } from 'playwright-core';
import { startWorkers, type RunningWorkers } from '../../src/workers/run-workers.ts';
import { sha256, SKIP_WITHOUT_XRAYS, startApiFixture, waitFor, XRAY_DIR, type ApiFixture, type KeyName } from '../integration/api/api-fixture.ts';
import {
  isInViewport,
  launchChromium,
  loadedImage,
  pageWidths,
  screenshot,
  scrollTo,
  sessionValue,
  SKIP_WITHOUT_CHROMIUM,
  watchPage,
  type PageWatch,
  type WatchOptions,
  unnamedControls,
} from './browser/browser-harness.ts';

const NOTICE = 'For research use only. Not for use in diagnostic procedures.';
const KEY_STORAGE = 'fracture-service.api-key';
const XRAY_FILE = path.join(XRAY_DIR, 'fractured', 'fractured-0000.jpg');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 375, height: 740 };

interface PredictAnswer {
  model: { id: string; architecture: string; version: string; engine?: string };
  predictions: { label: string; probabilities: Record<string, number>; fractureProbability: number | null; heatmap?: string }[];
}
interface ModelList {
  models: { id: string; architecture: string; version: string; classes: string[]; aliases: string[] }[];
  aliases: Record<string, string>;
}
interface ExperimentList {
  experiments: { id: string; status: string; settings: { architectures: string[]; imageSize: number; epochs: number } }[];
}
interface ReportBody {
  experimentId: string;
  results: { architecture: string; rank: number | null; metrics: { accuracy: number; macroAvg: { f1: number } } }[];
  winner: { architecture: string; reason: string } | null;
  charts: string[];
}

/** The page's way of writing a probability (`dom.js` `percent`). */
const percent = (value: number): string => `${(value * 100).toFixed(1)} %`;

describe('the web page in Chromium', { skip: SKIP_WITHOUT_CHROMIUM }, () => {
  let fx: ApiFixture;
  let workers: RunningWorkers | undefined;
  let browser: Browser | undefined;
  let base: string;
  const contexts: BrowserContext[] = [];

  /** An API call from the test itself (to compare the page with the API). */
  const api = async <T>(url: string, key: KeyName, init: RequestInit = {}): Promise<T> => {
    const response = await fetch(`${base}${url}`, { ...init, headers: { ...fx.auth(key), ...(init.headers as Record<string, string> | undefined) } });
    assert.ok(response.ok, `${url}: HTTP ${response.status} ${await response.clone().text()}`);
    return (await response.json()) as T;
  };

  /** A fresh browser context (its own sessionStorage) with a page opened on `/{hash}`. */
  const openPage = async (
    options: { hash?: string; viewport?: { width: number; height: number }; contextOptions?: BrowserContextOptions } & WatchOptions = {},
  ): Promise<{ page: Page; watch: PageWatch; response: Response | null; statuses: number[] }> => {
    assert.ok(browser, 'the browser started');
    const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP, ...options.contextOptions });
    contexts.push(context);
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    const watch = watchPage(page, options);
    context.on('page', (opened) => {
      if (opened !== page) watch.add(opened);
    });
    const statuses: number[] = [];
    page.on('response', (answer) => {
      if (new URL(answer.url()).pathname.startsWith('/v1/')) statuses.push(answer.status());
    });
    const response = await page.goto(`${base}/${options.hash ?? ''}`);
    return { page, watch, response, statuses };
  };

  /** Answers the key form the page shows after its first 401. */
  const enterKey = async (page: Page, key: KeyName, screenshotName?: string): Promise<void> => {
    const dialog = page.getByRole('dialog', { name: 'API key' });
    await dialog.waitFor({ state: 'visible' });
    if (screenshotName) await screenshot(page, screenshotName, false);
    await dialog.getByLabel('API key').fill(fx.secrets[key]);
    await dialog.getByRole('button', { name: 'Use key' }).click();
    await dialog.waitFor({ state: 'hidden' });
  };

  /** Waits until the predict section has filled its model choice (its first API call answered). */
  const modelsLoaded = async (page: Page): Promise<void> => {
    await page.locator('#predict-model option', { hasText: 'production (' }).waitFor({ state: 'attached' });
  };

  const noticeInView = async (page: Page, where: string): Promise<void> => {
    const notice = page.getByRole('note').filter({ hasText: NOTICE });
    assert.equal(await notice.count(), 1, `${where}: one intended-use notice`);
    assert.ok(await notice.isVisible(), `${where}: the notice is visible`);
    assert.ok(await isInViewport(notice), `${where}: the notice is inside the viewport`);
  };

  before(async () => {
    fx = await startApiFixture();
    workers = startWorkers({ config: fx.config, queues: ['training'], concurrency: 1 });
    await workers.ready();
    base = await fx.listen();
    browser = await launchChromium();
  });

  afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close().catch(() => undefined);
  });

  after(async () => {
    await browser?.close();
    // Workers first: they hold Redis connections under the prefix whose keys the fixture deletes.
    await workers?.close();
    await fx?.close();
  });

  it('serves the page and its assets without a key, with the security headers, and unknown files as 404 problems', async () => {
    const expectations: [string, RegExp, RegExp][] = [
      ['/', /^text\/html/, /style-src 'self'(;|$)/],
      ['/assets/app.js', /^(text|application)\/javascript/, /style-src 'self'(;|$)/],
      ['/assets/styles.css', /^text\/css/, /style-src 'self'(;|$)/],
      ['/report.html', /^text\/html/, /style-src 'self' 'unsafe-inline'(;|$)/],
    ];
    for (const [url, type, policy] of expectations) {
      const response = await fetch(`${base}${url}`);
      assert.equal(response.status, 200, url);
      assert.match(response.headers.get('content-type') ?? '', type, url);
      const csp = response.headers.get('content-security-policy') ?? '';
      assert.match(csp, policy, url);
      assert.match(csp, /default-src 'none'/, url);
      assert.match(csp, /script-src 'self'(;|$)/, url);
      assert.match(csp, /frame-ancestors 'none'/, url);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', url);
      assert.equal(response.headers.get('referrer-policy'), 'no-referrer', url);
      assert.equal(response.headers.get('x-ratelimit-limit'), null, `${url} is not rate-limited`);
      await response.arrayBuffer();
    }
    const missing = await fetch(`${base}/assets/missing.js`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(((await missing.json()) as { code: string }).code, 'NOT_FOUND');
    // The API itself still wants a key, and counts requests (so the header checked above exists).
    assert.equal((await fetch(`${base}/v1/models`)).status, 401);
    const limited = await fetch(`${base}/v1/models`, { headers: fx.auth('predict') });
    assert.equal(limited.status, 200);
    assert.match(limited.headers.get('x-ratelimit-limit') ?? '', /^\d+$/, 'API routes carry the rate-limit headers');
    await limited.arrayBuffer();
  });

  it('asks for the key once, predicts a real X-ray from the file input and shows class, percentage, bars, overlay and model', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    assert.ok(fx.experiment, 'the fixture trained a model');
    const { page, watch, response, statuses } = await openPage({ allowStatuses: [401, 415, 422] });
    assert.equal(response?.status(), 200);
    const headers = response?.headers() ?? {};
    assert.match(headers['content-type'] ?? '', /^text\/html/);
    assert.match(headers['content-security-policy'] ?? '', /script-src 'self'(;|$)/);
    assert.match(headers['content-security-policy'] ?? '', /style-src 'self'(;|$)/);
    assert.match(headers['content-security-policy'] ?? '', /img-src 'self' data: blob:/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    assert.equal(headers['referrer-policy'], 'no-referrer');
    await noticeInView(page, 'on load');

    // No key yet: the page called the API without one and asks only because the answer was 401.
    await enterKey(page, 'admin', 'key-dialog-1280');
    await modelsLoaded(page);
    assert.equal(statuses.filter((status) => status === 401).length, 1, `one 401 before the key: ${statuses.join(',')}`);
    assert.equal(await sessionValue(page, KEY_STORAGE), fx.secrets.admin, 'the key is kept in sessionStorage');

    await page.setInputFiles('#xray-file', XRAY_FILE);
    await page.locator('#predict-result').waitFor({ state: 'visible' });

    // The API's own answer for the same bytes (the model is deterministic).
    const bytes = await readFile(XRAY_FILE);
    const [audit] = (await fx.auditRecords()).slice(-1);
    assert.equal(audit?.keyId, 'root', 'the page sent the admin key');
    assert.deepEqual(audit?.inputSha256, [sha256(bytes)], 'the page sent the file unchanged');
    const form = new FormData();
    form.append('image', new Blob([bytes], { type: 'image/jpeg' }), 'xray.jpg');
    const expected = await api<PredictAnswer>('/v1/predict?explain=true', 'admin', { method: 'POST', body: form });
    const [prediction] = expected.predictions;
    assert.ok(prediction && prediction.fractureProbability !== null);

    assert.equal(await page.locator('#result-label').textContent(), prediction.label);
    const fracture = (await page.locator('#result-fracture').textContent()) ?? '';
    assert.match(fracture, /^\d{1,3}\.\d %$/);
    assert.equal(fracture, percent(prediction.fractureProbability));

    const rows = page.locator('#class-bars li');
    const expectedRows = Object.entries(prediction.probabilities).sort((a, b) => b[1] - a[1]);
    assert.equal(await rows.count(), expectedRows.length, 'one bar per class');
    for (const [i, [name, probability]] of expectedRows.entries()) {
      const row = rows.nth(i);
      assert.equal(await row.locator('.bar-name').textContent(), name);
      assert.equal(await row.locator('.bar-value').textContent(), percent(probability), `${name}: the value as text`);
      const width = await row.locator('.bar-fill').evaluate((fill: { style: { width: string } }) => fill.style.width);
      assert.ok(Math.abs(Number.parseFloat(width) - probability * 100) < 0.01, `${name}: the bar is ${width} for ${probability}`);
    }

    assert.equal(await page.locator('#result-model .model-id').textContent(), expected.model.id);
    assert.equal(expected.model.id, fx.experiment.modelId);
    assert.equal(expected.model.engine, 'onnx', 'a trained model is served by ONNX Runtime');
    assert.equal(await page.locator('#result-model').textContent(), `${expected.model.id} (${expected.model.architecture}, version ${expected.model.version}, ONNX Runtime)`);

    // The overlay first, then the original, then the overlay again.
    const image = page.locator('#result-image');
    const overlay = await loadedImage(image);
    assert.equal(overlay.scheme, 'data:');
    assert.match(overlay.src, /^data:image\/png;base64,/);
    assert.ok(overlay.naturalWidth >= 256, `the overlay is scaled up for legibility: ${overlay.naturalWidth} px`);
    await screenshot(page, 'predict-1280');
    await page.getByLabel('Original').check();
    const original = await loadedImage(image);
    assert.equal(original.scheme, 'blob:');
    assert.deepEqual([original.naturalWidth, original.naturalHeight], [224, 224], 'the uploaded radiograph itself');
    assert.equal(await image.getAttribute('alt'), 'The uploaded X-ray');
    await page.getByLabel('Grad-CAM overlay').check();
    assert.equal((await loadedImage(image)).scheme, 'data:');

    await scrollTo(page, 'bottom');
    await noticeInView(page, 'scrolled to the bottom');

    // A file the service refuses: its problem document, readable (title, detail, code, status).
    const broken = { name: 'broken.png', mimeType: 'image/png', buffer: Buffer.from('this is not an image, only text') };
    await page.setInputFiles('#xray-file', broken);
    const alert = page.locator('#predict-error [role="alert"]');
    await alert.waitFor();
    const refused = await fetch(`${base}/v1/predict?explain=true`, {
      method: 'POST',
      headers: fx.auth('admin'),
      body: (() => {
        const body = new FormData();
        body.append('image', new Blob([broken.buffer], { type: 'image/png' }), broken.name);
        return body;
      })(),
    });
    const problem = (await refused.json()) as { title: string; detail: string; code: string; status: number };
    assert.ok(problem.status >= 400 && problem.status < 500, `the API refuses it: ${JSON.stringify(problem)}`);
    assert.equal(await alert.locator('.problem-title').textContent(), problem.title);
    assert.ok(((await alert.textContent()) ?? '').includes(problem.detail), 'the detail is shown');
    assert.equal(await alert.locator('.problem-code code').textContent(), problem.code);
    assert.match((await alert.locator('.problem-code').textContent()) ?? '', new RegExp(`HTTP ${problem.status}`));
    assert.equal(await page.locator('#predict-result').isVisible(), false, 'no stale result next to the error');
    await screenshot(page, 'predict-error-1280', false);

    // Asked once: a reload in the same tab uses the stored key without a 401 or the form.
    const before401 = statuses.filter((status) => status === 401).length;
    await page.reload();
    await modelsLoaded(page);
    assert.equal(await page.getByRole('dialog', { name: 'API key' }).isVisible(), false, 'no key form after a reload');
    assert.equal(statuses.filter((status) => status === 401).length, before401, 'no 401 after the reload');

    assert.deepEqual(watch.problems, []);
  });

  it('starts a one-epoch experiment from the form, follows its progress bar to 100 %, lists it and shows its report and charts', async (t) => {
    const { page, watch } = await openPage({ hash: '#experiments', allowStatuses: [401] });
    await enterKey(page, 'train');
    // EventSource cannot send the key: the page must read the stream with fetch, with the header.
    const streams: { path: string; authorization: string | undefined; accept: string | undefined }[] = [];
    page.on('request', (request) => {
      const { pathname } = new URL(request.url());
      if (pathname.endsWith('/events')) streams.push({ path: pathname, authorization: request.headers().authorization, accept: request.headers().accept });
    });
    const form = page.locator('#experiment-form');
    await page.locator(`#experiment-dataset option[value="${fx.datasetId}"]`).waitFor({ state: 'attached' });
    await form.getByLabel('Dataset').selectOption(fx.datasetId);
    assert.equal(await form.getByLabel('CNN (small, fast)').isChecked(), true, 'cnn is the default choice');
    for (const label of ['VGG16', 'ResNet50', 'InceptionV3 (75 px or more)']) assert.equal(await form.getByLabel(label).isChecked(), false);
    // The synthetic images are 48 px: the input must not be larger than the images.
    await form.getByLabel('Image size (px)').fill('32');
    await form.getByLabel('Epochs').fill('1');
    const started = performance.now();
    await form.getByRole('button', { name: 'Start experiment' }).click();

    const bar = page.locator('#progress-cnn');
    await bar.waitFor({ state: 'attached' });
    const seen: number[] = [];
    await waitFor(
      'the cnn progress bar to reach 100 % and the experiment to complete',
      async () => {
        const value = Number(await bar.getAttribute('value'));
        if (seen.at(-1) !== value) seen.push(value);
        const status = (await page.locator('#live-status').textContent()) ?? '';
        return value === 1 && / is completed /.test(status) ? status : undefined;
      },
      45_000,
      50,
    );
    const seconds = (performance.now() - started) / 1000;
    assert.ok(seen.some((value) => value < 1), `the bar was seen before the end: ${seen.join(', ')}`);
    assert.ok(seen.every((value, i) => i === 0 || value >= (seen[i - 1] ?? 0)), `the bar never goes back: ${seen.join(', ')}`);
    assert.match((await page.locator('label[for="progress-cnn"]').textContent()) ?? '', /cnn completed, epoch 1 of 1, 100 %/);

    const { experiments } = await api<ExperimentList>('/v1/experiments', 'train');
    const created = experiments.find((experiment) => experiment.id !== fx.experiment?.id);
    assert.ok(created, 'the API lists the new experiment');
    assert.equal(created.status, 'completed');
    assert.deepEqual([created.settings.architectures, created.settings.imageSize, created.settings.epochs], [['cnn'], 32, 1], 'the form sent its values');

    assert.deepEqual(streams[0], { path: `/v1/experiments/${created.id}/events`, authorization: `Bearer ${fx.secrets.train}`, accept: 'text/event-stream' });

    const row = page.locator(`#experiment-table tr[data-experiment="${created.id}"]`);
    await row.locator('.badge', { hasText: 'completed' }).waitFor();
    assert.equal(await page.locator('#experiment-table tbody tr').count(), 2, 'the seeded experiment and the new one');
    await screenshot(page, 'experiments-1280');

    // Its report, opened from the list.
    await row.getByRole('link', { name: `Report of ${created.id}` }).click();
    await page.locator('#report-status', { hasText: `Report of ${created.id} with` }).waitFor({ timeout: 20_000 });
    const report = await api<ReportBody>(`/v1/reports/${created.id}`, 'train');
    assert.equal(await page.locator('#report-title').textContent(), `Experiment ${created.id}`);
    const tableRows = page.locator('#metric-table tbody tr');
    assert.equal(await tableRows.count(), report.results.length);
    const [result] = report.results;
    assert.ok(result);
    assert.equal(await tableRows.first().locator('th').textContent(), 'cnn');
    assert.equal(await tableRows.first().locator('td[data-column="accuracy"]').textContent(), result.metrics.accuracy.toFixed(3));
    assert.equal(await tableRows.first().locator('td[data-column="macroF1"]').textContent(), result.metrics.macroAvg.f1.toFixed(3));
    assert.ok(await page.getByRole('columnheader', { name: 'Macro F1' }).isVisible(), 'the columns have headers');
    assert.ok(report.winner);
    assert.match((await page.locator('#report-winner').textContent()) ?? '', new RegExp(`Winner: ${report.winner.architecture}`));
    assert.ok(((await page.locator('#report-winner').textContent()) ?? '').includes(report.winner.reason), 'the winner and why');

    const charts = page.locator('img[data-chart]');
    const shown = await charts.evaluateAll((images: { dataset: { chart?: string } }[]) => images.map((image) => image.dataset.chart ?? ''));
    assert.deepEqual([...shown].sort(), [...report.charts].sort(), 'every chart of the report, once');
    assert.ok(report.charts.includes('learning-curves') && report.charts.includes('confusion-matrix-cnn'), report.charts.join(', '));
    for (const [i, name] of shown.entries()) {
      const chart = await loadedImage(charts.nth(i));
      assert.equal(chart.scheme, 'blob:', `${name} is an object URL of a fetched blob`);
      assert.ok(chart.naturalWidth > 0, `${name} loaded`);
    }
    await screenshot(page, 'report-1280');

    // The full HTML report, in a tab that fetches it with the same key.
    const opened = page.context().waitForEvent('page');
    await page.getByRole('link', { name: 'Open the full HTML report' }).click();
    const tab = await opened;
    await tab.locator('#winner-heading').waitFor();
    assert.equal(await tab.title(), `Comparison report: experiment ${created.id}`);
    const noticeColour = await tab.locator('p.notice').first().evaluate((element: object) => {
      const view = globalThis as unknown as { getComputedStyle(element: object): { backgroundColor: string } };
      return view.getComputedStyle(element).backgroundColor;
    });
    assert.equal(noticeColour, 'rgb(255, 244, 229)', "the report's own inline styles apply");
    await screenshot(tab, 'report-html', false);
    await tab.close();

    assert.deepEqual(watch.problems, []);
    t.diagnostic(`experiment from the form to completed in the page: ${seconds.toFixed(1)} s; progress values seen: ${seen.join(', ')}`);
  });

  it('lists the models with the production one marked; promoting shows the 403 problem for a predict key and works with the admin key', async () => {
    const { page, watch } = await openPage({ allowStatuses: [401, 403] });
    await enterKey(page, 'predict');
    await modelsLoaded(page);
    // Keyboard: the nav link opens the section and focus moves to its heading.
    await page.getByRole('link', { name: 'Models' }).focus();
    await page.keyboard.press('Enter');
    await page.waitForURL(/#models$/);
    // The page moves focus in its hashchange handler, which may run just after the URL changed: wait
    // for it (2 s at most) rather than read it at once, then check.
    const focusedId = () => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id);
    await page.waitForFunction(() => (globalThis as unknown as { document: { activeElement: { id: string } | null } }).document.activeElement?.id === 'models-heading', null, { timeout: 2_000 }).catch(() => undefined);
    assert.equal(await focusedId(), 'models-heading');
    assert.equal(await page.getByRole('link', { name: 'Models' }).getAttribute('aria-current'), 'page');

    const { models, aliases } = await api<ModelList>('/v1/models', 'admin');
    const production = aliases.production;
    assert.ok(production);
    const rows = page.locator('#models-table tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), models.length);
    assert.equal(await page.locator(`tr[data-model="${production}"] .badge.production`).textContent(), 'production');
    assert.equal(await page.locator('#models-table .badge.production').count(), 1, 'one production model');

    // Another model when the experiment test made one, else the production model again.
    const target = models.find((model) => model.id !== production) ?? models[0];
    assert.ok(target);
    const promote = page.locator(`tr[data-model="${target.id}"]`).getByRole('button', { name: `Promote ${target.id} to production` });
    await promote.click();
    const problem = page.locator('#models-error [role="alert"]');
    await problem.waitFor();
    const problemText = (await problem.textContent()) ?? '';
    assert.match(problemText, /FORBIDDEN/);
    assert.match(problemText, /HTTP 403/);
    assert.match(problemText, /"admin" scope/);
    assert.equal((await api<ModelList>('/v1/models', 'admin')).aliases.production, production, 'nothing changed');
    await screenshot(page, 'models-403-1280');

    await problem.getByRole('button', { name: 'Use a key with more rights' }).click();
    await enterKey(page, 'admin');
    await promote.click();
    await page.locator('#models-status', { hasText: `${target.id} is now the production model.` }).waitFor();
    assert.equal((await api<ModelList>('/v1/models', 'admin')).aliases.production, target.id, 'the alias moved');
    assert.equal(await page.locator(`tr[data-model="${target.id}"] .badge.production`).count(), 1);
    assert.equal(await page.locator('#models-table .badge.production').count(), 1);
    assert.equal(await page.locator('#models-error [role="alert"]').count(), 0, 'the problem is gone');
    await screenshot(page, 'models-1280');

    assert.deepEqual(watch.problems, []);
  });

  it('fits a 375 px phone screen in every section with the notice in view, with the key added by a proxy', { skip: SKIP_WITHOUT_XRAYS }, async () => {
    // A proxy in front of the service adds the header: the browser context plays its part.
    const { page, watch, statuses } = await openPage({
      viewport: PHONE,
      contextOptions: { extraHTTPHeaders: { authorization: `Bearer ${fx.secrets.admin}` } },
    });
    await modelsLoaded(page);
    assert.equal(await page.getByRole('dialog', { name: 'API key' }).isVisible(), false, 'no key form');
    assert.equal(await sessionValue(page, KEY_STORAGE), null, 'no key stored');
    assert.ok(!statuses.includes(401), `no 401: ${statuses.join(',')}`);

    // Dropped on the drop zone this time (the first test used the file input).
    const dropped = [...(await readFile(XRAY_FILE))];
    const dataTransfer = await page.evaluateHandle((data: number[]) => {
      const browser = globalThis as unknown as {
        DataTransfer: new () => { items: { add(file: unknown): void } };
        File: new (parts: unknown[], name: string, options: { type: string }) => unknown;
      };
      const transfer = new browser.DataTransfer();
      transfer.items.add(new browser.File([new Uint8Array(data)], 'wrist.jpg', { type: 'image/jpeg' }));
      return transfer;
    }, dropped);
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer });
    await page.locator('#predict-result').waitFor({ state: 'visible' });
    assert.equal((await loadedImage(page.locator('#result-image'))).scheme, 'data:', 'the overlay of the dropped image');
    assert.match((await page.locator('#result-fracture').textContent()) ?? '', /^\d{1,3}\.\d %$/);
    const [audit] = (await fx.auditRecords()).slice(-1);
    assert.deepEqual(audit?.inputSha256, [sha256(Buffer.from(dropped))], 'the dropped file reached the API unchanged');
    assert.equal(audit?.keyId, 'root', "the proxy's key was used");

    const ready: Record<string, () => Promise<unknown>> = {
      predict: async () => undefined,
      experiments: () => page.locator('#experiment-table tbody tr').first().waitFor(),
      report: async () => {
        await page.locator('#report-status', { hasText: ' with ' }).waitFor({ timeout: 20_000 });
        const charts = page.locator('img[data-chart]');
        for (let i = 0; i < (await charts.count()); i++) assert.ok((await loadedImage(charts.nth(i))).naturalWidth > 0);
      },
      models: () => page.locator('#models-table tbody tr').first().waitFor(),
    };
    for (const [section, isReady] of Object.entries(ready)) {
      await page.locator('nav').getByRole('link', { name: section[0]?.toUpperCase() + section.slice(1), exact: true }).click();
      await page.locator(`#${section}`).waitFor({ state: 'visible' });
      await isReady();
      const widths = await pageWidths(page);
      assert.equal(widths.innerWidth, PHONE.width);
      assert.ok(widths.scrollWidth <= widths.innerWidth, `${section}: no horizontal scroll (${widths.scrollWidth} > ${widths.innerWidth})`);
      await noticeInView(page, `${section} at 375 px`);
      assert.deepEqual(await unnamedControls(page), [], `${section}: every control, link and image has an accessible name`);
      await screenshot(page, `${section}-375`);
      await scrollTo(page, 'bottom');
      await noticeInView(page, `${section} at 375 px, scrolled down`);
      await scrollTo(page, 0);
    }
    assert.deepEqual(watch.problems, []);
  });
});
