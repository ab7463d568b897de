/**
 * Reports for the report tests: a real `report.json` from a tiny experiment (one CNN, 32 px, two
 * epochs on the synthetic set), and hand-edited variants of it for the edge cases; plus a small
 * RFC 4180 parser and an XML well-formedness check, written independently of the code under test.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { initBackend } from '../../../src/ml/backend/select-backend.ts';
import { rankResults, runExperiment, type ArchitectureResult, type ExperimentReport } from '../../../src/ml/experiment/index.ts';
import { rocCurve } from '../../../src/ml/metrics/index.ts';
import type { Architecture } from '../../../src/ml/models/index.ts';
import { generateSyntheticDataset } from '../../../src/ml/synth/index.ts';
import type { StoredRocCurves } from '../../../src/services/reports/index.ts';

/** A real experiment's report, read back from its `report.json`. */
export interface RealReport {
  report: ExperimentReport;
  /** Temporary folder holding the dataset and the run; remove it with {@link removeRealReport}. */
  root: string;
}

/** Runs the tiny experiment in a temporary folder (a few seconds on the WASM backend). */
export async function makeRealReport(): Promise<RealReport> {
  const backend = process.env.FRACTURE_TEST_BACKEND ?? 'wasm';
  await initBackend(backend);
  const root = await mkdtemp(path.join(os.tmpdir(), 'reports-test-'));
  const dataDir = path.join(root, 'data');
  const outDir = path.join(root, 'run');
  await generateSyntheticDataset({ outDir: dataDir, perClass: 6, size: 40, seed: 5, regions: ['hand', 'forearm'] });
  await runExperiment({ dataDir, outDir, architectures: ['cnn'], imageSize: 32, epochs: 2, batchSize: 4, seed: 9, backend });
  const report = JSON.parse(await readFile(path.join(outDir, 'report.json'), 'utf8')) as ExperimentReport;
  return { report, root };
}

export async function removeRealReport(real: RealReport | undefined): Promise<void> {
  if (real) await rm(real.root, { recursive: true, force: true });
}

/** A deep copy, so variants never change the shared real report. */
export function clone<T>(value: T): T {
  return structuredClone(value);
}

/** A hostile class name: must come out escaped in HTML and SVG. */
export const SCRIPT_CLASS = '<script>alert(1)</script>';

/** Class names that exercise CSV quoting (comma, quotes, line break) and formula injection. */
export const TRICKY_CLASSES = ['forearm, "distal" fractured', SCRIPT_CLASS, '=1+1 fractured', 'hand\r\nnormal'];

/** Deterministic scores for a ROC curve: positives score higher on average, with some overlap. */
function curveFor(positive: readonly boolean[], salt: number): ReturnType<typeof rocCurve> {
  const scores = positive.map((p, i) => (p ? 0.55 : 0.25) + (((i + 1) * (7 + salt)) % 11) / 25);
  return rocCurve(positive, scores);
}

/** ROC curves as the engine would store them (see `StoredRocCurves`), for `classNames`. */
export function storedRocCurves(classNames: readonly string[], withBinary: boolean, salt = 0): StoredRocCurves {
  const labels = Array.from({ length: 24 }, (_, i) => i % classNames.length);
  return {
    binary: withBinary ? curveFor(labels.map((label) => label % 2 === 0), salt) : null,
    perClass: Object.fromEntries(classNames.map((name, c) => [name, curveFor(labels.map((label) => label === c), salt + c)])),
  };
}

/** The real report with binary-view and per-class ROC curves added to its result. */
export function withRocCurves(report: ExperimentReport): ExperimentReport {
  const copy = clone(report);
  copy.results = copy.results.map((result, i) => Object.assign(result, { rocCurves: storedRocCurves(copy.dataset.classNames, true, i) }));
  return copy;
}

/** The real report as one written before the engine stored ROC curves. */
export function withoutRocCurves(report: ExperimentReport): ExperimentReport {
  const copy = clone(report);
  for (const result of copy.results) delete result.rocCurves;
  return copy;
}

const FOUR: readonly Architecture[] = ['cnn', 'vgg16', 'resnet50', 'inceptionv3'];

/**
 * The edge-case variant: four results (copies of the real one with distinct metrics), tricky class
 * names, no fracture-positive class (so no binary view anywhere), ROC curves on two results only,
 * and the ranking recomputed by the engine's own `rankResults`.
 */
