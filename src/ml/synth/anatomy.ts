/**
 * Bone and soft-tissue layouts of each body region, in layout units (a fraction of the image side,
 * origin at the image centre, y down). Each layout is jittered a little per image so no two images of
 * a region share a skeleton; the placement (rotation, scale, mirror) is applied later by the renderer.
 * @module
 */
import type { SynthRegion } from './classes.ts';
import { add, pt, step, type Point } from './geometry.ts';
import { gaussian, uniform, type Random } from '../util/random.ts';

/** A bone: a tube along a polyline whose projection has a bright cortex rim and darker medulla. */
export interface BoneSpec {
  /** Axis from the proximal to the distal end; a single point draws a ball (e.g. the humeral head). */
  readonly points: readonly Point[];
  /** Outer radius of the shaft, layout units. */
  readonly radius: number;
  /** Extra radius at the proximal end as a fraction of `radius` (epiphysis, condyles). */
  readonly flareStart: number;
  /** Extra radius at the distal end as a fraction of `radius`. */
  readonly flareEnd: number;
  /** Medulla (inner) radius as a fraction of the outer radius along the shaft, 0..1. */
  readonly medulla: number;
  /** Attenuation relative to a long-bone cortex (flat bones and ribs are fainter). */
  readonly density: number;
  /** Whether a fracture may be drawn across this bone. */
  readonly fracturable: boolean;
  /**
   * Bones sharing a group are one solid (e.g. humeral head and shaft): where they overlap the denser
   * one shows instead of the sum, so there is no bright seam.
   */
  readonly group?: string;
}

/** Soft tissue: a rounded slab around a polyline, brightest on its axis. */
export interface TissueSpec {
  readonly points: readonly Point[];
  /** Half-width, layout units. */
  readonly radius: number;
  /** Peak attenuation relative to other tissue. */
  readonly density: number;
}

/** Everything drawn for one image before placement. */
export interface Anatomy {
  readonly bones: readonly BoneSpec[];
  readonly tissue: readonly TissueSpec[];
}

const UP = -Math.PI / 2;
const DOWN = Math.PI / 2;

/** `value` scaled by a random factor in [1 - rel, 1 + rel]. */
function jitter(rand: Random, value: number, rel = 0.08): number {
  return value * uniform(rand, 1 - rel, 1 + rel);
}

function bone(points: readonly Point[], radius: number, options: Partial<Omit<BoneSpec, 'points' | 'radius'>> = {}): BoneSpec {
  return {
    points,
    radius,
    flareStart: options.flareStart ?? 0.3,
    flareEnd: options.flareEnd ?? 0.3,
    medulla: options.medulla ?? 0.66,
    density: options.density ?? 1,
    fracturable: options.fracturable ?? true,
    ...(options.group === undefined ? {} : { group: options.group }),
  };
}

/**
 * A bone that visibly spans `from` to `to`: the axis is pulled in by the rounded end caps, so bones
 * in a chain leave a dark joint space instead of overlapping.
 */
function spanBone(from: Point, to: Point, radius: number, flareStart: number, flareEnd: number): BoneSpec {
  const length = Math.hypot(to.x - from.x, to.y - from.y);
  const capStart = Math.min(radius * (1 + flareStart), 0.4 * length);
  const capEnd = Math.min(radius * (1 + flareEnd), 0.4 * length);
  const ux = (to.x - from.x) / length;
  const uy = (to.y - from.y) / length;
  return bone([pt(from.x + ux * capStart, from.y + uy * capStart), pt(to.x - ux * capEnd, to.y - uy * capEnd)], radius, { flareStart, flareEnd });
}

/**
 * A chain of bones separated by joint spaces, each bent a little from the previous one.
 * Returns the bones and the end point of the last one.
 */
