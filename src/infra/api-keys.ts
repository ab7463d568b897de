/**
 * API keys: parsing `API_KEYS`, hashing at rest, constant-time verification and the stored admin key
 * that `start` creates when no keys are configured (issue 3 item 9, DESIGN section 7).
 *
 * A key is `{ id, secretHash, scopes }`; the plain secret is dropped as soon as it is hashed, so no
 * later code (or log line) can see it. Secrets are high-entropy tokens, so one SHA-256 is the right
 * hash (a password KDF buys nothing against a 256-bit random secret and costs every request).
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, rm, writeFile, chmod } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { ConfigError } from './config.ts';

/** Every scope. `admin` implies the others. */
export const SCOPES = Object.freeze(['predict', 'train', 'admin'] as const);
export type Scope = (typeof SCOPES)[number];

/** A configured key, hashed. */
export interface ApiKey {
  /** Names the key in logs, audit records and rate limits; never secret. */
  readonly id: string;
  /** SHA-256 of the secret, lower-case hex (64 characters). */
  readonly secretHash: string;
  readonly scopes: readonly Scope[];
}

/** Ids: what may appear in logs and audit lines. */
export const KEY_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Shortest secret accepted in `API_KEYS` (characters); generated secrets have 43. */
export const MIN_SECRET_LENGTH = 16;

/** The file name of the stored keys under `DATA_DIR`. */
export const STORED_KEYS_FILE_NAME = 'api-keys.json';

/** SHA-256 of `secret` as lower-case hex. */
export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/**
 * Parses `API_KEYS`: comma-separated `id:secret:scope[+scope]`. The secret is everything between the
 * first and the last colon, so it may itself hold colons. Blank entries (a trailing comma) are
 * skipped. Problems name entries by position and id only, never by their text, which holds secrets.
 * @throws ConfigError listing every bad entry (bad id, short secret, unknown scope, duplicate id or
 *   secret), or saying that there is no entry at all.
 * @example
 * parseApiKeys('ops:9dT...:admin,pacs:Qx...:predict');
 * // [{ id: 'ops', secretHash: '5e8…', scopes: ['admin'] }, { id: 'pacs', …, scopes: ['predict'] }]
 */
export function parseApiKeys(spec: string): ApiKey[] {
  const problems: string[] = [];
  const keys: ApiKey[] = [];
  const ids = new Set<string>();
  const hashes = new Set<string>();
  spec.split(',').forEach((raw, index) => {
    const entry = raw.trim();
    if (entry === '') return;
    const first = entry.indexOf(':');
    const last = entry.lastIndexOf(':');
    const where = `API_KEYS: entry ${index + 1}`;
    if (first === -1 || first === last) {
      problems.push(`${where}: expected id:secret:scope[+scope]`);
      return;
    }
    const id = entry.slice(0, first);
    const secret = entry.slice(first + 1, last);
    const scopeText = entry.slice(last + 1);
    const entryProblems: string[] = [];
    const idOk = KEY_ID_PATTERN.test(id);
    if (!idOk) entryProblems.push('the id must be 1-64 letters, digits, _, . or - (starting with a letter or digit)');
    if (secret.length < MIN_SECRET_LENGTH) entryProblems.push(`the secret must have at least ${MIN_SECRET_LENGTH} characters`);
    const scopeParts = scopeText.split('+');
    // the scope text is not echoed: an entry written in the wrong order would put the secret there
    if (scopeParts.some((s) => !isScope(s))) entryProblems.push(`unknown scope (valid: ${SCOPES.join(', ')}, joined with +)`);
    const label = idOk ? `${where} ("${id}")` : where;
    if (idOk && ids.has(id)) entryProblems.push('the id is used by an earlier entry');
    const secretHash = hashSecret(secret);
    if (hashes.has(secretHash)) entryProblems.push('the secret is used by an earlier entry');
    if (entryProblems.length > 0) {
      for (const problem of entryProblems) problems.push(`${label}: ${problem}`);
      return;
    }
    ids.add(id);
    hashes.add(secretHash);
    const scopes = [...new Set(scopeParts)].filter(isScope);
    keys.push(Object.freeze({ id, secretHash, scopes: Object.freeze(scopes) }));
  });
  if (problems.length === 0 && keys.length === 0) problems.push('API_KEYS: no key given');
  if (problems.length > 0) throw new ConfigError(problems);
  return keys;
}

