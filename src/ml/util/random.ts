/**
 * Seeded pseudo-random numbers. Every random choice in `src/ml` (splits, augmentation, synthetic
 * images, weight initialisation seeds) goes through this module so a run is reproducible from its seed.
 * @module
 */

/** A source of uniform numbers in [0, 1). */
export type Random = () => number;

/**
 * Mulberry32: a small, fast 32-bit generator with good statistical quality for this use.
 * @example
 * const rand = createRandom(42);
 * rand(); // 0.6011037519201636, the same on every machine
 */
export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Derives an independent seed for a named sub-task, so adding one consumer does not shift another's stream. */
export function deriveSeed(seed: number, label: string): number {
  let hash = 2166136261 ^ (seed >>> 0);
  for (let i = 0; i < label.length; i++) {
    hash = Math.imul(hash ^ label.charCodeAt(i), 16777619);
  }
  return hash >>> 0;
}

/** A uniform number in [min, max). */
export function uniform(rand: Random, min: number, max: number): number {
  return min + (max - min) * rand();
}

/** An integer in [min, max] inclusive. */
export function randomInt(rand: Random, min: number, max: number): number {
  return min + Math.floor(rand() * (max - min + 1));
}

/** A standard normal sample (Box-Muller). */
export function gaussian(rand: Random): number {
  const u = 1 - rand();
  const v = rand();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/** Shuffles `items` in place (Fisher-Yates) and returns it. */
export function shuffleInPlace<T>(items: T[], rand: Random): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = items[i] as T;
    items[i] = items[j] as T;
    items[j] = tmp;
  }
  return items;
}