function digit(
  rand: Random,
  start: Point,
  angle: number,
  lengths: readonly number[],
  radii: readonly number[],
  gap: number,
  bend: number,
): { bones: BoneSpec[]; end: Point } {
  const bones: BoneSpec[] = [];
  let from = start;
  let heading = angle;
  lengths.forEach((length, i) => {
    const to = step(from, heading, jitter(rand, length));
    const last = i === lengths.length - 1;
    bones.push(spanBone(from, to, jitter(rand, radii[i] ?? radii[radii.length - 1] ?? 0.03, 0.06), 0.35, last ? 0.2 : 0.3));
    heading += bend * gaussian(rand);
    from = step(to, heading, gap);
  });
  return { bones, end: from };
}

function elbow(rand: Random): Anatomy {
  const joint = pt(0, 0.04);
  const flex = uniform(rand, 0.25, 1.2); // forearm bend away from the humerus line, radians
  const forearm = DOWN - flex;
  const across = forearm - Math.PI / 2;
  const top = step(joint, UP + 0.05 * gaussian(rand), jitter(rand, 0.7));
  const humerus = bone([top, joint], jitter(rand, 0.05), { flareStart: 0.2, flareEnd: jitter(rand, 0.6, 0.15) });
  // The ulna starts behind the joint (olecranon); the radius starts just below it (radial head).
  const ulnaStart = add(step(joint, forearm, -jitter(rand, 0.06)), step(pt(0, 0), across, -0.02));
  const ulna = bone([ulnaStart, step(ulnaStart, forearm + 0.02 * gaussian(rand), jitter(rand, 0.72))], jitter(rand, 0.03), {
    flareStart: 0.8,
    flareEnd: 0.25,
  });
  const radiusStart = add(step(joint, forearm, jitter(rand, 0.07)), step(pt(0, 0), across, jitter(rand, 0.055)));
  const radius = bone([radiusStart, step(radiusStart, forearm + 0.02 * gaussian(rand), jitter(rand, 0.62))], jitter(rand, 0.029), {
    flareStart: 0.5,
    flareEnd: 0.6,
  });
  return {
    bones: [humerus, ulna, radius],
    tissue: [
      { points: [step(joint, UP, 0.9), joint], radius: jitter(rand, 0.17), density: 1 },
      { points: [joint, step(joint, forearm, 0.9)], radius: jitter(rand, 0.15), density: 1 },
    ],
  };
}

function finger(rand: Random): Anatomy {
  const gap = jitter(rand, 0.02, 0.2);
  const base = pt(0.02 * gaussian(rand), 0.92);
  const metacarpalEnd = pt(base.x, jitter(rand, 0.52, 0.05));
  const metacarpal = { ...spanBone(base, metacarpalEnd, jitter(rand, 0.05), 0.3, 0.4), fracturable: false };
  const main = digit(rand, step(metacarpalEnd, UP, gap), UP + 0.06 * gaussian(rand), [0.34, 0.23, 0.15], [0.045, 0.039, 0.033], gap, 0.1);
  const bones: BoneSpec[] = [metacarpal, ...main.bones];
  const tissue: TissueSpec[] = [{ points: [base, main.end], radius: jitter(rand, 0.1), density: 1 }];
  // Half of the views catch part of a neighbouring finger at the edge; it is never the broken one.
  if (rand() < 0.5) {
    const side = rand() < 0.5 ? -1 : 1;
    const start = pt(side * uniform(rand, 0.32, 0.4), uniform(rand, 0.3, 0.5));
    const neighbour = digit(rand, start, UP + side * uniform(rand, 0.05, 0.25), [0.3, 0.2, 0.13], [0.04, 0.035, 0.03], gap, 0.1);
    bones.push(...neighbour.bones.map((b) => ({ ...b, fracturable: false })));
    tissue.push({ points: [pt(start.x, 1), neighbour.end], radius: jitter(rand, 0.09), density: 0.9 });
  }
  return { bones, tissue };
}

