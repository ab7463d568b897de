/**
 * The report's JSON view, built from a real experiment's `report.json` and from a hand-edited
 * four-architecture variant without a binary view.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ExperimentReport } from '../../../src/ml/experiment/index.ts';
import { toReportView, type ReportView } from '../../../src/services/reports/index.ts';
import { allKeys, fourArchitectureVariant, makeRealReport, removeRealReport, TRICKY_CLASSES, withoutRocCurves, withRocCurves, type RealReport } from './fixtures.ts';

const CAMEL_CASE = /^[a-z][a-zA-Z0-9]*$/;

/** Checks that every metric of the engine's report reached the view with the same value. */
function assertSameMetrics(report: ExperimentReport, view: ReportView): void {
  assert.equal(view.results.length, report.results.length);
  report.results.forEach((result, r) => {
    const shown = view.results[r];
    assert.ok(shown);
    assert.equal(shown.architecture, result.architecture);
    for (const [key, value] of Object.entries(result.metrics)) {
      assert.ok(key in shown.metrics, `metric ${key} is in the view`);
      const got: unknown = shown.metrics[key as keyof typeof shown.metrics];
      if (key === 'perClass') {
        const byName: Record<string, unknown> = Object.fromEntries(shown.metrics.perClass.map(({ className, positive: _p, ...row }) => [className, row]));
        assert.deepEqual(byName, value, 'per-class metrics');
        assert.deepEqual(shown.metrics.perClass.map((row) => row.className), report.dataset.classNames, 'classes in dataset order');
      } else {
        assert.deepEqual(got, value, `metric ${key}`);
      }
    }
    assert.deepEqual(shown.timings, result.timings);
    assert.equal(shown.params, result.params);
    assert.equal(shown.trainableParams, result.trainableParams);
    assert.equal(shown.modelBytes, result.modelBytes);
    assert.equal(shown.bestEpoch, result.bestEpoch);
    assert.equal(shown.stoppedEarly, result.stoppedEarly);
    assert.deepEqual(
      shown.history.map((epoch) => epoch.loss),
      result.history.map((epoch) => epoch.loss),
    );
    assert.deepEqual(
      shown.history.map((epoch) => epoch.valLoss),
      result.history.map((epoch) => epoch.valLoss ?? null),
    );
  });
}

