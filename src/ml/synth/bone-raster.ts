/**
 * Rasterises bones and soft tissue as projected thickness, the quantity an X-ray film records.
 * A bone is a tube whose cortex (outer shell) is dense and whose medulla is sparse: integrating along
 * the beam gives the bright rim and darker centre of a real radiograph without any special casing.
 * All lengths here are in pixels.
 * @module
 */
import type { Point } from './geometry.ts';

/** A bone placed in pixel space. */
export interface PixelBone {
  /** Axis polyline, proximal first (at least one point). */
  readonly points: readonly Point[];
  readonly radius: number;
  readonly flareStart: number;
  readonly flareEnd: number;
  readonly medulla: number;
  readonly density: number;
}

/** A fracture across one bone, in pixel space. */
export interface PixelFracture {
  /** Arc length along the bone axis where the break crosses it, pixels. */
  readonly at: number;
  /** Obliquity: tangent of the break line's angle to the bone's cross-section. */
  readonly obliquity: number;
  /** Width of the dark gap, pixels. */
  readonly gap: number;
  /** Amplitude (pixels), spatial frequency (radians per pixel) and phase of the jagged break edge. */
  readonly jagAmplitude: number;
  readonly jagFrequency: number;
  readonly jagPhase: number;
  /** Centre of the break on the axis; the distal fragment rotates about it. */
  readonly centre: Point;
  /** Angulation of the distal fragment, radians. */
  readonly angulation: number;
  /** Displacement of the distal fragment, pixels. */
  readonly shift: Point;
}

/** Where a pixel falls relative to a bone axis: arc length `u` and signed side distance `v`. */
interface AxisSample {
  u: number;
  v: number;
}

/** A bone with its cumulative arc lengths precomputed. */
interface PreparedBone {
  readonly bone: PixelBone;
  readonly xs: Float64Array;
  readonly ys: Float64Array;
  readonly cumulative: Float64Array;
  readonly length: number;
  readonly maxRadius: number;
  readonly maxRadius2: number;
}

function prepare(bone: PixelBone): PreparedBone {
  const n = bone.points.length;
  const xs = new Float64Array(n);
  const ys = new Float64Array(n);
  const cumulative = new Float64Array(n);
  bone.points.forEach((p, i) => {
    xs[i] = p.x;
    ys[i] = p.y;
    if (i > 0) cumulative[i] = (cumulative[i - 1] ?? 0) + Math.hypot(p.x - (xs[i - 1] ?? 0), p.y - (ys[i - 1] ?? 0));
  });
  const length = cumulative[n - 1] ?? 0;
  const maxRadius = bone.radius * (1 + Math.max(bone.flareStart, bone.flareEnd, 0)) + 1;
  return { bone, xs, ys, cumulative, length, maxRadius, maxRadius2: maxRadius * maxRadius };
}

/**
 * Projected attenuation of `prepared` at pixel (x, y), in pixels of cortex-equivalent thickness;
 * also reports the axis coordinates of the nearest axis point in `out`.
 */
