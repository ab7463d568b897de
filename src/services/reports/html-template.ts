/**
 * A tiny HTML template tag that escapes by default: every interpolated value is escaped unless it is
 * {@link SafeHtml} (made by `html` itself, or by {@link trustedHtml} for markup from a trusted
 * renderer). Report pages interpolate user data (class names come from folder names), so escaping
 * must be the default rather than something each call remembers.
 * @module
 */

/** Markup that is already safe to insert. */
export class SafeHtml {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toString(): string {
    return this.value;
  }
}

/** What a template may interpolate: null, undefined and false render as nothing; arrays are concatenated. */
export type HtmlValue = SafeHtml | string | number | boolean | null | undefined | readonly HtmlValue[];

const ENTITIES: Readonly<Record<string, string>> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for an HTML element or a quoted attribute value. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c] ?? c);
}

function render(value: HtmlValue): string {
  if (value instanceof SafeHtml) return value.value;
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  if (value === null || value === undefined || value === false) return '';
  return escapeHtml(String(value));
}

/**
 * Template tag: the literal parts are kept, every value is escaped (see {@link HtmlValue}).
 * @example
 * html`<td>${className}</td>`; // className '<b>' renders as '&lt;b&gt;'
 */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtml(out);
}

/** Marks markup from a trusted renderer (e.g. Vega's SVG, which escapes its own text) as safe. */
export function trustedHtml(markup: string): SafeHtml {
  return new SafeHtml(markup);
}
