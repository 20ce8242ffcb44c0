// Reading the hostile corpus (test/hostile/*.jsonl): JSON objects, one a line; `#` lines are comments.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

export function corpus<T>(file: string): T[] {
  return fs
    .readFileSync(path.join(HERE, file), 'utf8')
    .split('\n')
    .map((l, i) => [l, i + 1] as const)
    .filter(([l]) => l.trim() && !l.startsWith('#'))
    .map(([l, n]) => {
      try {
        return JSON.parse(l) as T;
      } catch (err) {
        throw new Error(`${file}:${n}: ${(err as Error).message}`);
      }
    });
}

/** REPEAT_<char>_<count> stands for a long run of one character, so the corpus stays readable. */
export const expand = (s: string) =>
  s.replace(/REPEAT_(.)_(\d+)/gu, (_, ch: string, n: string) => ch.repeat(Number(n)));
/** Every string in `v` expanded, with {n}/{N} replaced by a per-case name. */
export const expandDeep = <T>(v: T, n: string): T =>
  JSON.parse(
    JSON.stringify(v, (_k, x) =>
      typeof x === 'string' ? expand(x.replaceAll('{n}', n).replaceAll('{N}', n.toUpperCase())) : x,
    ),
  );