function sampleBone(prepared: PreparedBone, x: number, y: number, out: AxisSample): number {
  const { bone, xs, ys, cumulative, length } = prepared;
  let bestD2 = Infinity;
  let bestU = 0;
  let bestV = 0;
  const n = xs.length;
  if (n === 1) {
    const dx = x - (xs[0] ?? 0);
    const dy = y - (ys[0] ?? 0);
    bestD2 = dx * dx + dy * dy;
  }
  for (let i = 0; i + 1 < n; i++) {
    const ax = xs[i] ?? 0;
    const ay = ys[i] ?? 0;
    const ex = (xs[i + 1] ?? 0) - ax;
    const ey = (ys[i + 1] ?? 0) - ay;
    const len2 = ex * ex + ey * ey;
    const px = x - ax;
    const py = y - ay;
    let t = len2 > 0 ? (px * ex + py * ey) / len2 : 0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    const dx = px - t * ex;
    const dy = py - t * ey;
    const d2 = dx * dx + dy * dy;
    if (d2 < bestD2) {
      bestD2 = d2;
      const segLength = Math.sqrt(len2);
      bestU = (cumulative[i] ?? 0) + t * segLength;
      // Side from the cross product, so v is signed consistently along the whole axis.
      bestV = segLength > 0 ? (ex * py - ey * px) / segLength : 0;
    }
  }
  out.u = bestU;
  out.v = bestV;
  // Most pixels of a bounding box miss the bone: skip the profile maths for them.
  if (bestD2 >= prepared.maxRadius2) return 0;
  // Epiphyses: the ends widen over about 2.5 shaft radii (less on short bones, so a phalanx keeps a
  // waist) and turn trabecular (thin cortex).
  const reach = Math.max(1e-6, Math.min(2.5 * bone.radius, 0.3 * length));
  const nearStart = Math.exp(-((bestU / reach) ** 2));
  const nearEnd = Math.exp(-(((length - bestU) / reach) ** 2));
  const outer = bone.radius * (1 + bone.flareStart * nearStart + bone.flareEnd * nearEnd);
  const d2 = bestD2;
  const outer2 = outer * outer;
  if (d2 >= outer2) return 0;
  const nearJoint = Math.max(nearStart, nearEnd);
  const innerRatio = bone.medulla + (0.88 - bone.medulla) * nearJoint;
  const inner = innerRatio * outer;
  const inner2 = inner * inner;
  const outerChord = Math.sqrt(outer2 - d2);
  const innerChord = d2 < inner2 ? Math.sqrt(inner2 - d2) : 0;
  const medullaDensity = 0.12 + 0.2 * nearJoint;
  return bone.density * 2 * (outerChord - innerChord + medullaDensity * innerChord);
}

/** Signed position relative to the break line: negative on the proximal side. */
function breakSide(fracture: PixelFracture, s: AxisSample): number {
  const jag =
    fracture.jagAmplitude *
    (Math.sin(fracture.jagFrequency * s.v + fracture.jagPhase) + 0.5 * Math.sin(2.3 * fracture.jagFrequency * s.v + 2 * fracture.jagPhase));
  return s.u - fracture.at + fracture.obliquity * s.v + jag;
}

function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/**
 * The x-range of row `py` that can lie within `reach` of the polyline (xs, ys), or null when none can.
 * Scanning only this span instead of the bounding box matters for long diagonal bones.
 */
function rowSpan(xs: Float64Array, ys: Float64Array, reach: number, py: number, span: { lo: number; hi: number }): boolean {
  const lowY = py - reach;
  const highY = py + reach;
  let lo = Infinity;
  let hi = -Infinity;
  const n = xs.length;
  for (let i = 0; i < Math.max(1, n - 1); i++) {
    const ax = xs[i] ?? 0;
    const ay = ys[i] ?? 0;
    const bx = xs[Math.min(i + 1, n - 1)] ?? 0;
    const by = ys[Math.min(i + 1, n - 1)] ?? 0;
    if (Math.max(ay, by) < lowY || Math.min(ay, by) > highY) continue;
    let t0 = 0;
    let t1 = 1;
    const dy = by - ay;
    if (Math.abs(dy) > 1e-9) {
      const ta = (lowY - ay) / dy;
      const tb = (highY - ay) / dy;
      t0 = Math.max(0, Math.min(ta, tb));
      t1 = Math.min(1, Math.max(ta, tb));
    }
    const xa = ax + t0 * (bx - ax);
    const xb = ax + t1 * (bx - ax);
    lo = Math.min(lo, xa - reach, xb - reach);
    hi = Math.max(hi, xa + reach, xb + reach);
  }
  if (lo > hi) return false;
  span.lo = Math.min(span.lo, lo);
  span.hi = Math.max(span.hi, hi);
  return true;
}

/**
 * Adds the projected attenuation of `bone` to `raster` (row-major, `size` x `size`). With a
 * `fracture`, the part beyond the break is drawn moved by the fracture's displacement and angulation,
 * and a gap of the fracture's width is left empty, so the break shows as a thin dark line.
 * `combine: 'max'` keeps the larger of old and new values, for parts of one solid bone.
 */
