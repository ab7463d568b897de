/**
 * Path questions asked by more than one writer of files.
 * @module
 */
import path from 'node:path';

/**
 * True when `child` is `parent` or lies inside it (both resolved against the working directory).
 * Compares paths only; links are not followed.
 * @example
 * isPathInside('/models/cnn/model.onnx', '/models/cnn'); // true
 * isPathInside('/models/cnn-old', '/models/cnn');         // false
 */
export function isPathInside(child: string, parent: string): boolean {
  const relative = path.relative(path.resolve(parent), path.resolve(child));
  return relative === '' || (relative !== '..' && !relative.startsWith(`..${path.sep}`) && !path.isAbsolute(relative));
}
