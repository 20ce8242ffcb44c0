// The one way text becomes openssl configuration. easy-rsa's sed-patching needed ever more escaping
// (its issues #267, #364, #587); here a value that could change the file's structure is refused.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { RivetError } from '../core/errors.ts';
import { packageRoot } from './package-root.ts';

export const TEMPLATE_DIR = path.join(packageRoot(import.meta.url), 'templates');

/** Characters that end a line, start a variable or comment, or split a value in openssl.cnf. */
const FORBIDDEN = /[\n\r\0$#,"\\]/;
const PLACEHOLDER = /\{\{([A-Za-z_][A-Za-z0-9_]*)\}\}/g;

/** A list of `key = value` lines (e.g. SAN entries); its placeholder must stand alone on a line. */
export type ConfLines = { readonly lines: ReadonlyArray<readonly [string, string]>; readonly allowEmpty?: boolean };
export type TemplateValues = Record<string, string | number | ConfLines>;

// `permitted;DNS.1`: openssl's spelling of a name-constraint subtree (lib/policy/name-constraints.ts).
const KEY = /^(?:permitted;)?[A-Za-z][A-Za-z0-9_.]*$/;

function checkValue(name: string, key: string, value: string): string {
  if (FORBIDDEN.test(value))
    throw new RivetError(
      `${name}: value for {{${key}}} holds a forbidden character (${JSON.stringify(value)})`,
      'template',
    );
  return value;
}

function renderLines(name: string, key: string, { lines, allowEmpty }: ConfLines): string {
  if (lines.length === 0 && allowEmpty) return '';
  if (lines.length === 0) throw new RivetError(`${name}: {{${key}}} has no lines`, 'template');
  return lines
    .map(([k, v]) => {
      if (!KEY.test(k))
        throw new RivetError(`${name}: key ${JSON.stringify(k)} in {{${key}}} is not a config key`, 'template');
      return `${k} = ${checkValue(name, key, v)}`;
    })
    .join('\n');
}

export function render(template: string, values: TemplateValues, name = 'template'): string {
  const used = new Set<string>();
  const out = template.replace(PLACEHOLDER, (match: string, key: string, offset: number) => {
    if (!(key in values)) throw new RivetError(`${name}: placeholder {{${key}}} has no value`, 'template');
    const value = values[key]!;
    used.add(key);
    if (typeof value === 'object') {
      const lineStart = template.lastIndexOf('\n', offset - 1) + 1;
      const lineEnd = template.indexOf('\n', offset);
      const line = template.slice(lineStart, lineEnd === -1 ? undefined : lineEnd);
      if (line.trim() !== match)
        throw new RivetError(`${name}: list placeholder {{${key}}} must stand alone on its line`, 'template');
      return renderLines(name, key, value);
    }
    return checkValue(name, key, String(value));
  });
  if (out.includes('{{') || out.includes('}}'))
    throw new RivetError(`${name}: malformed placeholder left after rendering`, 'template');
  const unused = Object.keys(values).filter((k) => !used.has(k));
  if (unused.length) throw new RivetError(`${name}: unknown placeholder(s) ${unused.join(', ')}`, 'template');
  return out;
}

const cache = new Map<string, string>();
export function renderFile(file: string, values: TemplateValues): string {
  let text = cache.get(file);
  if (text === undefined) {
    text = readFileSync(path.join(TEMPLATE_DIR, file), 'utf8');
    cache.set(file, text);
  }
  return render(text, values, file);
}
