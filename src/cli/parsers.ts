/**
 * Commander option parsers shared by the commands: each turns a string into a typed value or throws
 * `InvalidArgumentError` with a message that says what was expected.
 * @module
 */
import { InvalidArgumentError } from 'commander';

/** A non-negative integer. */
export function integer(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a non-negative integer.');
  return Number(value);
}

/** A positive integer. */
export function positiveInteger(value: string): number {
  const n = integer(value);
  if (n < 1) throw new InvalidArgumentError('expected a positive integer.');
  return n;
}

/** A finite number. */
export function finiteNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('expected a number.');
  return n;
}

/** A comma-separated list of values from `allowed`, without duplicates, in the given order. */
export function listOf<T extends string>(allowed: readonly T[]): (value: string) => T[] {
  return (value: string) => {
    const items = value.split(',').map((item) => item.trim()).filter((item) => item.length > 0);
    for (const item of items) {
      if (!(allowed as readonly string[]).includes(item)) {
        throw new InvalidArgumentError(`unknown value "${item}"; valid: ${allowed.join(', ')}.`);
      }
    }
    if (items.length === 0) throw new InvalidArgumentError(`expected at least one of ${allowed.join(', ')}.`);
    return [...new Set(items)] as T[];
  };
}

/** One value from `allowed`. */
export function oneOf<T extends string>(allowed: readonly T[]): (value: string) => T {
  return (value: string) => {
    if (!(allowed as readonly string[]).includes(value)) {
      throw new InvalidArgumentError(`unknown value "${value}"; valid: ${allowed.join(', ')}.`);
    }
    return value as T;
  };
}