function forearm(rand: Random): Anatomy {
  const spread = jitter(rand, 0.075, 0.15);
  const radius = bone(
    [pt(-spread, -0.68), pt(-spread - 0.01 * gaussian(rand) - 0.012, 0), pt(-spread * 0.85, jitter(rand, 0.6, 0.05))],
    jitter(rand, 0.037),
    { flareStart: 0.35, flareEnd: jitter(rand, 0.9, 0.15) },
  );
  const ulna = bone([pt(spread, -0.72), pt(spread * 0.85 + 0.01 * gaussian(rand), jitter(rand, 0.58, 0.05))], jitter(rand, 0.033), {
    flareStart: 0.75,
    flareEnd: 0.3,
  });
  // A few carpal bones peek in beyond the wrist end.
  const carpals: BoneSpec[] = [];
  for (let i = 0; i < 4; i++) {
    const c = pt(-0.09 + 0.06 * i + 0.01 * gaussian(rand), 0.78 + 0.02 * gaussian(rand));
    carpals.push(bone([add(c, pt(0, -0.012)), add(c, pt(0, 0.012))], jitter(rand, 0.03, 0.15), {
      flareStart: 0, flareEnd: 0, medulla: 0.75, density: 0.8, fracturable: false,
    }));
  }
  return {
    bones: [radius, ulna, ...carpals],
    tissue: [{ points: [pt(0, -1), pt(0, 1)], radius: jitter(rand, 0.2), density: 1 }],
  };
}

function hand(rand: Random): Anatomy {
  const bones: BoneSpec[] = [];
  const tissue: TissueSpec[] = [];
  const wrist = pt(0, 0.42);
  const fan = uniform(rand, 0.7, 1.3);
  // Distal radius and ulna below the carpus.
  bones.push(bone([pt(-0.06, 0.9), pt(-0.06, 0.6)], jitter(rand, 0.04), { flareEnd: 0.8, fracturable: false }));
  bones.push(bone([pt(0.07, 0.9), pt(0.065, 0.62)], jitter(rand, 0.03), { flareEnd: 0.35, fracturable: false }));
  for (let row = 0; row < 2; row++) {
    for (let i = 0; i < 4; i++) {
      const c = pt(-0.09 + 0.06 * i + 0.006 * gaussian(rand), wrist.y + 0.1 - 0.075 * row + 0.006 * gaussian(rand));
      bones.push(bone([add(c, pt(0, -0.01)), add(c, pt(0, 0.01))], jitter(rand, 0.029, 0.15), {
        flareStart: 0, flareEnd: 0, medulla: 0.75, density: 0.8, fracturable: false,
      }));
    }
  }
  // Index to little finger, then the thumb from lower on the radial side.
  const rays = [
    { x: -0.085, angle: -0.2, meta: 0.27, phal: [0.16, 0.1, 0.07] },
    { x: -0.028, angle: -0.07, meta: 0.28, phal: [0.17, 0.11, 0.075] },
    { x: 0.028, angle: 0.06, meta: 0.26, phal: [0.16, 0.105, 0.07] },
    { x: 0.085, angle: 0.19, meta: 0.23, phal: [0.13, 0.085, 0.065] },
  ];
  const finish = (start: Point, angle: number, meta: number, phal: readonly number[], metaRadius: number): void => {
    const metaEnd = step(start, angle, jitter(rand, meta));
    bones.push(spanBone(start, metaEnd, jitter(rand, metaRadius), 0.4, 0.45));
    const gap = jitter(rand, 0.014, 0.2);
    const chain = digit(rand, step(metaEnd, angle, gap), angle + 0.05 * gaussian(rand), phal, [0.022, 0.019, 0.016], gap, 0.07);
    chain.bones.forEach((b, i) => bones.push(i === 0 ? b : { ...b, fracturable: false }));
    tissue.push({ points: [metaEnd, chain.end], radius: jitter(rand, 0.045), density: 0.9 });
  };
  for (const ray of rays) {
    finish(pt(ray.x, wrist.y - 0.1), UP + ray.angle * fan + 0.03 * gaussian(rand), ray.meta, ray.phal, 0.026);
  }
  finish(pt(-0.12, wrist.y - 0.05), UP - jitter(rand, 0.75, 0.15), 0.19, [0.13, 0.09], 0.028);
  tissue.push({ points: [pt(0, 1), pt(0, wrist.y - 0.2)], radius: jitter(rand, 0.17), density: 1 });
  return { bones, tissue };
}