export function drawBone(raster: Float32Array, size: number, bone: PixelBone, fracture?: PixelFracture, combine: 'add' | 'max' = 'add'): void {
  const prepared = prepare(bone);
  const reach = prepared.maxRadius + 1;
  const cos = fracture ? Math.cos(-fracture.angulation) : 1;
  const sin = fracture ? Math.sin(-fracture.angulation) : 0;
  // Where the distal fragment lands: the axis moved forward through the fragment's motion.
  const movedXs = new Float64Array(prepared.xs.length);
  const movedYs = new Float64Array(prepared.ys.length);
  if (fracture) {
    for (let i = 0; i < movedXs.length; i++) {
      const rx = (prepared.xs[i] ?? 0) - fracture.centre.x;
      const ry = (prepared.ys[i] ?? 0) - fracture.centre.y;
      movedXs[i] = fracture.centre.x + cos * rx + sin * ry + fracture.shift.x;
      movedYs[i] = fracture.centre.y - sin * rx + cos * ry + fracture.shift.y;
    }
  }
  const sample: AxisSample = { u: 0, v: 0 };
  const span = { lo: 0, hi: 0 };
  for (let y = 0; y < size; y++) {
    // Sample at pixel centres.
    const py = y + 0.5;
    span.lo = Infinity;
    span.hi = -Infinity;
    const onOriginal = rowSpan(prepared.xs, prepared.ys, reach, py, span);
    const onMoved = fracture !== undefined && rowSpan(movedXs, movedYs, reach, py, span);
    if (!onOriginal && !onMoved) continue;
    const x0 = Math.max(0, Math.floor(span.lo - 0.5));
    const x1 = Math.min(size - 1, Math.ceil(span.hi));
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      let value = sampleBone(prepared, px, py, sample);
      if (fracture) {
        // Proximal fragment stays; the ramp over one pixel anti-aliases the break edge.
        const half = fracture.gap / 2;
        if (value > 0) value *= clamp01(0.5 - (breakSide(fracture, sample) + half));
        // Distal fragment: map the pixel back through the fragment's motion and sample the intact bone there.
        const rx = px - fracture.shift.x - fracture.centre.x;
        const ry = py - fracture.shift.y - fracture.centre.y;
        const qx = fracture.centre.x + cos * rx - sin * ry;
        const qy = fracture.centre.y + sin * rx + cos * ry;
        const distal = sampleBone(prepared, qx, qy, sample);
        if (distal > 0) value += distal * clamp01(0.5 + (breakSide(fracture, sample) - half));
      }
      if (value > 0) {
        const index = y * size + x;
        const old = raster[index] ?? 0;
        raster[index] = combine === 'add' ? old + value : Math.max(old, value);
      }
    }
  }
}

/** A soft-tissue slab in pixel space. */
export interface PixelTissue {
  readonly points: readonly Point[];
  readonly radius: number;
  readonly density: number;
}

/**
 * Writes soft tissue into `raster` as the maximum over slabs of `density * sqrt(1 - (d / radius)^2)`:
 * a rounded limb profile whose overlapping slabs merge instead of stacking into bright seams.
 */
export function drawTissue(raster: Float32Array, size: number, tissue: PixelTissue): void {
  const { points, radius, density } = tissue;
  const r2 = radius * radius;
  const xs = points.map((p) => p.x);
  const ys = points.map((p) => p.y);
  const x0 = Math.max(0, Math.floor(Math.min(...xs) - radius));
  const x1 = Math.min(size - 1, Math.ceil(Math.max(...xs) + radius));
  const y0 = Math.max(0, Math.floor(Math.min(...ys) - radius));
  const y1 = Math.min(size - 1, Math.ceil(Math.max(...ys) + radius));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const px = x + 0.5;
      const py = y + 0.5;
      let best = Infinity;
      for (let i = 0; i < points.length; i++) {
        const a = points[i] as Point;
        const b = points[i + 1] ?? a;
        const ex = b.x - a.x;
        const ey = b.y - a.y;
        const len2 = ex * ex + ey * ey;
        const qx = px - a.x;
        const qy = py - a.y;
        let t = len2 > 0 ? (qx * ex + qy * ey) / len2 : 0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const dx = qx - t * ex;
        const dy = qy - t * ey;
        best = Math.min(best, dx * dx + dy * dy);
      }
      if (best < r2) {
        const value = density * Math.sqrt(1 - best / r2);
        const index = y * size + x;
        if (value > (raster[index] ?? 0)) raster[index] = value;
      }
    }
  }
}
