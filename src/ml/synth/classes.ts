/**
 * The class vocabulary of the synthetic data set: five body regions, each fractured or normal.
 * Folder names follow DESIGN.md section 5 (`elbow_fractured` is fracture-positive by its tokens).
 * @module
 */
import { MlError } from '../errors.ts';

/** Body regions the generator can draw, in the order they are listed to users. */
export const SYNTH_REGIONS = ['elbow', 'finger', 'forearm', 'hand', 'shoulder'] as const;

/** A body region the generator can draw. */
export type SynthRegion = (typeof SYNTH_REGIONS)[number];

/** Fracture state of one image. */
export const SYNTH_STATES = ['fractured', 'normal'] as const;

/** Fracture state of one image. */
export type SynthState = (typeof SYNTH_STATES)[number];

/** One class of the synthetic data set. */
export interface SynthClass {
  /** Folder name, `${region}_${state}`. */
  readonly name: string;
  readonly region: SynthRegion;
  readonly state: SynthState;
}

/** True when `value` names a region the generator can draw. */
export function isSynthRegion(value: string): value is SynthRegion {
  return (SYNTH_REGIONS as readonly string[]).includes(value);
}

/**
 * The classes for `regions` (all five by default), sorted by folder name so the order matches
 * what a folder-based loader that sorts directory entries sees.
 * @throws MlError `INVALID_ARGUMENT` for an unknown, repeated or empty list of regions.
 * @example
 * synthClasses(['hand']).map((c) => c.name); // ['hand_fractured', 'hand_normal']
 */
export function synthClasses(regions: readonly string[] = SYNTH_REGIONS): SynthClass[] {
  if (regions.length === 0) {
    throw new MlError('INVALID_ARGUMENT', `regions must not be empty; valid regions: ${SYNTH_REGIONS.join(', ')}`);
  }
  const seen = new Set<string>();
  const classes: SynthClass[] = [];
  for (const region of regions) {
    if (!isSynthRegion(region)) {
      throw new MlError('INVALID_ARGUMENT', `unknown region "${region}"; valid regions: ${SYNTH_REGIONS.join(', ')}`);
    }
    if (seen.has(region)) throw new MlError('INVALID_ARGUMENT', `region "${region}" is listed twice`);
    seen.add(region);
    for (const state of SYNTH_STATES) classes.push({ name: `${region}_${state}`, region, state });
  }
  return classes.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