describe('toReportView', () => {
  let real: RealReport | undefined;
  let report: ExperimentReport;

  before(async () => {
    real = await makeRealReport();
    report = real.report;
  });
  after(() => removeRealReport(real));

  it('keeps every architecture and every metric of a real report with the same values', () => {
    const view = toReportView('exp-1', report);
    assert.equal(view.experimentId, 'exp-1');
    assert.equal(view.createdAt, report.createdAt);
    assertSameMetrics(report, view);
    const binary = view.results[0]?.metrics.binary;
    assert.ok(binary, 'the synthetic set has fracture-positive classes, so the binary view is there');
    assert.deepEqual(binary, report.results[0]?.metrics.binary);
  });

  it('uses camelCase keys only and never turns data into keys', () => {
    const views = [toReportView('exp-1', report), toReportView('exp-2', fourArchitectureVariant(report)), toReportView('exp-3', withRocCurves(report))];
    for (const view of views) {
      const keys = allKeys(view);
      assert.ok(keys.length > 100, 'the walk reached nested objects');
      const bad = keys.filter(({ key }) => !CAMEL_CASE.test(key));
      assert.deepEqual(bad, [], 'non-camelCase keys');
      // Class names and package versions are values: a class name never appears as a key.
      const classKeys = keys.filter(({ key }) => view.dataset.classNames.includes(key));
      assert.deepEqual(classKeys, []);
    }
  });

  it('survives a JSON round trip unchanged (no undefined, NaN or functions) and leaks no server paths', () => {
    const view = toReportView('exp-1', report, { datasetId: 'synthetic-1', modelIds: { cnn: 'model-7' } });
    const json = JSON.stringify(view);
    assert.deepEqual(JSON.parse(json), view);
    assert.ok(!json.includes(report.dataset.root), 'the dataset folder is not exposed');
    assert.ok(!json.includes(report.config.outDir), 'the run folder is not exposed');
    assert.equal(view.dataset.id, 'synthetic-1');
    assert.equal(view.results[0]?.modelId, 'model-7');
    assert.equal(toReportView('exp-1', report).dataset.id, null);
  });

  it('summarises the dataset: split counts per class add up to the totals', () => {
    const { dataset } = toReportView('exp-1', report);
    assert.equal(dataset.hash, report.dataset.hash);
    assert.deepEqual(dataset.classNames, report.dataset.classNames);
    assert.deepEqual(dataset.positiveClasses, report.dataset.positiveClasses);
    const sum = (key: 'train' | 'val' | 'test' | 'total') => dataset.classCounts.reduce((a, c) => a + c[key], 0);
    assert.equal(dataset.counts.train, sum('train'));
    assert.equal(dataset.counts.val, sum('val'));
    assert.equal(dataset.counts.test, sum('test'));
    assert.equal(dataset.counts.total, dataset.counts.train + dataset.counts.val + dataset.counts.test);
    assert.equal(dataset.counts.total, report.dataset.counts.reduce((a, b) => a + b, 0));
    assert.equal(dataset.counts.test, report.results[0]?.metrics.macroAvg.support, 'the test split is what was evaluated');
    assert.deepEqual(
      dataset.classCounts.filter((c) => c.positive).map((c) => c.className),
      report.dataset.positiveClasses,
    );
    assert.ok(dataset.duplicates, 'the duplicate findings are summarised');
  });

  it('carries the training settings, provenance, ranking and winner', () => {
    const view = toReportView('exp-1', report);
    assert.equal(view.config.seed, report.config.seed);
    assert.equal(view.config.imageSize, report.config.imageSize);
    assert.equal(view.config.learningRate, null);
    assert.deepEqual(view.config.architectures, ['cnn']);
    assert.ok(!('dataDir' in view.config) && !('outDir' in view.config));
    assert.equal(view.provenance.backend.name, report.backend.name);
    const versions = Object.fromEntries(view.provenance.versions.map((v) => [v.name, v.version]));
    assert.equal(versions['tfjs-core'], report.versions['tfjs-core']);
    assert.equal(versions.node, report.versions.node);
    assert.equal(view.ranking.metric, report.ranking.metric);
    assert.deepEqual(view.ranking.entries, report.ranking.entries);
    assert.deepEqual(view.winner, { ...report.winner, metric: report.ranking.metric });
    assert.equal(view.results[0]?.rank, 1);
  });

  it('handles four results without a binary view, with ranks from the ranking', () => {
    const variant = fourArchitectureVariant(report);
    const view = toReportView('exp-4', variant);
    assertSameMetrics(variant, view);
    assert.deepEqual(view.results.map((r) => r.architecture), ['cnn', 'vgg16', 'resnet50', 'inceptionv3']);
    assert.ok(view.results.every((r) => r.metrics.binary === null));
    assert.deepEqual(view.dataset.classNames, TRICKY_CLASSES);
    // rankResults put the highest macro F1 (cnn, 0.9) first.
    assert.deepEqual(view.results.map((r) => r.rank), [1, 2, 3, 4]);
    assert.equal(view.winner?.architecture, 'cnn');
    assert.equal(view.results[3]?.metrics.rocAucOvrMacro, null);
    const noValidation = view.results[2]!;
    assert.equal(noValidation.history.length, 1);
    assert.equal(noValidation.history[0]?.valLoss, null);
    assert.equal(noValidation.stoppedEarly, true);
  });

  it('exposes stored ROC curves in class order and null where none were stored', () => {
    const view = toReportView('exp-4', fourArchitectureVariant(report));
    const [first, , third] = view.results;
    assert.ok(first?.roc);
    assert.equal(first.roc.binary, null, 'no binary curve without a binary view');
    assert.deepEqual(first.roc.perClass.map((c) => c.className), TRICKY_CLASSES);
    for (const { curve } of first.roc.perClass) {
      assert.equal(curve.fpr[0], 0);
      assert.equal(curve.tpr.at(-1), 1);
      assert.equal(curve.fpr.length, curve.thresholds.length);
    }
    assert.equal(third?.roc, null);
    assert.equal(toReportView('exp-1', withoutRocCurves(report)).results[0]?.roc, null, 'a report written before the engine stored curves');
    assert.ok(toReportView('exp-1', report).results[0]?.roc?.binary, 'the engine stores the binary curve');
    assert.ok(toReportView('exp-1', withRocCurves(report)).results[0]?.roc?.binary);
  });

  it('ignores malformed stored curves instead of passing them on', () => {
    const broken = withRocCurves(report);
    Object.assign(broken.results[0]!, { rocCurves: { binary: { fpr: [0, 1], tpr: [0], thresholds: [1, 0] }, perClass: { hand_normal: 'x' } } });
    const roc = toReportView('exp-1', broken).results[0]?.roc;
    assert.deepEqual(roc, { binary: null, perClass: [] });
  });
});
