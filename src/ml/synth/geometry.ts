/**
 * Plane geometry for the synthetic X-ray drawer: points, directions and the similarity transform that
 * places an anatomy layout in the image. Image coordinates have y pointing down.
 * @module
 */

/** A point or vector in the plane. */
export interface Point {
  readonly x: number;
  readonly y: number;
}

/** Shorthand constructor. */
export function pt(x: number, y: number): Point {
  return { x, y };
}

export function add(a: Point, b: Point): Point {
  return { x: a.x + b.x, y: a.y + b.y };
}

export function sub(a: Point, b: Point): Point {
  return { x: a.x - b.x, y: a.y - b.y };
}

export function scale(a: Point, k: number): Point {
  return { x: a.x * k, y: a.y * k };
}

/** The unit vector at `angle` radians from +x (clockwise on screen, since y points down). */
export function direction(angle: number): Point {
  return { x: Math.cos(angle), y: Math.sin(angle) };
}

/** `a` rotated by `angle` radians about the origin. */
export function rotate(a: Point, angle: number): Point {
  const c = Math.cos(angle);
  const s = Math.sin(angle);
  return { x: c * a.x - s * a.y, y: s * a.x + c * a.y };
}

/** The point `length` away from `from` at `angle` radians. */
export function step(from: Point, angle: number, length: number): Point {
  return add(from, scale(direction(angle), length));
}

/**
 * A similarity transform: optional mirror in x, then rotation, uniform scale and translation.
 * Similarity keeps capsules capsules and circles circles, so bones can be placed by their key points.
 */
export interface Placement {
  /** Mirror x before rotating (left versus right limb). */
  readonly mirror: boolean;
  /** Rotation in radians. */
  readonly angle: number;
  /** Uniform scale (layout units to output units). */
  readonly scale: number;
  /** Translation in output units, applied last. */
  readonly offset: Point;
}

/** Maps a layout point through `placement`. */
export function place(p: Point, placement: Placement): Point {
  const mirrored = placement.mirror ? { x: -p.x, y: p.y } : p;
  return add(scale(rotate(mirrored, placement.angle), placement.scale), placement.offset);
}
