/**
 * A small Dockerfile reader for the deployment tests (there is no Docker engine on the build
 * machines): instructions with their flags and JSON (exec) form, build stages with `FROM ... AS`,
 * global `ARG` defaults substituted into `FROM`, and what a stage inherits from the stages it is
 * built on. It covers the syntax our Dockerfile uses (line continuations, comments, `--flag=value`,
 * JSON arrays, `ENV` in both forms), not heredocs or a custom escape character.
 * @module
 */

/** One instruction, continuation lines joined. */
export interface Instruction {
  /** Upper-case keyword: `FROM`, `RUN`, `COPY`, ... */
  keyword: string;
  /** Everything after the leading `--flag=value` options. */
  args: string;
  /** Leading options, e.g. `{ from: 'deps' }` for `COPY --from=deps`. A bare `--link` maps to `''`. */
  flags: Record<string, string>;
  /** The arguments as a string array when written in JSON (exec) form, else null. */
  json: string[] | null;
  /** 1-based line of the instruction's first line. */
  line: number;
}

/** One build stage: its `FROM` and the instructions up to the next `FROM`. */
export interface Stage {
  /** The `AS` name, or null. */
  name: string | null;
  /** What it is built on, with global `ARG` defaults substituted: an image or an earlier stage's name. */
  base: string;
  instructions: Instruction[];
}

export interface ParsedDockerfile {
  /** `ARG` defaults declared before the first `FROM` (usable in `FROM` lines). */
  globalArgs: Record<string, string>;
  stages: Stage[];
}

/** A `HEALTHCHECK` instruction, split into its options and command. */
export interface Healthcheck {
  options: Record<string, string>;
  /** `CMD` in exec form: the argv; in shell form: `['/bin/sh', '-c', command]`. Null for `NONE`. */
  command: string[] | null;
}

const FLAG = /^--([a-z][a-z0-9-]*)(?:=(\S*))?(?:\s+|$)/;

/** Parses Dockerfile text. Throws on an instruction before the first `FROM` other than `ARG`. */
export function parseDockerfile(text: string): ParsedDockerfile {
  const globalArgs: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const raw of logicalLines(text)) {
    const match = /^(\S+)\s*([\s\S]*)$/.exec(raw.text);
    if (!match) continue;
    const keyword = (match[1] ?? '').toUpperCase();
    const { flags, rest } = splitFlags(match[2] ?? '');
    const instruction: Instruction = { keyword, args: rest, flags, json: parseJsonForm(rest), line: raw.line };
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?\s*$/i.exec(rest);
      if (!from) throw new Error(`line ${raw.line}: cannot read FROM ${rest}`);
      stages.push({ name: from[2] ?? null, base: substitute(from[1] ?? '', globalArgs), instructions: [] });
      continue;
    }
    const current = stages.at(-1);
    if (current) {
      current.instructions.push(instruction);
    } else if (keyword === 'ARG') {
      for (const [key, value] of Object.entries(parseKeyValues(rest, false))) globalArgs[key] = value;
    } else {
      throw new Error(`line ${raw.line}: ${keyword} before the first FROM`);
    }
  }
  return { globalArgs, stages };
}

/** The stage named `name`; throws when there is none. */
export function stageNamed(dockerfile: ParsedDockerfile, name: string): Stage {
  const stage = dockerfile.stages.find((candidate) => candidate.name === name);
  if (!stage) throw new Error(`no stage named ${name}`);
  return stage;
}

/**
 * The stages `stage` is built on, root first and `stage` last: follows `FROM <earlier stage>`
 * until a `FROM <image>`.
 */
export function stageChain(dockerfile: ParsedDockerfile, stage: Stage): Stage[] {
  const chain = [stage];
  let current = stage;
  for (;;) {
    const index = dockerfile.stages.indexOf(current);
    const parent = dockerfile.stages.slice(0, index).find((candidate) => candidate.name === current.base);
    if (!parent) return chain.reverse();
    chain.push(parent);
    current = parent;
  }
}

/** The image at the root of `stage`'s chain (what `docker build --target` pulls first). */
export function rootImage(dockerfile: ParsedDockerfile, stage: Stage): string {
  const root = stageChain(dockerfile, stage)[0];
  if (!root) throw new Error('empty stage chain');
  return root.base;
}

/** Every instruction `stage` runs or inherits, in build order. */
export function effectiveInstructions(dockerfile: ParsedDockerfile, stage: Stage): Instruction[] {
  return stageChain(dockerfile, stage).flatMap((link) => link.instructions);
}

