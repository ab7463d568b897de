// The Dockerfile and .dockerignore, read as text (no Docker engine on the build machines): the cpu and
// gpu targets, what each installs and copies, the user, environment, volume, ports, entry point and
// health check. The health check's script runs for real against local HTTP servers.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CONFIG_VARIABLES, loadConfig } from '../../../src/infra/config.ts';
import { freePort, readRepoFile, REPO_ROOT, runNodeHealthcheck, startStubServer } from './deploy-helpers.ts';
import {
  effectiveEnv,
  effectiveInstructions,
  lastInstruction,
  parseDockerfile,
  parseHealthcheck,
  rootImage,
  stageChain,
  stageNamed,
  words,
  type Instruction,
  type ParsedDockerfile,
  type Stage,
} from './dockerfile-parser.ts';

const dockerfile = parseDockerfile(readRepoFile('Dockerfile'));
const FINAL_TARGETS = ['cpu', 'gpu'] as const;
const packageJson = JSON.parse(readRepoFile('package.json')) as {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  allowScripts?: Record<string, boolean>;
};

/**
 * Packages a source text loads at run time: static imports and re-exports (not `import type`) and
 * literal dynamic imports; relative paths and Node built-ins left out.
 */
function runtimePackages(text: string): Set<string> {
  const specifiers = /^\s*import\s+(?!type\b)(?:[^'"]*?\sfrom\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)|^\s*export\s+(?!type\b)[^'"]*?\sfrom\s+['"]([^'"]+)['"]/gm;
  const packages = new Set<string>();
  for (const match of text.matchAll(specifiers)) {
    const specifier = match[1] ?? match[2] ?? match[3] ?? '';
    if (specifier.startsWith('.') || specifier.startsWith('/') || isBuiltin(specifier)) continue;
    packages.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'));
  }
  return packages;
}

/** RUN instructions of a stage's chain, as their command text. */
function runs(file: ParsedDockerfile, stage: Stage): string[] {
  return effectiveInstructions(file, stage).filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args);
}

/** Every stage whose output reaches `stage`: its chain, and (recursively) the stages it copies from. */
function contributingStages(file: ParsedDockerfile, stage: Stage, seen = new Set<Stage>()): Set<Stage> {
  for (const link of stageChain(file, stage)) {
    if (seen.has(link)) continue;
    seen.add(link);
    for (const instruction of link.instructions) {
      const from = instruction.keyword === 'COPY' ? instruction.flags.from : undefined;
      const source = from === undefined ? undefined : file.stages.find((candidate) => candidate.name === from);
      if (source) contributingStages(file, source, seen);
    }
  }
  return seen;
}

/** COPY instructions from the build context (no --from) in a stage's chain: their sources. */
function contextSources(file: ParsedDockerfile, stage: Stage): string[] {
  return effectiveInstructions(file, stage)
    .filter((instruction) => instruction.keyword === 'COPY' && instruction.flags.from === undefined)
    .flatMap((instruction) => words(instruction).slice(0, -1));
}

/** The stage a `COPY --from=<stage> .../node_modules` in `stage`'s chain takes node_modules from. */
function nodeModulesSource(file: ParsedDockerfile, stage: Stage): Stage {
  const copies = effectiveInstructions(file, stage).filter(
    (instruction) => instruction.keyword === 'COPY' && instruction.flags.from !== undefined && words(instruction).some((word) => word.endsWith('node_modules')),
  );
  assert.equal(copies.length, 1, `${stage.name ?? '?'}: exactly one COPY of node_modules`);
  return stageNamed(file, (copies[0] as Instruction).flags.from ?? '');
}

/** The stage whose `npm ci` made the node_modules `stage` ends up with (following COPY --from). */
function nodeModulesOrigin(file: ParsedDockerfile, stage: Stage): Stage {
  let current = stage;
  for (let hops = 0; hops < file.stages.length; hops += 1) {
    if (runs(file, current).some((command) => /\bnpm ci\b/.test(command))) return current;
    current = nodeModulesSource(file, current);
  }
  throw new Error(`no stage installs the node_modules of ${stage.name ?? '?'}`);
}

/** `text` as a literal inside a regular expression. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

describe('dockerfile-parser', () => {
  it('joins continuations, drops comments, reads flags, JSON form, ENV forms and FROM ... AS with global ARGs', () => {
    const parsed = parseDockerfile(
      [
        '# syntax=docker/dockerfile:1',
        'ARG BASE=debian:12',
        'FROM ${BASE} AS one',
        'ENV A=1 \\',
        '  # a comment inside a continuation',
        '    B="two words"',
        'ENV LEGACY some value',
        'FROM one AS two',
        'COPY --from=one --chown=1:1 /a /b',
        'HEALTHCHECK --interval=5s CMD ["node", "-e", "x"]',
        'USER 10001',
      ].join('\n'),
    );
    assert.deepEqual(parsed.globalArgs, { BASE: 'debian:12' });
    assert.deepEqual(parsed.stages.map((stage) => [stage.name, stage.base]), [['one', 'debian:12'], ['two', 'one']]);
    const two = stageNamed(parsed, 'two');
    assert.deepEqual(effectiveEnv(parsed, two), { A: '1', B: 'two words', LEGACY: 'some value' });
    assert.equal(rootImage(parsed, two), 'debian:12');
    const copy = two.instructions[0] as Instruction;
    assert.deepEqual([copy.keyword, copy.flags, copy.args], ['COPY', { from: 'one', chown: '1:1' }, '/a /b']);
    const healthcheck = parseHealthcheck(lastInstruction(parsed, two, 'HEALTHCHECK') as Instruction);
    assert.deepEqual(healthcheck, { options: { interval: '5s' }, command: ['node', '-e', 'x'] });
    assert.throws(() => parseDockerfile('RUN true\nFROM x'), /before the first FROM/);
  });
});

describe('Dockerfile', () => {
  it('has uniquely named stages, among them the targets cpu and gpu', () => {
    const names = dockerfile.stages.map((stage) => stage.name);
    assert.ok(names.every((name) => name !== null), 'every stage is named');
    assert.equal(new Set(names).size, names.length, `stage names are unique: ${names.join(', ')}`);
    for (const target of FINAL_TARGETS) assert.ok(names.includes(target), `a stage named ${target}`);
  });

  it('builds cpu on Node 20 and gpu on CUDA 11.2 + cuDNN 8, with the Node binary of the same Node 20 image', () => {
    assert.match(rootImage(dockerfile, stageNamed(dockerfile, 'cpu')), /^node:20([.-]|$)/);
    assert.match(rootImage(dockerfile, stageNamed(dockerfile, 'gpu')), /^nvidia\/cuda:11\.2(\.\d+)?-cudnn8-(runtime|devel)-ubuntu/);
    const nodeCopies = effectiveInstructions(dockerfile, stageNamed(dockerfile, 'gpu')).filter(
      (instruction) => instruction.keyword === 'COPY' && words(instruction).includes('/usr/local/bin/node'),
    );
    assert.equal(nodeCopies.length, 1, 'the gpu chain copies the node binary once');
    const source = stageNamed(dockerfile, (nodeCopies[0] as Instruction).flags.from ?? '');
    assert.equal(rootImage(dockerfile, source), rootImage(dockerfile, stageNamed(dockerfile, 'cpu')), 'same Node image as cpu');
  });

  it('installs production dependencies only, with npm ci --omit=dev from the lock file, for both targets', () => {
    for (const target of FINAL_TARGETS) {
      const stage = stageNamed(dockerfile, target);
      const installs = [...contributingStages(dockerfile, stage)].flatMap((source) => source.instructions).filter(
        (instruction) => instruction.keyword === 'RUN' && /\bnpm\s+(ci|install|i|add)\b/.test(instruction.args),
      );
      assert.ok(installs.length > 0, `${target}: something installs the dependencies`);
      for (const install of installs) {
        assert.match(install.args, /\bnpm ci\b/, `${target}: installs with npm ci (the lock file, exactly): ${install.args}`);
        assert.match(install.args, /--omit=dev\b/, `${target}: no devDependencies: ${install.args}`);
        assert.doesNotMatch(install.args, /--include=dev|--production=false/, install.args);
      }
      const origin = nodeModulesOrigin(dockerfile, stage);
      assert.ok(runs(dockerfile, origin).some((command) => /\bnpm ci\b.*--omit=dev/.test(command)), `${target}: node_modules come from an npm ci --omit=dev stage`);
    }
  });

  it('needs no devDependency at run time: src/ and bin/ load only dependencies and optionalDependencies', () => {
    const sample = "import a from 'pkg-a';\nimport type { B } from 'pkg-b';\nimport {\n  c,\n} from '@scope/pkg-c/sub';\nexport { d } from 'pkg-d';\nconst e = await import('pkg-e');\nimport './local.ts';\nimport fs from 'node:fs';";
    assert.deepEqual([...runtimePackages(sample)].sort(), ['@scope/pkg-c', 'pkg-a', 'pkg-d', 'pkg-e']);
    const installed = new Set([...Object.keys(packageJson.dependencies), ...Object.keys(packageJson.optionalDependencies ?? {})]);
    let files = 0;
    for (const dir of ['src', 'bin']) {
      for (const file of readdirSync(path.join(REPO_ROOT, dir), { recursive: true, encoding: 'utf8' })) {
        if (!/\.(ts|js|mjs)$/.test(file)) continue;
        files += 1;
        for (const name of runtimePackages(readFileSync(path.join(REPO_ROOT, dir, file), 'utf8'))) {
          assert.ok(installed.has(name), `${dir}/${file} imports ${name}, which npm ci --omit=dev does not install`);
        }
      }
    }
    assert.ok(files > 50, `scanned ${files} files`);
  });

  it('copies only what the service runs from the build context, all of it present and none of it dockerignored', () => {
    const ignored = dockerignorePatterns();
    for (const target of FINAL_TARGETS) {
      const sources = contextSources(dockerfile, stageNamed(dockerfile, target));
      for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'openapi.yaml', 'bin', 'src']) {
        assert.ok(sources.includes(needed), `${target} copies ${needed}`);
      }
      for (const source of sources) {
        assert.ok(!['.', './', '*'].includes(source), `${target}: no copy of the whole context`);
        assert.ok(existsSync(path.join(REPO_ROOT, source)), `${target}: ${source} exists`);
        assert.ok(!ignored.some((pattern) => pattern.test(source)), `${target}: ${source} is not excluded by .dockerignore`);
      }
    }
  });

  it('installs tfjs-node-gpu (running its install script) in the gpu target only, and removes it from cpu', () => {
    const gpu = stageNamed(dockerfile, 'gpu');
    const cpu = stageNamed(dockerfile, 'cpu');
    const gpuSource = nodeModulesSource(dockerfile, gpu);
    const rebuild = runs(dockerfile, gpuSource).find((command) => /\bnpm rebuild @tensorflow\/tfjs-node-gpu\b/.test(command));
    assert.ok(rebuild, 'gpu node_modules come from a stage that runs tfjs-node-gpu install script (npm rebuild)');
    // npm 11 reads the allowScripts policy of a project rebuild from package.json or .npmrc; a
    // --allow-scripts flag or npm_config_allow_scripts fails with EALLOWSCRIPTS.
    assert.match(rebuild, /allow-scripts=@tensorflow\/tfjs-node-gpu['"]?\s*>\s*\.npmrc/, 'approves the script in .npmrc');
    assert.doesNotMatch(rebuild, /--allow-scripts|npm_config_allow_scripts|--ignore-scripts/, rebuild);
    assert.match(rebuild, /tfjs_binding\.node/, 'fails the build when the native binding is missing');
    assert.match(rebuild, /libtensorflow/, 'fails the build when libtensorflow is missing');
    assert.equal(rootImage(dockerfile, gpuSource), rootImage(dockerfile, gpu), 'the binding is built on the base it runs on');
    // A package.json allowScripts field would override .npmrc, and a `false` there skips the script silently.
    if (packageJson.allowScripts) assert.equal(packageJson.allowScripts['@tensorflow/tfjs-node-gpu'], true, 'package.json allowScripts approves tfjs-node-gpu');

    const cpuStages = contributingStages(dockerfile, cpu);
    for (const stage of cpuStages) {
      for (const command of stage.instructions.filter((instruction) => instruction.keyword === 'RUN').map((instruction) => instruction.args)) {
        assert.doesNotMatch(command, /npm rebuild|allow-scripts/, `cpu runs no install script: ${command}`);
        if (/\bnpm ci\b/.test(command)) assert.match(command, /--ignore-scripts/, `cpu dependencies install without scripts: ${command}`);
      }
    }
    const cpuRuns = cpu.instructions.filter((instruction) => instruction.keyword === 'RUN' || instruction.keyword === 'COPY');
    const copyIndex = cpuRuns.findIndex((instruction) => instruction.keyword === 'COPY' && instruction.args.includes('node_modules'));
    const removeIndex = cpuRuns.findIndex((instruction) => instruction.keyword === 'RUN' && /rm -rf node_modules\/@tensorflow\/tfjs-node-gpu\b/.test(instruction.args));
    assert.ok(copyIndex >= 0 && removeIndex > copyIndex, 'cpu removes tfjs-node-gpu after copying node_modules');
  });

  it('runs both targets as the same non-root user, created with that uid, with a writable DATA_DIR volume', () => {
    const users = FINAL_TARGETS.map((target) => {
      const stage = stageNamed(dockerfile, target);
      const user = lastInstruction(dockerfile, stage, 'USER');
      assert.ok(user, `${target} sets USER`);
      const [uid, gid] = user.args.split(':');
      assert.match(uid ?? '', /^\d+$/, `${target}: numeric uid (runAsNonRoot can check it)`);
      assert.notEqual(Number(uid), 0, `${target}: not root`);
      const setup = runs(dockerfile, stage).join('\n');
      assert.match(setup, new RegExp(`useradd\\b[^\\n]*--uid ${uid}\\b`), `${target}: creates uid ${uid ?? ''}`);
      if (gid !== undefined) assert.match(setup, new RegExp(`groupadd\\b[^\\n]*--gid ${gid}\\b`), `${target}: creates gid ${gid}`);
      const env = effectiveEnv(dockerfile, stage);
      const volume = lastInstruction(dockerfile, stage, 'VOLUME');
      assert.ok(volume && words(volume).includes(env.DATA_DIR ?? '?'), `${target}: VOLUME ${env.DATA_DIR ?? '?'}`);
      assert.match(setup, new RegExp(`chown [^\\n]*(?<=\\s)${literal(env.DATA_DIR ?? '?')}(?=\\s|$)`, 'm'), `${target}: the user owns DATA_DIR`);
      // Root-only steps must come before USER.
      const instructions = effectiveInstructions(dockerfile, stage);
      const userIndex = instructions.lastIndexOf(user);
      assert.ok(instructions.slice(userIndex).every((instruction) => instruction.keyword !== 'RUN'), `${target}: no RUN after USER`);
      return user.args;
    });
    assert.equal(users[0], users[1], 'cpu and gpu share DATA_DIR, so they run as the same uid');
  });

  it('sets container defaults that are configuration variables and valid, and never NODE_ENV', () => {
    for (const target of FINAL_TARGETS) {
      const env = effectiveEnv(dockerfile, stageNamed(dockerfile, target));
      for (const name of Object.keys(env)) assert.ok(CONFIG_VARIABLES.includes(name), `${target}: ENV ${name} is a variable of src/infra/config.ts`);
      assert.equal(env.HOST, '0.0.0.0', `${target}: listens beyond the container`);
      assert.equal(env.DATA_DIR, '/data');
      const config = loadConfig(env);
      assert.equal(config.DATA_DIR, '/data');
      assert.equal(config.FRACTURE_BACKEND, target === 'cpu' ? 'wasm' : 'tensorflow');
      const exposed = words(lastInstruction(dockerfile, stageNamed(dockerfile, target), 'EXPOSE') as Instruction).map(Number);
      assert.ok(exposed.includes(config.PORT), `${target}: EXPOSE ${config.PORT} (PORT)`);
      assert.ok(exposed.includes(config.WORKER_METRICS_PORT), `${target}: EXPOSE ${config.WORKER_METRICS_PORT} (WORKER_METRICS_PORT)`);
    }
  });

  it('enters through the package bin, with api as the cpu CMD and worker as the gpu CMD', () => {
    // compose.test.ts checks that `api` and `worker` are commands of the CLI (importing it takes ~1.5 s).
    for (const [target, command] of [['cpu', 'api'], ['gpu', 'worker']] as const) {
      const stage = stageNamed(dockerfile, target);
      assert.deepEqual(lastInstruction(dockerfile, stage, 'ENTRYPOINT')?.json, ['node', packageJson.bin['fracture-service']], `${target}: exec-form ENTRYPOINT`);
      assert.deepEqual(lastInstruction(dockerfile, stage, 'CMD')?.json, [command], `${target}: CMD`);
      assert.ok(path.posix.isAbsolute(lastInstruction(dockerfile, stage, 'WORKDIR')?.args ?? ''), `${target}: absolute WORKDIR`);
    }
  });
});

describe('Dockerfile HEALTHCHECK', () => {
  const servers: { close(): Promise<void> }[] = [];
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
  });

  it('probes /healthz with node\'s fetch (the image has no curl) in both targets, giving up before Docker does', () => {
    for (const target of FINAL_TARGETS) {
      const instruction = lastInstruction(dockerfile, stageNamed(dockerfile, target), 'HEALTHCHECK');
      assert.ok(instruction, `${target} has a HEALTHCHECK`);
      const { options, command } = parseHealthcheck(instruction);
      assert.ok(command, `${target}: not HEALTHCHECK NONE`);
      assert.deepEqual(command.slice(0, 2), ['node', '-e'], `${target}: exec form with node -e`);
      assert.match(command.join(' '), /\bfetch\(/, `${target}: node's fetch`);
      assert.match(command.join(' '), /'\/healthz'/, `${target}: the API's liveness path`);
      for (const option of ['interval', 'timeout', 'start-period', 'retries']) assert.ok(options[option], `${target}: --${option} is set`);
      const abortMs = Number(/AbortSignal\.timeout\((\d+)\)/.exec(command.join(' '))?.[1]);
      assert.ok(abortMs < Number.parseInt(options.timeout ?? '0', 10) * 1000, `${target}: the fetch gives up before Docker kills the check`);
    }
  });

  it('is healthy when the API answers /healthz or a worker answers /metrics, and unhealthy otherwise', async () => {
    const scripts = new Set(FINAL_TARGETS.map((target) => JSON.stringify(parseHealthcheck(lastInstruction(dockerfile, stageNamed(dockerfile, target), 'HEALTHCHECK') as Instruction).command)));
    const serve = async (routes: Record<string, number>) => {
      const server = await startStubServer(routes);
      servers.push(server);
      return server.port;
    };
    const [api, failing, worker, closed] = await Promise.all([serve({ '/healthz': 200 }), serve({ '/healthz': 503, '/metrics': 500 }), serve({ '/metrics': 200 }), freePort()]);
    for (const script of scripts) {
      const command = JSON.parse(script) as string[];
      const run = (port: number, metricsPort: number) => runNodeHealthcheck(command, { PORT: String(port), WORKER_METRICS_PORT: String(metricsPort) });
      const codes = await Promise.all([run(api, closed), run(failing, failing), run(closed, worker), run(closed, closed)]);
      assert.deepEqual(codes, [0, 1, 0, 1], 'exit codes for: API up, both failing, worker up, nothing listening');
    }
  });
});

describe('.dockerignore', () => {
  it('keeps dependencies, data, secrets, git and outputs out of the build context', () => {
    const patterns = dockerignorePatterns();
    const excluded = (file: string) => patterns.some((pattern) => pattern.test(file)) && !negations().some((pattern) => pattern.test(file));
    for (const file of ['node_modules', 'node_modules/x/index.js', 'data', 'data/datasets/a/b.png', '.git', '.git/HEAD', 'test-artifacts', 'bench/results', 'coverage', 'npm-debug.log', 'deep/dir/x.log', '.env']) {
      assert.ok(excluded(file), `${file} is excluded`);
    }
    for (const file of ['src/cli/main.ts', 'bin/fracture-service.js', 'package.json', 'package-lock.json', '.env.example', 'openapi.yaml']) {
      assert.ok(!excluded(file), `${file} is sent`);
    }
  });
});

/** .dockerignore patterns (exclusions) as regular expressions matching a path or any path under it. */
function dockerignorePatterns(): RegExp[] {
  return dockerignoreLines().filter((line) => !line.startsWith('!')).map(globToRegExp);
}

function negations(): RegExp[] {
  return dockerignoreLines().filter((line) => line.startsWith('!')).map((line) => globToRegExp(line.slice(1)));
}

function dockerignoreLines(): string[] {
  return readRepoFile('.dockerignore')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

/** Docker's matching: anchored at the context root, `**` any depth, `*` within a segment. */
function globToRegExp(pattern: string): RegExp {
  const clean = pattern.replace(/^\/+/, '').replace(/\/+$/, '');
  let source = '';
  for (let index = 0; index < clean.length; index += 1) {
    const char = clean[index] ?? '';
    if (clean.startsWith('**/', index)) {
      source += '(?:.*/)?';
      index += 2;
    } else if (clean.startsWith('**', index)) {
      source += '.*';
      index += 1;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}(?:/.*)?$`);
}
