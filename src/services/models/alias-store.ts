/**
 * `DATA_DIR/models/aliases.json` (`{ alias: modelId }`): read without a lock (it is replaced
 * atomically, so readers see a whole file), changed only under a cross-process lock so that two
 * processes changing aliases at once never lose an update.
 * @module
 */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { isSafeId, type ArtifactStore } from '../../infra/artifact-store.ts';
import { AppError } from '../../infra/errors.ts';
import { withFileLock, type FileLockOptions } from '../../infra/file-lock.ts';
import { ALIAS_PATTERN } from './model.types.ts';

/** Alias name to model id. */
export type AliasMap = Record<string, string>;

/** The alias file of one data directory. */
export class AliasStore {
  readonly #store: ArtifactStore;
  readonly #lockOptions: FileLockOptions;

  /** @param lockOptions Timeouts of the lock on the file (defaults of {@link withFileLock}). */
  constructor(store: ArtifactStore, lockOptions: FileLockOptions = {}) {
    this.#store = store;
    this.#lockOptions = lockOptions;
  }

  /** Current aliases, sorted by name; entries that break the naming rules are left out. */
  async read(): Promise<AliasMap> {
    let value: unknown;
    try {
      value = await this.#store.readJson<unknown>(this.#store.aliasesFile);
    } catch (cause) {
      throw new AppError('INTERNAL', 'the model alias file is not valid JSON', { cause });
    }
    const aliases: AliasMap = {};
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return aliases;
    for (const [alias, modelId] of Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) {
      if (ALIAS_PATTERN.test(alias) && typeof modelId === 'string' && isSafeId(modelId)) aliases[alias] = modelId;
    }
    return aliases;
  }

  /**
   * Reads the aliases, lets `change` edit the map in place, and writes it back if it changed, all
   * under the lock: no other `update` (in any process) runs in between.
   * @returns What `change` returned.
   */
  async update<T>(change: (aliases: AliasMap) => Promise<T> | T): Promise<T> {
    const file = this.#store.aliasesFile;
    await mkdir(path.dirname(file), { recursive: true });
    return withFileLock(
      `${file}.lock`,
      async () => {
        const aliases = await this.read();
        const before = JSON.stringify(aliases);
        const result = await change(aliases);
        if (JSON.stringify(aliases) !== before) {
          const sorted = Object.fromEntries(Object.entries(aliases).sort(([a], [b]) => (a < b ? -1 : 1)));
          await this.#store.writeJson(file, sorted);
        }
        return result;
      },
      this.#lockOptions,
    );
  }
}
