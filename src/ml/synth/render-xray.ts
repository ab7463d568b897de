/**
 * Draws one synthetic X-ray: a jittered region layout, placed with a random pose, rendered as
 * projected thickness of tissue and bone, optionally broken, then exposed onto "film".
 * The image is a pure function of (region, fractured, size, seed).
 * @module
 */
import { layoutRegion, type BoneSpec } from './anatomy.ts';
import { drawBone, drawTissue, type PixelBone, type PixelFracture } from './bone-raster.ts';
import type { SynthRegion } from './classes.ts';
import { addGrain, applyShading, gaussianBlur, quantise, smoothField } from './film.ts';
import { place, type Placement, type Point } from './geometry.ts';
import { MlError } from '../errors.ts';
import { createRandom, deriveSeed, uniform, type Random } from '../util/random.ts';

/** Smallest and largest image side the generator accepts, pixels. */
export const MIN_SYNTH_SIZE = 16;
export const MAX_SYNTH_SIZE = 2048;

/** What to draw. */
export interface RenderXrayOptions {
  readonly region: SynthRegion;
  /** Draw one break across a bone. */
  readonly fractured: boolean;
  /** Side of the square image, pixels (16..2048). */
  readonly size: number;
  /** Any integer; the same seed gives the same image, and a normal and a fractured image with the same seed share anatomy, pose and film. */
  readonly seed: number;
}

/** A rendered image. */
export interface RenderedXray {
  /** Row-major 8-bit grey levels, `size * size` bytes. */
  readonly pixels: Uint8Array;
  readonly size: number;
  /** Centre of the break in pixels, or null for a normal image. */
  readonly fractureAt: Point | null;
}

/** Geometry in the layouts is designed at this image side; pixel-sized effects scale with size / 64. */
const REFERENCE_SIZE = 64;

function toPixels(spec: BoneSpec, placement: Placement, size: number, thickness: number): PixelBone {
  return {
    points: spec.points.map((p) => {
      const q = place(p, placement);
      return { x: (q.x + 0.5) * size, y: (q.y + 0.5) * size };
    }),
    radius: spec.radius * placement.scale * thickness * size,
    flareStart: spec.flareStart,
    flareEnd: spec.flareEnd,
    medulla: spec.medulla,
    density: spec.density,
  };
}

/** The point at arc length `at` along `points`, and the unit axis direction there. */
function alongAxis(points: readonly Point[], at: number): { point: Point; dir: Point } {
  let remaining = at;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i] as Point;
    const b = points[i + 1] as Point;
    const len = Math.hypot(b.x - a.x, b.y - a.y);
    if (remaining <= len || i + 2 === points.length) {
      const t = len > 0 ? Math.min(1, remaining / len) : 0;
      const dir = len > 0 ? { x: (b.x - a.x) / len, y: (b.y - a.y) / len } : { x: 1, y: 0 };
      return { point: { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) }, dir };
    }
    remaining -= len;
  }
  return { point: points[0] ?? { x: 0, y: 0 }, dir: { x: 1, y: 0 } };
}

function axisLength(points: readonly Point[]): number {
  let total = 0;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i] as Point;
    const b = points[i + 1] as Point;
    total += Math.hypot(b.x - a.x, b.y - a.y);
  }
  return total;
}

/**
 * Picks a fracturable bone (weighted by its drawn area, so big bones break more often) and a spot on
 * its shaft that lies well inside the image, then draws the break's shape and the fragment's motion.
 */
function chooseFracture(rand: Random, bones: readonly PixelBone[], fracturable: readonly boolean[], size: number): { index: number; fracture: PixelFracture } {
  const candidates = bones
    .map((bone, index) => ({ bone, index, length: axisLength(bone.points) }))
    .filter((c, i) => fracturable[i] === true && c.length > 0);
  if (candidates.length === 0) throw new MlError('INVALID_ARGUMENT', 'layout has no fracturable bone');
  const weights = candidates.map((c) => c.bone.radius * c.length);
  const total = weights.reduce((a, b) => a + b, 0);
  const inside = (p: Point): number => Math.max(Math.abs(p.x / size - 0.5), Math.abs(p.y / size - 0.5));
  let best: { index: number; at: number; point: Point; dir: Point; score: number } | undefined;
  // Rejection sampling keeps the break inside the central 84% of the image; the best try is kept if all fail.
  for (let attempt = 0; attempt < 40; attempt++) {
    let pick = rand() * total;
    let chosen = candidates[candidates.length - 1];
    for (let i = 0; i < candidates.length; i++) {
      pick -= weights[i] ?? 0;
      if (pick <= 0) {
        chosen = candidates[i];
        break;
      }
    }
    if (!chosen) break;
    const at = chosen.length * uniform(rand, 0.22, 0.78);
    const { point, dir } = alongAxis(chosen.bone.points, at);
    const score = inside(point);
    if (!best || score < best.score) best = { index: chosen.index, at, point, dir, score };
    if (score < 0.42) break;
  }
  if (!best) throw new MlError('INVALID_ARGUMENT', 'layout has no fracturable bone');
  const bone = bones[best.index] as PixelBone;
  const k = size / REFERENCE_SIZE;
  const side = { x: -best.dir.y, y: best.dir.x };
  const lateral = (rand() < 0.5 ? -1 : 1) * uniform(rand, 0.1, 0.45) * bone.radius;
  const axial = uniform(rand, -0.5, 0.8) * k;
  return {
    index: best.index,
    fracture: {
      at: best.at,
      obliquity: Math.tan(uniform(rand, -0.6, 0.6)),
      gap: uniform(rand, 1, 3) * k,
      jagAmplitude: uniform(rand, 0.2, 0.8) * k,
      jagFrequency: uniform(rand, 0.5, 1.5) / Math.max(bone.radius, 1),
      jagPhase: uniform(rand, 0, 2 * Math.PI),
      centre: best.point,
      angulation: (rand() < 0.5 ? -1 : 1) * uniform(rand, 0.03, 0.15),
      shift: { x: side.x * lateral + best.dir.x * axial, y: side.y * lateral + best.dir.y * axial },
    },
  };
}