/** True when `key` grants `scope` (`admin` grants every scope). */
export function hasScope(key: Pick<ApiKey, 'scopes'>, scope: Scope): boolean {
  return key.scopes.includes(scope) || key.scopes.includes('admin');
}

/**
 * The key whose secret is `presentedSecret`, or null. Compares SHA-256 digests with
 * `timingSafeEqual` against every key (no early exit), so the time taken says nothing about how much
 * of a secret matched or which key it was.
 */
export function verifyKey(keys: readonly ApiKey[], presentedSecret: string): ApiKey | null {
  const presented = createHash('sha256').update(presentedSecret, 'utf8').digest();
  let found: ApiKey | null = null;
  for (const key of keys) {
    const stored = Buffer.from(key.secretHash, 'hex');
    if (stored.length === presented.length && timingSafeEqual(stored, presented) && found === null) found = key;
  }
  return found;
}

/** A freshly generated key with its plain secret (shown once, then only its hash is kept). */
export interface GeneratedKey {
  id: 'admin';
  /** 32 random bytes, base64url (43 characters). */
  secret: string;
}

/** Generates the admin key `start` creates when no `API_KEYS` is configured. */
export function generateAdminKey(): GeneratedKey {
  return { id: 'admin', secret: randomBytes(32).toString('base64url') };
}

const STORED_KEYS_SCHEMA = z.object({
  version: z.literal(1),
  keys: z
    .array(
      z.object({
        id: z.string().regex(KEY_ID_PATTERN),
        secretHash: z.string().regex(/^[0-9a-f]{64}$/),
        scopes: z.array(z.enum(SCOPES)).min(1),
      }),
    )
    .min(1),
});

/** What {@link loadOrCreateStoredKeys} found or made. */
export interface StoredKeys {
  keys: ApiKey[];
  /** The new admin key's plain secret, present only on the start that created the file: print it once. */
  createdSecret?: string;
}

async function readStoredKeys(file: string): Promise<ApiKey[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw error;
    throw new ConfigError([`${file}: not a JSON key file; fix or delete it (a new admin key is then created)`]);
  }
  const result = STORED_KEYS_SCHEMA.safeParse(parsed);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((issue) => `${file}: ${issue.path.join('.') || '(root)'}: ${issue.message}`));
  }
  return result.data.keys.map((k) => Object.freeze({ id: k.id, secretHash: k.secretHash, scopes: Object.freeze([...k.scopes]) }));
}

/**
 * The keys `start` uses when `API_KEYS` is unset: those stored in `file` (e.g.
 * `DATA_DIR/api-keys.json`), or, when it does not exist, a new admin key written there as a hash
 * only (mode 0600) whose plain secret is returned once as `createdSecret`. Creation is atomic and
 * never overwrites: of two processes starting at once, one creates the file and the other reads it.
 * @throws ConfigError when the file exists but is not a valid key file.
 * @example
 * const { keys, createdSecret } = await loadOrCreateStoredKeys(path.join(config.DATA_DIR, STORED_KEYS_FILE_NAME));
 * if (createdSecret) console.log(`admin API key (shown once): ${createdSecret}`);
 */
export async function loadOrCreateStoredKeys(file: string): Promise<StoredKeys> {
  try {
    return { keys: await readStoredKeys(file) };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const generated = generateAdminKey();
  const key: ApiKey = Object.freeze({ id: generated.id, secretHash: hashSecret(generated.secret), scopes: Object.freeze(['admin'] as Scope[]) });
  const body = `${JSON.stringify({ version: 1, keys: [key] }, null, 2)}\n`;
  await mkdir(path.dirname(file), { recursive: true });
  const temp = `${file}.tmp-${randomBytes(6).toString('hex')}`;
  try {
    await writeFile(temp, body, { mode: 0o600, flag: 'wx' });
    await chmod(temp, 0o600); // in case the umask was stricter than needed or the fs ignored the mode
    // link() publishes the complete file and fails if another process got there first
    await link(temp, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return { keys: await readStoredKeys(file) };
    throw error;
  } finally {
    await rm(temp, { force: true });
  }
  return { keys: [key], createdSecret: generated.secret };
}
