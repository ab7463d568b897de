/**
 * `npm ci` must work on a machine that reaches only the npm registry: onnxruntime-node's postinstall
 * would fetch CUDA providers from NuGet on linux/x64, and the project's .npmrc skips that. The CPU
 * runtime is inside the npm package itself.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('.npmrc skips the CUDA download of onnxruntime-node, which is a dependency', async () => {
  const npmrc = (await readFile(path.join(ROOT, '.npmrc'), 'utf8')).split('\n').map((line) => line.trim());
  assert.ok(npmrc.includes('onnxruntime-node-install=skip'), `.npmrc lines: ${JSON.stringify(npmrc)}`);
  // What npm itself reads from the project (and hands to install scripts as
  // npm_config_onnxruntime_node_install), and what onnxruntime-node's install script looks at.
  const { stdout } = await execFileAsync('npm', ['config', 'get', 'onnxruntime-node-install'], { cwd: ROOT, env: { ...process.env, npm_config_onnxruntime_node_install: undefined } });
  assert.equal(stdout.trim(), 'skip');
  const require = createRequire(import.meta.url);
  const installUtils = await readFile(path.join(path.dirname(require.resolve('onnxruntime-node/package.json')), 'script', 'install-utils.js'), 'utf8');
  assert.match(installUtils, /npm_config_onnxruntime_node_install/, 'the install script reads the npm setting');
  assert.match(installUtils, /case 'skip':\s*return false/, 'and skips on "skip"');
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  assert.ok(pkg.dependencies['onnxruntime-node'], 'onnxruntime-node is a runtime dependency');
});

test('the installed onnxruntime-node has its CPU binding and no CUDA provider fetched by a postinstall', () => {
  const require = createRequire(import.meta.url);
  const pkgDir = path.dirname(require.resolve('onnxruntime-node/package.json'));
  const bin = path.join(pkgDir, 'bin', 'napi-v6', process.platform, process.arch);
  assert.ok(existsSync(path.join(bin, 'onnxruntime_binding.node')), `CPU binding in ${bin}`);
  if (process.platform === 'linux' && process.arch === 'x64') {
    assert.equal(existsSync(path.join(bin, 'libonnxruntime_providers_cuda.so')), false, 'no CUDA provider was downloaded');
  }
});