/** The environment `ENV` gives a container of `stage` (inherited stages included, images' own not). */
export function effectiveEnv(dockerfile: ParsedDockerfile, stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const instruction of effectiveInstructions(dockerfile, stage)) {
    if (instruction.keyword === 'ENV') Object.assign(env, parseKeyValues(instruction.args, true));
  }
  return env;
}

/** The last instruction with `keyword` that `stage` runs or inherits, or undefined. */
export function lastInstruction(dockerfile: ParsedDockerfile, stage: Stage, keyword: string): Instruction | undefined {
  return effectiveInstructions(dockerfile, stage).filter((instruction) => instruction.keyword === keyword).at(-1);
}

/** Splits a `HEALTHCHECK` into options and command. */
export function parseHealthcheck(instruction: Instruction): Healthcheck {
  const match = /^(CMD|NONE)\b\s*([\s\S]*)$/i.exec(instruction.args);
  if (!match) throw new Error(`line ${instruction.line}: HEALTHCHECK needs CMD or NONE`);
  if ((match[1] ?? '').toUpperCase() === 'NONE') return { options: instruction.flags, command: null };
  const command = match[2] ?? '';
  return { options: instruction.flags, command: parseJsonForm(command) ?? ['/bin/sh', '-c', command] };
}

/** Instruction arguments as words: the JSON array, or the text split on whitespace. */
export function words(instruction: Instruction): string[] {
  return instruction.json ?? instruction.args.split(/\s+/).filter(Boolean);
}

/** Joins continuation lines and drops comments and blank lines. */
function logicalLines(text: string): { text: string; line: number }[] {
  const lines = text.split(/\r?\n/);
  const result: { text: string; line: number }[] = [];
  let pending: { parts: string[]; line: number } | null = null;
  lines.forEach((line, index) => {
    const trimmed = line.trim();
    // Comment lines are dropped even inside a continuation, as Docker does.
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const continues = /\\\s*$/.test(line);
    const content = continues ? line.replace(/\\\s*$/, '') : line;
    pending ??= { parts: [], line: index + 1 };
    pending.parts.push(content.trim());
    if (!continues) {
      result.push({ text: pending.parts.join(' '), line: pending.line });
      pending = null;
    }
  });
  if (pending !== null) {
    const last: { parts: string[]; line: number } = pending;
    result.push({ text: last.parts.join(' '), line: last.line });
  }
  return result;
}

function splitFlags(text: string): { flags: Record<string, string>; rest: string } {
  const flags: Record<string, string> = {};
  let rest = text;
  for (let match = FLAG.exec(rest); match; match = FLAG.exec(rest)) {
    flags[match[1] ?? ''] = match[2] ?? '';
    rest = rest.slice(match[0].length);
  }
  return { flags, rest: rest.trim() };
}

function parseJsonForm(text: string): string[] | null {
  if (!text.startsWith('[')) return null;
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) && value.every((item) => typeof item === 'string') ? (value as string[]) : null;
  } catch {
    return null;
  }
}

/**
 * `KEY=value` pairs (values may be quoted), or the legacy `ENV KEY value with spaces` form.
 * `ARG NAME` without a default maps to `''`.
 */
function parseKeyValues(text: string, legacyForm: boolean): Record<string, string> {
  const legacy = /^([A-Za-z_][A-Za-z0-9_]*)\s+([^=\s][\s\S]*)$/.exec(text);
  if (legacyForm && legacy && !/^\S+=/.test(text)) return { [legacy[1] ?? '']: (legacy[2] ?? '').trim() };
  const result: Record<string, string> = {};
  const pair = /([A-Za-z_][A-Za-z0-9_]*)(?:=("(?:[^"\\]|\\.)*"|'[^']*'|\S*))?/gy;
  let index = 0;
  while (index < text.length) {
    while (/\s/.test(text[index] ?? '')) index += 1;
    if (index >= text.length) break;
    pair.lastIndex = index;
    const match = pair.exec(text);
    if (!match || match[0] === '') throw new Error(`cannot read key=value pairs in: ${text}`);
    result[match[1] ?? ''] = unquote(match[2] ?? '');
    index = pair.lastIndex;
  }
  return result;
}

function unquote(value: string): string {
  if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) return value.slice(1, -1).replace(/\\(.)/g, '$1');
  if (value.startsWith("'") && value.endsWith("'") && value.length >= 2) return value.slice(1, -1);
  return value;
}

/** `${NAME}`, `${NAME:-default}` and `$NAME` from `args`; unknown names become ''. */
function substitute(text: string, args: Record<string, string>): string {
  return text.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_match, braced: string | undefined, fallback: string | undefined, bare: string | undefined) => {
    const value = args[braced ?? bare ?? ''];
    return value === undefined || value === '' ? (fallback ?? '') : value;
  });
}
