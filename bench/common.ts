// Shared by the benchmark sections: where things live, how a command is timed, statistics.
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = path.join(ROOT, 'bench', 'out');
/** The sources under test, copied at the start so edits made during a run cannot mix in. */
export const SNAP = path.join(OUT, 'src');
export const CLI = path.join(SNAP, 'scripts', 'rivet-ca.mts');
export const EASYRSA = '/usr/share/easy-rsa/easyrsa';
export const OSSL_ENV = { OPENSSL_CONF: '/dev/null' };

export function baseEnv(caDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, RIVET_CA_DIR: caDir, RIVET_ENV_FILE: '/dev/null', ...extra };
}

/** Runs a command to completion and returns its wall time in ms; throws with its stderr on failure. */
export function timed(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string } = {},
): number {
  const t = performance.now();
  const r = spawnSync(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    input: opts.input,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  const ms = performance.now() - t;
  if (r.status !== 0)
    throw new Error(
      `${path.basename(cmd)} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`,
    );
  return ms;
}

export function must(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): string {
  const r = spawnSync(cmd, args, {
    env: opts.env ?? process.env,
    cwd: opts.cwd,
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0)
    throw new Error(
      `${path.basename(cmd)} ${args.join(' ')} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}`,
    );
  return r.stdout;
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export async function pool<T>(
  n: number,
  items: readonly T[],
  fn: (item: T, i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

export function fresh(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

export const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
export const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : 'n/a');
