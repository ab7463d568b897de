/**
 * Which classes mean "fracture" (DESIGN.md section 5, "Fracture classes"). Shared by the metrics'
 * binary view and the data layer.
 *
 * Rule: a class name is split into lower-case tokens at every non-letter/non-digit character and at
 * camelCase boundaries (`XR_HAND_positive` → xr, hand, positive; `notFractured` → not, fractured). The
 * class is fracture-positive when some token is `fractured`, `fracture`, `positive` or `abnormal` and no
 * token negates it: `not`, `non`, `no`, `negative`, `normal`, or a negation glued to a positive word
 * (`nonfractured`, `notfractured`, `nofracture`, `unfractured`), because such names mean "no
 * fracture". Tokens match whole words only: `abnormal` is not `normal`, `fractures` is not `fracture`.
 * @module
 */
import { MlError } from '../errors.ts';

const POSITIVE_TOKENS: ReadonlySet<string> = new Set(['fractured', 'fracture', 'positive', 'abnormal']);
const NEGATIVE_TOKENS: ReadonlySet<string> = new Set(['not', 'non', 'no', 'negative', 'normal']);
/** A negation written as a prefix of a positive word, e.g. `nonfractured`. */
const GLUED_NEGATION = /^(?:non|not|no|un)(?:fractured|fracture|positive|abnormal)$/;

/**
 * The lower-case word tokens of a class name.
 * @example
 * classNameTokens('XR_HAND_positive'); // ['xr', 'hand', 'positive']
 * classNameTokens('notFractured');     // ['not', 'fractured']
 */
export function classNameTokens(name: string): string[] {
  return name
    .replace(/(\p{Ll}|\p{N})(\p{Lu})/gu, '$1 $2') // camelCase → camel Case
    .replace(/(\p{Lu})(\p{Lu}\p{Ll})/gu, '$1 $2') // XRHand → XR Hand
    .split(/[^\p{L}\p{N}]+/u)
    .filter((token) => token.length > 0)
    .map((token) => token.toLowerCase());
}

/**
 * True when a class name denotes a fracture by the rule above.
 * @example
 * isFractureClassName('elbow_fractured'); // true
 * isFractureClassName('not fractured');   // false
 * isFractureClassName('XR_HAND_positive'); // true
 */
export function isFractureClassName(name: string): boolean {
  const tokens = classNameTokens(name);
  const negated = tokens.some((token) => NEGATIVE_TOKENS.has(token) || GLUED_NEGATION.test(token));
  return !negated && tokens.some((token) => POSITIVE_TOKENS.has(token));
}

/**
 * The fracture-positive class names, in class order.
 * @param classNames all class names of a dataset or model
 * @param override explicit positive class names (e.g. from `dataset.json`); replaces the name rule.
 *   An empty list means no class is a fracture.
 * @throws MlError INVALID_ARGUMENT when the override names a class that does not exist
 */
export function fracturePositiveClasses(classNames: readonly string[], override?: readonly string[]): string[] {
  if (override === undefined) return classNames.filter((name) => isFractureClassName(name));
  const known = new Set(classNames);
  const unknown = override.filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new MlError(
      'INVALID_ARGUMENT',
      `positive classes ${unknown.map((n) => JSON.stringify(n)).join(', ')} are not among the classes: ${classNames.join(', ')}`,
    );
  }
  const chosen = new Set(override);
  return classNames.filter((name) => chosen.has(name));
}
