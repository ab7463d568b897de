import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { Command } from 'commander';
import * as tf from '@tensorflow/tfjs';
import { registerSummaryCommand } from '../../../src/cli/commands/summary.command.ts';
import { buildModel, formatModelSummary, summarizeModel, type ModelSummary } from '../../../src/ml/models/index.ts';
import { useTestBackend } from '../../helpers/backend.ts';

before(async () => {
  await useTestBackend();
});

describe('summarizeModel', () => {
  it('lists every layer with type, output shape and params, and totals that add up', () => {
    const before = tf.memory().numTensors;
    const model = buildModel({ architecture: 'cnn', inputShape: [40, 36, 1], numClasses: 3, cnnFilters: [4, 8] });
    const summary = summarizeModel(model);
    model.dispose();
    assert.equal(tf.memory().numTensors, before);

    assert.equal(summary.architecture, 'cnn');
    assert.deepEqual(summary.layers[0], { name: 'input_1', type: 'InputLayer', outputShape: [null, 40, 36, 1], params: 0 });
    assert.deepEqual(summary.layers.find((l) => l.name === 'block2_conv'), {
      name: 'block2_conv', type: 'Conv2D', outputShape: [null, 20, 18, 8], params: 3 * 3 * 4 * 8,
    });
    // conv 36 + bn 16 + conv 288 + bn 32 + dense 8*3+3 = 399; BN moving statistics (2 * (4 + 8)) are not trainable.
    assert.equal(summary.params, 399);
    assert.equal(summary.trainableParams, 399 - 24);
    assert.equal(summary.layers.reduce((s, l) => s + l.params, 0), summary.params);
    assert.deepEqual(JSON.parse(JSON.stringify(summary)), summary, 'plain JSON data');
  });

  it('counts frozen layers as non-trainable and gives null for models not built by buildModel', () => {
    const model = buildModel({ architecture: 'cnn', inputShape: [32, 32, 1], numClasses: 2, cnnFilters: [4] });
    model.getLayer('block1_conv').trainable = false;
    assert.equal(summarizeModel(model).trainableParams, summarizeModel(model).params - 36 - 8);
    model.dispose();
    const other = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 })] });
    assert.equal(summarizeModel(other).architecture, null);
    assert.equal(summarizeModel(other).params, 8);
    other.dispose();
  });

  it('formats a table with one row per layer and Keras-style totals', () => {
    const summary: ModelSummary = {
      architecture: 'vgg16',
      params: 1_234_567,
      trainableParams: 1_234_000,
      layers: [
        { name: 'input_1', type: 'InputLayer', outputShape: [null, 8, 8, 3], params: 0 },
        { name: 'fc1', type: 'Dense', outputShape: [null, 4096], params: 1_234_567 },
      ],
    };
    const lines = formatModelSummary(summary).split('\n');
    assert.equal(lines[0], 'Model: vgg16');
    assert.ok(lines.some((l) => /^fc1 \(Dense\)\s+\[null, 4096\]\s+1,234,567$/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => /^input_1 \(InputLayer\)\s+\[null, 8, 8, 3\]\s+0$/.test(l)));
    assert.deepEqual(lines.slice(-3), ['Total params: 1,234,567', 'Trainable params: 1,234,000', 'Non-trainable params: 567']);
  });
});

describe('fracture-service summary', () => {
  function program(): Command {
    const p = new Command('fracture-service').exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    registerSummaryCommand(p);
    return p;
  }

  it('prints the summary JSON with --json', async (t) => {
    const log = t.mock.method(console, 'log', () => {});
    const before = tf.memory().numTensors;
    await program().parseAsync(['summary', '--arch', 'VGG16', '--input', '32x48x1', '--classes', '5', '--include-top', '--json'], { from: 'user' });
    assert.equal(tf.memory().numTensors, before, 'the model is disposed');
    assert.equal(log.mock.callCount(), 1);
    const summary = JSON.parse(String(log.mock.calls[0]?.arguments[0])) as ModelSummary;
    assert.equal(summary.architecture, 'vgg16');
    assert.deepEqual(summary.layers[0]?.outputShape, [null, 32, 48, 1]);
    assert.deepEqual(summary.layers.at(-1), { name: 'predictions', type: 'Dense', outputShape: [null, 5], params: 4096 * 5 + 5 });
    assert.equal(summary.layers.find((l) => l.name === 'fc1')?.params, 1 * 1 * 512 * 4096 + 4096);
  });

  it('prints a table by default, with the default head and 2 classes', async (t) => {
    const log = t.mock.method(console, 'log', () => {});
    await program().parseAsync(['summary', '--arch', 'cnn', '--input', '32x32x3'], { from: 'user' });
    const text = String(log.mock.calls[0]?.arguments[0]);
    assert.match(text, /^Model: cnn\n/);
    assert.match(text, /head_dropout \(Dropout\)/);
    assert.match(text, /predictions \(Dense\)\s+\[null, 2\]\s+258\n/);
    assert.match(text, /Total params: [\d,]+\nTrainable params: [\d,]+\nNon-trainable params: 448$/);
  });

  it('rejects an unknown architecture, a malformed input or too few classes as usage errors', async () => {
    for (const args of [['--arch', 'alexnet'], ['--arch', 'cnn', '--input', '32by32'], ['--arch', 'cnn', '--classes', '1']]) {
      await assert.rejects(
        program().parseAsync(['summary', ...args], { from: 'user' }),
        (e: { code?: string; message?: string }) => e.code === 'commander.invalidArgument',
        args.join(' '),
      );
    }
    await assert.rejects(program().parseAsync(['summary'], { from: 'user' }), { code: 'commander.missingMandatoryOptionValue' });
  });

  it('lets a size the architecture cannot take fail with INPUT_SHAPE_INVALID', async () => {
    await assert.rejects(
      program().parseAsync(['summary', '--arch', 'inceptionv3', '--input', '64x64x3'], { from: 'user' }),
      { name: 'MlError', code: 'INPUT_SHAPE_INVALID' },
    );
  });
});