/** Identity up to 0.75, then a soft roll-off towards 1 (the film's shoulder). */
function shoulderCurve(x: number): number {
  return x < 0.75 ? x : 0.75 + 0.25 * Math.tanh((x - 0.75) / 0.25);
}

/**
 * Renders one synthetic radiograph.
 * @returns 8-bit grey levels, `size * size` bytes, row-major; bone is bright, background dark.
 * @throws MlError `INVALID_ARGUMENT` when `size` is not an integer in [16, 2048].
 * @example
 * const { pixels } = renderSyntheticXray({ region: 'hand', fractured: true, size: 128, seed: 7 });
 */
export function renderSyntheticXray(options: RenderXrayOptions): RenderedXray {
  const { region, fractured, size, seed } = options;
  if (!Number.isInteger(size) || size < MIN_SYNTH_SIZE || size > MAX_SYNTH_SIZE) {
    throw new MlError('INVALID_ARGUMENT', `size must be an integer in [${MIN_SYNTH_SIZE}, ${MAX_SYNTH_SIZE}], got ${size}`);
  }
  // Independent streams: the fracture draws cannot shift the anatomy or the film noise, so a normal
  // and a fractured image from one seed differ only by the break.
  const anatomyRand = createRandom(deriveSeed(seed, 'anatomy'));
  const filmRand = createRandom(deriveSeed(seed, 'film'));
  const fractureRand = createRandom(deriveSeed(seed, 'fracture'));

  const anatomy = layoutRegion(region, anatomyRand);
  const placement: Placement = {
    mirror: anatomyRand() < 0.5,
    angle: uniform(anatomyRand, -0.35, 0.35),
    scale: uniform(anatomyRand, 0.85, 1.15),
    offset: { x: uniform(anatomyRand, -0.06, 0.06), y: uniform(anatomyRand, -0.06, 0.06) },
  };
  const thickness = uniform(anatomyRand, 0.85, 1.2);
  const bones = anatomy.bones.map((b) => toPixels(b, placement, size, thickness));

  const tissue = new Float32Array(size * size);
  for (const t of anatomy.tissue) {
    drawTissue(tissue, size, {
      points: t.points.map((p) => {
        const q = place(p, placement);
        return { x: (q.x + 0.5) * size, y: (q.y + 0.5) * size };
      }),
      radius: t.radius * placement.scale * size,
      density: t.density,
    });
  }

  let fractureAt: Point | null = null;
  let broken = -1;
  let fracture: PixelFracture | undefined;
  if (fractured) {
    const chosen = chooseFracture(fractureRand, bones, anatomy.bones.map((b) => b.fracturable), size);
    broken = chosen.index;
    fracture = chosen.fracture;
    fractureAt = fracture.centre;
  }
  const boneRaster = new Float32Array(size * size);
  const groups = new Map<string, number[]>();
  anatomy.bones.forEach((spec, i) => {
    if (spec.group === undefined) drawBone(boneRaster, size, bones[i] as PixelBone, i === broken ? fracture : undefined);
    else groups.set(spec.group, [...(groups.get(spec.group) ?? []), i]);
  });
  // Each group is drawn on its own with max, then added, so a solid made of parts has no seams.
  for (const members of groups.values()) {
    const part = new Float32Array(size * size);
    for (const i of members) drawBone(part, size, bones[i] as PixelBone, i === broken ? fracture : undefined, 'max');
    for (let j = 0; j < part.length; j++) boneRaster[j] = (boneRaster[j] ?? 0) + (part[j] ?? 0);
  }

  // Expose: film response is close to linear in attenuation over the useful range (which keeps the
  // cortex rim brighter than the medulla) and rolls off softly instead of clipping dense bone.
  const texture = smoothField(filmRand, size, 6);
  const tissueLevel = uniform(filmRand, 0.18, 0.4);
  const boneGain = uniform(filmRand, 8, 12) / size;
  const base = uniform(filmRand, 0.02, 0.12);
  const exposure = uniform(filmRand, 0.75, 1.05);
  const image = new Float32Array(size * size);
  for (let i = 0; i < image.length; i++) {
    const signal = tissueLevel * (tissue[i] ?? 0) * (1 + 0.25 * (texture[i] ?? 0)) + boneGain * (boneRaster[i] ?? 0);
    image[i] = base + exposure * shoulderCurve(signal);
  }
  applyShading(image, size, {
    centreX: uniform(filmRand, 0.35, 0.65),
    centreY: uniform(filmRand, 0.35, 0.65),
    vignette: uniform(filmRand, 0.1, 0.45),
    gradientX: uniform(filmRand, -0.25, 0.25),
    gradientY: uniform(filmRand, -0.25, 0.25),
  });
  const k = size / REFERENCE_SIZE;
  gaussianBlur(image, size, uniform(filmRand, 0.25, 0.55) * k);
  addGrain(image, filmRand, uniform(filmRand, 0.012, 0.045));
  return { pixels: quantise(image, uniform(filmRand, 0.8, 1.25)), size, fractureAt };
}
