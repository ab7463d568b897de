import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  generateAdminKey,
  hashSecret,
  hasScope,
  loadOrCreateStoredKeys,
  parseApiKeys,
  verifyKey,
} from '../../../src/infra/api-keys.ts';
import { ConfigError } from '../../../src/infra/config.ts';

const PREDICT_SECRET = 'pacs-secret-0123456789';
const TRAIN_SECRET = 'lab:secret:with:colons-42';
const ADMIN_SECRET = 'ops-secret-abcdefghijkl';
const SPEC = `pacs:${PREDICT_SECRET}:predict, lab:${TRAIN_SECRET}:train+predict,ops:${ADMIN_SECRET}:admin,`;

function configProblems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.problems;
  }
  assert.fail('expected a ConfigError');
}

describe('parseApiKeys', () => {
  it('parses ids, hashes secrets (sha256 hex) and scopes, and keeps no plain secret', () => {
    const keys = parseApiKeys(SPEC);
    assert.deepEqual(
      keys.map((k) => [k.id, k.scopes]),
      [
        ['pacs', ['predict']],
        ['lab', ['train', 'predict']],
        ['ops', ['admin']],
      ],
    );
    assert.equal(keys[1]?.secretHash, createHash('sha256').update(TRAIN_SECRET).digest('hex'));
    const serialized = JSON.stringify(keys);
    for (const secret of [PREDICT_SECRET, TRAIN_SECRET, ADMIN_SECRET]) assert.ok(!serialized.includes(secret));
  });

  it('lists every bad entry at once and never echoes a secret', () => {
    const shortSecret = 'short';
    const swapped = 'swapped-order-secret-xyz';
    const problems = configProblems(() =>
      parseApiKeys(
        [
          `good:${PREDICT_SECRET}:predict`,
          `a:${shortSecret}:predict`,
          `bad id!:${ADMIN_SECRET}x:admin`,
          `b:${ADMIN_SECRET}y:trian`,
          `c:predict:${swapped}`,
          'noscopes',
          `good:${ADMIN_SECRET}z:admin`,
          `d:${PREDICT_SECRET}:train`,
        ].join(','),
      ),
    );
    assert.deepEqual(
      problems.map((p) => /^API_KEYS: entry \d+/.exec(p)?.[0]),
      [2, 3, 4, 5, 5, 6, 7, 8].map((n) => `API_KEYS: entry ${n}`),
      problems.join('\n'),
    );
    assert.match(problems[0] ?? '', /entry 2 \("a"\): the secret must have at least 16 characters/);
    assert.match(problems[1] ?? '', /entry 3: the id must be/);
    assert.match(problems[2] ?? '', /entry 4 \("b"\): unknown scope/);
    // the secret written where the scope belongs: both parts are wrong, neither is echoed
    assert.match(problems[3] ?? '', /entry 5 \("c"\): the secret must have/);
    assert.match(problems[4] ?? '', /entry 5 \("c"\): unknown scope/);
    assert.match(problems[5] ?? '', /entry 6: expected id:secret:scope/);
    assert.match(problems[6] ?? '', /entry 7 \("good"\): the id is used by an earlier entry/);
    assert.match(problems[7] ?? '', /entry 8 \("d"\): the secret is used by an earlier entry/);
    const text = problems.join('\n');
    for (const secret of [shortSecret, swapped, PREDICT_SECRET, ADMIN_SECRET]) assert.ok(!text.includes(secret), `echoed ${secret}`);
  });

  it('refuses a specification with no key', () => {
    assert.deepEqual(configProblems(() => parseApiKeys(' , ')), ['API_KEYS: no key given']);
  });
});

describe('verifyKey and hasScope', () => {
  const keys = parseApiKeys(SPEC);

  it('finds the key of a presented secret and nothing for any other string', () => {
    assert.equal(verifyKey(keys, PREDICT_SECRET)?.id, 'pacs');
    assert.equal(verifyKey(keys, TRAIN_SECRET)?.id, 'lab');
    assert.equal(verifyKey(keys, `${PREDICT_SECRET}x`), null);
    assert.equal(verifyKey(keys, PREDICT_SECRET.slice(0, -1)), null);
    assert.equal(verifyKey(keys, ''), null);
    assert.equal(verifyKey(keys, keys[0]?.secretHash ?? ''), null, 'the hash itself is not a credential');
  });

  it('grants a scope when the key has it or is admin', () => {
    const [pacs, lab, ops] = keys;
    assert.ok(pacs && lab && ops);
    assert.equal(hasScope(pacs, 'predict'), true);
    assert.equal(hasScope(pacs, 'train'), false);
    assert.equal(hasScope(pacs, 'admin'), false);
    assert.equal(hasScope(lab, 'train'), true);
    assert.equal(hasScope(lab, 'admin'), false);
    for (const scope of ['predict', 'train', 'admin'] as const) assert.equal(hasScope(ops, scope), true);
  });
});

describe('generateAdminKey', () => {
  it('makes a 32-byte base64url secret, different every time', () => {
    const a = generateAdminKey();
    const b = generateAdminKey();
    assert.equal(a.id, 'admin');
    assert.match(a.secret, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(a.secret, 'base64url').length, 32);
    assert.notEqual(a.secret, b.secret);
  });
});

describe('loadOrCreateStoredKeys', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'api-keys-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates an admin key once (hash only, mode 0600) and returns its secret only on that start', async () => {
    const file = path.join(dir, 'data', 'api-keys.json');
    const first = await loadOrCreateStoredKeys(file);
    assert.ok(first.createdSecret);
    assert.deepEqual(first.keys.map((k) => [k.id, k.scopes]), [['admin', ['admin']]]);
    assert.equal(verifyKey(first.keys, first.createdSecret)?.id, 'admin');

    const stored = await readFile(file, 'utf8');
    assert.ok(!stored.includes(first.createdSecret), 'the plain secret is not stored');
    assert.ok(stored.includes(hashSecret(first.createdSecret)));
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    const second = await loadOrCreateStoredKeys(file);
    assert.equal(second.createdSecret, undefined);
    assert.deepEqual(second.keys, first.keys);
    assert.equal(verifyKey(second.keys, first.createdSecret)?.id, 'admin');
  });

  it('creates exactly one key when several starts race', async () => {
    const file = path.join(dir, 'race', 'api-keys.json');
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateStoredKeys(file)));
    const created = results.filter((r) => r.createdSecret !== undefined);
    assert.equal(created.length, 1);
    for (const result of results) assert.deepEqual(result.keys, created[0]?.keys);
  });

  it('refuses a damaged key file instead of replacing it', async () => {
    const file = path.join(dir, 'damaged.json');
    await writeFile(file, '{"version":1,"keys":[{"id":"admin","secretHash":"nothex","scopes":["admin"]}]}');
    const error = await loadOrCreateStoredKeys(file).then(
      () => assert.fail('expected a ConfigError'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConfigError);
    assert.match(error.problems.join('\n'), /keys\.0\.secretHash/);
    assert.match(await readFile(file, 'utf8'), /nothex/);
  });
});