function shoulder(rand: Random): Anatomy {
  const head = pt(jitter(rand, 0.08, 0.3), jitter(rand, -0.1, 0.2));
  const headRadius = jitter(rand, 0.12);
  const abduction = 0.08 * gaussian(rand);
  const glenoid = (angle: number): Point => step(head, angle, headRadius + 0.035);
  const bones: BoneSpec[] = [
    // Humeral head (a ball with a thin cortex) and the shaft widening into the neck, one solid.
    bone([head], headRadius, { flareStart: 0, flareEnd: 0, medulla: 0.9, density: 0.65, fracturable: false, group: 'humerus' }),
    bone([add(head, pt(0.03, 0.7 * headRadius)), step(add(head, pt(0.05, 0.1)), DOWN - 0.05 + abduction, 0.85)], jitter(rand, 0.05), {
      flareStart: 0.9,
      flareEnd: 0,
      group: 'humerus',
    }),
    // Glenoid: a curved rim facing the head; the scapula behind it is a faint flat bone with a denser lateral border.
    bone([glenoid(Math.PI * 0.83), glenoid(Math.PI), glenoid(Math.PI * 1.17)], jitter(rand, 0.02), {
      flareStart: 0.2, flareEnd: 0.2, medulla: 0.45, fracturable: false, group: 'scapula',
    }),
    bone([add(glenoid(Math.PI), pt(-0.1, 0)), pt(-0.55, 0.55)], jitter(rand, 0.12), {
      flareStart: 0.3, flareEnd: 0, medulla: 0.92, density: 0.25, fracturable: false, group: 'scapula',
    }),
    bone([glenoid(Math.PI * 1.2), pt(-0.3, 0.62)], jitter(rand, 0.016), { density: 0.7, fracturable: false }),
    // Coracoid below the clavicle, the acromion arching over the head, and the S-shaped clavicle.
    bone([add(head, pt(-0.2, -0.16)), add(head, pt(-0.1, -0.1))], jitter(rand, 0.022), { fracturable: false }),
    bone([add(head, pt(-0.16, -headRadius - 0.1)), add(head, pt(0.08, -headRadius - 0.05))], jitter(rand, 0.028), {
      flareEnd: 0.5,
      fracturable: false,
    }),
    bone([pt(-0.8, jitter(rand, -0.42, 0.1)), pt(-0.45, -0.38 + 0.02 * gaussian(rand)), add(head, pt(-0.2, -headRadius - 0.11))], jitter(rand, 0.032), {
      flareStart: 0.2,
      flareEnd: 0.4,
    }),
  ];
  for (let k = 0; k < 4; k++) {
    const y0 = -0.3 + 0.19 * k + 0.02 * gaussian(rand);
    bones.push(bone([pt(-0.8, y0 + 0.05), pt(-0.6, y0 - 0.02), pt(-0.4, y0 + 0.04), pt(-0.25, y0 + 0.16)], 0.016, {
      medulla: 0.6, density: 0.55, flareStart: 0, flareEnd: 0, fracturable: false,
    }));
  }
  return {
    bones,
    tissue: [
      // The chest (mostly air-filled lung) is less dense than the arm.
      { points: [pt(-1.3, 0.3), pt(-0.7, 0.3)], radius: 0.75, density: 0.55 },
      { points: [pt(-0.45, -0.12), add(head, pt(0.02, 0))], radius: jitter(rand, 0.3), density: 1 },
      { points: [add(head, pt(0.04, 0)), pt(head.x + 0.1, 1)], radius: jitter(rand, 0.19), density: 1 },
    ],
  };
}

const LAYOUTS: Record<SynthRegion, (rand: Random) => Anatomy> = { elbow, finger, forearm, hand, shoulder };

/** A freshly jittered layout of `region`, drawn from `rand`. */
export function layoutRegion(region: SynthRegion, rand: Random): Anatomy {
  return LAYOUTS[region](rand);
}
