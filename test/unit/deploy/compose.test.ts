// docker-compose.yml, parsed with `yaml` (merge keys on, as compose reads them) and interpolated the
// way compose does; no Docker engine on the build machines. Checks Redis, the API, the GPU worker,
// the CPU worker profile, the shared volume, restarts, grace periods and health checks, and that
// every variable and command the file uses is one the service knows. Health-check scripts run for
// real against local HTTP servers.
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig, type Config } from '../../../src/infra/config.ts';
import { cliCommands, cliProblem, durationMs, freePort, interpolate, readRepoFile, runNodeHealthcheck, startStubServer } from './deploy-helpers.ts';
import { effectiveEnv, parseDockerfile, stageNamed } from './dockerfile-parser.ts';

interface Healthcheck {
  test: string[] | string;
  interval?: string;
  timeout?: string;
  retries?: number;
  start_period?: string;
}

interface Service {
  image?: string;
  build?: { context: string; target?: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  env_file?: ({ path: string; required?: boolean } | string)[];
  ports?: string[];
  expose?: unknown;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
  stop_grace_period?: string;
  healthcheck?: Healthcheck;
  profiles?: string[];
  init?: boolean;
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; count?: number | string; device_ids?: string[]; capabilities?: string[] }[] } } };
}

interface ComposeFile {
  name?: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** Keys of a service in the Compose Specification; anything else is a typo compose would reject. */
const SERVICE_KEYS = new Set(
  (
    'annotations attach blkio_config build cap_add cap_drop cgroup cgroup_parent command configs container_name cpu_count ' +
    'cpu_percent cpu_period cpu_quota cpu_rt_period cpu_rt_runtime cpu_shares cpus cpuset credential_spec depends_on deploy ' +
    'develop device_cgroup_rules devices dns dns_opt dns_search domainname entrypoint env_file environment expose extends ' +
    'external_links extra_hosts gpus group_add healthcheck hostname image init ipc isolation label_file labels links logging ' +
    'mac_address mem_limit mem_reservation mem_swappiness memswap_limit network_mode networks oom_kill_disable oom_score_adj ' +
    'pid pids_limit platform ports post_start pre_stop privileged profiles pull_policy read_only restart runtime scale ' +
    'secrets security_opt shm_size stdin_open stop_grace_period stop_signal storage_opt sysctls tmpfs tty ulimits user ' +
    'userns_mode uts volumes volumes_from working_dir'
  ).split(' '),
);
const TOP_LEVEL_KEYS = new Set(['name', 'include', 'services', 'networks', 'volumes', 'secrets', 'configs', 'models']);
const RESTART_POLICIES = new Set(['always', 'unless-stopped', 'on-failure']);
/** Variables the deployment fixes for every fracture-service container (they must win over .env). */
const FIXED_VARIABLES = ['HOST', 'PORT', 'DATA_DIR', 'REDIS_URL', 'WORKER_METRICS_PORT', 'SHUTDOWN_TIMEOUT_MS', 'FRACTURE_BACKEND'];
/** Variables that may differ between fracture-service containers; all others must match (QUEUE_PREFIX, ...). */
const PER_SERVICE_VARIABLES = new Set(['FRACTURE_BACKEND', 'API_KEYS']);
/** Time the process needs to exit after its graceful shutdown's deadline, before Docker's SIGKILL. */
const EXIT_MARGIN_MS = 2000;

const raw = readRepoFile('docker-compose.yml');
const parsed = parse(raw, { merge: true }) as ComposeFile;
const operatorVariables = { API_KEYS: 'ops:0123456789abcdef0123:admin' };
const compose = interpolate(parsed, operatorVariables);
const dockerfile = parseDockerfile(readRepoFile('Dockerfile'));
const appServices = Object.entries(compose.services).filter(([, service]) => service.build?.context === '.');
// Started now: importing the CLI loads tfjs (~1.5 s), which overlaps with the other tests this way.
const commandsLoaded = cliCommands();

function service(name: string): Service {
  const found = compose.services[name];
  assert.ok(found, `a service named ${name}`);
  return found;
}

function argv(value: string[] | string | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : value.split(/\s+/).filter(Boolean);
}

/** The configuration a container of `name` starts with: its image's ENV, then `environment`. */
function containerConfig(name: string): Config {
  const target = service(name).build?.target ?? '';
  return loadConfig({ ...effectiveEnv(dockerfile, stageNamed(dockerfile, target)), ...service(name).environment });
}

/** `volume:path` mounts of a service, as [source, target]. */
function mounts(svc: Service): [string, string][] {
  return (svc.volumes ?? []).map((mount) => {
    const [source, target] = mount.split(':');
    return [source ?? '', target ?? ''];
  });
}

function healthcheckArgv(svc: Service): string[] {
  const test = argv(svc.healthcheck?.test);
  assert.ok(test[0] === 'CMD' || test[0] === 'CMD-SHELL', `healthcheck test starts with CMD or CMD-SHELL: ${test.join(' ')}`);
  return test.slice(1);
}

describe('docker-compose.yml', () => {
  it('uses only Compose Specification keys (a typo fails here, not on the operator\'s host)', () => {
    for (const key of Object.keys(parsed)) assert.ok(TOP_LEVEL_KEYS.has(key) || key.startsWith('x-'), `top-level key ${key}`);
    for (const [name, svc] of Object.entries(parsed.services)) {
      for (const key of Object.keys(svc)) assert.ok(SERVICE_KEYS.has(key) || key.startsWith('x-'), `${name}: service key ${key}`);
    }
    assert.deepEqual(Object.keys(compose.services).sort(), ['api', 'redis', 'worker', 'worker-cpu']);
  });

  it('runs Redis 7 with AOF, noeviction, a named volume, a ping health check, a restart policy and no published port', () => {
    const redis = service('redis');
    assert.match(redis.image ?? '', /^redis:7(\.|-|$)/);
    const command = argv(redis.command);
    assert.equal(command[0], 'redis-server');
    const option = (flag: string) => command[command.indexOf(flag) + 1];
    assert.equal(option('--appendonly'), 'yes', 'AOF on: queued jobs survive a restart');
    assert.equal(option('--maxmemory-policy'), 'noeviction', 'BullMQ keys are never evicted');
    const [volume, target] = mounts(redis)[0] ?? [];
    assert.equal(target, '/data', "the redis image's data directory");
    assert.ok(volume && compose.volumes && volume in compose.volumes, `named volume ${volume ?? ''} is declared`);
    assert.equal(redis.ports, undefined, 'no port published on the host');
    assert.match(argv(redis.healthcheck?.test).join(' '), /redis-cli ping/);
    assert.ok(RESTART_POLICIES.has(redis.restart ?? ''), `restart policy: ${redis.restart ?? 'none'}`);
  });

  it('builds every fracture-service container from a Dockerfile target and runs a command the CLI has', async () => {
    const commands = await commandsLoaded;
    const stages = new Set(dockerfile.stages.map((stage) => stage.name));
    assert.deepEqual(appServices.map(([name]) => name).sort(), ['api', 'worker', 'worker-cpu']);
    for (const [name, svc] of appServices) {
      assert.ok(stages.has(svc.build?.target ?? ''), `${name}: target ${svc.build?.target ?? '(none)'} is a Dockerfile stage`);
      assert.equal(cliProblem(commands, argv(svc.command)), null, `${name}: command ${argv(svc.command).join(' ')}`);
    }
    assert.deepEqual(argv(service('api').command), ['api']);
    assert.deepEqual(argv(service('worker').command), ['worker']);
    assert.deepEqual(argv(service('worker-cpu').command), ['worker']);
    assert.equal(service('api').build?.target, 'cpu');
    assert.equal(service('worker').build?.target, 'gpu');
    assert.equal(service('worker-cpu').build?.target, 'cpu');
  });

  it('sets only variables of src/infra/config.ts, with values it accepts, Redis at redis://redis:6379', () => {
    for (const [name, svc] of appServices) {
      const environment = svc.environment ?? {};
      for (const key of Object.keys(environment)) assert.ok(CONFIG_VARIABLES.includes(key), `${name}: ${key} is a configuration variable`);
      for (const key of FIXED_VARIABLES) assert.ok(key in environment, `${name}: sets ${key} itself, so a copied .env cannot break it`);
      assert.equal(environment.REDIS_URL, 'redis://redis:6379');
      assert.ok(new URL(environment.REDIS_URL).hostname in compose.services, 'the Redis host is a compose service');
      const config = containerConfig(name);
      assert.equal(config.HOST, '0.0.0.0');
      assert.equal(config.DATA_DIR, '/data');
    }
    assert.equal(containerConfig('worker').FRACTURE_BACKEND, 'tensorflow');
    assert.equal(containerConfig('worker-cpu').FRACTURE_BACKEND, 'wasm');
    assert.equal(containerConfig('api').FRACTURE_BACKEND, 'wasm');
  });

  it('gives every fracture-service container the same settings from .env and the same fixed ones', () => {
    for (const [name, svc] of appServices) {
      assert.deepEqual(svc.env_file, [{ path: '.env', required: false }], `${name}: settings from an optional .env`);
    }
    const reference: Record<string, string> = service('api').environment ?? {};
    for (const [name, svc] of appServices) {
      const environment: Record<string, string> = svc.environment ?? {};
      const keys = new Set<string>([...Object.keys(environment), ...Object.keys(reference)]);
      for (const key of keys) {
        if (PER_SERVICE_VARIABLES.has(key)) continue;
        assert.equal(environment[key], reference[key], `${name} and api agree on ${key}`);
      }
    }
  });

  it('requires API_KEYS from the operator: compose fails with a message that says where to set it', () => {
    assert.match(parsed.services.api?.environment?.API_KEYS ?? '', /^\$\{API_KEYS:\?/);
    assert.throws(() => interpolate(parsed, {}), /API_KEYS[\s\S]*\.env/);
    assert.throws(() => interpolate(parsed, { API_KEYS: '' }), /API_KEYS/, 'an empty API_KEYS= line counts as unset');
    assert.equal(service('api').environment?.API_KEYS, operatorVariables.API_KEYS);
    for (const name of ['worker', 'worker-cpu']) assert.equal(service(name).environment?.API_KEYS, undefined, `${name} needs no keys`);
  });

  it('publishes the API port and nothing else on the host', () => {
    const config = containerConfig('api');
    const ports = service('api').ports ?? [];
    assert.equal(ports.length, 1);
    assert.equal(Number((ports[0] ?? '').split(':').at(-1)), config.PORT, 'the published container port is PORT');
    for (const [name, svc] of Object.entries(compose.services)) if (name !== 'api') assert.equal(svc.ports, undefined, `${name} publishes nothing`);
  });

  it('shares one named volume at DATA_DIR between the API and the workers', () => {
    const sources = appServices.map(([name, svc]) => {
      const dataMount = mounts(svc).find(([, target]) => target === containerConfig(name).DATA_DIR);
      assert.ok(dataMount, `${name} mounts DATA_DIR`);
      assert.ok(compose.volumes && dataMount[0] in compose.volumes, `${name}: ${dataMount[0]} is a named volume`);
      return dataMount[0];
    });
    assert.equal(new Set(sources).size, 1, `one volume: ${sources.join(', ')}`);
    const redisVolume = mounts(service('redis'))[0]?.[0];
    assert.notEqual(redisVolume, sources[0], 'Redis keeps its own volume');
  });

  it('starts nothing before Redis is healthy, restarts every container, and waits out the graceful shutdown', () => {
    for (const [name, svc] of appServices) {
      assert.equal(svc.depends_on?.redis?.condition, 'service_healthy', `${name} waits for a healthy Redis`);
      assert.ok(RESTART_POLICIES.has(svc.restart ?? ''), `${name}: restart policy ${svc.restart ?? 'none'}`);
      const grace = durationMs(svc.stop_grace_period ?? '10s');
      const shutdown = containerConfig(name).SHUTDOWN_TIMEOUT_MS;
      assert.ok('SHUTDOWN_TIMEOUT_MS' in (svc.environment ?? {}), `${name} sets SHUTDOWN_TIMEOUT_MS, so the two stay consistent`);
      assert.ok(grace >= shutdown + EXIT_MARGIN_MS, `${name}: stop_grace_period ${grace} ms covers SHUTDOWN_TIMEOUT_MS ${shutdown} ms plus ${EXIT_MARGIN_MS} ms`);
    }
  });

  it('reserves an NVIDIA GPU for the default worker and none for the CPU worker, which sits behind the cpu profile', () => {
    const worker = service('worker');
    assert.equal(worker.profiles, undefined, 'the GPU worker starts with a plain `docker compose up`');
    const devices = worker.deploy?.resources?.reservations?.devices ?? [];
    assert.equal(devices.length, 1);
    const [device] = devices;
    assert.equal(device?.driver, 'nvidia');
    assert.ok(device?.count === 'all' || (Number.isInteger(device?.count) && Number(device?.count) >= 1), `count: ${String(device?.count)}`);
    assert.ok(device?.capabilities?.includes('gpu'), 'capabilities: [gpu]');
    const cpuWorker = service('worker-cpu');
    assert.deepEqual(cpuWorker.profiles, ['cpu']);
    assert.equal(cpuWorker.deploy, undefined, 'no GPU reservation');
    assert.equal(service('api').profiles, undefined);
    assert.equal(service('redis').profiles, undefined);
  });

  it('checks health everywhere: Redis by ping, the API by /healthz, workers by their /metrics port', () => {
    for (const [name, svc] of Object.entries(compose.services)) {
      assert.ok(svc.healthcheck, `${name} has a healthcheck`);
      for (const key of ['interval', 'timeout', 'start_period'] as const) durationMs(svc.healthcheck[key] ?? '');
      assert.ok(Number.isInteger(svc.healthcheck.retries), `${name}: retries`);
      assert.ok(durationMs(svc.healthcheck.timeout ?? '') < durationMs(svc.healthcheck.interval ?? ''), `${name}: timeout < interval`);
    }
    assert.match(healthcheckArgv(service('api')).join(' '), /process\.env\.PORT\+'\/healthz'/);
    for (const name of ['worker', 'worker-cpu']) assert.match(healthcheckArgv(service(name)).join(' '), /process\.env\.WORKER_METRICS_PORT\+'\/metrics'/);
  });

  describe('health-check scripts, run against local servers', () => {
    const servers: { close(): Promise<void> }[] = [];
    after(async () => {
      await Promise.all(servers.map((server) => server.close()));
    });
    const serve = async (routes: Record<string, number>) => {
      const server = await startStubServer(routes);
      servers.push(server);
      return server.port;
    };

    it('the API check passes on /healthz 200 and fails on 503 or no answer', async () => {
      const command = healthcheckArgv(service('api'));
      const [up, failing, closed] = await Promise.all([serve({ '/healthz': 200 }), serve({ '/healthz': 503 }), freePort()]);
      const codes = await Promise.all([up, failing, closed].map((port) => runNodeHealthcheck(command, { PORT: String(port) })));
      assert.deepEqual(codes, [0, 1, 1]);
    });

    it('the worker checks pass on /metrics 200 and fail on 500 or no answer', async () => {
      const [up, failing, closed] = await Promise.all([serve({ '/metrics': 200 }), serve({ '/metrics': 500 }), freePort()]);
      // Identical scripts run once.
      const scripts = new Set(['worker', 'worker-cpu'].map((name) => JSON.stringify(healthcheckArgv(service(name)))));
      for (const script of scripts) {
        const command = JSON.parse(script) as string[];
        const codes = await Promise.all([up, failing, closed].map((port) => runNodeHealthcheck(command, { WORKER_METRICS_PORT: String(port) })));
        assert.deepEqual(codes, [0, 1, 1], script);
      }
    });
  });
});

describe('deploy-helpers', () => {
  it('interpolates like compose: defaults, required values, $$ and durations', () => {
    assert.equal(interpolate('${A:-x}-${B-y}-${C}-$$-$A', { A: 'a', B: '' }), 'a---$-a');
    assert.equal(interpolate('${A:-x}', { A: '' }), 'x');
    assert.throws(() => interpolate('${A:?say why}', {}), /A is missing a value: say why/);
    assert.equal(interpolate('${A?e}', { A: '' }), '');
    assert.equal(durationMs('1m30s'), 90_000);
    assert.equal(durationMs('500ms'), 500);
    assert.throws(() => durationMs('30'), /not a duration/);
  });
});
