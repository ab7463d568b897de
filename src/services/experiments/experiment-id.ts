/**
 * Experiment ids: `exp-YYYYMMDD-HHMMSS-xxxx` (UTC time of creation, 4 random hex digits). They sort
 * by creation time as strings, are safe as folder names and BullMQ job ids (no `:`), and are short
 * enough to read out.
 * @module
 */
import { randomBytes } from 'node:crypto';

/** Shape of an id made by {@link newExperimentId}. */
export const EXPERIMENT_ID_PATTERN = /^exp-\d{8}-\d{6}-[0-9a-f]{4}$/;

/**
 * A new id for an experiment created at `now`. Two ids of the same second differ in their random
 * part (1 in 65,536 collide; the caller retries with a new id when the folder exists).
 * @example
 * newExperimentId(new Date('2026-12-04T17:45:12Z')); // 'exp-20261204-174512-3fa9'
 */
export function newExperimentId(now: Date = new Date(), random: () => string = () => randomBytes(2).toString('hex')): string {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, '').replace(/[-:]/g, '').replace('T', '-');
  return `exp-${stamp}-${random()}`;
}