export function fourArchitectureVariant(report: ExperimentReport): ExperimentReport {
  const copy = clone(report);
  const oldNames = copy.dataset.classNames;
  assert.equal(oldNames.length, TRICKY_CLASSES.length, 'the fixture dataset has four classes');
  const rename = (name: string): string => TRICKY_CLASSES[oldNames.indexOf(name)] ?? name;
  const base = copy.results[0];
  assert.ok(base, 'the real report has a result');
  const results: ArchitectureResult[] = FOUR.map((architecture, i) => {
    const result = clone(base);
    result.architecture = architecture;
    const m = result.metrics;
    m.perClass = Object.fromEntries(Object.entries(m.perClass).map(([name, row]) => [rename(name), row]));
    m.binary = null;
    m.accuracy = 0.4 + 0.1 * i;
    m.macroAvg.f1 = 0.9 - 0.15 * i;
    m.weightedAvg.f1 = 0.85 - 0.1 * i;
    m.mcc = -0.2 + 0.3 * i;
    m.rocAucOvrMacro = i === 3 ? null : 0.6 + 0.05 * i;
    result.params = 1000 * (i + 1) ** 3;
    result.timings = { ...result.timings, trainSeconds: 1.5 * (i + 1), inferenceMsPerImage: 0.75 * (i + 1) };
    if (i === 2) {
      // An architecture that ran one epoch without validation and stopped early.
      result.history = result.history.slice(0, 1).map(({ valLoss: _l, valAccuracy: _a, ...epoch }) => epoch);
      result.stoppedEarly = true;
    }
    if (i < 2) return Object.assign(result, { rocCurves: storedRocCurves(TRICKY_CLASSES, false, i) });
    delete result.rocCurves;
    return result;
  });
  copy.dataset.classNames = [...TRICKY_CLASSES];
  copy.dataset.positiveClasses = [];
  copy.config.architectures = [...FOUR];
  copy.results = results;
  copy.ranking = rankResults(results, copy.config.rankBy);
  copy.winner = copy.ranking.winner;
  return copy;
}

/** Parses RFC 4180 CSV (quoted fields, doubled quotes, CRLF records) into rows of strings. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') {
      assert.equal(cell, '', `a quote may only open a field (offset ${i})`);
      quoted = true;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\r' && text[i + 1] === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      i++;
    } else {
      assert.notEqual(c, '\n', `bare line feed outside quotes at offset ${i}`);
      cell += c;
    }
  }
  assert.equal(quoted, false, 'unterminated quoted field');
  assert.ok(cell === '' && row.length === 0, 'the last record ends with CRLF');
  return rows;
}

/**
 * Throws unless `text` is well-formed XML: one root element, balanced and properly nested tags,
 * quoted and unique attributes, and only valid entity references in text and attribute values.
 */
export function assertWellFormedXml(text: string): void {
  const body = text.replace(/^<\?xml[^>]*\?>\s*/, '').replace(/<!--[\s\S]*?-->/g, '');
  const entity = /&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#x[0-9A-Fa-f]+);/g;
  const checkText = (chunk: string, where: string): void => {
    const stripped = chunk.replace(entity, '');
    assert.ok(!stripped.includes('&'), `bare & in ${where}: ${chunk.slice(0, 80)}`);
    assert.ok(!stripped.includes('<'), `bare < in ${where}: ${chunk.slice(0, 80)}`);
  };
  const tag = /<(\/?)([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*(\/?)>/y;
  const attribute = /([A-Za-z_][\w:.-]*)\s*=\s*(?:"([^"]*)"|'([^']*)')/g;
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const chunk = lt === -1 ? body.slice(i) : body.slice(i, lt);
    if (stack.length === 0) assert.equal(chunk.trim(), '', 'text outside the root element');
    else checkText(chunk, 'text');
    if (lt === -1) break;
    tag.lastIndex = lt;
    const match = tag.exec(body);
    assert.ok(match, `malformed tag at offset ${lt}: ${body.slice(lt, lt + 80)}`);
    const [whole, closing, name, attributes, selfClosing] = match;
    if (closing) {
      assert.equal(attributes, '', `closing tag </${name}> has attributes`);
      assert.equal(stack.pop(), name, `</${name}> closes the wrong element`);
    } else {
      if (stack.length === 0) roots += 1;
      const seen = new Set<string>();
      for (const [, attr, double, single] of attributes!.matchAll(attribute)) {
        assert.ok(!seen.has(attr!), `duplicate attribute ${attr} on <${name}>`);
        seen.add(attr!);
        checkText(double ?? single ?? '', `attribute ${attr}`);
      }
      if (!selfClosing) stack.push(name!);
    }
    i = lt + whole.length;
  }
  assert.deepEqual(stack, [], 'unclosed elements');
  assert.equal(roots, 1, 'exactly one root element');
}

/** Every key of every object in `value`, recursively, with its path. */
export function allKeys(value: unknown, at = '$'): { key: string; path: string }[] {
  if (Array.isArray(value)) return value.flatMap((item, i) => allKeys(item, `${at}[${i}]`));
  if (typeof value !== 'object' || value === null) return [];
  return Object.entries(value).flatMap(([key, child]) => [{ key, path: `${at}.${key}` }, ...allKeys(child, `${at}.${key}`)]);
}
